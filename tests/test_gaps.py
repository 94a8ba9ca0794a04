"""Transfer gaps (polyloss.gaps): planted families with known rates of a, b, c and c/a, exact evaluation
of the limit, the verdict rule, first-local-minimiser gaps, bad input, and a real run end to end."""

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from polyloss.analysis import RateFit
from polyloss.cli import main
from polyloss.compare import Limit, compare, run_dataset
from polyloss.errors import PolylossError, RunError, SpecError
from polyloss.gaps import FAST_RULE, exact_value, fast_verdict, gaps_for, record_gaps, transfer_gaps
from polyloss.sampling import load_run

WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
WINDOW = 4.0
# 𝓛_∞(η) = (η − 1)²: minimiser 1, minimum 0
LIMIT = Limit((Fraction(1), Fraction(-2), Fraction(1)), 1.0, 1.0, 1.0, WINDOW, True, "planted", (1.0,))


def _window_min(coeffs, window):
    """Minimiser and minimum of a float polynomial over (0, window], from the roots of its derivative
    (independent of polyloss: numpy only)."""
    p = np.polynomial.Polynomial(coeffs)
    crit = [r.real for r in p.deriv().roots() if abs(r.imag) < 1e-12 and 0 < r.real <= window]
    cand = crit + [window]
    eta = min(cand, key=p)
    return float(eta), float(p(eta))


def _planted_records(delta_exp, eps_exp, seeds=60, seed=0):
    """𝓛_n(η) = (η − 1 − δ)² + ε with δ = z·n^delta_exp (z standard normal) and ε = (1 + u)·n^eps_exp
    (u uniform): b = |z|·n^delta_exp, a = (1 + u)·n^eps_exp, c = z²·n^(2·delta_exp)."""
    rng = np.random.default_rng(seed)
    recs = []
    for n in WIDTHS:
        for s in range(seeds):
            delta = rng.standard_normal() * n**delta_exp
            eps = (1 + rng.random()) * n**eps_exp
            coeffs = [(1 + delta) ** 2 + eps, -2 * (1 + delta), 1.0]  # (η − 1 − δ)² + ε
            eta, loss = _window_min(coeffs, WINDOW)
            recs.append({"width": n, "sample": s, "eta_opt": eta, "loss_at_eta_opt": loss,
                         "local_minima": [{"eta": eta, "loss": loss, "at_edge": False}]})
    return recs


def _contains(fit, x):
    return fit.ci_low <= x <= fit.ci_high


def test_planted_fast_transfer_rates_and_verdict():
    g = transfer_gaps(_planted_records(-0.5, -0.5), LIMIT)
    planted = {"a": -0.5, "b": -0.5, "c": -1.0, "c/a": -0.5}
    for stat in ("mean", "median"):
        for q, x in planted.items():
            f = g.fits[stat][q]
            assert _contains(f, x), (stat, q, f.slope, f.ci_low, f.ci_high)
    assert g.verdicts == {"means": "fast", "medians": "fast", "overall": "fast"}
    # the per-network values are the planted ones
    s0 = g.per_width[64]
    assert np.all(s0["c"] >= -1e-15) and np.allclose(s0["c"], s0["b"] ** 2, rtol=1e-9, atol=1e-15)


def test_planted_not_fast_transfer():
    # δ = n^-1/4, ε = n^-1: a ~ n^-1, c ~ n^-1/2, c/a ~ n^+1/2 grows
    g = transfer_gaps(_planted_records(-0.25, -1.0, seed=1), LIMIT)
    for stat in ("mean", "median"):
        assert _contains(g.fits[stat]["c/a"], 0.5), g.fits[stat]["c/a"]
        assert _contains(g.fits[stat]["b"], -0.25) and _contains(g.fits[stat]["a"], -1.0)
    assert g.verdict == "not fast"


def test_planted_constant_ratio_is_not_called_fast():
    # δ = n^-1/2, ε = n^-1: a and c both ~ n^-1, c/a constant: neither fast nor provably not fast
    g = transfer_gaps(_planted_records(-0.5, -1.0, seed=2), LIMIT)
    for stat in ("mean", "median"):
        assert _contains(g.fits[stat]["c/a"], 0.0)
    assert g.verdict == "inconclusive"


