"""The μP limit with trained input and readout layers, and the power counting of the per-layer
exponent family (docs/theory.md §7): closed forms derived by hand here, the three routes agreeing
exactly, finite-width Monte Carlo at n = 2048, and the rescaled limit predicted by power counting."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from polyloss.derive import closed_form, data_moments, derive, evaluate_closed_form, explicit_limit
from polyloss.errors import SpecError
from polyloss.power import recipe_power_counting
from polyloss.recipe import Recipe
from tests.conftest import rational_data

ALL = "input,hidden,readout"


def _data():
    X, y = rational_data(5, 3, seed=4)
    return X, y


def _kernel_gd_loss(X, y, t, rate, decay):
    """(1/2m)‖f^{(t)} − y‖² for f^{(s+1)} = δ f^{(s)} − rate·K̄ (f^{(s)} − y), f^{(0)} = 0, as exact
    polynomials in η: ``rate`` and ``decay`` are coefficient lists in η."""
    m, d = len(X), len(X[0])
    Kb = [[sum(a * b for a, b in zip(X[i], X[j])) / (d * m) for j in range(m)] for i in range(m)]

    def mul(p, q):
        out = [Fraction(0)] * (len(p) + len(q) - 1)
        for i, a in enumerate(p):
            for j, b in enumerate(q):
                out[i + j] += a * b
        return out

    def add(p, q):
        n = max(len(p), len(q))
        return [(p[k] if k < len(p) else 0) + (q[k] if k < len(q) else 0) for k in range(n)]

    f = [[Fraction(0)] for _ in range(m)]
    for _ in range(t):
        r = [add(f[i], [-y[i]]) for i in range(m)]
        Kr = [[sum(Kb[i][k] * (r[k][e] if e < len(r[k]) else 0) for k in range(m))
               for e in range(max(len(v) for v in r))] for i in range(m)]
        f = [add(mul(decay, f[i]), mul([-c for c in rate], Kr[i])) for i in range(m)]
    loss = [Fraction(0)]
    for i in range(m):
        ri = add(f[i], [-y[i]])
        loss = add(loss, mul(ri, ri))
    loss = [c / (2 * m) for c in loss]
    while len(loss) > 1 and loss[-1] == 0:
        loss.pop()
    return loss


# ------------------------------------------------------------------ by hand
@pytest.mark.parametrize("d", [1, 4, 7])
def test_L1_t1_all_layers_closed_form_by_hand(d):
    """L = 1, t = 1, every layer at its μP rate. In the Fock realisation f^{(0)} = 0, r = −y, and the
    three updates add to f^{(1)}(x_j): readout ⟨η u_2, W h_0(x_j)⟩ = η(K̄y)_j; hidden
    ⟨g, η g⟩(K̄y)_j = η(K̄y)_j; input ⟨g, W η d g_0⟩(K̄y)_j = ηd⟨g, WWᵀg⟩(K̄y)_j = ηd(K̄y)_j. Every
    product of two updates pairs orthogonal words, so f^{(1)} = (2 + d)η K̄y exactly and
    𝓛 = ½(μ_0 − 2(2+d)μ_1η + (2+d)²μ_2η²)."""
    cf = closed_form(1, 1, recipe=Recipe(trained=ALL, lr_exponents="mup"), input_dim=d)
    k = 2 + d
    assert [dict(c) for c in cf.loss] == [{(1, 0, 0): Fraction(1, 2)}, {(0, 1, 0): Fraction(-k)},
                                           {(0, 0, 1): Fraction(k * k, 2)}]


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("decay", ["none", "independent"])
def test_readout_only_is_kernel_gd_at_every_depth(L, decay):
    """Only V trained (rate 1/n): the hidden layers are frozen, ⟨h_L(x_i), h_L(x_j)⟩ = K_ij in the
    limit, and g_L ← δ g_L − η u_{L+1} gives f^{(s+1)} = δ f^{(s)} − η K̄ r^{(s)}: kernel GD with the
    input kernel, whatever L (δ = 1 − ω for independent decay)."""
    X, y = _data()
    omega = Fraction(1, 5)
    rc = Recipe(trained="readout", **({} if decay == "none" else dict(weight_decay=omega, wd_mode="independent")))
    for t in (1, 2, 3):
        ref = _kernel_gd_loss(X, y, t, [0, Fraction(1)], [Fraction(1) if decay == "none" else 1 - omega])
        assert list(derive(L, t, data=(X, y), recipe=rc).loss_coefficients) == ref, t


@pytest.mark.parametrize("L", [1, 2])
def test_input_only_is_kernel_gd_at_rate_d_eta(L):
    """Only W_0 trained (rate n): g_0 = W_1ᵀ⋯W_Lᵀ g_L never moves, h_0(x_j) moves by
    a·g_0·d(K̄r)_j and f by ⟨g_L, W_L⋯W_1 g_0⟩ = 1 times that (a free product of norms), so
    f^{(s+1)} = δ f^{(s)} − ηd K̄ r^{(s)}; with decoupled decay δ = 1 − ηω."""
    X, y = _data()
    d, omega = len(X[0]), Fraction(3, 10)
    rc = Recipe(trained="input", weight_decay=omega, wd_mode="decoupled")
    for t in (1, 2):
        ref = _kernel_gd_loss(X, y, t, [0, Fraction(d)], [Fraction(1), -omega])
        assert list(derive(L, t, data=(X, y), recipe=rc).loss_coefficients) == ref, t


# ------------------------------------------------------------------ the three routes, exactly
IO_RECIPES = {
    "all": Recipe(trained=ALL, lr_exponents="mup"),
    "all-decoupled-momentum-warmup": Recipe(trained=ALL, weight_decay="0.2", wd_mode="decoupled", momentum="0.5",
                                            schedule="warmup:2"),
    "hidden-readout-l2-nesterov": Recipe(trained="hidden,readout", weight_decay="0.3", momentum="0.5", nesterov=True),
    "input-hidden-independent": Recipe(trained="input,hidden", weight_decay="0.2", wd_mode="independent"),
    "slow-input-decoupled": Recipe(trained=ALL, lr_exponents="0,0,1", weight_decay="0.2", wd_mode="decoupled"),
}


@pytest.mark.parametrize("name", sorted(IO_RECIPES))
@pytest.mark.parametrize("L,t", [(1, 2), (2, 2)])
def test_routes_agree_exactly(name, L, t):
    """Closed form (with d) at the data's moments = Krylov data route = explicit m×m route."""
    rc = IO_RECIPES[name]
    X, y = _data()
    d = derive(L, t, data=(X, y), recipe=rc)
    assert d.recipe == rc and d.recipe_power is not None and d.recipe_power.has_limit
    cf = closed_form(L, t, recipe=rc, input_dim=len(X[0]))
    assert evaluate_closed_form(cf, data_moments((X, y), t).mus) == list(d.loss_coefficients)
    assert explicit_limit(L, t, (X, y), recipe=rc) == list(d.loss_coefficients)
    hidden_only = Recipe(**{**rc.to_dict(), "trained": ["hidden"], "lr_exponents": None})
    assert d.loss_coefficients != derive(L, t, data=(X, y), recipe=hidden_only).loss_coefficients


