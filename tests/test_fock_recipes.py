"""The exact μP limit of hidden-only training recipes (docs/theory.md §7, "The μP limit of a recipe"):
plain recipes give today's derivation exactly, the routes agree exactly, an L = 1 closed form derived
by hand, exact identities at t = 1, finite-width Monte Carlo at n = 2048, one-line refusals."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from polyloss.derive import closed_form, data_moments, derive, evaluate_closed_form, explicit_limit
from polyloss.errors import SpecError
from polyloss.fock import KrylovEvaluator, default_ring, recipe_scalars, run_program
from polyloss.recipe import Recipe
from tests.conftest import rational_data

RECIPES = {
    "l2": Recipe(weight_decay="0.3"),
    "decoupled": Recipe(weight_decay="0.3", wd_mode="decoupled", momentum="0.5"),
    "independent": Recipe(weight_decay="0.2", wd_mode="independent"),
    "momentum": Recipe(momentum="0.5"),
    "nesterov": Recipe(momentum="0.5", nesterov=True),
    "warmup": Recipe(schedule="warmup:2"),
    "l2-momentum": Recipe(weight_decay="0.25", momentum="0.5"),
    "combo": Recipe(schedule="cosine", weight_decay="0.1", wd_mode="decoupled", momentum="0.9", nesterov=True),
}


def _data():
    X, y = rational_data(5, 3, seed=4)
    return X, y


# ------------------------------------------------------------------ plain recipes: today's result exactly
PLAINS = [Recipe(), Recipe(schedule="1,1,1"), Recipe(lr_exponents="mup"), Recipe(schedule="warmup:1"),
          Recipe(weight_decay=0, wd_mode="decoupled", momentum=0)]


@pytest.mark.parametrize("L,t", [(1, 2), (2, 2), (3, 3)])
def test_plain_recipes_give_todays_derivation(L, t):
    data = _data()
    base_cf, base_data = derive(L, t), derive(L, t, data=data)
    for rc in PLAINS:
        cf = derive(L, t, recipe=rc)
        assert cf.loss_coefficients == base_cf.loss_coefficients and cf.f_closed_form == base_cf.f_closed_form
        assert cf.recipe is None and "recipe" not in cf.to_json()
        d = derive(L, t, data=data, recipe=rc)
        assert d.loss_coefficients == base_data.loss_coefficients and d.to_json() == base_data.to_json()


@pytest.mark.parametrize("L,t", [(1, 3), (2, 2), (3, 2), (2, 3)])
def test_recipe_program_with_plain_scalars_is_plain(L, t):
    """ω = 0, ρ ≡ 1, β = 0 through the recipe branch of the program (c_t = 1, a_{t,s} = −η)."""
    dm = data_moments(_data(), t)
    R = default_ring(dm.mus)
    plain = run_program(KrylovEvaluator(R), L, t)
    sc = recipe_scalars(Recipe(), t, R)
    assert all(c is None for c in sc.c) and all(a == {s: -R.eta for s in range(k)} for k, a in enumerate(sc.a))
    rec = run_program(KrylovEvaluator(R), L, t, scalars=sc)
    assert R.eta_coefficients(rec.loss) == R.eta_coefficients(plain.loss)


# ------------------------------------------------------------------ routes agree exactly
@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("L,t", [(1, 3), (2, 2), (3, 2)])
def test_routes_agree_exactly(name, L, t):
    rc = RECIPES[name]
    data = _data()
    d = derive(L, t, data=data, recipe=rc)
    assert d.recipe == rc and d.to_json()["recipe"] == rc.to_dict()
    cf = closed_form(L, t, recipe=rc)
    assert evaluate_closed_form(cf, data_moments(data, t).mus) == list(d.loss_coefficients)
    assert explicit_limit(L, t, data, recipe=rc) == list(d.loss_coefficients)
    plain = derive(L, t, data=data)
    assert d.loss_coefficients != plain.loss_coefficients  # the recipe does change the limit


def test_closed_form_json_and_text_name_the_recipe():
    rc = RECIPES["l2"]
    d = derive(2, 2, recipe=rc)
    doc = json.loads(d.to_json_str())
    assert doc["recipe"] == rc.to_dict() and Recipe.from_dict(doc["recipe"]) == rc
    assert "recipe: " in d.to_text() and "% recipe: " in d.to_latex()
    assert doc.get("eta_inf_closed_form") is None  # mu1/(L mu2) is the plain t = 1 minimiser only


# ------------------------------------------------------------------ exact identities at t = 1
def _subst(coeffs, scale):
    return [c * scale**k for k, c in enumerate(coeffs)]


@pytest.mark.parametrize("L", [1, 2, 3])
def test_one_step_identities(L):
    """At t = 1: heavy ball is plain GD (v = g), Nesterov is plain GD at η(1 + β), a schedule is
    plain GD at ηρ_0, and without momentum l2 decay equals decoupled decay (λ = 1 under μP)."""
    data = _data()
    plain = list(derive(L, 1, data=data).loss_coefficients)
    assert list(derive(L, 1, data=data, recipe=Recipe(momentum="0.7")).loss_coefficients) == plain
    nes = derive(L, 1, data=data, recipe=Recipe(momentum="0.7", nesterov=True)).loss_coefficients
    assert list(nes) == _subst(plain, Fraction(17, 10))
    warm = derive(L, 1, data=data, recipe=Recipe(schedule="warmup:3")).loss_coefficients
    assert list(warm) == _subst(plain, Fraction(1, 3))
    for t in (1, 2):
        l2 = derive(L, t, data=data, recipe=Recipe(weight_decay="0.4")).loss_coefficients
        dec = derive(L, t, data=data, recipe=Recipe(weight_decay="0.4", wd_mode="decoupled")).loss_coefficients
        assert l2 == dec


@pytest.mark.parametrize("rc", [
    Recipe(weight_decay="0.2", wd_mode="independent"),
    Recipe(weight_decay="0.2", wd_mode="independent", momentum="0.5", schedule="warmup:2"),
    Recipe(weight_decay="0.3", wd_mode="independent", momentum="0.5", nesterov=True, schedule="1/2,1,3/4"),
], ids=["independent", "independent-momentum-warmup", "independent-nesterov-list"])
@pytest.mark.parametrize("L,t", [(1, 3), (2, 2), (2, 3), (3, 2), (3, 3)])
def test_slope_identity_with_independent_decay(rc, L, t):
    """The η¹ coefficient of the limit, exactly. At η = 0 independent decay leaves
    W^{(s)} = κ_s W (κ_s = (1 − ω)^s) and f = 0, so G_ℓ(W^{(s)}) = κ_s^{L−1} G_ℓ and each layer's
    ⟨G_ℓ, G_ℓ⟩ is μ_1: c_1 = −L μ_1 κ_t^{L−1} Σ_s (1 − ω)^{t−1−s} ρ_s Σ_{j≤s} w_{s,j} κ_j^{L−1}, with
    w_{s,j} = β^{s−j} (heavy ball), + [j = s] for Nesterov's g + βv with every β^{s−j} one power higher.
    The powers of κ check the decay factor c_t on both the forward and the backward pass."""
    data = _data()
    q, beta = 1 - rc.weight_decay, rc.momentum
    kap = [q**s for s in range(t + 1)]
    total = Fraction(0)
    for s in range(t):
        if rc.nesterov:
            w = {j: beta ** (s - j + 1) for j in range(s + 1)}
            w[s] += 1
        else:
            w = {j: beta ** (s - j) for j in range(s + 1)}
        total += q ** (t - 1 - s) * rc.rho(s, t) * sum(w[j] * kap[j] ** (L - 1) for j in w)
    mus = data_moments(data, t).mus
    c = derive(L, t, data=data, recipe=rc).loss_coefficients
    assert c[0] == mus[0] / 2
    assert c[1] == -L * mus[1] * kap[t] ** (L - 1) * total


# ------------------------------------------------------------------ L = 1 by hand: kernel GD with decay
def _poly_mul(p, q):
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return out


def _poly_add(p, q):
    n = max(len(p), len(q))
    return [(p[k] if k < len(p) else 0) + (q[k] if k < len(q) else 0) for k in range(n)]


@pytest.mark.parametrize("mode,omega", [("l2", Fraction(3, 10)), ("independent", Fraction(1, 5))])
def test_L1_kernel_gd_with_decay_by_hand(mode, omega):
    """L = 1 at n = ∞: f^{(0)} = 0 (μP readout), and the hidden update W ← δW − ηG gives
    f^{(s+1)} = δ f^{(s)} − η K̄ (f^{(s)} − y) with δ = 1 − ηω (l2) or 1 − ω (independent);
    𝓛 = (1/2m) ‖f^{(t)} − y‖². Polynomials in η over Q, written out here independently."""
    X, y = _data()
    m, d = len(X), len(X[0])
    Kb = [[sum(a * b for a, b in zip(X[i], X[j])) / (d * m) for j in range(m)] for i in range(m)]
    delta = [Fraction(1), -omega] if mode == "l2" else [1 - omega]
    for t in (1, 2, 3):
        f = [[Fraction(0)] for _ in range(m)]
        for _ in range(t):
            r = [_poly_add(f[i], [-y[i]]) for i in range(m)]
            Kr = [[sum(Kb[i][k] * (r[k][e] if e < len(r[k]) else 0) for k in range(m))
                   for e in range(max(len(v) for v in r))] for i in range(m)]
            f = [_poly_add(_poly_mul(delta, f[i]), _poly_mul([Fraction(0), Fraction(-1)], Kr[i])) for i in range(m)]
        loss = [Fraction(0)]
        for i in range(m):
            ri = _poly_add(f[i], [-y[i]])
            loss = _poly_add(loss, _poly_mul(ri, ri))
        loss = [c / (2 * m) for c in loss]
        while len(loss) > 1 and loss[-1] == 0:
            loss.pop()
        got = derive(1, t, data=(X, y), recipe=Recipe(weight_decay=omega, wd_mode=mode)).loss_coefficients
        assert list(got) == loss, (mode, t)


# ------------------------------------------------------------------ refusals: one line each
@pytest.mark.parametrize("kwargs,needle", [
    (dict(recipe=Recipe(trained="input,hidden")), "input_dim"),
    (dict(recipe=Recipe(trained="input,hidden"), input_dim=0), "input_dim"),
    (dict(recipe=Recipe(schedule="cosine"), steps=4), "irrational"),
    (dict(recipe=Recipe(momentum="0.5"), param="1/2,0"), "alpha"),
    (dict(recipe=Recipe(momentum="0.5"), finite=True, steps=1), "finite"),
    (dict(recipe="momentum=0.5"), "Recipe"),
    (dict(recipe=Recipe(weight_decay="0.1"), steps=3, depth=3), "too large"),
])
def test_unsupported_recipes_refused_in_one_line(kwargs, needle):
    kwargs = dict(kwargs)
    steps, depth = kwargs.pop("steps", 2), kwargs.pop("depth", 2)
    with pytest.raises(SpecError) as exc:
        derive(depth, steps, **kwargs)
    msg = str(exc.value)
    assert "\n" not in msg and needle in msg, msg


def test_cosine_with_rational_rates_is_exact():
    """t ≤ 3: every cosine rate is rational (1, 3/4, 1/4 at t = 3) — same as the explicit list."""
    data = _data()
    a = derive(2, 3, data=data, recipe=Recipe(schedule="cosine")).loss_coefficients
    b = derive(2, 3, data=data, recipe=Recipe(schedule="1,3/4,1/4")).loss_coefficients
    assert a == b


# ------------------------------------------------------------------ against sampled finite-width networks
def _mc_vs_limit(cases, n, seeds, n_coef=4, z=4.0):
    """For each (L, t): sample ``seeds`` networks once, run every recipe's finite-width engine on the
    same networks, and compare the mean of the first ``n_coef`` coefficients with the limit."""
    from polyloss.data import linear_teacher
    from polyloss.engine import LossEngine
    from polyloss.spec import NetworkSpec, Parametrization
    from polyloss.weights import child_seed, sample_weights

    ds = linear_teacher(d=4, m=6, noise=0.1, seed=21)
    p = Parametrization.preset("mup")
    for L, t, names in cases:
        lims = {}
        for name in names:
            lim = [float(c) for c in derive(L, t, data=ds, recipe=RECIPES[name]).loss_coefficients[:n_coef]]
            lims[name] = lim + [0.0] * (n_coef - len(lim))
        rows = {name: [] for name in names}
        for s in range(seeds):
            w = sample_weights(NetworkSpec(L, n, ds.d), p, child_seed(1000 * L + t, n, s))
            for name in names:
                c = LossEngine(w, ds, p, recipe=RECIPES[name]).polynomial(t, degree=n_coef - 1).loss[:n_coef]
                rows[name].append(np.pad(c, (0, n_coef - len(c))))
        for name in names:
            r = np.array(rows[name])
            mean, se = r.mean(axis=0), r.std(axis=0, ddof=1) / np.sqrt(seeds)
            for k in range(n_coef):
                assert abs(mean[k] - lims[name][k]) <= z * se[k] + 1e-12, (L, t, name, k, mean[k], lims[name][k], se[k])


def test_limit_against_sampled_networks_fast():
    _mc_vs_limit([(2, 2, ["l2-momentum", "independent", "nesterov", "warmup", "combo"])], n=2048, seeds=6)


@pytest.mark.slow
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("t", [1, 2, 3])
def test_limit_against_sampled_networks_n2048(L, t):
    _mc_vs_limit([(L, t, sorted(RECIPES))], n=2048, seeds=16)


@pytest.mark.parametrize("name", ["l2", "nesterov"])
def test_truncated_closed_form_and_float_route(name):
    """closed_form(max_degree=K) keeps the exact low coefficients in both rings (η-graded for l2);
    the float64 data route agrees with the exact one to rounding."""
    rc = RECIPES[name]
    full = closed_form(2, 3, recipe=rc)
    cut = closed_form(2, 3, max_degree=6, recipe=rc)
    assert cut.loss == full.loss[:7] and cut.f == full.f
    data = _data()
    ex = derive(2, 3, data=data, recipe=rc).loss_coefficients
    fl = derive(2, 3, data=data, recipe=rc, exact=False)
    assert fl.route == "data-float" and fl.recipe == rc
    assert np.allclose([float(c) for c in fl.loss_coefficients[:8]], [float(c) for c in ex[:8]], rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ stored recipe derivations
def _stored_recipe_cases():
    from polyloss.derive import RECIPE_CASES

    return [(name, kw, L, t) for name, kw, pairs in RECIPE_CASES for (L, t) in pairs]


@pytest.mark.parametrize("name,kw,L,t", _stored_recipe_cases(), ids=lambda v: str(v) if not isinstance(v, dict) else "")
def test_stored_recipe_derivation_is_fresh(name, kw, L, t):
    import os

    from polyloss.derive import SCHEMA, recipe_stem, stored_record

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "derivations", "recipes",
                        recipe_stem(name, L, t) + ".json")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run python derivations/regenerate.py --recipes")
    with open(path, encoding="utf-8") as fh:
        stored = json.load(fh)
    rc = Recipe(**kw)
    assert stored["schema"] == SCHEMA and Recipe.from_dict(stored["recipe"]) == rc
    fresh = json.loads(json.dumps(stored_record(L, t, recipe=rc)))
    stored.pop("versions")
    fresh.pop("versions")
    assert fresh == stored, f"{path} is stale: run python derivations/regenerate.py --recipes"
    assert stored["loss_coefficients_complete"] and stored["degree"] == len(stored["loss_coefficients"]) - 1
