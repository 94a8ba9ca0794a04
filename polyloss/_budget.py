"""Resource guards: estimate the memory and time of the requested work *before* allocating it.

Every entry point that can be asked for absurd work (``poly``, ``sample``, ``sweep``, synthetic
data) calls one function here first. Each estimates

* memory (bytes): the dense weights (L n² + n d floats per network), the data (m d), the
  activations (m n per layer), the truncated polynomials (the product of two degree-K polynomial
  vectors holds (K+1)² numbers), Adam state and per-η batches of ``sweep``;
* time (seconds): a rough, deliberately pessimistic model calibrated on a 2-core machine
  (dense engine ~1e-10 s per m·n² multiply-add and step, polynomial arithmetic ~2e-9 s per
  (K+1)²·(n+m)·L²·T, the minimiser's ~20 GD runs at ~2.5 ms per layer and step),

and refuses with a one-line :class:`~polyloss.errors.SpecError` that gives the estimate and a way
out ("--degree K", "--sampler lazy", fewer samples, ...) when

* the memory exceeds :func:`memory_limit` — half the memory available now (``MemAvailable``),
  or ``POLYLOSS_MEMORY_MB`` when set;
* the time exceeds :func:`time_limit` — 48 hours, or ``POLYLOSS_MAX_HOURS`` when set;
* a count exceeds a hard cap: more than :data:`MAX_RECORDS` networks in one run, widths above
  :data:`MAX_WIDTH`, seeds outside [0, 2^63).

The degree of the loss polynomial, ``2L·D_t`` with ``D_{t+1} = 1 + (2L − 1) D_t``, is computed
with a cap (:func:`loss_degree_capped`), so ``--steps 10^9`` is refused at once instead of
building a number with a billion digits.
"""

from __future__ import annotations

import math
import numbers
import os

from polyloss.errors import SpecError, invalid

__all__ = [
    "MAX_RECORDS", "MAX_WIDTH", "MAX_SEED", "memory_limit", "time_limit", "loss_degree_capped",
    "check_int", "check_poly", "check_sample", "check_sweep", "check_data_size", "check_derive", "derive_seconds",
    "describe", "LIMITS_HELP",
]

#: At most this many networks (width × samples/seeds) in one run.
MAX_RECORDS = 10_000_000
#: Widths above this are refused (the lazy sampler's cost does not grow with n, but integers do).
MAX_WIDTH = 2**40
#: Seeds are integers in [0, MAX_SEED) (JSON readers elsewhere hold 64-bit integers).
MAX_SEED = 2**63
#: Degrees are computed exactly up to this cap; beyond it the request is refused anyway.
_DEGREE_CAP = 10**15
_F64 = 8

LIMITS_HELP = ("requests are refused before any work when their estimated memory exceeds half the available "
               "memory (POLYLOSS_MEMORY_MB overrides) or their estimated time 48 h (POLYLOSS_MAX_HOURS)")


# ----------------------------------------------------------------------------------------- limits
def _env_float(name: str) -> float | None:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return None
    try:
        v = float(text)
    except ValueError:
        raise SpecError(f"environment variable {name}={text!r} is invalid: must be a number > 0") from None
    if not (math.isfinite(v) and v > 0):
        raise SpecError(f"environment variable {name}={text!r} is invalid: must be a finite number > 0")
    return v


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``; the physical memory when unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def memory_limit() -> int:
    """The memory a request may use: ``POLYLOSS_MEMORY_MB`` MiB, else half the available memory."""
    mb = _env_float("POLYLOSS_MEMORY_MB")
    return int(mb * 2**20) if mb is not None else available_memory() // 2


def time_limit() -> float:
    """The estimated compute time a request may take (seconds): ``POLYLOSS_MAX_HOURS``, default 48 h."""
    h = _env_float("POLYLOSS_MAX_HOURS")
    return 3600.0 * (48.0 if h is None else h)


