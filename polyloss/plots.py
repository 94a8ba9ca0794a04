"""Plot functions: an ``ax`` in, the plotted data out (so tests check data, not pixels).

Only this module imports matplotlib, and only inside the functions (Agg backend).

Every figure says what it shows: a title, axis labels with their scale, reference lines named in
words in the legend, and widths as plain integers (64, 128, …) on log axes. Each function returns
the data it drew and, under ``"axes"``, the title, axis labels, legend entries and limits
(:func:`describe`), so that tests can check what a reader sees.
"""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.2):
    plt = _plt()
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)


def _colors(k):
    plt = _plt()
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in np.linspace(0.05, 0.9, max(k, 1))]


def describe(ax) -> dict:
    """What a reader sees: title, axis labels and scales, legend entries, limits."""
    leg = ax.get_legend()
    return {"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "xscale": ax.get_xscale(), "yscale": ax.get_yscale(),
            "legend": [t.get_text() for t in leg.get_texts()] if leg is not None else [],
            "xlim": [float(x) for x in ax.get_xlim()], "ylim": [float(y) for y in ax.get_ylim()],
            "xticklabels": [t.get_text() for t in ax.get_xticklabels()]}


def width_axis(ax, widths, label: str = "width n (log scale)") -> None:
    """A log₂ width axis with the widths themselves as plain integer ticks (64, 128, … not 2^6 or 10^2)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ws = sorted({int(w) for w in widths})
    ax.set_xscale("log", base=2)
    if ws:
        step = max(1, int(np.ceil(len(ws) / 8)))  # at most 8 labels
        ticks = ws[::step] if ws[-1] in ws[::step] else ws[::step] + [ws[-1]]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xticklabels([str(w) for w in ticks], rotation=45 if len(ticks) > 5 else 0, fontsize=8)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(ws[0] / 2**0.3, ws[-1] * 2**0.3)
    ax.set_xlabel(label)


def focus_range(centres, grid_lo: float, grid_hi: float, half_decades: float = 0.5):
    """An η range (log scale) around the minimisers ``centres``: half a decade beyond the smallest and
    the largest, so at least one decade, clipped to the grid."""
    c = np.asarray([x for x in centres if x is not None and np.isfinite(x) and x > 0], dtype=float)
    if c.size == 0:
        return float(grid_lo), float(grid_hi)
    f = 10.0**half_decades
    return float(max(grid_lo, c.min() / f)), float(min(grid_hi, c.max() * f))


def _ylim_from(ax, series, left_values):
    lows = [np.nanmin(s) for s in series if len(s) and np.isfinite(s).any()]
    tops = [x for x in left_values if x is not None and np.isfinite(x)]
    if lows and tops and all(x > 0 for x in lows):
        ax.set_ylim(0.7 * min(lows), 1.5 * max(max(tops), min(lows) * 1.5))  # divergence beyond the optimum is clipped


def loss_curves(ax, etas, curves: dict, title: str, limit_curve=None, focus=None, minima: dict | None = None) -> dict:
    """(a) mean loss vs η for each width (log-log axes); ``curves = {width: (mean, se)}``.

    ``focus`` = (lo, hi): draw only that η range (the region around the minimisers); ``minima``
    = {width: mean η_n} marks each width's mean minimiser.
    """
    etas = np.asarray(etas, dtype=float)
    lo, hi = focus if focus is not None else (etas[etas > 0].min(), etas.max())
    keep = (etas > 0) & (etas >= lo * (1 - 1e-12)) & (etas <= hi * (1 + 1e-12))
    drawn, series, left = {}, [], []
    for color, (n, (mean, se)) in zip(_colors(len(curves)), sorted(curves.items())):
        mean, se = np.asarray(mean, float)[keep], np.asarray(se, float)[keep]
        ax.plot(etas[keep], mean, color=color, label=f"n = {n}")
        ax.fill_between(etas[keep], mean - se, mean + se, color=color, alpha=0.2, linewidth=0)
        if minima and n in minima and minima[n] is not None:
            ax.axvline(minima[n], color=color, ls=":", lw=0.8)
        drawn[int(n)] = {"eta": etas[keep].tolist(), "loss": mean.tolist()}
        series.append(mean)
        left.append(mean[0] if mean.size else None)
    if limit_curve is not None:
        lc = np.asarray(limit_curve, float)[keep]
        ax.plot(etas[keep], lc, "k--", label="n = ∞ (exact limit)")
        drawn["limit"] = {"eta": etas[keep].tolist(), "loss": lc.tolist()}
        series.append(lc)
        left.append(lc[0] if lc.size else None)
    if minima:
        ax.plot([], [], color="gray", ls=":", lw=0.8, label="mean η_n per width (dotted)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    _ylim_from(ax, series, left)
    ax.set_xlabel("learning rate η (log scale)")
    ax.set_ylabel("training loss after t GD steps (log scale)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    drawn["focus"] = [float(lo), float(hi)]
    drawn["axes"] = describe(ax)
    return drawn


def eta_vs_width(ax, widths, mean, se, title: str, eta_inf=None, extra_lines: dict | None = None,
                 basins: dict | None = None, reference_slope: float | None = None, reference_label: str | None = None,
                 fit=None) -> dict:
    """(b) η_n (mean ± s.e.) vs width, with the limit's minimiser(s) as horizontal lines.

    ``basins`` = {label: (widths, mean, se)}: when the limit has several minimisers, the seeds are
    shown per basin and the mean across basins (not an estimate of anything) is not drawn.
    ``reference_slope``: a power-law guide ``n^slope`` through the first point (log-log axes).
    """
    series = {}
    if basins:
        for color, (label, (w, m, s)) in zip(_colors(len(basins)), basins.items()):
            ax.errorbar(w, m, yerr=s, fmt="o-", color=color, capsize=3, label=label)
            series[label] = {"width": list(map(int, w)), "mean": list(map(float, m)), "se": [None if x is None else float(x) for x in s]}
    else:
        label = "η_n (seed mean ± s.e.)"
        ax.errorbar(widths, mean, yerr=np.nan_to_num(np.asarray(se, float)), fmt="o-", capsize=3, label=label)
        series[label] = {"width": list(map(int, widths)), "mean": list(map(float, mean)), "se": list(map(float, se))}
    if eta_inf is not None:
        ax.axhline(eta_inf, color="k", ls="--", label=f"η_∞ = {eta_inf:.6g} (the exact limit's minimiser in the window)")
    for label, val in (extra_lines or {}).items():
        ax.axhline(val, color="gray", ls=":", label=f"{label} = {val:.6g}")
    if fit is not None:  # (slope, intercept, (ci_low, ci_high), widths) of log η = intercept + slope log n
        slope, intercept, ci, fw = fit
        fw = np.array(sorted(fw), float)
        ax.plot(fw, np.exp(intercept) * fw**slope, "-", color="tab:red", lw=1.5,
                label=f"fitted slope {slope:.3f} [95% CI {ci[0]:.3f}, {ci[1]:.3f}] on n = {int(fw[0])}..{int(fw[-1])}")
    ref = None
    if reference_slope is not None and len(widths):
        w = np.array(sorted(widths), float)
        ref = float(mean[int(np.argmin(widths))]) * (w / w[0]) ** reference_slope
        ax.plot(w, ref, "k:", label=reference_label or f"reference slope {reference_slope:g}")
        ax.set_yscale("log")
        ref = {"width": w.astype(int).tolist(), "eta": ref.tolist(), "slope": float(reference_slope)}
    width_axis(ax, widths)
    ax.set_ylabel("optimal learning rate η_n" + (" (log scale)" if reference_slope is not None else ""))
    ax.set_title(title)
    ax.legend(fontsize=7)
    return {"width": list(map(int, widths)), "mean": list(map(float, mean)), "se": list(map(float, se)),
            "eta_inf": eta_inf, "series": series, "reference": ref, "axes": describe(ax)}


def convergence(ax, series: dict, title: str, *, reference_slope: float = -0.5, reference_label: str | None = None,
                ylabel: str = "RMS over seeds of (value − exact limit), log scale", labels: dict | None = None,
                references: dict | None = None) -> dict:
    """(c) log-log size of a per-seed quantity vs width, with fitted slopes and reference slopes.

    ``series = {key: RateFit-like}``; ``labels = {key: words}`` for the legend (default: the key).
    Reference lines ``n^slope`` start at the first series' first point: ``references = {words: slope}``,
    default one line of ``reference_slope`` (``drawn["reference"]`` is the first).
    """
    refs = references or {reference_label or f"reference: slope {reference_slope:g}": reference_slope}
    drawn = {}
    allw = []
    for color, (key, fit) in zip(_colors(len(series)), series.items()):
        name = (labels or {}).get(key, key)
        w, rms = np.array(fit.widths, float), np.array(fit.rms, float)
        allw.extend(w)
        ax.loglog(w, rms, "o", color=color)
        ax.loglog(w, np.exp(fit.intercept) * w**fit.slope, "-", color=color,
                  label=f"{name}: fitted slope {fit.slope:.2f} [95% CI {fit.ci_low:.2f}, {fit.ci_high:.2f}]")
        drawn[key] = {"label": name, "width": w.tolist(), "rms": rms.tolist(), "slope": fit.slope, "ci": [fit.ci_low, fit.ci_high]}
    if allw:
        w = np.array(sorted(set(allw)))
        first = next(iter(series.values()))
        for style, (words, slope) in zip((":", "-.", "--"), refs.items()):
            ref = first.rms[0] * (w / first.widths[0]) ** slope
            ax.loglog(w, ref, "k" + style, lw=1, label=words)
            drawn.setdefault("reference", {"width": w.tolist(), "rms": ref.tolist(), "slope": float(slope), "label": words})
            drawn.setdefault("references", {})[words] = {"width": w.tolist(), "rms": ref.tolist(), "slope": float(slope)}
    width_axis(ax, allw)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    drawn["axes"] = describe(ax)
    return drawn


def depth_scaling(ax, depths, lines: dict, limit: dict | None, title: str) -> dict:
    """(d) L·η vs depth L: ``lines = {label: (L·mean, L·se)}``, ``limit = {L: L·η_∞}``."""
    drawn = {}
    for color, (label, (m, s)) in zip(_colors(len(lines)), lines.items()):
        ax.errorbar(depths, m, yerr=s, fmt="o-", color=color, capsize=3, label=label)
        drawn[label] = {"depth": list(map(int, depths)), "L_eta": list(map(float, m))}
    if limit:
        Ls = sorted(limit)
        ax.plot(Ls, [limit[L] for L in Ls], "k--", label="L·η_∞ (exact limit; constant in L at t = 1)")
        drawn["limit"] = {"depth": Ls, "L_eta": [float(limit[L]) for L in Ls]}
    ax.set_xticks(sorted({int(L) for L in depths} | set(limit or {})))
    ax.set_xlabel("depth L (number of hidden n×n layers)")
    ax.set_ylabel("L · η (depth times optimal learning rate)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    drawn["axes"] = describe(ax)
    return drawn


def sweep_overlay(ax, etas, measured: dict, predicted: dict, title: str, optima: dict | None = None) -> dict:
    """(e) sweep (actual training, markers) vs polynomial prediction (lines), per width.

    ``optima`` = {width: grid optimum η*}: the plot is focused on the region around them.
    """
    etas = np.asarray(etas, float)
    lo, hi = focus_range(list((optima or {}).values()), etas.min(), etas.max(), half_decades=1.0)
    keep = (etas >= lo * (1 - 1e-12)) & (etas <= hi * (1 + 1e-12))
    drawn, series, left = {}, [], []
    for color, n in zip(_colors(len(measured)), sorted(measured)):
        m = np.asarray(measured[n], float)
        ax.plot(etas[keep], m[keep], "o" if predicted else "o-", ms=3, lw=0.8, color=color, label=f"trained, n = {n}")
        series.append(m[keep])
        left.append(m[keep][0] if keep.any() else None)
        if n in predicted:
            ax.plot(etas[keep], np.asarray(predicted[n], float)[keep], "-", color=color, label=f"polynomial, n = {n}")
        drawn[int(n)] = {"eta": list(map(float, etas)), "measured": list(map(float, measured[n])),
                         "predicted": None if n not in predicted else list(map(float, predicted[n]))}
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    _ylim_from(ax, series, left)
    ax.set_xlabel("learning rate η (log scale)")
    ax.set_ylabel("training loss after t steps (seed mean, log scale)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    drawn["focus"] = [lo, hi]
    drawn["axes"] = describe(ax)
    return drawn


def optimum_vs_width(ax, groups: dict, title: str, *, ylabel: str = "optimal learning rate η* (log scale)") -> dict:
    """η* (seed mean ± s.e.) vs width for several settings: ``groups = {label: {width: per-seed values}}``."""
    drawn = {}
    allw = []
    for color, (label, g) in zip(_colors(len(groups)), groups.items()):
        ws = sorted(int(n) for n in g if len(g[n]))
        if not ws:
            continue
        m = [float(np.mean(g[n])) for n in ws]
        s = [float(np.std(g[n], ddof=1) / np.sqrt(len(g[n]))) if len(g[n]) > 1 else 0.0 for n in ws]
        allw += ws
        ax.errorbar(ws, m, yerr=s, fmt="o-", color=color, capsize=3, label=label)
        drawn[label] = {"width": ws, "mean": m, "se": s}
    ax.set_yscale("log")
    width_axis(ax, allw)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    drawn["axes"] = describe(ax)
    return drawn


def alignment_vs_step(axes, steps, curves: dict, layer: str, title: str) -> dict:
    """Alignment diagnostics vs step, one line per width: ``curves = {width: {metric: values per step}}``
    with the four metrics of :data:`polyloss.train.ALIGNMENT_METRICS`, one panel each, log–log axes
    (step + 1 on x). Reference slopes are not drawn: the panels compare widths at each step."""
    words = {"rel_update": "relative update |ΔW|/|W|", "rel_repr": "representation change |ΔW X|/|W X|",
             "align_w": "weight alignment α_W = |W X|/(|W||X|)", "align_dw": "update alignment α_ΔW = |ΔW X|/(|ΔW||X|)"}
    x = np.asarray(steps, float) + 1
    drawn = {}
    for ax, metric in zip(axes, words):
        for color, n in zip(_colors(len(curves)), sorted(curves)):
            v = np.asarray(curves[n][metric], float)
            ax.plot(x, v, "o-", ms=3, color=color, label=f"n = {n}")
            drawn.setdefault(metric, {})[int(n)] = [None if not np.isfinite(a) else float(a) for a in v]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step s + 1 (log scale)")
        ax.set_ylabel(words[metric] + " (log scale)", fontsize=8)
        ax.set_title(f"{metric}, layer {layer}", fontsize=9)
        ax.legend(fontsize=7, title="width")
        drawn.setdefault("axes", []).append(describe(ax))
    axes[0].figure.suptitle(title, fontsize=10)
    axes[0].figure.tight_layout()
    drawn["title"] = title
    return drawn
