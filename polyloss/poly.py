"""One network, one data set: its exact loss polynomial, η_n and local minima (``polyloss poly``).

JSON schema ``polyloss.poly/1`` (see :meth:`PolyResult.to_json`):

``schema``, ``depth``, ``width``, ``input_dim``, ``m``, ``steps``, ``param`` ({name, alpha, gamma}),
``degree`` (truncation K), ``full_degree``, ``truncated``, ``loss_coefficients`` (ascending powers
of η at step T, exact up to ``degree``), ``f_coefficients`` (one list per training point, ascending),
``eta_opt`` (minimiser over (0, window]), ``loss_at_eta_opt``, ``at_edge`` (minimiser at the window's
edge), ``local_minima`` (list of {eta, loss, at_edge}), ``window``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyloss import __version__
from polyloss.data import Dataset
from polyloss.engine import LossEngine, LossPolynomial
from polyloss.errors import invalid
from polyloss.minimize import Minimisation, minimise
from polyloss.spec import Parametrization
from polyloss.weights import Weights

__all__ = ["PolyResult", "exact_polynomial", "default_window"]

SCHEMA = "polyloss.poly/1"


SCREEN_MAX_DEGREE = 256


def polynomial_for_minimisation(engine: LossEngine, steps: int, degree: int | None):
    """The polynomial to report (up to ``degree``) and the complete coefficients that screen the
    minimiser's grid (None when the complete degree exceeds :data:`SCREEN_MAX_DEGREE`, where the
    monomial form is never certified and only costs time)."""
    from polyloss.engine import loss_degree

    if loss_degree(engine.depth, steps) > SCREEN_MAX_DEGREE:
        return engine.polynomial(steps, degree), None
    full = engine.polynomial(steps)
    return (full if degree is None else full.truncate(degree)), full.loss


def default_window(data: Dataset, depth: int) -> float:
    """Λ = 4 · μ_1 / (L μ_2): four times the μP one-step limit η_∞ (THEORY §4)."""
    return 4.0 * data.eta_inf_t1(depth)


def _check_window(window) -> float:
    try:
        w = float(window)
    except (TypeError, ValueError):
        raise invalid("window", window, "a finite number > 0") from None
    if not (np.isfinite(w) and w > 0):
        raise invalid("window", window, "a finite number > 0")
    return w


@dataclass(frozen=True, eq=False)
class PolyResult:
    polynomial: LossPolynomial
    minimisation: Minimisation
    depth: int
    width: int
    input_dim: int
    m: int
    param: Parametrization

    def to_json(self) -> dict:
        p, mn = self.polynomial, self.minimisation
        out = {
            "schema": SCHEMA,
            "polyloss_version": __version__,
            "depth": self.depth,
            "width": self.width,
            "input_dim": self.input_dim,
            "m": self.m,
            "steps": p.steps,
            "param": self.param.to_dict(),
            "degree": p.degree,
            "full_degree": p.full_degree,
            "truncated": p.truncated,
            "loss_coefficients": p.loss.tolist(),
            "f_coefficients": p.f.tolist(),
        }
        out.update(mn.to_dict())
        return out


def exact_polynomial(
    weights: Weights,
    data: Dataset,
    param: Parametrization,
    steps: int,
    degree: int | None = None,
    window: float | None = None,
    n_grid: int = 96,
) -> PolyResult:
    """The exact loss polynomial of one network after ``steps`` GD steps, and its minimisers.

    ``window`` defaults to :func:`default_window` (needs ``K y ≠ 0``).
    """
    engine = LossEngine(weights, data, param)
    window = default_window(data, weights.depth) if window is None else _check_window(window)
    poly, screen = polynomial_for_minimisation(engine, steps, degree)
    mn = minimise(lambda etas: engine.taylor(etas, steps, order=2), window, n_grid=n_grid, coeffs=screen)
    return PolyResult(poly, mn, weights.depth, weights.width, weights.input_dim, data.m, param)
