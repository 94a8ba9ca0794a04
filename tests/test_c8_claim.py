"""C8 rebuilt (issue 14 part 2): the first-local-minimum refinement and the decision rules on inputs whose
answer is known. The quick-scale verdict record is checked in tests/test_verify.py (it shares that run)."""

import numpy as np
import pytest

from polyloss.checks import claim_ids

c8 = claim_ids()["C8"]
WIDTHS = (128, 256, 512, 1024, 2048, 4096, 8192)


def test_first_local_min_returns_the_first_of_two_minima():
    etas = np.geomspace(1, 100, 41)
    x = np.log(etas)
    # minima at log eta = 1 (shallower) and 3.5 (deeper): the global argmin is the second one
    losses = np.minimum((x - 1.0) ** 2 + 0.5, (x - 3.5) ** 2 + 0.1)
    first = c8.first_local_min(etas, losses)
    assert first == pytest.approx(np.e, rel=0.02)
    assert c8.refined_argmin(etas, losses) == pytest.approx(np.exp(3.5), rel=0.02)
    # a parabola in log eta is refined exactly, off the grid
    assert c8.first_local_min(etas, (x - 2.01) ** 2) == pytest.approx(np.exp(2.01), rel=1e-9)


def test_first_local_min_at_an_edge_or_next_to_divergence_is_not_located():
    etas = np.geomspace(1, 100, 21)
    x = np.log(etas)
    assert c8.first_local_min(etas, x) is None  # rises from the first point: the minimum is the grid's start
    assert c8.first_local_min(etas, -x) is None  # still falling at the grid's end
    falling = -x.copy()
    falling[12:] = np.inf  # diverged right after the lowest finite point
    assert c8.first_local_min(etas, falling) is None
    # a first minimum at the start even though a deeper one follows: still the edge, None
    assert c8.first_local_min(etas, np.minimum(x + 0.2, (x - 3.0) ** 2)) is None
    assert c8.first_local_min(etas, np.full(21, np.inf)) is None


def test_c2_rule():
    assert c8.c2_rule(-0.8, -0.3) == "pass"
    assert c8.c2_rule(-0.4, 0.1) == "fail"  # not below 0
    assert c8.c2_rule(-0.45, -0.2) == "fail"  # entirely slower than n^-1/2
    # C2's pass and fail conditions are complements: its 'inconclusive' never arises


def _series(mean, sd, seeds=8, seed=1, widths=WIDTHS):
    rng = np.random.default_rng(seed)
    return {n: mean(n) + sd(n) * rng.standard_normal(seeds) for n in widths}


def test_a_converging_series_passes_and_a_drift_to_zero_fails():
    conv = _series(lambda n: 5.0 + 20 * n**-0.5, lambda n: 10 * n**-0.5)
    lf = c8.limit_fit(conv, seed=0, n_resamples=500)
    assert lf["a_ci"][0] > 0 and lf["a_ci"][0] < 5.0 < lf["a_ci"][1]
    assert c8.limit_rule(lf["a_ci"], lf["distance"]["ci"]) == "pass"
    drift = _series(lambda n: 400.0 / n, lambda n: 20.0 / n)  # SP-like: eta* -> 0
    lf = c8.limit_fit(drift, seed=0, n_resamples=500)
    assert lf["a_ci"][1] <= 0 and c8.limit_rule(lf["a_ci"], lf["distance"]["ci"]) == "fail"
    # not approaching the fitted limit at all: seed noise that does not shrink
    flat = _series(lambda n: 5.0 + 0 * n, lambda n: 1.0 + 0 * n)
    lf = c8.limit_fit(flat, seed=0, n_resamples=500)
    assert c8.limit_rule(lf["a_ci"], lf["distance"]["ci"]) in ("fail", "inconclusive")
    assert c8.limit_rule([1.0, 2.0], [-0.3, 0.2]) == "inconclusive"
    assert c8.limit_rule([-0.5, 2.0], [-0.9, -0.6]) == "inconclusive"  # a's CI contains 0


def test_why_the_rule_changed_adam_like_convergence():
    """Issue 14's Adam series (η_n 1.93 … 4.36 → 4.25) on the old full scale's widths 128, 512, 2048: C2's rule
    against the exact limit passes; the old 'flat across widths' rule cannot see the convergence (its slope CI
    misses [−0.15, 0.15]; the drift slows down, so not a fail either)."""
    from polyloss.analysis import fit_rate

    g = _series(lambda n: 4.25 - 26 * n**-0.5, lambda n: 4 * n**-0.5, widths=(128, 512, 2048))
    fit = fit_rate(g, 4.25, seed=0, n_resamples=500)
    assert c8.c2_rule(fit.ci_low, fit.ci_high) == "pass"
    old = c8.old_rule(g, "mup", 0)
    assert old["verdict"] == "inconclusive" and old["ci"][0] > 0.15 and old["deceleration"]["decelerating"]
    sp = c8.old_rule(_series(lambda n: 1.0 / n, lambda n: 0.1 / n), "sp", 0)
    assert sp["verdict"] == "pass" and sp["ci"][1] < -0.9
