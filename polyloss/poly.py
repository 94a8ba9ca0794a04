"""One network, one data set: its exact loss polynomial, η_n and local minima (``polyloss poly``).

JSON schema ``polyloss.poly/3`` (see :meth:`PolyResult.to_json`); strict JSON, never NaN/Infinity
(written with :mod:`polyloss._jsonsafe`):

``schema``, ``depth``, ``width``, ``input_dim``, ``m``, ``steps``, ``param`` ({name, alpha, gamma}),
``recipe`` (the training recipe, :meth:`polyloss.recipe.Recipe.to_dict`: trained, lr_exponents,
schedule, weight_decay, wd_mode, momentum, nesterov; exact numbers as strings),
``observed_alpha`` (−log(‖V‖²/n)/log n of the given V: the readout exponent α is *not used* with
given weights, only γ is; a mismatch with ``param.alpha`` is warned about on the CLI),
``degree`` (truncation K), ``full_degree``, ``truncated``,
``loss_coefficients`` (ascending powers of η at step T, up to ``degree``; ``null`` where the value
is outside the float64 range), ``loss_coefficient_errors`` (a certified bound on |printed − exact|
for each coefficient, ``null`` where none), ``f_coefficients`` / ``f_coefficient_errors`` (one list
per training point, ascending), ``coefficient_accuracy`` ({``method``: how the coefficients and
bounds were computed, ``rtol``, ``accurate_loss_coefficients``: how many leading loss coefficients
are certified to relative error ≤ rtol, ``accurate_f_coefficients``: the same for f (smallest over
the points), ``null_coefficients``: how many printed coefficients are null,
``monomial_error_at_eta_opt``: a bound on |Σ_k c_k η^k − 𝓛(η)| at ``eta_opt`` when the printed
coefficients are summed exactly — the monomial form is ill-conditioned for T ≥ 2, THEORY §6; use
``eval`` or ``loss_at_eta_opt`` for values}),
``eta_opt`` (minimiser over (0, window]), ``loss_at_eta_opt``, ``at_edge`` (minimiser at the window's
edge), ``local_minima`` (list of {eta, loss, at_edge}), ``minima_certified`` (every sign change of
𝓛′ in the window was isolated rigorously, see :mod:`polyloss.minimize`), ``window`` (the window
searched), ``requested_window`` (the window asked for when it had to be shrunk because GD
diverges inside it, else ``null``), ``eval`` (list of {eta, loss, diverged}: the stable loss at the
requested learning rates; ``loss`` ``null`` where GD overflows).

An Adam document (``polyloss poly --optimizer adam``, :func:`polyloss.adam.adam_polynomial`) has the
same schema with an ``optimizer`` block ({name: "adam", steps: 1, eps, exponent, betas, hidden_lr}),
``eps_diagnostics`` and ``loss_at_init``, no ``recipe`` and no certified error bounds; a GD document has
no ``optimizer`` key (absent = GD) and is unchanged.

Changes from ``polyloss.poly/2``: the ``recipe`` block (``full_degree`` is the recipe's degree,
:func:`polyloss.recipe.recipe_loss_degree`).

Changes from ``polyloss.poly/1``: coefficient errors and ``coefficient_accuracy``, ``null`` instead of
NaN/Infinity, ``minima_certified``, ``requested_window``, ``observed_alpha``, ``eval``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyloss import __version__
from polyloss.data import Dataset
from polyloss.engine import COEFF_RTOL, LossEngine, LossPolynomial, arb_seconds, loss_degree
from polyloss.errors import invalid
from polyloss.minimize import Minimisation, minimise
from polyloss.recipe import PLAIN, Recipe, recipe_loss_degree
from polyloss.spec import Parametrization
from polyloss.weights import Weights

__all__ = ["PolyResult", "exact_polynomial", "default_window", "observed_alpha", "ARB_MAX_SECONDS"]

SCHEMA = "polyloss.poly/3"


SCREEN_MAX_DEGREE = 256

#: Largest estimated time (:func:`polyloss.engine.arb_seconds`, seconds on one core) for which
#: ``certify="auto"`` recomputes the complete polynomial in ball arithmetic, which certifies the
#: coefficients and the search for local minima (precision raised only within this budget too).
ARB_MAX_SECONDS = 10.0

_CERTIFY = ("auto", "bound", "arb")


def polynomial_for_minimisation(engine: LossEngine, steps: int, degree: int | None, certify: bool = False):
    """The polynomial to report (up to ``degree``) and the complete coefficients that screen the
    minimiser's grid (None when the complete degree exceeds :data:`SCREEN_MAX_DEGREE`, where the
    monomial form is never certified and only costs time).

    ``certify=True``: the reported polynomial carries certified error bounds
    (:meth:`LossEngine.polynomial`; values unchanged): ``poly.accurate_terms()`` is then the number of
    leading loss coefficients accurate to :data:`polyloss.engine.COEFF_RTOL`, ``poly.loss_error`` the
    bound on each (None for lazily sampled layers).
    """
    full_degree = _engine_degree(engine, steps)
    if full_degree > SCREEN_MAX_DEGREE:
        return engine.polynomial(steps, degree, certify=certify), None
    if certify and degree is not None and degree < full_degree:  # certify only what is reported
        full = engine.polynomial(steps)
        return engine.polynomial(steps, degree, certify=True), full.loss
    full = engine.polynomial(steps, certify=certify)
    return (full if degree is None else full.truncate(degree)), full.loss


def _engine_degree(engine: LossEngine, steps: int) -> int:
    """The complete loss degree of ``engine``'s recipe (plain GD: :func:`loss_degree`)."""
    recipe = getattr(engine, "recipe", None)
    return loss_degree(engine.depth, steps) if recipe is None else recipe_loss_degree(engine.depth, steps, recipe)


