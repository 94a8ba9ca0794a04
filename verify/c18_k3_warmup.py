"""K3 — μP as an implicit warmup: SP-Adam with a warmup that starts at 1/n of the rate transfers better than without.

Kosson et al. (2025) read μP's 1/n hidden rate as an implicit warmup: early in training μP's small steps matter,
later weight decay and the update dynamics set the effective rate. The testable consequence at CPU scale: under
SP (one global Adam rate η for every layer) the optimal η falls with the width (η* ∝ n^-1 at the first steps), and an
exponential warmup from η/n to η over the first K steps (``--schedule n-warmup:K``) should make η* move less.

Judged by actual training (``sweep``): the same SP networks with and without the warmup; per width the optimum of
the seed-averaged loss curve; the log-log slope of η*_n vs n per setting and the paired bootstrap CI of
|slope_constant| − |slope_warmup| (:func:`polyloss.claims._common.optimum_slopes`).
"""

from polyloss.checks import Claim
from polyloss.claims._common import (losses_by_width, optimum_figure, optimum_slopes, slope_words, train_settings,
                                     verdict)
from polyloss.recipe import Recipe

#: Pilot (not judged; root seed 987654, widths 16…128, 6 seeds, T = 50, m = 128, grid log 1e-4…3, 19 points):
#: SP-Adam without warmup has η* ≈ 0.039, 0.018, 0.009, 0.003 (slope −1.19), inside the grid; with n-warmup the
#: curves have a broad plateau, η* ≈ 0.03–0.1. K = 25 (half the run) and K = 10 (a fifth) both kept the optima in
#: the grid; K = 10 chosen: the warmup then ends early enough that the run after it is as long as in K1/L1's
#: settings' final phase, and its curve was less flat (optimum better located) in the pilot. Same data, depth,
#: trained layers, steps and tail average as K1.
COMMON = dict(d=10, m=128, teacher="nonlinear", depth=2, steps=50, etas="log:1e-4:3:19", activation="relu",
              optimizer="adam", param="sp")
TAIL = 12
WARMUP = "n-warmup:10"
TRAINED = ("hidden", "readout")
SIZES = {"quick": ((16, 32, 64, 128), 8), "full": ((16, 32, 64, 128, 256), 16)}
BOOT = {"quick": 1000, "full": 2000}
#: Measured (root seed 0, 2 shared cores): quick 32 s, INCONCLUSIVE — constant slope −1.28 [−1.35, −1.18], warmup
#: −1.29 [−1.49, −0.61], D = −0.01 [−0.23, 0.66]. Full 200 s, INCONCLUSIVE — constant η* = 0.0449 … 0.0012 at
#: n = 16…256, slope −1.31 [−1.35, −1.26]; warmup η* = 0.0812 … 0.0027, slope −1.21 [−1.32, −0.43]; D = 0.10
#: [−0.02, 0.90]. The warmup raises η* about twofold at every width but hardly changes its slope. Likely a setup
#: reason, not a bug: these runs have no weight decay, and after the 10 warmup steps SP trains 40 steps at the full
#: rate, whose stable size still scales like 1/n; Kosson et al.'s argument has (independent) weight decay set the
#: late, steady-state update size, which this claim's setup leaves out. A claim with decay would have to be stated
#: and run on fresh seeds.

CLAIM = Claim(
    id="K3",
    title="SP-Adam with an exponential warmup from 1/n of the rate transfers better than SP-Adam without warmup",
    statement="Under standard parametrization with one Adam learning rate η for every trained layer, the optimal η "
              "of a ReLU MLP falls with the width. With an exponential warmup that starts at η/n and reaches η after "
              "K steps (ρ_s = n^-(1 − s/K), the implicit warmup that μP's 1/n rate provides), the optimal η moves "
              "less with the width: |slope of log η* vs log n| is smaller with the warmup than without.",
    source="Kosson, Welborn, Liu, Jaggi, Chen (2025), arXiv:2510.19093 (μP as an implicit warmup; exponential "
           "warmup for SP); issue 14 part 4",
    statistic=f"actual training (sweep): ReLU, L = {COMMON['depth']}, SP-Adam (every trained layer at η; β = 0.9, "
              f"0.999, ε = 1e-8, full batch), hidden and readout trained, {COMMON['steps']} steps, synthetic "
              f"non-linear teacher (d = {COMMON['d']}, m = {COMMON['m']}); settings: constant rate, and "
              f"{WARMUP} (ρ_s = n^-(1 − s/10) for s < 10, then 1); the same networks in both. Per width the loss "
              f"curve over {COMMON['etas']} is the seed mean of the log of the loss averaged geometrically over the "
              f"last {TAIL} recorded steps; η*_n its argmin refined by a parabola in log η; per setting the OLS slope "
              "of log η*_n vs log n; the 95% percentile CI of D = |slope_constant| − |slope_warmup| from one "
              "stratified bootstrap over seeds, paired (the same resampled seeds for both settings). Quick: widths "
              "16…128, 8 seeds; full: 16…256, 16 seeds.",
    tolerance="pass if the CI of D lies above 0 (the warmup's optimum moves less with width); fail if it lies below "
              "0 (it moves more); inconclusive if it contains 0, or if an optimum is not located at the grid's edge "
              "(point estimate, or over 10 % of the resamples). A one-sided comparison, as the claim is one: "
              "'better', not 'perfect' (whether the warmup's slope is inside a transfer band is reported, not "
              "judged).",
)


def run(ctx):
    widths, seeds = SIZES[ctx.mode]
    common = dict(COMMON, widths=widths, seeds=seeds)
    recipes = {"constant": Recipe(trained=TRAINED), "warmup": Recipe(trained=TRAINED, schedule=WARMUP)}
    sweeps = train_settings(ctx, "K3", common, {k: {"recipe": r} for k, r in recipes.items()})
    etas = sweeps["constant"].etas
    fit = optimum_slopes(etas, {k: losses_by_width(sw, TAIL) for k, sw in sweeps.items()}, seed=ctx.seed,
                         n_resamples=BOOT[ctx.mode], pairs=[("constant", "warmup")])
    d = fit["pairs"]["constant|warmup"]
    if d["ci"] is None:
        v = "inconclusive"
    elif d["ci"][0] > 0:
        v = "pass"
    elif d["ci"][1] < 0:
        v = "fail"
    else:
        v = "inconclusive"
    s = fit["settings"]
    nums = {"recipes": [r.to_dict() for r in recipes.values()], "setup": {**common, "tail": TAIL, "widths": list(widths)},
            "warmup": WARMUP, "optimum": fit, "difference": d, "verdict": v, "eta_grid": [float(e) for e in etas]}
    dci = "no CI" if d["ci"] is None else f"[{d['ci'][0]:.2f}, {d['ci'][1]:.2f}]"
    dval = "–" if d["abs_diff"] is None else f"{d['abs_diff']:.2f}"
    summary = (f"{v}: SP constant rate: {slope_words(s['constant'])}; SP {WARMUP}: {slope_words(s['warmup'])}; "
               f"|slope_constant| − |slope_warmup| = {dval} {dci} (n = {widths[0]}…{widths[-1]}, {seeds} seeds)")
    return verdict(CLAIM, ctx, v, summary, nums, widths, seeds)


def figures(v):
    return optimum_figure(v, "K3: SP-Adam optimum vs width, with and without n-warmup",
                          "K3: the optimum η*_n of the seed-averaged loss curve vs width (log-log) for SP-Adam at a constant rate and with the warmup from 1/n of the rate; legend: the fitted slope with its 95% bootstrap CI")
