"""The Fock-space engine (polyloss.fock) against independent routes.

Reference values never come from the engine itself: random matrices (free circular law), the
kernel-GD closed form for L = 1, THEORY §4 for t = 1, the explicit-vector evaluator, and the other
scalar ring.
"""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest

from tests.conftest import rational_data
from polyloss.fock import (
    HAS_FLINT,
    ExplicitEvaluator,
    KrylovEvaluator,
    catalan,
    default_ring,
    limit_degree_f,
    run_program,
    vacuum_moment,
)


# ------------------------------------------------------------------ helpers (independent of the engine)


def gram(X):
    d = len(X[0])
    return [[sum(a * b for a, b in zip(xi, xj)) / d for xj in X] for xi in X]


def moments(X, y, count):
    m = len(y)
    K = gram(X)
    v, out = list(y), []
    for _ in range(count):
        out.append(sum(a * b for a, b in zip(y, v)) / m)
        v = [sum(K[i][j] * v[j] for j in range(m)) / m for i in range(m)]
    return out


def kernel_gd_loss(X, y, t):
    """(1/(2m)) ||(I - eta Kbar)^t y||^2 by explicit vector-polynomial arithmetic."""
    m = len(y)
    Kb = [[v / m for v in row] for row in gram(X)]
    vec = [[yi] for yi in y]  # vec[i][k]: coefficient of eta^k
    for _ in range(t):
        new = [[Fraction(0)] * (len(vec[0]) + 1) for _ in range(m)]
        for i in range(m):
            for k, c in enumerate(vec[i]):
                new[i][k] += c
        for i in range(m):
            for k in range(len(vec[0])):
                s = sum(Kb[i][j] * vec[j][k] for j in range(m))
                new[i][k + 1] -= s
        vec = new
    deg = 2 * t
    out = [Fraction(0)] * (deg + 1)
    for i in range(m):
        for a, ca in enumerate(vec[i]):
            for b, cb in enumerate(vec[i]):
                out[a + b] += ca * cb
    return [c / (2 * m) for c in out]


def symbolic(L, t, backend="auto", eta_free=False):
    R = default_ring(None, 2 * t + 1, backend=backend, eta_free=eta_free)
    res = run_program(KrylovEvaluator(R), L, t)
    return R.eta_coefficients(res.loss, offset=-1) if eta_free else R.eta_coefficients(res.loss)


def mono(j, n_mu, power=1):
    e = [0] * n_mu
    e[j] = power
    return tuple(e)


# ------------------------------------------------------------------ free circular law
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_catalan_moments_fock_and_random_matrices(k):
    fock = vacuum_moment([("W", 1), ("WT", 1)] * k)
    assert fock == catalan(k) == [1, 2, 5, 14, 42][k - 1]
    # random matrices: <e, (W W^T)^k e> averaged over an orthonormal basis = (1/n) tr (W W^T)^k
    n = 600
    rng = np.random.default_rng(1234 + k)
    W = rng.standard_normal((n, n)) / np.sqrt(n)
    M = np.linalg.matrix_power(W @ W.T, k)
    est = np.trace(M) / n
    assert abs(est - catalan(k)) <= 0.08 * catalan(k), (k, est)
    # and one random unit vector (fluctuation O(n^-1/2)), for the low moments
    if k <= 3:
        e = rng.standard_normal(n)
        e /= np.linalg.norm(e)
        assert abs(e @ M @ e - catalan(k)) <= 0.35 * catalan(k)


@pytest.mark.parametrize(
    "ops, expected",
    [
        ([("W", 1), ("W", 1), ("WT", 1), ("WT", 1)], 1),  # tau(c c c* c*) = 1
        ([("W", 1), ("W", 2), ("WT", 2), ("WT", 1)], 1),  # free: tau(c1 c2 c2* c1*) = 1
        ([("W", 1), ("W", 2), ("WT", 1), ("WT", 2)], 0),  # free: tau(c1 c2 c1* c2*) = 0
        ([("W", 1), ("W", 1)], 0),
    ],
)
def test_mixed_moments_match_random_matrices(ops, expected):
    assert vacuum_moment(ops) == expected
    n = 600
    rng = np.random.default_rng(7)
    Ws = {1: rng.standard_normal((n, n)) / np.sqrt(n), 2: rng.standard_normal((n, n)) / np.sqrt(n)}
    M = np.eye(n)
    for kind, layer in ops:
        M = M @ (Ws[layer] if kind == "W" else Ws[layer].T)
    assert abs(np.trace(M) / n - expected) < 0.1