def as_recipe(recipe, name: str = "recipe") -> Recipe:
    """A :class:`Recipe`, a dict as :meth:`Recipe.to_dict` writes, or None (the plain recipe) as a Recipe;
    anything else is a one-line SpecError naming ``name``."""
    from polyloss.errors import SpecError

    if recipe is None:
        return PLAIN
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        try:
            return Recipe.from_dict(recipe)
        except SpecError as exc:
            msg = str(exc)
            raise SpecError(msg if msg.startswith(f"`{name}`") else f"`{name}`: {msg}") from None
        except TypeError:
            raise invalid(name, recipe, "a dict as written by Recipe.to_dict()") from None
    raise invalid(name, type(recipe).__name__, "None, a polyloss.recipe.Recipe or a dict as written by Recipe.to_dict()")


def default_window(data: Dataset, depth: int, recipe=None, param="mup") -> float:
    """Λ = 4 · η_∞^{(1)}: four times the minimiser of the μP one-step limit. Plain GD: μ_1/(L μ_2)
    (THEORY §4). A recipe that trains the input or readout layer moves f^{(1)} by k η K̄y at first
    order, with k = L (hidden layers) + 1 (readout) + d (input) over the layers whose gradient step
    survives in the limit (docs/theory.md §7), so its one-step minimiser is μ_1/(k μ_2); the hidden-only
    window would be (k/L)× too wide and take in far basins."""
    k = _first_order_weight(depth, data.d, recipe, param)
    return 4.0 * data.eta_inf_t1(depth) if k == depth else 4.0 * data.eta_inf_t1(1) / k


def _first_order_weight(depth: int, d: int, recipe, param):
    """k of :func:`default_window`: L for plain GD and hidden-only recipes, each active layer's weight
    times its rate constant c_ℓ (:attr:`Recipe.lr_scales`: c multiplies the first-order term)."""
    if recipe is None or recipe.is_plain_for(param):
        return depth
    if not (recipe.trained - {"hidden"}):
        c = recipe.lr_scale("hidden")
        return depth if c == 1 else float(depth * c)
    from polyloss.errors import SpecError
    from polyloss.power import recipe_power_counting

    try:
        active = [layer for layer, g in recipe_power_counting(recipe, param, depth).gradient.items() if g == "active"]
    except SpecError:  # no power counting for this parametrization: keep the hidden-only rule
        return depth
    k = sum({"input": d, "hidden": depth, "readout": 1}[layer] * recipe.lr_scale(layer) for layer in active)
    return (int(k) if k.denominator == 1 else float(k)) if k else depth