def test_limit_is_evaluated_exactly_not_in_the_ill_conditioned_monomial_form():
    # 𝓛_∞(η) = (η − 1)^20 in monomial form: float summation near η = 1 is pure cancellation noise
    coeffs = [Fraction(math.comb(20, k) * (-1) ** (20 - k)) for k in range(21)]
    eta = 1.0 + 2.0**-4
    g = record_gaps(eta, 0.5, coeffs, 1.0)
    assert g["c"] == pytest.approx(2.0**-80, rel=1e-15)
    assert g["a"] == 0.5 and g["b"] == 2.0**-4 and g["c/a"] == pytest.approx(2.0**-79, rel=1e-15)
    naive = sum(float(c) * eta**k for k, c in enumerate(coeffs))
    assert abs(naive - 2.0**-80) > 1e3 * 2.0**-80  # what the float monomial form would have reported
    assert exact_value(coeffs, 1.0) == 0


def test_verdict_rule():
    def fit(lo, hi):
        return RateFit((lo + hi) / 2, lo, hi, 0.0, 0.95, (1, 2, 3), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))

    assert fast_verdict(fit(-0.6, -0.1)) == "fast"
    assert fast_verdict(fit(0.1, 0.6)) == "not fast"
    assert fast_verdict(fit(-0.3, 0.2)) == "inconclusive"
    assert fast_verdict(None) == "cannot tell"
    assert "CI lies below 0" in FAST_RULE and "above 0" in FAST_RULE


def test_first_local_minimiser_and_basins():
    # limit with two local minimisers 1 and 3 in the window; the deeper (window-global) one is 3
    coeffs = [Fraction(c) for c in np.polynomial.Polynomial.fromroots([1, 1, 3, 3]).coef.astype(int)]
    lim = Limit(tuple(coeffs), 3.0, 1.0, 3.0, WINDOW, True, "planted", (1.0, 3.0))
    recs = []
    for n in (16, 32, 64):
        for s in range(4):
            e1, e3 = 1 + 0.1 * (s + 1) / n, 3 - 0.2 * (s + 1) / n
            l1, l3 = (0.03 / n if s < 3 else 0.01 / n), 0.02 / n  # one network of four finds the first basin deeper
            best = (e3, l3) if l3 < l1 else (e1, l1)
            recs.append({"width": n, "sample": s, "eta_opt": best[0], "loss_at_eta_opt": best[1],  # listed out of order:
                         "local_minima": [{"eta": e3, "loss": l3}, {"eta": e1, "loss": l1}]})  # first = smallest η
    gs = gaps_for(recs, lim, n_resamples=200)
    w, f = gs["window"], gs["first_local"]
    assert w.eta_inf == 3.0 and f.eta_inf == 1.0
    assert w.basin_share == {16: 0.75, 32: 0.75, 64: 0.75} and f.basin_share == {16: 1.0, 32: 1.0, 64: 1.0}
    r = f.per_width[32]
    np.testing.assert_allclose(r["b"], [0.1 * (s + 1) / 32 for s in range(4)], rtol=1e-12)
    np.testing.assert_allclose(r["a"], [0.03 / 32] * 3 + [0.01 / 32], rtol=1e-12)  # 𝓛_∞(1) = 0
    poly = np.polynomial.Polynomial.fromroots([1, 1, 3, 3])
    np.testing.assert_allclose(r["c"], [poly(1 + 0.1 * (s + 1) / 32) for s in range(4)], rtol=1e-9)
    # window gaps of the network that found the first basin: b = |η_n − 3|, c = 𝓛_∞(η_n) − 0
    assert w.per_width[32]["b"][3] == pytest.approx(3 - (1 + 0.4 / 32))


def test_bad_input_is_a_one_line_polyloss_error():
    recs = _planted_records(-0.5, -0.5, seeds=2)
    with pytest.raises(SpecError, match="minimiser"):
        transfer_gaps(recs, LIMIT, "global")
    with pytest.raises(SpecError, match="level"):
        transfer_gaps(recs, LIMIT, level=1.5)
    with pytest.raises(RunError, match="no records"):
        transfer_gaps([], LIMIT)
    bad = dict(recs[0], eta_opt=float("nan"))
    with pytest.raises(RunError, match="eta_n"):
        transfer_gaps([bad], LIMIT)
    bare = dict(recs[0], local_minima=[])
    with pytest.raises(RunError, match="local_minima") as exc:
        transfer_gaps([bare], LIMIT, "first_local")
    assert "\n" not in str(exc.value) and isinstance(exc.value, PolylossError)


def test_few_widths_give_no_fit_and_say_so():
    recs = [r for r in _planted_records(-0.5, -0.5, seeds=3) if r["width"] in (64, 128)]
    g = transfer_gaps(recs, LIMIT, n_resamples=100)
    assert all(f is None for fs in g.fits.values() for f in fs.values())
    assert g.verdict == "cannot tell" and "at least 3 widths" in g.note


def _horner_q(coeffs, x):
    acc = Fraction(0)
    for c in reversed(coeffs):
        acc = acc * Fraction(float(x)) + c
    return acc


