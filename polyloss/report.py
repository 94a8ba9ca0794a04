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
import json
import os
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from polyloss import __version__
from polyloss import plots
from polyloss.analysis import change_point, extrapolate, fit_rate, fit_scaling
from polyloss.errors import PolylossError, RunError, SpecError
from polyloss.compare import eval_exact
from polyloss.sampling import SampleRun, load_run, summarise

__all__ = ["Report", "report"]

def predicted_eta_exponent(cfg: dict) -> float:
    """The width exponent of η_n predicted by power counting (:func:`polyloss.derive.power_counting`)."""
    from polyloss.derive import power_counting
    from polyloss.spec import Parametrization

    p = cfg["param"]
    return float(power_counting(Parametrization.custom(Fraction(p["alpha"]), Fraction(p["gamma"])), cfg["depth"]).eta)


@dataclass(frozen=True)
class Report:
    out_dir: str
    files: tuple
    numbers: dict
    figures: dict  # name -> data drawn


def _kind(path) -> str:
    cfg = os.path.join(os.fspath(path), "run.json")
    if not os.path.exists(cfg):
        raise RunError(f"{os.fspath(path)!r} is not a polyloss run directory (no run.json)")
    with open(cfg) as fh:
        try:
            schema = json.load(fh).get("schema")
        except json.JSONDecodeError:
            raise RunError(f"{cfg}: invalid JSON") from None
    if schema == "polyloss.sample/1":
        return "sample"
    if schema == "polyloss.sweep/1":
        return "sweep"
    raise RunError(f"{os.fspath(path)!r}: unknown run schema {schema!r} (expected polyloss.sample/1 or polyloss.sweep/1)")


def _label(run: SampleRun) -> str:
    c = run.config
    return f"L={c['depth']} t={c['steps']} {c['param']['name']}"


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


