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

A basin that leaves no trace in L' and L'' at the neighbouring grid points can still be missed by
this search (``Minimisation.certified`` is then False); raise ``n_grid`` if that matters.

**Certified search.** When the caller also supplies the complete polynomial in ball arithmetic
(``exact``: ``(arb_poly of 𝓛, bits)``, or a callable ``level -> (arb_poly, bits)`` that recomputes it
at 2^level times its base precision, or None to give up; :func:`polyloss.poly.exact_polynomial` does so whenever the network is
small enough), every sign change of 𝓛′ in (0, Λ] is also isolated rigorously: the window is
bisected, and on each piece [c − r, c + r] the Taylor shift 𝓛′(c + ε) = Σ d_k ε^k (balls) proves
either no zero (|d_0| > Σ_{k≥1} |d_k| r^k), or monotonicity (|d_1| > Σ_{k≥2} k |d_k| r^{k−1})
together with the signs at both ends (split points are chosen where the sign is decided). Each
− → + change is a certified bracket of exactly one local minimum: a minimum found by stages 1–3
inside it is kept unchanged (same bits as without ``exact``), a bracket without one is a basin the
search missed and is refined by stage 3. ``Minimisation.certified`` is then True: the list holds
*every* local minimum in the window. If a piece cannot be decided (a double zero of 𝓛′, or balls
too wide even at 4× the precision) the result of stages 1–3 stands, with ``certified`` False.

**Divergence.** When the stable loss overflows inside the window (GD diverges there), the window is
shrunk to the stable region: Λ' = the largest η found finite by bisection between the last finite
and the first overflowing grid point, times (1 − 1e-6). ``Minimisation.window`` is then Λ' and
``requested_window`` the original Λ (``shrink=False`` restores the old error); ``grid``/``grid_loss``
stay on the requested window's first-stage grid, with +inf where GD diverges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyloss.errors import NumericalError, invalid

__all__ = ["LocalMinimum", "Minimisation", "minimise", "VERSION"]

