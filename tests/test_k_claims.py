"""The training claims of issue 14 part 4 (K1, K2, K3, L1): each returns a complete verdict record at quick scale
(one quick run per claim, shared by its tests), their ids work as claim ids, and the statistic helpers
(verify/_common.py) give hand-computed answers."""

import json

import numpy as np
import pytest

from polyloss.checks import VERDICTS, claim_ids, parse_claims
from polyloss.claims import _common as common

IDS = ("K1", "K2", "K3", "L1")


def _quick(quick_verify, cid):
    """The claim's record in the shared quick run of every claim (conftest.quick_verify)."""
    from types import SimpleNamespace

    doc = json.loads((quick_verify / "verdicts" / f"{cid}.json").read_text())
    return quick_verify, SimpleNamespace(verdict=doc["verdict"], widths=doc["widths"])


@pytest.fixture(scope="module")
def records(quick_verify):
    return {cid: _quick(quick_verify, cid) for cid in IDS}


def _check_record(out, v, cid):
    """The verdict on disk is complete and equals the returned one; the report names the claim."""
    doc = json.loads((out / "verdicts" / f"{cid}.json").read_text())
    assert doc["schema"] == "polyloss.verdict/1" and doc["verdict"] == v.verdict in VERDICTS
    for key in ("id", "title", "statement", "source", "statistic", "tolerance"):
        assert doc["claim"][key], key
    assert doc["claim"]["id"] == cid and doc["mode"] == "quick" and doc["runtime_s"] > 0
    assert doc["summary"].startswith(v.verdict) and doc["widths"] and doc["seeds"]["root"] == 0
    assert {"polyloss", "numpy", "python"} <= set(doc["versions"])
    assert doc["numbers"]["verdict"] == v.verdict
    md = (out / "verify.md").read_text()
    assert f"{cid}: " in md and v.verdict.upper() in md
    return doc


def _check_optimum(fit, settings, widths):
    assert set(fit["settings"]) == set(settings)
    for rec in fit["settings"].values():
        assert sorted(int(n) for n in rec["eta_star"]) == list(widths)
        if rec["located"]:
            assert np.isfinite(rec["slope"]) and all(e > 0 for e in rec["eta_star"].values())
        if rec["ci"] is not None:
            assert rec["ci"][0] <= rec["ci"][1]


def test_k1_record(records):
    out, v = records["K1"]
    doc = _check_record(out, v, "K1")
    n = doc["numbers"]
    _check_optimum(n["optimum"], ("independent", "torch", "no decay"), v.widths)
    assert set(n["parts"]) == {"independent", "torch"} and n["tau"] == 0.15
    assert [r["wd_mode"] for r in n["recipes"]] == ["independent", "torch", "l2"]
    assert n["optimum"]["pairs"]["torch|independent"].keys() == {"abs_diff", "ci"}
    assert (out / "fig_K1.png").exists()


def test_k2_record(records):
    out, v = records["K2"]
    n = _check_record(out, v, "K2")["numbers"]
    keys = {f"{r}|{w}|{m}" for r in ("large batch", "small batch") for w in ("early", "late")
            for m in ("align_w", "align_dw")}
    assert set(n["exponents"]) == set(n["band"]) == keys
    assert all(b in ("inside", "outside", "straddles") for b in n["band"].values())
    for f in n["exponents"].values():
        assert f["ci"][0] <= f["ci"][1]
        assert all(0 < x <= 1 for x in f["seed_mean"].values())  # alignments are cosines of a kind: in (0, 1]
    # early is the first update, late the last one
    assert n["exponents"]["large batch|early|align_w"]["step"] == 0
    assert n["exponents"]["large batch|late|align_w"]["step"] == n["setup"]["steps"] - 1
    # a random W_0 does not align with its input: α_W ∝ n^-1/2 at step 0 (the assumption's trivial half)
    assert abs(n["exponents"]["large batch|early|align_w"]["slope"] + 0.5) < 0.1
    assert set(n["curves"]) == {"large batch", "small batch"}
    assert list((out).glob("fig_K2_*.png"))


def test_k3_record(records):
    out, v = records["K3"]
    n = _check_record(out, v, "K3")["numbers"]
    _check_optimum(n["optimum"], ("constant", "warmup"), v.widths)
    assert n["warmup"].startswith("n-warmup:") and n["difference"].keys() == {"abs_diff", "ci"}
    assert [r["schedule"] for r in n["recipes"]] == ["constant", n["warmup"]]
    # SP's optimum without warmup falls with the width (the premise of the claim)
    assert n["optimum"]["settings"]["constant"]["slope"] < -0.5


def test_l1_record(records):
    out, v = records["L1"]
    n = _check_record(out, v, "L1")["numbers"]
    _check_optimum(n["optimum"], ("baseline", "rms-gains", "zero-readout"), v.widths)
    assert set(n["parts"]) == {"rms-gains", "zero-readout"}
    assert n["recipe"]["trained"] == ["hidden", "readout"]


