"""Helpers shared by the claim suites (not a claim)."""

from __future__ import annotations

import numpy as np

from polyloss.analysis import fit_rate, fit_scaling
from polyloss.checks import Verdict


def eta_groups(run) -> dict:
    return {n: np.array([r["eta_opt"] for r in recs]) for n, recs in run.by_width().items()}


def edge_fraction(run) -> float:
    return float(np.mean([bool(r["at_edge"]) for r in run.records]))


def seeds_info(ctx, samples) -> dict:
    return {"root": ctx.seed, "per_width": samples, "scheme": "SeedSequence(root, spawn_key=(width, sample))"}


def rate_numbers(fit) -> dict:
    return {"slope": fit.slope, "ci": [fit.ci_low, fit.ci_high], "level": fit.level, "intercept": fit.intercept,
            "widths": list(fit.widths), "rms": list(fit.rms)}


def verdict(claim, ctx, verdict, summary, numbers, widths, samples) -> Verdict:
    return Verdict(claim, verdict, summary, numbers, seeds_info(ctx, samples), list(widths), ctx.mode)


__all__ = ["eta_groups", "edge_fraction", "rate_numbers", "verdict", "fit_rate", "fit_scaling"]


def basin_fit(run_, seed: int):
    """A μP run against its exact limit (claims C6, C9, C10): the limit, its local minimisers in the window,
    η_n per width, per width the share of seeds nearest the window-global minimiser, and the rate fit of the
    RMS over seeds of the distance from η_n to the nearest minimiser (:func:`polyloss.analysis.basin_distance`)."""
    from polyloss.analysis import basin_distance, nearest_basin
    from polyloss.compare import limit_for_run

    lim = limit_for_run(run_)
    minima = np.array(lim.minima or (lim.eta_window_min,))
    g = eta_groups(run_)
    dist = {n: basin_distance(v, minima) for n, v in g.items()}
    glob = int(np.argmin(np.abs(minima - lim.eta_window_min)))
    share = {n: float(np.mean(nearest_basin(v, minima) == glob)) for n, v in g.items()}
    return lim, minima, g, share, fit_rate(dist, 0.0, seed=seed)


def sp_scaling(groups: dict, margin: float, seed: int):
    """An η_n ∝ n^-1 claim (C3, C11) judged by the rule of ``polyloss report``
    (:func:`polyloss.analysis.scaling_verdict`): (verdict, one-line summary, numbers)."""
    from polyloss.analysis import scaling_verdict

    widths = sorted(groups)
    sv = scaling_verdict(groups, -1.0, margin=margin, seed=seed)
    fit, corrected = sv.fit, sv.corrected
    upper = list(fit.widths)
    n_eta = {n: float(groups[n].mean() * n) for n in widths}
    extra = "; ".join(f"with a {k} correction n^{f.slope:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]" for k, f in corrected.items())
    means = {n: float(groups[n].mean()) for n in widths}
    ses = {n: float(groups[n].std(ddof=1) / np.sqrt(groups[n].size)) if groups[n].size > 1 else None for n in widths}
    summary = (f"η_n ∝ n^{fit.slope:.3f} [{fit.ci_low:.3f}, {fit.ci_high:.3f}] on n = {upper[0]}..{upper[-1]} "
               f"(prediction n^-1: {sv.words}; {extra}); n·η_n = " + ", ".join(f"{v_:.3g}" for v_ in n_eta.values()))
    numbers = {"scaling_upper": rate_numbers(fit), **{f"scaling_corrected_{k}": rate_numbers(f) for k, f in corrected.items()},
               "predicted_exponent": -1.0, "margin": margin, "n_times_eta": n_eta, "eta_mean": means, "eta_se": ses}
    return sv.verdict, summary, numbers


def sp_scaling_figure(v, title: str, caption: str):
    """The figure of an η_n ∝ n^-1 claim (C3, C11): seed means of η_n with s.e. vs width, the fitted slope
    on the larger half of the widths and the predicted slope −1."""
    from polyloss import plots

    nums = v.numbers
    means = by_width(nums.get("eta_mean")) or {n: x / n for n, x in by_width(nums.get("n_times_eta")).items()}
    ses = by_width(nums.get("eta_se"))
    if not means:
        return []
    widths = list(means)
    fit = nums["scaling_upper"]

    def draw(axes):
        return plots.eta_vs_width(axes[0], widths, [means[n] for n in widths],
                                  [ses.get(n) if ses.get(n) is not None else float("nan") for n in widths],
                                  title, reference_slope=-1.0,
                                  reference_label="reference slope −1 (the claim: η_n ∝ n^-1)",
                                  fit=(fit["slope"], fit["intercept"], fit["ci"], fit["widths"]))

    return [("", caption, 1, draw)]