def _sample_section(doc: _Doc, run: SampleRun, numbers: dict, derivation: str, level: float, n_coeffs: int):
    from polyloss.compare import compare

    cfg, label = run.config, _label(run)
    key = f"{label} [{os.path.basename(os.path.normpath(run.path))}]"
    entry: dict = {"run": run.path, "config": {k: cfg[k] for k in ("depth", "steps", "param", "degree", "seed", "data", "window")}}
    numbers["runs"][key] = entry
    doc.h(f"Run {key}")
    rows = summarise(run, n_coeffs)
    entry["summary"] = rows
    k = len(rows[0]["coeff_mean"]) if rows else 0
    doc.p(_table(["width", "seeds"] + [f"c_{i}" for i in range(k)] + ["η_n", "η_n at window edge"],
                 [[r["width"], r["count"]] + [f"{m:.6g} ± {s:.2g}" for m, s in zip(r["coeff_mean"], r["coeff_se"])]
                  + [f"{r['eta_mean']:.6g} ± {r['eta_se']:.2g}", r["at_edge"]] for r in rows]))
    widths = [r["width"] for r in rows]
    eta_groups = {n: [x["eta_opt"] for x in recs] for n, recs in run.by_width().items()}
    out = {"label": label, "key": key, "cfg": cfg, "widths": widths,
           "eta_mean": [r["eta_mean"] for r in rows], "eta_se": [r["eta_se"] for r in rows], "limit": None}
    if cfg["param"]["name"] == "mup":
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
            doc.p(f"**Exact limit** ({lim.source}): η_∞ in the window (0, {lim.window:.6g}] = {lim.eta_window_min:.12g}"
                  + (f"; first local minimiser {lim.eta_first_local_min:.12g}" if lim.eta_first_local_min else "")
                  + f". Verdicts at level {level} with Bonferroni over {cmp_.n_comparisons} comparisons "
                  f"(per test {level / cmp_.n_comparisons:.2g}): "
                  + ("**all consistent**." if cmp_.consistent else "**some inconsistent** (see table)."))
            doc.p(_table(["width", "quantity", "mean ± s.e.", "limit", "z", "rel. RMS dev.", "verdict"],
                         [[r.width, r.quantity, f"{r.mean:.6g} ± {r.se:.2g}", f"{r.limit:.6g}", f"{r.z:.2f}",
                           f"{r.rel_rms:.3g}", "consistent" if r.consistent else "INCONSISTENT"] for r in cmp_.rows]))
            fits, cps, extr = {}, {}, {}
            for q, groups in cmp_.per_seed.items():
                ref = lim.eta_window_min if q == "eta_n" else lim.coefficient(int(q[2:]))
                if q == "c_0" or len(groups) < 3:
                    continue
                if all(np.allclose(v, ref, rtol=0, atol=0) for v in groups.values()):
                    continue  # exact at every width (e.g. c_1 at L = 1): no rate to fit
                fits[q] = fit_rate(groups, ref)
                cps[q] = change_point(groups, ref)
                extr[q] = extrapolate(groups)
            if fits:
                entry["rates"] = {q: f.to_dict() for q, f in fits.items()}
                entry["change_points"] = {q: c.to_dict() for q, c in cps.items()}
                entry["extrapolation"] = {q: {**e.to_dict(), "limit": (lim.eta_window_min if q == "eta_n" else lim.coefficient(int(q[2:])))}
                                          for q, e in extr.items()}
                doc.p(_table(["quantity", "RMS slope [95% CI]", "rate change?", "extrapolated n=∞", "exact limit"],
                             [[q, f"{f.slope:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]", f"{cps[q].verdict}: {cps[q].reason}",
                               f"{extr[q].value:.6g} ± {extr[q].se:.2g}",
                               f"{entry['extrapolation'][q]['limit']:.6g}"] for q, f in fits.items()]))
                fig, (ax,) = plots.new_figure()
                data = plots.convergence(ax, fits, f"Convergence to the limit, {label}")
                doc.fig(f"fig_c_convergence_{len(doc.figdata)}", fig,
                        f"(c) RMS over seeds of the deviation from the exact limit vs width, {label}", data)
    else:
        pred = predicted_eta_exponent(cfg)
        if len(eta_groups) >= 3:
            fs = fit_scaling(eta_groups)
            entry["eta_scaling"] = {**fs.to_dict(), "predicted_exponent": pred}
            agree = fs.ci_low <= pred <= fs.ci_high
            doc.p(f"η_n ∝ n^{fs.slope:.3f} (95% CI [{fs.ci_low:.3f}, {fs.ci_high:.3f}]); "
                  f"power counting predicts n^{pred}: {'consistent' if agree else 'NOT consistent'}.")
    return out


def _figure_b(doc: _Doc, info: dict):
    lim = info["limit"]
    extra = {}
    if lim is not None:  # every other local minimiser of the limit in the window (t >= 2 can have several)
        others = [x for x in lim.minima if abs(x - lim.eta_window_min) > 1e-12 * max(1.0, lim.eta_window_min)]
        for k, x in enumerate(others, start=1):
            extra[f"local min {k} of $\\mathcal{{L}}_\\infty$"] = x
    fig, (ax,) = plots.new_figure()
    data = plots.eta_vs_width(ax, info["widths"], info["eta_mean"], info["eta_se"], f"Optimal learning rate, {info['label']}",
                              eta_inf=None if lim is None else lim.eta_window_min, extra_lines=extra)
    data["limit_other_minima"] = list(extra.values())
    doc.fig(f"fig_b_eta_{len(doc.figdata)}", fig, f"(b) η_n vs width, {info['label']}", data)


