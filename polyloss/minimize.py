"""Minimisers of a loss curve over a learning-rate window (0, Λ], robust for ill-conditioned polynomials.

The loss is never evaluated from its monomial coefficients (catastrophic cancellation for t ≥ 2,
THEORY §6). Instead the caller supplies a *Taylor oracle*: ``taylor(etas) -> (G, 3)`` with the
value, first derivative and half the second derivative at each η, which the engine computes by
GD at η with forward-mode derivatives. The search is:

1. one batched evaluation on a grid mixing linear and geometric spacing over (0, Λ] (the
   geometric part resolves minimisers that shrink with width, e.g. SP's η_n ∝ 1/n). When the
   complete monomial coefficients are supplied, a grid point is evaluated from them only where a
   rigorous rounding bound (``γ Σ_k |c_k| η^k`` for the value, the same for the derivative, with
   ``γ = 4·deg·eps``) certifies the value to 1e-9 relative and the sign of the derivative; every
   other point goes to the stable oracle (for t = 1 the monomial form is always certified, for
   t ≥ 3 it rarely is);
2. adaptive refinement: on each grid interval a cubic Hermite model of L' (from L' and L'' at
   both ends) shows where a pair of turning points may hide between grid points; the oracle is
   evaluated there and the points join the grid, for a few rounds (this finds basins narrower
   than the grid spacing, e.g. the t = 3 limit's minima at paper scale, about one spacing wide);
   then every sign change − → + of the derivative brackets a local minimum, and a negative
   derivative at Λ means the minimum over the window is at its edge (flagged);
3. all brackets are refined together, always with the stable oracle: a secant start from the
   bracket's derivatives, then safeguarded Newton steps with exact derivatives (bisection whenever
   Newton leaves the bracket), to a relative tolerance ``rtol``.

A basin that leaves no trace in L' and L'' at the neighbouring grid points can still be missed;
raise ``n_grid`` if that matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyloss.errors import NumericalError, invalid

__all__ = ["LocalMinimum", "Minimisation", "minimise", "VERSION"]

# Bumped whenever the search can return a different minimiser for the same loss; stored in run
# configs so that a resumed run never mixes records of two versions.
VERSION = "grid+hermite-refinement/2"


@dataclass(frozen=True)
class LocalMinimum:
    eta: float
    loss: float
    at_edge: bool = False

    def to_dict(self) -> dict:
        return {"eta": self.eta, "loss": self.loss, "at_edge": self.at_edge}


@dataclass(frozen=True)
class Minimisation:
    """The minimiser of the loss over (0, window] and every local minimum found there."""

    eta_opt: float
    loss_opt: float
    at_edge: bool
    local_minima: tuple
    window: float
    grid: tuple = ()  # the first-stage search grid, :func:`search_grid` (never the refined points)
    grid_loss: tuple = ()  # the stable loss on ``grid``

    def to_dict(self) -> dict:
        return {
            "eta_opt": self.eta_opt,
            "loss_at_eta_opt": self.loss_opt,
            "at_edge": self.at_edge,
            "local_minima": [lm.to_dict() for lm in self.local_minima],
            "window": self.window,
        }


def search_grid(window: float, n_grid: int = 96) -> np.ndarray:
    """The η grid of the first stage: linear on [0, Λ] plus geometric on [1e-6 Λ, Λ], sorted."""
    n_lin = max(8, (2 * n_grid) // 3)
    n_log = max(4, n_grid - n_lin)
    lin = np.linspace(0.0, window, n_lin + 1)
    log = np.geomspace(window * 1e-6, window, n_log)
    return np.unique(np.concatenate([lin, log]))


def _screen(coeffs, grid: np.ndarray):
    """Monomial value/derivative on the grid and a mask of the points certified by the rounding bound."""
    c = np.asarray(coeffs, dtype=np.float64)
    k = np.arange(c.size)
    gamma = 4.0 * max(c.size, 2) * np.finfo(float).eps
    with np.errstate(over="ignore", invalid="ignore"):
        P = grid[:, None] ** k  # (G, K+1)
        val = P @ c
        bound_v = gamma * (P @ np.abs(c))
        dk = (k * c)[1:]
        dP = P[:, :-1]
        der = dP @ dk
        bound_d = gamma * (dP @ np.abs(dk))
        half2 = (k[2:] * (k[2:] - 1) / 2 * c[2:]) @ P[:, :-2].T if c.size > 2 else np.zeros_like(grid)
    ok = np.isfinite(val) & np.isfinite(der) & (bound_v <= 1e-9 * np.abs(val)) & (bound_d < 0.5 * np.abs(der))
    return np.stack([val, der, half2], axis=1), ok


def _hidden_turns(grid: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Points where a cubic Hermite model of L' (values and slopes at both ends of each interval)
    vanishes inside an interval whose end derivatives have the same sign: candidate hidden basins."""
    a, b = grid[:-1], grid[1:]
    h = b - a
    d0, d1 = T[:-1, 1], T[1:, 1]
    s0, s1 = 2 * T[:-1, 2] * h, 2 * T[1:, 2] * h  # dL'/ds on s in [0, 1]
    same = (np.sign(d0) == np.sign(d1)) | (d0 == 0) | (d1 == 0)
    out = []
    for i in np.nonzero(same)[0]:
        # Hermite cubic p(s) = c3 s^3 + c2 s^2 + c1 s + c0
        c0, c1 = d0[i], s0[i]
        c2 = -3 * d0[i] + 3 * d1[i] - 2 * s0[i] - s1[i]
        c3 = 2 * d0[i] - 2 * d1[i] + s0[i] + s1[i]
        roots = np.roots([c3, c2, c1, c0]) if abs(c3) > 0 else np.roots([c2, c1, c0])
        for r in roots:
            if abs(r.imag) < 1e-12 and 0.0 < r.real < 1.0:
                out.append(a[i] + r.real * h[i])
    return np.array(out)