def by_width(d) -> dict:
    """A ``{width: value}`` dict read back from JSON (keys are strings there) with int keys, sorted."""
    return {int(k): v for k, v in sorted((d or {}).items(), key=lambda kv: int(kv[0]))}


def fit_of(numbers: dict):
    """A rate fit stored by :func:`rate_numbers`, as the object :func:`polyloss.plots.convergence` draws."""
    from types import SimpleNamespace

    return SimpleNamespace(slope=numbers["slope"], ci_low=numbers["ci"][0], ci_high=numbers["ci"][1],
                           intercept=numbers["intercept"], widths=tuple(numbers["widths"]), rms=tuple(numbers["rms"]))


def rate_figure(v, title: str, series: dict, *, ylabel: str, references: dict, caption: str):
    """One (name, caption, ncols, draw) figure spec: the rate fits ``series = {words: numbers}``."""
    from polyloss import plots

    fits = {k: fit_of(x) for k, x in series.items() if x and x.get("ci") is not None}
    if not fits:
        return []
    return [("", caption, 1, lambda axes: plots.convergence(axes[0], fits, title, ylabel=ylabel, references=references))]


# ---- recipe claims (C9, C10): η_n of a recipe run against the exact limit of the same recipe

def recipe_label(recipe) -> str:
    """A short plot/summary label for a recipe: its knobs only ('l2 ω=1/10', 'warmup:2', 'momentum 9/10', ...)."""
    parts = []
    if recipe.trained != frozenset({"hidden"}):
        parts.append("+".join(recipe.trained_layers))
    if not recipe.schedule.is_constant:
        parts.append(recipe.schedule.spec)
    if recipe.weight_decay:
        parts.append(f"{recipe.wd_mode} ω={recipe.weight_decay}")
    if recipe.momentum:
        parts.append(f"momentum {recipe.momentum}" + (" nesterov" if recipe.nesterov else ""))
    return ", ".join(parts) or "plain GD"


def rate_rule(fit) -> str:
    """The C2-style three-way rule on a rate fit of a distance to the limit: pass if the 95% CI lies below 0
    and reaches −1/2; fail if it lies at or above 0; inconclusive otherwise."""
    if fit.ci_high < 0 and fit.ci_low <= -0.5:
        return "pass"
    if fit.ci_low >= 0:
        return "fail"
    return "inconclusive"


def combine(verdicts) -> str:
    return "fail" if "fail" in verdicts else ("inconclusive" if "inconclusive" in verdicts else "pass")


def transfer_to_limit(ctx, name: str, recipe, *, depth: int, widths, samples: int, steps: int,
                      window: float | None = None) -> tuple:
    """Sample μP networks trained with ``recipe``, derive the exact limit of the same recipe on the same data,
    and fit the RMS over seeds of the distance from η_n to the nearest local minimiser of the limit in the
    window (None: sample's default 4μ_1/(Lμ_2)). Returns (rule verdict, numbers dict, one-line summary)."""
    run_ = ctx.sample(name, depth=depth, widths=widths, samples=samples, steps=steps, param="mup", recipe=recipe,
                      window=window)
    lim, minima, g, share, fit = basin_fit(run_, ctx.seed)
    nmax = max(g)
    mean, se = float(g[nmax].mean()), float(g[nmax].std(ddof=1) / np.sqrt(g[nmax].size))
    v = rate_rule(fit)
    nums = {"recipe": recipe.to_dict(), "label": recipe_label(recipe), "window": float(run_.config["window"]),
            "limit_minima_in_window": minima.tolist(),
            "eta_limit_window": lim.eta_window_min, "rate": rate_numbers(fit), "share_in_global_basin": share,
            "largest_width": nmax, "eta_mean_largest": mean, "eta_se_largest": se,
            "at_edge_fraction": edge_fraction(run_), "verdict": v}
    summary = (f"{recipe_label(recipe)}: {v}, distance to the limit's minimiser ~ n^{fit.slope:.2f} "
               f"[{fit.ci_low:.2f}, {fit.ci_high:.2f}], η_{nmax} = {mean:.4g} ± {se:.2g} vs η_∞ = "
               + ", ".join(f"{x:.4g}" for x in minima))
    return v, nums, summary


# ---- training claims (K1–K3, L1): the optimum of actual training (``sweep``) per width, and its slope

