"""issue 13 part 4: derive caches (moments, derivations) and the root isolation paths."""

from __future__ import annotations

from fractions import Fraction

import pytest

from polyloss import derive as D
from polyloss.data import linear_teacher


@pytest.fixture(autouse=True)
def _fresh_caches():
    D.clear_caches()
    yield
    D.clear_caches()


def _ds():
    return linear_teacher(d=3, m=5, noise=0.1, seed=7)


def test_derive_cache_hit_returns_equal_result_and_changed_datum_misses():
    ds = _ds()
    a = D.derive(2, 2, data=ds, digits=20)
    assert D._cache_stats["derive_miss"] == 1
    b = D.derive(2, 2, data=ds, digits=20)
    assert D._cache_stats["derive_hit"] == 1
    assert b.loss_coefficients == a.loss_coefficients
    assert [cp.to_json() for cp in b.critical_points] == [cp.to_json() for cp in a.critical_points]
    D.clear_caches()
    c = D.derive(2, 2, data=ds, digits=20)
    assert c.to_json() == a.to_json()
    # a changed datum (in place) misses and gives a different polynomial
    X = ds.X.copy()
    X[0, 0] += 0.5
    d = D.derive(2, 2, data=(X, ds.y), digits=20)
    assert D._cache_stats["derive_miss"] == 2
    assert d.loss_coefficients != a.loss_coefficients
    # other keys miss too
    D.derive(2, 2, data=ds, digits=21)
    D.derive(2, 2, data=ds, digits=20, rationalize="1e-6")
    D.derive(3, 2, data=ds, digits=20)
    assert D._cache_stats["derive_miss"] == 5


def test_moment_cache_extends_across_steps_and_equals_uncached():
    ds = _ds()
    m3 = D.data_moments(ds, 3)
    D.clear_caches()
    m1 = D.data_moments(ds, 1)
    m3b = D.data_moments(ds, 3)
    assert D._cache_stats["moments_hit"] == 1
    assert m3b == m3
    assert m1.mus == m3.mus[:3] and m1.krylov == m3.krylov[:2]
    # float mode and rationalize are separate entries
    D.data_moments(ds, 2, exact=False)
    D.data_moments(ds, 2, rationalize="1e-6")
    assert D._cache_stats["moments_miss"] == 3
    k = D.data_moments(ds, 1, need_K=True)
    assert k.K is not None and len(k.K) == 5


def test_caches_are_bounded():
    ds = _ds()
    for i in range(D._MOMENT_CACHE_SIZE + 3):
        D.data_moments((ds.X + i, ds.y), 1)
    assert len(D._moment_cache) == D._MOMENT_CACHE_SIZE
    for i in range(D._DERIVE_CACHE_SIZE + 2):
        D.derive(1, 1, data=(ds.X, ds.y + i), digits=10)
    assert len(D._derive_cache) == D._DERIVE_CACHE_SIZE


def test_digest_distinguishes_types_and_values():
    assert D.data_digest(([[1]], [1])) != D.data_digest(([[1.0]], [1]))
    assert D.data_digest(([[Fraction(1, 3)]], [1])) != D.data_digest(([[1 / 3]], [1]))
    assert D.data_digest(([[1, 2]], [3])) == D.data_digest(([[1, 2]], [3]))
    assert D.data_digest(([[1, 2]], [3])) != D.data_digest(([[1], [2]], [3, 3]))


# --- root isolation: FLINT Descartes bisection vs sympy's Poly.intervals ---------------------------


def _random_polys(count=60, seed=11):
    import random

    rng = random.Random(seed)
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:  # dense random integers
            out.append([rng.randint(-10**6, 10**6) for _ in range(rng.randint(2, 30))])
        else:  # products of rational linear factors (repeats and near-duplicates) and random quadratics
            from flint import fmpz_poly

            P = fmpz_poly([rng.randint(1, 9), rng.randint(-5, 5), rng.randint(1, 9)])
            for _ in range(rng.randint(1, 6)):
                p, q = rng.randint(-40, 400), rng.randint(1, 50)
                P *= fmpz_poly([-p, q]) ** rng.randint(1, 3 if kind == 2 else 1)
                if kind == 3:  # a second root within ~1e-12 of the first
                    P *= fmpz_poly([-(p * 10**12 + 1), q * 10**12])
            out.append([int(v) for v in P.coeffs()])
    return out


def _contains(iv, pt):
    lo, hi = iv
    return lo <= pt[0] and pt[1] <= hi if lo != hi else pt[0] <= lo <= pt[1]


