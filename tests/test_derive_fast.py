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
