"""Exact infinite-width derivations: closed forms, data evaluation, minimisers, power counting.

This module owns the public :func:`derive` (the ``polyloss derive`` command) and the stored
``derivations/``. It drives the Fock-space engine of :mod:`polyloss.fock` (THEORY §5):

* **closed form** (no data): ``𝓛_∞^{(t)}(η) = Σ_k c_k η^k`` with each ``c_k`` a polynomial with
  rational coefficients in the moments ``μ_j = (1/m) yᵀK̄^j y``; likewise
  ``f_∞^{(t)} = Σ_b F_b(η) K̄^b y``;
* **data** (exact): the same engine with the exact moments of the data substituted (floats are
  converted to their exact binary value unless ``rationalize`` gives a tolerance), so the result is
  the closed form evaluated at the data, exactly (tested);
* **data** (``exact=False``): the same program in float64, labelled inexact;
* all positive **critical points** of the exact polynomial, certified by real-root isolation over
  Q (a Descartes bisection on python-flint arb balls with exact fallbacks; sympy ``Poly.intervals``
  without FLINT or when a check fails), refined to the requested number of digits, classified;
* **power counting** for SP, NTP and the (α, γ) family (THEORY §2), with the SP/NTP rescaled limit;
* the **finite-width expansion** at t = 1 (THEORY §4): φ_k as sums over k-subsets of layers.

Heavy imports (sympy, numpy) happen inside functions; the engine itself never sees numpy.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations
from typing import Any, Sequence

from polyloss import __version__
from polyloss import _jsonsafe as jsonsafe
from polyloss.errors import DataError, SpecError, invalid
from polyloss.fock import (
    HAS_FLINT,
    BlockKrylovEvaluator,
    ExplicitEvaluator,
    FloatRing,
    KrylovEvaluator,
    LimitBiases,
    LimitScalars,
    MomentIndexError,
    ProgramResult,
    default_ring,
    frozen_scalars,
    recipe_needs_eta,
    recipe_scalars,
    limit_degree_f,
    limit_degree_loss,
    run_program,
)
from polyloss.fock import _fraction_coprime  # a Fraction from coprime p, q > 0 (no gcd)
from polyloss.power import PowerCounting, RecipePowerCounting, power_counting, recipe_power_counting
from polyloss.power import sp_rescaled_mean_coefficients  # noqa: F401  (re-exported)
from polyloss.spec import Parametrization

__all__ = [
    "SCHEMA",
    "CriticalPoint",
    "PowerCounting",
    "FiniteExpansion",
    "Derivation",
    "derive",
    "closed_form",
    "check_recipe",
    "data_moments",
    "evaluate_closed_form",
    "critical_points",
    "power_counting",
    "finite_expansion",
    "moment_expr",
    "moment_latex",
]

SCHEMA = "polyloss.derivation/1"
#: derive() refuses the closed form of an l2/decoupled-decay recipe (ring Q[η, μ]) when the plain
#: limit's loss degree exceeds this: L = 2, t = 3 (degree 34) takes 0.2 s, L = 3, t = 3 (86) four minutes
_ETA_RING_MAX_DEGREE = 64
DEFAULT_DIGITS = 30
MAX_DEPTH = 64
MAX_STEPS = 12


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_int(name, value, lo, hi=None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise invalid(name, value, f"an integer >= {lo}" + (f" and <= {hi}" if hi else ""))
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        raise invalid(name, value, f"an integer >= {lo}" + (f" and <= {hi}" if hi else ""))
    return value


def _check_positive_fraction(name, value) -> Fraction | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise invalid(name, value, "a positive finite number")
    try:
        q = parse_fraction(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        raise invalid(name, value, "a positive finite number") from None
    if q <= 0:
        raise invalid(name, value, "a positive finite number")
    return q


# --------------------------------------------------------------------------------------------
# Moment polynomials: {exponent tuple over (mu0, mu1, ...): Fraction}
# --------------------------------------------------------------------------------------------


def check_recipe(recipe, param="mup", steps: int | None = None):
    """The recipe :func:`derive` runs: None for plain GD (today's program, bit for bit), else the
    :class:`~polyloss.recipe.Recipe` itself when it has an exact infinite-width limit in η; anything
    else is a one-line SpecError.

    Which recipes have a limit is decided by power counting (:func:`polyloss.power.recipe_power_counting`,
    docs/theory.md §7): μP initialisation, every trained layer at or below its μP rate (input n,
    hidden 1, readout 1/n; layers below it are frozen in the limit) with at least one at it, and no
    decay that diverges (coupled l2 decay on an input layer trained at rate n does). Any schedule
    whose rates are exact rationals, any decay mode, heavy-ball or Nesterov momentum.
    """
    from polyloss.recipe import Recipe

    if recipe is None:
        return None
    if not isinstance(recipe, Recipe):
        raise invalid("recipe", recipe, "None or a polyloss.recipe.Recipe")
    p = Parametrization.parse(param)
    if recipe.is_plain_for(p):
        return None
    if p.alpha != 2:
        raise SpecError(f"`recipe` ({recipe.describe()}) has no infinite-width limit under param={p.name!r} "
                        "(alpha != 2: f at initialisation does not vanish); the exact limit is derived under muP")
    pc = recipe_power_counting(recipe, p)
    if not pc.has_limit:
        why = ("no layer learns at that scale" if not pc.learns else
               f"the limit exists only in the rescaled rate n^({-pc.eta})*eta")
        raise SpecError(f"`recipe` ({recipe.describe()}) has no infinite-width limit in eta: power counting gives "
                        f"eta_n ~ n^({pc.eta}) ({why}; see polyloss.power.recipe_power_counting)")
    if recipe.schedule.needs_width:
        raise SpecError(f"`recipe` schedule {recipe.schedule.spec!r} depends on the width n: its rates change with n "
                        "(the first steps vanish as n grows), so there is no infinite-width limit in eta; sample or "
                        "sweep it at finite widths")
    if steps is not None and not recipe.schedule.exact(steps):
        raise SpecError(f"`recipe` schedule {recipe.schedule.spec!r} has irrational rates for steps={steps} "
                        "(cos(pi s/t) is rational only for s/t in {0, 1/3, 1/2, 2/3}); the exact limit needs "
                        "rational rates: use t <= 3 or an explicit list of rates")
    return recipe


def _limit_plan(recipe, param="mup"):
    """{layer: (effective Recipe, gradient active)} for the trained layers of a recipe with a limit."""
    import dataclasses

    pc = recipe_power_counting(recipe, param)
    return {layer: (dataclasses.replace(recipe, wd_mode=mode, weight_decay=w), pc.gradient[layer] == "active")
            for layer, (mode, w) in pc.effective.items()}


def recipe_limit_degree(depth: int, steps: int, recipe=None, param="mup") -> int:
    """Degree in η of the limit loss: :func:`polyloss.fock.limit_degree_loss` with L replaced by the
    number k of matrices whose gradient step survives in the limit (L hidden, +1 input, +1 readout)."""
    if recipe is None or recipe.is_plain_for(param):
        return limit_degree_loss(depth, steps)
    plan = _limit_plan(recipe, param)
    k = sum((depth if layer == "hidden" else 1) for layer, (_, grad) in plan.items() if grad)
    return limit_degree_loss(k, steps)


def recipe_needs_input_dim(recipe, param="mup") -> bool:
    """Whether the recipe's limit depends on the input dimension d (a trained input layer at the μP
    rate n moves ``h_0(x)`` by ``g_0 ξᵀx`` with ``ξᵀx_j = d (K̄ r)_j``)."""
    if recipe is None or recipe.is_plain_for(param) or "input" not in recipe.trained:
        return False
    return _limit_plan(recipe, param)["input"][1]


def limit_needs_eta(recipe, param="mup") -> bool:
    """Whether the limit program needs η as a ring indeterminate (a decay 1 − ηρω acts in it)."""
    if recipe is None:
        return False
    return any(recipe_needs_eta(eff) for eff, _ in _limit_plan(recipe, param).values())


def limit_scalars(recipe, steps: int, R, input_dim=None, param="mup"):
    """The :class:`polyloss.fock.LimitScalars` of a recipe with a limit (None for plain GD)."""
    if recipe is None:
        return None
    plan = _limit_plan(recipe, param)
    if "input" in plan and plan["input"][1] and input_dim is None:
        raise SpecError(f"`input_dim`=None is invalid for recipe ({recipe.describe()}): the limit with a trained input "
                        "layer depends on the input dimension d; must be an integer >= 1 (or pass data)")

    def sc(layer):
        eff, grad = plan[layer]
        return recipe_scalars(eff, steps, R, gradient=grad, scale=recipe.lr_scale(layer))

    hidden = sc("hidden") if "hidden" in plan else frozen_scalars(steps)
    return LimitScalars(hidden, sc("input") if "input" in plan else None, sc("readout") if "readout" in plan else None,
                        Fraction(1) if input_dim is None else Fraction(_check_int("input_dim", input_dim, 1)))


def check_biases(biases, param="mup", recipe=None):
    """The :class:`polyloss.recipe.Biases` that :func:`derive` runs, or None when no bias matters (None, or
    no trained bias and a zero input bias); anything without an exact μP limit is a one-line SpecError."""
    from polyloss.recipe import Biases

    if biases is None:
        return None
    if not isinstance(biases, Biases):
        raise invalid("biases", biases, "None or a polyloss.recipe.Biases")
    if biases.none:
        return None
    p = Parametrization.parse(param)
    if (p.alpha, p.gamma) != (2, 0) and (recipe is None or recipe.is_plain_for(p) or p.alpha != 2):
        raise SpecError(f"`biases` ({biases.describe()}) are invalid with param={p.name!r}: the limit with biases is "
                        "derived under muP (alpha = 2, gamma = 0); off muP there is no limit in eta")
    if recipe is not None and recipe.weight_decay != 0:
        raise SpecError(f"`biases` ({biases.describe()}) are invalid with weight decay ({recipe.describe()}): the "
                        "limit carries no decay on biases (torch decays them too); give weight_decay=0")
    return biases


def limit_biases(biases, recipe, steps: int, R) -> LimitBiases:
    """The :class:`polyloss.fock.LimitBiases` of a checked :class:`~polyloss.recipe.Biases`: each trained bias
    follows the recipe's schedule and momentum at its own rate constant, without decay."""
    from polyloss.recipe import PLAIN

    base = PLAIN if recipe is None else recipe

    def sc(layer):
        if layer not in biases.layers:
            return None
        return recipe_scalars(base, steps, R, scale=biases.lr_scale(layer))

    return LimitBiases(sc("input"), sc("hidden"), sc("readout"), biases.input_var, biases.hidden_var)


def int_str(n: int) -> str:
    """Decimal digits of an integer of any size (Python's ``str`` refuses more than 4300 digits;
    FLINT's conversion has no such limit and is quasi-linear)."""
    if abs(n).bit_length() < 12_000:
        return str(n)
    import flint

    return str(flint.fmpz(n))


def _parse_int(text: str) -> int:
    text = text.strip()
    if len(text) < 3_500:
        return int(text)
    import flint

    if not text.lstrip("+-").isdigit():
        raise ValueError(f"not an integer: {text[:20]}...")
    return int(flint.fmpz(text))


def parse_fraction(value) -> Fraction:
    """A Fraction from a number or a string ``'p'``, ``'p/q'`` or a decimal, of any size (the
    inverse of :func:`_frac_str`)."""
    if not isinstance(value, str):
        return Fraction(value)
    num, sep, den = value.strip().partition("/")
    if len(value) < 3_500 or not (num.strip().lstrip("+-").isdigit() and (not sep or den.strip().isdigit())):
        return Fraction(value.strip())
    return Fraction(_parse_int(num), _parse_int(den) if sep else 1)


def _frac_str(q: Fraction) -> str:
    return int_str(q.numerator) if q.denominator == 1 else f"{int_str(q.numerator)}/{int_str(q.denominator)}"


def _mono_key(mon: tuple) -> tuple:
    # graded: by total degree, then lexicographically on the exponents (highest mu first)
    return (sum(mon), tuple(reversed(mon)))


def _signed_sum(poly: dict, term) -> str:
    """``Σ c·m`` over the monomials in graded order, written ``a - b + c``; ``term(|c|, mon)`` writes one."""
    parts = [("-" if poly[mon] < 0 else "+", term(abs(poly[mon]), mon)) for mon in sorted(poly, key=_mono_key)
             if poly[mon] != 0]
    if not parts:
        return "0"
    return ("-" if parts[0][0] == "-" else "") + parts[0][1] + "".join(f" {sign} {body}" for sign, body in parts[1:])


def moment_expr(poly: dict) -> str:
    """A moment polynomial as a sympy-parsable string in ``mu0, mu1, …`` (``'0'`` if empty)."""

    def term(a: Fraction, mon: tuple) -> str:
        factors = [f"mu{j}" + (f"**{e}" if e > 1 else "") for j, e in enumerate(mon) if e]
        if not factors:
            return _frac_str(a)
        if a == 1:
            return "*".join(factors)
        if a.denominator == 1:
            return f"{int_str(a.numerator)}*" + "*".join(factors)
        return f"{int_str(a.numerator)}*" * (a.numerator != 1) + "*".join(factors) + f"/{int_str(a.denominator)}"

    return _signed_sum(poly, term)


def moment_latex(poly: dict) -> str:
    """A moment polynomial in LaTeX (``\\mu_j``)."""

    def term(a: Fraction, mon: tuple) -> str:
        factors = "".join(r"\mu_{%d}" % j + (f"^{{{e}}}" if e > 1 else "") for j, e in enumerate(mon) if e)
        return ("" if factors and a == 1 else _frac_latex(a)) + factors

    return _signed_sum(poly, term)


def _frac_latex(q: Fraction) -> str:
    if q.denominator == 1:
        return int_str(q.numerator)
    s = "-" if q < 0 else ""
    return s + r"\tfrac{%s}{%s}" % (int_str(abs(q.numerator)), int_str(q.denominator))


def _eval_moment_poly(poly: dict, mus: Sequence[Fraction]) -> Fraction:
    total = Fraction(0)
    for mon, c in poly.items():
        term = c
        for j, e in enumerate(mon):
            if e:
                term *= mus[j] ** e
        total += term
    return total


# --------------------------------------------------------------------------------------------
# Closed forms (cached) and data evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClosedForm:
    """``𝓛_∞^{(t)} = Σ_k loss[k] η^k`` and ``f_∞^{(t)} = Σ_b Σ_k f[b][k] η^k K̄^b y`` (moment polys)."""

    depth: int
    steps: int
    loss: tuple  # tuple[dict]
    f: dict  # b -> tuple[dict]

    @property
    def n_terms(self) -> int:
        return sum(len(c) for c in self.loss)