# ------------------------------------------------------------------ exact identities
@pytest.mark.parametrize("t", [1, 2, 3, 4, 5])
def test_depth_one_is_kernel_gd(t):
    X, y = rational_data(5, 3, seed=t)
    ref = kernel_gd_loss(X, y, t)
    mus = moments(X, y, 2 * t + 1)
    R = default_ring(mus)
    got = R.eta_coefficients(run_program(KrylovEvaluator(R), 1, t).loss)
    assert got == ref
    # and the closed form: c_k = (1/2) (-1)^k C(2t, k) mu_k
    sym = symbolic(1, t)
    n_mu = 2 * t + 1
    assert sym == [{mono(k, n_mu): Fraction((-1) ** k * comb(2 * t, k), 2)} for k in range(2 * t + 1)]


@pytest.mark.parametrize("L", [1, 2, 3, 4, 5, 6, 8])
def test_one_step_is_theory_section_4(L):
    got = symbolic(L, 1)
    assert got == [{mono(0, 3): Fraction(1, 2)}, {mono(1, 3): Fraction(-L)}, {mono(2, 3): Fraction(L * L, 2)}]


@pytest.mark.parametrize("L,t", [(1, 3), (2, 2), (2, 3), (3, 2), (3, 3), (4, 2)])
def test_first_coefficient_is_minus_t_L_mu1(L, t):
    got = symbolic(L, t, eta_free=True)
    assert got[1] == {mono(1, 2 * t + 1): Fraction(-t * L)}
    assert got[0] == {mono(0, 2 * t + 1): Fraction(1, 2)}


@pytest.mark.parametrize("L,t", [(1, 2), (2, 2), (2, 3), (3, 2), (3, 3), (4, 2), (4, 3), (5, 2)])
def test_degree_law(L, t):
    deg = 1
    for _ in range(t - 1):
        deg = (2 * L - 1) * deg + L  # THEORY §5, recomputed here
    assert limit_degree_f(L, t) == deg
    R = default_ring(None, 2 * t + 1, eta_free=True)
    res = run_program(KrylovEvaluator(R), L, t, want_loss=False)
    fdeg = max(len(R.eta_coefficients(v, offset=b)) - 1 for b, v in res.f.items())
    assert fdeg == deg
    if L * t <= 9:
        loss = symbolic(L, t, eta_free=True)
        assert len(loss) - 1 == 2 * deg and loss[-1]


@pytest.mark.parametrize("L,t", [(1, 2), (2, 1), (2, 2), (3, 1), (2, 3), (3, 2)])
def test_explicit_evaluator_equals_krylov(L, t):
    X, y = rational_data(4, 3, seed=10 * L + t)
    R = default_ring([])
    explicit = R.eta_coefficients(run_program(ExplicitEvaluator(R, gram(X), y), L, t).loss)
    R2 = default_ring(moments(X, y, 2 * t + 1))
    krylov = R2.eta_coefficients(run_program(KrylovEvaluator(R2), L, t).loss)
    assert explicit == krylov


@pytest.mark.parametrize("L,t", [(2, 2), (3, 2), (2, 3)])
def test_eta_free_grading_equals_explicit_eta(L, t):
    assert symbolic(L, t, eta_free=True) == symbolic(L, t, eta_free=False)


@pytest.mark.skipif(not HAS_FLINT, reason="python-flint not installed")
@pytest.mark.parametrize("L,t", [(2, 2), (3, 2), (2, 3)])
def test_flint_and_sympy_rings_agree(L, t):
    assert symbolic(L, t, backend="flint") == symbolic(L, t, backend="sympy")
    X, y = rational_data(5, 2, seed=3)
    mus = moments(X, y, 2 * t + 1)
    a = default_ring(mus, backend="flint")
    b = default_ring(mus, backend="sympy")
    ra = a.eta_coefficients(run_program(KrylovEvaluator(a), L, t).loss)
    rb = b.eta_coefficients(run_program(KrylovEvaluator(b), L, t).loss)
    assert ra == rb


