"""C5 — depth: L·η_∞ is exactly constant in L; L·η_n constant within error at finite width."""

from fractions import Fraction

import numpy as np
from scipy import stats

from polyloss.checks import Claim
from polyloss.claims._common import eta_groups, verdict

CLAIM = Claim(
    id="C5",
    title="Depth scaling: L·η_∞ constant in L",
    statement="Under μP the one-step limit η_∞ = μ_1/(L μ_2) is exactly proportional to 1/L; at finite width "
              "L·η_n is the same for every depth within statistical error.",
    source="Hayou (2025), depth dependence; docs/theory.md §4",
    statistic="(i) the exact limit derived by the symbolic engine for each L, L·η_∞ compared with μ_1/μ_2 "
              "(exact rationals from the data's binary values); (ii) at the largest width, the seed means of "
              "L·η_n across depths: χ² test of homogeneity",
    tolerance="pass if (i) holds to 1e-15 relative for every L and (ii) has p ≥ 0.01; fail if (i) fails or "
              "p < 0.001; inconclusive otherwise (0.001 ≤ p < 0.01).",
)


def run(ctx):
    from polyloss.derive import derive

    s = ctx.scale
    data, _ = ctx.data("linear")
    X = [[Fraction(float(v)) for v in row] for row in data.X]
    y = [Fraction(float(v)) for v in data.y]
    m, d = data.m, data.d

    def kbar(v):  # K̄ v = X (Xᵀ v) / (d m), exactly
        xt = [sum(X[i][j] * v[i] for i in range(m)) for j in range(d)]
        return [sum(X[i][j] * xt[j] for j in range(d)) / (d * m) for i in range(m)]

    k1 = kbar(y)
    mu1 = sum(a * b for a, b in zip(y, k1)) / m
    mu2 = sum(a * a for a in k1) / m
    ratio = float(mu1 / mu2)
    exact = {}
    for L in range(1, 7):
        eta = float(derive(L, 1, data=data).to_json()["eta_inf"])
        exact[L] = L * eta
    exact_ok = all(abs(v - ratio) <= 1e-15 * abs(ratio) for v in exact.values())
    means, ses = {}, {}
    nmax = max(s.widths)
    for L in s.depths:
        run_ = ctx.sample(f"C5-mup-L{L}", depth=L, widths=(nmax,), samples=s.seeds, steps=1, param="mup")
        g = eta_groups(run_)[nmax] * L
        means[L], ses[L] = float(g.mean()), float(g.std(ddof=1) / np.sqrt(g.size))
    w = np.array([1 / ses[L] ** 2 for L in s.depths])
    mu = np.array([means[L] for L in s.depths])
    pooled = float(np.sum(w * mu) / np.sum(w))
    chi2 = float(np.sum(w * (mu - pooled) ** 2))
    p = float(stats.chi2.sf(chi2, len(s.depths) - 1))
    if exact_ok and p >= 0.01:
        v = "pass"
    elif not exact_ok or p < 0.001:
        v = "fail"
    else:
        v = "inconclusive"
    summary = (f"exact L·η_∞ = μ_1/μ_2 = {ratio:.12g} for L = 1..6: {'yes' if exact_ok else 'NO'}; at n = {nmax}, "
               + ", ".join(f"L={L}: {means[L]:.4g}±{ses[L]:.2g}" for L in s.depths) + f" (χ² p = {p:.3g})")
    nums = {"mu1_over_mu2": ratio, "L_eta_inf_exact": exact, "exact_constant": exact_ok, "width": nmax,
            "L_eta_n_mean": means, "L_eta_n_se": ses, "chi2": chi2, "p_value": p}
    return verdict(CLAIM, ctx, v, summary, nums, [nmax], s.seeds)


def figures(v):
    from polyloss import plots
    from polyloss.claims._common import by_width

    nums = v.numbers
    means, ses = by_width(nums.get("L_eta_n_mean")), by_width(nums.get("L_eta_n_se"))
    if not means:
        return []
    depths = list(means)
    exact = by_width(nums.get("L_eta_inf_exact"))

    def draw(axes):
        return plots.depth_scaling(axes[0], depths, {f"L·η_n at n = {nums['width']} (seed mean ± s.e.)":
                                                     ([means[L] for L in depths], [ses[L] for L in depths])},
                                   exact or None, "C5: depth times the optimal learning rate (μP, t = 1)")

    return [("", f"C5: L·η_n at n = {nums['width']} vs depth L, and the exact L·η_∞ (= μ_1/μ_2 for every L)", 1, draw)]
