"""The recipe claims of ``polyloss verify`` (C9–C12): run directories kept apart per recipe, the decision rule,
each suite at a reduced scale, the exact Kosson predictions of C12 (and that C12 can say no), and the figures."""

import dataclasses
import json
import re
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from polyloss import checks
from polyloss.checks import VERDICTS, Context, claim_ids, recipe_digest
from polyloss.recipe import Recipe

TINY = dict(depth=1, widths=(8, 16), samples=2)


def _suite(cid):
    return claim_ids()[cid]


@pytest.fixture
def tiny_scale(monkeypatch):
    """The quick scale shrunk to a few seconds per suite (a mechanism for tests only)."""
    s = checks.SCALES["quick"]
    monkeypatch.setitem(checks.SCALES, "quick", dataclasses.replace(
        s, widths=(16, 32, 64, 128), seeds=4, widths_any=(32, 64, 128), seeds_any=4))


# ---------------------------------------------------------------------------------------- run directories

def test_recipe_runs_are_kept_apart_and_plain_runs_keep_their_path(tmp_path):
    ctx = Context("quick", str(tmp_path), progress=False)
    plain = ctx.sample("x", steps=1, param="mup", **TINY)
    assert plain.path.rstrip("/").endswith("runs/x")
    again = ctx.sample("x", steps=1, param="mup", recipe=Recipe(), **TINY)  # the plain recipe is today's run
    assert again.path == plain.path and len(again.records) == len(plain.records)
    decay = Recipe(weight_decay="0.3", wd_mode="independent")  # acts at t = 1: the η⁰ term is the shrunk network
    r1 = ctx.sample("x", steps=1, param="mup", recipe=decay, **TINY)
    r2 = ctx.sample("x", steps=1, param="mup", recipe=Recipe(weight_decay="0.1", wd_mode="independent"), **TINY)
    assert len({plain.path, r1.path, r2.path}) == 3
    assert r1.path.rstrip("/").endswith(f"x+r{recipe_digest(decay)}")
    assert Recipe.from_dict(r1.config["recipe"]) == decay
    eta = lambda run: [r["eta_opt"] for r in run.records]  # noqa: E731
    assert eta(r1) != eta(plain)  # the recipe really trained the networks of its own run


def test_recipe_digest_is_a_function_of_the_recipe():
    assert recipe_digest(Recipe(weight_decay="0.1")) == recipe_digest(Recipe(weight_decay=Fraction(1, 10)))
    assert recipe_digest(Recipe(weight_decay="0.1")) != recipe_digest(Recipe(weight_decay="0.2"))
    assert recipe_digest(Recipe(weight_decay="0.1")) != recipe_digest(Recipe(weight_decay="0.1", wd_mode="decoupled"))
    assert len(recipe_digest(Recipe(momentum="0.9"))) == 10


# ---------------------------------------------------------------------------------------- decision rule

@pytest.mark.parametrize("ci, expected", [
    ((-0.9, -0.3), "pass"), ((-0.5, -0.01), "pass"),
    ((-0.45, -0.1), "inconclusive"),  # converging, slower than n^-1/2: not proven for t >= 2
    ((-0.7, 0.2), "inconclusive"), ((-0.2, 0.0), "inconclusive"),
    ((0.0, 0.4), "fail"), ((0.1, 0.3), "fail"),
])
def test_rate_rule(ci, expected):
    from polyloss.claims._common import combine, rate_rule

    assert rate_rule(SimpleNamespace(ci_low=ci[0], ci_high=ci[1])) == expected
    assert combine(["pass", expected]) == expected
    assert combine(["pass", "inconclusive", "fail"]) == "fail"


# ---------------------------------------------------------------------------------------- suites at a tiny scale

