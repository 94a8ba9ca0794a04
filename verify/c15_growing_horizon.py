"""C15 — growing training horizons: with T(n) = o(√n), η_n converges to the exact limit at its own T."""

import numpy as np

from polyloss.checks import Claim
from polyloss.claims._common import edge_fraction, eta_groups, fit_rate, rate_numbers, verdict

#: the horizon rule: T(n) = ceil(log2(n)/4), a slowly growing T = o(√n) (quick widths 64..1024: T = 2, 2, 2, 3, 3;
#: full widths 2^7..2^18: T = 2..5)
RULE = "ceil(log2(n)/4)"
DEPTH = 2

CLAIM = Claim(
    id="C15",
    title="growing horizons: under μP with T(n) = o(√n) steps, η_n → η_∞^(T(n)), the limit's minimiser at its own T",
    statement="Under μP, when the number of GD steps grows slowly with the width, T(n) = o(√n) (here T(n) = "
              f"{RULE}, L = {DEPTH}), each width's window minimiser η_n converges to a local minimiser of the exact "
              "infinite-width loss at the same horizon, 𝓛_∞^(T(n)): the distance shrinks as n grows although the "
              "target moves with T(n). The fast-transfer verdict (transfer penalty c = o(loss gap a), each width "
              "against the limit at its own T) is reported alongside, not judged.",
    source="issue 12, part 2 and 5 (growing horizons); Ghosh, Wu & Bietti (2026, arXiv 2512.22768) and follow-up "
           "work on rates at growing horizons T = T(n); the limits 𝓛_∞^(T) are derived exactly by polyloss, once per T",
    statistic="per seed, the distance from η_n to the nearest local minimiser of 𝓛_∞^(T(n)) in the window (sample's "
              "default window); log-log slope of its RMS over seeds vs n with a 95% stratified bootstrap CI; "
              "reported, not judged: the transfer-gap verdict of Comparison.gaps['window'] (slope of c/a with CIs)",
    tolerance="pass if the slope CI lies below 0 (η_n approaches the moving limit); fail if it lies at or above 0 "
              "(ci_low >= 0: no approach); inconclusive otherwise.",
)


def decide(fit) -> str:
    """The rule: pass if the 95% CI of the slope lies below 0, fail if it lies at or above 0, else inconclusive."""
    if fit.ci_high < 0:
        return "pass"
    if fit.ci_low >= 0:
        return "fail"
    return "inconclusive"


def distances(run_, horizons: dict) -> dict:
    """{width: per-seed distance from η_n to the nearest local minimiser of the limit at the width's own T}."""
    from polyloss.analysis import basin_distance

    g = eta_groups(run_)
    lim_of = {n: h["limit"] for h in horizons.values() for n in h["widths"]}
    return {n: basin_distance(v, lim_of[n].minima or (lim_of[n].eta_window_min,)) for n, v in g.items()}


