"""C7 — the paper's open question: does |η_n − η_∞| converge faster beyond n ≈ 1024?

Hayou (2025) sees the rate of |η_n − η_∞| "match n^-1/2 up to width 1024 and then become much smaller".
We measure it with five protocols that a paper could have used (issue 12 part 4) and say, by a rule fixed
before the data, which of them (if any) shows a faster rate beyond 1024:

* P0 — RMS over seeds of η_n − η_∞, η_n the exact per-network minimiser in the window (the original C7);
* P1 — the same with η_n the argmin on a finite log grid (a learning-rate sweep; saturates at the spacing);
* P2 — the argmin on that grid of the seed-averaged loss curve, against η_∞ (bias only);
* P3 — RMS over seeds of η_n − the seed mean of η at the widest width (instead of the exact η_∞);
* P4 — |mean over seeds of η_n − η_∞| (the bias) instead of the RMS.

The loss curves of P1/P2 are the complete one-step loss polynomials of the sampled networks evaluated on the
grid (t = 1: the monomial form is certified, :func:`polyloss.analysis.monomial_curves`).
"""

import numpy as np

from polyloss.analysis import (PAPER_PER_DECADE, change_point, log_grid, monomial_curves, protocol_bias,
                               protocol_exact, protocol_grid, protocol_mean_curve, protocol_widest, rate_change)
from polyloss.checks import Claim
from polyloss.claims._common import eta_groups, fit_of, verdict
from polyloss.recipe import recipe_loss_degree

SPLIT = 1024
#: quick mode's C2 run stops at 1024: C7 adds these widths in a run of its own (lazy sampler, cheap); the
#: records are the same networks a single run over all widths would draw (seeds depend on (width, sample) only)
QUICK_EXTRA_WIDTHS = (2048, 4096, 8192, 16384)
FINE_PER_DECADE = 24  # a sensitivity check of the grid protocols, not part of the rule

CLAIM = Claim(
    id="C7",
    title="Faster convergence beyond n ≈ 1024? Five measurement protocols (observation)",
    statement="The paper's experiments see |η_n − η_∞| decay like n^-1/2 up to n ≈ 1024 and faster beyond, "
              "without explanation. We measure the distance with five protocols a paper could have used (P0 exact "
              "per-network η_n vs η_∞, RMS over seeds; P1 argmin on a finite log grid of η; P2 argmin of the "
              "seed-averaged loss curve on that grid; P3 distance to the widest width's η instead of η_∞; P4 the "
              "bias |mean η_n − η_∞| instead of the RMS) and say which, if any, shows the change.",
    source="Hayou (2025), experiments section (open question); issue 12 part 4",
    statistic="for each protocol, the log-log OLS slope of its per-width statistic on n ≤ 1024 and on n ≥ 1024 "
              f"(1024 in both), and their difference (after − before), with 95% stratified bootstrap CIs (seeds "
              f"resampled within each width; P3's reference resampled too). Grid: 10^(k/{PAPER_PER_DECADE}) in the "
              "run's window (P1, P2). Also the hinge change-point test of P0 (χ² drop, parametric-bootstrap p-value)",
    tolerance="fixed before the data: a protocol 'reproduces the rate change' if the 95% CI of (slope after − slope "
              "before) lies below 0 and the CI of the slope before contains −1/2; 'faster after' without the "
              "second condition, 'slower after' if the CI lies above 0, 'no change' if it contains 0. The claim "
              "is an open question, so the verdict is an observation whatever the protocols show.",
)


def _extra_widths(ctx):
    s = ctx.scale
    return QUICK_EXTRA_WIDTHS if max(s.widths) <= 2 * SPLIT else ()


def _runs(ctx, teacher):
    s = ctx.scale
    runs = [ctx.sample(f"C2-mup-{teacher}", depth=s.depth, widths=s.widths, samples=s.seeds, steps=1, param="mup",
                       teacher=teacher)]
    extra = _extra_widths(ctx)
    if extra:
        runs.append(ctx.sample(f"C7-mup-{teacher}-wide", depth=s.depth, widths=extra, samples=s.seeds, steps=1,
                               param="mup", teacher=teacher))
    return runs


def _measure(ctx, teacher, runs=None):
    """The protocols' numbers for one target; ``runs``: sample runs to read instead of ``ctx.sample``'s."""
    s = ctx.scale
    runs = _runs(ctx, teacher) if runs is None else runs
    data, _ = ctx.data(teacher)
    eta_inf = data.eta_inf_t1(s.depth)
    window = float(runs[0].config["window"])
    full_degree = recipe_loss_degree(s.depth, 1)
    g, coeffs = {}, {}
    for r in runs:
        assert r.config["degree"] == full_degree, "C7's grid protocols need the complete one-step polynomial"
        assert float(r.config["window"]) == window
        g.update(eta_groups(r))
        coeffs.update({n: np.array([x["loss_coefficients"] for x in recs]) for n, recs in r.by_width().items()})
    protocols = [protocol_exact(g, eta_inf)]
    grids = {}
    for label, per_decade in (("", PAPER_PER_DECADE), (" fine", FINE_PER_DECADE)):
        grid = log_grid(window * 1e-6, window, per_decade)
        curves = {n: monomial_curves(c, grid) for n, c in coeffs.items()}
        grids[f"per_decade{label}"] = per_decade
        p1, p2 = protocol_grid(curves, grid, eta_inf), protocol_mean_curve(curves, grid, eta_inf)
        if label:
            p1 = type(p1)(f"P1{label}", p1.words + f", {per_decade} per decade: sensitivity only", p1.groups, p1.statistic)
            p2 = type(p2)(f"P2{label}", p2.words + f", {per_decade} per decade: sensitivity only", p2.groups, p2.statistic)
        else:
            nearest = grid[np.argmin(np.abs(grid - eta_inf))]
            grids.update(points=grid.tolist(), nearest_to_eta_inf=float(nearest),
                         floor=float(abs(nearest - eta_inf)))
        protocols += [p1, p2]
    protocols += [protocol_widest(g), protocol_bias(g, eta_inf)]
    order = {"P0": 0, "P1": 1, "P2": 2, "P3": 3, "P4": 4}
    protocols.sort(key=lambda p: (order.get(p.key[:2], 9), p.key))
    results = {p.key: rate_change(p, SPLIT, seed=ctx.seed).to_dict() for p in protocols}
    cp = change_point(g, eta_inf, seed=ctx.seed, min_side=3)
    main = [k for k in results if " " not in k]
    nums = {"eta_inf": eta_inf, "window": window, "split": SPLIT, "grid": grids, "protocols": results,
            "reproduces": [k for k in main if results[k]["reproduces"]],
            "faster_after": [k for k in main if results[k]["verdict"] == "faster after"],
            "hinge_P0": cp.to_dict(), "widths": sorted(g)}
    return nums


def _words(k, r):
    b, a = r["before"], r["after"]
    return (f"{k} {b['slope']:.2f} [{b['ci'][0]:.2f}, {b['ci'][1]:.2f}] → {a['slope']:.2f} [{a['ci'][0]:.2f}, "
            f"{a['ci'][1]:.2f}], Δ {r['change']:+.2f} [{r['change_ci'][0]:+.2f}, {r['change_ci'][1]:+.2f}]: {r['verdict']}")


def run(ctx):
    s = ctx.scale
    nums, parts, widths = {}, [], set()
    for teacher in s.teachers:
        x = _measure(ctx, teacher)
        nums[teacher] = x
        widths |= set(x["widths"])
        rep = ", ".join(x["reproduces"]) or "none"
        parts.append(f"{teacher}: reproduces the change: {rep}; " + "; ".join(
            _words(k, r) for k, r in x["protocols"].items() if " " not in k)
            + f"; hinge test on P0: {x['hinge_P0']['verdict']}")
    return verdict(CLAIM, ctx, "observation", " || ".join(parts), nums, sorted(widths), s.seeds)


_PANELS = {"P0": "P0: exact η_n vs η_∞ (RMS over seeds)", "P1": "P1: argmin on the η grid vs η_∞ (RMS)",
           "P2": "P2: argmin of the seed-averaged curve vs η_∞", "P3": "P3: exact η_n vs the widest width's mean η",
           "P4": "P4: |seed mean of η_n − η_∞| (bias)"}


def figures(v):
    from polyloss import plots

    specs = []
    for teacher, x in v.numbers.items():
        if not isinstance(x, dict) or "protocols" not in x:
            continue
        res = {k: r for k, r in x["protocols"].items() if k in _PANELS}

        def draw(axes, res=res, teacher=teacher, split=x["split"]):
            out = {}
            for ax, (k, r) in zip(axes, res.items()):
                series = {f"n ≤ {split}": r["before"], f"n ≥ {split}": r["after"]}
                fits = {w: fit_of(f) for w, f in series.items() if np.isfinite(f["slope"])}
                out[k] = plots.convergence(ax, fits, f"{_PANELS[k]} ({teacher} target)",
                                           ylabel="distance to the limit (log scale)",
                                           references={"reference slope −1/2 (n^-1/2)": -0.5})
                ax.axvline(split, color="grey", lw=0.8, ls="--", label=f"split at n = {split}")
                ax.legend(fontsize=7)
                out[k]["verdict"] = r["verdict"]
                out[k]["axes"] = plots.describe(ax)
            return out

        specs.append((f"_{teacher}", f"C7 ({teacher} target): each protocol's distance to the limit vs width, fitted "
                      f"slopes before and after n = {x['split']} with 95% bootstrap CIs; dotted: slope −1/2",
                      len(res), draw))
    return specs