@pytest.mark.parametrize("ints", _random_polys())
def test_flint_isolation_matches_sympy(ints):
    f = D._isolate_flint(ints)
    s = D._isolate_sympy(ints)
    assert len(f) == len(s)
    assert [m for _, m in f] == [m for _, m in s]
    for (fi, _), (si, _) in zip(f, s):
        # the same root: the intervals intersect (both isolate it among all roots)
        assert max(fi[0], si[0]) <= min(fi[1], si[1])
    # disjoint and ascending
    for (a, _), (b, _) in zip(f, f[1:]):
        assert a[1] <= b[0] and not (a[0] == a[1] == b[0] == b[1])


def _squarefree_positive_part(ints):
    """Square-free part of ``ints`` without the factor η (the input of the Descartes bisections)."""
    from flint import fmpz_poly

    _, facs = fmpz_poly(list(ints)).factor_squarefree()
    S = fmpz_poly([1])
    for f, _e in facs:
        S *= f
    cs = [int(v) for v in S.coeffs()]
    while cs and cs[0] == 0:
        cs = cs[1:]
    return cs


def _hard_polys():
    """Clusters, huge coefficients, many positive roots, dyadic and rational roots on bisection points."""
    import random

    from flint import fmpz_poly

    rng = random.Random(23)
    out = []
    # a cluster of 4 roots within 1e-30 of 3/7, next to complex roots close to the real axis
    P = fmpz_poly([1])
    for k in range(4):
        P *= fmpz_poly([-(3 * 10**30 + 7 * k), 7 * 10**30])
    P *= fmpz_poly([10**20 * 9 + 1, -2 * 3 * 10**20, 10**20])  # roots 3 ± 1e-10 i
    out.append(P)
    # huge coefficients: a 3000-bit rational root, a 3000-bit pair ±i√B, 30 random positive rational
    # roots and a random cubic
    P = fmpz_poly([-(rng.getrandbits(3000) | 1), rng.getrandbits(3000) | 1]) * fmpz_poly([rng.getrandbits(3000), 0, 1])
    for _ in range(30):
        P *= fmpz_poly([-rng.randint(1, 10**6), rng.randint(1, 10**4)])
    out.append(P * fmpz_poly([rng.randint(1, 99), rng.randint(-99, 99), 0, rng.randint(1, 99)]))
    # roots exactly at the bisection points (dyadics: 1, 2, 1/2, 3/4, 5/8) and at 0 (removed)
    P = fmpz_poly([0, 1])
    for p, q in [(1, 1), (2, 1), (1, 2), (3, 4), (5, 8), (1, 3)]:
        P *= fmpz_poly([-p, q])
    out.append(P)
    # a Wilkinson-like polynomial (20 roots 1..20) and a Mignotte-like one (two roots ~2^-20 apart)
    P = fmpz_poly([1])
    for k in range(1, 21):
        P *= fmpz_poly([-k, 1])
    out.append(P)
    out.append(fmpz_poly([0] * 12 + [1]) - 2 * fmpz_poly([-1, 2**20]) ** 2)  # x^12 - 2(2^20 x - 1)^2
    # dense random, 60..120 coefficients of 200 bits
    for _ in range(3):
        out.append(fmpz_poly([rng.getrandbits(200) - 2**199 for _ in range(rng.randint(60, 120))]))
    return [[int(v) for v in P.coeffs()] for P in out]


@pytest.mark.parametrize("ints", _hard_polys() + _random_polys(count=24, seed=3))
def test_arb_descartes_equals_ball_descartes_and_sympy_count(ints, monkeypatch):
    """Two certified bisections with different arithmetic (arb balls with escalation; fixed-point
    integer balls) visit the same nodes, so their intervals must be identical; their count of roots
    in (0, ∞) must equal sympy's (Vincent–Akritas–Strzeboński, an independent algorithm)."""
    from sympy import Poly, Symbol

    S = _squarefree_positive_part(ints)
    if len(S) <= 1:
        return
    ref = D._descartes_isolate(S)
    for prec0 in (None, 8):  # 8 bits: escalations, down to exact counts, on every hard node
        got = D._descartes_isolate_arb(S, prec0=prec0)
        assert got == ref
    n_sympy = len(Poly(list(reversed(S)), Symbol("x"), domain="ZZ").intervals(inf=0))
    assert len(ref) == n_sympy
    # each open interval changes the sign of S (one simple root); a point interval is a root
    from flint import fmpq, fmpz_poly

    Sz = fmpz_poly(S)
    for lo, hi in ref:
        if lo == hi:
            assert Sz(fmpq(lo.numerator, lo.denominator)) == 0
        else:
            a, b = Sz(fmpq(lo.numerator, lo.denominator)), Sz(fmpq(hi.numerator, hi.denominator))
            assert a * b <= 0


