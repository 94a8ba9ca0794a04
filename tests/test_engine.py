"""The engine against independent routes: plain GD, gradients by dense backprop, exact identities."""

import numpy as np
import pytest

from polyloss.engine import LossEngine, loss_degree, f_degree
from polyloss.gd import gd_losses, gd_train
from polyloss.spec import Parametrization
from tests.conftest import make_net

EPS = np.finfo(float).eps


def _etas(param, width):
    base = np.array([0.05, 0.3, 0.8, 1.5])
    return {"mup": base, "sp": base / width, "ntp": base}[param]


@pytest.mark.parametrize("param", ["mup", "sp", "ntp"])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_stable_values_equal_plain_gd(small_data, param, depth, steps):
    w, p = make_net(depth, 16, small_data, param, seed=depth * 10 + steps)
    etas = _etas(param, 16)
    eng = LossEngine(w, small_data, p)
    ref = gd_losses(w, small_data, p, etas, steps)
    got = eng.loss_at(etas, steps)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=0)


@pytest.mark.parametrize("param", ["mup", "sp", "ntp"])
@pytest.mark.parametrize("depth,steps", [(1, 1), (2, 1), (3, 1), (1, 3), (2, 2), (3, 2)])
def test_monomial_coefficients_equal_gd_within_their_condition_bound(small_data, param, depth, steps):
    """Σ c_k η^k equals GD up to the rounding bound eps·Σ|c_k η^k| scaled by the degree."""
    w, p = make_net(depth, 12, small_data, param, seed=3)
    poly = LossEngine(w, small_data, p).polynomial(steps)
    assert len(poly.loss) == loss_degree(depth, steps) + 1 and not poly.truncated
    for eta in _etas(param, 12):
        powers = eta ** np.arange(len(poly.loss))
        value = poly.loss @ powers
        bound = 64 * len(poly.loss) * EPS * (np.abs(poly.loss) @ powers)
        ref = gd_train(w, small_data, p, eta, steps)[-1]
        assert abs(value - ref) <= bound + 1e-13 * abs(ref), (eta, value, ref, bound)


def test_every_step_is_reported(small_data):
    w, p = make_net(2, 10, small_data, seed=5)
    poly = LossEngine(w, small_data, p).polynomial(3)
    eta = 0.4
    ref = gd_train(w, small_data, p, eta, 3)
    vals = [np.polynomial.polynomial.polyval(eta, c) for c in poly.loss_by_step]
    np.testing.assert_allclose(vals, ref, rtol=1e-9)
    assert [len(f[0]) - 1 for f in poly.f_by_step] == [f_degree(2, s) for s in range(4)]


def test_f_coefficients_reproduce_loss(small_data):
    w, p = make_net(3, 10, small_data, seed=2)
    poly = LossEngine(w, small_data, p).polynomial(2)
    r = poly.f.copy()
    r[:, 0] -= small_data.y
    sq = sum(np.polynomial.polynomial.polymul(ri, ri) for ri in r) / (2 * small_data.m)
    np.testing.assert_allclose(sq, poly.loss, rtol=1e-10, atol=1e-14 * np.abs(poly.loss).max())


def test_ntp_is_sp_with_rescaled_eta(small_data):
    n = 9
    w, _ = make_net(3, n, small_data, "sp", seed=4)
    sp = LossEngine(w, small_data, Parametrization.preset("sp")).polynomial(2).loss
    ntp = LossEngine(w, small_data, Parametrization.preset("ntp")).polynomial(2).loss
    k = np.arange(len(sp))
    np.testing.assert_allclose(ntp, sp * float(n) ** (-k), rtol=1e-11, atol=1e-300)


def _dense_gradients(w, data):
    """∇_{W_l} L at initialisation by dense backprop (independent of the engine)."""
    X, y, m = data.X, data.y, data.m
    hs = [X @ w.W0.T]
    for W in w.hidden:
        hs.append(hs[-1] @ W.T)
    r = hs[-1] @ w.V - y
    delta = np.outer(r / m, w.V)
    grads = []
    for l in range(len(w.hidden), 0, -1):
        grads.append(delta.T @ hs[l - 1])
        delta = delta @ w.hidden[l - 1]
    return grads


@pytest.mark.parametrize("param", ["mup", "sp", "ntp", "1.5,0.5"])
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_first_coefficient_identity(small_data, param, steps):
    w, p = make_net(3, 11, small_data, param, seed=8)
    c1 = LossEngine(w, small_data, p).polynomial(steps, degree=1).loss[1]
    g2 = sum(float(np.sum(g * g)) for g in _dense_gradients(w, small_data))
    assert c1 == pytest.approx(-steps * p.lr_multiplier(11) * g2, rel=1e-11)


@pytest.mark.parametrize("K", [0, 1, 3, 7])
def test_truncated_equals_complete_low_coefficients(small_data, K):
    w, p = make_net(3, 10, small_data, seed=6)
    eng = LossEngine(w, small_data, p)
    full = eng.polynomial(3)
    tr = eng.polynomial(3, degree=K)
    assert tr.truncated and tr.degree == K and len(tr.loss) == K + 1
    np.testing.assert_allclose(tr.loss, full.loss[: K + 1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tr.f, full.f[:, : K + 1], rtol=1e-12, atol=1e-15)


def test_taylor_derivatives_match_finite_differences_of_gd(small_data):
    w, p = make_net(2, 14, small_data, seed=9)
    eng = LossEngine(w, small_data, p)
    eta, h = 0.7, 1e-4
    T = eng.taylor([eta], 3, order=2)[0]
    fm, f0, fp = gd_losses(w, small_data, p, [eta - h, eta, eta + h], 3)
    assert T[0] == pytest.approx(f0, rel=1e-12)
    assert T[1] == pytest.approx((fp - fm) / (2 * h), rel=1e-6)
    assert 2 * T[2] == pytest.approx((fp - 2 * f0 + fm) / h**2, rel=1e-4)


def test_mismatched_dimensions_rejected(small_data):
    from polyloss.data import linear_teacher
    from polyloss.errors import DataError

    w, p = make_net(2, 8, small_data)
    with pytest.raises(DataError, match="d = 3"):
        LossEngine(w, linear_teacher(d=3, m=4), p)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_steps_rejected(small_data, bad):
    from polyloss.errors import SpecError

    w, p = make_net(1, 4, small_data)
    with pytest.raises(SpecError, match="`steps`"):
        LossEngine(w, small_data, p).polynomial(bad)
