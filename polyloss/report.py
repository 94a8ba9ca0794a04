"""Convergence reports (``polyloss report``): HTML + Markdown + PNG figures + JSON of every number shown.

Given ``sample`` run directories (and optionally ``sweep`` directories) the report shows:

(a) loss vs η across widths, μP and SP side by side when both were run for the same (L, t);
(b) η_n vs width with error bars and the exact η_∞ (for t ≥ 2 also the limit's first local minimum);
(c) log-log convergence of the RMS of ``c_k − c_k^∞`` and ``η_n − η_∞`` with fitted slopes, bootstrap
    CIs and an ``n^{-1/2}`` reference, plus a change-point verdict;
(d) depth scaling ``L·η`` across μP runs of different depth (exactly constant at n = ∞ for t = 1);
(e) sweep curves (actual training) overlaid on the polynomial predictions for the same networks.

The HTML page is self-contained (figures embedded); ``report.json`` holds every number.
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from polyloss import __version__
from polyloss import plots
from polyloss.analysis import change_point, extrapolate, fit_rate
from polyloss import _jsonsafe as jsonsafe
from polyloss.errors import PolylossError, RunError, SpecError
from polyloss.compare import eval_exact
from polyloss.sampling import SampleRun, load_run, summarise

__all__ = ["Report", "report"]

def predicted_eta_exponent(cfg: dict) -> float:
    """The width exponent of η_n predicted by power counting (:mod:`polyloss.power`): the plain (α, γ)
    count, or the recipe's count when the run trained with a non-plain recipe."""
    from polyloss.compare import run_recipe
    from polyloss.power import power_counting, recipe_power_counting
    from polyloss.spec import Parametrization

    p = cfg["param"]
    param = Parametrization.custom(Fraction(p["alpha"]), Fraction(p["gamma"]))
    if p.get("name") in ("mup", "sp", "ntp"):
        param = Parametrization.parse(p["name"])
    recipe = run_recipe(cfg)
    if not recipe.is_plain_for(param):
        return float(recipe_power_counting(recipe, param, cfg["depth"]).eta)
    return float(power_counting(param, cfg["depth"]).eta)


def _has_limit(cfg: dict) -> bool:
    """Whether a μP run's recipe has an infinite-width limit in η (power counting); runs without one
    get the scaling fit against the predicted exponent instead of a comparison."""
    from polyloss.compare import run_recipe
    from polyloss.power import recipe_power_counting

    recipe = run_recipe(cfg)
    return recipe.is_plain_for("mup") or recipe_power_counting(recipe, "mup", cfg["depth"]).has_limit


@dataclass(frozen=True)
class Report:
    out_dir: str
    files: tuple
    numbers: dict
    figures: dict  # name -> data drawn


def _kind(path) -> str:
    from polyloss._rundir import read_config

    schema = read_config(path).get("schema")
    if schema == "polyloss.sample/1":
        return "sample"
    if schema == "polyloss.sweep/1":
        return "sweep"
    raise RunError(f"{os.fspath(path)!r}: unknown run schema {schema!r} (expected polyloss.sample/1 or polyloss.sweep/1)")


def _label(run: SampleRun) -> str:
    c = run.config
    t = c["steps"] if c.get("steps_rule") is None else f"T(n)={c['steps_rule']}"
    return f"L={c['depth']} t={t} {c['param']['name']}"


def _is_rule(run: SampleRun) -> bool:
    """A growing-horizon run (``sample --steps RULE``): each width trains for its own T."""
    return run.config.get("steps_rule") is not None


#: how every figure of a growing-horizon run compares a width with the limit
_OWN_T = "each width against the limit at its own T"


def _cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


class _Doc:
    def __init__(self, out_dir):
        self.out_dir, self.md, self.figs, self.files, self.figdata = out_dir, [], {}, [], {}

    def h(self, text, level=2):
        self.md.append(f"{'#' * level} {text}\n")

    def p(self, text):
        self.md.append(text + "\n")

    def fig(self, name, fig, caption, data):
        path = os.path.join(self.out_dir, f"{name}.png")
        plots.save(fig, path)
        self.files.append(path)
        self.figdata[name] = data
        self.md.append(f"![{caption}]({name}.png)\n\n*{caption}*\n")


def _pm(mean, se, fm: str = ".6g", fs: str = ".2g") -> str:
    """``mean ± s.e.``; an undefined s.e. (one seed) prints ``–``, never ``nan``."""
    m = "–" if mean is None or not np.isfinite(mean) else format(mean, fm)
    s = "–" if se is None or not np.isfinite(se) else format(se, fs)
    return f"{m} ± {s}"


