"""C3 — SP: η_n ∝ n^-1, so the learning rate does not transfer."""

from polyloss.checks import Claim
from polyloss.claims._common import eta_groups, fit_scaling, rate_numbers, verdict

MARGIN = 0.05

CLAIM = Claim(
    id="C3",
    title="SP: η_n ∝ n^-1 (no transfer)",
    statement="Under the standard parametrization the one-step optimal learning rate vanishes like 1/n, so the "
              "best learning rate found at one width is wrong at another.",
    source="Hayou (2025), SP/NTP discussion; THEORY.md §2, §4",
    statistic="log-log slope of the seed mean of η_n on the larger half of the widths (at least 3), 95% stratified "
              "bootstrap CI. n·η_n approaches its plateau with finite-size corrections (paper scale: 12 at n = 2^7, "
              "28.4 at 2^18), and the asymptotic exponent fitted with a 1/n or an n^-1/2 correction term differs by "
              "0.05 at paper scale while the bootstrap CI is ±0.004: the systematic error exceeds the statistical one. "
              "Both corrected estimates are reported.",
    tolerance=f"an equivalence margin for the finite-size systematics: pass if the CI meets [−1−{MARGIN}, −1+{MARGIN}] "
              f"and lies below −1/2 (clearly drifting); fail if it misses [−1−{2 * MARGIN}, −1+{2 * MARGIN}] or lies above "
              "−1/2 (no drift: transfer would not fail); inconclusive otherwise.",
)


def run(ctx):
    s = ctx.scale
    run_ = ctx.sample("C3-sp", depth=s.depth, widths=s.widths, samples=s.seeds, steps=1, param="sp")
    groups = eta_groups(run_)
    widths = sorted(groups)
    upper = widths[-max(3, (len(widths) + 1) // 2):]
    fit = fit_scaling({n: groups[n] for n in upper}, seed=ctx.seed)
    corrected = {f"n^-{c}": fit_scaling(groups, seed=ctx.seed, correction=c) for c in (1.0, 0.5)} if len(widths) >= 4 else {}
    lo, hi = fit.ci_low, fit.ci_high
    if lo <= -1 + MARGIN and hi >= -1 - MARGIN and hi < -0.5:
        v = "pass"
    elif lo > -1 + 2 * MARGIN or hi < -1 - 2 * MARGIN or lo > -0.5:
        v = "fail"
    else:
        v = "inconclusive"
    n_eta = {n: float(groups[n].mean() * n) for n in widths}
    extra = "; ".join(f"with a {k} correction n^{f.slope:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]" for k, f in corrected.items())
    return verdict(CLAIM, ctx, v, f"η_n ∝ n^{fit.slope:.3f} [{lo:.3f}, {hi:.3f}] on n = {upper[0]}..{upper[-1]} "
                   f"(prediction n^-1; {extra}); n·η_n = " + ", ".join(f"{v_:.3g}" for v_ in n_eta.values()),
                   {"scaling_upper": rate_numbers(fit), **{f"scaling_corrected_{k}": rate_numbers(f) for k, f in corrected.items()},
                    "predicted_exponent": -1.0, "margin": MARGIN, "n_times_eta": n_eta}, s.widths, s.seeds)