def _check_window(window) -> float:
    try:
        w = float(window) if not isinstance(window, bool) else float("nan")
    except (TypeError, ValueError, OverflowError):
        raise invalid("window", window, "a finite number between 1e-100 and 1e100") from None
    if not (np.isfinite(w) and 1e-100 <= w <= 1e100):
        raise invalid("window", window, "a finite number between 1e-100 and 1e100")
    return w


def observed_alpha(V) -> float | None:
    """The readout exponent α that the given V suggests: V ~ N(0, n^-α) gives ‖V‖² ≈ n^{1−α}."""
    V = np.asarray(V, dtype=float)
    n = V.size
    s2 = float(V @ V) / n if n else 0.0
    if n < 2 or not (s2 > 0 and np.isfinite(s2)):
        return None
    return -np.log(s2) / np.log(n)


def alpha_consistent(alpha: float, V) -> bool:
    """Whether ``n·Var``-scale of V fits V ~ N(0, n^-alpha): n^alpha ‖V‖²/n within a factor
    max(4, exp(8 √(2/n))) of 1 (generous: ‖V‖²/σ² ~ χ²_n has relative s.d. √(2/n))."""
    a = observed_alpha(V)
    if a is None:
        return True
    n = np.asarray(V).size
    log_ratio = (float(alpha) - a) * np.log(n)  # log of (σ̂² / n^-alpha)
    return abs(log_ratio) <= max(np.log(4.0), 8.0 * np.sqrt(2.0 / n))


@dataclass(frozen=True, eq=False)
class PolyResult:
    polynomial: LossPolynomial
    minimisation: Minimisation
    depth: int
    width: int
    input_dim: int
    m: int
    param: Parametrization
    coefficient_method: str = "float64 (not certified)"
    observed_alpha: float | None = None
    evaluations: tuple = ()  # ((eta, loss or None), ...)
    recipe: Recipe = PLAIN

    @property
    def accurate_terms(self) -> int | None:
        return self.polynomial.accurate_terms(COEFF_RTOL)

    def monomial_error_at(self, eta: float) -> float | None:
        """Bound on |Σ ĉ_k η^k − 𝓛(η)| for the printed coefficients summed exactly (None if unknown)."""
        p = self.polynomial
        if p.loss_error is None or p.truncated or not np.all(np.isfinite(p.loss_error)):
            return None
        from fractions import Fraction

        e = Fraction(float(eta))
        return float(sum(Fraction(float(x)) * e**k for k, x in enumerate(p.loss_error))) * (1 + 1e-12)

    def to_json(self) -> dict:
        from polyloss._jsonsafe import finite

        p, mn = self.polynomial, self.minimisation
        loss_err = None if p.loss_error is None else p.loss_error
        null_count = int(np.sum(~np.isfinite(p.loss))) + int(np.sum(~np.isfinite(p.f)))
        out = {
            "schema": SCHEMA,
            "polyloss_version": __version__,
            "depth": self.depth,
            "width": self.width,
            "input_dim": self.input_dim,
            "m": self.m,
            "steps": p.steps,
            "param": self.param.to_dict(),
            "recipe": self.recipe.to_dict(),
            "observed_alpha": self.observed_alpha,
            "degree": p.degree,
            "full_degree": p.full_degree,
            "truncated": p.truncated,
            "loss_coefficients": p.loss,
            "loss_coefficient_errors": loss_err,
            "f_coefficients": p.f,
            "f_coefficient_errors": p.f_error,
            "coefficient_accuracy": {
                "method": self.coefficient_method,
                "rtol": COEFF_RTOL,
                "accurate_loss_coefficients": p.accurate_terms(COEFF_RTOL),
                "accurate_f_coefficients": p.accurate_f_terms(COEFF_RTOL),
                "null_coefficients": null_count,
                "monomial_error_at_eta_opt": self.monomial_error_at(mn.eta_opt),
            },
        }
        out.update(mn.to_dict())
        out["eval"] = [{"eta": e, "loss": v, "diverged": v is None} for e, v in self.evaluations]
        return finite(out)


