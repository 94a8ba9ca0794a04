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
