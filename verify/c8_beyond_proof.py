"""C8 — beyond the proof: ReLU and Adam, by actual training."""

import numpy as np

from polyloss.analysis import deceleration, fit_scaling
from polyloss.checks import Claim
from polyloss.claims._common import verdict

CLAIM = Claim(
    id="C8",
    title="Beyond the proof: ReLU and Adam transfer under μP, drift under SP",
    statement="With ReLU activations (GD) and with Adam (linear network), the optimal learning rate found by "
              "actual training stays put across widths under μP and drifts under SP.",
    source="Hayou (2025), experiments beyond linear networks; μP (Yang & Hu) for Adam",
    statistic="per seed, the argmin η* of the final loss after t = 1 step on a log grid, refined by a parabola "
              "in log η through the grid minimum and its neighbours (so grid quantisation cannot fake a zero-width "
              "CI); log-log slope of the seed mean of η* vs n with a 95% bootstrap CI, per setting; and whether "
              "that drift slows down: the local slopes of the narrowest and widest pairs of widths, with a 95% "
              "bootstrap CI of the change (analysis.deceleration)",
    tolerance="μP passes if the slope CI intersects [−0.15, 0.15] (no drift beyond noise); SP passes if the CI "
              "lies below −0.25 (clear drift). A setting whose argmin sits at an end of the grid for any seed is "
              "inconclusive (the optimum was not located). pass if all four settings pass; fail if an SP CI "
              "contains 0, or a μP CI lies outside [−0.3, 0.3] while the drift does not slow down (a power-law "
              "drift, the negation of the claim); a μP optimum still moving but significantly decelerating is "
              "converging to a limit not yet reached at these widths: inconclusive.",
)

SETTINGS = (("relu", "gd"), ("linear", "adam"))


def refined_argmin(etas, losses):
    """Grid argmin refined by a parabola in log η through it and its neighbours; None at the grid's ends."""
    losses = np.where(np.isfinite(losses), losses, np.inf)
    i = int(np.argmin(losses))
    if i == 0 or i == len(etas) - 1 or not np.isfinite(losses[i + 1]):
        return None
    x = np.log(etas[i - 1 : i + 2])
    c = np.polyfit(x, losses[i - 1 : i + 2], 2)
    if c[0] <= 0:
        return float(etas[i])
    return float(np.exp(np.clip(-c[1] / (2 * c[0]), x[0], x[2])))


def run(ctx):
    s = ctx.scale
    nums, ok, bad = {}, [], []
    for act, opt in SETTINGS:
        for param in ("mup", "sp"):
            sw = ctx.sweep(f"C8-{act}-{opt}-{param}", depth=s.sweep_depth, widths=s.sweep_widths, seeds=s.sweep_seeds,
                           steps=1, etas=s.sweep_etas, activation=act, optimizer=opt, param=param)
            refined = {n: [refined_argmin(sw.etas, row) for row in sw.final_losses(n)] for n in sw.widths}
            edge = {n: int(sum(e is None for e in v)) for n, v in refined.items()}
            groups = {n: np.array([e for e in v if e is not None]) for n, v in refined.items()}
            key = f"{act}+{opt} {param}"
            curve = {"eta": [float(e) for e in sw.etas],
                     "mean_loss": {n: [float(x) if np.isfinite(x) else None for x in _seed_mean(sw.final_losses(n))]
                                   for n in sw.widths}}
            seeds_eta = {n: [e for e in v] for n, v in refined.items()}
            if any(edge.values()) or any(g.size < 2 for g in groups.values()):
                nums[key] = {"slope": None, "ci": None, "argmin_at_grid_edge": edge,
                             "grid": [float(sw.etas[0]), float(sw.etas[-1])], "eta_star_seeds": seeds_eta, "curve": curve}
                ok.append(False)
                bad.append(False)
                continue
            fit = fit_scaling(groups, seed=ctx.seed)
            dec = deceleration(groups, seed=ctx.seed)
            nums[key] = {"slope": fit.slope, "ci": [fit.ci_low, fit.ci_high], "eta_star_mean": dict(zip(fit.widths, fit.rms)),
                         "argmin_at_grid_edge": edge, "deceleration": dec.to_dict(), "eta_star_seeds": seeds_eta,
                         "curve": curve}
            if param == "mup":
                ok.append(fit.ci_low <= 0.15 and fit.ci_high >= -0.15)
                bad.append((fit.ci_low > 0.3 or fit.ci_high < -0.3) and not dec.decelerating)
            else:
                ok.append(fit.ci_high < -0.25)
                bad.append(fit.ci_low <= 0 <= fit.ci_high)
    v = "pass" if all(ok) else ("fail" if any(bad) else "inconclusive")
    summary = "; ".join(_describe(k, x) for k, x in nums.items())
    return verdict(CLAIM, ctx, v, summary, nums, s.sweep_widths, s.sweep_seeds)


def _describe(key: str, x: dict) -> str:
    if x["slope"] is None:
        return f"{key}: optimum at the grid's end for some seed (not located)"
    text = f"{key}: η* ~ n^{x['slope']:.2f} [{x['ci'][0]:.2f}, {x['ci'][1]:.2f}]"
    d = x["deceleration"]
    return text + f" (local slope {d['first']:.2f} → {d['last']:.2f}{', slowing' if d['decelerating'] else ''})"


def _seed_mean(L):
    """Seed mean of the final losses per η (undefined where any seed diverged)."""
    L = np.asarray(L, dtype=float)
    return np.where(np.isfinite(L).all(axis=0), L.mean(axis=0), np.nan)


def figures(v):
    """η* vs width per setting, and the seed-mean trained loss curves around the optima per setting."""
    from polyloss import plots
    from polyloss.claims._common import by_width

    settings = {k: x for k, x in v.numbers.items() if isinstance(x, dict) and "eta_star_seeds" in x}
    if not settings:
        return []
    groups = {f"{k} (per-seed η*, mean ± s.e.)": {n: [e for e in es if e is not None] for n, es in by_width(x["eta_star_seeds"]).items()}
              for k, x in settings.items()}

    def draw_eta(axes):
        return plots.optimum_vs_width(axes[0], groups, "C8: optimal learning rate by actual training vs width")

    def draw_curves(axes):
        out = {}
        for ax, (k, x) in zip(axes, settings.items()):
            curves = {n: [np.nan if y is None else y for y in ys] for n, ys in by_width(x["curve"]["mean_loss"]).items()}
            optima = {n: float(np.mean(e)) for n, e in groups[f"{k} (per-seed η*, mean ± s.e.)"].items() if len(e)}
            out[k] = plots.sweep_overlay(ax, x["curve"]["eta"], curves, {}, f"C8: trained loss vs η, {k}", optima=optima)
        return out

    return [("", "C8: per-seed optimum η* (parabola-refined grid argmin) vs width for each setting; under μP it should "
                 "stay put, under SP drift down", 1, draw_eta),
            ("_curves", "C8: seed-mean final loss after one step vs η around the optima, per setting and width "
                        "(markers: the sweep grid)", len(settings), draw_curves)]