def _quantity_words(q: str, basins: bool = False, tex: bool = False) -> str:
    if q == "eta_n":
        lim = r"$\mathcal{L}_\infty$" if tex else "𝓛_∞"  # the font of the figures has no 𝓛
        return (f"η_n: distance to the nearest local minimiser of {lim}" if basins else "η_n − η_∞")
    if q.startswith("c_"):
        return f"{q} − c_{q[2:]}^∞ (coefficient of η^{q[2:]})"
    return q


def _sample_section(doc: _Doc, run: SampleRun, numbers: dict, derivation: str, level: float, n_coeffs: int):
    from polyloss.compare import compare

    cfg, label = run.config, _label(run)
    key = f"{label} [{os.path.basename(os.path.normpath(run.path))}]"
    from polyloss.compare import run_recipe

    entry: dict = {"run": run.path, "config": {k: cfg[k] for k in ("depth", "steps", "param", "degree", "seed", "data", "window")}}
    rule = _is_rule(run)
    if rule:
        entry["config"]["steps_rule"] = cfg["steps_rule"]
    entry["config"]["recipe"] = run_recipe(cfg).to_dict()
    entry["recipe"] = run_recipe(cfg).describe()
    numbers["runs"][key] = entry
    doc.h(f"Run {label} ({run.path})")
    doc.p(f"Training recipe: {entry['recipe']}.")
    if rule:
        from polyloss.horizon import steps_by_width

        by_w = steps_by_width(run)
        doc.p(f"Growing training horizon: width n trains for T(n) = `{cfg['steps_rule']}` steps ("
              + ", ".join(f"n = {n}: T = {T}" for n, T in sorted(by_w.items())) + "); " + _OWN_T + ".")
    rows = summarise(run, n_coeffs)
    entry["summary"] = rows
    k = max((len(r["coeff_mean"]) for r in rows), default=0)  # a growing horizon keeps fewer at small T
    doc.p(_table(["width", "seeds"] + [f"c_{i}" for i in range(k)] + ["η_n", "η_n at window edge"],
                 [[r["width"], r["count"]] + [_pm(m, s) for m, s in zip(r["coeff_mean"], r["coeff_se"])]
                  + ["–"] * (k - len(r["coeff_mean"])) + [_pm(r["eta_mean"], r["eta_se"]), r["at_edge"]] for r in rows]))
    if any(len(r["coeff_mean"]) < k for r in rows):
        doc.p("– in a coefficient column: the width's horizon has a loss polynomial of lower degree.")
    if any(r["count"] < 2 for r in rows):
        doc.p("A width with one seed has no standard error (shown as –).")
    widths = [r["width"] for r in rows]
    eta_groups = {n: np.array([x["eta_opt"] for x in recs], dtype=float) for n, recs in run.by_width().items()}
    out = {"label": label, "key": key, "cfg": cfg, "widths": widths, "eta_groups": eta_groups,
           "eta_mean": [r["eta_mean"] for r in rows], "eta_se": [r["eta_se"] for r in rows], "limit": None,
           "predicted": None, "horizons": None}
    if cfg["param"]["name"] == "mup" and _has_limit(cfg):
        try:
            cmp_ = compare(run.path, derivation, level=level, n_coeffs=n_coeffs)
        except PolylossError as exc:
            doc.p(f"*No comparison with the exact limit: {exc}*")
            entry["compare_error"] = str(exc)
            cmp_ = None
        if cmp_ is not None:
            lim = cmp_.limit
            out["limit"] = lim
            entry["compare"] = cmp_.to_json()
            tested = sum(r.tested for r in cmp_.rows)
            # the limit of every width: the run's one limit, or (growing horizon) the limit at the width's own T
            lim_of = {n: lim for n in widths}
            if cmp_.horizons is not None:
                out["horizons"] = cmp_.horizons
                lim_of = {n: h["limit"] for h in cmp_.horizons.values() for n in h["widths"]}
                doc.p(f"**Exact limits, one per horizon** (derived once per distinct T on the run's data; "
                      f"{_OWN_T}):")
                doc.p(_table(["T", "widths", "η_∞^(T) in the window", "first local minimiser", "local minimisers in the window",
                              "source"],
                             [[T, ", ".join(map(str, h["widths"])), f"{h['limit'].eta_window_min:.12g}",
                               "–" if not h["limit"].eta_first_local_min else f"{h['limit'].eta_first_local_min:.12g}",
                               ", ".join(f"{x:.6g}" for x in h["limit"].minima) or "–", h["limit"].source]
                              for T, h in sorted(cmp_.horizons.items())]))
            multi = any(len(lim_of[n].minima) > 1 for n in widths)
            if cmp_.horizons is not None:
                doc.p(f"Every row compares a width with the exact limit at its own T (window (0, {lim.window:.6g}]). "
                      + (f"{cmp_.basin_note().replace('eta_n', 'η_n')} " if multi else "η_n is compared with the limit's "
                         "minimiser in the window at the width's T. ")
                      + f"Verdicts at level {level} with Bonferroni over "
                      f"{cmp_.n_comparisons} comparisons across all horizons (per test {level / cmp_.n_comparisons:.2g}): "
                      + ("**all consistent**." if cmp_.consistent else "**some inconsistent** (see table).")
                      + ("" if tested == len(cmp_.rows) else f" {len(cmp_.rows) - tested} one-seed basin row(s) are reported, not tested."))
            else:
                doc.p(f"**Exact limit** ({lim.source}): η_∞ in the window (0, {lim.window:.6g}] = {lim.eta_window_min:.12g}"
                      + (f"; first local minimiser {lim.eta_first_local_min:.12g}" if lim.eta_first_local_min else "")
                      + f". {cmp_.basin_note().replace('eta_n', 'η_n')} Verdicts at level {level} with Bonferroni over "
                      f"{cmp_.n_comparisons} comparisons (per test {level / cmp_.n_comparisons:.2g}): "
                      + ("**all consistent**." if cmp_.consistent else "**some inconsistent** (see table).")
                      + ("" if tested == len(cmp_.rows) else f" {len(cmp_.rows) - tested} one-seed basin row(s) are reported, not tested."))
            doc.p(_table(["width", "quantity", "basin share", "mean ± s.e.", "limit", "z", "rel. RMS dev.", "verdict"],
                         [[r.width, r.quantity.replace("eta_n", "η_n"), "–" if r.share is None else f"{r.share:.0%}",
                           _pm(r.mean, r.se), f"{r.limit:.6g}", "–" if not np.isfinite(r.z) else f"{r.z:.2f}",
                           f"{r.rel_rms:.3g}", r.verdict] for r in cmp_.rows]))
            fits, cps, extr = {}, {}, {}
            for q, groups in cmp_.per_seed.items():
                # the reference of each width: its limit (growing horizon: the limit at the width's own T)
                ref = {n: (lim_of[n].eta_window_min if q == "eta_n" else lim_of[n].coefficient(int(q[2:]))) for n in groups}
                if q == "c_0" or len(groups) < 3:
                    continue
                if all(np.allclose(v, ref[n], rtol=0, atol=0) for n, v in groups.items()):
                    continue  # exact at every width (e.g. c_1 at L = 1): no rate to fit
                if q == "eta_n" and multi:  # the distance to the nearest minimiser of the limit (claim C6's statistic)
                    from polyloss.analysis import basin_distance

                    dist = {n: basin_distance(v, lim_of[n].minima or (lim_of[n].eta_window_min,)) for n, v in groups.items()}
                    fits[q] = fit_rate(dist, 0.0)
                    cps[q] = change_point(dist, 0.0)
                    continue
                if cmp_.horizons is None:
                    ref = ref[next(iter(groups))]  # one limit: a number, as before
                fits[q] = fit_rate(groups, ref)
                cps[q] = change_point(groups, ref)
                if cmp_.horizons is None:  # the limit moves with T: no single n = ∞ value to extrapolate to
                    extr[q] = extrapolate(groups)
            if fits:
                entry["rates"] = {q: f.to_dict() for q, f in fits.items()}
                entry["change_points"] = {q: c.to_dict() for q, c in cps.items()}
                entry["extrapolation"] = {q: {**e.to_dict(), "limit": (lim.eta_window_min if q == "eta_n" else lim.coefficient(int(q[2:])))}
                                          for q, e in extr.items()}
                doc.p(_table(["quantity", "RMS slope [95% CI]", "rate change?", "extrapolated n=∞", "exact limit"],
                             [[_quantity_words(q, multi), f"{f.slope:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]",
                               f"{cps[q].verdict}: {cps[q].reason}",
                               _pm(extr[q].value, extr[q].se) if q in extr else (
                                   "– (per basin: not extrapolated)" if cmp_.horizons is None or (q == "eta_n" and multi)
                                   else "– (the limit moves with T: not extrapolated)"),
                               f"{entry['extrapolation'][q]['limit']:.6g}" if q in extr else (
                                   "0 (distance)" if q == "eta_n" and multi else "at each width's own T (table above)")]
                              for q, f in fits.items()]))
                fig, (ax,) = plots.new_figure()
                own = "" if cmp_.horizons is None else f"\n({_OWN_T})"
                data = plots.convergence(ax, fits, f"Convergence to the exact limit, {label}{own}",
                                         reference_label="reference slope −1/2 (n^-1/2, the paper's rate for η_n at t = 1)",
                                         labels={q: _quantity_words(q, multi, tex=True) for q in fits})
                doc.fig(f"fig_c_convergence_{len(doc.figdata)}", fig,
                        f"(c) RMS over seeds of the deviation from the exact limit vs width, {label}"
                        + ("" if cmp_.horizons is None else f": {_OWN_T}"), data)
            if cmp_.gaps is not None:
                _gaps_section(doc, cmp_.gaps, label + ("" if cmp_.horizons is None else f"; {_OWN_T}"), cmp_.limit.exact)
    else:
        pred = predicted_eta_exponent(cfg)
        out["predicted"] = pred
        if sum(v.size >= 2 for v in eta_groups.values()) >= 3:
            from polyloss.analysis import scaling_verdict

            sv = scaling_verdict(eta_groups, pred)
            fs = sv.fit
            entry["eta_scaling"] = {**fs.to_dict(), "predicted_exponent": pred, "verdict": sv.verdict, "words": sv.words,
                                    "rule": sv.rule, "corrected": {k: f.to_dict() for k, f in sv.corrected.items()}}
            corr = "; ".join(f"with a {k} correction over all widths n^{f.slope:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]"
                             for k, f in sv.corrected.items())
            doc.p(f"η_n ∝ n^{fs.slope:.3f} (95% CI [{fs.ci_low:.3f}, {fs.ci_high:.3f}]) on n = {fs.widths[0]}..{fs.widths[-1]}"
                  + (f" ({corr})" if corr else "") + f"; power counting predicts n^{pred:g}: **{sv.words}**.")
            doc.p(f"Rule (the same as claim C3 of `polyloss verify`): {sv.rule}.")
        else:
            doc.p(f"Power counting predicts η_n ∝ n^{pred:g}; fewer than 3 widths with at least 2 seeds: no scaling fit.")
    return out