def log_parabola_vertex(etas, values, i) -> float:
    """The vertex of the parabola in log η through grid points i−1, i, i+1 of ``values`` (clipped to them; the
    grid point itself if the parabola is not convex)."""
    x = np.log(np.asarray(etas, float)[i - 1: i + 2])
    c = np.polyfit(x, np.asarray(values, float)[i - 1: i + 2], 2)
    if c[0] <= 0:
        return float(np.exp(x[1]))
    return float(np.exp(np.clip(-c[1] / (2 * c[0]), x[0], x[2])))


def curve_optimum(etas, losses):
    """The optimum of a seed-averaged loss curve: ``losses`` (seeds, etas) of one width; the curve is the seed
    mean of log(loss) (+inf at an η where any seed diverged), its grid argmin refined by a parabola in log η through
    the argmin and its neighbours. None when the argmin is at either end of the grid or next to a diverged η (not
    located)."""
    L = np.asarray(losses, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isfinite(L) & (L > 0), np.log(np.where(L > 0, L, 1.0)), np.inf)
    curve = np.where(np.isfinite(logs).all(axis=0), logs.mean(axis=0), np.inf)
    if not np.isfinite(curve).any():
        return None
    i = int(np.argmin(curve))
    if i == 0 or i == curve.size - 1 or not np.isfinite(curve[i + 1]) or not np.isfinite(curve[i - 1]):
        return None
    return log_parabola_vertex(etas, curve, i)


def _loglog_slope(ns, etas_star):
    x, y = np.log(np.asarray(ns, float)), np.log(np.asarray(etas_star, float))
    slope, icpt = np.polyfit(x, y, 1)
    return float(slope), float(icpt)


def optimum_slopes(etas, settings: dict, *, seed: int = 0, n_resamples: int = 1000, level: float = 0.95,
                   pairs=()) -> dict:
    """Per setting, the optimum η*_n of the seed-averaged loss curve at each width (:func:`curve_optimum`) and the
    OLS slope of log η*_n vs log n, with a 95% percentile CI from one stratified, paired bootstrap: in each
    resample the seeds of each width are drawn with replacement (the same draw for every setting: the settings
    train the same networks), the curves re-averaged and the optima and slopes re-computed. ``settings``:
    {name: {width: losses (seeds, etas)}}, every setting with the same widths and seed count. ``pairs``:
    (a, b) names for which the CI of |slope_a| − |slope_b| is reported as well ('abs_diff'). A resample in which
    some optimum is not located (at the grid's edge) is dropped; their share is reported ('dropped'). Returns
    {'settings': {name: {eta_star, slope, intercept, ci, located}}, 'pairs': {'a|b': {abs_diff, ci}}, ...}."""
    names = list(settings)
    ns = sorted(int(n) for n in settings[names[0]])
    arr = {k: {n: np.asarray(settings[k][n], float) for n in ns} for k in names}
    seeds = {n: arr[names[0]][n].shape[0] for n in ns}
    out = {"settings": {}, "pairs": {}, "widths": ns, "seeds": seeds, "level": level, "n_resamples": n_resamples}
    point = {}
    for k in names:
        est = {n: curve_optimum(etas, arr[k][n]) for n in ns}
        located = all(e is not None for e in est.values())
        rec = {"eta_star": est, "located": located, "slope": None, "intercept": None, "ci": None}
        if located:
            rec["slope"], rec["intercept"] = _loglog_slope(ns, [est[n] for n in ns])
            point[k] = rec["slope"]
        out["settings"][k] = rec
    rng = np.random.default_rng(seed)
    boot = {k: [] for k in names}
    dropped = {k: 0 for k in names}
    for _ in range(n_resamples):
        draw = {n: rng.integers(0, seeds[n], seeds[n]) for n in ns}
        for k in names:
            est = [curve_optimum(etas, arr[k][n][draw[n]]) for n in ns]
            if any(e is None for e in est):
                dropped[k] += 1
                boot[k].append(np.nan)
            else:
                boot[k].append(_loglog_slope(ns, est)[0])
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    for k in names:
        b = np.asarray(boot[k])
        out["settings"][k]["dropped"] = dropped[k] / n_resamples
        if out["settings"][k]["located"] and np.isfinite(b).sum() >= 0.9 * n_resamples:
            lo, hi = np.percentile(b[np.isfinite(b)], q)
            out["settings"][k]["ci"] = [float(lo), float(hi)]
    for a, b_ in pairs:
        d = np.abs(np.asarray(boot[a])) - np.abs(np.asarray(boot[b_]))
        rec = {"abs_diff": abs(point[a]) - abs(point[b_]) if a in point and b_ in point else None, "ci": None}
        if rec["abs_diff"] is not None and np.isfinite(d).sum() >= 0.9 * n_resamples:
            lo, hi = np.percentile(d[np.isfinite(d)], q)
            rec["ci"] = [float(lo), float(hi)]
        out["pairs"][f"{a}|{b_}"] = rec
    return out


