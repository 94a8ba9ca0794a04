"""Dense engine throughput against the machine's FP64 matrix-multiply rate (issue 6: "GPU dense at
n ≥ 8192: ≥ 50% of the card's FP64 matrix-multiply rate"); ratios from one run.

Per width n, one sampled dense network (μP, L = 3, d = 100, m = 1000, t = 2, coefficients to degree 8),
on ``--backend numpy`` (CPU, BLAS) or ``--backend cupy`` (GPU, cuBLAS):

* gemm   = the reference rate: float64 ``A @ B`` with A, B of size ``--gemm-size`` (square, default
  8192 on CuPy, 2048 on numpy: the CPU would take minutes), median of ``--repeats``;
* engine = ``LossEngine(w, data).polynomial(t, 8)`` on weights already sampled: its hidden-layer
  products (``X Wᵀ``, ``Y W``; every product the engine makes with an n×n matrix) are counted as
  2·rows·n² flops each, so *engine rate* = counted flops / engine seconds — the share of the card the
  engine turns into useful work; the rest of its work (data, readout, truncated-polynomial algebra) is
  not counted, so the rate is a lower bound;
* sampling = ``sample_weights`` (3 n×n and the small W0, V normals), reported beside: it is
  memory-bound work no matmul rate describes; *record rate* = flops / (sampling + engine).

GPU timings synchronise the device before each clock read. Usage:
  python benchmarks/bench_dense.py --backend cupy [--widths 8192,16384] [--repeats 3] [--out FILE.md]
  python benchmarks/bench_dense.py --backend numpy --widths 1024,2048,4096 --threads=1
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import blas_threads, emit, machine, median_time, pin_blas_threads  # benchmarks/ is on sys.path

if __name__ == "__main__":
    pin_blas_threads("default")  # before numpy loads (see --threads)

import numpy as np  # noqa: E402

from polyloss._backend import get_xp  # noqa: E402
from polyloss.data import linear_teacher  # noqa: E402
from polyloss.engine import LossEngine  # noqa: E402
from polyloss.spec import NetworkSpec, Parametrization  # noqa: E402
from polyloss.weights import DenseLayer, Weights, child_seed, sample_weights  # noqa: E402

L, D, M, T, DEGREE = 3, 100, 1000, 2, 8


class CountingLayer(DenseLayer):
    """A dense layer that counts the flops of its products with the n×n matrix."""

    __slots__ = ("flops",)

    def __init__(self, W):
        super().__init__(W)
        self.flops = 0

    def forward(self, X):
        self.flops += 2 * (X.size // X.shape[-1]) * self.W.shape[0] * self.W.shape[1]
        return super().forward(X)

    def backward(self, Y):
        self.flops += 2 * (Y.size // Y.shape[-1]) * self.W.shape[0] * self.W.shape[1]
        return super().backward(Y)


class CountingWeights(Weights):
    def operators(self) -> list:
        ops = [CountingLayer(W) for W in self.hidden]
        object.__setattr__(self, "_ops", ops)
        return ops

    @property
    def flops(self) -> int:
        return sum(op.flops for op in self._ops)


def timer(xp):
    if xp is np:
        return time.perf_counter

    def clock():
        xp.cuda.runtime.deviceSynchronize()
        return time.perf_counter()

    return clock


def gemm_seconds(xp, g: int, repeats: int, clock) -> float:
    """Median seconds of a float64 g×g matmul on ``xp`` (after one warm-up product)."""
    rng = np.random.default_rng(0)
    A, B = (xp.asarray(rng.standard_normal((g, g))) for _ in range(2))
    A @ B  # warm-up (cuBLAS handle, BLAS threads)
    return median_time(lambda r: A @ B, repeats, clock)


def device_name(xp) -> str:
    if xp is np:
        return machine()
    props = xp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return f"{name}, {props['totalGlobalMem'] / 2**30:.0f} GiB; CuPy {xp.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("numpy", "cupy"), default="cupy")
    ap.add_argument("--widths", default=None, help="comma-separated (default 8192,16384 on cupy; 1024,2048,4096 on numpy)")
    ap.add_argument("--gemm-size", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="default", help="BLAS threads as --threads=N (numpy only)")
    ap.add_argument("--out", default=None, help="append a Markdown section to this file")
    args = ap.parse_args()
    xp = get_xp(args.backend)
    gpu = xp is not np
    widths = [int(s) for s in (args.widths or ("8192,16384" if gpu else "1024,2048,4096")).split(",")]
    g = args.gemm_size or (8192 if gpu else 2048)
    clock = timer(xp)
    data = linear_teacher(d=D, m=M, seed=0)
    p = Parametrization.preset("mup")

    t_gemm = gemm_seconds(xp, g, args.repeats, clock)
    gemm_rate = 2 * g**3 / t_gemm
    print(f"gemm {g}: {t_gemm:.4f} s, {gemm_rate / 1e12:.3f} TFLOP/s", flush=True)

    rows = []
    for n in widths:
        net = NetworkSpec(L, n, D)
        ws = {}

        def sample(r):
            ws[r] = sample_weights(net, p, child_seed(0, n, r), xp=xp)

        t_sample = median_time(sample, args.repeats, clock)
        flops = []

        def engine(r):
            w = ws[r]
            cw = CountingWeights(w.W0, w.hidden, w.V)
            LossEngine(cw, data, p, xp=xp).polynomial(T, DEGREE)
            flops.append(cw.flops)

        engine(0)  # warm-up (kernels compile on first use)
        flops.clear()
        t_engine = median_time(engine, args.repeats, clock)
        f = statistics.median(flops)
        row = {"n": n, "sample_s": t_sample, "engine_s": t_engine, "gflop": f / 1e9,
               "engine_rate": f / t_engine, "record_rate": f / (t_sample + t_engine)}
        rows.append(row)
        ws.clear()
        print({k: round(v, 4) for k, v in row.items()}, flush=True)

    blas = f"OpenBLAS threads {blas_threads()}" if not gpu else "float64"
    lines = [
        f"\n## Dense engine vs FP64 matmul rate ({time.strftime('%Y-%m-%d')}; {args.backend}; {device_name(xp)}; "
        f"numpy {np.__version__}, {blas})\n",
        f"μP, L = {L}, d = {D}, m = {M}, t = {T}, coefficients to degree {DEGREE}; medians of {args.repeats}. "
        f"Reference: float64 {g}×{g} matmul at {gemm_rate / 1e12:.3f} TFLOP/s ({t_gemm:.4f} s). *flops* = the engine's "
        "products with the n×n hidden matrices (2·rows·n² each; the rest of its work is not counted). "
        "*engine rate* = flops / engine seconds on sampled weights; *record rate* includes sampling.\n",
        "| n | sampling s | engine s | flops (G) | engine rate (TFLOP/s) | engine / gemm | record rate / gemm |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| 2^{int(np.log2(r['n']))} | {r['sample_s']:.4f} | {r['engine_s']:.4f} | {r['gflop']:.1f} | "
                     f"{r['engine_rate'] / 1e12:.3f} | {r['engine_rate'] / gemm_rate:.0%} | "
                     f"{r['record_rate'] / gemm_rate:.0%} |")
    emit("\n".join(lines) + "\n", args.out)

if __name__ == "__main__":
    main()