def test_arb_descartes_deduces_halves_from_parities_and_keeps_the_ball_intervals():
    """The arb bisection fixes a half's variation count without its Taylor shift when Descartes' bounds
    leave one value (var ≡ root count mod 2 from the signs at the endpoints, var(left) + var(right) <=
    var(parent)); the nodes and intervals stay those of the fixed-point bisection (no deduction), on
    polynomials with many close positive roots, pairs without a sign change, complex roots near the axis
    and roots on bisection points."""
    import random

    from flint import fmpz_poly

    rng = random.Random(31)
    polys = []
    for _ in range(4):
        P = fmpz_poly([1])
        for _k in range(rng.randint(8, 20)):
            p, q = rng.randint(1, 3000), rng.randint(1, 1000)
            P *= fmpz_poly([-p, q])
            if rng.random() < 0.3:  # a close neighbour: no sign change across a small cell
                P *= fmpz_poly([-(p * 10**6 + rng.randint(1, 50)), q * 10**6])
        P *= fmpz_poly([rng.randint(1, 9) * 10**8 + 1, -2 * 10**4, 1])  # complex pair near the axis
        polys.append(P)
    P = fmpz_poly([1])
    for p, q in [(1, 1), (3, 2), (7, 4), (2, 1), (9, 8), (17, 16)]:  # dyadic roots on bisection points
        P *= fmpz_poly([-p, q])
    polys.append(P * fmpz_poly([-1, 3]))
    before = D._iso_stats.get("deduced_nodes", 0)
    for P in polys:
        S = _squarefree_positive_part([int(v) for v in P.coeffs()])
        ref = D._descartes_isolate(S)
        for prec0 in (None, 4):
            assert D._descartes_isolate_arb(S, prec0=prec0) == ref
    assert D._iso_stats.get("deduced_nodes", 0) > before


def test_arb_descartes_escalates_to_exact_counts():
    """At 2 bits every node is undetermined at first: the escalation path (and the final exact count)
    must still give the reference intervals; the counter records the recomputed nodes."""
    S = _squarefree_positive_part(_hard_polys()[0])
    before = D._iso_stats["exact_nodes"]
    assert D._descartes_isolate_arb(S, prec0=2) == D._descartes_isolate(S)
    assert D._iso_stats["exact_nodes"] > before


def test_derive_identical_with_arb_and_ball_descartes(monkeypatch):
    ds = linear_teacher(d=4, m=6, noise=0.1, seed=3)
    a = D.derive(3, 3, data=ds, digits=25).to_json()
    D.clear_caches()
    monkeypatch.setattr(D, "_DESCARTES", "ball")
    b = D.derive(3, 3, data=ds, digits=25).to_json()
    assert a == b  # intervals included: the same bisection nodes


def test_critical_points_identical_for_both_isolations(monkeypatch):
    import random

    rng = random.Random(5)
    for _ in range(12):
        coeffs = [Fraction(rng.randint(-999, 999), rng.randint(1, 99)) for _ in range(rng.randint(4, 16))]
        monkeypatch.setattr(D, "_ISOLATION", "sympy")
        a = D.critical_points(coeffs, 25)
        monkeypatch.setattr(D, "_ISOLATION", "flint")
        b = D.critical_points(coeffs, 25)
        assert [(c.eta, c.loss, c.kind, c.multiplicity, c.eta_exact) for c in a] == \
               [(c.eta, c.loss, c.kind, c.multiplicity, c.eta_exact) for c in b]


def test_isolation_falls_back_to_sympy_when_flint_fails(monkeypatch):
    def boom(*a, **k):
        raise D._IsolationFailed("test")

    coeffs = [Fraction(1), Fraction(-3), Fraction(1, 2), Fraction(1, 7), Fraction(-1, 50)]
    ref = D.critical_points(coeffs, 20)
    monkeypatch.setattr(D, "_descartes_isolate", boom)
    monkeypatch.setattr(D, "_descartes_isolate_arb", boom)
    before = dict(D._iso_stats)
    got = D.critical_points(coeffs, 20)
    assert D._iso_stats["fallback"] == before["fallback"] + 1
    assert [c.to_json()["eta"] for c in got] == [c.to_json()["eta"] for c in ref]
    assert [c.kind for c in got] == [c.kind for c in ref]
    monkeypatch.setattr(D, "_ISOLATION", "flint")
    with pytest.raises(D._IsolationFailed):
        D.critical_points(coeffs, 20)


