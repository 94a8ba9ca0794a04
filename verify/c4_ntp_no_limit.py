"""C4 — NTP: η_n stays O(1) but random; no deterministic limit."""

from polyloss.checks import Claim
from polyloss.claims._common import edge_fraction, eta_groups, fit_rate, rate_figure, rate_numbers, verdict

CLAIM = Claim(
    id="C4",
    title="NTP: no deterministic limit of η_n",
    statement="Under NTP the initial function f^(0) stays an O(1) random function, so η_n stays O(1) but its "
              "seed-to-seed spread does not shrink with width: there is no deterministic limit to transfer.",
    source="Hayou (2025), SP/NTP discussion; docs/theory.md §4",
    statistic="seed standard deviation of η_n vs n (RMS about the per-width mean): log-log slope with a 95% "
              "stratified bootstrap CI; the spread of a converging quantity would shrink like n^-1/2",
    tolerance="pass if the CI lies above −1/4 (spread not shrinking at any useful rate); fail if it lies below "
              "−1/4 (spread shrinking: a limit would exist); inconclusive otherwise. The default window is used and the "
              "fraction of minimisers at its edge is reported.",
)


def run(ctx):
    s = ctx.scale
    run_ = ctx.sample("C4-ntp", depth=s.depth, widths=s.widths, samples=s.seeds, steps=1, param="ntp")
    g = eta_groups(run_)
    fit = fit_rate(g, {n: float(v.mean()) for n, v in g.items()}, seed=ctx.seed)
    if fit.ci_low > -0.25:
        v = "pass"
    elif fit.ci_high < -0.25:
        v = "fail"
    else:
        v = "inconclusive"
    sd = {n: float(x.std(ddof=1)) for n, x in sorted(g.items())}
    return verdict(CLAIM, ctx, v, f"seed spread of η_n ~ n^{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]; "
                   f"sd {sd[min(sd)]:.3g} at n={min(sd)} vs {sd[max(sd)]:.3g} at n={max(sd)}",
                   {"spread_rate": rate_numbers(fit), "sd": sd, "mean": {n: float(x.mean()) for n, x in g.items()},
                    "at_edge_fraction": edge_fraction(run_)}, s.widths, s.seeds)


def figures(v):
    return rate_figure(v, "C4: NTP seed spread of η_n vs width", {"seed SD of η_n (RMS about the per-width mean)": v.numbers.get("spread_rate")},
                       ylabel="seed SD of η_n (log scale)",
                       references={"reference slope 0 (spread not shrinking: the claim)": 0.0,
                                   "reference slope −1/2 (spread of a converging quantity)": -0.5},
                       caption="C4: seed-to-seed standard deviation of η_n under NTP vs width, fitted slope with 95% CI")