def test_input_rate_below_mup_freezes_the_input_gradient_but_not_its_decay():
    """Input rate n^0 < n: its gradient step vanishes in the limit but decoupled decay still scales
    W_0, so the limit differs from the input-frozen one and from the input-free recipe — and with no
    decay it equals the recipe without the input layer."""
    X, y = _data()
    slow = derive(2, 2, data=(X, y), recipe=IO_RECIPES["slow-input-decoupled"]).loss_coefficients
    no_in = derive(2, 2, data=(X, y), recipe=Recipe(trained="hidden,readout", weight_decay="0.2",
                                                    wd_mode="decoupled")).loss_coefficients
    assert slow != no_in
    a = derive(2, 2, data=(X, y), recipe=Recipe(trained=ALL, lr_exponents="0,0,1")).loss_coefficients
    b = derive(2, 2, data=(X, y), recipe=Recipe(trained="hidden,readout", lr_exponents="mup")).loss_coefficients
    assert a == b


# ------------------------------------------------------------------ against sampled finite-width networks
def _mc(recipes, L, t, n, seeds, n_coef=4, z=4.0, scale=1.0, limit_recipe=None):
    """Mean over ``seeds`` sampled μP networks of the first coefficients of 𝓛_n(η), times
    ``scale^k`` (the coefficients in η̃ = η/scale), against the exact limit within ``z`` standard errors."""
    from polyloss.data import linear_teacher
    from polyloss.engine import LossEngine
    from polyloss.spec import NetworkSpec, Parametrization
    from polyloss.weights import child_seed, sample_weights

    ds = linear_teacher(d=4, m=6, noise=0.1, seed=21)
    p = Parametrization.preset("mup")
    for name, rc in recipes.items():
        lim = [float(c) for c in derive(L, t, data=ds, recipe=limit_recipe or rc).loss_coefficients[:n_coef]]
        lim += [0.0] * (n_coef - len(lim))
        rows = []
        for s in range(seeds):
            w = sample_weights(NetworkSpec(L, n, ds.d), p, child_seed(7000 + 10 * L + t, n, s))
            c = LossEngine(w, ds, p, recipe=rc).polynomial(t, degree=n_coef - 1).loss[:n_coef]
            rows.append(np.pad(c, (0, n_coef - len(c))) * scale ** np.arange(n_coef))
        r = np.array(rows)
        mean, se = r.mean(axis=0), r.std(axis=0, ddof=1) / np.sqrt(seeds)
        for k in range(n_coef):
            assert abs(mean[k] - lim[k]) <= z * se[k] + 1e-12, (name, L, t, k, mean[k], lim[k], se[k])