_GAP_WORDS = {"a": "loss gap a = |L_n(η_n) − L_∞(η_∞)|", "b": "hyperparameter gap b = |η_n − η_∞|",
              "c": "transfer penalty c = L_∞(η_n) − L_∞(η_∞)", "c/a": "c/a"}


def _legend_below(ax, data: dict) -> None:
    """Move a figure's legend under the axes (the long fit labels would hide points inside them)."""
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    data["axes"] = plots.describe(ax)


def _gaps_section(doc: _Doc, gaps: dict, label: str, exact: bool = True):
    """(g) transfer gaps (polyloss.gaps): per-width table, rates with CIs, verdict, two figures per minimiser."""
    from polyloss.gaps import FAST_RULE, GAP_QUANTITIES, MINIMISER_WORDS

    how = "evaluated exactly, in ℚ" if exact else "its coefficients involve π: rounded to float64, then evaluated in ℚ"
    doc.p("**Transfer gaps** (Ghosh, Wu & Bietti 2026) of every network against the exact limit: loss gap "
          "a = |𝓛_n(η_n) − 𝓛_∞(η_∞)|, hyperparameter gap b = |η_n − η_∞|, transfer penalty c = 𝓛_∞(η_n) − 𝓛_∞(η_∞) "
          f"(𝓛_∞ {how}) and c/a. Rule: {FAST_RULE}.")
    for m, g in gaps.items():
        words = MINIMISER_WORDS[m]
        if m != "window" and g.per_width is gaps["window"].per_width:
            doc.p(f"*{words}*: every network's first local minimiser is its window minimiser and the limit's are the "
                  "same point: the same numbers as above.")
            continue
        doc.p(f"*{words}* (η_∞ = {g.eta_inf:.10g}, 𝓛_∞(η_∞) = {g.loss_inf:.10g}): fast transfer **{g.verdict}** "
              f"(ratio of means: {g.verdicts['means']}; median ratio: {g.verdicts['medians']})"
              + (f"; {g.note}" if g.note else "") + ".")
        doc.p(_table(["width", "networks", "share in η_∞'s basin"] + [f"{q} mean ± s.e. (median)" for q in GAP_QUANTITIES]
                     + ["mean(c)/mean(a)"],
                     [[s["width"], s["count"], f"{g.basin_share[s['width']]:.0%}"]
                      + [f"{_pm(s[q]['mean'], s[q]['se_mean'], '.4g')} ({s[q]['median']:.4g})" for q in GAP_QUANTITIES]
                      + [f"{s['c/a']['ratio_of_means']:.4g}"] for s in g.summary]))

        def cell(f):
            return "–" if f is None else f"{f.slope:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]"

        doc.p(_table(["quantity", "slope of the seed mean [95% CI]", "slope of the seed median [95% CI]"],
                     [[_GAP_WORDS[q] + (" (mean: ratio of means mean(c)/mean(a); median: of per-network c/a)" if q == "c/a" else ""),
                       cell(g.fits["mean"][q]), cell(g.fits["median"][q])] for q in GAP_QUANTITIES]))
        panels = [(stat, {q: f for q, f in g.fits[stat].items() if q != "c/a" and f is not None}) for stat in ("mean", "median")]
        panels = [(stat, fs) for stat, fs in panels if fs]
        if panels:
            fig, axes = plots.new_figure(ncols=len(panels), height=6.0)
            data = {}
            for ax, (stat, fs) in zip(axes, panels):
                data[stat] = plots.convergence(
                    ax, fs, f"Transfer gaps vs width, seed {stat}s\n({words}, {label})",
                    ylabel=f"seed {stat} of the gap (log scale)", labels={q: _GAP_WORDS[q] for q in fs},
                    references={"reference slope −1/2 (n^-1/2)": -0.5, "reference slope −1 (n^-1)": -1.0})
                _legend_below(ax, data[stat])
            doc.fig(f"fig_g_gaps_{len(doc.figdata)}", fig, f"(g) transfer gaps a, b, c vs width ({words}), {label}", data)
        ratio = {f"{stat}": g.fits[stat]["c/a"] for stat in ("mean", "median") if g.fits[stat]["c/a"] is not None}
        if ratio:
            fig, (ax,) = plots.new_figure(height=5.6)
            data = plots.convergence(
                ax, ratio, f"Transfer penalty over loss gap vs width\n({words}, {label})", ylabel="c/a (log scale)",
                labels={"mean": "ratio of seed means mean(c)/mean(a)", "median": "seed median of c/a"},
                references={"reference slope 0 (c/a constant: transfer NOT fast)": 0.0,
                            "reference slope −1/2 (c ∝ n^-1 over a ∝ n^-1/2: fast)": -0.5})
            _legend_below(ax, data)
            doc.fig(f"fig_g_ratio_{len(doc.figdata)}", fig,
                    f"(g) c/a vs width, means and medians ({words}): fast transfer = negative slope, {label}", data)