def band_rule(ci, tau: float) -> str:
    """Where a slope CI lies against the transfer band [−tau, tau]: 'transfers' if inside it, 'drifts' if
    disjoint from it, 'undecided' if it straddles an edge (or there is no CI: 'not located')."""
    if ci is None:
        return "not located"
    lo, hi = ci
    if -tau <= lo and hi <= tau:
        return "transfers"
    if lo > tau or hi < -tau:
        return "drifts"
    return "undecided"


def sweep_on_data(ctx, name: str, *, d: int, m: int, teacher: str, depth: int, widths, seeds: int, steps: int,
                  etas: str, activation: str, optimizer: str, param: str, **options):
    """:meth:`polyloss.checks.Context.sweep` on a synthetic data set of the claim's own size (d, m) rather than
    the scale's: teacher ``teacher`` drawn from the run's data seed, as ``polyloss data --synthetic`` would."""
    from polyloss.data import synthetic
    from polyloss.sampling import data_seed

    data = synthetic(teacher, d, m, 0.0, data_seed(ctx.seed))
    desc = {"kind": "synthetic", "teacher": teacher, "d": d, "m": m, "noise": 0.0}
    return ctx.sweep(name, depth=depth, widths=widths, seeds=seeds, steps=steps, etas=etas, activation=activation,
                     optimizer=optimizer, param=param, data=(data, desc), **options)


def losses_by_width(sw, tail: int = 1) -> dict:
    """{width: (seeds, etas)} of a sweep run: the geometric mean of the training loss over the last ``tail``
    recorded steps (tail = 1: the final loss; +inf where any of them diverged). Averaging over the last steps
    smooths the step-to-step oscillation of Adam near the edge of stability."""
    out = {}
    for n in sw.widths:
        L = sw.losses(n)[:, :, -tail:]
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.exp(np.log(np.where(L > 0, L, np.inf)).mean(axis=2))
        out[n] = np.where(np.isfinite(L).all(axis=2) & (L > 0).all(axis=2), g, np.inf)
    return out


def train_settings(ctx, prefix: str, common: dict, settings: dict) -> dict:
    """One resumable sweep per setting on the claim's own data (:func:`sweep_on_data`): ``common`` holds the
    shared sweep options (d, m, teacher, depth, widths, seeds, steps, etas, activation, optimizer, param, …),
    ``settings`` {name: options that differ (recipe, param, norm, readout_init, batch, …)}. The run of setting
    ``name`` is ``runs/<prefix>-<name>``. Returns {name: SweepRun}."""
    return {name: sweep_on_data(ctx, f"{prefix}-{name}", **{**common, **opts}) for name, opts in settings.items()}


def slope_words(rec: dict) -> str:
    """'η* = a, b, c; slope s [lo, hi]' for one setting of :func:`optimum_slopes`."""
    eta = ", ".join("–" if e is None else f"{e:.3g}" for e in rec["eta_star"].values())
    if rec["slope"] is None:
        return f"η* = {eta} (not located at the grid's edge)"
    ci = "no CI: too many resamples not located" if rec["ci"] is None else f"[{rec['ci'][0]:.2f}, {rec['ci'][1]:.2f}]"
    return f"η* = {eta}; slope {rec['slope']:.2f} {ci}"


def optimum_figure(v, title: str, caption: str):
    """The figure of a training claim judged by :func:`optimum_slopes` (K1, K3, L1): η*_n of each setting's
    seed-averaged curve vs width (log-log), with the fitted slope and its CI in the legend."""
    from polyloss import plots

    fit = (v.numbers or {}).get("optimum") or {}
    settings = fit.get("settings") or {}
    groups = {}
    for name, rec in settings.items():
        ci = "" if not rec.get("ci") else f" [{rec['ci'][0]:.2f}, {rec['ci'][1]:.2f}]"
        label = name if rec.get("slope") is None else f"{name}: slope {rec['slope']:.2f}{ci}"
        groups[label] = {int(n): [e] for n, e in (rec.get("eta_star") or {}).items() if e is not None}
    if not any(groups.values()):
        return []
    return [("", caption, 1, lambda axes: plots.optimum_vs_width(axes[0], groups, title))]
