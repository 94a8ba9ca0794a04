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
