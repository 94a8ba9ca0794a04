"""The finite-width engine with a trained input layer W_0 and/or readout V (docs/theory.md §7, issue 11),
under every recipe knob and per-layer rates, against the independent dense reference trainer
(polyloss.gd_recipe) in float64 and exactly over Q[η], and against closed forms derived by hand."""

from fractions import Fraction as F

import numpy as np
import pytest

from polyloss.data import Dataset, linear_teacher
from polyloss.engine import LossEngine
from polyloss.gd_recipe import gradients, recipe_losses, train
from polyloss.recipe import Recipe, recipe_loss_degree
from polyloss.spec import Parametrization
from polyloss.weights import Weights
from tests.conftest import make_net
from tests.test_recipe import ETA

EPS = np.finfo(float).eps

#: Every subset of {input, hidden, readout} that contains a new layer.
SUBSETS = ["input", "readout", "input,readout", "input,hidden", "hidden,readout", "input,hidden,readout"]

KNOBS = {
    "plain": {},
    "l2": dict(weight_decay="0.1"),
    "decoupled": dict(weight_decay="0.1", wd_mode="decoupled"),
    "independent": dict(weight_decay="0.05", wd_mode="independent"),
    "momentum": dict(momentum="0.9"),
    "nesterov": dict(momentum="0.9", nesterov=True),
    "warmup": dict(schedule="warmup:3"),
    "all": dict(schedule="warmup:2", weight_decay="0.1", wd_mode="l2", momentum="0.9", nesterov=True),
    "all-decoupled": dict(schedule="cosine", weight_decay="0.05", wd_mode="decoupled", momentum="0.5"),
}


def _recipe(trained, knob):
    return Recipe(trained=trained, **KNOBS[knob])


def _etas(param, width):
    base = np.array([0.05, 0.3, 0.8])
    return base / width if param == "sp" else base


@pytest.mark.parametrize("knob", list(KNOBS))
@pytest.mark.parametrize("trained", SUBSETS)
def test_stable_values_equal_the_reference_trainer(small_data, trained, knob):
    """taylor(order=0) = the dense reference at several η, L, t ∈ {1, 2, 3}, μP and SP rates."""
    recipe = _recipe(trained, knob)
    for param in ("mup", "sp"):
        for depth in (1, 2, 3):
            w, p = make_net(depth, 12, small_data, param, seed=depth)
            eng = LossEngine(w, small_data, p, recipe=recipe)
            etas = _etas(param, 12)
            for steps in (1, 2, 3):
                got = eng.taylor(etas, steps, order=0)[:, 0]
                ref = recipe_losses(w, small_data, p, recipe, etas, steps)
                np.testing.assert_allclose(got, ref, rtol=1e-11, atol=0, err_msg=f"{param} L={depth} t={steps}")


@pytest.mark.parametrize("trained", SUBSETS)
def test_ntp_rates_and_explicit_exponents(small_data, trained):
    """Other per-layer rates: the ntp preset (λ_in = 1, λ = λ_V = 1/n) and an explicit triple."""
    for rec, param in ((_recipe(trained, "all"), "ntp"), (Recipe(trained=trained, lr_exponents="-1,1,2", momentum="0.5"), "mup")):
        w, p = make_net(2, 10, small_data, param, seed=3)
        etas = np.array([0.1, 0.9, 2.5])
        got = LossEngine(w, small_data, p, recipe=rec).loss_at(etas, 3)
        np.testing.assert_allclose(got, recipe_losses(w, small_data, p, rec, etas, 3), rtol=1e-11, atol=0)