def describe(nbytes: float) -> str:
    if not math.isfinite(nbytes) or nbytes >= 2**80:
        return "over a million TiB"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{int(nbytes)} B"


def _about(estimate: str) -> str:
    return estimate if estimate.startswith("over") else f"about {estimate}"


def _describe_time(s: float) -> str:
    if not math.isfinite(s) or s >= 86400 * 365 * 1e6:
        return "over a million years"
    if s >= 86400 * 365:
        return f"{s / (86400 * 365):.3g} years"
    if s >= 86400:
        return f"{s / 86400:.3g} days"
    if s >= 3600:
        return f"{s / 3600:.3g} h"
    return f"{s:.3g} s"


def _refuse(what: str, memory: float, seconds: float, way_out: str) -> None:
    mem_lim, t_lim = memory_limit(), time_limit()
    if memory > mem_lim:
        raise SpecError(f"{what} needs {_about(describe(memory))} of memory, more than the limit of {describe(mem_lim)} "
                        f"(half the available memory, or POLYLOSS_MEMORY_MB); {way_out}")
    if seconds > t_lim:
        raise SpecError(f"{what} would take {_about(_describe_time(seconds))}, more than the limit of "
                        f"{_describe_time(t_lim)} (POLYLOSS_MAX_HOURS); {way_out}")