def _figure_b(doc: _Doc, info: dict):
    if info.get("horizons") is not None:
        return _figure_b_horizons(doc, info)
    lim = info["limit"]
    extra, basins = {}, None
    if lim is not None:  # every other local minimiser of the limit in the window (t >= 2 can have several)
        for k, x in enumerate(lim.minima, start=1):  # numbered as the basins of the table and the legend
            if abs(x - lim.eta_window_min) > 1e-12 * max(1.0, lim.eta_window_min):
                extra[f"local minimiser {k} of $\\mathcal{{L}}_\\infty$"] = x
        if len(lim.minima) > 1:
            from polyloss.analysis import nearest_basin

            basins = {}
            for b, x in enumerate(lim.minima):
                w, m, s = [], [], []
                for n, v in sorted(info["eta_groups"].items()):
                    sel = v[nearest_basin(v, lim.minima) == b]
                    if sel.size:
                        w.append(n)
                        m.append(float(sel.mean()))
                        s.append(float(sel.std(ddof=1) / np.sqrt(sel.size)) if sel.size > 1 else 0.0)
                if w:
                    basins[f"η_n of the seeds nearest minimiser {b + 1} ({x:.4g}), mean ± s.e."] = (w, m, s)
    pred = info.get("predicted")
    fig, (ax,) = plots.new_figure()
    what = "η_n per basin of the limit" if basins else "η_n"
    data = plots.eta_vs_width(ax, info["widths"], info["eta_mean"], info["eta_se"], f"Optimal learning rate {what}, {info['label']}",
                              eta_inf=None if lim is None else lim.eta_window_min, extra_lines=extra, basins=basins,
                              reference_slope=pred if (pred is not None and pred != 0) else None,
                              reference_label=None if pred is None else f"reference slope {pred:g} (power-counting prediction n^{pred:g})")
    data["limit_other_minima"] = list(extra.values())
    doc.fig(f"fig_b_eta_{len(doc.figdata)}", fig, f"(b) {what} vs width, {info['label']}", data)