@pytest.mark.parametrize("extra", [(), ("--weight-decay", "0.1", "--momentum", "0.5")], ids=["plain", "recipe"])
def test_real_run_gaps_equal_the_formula_from_records_and_derive(tmp_path, extra):
    from polyloss.derive import derive, parse_fraction
    from polyloss.recipe import Recipe

    out = tmp_path / "run"
    args = ["sample", "--depth", "2", "--steps", "2", "--d", "4", "--m", "12", "--samples", "3", "--quiet",
            "--widths", "16,32,64", "--out", str(out), *extra]
    assert main(args) == 0
    cmp_ = compare(out)
    run = load_run(out)
    cfg = run.config
    recipe = Recipe.from_dict(cfg.get("recipe"))
    doc = derive(cfg["depth"], cfg["steps"], data=run_dataset(run), window=float(cfg["window"]),
                 recipe=None if recipe == Recipe() else recipe).to_json()
    coeffs = [parse_fraction(c) for c in doc["loss_coefficients"]]
    assert not doc["window"]["at_boundary"]
    eta_inf = float(doc["window"]["eta_min"])
    loss_inf = _horner_q(coeffs, eta_inf)
    g = cmp_.gaps["window"]
    assert g.eta_inf == eta_inf
    for rec in run.records:
        row = g.per_width[rec["width"]]
        i = list(row["sample"]).index(rec["sample"])
        a = abs(float(Fraction(rec["loss_at_eta_opt"]) - loss_inf))
        b = abs(rec["eta_opt"] - eta_inf)
        c = float(_horner_q(coeffs, rec["eta_opt"]) - loss_inf)
        assert (row["a"][i], row["b"][i], row["c"][i], row["c/a"][i]) == (a, b, c, c / a)
        assert c >= -1e-12 * abs(float(loss_inf))  # η_∞ is the window minimiser
    for s in g.summary:
        v = g.per_width[s["width"]]["c"]
        assert s["c"]["mean"] == pytest.approx(v.mean(), rel=1e-14) and s["c"]["median"] == pytest.approx(np.median(v), rel=1e-14)
    doc = cmp_.to_json()
    assert doc["schema"] == "polyloss.compare/2"
    assert set(doc["gaps"]) >= {"rule", "definitions", "window", "first_local"}
    assert doc["gaps"]["window"]["verdict"]["overall"] in ("fast", "not fast", "inconclusive", "cannot tell")


def test_zero_loss_gap_has_no_ratio_and_the_json_is_strict():
    recs = _planted_records(-0.5, -0.5, seeds=3)
    recs[0] = dict(recs[0], loss_at_eta_opt=0.0)  # 𝓛_n(η_n) = 𝓛_∞(η_∞) = 0: a = 0, c/a undefined
    g = transfer_gaps(recs, LIMIT, n_resamples=100)
    row = g.per_width[recs[0]["width"]]
    assert row["a"][0] == 0.0 and math.isnan(row["c/a"][0])
    s = g.summary[0]
    assert s["count"] == 3 and s["c/a"]["count"] == 2 and s["a"]["count"] == 3
    doc = json.loads(json.dumps(g.to_dict(), allow_nan=False))
    assert doc["records"][str(recs[0]["width"])]["c/a"][0] is None


def test_mean_rates_are_analysis_fit_scaling():
    """The vectorised bootstrap of the gaps' mean rates returns analysis.fit_scaling's numbers."""
    from polyloss.analysis import fit_scaling

    g = transfer_gaps(_planted_records(-0.5, -0.5, seeds=20, seed=3), LIMIT, n_resamples=500, seed=7)
    for q in ("a", "b", "c"):
        ref = fit_scaling({n: row[q] for n, row in g.per_width.items()}, n_resamples=500, seed=7)
        mine = g.fits["mean"][q]
        for field in ("slope", "ci_low", "ci_high", "intercept"):
            assert getattr(mine, field) == pytest.approx(getattr(ref, field), rel=1e-12, abs=1e-12), (q, field)
        assert mine.widths == ref.widths and mine.rms == pytest.approx(ref.rms, rel=1e-12)


def test_ratio_of_means_per_width_is_the_fitted_statistic():
    g = transfer_gaps(_planted_records(-0.5, -0.5, seeds=10, seed=4), LIMIT, n_resamples=100)
    for s in g.summary:
        row = g.per_width[s["width"]]
        assert s["c/a"]["ratio_of_means"] == pytest.approx(row["c"].mean() / row["a"].mean(), rel=1e-14)
    assert list(g.fits["mean"]["c/a"].rms) == pytest.approx([s["c/a"]["ratio_of_means"] for s in g.summary], rel=1e-14)