def test_the_new_ids_are_claim_ids():
    ids = claim_ids()
    assert set(IDS) <= set(ids)
    assert parse_claims("k1,L1") == ["K1", "L1"] and parse_claims(["K2", "k3"]) == ["K2", "K3"]
    for cid in IDS:
        c = ids[cid].CLAIM
        assert c.id == cid and c.statement and c.tolerance and hasattr(ids[cid], "figures")


# ------------------------------------------------------------------------------ the statistic helpers

def test_curve_optimum_recovers_a_parabola_vertex_and_refuses_edges():
    etas = np.geomspace(0.1, 10, 13)
    x = np.log(etas)
    # one seed, loss = exp((log η − log 0.7)^2): the curve (mean of log loss) is an exact parabola in log η
    L = np.exp((x - np.log(0.7)) ** 2)[None, :]
    assert common.curve_optimum(etas, L) == pytest.approx(0.7, rel=1e-9)
    # two seeds: the mean of log losses (x − a)^2 and (x − b)^2 has its vertex at (a + b)/2: √(0.5 · 2) = 1
    L2 = np.exp(np.stack([(x - np.log(0.5)) ** 2, (x - np.log(2.0)) ** 2]))
    assert common.curve_optimum(etas, L2) == pytest.approx(1.0, rel=1e-9)
    assert common.curve_optimum(etas, np.exp(x)[None, :]) is None  # rises from the first point
    assert common.curve_optimum(etas, np.exp(-x)[None, :]) is None  # still falling at the end
    # the lowest finite point (index 6, η = 1) next to a diverged η: not located
    diverged = np.exp((x - np.log(1.5)) ** 2)[None, :]
    diverged[0, 7:] = np.inf
    assert int(np.argmin(diverged)) == 6 and common.curve_optimum(etas, diverged) is None
    # one seed of two diverged at an η: the curve is +inf there too
    two = np.vstack([L, diverged])
    assert common.curve_optimum(etas, two) is None


def test_optimum_slopes_on_exact_power_laws():
    """η*_n = 0.8 (n/16)^-1 in setting 'a' and 0.8 in 'b', identical seeds: slopes −1 and 0 exactly, degenerate CIs,
    |slope_a| − |slope_b| = 1."""
    etas = np.geomspace(1e-3, 10, 41)
    x = np.log(etas)
    widths = (16, 32, 64, 128)

    def curves(star):
        return {n: np.exp(np.stack([(x - np.log(star(n))) ** 2] * 3)) for n in widths}

    out = common.optimum_slopes(etas, {"a": curves(lambda n: 0.8 * 16 / n), "b": curves(lambda n: 0.8)},
                                seed=0, n_resamples=50, pairs=[("a", "b")])
    a, b = out["settings"]["a"], out["settings"]["b"]
    assert a["slope"] == pytest.approx(-1.0, abs=1e-9) and b["slope"] == pytest.approx(0.0, abs=1e-9)
    assert a["eta_star"][128] == pytest.approx(0.1, rel=1e-9) and a["intercept"] == pytest.approx(np.log(12.8), abs=1e-9)
    assert a["ci"] == pytest.approx([-1.0, -1.0], abs=1e-9) and b["ci"] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert out["pairs"]["a|b"]["abs_diff"] == pytest.approx(1.0) and out["pairs"]["a|b"]["ci"] == pytest.approx([1, 1])
    assert a["dropped"] == 0 and out["seeds"] == {n: 3 for n in widths}


def test_optimum_slopes_at_the_grid_edge_is_not_located():
    etas = np.geomspace(0.1, 10, 21)
    x = np.log(etas)
    inside = np.exp(np.stack([(x - np.log(1.0)) ** 2] * 2))
    settings = {"s": {16: inside, 32: inside, 64: np.exp(np.stack([x] * 2))}}  # n = 64: minimum at the first η
    rec = common.optimum_slopes(etas, settings, n_resamples=20)["settings"]["s"]
    assert not rec["located"] and rec["slope"] is None and rec["ci"] is None and rec["eta_star"][64] is None
    assert common.band_rule(rec["ci"], 0.15) == "not located"


def test_band_rule():
    assert common.band_rule([-0.1, 0.12], 0.15) == "transfers"
    assert common.band_rule([0.16, 0.4], 0.15) == "drifts" and common.band_rule([-1.2, -0.2], 0.15) == "drifts"
    assert common.band_rule([-0.1, 0.2], 0.15) == "undecided" and common.band_rule([-0.3, 0.3], 0.15) == "undecided"


def test_losses_by_width_is_the_geometric_tail_mean():
    class FakeSweep:
        widths = [8]

        def losses(self, n):  # (seeds, etas, steps + 1)
            return np.array([[[9.0, 1.0, 4.0], [9.0, 2.0, 8.0], [9.0, 1.0, np.inf]]])

    got = common.losses_by_width(FakeSweep(), tail=2)[8]
    assert got.shape == (1, 3)
    assert got[0, 0] == pytest.approx(2.0) and got[0, 1] == pytest.approx(4.0) and got[0, 2] == np.inf
    assert common.losses_by_width(FakeSweep())[8][0] == pytest.approx([4.0, 8.0, np.inf])
