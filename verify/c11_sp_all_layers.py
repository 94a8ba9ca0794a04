"""C11 — SP with every layer trained: η_n ∝ n^-1, so the learning rate does not transfer."""

import numpy as np

from polyloss.analysis import SCALING_MARGIN, scaling_rule, scaling_verdict
from polyloss.checks import Claim
from polyloss.claims._common import eta_groups, rate_numbers, verdict
from polyloss.recipe import Recipe

MARGIN = SCALING_MARGIN
RECIPE = dict(trained="input,hidden,readout", lr_exponents="sp")
STEPS = 1
#: (depth, widths) per scale: quick uses L = 2 and drops the scale's largest width (1024), because networks with a
#: trained input or readout go through the dense sampler and its Taylor evaluation (about 1.4 s per network at
#: n = 1024, L = 3); full is the paper's scale, as C3
SIZES = {"quick": lambda s: (s.depth_any, s.widths[:-1]), "full": lambda s: (s.depth, s.widths)}

CLAIM = Claim(
    id="C11",
    title="SP, every layer trained (input, hidden, readout): η_n ∝ n^-1 (no transfer)",
    statement="Under the standard parametrization with the input layer, the hidden layers and the readout all trained "
              "at the base rate (λ = 1 for every layer), the one-step optimal learning rate vanishes like 1/n: by power "
              "counting the squared gradient norms of the input, hidden and readout layers are of order 1, n and n, "
              "so the slope c_1 of the loss grows like n and η_n ∝ n^-1.",
    source="docs/theory.md §7 (power counting for the per-layer exponents); Hayou (2025) for the hidden-only case",
    statistic="log-log slope of the seed mean of η_n on the larger half of the widths (at least 3), 95% stratified "
              "bootstrap CI, with 1/n- and n^-1/2-corrected fits over all widths reported beside it (as C3)",
    tolerance="the rule `polyloss report` applies to every non-μP run (analysis.scaling_verdict): "
              + scaling_rule(-1.0, MARGIN) + ". pass = consistent, fail = NOT consistent, inconclusive = cannot tell.",
)


def run(ctx):
    s = ctx.scale
    recipe = Recipe(**RECIPE)
    depth, widths = SIZES[ctx.mode](s)
    run_ = ctx.sample("C11-sp-all", depth=depth, widths=widths, samples=s.seeds, steps=STEPS, param="sp",
                      recipe=recipe)
    groups = eta_groups(run_)
    widths = sorted(groups)
    sv = scaling_verdict(groups, -1.0, margin=MARGIN, seed=ctx.seed)
    fit, corrected = sv.fit, sv.corrected
    upper = list(fit.widths)
    n_eta = {n: float(groups[n].mean() * n) for n in widths}
    extra = "; ".join(f"with a {k} correction n^{f.slope:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]" for k, f in corrected.items())
    means = {n: float(groups[n].mean()) for n in widths}
    ses = {n: float(groups[n].std(ddof=1) / np.sqrt(groups[n].size)) if groups[n].size > 1 else None for n in widths}
    return verdict(CLAIM, ctx, sv.verdict, f"η_n ∝ n^{fit.slope:.3f} [{fit.ci_low:.3f}, {fit.ci_high:.3f}] on n = "
                   f"{upper[0]}..{upper[-1]} (prediction n^-1: {sv.words}; {extra}); n·η_n = "
                   + ", ".join(f"{v_:.3g}" for v_ in n_eta.values()),
                   {"recipe": recipe.to_dict(), "depth": depth, "steps": STEPS, "scaling_upper": rate_numbers(fit),
                    **{f"scaling_corrected_{k}": rate_numbers(f) for k, f in corrected.items()},
                    "predicted_exponent": -1.0, "margin": MARGIN, "n_times_eta": n_eta, "eta_mean": means,
                    "eta_se": ses}, widths, s.seeds)


def figures(v):
    from polyloss.claims._common import sp_scaling_figure

    return sp_scaling_figure(v, "C11: SP, every layer trained: optimal learning rate vs width",
                             "C11: seed mean of η_n under SP with input, hidden and readout layers trained vs width (log-log), the "
                             "fitted slope on the larger half of the widths and the predicted n^-1")
