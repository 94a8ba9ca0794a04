"""L1 — two of Lingle's (2024) μ-transfer ablations that fit an MLP: trainable RMSNorm gains, zero-initialised readout.

Lingle's large-scale study of μ-transfer reports that trainable gains of the normalisation layers break the transfer
of the optimal learning rate, while a zero-initialised readout (unembedding) keeps it. Here both ablations on a
ReLU MLP under μP-Adam, judged by actual training (``sweep``): per width the optimum of the seed-averaged loss curve
and the log-log slope of η*_n vs n with a paired stratified bootstrap CI
(:func:`polyloss.claims._common.optimum_slopes`), against the transfer band |slope| ≤ TAU.
"""

from polyloss.checks import Claim
from polyloss.claims._common import (band_rule, combine, losses_by_width, optimum_figure, optimum_slopes, slope_words,
                                     train_settings, verdict)
from polyloss.recipe import Recipe

#: the transfer band, as K1's
TAU = 0.15
#: Pilot (not judged; root seed 987654, widths 16…128, 6 seeds, T = 50, m = 128, grid log 0.005…20, 19 points):
#: μP-Adam baseline η* ≈ 0.7–0.8, trainable RMSNorm gains η* ≈ 0.27–0.30, zero readout η* ≈ 0.63–0.87, every optimum
#: well inside the grid. Same data, depth, trained layers, steps and tail average as K1 (the zero readout needs the
#: readout trained).
COMMON = dict(d=10, m=128, teacher="nonlinear", depth=2, steps=50, etas="log:0.005:20:19", activation="relu",
              optimizer="adam", param="mup")
TAIL = 12
TRAINED = ("hidden", "readout")
SIZES = {"quick": ((16, 32, 64, 128), 6), "full": ((16, 32, 64, 128, 256), 16)}
BOOT = {"quick": 1000, "full": 2000}
#: Measured (root seed 0, 2 shared cores): quick 38 s, INCONCLUSIVE — RMSNorm gains −0.15 [−0.39, 0.06] (undecided),
#: zero readout −0.04 [−0.13, 0.07] (transfers), baseline −0.09 [−0.24, −0.00]. Full 338 s, INCONCLUSIVE — RMSNorm
#: gains η* = 0.285, 0.303, 0.278, 0.218, 0.22 at n = 16…256, slope −0.12 [−0.18, −0.04] (undecided); zero readout
#: η* = 0.741 … 0.508, slope −0.13 [−0.21, −0.06] (undecided); baseline −0.09 [−0.13, 0.03]; paired differences from
#: the baseline |rms| − |base| = 0.04 [−0.05, 0.11], |zero| − |base| = 0.04 [−0.04, 0.13]. Neither ablation moves η*
#: measurably differently from plain μP-Adam here: no sign that trainable gains break transfer in this MLP (their
#: η* sits ≈ 2.5× lower at every width), and the zero readout behaves like the baseline, whose own drift (≈ −0.1 over
#: n = 16…256) keeps the CIs on the band's edge.

CLAIM = Claim(
    id="L1",
    title="Lingle's ablations on an MLP: trainable RMSNorm gains break μ-transfer, a zero-initialised readout keeps it",
    statement="Under μP for Adam, (a) adding RMSNorm with trainable gains before every hidden layer and the readout "
              "makes the optimal base learning rate η* move with the width (transfer breaks), and (b) initialising "
              "the readout at zero (and training it) keeps η* fixed across widths.",
    source="Lingle (2024), 'A Large-Scale Exploration of μ-Transfer', arXiv:2404.05728 (ablations: trainable gains, "
           "zero-initialised unembedding); issue 14 part 4",
    statistic=f"actual training (sweep): ReLU, L = {COMMON['depth']}, μP-Adam (hidden and readout at η/n; β = 0.9, "
              f"0.999, ε = 1e-8, full batch), hidden and readout trained, {COMMON['steps']} steps, synthetic non-linear "
              f"teacher (d = {COMMON['d']}, m = {COMMON['m']}); settings: baseline (reported, not judged), --norm rms "
              "(z = γ ⊙ a/RMS(a) before every hidden layer and the readout, gains γ from 1 trained at the input "
              "layer's rate η, never decayed), --readout-init zero (V = 0, μP rate); the same networks in every "
              f"setting. Per width the loss curve over {COMMON['etas']} is the seed mean of the log of the loss "
              f"averaged geometrically over the last {TAIL} recorded steps; η*_n its argmin refined by a parabola in "
              "log η; the OLS slope of log η*_n vs log n with a 95% percentile CI from a stratified bootstrap over "
              "seeds (the same resampled seeds for every setting). Quick: widths 16…128, 6 seeds; full: 16…256, 16 "
              "seeds.",
    tolerance=f"transfer band |slope| ≤ {TAU} (as K1). (a) RMSNorm gains: pass if the slope CI is disjoint from the "
              "band (transfer breaks), fail if it lies inside, else inconclusive. (b) zero readout: pass if the CI "
              "lies inside the band, fail if it is disjoint from it, else inconclusive. An optimum not located at "
              "the grid's edge (point estimate, or over 10 % of the resamples) makes that part inconclusive. L1 = "
              "both parts: any fail → fail, else any inconclusive → inconclusive, else pass.",
)


def run(ctx):
    widths, seeds = SIZES[ctx.mode]
    recipe = Recipe(trained=TRAINED)
    common = dict(COMMON, widths=widths, seeds=seeds, recipe=recipe)
    sweeps = train_settings(ctx, "L1", common, {"baseline": {}, "rms-gains": {"norm": "rms"},
                                                "zero-readout": {"readout_init": "zero"}})
    etas = sweeps["baseline"].etas
    fit = optimum_slopes(etas, {k: losses_by_width(sw, TAIL) for k, sw in sweeps.items()}, seed=ctx.seed,
                         n_resamples=BOOT[ctx.mode], pairs=[("rms-gains", "baseline"), ("zero-readout", "baseline")])
    s = fit["settings"]
    band = {k: band_rule(s[k]["ci"], TAU) for k in s}
    parts = {"rms-gains": {"drifts": "pass", "transfers": "fail"}.get(band["rms-gains"], "inconclusive"),
             "zero-readout": {"transfers": "pass", "drifts": "fail"}.get(band["zero-readout"], "inconclusive")}
    v = combine(list(parts.values()))
    setup = {k: x for k, x in common.items() if k != "recipe"}
    nums = {"recipe": recipe.to_dict(), "setup": {**setup, "tail": TAIL, "widths": list(widths)}, "tau": TAU,
            "optimum": fit, "band": band, "parts": parts, "verdict": v, "eta_grid": [float(e) for e in etas]}
    summary = (f"{v}: RMSNorm gains: {slope_words(s['rms-gains'])} → {band['rms-gains']} (claim: drifts); zero "
               f"readout: {slope_words(s['zero-readout'])} → {band['zero-readout']} (claim: transfers); baseline "
               f"(reference): {slope_words(s['baseline'])} (band |slope| ≤ {TAU}, n = {widths[0]}…{widths[-1]}, "
               f"{seeds} seeds)")
    return verdict(CLAIM, ctx, v, summary, nums, widths, seeds)


def figures(v):
    return optimum_figure(v, "L1: μP-Adam optimum vs width, Lingle's ablations",
                          "L1: the optimum η*_n of the seed-averaged loss curve vs width (log-log) for the μP-Adam baseline, trainable RMSNorm gains and a zero-initialised readout; legend: the fitted slope with its 95% bootstrap CI (transfer band |slope| ≤ 0.15)")
