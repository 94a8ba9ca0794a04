"""Convergence-rate statistics: power-law fits with bootstrap CIs, change-point tests, extrapolation.

The input is always *per-seed* data grouped by width, because the honest uncertainty of a rate is
the seed-to-seed variation: ``{n: array of per-seed values}``.

* :func:`fit_rate` — RMS deviation from a reference (the exact limit) vs n, fitted as
  ``RMS ≈ A n^{slope}`` by least squares in log-log, with a stratified bootstrap CI over seeds
  (``scipy.stats.bootstrap``: seeds are resampled independently within each width).
* :func:`change_point` — does the rate change at some width? A continuous two-segment (hinge) fit
  against the single power law, weighted by per-width standard errors of log RMS; the evidence is
  the drop in χ², calibrated by a parametric bootstrap under the single-power-law null (the break
  is chosen by maximisation, so the naive χ²₁ p-value would be anti-conservative). The verdict is
  ``"change"``, ``"no change"`` or ``"cannot tell"`` (too few widths, or too noisy to detect a
  slope change of ``min_effect``).
* :func:`extrapolate` — the mean at ``n = ∞`` by weighted least squares in ``1/n``: an estimate of
  the limit that does not use the symbolic engine.
* :func:`fit_scaling` — the slope of a quantity's mean itself in n (e.g. η_n ∝ n^{-1} under SP).
* :func:`scaling_verdict` — the one rule for "η_n ∝ n^p" (C3 and ``report``), stated by :func:`scaling_rule`.
* :func:`nearest_basin` / :func:`basin_distance` — which minimiser of a limit each seed's η_n belongs to.
* :func:`deceleration` — does that slope shrink from the narrowest to the widest pair of widths?
  What separates a quantity converging to a non-zero limit (local slopes → 0) from a power-law
  drift (constant local slope) when neither has settled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from polyloss.errors import SpecError

__all__ = ["RateFit", "ChangePoint", "Extrapolation", "Deceleration", "ScalingVerdict", "fit_rate", "change_point",
           "extrapolate", "fit_scaling", "deceleration", "scaling_verdict", "scaling_rule", "nearest_basin",
           "basin_distance", "SCALING_MARGIN"]


def _groups(groups: dict, min_widths: int, what: str) -> tuple[np.ndarray, list[np.ndarray]]:
    items = sorted((int(n), np.asarray(v, dtype=float).ravel()) for n, v in groups.items())
    items = [(n, v[np.isfinite(v)]) for n, v in items]
    items = [(n, v) for n, v in items if v.size >= 2]
    if len(items) < min_widths:
        raise SpecError(f"{what} needs at least {min_widths} widths with >= 2 finite samples each, got {len(items)}")
    return np.array([n for n, _ in items], dtype=float), [v for _, v in items]


def _ols_slope(x, y):
    x0 = x - x.mean()
    b = float(x0 @ (y - y.mean()) / (x0 @ x0))
    return b, float(y.mean() - b * x.mean())


@dataclass(frozen=True)
class RateFit:
    """``RMS(n) ≈ exp(intercept) · n^slope`` with a bootstrap confidence interval of the slope."""

    slope: float
    ci_low: float
    ci_high: float
    intercept: float
    level: float
    widths: tuple
    rms: tuple
    rms_se: tuple

    def to_dict(self) -> dict:
        return asdict(self)


def _rms(devs):
    return np.sqrt(np.mean(np.square(devs)))


def _rms_se(devs):
    """Delta-method standard error of the RMS over seeds."""
    sq = np.square(devs)
    ms = sq.mean()
    return float(np.sqrt(sq.var(ddof=1) / sq.size) / (2 * np.sqrt(ms))) if ms > 0 else np.inf


def fit_rate(groups: dict, reference: float | dict = 0.0, *, level: float = 0.95, n_resamples: int = 2000,
             seed: int = 0) -> RateFit:
    """Fit ``RMS_seeds(value − reference) ∝ n^slope`` with a stratified bootstrap CI.

    Args:
      groups: ``{width: per-seed values}``.
      reference: the exact limit (a number, or ``{width: number}``).
    """
    ns, vals = _groups(groups, 3, "fit_rate")
    refs = [reference.get(int(n)) if isinstance(reference, dict) else reference for n in ns]
    devs = [v - r for v, r in zip(vals, refs)]
    logn = np.log(ns)

    def slope_of(*samples):
        rms = np.array([_rms(s) for s in samples])
        return _ols_slope(logn, np.log(np.maximum(rms, 1e-300)))[0]

    slope, intercept = _ols_slope(logn, np.log(np.maximum([_rms(d) for d in devs], 1e-300)))
    boot = stats.bootstrap(tuple(devs), slope_of, vectorized=False, paired=False, n_resamples=n_resamples,
                           confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    ci = boot.confidence_interval
    return RateFit(slope, float(ci.low), float(ci.high), intercept, level, tuple(int(n) for n in ns),
                   tuple(float(_rms(d)) for d in devs), tuple(_rms_se(d) for d in devs))


@dataclass(frozen=True)
class ChangePoint:
    verdict: str  # "change" | "no change" | "cannot tell"
    reason: str
    p_value: float
    delta_chi2: float
    break_width: float | None
    slope_before: float
    slope_after: float
    slope_single: float
    level: float

    def to_dict(self) -> dict:
        return asdict(self)


def _wls(X, y, w):
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
    r = y - X @ coef
    return coef, float(np.sum(w * r * r))


def _hinge_fits(x, y, w, min_side):
    """Best continuous two-segment fit over breaks at interior points: (chi2, break index, coef)."""
    best = (np.inf, None, None)
    for i in range(min_side - 1, len(x) - min_side + 1):
        xb = x[i]
        X = np.column_stack([np.ones_like(x), x, np.maximum(0.0, x - xb)])
        coef, chi2 = _wls(X, y, w)
        if chi2 < best[0]:
            best = (chi2, i, coef)
    return best


def change_point(groups: dict, reference: float | dict = 0.0, *, level: float = 0.01, min_effect: float = 0.25,
                 n_null: int = 2000, seed: int = 0, min_side: int = 3) -> ChangePoint:
    """Test for a change of the convergence rate (see the module docstring).

    Args:
      level: the test level for calling a change.
      min_effect: the smallest slope change worth detecting; if the data could not detect it with
        probability ≥ 1/2, a non-significant result is reported as ``"cannot tell"``.
      min_side: widths needed on each side of a break (the break width belongs to both).
    """
    ns, vals = _groups(groups, 1, "change_point")
    refs = [reference.get(int(n)) if isinstance(reference, dict) else reference for n in ns]
    devs = [v - r for v, r in zip(vals, refs)]
    x = np.log(ns)
    rms = np.array([_rms(d) for d in devs])
    se_log = np.array([_rms_se(d) for d in devs]) / np.maximum(rms, 1e-300)
    y = np.log(np.maximum(rms, 1e-300))
    nan = float("nan")
    if len(ns) < 2 * min_side - 1:
        slope = _ols_slope(x, y)[0] if len(ns) >= 2 else nan
        return ChangePoint("cannot tell", f"{len(ns)} widths; a change-point test needs >= {2 * min_side - 1}",
                           nan, nan, None, nan, nan, slope, level)
    w = 1.0 / np.maximum(se_log, 1e-12) ** 2
    X1 = np.column_stack([np.ones_like(x), x])
    coef1, chi1 = _wls(X1, y, w)
    chi2, i_b, coef2 = _hinge_fits(x, y, w, min_side)
    delta = chi1 - chi2
    rng = np.random.default_rng(seed)
    fit1 = X1 @ coef1
    null = np.empty(n_null)
    for k in range(n_null):
        ys = fit1 + rng.standard_normal(len(x)) * se_log
        _, c1 = _wls(X1, ys, w)
        c2, *_ = _hinge_fits(x, ys, w, min_side)
        null[k] = c1 - c2
    p = float((1 + np.sum(null >= delta)) / (n_null + 1))
    crit = float(np.quantile(null, 1 - level))
    before, after = float(coef2[1]), float(coef2[1] + coef2[2])
    if p < level:
        verdict, reason = "change", f"slope {before:.3g} -> {after:.3g} at n = {ns[i_b]:.0f} (p = {p:.2g} < {level})"
    else:
        # power check: a hinge of size min_effect at the middle break, with these errors
        xb = x[len(x) // 2]
        yalt = fit1 + min_effect * np.maximum(0.0, x - xb)
        hits = 0
        for _ in range(200):
            ys = yalt + rng.standard_normal(len(x)) * se_log
            _, c1 = _wls(X1, ys, w)
            c2, *_ = _hinge_fits(x, ys, w, min_side)
            hits += (c1 - c2) > crit
        if hits / 200 < 0.5:
            verdict, reason = "cannot tell", (f"no significant change (p = {p:.2g}), but a slope change of {min_effect} "
                                              f"would be detected only {hits / 2:.0f}% of the time with these errors")
        else:
            verdict, reason = "no change", f"p = {p:.2g} >= {level}; a change of {min_effect} would be detected {hits / 2:.0f}% of the time"
    return ChangePoint(verdict, reason, p, float(delta), float(ns[i_b]), before, after, float(coef1[1]), level)


@dataclass(frozen=True)
class Extrapolation:
    value: float
    se: float
    model: str

    def to_dict(self) -> dict:
        return asdict(self)


def extrapolate(groups: dict) -> Extrapolation:
    """Estimate ``lim_{n→∞}`` of the seed mean by WLS on ``a + b/n`` (``+ c/n²`` with ≥ 5 widths)."""
    ns, vals = _groups(groups, 2, "extrapolate")
    mean = np.array([v.mean() for v in vals])
    se = np.array([v.std(ddof=1) / np.sqrt(v.size) for v in vals])
    w = 1.0 / np.maximum(se, 1e-300) ** 2
    cols = [np.ones_like(ns), 1.0 / ns] + ([1.0 / ns**2] if len(ns) >= 5 else [])
    X = np.column_stack(cols)
    coef, _ = _wls(X, mean, w)
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    model = "a + b/n + c/n^2" if len(cols) == 3 else "a + b/n"
    return Extrapolation(float(coef[0]), float(np.sqrt(cov[0, 0])), model)


def fit_scaling(groups: dict, *, level: float = 0.95, n_resamples: int = 2000, seed: int = 0,
                correction: float | None = None) -> RateFit:
    """Slope of ``log |mean over seeds|`` vs ``log n`` with a stratified bootstrap CI (e.g. SP's η_n ∝ n^{-1}).

    ``correction``: also fit a finite-size term, ``log|mean| = c + slope·log n + q·n^{-correction}``,
    so that ``slope`` estimates the asymptotic exponent rather than a local one (needs ≥ 4 widths).
    """
    ns, vals = _groups(groups, 3 if correction is None else 4, "fit_scaling")
    logn = np.log(ns)
    X = np.column_stack([np.ones_like(logn), logn] + ([ns ** (-float(correction))] if correction is not None else []))

    def fit(means):
        coef, *_ = np.linalg.lstsq(X, np.log(np.maximum(np.abs(means), 1e-300)), rcond=None)
        return coef

    def slope_of(*samples):
        return fit([s.mean() for s in samples])[1]

    means = np.abs([v.mean() for v in vals])
    intercept, slope = fit(means)[:2]
    boot = stats.bootstrap(tuple(vals), slope_of, vectorized=False, paired=False, n_resamples=n_resamples,
                           confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    ci = boot.confidence_interval
    ses = tuple(float(v.std(ddof=1) / np.sqrt(v.size)) for v in vals)
    return RateFit(slope, float(ci.low), float(ci.high), intercept, level, tuple(int(n) for n in ns),
                   tuple(float(m) for m in means), ses)


@dataclass(frozen=True)
class Deceleration:
    """Local log-log slopes of ``|mean|`` between the two narrowest and the two widest widths, and a
    bootstrap CI of ``change`` = (|last| − |first|) measured along the first slope's direction:
    ``change < 0`` means the drift slows down. ``decelerating``: the whole CI lies below 0."""

    first: float
    last: float
    change: float
    ci_low: float
    ci_high: float
    level: float
    widths: tuple

    @property
    def decelerating(self) -> bool:
        return self.ci_high < 0

    def to_dict(self) -> dict:
        return {**asdict(self), "decelerating": self.decelerating}


def deceleration(groups: dict, *, level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Deceleration:
    """Is the drift of a per-seed quantity's mean slowing down with width? (needs ≥ 3 widths).

    Local slopes ``s = Δ log|mean| / Δ log n`` of the first and last pairs of widths; ``change`` =
    ``sign(s_first)·(s_last − s_first)``, with a stratified percentile bootstrap CI over seeds (as
    :func:`fit_scaling`). A quantity converging to a non-zero limit has ``change < 0``; a pure power
    law ``n^c`` has ``change ≈ 0`` whatever ``c``.
    """
    ns, vals = _groups(groups, 3, "deceleration")
    logn = np.log(ns)

    def local(means):
        lm = np.log(np.maximum(np.abs(means), 1e-300))
        return (lm[1] - lm[0]) / (logn[1] - logn[0]), (lm[-1] - lm[-2]) / (logn[-1] - logn[-2])

    first, last = local(np.array([v.mean() for v in vals]))
    direction = 1.0 if first >= 0 else -1.0

    def change_of(*samples):
        f, l = local(np.array([s.mean() for s in samples]))
        return direction * (l - f)

    boot = stats.bootstrap(tuple(vals), change_of, vectorized=False, paired=False, n_resamples=n_resamples,
                           confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    ci = boot.confidence_interval
    return Deceleration(float(first), float(last), float(direction * (last - first)), float(ci.low), float(ci.high),
                        level, tuple(int(n) for n in ns))


# ---------------------------------------------------------------------------------------------
# One rule for "η_n scales like n^p" (C3 and `report` on non-μP runs), and basins of a limit.

SCALING_MARGIN = 0.05


def scaling_rule(predicted: float, margin: float = SCALING_MARGIN) -> str:
    """The decision rule of :func:`scaling_verdict`, in words (stated in C3 and in every report)."""
    p, m = float(predicted), float(margin)
    rule = (f"log-log slope of the seed mean of η_n on the larger half of the widths (at least 3), 95% stratified "
            f"bootstrap CI, judged with an equivalence margin for finite-size systematics: consistent with n^{p:g} "
            f"if the CI meets [{p - m:g}, {p + m:g}]")
    if p < 0:
        rule += f" and lies below {p / 2:g} (clearly drifting)"
    elif p > 0:
        rule += f" and lies above {p / 2:g} (clearly drifting)"
    rule += f"; NOT consistent if it misses [{p - 2 * m:g}, {p + 2 * m:g}]"
    if p < 0:
        rule += f" or lies above {p / 2:g} (no drift)"
    elif p > 0:
        rule += f" or lies below {p / 2:g} (no drift)"
    return rule + "; cannot tell otherwise"


@dataclass(frozen=True)
class ScalingVerdict:
    """Outcome of :func:`scaling_verdict`: ``verdict`` is "pass" | "fail" | "inconclusive"."""

    verdict: str
    predicted: float
    margin: float
    fit: RateFit  # on the larger half of the widths
    corrected: dict  # {"n^-1.0": RateFit, "n^-0.5": RateFit}: all widths with a finite-size term (>= 4 widths)
    rule: str

    @property
    def words(self) -> str:
        return {"pass": "consistent", "fail": "NOT consistent", "inconclusive": "cannot tell"}[self.verdict]

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "words": self.words, "predicted_exponent": self.predicted, "margin": self.margin,
                "fit": self.fit.to_dict(), "corrected": {k: f.to_dict() for k, f in self.corrected.items()},
                "rule": self.rule}


def scaling_verdict(groups: dict, predicted: float = -1.0, *, margin: float = SCALING_MARGIN, seed: int = 0) -> ScalingVerdict:
    """Is the seed mean of a per-seed quantity (η_n) scaling like ``n^predicted``? (see :func:`scaling_rule`).

    The slope is fitted on the larger half of the widths (at least 3) because the approach to the
    asymptotic exponent has finite-size corrections; fits over all widths with a 1/n and an n^-1/2
    correction term are reported beside it (their spread is a measure of the systematic error).
    """
    p, m = float(predicted), float(margin)
    widths = sorted(int(n) for n in groups)
    upper = widths[-max(3, (len(widths) + 1) // 2):]
    fit = fit_scaling({n: groups[n] for n in upper}, seed=seed)
    corrected = ({f"n^-{c}": fit_scaling(groups, seed=seed, correction=c) for c in (1.0, 0.5)}
                 if len(widths) >= 4 else {})
    lo, hi = fit.ci_low, fit.ci_high
    drifting = hi < p / 2 if p < 0 else (lo > p / 2 if p > 0 else True)
    wrong_side = lo > p / 2 if p < 0 else (hi < p / 2 if p > 0 else False)
    if lo <= p + m and hi >= p - m and drifting:
        v = "pass"
    elif lo > p + 2 * m or hi < p - 2 * m or wrong_side:
        v = "fail"
    else:
        v = "inconclusive"
    return ScalingVerdict(v, p, m, fit, corrected, scaling_rule(p, m))


def nearest_basin(values, minima) -> np.ndarray:
    """For each value (e.g. a seed's η_n), the index of the nearest of ``minima`` (the basin rule of C6
    and of ``compare``/``report`` when the limit has several local minimisers in the window)."""
    v = np.asarray(values, dtype=float).ravel()
    mins = np.asarray(minima, dtype=float).ravel()
    if mins.size == 0:
        raise SpecError("`minima` is empty: a basin needs at least one minimiser")
    return np.argmin(np.abs(v[:, None] - mins[None, :]), axis=1)


def basin_distance(values, minima) -> np.ndarray:
    """The distance of each value to the nearest of ``minima``."""
    v = np.asarray(values, dtype=float).ravel()
    mins = np.asarray(minima, dtype=float).ravel()
    return np.abs(v - mins[nearest_basin(v, mins)])


# ---- C7: protocols that could make |η_n − η_∞| look faster beyond n ≈ 1024 (issue 12 part 4)
#
# Every protocol turns per-seed data grouped by width into one non-negative number per width, the
# "distance to the limit" that a paper would plot against n. The data of a width are an array whose
# first axis is the seed (η values, or loss curves on an η grid). A protocol's ``statistic`` is
# vectorised over bootstrap resamples through seed weights: ``statistic(groups, weights)`` with
# ``weights = {n: (B, seeds)}`` (how often each seed is drawn; all ones for the data themselves) returns
# ``{n: array (B,)}``; :func:`rate_change` calls it once on the data (B = 1) and once on B stratified
# resamples (seeds drawn with replacement, independently within each width).

#: The η grid of the finite-grid protocols (P1, P2): points per decade, anchored at powers of ten like a
#: sweep grid. 6 per decade is the spacing of the full-mode ``sweep`` grid (log:1e-7:1e3:61), our stand-in
#: for a paper's learning-rate sweep (Hayou (2025) does not state its spacing in our sources).
PAPER_PER_DECADE = 6


@dataclass(frozen=True, eq=False)
class Protocol:
    """A measurement protocol of |η_n − η_∞|: per-width per-seed ``groups`` and the ``statistic`` on them.

    ``fit_widths``: the widths whose statistic is fitted (None: all; P3 leaves out its reference width)."""

    key: str
    words: str
    groups: dict
    statistic: object
    fit_widths: tuple | None = None

    def values(self) -> dict:
        out = self.statistic(self.groups, _ones(self.groups))
        return {int(n): float(np.asarray(x).ravel()[0]) for n, x in sorted(out.items())}


def log_grid(lo: float, hi: float, per_decade: float = PAPER_PER_DECADE) -> np.ndarray:
    """The points 10^(k/per_decade) in [lo, hi] (k integer): a sweep grid anchored at powers of ten."""
    if not (0 < lo < hi) or per_decade <= 0:
        raise SpecError(f"log_grid needs 0 < lo < hi and per_decade > 0, got {lo}, {hi}, {per_decade}")
    k = np.arange(np.ceil(np.log10(lo) * per_decade - 1e-9), np.floor(np.log10(hi) * per_decade + 1e-9) + 1)
    return 10.0 ** (k / per_decade)


def monomial_curves(coefficients, etas, rtol: float = 1e-9) -> np.ndarray:
    """The loss Σ_k c_k η^k of each row of ``coefficients`` (seeds × (K+1), the *complete* polynomial) at
    ``etas``, refused (SpecError) wherever the rounding bound 4(K+1)·eps·Σ|c_k|η^k exceeds ``rtol``·|value|
    (the certification of :mod:`polyloss.minimize`; t = 1 always passes, t ≥ 2 rarely: use the stored
    stable curve, ``curve_loss`` on ``curve_etas``, there)."""
    C = np.atleast_2d(np.asarray(coefficients, dtype=float))
    e = np.asarray(etas, dtype=float).ravel()
    P = e[:, None] ** np.arange(C.shape[1])
    val = C @ P.T
    bound = 4.0 * max(C.shape[1], 2) * np.finfo(float).eps * (np.abs(C) @ P.T)
    bad = ~(bound <= rtol * np.abs(val))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise SpecError(f"the monomial loss is not certified at η = {e[j]:.6g} (row {i}): rounding bound "
                        f"{bound[i, j]:.3g} vs value {val[i, j]:.3g}; evaluate the loss stably (the record's curve_loss)")
    return val


def _ones(groups):
    return {n: np.ones((1, np.shape(v)[0])) for n, v in groups.items()}


def _wmean(w, v):
    """Weighted seed mean: w (B, S) counts, v (S, ...) -> (B, ...)."""
    return np.tensordot(w, np.asarray(v, dtype=float), axes=(1, 0)) / w.shape[1]


def _rms_stat(reference):
    def stat(groups, weights):
        return {n: np.sqrt(_wmean(weights[n], np.square(v - reference))) for n, v in groups.items()}
    return stat


def protocol_exact(eta_groups: dict, eta_inf: float) -> Protocol:
    """P0 (today's C7): RMS over seeds of η_n − η_∞, η_n the exact per-network minimiser in the window."""
    g = {int(n): np.asarray(v, dtype=float).ravel() for n, v in eta_groups.items()}
    return Protocol("P0", "RMS over seeds of η_n − η_∞ (exact per-network minimiser)", g, _rms_stat(float(eta_inf)))


def grid_argmin(curves, etas) -> np.ndarray:
    """The grid point of least loss of each row of ``curves`` (..., G) on ``etas`` (G,) (non-finite: never)."""
    c = np.where(np.isfinite(curves), curves, np.inf)
    return np.asarray(etas, dtype=float)[np.argmin(c, axis=-1)]


def protocol_grid(curve_groups: dict, etas, eta_inf: float) -> Protocol:
    """P1: RMS over seeds of η̂_n − η_∞, η̂_n each network's argmin on the finite grid ``etas`` (a sweep):
    once every seed picks the grid point next to η_∞ the statistic is |that point − η_∞| (≤ the spacing)."""
    etas = np.asarray(etas, dtype=float)
    g = {int(n): grid_argmin(np.asarray(c, dtype=float), etas) for n, c in curve_groups.items()}
    return Protocol("P1", f"RMS over seeds of argmin-on-grid η̂_n − η_∞ ({etas.size}-point grid)", g,
                    _rms_stat(float(eta_inf)))


def protocol_mean_curve(curve_groups: dict, etas, eta_inf: float) -> Protocol:
    """P2: |argmin over the grid of the seed-averaged loss curve − η_∞| (a bias-only estimate, on the grid)."""
    etas = np.asarray(etas, dtype=float)
    g = {int(n): np.asarray(c, dtype=float) for n, c in curve_groups.items()}

    def stat(groups, weights):
        return {n: np.abs(grid_argmin(_wmean(weights[n], v), etas) - eta_inf) for n, v in groups.items()}

    return Protocol("P2", f"|argmin of the seed-averaged loss curve − η_∞| ({etas.size}-point grid)", g, stat)


def protocol_widest(eta_groups: dict) -> Protocol:
    """P3: RMS over seeds of η_n − η̄_N, the reference η̄_N the seed mean of η at the widest width N (resampled
    with the others); N itself is not fitted (its distance to itself is no measurement)."""
    g = {int(n): np.asarray(v, dtype=float).ravel() for n, v in eta_groups.items()}
    widest = max(g)

    def stat(groups, weights):
        ref = _wmean(weights[widest], groups[widest])[:, None]  # (B, 1)
        # E_w (v − ref)^2 = E_w v^2 − 2 ref E_w v + ref^2 (exact: the weights sum to the seed count)
        return {n: np.sqrt(np.maximum(_wmean(weights[n], v * v) - 2 * ref[:, 0] * _wmean(weights[n], v)
                                      + ref[:, 0] ** 2, 0.0)) for n, v in groups.items()}

    return Protocol("P3", f"RMS over seeds of η_n − (seed mean of η at the widest width, {widest})", g, stat,
                    tuple(n for n in sorted(g) if n != widest))


def protocol_bias(eta_groups: dict, eta_inf: float) -> Protocol:
    """P4: |mean over seeds of η_n − η_∞| (the bias, plus the seed mean's own noise) instead of the RMS."""
    g = {int(n): np.asarray(v, dtype=float).ravel() for n, v in eta_groups.items()}

    def stat(groups, weights):
        return {n: np.abs(_wmean(weights[n], v) - eta_inf) for n, v in groups.items()}

    return Protocol("P4", "|mean over seeds of η_n − η_∞| (bias)", g, stat)


@dataclass(frozen=True)
class RateChange:
    """Log-log slopes of a protocol's statistic on n ≤ split and on n ≥ split (the split in both), and
    ``change`` = slope after − slope before, each with a stratified-bootstrap percentile CI.

    ``verdict`` (the pre-registered C7 rule, :func:`rate_change_rule`): 'faster after' (the CI of the
    change lies below 0), 'slower after' (above 0), 'no change' (contains 0), 'cannot tell' (a segment
    has fewer than 2 widths). ``reproduces``: 'faster after' with −1/2 inside the CI of the slope before
    (the paper's observation: n^-1/2 up to the split, faster beyond)."""

    key: str
    words: str
    split: int
    widths: tuple
    values: tuple
    before: dict  # {"slope", "ci", "intercept", "widths", "rms"} (the rate-fit dict of verify)
    after: dict
    change: float
    change_ci: tuple
    level: float
    n_resamples: int
    verdict: str
    reproduces: bool

    def to_dict(self) -> dict:
        return asdict(self)


def rate_change_rule(change_ci, before_ci) -> tuple[str, bool]:
    """The pre-registered rule of C7 (stated before any data were seen): see :class:`RateChange`."""
    lo, hi = change_ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "cannot tell", False
    v = "faster after" if hi < 0 else ("slower after" if lo > 0 else "no change")
    return v, bool(v == "faster after" and before_ci[0] <= -0.5 <= before_ci[1])


def _segment_slopes(logn, logv):
    """OLS slope and intercept of logv (B, W) on logn (W,)."""
    x0 = logn - logn.mean()
    b = (logv - logv.mean(axis=-1, keepdims=True)) @ x0 / (x0 @ x0)
    return b, logv.mean(axis=-1) - b * logn.mean()


def rate_change(groups, split: int = 1024, *, statistic=None, fit_widths=None, level: float = 0.95,
                n_resamples: int = 2000, seed: int = 0, key: str = "", words: str = "") -> RateChange:
    """Does the log-log slope of a per-width statistic change at ``split``? (C7; issue 12 part 4.)

    Args:
      groups: ``{width: per-seed array}`` (first axis: seed), or a :class:`Protocol` (its groups, statistic,
        fit widths, key and words are used).
      statistic: ``statistic(groups, weights) -> {n: (B,)}``, ``weights = {n: (B, seeds)}`` the seed counts of
        B resamples (see the section comment); default: RMS over seeds of the values (pass deviations).
      fit_widths: the widths fitted (default: all).
    The segments are n ≤ split and n ≥ split (``split`` itself belongs to both; it need not be a width).
    A statistic that is 0 is clipped to 1e-300 before the log (a drop to exactly 0 reads as 'faster').
    """
    if isinstance(groups, Protocol):
        statistic = groups.statistic if statistic is None else statistic
        fit_widths = groups.fit_widths if fit_widths is None else fit_widths
        key, words = key or groups.key, words or groups.words
        groups = groups.groups
    if statistic is None:
        statistic = _rms_stat(0.0)
    g = {int(n): np.asarray(v, dtype=float) for n, v in sorted(groups.items())}
    g = {n: v for n, v in g.items() if v.shape[0] >= 2}
    fitted = sorted(n for n in g if fit_widths is None or n in set(int(w) for w in fit_widths))
    ns = np.array(fitted, dtype=float)
    segs = {"before": ns <= split, "after": ns >= split}
    point = statistic(g, _ones(g))
    vals = np.array([float(np.asarray(point[n]).ravel()[0]) for n in fitted])
    rng = np.random.default_rng(seed)
    weights = {}
    for n, v in g.items():  # stratified: each width's seeds resampled on their own
        idx = rng.integers(0, v.shape[0], size=(n_resamples, v.shape[0]))
        weights[n] = np.stack([np.bincount(row, minlength=v.shape[0]) for row in idx]).astype(float)
    boot = statistic(g, weights)
    bvals = np.column_stack([np.asarray(boot[n], dtype=float).reshape(n_resamples) for n in fitted]) if fitted else \
        np.empty((n_resamples, 0))
    logn = np.log(ns)
    lv, lb = np.log(np.maximum(vals, 1e-300)), np.log(np.maximum(bvals, 1e-300))
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    out, bslopes = {}, {}
    nan = float("nan")
    for name, m in segs.items():
        if m.sum() < 2:
            out[name] = {"slope": nan, "ci": [nan, nan], "intercept": nan, "widths": [int(n) for n in ns[m]],
                         "rms": vals[m].tolist()}
            bslopes[name] = np.full(n_resamples, nan)
            continue
        (s,), (c,) = _segment_slopes(logn[m], lv[None, m])
        bs, _ = _segment_slopes(logn[m], lb[:, m])
        bslopes[name] = bs
        lo, hi = np.percentile(bs, q)
        out[name] = {"slope": float(s), "ci": [float(lo), float(hi)], "intercept": float(c),
                     "widths": [int(n) for n in ns[m]], "rms": vals[m].tolist()}
    change = out["after"]["slope"] - out["before"]["slope"]
    d = bslopes["after"] - bslopes["before"]
    change_ci = tuple(float(x) for x in np.percentile(d, q)) if np.isfinite(d).all() else (nan, nan)
    verdict, reproduces = rate_change_rule(change_ci, out["before"]["ci"])
    return RateChange(key, words, int(split), tuple(int(n) for n in ns), tuple(float(x) for x in vals), out["before"],
                      out["after"], float(change), change_ci, level, n_resamples, verdict, reproduces)


__all__ += ["Protocol", "RateChange", "PAPER_PER_DECADE", "log_grid", "monomial_curves", "grid_argmin", "protocol_exact",
            "protocol_grid", "protocol_mean_curve", "protocol_widest", "protocol_bias", "rate_change", "rate_change_rule"]