@functools.lru_cache(maxsize=64)
def closed_form(depth: int, steps: int, backend: str = "auto", max_degree: int | None = None,
                recipe=None, input_dim: int | None = None) -> ClosedForm:
    """The exact closed form of the μP limit for depth ``L`` and ``t`` steps (cached).

    Computed in the η-free ring ``Q[μ_0..μ_{2t}]`` (the power of η is the weight of the monomial,
    see :func:`polyloss.fock._group_by_eta`). With ``max_degree=K`` only the loss coefficients up
    to η^K are formed (exact; f is always complete) — the squaring of f is the expensive part.
    A non-plain hidden-only ``recipe`` (see :func:`check_recipe`) runs the recipe's program; l2 and
    decoupled decay break the η-grading, so those use the ring ``Q[η, μ_0..μ_{2t}]``.
    """
    depth = _check_int("depth", depth, 1, MAX_DEPTH)
    steps = _check_int("steps", steps, 1, MAX_STEPS)
    if max_degree is not None:
        max_degree = _check_int("max_degree", max_degree, 0)
    recipe = check_recipe(recipe, "mup", steps)
    if not recipe_needs_input_dim(recipe):
        input_dim = None  # d does not enter: one cache entry
    eta_free = not limit_needs_eta(recipe)
    n_mu = 2 * steps + 1
    while True:
        R = default_ring(None, n_mu, backend=backend, eta_free=eta_free)
        ev = KrylovEvaluator(R)
        sc = limit_scalars(recipe, steps, R, input_dim)
        try:
            res = run_program(ev, depth, steps, want_loss=max_degree is None, scalars=sc)
            break
        except MomentIndexError as exc:  # pragma: no cover - 2t+1 moments always sufficed
            n_mu = max(2 * n_mu, exc.j + 1)
    f = {b: tuple(R.eta_coefficients(v, offset=b)) for b, v in sorted(res.f.items())}
    if max_degree is None:
        loss = tuple(R.eta_coefficients(res.loss, offset=-1))
    else:
        # r_b truncated at η-degree K gives the loss exactly up to η^K
        r = {}
        for b, v in ev.residual(res.f).items():
            if eta_free:
                kept = [(mon, c) for mon, c in _ring_items(v)
                        if sum((j + 1) * e for j, e in enumerate(mon)) + b <= max_degree]
            else:
                kept = [(mon, c) for mon, c in _ring_items(v) if mon[0] <= max_degree]
            r[b] = _ring_from_items(R, kept)
        loss = tuple(R.eta_coefficients(ev.loss(r), offset=-1))[: max_degree + 1]
    return ClosedForm(depth, steps, loss, f)


def _ring_items(x):
    return list(x.to_dict().items()) if hasattr(x, "to_dict") else list(x.items())


def _ring_from_items(R, items):
    gens = list(R._mu) if getattr(R, "eta_free", True) else [R.eta] + list(R._mu)
    out = R.zero
    for mon, c in items:
        term = R.const(_frac(c))
        for j, e in enumerate(mon):
            if e:
                term = term * gens[j] ** e
        out = out + term
    return out


def _frac(c) -> Fraction:
    num = getattr(c, "numerator", None)
    if num is None:
        return Fraction(int(c.p), int(c.q))
    return Fraction(int(num), int(c.denominator))


def evaluate_closed_form(cf: ClosedForm, mus: Sequence[Fraction]) -> list[Fraction]:
    """Substitute exact moments into the closed-form loss coefficients."""
    return [_eval_moment_poly(c, mus) for c in cf.loss]


@dataclass(frozen=True)
class DataMoments:
    """Exact (or float) moments of a data set, and the Krylov vectors ``K̄^b y`` for b ≤ t."""

    mus: tuple  # μ_0..μ_{2t}
    krylov: tuple  # K̄^b y for b = 0..t (tuples of length m)
    m: int
    d: int
    conversion: str  # 'exact-binary', 'rationalized(tol)', 'rational', 'float64'
    K: tuple | None = None  # Gram matrix x_iᵀx_j/d (only when requested)


def _to_rational(v, tol: Fraction | None) -> Fraction:
    if isinstance(v, Fraction):
        return v
    if isinstance(v, numbers.Integral):
        return Fraction(int(v))
    x = float(v)
    if not math.isfinite(x):
        raise DataError(f"data contain a non-finite value ({x!r}); remove or impute it")
    q = Fraction(x)
    if tol is None:
        return q
    # round to the decimal grid 10^-k with 10^-k / 2 <= tol: one common denominator for all data,
    # so the exact moments stay small (independent per-value denominators would multiply up)
    k = 0
    while Fraction(1, 2 * 10**k) > tol:
        k += 1
    scaled = q * 10**k
    n = math.floor(scaled + Fraction(1, 2))
    return Fraction(n, 10**k)


def _as_xy(data) -> tuple[list, list]:
    """Accept a Dataset-like object (``.X``, ``.y``), a mapping with 'X'/'y', or a pair (X, y)."""
    if hasattr(data, "X") and hasattr(data, "y"):
        X, y = data.X, data.y
    elif isinstance(data, dict) and "X" in data and "y" in data:
        X, y = data["X"], data["y"]
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = data
    else:
        raise DataError("`data` must be a Dataset, a mapping with keys 'X' and 'y', or a pair (X, y)")
    try:
        X = [list(row) for row in (X.tolist() if hasattr(X, "tolist") else X)]
        y = list(y.tolist() if hasattr(y, "tolist") else y)
    except TypeError:
        raise DataError("`X` must be a 2-D array (m × d) and `y` a 1-D array (m,)") from None
    if not X or not X[0]:
        raise DataError("`X` is empty: need at least one sample and one feature")
    d = len(X[0])
    if any(len(r) != d for r in X):
        raise DataError("`X` rows have different lengths")
    if any(isinstance(v, (list, tuple)) for v in y):
        raise DataError("`y` must be 1-D (one target per sample)")
    if len(y) != len(X):
        raise DataError(f"`X` has {len(X)} rows but `y` has {len(y)} entries")
    return X, y


#: in-process LRU caches (sizes bounded): exact data state + Krylov vectors, and whole derivations
_MOMENT_CACHE_SIZE = 8
_DERIVE_CACHE_SIZE = 32
_moment_cache: "OrderedDict[tuple, dict]" = OrderedDict()
_derive_cache: "OrderedDict[tuple, Derivation]" = OrderedDict()
_cache_stats = {"moments_hit": 0, "moments_miss": 0, "derive_hit": 0, "derive_miss": 0}


def clear_caches() -> None:
    """Empty the in-process caches of :func:`data_moments` and :func:`derive`."""
    _moment_cache.clear()
    _derive_cache.clear()
    for k in _cache_stats:
        _cache_stats[k] = 0


def _value_token(v) -> str:
    if isinstance(v, bool):
        return f"b{int(v)}"
    if isinstance(v, float):
        return "f" + v.hex()
    if isinstance(v, numbers.Integral):
        return f"i{int(v)}"
    if isinstance(v, Fraction):
        return f"q{v.numerator}/{v.denominator}"
    return f"{type(v).__module__}.{type(v).__qualname__}:{v!r}"


def data_digest(data) -> str:
    """SHA-256 of the data's exact values (type-tagged: 1, 1.0 and Fraction(1) differ)."""
    import hashlib

    X, y = _as_xy(data)
    h = hashlib.sha256(f"{len(X)}x{len(X[0])}|".encode())
    for row in X:
        h.update((",".join(map(_value_token, row)) + ";").encode())
    h.update(("|" + ",".join(map(_value_token, y))).encode())
    return h.hexdigest()


def _lru_get(cache, key, size, make):
    if key in cache:
        cache.move_to_end(key)
        return cache[key], True
    val = make()
    cache[key] = val
    while len(cache) > size:
        cache.popitem(last=False)
    return val, False


def _moment_state(X, y, exact: bool, tol) -> dict:
    m, d = len(X), len(X[0])
    if exact:
        Xq = [[_to_rational(v, tol) for v in row] for row in X]
        yq = [_to_rational(v, tol) for v in y]
        all_rational = all(isinstance(v, (Fraction, numbers.Integral)) for row in X for v in row) and all(
            isinstance(v, (Fraction, numbers.Integral)) for v in y
        )
        conversion = "rational" if all_rational else (f"rationalized(tol={tol})" if tol else "exact-binary")
        zero, inv_m = Fraction(0), Fraction(1, m)
    else:
        for row in X:
            for v in row:
                if not math.isfinite(float(v)):
                    raise DataError(f"data contain a non-finite value ({v!r}); remove or impute it")
        Xq = [[float(v) for v in row] for row in X]
        yq = [float(v) for v in y]
        if not all(math.isfinite(v) for v in yq):
            raise DataError("`y` contains a non-finite value; remove or impute it")
        conversion = "float64"
        zero, inv_m = 0.0, 1.0 / m
    return {"Xq": Xq, "vecs": [list(yq)], "m": m, "d": d, "conversion": conversion, "exact": exact,
            "zero": zero, "inv_m": inv_m, "K": None}


def _kbar(st, v):
    Xq, m, d = st["Xq"], st["m"], st["d"]
    if st["exact"]:
        scale = Fraction(1, d * m)
        w = [sum(Xq[i][k] * v[i] for i in range(m)) for k in range(d)]
        return [scale * sum(row[k] * w[k] for k in range(d)) for row in Xq]
    scale = 1.0 / (d * m)
    w = [math.fsum(Xq[i][k] * v[i] for i in range(m)) for k in range(d)]
    return [scale * math.fsum(row[k] * w[k] for k in range(d)) for row in Xq]


def data_moments(data, steps: int, *, exact: bool = True, rationalize=None, need_K: bool = False) -> DataMoments:
    """Moments ``μ_0..μ_{2t}`` and Krylov vectors ``K̄^b y`` (b ≤ t) of ``data``.

    Exact mode converts every float to its exact binary value (or, with ``rationalize=tol``, rounds
    it to the decimal grid 10^-k with 10^-k/2 ≤ tol) and works in exact rationals, using the
    factorisation ``K̄ v = X (Xᵀ v) / (d m)`` (cost O(m d) per power).

    The converted data and the Krylov vectors are kept in a bounded in-process LRU keyed by the
    data's digest (:func:`data_digest`), ``exact`` and ``rationalize``: a later call on the same
    values (any ``steps``) reuses and extends them; :func:`clear_caches` empties it.
    """
    X, y = _as_xy(data)
    tol = _check_positive_fraction("rationalize", rationalize)
    key = (data_digest((X, y)), bool(exact), tol)
    st, hit = _lru_get(_moment_cache, key, _MOMENT_CACHE_SIZE, lambda: _moment_state(X, y, exact, tol))
    _cache_stats["moments_hit" if hit else "moments_miss"] += 1
    vecs, zero, inv_m = st["vecs"], st["zero"], st["inv_m"]
    while len(vecs) < 2 * steps + 1:
        vecs.append(_kbar(st, vecs[-1]))
    # μ_{i+j} = (1/m) (K̄^i y)ᵀ (K̄^j y): use the two halves to keep the powers low
    mus = []
    for n in range(2 * steps + 1):
        i = min(n, steps)
        j = n - i
        mus.append(sum((a * b for a, b in zip(vecs[i], vecs[j])), zero) * inv_m)
    K = None
    if need_K:
        if st["K"] is None:
            Xq, m, d = st["Xq"], st["m"], st["d"]
            dd = Fraction(1, d) if exact else 1.0 / d
            st["K"] = tuple(tuple(sum((a * b for a, b in zip(Xq[i], Xq[j])), zero) * dd for j in range(m))
                            for i in range(m))
        K = st["K"]
    return DataMoments(tuple(mus), tuple(tuple(v) for v in vecs[: steps + 1]), st["m"], st["d"], st["conversion"], K)


def _block_moments(data, exact: bool, rationalize=None):
    """For biases: ``(moment, vec)`` with ``moment(k, k', n) = (1/m) s_kᵀ K̄^n s_k'`` and ``vec(k, b) = K̄^b s_k``
    over ``s_0 = y``, ``s_1 = 𝟙`` (exact or float, as :func:`data_moments`; the vectors are cached with it)."""
    X, y = _as_xy(data)
    tol = _check_positive_fraction("rationalize", rationalize)
    key = (data_digest((X, y)), bool(exact), tol)
    st, _ = _lru_get(_moment_cache, key, _MOMENT_CACHE_SIZE, lambda: _moment_state(X, y, exact, tol))
    if "ones" not in st:
        st["ones"] = [[Fraction(1) if exact else 1.0] * st["m"]]

    def vec(k: int, b: int):
        vecs = st["vecs"] if k == 0 else st["ones"]
        while len(vecs) <= b:
            vecs.append(_kbar(st, vecs[-1]))
        return vecs[b]

    def moment(k1: int, k2: int, n: int):
        i = n // 2
        return sum((a * b for a, b in zip(vec(k1, i), vec(k2, n - i))), st["zero"]) * st["inv_m"]

    return moment, vec


def _bias_limit(depth: int, steps: int, data, exact: bool, rationalize, backend: str, recipe, biases, d: int):
    """The ring, the raw :class:`ProgramResult` and the rows of f at the data for a network with biases
    (the block Krylov evaluator, docs/theory.md §12)."""
    moment, vec = _block_moments(data, exact, rationalize)
    R = default_ring([], backend=backend) if exact else FloatRing([])
    sc = limit_scalars(recipe, steps, R, d) if recipe is not None else LimitScalars(input_dim=Fraction(d))
    sc = dataclasses.replace(sc, biases=limit_biases(biases, recipe, steps, R))
    res = run_program(BlockKrylovEvaluator(R, moment, biases.input_var, biases.hidden_var), depth, steps, scalars=sc)
    zero = Fraction(0) if exact else 0.0
    m = len(vec(0, 0))
    rows = []
    if exact and HAS_FLINT and res.f and all(isinstance(v, _flint_mod().fmpq_poly) for v in res.f.values()):
        width = max(v.degree() + 1 for v in res.f.values())
        fl = _flint_mod()  # f(x_i) = Σ_{k,b} F_{k,b}(η) (K̄^b s_k)_i on FLINT: no Fraction gcds per term
        for i in range(m):
            acc = fl.fmpq_poly([])
            for (k, b), P in res.f.items():
                x = Fraction(vec(k, b)[i])
                acc += P * fl.fmpq(x.numerator, x.denominator)
            cs = [_fraction_coprime(int(v.p), int(v.q)) for v in acc.coeffs()]
            rows.append(tuple(cs + [zero] * (width - len(cs))))
        return R, res, rows
    fvals = {kb: R.eta_coefficients(v) for kb, v in res.f.items()}
    width = max((len(v) for v in fvals.values()), default=0)
    for i in range(m):
        row = [zero] * width
        for (k, b), cs in fvals.items():
            x = vec(k, b)[i]
            for j, c in enumerate(cs):
                row[j] = row[j] + c * x
        rows.append(tuple(row))
    return R, res, rows


def _kernel_traces(data, count: int, rationalize=None) -> list[Fraction]:
    """``κ_k = tr(K̄^{k+1})`` for k < count, exactly, via the smaller of XXᵀ and XᵀX."""
    X, _ = _as_xy(data)
    tol = _check_positive_fraction("rationalize", rationalize)
    Xq = [[_to_rational(v, tol) for v in row] for row in X]
    m, d = len(Xq), len(Xq[0])
    s = Fraction(1, d * m)
    if m <= d:
        G = [[s * sum(a * b for a, b in zip(Xq[i], Xq[j])) for j in range(m)] for i in range(m)]
    else:
        G = [[s * sum(Xq[r][i] * Xq[r][j] for r in range(m)) for j in range(d)] for i in range(d)]
    n = len(G)
    out, P = [], G
    for _ in range(count):
        out.append(sum(P[i][i] for i in range(n)))
        P = [[sum(P[i][l] * G[l][j] for l in range(n)) for j in range(n)] for i in range(n)]
    return out


_SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)


