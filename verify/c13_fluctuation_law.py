"""C13 — the √n fluctuation law of η_n: exact Gaussian law at L = 1, √n scaling and normality at the paper's depth."""

import numpy as np

from polyloss.checks import Claim
from polyloss.claims._common import combine, edge_fraction, rate_numbers, verdict

CLAIM = Claim(
    id="C13",
    title="Fluctuation law: √n(η_n − η_∞) is asymptotically Gaussian with an exact variance at L = 1",
    statement="Under μP, √n(η_n − η_∞) and √n(𝓛_n(η_n) − 𝓛_∞(η_∞)) converge in law to centred Gaussians. For L = 1 "
              "their variances are known exactly (docs/theory.md §9: kernel GD with a random kernel and start, three "
              "independent Gaussian sources, delta method through 𝓛_∞'(η_∞) = 0). For the paper's depth the law is not "
              "in closed form; its consequences are tested: the SD of η_n − η_∞ falls like n^-1/2 (the √n-scaled spread "
              "is constant in n) and the scaled deviations look Gaussian at every width.",
    source="issue 12 (ours; Hayou 2025 proves only |η_n − η_∞| = O_P(n^-1/2)); docs/theory.md §9",
    statistic="L = 1 (t = 1, 2; lazily sampled networks): per width, the sample SD of √n(η_n − η_∞) and of "
              "√n(𝓛_n(η_n) − 𝓛_∞(η_∞)) with its chi-square CI, against the predicted SD. Paper's depth (the C2 run, t = 1): "
              "log-log slope of SD over seeds of η_n − η_∞ vs n with a 95% stratified bootstrap CI; per width, the "
              "Anderson–Darling test (mean and SD estimated) of both scaled quantities",
    tolerance="L = 1 part: pass if every chi-square CI, at level 1 − 0.05/k with k the number of (t, width, quantity) "
              "comparisons (Bonferroni), contains the predicted SD; fail otherwise. Depth part, per data set: pass if "
              "the SD slope CI contains −1/2 and lies below 0 and no Anderson–Darling p-value is below 0.05/k (k = "
              "widths × 2 quantities, Bonferroni); fail if the slope CI excludes −1/2 or some p-value is below 0.05/k; "
              "inconclusive if the CI contains both −1/2 and 0. Overall: fail if any part fails, else inconclusive if "
              "any is, else pass.",
)

#: the L = 1 runs: lazily sampled (n >= 2048 costs the same as n = 1448 dense), so the widest widths are cheap
L1 = {"quick": {"widths": (2048, 4096, 8192), "seeds": 48, "steps": (1, 2)},
      "full": {"widths": (2048, 4096, 8192, 16384, 32768), "seeds": 256, "steps": (1, 2, 3)}}


def _l1_part(ctx):
    from polyloss.fluctuation import fluctuation_table, l1_fluctuation_law, scaled_deviations

    cfg = L1[ctx.mode]
    data, _ = ctx.data("linear")
    k = len(cfg["steps"]) * len(cfg["widths"]) * 2
    level = 1 - 0.05 / k
    out, bad, lines = {}, [], []
    for t in cfg["steps"]:
        run_ = ctx.sample(f"C13-mup-L1-t{t}", depth=1, widths=cfg["widths"], samples=cfg["seeds"], steps=t, param="mup")
        law = l1_fluctuation_law(data, t, window=float(run_.config["window"]))
        devs = scaled_deviations(run_, law.eta_inf, law.loss_inf)
        table = fluctuation_table(devs, predicted={"eta": law.sd_eta, "loss": law.sd_loss}, level=level)
        for q in ("eta", "loss"):
            bad += [f"t={t} {q} n={n}" for n, row in table[q].items() if not row["within_ci"]]
        ratios = [table["eta"][n]["ratio"] for n in sorted(table["eta"])]
        lines.append(f"t={t}: predicted SD of √n(η_n − η_∞) {law.sd_eta:.4g}, sampled/predicted "
                     + ", ".join(f"{r:.2f}" for r in ratios) + f" at n = {', '.join(map(str, sorted(table['eta'])))}")
        out[f"t={t}"] = {"law": law.to_dict(), "table": table, "at_edge_fraction": edge_fraction(run_),
                         "samples": {n: d["eta"].tolist() for n, d in devs.items()}}
    v = "fail" if bad else "pass"
    summary = f"L=1 {v} ({'; '.join(lines)}" + (f"; outside the CI: {', '.join(bad)}" if bad else "") + ")"
    return v, {"level": level, "comparisons": k, "widths": list(cfg["widths"]), "seeds": cfg["seeds"],
               "outside_ci": bad, "verdict": v, **out}, summary


