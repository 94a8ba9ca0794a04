"""Shared by the benchmark scripts: BLAS thread pinning, the machine's name, median timing, output.

Imports nothing heavy at module level: :func:`pin_blas_threads` must run before numpy is imported.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads(default: str) -> None:
    """Apply ``--threads=N`` from ``sys.argv`` (or ``default``; 'default' = leave BLAS alone).
    Call before numpy is imported; the scripts also accept the option in their parsers."""
    t = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--threads=")), default)
    if t != "default":
        for var in _THREAD_VARS:
            os.environ[var] = t


def blas_threads() -> str:
    return os.environ.get("OPENBLAS_NUM_THREADS", "default")


def machine() -> str:
    """CPU model, memory and core count, e.g. 'AMD EPYC, 24 GiB, 2 cores'."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) / 2**20
        name += f", {mem:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{name}, {os.cpu_count()} cores"


def median_time(fn, repeats: int, clock=time.perf_counter) -> float:
    """Median seconds of ``fn(r)`` for r = 0..repeats-1 (``clock`` may synchronise a GPU first)."""
    ts = []
    for r in range(repeats):
        t0 = clock()
        fn(r)
        ts.append(clock() - t0)
    return statistics.median(ts)


def emit(text: str, out: str | None) -> None:
    """Print a Markdown section and append it to ``out`` (a new file gets the results header)."""
    print(text)
    if out:
        head = "" if os.path.exists(out) else (
            "# Benchmark results\n\nEach section is written by the script it names (ratios measured in one run).\n")
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(head + text)
