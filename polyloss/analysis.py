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
