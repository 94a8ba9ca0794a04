"""The minimiser on oracles with known minima, and η_n against a brute-force GD scan."""

import numpy as np
import pytest

from polyloss.errors import NumericalError, SpecError
from polyloss.gd import gd_losses
from polyloss.minimize import minimise, search_grid
from polyloss.poly import default_window, exact_polynomial
from tests.conftest import make_net


def poly_oracle(coeffs):
    P = np.polynomial.Polynomial(coeffs)
    d1, d2 = P.deriv(1), P.deriv(2)
    return lambda e: np.stack([P(e), d1(e), d2(e) / 2], axis=1)


def test_two_basins_both_found_and_global_chosen():
    # L'(η) ∝ (η-1)(η-2)(η-4): minima at 1 and 4, maximum at 2
    d = np.polynomial.Polynomial.fromroots([1, 2, 4])
    P = d.integ() + 3.0
    res = minimise(poly_oracle(P.coef), 5.0)
    etas = sorted(lm.eta for lm in res.local_minima)
    np.testing.assert_allclose(etas, [1, 4], rtol=1e-12)
    assert res.eta_opt == pytest.approx(4 if P(4) < P(1) else 1, rel=1e-12)
    assert not res.at_edge


def test_minimum_beyond_window_is_flagged_at_edge():
    res = minimise(poly_oracle([1.0, -2.0, 0.5]), 1.0)  # vertex at η = 2
    assert res.at_edge and res.eta_opt == 1.0


def test_small_minimiser_resolved_by_log_grid():
    res = minimise(poly_oracle([1.0, -2e-4, 1.0]), 1.0)  # vertex at η = 1e-4
    assert res.eta_opt == pytest.approx(1e-4, rel=1e-10)


def test_divergence_inside_window_is_an_error_without_shrink():
    def oracle(e):
        with np.errstate(over="ignore"):
            return np.stack([np.exp(1e4 * e)] * 3, axis=1)

    with pytest.raises(NumericalError, match="window"):
        minimise(oracle, 1.0, shrink=False)


def test_divergence_inside_window_shrinks_it():
    # (eta - 0.3)^2 overflowing beyond eta = 0.7: the window shrinks to just below 0.7
    def oracle(e):
        e = np.asarray(e, dtype=float)
        out = np.stack([(e - 0.3) ** 2, 2 * (e - 0.3), np.ones_like(e)], axis=1)
        out[e > 0.7] = np.inf
        return out

    mn = minimise(oracle, 1.0)
    assert mn.requested_window == 1.0 and mn.window_shrunk
    grid = np.asarray(mn.grid)  # curves stay on the requested window's first-stage grid
    np.testing.assert_array_equal(grid, search_grid(1.0))
    assert np.all(np.isinf(np.asarray(mn.grid_loss)[grid > 0.7])) and np.all(np.isfinite(np.asarray(mn.grid_loss)[grid <= 0.7]))
    assert 0.7 * (1 - 2e-6) < mn.window <= 0.7
    assert abs(mn.eta_opt - 0.3) < 1e-12 and not mn.at_edge


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_window(bad):
    with pytest.raises(SpecError, match="`window`"):
        minimise(poly_oracle([1.0, -1.0, 1.0]), bad)


@pytest.mark.parametrize("depth,steps", [(1, 1), (3, 1), (2, 2), (3, 3)])
def test_eta_opt_is_a_minimum_of_actual_gd(small_data, depth, steps):
    w, p = make_net(depth, 24, small_data, seed=depth + steps)
    res = exact_polynomial(w, small_data, p, steps)
    eta = res.minimisation.eta_opt
    assert 0 < eta <= res.minimisation.window
    h = 1e-4 * eta
    lm, l0, lp = gd_losses(w, small_data, p, [eta - h, eta, eta + h], steps)
    assert l0 == pytest.approx(res.minimisation.loss_opt, rel=1e-10)
    if not res.minimisation.at_edge:
        assert l0 <= lm and l0 <= lp
    # no grid point of plain GD in the window does better
    grid = np.linspace(0, res.minimisation.window, 201)[1:]
    assert gd_losses(w, small_data, p, grid, steps).min() >= l0 - 1e-12 * abs(l0)


def test_default_window_is_four_times_t1_limit(small_data):
    mu = small_data.moments(3)
    assert default_window(small_data, 3) == pytest.approx(4 * mu[1] / (3 * mu[2]), rel=1e-14)


def test_window_needs_nonzero_ky():
    from polyloss.data import Dataset
    from polyloss.errors import DataError

    ds = Dataset(np.zeros((4, 2)), np.ones(4))
    with pytest.raises(DataError, match="K y = 0"):
        default_window(ds, 2)


def test_basin_narrower_than_the_grid_spacing_is_found():
    # L'(η) = −(η−1)(η−5.1)(η−5.35)(η−9): minima at 1 and 5.35, maxima at 5.1 and 9; with 12 grid
    # points on (0, 8] the linear spacing is 1, four times the width of the basin at 5.35
    roots = [1.0, 5.1, 5.35, 9.0]
    d = np.polynomial.Polynomial.fromroots(roots) * -1.0
    P = d.integ()
    P = P - P(20.0)
    coeffs = P.coef
    res = minimise(poly_oracle(coeffs), 8.0, n_grid=12)
    etas = sorted(round(lm.eta, 9) for lm in res.local_minima)
    # minima of P: where P' = d changes sign from - to +: η = 1 (d: + → -)? check against the exact roots
    exact = sorted(r for r in roots if d.deriv()(r) > 0 and r <= 8.0)
    assert exact == [1.0, 5.35]
    assert etas == pytest.approx(exact, rel=1e-10), (etas, exact)