def _figure_b_horizons(doc: _Doc, info: dict):
    """(b) of a growing-horizon run: η_n vs width with the exact limit's minimiser at each width's own T."""
    hz = info["horizons"]
    T_of = {n: T for T, h in hz.items() for n in h["widths"]}
    fig, (ax,) = plots.new_figure()
    data = plots.eta_vs_width(ax, info["widths"], info["eta_mean"], info["eta_se"],
                              f"Optimal learning rate η_n, {info['label']}\n({_OWN_T})")
    w = [n for n in info["widths"] if n in T_of]
    lims = [hz[T_of[n]]["limit"].eta_window_min for n in w]
    ax.plot(w, lims, "k--", marker="s", mfc="none",
            label="η_∞^(T(n)): the exact limit's minimiser in the window at the width's own T")
    for n, y in zip(w, lims):
        ax.annotate(f"T={T_of[n]}", (n, y), textcoords="offset points", xytext=(0, -12), fontsize=7, ha="center")
    ax.legend(fontsize=7)
    data["axes"] = plots.describe(ax)
    data["limit_by_width"] = {"width": w, "steps": [T_of[n] for n in w], "eta_inf": lims}
    doc.fig(f"fig_b_eta_{len(doc.figdata)}", fig, f"(b) η_n vs width, {info['label']}: {_OWN_T}", data)