@pytest.mark.parametrize("knob", ["plain", "all", "all-decoupled", "independent"])
@pytest.mark.parametrize("trained", SUBSETS)
def test_degrees_and_monomials_within_their_condition_bound(small_data, trained, knob):
    recipe = _recipe(trained, knob)
    for depth, steps in ((1, 3), (2, 2), (3, 1)):
        w, p = make_net(depth, 12, small_data, "mup", seed=5)
        poly = LossEngine(w, small_data, p, recipe=recipe).polynomial(steps)
        deg = recipe_loss_degree(depth, steps, recipe)
        assert len(poly.loss) == deg + 1 and poly.full_degree == deg and not poly.truncated
        assert [len(x) - 1 for x in poly.loss_by_step] == [recipe_loss_degree(depth, s, recipe) for s in range(steps + 1)]
        assert [f.shape[1] - 1 for f in poly.f_by_step] == [recipe_loss_degree(depth, s, recipe) // 2 for s in range(steps + 1)]
        for eta in (0.05, 0.3):
            powers = eta ** np.arange(len(poly.loss))
            bound = 64 * len(poly.loss) * EPS * (np.abs(poly.loss) @ powers)
            ref = recipe_losses(w, small_data, p, recipe, [eta], steps)[0]
            assert abs(poly.loss @ powers - ref) <= bound + 1e-13 * abs(ref), (depth, steps, eta)


@pytest.mark.parametrize("trained,knob", [(s, "plain") for s in SUBSETS]
                         + [("input,hidden,readout", k) for k in KNOBS if k != "plain"]
                         + [("readout", "all"), ("input", "all-decoupled"), ("input,readout", "l2")])
@pytest.mark.parametrize("param", ["mup", "ntp"])
def test_certified_coefficients_contain_the_exact_polynomial_over_Q(trained, knob, param):
    """The reference trainer over Q[η] (float64 weights and data taken exactly, λ_in, λ, λ_V and the
    recipe's numbers exact) gives the exact loss polynomial for L, t ≤ 2; every certified interval
    contains its coefficient, the bounds are tight, and the exact degree is recipe_loss_degree."""
    data = linear_teacher(d=2, m=3, noise=0.1, seed=5)
    n = 3
    recipe = _recipe(trained, knob)
    for depth, steps in ((1, 1), (1, 2), (2, 1), (2, 2)):
        if steps == 2 and depth == 2 and knob != "plain" and "hidden" in trained:
            continue  # degree 64 over Q[η] with every knob: covered by the plain case and by float tests
        w, p = make_net(depth, n, data, param, seed=depth + 7 * steps)
        eng = LossEngine(w, data, p, recipe=recipe)
        cert = eng.polynomial(steps, certify=True)
        np.testing.assert_array_equal(cert.loss, eng.polynomial(steps).loss)  # certifying changes no value
        lam = recipe.lr_multipliers(n, p, exact=True)
        exact = train(w.W0, list(w.hidden), w.V, data.X, data.y, recipe, ETA, steps, lr=lam, dtype=object)[-1]
        deg = recipe_loss_degree(depth, steps, recipe)
        assert exact.degree == deg and len(cert.loss) == deg + 1
        for k in range(deg + 1):
            ck = exact.coeff(k)
            assert abs(F(float(cert.loss[k])) - ck) <= F(float(cert.loss_error[k])), (depth, steps, k)
        assert cert.accurate_terms(1e-9) == deg + 1


@pytest.mark.parametrize("trained,knob", [("input,hidden,readout", "all"), ("readout", "nesterov"),
                                          ("input", "decoupled"), ("hidden,readout", "all-decoupled")])
def test_taylor_derivatives_match_finite_differences_of_the_reference(small_data, trained, knob):
    w, p = make_net(2, 14, small_data, seed=9)
    recipe = _recipe(trained, knob)
    eta, h = 0.3, 1e-3
    T = LossEngine(w, small_data, p, recipe=recipe).taylor([eta, 0.2], 3, order=2)[0]
    f2m, fm, f0, fp, f2p = recipe_losses(w, small_data, p, recipe, eta + h * np.arange(-2, 3), 3)
    assert T[0] == pytest.approx(f0, rel=1e-12)
    # five-point stencils, truncation O(h⁴)
    assert T[1] == pytest.approx((f2m - 8 * fm + 8 * fp - f2p) / (12 * h), rel=1e-7)
    assert 2 * T[2] == pytest.approx((-f2m + 16 * fm - 30 * f0 + 16 * fp - f2p) / (12 * h**2), rel=1e-5)


def test_taylor_agrees_with_the_monomial_coefficients(small_data):
    w, p = make_net(2, 10, small_data, seed=1)
    eng = LossEngine(w, small_data, p, recipe=_recipe("input,hidden,readout", "all"))
    c = eng.polynomial(2).loss
    eta = 0.1
    P = np.polynomial.Polynomial(c)
    want = [P(eta), P.deriv(1)(eta), P.deriv(2)(eta) / 2, P.deriv(3)(eta) / 6]
    np.testing.assert_allclose(eng.taylor([eta], 2, order=3)[0], want, rtol=1e-10)


@pytest.mark.parametrize("trained", SUBSETS)
def test_slope_identity_with_per_layer_rates(small_data, trained):
    """c_1 = −t Σ_ℓ λ_ℓ ‖∂𝓛/∂W_ℓ‖² over the trained layers (L = 3, t = 3, beyond the exact test)."""
    w, p = make_net(3, 11, small_data, "mup", seed=8)
    recipe = Recipe(trained=trained)
    lam = recipe.lr_multipliers(11, p)
    _, G = gradients(w.W0, list(w.hidden), w.V, small_data.X, small_data.y)
    norms = {"input": np.sum(G["input"] ** 2), "readout": np.sum(G["readout"] ** 2),
             "hidden": sum(np.sum(g**2) for g in G["hidden"])}
    want = -3 * sum(lam[k] * norms[k] for k in recipe.trained)
    c1 = LossEngine(w, small_data, p, recipe=recipe).polynomial(3, degree=1).loss[1]
    assert c1 == pytest.approx(want, rel=1e-11)


def test_truncated_equals_complete_low_coefficients(small_data):
    w, p = make_net(2, 10, small_data, seed=6)
    eng = LossEngine(w, small_data, p, recipe=_recipe("input,hidden,readout", "all"))
    full = eng.polynomial(2)
    for K in (0, 1, 5):
        tr = eng.polynomial(2, degree=K, certify=True)
        assert tr.truncated and len(tr.loss) == K + 1 and len(tr.loss_error) == K + 1
        np.testing.assert_allclose(tr.loss, full.loss[: K + 1], rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------ L = 1 closed forms
def _tiny():
    """n = 2, d = 2, m = 2 with dyadic entries (exact in float64); μP rates at n = 2:
    λ_in = 2, λ = 1, λ_V = 1/2 (powers of two, exact)."""
    W0 = np.array([[1.0, -0.5], [0.25, 2.0]])
    W1 = np.array([[0.5, 1.0], [-1.0, 0.75]])
    V = np.array([0.5, -0.25])
    X = np.array([[1.0, 2.0], [-0.5, 1.0]])
    y = np.array([1.0, -2.0])
    return Weights(W0, (W1,), V), Dataset(X, y), Parametrization.preset("mup")


def _q(a):
    return [[F(v) for v in row] for row in a] if np.ndim(a) == 2 else [F(v) for v in a]


def _mv(M, v):
    return [sum(a * b for a, b in zip(row, v)) for row in M]


def _dot(a, b):
    return sum(x * z for x, z in zip(a, b))


def _loss_coeffs(r, d1, d2, m):
    """𝓛^{(1)} = (1/2m) Σ_j (r_j + η d1_j + η² d2_j)², ascending coefficients."""
    return [_dot(r, r) / (2 * m), _dot(r, d1) / m, (_dot(d1, d1) + 2 * _dot(r, d2)) / (2 * m),
            _dot(d1, d2) / m, _dot(d2, d2) / (2 * m)]


@pytest.mark.parametrize("trained", ["readout", "hidden,readout", "input", "input,readout"])
def test_one_step_closed_form_at_depth_one(trained):
    """Derived by hand for f(x) = Vᵀ W_1 W_0 x, one GD step at rates λ_in, λ, λ_V, with h_0 = W_0 x,
    h_1 = W_1 h_0, r = f − y, g_V = (1/m) Σ_i r_i h_1(x_i), u = (1/m) Σ_i r_i h_0(x_i), ξ = (1/m) Σ_i r_i x_i,
    b_0 = W_1ᵀ V:
      V' = V − ηλ_V g_V,  W_1' = W_1 − ηλ V uᵀ,  W_0' = W_0 − ηλ_in b_0 ξᵀ,
      f'(x) = V'ᵀ W_1' W_0' x.
    Expanding (only products of the trained corrections survive):
      readout:        f' = f − ηλ_V ⟨g_V, h_1(x)⟩
      hidden+readout: f' = f − ηλ ‖V‖²⟨u, h_0⟩ − ηλ_V ⟨g_V, h_1⟩ + η²λλ_V ⟨g_V, V⟩⟨u, h_0⟩
      input:          f' = f − ηλ_in ‖b_0‖² ⟨ξ, x⟩
      input+readout:  f' = f − ηλ_in ‖b_0‖²⟨ξ, x⟩ − ηλ_V ⟨g_V, h_1⟩ + η²λ_inλ_V ⟨g_V, W_1 b_0⟩⟨ξ, x⟩
    and 𝓛^{(1)}(η) = (1/2m) Σ_j (r_j + η δ1_j + η² δ2_j)², a quartic (a quadratic for one layer)."""
    w, data, p = _tiny()
    W0, W1, V, X, y = _q(w.W0), _q(w.hidden[0]), _q(w.V), _q(data.X), _q(data.y)
    m = len(y)
    lam_in, lam, lam_v = F(2), F(1), F(1, 2)
    h0 = [_mv(W0, x) for x in X]
    h1 = [_mv(W1, h) for h in h0]
    r = [_dot(V, h) - yi for h, yi in zip(h1, y)]
    gV = [sum(r[i] * h1[i][k] for i in range(m)) / m for k in range(2)]
    u = [sum(r[i] * h0[i][k] for i in range(m)) / m for k in range(2)]
    xi = [sum(r[i] * X[i][k] for i in range(m)) / m for k in range(2)]
    b0 = _mv([list(col) for col in zip(*W1)], V)
    W1b0 = _mv(W1, b0)
    d1, d2 = [F(0)] * m, [F(0)] * m
    for j in range(m):
        if "readout" in trained:
            d1[j] -= lam_v * _dot(gV, h1[j])
        if "hidden" in trained:
            d1[j] -= lam * _dot(V, V) * _dot(u, h0[j])
        if "input" in trained:
            d1[j] -= lam_in * _dot(b0, b0) * _dot(xi, X[j])
        if trained == "hidden,readout":
            d2[j] += lam * lam_v * _dot(gV, V) * _dot(u, h0[j])
        if trained == "input,readout":
            d2[j] += lam_in * lam_v * _dot(gV, W1b0) * _dot(xi, X[j])
    want = _loss_coeffs(r, d1, d2, m)
    rec = Recipe(trained=trained)
    deg = recipe_loss_degree(1, 1, rec)
    assert deg == (4 if "," in trained else 2) and all(c == 0 for c in want[deg + 1 :])
    assert rec.lr_multipliers(2, p, exact=True) == {k: {"input": lam_in, "hidden": lam, "readout": lam_v}[k]
                                                   for k in rec.trained}
    eng = LossEngine(w, data, p, recipe=rec)
    got = eng.polynomial(1, certify=True)
    assert len(got.loss) == deg + 1
    for k in range(deg + 1):
        assert abs(F(float(got.loss[k])) - want[k]) <= F(float(got.loss_error[k])), k
        assert float(got.loss[k]) == pytest.approx(float(want[k]), rel=1e-14, abs=1e-15)
    for eta in (F(1, 4), F(3, 2)):
        value = sum(c * eta**k for k, c in enumerate(want))
        assert eng.loss_at([float(eta)], 1)[0] == pytest.approx(float(value), rel=1e-14)


# ------------------------------------------------------------------------------ lazy layers
@pytest.mark.parametrize("trained", ["input,hidden,readout", "readout", "input"])
def test_lazy_layers_with_trained_input_and_readout_equal_the_materialised_network(small_data, trained):
    """The engine reaches hidden layers only through forward/backward, so a lazy network (ambient
    coordinates: W_0, V dense) is one fixed matrix; the materialised matrices give the same loss."""
    from polyloss.lazy import sample_lazy_weights
    from polyloss.spec import NetworkSpec

    n, L, steps = 24, 2, 3
    p = Parametrization.preset("mup")
    rec = _recipe(trained, "all")
    w = sample_lazy_weights(NetworkSpec(L, n, small_data.d), p, np.random.SeedSequence(6), coords="ambient")
    eng = LossEngine(w, small_data, p, recipe=rec)
    etas = np.array([0.05, 0.4, 1.1])
    tay = eng.taylor(etas, steps, order=1)
    poly = eng.polynomial(steps)
    assert eng.polynomial(steps, certify=True).loss_error is None
    dense = Weights(w.W0, tuple(op.forward(np.eye(n)).T for op in w.operators()), w.V)
    ref = LossEngine(dense, small_data, p, recipe=rec)
    np.testing.assert_allclose(tay, ref.taylor(etas, steps, order=1), rtol=1e-10)
    np.testing.assert_allclose(tay[:, 0], recipe_losses(dense, small_data, p, rec, etas, steps), rtol=1e-10)
    np.testing.assert_allclose(poly.loss, ref.polynomial(steps).loss, rtol=1e-9, atol=1e-13 * np.abs(poly.loss).max())


def test_lazy_reduced_coordinates_match_dense_in_distribution(small_data):
    """Reduced coordinates (W_0, V as Bartlett/χ factors in a frame): the mean loss after 2 steps with
    every layer trained agrees with dense draws within 5 standard errors (n = 16, 150 draws each)."""
    from polyloss.lazy import sample_lazy_weights
    from polyloss.spec import NetworkSpec
    from polyloss.weights import sample_weights

    n, L, steps, N = 16, 2, 2, 150
    p = Parametrization.preset("mup")
    rec = _recipe("input,hidden,readout", "all")
    net = NetworkSpec(L, n, small_data.d)
    eta = [0.5]
    lazy = [LossEngine(sample_lazy_weights(net, p, np.random.SeedSequence([1, s]), coords="reduced"), small_data, p,
                       recipe=rec).loss_at(eta, steps)[0] for s in range(N)]
    dense = [LossEngine(sample_weights(net, p, np.random.SeedSequence([2, s])), small_data, p,
                        recipe=rec).loss_at(eta, steps)[0] for s in range(N)]
    a, b = np.array(lazy), np.array(dense)
    se = np.sqrt(a.var(ddof=1) / N + b.var(ddof=1) / N)
    assert abs(a.mean() - b.mean()) <= 5 * se, (a.mean(), b.mean(), se)


# ------------------------------------------------------------------------------ identities
def test_generalised_recursion_with_hidden_only_equals_the_hidden_path(small_data):
    """The input/readout recursion (_run_io), forced with the hidden layers alone, reproduces the
    hidden-only recipe path (which itself keeps today's bits for plain recipes)."""
    from polyloss.engine import _FloatOps, _recipe_coefficients

    w, p = make_net(3, 10, small_data, "mup", seed=2)
    rec = _recipe("hidden", "all")
    eng = LossEngine(w, small_data, p, recipe=rec)
    want = eng.polynomial(3, degree=12).loss
    A_ = _FloatOps(eng, 12, None)
    losses, _ = eng._run_io(3, A_, True, {"hidden": _recipe_coefficients(rec, 3, A_, eng.lam)})
    np.testing.assert_allclose(losses[-1][:, 0], want, rtol=1e-10, atol=1e-13 * np.abs(want).max())
