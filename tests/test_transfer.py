"""``polyloss transfer`` (issue 15 part 4): the rule on hand-made records, the curve minimum on a known function,
the reused rate's loss against an independent raw-parameter MuSGD loop, μP vs SP on the demo factories,
stored models, resume, and one-line refusals."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from polyloss.data import linear_teacher
from polyloss.demo_models import mup_mlp, sp_mlp
from polyloss.errors import SpecError
from polyloss.transfer import TOLERANCE, curve_minimum, run_transfer, transfer_report

GRID = np.geomspace(1e-3, 1.0, 301)


def _rec(width, sample, eta_opt, curve, at_base, init=1.0, edge=False):
    return {"width": width, "sample": sample, "eta_opt": eta_opt, "loss_at_eta_opt": float(np.nanmin(curve)),
            "loss_at_tuned": None,
            "at_edge": edge, "local_minima": [], "eta_base": None, "loss_at_eta_base": at_base, "loss_init": init,
            "curve_loss": [float(v) for v in curve]}


def _config():
    return {"grid": GRID.tolist(), "loss": {"loss": "half-mse"}, "source": {"kind": "factory", "spec": "x"},
            "depth": 2, "steps": 1, "optimizer": "musgd", "base_width": 8}


def test_curve_minimum_recovers_a_parabola_in_log_eta():
    x0 = math.log(0.0123)
    curves = [0.2 + (np.log(GRID) - x0) ** 2, 0.4 + (np.log(GRID) - x0) ** 2]  # mean: 0.3 + (log η − x0)²
    eta, val, edge = curve_minimum(GRID, curves)
    assert eta == pytest.approx(0.0123, rel=1e-10) and val == pytest.approx(0.3, abs=1e-12) and not edge
    assert curve_minimum(GRID, [np.exp(-np.log(GRID))])[2]  # decreasing to the end: at the edge
    inf = [None] * 10 + [0.5] * 291  # diverged somewhere: the mean is +inf there
    eta, val, _ = curve_minimum(GRID, [inf, [1.0] * 301])
    assert val == 0.75 and eta >= GRID[10]  # the mean of 0.5 and 1, never where a seed diverged


def test_fast_transfer_gaps_on_hand_made_records():
    """a_n = |min Lbar_n − Lhat_inf| with Lhat_inf from a + b/n through the per-width minima; c_n = Lbar_N(eta*_n) −
    min Lbar_N from the largest width's evaluations at each tuned rate."""
    x = np.log(GRID) - math.log(0.1)
    cfg = _config()
    mins = {8: 0.3, 16: 0.25, 32: 0.225}  # = 0.2 + 0.8/n: Lhat_inf = 0.2 exactly
    recs = [_rec(n, 0, 0.1, mins[n] + x**2, None if n == 8 else mins[n] + 0.001) for n in mins]
    recs[-1]["loss_at_tuned"] = {"8": 0.225 + 0.004, "16": 0.225 + 0.001}
    rep = transfer_report(cfg, recs)
    assert rep["loss_inf_extrapolated"] == pytest.approx(0.2, abs=1e-9)
    rows = {r["width"]: r for r in rep["widths"]}
    assert rows[8]["loss_gap"] == pytest.approx(0.1, abs=1e-9) and rows[16]["loss_gap"] == pytest.approx(0.05, abs=1e-9)
    assert rows[8]["penalty_at_largest"] == pytest.approx(0.004, abs=1e-9)
    assert rows[16]["c_over_a"] == pytest.approx(0.001 / 0.05, rel=1e-6) and rows[32]["c_over_a"] is None
    assert rep["fast_transfer"]["slope_log_c_over_a"] == pytest.approx(math.log((0.02) / 0.04) / math.log(2), rel=1e-6)


