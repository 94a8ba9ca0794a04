"""C7 — the paper's open question: does |η_n − η_∞| converge faster beyond n ≈ 1024?"""

from polyloss.analysis import change_point
from polyloss.checks import Claim
from polyloss.claims._common import eta_groups, verdict

CLAIM = Claim(
    id="C7",
    title="Faster convergence beyond n ≈ 1024? (observation)",
    statement="The paper's experiments see |η_n − η_∞| decay like n^-1/2 up to n ≈ 1024 and faster beyond, "
              "without explanation. We report what our data show.",
    source="Hayou (2025), experiments section (open question)",
    statistic="two-segment (hinge) fit of log RMS_seeds(η_n − η_∞) vs log n against one power law; evidence = "
              "drop in χ², calibrated by a parametric bootstrap under the single power law; a power check says "
              "whether a slope change of 0.25 could have been seen",
    tolerance="an observation, not pass/fail: 'change', 'no change' or 'cannot tell' at level 0.01, with the "
              "slopes before and after the best break.",
)


def run(ctx):
    s = ctx.scale
    run_ = ctx.sample(f"C2-mup-{s.teachers[0]}", depth=s.depth, widths=s.widths, samples=s.seeds, steps=1,
                      param="mup", teacher=s.teachers[0])
    data, _ = ctx.data(s.teachers[0])
    cp = change_point(eta_groups(run_), data.eta_inf_t1(s.depth), seed=ctx.seed, min_side=3)
    summary = f"{cp.verdict}: {cp.reason}; single power law slope {cp.slope_single:.2f}"
    return verdict(CLAIM, ctx, "observation", summary, cp.to_dict(), s.widths, s.seeds)
