"""C3 — SP: η_n ∝ n^-1, so the learning rate does not transfer."""

from polyloss.analysis import SCALING_MARGIN, scaling_rule
from polyloss.checks import Claim
from polyloss.claims._common import eta_groups, sp_scaling, verdict

MARGIN = SCALING_MARGIN

CLAIM = Claim(
    id="C3",
    title="SP: η_n ∝ n^-1 (no transfer)",
    statement="Under the standard parametrization the one-step optimal learning rate vanishes like 1/n, so the "
              "best learning rate found at one width is wrong at another.",
    source="Hayou (2025), SP/NTP discussion; docs/theory.md §2, §4",
    statistic="log-log slope of the seed mean of η_n on the larger half of the widths (at least 3), 95% stratified "
              "bootstrap CI. n·η_n approaches its plateau with finite-size corrections (paper scale: 12 at n = 2^7, "
              "28.4 at 2^18), and the asymptotic exponent fitted with a 1/n or an n^-1/2 correction term differs by "
              "0.05 at paper scale while the bootstrap CI is ±0.004: the systematic error exceeds the statistical one. "
              "Both corrected estimates are reported.",
    tolerance="the rule `polyloss report` applies to every non-μP run (analysis.scaling_verdict): "
              + scaling_rule(-1.0, MARGIN) + ". pass = consistent, fail = NOT consistent, inconclusive = cannot tell.",
)


def run(ctx):
    s = ctx.scale
    run_ = ctx.sample("C3-sp", depth=s.depth, widths=s.widths, samples=s.seeds, steps=1, param="sp")
    v, summary, numbers = sp_scaling(eta_groups(run_), MARGIN, ctx.seed)
    return verdict(CLAIM, ctx, v, summary, numbers, s.widths, s.seeds)

def figures(v):
    from polyloss.claims._common import sp_scaling_figure

    return sp_scaling_figure(v, "C3: SP optimal learning rate vs width",
                             "C3: seed mean of η_n under SP vs width (log-log), the fitted slope on the larger half of the widths "
                             "and the predicted n^-1")