# ----------------------------------------------------------------------------------------- arguments
def check_int(name: str, value, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum], or a one-line :class:`SpecError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        valid = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
        raise invalid(name, value, valid)
    v = int(value)
    if v < minimum or (maximum is not None and v > maximum):
        raise invalid(name, value, f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}"))
    return v


def loss_degree_capped(depth: int, steps: int, cap: int = _DEGREE_CAP) -> int:
    """``2L·D_t`` (the degree of the t-step loss polynomial), or ``cap + 1`` when it exceeds ``cap``."""
    if depth == 1:  # D_t = t
        return 2 * steps if 2 * steps <= cap else cap + 1
    D = 0
    for _ in range(steps):
        D = 1 + (2 * depth - 1) * D
        if 2 * depth * D > cap:
            return cap + 1
    return 2 * depth * D


def _poly_cost(depth: int, steps: int, K: int, n: int, m: int) -> tuple[float, float]:
    """Memory and time of the truncated-polynomial recursion kept to degree K."""
    Kf = K + 1.0
    memory = 2 * _F64 * Kf * Kf + _F64 * Kf * (n + m) * (4 * depth * steps + 8)
    seconds = 2e-9 * steps * depth * depth * Kf * Kf * (n + m)
    return memory, seconds


def _kept_degree(depth: int, steps: int, degree, screen_max: int = 256) -> tuple[int, int]:
    """(full degree, degree the engine works to): the complete polynomial when it is small enough to
    screen the minimiser's grid (see ``poly.polynomial_for_minimisation``), else ``degree``."""
    full = loss_degree_capped(depth, steps)
    if full <= screen_max:
        return full, full
    return full, full if degree is None else min(int(degree), full)


def _network_cost(depth: int, n: int, d: int, m: int, steps: int, n_grid: int = 96) -> tuple[float, float]:
    """Memory and time of one dense network: weights, activations, the minimiser's GD runs."""
    memory = _F64 * ((depth + 2.0) * n * n + n * d + 4.0 * m * n * (depth + 1) + m * d)
    seconds = 0.02 + 0.05 * depth * steps + 1e-10 * depth * steps * (m + d) * n * n * max(1, n_grid // 48)
    return memory, seconds


def check_degree(depth: int, steps: int, degree) -> None:
    if degree is not None:
        check_int("degree", degree, 0)


def check_poly(depth: int, width: int, input_dim: int, m: int, steps: int, degree=None, trained: int | None = None) -> None:
    """Guard ``poly`` (one given network): the polynomial's degree and the network's size.

    ``trained``: the number k of trained matrices of the recipe (default L): the degree is 2k·D_t
    with D_t's recursion in k, so the degree is estimated as for depth k."""
    steps = check_int("steps", steps, 1)
    check_degree(depth, steps, degree)
    full, K = _kept_degree(depth if trained is None else max(int(trained), 1), steps, degree)
    m1, t1 = _poly_cost(depth, steps, K, width, m)
    m2, t2 = _network_cost(depth, width, input_dim, m, steps)
    deg = f"degree {K}" if K <= _DEGREE_CAP else "degree above 10^15"
    _refuse(f"the loss polynomial to {deg} (L = {depth}, t = {steps}, n = {width}, m = {m})", m1 + m2, t1 + t2,
            "keep fewer coefficients with --degree K (eta_n and the minima do not need them), or fewer --steps")


def check_sample(depth, widths, samples: int, steps, degree, m: int, d: int, sampler: str = "auto",
                 lazy_min_width: int = 2048, trained: int | None = None) -> None:
    """Guard ``sample``: per-network memory (dense n×n layers) and the total time of the run
    (``trained``: as in :func:`check_poly`). ``steps``: T, or a horizon rule T(n)
    (:class:`polyloss.horizon.StepsRule` or its text): each width is estimated at its own T."""
    from polyloss.horizon import StepsRule

    depth = check_int("depth", depth, 1)
    if isinstance(steps, (str, StepsRule)):
        rule = StepsRule.parse(steps)
    else:
        rule = StepsRule.parse(check_int("steps", steps, 1))
    samples = check_int("samples", samples, 1)
    widths = list(widths)
    for w in widths:
        check_int("widths", w, 1, MAX_WIDTH)
    if len(widths) * samples > MAX_RECORDS:
        raise SpecError(f"{len(widths)} widths x {samples} samples = {len(widths) * samples} networks, more than "
                        f"{MAX_RECORDS} in one run; use fewer --samples or widths")
    by_w = rule.by_width(widths)
    for T in sorted(set(by_w.values())):  # one width's horizon alone may be too much
        _check_sample_widths(depth, [n for n in widths if by_w[n] == T], samples, T, degree, m, d, sampler,
                             lazy_min_width, trained, "" if rule.is_fixed else f" (steps rule {rule.spec!r})")
    if not rule.is_fixed:  # and the whole run
        _check_sample_widths(depth, widths, samples, by_w, degree, m, d, sampler, lazy_min_width, trained,
                             f" (steps rule {rule.spec!r})")


def _check_sample_widths(depth, widths, samples, steps, degree, m, d, sampler, lazy_min_width, trained, note) -> None:
    """check_sample's estimate; ``steps``: T, or {width: T}."""
    steps_of = (lambda n: steps[n]) if isinstance(steps, dict) else (lambda n: steps)
    total, peak = 0.0, 0.0
    for n in widths:
        T = steps_of(n)
        full, K = _kept_degree(depth if trained is None else max(int(trained), 1), T, 8 if degree is None else degree)
        lazy = sampler == "lazy" or (sampler == "auto" and n >= lazy_min_width)
        eff = min(n, d + 1 + 16 * depth * T + 32) if lazy else n  # lazy: reduced coordinates
        mem, sec = _network_cost(depth, eff, d, m, T)
        if lazy:
            sec += 0.1 * depth * T
        pm, pt = _poly_cost(depth, T, K, eff, m)
        peak = max(peak, mem + pm)
        total += samples * (sec + pt)
    big = max(widths)
    way = ("use --sampler lazy (or auto) for wide networks, " if sampler == "dense" and big >= lazy_min_width else "")
    t = f"up to {max(steps.values())}" if isinstance(steps, dict) else steps
    _refuse(f"sample (L = {depth}, t = {t}{note}, widths up to {big}, {samples} samples each, m = {m}, d = {d})",
            peak, total, way + "fewer or smaller widths, fewer --samples, a smaller --degree or fewer --steps")


def check_sweep(depth, widths, seeds: int, steps: int, n_etas: int, m: int, d: int, adam: bool,
                memory_mb: float) -> None:
    """Guard ``sweep``: one dense network per (width, seed), trained at every η of the grid."""
    widths = list(widths)
    for w in widths:
        check_int("widths", w, 1, MAX_WIDTH)
    if len(widths) * seeds > MAX_RECORDS:
        raise SpecError(f"{len(widths)} widths x {seeds} seeds = {len(widths) * seeds} networks, more than "
                        f"{MAX_RECORDS} in one run; use fewer --seeds or widths")
    limit = memory_limit()
    if memory_mb * 2**20 > limit:
        raise SpecError(f"`memory-mb`={memory_mb:g} is more than the memory limit of {describe(limit)} "
                        "(half the available memory, or POLYLOSS_MEMORY_MB); give a smaller --memory-mb")
    total, peak = 0.0, 0.0
    for n in widths:
        per_eta = _F64 * (depth * (3 if adam else 1) * n * n + (2 * depth + 6) * m * n)
        base = _F64 * ((depth + 2.0) * n * n + n * d + m * d)
        chunk = max(1, min(n_etas, int(memory_mb * 2**20 // max(per_eta, 1))))
        peak = max(peak, base + chunk * per_eta)
        total += seeds * (0.005 + n_etas * (1e-4 + steps * (2e-5 + depth * 4e-10 * (m + 1) * n * n)))
    # every record holds a loss per eta and step; readers load the whole run (~40 bytes a number)
    stored = 40.0 * len(widths) * seeds * n_etas * (steps + 1)
    peak = max(peak, stored)
    _refuse(f"sweep (L = {depth}, t = {steps}, widths up to {max(widths)}, {seeds} seeds, {n_etas} learning rates, "
            f"m = {m})", peak, total, "fewer or smaller widths, fewer --seeds or learning rates, or a smaller --memory-mb")


def check_data_size(m: int, d: int, what: str = "synthetic data") -> None:
    """Guard drawing ``m × d`` synthetic inputs (X, the teacher and the labels)."""
    _refuse(f"{what} with m = {m}, d = {d}", _F64 * (2.0 * m * d + d + 2 * m), 1e-8 * m * d,
            "use a smaller --m or --d")


def derive_seconds(depth: int, steps: int) -> float:
    """Rough time of the exact limit (``derive``): calibrated on 2 cores, it grows like D_t³ (D_t the
    degree of W^(t)) by a factor ~5 per step: L = 5, t = 3 about 30 s; L = 2, t = 4 about 12 s.
    L = 1 is cheap (about 1 s up to t = 12)."""
    if depth == 1:
        return 2.0 if steps <= 12 else 2.0 * 2.0 ** min(steps - 12, 1000)
    D = 0
    for _ in range(steps):
        D = 1 + (2 * depth - 1) * D
        if D > 10**12:
            return math.inf
    return 0.5 + 4e-5 * 5.0 ** (steps - 3) * float(D) ** 3


def check_derive(depth: int, steps: int, recipe=None, biases=None) -> None:
    """Guard ``derive``: refuse limits whose estimated time exceeds :func:`time_limit`. A recipe that
    trains the input or readout layer costs about what one more hidden layer costs (its degree
    recursion is that of depth k = L + 1 per extra trained layer); so does a network with an input bias
    (trained, or with a random start) or a trained readout bias (``biases``: a :class:`polyloss.recipe.Biases`)."""
    depth = check_int("depth", depth, 1)
    trained = set() if recipe is None else set(recipe.trained)
    if biases is not None:
        trained |= {"input"} if ("input" in biases.layers or biases.input_var) else set()
        trained |= {"readout"} & set(biases.layers)
    depth += ("input" in trained) + ("readout" in trained)
    sec = derive_seconds(depth, check_int("steps", steps, 1))
    _refuse(f"the exact limit for L = {depth}, t = {steps}", 0.0, sec, "use fewer --steps or a smaller --depth "
            "(or sample finite widths with `polyloss sample`)")
