"""The sweep part of a report: figure (e), trained losses over the polynomial prediction (private).

For linear + GD sweeps the prediction is exact: the same networks (n, s) (same seeds) evaluated by
the engine's stable evaluator at the sweep's learning rates, averaged over the same seeds. For
ReLU or Adam there is no polynomial; the curves are shown alone with their grid optima.
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from polyloss import plots
from polyloss.errors import PolylossError


def _param(cfg):
    from polyloss.spec import Parametrization

    p = cfg["param"]
    return Parametrization.custom(Fraction(p["alpha"]), Fraction(p["gamma"]))


def predicted_losses(run, width: int, data) -> np.ndarray:
    """Exact loss of each of the sweep's networks at width ``width`` on its η grid: (seeds, etas)."""
    from polyloss.engine import LossEngine
    from polyloss.spec import NetworkSpec
    from polyloss.weights import child_seed, sample_weights

    from polyloss.compare import run_recipe
    from polyloss.train import parse_init_gain, with_init_gain

    cfg, param = run.config, _param(run.config)
    recipe = run_recipe(cfg)
    gain = parse_init_gain(cfg.get("init_gain", "1"))[1]
    out = []
    for rec in run.by_width()[width]:
        w = sample_weights(NetworkSpec(cfg["depth"], width, data.d), param, child_seed(cfg["seed"], width, rec["sample"]))
        w = with_init_gain(w, gain, cfg.get("readout_init", "param"))
        with np.errstate(over="ignore", invalid="ignore"):
            out.append(LossEngine(w, data, param, recipe=recipe).loss_at(run.etas, cfg["steps"]))
    return np.array(out)