def _curve_records(run: SampleRun):
    """Records whose ``curve_loss`` lies on ``config["curve_etas"]``, and how many do not (old runs
    whose refined grid points leaked into ``curve_loss``)."""
    G = len(run.config["curve_etas"])
    ok = {n: [r for r in recs if len(r.get("curve_loss") or ()) == G] for n, recs in run.by_width().items()}
    return {n: v for n, v in ok.items() if v}, sum(len(v) for v in run.by_width().values()) - sum(len(v) for v in ok.values())


def _recompute_curves(run: SampleRun, etas, budget_s: float = 60.0):
    """The stable loss of every network of ``run`` on ``etas``, by re-drawing it from its seed
    ({width: (seeds, etas)}), or (None, reason). Each network is checked against its record (the
    loss at its η_n); the work stops if it would take longer than ``budget_s``."""
    import time

    from polyloss.compare import run_dataset
    from polyloss.engine import LossEngine
    from polyloss.lazy import draw_weights
    from polyloss.report_sweep import _param
    from polyloss.spec import NetworkSpec
    from polyloss.weights import child_seed

    cfg = run.config
    try:
        data = run_dataset(run)
    except PolylossError as exc:
        return None, f"the run's data cannot be rebuilt ({exc})"
    param, t0, done, total = _param(cfg), time.perf_counter(), 0, len(run.records)
    pts = np.asarray(etas, dtype=float)
    out = {}
    for n, recs in run.by_width().items():
        rows = []
        for r in recs:
            w, _ = draw_weights(NetworkSpec(cfg["depth"], n, data.d), param, child_seed(cfg["seed"], n, r["sample"]),
                                sampler=r.get("sampler", "dense"), steps=cfg["steps"])
            with np.errstate(over="ignore", invalid="ignore"):
                vals = LossEngine(w, data, param).loss_at(np.append(pts, r["eta_opt"]), cfg["steps"])
            ref = float(r["loss_at_eta_opt"])
            if not abs(vals[-1] - ref) <= 1e-6 * max(abs(ref), 1e-12):
                return None, f"network (n={n}, sample {r['sample']}) does not reproduce its record"
            rows.append(vals[:-1])
            done += 1
            if (time.perf_counter() - t0) / done * total > budget_s and done < total:
                return None, f"re-evaluating {total} networks would take over {budget_s:.0f} s"
        out[n] = np.array(rows)
    return out, None


def _mean_se(C):
    C = np.asarray(C, dtype=float)
    se = C.std(axis=0, ddof=1) / np.sqrt(C.shape[0]) if C.shape[0] > 1 else np.zeros(C.shape[1])
    return C.mean(axis=0), se


def _figure_a(doc: _Doc, group: list, dense: bool = True, n_points: int = 81):
    """(a) loss vs η per width, focused on the region around the minima (half a decade beyond the
    smallest and the largest mean η_n and limit minimiser). The curves are re-evaluated on a dense
    geometric grid there (the networks are re-drawn from their seeds); if that is not possible the
    stored first-stage grid is used, without records whose curve is not on it."""
    fig, axes = plots.new_figure(ncols=len(group))
    data, notes = {}, []
    for ax, (run, info) in zip(axes, group):
        stored = np.asarray(run.config["curve_etas"], dtype=float)
        lim = info["limit"]
        centres = [m for m in info["eta_mean"] if m is not None] + (list(lim.minima) if lim is not None else [])
        lo, hi = plots.focus_range(centres, stored[stored > 0].min(), stored.max())
        curves, reason = None, "not requested"
        if dense:
            etas = np.geomspace(lo, hi, n_points)
            per_net, reason = _recompute_curves(run, etas)
            if per_net is not None:
                curves = {n: _mean_se(C) for n, C in per_net.items()}
                how = f"re-evaluated on {n_points} log-spaced η"
        if curves is None:
            etas = stored
            ok, bad = _curve_records(run)
            curves = {n: _mean_se([r["curve_loss"] for r in recs]) for n, recs in ok.items()}
            how = f"on the run's stored grid ({reason})"
            if bad:
                notes.append(f"{info['label']}: {bad} record(s) left out of the loss curves: their curve_loss does not lie "
                             f"on the run's curve grid (written before a fix; refined minimiser points had leaked into it).")
        else:
            bad = _curve_records(run)[1]
            if bad:
                notes.append(f"{info['label']}: {bad} record(s) hold a curve_loss that is not on the run's curve grid "
                             "(written before a fix); not used: every network was re-evaluated.")
        limit_curve = [eval_exact(lim.loss_coefficients, e) for e in etas] if lim is not None else None
        d = plots.loss_curves(ax, etas, curves, f"Loss vs learning rate, {info['label']}", limit_curve, focus=(lo, hi),
                              minima={n: m for n, m in zip(info["widths"], info["eta_mean"])})
        d["grid"] = how
        data[info["key"]] = d
        notes.append(f"{info['label']}: curves {how}, η in [{lo:.3g}, {hi:.3g}].")
    names = " vs ".join(i["label"] for _, i in group)
    for note in notes:
        doc.p(note)
    doc.fig(f"fig_a_loss_{len(doc.figdata)}", fig,
            f"(a) loss vs η around the minima, across widths (mean ± s.e. over seeds), {names}", data)


