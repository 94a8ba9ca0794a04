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
