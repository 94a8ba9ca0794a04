"""Benchmark of ``sample`` and ``sweep`` on Dask workers (issue 13) against the serial loop; ratios from one run.

Per workload (μP, plain GD, synthetic linear data, seed 0), the whole ``api.sample`` (or ``api.sweep``)
call into a fresh run directory, three ways, alternating within each repeat:

* serial   — ``executor=None``: the loop in this process (BLAS pinned to one thread here too);
* dask-1   — ``executor=Client`` of a ``LocalCluster`` with 1 worker process: the per-record overhead of
  the Dask path (shipping tasks and records, batching, the driver writing what arrives);
* dask-2   — the same with 2 worker processes: the speed-up on this machine.

The clusters are started once, before timing (as ``--workers N`` does once per run); their start-up
(LocalCluster + Client, then close) is timed separately and added for the ``--workers 2`` column.
Medians over ``--repeats``. Records are checked identical to serial (apart from ``seconds``).

Usage: python benchmarks/bench_executor.py [--workloads small,medium,sweep-small,sweep-medium] [--repeats 3] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from _common import emit, machine, pin_blas_threads  # benchmarks/ is on sys.path

if __name__ == "__main__":
    pin_blas_threads("1")  # before numpy loads (workers get 1 thread from polyloss.executor)

import numpy as np  # noqa: E402

from polyloss import api  # noqa: E402
from polyloss.data import synthetic  # noqa: E402
from polyloss.executor import resolve_executor  # noqa: E402
from polyloss.sampling import data_seed  # noqa: E402

# name -> (depth, steps, widths, samples, d, m)
WORKLOADS = {
    "small": (2, 2, (16, 32, 64), 64, 10, 50),        # 192 cheap records (~20 ms each): batching matters
    "medium": (3, 2, (64, 128, 256, 512), 16, 20, 200),  # 64 records, 20–170 ms each
}
# name -> (depth, steps, widths, seeds, d, m, etas, activation): sweeps (μP, GD)
SWEEPS = {
    "sweep-small": (2, 3, (16, 32, 64), 96, 10, 50, "lin:0.05:3:30", "linear"),  # 288 cheap records (~5–20 ms)
    "sweep-medium": (3, 5, (64, 128, 256), 8, 20, 100, "lin:0.05:3:30", "relu"),  # 24 records, dense ReLU training
}


def run(workload, executor, out):
    if workload in SWEEPS:
        depth, steps, widths, seeds, d, m, etas, act = SWEEPS[workload]
        data = synthetic("linear", d=d, m=m, seed=data_seed(0))
        return api.sweep(out, depth=depth, widths=list(widths), etas=etas, seeds=seeds, steps=steps, activation=act,
                         data=data, progress=False, executor=executor)
    depth, steps, widths, samples, d, m = WORKLOADS[workload]
    data = synthetic("linear", d=d, m=m, seed=data_seed(0))
    return api.sample(out, depth=depth, sampling={"widths": list(widths), "samples": samples, "seed": 0},
                      training=steps, data=data, progress=False, executor=executor)


def describe(w) -> str:
    if w in SWEEPS:
        depth, steps, widths, seeds, d, m, etas, act = SWEEPS[w]
        return f"sweep {w}: L={depth} t={steps} {act} widths {','.join(map(str, widths))} × {seeds}, {etas}, d={d} m={m}"
    depth, steps, widths, samples, d, m = WORKLOADS[w]
    return f"sample {w}: L={depth} t={steps} widths {','.join(map(str, widths))} × {samples}, d={d} m={m}"


def strip(run_) -> list:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in run_.records]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="small,medium,sweep-small,sweep-medium")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1", help="BLAS threads in this process (workers: always 1)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    startup = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        with resolve_executor(2):
            pass
        startup.append(time.perf_counter() - t0)
    t_start = statistics.median(startup)

    load0 = os.getloadavg()[0]
    rows = []
    with resolve_executor(1) as one, resolve_executor(2) as two:
        for w in args.workloads.split(","):
            times = {"serial": [], "dask-1": [], "dask-2": []}
            ref = None
            for _ in range(args.repeats):
                for name, ex in (("serial", None), ("dask-1", one.client), ("dask-2", two.client)):
                    tmp = tempfile.mkdtemp()
                    t0 = time.perf_counter()
                    got = run(w, ex, tmp + "/run")
                    times[name].append(time.perf_counter() - t0)
                    shutil.rmtree(tmp)
                    if ref is None:
                        ref = strip(got)
                    elif strip(got) != ref:
                        raise SystemExit(f"{w}: {name} records differ from serial")
            med = {k: statistics.median(v) for k, v in times.items()}
            n_rec = len(ref)
            rows.append((w, n_rec, med, np.mean([r["width"] for r in ref])))
            print(w, n_rec, {k: round(v, 3) for k, v in med.items()}, flush=True)

    lines = [f"## Executor benchmark ({time.strftime('%Y-%m-%d')}, {machine()}, numpy {np.__version__}; "
             f"`sample`/`sweep` serial vs Dask LocalCluster workers, medians of {args.repeats}; "
             f"1-min load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after)", "",
             "| workload | records | serial s | dask 1 worker s | overhead per record | dask 2 workers s | speed-up "
             f"| `--workers 2` incl. start-up ({t_start:.1f} s) |",
             "|---|---|---|---|---|---|---|---|"]
    for w, n_rec, med, _ in rows:
        desc = describe(w)
        over = (med["dask-1"] - med["serial"]) / n_rec
        lines.append(f"| {desc} | {n_rec} | {med['serial']:.2f} | {med['dask-1']:.2f} | "
                     f"{1e3 * over:+.1f} ms ({100 * (med['dask-1'] / med['serial'] - 1):+.1f}%) | {med['dask-2']:.2f} | "
                     f"{med['serial'] / med['dask-2']:.2f}× | {med['serial'] / (med['dask-2'] + t_start):.2f}× |")
    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