def test_rule_on_hand_made_records():
    """Penalty = (Lbar_N(eta_n0) − min Lbar_N)/(Lbar_N(0) − min Lbar_N), the verdict at 1 %."""
    base = 0.3 + (np.log(GRID) - math.log(0.1)) ** 2
    big = 0.2 + (np.log(GRID) - math.log(0.1)) ** 2
    cfg = _config()
    for at, verdict in ((0.2 + 0.008 * 0.8, "transfers"), (0.2 + 0.02 * 0.8, "does not transfer"),
                        (None, "does not transfer")):
        recs = [_rec(8, 0, 0.1, base, None), _rec(64, 0, 0.1, big, at)]
        rep = transfer_report(cfg, recs)
        assert rep["verdict"] == verdict, (at, rep["why"])
        pen = rep["widths"][1]["penalty"]
        assert (math.isinf(pen) if at is None else pen == pytest.approx((at - 0.2) / 0.8, rel=1e-9))
        assert rep["eta_base"] == pytest.approx(0.1, rel=1e-10)
    edge = 0.3 - np.log(GRID)  # decreasing to the window's end
    rep = transfer_report(cfg, [_rec(8, 0, 1.0, edge, None), _rec(64, 0, 0.1, big, 0.2)])
    assert rep["verdict"] == "inconclusive" and TOLERANCE == 0.01


DATA = linear_teacher(d=10, m=30, noise=0.1, seed=2)