def test_limit_against_sampled_networks_fast():
    _mc({k: IO_RECIPES[k] for k in ("all", "hidden-readout-l2-nesterov")}, 2, 2, n=2048, seeds=6)


@pytest.mark.slow
@pytest.mark.parametrize("L,t", [(1, 1), (1, 3), (2, 2), (3, 2), (2, 3)])
def test_limit_against_sampled_networks_n2048(L, t):
    _mc(IO_RECIPES, L, t, n=2048, seeds=12)


def test_power_counting_rescaled_limit_against_sampled_networks():
    """Readout trained at rate n^0 under μP init is n times its μP rate: power counting predicts
    η_n ∝ n^-1, and in η̃ = nη the loss tends to the limit with only the readout learning (the
    hidden gradient step, n^-1 times smaller, vanishes). So n^-k c_k(n) → the readout-only limit."""
    rc = Recipe(trained="hidden,readout", lr_exponents="-1,0,0")
    pc = recipe_power_counting(rc, "mup", 2)
    assert pc.eta == -1 and pc.gradient == {"hidden": "vanishes", "readout": "active"} and not pc.has_limit
    _mc({"readout-rate-1": rc}, 2, 2, n=2048, seeds=6, scale=1 / 2048, limit_recipe=Recipe(trained="readout"))


# ------------------------------------------------------------------ power counting
@pytest.mark.parametrize("recipe,param,eta,has_limit,active", [
    (Recipe(trained=ALL, lr_exponents="mup"), "mup", 0, True, {"input", "hidden", "readout"}),
    (Recipe(trained=ALL, weight_decay="0.1", wd_mode="decoupled"), "mup", 0, True, {"input", "hidden", "readout"}),
    (Recipe(trained=ALL, weight_decay="0.1", wd_mode="independent"), "mup", 0, True, {"input", "hidden", "readout"}),
    (Recipe(trained=ALL, weight_decay="0.1", wd_mode="l2"), "mup", -1, False, set()),
    (Recipe(trained="hidden,readout", weight_decay="0.1", wd_mode="l2"), "mup", 0, True, {"hidden", "readout"}),
    (Recipe(trained=ALL), "sp", -1, False, {"hidden", "readout"}),
    (Recipe(trained=ALL), "ntp", 0, False, {"input", "hidden", "readout"}),
    (Recipe(momentum="0.5"), "sp", -1, False, {"hidden"}),
    (Recipe(trained=ALL, lr_exponents="0,1,2"), "mup", 1, False, {"input", "hidden", "readout"}),
])
def test_recipe_power_counting_table(recipe, param, eta, has_limit, active):
    pc = recipe_power_counting(recipe, param, 2)
    assert pc.eta == eta and pc.has_limit == has_limit
    assert {k for k, v in pc.gradient.items() if v == "active"} == active


