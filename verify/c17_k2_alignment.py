"""K2 — μP's alignment assumption: Θ(1) update alignment and Θ(n^-1/2) weight alignment early, not late at large batch.

μP's per-layer rates rest on an assumption about how a hidden layer's weights W and its update ΔW meet the layer's
input X: a random W does not align with X, α_W = ‖WX‖/(‖W‖‖X‖) = Θ(n^-1/2), while an update built from the
gradient does, α_ΔW = ‖ΔW X‖/(‖ΔW‖‖X‖) = Θ(1). Kosson et al. (2025) measure both during training and find the
assumption holds at the start but not later, when the batch is large compared with the width (the update is then
spread over many directions and the weights accumulate aligned updates).

Judged by actual training (``sweep --alignment``) at a fixed μP-Adam learning rate: the width exponents of the
seed-mean α_W and α_ΔW of the hidden layers at the first update and at the last one, with bootstrap CIs
(:func:`polyloss.analysis.fit_scaling`), in a full-batch regime (B = m ≥ 8n) and, reported beside it, a
small-batch regime (B = 8 ≤ n/2).
"""

import numpy as np

from polyloss.analysis import fit_scaling
from polyloss.checks import Claim
from polyloss.claims._common import rate_numbers, sweep_on_data, verdict
from polyloss.recipe import Recipe

TAU = 0.15
#: Pilot (not judged; root seed 987654, widths 16…128, 4 seeds, m = 1024, T = 64 and 128, η = 0.5): α_W at step 0
#: ≈ 0.26, 0.17, 0.13, 0.09 (n^-1/2), α_ΔW ≈ 0.33–0.47 at every width; the optimum of μP-Adam on this setup lies at
#: η ≈ 0.7–0.8 (K1/L1 pilot, m = 128), so η = 0.5 is a stable, near-optimal rate at every width. One full-batch run
#: of 128 steps at widths 16…128 takes a few seconds, so quick trains T = 128 and full T = 256.
ETA = "0.5"
COMMON = dict(d=10, teacher="nonlinear", depth=2, etas=ETA, activation="relu", optimizer="adam", param="mup")
TRAINED = ("hidden", "readout")
SMALL_BATCH = 8
#: per mode: widths, seeds, data size m (= the large batch; m ≥ 8 · the largest width), steps
SIZES = {"quick": ((16, 32, 64, 128), 6, 1024, 128), "full": ((16, 32, 64, 128, 256), 8, 2048, 256)}
BOOT = {"quick": 1000, "full": 2000}
BANDS = {"align_dw": (-TAU, TAU), "align_w": (-0.5 - TAU, -0.5 + TAU)}
#: Measured (root seed 0, 2 shared cores): quick 9 s, INCONCLUSIVE — early inside the bands (large batch α_ΔW −0.12
#: [−0.14, −0.09], α_W −0.51; small batch α_ΔW −0.09 [−0.16, −0.03] straddles), late large batch α_ΔW −0.01 (inside),
#: α_W −0.33 [−0.36, −0.31] (straddles). Full 148 s, PASS — early: α_ΔW −0.08 [−0.09, −0.07], α_W −0.51 in both
#: regimes; late (step 255), large batch: α_ΔW −0.01 [−0.10, 0.07] (still Θ(1)), α_W −0.32 [−0.33, −0.31] (outside
#: [−0.65, −0.35]: the weights have aligned with their inputs); small batch: α_W −0.39 [−0.40, −0.38], α_ΔW 0.04.
#: Read with care: the pass rests on α_W alone, just past the band's edge, and the small-batch control moved the
#: same way (less far); the update alignment α_ΔW did not decay in either regime (late/early ≈ 0.9–1.2), so the
#: part of Kosson's account where updates lose their alignment is not seen at these widths and horizons.

