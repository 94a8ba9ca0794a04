"""C14 — fast transfer (Ghosh, Wu & Bietti 2026): the transfer penalty c_n is o(a_n) on generic data, not on degenerate data."""

import math

from polyloss.checks import Claim
from polyloss.claims._common import combine, edge_fraction, rate_numbers, verdict

CLAIM = Claim(
    id="C14",
    title="Fast transfer: c_n = o(a_n) on generic targets, not on a degenerate (eigenvector) target",
    statement="With η_n the finite-width window minimiser and η_∞ the exact limit's, the loss gap is "
              "a_n = |𝓛_n(η_n) − 𝓛_∞(η_∞)| and the transfer penalty c_n = 𝓛_∞(η_n) − 𝓛_∞(η_∞); transfer is fast "
              "when c_n = o(a_n). Prediction (the L = 1 fluctuation analysis of docs/theory.md §9, carried to the "
              "paper's depths as a conjecture): on a generic target 𝓛_n(η_∞) fluctuates at order n^-1/2, so "
              "a_n ~ n^-1/2, while c_n ≈ ½𝓛_∞''(η_∞) b_n² ~ n^-1 (b_n = |η_n − η_∞| ~ n^-1/2), hence "
              "c/a ~ n^-1/2 → 0: fast — for the non-linear teacher and for Hayou's linear teacher, at t = 1 and "
              "t ≥ 2. On a degenerate target y that is an eigenvector of K (the 'principal' teacher) the limit "
              "interpolates, 𝓛_∞(η_∞) = 0, the first-order fluctuation vanishes, a_n ~ n^-1 like c_n, and c/a "
              "does not decay: not fast.",
    source="Ghosh, Wu & Bietti (2026, arXiv 2512.22768): definition of fast transfer and degenerate data on which "
           "it fails; issue 12 part 5; the rates predicted from docs/theory.md §9 (ours)",
    statistic="per case (teacher, depth L, steps t; μP, window-global minimisers, 𝓛_∞ exact in ℚ): the log-log slope "
              "in n of the ratio of seed means mean(c)/mean(a) with a 95% stratified bootstrap CI over seeds "
              "(polyloss.gaps, records resampled as (a, c) pairs); the slopes of the seed means of a, b and c with "
              "their CIs are reported beside it",
    tolerance="generic cases (non-linear teacher: L = 2 with t = 1, 2, and in --full also t = 3 and L = 3; the "
              "linear teacher on the shared C2 and C6 runs): pass if the slope CI of c/a lies below 0, fail if it "
              "lies above 0, inconclusive otherwise. Degenerate case (principal teacher, L = 2, t = 1): pass if the "
              "CI's lower end is above −1/2 (significantly slower than the generic n^-1/2) and its upper end above "
              "0 (consistent with no decay); fail if the CI lies entirely below −1/4 (decays at a fast-transfer "
              "rate); inconclusive otherwise. Claim: fail if any case fails, pass if all pass, else inconclusive. "
              "Rules fixed before any run.",
)

#: the degenerate case: the limit interpolates (𝓛_∞(η_∞) = 0) and transfer is not fast
DEGENERATE = {"teacher": "principal", "depth": 2, "steps": 1}


def cases(ctx) -> list:
    """(key, teacher, expectation, ctx.sample keyword arguments) per case. The linear cases are the C2 and C6
    runs themselves (same names and settings: resumable and shared, so they cost C14 no networks)."""
    s = ctx.scale
    out = []
    own = [(2, 1), (2, 2)] + ([(2, 3)] if ctx.mode == "full" else [])
    if ctx.mode == "full" and "nonlinear" in s.teachers:  # the full C2 run: nonlinear teacher at the paper's depth
        shared = ("nonlinear L=%d t=1 (C2 run)" % s.depth, "nonlinear", "fast",
                  dict(name="C2-mup-nonlinear", depth=s.depth, widths=s.widths, samples=s.seeds, steps=1,
                       param="mup", teacher="nonlinear"))
    else:
        shared = None
        if ctx.mode == "full":
            own.append((3, 1))
    for L, t in own:
        out.append((f"nonlinear L={L} t={t}", "nonlinear", "fast",
                    dict(name=f"C14-mup-nonlinear-L{L}-t{t}", depth=L, widths=s.widths, samples=s.seeds, steps=t,
                         param="mup", teacher="nonlinear")))
    if shared:
        out.append(shared)
    out.append((f"linear L={s.depth} t=1 (C2 run)", "linear", "fast",
                dict(name="C2-mup-linear", depth=s.depth, widths=s.widths, samples=s.seeds, steps=1, param="mup",
                     teacher="linear")))
    for t in s.steps_any:
        out.append((f"linear L={s.depth_any} t={t} (C6 run)", "linear", "fast",
                    dict(name=f"C6-mup-t{t}", depth=s.depth_any, widths=s.widths_any, samples=s.seeds_any, steps=t,
                         param="mup")))
    L, t = DEGENERATE["depth"], DEGENERATE["steps"]
    out.append((f"principal L={L} t={t}", "principal", "not fast",
                dict(name=f"C14-mup-principal-L{L}-t{t}", depth=L, widths=s.widths, samples=s.seeds, steps=t,
                     param="mup", teacher="principal")))
    return out


def _ci(fit):
    if fit is None:
        return None
    lo, hi = fit["ci"] if isinstance(fit, dict) else (fit.ci_low, fit.ci_high)
    return (lo, hi) if (lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi)) else None


def fast_rule(fit) -> str:
    """Generic case: pass if the slope CI of c/a lies below 0, fail if above 0, else (or no fit) inconclusive."""
    ci = _ci(fit)
    if ci is None:
        return "inconclusive"
    return "pass" if ci[1] < 0 else ("fail" if ci[0] > 0 else "inconclusive")