def _merge(fast, mid, rad):
    """Per coefficient: the float64 recursion's value where it is within ``COEFF_RTOL`` of the ball
    (so that it stays bit-identical to ``sample`` records), else the ball's rounded midpoint; and a
    certified bound on |value − exact| (|value − mid| + the midpoint's own bound ``rad``)."""
    fast = np.asarray(fast, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        err_fast = np.abs(fast - mid) * (1 + 4 * np.finfo(float).eps) + rad
        use_fast = np.isfinite(fast) & np.isfinite(err_fast) & (err_fast <= COEFF_RTOL * np.abs(fast))
    return np.where(use_fast, fast, mid), np.where(use_fast, err_fast, rad)


def _ball_precision(coeffs, window: float) -> int:
    """Bits for the ball recomputation: 128 + log2 of the monomial condition Σ|c_k| Λ^k / |c_0| (the
    sum cancels down to the loss, about c_0 or less in the window), between 256 and 4096."""
    if coeffs is None:
        return 512
    c = np.abs(np.asarray(coeffs, dtype=float))
    k = np.nonzero(np.isfinite(c) & (c > 0))[0]
    if k.size == 0 or not (c[0] > 0 and np.isfinite(c[0])):
        return 1024
    logs = np.log(c[k]) + k * np.log(window)
    log_m = logs.max() + np.log(np.exp(logs - logs.max()).sum())
    if not np.all(np.isfinite(c)):
        log_m += 710.0 * 4  # float64 overflowed: at least that much more
    bits = 128 + max(0.0, (log_m - np.log(c[0])) / np.log(2))
    return int(min(4096, max(256, 64 * np.ceil(bits / 64))))


def _check_certify(certify) -> str:
    if certify not in _CERTIFY:
        raise invalid("certify", certify, "one of " + ", ".join(map(repr, _CERTIFY)))
    return certify


def check_eval_etas(etas) -> np.ndarray:
    """Learning rates for :func:`exact_polynomial`'s ``eval_etas``: finite numbers > 0 (a string is
    parsed like ``sweep --etas``: 'lin:A:B:K', 'log:A:B:K' or a comma list)."""
    valid = "finite learning rates > 0: a comma list, 'lin:START:STOP:COUNT' or 'log:START:STOP:COUNT'"
    if isinstance(etas, str):
        from polyloss.errors import SpecError
        from polyloss.train import parse_etas

        try:
            arr = parse_etas(etas)
        except SpecError:
            raise invalid("eval", etas, valid) from None
    else:
        try:
            arr = np.atleast_1d(np.asarray(etas, dtype=float))
        except (TypeError, ValueError):
            raise invalid("eval", etas, valid) from None
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise invalid("eval", etas, valid)
    return arr


def exact_polynomial(
    weights: Weights,
    data: Dataset,
    param: Parametrization,
    steps: int,
    degree: int | None = None,
    window: float | None = None,
    n_grid: int = 96,
    certify: str = "auto",
    eval_etas=None,
    recipe=None,
    channel: bool = False,
) -> PolyResult:
    """The exact loss polynomial of one network after ``steps`` GD steps, and its minimisers.

    ``window`` defaults to :func:`default_window` (needs ``K y ≠ 0``); if GD diverges inside the
    window it is shrunk to the stable region (``minimisation.requested_window`` keeps the request).

    ``certify``: every coefficient carries a certified error bound. ``'bound'``: float64 with a
    running error bound (about 3× the plain cost). ``'auto'`` (default): also recompute the
    complete polynomial in arb ball arithmetic (certifies far more coefficients, and lets the
    minimiser isolate every sign change of 𝓛′ rigorously) when :func:`polyloss.engine.arb_seconds` ≤ :data:`ARB_MAX_SECONDS`.
    ``'arb'``: always (may be slow).

    ``eval_etas``: learning rates (> 0) at which to report the stable loss (``evaluations``).

    ``recipe``: the training recipe (:class:`~polyloss.recipe.Recipe`, its ``to_dict()`` dict, or None
    for plain GD). Non-plain recipes are not recomputed in ball arithmetic (``certify='auto'`` keeps
    the float64 bounds; ``'arb'`` is refused by the engine).

    ``channel``: the network carries biases on a constant last coordinate
    (:func:`polyloss.interop.augmented_network`; ``recipe`` is then that function's).
    """
    from polyloss._budget import check_poly  # refuse absurd degrees / sizes before any work

    recipe = as_recipe(recipe)
    recipe.check_steps(steps)
    check_poly(weights.depth, weights.width, weights.input_dim, data.m, steps, degree,
               trained=recipe.trained_matrices(weights.depth))
    certify = _check_certify(certify)
    evals = None if eval_etas is None else check_eval_etas(eval_etas)
    engine = LossEngine(weights, data, param, recipe=recipe, channel=channel)
    window = default_window(data, weights.depth, recipe, param) if window is None else _check_window(window)
    full_degree = _engine_degree(engine, steps)
    with np.errstate(over="ignore", invalid="ignore"):
        poly = engine.polynomial(steps, degree, certify=True)
    method = ("float64 with a certified running error bound (Higham's standard model)" if poly.certified
              else "float64 (not certified: lazy or device layers)")
    screen = None
    if full_degree <= SCREEN_MAX_DEGREE:
        with np.errstate(over="ignore", invalid="ignore"):
            screen = (poly if not poly.truncated else engine.polynomial(steps)).loss
    prec0 = _ball_precision(poly.loss if not poly.truncated else screen, window)
    secs = lambda prec: arb_seconds(weights.depth, weights.width, data.m, steps, full_degree, prec)  # noqa: E731
    use_arb = certify == "arb" or (certify == "auto" and engine.recipe is None and secs(prec0) <= ARB_MAX_SECONDS)
    exact = None  # no ball-arithmetic oracle unless the arb route runs
    if use_arb and engine.certifiable and engine.xp is np:
        cache = {}

        def complete(level=0):
            prec = min(prec0 * 2**level, 16384)
            if level and certify == "auto" and secs(prec) > ARB_MAX_SECONDS:
                return None  # more precision would exceed the budget
            if prec not in cache:
                cache[prec] = engine.polynomial_arb(steps, None, prec=prec)
            return cache[prec]

        exact_p = complete()
        ex = exact_p if degree is None else exact_p.truncate(degree)
        loss, loss_err = _merge(poly.loss, ex.loss, ex.loss_error)
        f, f_err = _merge(poly.f, ex.f, ex.f_error)
        poly = LossPolynomial(loss, f, poly.loss_by_step, poly.f_by_step, poly.steps, poly.degree, poly.full_degree,
                              loss_err, f_err)
        method = (f"float64 values checked against arb ball arithmetic ({prec0} bits); the arb value "
                  "where float64 is off by more than rtol")

        def exact(level=0):
            import flint

            p = complete(level)
            return None if p is None else (flint.arb_poly(list(p.loss_balls)), min(prec0 * 2**level, 16384))

    mn = minimise(lambda etas: engine.taylor(etas, steps, order=2), window, n_grid=n_grid, coeffs=screen, exact=exact)
    evaluations = ()
    if evals is not None:
        vals = engine.loss_at(evals, steps)
        evaluations = tuple((float(e), float(v) if np.isfinite(v) else None) for e, v in zip(evals, vals))
    return PolyResult(poly, mn, weights.depth, weights.width, weights.input_dim, data.m, param, method,
                      observed_alpha(weights.V), evaluations, recipe)