def test_rational_and_multiple_roots_exact():
    # 𝓛' = (η - 1/3)^2 (η - 2)(η - 5/7)·3: an inflection at 1/3 and exact rational extrema
    from flint import fmpq_poly

    dP = fmpq_poly([-1, 3]) ** 2 * fmpq_poly([-2, 1]) * fmpq_poly([-5, 7])
    d = [Fraction(int(v.p), int(v.q)) for v in dP.coeffs()]
    coeffs = [Fraction(0)] + [d[k] / (k + 1) for k in range(len(d))]
    cps = D.critical_points(coeffs, 20)
    assert [(c.eta_exact, c.kind, c.multiplicity) for c in cps] == [
        (Fraction(1, 3), "inflection", 2), (Fraction(5, 7), "max", 1), (Fraction(2), "min", 1)]


def test_f_rows_flint_equals_fraction_path(monkeypatch):
    ds = linear_teacher(d=4, m=6, noise=0.1, seed=3)
    for rat in (None, "1e-6"):
        dm = D.data_moments(ds, 3, rationalize=rat)
        _, fv = D._numeric_limit(2, 3, dm, True)
        fast = D._f_rows(fv, dm, dm.m, Fraction(0), True)
        monkeypatch.setattr(D, "HAS_FLINT", False)
        slow = D._f_rows(fv, dm, dm.m, Fraction(0), True)
        monkeypatch.undo()
        assert fast == slow
        assert all(type(v) is Fraction for r in fast for v in r)


def test_a_cache_hit_cannot_be_changed_through_its_data_info():
    from polyloss.data import linear_teacher
    from polyloss.derive import clear_caches, derive

    clear_caches()
    ds = linear_teacher(d=3, m=5, seed=7)
    first = derive(2, 1, ds)
    first.data_info["m"] = -1  # a caller editing its result
    again = derive(2, 1, ds)
    assert again.data_info["m"] == 5 and again.loss_coefficients == first.loss_coefficients


def test_moment_scale_makes_scaled_moments_integers():
    mus = [Fraction(3, 8), Fraction(5, 2**7 * 25), Fraction(1, 2**11 * 101), Fraction(7, 3**5 * 101**2)]
    D_ = D._moment_scale(mus)
    assert all((v * D_ ** (j + 1)).denominator == 1 for j, v in enumerate(mus))
    assert D._moment_scale([Fraction(1), Fraction(2)]) == 1


@pytest.mark.parametrize("L,t", [(1, 3), (2, 3), (3, 3)])
def test_scaled_integer_moments_give_the_same_limit(L, t):
    """The integer-moment route (η ↦ η/D afterwards) against the ring on the original rationals."""
    from polyloss.fock import KrylovEvaluator, default_ring, run_program

    X = [[Fraction(k * 7 + i, 101 + i) for i in range(3)] for k in range(4)]
    y = [Fraction(k - 2, 13 + k) + Fraction(1, 3) for k in range(4)]
    for data in ((X, y), linear_teacher(d=3, m=4, noise=0.1, seed=1)):
        dm = D.data_moments(data, t)
        assert D._moment_scale(dm.mus) > 1
        _, res = D._numeric_limit_raw(L, t, dm, True)
        ref = run_program(KrylovEvaluator(default_ring(dm.mus)), L, t)
        assert res.loss == ref.loss
        assert res.f == ref.f


def test_exact_sign_ball_prefilter_matches_exact_evaluation():
    """_exact_sign answers from an arb ball when it excludes 0: compare with exact rational
    evaluation at roots (0), next to roots (tiny values of either sign) and at random points."""
    import random

    import flint

    rng = random.Random(4)
    for _ in range(20):
        roots = [Fraction(rng.randint(-50, 500), rng.randint(1, 64)) for _ in range(rng.randint(1, 8))]
        P = flint.fmpz_poly([rng.getrandbits(400) + 1])
        for r in roots:
            P *= flint.fmpz_poly([-r.numerator, r.denominator])
        pts = roots + [r + Fraction(s, 10**40) for r in roots for s in (-1, 1)]
        pts += [Fraction(rng.randint(-10**9, 10**9), rng.randint(1, 10**6)) for _ in range(10)]
        for q in pts:
            v = P(flint.fmpq(q.numerator, q.denominator))
            assert D._exact_sign(flint, P, q) == (v > 0) - (v < 0)


# --- several processes (issue 13: every core) -----------------------------------------------------