def _figure_a(doc: _Doc, group: list):
    fig, axes = plots.new_figure(ncols=len(group))
    data = {}
    for ax, (run, info) in zip(axes, group):
        etas = run.config["curve_etas"]
        curves = {}
        for n, recs in run.by_width().items():
            C = np.array([r["curve_loss"] for r in recs], dtype=float)
            se = C.std(axis=0, ddof=1) / np.sqrt(len(recs)) if len(recs) > 1 else np.zeros(C.shape[1])
            curves[n] = (C.mean(axis=0), se)
        lim = info["limit"]
        limit_curve = [eval_exact(lim.loss_coefficients, e) for e in etas] if lim is not None else None
        data[info["key"]] = plots.loss_curves(ax, etas, curves, info["label"], limit_curve)
    names = " vs ".join(i["label"] for _, i in group)
    doc.fig(f"fig_a_loss_{len(doc.figdata)}", fig, f"(a) loss vs η across widths (mean ± s.e. over seeds), {names}", data)


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


def report(run_dirs, out_dir, *, derivation: str = "auto", level: float = 0.05, n_coeffs: int = 4) -> Report:
    """Write the report for ``run_dirs`` (sample and/or sweep directories) into ``out_dir``."""
    run_dirs = [os.fspath(p) for p in run_dirs]
    if not run_dirs:
        raise SpecError("`runs` is empty: give at least one sample or sweep run directory")
    kinds = [_kind(p) for p in run_dirs]
    samples = [load_run(p) for p, k in zip(run_dirs, kinds) if k == "sample"]
    sweeps = [p for p, k in zip(run_dirs, kinds) if k == "sweep"]
    for s in samples:
        if not s.records:
            raise RunError(f"run {s.path!r} has no finished records")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    doc = _Doc(out_dir)
    numbers: dict = {"schema": "polyloss.report/1", "polyloss_version": __version__, "runs": {}}
    doc.h("polyloss convergence report", 1)
    doc.p("Runs: " + ", ".join(f"`{p}`" for p in run_dirs) + ".")
    infos = []
    for run in samples:
        info = _sample_section(doc, run, numbers, derivation, level, n_coeffs)
        _figure_b(doc, info)
        infos.append((run, info))
    # (a) grouped by (depth, steps): μP and SP side by side
    groups: dict = {}
    for run, info in infos:
        groups.setdefault((run.config["depth"], run.config["steps"]), []).append((run, info))
    if groups:
        doc.h("Loss curves across widths")
        for (L, t), group in sorted(groups.items()):
            group.sort(key=lambda ri: ["mup", "sp", "ntp"].index(ri[0].config["param"]["name"])
                       if ri[0].config["param"]["name"] in ("mup", "sp", "ntp") else 9)
            _figure_a(doc, group)
    if len({r.config["depth"] for r, _ in infos}) > 1:
        doc.h("Depth scaling")
        _figure_d(doc, infos, numbers)
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
        json.dump(numbers, fh, indent=1, default=_json_default)
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


def _html(doc: _Doc) -> str:
    """Markdown subset (headings, tables, images, paragraphs) to self-contained HTML."""
    body = []
    for block in doc.md:
        for chunk in block.strip("\n").split("\n\n"):
            lines = chunk.split("\n")
            if lines[0].startswith("#"):
                lvl = len(lines[0]) - len(lines[0].lstrip("#"))
                body.append(f"<h{lvl}>{html.escape(lines[0][lvl:].strip())}</h{lvl}>")
            elif lines[0].startswith("|"):
                rows = [[c.replace("\\|", "|") for c in re.split(r"(?<!\\) \| ", l[2:-2])]
                        for l in lines if not l.startswith("|---")]
                head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in rows[0])
                trs = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>" for r in rows[1:])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif lines[0].startswith("!["):
                alt, src = re.match(r"!\[(.*)\]\(([^()]*)\)$", lines[0]).groups()
                with open(os.path.join(doc.out_dir, src), "rb") as fh:
                    b64 = base64.b64encode(fh.read()).decode()
                body.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'
                            f"<figcaption>{html.escape(alt)}</figcaption></figure>")
            elif lines[0].startswith("*") and lines[0].endswith("*") and not lines[0].startswith("**"):
                continue  # figure captions are rendered by <figcaption>
            else:
                text = html.escape(" ".join(lines))
                while "**" in text:
                    text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
                body.append(f"<p>{text}</p>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}figcaption{font-size:13px;color:#444}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>polyloss report</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>")