def _depth_part(ctx, teacher):
    from polyloss.compare import eval_exact, limit_for_run
    from polyloss.fluctuation import fluctuation_table, scaled_deviations, sd_rate

    s = ctx.scale
    # the C2 run itself (same name and settings): resumable and shared, so C13 adds no networks after C2
    run_ = ctx.sample(f"C2-mup-{teacher}", depth=s.depth, widths=s.widths, samples=s.seeds, steps=1, param="mup",
                      teacher=teacher)
    lim = limit_for_run(run_)
    eta_inf = float(lim.eta_window_min)
    loss_inf = eval_exact(lim.loss_coefficients, eta_inf)
    devs = scaled_deviations(run_, eta_inf, loss_inf)
    table = fluctuation_table(devs)
    k = 2 * len(devs)
    alpha = 0.05 / k
    rejected = [f"{q} n={n} (p={row['normality']['p_value']:.2g})" for q in ("eta", "loss")
                for n, row in table[q].items() if row["normality"] is not None and row["normality"]["p_value"] < alpha]
    fit = sd_rate({n: d["eta"] / np.sqrt(n) for n, d in devs.items()}, seed=ctx.seed)
    fit_loss = sd_rate({n: d["loss"] / np.sqrt(n) for n, d in devs.items()}, seed=ctx.seed)
    holds = fit.ci_low <= -0.5 <= fit.ci_high
    if not holds or rejected:
        v = "fail"
    elif fit.ci_high < 0:
        v = "pass"
    else:
        v = "inconclusive"
    sds = [table["eta"][n]["sd"] for n in sorted(table["eta"])]
    summary = (f"L={s.depth} ({teacher}): {v}, SD(η_n − η_∞) ~ n^{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}], "
               f"SD of √n(η_n − η_∞) {min(sds):.3g}–{max(sds):.3g} over n = {min(devs)}–{max(devs)}, "
               + (f"normality rejected: {', '.join(rejected)}" if rejected else
                  f"normality not rejected (smallest A–D p = "
                  f"{min(r['normality']['p_value'] for q in table for r in table[q].values()):.2g}, Bonferroni level {alpha:.2g})"))
    nums = {"depth": s.depth, "steps": 1, "eta_inf": eta_inf, "loss_inf": loss_inf, "table": table,
            "rate": rate_numbers(fit), "rate_loss": rate_numbers(fit_loss), "normality_level": alpha,
            "normality_rejected": rejected, "at_edge_fraction": edge_fraction(run_), "verdict": v,
            "samples": {n: d["eta"].tolist() for n, d in devs.items()}}
    return v, nums, summary


def run(ctx):
    s = ctx.scale
    v1, nums1, sum1 = _l1_part(ctx)
    nums, verdicts, summaries = {"L1": nums1}, [v1], [sum1]
    for teacher in s.teachers:
        v, n_, line = _depth_part(ctx, teacher)
        nums[f"depth {teacher}"] = n_
        verdicts.append(v)
        summaries.append(line)
    widths = sorted(set(s.widths) | set(L1[ctx.mode]["widths"]))
    return verdict(CLAIM, ctx, combine(verdicts), "; ".join(summaries), nums, widths, s.seeds)


def figures(v):
    from polyloss import plots
    from polyloss.claims._common import by_width, fit_of
    from polyloss.fluctuation import qq_plot

    out = []
    l1 = v.numbers.get("L1") or {}
    parts = [(k, x) for k, x in l1.items() if k.startswith("t=") and isinstance(x, dict) and "samples" in x]
    if parts:
        def draw_l1(axes):
            drawn = {}
            for ax, (key, x) in zip(axes, parts):
                drawn[key] = qq_plot(ax, {n: np.asarray(a) for n, a in by_width(x["samples"]).items()},
                                     f"C13: L = 1, {key} — √n(η_n − η_∞) against its exact law",
                                     scale=x["law"]["sd_eta"])
            return drawn

        out.append(("_l1_qq", "C13: normal QQ plots of √n(η_n − η_∞) for L = 1, divided by the predicted SD of the "
                    "exact law (docs/theory.md §9): points on the dashed line y = x follow the predicted Gaussian",
                    len(parts), draw_l1))
    depth = [(k, x) for k, x in v.numbers.items() if k.startswith("depth ") and isinstance(x, dict) and "samples" in x]
    if depth:
        def draw_depth(axes):
            drawn = {}
            for ax, (key, x) in zip(axes[:len(depth)], depth):
                drawn[key] = qq_plot(ax, {n: np.asarray(a) for n, a in by_width(x["samples"]).items()},
                                     f"C13: L = {x['depth']}, {key.split(' ', 1)[1]} target — √n(η_n − η_∞)")
            fits = {f"{k.split(' ', 1)[1]} target: SD of η_n − η_∞": fit_of(x["rate"]) for k, x in depth}
            drawn["rate"] = plots.convergence(axes[-1], fits, "C13: spread of η_n vs width",
                                              ylabel="SD over seeds of η_n − η_∞ (log scale)",
                                              references={"reference slope −1/2 (the √n law)": -0.5})
            return drawn

        out.append(("_depth", "C13: at the paper's depth, normal QQ plots of √n(η_n − η_∞) (each width standardised "
                    "by its own mean and SD) and the SD of η_n − η_∞ vs width with its fitted slope (95% CI)",
                    len(depth) + 1, draw_depth))
    return out