def _by_horizon(infos: list) -> list:
    """(run, info) pairs with every growing-horizon run cut into its fixed-T parts
    (:func:`polyloss.horizon.split_by_steps`), each with the widths of that T and the limit at that T, so
    the loss curves of a width are drawn with the limit at its own T."""
    from polyloss.horizon import split_by_steps

    out = []
    for run, info in infos:
        if not _is_rule(run):
            out.append((run, info))
            continue
        hz = info.get("horizons") or {}
        for T, sub in split_by_steps(run).items():
            keep = [j for j, n in enumerate(info["widths"]) if n in sub.config["widths"]]
            label = f"{info['label']}, widths at T = {T} ({_OWN_T})"
            out.append((sub, {**info, "label": label, "key": f"{info['key']} T={T}", "horizons": None,
                              "limit": hz[T]["limit"] if T in hz else None,
                              "widths": [info["widths"][j] for j in keep], "eta_mean": [info["eta_mean"][j] for j in keep],
                              "eta_se": [info["eta_se"][j] for j in keep]}))
    return out


def _figure_d(doc: _Doc, infos: list, numbers: dict):
    by_steps: dict = {}
    for run, info in infos:
        if run.config["param"]["name"] == "mup":
            by_steps.setdefault(run.config["steps"], []).append((run, info))
    for steps, group in by_steps.items():
        depths = sorted({r.config["depth"] for r, _ in group})
        if len(depths) < 2:
            continue
        widths = sorted(set.intersection(*[set(i["widths"]) for _, i in group]))
        lines = {}
        for n in widths:
            m, s = [], []
            for L in depths:
                run, info = next((r, i) for r, i in group if r.config["depth"] == L)
                j = info["widths"].index(n)
                m.append(L * info["eta_mean"][j])
                s.append(L * info["eta_se"][j])
            lines[f"n = {n}"] = (m, s)
        limit = {r.config["depth"]: r.config["depth"] * i["limit"].eta_window_min for r, i in group if i["limit"] is not None}
        fig, (ax,) = plots.new_figure()
        data = plots.depth_scaling(ax, depths, lines, limit or None, f"Depth scaling of the optimal learning rate, t = {steps}")
        numbers.setdefault("depth_scaling", {})[f"t={steps}"] = data
        doc.fig(f"fig_d_depth_{len(doc.figdata)}", fig, f"(d) L·η_n vs depth L (μP, t = {steps})", data)


def report(run_dirs, out_dir, *, derivation: str = "auto", level: float = 0.05, n_coeffs: int = 4,
           dense_curves: bool = True) -> Report:
    """Write the report for ``run_dirs`` (sample and/or sweep directories) into ``out_dir``.

    ``dense_curves``: re-draw the networks from their seeds to draw the loss curves on a dense grid
    around the minima (False: use the grid stored in the run)."""
    from polyloss._paths import check_in_file, check_out_dir  # argument checks before any work

    if isinstance(run_dirs, (str, bytes, os.PathLike)):
        run_dirs = [run_dirs]
    run_dirs = [check_in_file("runs", p, "a run directory", exc=RunError) if not os.path.isdir(p) else os.fspath(p)
                for p in run_dirs]
    if not run_dirs:
        raise SpecError("`runs` is empty: give at least one sample or sweep run directory")
    out_dir = check_out_dir("out", out_dir)
    if isinstance(n_coeffs, bool) or not isinstance(n_coeffs, int) or n_coeffs < 1:
        raise SpecError(f"`coeffs`={n_coeffs!r} is invalid: must be an integer >= 1")
    if derivation != "auto":  # a file the user named must be usable; a run it does not fit is noted per run
        from polyloss.compare import read_derivation

        read_derivation(derivation)
    kinds = [_kind(p) for p in run_dirs]
    samples = [load_run(p, horizons=True) for p, k in zip(run_dirs, kinds) if k == "sample"]
    sweeps = [p for p, k in zip(run_dirs, kinds) if k == "sweep"]
    for s in samples:
        if not s.records:
            raise RunError(f"run {s.path!r} has no finished records")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    doc = _Doc(out_dir)
    # report/2: the compare blocks carry `gaps`
    numbers: dict = {"schema": "polyloss.report/2", "polyloss_version": __version__, "runs": {}}
    doc.h("polyloss convergence report", 1)
    doc.p("Runs: " + ", ".join(f"`{p}`" for p in run_dirs) + ".")
    infos = []
    for run in samples:
        info = _sample_section(doc, run, numbers, derivation, level, n_coeffs)
        _figure_b(doc, info)
        infos.append((run, info))
    # (a) grouped by (depth, steps): μP and SP side by side
    groups: dict = {}
    for run, info in _by_horizon(infos):
        groups.setdefault((run.config["depth"], run.config["steps"]), []).append((run, info))
    if groups:
        doc.h("Loss curves across widths")
        for (L, t), group in sorted(groups.items()):
            group.sort(key=lambda ri: ["mup", "sp", "ntp"].index(ri[0].config["param"]["name"])
                       if ri[0].config["param"]["name"] in ("mup", "sp", "ntp") else 9)
            _figure_a(doc, group, dense=dense_curves)
    fixed = [(r, i) for r, i in infos if not _is_rule(r)]  # L·η_∞ is constant in L at one T, not across a rule
    if len({r.config["depth"] for r, _ in fixed}) > 1:
        doc.h("Depth scaling")
        _figure_d(doc, fixed, numbers)
    if sweeps:
        from polyloss.report_sweep import sweep_section

        doc.h("Learning-rate sweeps (actual training)")
        for path in sweeps:
            sweep_section(doc, path, numbers)
    return _write(doc, numbers)