@pytest.mark.parametrize("L,t", [(1, 2), (2, 3), (3, 3)])
def test_folded_moment_products_equal_the_pairwise_sums(L, t):
    """Numeric exact μ: the engine folds μ into one factor before the polynomial products
    (KrylovEvaluator._fold); the pairwise route (one product per pair, μ applied per bucket) must give
    the same rationals, and so must the sympy ring (other arithmetic)."""
    from fractions import Fraction as F

    mus = [F(3, 7), F(5, 11), F(7, 13), F(11, 17), F(13, 19), F(17, 23), F(19, 29), F(23, 31), F(29, 37)]
    fast = KrylovEvaluator(default_ring(mus))
    assert fast._fold
    slow = KrylovEvaluator(default_ring(mus))
    slow._fold = False
    a, b = run_program(fast, L, t), run_program(slow, L, t)
    assert a.loss == b.loss and a.f == b.f
    for backend in ("sympy",):
        c = run_program(KrylovEvaluator(default_ring(mus, backend=backend)), L, t)
        assert default_ring(mus).eta_coefficients(a.loss) == default_ring(mus, backend=backend).eta_coefficients(c.loss)


def test_folded_inner_equals_pairwise_inner_with_scalar_slots():
    """KrylovEvaluator.inner for numeric μ folds μ into the side with more entries; against the pairwise
    route on random unbatched vectors (data slots i ≥ 0, scalar slot −1, shared and unshared words)."""
    import random

    rng = random.Random(5)
    mus = [Fraction(rng.randint(1, 99), rng.randint(1, 99)) for _ in range(12)]
    R = default_ring(mus)
    fast, slow = KrylovEvaluator(R), KrylovEvaluator(R)
    slow._fold = False
    words = [(), (1,), (-1,), (2, -1), (1, 1, -2)]

    def vec(n):
        out = {}
        for _ in range(n):
            key = (rng.choice(words), rng.randint(-1, 4))
            out[key] = R.const(Fraction(rng.randint(-9, 9), rng.randint(1, 9))) * R.eta ** rng.randint(0, 3) + R.one
        return out

    for _ in range(40):
        u, v = vec(rng.randint(0, 9)), vec(rng.randint(0, 9))
        assert fast.inner(u, v) == slow.inner(u, v) == slow.inner(v, u)


@pytest.mark.parametrize("L,t", [(1, 1), (1, 3), (2, 1), (2, 3), (3, 2), (3, 3), (4, 2), (5, 2)])
def test_plain_gd_adjoint_route_equals_run_program(L, t):
    """derive's plain-GD route (polyloss.derive._plain_gd_adjoint: f from the backward chain carried to
    layer 0, u from the forward chain on contracted vectors, no batched vector) gives the same loss and
    f rationals as run_program, on FLINT and sympy rings, and the same polynomials in the μ_j (symbolic:
    the identities hold in the indeterminates); and the explicit evaluator's loss on data."""
    from polyloss.derive import _plain_gd_adjoint

    X, y = rational_data(4, 3, seed=20 * L + t)
    mus = moments(X, y, 2 * t + 1)
    backends = ("flint", "sympy") if HAS_FLINT else ("sympy",)
    for backend in backends:
        R = default_ring(mus, backend=backend)
        a, b = run_program(KrylovEvaluator(R), L, t), _plain_gd_adjoint(KrylovEvaluator(R), L, t)
        assert a.loss == b.loss and a.f == b.f and b.losses == (b.loss,)
    R0 = default_ring([])
    explicit = R0.eta_coefficients(run_program(ExplicitEvaluator(R0, gram(X), y), L, t).loss)
    assert R.eta_coefficients(b.loss) == explicit
    if L * t <= 6:
        for eta_free in (True, False):
            S = default_ring(None, 2 * t + 1, eta_free=eta_free)
            a = run_program(KrylovEvaluator(S, track_mu=True), L, t)
            b = _plain_gd_adjoint(KrylovEvaluator(S, track_mu=True), L, t)
            assert a.loss == b.loss and a.f == b.f
