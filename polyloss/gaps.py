"""Transfer gaps per network (Ghosh, Wu & Bietti 2026): is learning-rate transfer *fast*?

With η_n a network's finite-width optimum and η_∞ the exact limit's, over the same window (0, Λ]:

* loss gap            a_n = |𝓛_n(η_n) − 𝓛_∞(η_∞)|,
* hyperparameter gap  b_n = |η_n − η_∞|,
* transfer penalty    c_n = 𝓛_∞(η_n) − 𝓛_∞(η_∞)   (≥ 0 when η_∞ is the window minimiser),
* and the ratio c_n / a_n.

Transfer is **fast** when c_n = o(a_n): the cost of not retuning η vanishes next to the loss change
that the width itself causes. 𝓛_∞ is evaluated exactly (Horner in ℚ on the exact coefficients, the
difference c_n formed in ℚ before rounding), never by summing the ill-conditioned monomial form in
float64 (THEORY §6). 𝓛_n(η_n) is the record's own stable value ``loss_at_eta_opt``.

Two minimisers are used (THEORY §6, claim C6): the **window-global** one (η_n = ``eta_opt``,
η_∞ = the limit's minimiser over the window) and the **first local** one (η_n = the smallest η among
the record's ``local_minima``, η_∞ = the limit's first local minimiser in the window). For each, the
share of networks whose η_n lies in η_∞'s basin (nearest minimiser of the limit,
:func:`polyloss.analysis.nearest_basin`) is reported beside the gaps.

Per width: mean, median and standard error of a, b, c and c/a (records with a = 0 have no ratio: they
are counted, and left out of both c/a statistics). Rates: log-log slopes in n of the seed **mean** of
a, b, c and of the seed **median**, each with the stratified percentile bootstrap over seeds of
:func:`polyloss.analysis.fit_scaling` (the same scipy call, seed and resamples, vectorised: for the
mean it returns fit_scaling's numbers, about 40× faster, which keeps the gaps within the issue's
budget), and of c/a as the ratio of means mean(c)/mean(a) (records resampled as (a, c) pairs) and as the median
of the per-network ratios. The verdict is :data:`FAST_RULE`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
from scipy import stats

from polyloss.analysis import RateFit, nearest_basin
from polyloss.errors import RunError, SpecError

__all__ = ["GAP_QUANTITIES", "FAST_RULE", "MINIMISERS", "Gaps", "exact_value", "record_gaps", "per_width_gaps",
           "transfer_gaps", "gaps_for", "fast_verdict", "gaps_text"]

GAP_QUANTITIES = ("a", "b", "c", "c/a")
MINIMISERS = ("window", "first_local")
QUANTITY_WORDS = {"a": "loss gap a = |L_n(eta_n) - L_inf(eta_inf)|", "b": "hyperparameter gap b = |eta_n - eta_inf|",
                  "c": "transfer penalty c = L_inf(eta_n) - L_inf(eta_inf)", "c/a": "c/a"}
MINIMISER_WORDS = {"window": "window-global minimiser", "first_local": "first local minimiser"}
FAST_RULE = ("transfer is fast when c_n = o(a_n): the log-log slope in n of c/a, with a 95% stratified bootstrap CI "
             "over seeds, is judged 'fast' if the CI lies below 0, 'not fast' if it lies above 0, 'inconclusive' "
             "otherwise; judged twice, on the ratio of the seed means mean(c)/mean(a) and on the seed median of the "
             "per-network ratio c/a; the overall verdict is the common one when both agree, else 'inconclusive'")
MIN_WIDTHS = 3


def _rational(c) -> Fraction:
    """A coefficient as an exact Python rational (numpy integers would overflow inside Fraction)."""
    if isinstance(c, Fraction):
        return Fraction(int(c.numerator), int(c.denominator))
    if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
        return Fraction(int(c))
    if isinstance(c, (float, np.floating)) and math.isfinite(c):
        return Fraction(float(c))
    raise SpecError(f"loss coefficient {c!r} is invalid: must be a finite number or a Fraction")


def exact_value(coeffs, eta) -> Fraction:
    """An exact polynomial (ascending coefficients, Fractions or floats) at a float point, in ℚ."""
    x, acc = Fraction(float(eta)), Fraction(0)
    for c in reversed(coeffs):
        acc = acc * x + _rational(c)
    return acc


def record_gaps(eta_n: float, loss_n: float, coeffs, eta_inf: float, loss_inf: Fraction | None = None) -> dict:
    """a, b, c and c/a for one network: its optimum ``eta_n`` with loss ``loss_n`` against the limit
    polynomial ``coeffs`` and its minimiser ``eta_inf`` (``loss_inf`` = 𝓛_∞(η_∞) in ℚ, if known)."""
    for name, v in (("eta_n", eta_n), ("loss_n", loss_n), ("eta_inf", eta_inf)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
            raise RunError(f"`{name}`={v!r} is invalid: must be a finite number")
    if loss_inf is None:
        loss_inf = exact_value(coeffs, eta_inf)
    a = abs(float(Fraction(float(loss_n)) - loss_inf))
    b = abs(float(eta_n) - float(eta_inf))
    c = float(exact_value(coeffs, eta_n) - loss_inf)
    return {"a": a, "b": b, "c": c, "c/a": c / a if a > 0 else math.nan}


def _first_local(rec: dict) -> tuple[float, float]:
    mins = rec.get("local_minima") or []
    ok = [m for m in mins if isinstance(m, dict) and isinstance(m.get("eta"), (int, float)) and isinstance(m.get("loss"), (int, float))]
    if not ok:
        raise RunError(f"record (width {rec.get('width')}, sample {rec.get('sample')}) has no usable `local_minima` "
                       "(a list of {eta, loss}); the first-local-minimiser gaps need them")
    m = min(ok, key=lambda m: m["eta"])
    return float(m["eta"]), float(m["loss"])


def _limit_minimiser(limit, minimiser: str) -> float:
    if minimiser == "window":
        return float(limit.eta_window_min)
    if minimiser == "first_local":
        return float(limit.minima[0]) if len(limit.minima) else float(limit.eta_window_min)
    raise SpecError(f"`minimiser`={minimiser!r} is invalid: must be one of {', '.join(MINIMISERS)}")


def limit_at(limit, width: int):
    """The limit a width is compared with: ``limit`` itself, or ``limit[width]`` for a growing-horizon
    run (a {width: Limit} mapping: each width against the limit at its own number of steps T)."""
    if isinstance(limit, dict):
        if int(width) not in limit:
            raise RunError(f"no exact limit for width {width} (the horizon map covers {sorted(limit)})")
        return limit[int(width)]
    return limit


def per_width_gaps(records, limit, minimiser: str = "window") -> dict:
    """{width: {"a", "b", "c", "c/a", "eta_n", "sample": arrays over the width's records}} for
    ``records`` (sample records) against ``limit`` (a :class:`polyloss.compare.Limit`, or a
    {width: Limit} mapping for a growing-horizon run, :func:`limit_at`)."""
    exact: dict = {}  # id(limit) -> (coefficients, η_∞, 𝓛_∞(η_∞)), once per distinct limit
    out: dict = {}
    for rec in records:
        lim = limit_at(limit, rec["width"])
        if id(lim) not in exact:
            eta_l = _limit_minimiser(lim, minimiser)
            cf = [_rational(c) for c in lim.loss_coefficients]
            exact[id(lim)] = (cf, eta_l, exact_value(cf, eta_l))
        coeffs, eta_inf, loss_inf = exact[id(lim)]
        if minimiser == "window":
            eta_n, loss_n = rec["eta_opt"], rec["loss_at_eta_opt"]
        else:
            eta_n, loss_n = _first_local(rec)
        g = record_gaps(eta_n, loss_n, coeffs, eta_inf, loss_inf)
        row = out.setdefault(int(rec["width"]), {k: [] for k in (*GAP_QUANTITIES, "eta_n", "sample")})
        for k in GAP_QUANTITIES:
            row[k].append(g[k])
        row["eta_n"].append(float(eta_n))
        row["sample"].append(int(rec.get("sample", len(row["sample"]))))
    return {n: {k: np.asarray(v, dtype=float if k != "sample" else int) for k, v in row.items()}
            for n, row in sorted(out.items())}


def _median_se(v: np.ndarray, rng, n_boot: int = 400) -> float:
    if v.size < 2:
        return math.nan
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    return float(np.median(v[idx], axis=1).std(ddof=1))


def _summary(n: int, row: dict, rng) -> dict:
    """Per width: for each gap its count, mean, median and their standard errors (the median's by a
    400-resample bootstrap); for c/a also the ratio of means mean(c)/mean(a) over records with a > 0
    (the statistic whose slope is the 'means' verdict; "mean" is the mean of the per-network ratios)."""
    out = {"width": n, "count": int(row["a"].size)}
    for q in GAP_QUANTITIES:
        v = row[q][np.isfinite(row[q])]
        k = v.size
        out[q] = {"count": int(k), "mean": float(v.mean()) if k else math.nan, "median": float(np.median(v)) if k else math.nan,
                  "se_mean": float(v.std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan, "se_median": _median_se(v, rng)}
    ok = np.isfinite(row["a"]) & np.isfinite(row["c"]) & (row["a"] > 0)
    out["c/a"]["ratio_of_means"] = float(row["c"][ok].mean() / row["a"][ok].mean()) if ok.any() else math.nan
    return out


def _slopes(logn: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """OLS slopes of logy (..., widths) on logn, vectorised over leading axes."""
    x0 = logn - logn.mean()
    return (logy - logy.mean(axis=-1, keepdims=True)) @ x0 / (x0 @ x0)


def _fit_statistic(groups: dict, stat, *, level: float, n_resamples: int, seed: int) -> RateFit:
    """Slope of log |stat(width's records)| vs log n with a stratified percentile bootstrap CI over
    records (scipy.stats.bootstrap as :func:`polyloss.analysis.fit_scaling`, resampling row indices so
    that paired quantities stay paired). ``groups = {n: 2-D array (records, columns)}``; ``stat`` maps
    an array (..., records, columns) to (...)."""
    ns = np.array(sorted(groups), dtype=float)
    rows = [np.asarray(groups[int(n)], dtype=float) for n in ns]
    logn = np.log(ns)

    def logstat(values):
        return np.log(np.maximum(np.abs(values), 1e-300))

    def slope_of(*idx, axis=-1):
        ys = np.stack([stat(r[np.asarray(i, dtype=int)]) for r, i in zip(rows, idx)], axis=-1)
        return _slopes(logn, logstat(ys))

    point = np.array([stat(r) for r in rows], dtype=float)
    y = logstat(point)
    slope = float(_slopes(logn, y))
    intercept = float(y.mean() - slope * logn.mean())
    boot = stats.bootstrap(tuple(np.arange(r.shape[0]) for r in rows), slope_of, vectorized=True, paired=False,
                           n_resamples=n_resamples, confidence_level=level, method="percentile",
                           rng=np.random.default_rng(seed))
    ci = boot.confidence_interval
    return RateFit(slope, float(ci.low), float(ci.high), intercept, level, tuple(int(n) for n in ns),
                   tuple(float(abs(p)) for p in point), tuple(math.nan for _ in ns))


def _mean_stat(r):
    return r[..., 0].mean(axis=-1)


def _median_stat(r):
    return np.median(r[..., 0], axis=-1)


def _ratio_of_means(r):
    return r[..., 1].mean(axis=-1) / r[..., 0].mean(axis=-1)


def fast_verdict(fit: RateFit | None) -> str:
    """'fast' | 'not fast' | 'inconclusive' from the slope CI of c/a (:data:`FAST_RULE`); None: 'cannot tell'."""
    if fit is None or not (math.isfinite(fit.ci_low) and math.isfinite(fit.ci_high)):
        return "cannot tell"
    if fit.ci_high < 0:
        return "fast"
    if fit.ci_low > 0:
        return "not fast"
    return "inconclusive"


@dataclass(frozen=True)
class Gaps:
    """Transfer gaps of a run against its exact limit, for one minimiser (see the module docstring)."""

    minimiser: str  # "window" | "first_local"
    eta_inf: float
    loss_inf: float
    per_width: dict  # {width: {"a", "b", "c", "c/a", "eta_n", "sample": arrays}}
    summary: tuple  # per width: {"width", "count", q: {count, mean, median, se_mean, se_median}}
    fits: dict  # {"mean": {q: RateFit}, "median": {q: RateFit}}
    verdicts: dict  # {"means", "medians", "overall"}
    basin_share: dict  # {width: share of records whose η_n is nearest η_∞ among the limit's minima}
    note: str = ""  # why some fits are missing

    @property
    def verdict(self) -> str:
        return self.verdicts["overall"]

    def to_dict(self) -> dict:
        def fit(f):
            return None if f is None else f.to_dict()

        from polyloss._jsonsafe import finite

        return finite({  # strict JSON: an undefined number (c/a with a = 0, one-network s.e.) is null
            "minimiser": self.minimiser,
            "eta_inf": self.eta_inf,
            "loss_inf": self.loss_inf,
            "summary": list(self.summary),
            "rates": {s: {q: fit(f) for q, f in fs.items()} for s, fs in self.fits.items()},
            "verdict": dict(self.verdicts),
            "basin_share": {str(n): s for n, s in self.basin_share.items()},
            "note": self.note,
            "records": {str(n): {k: v.tolist() for k, v in row.items()} for n, row in self.per_width.items()},
        })


def transfer_gaps(records, limit, minimiser: str = "window", *, level: float = 0.95, n_resamples: int = 2000,
                  seed: int = 0) -> Gaps:
    """Per-network gaps, per-width summaries, rate fits and the fast-transfer verdict (module docstring)."""
    if not (0 < level < 1):
        raise SpecError(f"`level`={level!r} is invalid: must be in (0, 1)")
    records = list(records)
    if not records:
        raise RunError("no records: the gaps need at least one finished network")
    pw = per_width_gaps(records, limit, minimiser)
    top = limit_at(limit, max(pw))  # a growing horizon reports η_∞ and 𝓛_∞(η_∞) at the largest width's T
    eta_inf = _limit_minimiser(top, minimiser)
    loss_inf = float(exact_value([_rational(c) for c in top.loss_coefficients], eta_inf))
    rng = np.random.default_rng(seed)
    summary = tuple(_summary(n, row, rng) for n, row in pw.items())
    share = {}
    for n, row in pw.items():
        lim = limit_at(limit, n)
        own = _limit_minimiser(lim, minimiser)
        mins = list(lim.minima) if len(lim.minima) else [own]
        home = int(np.argmin(np.abs(np.asarray(mins) - own)))
        share[n] = float(np.mean(nearest_basin(row["eta_n"], mins) == home))
    fits: dict = {"mean": {}, "median": {}}
    notes = []
    if isinstance(limit, dict) and len({id(v) for v in limit.values()}) > 1:
        notes.append("growing horizon: each width against the exact limit at its own T; eta_inf and L_inf(eta_inf) "
                     "shown are those of the largest width")
    kw = dict(level=level, n_resamples=n_resamples, seed=seed)
    for q in ("a", "b", "c"):
        groups = {n: row[q][np.isfinite(row[q])] for n, row in pw.items()}
        groups = {n: v for n, v in groups.items() if v.size >= 2}
        if len(groups) < MIN_WIDTHS:
            fits["mean"][q] = fits["median"][q] = None
            continue
        fits["mean"][q] = _fit_statistic({n: v[:, None] for n, v in groups.items()}, _mean_stat, **kw)
        fits["median"][q] = _fit_statistic({n: v[:, None] for n, v in groups.items()}, _median_stat, **kw)
    pairs = {n: np.column_stack([row["a"], row["c"]]) for n, row in pw.items()}
    pairs = {n: p[np.all(np.isfinite(p), axis=1) & (p[:, 0] > 0)] for n, p in pairs.items()}  # a = 0: no ratio
    pairs = {n: p for n, p in pairs.items() if p.shape[0] >= 2}
    ratios = {n: row["c/a"][np.isfinite(row["c/a"])] for n, row in pw.items()}
    ratios = {n: v for n, v in ratios.items() if v.size >= 2}
    fits["mean"]["c/a"] = (_fit_statistic(pairs, _ratio_of_means, **kw) if len(pairs) >= MIN_WIDTHS else None)
    fits["median"]["c/a"] = (_fit_statistic({n: v[:, None] for n, v in ratios.items()}, _median_stat, **kw)
                             if len(ratios) >= MIN_WIDTHS else None)
    if any(f is None for fs in fits.values() for f in fs.values()):
        notes.append(f"rate fits need at least {MIN_WIDTHS} widths with >= 2 networks (with a > 0 for c/a)")
    vm, vd = fast_verdict(fits["mean"]["c/a"]), fast_verdict(fits["median"]["c/a"])
    overall = vm if vm == vd else "inconclusive"
    return Gaps(minimiser, eta_inf, loss_inf, pw, summary, fits, {"means": vm, "medians": vd, "overall": overall},
                share, "; ".join(notes))


def gaps_for(records, limit, **kw) -> dict:
    """{minimiser: :class:`Gaps`} for the window-global and the first local minimiser (when every
    network's first local minimiser is its window minimiser and the limit's are the same point too,
    the second is the first one relabelled: the same numbers, computed once)."""
    records = list(records)
    win = transfer_gaps(records, limit, "window", **kw)
    if isinstance(limit, dict):  # a growing horizon: no shortcut, each width has its own limit
        return {"window": win, "first_local": transfer_gaps(records, limit, "first_local", **kw)}
    same = _limit_minimiser(limit, "first_local") == win.eta_inf and all(
        _first_local(r) == (float(r["eta_opt"]), float(r["loss_at_eta_opt"])) for r in records)
    return {"window": win, "first_local": replace(win, minimiser="first_local") if same
            else transfer_gaps(records, limit, "first_local", **kw)}


def _fmt(f: RateFit | None) -> str:
    return "–" if f is None else f"{f.slope:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]"


def gaps_text(gaps: dict) -> list:
    """Plain-text lines for ``polyloss compare``: per width mean/median/s.e., rates with CIs, verdicts."""
    lines = ["transfer gaps (Ghosh, Wu & Bietti 2026): a = |L_n(eta_n) - L_inf(eta_inf)|, b = |eta_n - eta_inf|, "
             "c = L_inf(eta_n) - L_inf(eta_inf) (L_inf exact, in Q); share = networks in eta_inf's basin",
             f"rule: {FAST_RULE}"]
    for m, g in gaps.items():
        lines.append(f"-- {MINIMISER_WORDS[m]}: eta_inf = {g.eta_inf:.10g}, L_inf(eta_inf) = {g.loss_inf:.10g}")
        lines.append(f"{'width':>7} {'share':>6} " + " ".join(f"{q + ' mean±se':>20} {q + ' median':>10}" for q in GAP_QUANTITIES)
                     + f" {'mean(c)/mean(a)':>15}")
        for s in g.summary:
            cells = []
            for q in GAP_QUANTITIES:
                d = s[q]
                se = "–" if not math.isfinite(d["se_mean"]) else f"{d['se_mean']:.2g}"
                cells.append(f"{d['mean']:>11.4g}±{se:<8} {d['median']:>10.4g}")
            lines.append(f"{s['width']:>7} {g.basin_share[s['width']]:>6.0%} " + " ".join(cells)
                         + f" {s['c/a']['ratio_of_means']:>15.4g}")
        for stat in ("mean", "median"):
            lines.append(f"   slope of {stat:>6}s [95% CI]: " + "; ".join(f"{q} {_fmt(g.fits[stat][q])}" for q in GAP_QUANTITIES))
        v = g.verdicts
        lines.append(f"   fast transfer: {v['overall'].upper()} (means: {v['means']}, medians: {v['medians']})"
                     + (f"; {g.note}" if g.note else ""))
    return lines
