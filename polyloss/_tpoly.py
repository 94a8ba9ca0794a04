"""Truncated polynomial arithmetic on coefficient arrays (private).

A polynomial in a variable ε is an array whose axis 0 holds ascending coefficients; the trailing
axes are batch axes (centres, data points, vector entries) and broadcast. Every operation
truncates at degree ``K``, which is exact for the coefficients up to ``K``. Backend-agnostic: the
namespace is taken from the arrays (numpy or CuPy).
"""

from __future__ import annotations

import numpy as np

from polyloss._backend import namespace_of as _xp


def deg(a) -> int:
    return a.shape[0] - 1


def add(a, b):
    """``a + b`` (no truncation needed: the degree is the larger one)."""
    xp = _xp(a)
    shape = np.broadcast_shapes(a.shape[1:], b.shape[1:])
    out = xp.zeros((max(a.shape[0], b.shape[0]),) + shape, dtype=xp.result_type(a, b))
    out[: a.shape[0]] += a
    out[: b.shape[0]] += b
    return out


def mul(a, b, K: int):
    """``a · b`` truncated at degree ``K``; trailing axes broadcast."""
    xp = _xp(a)
    if a.shape[0] > b.shape[0]:
        a, b = b, a  # loop over the shorter one
    D = min(deg(a) + deg(b), K)
    shape = np.broadcast_shapes(a.shape[1:], b.shape[1:])
    out = xp.zeros((D + 1,) + shape, dtype=xp.result_type(a, b))
    for i in range(min(deg(a), D) + 1):
        n = min(deg(b), D - i) + 1
        out[i : i + n] += a[i] * b[:n]
    return out


def times_eta(p, eta0, K: int):
    """``p · η`` with ``η = eta0 + ε`` (``eta0=None`` means η = ε, monomial coefficients).

    ``eta0`` has shape (G,) and multiplies axis 1 of ``p`` (the centre axis).
    """
    xp = _xp(p)
    D = min(deg(p) + 1, K)
    out = xp.zeros((D + 1,) + p.shape[1:], dtype=p.dtype)
    out[1 : D + 1] = p[:D]
    if eta0 is not None:
        e = eta0.reshape((1, -1) + (1,) * (p.ndim - 2))
        n = min(deg(p), D) + 1
        out[:n] += e * p[:n]
    return out


def vdot(a, b, K: int):
    """Inner products over the last axis of two polynomial vectors: (da+1, G, n)·(db+1, G, n) → (D+1, G)."""
    xp = _xp(a)
    M = xp.einsum("igx,jgx->ijg", a, b)
    D = min(deg(a) + deg(b), K)
    out = xp.zeros((D + 1,) + M.shape[2:], dtype=M.dtype)
    for i in range(min(deg(a), D) + 1):
        n = min(deg(b), D - i) + 1
        out[i : i + n] += M[i, :n]
    return out


def sumsq(r, K: int):
    """``Σ_i r_i²`` over the last axis of a polynomial array (D+1, G, m) → (D'+1, G)."""
    return vdot(r, r, K)
