"""C1 — one-step limits of the output coefficients under μP."""

import numpy as np

from polyloss.checks import Claim
from polyloss.claims._common import fit_rate, rate_figure, rate_numbers, verdict
from polyloss.engine import LossEngine
from polyloss.spec import NetworkSpec
from polyloss.lazy import LAZY_MIN_WIDTH, draw_weights
from polyloss.weights import child_seed

CLAIM = Claim(
    id="C1",
    title="One-step limits of the output coefficients (μP)",
    statement="After one GD step, f^(1)(x) = f^(0)(x) + Σ_k φ_k(x) η^k with φ_1 → L·K̄y and φ_k → 0 for k ≥ 2 as n → ∞.",
    source="Hayou (2025), one-step analysis; docs/theory.md §4",
    statistic="per seed, D_1 = RMS_i(φ_1(x_i) − L(K̄y)_i)/RMS(L K̄y) and D_k = RMS_i φ_k(x_i)/RMS(L K̄y); "
              "log-log slope of RMS_seeds(D_k) vs n with a 95% stratified bootstrap CI (measured rates reported)",
    tolerance="pass if every slope CI lies below 0 (each deviation shrinks with width); fail if some CI lies at or "
              "above 0; inconclusive otherwise. Rates are reported, not judged: THEORY §4 measured φ_2 ~ n^-1/2, φ_3 ~ n^-1.",
)


def run(ctx):
    s = ctx.scale
    L = s.depth
    param = ctx.param("mup")
    data, _ = ctx.data("linear")
    Ky = data.kernel() @ data.y / data.m
    target = L * Ky
    scale = float(np.sqrt(np.mean(target**2)))

    def deviations(n, smp):
        w, _ = draw_weights(NetworkSpec(L, n, data.d), param, child_seed(ctx.seed, n, smp), sampler="auto", steps=1)
        f = LossEngine(w, data, param).polynomial(1).f  # (m, L+1)
        dev = [np.sqrt(np.mean((f[:, 1] - target) ** 2)) / scale]
        dev += [np.sqrt(np.mean(f[:, k] ** 2)) / scale for k in range(2, L + 1)]
        return {"D": [float(x) for x in dev]}

    recs = ctx.networks("C1-t1", param="mup", widths=s.widths, samples=s.seeds, desc="C1 networks",
                        config={"depth": L, "teacher": "linear", "d": data.d, "m": data.m, "sampler": "auto",
                                "lazy_min_width": LAZY_MIN_WIDTH},
                        compute=deviations)
    groups = {k: {n: [r["D"][k - 1] for r in rs] for n, rs in recs.items()} for k in range(1, L + 1)}
    fits = {f"phi_{k}": fit_rate(g, 0.0, seed=ctx.seed) for k, g in groups.items()}
    nums = {q: rate_numbers(f) for q, f in fits.items()}
    if all(f.ci_high < 0 for f in fits.values()):
        v = "pass"
    elif any(f.ci_low >= 0 for f in fits.values()):
        v = "fail"
    else:
        v = "inconclusive"
    summary = "; ".join(f"{q}{' − L·K̄y' if q == 'phi_1' else ''} ~ n^{f.slope:.2f} [{f.ci_low:.2f}, {f.ci_high:.2f}]"
                        for q, f in fits.items())
    return verdict(CLAIM, ctx, v, summary, nums, s.widths, s.seeds)


def figures(v):
    words = {"phi_1": "φ_1 − L·K̄y", **{f"phi_{k}": f"φ_{k}" for k in range(2, 10)}}
    return rate_figure(v, "C1: one-step output coefficients approach their limits (μP)",
                       {words.get(q, q): x for q, x in v.numbers.items() if isinstance(x, dict)},
                       ylabel="RMS over seeds of the relative deviation D_k (log scale)",
                       references={"reference slope −1/2 (n^-1/2)": -0.5, "reference slope −1 (n^-1)": -1.0},
                       caption="C1: relative deviation of each coefficient φ_k of f^(1) from its limit vs width, "
                               "fitted slopes with 95% CIs")