def _write(doc: _Doc, numbers: dict) -> Report:
    return _write_named(doc, numbers, "report")


def _write_named(doc: _Doc, numbers: dict, base: str) -> Report:
    """Write ``base``.md, ``base``.json (every number) and a self-contained ``base``.html."""
    out = doc.out_dir
    numbers["figures"] = doc.figdata
    md_path = os.path.join(out, f"{base}.md")
    with open(md_path, "w") as fh:
        fh.write("\n".join(doc.md))
    json_path = os.path.join(out, f"{base}.json")
    with open(json_path, "w") as fh:
        jsonsafe.dump(numbers, fh, indent=1, default=_json_default)  # strict JSON: no NaN/Infinity
    html_path = os.path.join(out, f"{base}.html")
    with open(html_path, "w") as fh:
        fh.write(_html(doc))
    return Report(out, tuple(doc.files) + (md_path, json_path, html_path), numbers, doc.figdata)


def _json_default(o):
    if isinstance(o, Fraction):
        return str(o)
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _inline(text: str) -> str:
    """Inline Markdown (``code``, **bold**, *italic*) to HTML; everything else escaped. No raw
    Markdown markers reach the page."""
    out = []
    for k, part in enumerate(re.split(r"`([^`]*)`", text)):
        if k % 2:
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        part = html.escape(part.replace("`", ""))
        part = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", part)
        part = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", part)
        out.append(part)
    return "".join(out)


def _html(doc: _Doc) -> str:
    """Markdown subset (headings, tables, images, paragraphs) to self-contained HTML."""
    body, after_figure = [], False
    for block in doc.md:
        for chunk in block.strip("\n").split("\n\n"):
            lines = chunk.split("\n")
            if not lines[0].startswith("!["):
                after_figure = after_figure and lines[0].startswith("*")
            if lines[0].startswith("#"):
                lvl = len(lines[0]) - len(lines[0].lstrip("#"))
                body.append(f"<h{lvl}>{_inline(lines[0][lvl:].strip())}</h{lvl}>")
            elif lines[0].startswith("|"):
                rows = [[c.replace("\\|", "|") for c in re.split(r"(?<!\\) \| ", l[2:-2])]
                        for l in lines if not l.startswith("|---")]
                head = "".join(f"<th>{_inline(c.strip())}</th>" for c in rows[0])
                trs = "".join("<tr>" + "".join(f"<td>{_inline(c.strip())}</td>" for c in r) + "</tr>" for r in rows[1:])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif lines[0].startswith("!["):
                alt, src = re.match(r"!\[(.*)\]\(([^()]*)\)$", lines[0]).groups()
                with open(os.path.join(doc.out_dir, src), "rb") as fh:
                    b64 = base64.b64encode(fh.read()).decode()
                body.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'
                            f"<figcaption>{_inline(alt)}</figcaption></figure>")
                after_figure = True
            elif lines[0].startswith("*") and lines[0].endswith("*") and not lines[0].startswith("**") and after_figure:
                after_figure = False
                continue  # figure captions are rendered by <figcaption>
            else:
                body.append(f"<p>{_inline(' '.join(lines))}</p>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}figcaption{font-size:13px;color:#444}code{background:#f3f3f3;padding:0 3px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>polyloss report</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>")
