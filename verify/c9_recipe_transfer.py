"""C9 — μP transfer under training recipes: weight decay (three modes), warmup, momentum."""

from polyloss.checks import Claim
from polyloss.claims._common import combine, rate_figure, transfer_to_limit, verdict
from polyloss.recipe import Recipe

STEPS = 2

#: The recipes per scale, fixed before any data were seen. Quick: one ω per decay mode (l2 and decoupled at
#: different ω, since without momentum they are the same update at the same ω — claim C12), warmup, momentum.
#: Full: ω ∈ {0.01, 0.1, 0.3} for every mode, warmup, momentum, and all three knobs together.
RECIPES = {
    "quick": (dict(weight_decay="0.1", wd_mode="l2"), dict(weight_decay="0.3", wd_mode="decoupled"),
              dict(weight_decay="0.3", wd_mode="independent"), dict(schedule="warmup:2"), dict(momentum="0.9")),
    "full": tuple(dict(weight_decay=w, wd_mode=m) for m in ("l2", "decoupled", "independent")
                  for w in ("0.01", "0.1", "0.3"))
            + (dict(schedule="warmup:2"), dict(momentum="0.9"),
               dict(schedule="warmup:2", momentum="0.9", weight_decay="0.1", wd_mode="independent")),
}

CLAIM = Claim(
    id="C9",
    title="μP transfer under training recipes (weight decay, warmup, momentum; t = 2)",
    statement="Under μP with the hidden layers trained for t = 2 full-batch steps with weight decay (l2, decoupled "
              "or independent), a warmup schedule or heavy-ball momentum, the finite-width window minimiser η_n "
              "converges to a minimiser of the exact infinite-width loss of the same recipe (the recipe changes the "
              "limit, not its existence), at rate n^-1/2 or faster.",
    source="docs/theory.md §7 (ours: the μP limit of a recipe, derived exactly by the Fock program)",
    statistic="per recipe, per seed, the distance from η_n to the nearest local minimiser of 𝓛_∞^(2) of that recipe "
              "in the window (0, 4μ_1/(Lμ_2)]; log-log slope of its RMS over seeds vs n with a 95% stratified bootstrap "
              "CI; the share of seeds nearest the window-global minimiser",
    tolerance="per recipe: pass if the slope CI lies below 0 (convergence to the recipe's limit) and reaches −1/2 or "
              "below (consistent with n^-1/2 or faster); fail if the CI lies at or above 0 (no convergence); "
              "inconclusive otherwise (the CI straddles 0, or lies in (−1/2, 0): converging, but the rate is not "
              "proven for t ≥ 2). The claim: fail if any recipe fails, else inconclusive if any is, else pass.",
)


def recipes(mode: str) -> list:
    return [Recipe(**kw) for kw in RECIPES[mode]]


def run(ctx):
    s = ctx.scale
    nums, verdicts, summaries = {}, [], []
    for i, recipe in enumerate(recipes(ctx.mode)):
        v, x, summary = transfer_to_limit(ctx, f"C9-mup-t{STEPS}", recipe, depth=s.depth_any, widths=s.widths_any,
                                          samples=s.seeds_any, steps=STEPS)
        nums[x["label"]] = x
        verdicts.append(v)
        summaries.append(summary)
    return verdict(CLAIM, ctx, combine(verdicts), "; ".join(summaries), nums, s.widths_any, s.seeds_any)


def figures(v):
    return rate_figure(v, "C9: μP, t = 2: η_n → the exact limit of each recipe",
                       {k: x.get("rate")
                        for k, x in v.numbers.items() if isinstance(x, dict) and "rate" in x},
                       ylabel="RMS over seeds of |η_n − nearest limit minimiser| (log)",
                       references={"reference slope −1/2 (n^-1/2)": -0.5},
                       caption="C9: distance from η_n to the nearest local minimiser of the recipe's exact limit vs "
                               "width, one line per recipe, fitted slopes with 95% CIs")