def test_reused_rate_loss_equals_raw_parameter_musgd(tmp_path):
    """Each record's loss at the reused rate is the loss of actual MuSGD training of the user's raw parameters."""
    rep = run_transfer(tmp_path / "r", factory=lambda n, s: mup_mlp(n, s, depth=1, base_width=8), widths="16,32",
                       seeds=2, data=DATA, steps=2, optimizer="musgd", base_width=8, progress=False)
    recs = [json.loads(line) for line in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    eta0 = rep["eta_base"]
    for r in recs:
        if r["width"] == 32:
            ref = _raw_musgd(mup_mlp(32, r["sample"], depth=1, base_width=8), eta0, 2, base=8)
            assert r["loss_at_eta_base"] == pytest.approx(ref, rel=1e-10)
            # the largest width at the smaller width's tuned rate (the fast-transfer penalty): actual training too
            (key, val), = r["loss_at_tuned"].items()
            assert key == "16" and val == pytest.approx(ref, rel=1e-10)  # (two widths: the tuned rate is eta_base)
            assert r["loss_init"] == pytest.approx(_raw_musgd(mup_mlp(32, r["sample"], depth=1, base_width=8), 0.0, 2,
                                                              base=8), rel=1e-12)


def _raw_musgd(sd, lr, steps, base):
    """MuSGD on raw parameters (input and MuReadout at lr·wm, hidden at lr), half-MSE, f = R·W⋯W_0·x / wm."""
    n = sd["input.weight"].shape[0]
    wm = n / base
    names = ["input.weight"] + sorted(k for k in sd if k.startswith("hidden")) + ["readout.weight"]
    P = {k: np.array(sd[k], float) for k in names}
    X, y, m = DATA.X, DATA.y, DATA.m
    for s in range(steps + 1):
        hs = [X.T]
        for k in names[:-1]:
            hs.append(P[k] @ hs[-1])
        f = (P["readout.weight"] @ hs[-1])[0] / wm
        r = f - y
        if s == steps:
            return 0.5 * np.mean(r**2)
        df = r / m
        grads = {"readout.weight": (df @ hs[-1].T)[None, :] / wm}
        back = P["readout.weight"].T * df[None, :] / wm
        for j in range(len(names) - 2, -1, -1):
            grads[names[j]] = back @ hs[j].T
            back = P[names[j]].T @ back
        for k in names:
            P[k] = P[k] - lr * (wm if k in ("input.weight", "readout.weight") else 1.0) * grads[k]


def test_mup_demo_transfers_far_better_than_sp(tmp_path):
    """The same layers and data: μP (MuSGD) vs SP (one SGD rate) — SP's optimum falls like 1/n and reusing the
    small model's rate costs orders of magnitude more."""
    kw = dict(widths="32,64,128", seeds=3, data=DATA, steps=1, progress=False)
    mup = run_transfer(tmp_path / "mup", factory=lambda n, s: mup_mlp(n, s, base_width=16), optimizer="musgd",
                       base_width=16, **kw)
    sp = run_transfer(tmp_path / "sp", factory=sp_mlp, optimizer="sgd", **kw)
    assert sp["slope_log_eta_vs_log_n"] < -0.6 and abs(mup["slope_log_eta_vs_log_n"]) < 0.3
    assert sp["widths"][-1]["penalty"] > 10 * mup["widths"][-1]["penalty"]


def test_stored_models_resume_and_the_command(tmp_path):
    paths = []
    for n in (16, 32, 64):
        p = tmp_path / f"m{n}.npz"
        np.savez(p, **mup_mlp(n, 0, base_width=8))
        paths.append(str(p))
    np.savez(tmp_path / "d.npz", X=DATA.X, y=DATA.y)
    base = [sys.executable, "-m", "polyloss", "transfer", "--data", str(tmp_path / "d.npz"), "--steps", "1",
            "--model-optimizer", "musgd", "--base-width", "8", "--out", str(tmp_path / "run"), "--quiet"]
    first = subprocess.run(base + ["--models", ",".join(paths[:2])], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(base + ["--models", ",".join(paths[:2]), "--resume"], capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout == first.stdout  # nothing recomputed, the same report
    lines = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 2
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    assert rep["verdict"] in ("transfers", "does not transfer", "inconclusive") and rep["figure"]["file"] == "transfer.png"
    assert (tmp_path / "run" / "transfer.png").stat().st_size > 10_000
    assert "verdict:" in first.stdout and "rule:" in first.stdout


def test_factory_from_a_file_with_seeds(tmp_path):
    (tmp_path / "models.py").write_text(
        "from polyloss.demo_models import mup_mlp\n"
        "def make(width, seed):\n    return mup_mlp(width, seed, depth=1, base_width=8)\n")
    rep = run_transfer(tmp_path / "r", factory=f"{tmp_path / 'models.py'}:make", widths=[8, 16], seeds=2, data=DATA,
                       steps=1, optimizer="musgd", base_width=8, progress=False)
    assert [r["seeds"] for r in rep["widths"]] == [2, 2]


@pytest.mark.parametrize("factory,seeds,needle", [
    ("nocolon", 1, "module:function"),
    ("no_such_module_xyz:f", 1, "importing 'no_such_module_xyz' failed"),
    ("polyloss.demo_models:nothing", 1, "no callable 'nothing'"),
    (lambda n: 1 / 0, 1, "the factory failed at width 8"),
    (lambda n: "not a model", 1, ".safetensors or .npz file"),
    (lambda n: mup_mlp(n, depth=1), 2, "`seeds`=2"),
])
def test_bad_factories_are_one_line(tmp_path, factory, seeds, needle):
    with pytest.raises(SpecError) as exc:
        run_transfer(tmp_path / "r", factory=factory, widths=[8, 16], seeds=seeds, data=DATA, steps=1,
                     optimizer="musgd", base_width=8, progress=False)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_refusals_of_the_command(tmp_path):
    base = [sys.executable, "-m", "polyloss", "transfer", "--steps", "1", "--d", "10", "--m", "20", "--out",
            str(tmp_path / "o")]
    for extra, needle in ((["--factory", "polyloss.demo_models:sp_mlp"], "`--widths` is required"),
                          (["--factory", "polyloss.demo_models:sp_mlp", "--widths", "8,16", "--lr-scales", "1,1,1"],
                           "`--lr-scales`"),
                          (["--factory", "polyloss.demo_models:mup_mlp", "--widths", "8", "--model-optimizer", "musgd",
                            "--base-width", "8"], "at least two widths")):
        res = subprocess.run(base + extra, capture_output=True, text=True)
        assert res.returncode == 2 and needle in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr
