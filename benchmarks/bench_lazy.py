"""Benchmark of the lazy sampler (issue 6) against dense sampling and the floor; ratios from one run.

Per width n, one sampled network (μP, L = 3, d = 100, m = 1000, t = 2, coefficients to degree 8):

* floor  = sampling the dense weights + one forward pass of the data (the least any dense method does);
* dense  = ``sample_weights`` + engine: coefficients to degree 8 (``coef``), or the whole record that
  ``polyloss sample`` writes, η_n minimisation included (``+η_n``: polynomial_for_minimisation + minimise);
* lazy   = ``sample_lazy_weights`` (reduced coordinates: the sampler ``sample`` uses for wide nets) + engine,
  the same two measurements;
* lazy-ambient (optional) = the O(n·k²) variant in Rⁿ (W0, V dense). The engine holds the data pass as
  (m × n) arrays, so ambient is limited by memory (4 of them: 33 GiB at n = 2^20, m = 1000).

Each timing is the median over ``--repeats`` networks (samples s = 0..repeats−1 of seed 0, the same for
every sampler). Dense is run up to ``--dense-max`` (three n×n float64 matrices: 6 GiB at 2^14, and
minutes per sample on 2 cores). Other work may share the CPU: compare ratios, re-run near the end.

Usage: python benchmarks/bench_lazy.py [--repeats 3] [--dense-max 8192] [--ambient-max 65536] [--threads=1]
       [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import time

from _common import emit, machine, median_time, pin_blas_threads  # benchmarks/ is on sys.path

if __name__ == "__main__":
    pin_blas_threads("1")  # before numpy loads (see --threads)

import numpy as np  # noqa: E402

from polyloss.data import linear_teacher  # noqa: E402
from polyloss.engine import LossEngine  # noqa: E402
from polyloss.lazy import sample_lazy_weights  # noqa: E402
from polyloss.poly import default_window  # noqa: E402
from polyloss.sampling import _analyse  # noqa: E402
from polyloss.spec import NetworkSpec, Parametrization  # noqa: E402
from polyloss.weights import child_seed, sample_weights  # noqa: E402

L, D, M, T, DEGREE = 3, 100, 1000, 2, 8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", default=",".join(str(2**k) for k in range(10, 21)))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dense-max", type=int, default=8192)
    ap.add_argument("--dense-repeats", type=int, default=None, help="repeats for dense (default --repeats)")
    ap.add_argument("--ambient-max", type=int, default=0, help="also time lazy in ambient coordinates up to this width")
    ap.add_argument("--threads", default="1", help="BLAS threads, as --threads=N or --threads=default (default 1: "
                    "on 2 shared cores multithreaded OpenBLAS makes small LAPACK calls ~1000x slower)")
    ap.add_argument("--out", default=None, help="append a Markdown section to this file")
    args = ap.parse_args()
    data = linear_teacher(d=D, m=M, seed=0)
    p = Parametrization.preset("mup")
    window = default_window(data, L)
    rd = args.dense_repeats or args.repeats
    rows = []
    LossEngine(sample_lazy_weights(NetworkSpec(L, 4096, D), p, child_seed(0, 1, 0)), data, p)  # warm-up (imports)
    for n in [int(s) for s in args.widths.split(",")]:
        net = NetworkSpec(L, n, D)
        row = {"n": n}

        def coef(make):
            return lambda r: LossEngine(make(r), data, p).polynomial(T, DEGREE)

        def full(make):
            return lambda r: _analyse(LossEngine(make(r), data, p), T, DEGREE, window, 96)

        def lazy_w(coords):
            return lambda r: sample_lazy_weights(net, p, child_seed(0, n, r), coords=coords, steps=T)

        row["lazy_coef"] = median_time(coef(lazy_w("reduced")), args.repeats)
        row["lazy_full"] = median_time(full(lazy_w("reduced")), args.repeats)
        if n <= args.ambient_max:
            row["amb_coef"] = median_time(coef(lazy_w("ambient")), args.repeats)
            row["amb_full"] = median_time(full(lazy_w("ambient")), args.repeats)
        if n <= args.dense_max:
            dense_w = lambda r: sample_weights(net, p, child_seed(0, n, r))  # noqa: E731

            def floor(r):
                w = dense_w(r)
                h = data.X @ w.W0.T
                for W in w.hidden:
                    h = h @ W.T
                return h @ w.V

            k = rd if n <= 8192 else 1  # one network above 2^13 (minutes each)
            row["dense_repeats"] = k
            row["floor"] = median_time(floor, k)
            row["dense_coef"] = median_time(coef(dense_w), k)
            row["dense_full"] = median_time(full(dense_w), k)
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

    def f(r, k, fmt="{:.3f}"):
        return fmt.format(r[k]) if k in r else "–"

    def ratio(r, a, b):
        return f"{r[a] / r[b]:.1f}×" if a in r and b in r else "–"

    lines = [
        f"\n## Lazy sampler benchmark ({time.strftime('%Y-%m-%d')}; {machine()}; numpy {np.__version__}, "
        f"OpenBLAS threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')})\n",
        f"μP, L = {L}, d = {D}, m = {M}, t = {T}, coefficients to degree {DEGREE}; seconds per sampled network, "
        f"medians of {args.repeats} networks (dense: {rd} up to 2^13, 1 above). *coef* = sampling + engine + coefficients; "
        "*+η_n* = the whole `polyloss sample` record (complete polynomial for screening, η_n and local minima). "
        "*floor* = dense sampling + one forward pass of the data. Lazy = reduced coordinates (what `sample` "
        f"uses for n ≥ 2048); ambient = the O(n·k²) variant in Rⁿ. Dense only up to n = {args.dense_max} "
        "(3 n×n float64 matrices; 2^14 needs 6 GiB and minutes per sample on 2 cores), ambient only up to "
        f"{args.ambient_max or '–'} (the engine keeps the data pass as m×n arrays: 33 GiB at 2^20).\n",
        "| n | lazy coef | lazy +η_n | ambient coef | ambient +η_n | floor | dense coef | dense +η_n | "
        "dense/lazy coef | dense/lazy +η_n | floor/lazy +η_n |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| 2^{int(np.log2(r['n']))} | {f(r, 'lazy_coef')} | {f(r, 'lazy_full')} | {f(r, 'amb_coef')} | "
                     f"{f(r, 'amb_full')} | {f(r, 'floor')} | {f(r, 'dense_coef')} | {f(r, 'dense_full')} | "
                     f"{ratio(r, 'dense_coef', 'lazy_coef')} | {ratio(r, 'dense_full', 'lazy_full')} | "
                     f"{ratio(r, 'floor', 'lazy_full')} |")
    emit("\n".join(lines) + "\n", args.out)

if __name__ == "__main__":
    main()