@pytest.mark.parametrize("cid, recipes", [
    ("C9", (dict(momentum="0.9"),)),
    ("C10", (dict(weight_decay="0.1", wd_mode="decoupled"),)),
    ("C11", None),
])
def test_recipe_suites_give_a_verdict_at_a_tiny_scale(tmp_path, monkeypatch, tiny_scale, cid, recipes):
    mod = _suite(cid)
    if recipes is not None:
        monkeypatch.setitem(mod.RECIPES, "quick", recipes)
    v = mod.run(Context("quick", str(tmp_path), progress=False))
    assert v.verdict in VERDICTS and v.summary and v.claim.id == cid
    if cid == "C11":
        assert Recipe.from_dict(v.numbers["recipe"]).trained == frozenset({"input", "hidden", "readout"})
        assert v.numbers["scaling_upper"]["widths"] == [16, 32, 64]  # quick drops the largest width
        return
    (x,) = [x for x in v.numbers.values() if isinstance(x, dict) and "rate" in x]
    recipe = Recipe.from_dict(x["recipe"])
    assert recipe.weight_decay == Fraction(recipes[0].get("weight_decay", 0))
    assert recipe.momentum == Fraction(recipes[0].get("momentum", 0))
    assert x["limit_minima_in_window"] and all(0 < m <= x["window"] for m in x["limit_minima_in_window"])
    assert x["verdict"] == v.verdict
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and "+r" in runs[0].name


def test_c10_window_is_four_times_the_all_layer_one_step_limit(tmp_path):
    """A quarter of C10's window is a local minimiser of the exact one-step limit with every layer trained: the
    derivative of the limit polynomial (evaluated here from its coefficients) vanishes there and the second
    derivative is positive."""
    from polyloss.derive import derive

    mod = _suite("C10")
    ctx = Context("quick", str(tmp_path), progress=False)
    win = mod.window(ctx, 1)
    data, _ = ctx.data()
    d = derive(1, 1, data, recipe=Recipe(**mod.ALL))
    c = [float(Fraction(x)) for x in d.loss_coefficients]
    deriv = sum(k * ck * (win / 4) ** (k - 1) for k, ck in enumerate(c) if k)
    scale = sum(abs(k * ck * (win / 4) ** (k - 1)) for k, ck in enumerate(c) if k)
    assert abs(deriv) <= 1e-9 * scale
    assert sum(k * (k - 1) * ck * (win / 4) ** (k - 2) for k, ck in enumerate(c) if k > 1) > 0
    assert win / 4 < float(data.eta_inf_t1(1))  # more trained layers: a smaller optimal rate than hidden-only


# ---------------------------------------------------------------------------------------- C12: Kosson, exactly

def test_l2_and_decoupled_are_one_update_without_momentum_in_float_training():
    """Independent of derive and of the suite: the dense reference trainer (float64) at width 16 gives the same loss
    curve for l2 and decoupled decay at λ_hid = 1 (to rounding), and different ones with momentum or λ_hid = 1/n."""
    from polyloss.gd_recipe import train
    from tests.conftest import make_net
    from polyloss.data import linear_teacher

    data = linear_teacher(d=4, m=6, noise=0.1, seed=3)
    w, _ = make_net(2, 16, data)
    args = (w.W0, list(w.hidden), w.V, data.X, data.y)

    def loss(mode, beta="0", lr=None):
        return train(*args, Recipe(weight_decay="0.2", wd_mode=mode, momentum=beta), 0.7, 3, lr=lr)

    assert np.allclose(loss("l2"), loss("decoupled"), rtol=1e-13, atol=0)
    assert not np.allclose(loss("l2", "0.9"), loss("decoupled", "0.9"), rtol=1e-6, atol=0)
    assert not np.allclose(loss("l2", lr={"hidden": 1 / 16}), loss("decoupled", lr={"hidden": 1 / 16}), rtol=1e-6, atol=0)
    assert not np.allclose(loss("l2"), loss("independent"), rtol=1e-6, atol=0)


def test_c12_exact_predictions_hold(tmp_path, monkeypatch):
    mod = _suite("C12")
    fin = mod.finite_exact(2)
    assert fin["l2 = decoupled"] and not fin["l2 = decoupled with momentum 0.9"]
    assert not fin["l2 = decoupled with λ_hid = 1/n"] and fin["points"] == fin["degree"] + 1
    monkeypatch.setitem(mod.OMEGAS, "quick", ("0", "0.1"))
    v = mod.run(Context("quick", str(tmp_path), progress=False))
    assert v.verdict == "pass", v.summary
    assert all(v.numbers["checks"].values())
    c = v.numbers["curves"]
    assert c["l2"]["eta_window"] == c["decoupled"]["eta_window"]
    assert c["l2"]["eta_window"][0] == c["independent"]["eta_window"][0]  # ω = 0: every mode is plain GD
    assert c["l2"]["eta_window"][1] != c["independent"]["eta_window"][1]