def run(ctx):
    from polyloss.compare import compare
    from polyloss.horizon import StepsRule

    s = ctx.scale
    run_ = ctx.sample("C15-mup-growing", depth=DEPTH, widths=s.widths, samples=s.seeds, steps=RULE, param="mup")
    cmp_ = compare(run_.path, n_coeffs=2)
    hz = cmp_.horizons
    by_w = StepsRule.parse(RULE).by_width(s.widths)
    dist = distances(run_, hz)
    fit = fit_rate(dist, 0.0, seed=ctx.seed)
    v = decide(fit)
    g = eta_groups(run_)
    gw = cmp_.gaps["window"]
    ratio = {stat: gw.fits[stat]["c/a"] for stat in ("mean", "median")}
    nums = {
        "rule": RULE, "depth": DEPTH, "steps_by_width": {str(n): T for n, T in by_w.items()},
        "limits": {str(T): {"widths": h["widths"], "eta_window_min": h["limit"].eta_window_min,
                            "minima": list(h["limit"].minima)} for T, h in sorted(hz.items())},
        "window": float(run_.config["window"]),
        "rate": rate_numbers(fit), "verdict": v,
        "rms_distance": {str(n): float(np.sqrt(np.mean(d * d))) for n, d in sorted(dist.items())},
        "eta_mean": {str(n): float(x.mean()) for n, x in sorted(g.items())},
        "eta_se": {str(n): float(x.std(ddof=1) / np.sqrt(x.size)) for n, x in sorted(g.items())},
        "at_edge_fraction": edge_fraction(run_),
        "gaps": {"verdict": gw.verdict, "verdicts": dict(gw.verdicts), "note": gw.note,
                 "c_over_a": {stat: None if f is None else rate_numbers(f) for stat, f in ratio.items()},
                 "judged": False},
    }
    lims = ", ".join(f"η_∞^({T}) = {h['limit'].eta_window_min:.4g} (n = {', '.join(map(str, h['widths']))})"
                     for T, h in sorted(hz.items()))
    cm = ratio["mean"]
    summary = (f"T(n) = {RULE}: distance from η_n to the limit's minimiser at its own T ~ n^{fit.slope:.2f} "
               f"[{fit.ci_low:.2f}, {fit.ci_high:.2f}] ({v}); {lims}; transfer gaps (not judged): fast transfer "
               f"{gw.verdict}" + ("" if cm is None else f", mean(c)/mean(a) ~ n^{cm.slope:.2f} [{cm.ci_low:.2f}, {cm.ci_high:.2f}]"))
    return verdict(CLAIM, ctx, v, summary, nums, s.widths, s.seeds)


def figures(v):
    from polyloss import plots
    from polyloss.claims._common import by_width, fit_of

    out = []
    x = v.numbers
    if x.get("rate") and x["rate"].get("ci") is not None:
        fits = {"distance of η_n to the limit's minimiser at its own T (RMS)": fit_of(x["rate"])}
        ca = (x.get("gaps") or {}).get("c_over_a") or {}
        if ca.get("mean"):
            fits["c/a, ratio of seed means (not judged)"] = fit_of(ca["mean"])

        def draw_rate(axes):
            ax = axes[0]
            data = plots.convergence(ax, fits, f"C15: T(n) = {x['rule']}, μP, L = {x['depth']}\n"
                                     "each width against the limit at its own T",
                                     ylabel="RMS distance; c/a (log scale)",
                                     references={"reference slope −1/2 (n^-1/2)": -0.5})
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)  # under the axes
            data["axes"] = plots.describe(ax)
            return data

        out.append(("", f"C15: T(n) = {x['rule']} steps, each width against the exact limit at its own T: distance of "
                    "η_n to the limit's minimiser (RMS over seeds) and c/a vs width, fitted slopes with 95% CIs",
                    1, draw_rate))
    if x.get("eta_mean") and x.get("limits"):
        def draw_eta(axes):
            ax = axes[0]
            m, se = by_width(x["eta_mean"]), by_width(x["eta_se"])
            w = list(m)
            T_of = by_width(x["steps_by_width"])
            lim = {n: x["limits"][str(T_of[n])]["eta_window_min"] for n in w}
            data = plots.eta_vs_width(ax, w, [m[n] for n in w], [se[n] for n in w],
                                      f"C15: optimal learning rate η_n, T(n) = {x['rule']}, μP, L = {x['depth']}")
            ax.plot(w, [lim[n] for n in w], "k--", marker="s", mfc="none",
                    label="η_∞^(T(n)): the exact limit's minimiser at the width's own T")
            for n in w:
                ax.annotate(f"T={T_of[n]}", (n, lim[n]), textcoords="offset points", xytext=(0, -12), fontsize=7,
                            ha="center")
            ax.legend(fontsize=7)
            data["axes"] = plots.describe(ax)
            return data

        out.append(("_eta", "C15: η_n (seed mean ± s.e.) vs width with the exact limit's minimiser at each width's "
                    "own T", 1, draw_eta))
    return out
