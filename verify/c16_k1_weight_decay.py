"""K1 — AdamW-μP: independent weight decay keeps the optimal learning rate across widths, coupled decay moves it.

Kosson et al. (2025) and Lingle (2024): with μP's per-layer Adam rates (hidden and readout η/n), PyTorch's AdamW
decays each layer by (1 − η_ℓω) = (1 − ηω/n) — the decay fades with width, so the balance between updates and
decay, and with it the best η, depends on n ("coupled weight decay breaks transfer"). Independent decay
(W ← (1 − ω)W, not scaled by the rate) is the same at every width, and the optimum should transfer.

Judged by actual training (``sweep``): ReLU MLP, μP-Adam, the same networks trained under each decay mode on a
fixed η grid; per width the optimum of the seed-averaged loss curve, the log-log slope of η*_n vs n with a
paired stratified bootstrap CI over seeds (:func:`polyloss.claims._common.optimum_slopes`), and the transfer
band |slope| ≤ TAU (:func:`polyloss.claims._common.band_rule`).
"""

from polyloss.checks import Claim
from polyloss.claims._common import (band_rule, combine, losses_by_width, optimum_figure, optimum_slopes, slope_words,
                                     train_settings, verdict)
from polyloss.recipe import Recipe

#: the transfer band: |slope of log η* vs log n| ≤ TAU is "transfers" (C8's old flat-optimum band: η* moves by
#: less than 2^0.15 ≈ 11 % per doubling of the width)
TAU = 0.15
#: the setup, shared by every setting. Pilot (not judged; root seed 987654, widths 16…128, 6 seeds, T = 50,
#: m = 128): μP-Adam without decay has its optimum at η ≈ 0.7–0.8, the torch-mode optimum at ω = 4 lies at
#: η ≈ 0.36 (n = 16) … 0.64 (n = 128), every optimum inside log 0.05…20; the final loss oscillates from step to
#: step near the optimum (Adam at the edge of stability), so the curve is the loss averaged (geometrically) over
#: the last TAIL recorded steps. The two decays are matched at the smallest width and the pilot's optimum:
#: independent ω = 0.1 per step equals torch's hidden decay η·ω/n = 0.4 · 4/16 = 0.1 there (Kosson's comparison:
#: the same decay at the base width, only its width dependence differs).
COMMON = dict(d=10, m=128, teacher="nonlinear", depth=2, steps=50, etas="log:0.05:20:14", activation="relu",
              optimizer="adam", param="mup")
TAIL = 12
OMEGA_IND, OMEGA_TORCH = "0.1", "4"
TRAINED = ("hidden", "readout")
#: per mode: widths and seeds (networks per width; the same networks under every setting)
SIZES = {"quick": ((16, 32, 64, 128), 8), "full": ((16, 32, 64, 128, 256), 16)}
BOOT = {"quick": 1000, "full": 2000}
#: Measured (root seed 0, 2 cores shared with other jobs): quick 29 s, INCONCLUSIVE — independent η* = 1.07, 0.856,
#: 1.03, 1.81, slope 0.25 [−0.20, 0.37] (undecided); torch 0.26 [0.21, 0.35] (drifts); no decay −0.12 [−0.20, −0.05].
#: Full 209 s, INCONCLUSIVE — independent η* = 0.884, 0.964, 0.932, 0.768, 0.737 at n = 16…256, slope −0.09
#: [−0.18, 0.09] (undecided: the CI crosses −0.15); torch η* = 0.317 … 0.567, slope 0.23 [0.20, 0.26] (drifts, as
#: claimed); no decay −0.08 [−0.12, 0.06]; |torch| − |independent| = 0.14 [0.05, 0.23]. The coupled half holds; the
#: independent half cannot be confirmed at this scale because μP-Adam itself (no decay) drifts down by ≈ −0.08 over
#: n = 16…256 and 16 seeds leave the CI ≈ 0.27 wide; nothing suggests a bug (the grid brackets every optimum).