CLAIM = Claim(
    id="K2",
    title="μP's alignment assumption (α_ΔW = Θ(1), α_W = Θ(n^-1/2)) holds early and stops holding late when B ≫ n",
    statement="For the hidden layers of a ReLU MLP trained with μP-Adam, the update alignment α_ΔW = ‖ΔW X‖/(‖ΔW‖‖X‖) "
              "does not shrink with the width and the weight alignment α_W = ‖WX‖/(‖W‖‖X‖) shrinks like n^-1/2 at the "
              "start of training (μP's assumption), and when the batch is much larger than the width the assumption "
              "no longer holds at the end of training: at least one of the two width exponents has left its μP value.",
    source="Kosson, Welborn, Liu, Jaggi, Chen (2025), arXiv:2510.19093 (the alignment assumption holds only early; "
           "batch size relative to width); μP: Yang & Hu (2021), Yang et al. (2022, TP5); issue 14 part 4",
    statistic=f"actual training (sweep --alignment): ReLU, L = {COMMON['depth']}, μP-Adam (hidden and readout at η/n, "
              f"β = 0.9, 0.999, ε = 1e-8) at η = {ETA}, hidden and readout trained, synthetic non-linear teacher "
              f"(d = {COMMON['d']}); large batch: full batch B = m (quick: m = 1024, widths 16…128, T = 128, 6 seeds; "
              "full: m = 2048, widths 16…256, T = 256, 8 seeds; B ≥ 8n at every width); small batch (reported, and "
              f"judged early only): B = {SMALL_BATCH}, seeded minibatches of the same data. Per network and recorded "
              "step, α_W (of W_s) and α_ΔW (of ΔW = W_{s+1} − W_s) on all m inputs, geometric mean over the hidden "
              "layers W_1…W_L; per width the seed mean; the OLS slope of its log vs log n with a 95% percentile CI "
              "from a stratified bootstrap over seeds (fit_scaling), at the first update (step 0, 'early') and the "
              "last one (step T − 1, 'late'); reported beside: the ratio α_ΔW(late)/α_ΔW(early) per width.",
    tolerance=f"μP's bands: exponent of α_ΔW in [−{TAU}, {TAU}], exponent of α_W in [−{0.5 + TAU:.2f}, "
              f"−{0.5 - TAU:.2f}] (τ = {TAU}, as K1's transfer band). Fail if an early exponent's CI (either regime) "
              "is disjoint from its band (the assumption does not hold even at the start), or if both late exponents' "
              "CIs in the large-batch regime lie inside their bands (it still holds at the end with B ≫ n). Pass if "
              "all four early CIs lie inside their bands and at least one late large-batch CI is disjoint from its "
              "band. Else inconclusive (CIs straddling a band's edge).",
)


def _hidden_alignment(sw, metric: str, step_index: int, depth: int) -> dict:
    """{width: per-seed geometric mean over the hidden layers W_1…W_L of ``metric`` at alignment step ``step_index``}."""
    layers = sw.config["alignment_layers"]
    idx = [layers.index(f"W{l}") for l in range(1, depth + 1)]
    out = {}
    for n, recs in sw.by_width().items():
        a = np.array([[r["alignment"][metric][0][i][step_index] for i in idx] for r in recs], dtype=float)
        out[n] = np.exp(np.log(a).mean(axis=1))
    return out


def _band(ci, band) -> str:
    lo, hi = band
    if lo <= ci[0] and ci[1] <= hi:
        return "inside"
    if ci[0] > hi or ci[1] < lo:
        return "outside"
    return "straddles"


