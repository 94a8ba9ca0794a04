"""``polyloss transfer --limit exact``: the user's model family against its exact infinite-width limit.

References: ``derive`` called with the recipe and biases written out by hand from mup.MuSGD's rules (input
lr·n/base, hidden lr, readout lr·output_mult²·base/n; input and hidden biases lr·n/base, the readout bias lr), the
exact rational coefficients of that limit evaluated at each width's tuned rate, the MSE convention's exact
rescaling, and one-line refusals where the limit does not apply (initialisation, optimizer)."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction as F

import numpy as np
import pytest

from polyloss.data import linear_teacher
from polyloss.demo_models import mup_mlp, sp_mlp
from polyloss.derive import derive
from polyloss.errors import SpecError
from polyloss.recipe import Biases, Recipe
from polyloss.transfer import limit_loss, run_transfer

DATA = linear_teacher(d=6, m=12, noise=0.1, seed=3)
BASE = 8
KW = dict(widths=[16, 32, 64], seeds=2, data=DATA, steps=2, optimizer="musgd", base_width=BASE, progress=False)


def _mup(width, seed):
    return mup_mlp(width, seed, depth=2, d=6, base_width=BASE)


def _with_biases(var_scale=1.0, hidden="mup"):
    """Biases as torch + mup draw them: input U(±1/√d) (variance 1/(3d)); hidden U(±1/√n) rescaled by mup's
    set_base_shapes to U(±1/√base) (``hidden='mup'``) or not (``'torch'``); the readout bias o(1)."""
    def make(width, seed):
        sd = _mup(width, seed)
        g = np.random.default_rng([seed, width, 99])
        sd["input.bias"] = g.uniform(-1, 1, width) / np.sqrt(6) * np.sqrt(var_scale)
        for i in range(2):
            sd[f"hidden.{i}.bias"] = g.uniform(-1, 1, width) / np.sqrt(BASE if hidden == "mup" else width)
        sd["readout.bias"] = g.uniform(-1, 1, 1) / np.sqrt(width)
        return sd
    return make


def _coef(F_list, eta):
    acc = F(0)
    for c in reversed(F_list):
        acc = acc * eta + c
    return acc


def test_exact_limit_equals_derive_with_musgd_rates(tmp_path):
    rep = run_transfer(tmp_path / "r", factory=_mup, limit="exact", **KW)
    ex = rep["exact_limit"]
    rc = Recipe(trained="input,hidden,readout", lr_exponents="mup", lr_scales=[F(1, BASE), 1, BASE])
    want = derive(2, 2, data=DATA, recipe=rc, window=F(repr(rep["config"]["window"])))
    assert ex["coefficients"] == want.coefficient_strings() and ex["biases"] is None
    assert ex["eta_inf"] == float(F(want.eta_window_min.eta))
    cs = [F(c) for c in want.loss_coefficients]
    for row in rep["widths"]:
        eta = F(repr(row["eta_mean_curve"]))
        c = float(_coef(cs, eta) - F(want.eta_window_min.loss))
        assert row["penalty_exact"] == pytest.approx(max(c, 0.0), rel=1e-9, abs=1e-15)
        assert row["hyperparameter_gap_exact"] == pytest.approx(abs(row["eta_opt_mean"] - ex["eta_inf"]), rel=1e-12)
        assert row["loss_gap_exact"] == pytest.approx(abs(row["min_mean_curve"] - ex["loss_inf"]), rel=1e-12)
    assert limit_loss(ex, ex["eta_inf"]) == pytest.approx(ex["loss_inf"], rel=1e-12)
    # the limit's optimum is near the widths' optima (the demo family is muP), and the plain report is unchanged
    assert abs(rep["widths"][-1]["eta_opt_mean"] - ex["eta_inf"]) < 0.25 * ex["eta_inf"]
    from polyloss._rundir import read_records
    from polyloss.transfer import plot_transfer

    fig = plot_transfer(rep, read_records(str(tmp_path / "r" / "records.jsonl")), tmp_path / "r" / "t.png")
    drawn = fig["loss_curves"]["limit"]  # panel (a) draws the limit's curve, exactly evaluated
    i = len(drawn["eta"]) // 2
    assert drawn["loss"][i] == pytest.approx(float(_coef(cs, F(drawn["eta"][i]))), rel=1e-12)
    assert "n = ∞ (exact limit)" in fig["loss_curves"]["axes"]["legend"]
    plain = run_transfer(tmp_path / "p", factory=_mup, **KW)
    assert plain["exact_limit"] is None and plain["widths"][0]["eta_opt_mean"] == rep["widths"][0]["eta_opt_mean"]


def test_exact_limit_with_biases_and_the_mse_convention(tmp_path):
    rep = run_transfer(tmp_path / "b", factory=_with_biases(), limit="exact", **KW)
    ex = rep["exact_limit"]
    assert ex["biases"] == {"layers": ["input", "hidden", "readout"], "lr_scales": ["1/8", "1/8", "1"],
                            "input_var": "1/18", "hidden_var": "1/24"}  # torch's 1/(3d), d = 6; mup's 1/(3 base)
    rc = Recipe(trained="input,hidden,readout", lr_exponents="mup", lr_scales=[F(1, BASE), 1, BASE])
    want = derive(2, 2, data=DATA, recipe=rc, biases=Biases("all", [F(1, BASE), F(1, BASE), 1], F(1, 18), F(1, 24)),
                  window=F(repr(rep["config"]["window"])))
    assert ex["coefficients"] == want.coefficient_strings()
    # torch's own hidden-bias init (no mup rescaling) is o(1): declared 'torch', it leaves the limit
    torch_h = run_transfer(tmp_path / "t", factory=_with_biases(hidden="torch"), limit="exact",
                           hidden_bias_var="torch", **KW)["exact_limit"]
    assert "hidden_var" not in torch_h["biases"] and torch_h["coefficients"] != ex["coefficients"]
    # nn.MSELoss: torch at lr is polyloss at 2·lr, and its loss is twice polyloss's
    mse = run_transfer(tmp_path / "m", factory=_with_biases(), limit="exact", loss="mse",
                       window=rep["config"]["window"] / 2, **KW)["exact_limit"]
    assert mse["eta_inf"] == pytest.approx(ex["eta_inf"] / 2, rel=1e-15)
    assert mse["loss_inf"] == pytest.approx(2 * ex["loss_inf"], rel=1e-15)


@pytest.mark.parametrize("factory,kw,needle", [
    (lambda w, s: sp_mlp(w, s, depth=2, d=6), {}, "readout (effective V) has mean squared entry"),
    (_with_biases(var_scale=4.0), {}, "the input bias has mean squared entry"),
    (lambda w, s: {k: (v / np.sqrt(3) if k.startswith("hidden") else v) for k, v in _mup(w, s).items()}, {},
     "hidden weight 1"),
])
def test_refusals_name_what_is_off(tmp_path, factory, kw, needle):
    with pytest.raises(SpecError) as exc:
        run_transfer(tmp_path / "x", factory=factory, limit="exact", **{**KW, **kw})
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_biases_below_their_mup_rate_freeze_in_the_limit(tmp_path):
    """Torch SGD trains every bias at lr, below the input and hidden biases' muP rate lr·n: with only the hidden
    layers trained (their muP rate is lr), the limit is the hidden-only one with the input bias's initial
    variance, and the hidden biases (torch's o(1) init) leave no trace."""
    def sgd_model(width, seed):
        sd = _with_biases(hidden="torch")(width, seed)
        sd["readout.weight"] = sd["readout.weight"] * BASE / width  # a plain nn.Linear readout: V = its weight
        return sd

    rep = run_transfer(tmp_path / "s", factory=sgd_model, limit="exact", recipe_knobs={"trained": "hidden"},
                       **{**KW, "optimizer": "sgd", "base_width": None})
    ex = rep["exact_limit"]
    assert ex["biases"] == {"layers": [], "lr_scales": ["1", "1", "1"], "input_var": "1/18"}
    want = derive(2, 2, data=DATA, recipe=Recipe(trained="hidden", lr_exponents="0,0,0"),
                  biases=Biases((), input_var=F(1, 18)), window=F(repr(rep["config"]["window"])))
    assert ex["coefficients"] == want.coefficient_strings()


def test_the_init_check_on_one_wide_model():
    """The declared hidden-bias variance is tested like the weights: mup's 1/(3·base) against torch's o(1) init
    is told apart at n = 256 (with n entries the check's resolution is √(2/n)·6)."""
    from polyloss.interop import check_limit_init, import_model

    def model(hidden):
        return import_model(_with_biases(hidden=hidden)(256, 0), optimizer="musgd", base_width=BASE)

    check_limit_init(model("mup"), F(1, 18), hidden_bias_var=F(1, 24))
    check_limit_init(model("torch"), F(1, 18), hidden_bias_var=0)
    with pytest.raises(SpecError, match="hidden bias 1 has mean squared entry"):
        check_limit_init(model("torch"), F(1, 18), hidden_bias_var=F(1, 24))
    with pytest.raises(SpecError, match="hidden bias 1 has mean squared entry .* above 1/n"):
        check_limit_init(model("mup"), F(1, 18), hidden_bias_var=0)
    sd = _with_biases()(256, 0)
    sd["readout.bias"] = np.array([0.3])  # MuReadout's rescaled O(1) bias
    with pytest.raises(SpecError, match="readout bias"):
        check_limit_init(import_model(sd, optimizer="musgd", base_width=BASE), F(1, 18), hidden_bias_var=F(1, 24))


def test_no_limit_for_torch_sgd_and_a_declared_variance(tmp_path):
    """torch SGD on a muP-initialised model: the readout at rate 1 is n times its muP rate, so power counting
    gives eta_n ~ n^-1 and no limit in the lr; a declared input-bias variance is checked against the models."""
    with pytest.raises(SpecError) as exc:
        run_transfer(tmp_path / "s", factory=_mup, limit="exact", **{**KW, "optimizer": "sgd"})
    assert "no infinite-width limit in the lr" in str(exc.value) and "n^(-1)" in str(exc.value)
    rep = run_transfer(tmp_path / "v", factory=_with_biases(var_scale=4.0), limit="exact", input_bias_var="2/9", **KW)
    assert rep["exact_limit"]["biases"]["input_var"] == "2/9"
    with pytest.raises(SpecError):
        run_transfer(tmp_path / "w", factory=_mup, limit="sure", **KW)


def test_command_and_resume(tmp_path):
    out = tmp_path / "c"
    base = [sys.executable, "-m", "polyloss", "transfer", "--factory", "polyloss.demo_models:mup_mlp", "--widths",
            "16,32", "--steps", "1", "--model-optimizer", "musgd", "--base-width", "16", "--d", "10", "--m", "12",
            "--out", str(out), "--quiet"]
    ok = subprocess.run(base + ["--limit", "exact"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "exact limit: eta_inf = " in ok.stdout
    again = subprocess.run(base + ["--resume"], capture_output=True, text=True)  # the limit is part of the run
    assert again.returncode == 2 and "limit" in again.stderr and again.stderr.strip().count("\n") == 0
    bad = subprocess.run(base[:-3] + ["--out", str(tmp_path / "d"), "--input-bias-var", "1/3"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "`--input-bias-var`" in bad.stderr