CLAIM = Claim(
    id="K1",
    title="AdamW-μP: independent weight decay keeps the optimal η across widths, coupled (PyTorch) decay moves it",
    statement="Under μP for Adam (hidden and readout rates η/n, as mup.MuAdam), a ReLU MLP trained with AdamW whose "
              "weight decay is independent of the rate (W ← (1 − ω)W each step) has an optimal base learning rate η* "
              "that does not move with the width; with the coupled decay of PyTorch's AdamW at μP's per-layer rates "
              "(W ← (1 − η_ℓω)W, η_ℓ = η/n: the decay fades with width) η* drifts with the width.",
    source="Kosson, Welborn, Liu, Jaggi, Chen (2025), arXiv:2510.19093 (independent weight decay for transfer); "
           "Lingle (2024), arXiv:2404.05728 (coupled weight decay breaks μ-transfer); issue 14 part 4",
    statistic=f"actual training (sweep): ReLU, L = {COMMON['depth']} hidden layers, μP-Adam (β = 0.9, 0.999, ε = 1e-8, "
              f"full batch), hidden and readout trained (input frozen), {COMMON['steps']} steps on a synthetic non-linear "
              f"teacher (d = {COMMON['d']}, m = {COMMON['m']}); settings: independent decay ω = {OMEGA_IND}, torch-mode "
              f"decay ω = {OMEGA_TORCH} (equal to the independent one at n = 16 and η = 0.4), and no decay "
              "(reference, not judged); the same networks in every setting. Per width, the loss curve over the η grid "
              f"{COMMON['etas']} is the seed mean of the log of the loss averaged geometrically over the last {TAIL} "
              "recorded steps; η*_n is its argmin refined by a parabola in log η (not located at the grid's edge); "
              "the OLS slope of log η*_n vs log n with a 95% percentile CI from a stratified bootstrap over seeds "
              "(the same resampled seeds for every setting). Quick: widths 16…128, 8 seeds; full: 16…256, 16 seeds.",
    tolerance=f"transfer band |slope| ≤ {TAU} (η* moves by less than ~11 % per doubling of n; the flat-optimum band of "
              "C8's former rule). Independent decay: pass if its slope CI lies inside the band, fail if the CI is "
              "disjoint from it, else inconclusive. Coupled (torch) decay: pass if its CI is disjoint from the band "
              "(it drifts), fail if it lies inside, else inconclusive. An optimum not located at the grid's edge "
              "(point estimate, or over 10 % of the resamples) makes that part inconclusive. K1 = both parts: any "
              "fail → fail, else any inconclusive → inconclusive, else pass.",
)


def run(ctx):
    widths, seeds = SIZES[ctx.mode]
    common = dict(COMMON, widths=widths, seeds=seeds)
    recipes = {"independent": Recipe(trained=TRAINED, weight_decay=OMEGA_IND, wd_mode="independent"),
               "torch": Recipe(trained=TRAINED, weight_decay=OMEGA_TORCH, wd_mode="torch"),
               "no decay": Recipe(trained=TRAINED)}
    runs = train_settings(ctx, "K1", common, {k.replace(" ", "-"): {"recipe": r} for k, r in recipes.items()})
    sweeps = dict(zip(recipes, runs.values()))
    etas = next(iter(sweeps.values())).etas
    fit = optimum_slopes(etas, {k: losses_by_width(sw, TAIL) for k, sw in sweeps.items()}, seed=ctx.seed,
                         n_resamples=BOOT[ctx.mode], pairs=[("torch", "independent")])
    s = fit["settings"]
    band = {k: band_rule(s[k]["ci"], TAU) for k in s}
    parts = {"independent": {"transfers": "pass", "drifts": "fail"}.get(band["independent"], "inconclusive"),
             "torch": {"drifts": "pass", "transfers": "fail"}.get(band["torch"], "inconclusive")}
    v = combine(list(parts.values()))
    nums = {"recipes": [r.to_dict() for r in recipes.values()], "setup": {**common, "tail": TAIL, "widths": list(widths)},
            "tau": TAU, "optimum": fit, "band": band, "parts": parts, "verdict": v,
            "eta_grid": [float(e) for e in etas]}
    summary = (f"{v}: independent ω = {OMEGA_IND}: {slope_words(s['independent'])} → {band['independent']}; torch "
               f"ω = {OMEGA_TORCH}: {slope_words(s['torch'])} → {band['torch']}; no decay (reference): "
               f"{slope_words(s['no decay'])} (band |slope| ≤ {TAU}, n = {widths[0]}…{widths[-1]}, {seeds} seeds)")
    return verdict(CLAIM, ctx, v, summary, nums, widths, seeds)


def figures(v):
    return optimum_figure(v, "K1: μP-Adam optimum vs width by decay mode",
                          "K1: the optimum η*_n of the seed-averaged loss curve vs width (log-log) for independent, torch-mode (coupled) and no weight decay; legend: the fitted slope with its 95% bootstrap CI (transfer band |slope| ≤ 0.15)")
