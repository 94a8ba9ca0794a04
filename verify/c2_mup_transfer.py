"""C2 — μP learning-rate transfer: η_n → η_∞ = μ_1/(L μ_2)."""

import numpy as np

from polyloss.checks import Claim
from polyloss.claims._common import edge_fraction, eta_groups, fit_rate, rate_figure, rate_numbers, verdict

CLAIM = Claim(
    id="C2",
    title="μP transfer: η_n → η_∞ = μ_1/(L μ_2), at rate n^-1/2 or faster",
    statement="Under μP the one-step optimal learning rate η_n (minimiser over a fixed window) converges to the "
              "non-zero limit η_∞ = μ_1/(L μ_2), with |η_n − η_∞| = O_P(n^-1/2).",
    source="Hayou (2025), main theorem; docs/theory.md §4",
    statistic="RMS over seeds of η_n − η_∞ vs n: log-log slope with a 95% stratified bootstrap CI; the seed mean of "
              "η_n at the largest width against η_∞ (z-score)",
    tolerance="pass if the slope CI lies below 0 (convergence to η_∞) and reaches −1/2 or below (consistent with "
              "n^-1/2 or faster); fail if the CI does not lie below 0 (no convergence to η_∞) or lies entirely "
              "above −1/2 (significantly slower than the theorem allows).",
)


def run(ctx, teacher=None):
    s = ctx.scale
    out_nums, verdicts, summaries = {}, [], []
    for teacher in s.teachers:
        run_ = ctx.sample(f"C2-mup-{teacher}", depth=s.depth, widths=s.widths, samples=s.seeds, steps=1,
                          param="mup", teacher=teacher)
        data, _ = ctx.data(teacher)
        eta_inf = data.eta_inf_t1(s.depth)
        g = eta_groups(run_)
        fit = fit_rate(g, eta_inf, seed=ctx.seed)
        nmax = max(g)
        mean, se = float(g[nmax].mean()), float(g[nmax].std(ddof=1) / np.sqrt(g[nmax].size))
        nums = {"eta_inf": eta_inf, "rate": rate_numbers(fit), "largest_width": nmax, "eta_mean_largest": mean,
                "eta_se_largest": se, "z_largest": (mean - eta_inf) / se if se > 0 else None,
                "at_edge_fraction": edge_fraction(run_)}
        if fit.ci_high < 0 and fit.ci_low <= -0.5:
            v = "pass"
        elif fit.ci_high >= 0 or fit.ci_low > -0.5:
            v = "fail"
        else:
            v = "inconclusive"
        verdicts.append(v)
        out_nums[teacher] = nums
        summaries.append(f"{teacher}: |η_n − η_∞| ~ n^{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}], "
                         f"η_{nmax} = {mean:.4g} ± {se:.2g} vs η_∞ = {eta_inf:.4g}")
    v = "fail" if "fail" in verdicts else ("inconclusive" if "inconclusive" in verdicts else "pass")
    return verdict(CLAIM, ctx, v, "; ".join(summaries), out_nums, s.widths, s.seeds)


def figures(v):
    return rate_figure(v, "C2: μP optimal learning rate converges to η_∞",
                       {f"{t} target: η_n − η_∞": x.get("rate") for t, x in v.numbers.items() if isinstance(x, dict) and "rate" in x},
                       ylabel="RMS over seeds of η_n − η_∞ (log scale)",
                       references={"reference slope −1/2 (the theorem's rate n^-1/2)": -0.5},
                       caption="C2: |η_n − η_∞| (RMS over seeds) vs width, fitted slopes with 95% CIs")