def run(ctx):
    widths, seeds, m, steps = SIZES[ctx.mode]
    recipe = Recipe(trained=TRAINED)
    common = dict(COMMON, m=m, widths=widths, seeds=seeds, steps=steps, recipe=recipe, alignment=True)
    sweeps = {"large batch": sweep_on_data(ctx, "K2-large-batch", **common),
              "small batch": sweep_on_data(ctx, "K2-small-batch", batch=SMALL_BATCH, **common)}
    depth = COMMON["depth"]
    fits, bands, ratios, curves = {}, {}, {}, {}
    for regime, sw in sweeps.items():
        last = len(sw.config["alignment_steps"]) - 1
        for when, j in (("early", 0), ("late", last)):
            for metric in ("align_w", "align_dw"):
                g = _hidden_alignment(sw, metric, j, depth)
                f = fit_scaling(g, seed=ctx.seed, n_resamples=BOOT[ctx.mode])
                key = f"{regime}|{when}|{metric}"
                fits[key] = {**rate_numbers(f), "step": sw.config["alignment_steps"][j],
                             "seed_mean": {n: float(v.mean()) for n, v in g.items()}}
                bands[key] = _band([f.ci_low, f.ci_high], BANDS[metric])
        e, l_ = (_hidden_alignment(sw, "align_dw", j, depth) for j in (0, last))
        ratios[regime] = {n: float(np.mean(l_[n]) / np.mean(e[n])) for n in e}
        curves[regime] = {"steps": list(sw.config["alignment_steps"]), "by_width": {
            n: {metric: [float(np.mean(_hidden_alignment(sw, metric, j, depth)[n])) for j in range(last + 1)]
                for metric in ("rel_update", "rel_repr", "align_w", "align_dw")} for n in sw.widths}}
    early = [k for k in bands if "|early|" in k]
    late = [k for k in bands if k.startswith("large batch|late|")]
    if any(bands[k] == "outside" for k in early) or all(bands[k] == "inside" for k in late):
        v = "fail"
    elif all(bands[k] == "inside" for k in early) and any(bands[k] == "outside" for k in late):
        v = "pass"
    else:
        v = "inconclusive"
    nums = {"recipe": recipe.to_dict(), "setup": {k: x for k, x in common.items() if k != "recipe"} | {
                "small_batch": SMALL_BATCH, "widths": list(widths)},
            "tau": TAU, "bands": {k: list(b) for k, b in BANDS.items()}, "exponents": fits, "band": bands,
            "late_over_early_align_dw": ratios, "curves": curves, "verdict": v}

    def words(key):
        f = fits[key]
        return f"{f['slope']:.2f} [{f['ci'][0]:.2f}, {f['ci'][1]:.2f}] ({bands[key]})"

    summary = (f"{v}: width exponents (band α_ΔW ±{TAU}, α_W −1/2 ± {TAU}); large batch B = m = {m}: early α_ΔW "
               f"{words('large batch|early|align_dw')}, α_W {words('large batch|early|align_w')}; late (step "
               f"{fits['large batch|late|align_dw']['step']}) α_ΔW {words('large batch|late|align_dw')}, α_W "
               f"{words('large batch|late|align_w')}; small batch B = {SMALL_BATCH}: early α_ΔW "
               f"{words('small batch|early|align_dw')}, α_W {words('small batch|early|align_w')}; late α_ΔW "
               f"{words('small batch|late|align_dw')}, α_W {words('small batch|late|align_w')}; α_ΔW late/early "
               "(large batch) = " + ", ".join(f"{x:.2f}" for x in ratios["large batch"].values())
               + f" at n = {widths[0]}…{widths[-1]} ({seeds} seeds)")
    return verdict(CLAIM, ctx, v, summary, nums, widths, seeds)


def figures(v):
    """Per regime, the four alignment diagnostics (seed mean of the hidden layers' geometric mean) vs step, one line
    per width."""
    from polyloss import plots
    from polyloss.claims._common import by_width

    curves = (v.numbers or {}).get("curves") or {}
    specs = []
    for regime, c in curves.items():
        def draw(axes, c=c, regime=regime):
            return plots.alignment_vs_step(axes, c["steps"], by_width(c["by_width"]), "W_1…W_L (geometric mean)",
                                           f"K2: alignment diagnostics vs step, {regime}")

        specs.append((f"_{regime.replace(' ', '_')}", f"K2, {regime}: relative update, representation change, α_W and "
                      "α_ΔW of the hidden layers vs step (seed mean), one line per width; μP assumes α_ΔW flat in n "
                      "and α_W ∝ n^-1/2", 4, draw))
    return specs