def test_plain_power_counting_agrees_with_the_recipe_count():
    """Hidden-only recipes: the recipe count reproduces THEORY §2's s = α + γ − 2 for 1 ≤ α ≤ 3."""
    from polyloss.power import power_counting
    from polyloss.spec import Parametrization

    for a in (1, Fraction(3, 2), 2, 3):
        for g in (-1, 0, Fraction(1, 2), 1):
            p = Parametrization.custom(Fraction(a), Fraction(g))
            assert recipe_power_counting(Recipe(momentum="0.5"), p, 3).eta == power_counting(p, 3).eta


def test_no_limit_gives_power_counting_not_an_error():
    d = derive(2, 2, recipe=Recipe(trained=ALL, weight_decay="0.1"))
    assert d.route == "power-counting" and d.loss_coefficients == ()
    doc = d.to_json()
    assert doc["recipe_power_counting"]["eta_exponent"] == "-1" and doc["recipe"]["trained"] == ["input", "hidden",
                                                                                                   "readout"]
    assert "eta_n ~ n^(-1)" in d.to_text() and "no infinite-width limit" in d.to_text()
    with pytest.raises(SpecError, match="input_dim"):
        derive(2, 1, recipe=Recipe(trained=ALL))


def test_torch_decay_follows_each_layers_rate():
    """wd_mode 'torch' decays each layer by ηρλ_ℓω: on the hidden layers of μP-SGD (λ = 1) that is the decoupled
    factor 1 − ηρω at every width, and on a readout trained at λ = 1/n it fades in the limit, leaving kernel GD
    without decay."""
    from polyloss.data import Dataset
    from polyloss.engine import LossEngine
    from polyloss.spec import NetworkSpec, Parametrization
    from polyloss.weights import child_seed, sample_weights

    X, y = _data()
    data = Dataset(np.array(X, dtype=float), np.array(y, dtype=float), source="rational")
    mup = Parametrization.parse("mup")
    w = sample_weights(NetworkSpec(2, 12, data.d), mup, child_seed(0, 12, 0))
    torch_h = Recipe(weight_decay="1/5", wd_mode="torch", momentum="1/2")
    dec_h = Recipe(weight_decay="1/5", wd_mode="decoupled", momentum="1/2")
    np.testing.assert_array_equal(LossEngine(w, data, mup, recipe=torch_h).polynomial(2).loss,
                                  LossEngine(w, data, mup, recipe=dec_h).polynomial(2).loss)
    assert derive(2, 2, data=data, recipe=torch_h).loss_coefficients == derive(2, 2, data=data, recipe=dec_h).loss_coefficients
    ro = derive(2, 2, data=data, recipe=Recipe(trained="readout", weight_decay="1/5", wd_mode="torch")).loss_coefficients
    assert ro == derive(2, 2, data=data, recipe=Recipe(trained="readout")).loss_coefficients
    assert ro != derive(2, 2, data=data, recipe=Recipe(trained="readout", weight_decay="1/5",
                                                      wd_mode="decoupled")).loss_coefficients
    pc = recipe_power_counting(Recipe(trained=ALL, weight_decay="1/5", wd_mode="torch"), "mup")
    assert not pc.has_limit and pc.eta == -1  # the input rate n multiplies ω, as for l2
