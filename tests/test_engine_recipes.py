"""The finite-width engine under hidden-only training recipes (docs/theory.md §7, issue 11), against
the independent dense reference trainer (polyloss.gd_recipe) in float64 and exactly over Q[η]."""

from fractions import Fraction as F

import numpy as np
import pytest

from polyloss.data import linear_teacher
from polyloss.engine import LossEngine
from polyloss.errors import SpecError
from polyloss.gd_recipe import recipe_losses, train
from polyloss.recipe import Recipe, recipe_loss_degree
from polyloss.spec import Parametrization
from polyloss.weights import Weights
from tests.conftest import make_net
from tests.test_recipe import ETA

EPS = np.finfo(float).eps

RECIPES = {
    "l2": Recipe(weight_decay="0.1"),
    "decoupled": Recipe(weight_decay="0.1", wd_mode="decoupled"),
    "independent": Recipe(weight_decay="0.05", wd_mode="independent"),
    "warmup": Recipe(schedule="warmup:3"),
    "list": Recipe(schedule="0.5,1.5,0.7"),
    "cosine": Recipe(schedule="cosine"),
    "momentum": Recipe(momentum="0.9"),
    "nesterov": Recipe(momentum="0.9", nesterov=True),
    "all": Recipe(schedule="warmup:2", weight_decay="0.1", wd_mode="l2", momentum="0.9", nesterov=True),
    "all-decoupled": Recipe(schedule="cosine", weight_decay="0.05", wd_mode="decoupled", momentum="0.5"),
    "all-independent": Recipe(schedule="0.5,1,2", weight_decay="0.05", wd_mode="independent", momentum="0.9"),
    "torch": Recipe(weight_decay="0.1", wd_mode="torch", momentum="0.5"),
}
#: The richest hidden-only recipe (used by the lazy test and the benchmark).
RICH = RECIPES["all"]


def _etas(param, width):
    base = np.array([0.05, 0.3, 0.8])
    return base / width if param == "sp" else base


@pytest.mark.parametrize("name", list(RECIPES))
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_stable_values_equal_the_reference_trainer(small_data, name, depth, steps):
    w, p = make_net(depth, 12, small_data, "mup", seed=depth * 10 + steps)
    recipe = RECIPES[name]
    etas = _etas("mup", 12)
    got = LossEngine(w, small_data, p, recipe=recipe).taylor(etas, steps, order=0)[:, 0]
    ref = recipe_losses(w, small_data, p, recipe, etas, steps)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=0)


@pytest.mark.parametrize("param", ["sp", "ntp"])
@pytest.mark.parametrize("name", ["all", "all-decoupled"])
def test_stable_values_with_a_width_dependent_rate(small_data, param, name):
    """λ = n^-γ ≠ 1 (ntp) and SP's small rates: the decay, buffer and step all carry the right λ."""
    w, p = make_net(2, 10, small_data, param, seed=4)
    recipe = RECIPES[name]
    etas = _etas(param, 10)
    got = LossEngine(w, small_data, p, recipe=recipe).loss_at(etas, 3)
    np.testing.assert_allclose(got, recipe_losses(w, small_data, p, recipe, etas, 3), rtol=1e-11, atol=0)