def _refine(taylor, grid: np.ndarray, T: np.ndarray, rounds: int):
    for _ in range(rounds):
        new = _hidden_turns(grid, T)
        new = new[~np.isin(new, grid)]
        if new.size == 0:
            break
        Tn = np.asarray(taylor(new))
        grid = np.concatenate([grid, new])
        T = np.concatenate([T, Tn])
        order = np.argsort(grid)
        grid, T = grid[order], T[order]
        finite = np.all(np.isfinite(T), axis=1)
        grid, T = grid[finite], T[finite]
    return grid, T


def minimise(taylor, window: float, *, n_grid: int = 96, rtol: float = 1e-13, max_iter: int = 100,
             coeffs=None, refine_rounds: int = 4) -> Minimisation:
    """Minimise over (0, ``window``] given a Taylor oracle (see the module docstring).

    ``coeffs``: optionally the *complete* monomial coefficients, used only where certified.
    """
    if not (isinstance(window, (int, float, np.floating)) and np.isfinite(window) and window > 0):
        raise invalid("window", window, "a finite number > 0")
    window = float(window)
    grid = search_grid(window, n_grid)
    if coeffs is not None:
        T, ok = _screen(coeffs, grid)
        if not ok.all():
            T[~ok] = np.asarray(taylor(grid[~ok]))
    else:
        T = np.asarray(taylor(grid))
    if not np.all(np.isfinite(T)):
        bad = grid[~np.all(np.isfinite(T), axis=1)]
        raise NumericalError(
            f"the loss overflows inside the window at eta = {bad[0]:.3g} (window = {window:.3g}); "
            "GD diverges there: choose a smaller window"
        )
    base_grid, base_loss = tuple(grid.tolist()), tuple(T[:, 0].tolist())  # curves stay on the fixed grid
    grid, T = _refine(taylor, grid, T, rounds=refine_rounds)
    val, der = T[:, 0], T[:, 1]
    lo_idx = np.nonzero((der[:-1] < 0) & (der[1:] >= 0))[0]
    a, b = grid[lo_idx], grid[lo_idx + 1]
    minima: list[LocalMinimum] = []
    if a.size:
        da, db = der[lo_idx], der[lo_idx + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = a - da * (b - a) / (db - da)  # secant start
        x = np.where((x > a) & (x < b), x, 0.5 * (a + b))
        active = np.ones(x.shape, dtype=bool)
        for _ in range(max_iter):
            idx = np.nonzero(active)[0]
            Tx = np.asarray(taylor(x[idx]))
            d, h = Tx[:, 1], 2.0 * Tx[:, 2]
            ai, bi, xi = a[idx], b[idx], x[idx]
            ai = np.where(d < 0, xi, ai)
            bi = np.where(d >= 0, xi, bi)
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = xi - d / h
            ok = (h > 0) & (newton >= ai) & (newton <= bi)
            x_new = np.where(ok, newton, 0.5 * (ai + bi))
            done = (d == 0) | (np.abs(x_new - xi) <= rtol * np.abs(x_new)) | (bi - ai <= rtol * bi)
            a[idx], b[idx] = ai, bi
            x[idx] = np.where(d == 0, xi, x_new)  # a converged bracket is frozen from here on
            active[idx[done]] = False
            if not active.any():
                break
        Tx = np.asarray(taylor(x))
        minima.extend(LocalMinimum(float(e), float(v)) for e, v in zip(x, Tx[:, 0]))
    if der[-1] < 0:
        minima.append(LocalMinimum(window, float(val[-1]), at_edge=True))
    if not minima:  # derivative >= 0 everywhere on the grid: the infimum is at η → 0+
        minima.append(LocalMinimum(float(grid[0]), float(val[0]), at_edge=True))
    best = min(minima, key=lambda lm: lm.loss)
    return Minimisation(best.eta, best.loss, best.at_edge, tuple(minima), window, base_grid, base_loss)
