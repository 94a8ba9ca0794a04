"""C11 — SP with every layer trained: η_n ∝ n^-1, so the learning rate does not transfer."""

from polyloss.analysis import SCALING_MARGIN, scaling_rule
from polyloss.checks import Claim
from polyloss.claims._common import eta_groups, sp_scaling, verdict
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
    v, summary, numbers = sp_scaling(groups, MARGIN, ctx.seed)
    return verdict(CLAIM, ctx, v, summary, {"recipe": recipe.to_dict(), "depth": depth, "steps": STEPS, **numbers},
                   sorted(groups), s.seeds)

def figures(v):
    from polyloss.claims._common import sp_scaling_figure

    return sp_scaling_figure(v, "C11: SP, every layer trained: optimal learning rate vs width",
                             "C11: seed mean of η_n under SP with input, hidden and readout layers trained vs width (log-log), the "
                             "fitted slope on the larger half of the widths and the predicted n^-1")