@pytest.mark.parametrize("name", list(RECIPES))
@pytest.mark.parametrize("depth,steps", [(1, 1), (2, 1), (3, 1), (1, 3), (2, 2), (3, 2)])
def test_monomial_coefficients_equal_the_reference_within_their_condition_bound(small_data, name, depth, steps):
    """Σ c_k η^k equals the reference up to the rounding bound eps·Σ|c_k η^k| scaled by the degree."""
    w, p = make_net(depth, 12, small_data, "mup", seed=3)
    recipe = RECIPES[name]
    poly = LossEngine(w, small_data, p, recipe=recipe).polynomial(steps)
    assert len(poly.loss) == recipe_loss_degree(depth, steps, recipe) + 1 and not poly.truncated
    assert [f.shape[1] - 1 for f in poly.f_by_step] == [recipe_loss_degree(depth, s, recipe) // 2 for s in range(steps + 1)]
    for eta in _etas("mup", 12):
        powers = eta ** np.arange(len(poly.loss))
        value = poly.loss @ powers
        bound = 64 * len(poly.loss) * EPS * (np.abs(poly.loss) @ powers)
        ref = recipe_losses(w, small_data, p, recipe, [eta], steps)[0]
        assert abs(value - ref) <= bound + 1e-13 * abs(ref), (eta, value, ref, bound)


@pytest.mark.parametrize("name", list(RECIPES))
@pytest.mark.parametrize("param", ["mup", "ntp"])
@pytest.mark.parametrize("depth,steps", [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_certified_coefficients_contain_the_exact_polynomial_over_Q(name, param, depth, steps):
    """The reference trainer run over Q[η] (η an indeterminate, the float64 weights and data taken
    exactly, λ and the recipe's numbers exact rationals) gives the exact loss polynomial; every engine coefficient lies within its certified
    bound of it, the bounds are tight, and the exact degree is recipe_loss_degree."""
    data = linear_teacher(d=2, m=3, noise=0.1, seed=5)
    n = 3
    w, p = make_net(depth, n, data, param, seed=depth + 7 * steps)
    recipe = RECIPES[name]
    eng = LossEngine(w, data, p, recipe=recipe)
    cert = eng.polynomial(steps, certify=True)
    np.testing.assert_array_equal(cert.loss, eng.polynomial(steps).loss)  # certifying changes no value
    lam = recipe.lr_multipliers(n, p, exact=True)  # λ = n^-γ exactly (1/3 for ntp): the bound covers fl(λ) too
    exact = train(w.W0, list(w.hidden), w.V, data.X, data.y, recipe, ETA, steps, lr=lam, dtype=object)[-1]
    deg = recipe_loss_degree(depth, steps, recipe)
    assert exact.degree == deg and len(cert.loss) == deg + 1
    for k in range(deg + 1):
        ck = exact.coeff(k)
        assert abs(F(float(cert.loss[k])) - ck) <= F(float(cert.loss_error[k])), (k, cert.loss[k], float(ck))
    assert cert.accurate_terms(1e-9) == deg + 1


@pytest.mark.parametrize("name", ["l2", "decoupled", "independent", "torch", "cosine", "nesterov", "all"])
def test_taylor_derivatives_match_finite_differences_of_the_reference(small_data, name):
    w, p = make_net(2, 14, small_data, seed=9)
    recipe = RECIPES[name]
    eta, h = 0.5, 1e-4
    T = LossEngine(w, small_data, p, recipe=recipe).taylor([eta, 0.2], 3, order=2)[0]
    fm, f0, fp = recipe_losses(w, small_data, p, recipe, [eta - h, eta, eta + h], 3)
    assert T[0] == pytest.approx(f0, rel=1e-12)
    assert T[1] == pytest.approx((fp - fm) / (2 * h), rel=1e-6)
    assert 2 * T[2] == pytest.approx((fp - 2 * f0 + fm) / h**2, rel=1e-4)


def test_taylor_agrees_with_the_monomial_coefficients(small_data):
    """Both uses of the recursion: derivatives of Σ c_k η^k at η_0 equal the re-centred Taylor coefficients."""
    w, p = make_net(2, 10, small_data, seed=1)
    eng = LossEngine(w, small_data, p, recipe=RICH)
    c = eng.polynomial(2).loss
    eta = 0.1
    T = eng.taylor([eta], 2, order=3)[0]
    P = np.polynomial.Polynomial(c)
    want = [P(eta), P.deriv(1)(eta), P.deriv(2)(eta) / 2, P.deriv(3)(eta) / 6]
    np.testing.assert_allclose(T, want, rtol=1e-10)


@pytest.mark.parametrize("name", ["l2", "decoupled", "list", "cosine", "momentum", "nesterov", "all", "all-decoupled"])
def test_slope_identity(small_data, name):
    """docs/theory.md §7's c_1 from dense gradients at initialisation (L = 3, t = 3, beyond the exact
    test): c_1 = −Σ_s ρ_s S_s λ Σ_ℓ ⟨G_ℓ, G_ℓ + [l2] ωW_ℓ⟩ − [decoupled] ω (Σ_s ρ_s) Σ_ℓ ⟨G_ℓ, W_ℓ⟩, with
    S_s = Σ_{j≤s} β^j (Nesterov: Σ_{j≤s+1} β^j). (Independent decay: test_decay_alone_scales_the_constant_term.)"""
    from polyloss.gd_recipe import gradients

    w, p = make_net(3, 11, small_data, "ntp", seed=8)
    recipe = RECIPES[name]
    t = 3
    lam = recipe.lr_multipliers(11, p)["hidden"]
    _, G = gradients(w.W0, list(w.hidden), w.V, small_data.X, small_data.y)
    omega, beta = float(recipe.weight_decay), float(recipe.momentum)
    gg = sum(float(np.sum(g * g)) for g in G["hidden"])
    gw = sum(float(np.sum(g * W)) for g, W in zip(G["hidden"], w.hidden))
    rhos = [float(r) for r in recipe.schedule.rhos(t)]
    S = [sum(beta**j for j in range(s + 1 + recipe.nesterov)) for s in range(t)]
    want = -sum(r * S_s for r, S_s in zip(rhos, S)) * lam * (gg + (omega * gw if recipe.wd_mode == "l2" else 0))
    if recipe.wd_mode == "decoupled":
        want -= omega * sum(rhos) * gw
    c1 = LossEngine(w, small_data, p, recipe=recipe).polynomial(t, degree=1).loss[1]
    assert c1 == pytest.approx(want, rel=1e-11)


@pytest.mark.parametrize("K", [0, 1, 3, 7])
def test_truncated_equals_complete_low_coefficients(small_data, K):
    w, p = make_net(3, 10, small_data, seed=6)
    eng = LossEngine(w, small_data, p, recipe=RICH)
    full, tr = eng.polynomial(3), eng.polynomial(3, degree=K, certify=True)
    assert tr.truncated and tr.degree == K and len(tr.loss) == K + 1 and len(tr.loss_error) == K + 1
    np.testing.assert_allclose(tr.loss, full.loss[: K + 1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tr.f, full.f[:, : K + 1], rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------------------ identities
PLAIN_EQUIVALENTS = [
    Recipe(),
    Recipe(schedule="1,1,1"),
    Recipe(schedule="warmup:1", weight_decay=0, wd_mode="decoupled", momentum=0),
    Recipe(lr_exponents="-1,0,1"),  # mup's own hidden exponent
]


@pytest.mark.parametrize("recipe", PLAIN_EQUIVALENTS, ids=range(len(PLAIN_EQUIVALENTS)))
def test_plain_recipes_give_todays_bits(small_data, recipe):
    w, p = make_net(3, 10, small_data, "mup", seed=2)
    ref, eng = LossEngine(w, small_data, p), LossEngine(w, small_data, p, recipe=recipe)
    a, b = ref.polynomial(3, certify=True), eng.polynomial(3, certify=True)
    for x, y in [(a.loss, b.loss), (a.f, b.f), (a.loss_error, b.loss_error), (a.f_error, b.f_error)]:
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.loss_by_step, b.loss_by_step):
        np.testing.assert_array_equal(x, y)
    etas = [0.1, 0.7]
    np.testing.assert_array_equal(ref.taylor(etas, 3, order=2), eng.taylor(etas, 3, order=2))


@pytest.mark.parametrize("param", ["mup", "ntp"])
def test_recipe_path_with_plain_coefficients_equals_the_plain_path(small_data, param):
    """The generalised recursion itself (forced, with c_t = 1 and a_{t,s} = −λη) reproduces plain GD."""
    w, p = make_net(3, 10, small_data, param, seed=2)
    ref, eng = LossEngine(w, small_data, p), LossEngine(w, small_data, p)
    eng.recipe = Recipe()  # bypass the routing of plain recipes to the plain code
    a, b = ref.polynomial(3), eng.polynomial(3)
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-10, atol=1e-13 * np.abs(a.loss).max())
    etas = [0.1, 0.7]
    np.testing.assert_allclose(eng.taylor(etas, 3), ref.taylor(etas, 3), rtol=1e-12)


def test_hidden_exponent_in_the_recipe_acts_like_the_parametrization(small_data):
    """A recipe whose hidden exponent is ntp's γ = 1, under mup, trains like the ntp parametrization
    (same effective weights): the recipe path with λ from the recipe."""
    from polyloss.spec import Parametrization

    w, p = make_net(2, 10, small_data, "mup", seed=6)
    rec = Recipe(lr_exponents="0,1,1")
    got = LossEngine(w, small_data, p, recipe=rec)
    ref = LossEngine(w, small_data, Parametrization.preset("ntp"))
    assert got.recipe is not None
    etas = [0.5, 2.0]
    np.testing.assert_allclose(got.loss_at(etas, 3), ref.loss_at(etas, 3), rtol=1e-12)


def test_decay_alone_scales_the_constant_term(small_data):
    """Independent decay: the η⁰ term is the loss of the network with every hidden matrix ×(1−ω)^t."""
    w, p = make_net(3, 10, small_data, seed=4)
    t, omega = 3, 0.05
    c0 = LossEngine(w, small_data, p, recipe=RECIPES["independent"]).polynomial(t).loss[0]
    shrunk = Weights(w.W0, tuple(W * (1 - omega) ** t for W in w.hidden), w.V)
    assert c0 == pytest.approx(LossEngine(shrunk, small_data, p).polynomial(1).loss[0], rel=1e-12)


# ------------------------------------------------------------------------------------------ lazy layers
def test_lazy_layers_with_a_recipe_equal_the_materialised_network(small_data):
    from polyloss.lazy import sample_lazy_weights
    from polyloss.spec import NetworkSpec, Parametrization

    n, L, steps = 24, 2, 3
    p = Parametrization.preset("mup")
    w = sample_lazy_weights(NetworkSpec(L, n, small_data.d), p, np.random.SeedSequence(6), coords="ambient")
    eng = LossEngine(w, small_data, p, recipe=RICH)
    etas = np.array([0.05, 0.4, 1.1])
    tay = eng.taylor(etas, steps, order=1)
    poly = eng.polynomial(steps)
    assert poly.loss_error is None and eng.polynomial(steps, certify=True).loss_error is None
    dense = Weights(w.W0, tuple(op.forward(np.eye(n)).T for op in w.operators()), w.V)
    ref = LossEngine(dense, small_data, p, recipe=RICH)
    np.testing.assert_allclose(tay, ref.taylor(etas, steps, order=1), rtol=1e-10)
    np.testing.assert_allclose(tay[:, 0], recipe_losses(dense, small_data, p, RICH, etas, steps), rtol=1e-10)
    np.testing.assert_allclose(poly.loss, ref.polynomial(steps).loss, rtol=1e-9, atol=1e-13 * np.abs(poly.loss).max())


def test_device_namespace_with_a_recipe(cupy_xp, small_data):
    w, p = make_net(2, 16, small_data, seed=1)
    wg = Weights(cupy_xp.asarray(w.W0), tuple(cupy_xp.asarray(W) for W in w.hidden), cupy_xp.asarray(w.V))
    cpu, gpu = LossEngine(w, small_data, p, recipe=RICH), LossEngine(wg, small_data, p, recipe=RICH)
    np.testing.assert_allclose(gpu.polynomial(2).loss, cpu.polynomial(2).loss, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(gpu.taylor([0.1, 0.5], 2), cpu.taylor([0.1, 0.5], 2), rtol=1e-10)


# ------------------------------------------------------------------------------------------ refusals
def _one_line(exc):
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("trained", ["input,hidden", "hidden,readout", "readout", "input"])
def test_trained_input_or_readout_needs_its_rate(small_data, trained):
    """Training W_0 or V is supported (tests/test_engine_trained_io.py); under a custom (α, γ) without
    explicit lr_exponents their rates are undefined, a one-line error at construction."""
    w, _ = make_net(2, 8, small_data)
    with pytest.raises(SpecError, match="lr_exponents") as exc:
        LossEngine(w, small_data, Parametrization.parse("0.5,0"), recipe=Recipe(trained=trained))
    _one_line(exc)


def test_bad_recipes_are_refused_in_one_line(small_data):
    w, p = make_net(2, 8, small_data)
    with pytest.raises(SpecError, match="`recipe`") as exc:
        LossEngine(w, small_data, p, recipe={"momentum": "0.9"})
    _one_line(exc)
    eng = LossEngine(w, small_data, p, recipe=Recipe(schedule="0.5,1"))
    for call in (lambda: eng.polynomial(3), lambda: eng.taylor([0.1], 3)):
        with pytest.raises(SpecError, match="at least one rate per step") as exc:
            call()
        _one_line(exc)
    assert len(eng.polynomial(2).loss) == 17  # two listed rates cover two steps
    with pytest.raises(SpecError, match="polynomial_arb") as exc:
        eng.polynomial_arb(1)
    _one_line(exc)