def test_c12_can_say_no(tmp_path, monkeypatch):
    """A tolerance no float computation meets turns one prediction false, and the claim fails."""
    mod = _suite("C12")
    monkeypatch.setitem(mod.OMEGAS, "quick", ("0", "0.1"))
    monkeypatch.setattr(mod, "ENGINE_RTOL", -1.0)
    v = mod.run(Context("quick", str(tmp_path), progress=False))
    assert v.verdict == "fail" and "CONTRADICTED" in v.summary


# ---------------------------------------------------------------------------------------- figures

def _verdict(cid, numbers, widths=(64, 128, 256, 512)):
    from polyloss.checks import Verdict

    return Verdict(_suite(cid).CLAIM, "pass", "planted", numbers, {"root": 0, "per_width": 4, "scheme": "x"},
                   list(widths), "quick")


def _rate(slope, widths=(64, 128, 256, 512), a=1.0):
    return {"slope": slope, "ci": [slope - 0.1, slope + 0.1], "level": 0.95, "intercept": float(np.log(a)),
            "widths": list(widths), "rms": [a * n**slope for n in widths]}


def test_recipe_claim_figures_say_what_they_show(tmp_path):
    from polyloss.checks import verdict_report

    W = [64, 128, 256, 512]
    rec = lambda **kw: {"recipe": Recipe(**kw).to_dict(), "rate": _rate(-0.6)}  # noqa: E731
    curves = {name: {"omega": [0.0, 0.1], "eta_window": [3.2, e], "minima": [[3.2], [e, 7.0]]}
              for name, e in (("l2", 3.1), ("decoupled", 3.1), ("independent", 3.3))}
    verdicts = [
        _verdict("C9", {"l2 ω=1/10": rec(weight_decay="0.1"), "momentum 9/10": rec(momentum="0.9")}),
        _verdict("C10", {"input+hidden+readout": rec(trained="input,hidden,readout", lr_exponents="mup")}),
        _verdict("C11", {"recipe": Recipe(trained="input,hidden,readout", lr_exponents="sp").to_dict(),
                         "scaling_upper": _rate(-1.0, (128, 256, 512)), "eta_mean": {str(n): 2.0 / n for n in W},
                         "eta_se": {str(n): 0.1 / n for n in W}}),
        _verdict("C12", {"curves": curves, "depth": 2, "steps": 2, "window": 13.3}, widths=(3, 64)),
    ]
    verdict_report(verdicts, tmp_path)
    doc = json.loads((tmp_path / "verify.json").read_text())
    figs = doc["figures"]
    assert {"fig_C9", "fig_C10", "fig_C11", "fig_C12"} <= set(figs)
    assert figs["fig_C11"]["reference"]["slope"] == -1.0
    assert figs["fig_C11"]["mean"] == pytest.approx([2.0 / n for n in W])
    assert figs["fig_C12"]["l2"]["eta_window"] == [3.2, 3.1]
    legends = " ".join(figs["fig_C9"]["axes"]["legend"])
    assert "l2 ω=1/10" in legends and "momentum 9/10" in legends
    assert set(figs["fig_C12"]["axes"]["legend"]) >= {"l2: window-global minimiser", "independent: window-global minimiser"}
    for name in ("fig_C9", "fig_C10", "fig_C11", "fig_C12"):
        ax = figs[name]["axes"]
        assert ax["title"].startswith(name[4:] + ":") and ax["xlabel"] and ax["ylabel"], ax
        for text in ax["legend"]:
            assert not re.search(r"\+r[0-9a-f]{10}", text) and "runs/" not in text, text
    assert "ω" in figs["fig_C12"]["axes"]["xlabel"]
    # the report names the recipes of a claim over several of them, not "plain GD"
    assert doc["recipes"]["C9"].startswith("2 recipes: ") and "momentum 9/10" in doc["recipes"]["C9"]
    assert "input+hidden+readout" in doc["recipes"]["C10"] and "input+hidden+readout" in doc["recipes"]["C11"]
