"""Benchmark of the finite-width engine (issue: core). Prints ratios measured in one run.

* engine / floor, where floor = sampling the weights + one forward pass of the data, and the
  engine is the exact complete loss polynomial (L = 3, m = 100, d = 10, t ∈ {1, 2});
* at t = 1, the grid method users run today (for each of 180 learning rates: one GD step from the
  same initialisation, then the loss) / (engine + exact minimiser).

With ``--recipe``: instead, the cost of a training recipe (issue 11): the engine with the richest
hidden-only recipe (warmup:2 schedule, l2 weight decay 0.1, Nesterov momentum 0.9) against plain GD
at the same (L, n, t, degree), for the complete monomial polynomial and for the stable evaluator
(``taylor`` at 64 learning rates, order 2); and the same recipe with every layer trained (input,
hidden, readout at μP rates), its polynomial truncated at plain GD's degree. Plain and recipe runs
alternate within each repeat.

Usage: python benchmarks/bench_engine.py [--widths 1024,4096] [--repeats 3] [--out FILE.md] [--recipe]
Medians over repeats; the machine is noisy, so compare ratios, not seconds. The --recipe tables time
the process's CPU (run with OPENBLAS_NUM_THREADS=1, it is the engine's work, not other jobs' share of
a busy machine); the printed rows add the wall-clock medians and ratios (wall_*).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
from _common import emit  # benchmarks/ is on sys.path

from polyloss.data import linear_teacher
from polyloss.engine import LossEngine
from polyloss.gd import gd_train
from polyloss.minimize import minimise
from polyloss.poly import default_window
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.weights import sample_weights


def timed(fn, repeats):
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", default="1024,4096")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--grid-repeats", type=int, default=1)
    ap.add_argument("--out", default=None, help="append a Markdown table to this file")
    ap.add_argument("--recipe", action="store_true", help="recipe vs plain GD engine cost (issue 11) instead")
    ap.add_argument("--steps", default="1,2,3", help="with --recipe: the step counts")
    args = ap.parse_args()
    if args.recipe:
        return recipe_main(args)
    L, m, d = 3, 100, 10
    data = linear_teacher(d=d, m=m, seed=0)
    p = Parametrization.preset("mup")
    window = default_window(data, L)
    rows = []
    for n in [int(s) for s in args.widths.split(",")]:
        net = NetworkSpec(L, n, d)
        seed = np.random.SeedSequence(1)

        def floor():
            w = sample_weights(net, p, seed)
            h = data.X @ w.W0.T
            for W in w.hidden:
                h = h @ W.T
            return w, h @ w.V

        t_floor, (w, _) = timed(floor, args.repeats)
        t_sample, _ = timed(lambda: sample_weights(net, p, seed), args.repeats)
        for t in (1, 2):
            t_eng, poly = timed(lambda: LossEngine(w, data, p).polynomial(t), args.repeats)

            def engine_and_min():
                e = LossEngine(w, data, p)
                e.polynomial(t)
                return minimise(lambda x: e.taylor(x, t), window)

            t_full, mn = timed(engine_and_min, args.repeats)
            row = dict(n=n, t=t, floor=t_floor, sample=t_sample, engine=t_eng, engine_min=t_full,
                       ratio_engine_floor=t_eng / t_floor, ratio_engine_sampling_floor=(t_eng + t_sample) / t_floor,
                       eta_opt=mn.eta_opt, degree=len(poly.loss) - 1)
            if t == 1:
                etas = np.linspace(window / 180, window, 180)
                t_grid, losses = timed(lambda: np.array([gd_train(w, data, p, e, 1)[-1] for e in etas]), args.grid_repeats)
                row.update(grid=t_grid, ratio_grid_engine=t_grid / t_full, grid_eta=float(etas[np.argmin(losses)]),
                           grid_step=float(etas[1] - etas[0]))
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    lines = [
        f"\n## Engine benchmark ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores, numpy {np.__version__}; L={L}, m={m}, d={d}, medians of {args.repeats})\n",
        "| n | t | degree | floor s | engine s | engine/floor | (sampling+engine)/floor | engine+min s | grid(180 η) s | grid/(engine+min) | η_n exact | grid argmin (step) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        g = (f"{r['grid']:.2f} | {r['ratio_grid_engine']:.0f}× | {r['eta_opt']:.10f} | {r['grid_eta']:.4f} ({r['grid_step']:.4f})"
             if "grid" in r else f"– | – | {r['eta_opt']:.10f} | –")
        lines.append(f"| {r['n']} | {r['t']} | {r['degree']} | {r['floor']:.3f} | {r['engine']:.3f} | {r['ratio_engine_floor']:.2f} | "
                     f"{r['ratio_engine_sampling_floor']:.2f} | {r['engine_min']:.3f} | {g} |")
    emit("\n".join(lines) + "\n", args.out)

def recipe_main(args) -> None:
    from polyloss.recipe import Recipe, recipe_loss_degree

    L, m, d = 3, 100, 10
    data = linear_teacher(d=d, m=m, seed=0)
    p = Parametrization.preset("mup")
    rich = Recipe(schedule="warmup:2", weight_decay="0.1", wd_mode="l2", momentum="0.9", nesterov=True)
    richest = Recipe(trained="input,hidden,readout", schedule="warmup:2", weight_decay="0.1", wd_mode="l2",
                     momentum="0.9", nesterov=True)  # every layer trained: the degree grows, compared at plain's
    etas = np.linspace(0.05, 3.0, 64)
    rows = []
    for n in [int(s) for s in args.widths.split(",")]:
        w = sample_weights(NetworkSpec(L, n, d), p, np.random.SeedSequence(1))
        for t in [int(s) for s in args.steps.split(",")]:
            keys = ("plain", "recipe", "io", "plain_taylor", "recipe_taylor", "io_taylor")
            times = {k: [] for k in keys}  # process CPU time (single-threaded BLAS: the work, not other jobs' load)
            walls = {k: [] for k in keys}
            deg = {}

            def clock(key, fn):
                c0, w0 = time.process_time(), time.perf_counter()
                out = fn()
                times[key].append(time.process_time() - c0)
                walls[key].append(time.perf_counter() - w0)
                return out

            for _ in range(args.repeats):  # alternate, so that load changes hit all alike
                for key, rec in (("plain", None), ("recipe", rich), ("io", richest)):
                    K = deg.get("plain") if key == "io" else None  # the same truncation degree as plain GD
                    deg[key] = len(clock(key, lambda: LossEngine(w, data, p, recipe=rec).polynomial(t, degree=K)).loss) - 1
                    clock(key + "_taylor", lambda: LossEngine(w, data, p, recipe=rec).taylor(etas, t, order=2))
            assert deg["plain"] == deg["recipe"] == deg["io"]
            med = {k: statistics.median(v) for k, v in times.items()}
            med.update({"wall_" + k: statistics.median(v) for k, v in walls.items()})
            row = dict(n=n, t=t, degree=deg["plain"], **med, ratio=med["recipe"] / med["plain"],
                       ratio_taylor=med["recipe_taylor"] / med["plain_taylor"], ratio_io=med["io"] / med["plain"],
                       ratio_io_taylor=med["io_taylor"] / med["plain_taylor"],
                       wall_ratio_io=med["wall_io"] / med["wall_plain"],
                       wall_ratio_io_taylor=med["wall_io_taylor"] / med["wall_plain_taylor"],
                       io_full=recipe_loss_degree(L, t, richest))
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    lines = [
        f"\n## Engine recipe benchmark ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores, numpy {np.__version__}; L={L}, m={m}, d={d}, μP, medians of "
        f"{args.repeats} of the process CPU time, plain and recipe alternating in one run)\n",
        f"Recipe: {rich.describe()}. *polynomial*: complete monomial coefficients; *taylor*: stable "
        f"evaluator at {len(etas)} learning rates, order 2.\n",
        "| n | t | degree | plain polynomial s | recipe polynomial s | recipe/plain | plain taylor s | recipe taylor s | recipe/plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['n']} | {r['t']} | {r['degree']} | {r['plain']:.3f} | {r['recipe']:.3f} | {r['ratio']:.2f}× | "
                     f"{r['plain_taylor']:.3f} | {r['recipe_taylor']:.3f} | {r['ratio_taylor']:.2f}× |")
    lines += [
        f"\nAll layers trained ({richest.describe()}; μP rates λ_in = n, λ = 1, λ_V = 1/n), same run: the "
        f"polynomial truncated at plain GD's degree (its complete degree is larger), taylor as above.\n",
        "| n | t | degree (complete) | plain polynomial s | all-layers polynomial s | all/plain | plain taylor s | "
        "all-layers taylor s | all/plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['n']} | {r['t']} | {r['degree']} ({r['io_full']}) | {r['plain']:.3f} | {r['io']:.3f} | "
                     f"{r['ratio_io']:.2f}× | {r['plain_taylor']:.3f} | {r['io_taylor']:.3f} | {r['ratio_io_taylor']:.2f}× |")
    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