def _moment_scale(mus: Sequence[Fraction]) -> int:
    """An integer D with ``μ_j·D^{j+1}`` an integer for every j: ``D = Π_p p^{max_j ⌈v_p(den_j)/(j+1)⌉}``
    over small primes p, times the lcm of what the small primes leave of the denominators."""
    dens = [Fraction(v).denominator for v in mus]
    D = 1
    for p in _SMALL_PRIMES:
        e_max = 0
        for j, den in enumerate(dens):
            e = 0
            while den % p == 0:
                den //= p
                e += 1
            dens[j] = den
            e_max = max(e_max, -(-e // (j + 1)))
        D *= p**e_max
    return D * math.lcm(*dens)


def _plain_gd_adjoint(ev, depth: int, steps: int, loss_fn=None) -> ProgramResult:
    """:func:`polyloss.fock.run_program` for plain GD (no recipe) on a :class:`KrylovEvaluator`, without
    a single batched vector: the same loss and f, the same rationals (identities of the Fock realisation,
    THEORY §5, exact in the μ_j).

    * ``f^{(t)}(x_j) = ⟨g_L, h_L^{(t)}(x_j)⟩ = ⟨g_0^{(t)}, h_0(x_j)⟩``: ``W_ℓ ↦ ℓ(a_ℓ) + ℓ(b_ℓ)*`` and
      ``W_ℓᵀ ↦ ℓ(b_ℓ) + ℓ(a_ℓ)*`` are adjoint, and so are the rank-one updates
      (``⟨g, g_s⟩⟨u_s, h⟩ = ⟨u_s⟨g_s, g⟩, h⟩``), so the backward chain ``g_{ℓ−1}^{(t)} = W_ℓᵀ g_ℓ^{(t)} −
      η Σ_{s<t} u_s^ℓ ⟨g_s^ℓ, g_ℓ^{(t)}⟩`` (which needs only steps s < t) carried down to ℓ = 0 gives f;
    * ``u_ℓ^{(t)} = (1/m) Σ_j r_j h_{ℓ−1}^{(t)}(x_j)`` is linear in h, so it follows the forward recursion on
      the contracted vector: ``u_1 = (1/m) Σ_j r_j x_j``, ``u_{ℓ+1} = W_ℓ u_ℓ − η Σ_{s<t} g_s^ℓ ⟨u_s^ℓ, u_ℓ⟩``.

    run_program instead carries ``h_ℓ(x_j)`` for all j (one value vector per Fock entry: most of its time at
    long horizons in products of ~1000-degree polynomials, L = 3, t = 5: ~30 s of 36 s). Tested equal to
    run_program (numeric and symbolic μ)."""
    from polyloss.fock import apply_W, apply_WT

    R = ev.R
    L = depth
    minus_eta = R.zero - R.eta
    g_hist: list[dict] = []
    u_hist: list[dict] = []
    loss = f = None
    for t in range(steps + 1):
        g_t = {L: ev.gL()}
        for layer in range(L, 0, -1):
            g = apply_WT(layer, g_t[layer])
            for s in range(t):
                c = ev.inner(g_hist[s][layer], g_t[layer])
                if c:
                    g = ev.axpy(g, minus_eta * c, u_hist[s][layer])
            g_t[layer - 1] = g
        # ⟨g_0, h_0(x_j)⟩: the slot (w, i ≥ 0) is K̄^i y/m, and ⟨K̄^i y/m, x_j⟩_B = (K̄^{i+1} y)_j; the
        # scalar slot (i = −1) is orthogonal to the inputs; only the empty word pairs with e_∅
        f = {}
        for (w, i), c in g_t[0].items():
            if not w and i >= 0 and c:
                f[i + 1] = c
        r = ev.residual(f)
        if t == steps:
            # loss_fn(loss thunk, f): the caller may run the loss beside its own work on f
            loss = ev.loss(r) if loss_fn is None else loss_fn(lambda: ev.loss(r), f)
            break
        u = {((), b): c for b, c in r.items() if c}  # (1/m) Σ_j r_j x_j = Σ_b r_b K̄^b y / m
        u_t = {1: u}
        for layer in range(1, L):
            nu = apply_W(layer, u)
            for s in range(t):
                c = ev.inner(u_hist[s][layer], u)
                if c:
                    nu = ev.axpy(nu, minus_eta * c, g_hist[s][layer])
            u = u_t[layer + 1] = nu
        g_hist.append(g_t)
        u_hist.append(u_t)
    return ProgramResult(loss=loss, f=f, losses=(loss,))


def _beside(child_fn, parent_fn):
    """``(child_fn(), parent_fn())`` with ``child_fn`` (an fmpq_poly) in a forked child while this process runs
    ``parent_fn``; the polynomial comes back as integers through a pipe. Serial when the fork or the child
    fails (the same values either way)."""
    import os
    import pickle

    fl = _flint_mod()

    def payload() -> bytes:
        try:
            v = child_fn()
            return pickle.dumps(([int(c) for c in v.numer().coeffs()], int(v.denom())), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001 - the parent recomputes
            return b""

    try:
        pid, r = _fork_child(payload)
    except OSError:  # pragma: no cover
        return child_fn(), parent_fn()
    reaped = False
    try:
        mine = parent_fn()
        with os.fdopen(r, "rb") as fh:
            data = fh.read()
        os.waitpid(pid, 0)
        reaped = True
    finally:
        if not reaped:  # an exception here: stop and reap our own child
            _kill_child(pid)
    try:
        nums, den = pickle.loads(data)
        got = fl.fmpq_poly(nums) / den
    except Exception:  # pragma: no cover - the child failed: here
        got = child_fn()
    return got, mine


def _numeric_limit_raw(depth: int, steps: int, dm: DataMoments, exact: bool, backend: str = "auto", recipe=None,
                       side=None, side_out=None):
    """The ring and the raw :class:`ProgramResult` (ring elements: fmpq_poly with FLINT).

    Plain GD on FLINT runs on the integer moments ``μ̃_j = μ_j·D^{j+1}`` (:func:`_moment_scale`): by the
    scaling symmetry of THEORY §5 (a term ``η^k Π μ_j^{e_j}`` of the loss has ``k = Σ(j+1)e_j − 1``, of
    ``F_b`` ``k = Σ(j+1)e_j + b``) the results are ``𝓛(η) = 𝓛̃(η/D)/D`` and ``F_b(η) = D^b F̃_b(η/D)``,
    the same rationals, while the engine multiplies integer polynomials (coefficient k of ~k·log2 D bits
    instead of a common denominator of ~deg·log2 D bits, and no gcds): L = 4, t = 4 engine ~1.5x faster.
    Exact plain GD runs :func:`_plain_gd_adjoint` (no batched vectors; the same rationals as run_program).

    ``side``: a function of f (the value vector of fmpq_poly in η, as returned) whose result is appended to
    ``side_out``; on the integer-moment route it runs beside the loss's final products (:func:`_beside`)."""
    if exact and recipe is None and HAS_FLINT and backend in ("auto", "flint"):
        fl = _flint_mod()
        mus = [Fraction(v) for v in dm.mus]
        D = _moment_scale(mus)
        if D > 1:
            R = default_ring([v * D ** (j + 1) for j, v in enumerate(mus)], backend=backend)
            back = fl.fmpq_poly([0, fl.fmpq(1, D)])  # η ↦ η/D
            done: dict = {}

            def f_back(f_scaled):
                done["f"] = {b: v(back) * D**b for b, v in f_scaled.items()}
                if side is not None:
                    done["side"] = side(done["f"])

            def loss_fn(loss_thunk, f_scaled):
                if side is not None:
                    loss_scaled, _ = _beside(loss_thunk, lambda: f_back(f_scaled))
                    return loss_scaled
                f_back(f_scaled)
                return loss_thunk()

            use = side is not None and limit_degree_loss(depth, steps) >= _PAR_MIN_DEGREE and _derive_procs() > 1
            res = _plain_gd_adjoint(KrylovEvaluator(R), depth, steps, loss_fn=loss_fn if use else None)
            loss = res.loss(back) * fl.fmpq(1, D)
            if "f" not in done:
                f_back(res.f)
            if side_out is not None and side is not None:
                side_out.append(done["side"])
            return default_ring(dm.mus, backend=backend), dataclasses.replace(res, loss=loss, f=done["f"], losses=(loss,))
    R = default_ring(dm.mus, backend=backend) if exact else FloatRing(dm.mus)
    if exact and recipe is None:
        res = _plain_gd_adjoint(KrylovEvaluator(R), depth, steps)
    else:
        res = run_program(KrylovEvaluator(R), depth, steps, scalars=limit_scalars(recipe, steps, R, dm.d))
    if side is not None and side_out is not None:
        side_out.append(side(res.f))
    return R, res


def _numeric_limit(depth: int, steps: int, dm: DataMoments, exact: bool, backend: str = "auto", recipe=None):
    """Loss coefficients (Fractions or floats) and the value vector of f via the Krylov evaluator."""
    R, res = _numeric_limit_raw(depth, steps, dm, exact, backend, recipe)
    loss = R.eta_coefficients(res.loss)
    f = {b: R.eta_coefficients(v) for b, v in res.f.items()}
    return loss, f


def explicit_limit(depth: int, steps: int, data, *, rationalize=None, backend: str = "auto",
                   recipe=None, biases=None) -> list[Fraction]:
    """Loss coefficients through the independent explicit evaluator (cost ~ m²; for checks)."""
    recipe = check_recipe(recipe, "mup", steps)
    biases = check_biases(biases, "mup", recipe)
    dm = data_moments(data, steps, rationalize=rationalize, need_K=True)
    _, y = _as_xy(data)
    tol = _check_positive_fraction("rationalize", rationalize)
    yq = [_to_rational(v, tol) for v in y]
    R = default_ring([], backend=backend)
    sc = limit_scalars(recipe, steps, R, dm.d)
    if biases is not None:
        sc = dataclasses.replace(sc or LimitScalars(input_dim=Fraction(dm.d)),
                                 biases=limit_biases(biases, recipe, steps, R))
    res = run_program(ExplicitEvaluator(R, dm.K, yq, *((0, 0) if biases is None else (biases.input_var, biases.hidden_var))),
                      depth, steps, scalars=sc)
    return R.eta_coefficients(res.loss)


# --------------------------------------------------------------------------------------------
# Critical points: certified real-root isolation over Q
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriticalPoint:
    """A positive critical point of the loss polynomial.

    ``interval`` is a certified isolating interval ``[lo, hi]`` (rationals) for the root of 𝓛′,
    refined until its width is below ``10^{-digits}·max(1, η)``; ``eta`` and ``loss`` are decimal
    strings with ``digits`` significant digits; ``eta_exact``/``loss_exact`` are set when the root is
    rational. ``kind`` is 'min', 'max' or 'inflection' (even multiplicity).
    """

    eta: str
    loss: str
    kind: str
    multiplicity: int
    interval: tuple[Fraction, Fraction]
    eta_exact: Fraction | None = None
    loss_exact: Fraction | None = None
    # private: for ordering / comparisons
    _eta_mid: Fraction = field(default=Fraction(0), repr=False, compare=False)
    _loss_mid: Fraction = field(default=Fraction(0), repr=False, compare=False)

    def to_json(self) -> dict:
        out = {
            "eta": self.eta,
            "loss": self.loss,
            "kind": self.kind,
            "multiplicity": self.multiplicity,
            "interval": [_frac_str(self.interval[0]), _frac_str(self.interval[1])],
        }
        if self.eta_exact is not None:
            out["eta_exact"] = _frac_str(self.eta_exact)
        if self.loss_exact is not None:
            out["loss_exact"] = _frac_str(self.loss_exact)
        return out


def _decimal(q: Fraction, digits: int) -> str:
    import mpmath

    with mpmath.workdps(digits + 10):
        v = mpmath.mpf(q.numerator) / q.denominator
        return mpmath.nstr(v, digits, min_fixed=-5, max_fixed=8)


def _horner(coeffs: Sequence[Fraction], x: Fraction) -> Fraction:
    acc = Fraction(0)
    for c in reversed(coeffs):
        acc = acc * x + c
    return acc


def _sign_at_fast(ints: Sequence[int], q: Fraction) -> int:
    """Sign of the integer polynomial ``Σ ints[k] x^k`` at the rational ``q`` (exact)."""
    p, r = q.numerator, q.denominator
    acc = 0
    # evaluate Σ a_k p^k r^(n-k) by Horner from the top: acc = acc*p + a_k r^(n-k)
    n = len(ints) - 1
    rpow = [1] * (n + 1)
    for k in range(1, n + 1):
        rpow[k] = rpow[k - 1] * r
    for k in range(n, -1, -1):
        acc = acc * p + ints[k] * rpow[n - k]
    return (acc > 0) - (acc < 0)


def _mpf_to_fraction(x) -> Fraction:
    man, exp = x.man_exp
    man = int(man)
    return Fraction(man * 2**exp) if exp >= 0 else Fraction(man, 2 ** (-exp))


class _SignOracle:
    """Certified sign of an integer polynomial at rationals: arb ball arithmetic (python-flint) when
    its ball excludes 0, else exact evaluation."""

    def __init__(self, ints: Sequence[int], digits: int, P=None):
        self.ints = list(ints)
        # the monomial form cancels catastrophically (THEORY §6): allow ~2 bits per degree
        self.prec = int(3.33 * digits) + 96 + 2 * len(self.ints)
        if P is None and HAS_FLINT:
            P = _flint_mod().fmpz_poly(self.ints)
        self.P = P if HAS_FLINT else None  # P: the same polynomial as an fmpz_poly (built once by the caller)
        self._arb: dict = {}  # (prec, derivative?) -> arb_poly: coefficients rounded once, not per evaluation

    def _arb_poly(self, prec: int, deriv: bool = False):
        """P (or P') as an arb_poly at ``prec`` bits (balls enclosing the exact coefficients; call with
        ctx.prec == prec)."""
        key = (prec, deriv)
        A = self._arb.get(key)
        if A is None:
            A = _flint_mod().arb_poly(self.P.derivative() if deriv else self.P)
            self._arb[key] = A
        return A

    def sign(self, q: Fraction) -> int:
        if self.P is not None:
            fl = _flint_mod()
            old = fl.ctx.prec
            x = fl.fmpq(q.numerator, q.denominator)
            try:
                for extra in (1, 2, 4):
                    fl.ctx.prec = self.prec * extra
                    v = self._arb_poly(fl.ctx.prec)(fl.arb(x))
                    if v > 0:
                        return 1
                    if v < 0:
                        return -1
            finally:
                fl.ctx.prec = old
            e = self.P(x)
            return (e > 0) - (e < 0)
        return _sign_at_fast(self.ints, q)

    def newton(self, lo: Fraction, hi: Fraction, tol: Fraction):
        """Safeguarded Newton from the midpoint; returns a Fraction or None."""
        m = (lo + hi) / 2
        if self.P is not None:
            fl = _flint_mod()
            old = fl.ctx.prec
            try:
                fl.ctx.prec = self.prec
                P, dP = self._arb_poly(self.prec), self._arb_poly(self.prec, True)
                x = fl.arb(fl.fmpq(m.numerator, m.denominator))
                a = fl.arb(fl.fmpq(lo.numerator, lo.denominator))
                b = fl.arb(fl.fmpq(hi.numerator, hi.denominator))
                step_tol = fl.arb(fl.fmpq(tol.numerator, tol.denominator)) / 8
                for _ in range(100):
                    d = dP(x).mid()
                    if d == 0:
                        return None
                    nx = (x - P(x).mid() / d).mid()
                    if not (nx > a and nx < b):
                        return None
                    done = abs(nx - x) < step_tol
                    x = nx
                    if done:
                        mant, exp = x.mid().man_exp()
                        mant, exp = int(mant), int(exp)
                        return Fraction(mant * 2**exp) if exp >= 0 else Fraction(mant, 2 ** (-exp))
                return None
            finally:
                fl.ctx.prec = old
        import mpmath

        with mpmath.workdps(self.prec // 3):
            coeffs = [mpmath.mpf(v) for v in reversed(self.ints)]
            dcoeffs = [mpmath.mpf(k * self.ints[k]) for k in range(len(self.ints) - 1, 0, -1)]
            x = mpmath.mpf(m.numerator) / m.denominator
            a_mp, b_mp = mpmath.mpf(lo.numerator) / lo.denominator, mpmath.mpf(hi.numerator) / hi.denominator
            step_tol = mpmath.mpf(tol.numerator) / tol.denominator / 8
            for _ in range(100):
                d = mpmath.polyval(dcoeffs, x)
                if d == 0:
                    return None
                nx = x - mpmath.polyval(coeffs, x) / d
                if not (a_mp < nx < b_mp):
                    return None
                done = abs(nx - x) <= step_tol
                x = nx
                if done:
                    return _mpf_to_fraction(x)
        return None


def _flint_mod():
    import flint

    return flint


def _refine(ints: Sequence[int], lo: Fraction, hi: Fraction, tol: Fraction, digits: int, oracle=None):
    """Shrink the isolating interval (lo, hi) of the square-free integer polynomial ``ints`` to width
    ≤ tol. Newton proposes a point; certified signs at ``x ± tol/4`` prove it brackets the root
    (the interval isolates it); exact bisection is the fallback. ``oracle``: a :class:`_SignOracle`
    of ``ints`` at ``digits`` (reused across roots)."""
    if oracle is None:
        oracle = _SignOracle(ints, digits)
    # the open interval (lo, hi) holds exactly one root; an endpoint may be another (rational)
    # root, in which case the sign just inside is that of ±S' there (S is square-free)
    s_lo, s_hi = oracle.sign(lo), oracle.sign(hi)
    if s_lo == 0 or s_hi == 0:
        dS = [k * ints[k] for k in range(1, len(ints))]
        if s_lo == 0:
            s_lo = _SignOracle(dS, digits).sign(lo)
        if s_hi == 0:
            s_hi = -_SignOracle(dS, digits).sign(hi)
    if s_lo == s_hi or s_lo == 0:  # pragma: no cover - an isolating interval changes sign
        raise ArithmeticError("isolating interval without a sign change")
    attempts = 0
    while hi - lo > tol:
        attempts += 1
        xq = oracle.newton(lo, hi, tol)
        if xq is not None and lo < xq < hi:
            delta = tol / 4
            a, b = max(lo, xq - delta), min(hi, xq + delta)
            if a == lo:
                a = (lo + xq) / 2
            if b == hi:
                b = (xq + hi) / 2
            sa, sb = oracle.sign(a), oracle.sign(b)
            if sa == 0:
                return a, a
            if sb == 0:
                return b, b
            if sa == s_lo and sb == s_hi:
                return a, b
        for _ in range(6 if attempts < 20 else 64):
            mid = (lo + hi) / 2
            sm = oracle.sign(mid)
            if sm == 0:
                return mid, mid
            if sm == s_lo:
                lo = mid
            else:
                hi = mid
            if hi - lo <= tol:
                break
    return lo, hi


def _eval_approx(ints: Sequence[int], den: int, q: Fraction, digits: int, P=None) -> tuple[Fraction, str]:
    """``Σ ints[k] q^k / den`` to ``digits`` significant digits (arb with adaptive precision, or
    exact integer evaluation); returns (a dyadic/rational approximation, the decimal string).
    ``P``: ``ints`` as an fmpz_poly, when the caller has it."""
    if HAS_FLINT:
        fl = _flint_mod()
        old = fl.ctx.prec
        try:
            prec = int(3.33 * digits) + 96 + 2 * len(ints)
            if P is None:
                P = fl.fmpz_poly(list(ints))
            x = fl.fmpq(q.numerator, q.denominator)
            for _ in range(6):
                fl.ctx.prec = prec
                v = P(fl.arb(x)) / den
                if v.rel_accuracy_bits() >= 3.33 * digits + 16:
                    mant, exp = v.mid().man_exp()
                    mant, exp = int(mant), int(exp)
                    fr = Fraction(mant * 2**exp) if exp >= 0 else Fraction(mant, 2 ** (-exp))
                    return fr, _decimal(fr, digits)
                prec *= 2
        finally:
            fl.ctx.prec = old
    fr = _eval_exact([Fraction(v, den) for v in ints], q, den, ints)
    return fr, _decimal(fr, digits)


def _eval_exact(c: Sequence[Fraction], q: Fraction, den: int | None = None, ints=None) -> Fraction:
    """``Σ c_k q^k`` exactly, with one final division (fast for big coefficients)."""
    if den is None:
        den = math.lcm(*[v.denominator for v in c])
        ints = [v.numerator * (den // v.denominator) for v in c]
    if HAS_FLINT:
        fl = _flint_mod()
        v = fl.fmpz_poly(ints)(fl.fmpq(q.numerator, q.denominator))
        return Fraction(int(v.p), int(v.q) * den)
    p, r = q.numerator, q.denominator
    n = len(ints) - 1
    acc = 0
    rpow = [1] * (n + 1)
    for k in range(1, n + 1):
        rpow[k] = rpow[k - 1] * r
    for k in range(n, -1, -1):
        acc = acc * p + ints[k] * rpow[n - k]
    return Fraction(acc, den * rpow[n])


# ---- certified real-root isolation with FLINT: Descartes bisection on interval coefficients ----

#: 'auto' (FLINT Descartes bisection, sympy's Poly.intervals if it fails), 'flint' (no fallback), 'sympy'
_ISOLATION = "auto"
_iso_stats = {"flint": 0, "sympy": 0, "fallback": 0, "exact_nodes": 0}
#: the Descartes bisection of :func:`_isolate_flint`: 'arb' (:func:`_descartes_isolate_arb`) or 'ball'
#: (:func:`_descartes_isolate`, fixed-point integer balls); both give the same intervals
_DESCARTES = "arb"
_B0_FACTOR = 8  # starting bits per degree of the coefficient balls (measured: 2 → exact recomputes, 8 ≈ 16)


class _IsolationFailed(ArithmeticError):
    pass


#: degree from which the root isolation and refinement of :func:`_critical_points` use several processes
_PAR_MIN_DEGREE = 600
_MAX_PROCS = 8


def _derive_procs() -> int:
    """Processes for the critical points of one polynomial: ``POLYLOSS_DERIVE_PROCS`` when set, else the
    CPUs this process may run on (at most :data:`_MAX_PROCS`); 1 (serial) without ``os.fork`` or when other
    threads run (a fork copies only the calling thread)."""
    import os
    import threading

    env = os.environ.get("POLYLOSS_DERIVE_PROCS", "").strip()
    if not hasattr(os, "fork"):
        return 1
    if env:
        try:
            return max(1, min(int(env), _MAX_PROCS))
        except ValueError:
            return 1
    if threading.active_count() > 1:
        return 1
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        ncpu = os.cpu_count() or 1
    return max(1, min(ncpu, _MAX_PROCS))


def _fork_child(payload) -> tuple[int, int]:
    """Fork a child that writes ``payload()`` (bytes; it must not raise) to a pipe and exits; returns the child's
    pid and the pipe's read end (the parent reads it, then reaps the child). Raises OSError when it cannot fork."""
    import os

    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        raise
    if pid == 0:  # pragma: no cover - the child (coverage does not follow forks)
        try:
            os.close(r)
            with os.fdopen(w, "wb") as fh:
                fh.write(payload())
        finally:
            os._exit(0)
    os.close(w)
    return pid, r


def _kill_child(pid: int) -> None:
    """Stop and reap a child of :func:`_fork_child` (after an exception in the parent)."""
    import os
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def _fork_map(fn, tasks: list, procs: int) -> list:
    """``[fn(t) for t in tasks]`` over ``procs`` processes: this one and ``procs − 1`` forked children take
    the next unclaimed task (a shared counter) until none is left; a child's results come back pickled
    through a pipe. An exception in a child is raised here; a task whose child died without results is
    redone here. Which process runs a task does not change its result, so the list is the serial one."""
    import os
    import pickle
    from multiprocessing import Value

    try:
        counter = Value("l", 0)  # a lock and a shared integer (POSIX semaphore, shared memory)
    except (OSError, ImportError):  # pragma: no cover - no semaphores here: serial
        return [fn(t) for t in tasks]

    def work() -> dict:
        done = {}
        while True:
            with counter.get_lock():
                i = counter.value
                counter.value = i + 1
            if i >= len(tasks):
                return done
            done[i] = fn(tasks[i])

    def payload() -> bytes:
        try:
            return pickle.dumps(("ok", work()), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as e:  # noqa: BLE001 - handed to the parent
            try:
                return pickle.dumps(("err", e))
            except Exception:
                return b""

    kids = []
    try:
        for _ in range(min(procs, len(tasks)) - 1):
            try:
                kids.append(_fork_child(payload))
            except OSError:  # pragma: no cover - no more processes: the ones running take all tasks
                break
        results = work()
        while kids:
            pid, r = kids.pop(0)
            with os.fdopen(r, "rb") as fh:
                data = fh.read()
            os.waitpid(pid, 0)
            try:
                status, val = pickle.loads(data)
            except Exception:
                status, val = "lost", {}
            if status == "err":
                raise val
            results.update(val)
        return [results[i] if i in results else fn(t) for i, t in enumerate(tasks)]
    finally:
        for pid, r in kids:  # only after an exception here: stop and reap our own children
            _kill_child(pid)
            try:
                os.close(r)
            except OSError:
                pass


def _var_ball(M, R):
    """Sign variations of a sequence a with |a_k − M_k| ≤ R_k; None when a sign is undetermined."""
    v, last = 0, 0
    for m, r in zip(M, R):
        if m > r:
            s = 1
        elif -m > r:
            s = -1
        elif m == 0 and r == 0:
            continue
        else:
            return None
        if last and s != last:
            v += 1
        last = s
    return v


def _compose_lin(fl, ints, n, c):
    """Coefficients of A(y + c) (a Taylor shift; for c ≥ 0 a map with non-negative entries)."""
    out = [int(v) for v in fl.fmpz_poly(ints)(fl.fmpz_poly([c, 1])).coeffs()]
    return out + [0] * (n + 1 - len(out))


def _trunc(M, R, bits):
    """Rescale a ball polynomial (centres M, radii R ≥ 0) by 2^-r so the centres keep ~``bits`` bits."""
    r = max(abs(v).bit_length() for v in M) - bits
    if r <= 0:
        return M, R
    return [v >> r for v in M], [((-((-v) >> r)) + 1) for v in R]


def _root_bound_exponent(f_ints) -> int:
    """K with every root of ``f_ints`` (ascending integer coefficients, f(0) ≠ 0) below 2^K in absolute value:
    |x| < 2 max_i |a_{n-i}/a_n|^{1/i} (Fujiwara), rounded up to a power of two."""
    if f_ints[0] == 0:
        raise _IsolationFailed("root at 0")
    n = len(f_ints) - 1
    lcb = abs(f_ints[-1]).bit_length()
    K = 1
    for i in range(1, n + 1):
        a = abs(f_ints[n - i])
        if a:
            K = max(K, -(-(a.bit_length() - lcb + 1) // i) + 2)
    return K


def _descartes_isolate(f_ints, max_nodes: int = 100_000):
    """Isolating intervals (ascending) of the roots in (0, ∞) of the square-free integer polynomial
    ``f_ints`` (ascending coefficients, f(0) ≠ 0): Collins–Akritas bisection of (0, 2^K) (2^K bounds
    every root) with Descartes' rule of signs on ``(y+1)^n Q(1/(y+1))``. Coefficients travel as
    integer balls (centre, radius ≥ 0) rounded to ~2n+64 bits: Taylor shifts, dilations and reversal
    have non-negative entries, so |a − M| ≤ R stays valid through them; a test with an undetermined
    sign is redone on the exact polynomial of that node. Returns [(lo, hi)]: lo == hi for an exact
    dyadic root, otherwise an open interval holding exactly one root."""
    fl = _flint_mod()
    n = len(f_ints) - 1
    if n < 1:
        return []
    K = _root_bound_exponent(f_ints)
    Pz = fl.fmpz_poly(list(f_ints))
    zeros = [0] * (n + 1)

    def exact_node(c: int, j: int):
        # a polynomial whose roots in (0, 1) are those of f in (c, c + 1)·2^(K-j)
        s = K - j
        A = [f_ints[k] << (s * k) for k in range(n + 1)] if s >= 0 else [f_ints[k] << (-s * (n - k)) for k in range(n + 1)]
        return _compose_lin(fl, A, n, c) if c else A

    def x_of(c: int, j: int) -> Fraction:
        return Fraction(c) * Fraction(2) ** (K - j)

    out = []
    b0 = _B0_FACTOR * n + 64
    stack = [("node", 0, 0, *_trunc(exact_node(0, 0), zeros, b0), b0)]
    nodes = 0
    while stack:
        item = stack.pop()
        if item[0] == "root":
            out.append((item[1], item[1]))
            continue
        _, c, j, M, R, b = item
        nodes += 1
        if nodes > max_nodes:
            raise _IsolationFailed("too many bisection nodes")
        V = _var_ball(_compose_lin(fl, M[::-1], n, 1), _compose_lin(fl, R[::-1], n, 1))
        if V is None:  # undetermined sign: redo this node exactly, carry twice the bits below it
            _iso_stats["exact_nodes"] += 1
            ex = exact_node(c, j)
            V = _var_ball(_compose_lin(fl, ex[::-1], n, 1), zeros)
            b = 2 * b
            M, R = _trunc(ex, zeros, b)
        if V == 0:
            continue
        if V == 1:
            out.append((x_of(c, j), x_of(c + 1, j)))
            continue
        M_l = [M[k] << (n - k) for k in range(n + 1)]  # 2^n Q(y/2)
        R_l = [R[k] << (n - k) for k in range(n + 1)]
        mid = x_of(2 * c + 1, j + 1)
        is_root = False
        if abs(sum(M_l)) <= sum(R_l):  # Q_left(1) ∝ f(mid) may vanish: decide exactly
            is_root = Pz(fl.fmpq(mid.numerator, mid.denominator)) == 0
        M_r, R_r = _compose_lin(fl, M_l, n, 1), _compose_lin(fl, R_l, n, 1)
        stack.append(("node", 2 * c + 1, j + 1, *_trunc(M_r, R_r, b), b))
        if is_root:
            stack.append(("root", mid))
        stack.append(("node", 2 * c, j + 1, *_trunc(M_l, R_l, b), b))
    return out


_ARB_PREC0 = 128  # starting precision (bits per coefficient) of the arb Descartes bisection


def _var_arb(coeffs):
    """Sign variations of a sequence of arb balls; None when a ball that is not exactly 0 holds 0."""
    v, last = 0, 0
    for a in coeffs:
        if a > 0:
            s = 1
        elif a < 0:
            s = -1
        elif a.is_zero():
            continue
        else:
            return None
        if last and s != last:
            v += 1
        last = s
    return v


def _descartes_isolate_arb(f_ints, max_nodes: int = 100_000, prec0: int | None = None):
    """:func:`_descartes_isolate` with the node polynomials as arb balls (python-flint ``arb_poly``):
    the same Collins–Akritas bisection of (0, 2^K), the same nodes and the same exact variation
    counts, hence the same intervals; but each coefficient carries its own exponent, so ~128-bit
    mantissas replace the ~8n-bit fixed-point centres (L = 4, t = 4, degree 1141: ~9x faster).

    Every ball encloses the exact coefficient (arb's rounding is rigorous), so a variation count of
    balls that all exclude 0 (or are exactly 0) is the exact count. When some ball holds 0 the node is
    recomputed from the exact polynomial at twice the precision, and past the precision at which the
    node polynomial is exact, the count is taken from exact integers (:func:`_compose_lin`).

    A half's count is deduced without its Taylor shifts when Descartes' bounds leave one value: var ≡ the
    number of roots (mod 2), whose parity the signs of f at the half's endpoints give (cheap arb
    evaluations; no deduction when a ball holds 0), and var(left) + var(right) <= var(parent). The same
    nodes and counts, so the same intervals (L = 3, t = 5: 38 of ~230 nodes deduced, 19.2 s -> 15.4 s)."""
    fl = _flint_mod()
    n = len(f_ints) - 1
    if n < 1:
        return []
    K = _root_bound_exponent(f_ints)
    Pz = fl.fmpz_poly(list(f_ints))
    hb = max(abs(v).bit_length() for v in f_ints)
    shift1 = fl.arb_poly([1, 1])
    zero = fl.arb(0)
    pow2 = [fl.arb(1 << (n - k)) for k in range(n + 1)]  # exact at any precision (one-bit mantissas)

    def exact_ints(c: int, j: int):
        # a polynomial whose roots in (0, 1) are those of f in (c, c + 1)·2^(K-j), exact
        s = K - j
        A = [f_ints[k] << (s * k) for k in range(n + 1)] if s >= 0 else [f_ints[k] << (-s * (n - k)) for k in range(n + 1)]
        return _compose_lin(fl, A, n, c) if c else A

    def node_poly(c: int, j: int, prec: int):
        fl.ctx.prec = prec
        s = K - j
        A = [f_ints[k] << (s * k) for k in range(n + 1)] if s >= 0 else [f_ints[k] << (-s * (n - k)) for k in range(n + 1)]
        Q = fl.arb_poly(fl.fmpz_poly(A))
        return Q(fl.arb_poly([c, 1])) if c else Q

    def variations(Q):
        cs = Q.coeffs()
        cs = cs + [zero] * (n + 1 - len(cs))
        return _var_arb(fl.arb_poly(cs[::-1])(shift1).coeffs()), cs

    def x_of(c: int, j: int) -> Fraction:
        return Fraction(c) * Fraction(2) ** (K - j)

    def sgn(b):  # the sign of an arb ball, None when it holds 0
        return 1 if b > 0 else (-1 if b < 0 else None)

    nodes = [0]

    def process(item, out) -> list:
        """One stack item: appends its intervals to ``out``, returns its children (left to right).
        Items: ("node", c, j, Q, prec, cell, V, weight) (V: None, or deduced), ("right", c, j, Ql, prec,
        V_parent, left_cell, parity, weight) (the right half, after its left sibling), ("root", x)."""
        if item[0] == "root":
            out.append((item[1], item[1]))
            return []
        if item[0] == "right":  # the right half, after its left sibling's subtree
            _, c, j, Ql, p, V_parent, left, par, _w = item
            # var(left) + var(right) <= var(parent) when f(mid) != 0 (sub-additivity of Descartes'
            # variations over disjoint subintervals): the right half has no variation, no root
            # (left[0] is None when the left sibling went to another process: no deduction then)
            if left[0] == V_parent:
                _iso_stats["skipped_nodes"] = _iso_stats.get("skipped_nodes", 0) + 1
                return []
            if par is not None and left[0] is not None and V_parent - left[0] == 1:
                item = ("node", c, j, None, p, None, par, 0)  # var(right) <= 1 and ≡ its root count
            else:
                fl.ctx.prec = p
                item = ("node", c, j, Ql(shift1), p, None, None, 0)
        _, c, j, Q, p, cell, V, _w = item
        if V is not None:  # deduced (0 or 1): no Taylor shift
            _iso_stats["deduced_nodes"] = _iso_stats.get("deduced_nodes", 0) + 1
            if cell is not None:
                cell[0] = V
            if V == 1:
                out.append((x_of(c, j), x_of(c + 1, j)))
            return []
        nodes[0] += 1
        if nodes[0] > max_nodes:
            raise _IsolationFailed("too many bisection nodes")
        fl.ctx.prec = p
        V, cs = variations(Q)
        while V is None:  # a sign not determined: recompute this node at twice the precision
            _iso_stats["exact_nodes"] += 1
            p *= 2
            Q = node_poly(c, j, p)
            if p > 2 * (hb + n * (abs(K - j) + j + 2)):  # as many bits as the exact node: count exactly
                ex = exact_ints(c, j)
                V = _var_ball(_compose_lin(fl, ex[::-1], n, 1), [0] * (n + 1))
                cs = Q.coeffs()
                cs = cs + [zero] * (n + 1 - len(cs))
            else:
                V, cs = variations(Q)
        if cell is not None:
            cell[0] = V
        if V == 0:
            return []
        if V == 1:
            out.append((x_of(c, j), x_of(c + 1, j)))
            return []
        Ql = fl.arb_poly([cs[k] * pow2[k] for k in range(n + 1)])  # 2^n Q(y/2): exact scaling
        mid = x_of(2 * c + 1, j + 1)
        is_root = False
        q1 = Ql(fl.arb(1))  # ∝ f(mid): may it vanish? decide exactly
        if not (q1 > 0 or q1 < 0):
            is_root = Pz(fl.fmpq(mid.numerator, mid.denominator)) == 0
        if is_root:  # no skipping past a root at the midpoint
            return [("node", 2 * c, j + 1, Ql, p, None, None, V), ("root", mid),
                    ("node", 2 * c + 1, j + 1, Ql(shift1), p, None, None, V)]
        # parities: var(half) ≡ its number of roots (mod 2, Descartes; f square-free), odd iff f changes
        # sign across it (no endpoint is a root: 0, 2^K and every midpoint were checked), and
        # var(left) + var(right) <= var(parent): var = pl + pr fixes both halves without a Taylor shift
        s_lo, s_mid, s_hi = sgn(cs[0]), sgn(q1), sgn(Q(fl.arb(1)))
        pl = pr = None
        if s_lo is not None and s_mid is not None and s_hi is not None:
            pl, pr = int(s_lo != s_mid), int(s_mid != s_hi)
        if pl is not None and V == pl + pr:
            return [("node", 2 * c, j + 1, None, p, None, pl, 0), ("node", 2 * c + 1, j + 1, None, p, None, pr, 0)]
        left = [None]
        return [("node", 2 * c, j + 1, Ql, p, left, None, V), ("right", 2 * c + 1, j + 1, Ql, p, V, left, pr, V)]

    def run(items) -> list:  # depth first, left to right: intervals in ascending order
        out: list = []
        stack = list(reversed(items))
        while stack:
            stack.extend(reversed(process(stack.pop(), out)))
        return out

    old = fl.ctx.prec
    p0 = int(prec0 or _ARB_PREC0)
    try:
        first = ("node", 0, 0, node_poly(0, 0, p0), p0, None, None, 1)
        procs = _derive_procs() if n >= _PAR_MIN_DEGREE else 1
        if procs <= 1:
            return run([first])
        # breadth first until there is work for every process; then the pending subtrees (a left half with
        # its right sibling kept together), heaviest first by their parents' variation counts, are taken
        # by the processes as they come free; the intervals are sorted, so the result is the serial one
        from collections import deque

        out: list = []
        queue = deque([first])
        while queue and sum(1 for it in queue if it[0] != "root" and it[-1]) < 2 * procs:
            queue.extend(process(queue.popleft(), out))
        # split the heaviest pending items further while one of them holds over a third of a process's share
        for _ in range(16 * procs):
            live = [it for it in queue if it[0] != "root" and it[-1]]
            if not live:
                break
            heavy = max(live, key=lambda it: it[-1])
            if 3 * procs * heavy[-1] <= sum(it[-1] for it in live):
                break
            i = queue.index(heavy)
            if heavy[0] == "right":  # its left sibling first (the skip and deduction read its count)
                for k in range(i):
                    if queue[k][0] == "node" and queue[k][5] is heavy[6]:
                        queue.extend(process(queue[k], out))
                        del queue[k]
                        i -= 1
                        break
            del queue[i]
            queue.extend(process(heavy, out))
        tasks: list = []
        for it in queue:
            if it[0] == "root":
                out.append((it[1], it[1]))
            elif it[0] == "right" and tasks and tasks[-1][-1][0] == "node" and tasks[-1][-1][5] is it[6]:
                tasks[-1].append(it)
            else:
                tasks.append([it])
        tasks.sort(key=lambda g: -sum(it[-1] for it in g))

        def task(g):
            st0 = dict(_iso_stats)
            got = run(g)
            return got, {k: v - st0.get(k, 0) for k, v in _iso_stats.items()}

        stats0 = dict(_iso_stats)
        for got, st in _fork_map(task, tasks, procs):
            out.extend(got)
            for key, v in st.items():
                stats0[key] = stats0.get(key, 0) + v
        _iso_stats.update(stats0)
        return sorted(out)
    finally:
        fl.ctx.prec = old


def _exact_sign(fl, Pz, q: Fraction) -> int:
    """The sign of the integer polynomial Pz at the rational q: an arb ball when it excludes 0
    (certified), else exact rational evaluation (always at a root)."""
    x = fl.fmpq(q.numerator, q.denominator)
    old = fl.ctx.prec
    try:
        fl.ctx.prec = 2 * max(Pz.degree(), 1) + 64 + q.numerator.bit_length() + q.denominator.bit_length()
        v = Pz(fl.arb(x))
        if v > 0:
            return 1
        if v < 0:
            return -1
    finally:
        fl.ctx.prec = old
    v = Pz(x)
    return (v > 0) - (v < 0)


def _inside_signs(fl, Pz, lo: Fraction, hi: Fraction):
    """Signs of the square-free Pz just inside (lo, hi) (an endpoint root: the sign of ±Pz' there)."""
    s_lo, s_hi = _exact_sign(fl, Pz, lo), _exact_sign(fl, Pz, hi)
    if s_lo == 0:
        s_lo = _exact_sign(fl, Pz.derivative(), lo)
    if s_hi == 0:
        s_hi = -_exact_sign(fl, Pz.derivative(), hi)
    return s_lo, s_hi


def _halve(fl, Pz, lo: Fraction, hi: Fraction):
    """The half of the isolating interval (lo, hi) of Pz that holds its root (or the exact midpoint)."""
    mid = (lo + hi) / 2
    sm = _exact_sign(fl, Pz, mid)
    if sm == 0:
        return mid, mid
    s_lo, _ = _inside_signs(fl, Pz, lo, hi)
    return (mid, hi) if sm == s_lo else (lo, mid)


def _isolate_flint(ints, facs=None):
    """[((lo, hi), multiplicity)] for the roots ≥ 0 of the integer polynomial ``ints`` (ascending),
    like sympy's ``Poly.intervals(inf=0)`` (ascending, disjoint); raises _IsolationFailed when a
    check fails. Square-free factorisation by FLINT; each factor isolated by :func:`_descartes_isolate`;
    every interval is then checked to change the factor's sign, and intervals of different factors
    are bisected until disjoint."""
    fl = _flint_mod()
    if facs is None:  # the caller may have factored it already
        _, facs = fl.fmpz_poly(list(ints)).factor_squarefree()
    items = []
    for f, e in facs:
        fi = [int(v) for v in f.coeffs()]
        if fi and fi[0] == 0:
            items.append([Fraction(0), Fraction(0), int(e), None])
            fi = fi[1:]
        if len(fi) <= 1:
            continue
        Fz = fl.fmpz_poly(fi)
        for lo, hi in (_descartes_isolate_arb(fi) if _DESCARTES == "arb" else _descartes_isolate(fi)):
            if lo != hi:
                s_lo, s_hi = _inside_signs(fl, Fz, lo, hi)
                if s_lo == 0 or s_lo == s_hi:
                    raise _IsolationFailed("an isolating interval without a sign change")
            items.append([lo, hi, int(e), Fz])
    # intervals of different factors: bisect until pairwise disjoint
    for _ in range(10_000):
        items.sort(key=lambda it: (it[0], it[1]))
        clash = None
        for a, b in zip(items, items[1:]):
            if b[0] < a[1] or (a[0] == a[1] == b[0] == b[1]) or (b[0] == b[1] and a[0] < b[0] < a[1]):
                clash = (a, b)
                break
        if clash is None:
            break
        a, b = clash
        if a[0] == a[1] and b[0] == b[1]:
            raise _IsolationFailed("two factors share a root")
        w = a if (a[1] - a[0]) >= (b[1] - b[0]) else b
        w[0], w[1] = _halve(fl, w[3], w[0], w[1])
    else:
        raise _IsolationFailed("could not separate the factors' intervals")
    return [((it[0], it[1]), it[2]) for it in items]


def _isolate_sympy(ints):
    from sympy import Poly, QQ, Symbol

    P = Poly(list(reversed(ints)), Symbol("eta"), domain="ZZ")
    out = []
    for (lo, hi), mult in P.intervals(inf=0):
        out.append(((Fraction(int(QQ.numer(lo)), int(QQ.denom(lo))), Fraction(int(QQ.numer(hi)), int(QQ.denom(hi)))),
                    int(mult)))
    return out


def _isolate(ints, facs=None):
    """Certified isolating intervals of the roots ≥ 0 (see :data:`_ISOLATION`)."""
    if _ISOLATION != "sympy" and HAS_FLINT:
        try:
            res = _isolate_flint(ints, facs)
            _iso_stats["flint"] += 1
            return res
        except _IsolationFailed:
            if _ISOLATION == "flint":
                raise
            _iso_stats["fallback"] += 1
    _iso_stats["sympy"] += 1
    return _isolate_sympy(ints)


def critical_points(coeffs: Sequence, digits: int = DEFAULT_DIGITS) -> tuple[CriticalPoint, ...]:
    """All critical points η > 0 of ``Σ coeffs[k] η^k`` (exact rationals; floats are taken exactly).

    Real roots of the derivative are isolated over Q by a certified Descartes bisection of FLINT's
    square-free part with arb-ball coefficients (:func:`_isolate_flint`,
    :func:`_descartes_isolate_arb`; sympy's ``Poly.intervals`` when python-flint is missing or a
    check fails), refined by Newton steps whose result is certified by sign evaluation (arb balls
    that exclude 0, else exact; bisection as fallback), and classified by the sign of the derivative to the right of
    the root (odd multiplicity) — never from roots of a float polynomial.
    """
    digits = _check_int("digits", digits, 1, 10_000)
    return _critical_points([Fraction(v) for v in coeffs], digits)


def _critical_points(c: list, digits: int, Pq=None) -> tuple[CriticalPoint, ...]:
    """:func:`critical_points` of the Fractions ``c``; ``Pq``: the same polynomial as a FLINT
    fmpq_poly when the caller has it (skips the conversion of ~100k-bit rationals)."""
    if not HAS_FLINT:  # sympy only on the path without FLINT (its import alone is ~0.3 s)
        from sympy import Poly, QQ, Symbol

    while c and c[-1] == 0:
        c.pop()
    if len(c) <= 2:
        return ()
    if HAS_FLINT:  # fmpq_poly keeps numerator/denominator with the denominator = lcm: the same integers
        fl = _flint_mod()
        if Pq is None:
            Pq = fl.fmpq_poly([fl.fmpq(v.numerator, v.denominator) for v in c])
        c_den, c_ints = int(Pq.denom()), [int(v) for v in Pq.numer().coeffs()]
        ints = [int(v) for v in Pq.derivative().numer().coeffs()]
    else:
        dc = [k * c[k] for k in range(1, len(c))]
        den = math.lcm(*[v.denominator for v in dc])
        ints = [v.numerator * (den // v.denominator) for v in dc]
        c_den = math.lcm(*[v.denominator for v in c])
        c_ints = [v.numerator * (c_den // v.denominator) for v in c]
    if HAS_FLINT:
        fl = _flint_mod()
        Pz = fl.fmpz_poly(ints)
        S_deg, s_ints, facs_P = None, None, None
        if Pz.degree() > 1:
            _, facs = Pz.factor_squarefree()
            facs_P = facs  # handed to the isolation (the same factorisation: ~1 s at degree 2185)
            Sz = fl.fmpz_poly([1])
            for f, _e in facs:
                Sz = Sz * f
        else:
            Sz = Pz
        s_ints = [int(v) for v in Sz.coeffs()]
        S_deg = Sz.degree()
    else:
        facs_P = None
        x = Symbol("eta")
        P = Poly(list(reversed(ints)), x, domain="ZZ")
        S = P.sqf_part() if P.degree() > 1 else P
        s_ints = [int(v) for v in reversed(S.all_coeffs())]
        S_deg = S.degree()
    # one sign oracle per polynomial (building the fmpz_poly of ~100k-bit integers is not free)
    S_or = _SignOracle(s_ints, digits, Sz if HAS_FLINT else None)
    P_or = _SignOracle(ints, 10, Pz if HAS_FLINT else None)
    C_z = fl.fmpz_poly(c_ints) if HAS_FLINT else None

    def one(item):  # the critical point of one isolating interval (None: the root 0)
        (lo, hi), mult = item
        if hi <= 0:
            return None  # a root at 0 is not a positive critical point
        if lo != hi and S_deg == 1:  # linear: the root is rational
            lo = hi = Fraction(-s_ints[0], s_ints[1])
        if lo != hi:
            tol = Fraction(1, 10 ** (digits + 3)) * max(Fraction(1), abs(hi))
            lo, hi = _refine(s_ints, lo, hi, tol, digits, S_or)
            # a simple rational inside the certified interval that is an exact root?
            for bound in (10**3, 10 ** max(3, digits // 2)):
                cand = ((lo + hi) / 2).limit_denominator(bound)
                if lo <= cand <= hi and S_or.sign(cand) == 0:
                    lo = hi = cand
                    break
        exact_root = lo == hi
        mid = (lo + hi) / 2
        if mult % 2 == 0:
            kind = "inflection"
        else:
            if exact_root:
                # sign of P just right of a rational root of odd multiplicity: first nonzero derivative
                if HAS_FLINT:
                    Qz = Pz
                    for _ in range(mult):
                        Qz = Qz.derivative()
                    s = _exact_sign(fl, Qz, lo)
                else:
                    Q = P
                    for _ in range(mult):
                        Q = Q.diff(x)
                    s = Q.eval(QQ(lo.numerator, lo.denominator))
            else:
                s = P_or.sign(hi)
            kind = "min" if s > 0 else "max"
        if exact_root:
            loss_mid = _eval_exact(c, mid, c_den, c_ints)
            loss_str = _decimal(loss_mid, digits)
        else:
            loss_mid, loss_str = _eval_approx(c_ints, c_den, mid, digits, C_z)
        return (
            CriticalPoint(
                eta=_decimal(mid, digits),
                loss=loss_str,
                kind=kind,
                multiplicity=int(mult),
                interval=(lo, hi),
                eta_exact=lo if exact_root else None,
                loss_exact=loss_mid if exact_root else None,
                _eta_mid=mid,
                _loss_mid=loss_mid,
            )
        )

    isolated = _isolate(ints, facs_P)
    procs = _derive_procs() if HAS_FLINT and len(ints) > _PAR_MIN_DEGREE and len(isolated) > 1 else 1
    # independent per root: over several processes (the same points, in order) when the degree is large
    got = _fork_map(one, isolated, procs) if procs > 1 else [one(it) for it in isolated]
    out = [cp for cp in got if cp is not None]
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Finite-width expansion at t = 1 (THEORY §4)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FiniteTerm:
    subset: tuple[int, ...]
    text: str
    latex: str
    limit_text: str
    limit_latex: str
    rate: Fraction  # term = O_P(n^rate); 0 means it survives
    survives: bool


@dataclass(frozen=True)
class FiniteExpansion:
    """``f^{(1)}(x) = f^{(0)}(x) + Σ_k φ_k(x) η^k`` with φ_k a sum over k-subsets of layers."""

    depth: int
    terms: dict  # k -> tuple[FiniteTerm]

    def to_text(self) -> str:
        L = self.depth
        lines = [
            f"Finite-width expansion at t = 1 (muP, depth L = {L}); <a,b> = a^T b / n, g_l = n b_l,",
            "b_l = W_{l+1}^T ... W_L^T V, u_l = (1/m) sum_i r_i h_{l-1}(x_i), r_i = f0(x_i) - y_i:",
            f"  f1(x) = f0(x) + sum_(k=1..{L}) phi_k(x) eta^k,   phi_k = (-1)^k sum over k-subsets S of layers",
            "  f0(x) = <g_L, h_L(x)> -> 0, fluctuation n^(-1/2);  r_i -> -y_i",
        ]
        for k, terms in self.terms.items():
            lines.append(f"phi_{k} (eta^{k}), {len(terms)} term(s):")
            for tm in terms:
                status = "survives" if tm.survives else f"vanishes like n^({tm.rate})"
                lines.append(f"  S={set(tm.subset)}: {tm.text}")
                lines.append(f"      -> {tm.limit_text}   [{status}]")
        lines += [
            "Limit: phi_1 -> L Kbar y (each of the L single-layer terms contributes Kbar y); phi_k -> 0 for",
            "k >= 2 at rate n^(-(k-1)/2) (k-1 cross factors <u, W...g> between forward and backward vectors,",
            "each O_P(n^(-1/2)): u lives on data-slot words, g on the scalar slot, orthogonal in the limit).",
            "Loss: c_0 -> mu0/2, c_1 -> -L mu1, c_2 -> L^2 mu2/2, c_k = O_P(n^(-(k-2)/2)) for 3 <= k <= 2L",
            "(dominated by phi_1 phi_(k-1)); so L_inf^(1) = (mu0 - 2 L mu1 eta + L^2 mu2 eta^2)/2.",
        ]
        return "\n".join(lines)

    def to_latex(self) -> str:
        L = self.depth
        lines = [
            r"\paragraph{Finite-width expansion ($t=1$, $\mu$P, $L=%d$).}" % L,
            r"$f^{(1)}(x) = f^{(0)}(x) + \sum_{k=1}^{%d} \varphi_k(x)\,\eta^k$, "
            r"$\varphi_k = (-1)^k \sum_{|S|=k} T_S$, with $\langle a,b\rangle = a^\top b/n$, "
            r"$g_\ell = n b_\ell$, $u_\ell = \frac1m\sum_i r_i h_{\ell-1}(x_i)$." % L,
            r"\begin{align*}",
        ]
        for k, terms in self.terms.items():
            for tm in terms:
                rate = r"\text{survives}" if tm.survives else r"O_P(n^{%s})" % _frac_latex(tm.rate)
                S = r"\{" + ",".join(map(str, tm.subset)) + r"\}"
                lines.append(r"T_{%s} &= %s \;\to\; %s && %s \\" % (S, tm.latex, tm.limit_latex, rate))
        lines += [
            r"\end{align*}",
            r"Hence $\varphi_1 \to L\bar K y$, $\varphi_k = O_P(n^{-(k-1)/2})$ for $k\ge 2$, and "
            r"$\mathcal L_\infty^{(1)}(\eta) = \tfrac12(\mu_0 - 2L\mu_1\eta + L^2\mu_2\eta^2)$.",
        ]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            str(k): [
                {
                    "subset": list(tm.subset),
                    "term": tm.text,
                    "latex": tm.latex,
                    "limit": tm.limit_text,
                    "survives": tm.survives,
                    "rate_exponent": str(tm.rate),
                }
                for tm in terms
            ]
            for k, terms in self.terms.items()
        }


def _fwd(lo: int, hi: int, tex: bool) -> str:
    """The product W_hi ⋯ W_lo (empty if hi < lo)."""
    if hi < lo:
        return ""
    if tex:
        return " ".join(r"W_{%d}" % l for l in range(hi, lo - 1, -1)) + " "
    return " ".join(f"W{l}" for l in range(hi, lo - 1, -1)) + " "


def finite_expansion(depth: int) -> FiniteExpansion:
    """The t = 1 finite-width expansion: every k-subset term of φ_k, its limit and its rate."""
    depth = _check_int("depth", depth, 1, 12)
    terms = {}
    for k in range(1, depth + 1):
        lst = []
        for S in combinations(range(1, depth + 1), k):
            top = S[-1]
            txt = [f"<g_{top}, g_{top}>"]
            tex = [r"\langle g_{%d}, g_{%d}\rangle" % (top, top)]
            for j in range(k - 1, 0, -1):
                hi_l, lo_l = S[j], S[j - 1]
                txt.append(f"<u_{hi_l}, {_fwd(lo_l + 1, hi_l - 1, False)}g_{lo_l}>")
                tex.append(r"\langle u_{%d}, %sg_{%d}\rangle" % (hi_l, _fwd(lo_l + 1, hi_l - 1, True), lo_l))
            txt.append(f"<u_{S[0]}, h_{S[0] - 1}(x)>")
            tex.append(r"\langle u_{%d}, h_{%d}(x)\rangle" % (S[0], S[0] - 1))
            if k == 1:
                lim, limtex = "1 * (-(Kbar y)(x)) = -(Kbar y)(x)", r"-(\bar K y)(x)"
            else:
                lim, limtex = f"0 ({k - 1} cross factor(s) <u, W...g> = O_P(n^(-1/2)) each)", "0"
            lst.append(
                FiniteTerm(
                    subset=S,
                    text=" * ".join(txt),
                    latex=r" \, ".join(tex),
                    limit_text=lim,
                    limit_latex=limtex,
                    rate=Fraction(-(k - 1), 2),
                    survives=k == 1,
                )
            )
        terms[k] = tuple(lst)
    return FiniteExpansion(depth, terms)


# --------------------------------------------------------------------------------------------
# The result type and derive()
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Derivation:
    """Result of :func:`derive` (schema ``polyloss.derivation/1`` through :meth:`to_json`).

    ``loss_coefficients`` are ascending in η: moment polynomials ``{exponents: Fraction}`` without
    data, Fractions with exact data, floats with ``exact=False``. ``f_coefficients[i][k]`` is the
    η^k coefficient of ``f_∞^{(t)}(x_i)`` (data only); ``f_closed_form[b][k]`` the η^k coefficient
    of ``K̄^b y`` in ``f_∞^{(t)}`` (no data).
    """

    depth: int
    steps: int
    param: Parametrization
    route: str
    exact: bool
    loss_coefficients: tuple
    f_coefficients: tuple | None = None
    f_closed_form: dict | None = None
    moments: tuple | None = None
    data_info: dict | None = None
    critical_points: tuple = ()
    eta_inf: CriticalPoint | None = None
    eta_first_local_min: CriticalPoint | None = None
    window: Fraction | None = None
    eta_window_min: CriticalPoint | None = None
    eta_window_at_boundary: bool = False
    eta_inf_closed_form: str | None = None
    power: PowerCounting | None = None
    rescaled_mean: tuple | None = None
    finite: FiniteExpansion | None = None
    digits: int = DEFAULT_DIGITS
    degree: int = 0
    recipe: Any = None  # a non-plain Recipe, or None (plain GD)
    recipe_power: RecipePowerCounting | None = None  # power counting of a non-plain recipe
    input_dim: int | None = None  # d, for a closed form whose limit depends on it (trained input layer)
    biases: Any = None  # a polyloss.recipe.Biases that matters, or None (no bias)

    @property
    def symbolic(self) -> bool:
        return self.moments is None and self.route == "closed-form"

    def coefficient_strings(self) -> list[str]:
        if self.route == "closed-form":
            return [moment_expr(c) for c in self.loss_coefficients]
        if self.exact:
            return [_frac_str(Fraction(c)) for c in self.loss_coefficients]
        return [repr(float(c)) for c in self.loss_coefficients]

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "spec": {"depth": self.depth, "steps": self.steps, "width": None, "param": self.param.to_dict()},
            "route": self.route,
            "exact": self.exact,
            "degree": self.degree,
        }
        if self.param.name == "mup" or (self.param.alpha == 2 and self.param.gamma == 0):
            out["loss_coefficients"] = self.coefficient_strings()
            out["eta_inf"] = self.eta_inf.eta if self.eta_inf else None
            out["eta_first_local_min"] = self.eta_first_local_min.eta if self.eta_first_local_min else None
            out["critical_points"] = [cp.to_json() for cp in self.critical_points]
            if self.eta_inf_closed_form:
                out["eta_inf_closed_form"] = self.eta_inf_closed_form
            if self.window is not None:
                out["window"] = {
                    "lambda": _frac_str(self.window),
                    "eta_min": self.eta_window_min.eta if self.eta_window_min else _decimal(self.window, self.digits),
                    "at_boundary": self.eta_window_at_boundary,
                }
            if self.f_coefficients is not None:
                fmt = (lambda v: _frac_str(Fraction(v))) if self.exact else (lambda v: repr(float(v)))
                out["f_coefficients"] = [[fmt(v) for v in row] for row in self.f_coefficients]
            if self.f_closed_form is not None:
                out["f_closed_form"] = {
                    "basis": "f_inf(x_i) = sum_b F_b(eta) (Kbar^b y)_i",
                    "F": {str(b): [moment_expr(c) for c in cs] for b, cs in self.f_closed_form.items()},
                }
        else:
            out["loss_coefficients"] = None
        if self.moments is not None:
            fmt = _frac_str if self.exact else (lambda v: repr(float(v)))
            out["moments"] = {f"mu{j}": fmt(v) for j, v in enumerate(self.moments)}
        if self.data_info:
            out["data"] = dict(self.data_info)
        if self.power is not None:
            out["power_counting"] = self.power.to_json()
        if self.rescaled_mean is not None:
            out["rescaled_mean_loss_coefficients"] = [_frac_str(c) for c in self.rescaled_mean]
            out["eta_tilde_inf"] = self.eta_inf.eta if self.eta_inf else None
        if self.finite is not None:
            out["finite_expansion"] = self.finite.to_json()
        if self.recipe is not None:  # plain derivations keep today's keys exactly
            out["recipe"] = self.recipe.to_dict()
        if self.recipe_power is not None:
            out["recipe_power_counting"] = self.recipe_power.to_json()
        if self.input_dim is not None:
            out["input_dim"] = self.input_dim
        if self.biases is not None:  # bias-free derivations keep today's keys exactly
            out["biases"] = self.biases.to_dict()
        out["digits"] = self.digits
        out["versions"] = _versions()
        return out

    def to_json_str(self) -> str:
        return jsonsafe.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    # --- human-readable renderings
    def to_text(self, max_terms: int = 400) -> str:
        L, t = self.depth, self.steps
        lines = []
        p = self.param
        head = f"polyloss derive: depth L = {L}, steps t = {t}, param = {p.name} (alpha={p.alpha}, gamma={p.gamma})"
        lines.append(head)
        if self.route == "power-counting" and self.recipe_power is not None:
            lines.append(f"recipe: {self.recipe.describe()}")
            lines.append("no infinite-width limit in eta for this recipe (docs/theory.md §7, power counting at t = 1):")
            lines += self.recipe_power.lines()
            return "\n".join(lines) + "\n"
        if self.power is not None and not (p.alpha == 2 and p.gamma == 0):
            pc = self.power
            lines.append("Power counting at t = 1 (typical size n^e, leading order):")
            lines.append(f"  residual r = f0 - y ~ n^({pc.residual})")
            lines.append("  phi_k: " + ", ".join(f"phi_{k} ~ n^({e})" for k, e in enumerate(pc.phi, 1)))
            lines.append("  c_j:   " + ", ".join(f"c_{j} ~ n^({e})" for j, e in enumerate(pc.loss)))
            lines.append(f"  optimal learning rate: eta_n ~ n^({pc.eta})")
            lines.append(f"  rescaled limit: {pc.rescaled}")
            for note in pc.notes:
                lines.append(f"  note: {note}")
            if self.rescaled_mean is not None:
                lines.append("  mean rescaled loss, ascending in eta~: " + ", ".join(_frac_str(c) for c in self.rescaled_mean))
                if self.eta_inf:
                    lines.append(f"  minimiser of the mean rescaled loss: eta~ = {self.eta_inf.eta}")
            if self.finite is not None:
                lines.append(self.finite.to_text())
            return "\n".join(lines) + "\n"
        kind = {
            "closed-form": "closed form in the moments mu_j = (1/m) y^T Kbar^j y (exact)",
            "data-exact": "exact rational evaluation on the data",
            "data-float": "FLOAT64 evaluation on the data (inexact; coefficients are ill-conditioned, see THEORY 6)",
        }[self.route]
        lines.append(f"Infinite-width limit L_inf^({t})(eta) = sum_k c_k eta^k, degree {self.degree}: {kind}")
        if self.recipe is not None:
            lines.append(f"recipe: {self.recipe.describe()}")
            if self.input_dim is not None:
                lines.append(f"input dimension d = {self.input_dim} (the trained input layer's update scales with d)")
            if self.recipe_power is not None:
                lines += self.recipe_power.lines()[1:]
        if self.biases is not None:
            lines.append(f"{self.biases.describe()} (muP rates: input and hidden c*n, readout c; docs/theory.md §12)")
        if self.data_info:
            di = self.data_info
            lines.append(f"data: m = {di['m']}, d = {di['d']}, conversion = {di['conversion']}")
        if self.moments is not None:
            fmt = _frac_str if self.exact else (lambda v: f"{float(v):.17g}")
            lines.append("moments: " + ", ".join(f"mu{j} = {fmt(v)}" for j, v in enumerate(self.moments)))
        coeffs = self.coefficient_strings()
        if self.route == "data-exact":
            coeffs = [f"{_decimal(Fraction(c), 20)}" if c else "0" for c in self.loss_coefficients]
            lines.append("  (decimal display of exact rationals; --format json gives them exactly)")
        shown = 0
        for k, s in enumerate(coeffs):
            n_terms = s.count(" + ") + s.count(" - ") + 1
            if shown + n_terms > max_terms and k > 3:
                lines.append(f"  ... {len(coeffs) - k} more coefficients (use --format json for all)")
                break
            shown += n_terms
            lines.append(f"  c_{k} = {s}")
        if self.eta_inf_closed_form:
            lines.append(f"eta_inf = {self.eta_inf_closed_form}")
        if self.critical_points:
            lines.append("critical points (eta > 0), certified by real-root isolation over Q:")
            for cp in self.critical_points:
                lines.append(f"  {cp.kind:10s} eta = {cp.eta}   loss = {cp.loss}")
            lines.append(f"eta_inf (global minimiser over eta > 0) = {self.eta_inf.eta if self.eta_inf else None}")
            lines.append(
                f"first local minimiser = {self.eta_first_local_min.eta if self.eta_first_local_min else None}"
            )
            if self.window is not None:
                wm = self.eta_window_min.eta if self.eta_window_min else _decimal(self.window, self.digits)
                bd = " (at the window boundary)" if self.eta_window_at_boundary else ""
                lines.append(f"minimiser over (0, {_decimal(self.window, 12)}] = {wm}{bd}")
        if self.finite is not None:
            lines.append(self.finite.to_text())
        return "\n".join(lines) + "\n"

    def to_latex(self, max_terms: int = 400) -> str:
        L, t = self.depth, self.steps
        lines = [r"% polyloss derive, depth L = " + f"{L}, steps t = {t}, param = {self.param.name}"]
        if self.route == "power-counting" and self.recipe_power is not None:
            lines.append("% recipe: " + self.recipe.describe())
            lines.append(r"$\eta_n \sim n^{%s}$ (no infinite-width limit in $\eta$)" % _frac_latex(self.recipe_power.eta))
            return "\n".join(lines) + "\n"
        if self.recipe is not None:
            lines.append("% recipe: " + self.recipe.describe())
        if self.biases is not None:
            lines.append("% " + self.biases.describe())
        if self.power is not None and not (self.param.alpha == 2 and self.param.gamma == 0):
            pc = self.power
            lines.append(r"\begin{align*}")
            for k, e in enumerate(pc.phi, 1):
                lines.append(r"\varphi_{%d} &\sim n^{%s} \\" % (k, _frac_latex(e)))
            for j, e in enumerate(pc.loss):
                lines.append(r"c_{%d} &\sim n^{%s} \\" % (j, _frac_latex(e)))
            lines.append(r"\eta_n &\sim n^{%s}" % _frac_latex(pc.eta))
            lines.append(r"\end{align*}")
            if self.finite is not None:
                lines.append(self.finite.to_latex())
            return "\n".join(lines) + "\n"
        if self.route == "closed-form":
            body = [moment_latex(c) for c in self.loss_coefficients]
        elif self.exact:
            body = [_decimal(Fraction(c), 20) if c else "0" for c in self.loss_coefficients]
        else:
            body = [f"{float(c):.17g}" for c in self.loss_coefficients]
        if self.recipe is not None:
            lines.append("% recipe: " + self.recipe.describe())
        lines.append(r"\begin{align*}")
        lines.append(r"\mathcal L_\infty^{(%d)}(\eta) &= \sum_{k=0}^{%d} c_k\,\eta^k, \\" % (t, self.degree))
        shown = 0
        for k, s in enumerate(body):
            n_terms = s.count(" + ") + s.count(" - ") + 1
            if shown + n_terms > max_terms and k > 3:
                lines.append(r"&\;\;\vdots \quad \text{(%d more coefficients)}" % (len(body) - k))
                break
            shown += n_terms
            lines.append(r"c_{%d} &= %s \\" % (k, s))
        lines.append(r"\end{align*}")
        if self.eta_inf is not None:
            lines.append(r"$\eta_\infty = %s$" % self.eta_inf.eta)
        if self.finite is not None:
            lines.append(self.finite.to_latex())
        return "\n".join(lines) + "\n"


def _versions() -> dict:
    import sympy

    v = {"polyloss": __version__, "sympy": sympy.__version__}
    if HAS_FLINT:
        import flint

        v["python-flint"] = flint.__version__
    return v


def _pick_minima(cps):
    """(global minimiser, first local minimiser, all minima) among critical points."""
    mins = [cp for cp in cps if cp.kind == "min"]
    if not mins:
        return None, None, []
    glob = min(mins, key=lambda cp: cp._loss_mid)
    first = min(mins, key=lambda cp: cp._eta_mid)
    return glob, first, mins




def _f_rows(fvals, dm, m, zero, exact, polys=None):
    """``f_∞(x_i) = Σ_b F_b(η) (K̄^b y)_i`` as rows of η-coefficients (exact: FLINT fmpq_poly;
    ``polys``: the same F_b as fmpq_poly when the engine already has them)."""
    width = max((len(v) for v in fvals.values()), default=0)
    if exact and HAS_FLINT and width:
        fl = _flint_mod()
        if polys is None:
            polys = {b: fl.fmpq_poly([fl.fmpq(Fraction(c).numerator, Fraction(c).denominator) for c in cs])
                     for b, cs in fvals.items()}
        rows = []
        for i in range(m):
            acc = fl.fmpq_poly([])
            for b in fvals:
                kb = Fraction(dm.krylov[b][i])
                acc += polys[b] * fl.fmpq(kb.numerator, kb.denominator)
            cs = [_fraction_coprime(int(v.p), int(v.q)) for v in acc.coeffs()]
            rows.append(tuple(cs + [zero] * (width - len(cs))))
        return rows
    f_rows = []
    for i in range(m):
        row = [zero] * width
        for b, cs in fvals.items():
            kb = dm.krylov[b][i]
            for k, c in enumerate(cs):
                row[k] = row[k] + c * kb
        f_rows.append(tuple(row))
    return f_rows


def _derive_uncached(
    depth: int,
    steps: int,
    data=None,
    param="mup",
    window=None,
    *,
    exact: bool = True,
    rationalize=None,
    digits: int = DEFAULT_DIGITS,
    finite: bool = False,
    backend: str = "auto",
    recipe=None,
    input_dim: int | None = None,
    biases=None,
) -> Derivation:
    """Derive the infinite-width limit of the t-step loss polynomial (or power counting off μP).

    Args:
      depth: number of hidden n×n layers L (≥ 1).
      steps: number of full-batch GD steps t (≥ 1).
      data: None for the closed form in the moments; else a Dataset (``.X``, ``.y``), a mapping
        with 'X' and 'y', or a pair ``(X, y)``.
      param: 'mup' (default), 'sp', 'ntp', 'ALPHA,GAMMA' or a :class:`Parametrization`. Off μP the
        result is the power counting of THEORY §2 (and, for α = 1, the rescaled kernel limit).
      window: Λ > 0; report the minimiser over (0, Λ]. Default with data: 4·η_∞^{(1)} = 4μ_1/(Lμ_2).
      exact: with data, False evaluates the program in float64 (fast, inexact, labelled).
      rationalize: tolerance; round each datum to the decimal grid 10^-k with 10^-k/2 ≤ tol (a
        common denominator keeps the exact moments small) instead of taking its exact binary value.
      digits: significant digits of the reported minimisers and losses (≥ 17 recommended).
      finite: also build the t = 1 finite-width expansion (φ_k over k-subsets of layers).
      backend: 'auto' (python-flint when installed), 'flint' or 'sympy'.
      recipe: None or a :class:`polyloss.recipe.Recipe`. A plain recipe gives exactly the plain
        result. A recipe with an infinite-width limit in η (μP initialisation, every trained layer
        at or below its μP rate — input n, hidden 1, readout 1/n — and no diverging decay; any
        schedule with rational rates, decay mode and momentum) gives that limit exactly
        (docs/theory.md §7); any other recipe gives its power counting (route 'power-counting',
        ``recipe_power``: the exponent of η_n and which layers learn at that scale).
      input_dim: d, needed by a closed form (no data) whose recipe trains the input layer at its
        μP rate (the limit then depends on d); with data it is the data's d.
      biases: None or a :class:`polyloss.recipe.Biases`: biases trained at their μP rates (input and
        hidden c·n, readout c) and an input bias's initial variance (docs/theory.md §12). Needs data
        and μP, and no weight decay; the limit is exact on the block Krylov space of (K̄; y, 𝟙).

    Returns:
      A frozen :class:`Derivation`.

    Example:
      >>> d = derive(2, 1)
      >>> d.coefficient_strings()
      ['mu0/2', '-2*mu1', '2*mu2']
    """
    depth = _check_int("depth", depth, 1, MAX_DEPTH)
    steps = _check_int("steps", steps, 1, MAX_STEPS)
    digits = _check_int("digits", digits, 1, 10_000)
    p = Parametrization.parse(param)
    if backend not in ("auto", "flint", "sympy"):
        raise invalid("backend", backend, "one of 'auto', 'flint', 'sympy'")
    if backend == "flint" and not HAS_FLINT:
        raise SpecError("`backend`='flint' needs python-flint (pip install python-flint); use 'sympy'")
    win = _check_positive_fraction("window", window)
    fin = finite_expansion(depth) if finite else None
    if finite and steps != 1:
        raise invalid("finite", True, "used with steps=1 (the expansion is the t = 1 one)")
    from polyloss.recipe import Recipe

    if biases is not None and not check_biases(biases, p, recipe if isinstance(recipe, Recipe) else None):
        biases = None
    if biases is not None:
        if data is None:
            raise SpecError(f"`biases` ({biases.describe()}) need data: the limit with biases depends on the mixed "
                            "moments (1/m) 1^T Kbar^j y and (1/m) 1^T Kbar^j 1 too, and has no stored closed form; pass data= (--data)")
        if finite:
            raise invalid("finite", True, "False with biases (the finite-width expansion is for plain GD)")
    if isinstance(recipe, Recipe) and not recipe.is_plain_for(p):
        rpc = recipe_power_counting(recipe, p, depth)
        if not rpc.has_limit:
            if biases is not None:
                raise SpecError(f"`biases` ({biases.describe()}) are invalid with recipe ({recipe.describe()}): it has "
                                "no infinite-width limit in eta (power counting), so neither do its biases")
            if finite:
                raise invalid("finite", True, "False with a recipe (the finite-width expansion is for plain GD)")
            return Derivation(depth, steps, p, route="power-counting", exact=True, loss_coefficients=(),
                              digits=digits, degree=0, recipe=recipe, recipe_power=rpc)
    else:
        rpc = None
    recipe = check_recipe(recipe, p, steps)
    is_mup = (p.alpha == 2 and p.gamma == 0) or recipe is not None
    if input_dim is not None:
        input_dim = _check_int("input_dim", input_dim, 1)
    if data is None and recipe_needs_input_dim(recipe, p) and input_dim is None:
        raise SpecError(f"`input_dim`=None is invalid for recipe ({recipe.describe()}) without data: the limit with a "
                        "trained input layer depends on the input dimension d; must be an integer >= 1")
    if recipe is not None and finite:
        raise invalid("finite", True, "False with a recipe (the finite-width expansion is for plain GD)")

    if not is_mup:
        pc = power_counting(p, depth)
        rescaled_mean = None
        cps: tuple = ()
        glob = None
        mus = None
        info = None
        if data is not None and p.alpha == 1:
            dm = data_moments(data, steps, rationalize=rationalize)
            kappas = _kernel_traces(data, 2 * steps + 1, rationalize)
            rescaled_mean = tuple(sp_rescaled_mean_coefficients(depth, steps, dm.mus, kappas))
            cps = critical_points(rescaled_mean, digits)
            glob, _, _ = _pick_minima(cps)
            mus = dm.mus
            info = {"m": dm.m, "d": dm.d, "conversion": dm.conversion}
        return Derivation(
            depth, steps, p, route="power-counting", exact=True, loss_coefficients=(), moments=mus,
            data_info=info, power=pc, rescaled_mean=rescaled_mean, critical_points=cps, eta_inf=glob,
            finite=fin, digits=digits, degree=0,
        )

    if data is None:
        if limit_needs_eta(recipe, p) and recipe_limit_degree(depth, steps, recipe) > _ETA_RING_MAX_DEGREE:
            raise SpecError(
                f"`recipe` ({recipe.describe()}): the closed form with {recipe.wd_mode} decay keeps eta in its ring and is "
                f"too large at depth={depth}, steps={steps} (L=3, t=3: ~870k terms, minutes); pass data= for exact "
                "rationals on data (seconds), or use wd_mode='independent'")
        d_used = input_dim if recipe_needs_input_dim(recipe, p) else None
        cf = closed_form(depth, steps, backend, recipe=recipe, input_dim=d_used)
        eta_cf = f"mu1/({depth}*mu2)" if steps == 1 else None
        if steps == 1 and depth == 1:
            eta_cf = "mu1/mu2"
        if recipe is not None:
            eta_cf = None
        return Derivation(
            depth, steps, p, route="closed-form", exact=True, loss_coefficients=cf.loss,
            f_closed_form=cf.f, eta_inf_closed_form=eta_cf, finite=fin, digits=digits,
            degree=len(cf.loss) - 1, power=power_counting(p, depth), recipe=recipe, recipe_power=rpc,
            input_dim=d_used,
        )

    dm = data_moments(data, steps, exact=exact, rationalize=rationalize)
    if dm.mus[1] == 0 or dm.mus[2] == 0:
        raise DataError("K y = 0 (mu1 = 0): the limit loss does not depend on eta; use data with K y != 0")
    m = dm.m
    zero = Fraction(0) if exact else 0.0
    Rf = default_ring(dm.mus, backend=backend) if exact else None

    def rows_of(f):  # the rows of f at the data (on the integer-moment route beside the loss's products)
        fl_f = exact and HAS_FLINT and all(isinstance(v, _flint_mod().fmpq_poly) for v in f.values())
        fvals = {b: Rf.eta_coefficients(v) for b, v in f.items()}
        return _f_rows(fvals, dm, m, zero, exact, polys=dict(f) if fl_f else None)

    side_out: list = []
    if biases is not None:
        R, res, rows = _bias_limit(depth, steps, data, exact, rationalize, backend, recipe, biases, dm.d)
        side_out.append(rows)
    else:
        R, res = _numeric_limit_raw(depth, steps, dm, exact, backend, recipe, side=rows_of if exact else None,
                                    side_out=side_out)
    loss = R.eta_coefficients(res.loss)
    # FLINT ring: hand the fmpq_poly themselves on (the same rationals; no Fraction round trips)
    fl_polys = exact and HAS_FLINT and all(isinstance(v, _flint_mod().fmpq_poly) for v in [res.loss, *res.f.values()])
    deg = len(loss) - 1
    if side_out:
        f_rows = side_out[0]
    else:
        fvals = {b: R.eta_coefficients(v) for b, v in res.f.items()}
        f_rows = _f_rows(fvals, dm, m, zero, exact, polys=dict(res.f) if fl_polys else None)
    c_frac = [Fraction(c) for c in loss]
    cps = _critical_points(c_frac, digits, res.loss if fl_polys else None)
    glob, first, mins = _pick_minima(cps)
    if win is None:  # 4·η_∞^{(1)}: k = L, or L + 1 + d over the active layers of a recipe (polyloss.poly.default_window)
        k = depth
        if rpc is not None and rpc.has_limit and (recipe.trained - {"hidden"}):
            k = sum({"input": dm.d, "hidden": depth, "readout": 1}[layer]
                    for layer, g in rpc.gradient.items() if g == "active")
        win = 4 * Fraction(dm.mus[1]) / (k * Fraction(dm.mus[2]))
    in_win = [cp for cp in mins if cp._eta_mid <= win]
    if fl_polys:
        fl = _flint_mod()
        v = res.loss(fl.fmpq(win.numerator, win.denominator))
        loss_at_edge = _fraction_coprime(int(v.p), int(v.q))
    else:
        loss_at_edge = _eval_exact(c_frac, win)
    wmin, at_boundary = None, False
    if in_win:
        wmin = min(in_win, key=lambda cp: cp._loss_mid)
    if wmin is None or loss_at_edge < wmin._loss_mid:
        wmin, at_boundary = None, True
    return Derivation(
        depth, steps, p, route="data-exact" if exact else "data-float", exact=exact,
        loss_coefficients=tuple(loss), f_coefficients=tuple(f_rows), moments=dm.mus,
        data_info={"m": dm.m, "d": dm.d, "conversion": dm.conversion}, critical_points=cps,
        eta_inf=glob, eta_first_local_min=first, window=win, eta_window_min=wmin,
        eta_window_at_boundary=at_boundary, finite=fin, digits=digits, degree=deg,
        power=power_counting(p, depth), recipe=recipe, recipe_power=rpc, biases=biases,
    )


def _derive_key(depth, steps, data, param, window, exact, rationalize, digits, finite, backend, recipe, input_dim,
                biases=None):
    p = Parametrization.parse(param)
    rkey = None if recipe is None else json.dumps(recipe.to_dict(), sort_keys=True, default=str)
    if biases is not None:
        rkey = (rkey, json.dumps(biases.to_dict(), sort_keys=True))
    win = _check_positive_fraction("window", window)
    tol = _check_positive_fraction("rationalize", rationalize)
    return (int(depth), int(steps), json.dumps(p.to_dict(), sort_keys=True, default=str), rkey, data_digest(data),
            win, int(digits), bool(exact), tol, bool(finite), str(backend), input_dim)


def derive(depth, steps, data=None, param="mup", window=None, *, exact: bool = True, rationalize=None,
           digits: int = DEFAULT_DIGITS, finite: bool = False, backend: str = "auto", recipe=None,
           input_dim: int | None = None, biases=None) -> Derivation:
    kw = dict(exact=exact, rationalize=rationalize, digits=digits, finite=finite, backend=backend, recipe=recipe,
              input_dim=input_dim, biases=biases)
    if data is None:
        return _derive_uncached(depth, steps, data, param, window, **kw)
    try:
        key = _derive_key(depth, steps, data, param, window, exact, rationalize, digits, finite, backend, recipe,
                          input_dim, biases)
        hash(key)
    except Exception:  # invalid arguments: let the derivation raise its own error
        return _derive_uncached(depth, steps, data, param, window, **kw)
    val, hit = _lru_get(_derive_cache, key, _DERIVE_CACHE_SIZE,
                        lambda: _derive_uncached(depth, steps, data, param, window, **kw))
    _cache_stats["derive_hit" if hit else "derive_miss"] += 1
    # the one mutable field: each caller gets its own copy, so editing it cannot change later results
    return val if val.data_info is None else dataclasses.replace(val, data_info=dict(val.data_info))


derive.__doc__ = (_derive_uncached.__doc__ or "") + """
    Derivations on data are kept in a bounded in-process LRU keyed by (L, t, param, recipe, biases, data
    digest, window, digits, exact, rationalize, finite, backend, input_dim); a repeated call returns
    an equal frozen :class:`Derivation` (with its own copy of ``data_info``). :func:`clear_caches`
    empties it.
"""


# --------------------------------------------------------------------------------------------
# Stored derivations (derivations/)
# --------------------------------------------------------------------------------------------

#: (L, t) pairs stored in derivations/: L = 1..6 × t = 1..3, plus cheap extras
STORED_CASES = tuple((L, t) for t in (1, 2, 3) for L in range(1, 7)) + ((1, 4), (1, 5), (1, 6), (2, 4))
#: stored loss / f coefficients are cut (in ascending powers of η) once this many terms are kept
TERM_BUDGET = 20_000
_FULL_LOSS_MAX_DEGREE = 110  # above this the full loss is expensive: form it only up to _TRUNC_DEGREE
_TRUNC_DEGREE = 40


def _budgeted(coeffs: Sequence[dict], budget: int) -> tuple[list[str], bool]:
    out, used = [], 0
    for c in coeffs:
        if used + len(c) > budget and out:
            return out, False
        out.append(moment_expr(c))
        used += len(c)
    return out, True


def stored_record(depth: int, steps: int, budget: int = TERM_BUDGET, recipe=None) -> dict:
    """The JSON document stored as ``derivations/L{L}_t{t}.json`` (schema polyloss.derivation/1).

    Loss and f coefficients are kept in ascending powers of η until ``budget`` terms; the flags
    ``*_complete`` say whether everything is stored. The loss always follows from f:
    ``𝓛 = ½ Σ_{i,j} μ_{i+j} r_i r_j`` with ``r_0 = F_0 − 1`` and ``r_b = F_b``.
    """
    recipe = check_recipe(recipe, "mup", steps)
    full_deg = limit_degree_loss(depth, steps)
    trunc = None if full_deg <= _FULL_LOSS_MAX_DEGREE else _TRUNC_DEGREE
    cf = closed_form(depth, steps, max_degree=trunc, recipe=recipe)
    loss, loss_complete = _budgeted(cf.loss, budget)
    loss_complete = loss_complete and trunc is None
    F, f_complete = {}, True
    for b, cs in cf.f.items():
        F[str(b)], ok = _budgeted(cs, budget // max(1, len(cf.f)))
        f_complete = f_complete and ok
    rec = {
        "schema": SCHEMA,
        "spec": {"depth": depth, "steps": steps, "width": None, "param": Parametrization.preset("mup").to_dict()},
        "route": "closed-form",
        "exact": True,
        "degree": full_deg,
        "f_degree": limit_degree_f(depth, steps),
        "loss_coefficients": loss,
        "loss_coefficients_complete": loss_complete,
        "loss_terms_total": None if trunc is not None else cf.n_terms,
        "f_closed_form": {
            "basis": "f_inf(x_i) = sum_b F_b(eta) (Kbar^b y)_i, F_b ascending in eta",
            "F": F,
            "complete": f_complete,
            "terms_total": sum(len(c) for cs in cf.f.values() for c in cs),
        },
        "loss_from_f": "L = (1/2) sum_{i,j} mu_{i+j} r_i r_j with r_0 = F_0 - 1, r_b = F_b (b >= 1)",
        "eta_inf": None,
        "eta_first_local_min": None,
        "critical_points": [],
        "versions": _versions(),
    }
    if recipe is not None:  # plain records keep today's keys and values exactly
        if trunc is not None:
            raise SpecError(f"stored recipe derivations are complete closed forms: depth={depth}, steps={steps} is too large")
        rec["recipe"] = recipe.to_dict()
        rec["degree"] = len(cf.loss) - 1
        rec["f_degree"] = max(len(cs) for cs in cf.f.values()) - 1
        return rec
    if steps == 1:
        rec["eta_inf_closed_form"] = f"mu1/({depth}*mu2)" if depth > 1 else "mu1/mu2"
    return rec


#: Stored recipe derivations (derivations/recipes/): (name, Recipe keyword arguments, [(L, t), …]).
RECIPE_CASES = (
    ("l2-0.1", {"weight_decay": "0.1"}, ((1, 3), (2, 2), (2, 3), (3, 2))),
    ("independent-0.1", {"weight_decay": "0.1", "wd_mode": "independent"}, ((1, 3), (2, 2), (2, 3), (3, 2))),
    ("momentum-0.9", {"momentum": "0.9"}, ((1, 3), (2, 2), (2, 3), (3, 2))),
    ("nesterov-0.9", {"momentum": "0.9", "nesterov": True}, ((1, 3), (2, 2), (2, 3), (3, 2))),
    ("warmup-2", {"schedule": "warmup:2"}, ((1, 3), (2, 2), (2, 3), (3, 2))),
    # the readout trained at its μP rate 1/n as well (a trained input layer's limit depends on d:
    # `polyloss derive --train input,... --input-dim D` derives it on demand)
    ("readout-trained", {"trained": ["hidden", "readout"], "lr_exponents": ["-1", "0", "1"]}, ((1, 3), (2, 2), (3, 2))),
)


def recipe_stem(name: str, depth: int, steps: int) -> str:
    return f"{name}_L{depth}_t{steps}"


def record_markdown(rec: dict, max_terms: int = 150, stem: str | None = None) -> str:
    """A readable Markdown page (LaTeX in $$ blocks) for one stored record."""
    import sympy

    L, t = rec["spec"]["depth"], rec["spec"]["steps"]
    stem = stem or f"L{L}_t{t}"
    syms = {}

    def tex(s: str) -> str:
        expr = sympy.sympify(s, locals=syms)
        return sympy.latex(expr)

    for j in range(2 * t + 1):
        syms[f"mu{j}"] = sympy.Symbol(f"mu_{j}")
    lines = [
        f"# Infinite-width limit, depth L = {L}, steps t = {t} (μP)",
        "",
        f"$\\mathcal L_\\infty^{{({t})}}(\\eta) = \\sum_k c_k \\eta^k$ has degree {rec['degree']}; "
        f"$f_\\infty^{{({t})}}$ has degree {rec['f_degree']}. Moments: $\\mu_j = \\frac1m y^\\top \\bar K^j y$.",
        "",
        f"Machine-readable: [`{stem}.json`]({stem}.json) (schema `{SCHEMA}`; "
        + ("all coefficients" if rec["loss_coefficients_complete"] else
           f"loss coefficients up to $\\eta^{{{len(rec['loss_coefficients']) - 1}}}$")
        + ("" if rec["f_closed_form"]["complete"] else "; f in part")
        + "). What is not stored is recomputed by `polyloss.derive.closed_form(L, t)`.",
        "",
    ]
    if "recipe" in rec:
        from polyloss.recipe import Recipe

        lines[0] = f"# Infinite-width limit, depth L = {L}, steps t = {t} (μP), recipe {stem.rsplit('_L', 1)[0]}"
        lines[-2] = lines[-2].replace("closed_form(L, t)", "closed_form(L, t, recipe=Recipe.from_dict(rec['recipe']))")
        lines += [f"Recipe: {Recipe.from_dict(rec['recipe']).describe()} (docs/theory.md §7).", ""]
    if "eta_inf_closed_form" in rec:
        lines += [f"Minimiser: $\\eta_\\infty = {tex(rec['eta_inf_closed_form'])}$.", ""]
    lines += ["## Loss coefficients", ""]
    shown = 0
    for k, s in enumerate(rec["loss_coefficients"]):
        n = s.count(" + ") + s.count(" - ") + 1
        if shown + n > max_terms and k > 2:
            lines += [f"… {len(rec['loss_coefficients']) - k} more stored coefficient(s) in the JSON file.", ""]
            break
        shown += n
        lines += [f"$$c_{{{k}}} = {tex(s)}$$", ""]
    lines += ["## f in the Krylov basis", "", "$f_\\infty^{(t)}(x_i) = \\sum_b F_b(\\eta)\\,(\\bar K^b y)_i$:", ""]
    for b, cs in rec["f_closed_form"]["F"].items():
        shown, parts = 0, []
        for k, s in enumerate(cs):
            if s == "0":
                continue
            n = s.count(" + ") + s.count(" - ") + 1
            if shown + n > max_terms // 2 and parts:
                parts.append("\\cdots")
                break
            shown += n
            parts.append(f"\\left({tex(s)}\\right)\\eta^{{{k}}}")
        lines += [f"$$F_{{{b}}} = " + " + ".join(parts) + "$$", ""]
    return "\n".join(lines)


def write_derivations(outdir, cases=STORED_CASES, progress=None) -> list[str]:
    """(Re)write ``derivations/``: one JSON + one Markdown page per case, and ``index.md``."""
    import os
    import time

    os.makedirs(outdir, exist_ok=True)
    rows, written = [], []
    for L, t in cases:
        t0 = time.perf_counter()
        rec = stored_record(L, t)
        base = os.path.join(outdir, f"L{L}_t{t}")
        with open(base + ".json", "w", encoding="utf-8") as fh:
            json.dump(rec, fh, indent=2, sort_keys=True)
            fh.write("\n")
        with open(base + ".md", "w", encoding="utf-8") as fh:
            fh.write(record_markdown(rec) + "\n")
        written += [base + ".json", base + ".md"]
        rows.append((L, t, rec))
        if progress:
            progress(f"L={L} t={t}: {time.perf_counter() - t0:.2f}s")
    lines = [
        "# Stored closed forms of the μP infinite-width limit",
        "",
        "$\\mathcal L_\\infty^{(t)}(\\eta)$ as a polynomial in $\\eta$ with coefficients polynomial in",
        "$\\mu_j = \\frac1m y^\\top \\bar K^j y$ (THEORY §5). Regenerate with `python derivations/regenerate.py`.",
        "",
        "| L | t | degree of 𝓛 | loss coefficients stored | f complete | page | JSON |",
        "|---|---|---|---|---|---|---|",
    ]
    for L, t, rec in sorted(rows):
        n = len(rec["loss_coefficients"])
        stored = "all" if rec["loss_coefficients_complete"] else f"η^0..η^{n - 1}"
        lines.append(
            f"| {L} | {t} | {rec['degree']} | {stored} | {'yes' if rec['f_closed_form']['complete'] else 'no'} "
            f"| [L{L}_t{t}.md](L{L}_t{t}.md) | [json](L{L}_t{t}.json) |"
        )
    with open(os.path.join(outdir, "index.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    written.append(os.path.join(outdir, "index.md"))
    return written


def write_recipe_derivations(outdir, cases=RECIPE_CASES, progress=None) -> list[str]:
    """(Re)write ``derivations/recipes/``: closed forms of the μP limit for a few recipes
    (one JSON + one Markdown page per case, and ``index.md``). The plain files are not touched."""
    import os
    import time

    from polyloss.recipe import Recipe

    outdir = os.path.join(outdir, "recipes")
    os.makedirs(outdir, exist_ok=True)
    written = []
    lines = [
        "# Stored closed forms of the μP limit under training recipes",
        "",
        "Hidden-only recipes (docs/theory.md §7, \"The μP limit of a recipe\"); the recipe's numbers are fixed",
        "rationals, the coefficients are polynomials in $\\mu_j$. Regenerate with",
        "`python derivations/regenerate.py --recipes`.",
        "",
        "| recipe | L | t | degree of 𝓛 | page | JSON |",
        "|---|---|---|---|---|---|",
    ]
    for name, kwargs, pairs in cases:
        recipe = Recipe(**kwargs)
        for L, t in pairs:
            t0 = time.perf_counter()
            rec = stored_record(L, t, recipe=recipe)
            stem = recipe_stem(name, L, t)
            base = os.path.join(outdir, stem)
            with open(base + ".json", "w", encoding="utf-8") as fh:
                json.dump(rec, fh, indent=2, sort_keys=True)
                fh.write("\n")
            with open(base + ".md", "w", encoding="utf-8") as fh:
                fh.write(record_markdown(rec, stem=stem) + "\n")
            written += [base + ".json", base + ".md"]
            lines.append(f"| {name} | {L} | {t} | {rec['degree']} | [{stem}.md]({stem}.md) | [json]({stem}.json) |")
            if progress:
                progress(f"{name} L={L} t={t}: {time.perf_counter() - t0:.2f}s")
    with open(os.path.join(outdir, "index.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    written.append(os.path.join(outdir, "index.md"))
    return written
