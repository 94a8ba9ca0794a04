"""Benchmark of the transfer gaps (issue 12 part 1: "the gaps add ≤ 10% to a sample run's time").

The gaps are computed in ``compare``/``report`` from a run's records and the one exact derivation of
the limit (:mod:`polyloss.gaps`), so their cost is ``compare(run, gaps=True)`` − ``compare(run,
gaps=False)``. For each setting this script makes a μP ``sample`` run (timed), then times compare
without and with gaps, alternating within each repeat, and reports the medians, compare's ratio,
and the gaps' cost as a fraction of the sample run's time.

Times are the process CPU time (the 2-core machine is shared with other jobs; with single-threaded
BLAS the CPU time is this process's own work); wall-clock medians are printed too.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_gaps.py [--settings 2:1,2:2] [--widths 64,128,256,512,1024]
       [--samples 32] [--repeats 5] [--dir /tmp/bench_gaps] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time

import numpy as np
from _common import emit, machine  # benchmarks/ is on sys.path

from polyloss.cli import main as cli
from polyloss.compare import compare


def _times(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c0, time.perf_counter() - w0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default="2:1,2:2", help="depth:steps pairs")
    ap.add_argument("--widths", default="64,128,256,512,1024")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--dir", default="/tmp/bench_gaps")
    ap.add_argument("--out", default=None, help="append a Markdown section to this file")
    args = ap.parse_args()
    rows = []
    for setting in args.settings.split(","):
        L, t = (int(x) for x in setting.split(":"))
        out = os.path.join(args.dir, f"L{L}t{t}")
        if os.path.exists(out):
            raise SystemExit(f"{out} exists: give a fresh --dir")
        cmd = ["sample", "--depth", str(L), "--steps", str(t), "--widths", args.widths, "--samples", str(args.samples),
               "--d", str(args.d), "--m", str(args.m), "--quiet", "--out", out]
        s_cpu, s_wall, rc = _times(lambda: cli(cmd))
        assert rc == 0
        without, with_, w_without, w_with = [], [], [], []
        verdict = None
        for _ in range(args.repeats):
            c, w, _r = _times(lambda: compare(out, gaps=False))
            without.append(c)
            w_without.append(w)
            c, w, res = _times(lambda: compare(out, gaps=True))
            with_.append(c)
            w_with.append(w)
            verdict = res.gaps["window"].verdicts
        med = statistics.median
        a, b = med(without), med(with_)
        rows.append((L, t, s_cpu, s_wall, a, b, b / a, (b - a) / s_cpu, med(w_without), med(w_with), verdict))
        print(rows[-1], flush=True)
    n_rec = len(args.widths.split(",")) * args.samples
    lines = [f"\n## Transfer-gap benchmark ({datetime.date.today().isoformat()}, {machine()}, numpy {np.__version__}; "
             f"μP, widths {args.widths}, {args.samples} networks each ({n_rec} records), d = {args.d}, m = {args.m}; "
             f"process CPU seconds, medians of {args.repeats}, with and without gaps alternating)\n",
             "| L | t | sample run s | compare without gaps s | compare with gaps s | with/without | gaps / sample run | "
             "wall: without s | wall: with s | verdict (window; means, medians) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for L, t, s_cpu, s_wall, a, b, r, frac, wa, wb, v in rows:
        lines.append(f"| {L} | {t} | {s_cpu:.1f} | {a:.2f} | {b:.2f} | {r:.2f}× | {100 * frac:.1f}% | {wa:.2f} | {wb:.2f} | "
                     f"{v['overall']} ({v['means']}, {v['medians']}) |")
    lines.append(f"\nCommand: `OPENBLAS_NUM_THREADS=1 python benchmarks/bench_gaps.py --settings {args.settings} --widths "
                 f"{args.widths} --samples {args.samples} --repeats {args.repeats}`.\n")
    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