# Bumped whenever the search can return a different minimiser for the same loss; stored in run
# configs so that a resumed run never mixes records of two versions.
VERSION = "grid+hermite-refinement+certified-isolation/3"


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
    grid: tuple = ()  # the first-stage search grid, :func:`search_grid` (never the refined points), of the
    # requested window even when it was shrunk
    grid_loss: tuple = ()  # the stable loss on ``grid`` (+inf where GD diverges)
    certified: bool = False  # every sign change of L' in (0, window] was isolated rigorously
    requested_window: float | None = None  # the window asked for, when it was shrunk (GD diverges beyond)

    @property
    def window_shrunk(self) -> bool:
        return self.requested_window is not None

    def to_dict(self) -> dict:
        return {
            "eta_opt": self.eta_opt,
            "loss_at_eta_opt": self.loss_opt,
            "at_edge": self.at_edge,
            "local_minima": [lm.to_dict() for lm in self.local_minima],
            "window": self.window,
            "minima_certified": self.certified,
            "requested_window": self.requested_window,
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


class _Undecided(Exception):
    pass


def _as_arb(x):
    import flint

    return flint.arb(flint.fmpq(*float(x).as_integer_ratio()))


def _sign(b) -> int:
    """Sign of a ball: −1, 1, or 0 when it contains 0."""
    if b > 0:
        return 1
    if b < 0:
        return -1
    return 0


def isolate_sign_changes(dpoly, lo: float, hi: float, *, max_pieces: int = 20000):
    """Every sign change of the polynomial ``dpoly`` (a flint ``arb_poly``) in [lo, hi], certified:
    a list of (a, b, s) with exactly one simple zero in (a, b) where the sign goes from ``s`` to −s.
    Raises :class:`_Undecided` when a piece cannot be decided (double zero, or balls too wide)."""
    import flint

    out, stack, pieces = [], [(float(lo), float(hi))], 0
    sign_at = {}

    def sgn(x):
        if x not in sign_at:
            sign_at[x] = _sign(dpoly(_as_arb(x)))
        return sign_at[x]

    while stack:
        a, b = stack.pop()
        pieces += 1
        if pieces > max_pieces or not (b - a > 4e-16 * max(abs(a), abs(b), 1e-300)):
            raise _Undecided(f"could not decide L' on [{a!r}, {b!r}]")
        r = _as_arb(b - a) / 2
        q = dpoly(flint.arb_poly([_as_arb(a) + r, 1]))  # L'(c + e), exact centre (a + b)/2
        d = q.coeffs()
        if not d:
            raise _Undecided("L' is identically zero")
        tail0 = flint.arb(0)
        tail1 = flint.arb(0)
        rk = flint.arb(1)
        for k in range(1, len(d)):
            tail1 += k * abs(d[k]) * rk  # Σ_{k≥1} k |d_k| r^{k-1}  (d_1 term removed below)
            rk *= r
            tail0 += abs(d[k]) * rk
        if abs(d[0]) > tail0:
            continue  # no zero on [a, b]
        d1 = d[1] if len(d) > 1 else flint.arb(0)
        if abs(d1) > tail1 - abs(d1):  # L'' has a constant sign: at most one zero
            sa, sb = sgn(a), sgn(b)
            if sa != 0 and sb != 0:
                if sa != sb:
                    out.append((a, b, sa))
                continue
        # split where the sign of L' is decided (every piece's ends then have a definite sign)
        for frac in (0.4970703125, 0.3720703125, 0.6220703125, 0.2470703125, 0.7470703125):
            m = a + (b - a) * frac
            if a < m < b and sgn(m) != 0:
                break
        else:
            raise _Undecided(f"could not decide the sign of L' near {0.5 * (a + b)!r}")
        stack.append((m, b))
        stack.append((a, m))
    out.sort()
    return out


def _certified_brackets(exact, window: float, levels: int = 3):
    """Sign changes of L' in [0, window] from the exact polynomial: ``(arb_poly, prec)``, or a
    callable ``level -> (arb_poly, prec)`` giving it at 2^level times its base precision (raised
    while balls are too wide to decide). The isolation runs at ``prec`` bits. None when undecided."""
    import flint

    for level in range(levels):
        got = exact(level) if callable(exact) else exact
        if got is None:  # the caller declines more precision (time budget)
            return None
        poly, prec = got
        old = flint.ctx.prec
        flint.ctx.prec = int(prec)
        try:
            return isolate_sign_changes(poly.derivative(), 0.0, window)
        except _Undecided:
            if not callable(exact):
                return None
        finally:
            flint.ctx.prec = old
    return None


def stable_window(taylor, window: float, grid: np.ndarray, T: np.ndarray, iters: int = 60) -> float:
    """The largest η (to ~1e-12 relative) below the first grid point where the loss is not finite,
    times (1 − 1e-6): the window shrunk to where GD does not overflow."""
    finite = np.all(np.isfinite(T), axis=1)
    first_bad = int(np.argmin(finite))
    if first_bad == 0:
        raise NumericalError(f"the loss is not finite at eta = {grid[0]:.3g}: GD diverges at the smallest grid point")
    lo, hi = float(grid[first_bad - 1]), float(grid[first_bad])
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if not (lo < mid < hi):
            break
        if np.all(np.isfinite(np.asarray(taylor(np.array([mid]))))):
            lo = mid
        else:
            hi = mid
    return lo * (1 - 1e-6)


def minimise(taylor, window: float, *, n_grid: int = 96, rtol: float = 1e-13, max_iter: int = 100,
             coeffs=None, refine_rounds: int = 4, exact=None, shrink: bool = True) -> Minimisation:
    """Minimise over (0, ``window``] given a Taylor oracle (see the module docstring).

    ``coeffs``: optionally the *complete* monomial coefficients, used only where certified.
    ``exact``: optionally the complete polynomial as ``(flint arb_poly, bits)`` (or a callable
    ``level -> (arb_poly, bits)``, see :func:`_certified_brackets`): every sign change of L' is then isolated rigorously.
    ``shrink``: when GD diverges inside the window, search the stable part of it (else raise).
    """
    if not (isinstance(window, (int, float, np.floating)) and np.isfinite(window) and window > 0):
        raise invalid("window", window, "a finite number > 0")
    window = float(window)
    requested = None
    grid = search_grid(window, n_grid)
    T = _first_stage(taylor, grid, coeffs)
    if not np.all(np.isfinite(T)):
        bad = grid[~np.all(np.isfinite(T), axis=1)]
        if not shrink:
            raise NumericalError(
                f"the loss overflows inside the window at eta = {bad[0]:.3g} (window = {window:.3g}); "
                "GD diverges there: choose a smaller window"
            )
        # curves stay on the fixed grid of the requested window (+inf where GD diverges)
        base_grid, base_loss = tuple(grid.tolist()), tuple(np.where(np.isfinite(T[:, 0]), T[:, 0], np.inf).tolist())
        requested, window = window, stable_window(taylor, window, grid, T)
        grid = search_grid(window, n_grid)
        T = _first_stage(taylor, grid, coeffs)
        if not np.all(np.isfinite(T)):  # pragma: no cover - the bisection found a finite point
            raise NumericalError(f"the loss is not finite inside the stable window (0, {window:.6g}]")
    else:
        base_grid, base_loss = tuple(grid.tolist()), tuple(T[:, 0].tolist())  # curves stay on the fixed grid
    grid, T = _refine(taylor, grid, T, rounds=refine_rounds)
    val, der = T[:, 0], T[:, 1]
    lo_idx = np.nonzero((der[:-1] < 0) & (der[1:] >= 0))[0]
    x = _polish(taylor, grid[lo_idx].copy(), grid[lo_idx + 1].copy(), der[lo_idx], der[lo_idx + 1], rtol, max_iter)
    val_edge, falls_at_edge = float(val[-1]), bool(der[-1] < 0)
    brackets = None if exact is None else _certified_brackets(exact, window)
    certified = brackets is not None
    if certified:
        # every minimum the search found lies in a certified bracket and is kept bit for bit; a
        # bracket without one is a basin the search missed: refine it from the bracket
        kept, missing = [], []
        for lo, hi, s in brackets:
            if s < 0:
                inside = x[(x >= lo) & (x <= hi)]
                (kept.append(float(inside[0])) if inside.size else missing.append((max(lo, 0.0), hi)))
        if missing:
            a = np.array([mm[0] for mm in missing])
            b = np.array([mm[1] for mm in missing])
            Ta, Tb = np.asarray(taylor(a)), np.asarray(taylor(b))
            kept.extend(_polish(taylor, a, b, Ta[:, 1], Tb[:, 1], rtol, max_iter).tolist())
        x = np.array(sorted(kept), dtype=float)
        if brackets:  # the sign of L' after the last certified change; else keep the grid's sign
            falls_at_edge = brackets[-1][2] > 0
    minima: list[LocalMinimum] = []
    if x.size:
        Tx = np.asarray(taylor(x))
        minima.extend(LocalMinimum(float(e), float(v)) for e, v in zip(x, Tx[:, 0]))
    if falls_at_edge:
        minima.append(LocalMinimum(window, val_edge, at_edge=True))
    if not minima:  # derivative >= 0 everywhere: the infimum is at η → 0+
        minima.append(LocalMinimum(float(grid[0]), float(T[0, 0]), at_edge=True))
    best = min(minima, key=lambda lm: lm.loss)
    return Minimisation(best.eta, best.loss, best.at_edge, tuple(minima), window, base_grid, base_loss,
                        certified, requested)


def _polish(taylor, a, b, da, db, rtol, max_iter):
    """Refine brackets [a, b] with L'(a) < 0 <= L'(b), all together, with the stable oracle: a secant
    start, then safeguarded Newton (bisection whenever Newton leaves the bracket), to ``rtol``."""
    if a.size == 0:
        return np.zeros(0)
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
    return x


def _first_stage(taylor, grid, coeffs):
    if coeffs is not None:
        T, ok = _screen(coeffs, grid)
        if not ok.all():
            T[~ok] = np.asarray(taylor(grid[~ok]))
        return T
    return np.asarray(taylor(grid))