def sweep_section(doc, path, numbers: dict) -> None:
    from polyloss.compare import run_dataset
    from polyloss.sweep import load_sweep

    run = load_sweep(path)
    cfg = run.config
    name = os.path.basename(os.path.normpath(path))
    label = (f"L={cfg['depth']} t={cfg['steps']} {cfg['param']['name']} {cfg['activation']}+{cfg['optimizer']}"
             + (f" minibatch {cfg['batch']}" if cfg.get("batch") else "")
             + (f" init gain {cfg['init_gain']}" if cfg.get("init_gain", "1") != "1" else "")
             + (" zero readout" if cfg.get("readout_init", "param") == "zero" else "")
             + (f" norm {cfg['norm']}" if cfg.get("norm") else ""))
    from polyloss.compare import run_recipe

    doc.h(f"Sweep {label} ({path})", 3)
    recipe = run_recipe(cfg)
    doc.p(f"Training recipe: {recipe.describe()}.")
    if not run.records:
        doc.p("*No finished records.*")
        return
    data, note = None, ""
    if cfg.get("batch"):
        note = f" (minibatch SGD, B = {cfg['batch']}: no polynomial prediction)"
    elif cfg.get("norm"):
        note = f" (RMSNorm ({cfg['norm']}): no polynomial prediction)"
    elif cfg["activation"] == "linear" and cfg["optimizer"] == "gd":
        try:
            data = run_dataset(cfg)
        except PolylossError as exc:
            note = f" (no polynomial prediction: {exc})"
    measured, predicted, rows = {}, {}, []
    for n in run.widths:
        L = run.final_losses(n)
        measured[n] = np.where(np.isfinite(L).all(axis=0), L.mean(axis=0), np.nan)
        opt = run.optimum(n)
        row = {"width": n, **opt.to_dict()}
        if data is not None:
            try:
                P = predicted_losses(run, n, data)
            except PolylossError as exc:  # e.g. a recipe the engine does not support yet
                data, note = None, f" (no polynomial prediction: {exc})"
        if data is not None:
            predicted[n] = np.where(np.isfinite(P).all(axis=0), P.mean(axis=0), np.nan)
            finite = np.isfinite(predicted[n])
            if finite.any():
                row["predicted_grid_argmin"] = float(run.etas[np.nanargmin(np.where(finite, predicted[n], np.inf))])
            row["max_rel_diff_trained_vs_polynomial"] = float(np.nanmax(np.abs(measured[n] - predicted[n]) / np.abs(predicted[n])))
        rows.append(row)
    numbers.setdefault("sweeps", {})[f"{label} [{name}]"] = {"config": {**{k: cfg[k] for k in ("depth", "steps", "activation", "optimizer", "param", "seed")},
                                                                        "recipe": recipe.to_dict()},
                                                             "recipe": recipe.describe(),
                                                             "etas": run.etas.tolist(), "per_width": rows}
    from polyloss.report import _pm, _table

    doc.p(f"Grid optimum of the seed-mean final loss per width{note}:")
    doc.p(_table(["width", "seeds", "η* (grid)", "grid spacing", "per-seed η* mean ± s.e.", "polynomial η* (same grid)", "max rel. diff trained vs polynomial"],
                 [[r["width"], r["count"], f"{r['eta']:.6g}" if r["eta"] is not None else "diverged",
                   f"{r['spacing']:.3g}" if r["spacing"] is not None else "–",
                   _pm(r["seed_eta_mean"], r["seed_eta_se"]),
                   f"{r['predicted_grid_argmin']:.6g}" if "predicted_grid_argmin" in r else "–",
                   f"{r['max_rel_diff_trained_vs_polynomial']:.2g}" if "max_rel_diff_trained_vs_polynomial" in r else "–"] for r in rows]))
    fig, (ax,) = plots.new_figure()
    optima = {r["width"]: r["eta"] for r in rows if r["eta"] is not None}
    data_drawn = plots.sweep_overlay(ax, run.etas, measured, predicted, f"Trained loss vs learning rate, {label}", optima=optima)
    doc.fig(f"fig_e_sweep_{len(doc.figdata)}", fig, f"(e) trained loss (markers) vs polynomial prediction (lines) around the "
            f"grid optima, {label}", data_drawn)
    groups = {"per-seed grid argmin": {r["width"]: [e for e in r["seed_etas"] if e == e] for r in rows}}
    if any(r.get("predicted_grid_argmin") is not None for r in rows):
        groups["polynomial (same networks, same grid)"] = {r["width"]: [r["predicted_grid_argmin"]] for r in rows
                                                           if r.get("predicted_grid_argmin") is not None}
    if len(run.widths) > 1:
        fig, (ax,) = plots.new_figure()
        drawn = plots.optimum_vs_width(ax, groups, f"Optimal learning rate vs width, {label}",
                                       ylabel="η* after t steps: seed mean ± s.e. (log scale)")
        doc.fig(f"fig_e_optimum_{len(doc.figdata)}", fig, f"(e) optimal learning rate η* of the trained networks vs width "
                f"(per-seed grid argmins, mean ± s.e.; flat = transfer), {label}", drawn)
    if cfg.get("alignment"):
        _alignment_figure(doc, run, label, optima)


def _alignment_figure(doc, run, label: str, optima: dict) -> None:
    """Per width, the seed median of each alignment metric at that width's grid optimum η*, vs step, for
    the middle trained layer (all layers are in the records)."""
    cfg = run.config
    layers, steps = cfg["alignment_layers"], cfg["alignment_steps"]
    li = len(layers) // 2
    curves = {}
    for n, eta in optima.items():
        i = int(np.argmin(np.abs(run.etas - eta)))
        recs = run.by_width()[n]
        curves[n] = {m: np.nanmedian(np.array([[np.nan if v is None else v for v in r["alignment"][m][i][li]] for r in recs],
                                              dtype=float), axis=0) if recs else [] for m in cfg["alignment_metrics"]}
    if not curves:
        return
    fig, axes = plots.new_figure(ncols=4, width=4.2)
    with np.errstate(all="ignore"):
        drawn = plots.alignment_vs_step(axes, steps, curves, layers[li], f"Alignment at η*, {label}")
    doc.fig(f"fig_e_alignment_{len(doc.figdata)}", fig, f"alignment diagnostics of layer {layers[li]} vs step at each width's "
            f"grid optimum η* (seed median; μP assumes α_ΔW = Θ(1), α_W = Θ(n^-1/2)), {label}", drawn)