def not_fast_rule(fit) -> str:
    """Degenerate case: pass if the CI's lower end is above −1/2 and its upper end above 0; fail if the CI lies
    entirely below −1/4; else (or no fit) inconclusive."""
    ci = _ci(fit)
    if ci is None:
        return "inconclusive"
    if ci[0] > -0.5 and ci[1] > 0:
        return "pass"
    return "fail" if ci[1] < -0.25 else "inconclusive"


def decide(fits: dict, expectations: dict) -> tuple:
    """({case: verdict}, claim verdict) for ``fits = {case: c/a slope fit}`` and ``expectations = {case:
    'fast' | 'not fast'}``."""
    per = {k: (fast_rule if expectations[k] == "fast" else not_fast_rule)(f) for k, f in fits.items()}
    return per, combine(per.values())


def _fmt(r) -> str:
    return "–" if r is None else f"{r['slope']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]"


def run(ctx):
    from polyloss.compare import limit_for_run
    from polyloss.gaps import transfer_gaps

    nums, fits, expect, summaries, widths = {}, {}, {}, [], set()
    for key, teacher, expectation, kw in cases(ctx):
        kw = dict(kw)
        run_ = ctx.sample(kw.pop("name"), **kw)
        lim = limit_for_run(run_)
        g = transfer_gaps(run_.records, lim, "window", seed=ctx.seed)
        mu0 = float(ctx.data(teacher)[0].moments(1)[0])
        rates = {q: (rate_numbers(f) if f is not None else None) for q, f in g.fits["mean"].items()}
        fits[key], expect[key] = rates["c/a"], expectation
        widths |= set(kw["widths"])
        nums[key] = {"teacher": teacher, "depth": kw["depth"], "steps": kw["steps"], "widths": list(kw["widths"]),
                     "seeds": kw["samples"], "expectation": expectation, "eta_inf": g.eta_inf, "loss_inf": g.loss_inf,
                     "loss_inf_over_mu0": g.loss_inf / mu0, "rates_of_means": rates,
                     "rate_median_ratio": rate_numbers(g.fits["median"]["c/a"]) if g.fits["median"]["c/a"] else None,
                     "ratio_of_means": {s["width"]: s["c/a"]["ratio_of_means"] for s in g.summary},
                     "gaps_module_verdicts": dict(g.verdicts), "at_edge_fraction": edge_fraction(run_)}
    per, v = decide(fits, expect)
    for key, x in nums.items():
        x["verdict"] = per[key]
        r = x["rates_of_means"]
        summaries.append(f"{key} ({x['expectation']}): {per[key]}, c/a ~ n^{_fmt(r['c/a'])}; a {_fmt(r['a'])}, "
                         f"b {_fmt(r['b'])}, c {_fmt(r['c'])}")
    s = ctx.scale
    return verdict(CLAIM, ctx, v, "; ".join(summaries), nums, sorted(widths), s.seeds)


def _panel(title: str, series: dict, *, ylabel: str, references: dict):
    """draw(axes) for a two-column-wide figure: the rate fits, their legend on the right beside the axes (the
    fit labels are long; inside the axes they would hide points). The second column's axes are removed, so
    the layout gives the plot and its legend the whole width."""
    from polyloss import plots
    from polyloss.claims._common import fit_of

    fits = {k: fit_of(x) for k, x in series.items() if x and x.get("ci") is not None}

    def draw(axes):
        ax, side = axes
        data = plots.convergence(ax, fits, title, ylabel=ylabel, references=references)
        side.remove()
        ax.set_subplotspec(ax.get_subplotspec().get_gridspec()[0, :])
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.04, 0.5), frameon=False)
        data["axes"] = plots.describe(ax)
        return data

    return fits, draw


def figures(v):
    parts = {k: x for k, x in v.numbers.items() if isinstance(x, dict) and "rates_of_means" in x}
    out = []
    fits, draw = _panel("C14: transfer penalty over loss gap, c/a, vs width",
                        {f"{k} ({x['expectation']} expected)": x["rates_of_means"].get("c/a") for k, x in parts.items()},
                        ylabel="ratio of seed means mean(c)/mean(a) (log scale)",
                        references={"reference slope 0 (not fast: c/a does not decay)": 0.0,
                                    "reference slope −1/2 (generic fast rate)": -0.5})
    if fits:
        out.append(("", "C14: c/a (ratio of the seed means of the transfer penalty c and the loss gap a) vs width per "
                    "case, fitted slopes with 95% bootstrap CIs; fast transfer means a negative slope (generic "
                    "prediction −1/2), the degenerate principal target is predicted flat (slope 0)", 2, draw))
    first = next((k for k, x in parts.items() if x["expectation"] == "fast" and x["teacher"] == "nonlinear"), None)
    if first is not None:
        words = {"a": "loss gap a = |L_n(η_n) − L_∞(η_∞)|", "b": "hyperparameter gap b = |η_n − η_∞|",
                 "c": "transfer penalty c = L_∞(η_n) − L_∞(η_∞)"}
        r = parts[first]["rates_of_means"]
        fits, draw = _panel(f"C14: gaps vs width ({first}, non-degenerate target)",
                            {f"{words[q]}, seed mean": r.get(q) for q in ("a", "b", "c")},
                            ylabel="seed mean of the gap (log scale)",
                            references={"reference slope −1/2 (n^-1/2)": -0.5, "reference slope −1 (n^-1)": -1.0})
        if fits:
            out.append(("_gaps", f"C14: seed means of the gaps a, b, c vs width for {first}, fitted slopes with 95% "
                        "bootstrap CIs (prediction: a and b ~ n^-1/2, c ~ n^-1)", 2, draw))
    return out
