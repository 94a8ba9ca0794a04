"""Plot functions: an ``ax`` in, the plotted data out (so tests check data, not pixels).

Only this module imports matplotlib, and only inside the functions (Agg backend).
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


def loss_curves(ax, etas, curves: dict, title: str, limit_curve=None) -> dict:
    """(a) mean loss vs η for each width (log η axis); ``curves = {width: (mean, se)}``."""
    etas = np.asarray(etas, dtype=float)
    keep = etas > 0
    drawn = {}
    for color, (n, (mean, se)) in zip(_colors(len(curves)), sorted(curves.items())):
        mean, se = np.asarray(mean, float)[keep], np.asarray(se, float)[keep]
        ax.plot(etas[keep], mean, color=color, label=f"n = {n}")
        ax.fill_between(etas[keep], mean - se, mean + se, color=color, alpha=0.2, linewidth=0)
        drawn[int(n)] = {"eta": etas[keep].tolist(), "loss": mean.tolist()}
    if limit_curve is not None:
        ax.plot(etas[keep], np.asarray(limit_curve, float)[keep], "k--", label="n = ∞ (exact)")
        drawn["limit"] = {"eta": etas[keep].tolist(), "loss": np.asarray(limit_curve, float)[keep].tolist()}
    ax.set_xscale("log")
    ax.set_yscale("log")
    lows = [min(v["loss"]) for v in drawn.values() if v["loss"]]
    tops = [v["loss"][0] for v in drawn.values() if v["loss"]]
    if lows and all(x > 0 for x in lows):
        ax.set_ylim(0.5 * min(lows), 3.0 * max(tops))  # divergence beyond the optimum is clipped
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("training loss after t steps")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return drawn


def eta_vs_width(ax, widths, mean, se, title: str, eta_inf=None, extra_lines: dict | None = None) -> dict:
    """(b) η_n (mean ± s.e.) vs width, with the limit's minimiser(s) as horizontal lines."""
    ax.errorbar(widths, mean, yerr=se, fmt="o-", capsize=3, label=r"$\eta_n$ (mean ± s.e.)")
    if eta_inf is not None:
        ax.axhline(eta_inf, color="k", ls="--", label=rf"$\eta_\infty$ = {eta_inf:.6g} (window minimiser of the limit)")
    for label, val in (extra_lines or {}).items():
        ax.axhline(val, color="gray", ls=":", label=f"{label} = {val:.6g}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width n")
    ax.set_ylabel(r"optimal learning rate $\eta_n$")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return {"width": list(map(int, widths)), "mean": list(map(float, mean)), "se": list(map(float, se)), "eta_inf": eta_inf}


def convergence(ax, series: dict, title: str) -> dict:
    """(c) log-log RMS deviation from the limit vs width, with fitted slopes and an n^{-1/2} guide.

    ``series = {label: RateFit}``.
    """
    drawn = {}
    allw = []
    for color, (label, fit) in zip(_colors(len(series)), series.items()):
        w, rms = np.array(fit.widths, float), np.array(fit.rms, float)
        allw.extend(w)
        ax.loglog(w, rms, "o", color=color)
        ax.loglog(w, np.exp(fit.intercept) * w**fit.slope, "-", color=color,
                  label=f"{label}: slope {fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]")
        drawn[label] = {"width": w.tolist(), "rms": rms.tolist(), "slope": fit.slope, "ci": [fit.ci_low, fit.ci_high]}
    if allw:
        w = np.array(sorted(set(allw)))
        first = next(iter(series.values()))
        ref = first.rms[0] * (w / w[0]) ** -0.5
        ax.loglog(w, ref, "k:", label="$n^{-1/2}$ reference")
        drawn["reference"] = {"width": w.tolist(), "rms": ref.tolist()}
    ax.set_xlabel("width n")
    ax.set_ylabel("RMS over seeds of |value − limit|")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return drawn


def depth_scaling(ax, depths, lines: dict, limit: dict | None, title: str) -> dict:
    """(d) L·η vs depth L: ``lines = {label: (L·mean, L·se)}``, ``limit = {L: L·η_∞}``."""
    drawn = {}
    for color, (label, (m, s)) in zip(_colors(len(lines)), lines.items()):
        ax.errorbar(depths, m, yerr=s, fmt="o-", color=color, capsize=3, label=label)
        drawn[label] = {"depth": list(map(int, depths)), "L_eta": list(map(float, m))}
    if limit:
        Ls = sorted(limit)
        ax.plot(Ls, [limit[L] for L in Ls], "k--", label="L·η_∞ (exact)")
        drawn["limit"] = {"depth": Ls, "L_eta": [float(limit[L]) for L in Ls]}
    ax.set_xlabel("depth L")
    ax.set_ylabel("L · η")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return drawn


def sweep_overlay(ax, etas, measured: dict, predicted: dict, title: str) -> dict:
    """(e) sweep (actual training, markers) vs polynomial prediction (lines), per width."""
    drawn = {}
    for color, n in zip(_colors(len(measured)), sorted(measured)):
        ax.plot(etas, measured[n], "o", ms=3, color=color, label=f"trained, n = {n}")
        if n in predicted:
            ax.plot(etas, predicted[n], "-", color=color, label=f"polynomial, n = {n}")
        drawn[int(n)] = {"eta": list(map(float, etas)), "measured": list(map(float, measured[n])),
                         "predicted": None if n not in predicted else list(map(float, predicted[n]))}
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("training loss after t steps")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return drawn