def test_derive_procs_setting(monkeypatch):
    monkeypatch.setenv("POLYLOSS_DERIVE_PROCS", "3")
    assert D._derive_procs() == 3
    monkeypatch.setenv("POLYLOSS_DERIVE_PROCS", "1")
    assert D._derive_procs() == 1
    monkeypatch.setenv("POLYLOSS_DERIVE_PROCS", "many")
    assert D._derive_procs() == 1
    monkeypatch.delenv("POLYLOSS_DERIVE_PROCS")
    assert 1 <= D._derive_procs() <= D._MAX_PROCS


def _square_or_boom(x):
    if x == "boom":
        raise D._IsolationFailed("boom in a child")
    return x * x


def test_fork_map_is_the_serial_map_and_raises_child_errors():
    tasks = list(range(23))
    for procs in (1, 2, 3):
        assert D._fork_map(_square_or_boom, tasks, procs) == [x * x for x in tasks]
    with pytest.raises(D._IsolationFailed, match="boom"):
        D._fork_map(_square_or_boom, [1, 2, "boom", 3, 4], 2)


def test_fork_map_redoes_the_tasks_of_a_dead_child():
    import os

    parent = os.getpid()

    def fn(x):
        if os.getpid() != parent:
            os._exit(3)  # a child that dies without sending results
        return -x

    assert D._fork_map(fn, list(range(9)), 2) == [-x for x in range(9)]


@pytest.mark.parametrize("ints", _hard_polys()[:2] + _hard_polys()[5:])
def test_parallel_descartes_equals_serial_and_ball(ints, monkeypatch):
    """The bisection over 2 processes (breadth first, then subtrees taken by free processes; a right half
    whose left sibling ran elsewhere is tested instead of deduced) gives the serial intervals."""
    S = _squarefree_positive_part(ints)
    if len(S) <= 1:
        return
    ref = D._descartes_isolate(S)
    monkeypatch.setattr(D, "_PAR_MIN_DEGREE", 0)
    for procs in ("2", "3"):
        monkeypatch.setenv("POLYLOSS_DERIVE_PROCS", procs)
        assert D._descartes_isolate_arb(S) == ref
        assert D._descartes_isolate_arb(S, prec0=8) == ref


def test_parallel_critical_points_and_derive_equal_serial(monkeypatch):
    import random

    rng = random.Random(8)
    polys = [[Fraction(rng.randint(-999, 999), rng.randint(1, 99)) for _ in range(rng.randint(12, 40))] for _ in range(4)]
    ds = linear_teacher(d=4, m=6, noise=0.1, seed=3)
    monkeypatch.setenv("POLYLOSS_DERIVE_PROCS", "1")
    ser = [[cp.to_json() for cp in D.critical_points(c, 25)] for c in polys]
    ser_d = D.derive(3, 3, data=ds, digits=25).to_json()
    D.clear_caches()
    monkeypatch.setattr(D, "_PAR_MIN_DEGREE", 0)
    monkeypatch.setenv("POLYLOSS_DERIVE_PROCS", "2")
    par = [[cp.to_json() for cp in D.critical_points(c, 25)] for c in polys]
    assert par == ser and any(par)
    assert D.derive(3, 3, data=ds, digits=25).to_json() == ser_d


def test_beside_runs_the_loss_in_a_child_and_equals_serial():
    """_beside: the fmpq_poly of child_fn comes back through a pipe (as integers) while parent_fn runs
    here; a child that fails has its value recomputed here."""
    import os

    import flint

    P = flint.fmpq_poly([3, -(2**300) + 1, 7, 5 * 2**4000]) / (2**200 * 3)
    got, mine = D._beside(lambda: P * P, lambda: "here")
    assert got == P * P and mine == "here"
    parent = os.getpid()

    def fails_in_child():
        if os.getpid() != parent:
            raise RuntimeError("child only")
        return P

    got, mine = D._beside(fails_in_child, lambda: 1)
    assert got == P and mine == 1


def test_derive_f_rows_beside_the_loss_equal_serial(monkeypatch):
    """The integer-moment route computes f's rows beside the loss's final products (two processes) when the
    degree is large; forced on a small case, the derivation (f rows included) equals the serial one."""
    ds = linear_teacher(d=4, m=6, noise=0.1, seed=5)
    monkeypatch.setenv("POLYLOSS_DERIVE_PROCS", "1")
    ser = D.derive(2, 3, data=ds, digits=25)
    D.clear_caches()
    monkeypatch.setattr(D, "_PAR_MIN_DEGREE", 0)
    monkeypatch.setenv("POLYLOSS_DERIVE_PROCS", "2")
    par = D.derive(2, 3, data=ds, digits=25)
    assert par.f_coefficients == ser.f_coefficients and par.loss_coefficients == ser.loss_coefficients
    assert par.to_json() == ser.to_json()
