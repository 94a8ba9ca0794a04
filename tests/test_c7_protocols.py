"""C7 protocols (issue 12 part 4): each one on synthetic per-seed data with a planted rate change and
without one; the pre-registered rule must see the planted change and stay quiet on the clean n^-1/2 case."""

import numpy as np
import pytest

from polyloss.analysis import (PAPER_PER_DECADE, grid_argmin, log_grid, monomial_curves, protocol_bias,
                               protocol_exact, protocol_grid, protocol_mean_curve, protocol_widest, rate_change,
                               rate_change_rule)
from polyloss.errors import SpecError

WIDTHS = [2**k for k in range(6, 16)]  # 64 .. 32768: five widths on each side of 1024
ETA_INF = 2.2


def _scale(n, planted):
    """Spread of η_n: n^-1/2, or (planted) n^-1/2 up to 1024 and n^-1 beyond (continuous at 1024)."""
    return n**-0.5 if (not planted or n <= 1024) else 1024**-0.5 * (n / 1024) ** -1.0


def _etas(planted, seeds=64, bias=0.0, seed=1):
    rng = np.random.default_rng(seed)
    return {n: ETA_INF + bias * _scale(n, planted) + _scale(n, planted) * rng.standard_normal(seeds) for n in WIDTHS}


def _curves(eta_groups, etas):
    """Per-seed quadratic loss curves with their minimum at the seed's η: (seeds, G)."""
    return {n: (etas[None, :] - v[:, None]) ** 2 for n, v in eta_groups.items()}


@pytest.mark.parametrize("planted", [True, False])
def test_p0_rms_sees_a_planted_change_only(planted):
    r = rate_change(protocol_exact(_etas(planted), ETA_INF), n_resamples=400, seed=0)
    if planted:
        assert r.verdict == "faster after" and r.reproduces, r
        assert abs(r.after["slope"] + 1.0) < 0.15 and abs(r.before["slope"] + 0.5) < 0.15
    else:
        assert r.verdict == "no change" and not r.reproduces, r
        assert abs(r.after["slope"] + 0.5) < 0.15 and abs(r.before["slope"] + 0.5) < 0.15
    assert r.before["widths"][-1] == 1024 == r.after["widths"][0]


@pytest.mark.parametrize("planted", [True, False])
def test_p4_bias_sees_a_planted_change_only(planted):
    # a bias of 5 spreads: the mean's own noise (1/8 of a spread with 64 seeds) stays below it
    r = rate_change(protocol_bias(_etas(planted, bias=5.0), ETA_INF), n_resamples=400, seed=0)
    assert r.verdict == ("faster after" if planted else "no change"), r


@pytest.mark.parametrize("planted", [True, False])
def test_p3_against_the_widest_width(planted):
    """The limit is known (ETA_INF); the widest width (2^18, tiny spread) stands in for it."""
    g = _etas(planted)
    g[2**18] = ETA_INF + 1e-6 * np.random.default_rng(5).standard_normal(64)
    p = protocol_widest(g)
    assert 2**18 not in p.fit_widths and max(p.fit_widths) == WIDTHS[-1]
    exact = protocol_exact(g, ETA_INF).values()
    assert all(abs(p.values()[n] - exact[n]) < 1e-4 * exact[n] + 1e-6 for n in p.fit_widths)
    r = rate_change(p, n_resamples=400, seed=0)
    assert 2**18 not in r.widths
    assert r.verdict == ("faster after" if planted else "no change"), r


def test_p3_with_a_noisy_reference_flattens_instead():
    """With the widest width only 2x wider than the rest, its own noise floors the distance: never 'faster'."""
    g = _etas(False)
    g[2 * WIDTHS[-1]] = ETA_INF + 0.3 * np.random.default_rng(7).standard_normal(64)  # a badly off reference
    r = rate_change(protocol_widest(g), n_resamples=400, seed=0)
    assert r.verdict != "faster after"


def test_p1_saturates_at_the_grid_spacing():
    grid = log_grid(0.1, 10.0, PAPER_PER_DECADE)
    assert np.allclose(np.diff(np.log10(grid)), 1 / PAPER_PER_DECADE) and np.isclose(grid[0], 0.1)
    nearest = grid[np.argmin(np.abs(grid - ETA_INF))]
    floor = abs(nearest - ETA_INF)
    assert 0 < floor <= nearest * (10 ** (1 / PAPER_PER_DECADE) - 1)
    g = _etas(False, seed=3)
    p = protocol_grid(_curves(g, grid), grid, ETA_INF)
    vals = p.values()
    assert set(np.unique(np.concatenate([p.groups[n] for n in WIDTHS]))) <= set(grid)
    assert np.isclose(vals[WIDTHS[-1]], floor) and np.isclose(vals[WIDTHS[-2]], floor)  # every seed on the same point
    r = rate_change(p, n_resamples=400, seed=0)
    assert abs(r.after["slope"]) < 0.05 and r.verdict != "faster after"
    # on a grid much finer than the spread, P1 is P0 again
    fine = np.linspace(1.6, 2.8, 6001)
    r_fine = rate_change(protocol_grid(_curves(g, fine), fine, ETA_INF), n_resamples=400, seed=0)
    r_exact = rate_change(protocol_exact(g, ETA_INF), n_resamples=400, seed=0)
    assert abs(r_fine.before["slope"] - r_exact.before["slope"]) < 0.02 and r_fine.verdict == r_exact.verdict == "no change"


@pytest.mark.parametrize("planted", [True, False])
def test_p2_mean_curve_sees_a_planted_bias_change_only(planted):
    """Quadratic curves average to a quadratic at the seed-mean η: on a fine grid P2 is P4."""
    fine = np.linspace(1.9, 3.1, 6001)
    g = _etas(planted, bias=5.0)
    p2 = protocol_mean_curve(_curves(g, fine), fine, ETA_INF)
    p4 = protocol_bias(g, ETA_INF)
    for n in WIDTHS[:6]:
        assert abs(p2.values()[n] - p4.values()[n]) <= 2e-4
    r = rate_change(p2, n_resamples=200, seed=0)
    assert r.verdict == ("faster after" if planted else "no change"), r


def test_rule_and_missing_segment():
    assert rate_change_rule((-0.9, -0.2), (-0.7, -0.4)) == ("faster after", True)
    assert rate_change_rule((-0.9, -0.2), (-1.5, -0.8)) == ("faster after", False)
    assert rate_change_rule((0.1, 0.4), (-0.7, -0.4)) == ("slower after", False)
    assert rate_change_rule((-0.1, 0.4), (-0.7, -0.4)) == ("no change", False)
    g = {n: v for n, v in _etas(False).items() if n <= 1024}
    r = rate_change(protocol_exact(g, ETA_INF), n_resamples=50)
    assert r.verdict == "cannot tell" and len(r.after["widths"]) == 1


def test_monomial_curves_refuse_what_they_cannot_certify():
    c = np.array([[1.0, -2.0, 1.0]])  # (1 − η)^2
    assert np.allclose(monomial_curves(c, [0.0, 0.5, 2.0]), [[1.0, 0.25, 1.0]])
    assert np.allclose(grid_argmin(monomial_curves(c, [0.5, 0.9, 1.3]), [0.5, 0.9, 1.3]), [0.9])
    with pytest.raises(SpecError, match="not certified"):
        monomial_curves(c, [1.0])  # the value 0 cancels exactly: no relative bound can hold
