"""Benchmark ``polyloss derive`` (exact): medians over repeats, written to RESULTS-derive.md.

Cases (the issue's targets): L = 4, t = 3 (<= 5 s) and L = 3, t = 4 (<= 30 s), each
* on data: a seeded linear teacher (d = 5, m = 8), floats converted exactly (binary value);
  the full derive: engine + certified critical points + minimisers;
* on the same data rationalised to 1e-6 (small rationals: cheap root isolation);
* the closed form in the moments (no data), where it is feasible.
Also the scalar-ring comparison python-flint vs sympy (gmpy2 ground types if set) on the engine alone.

Usage: python benchmarks/bench_derive.py [--repeats 3] [--out benchmarks/RESULTS-derive.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


RING_SNIPPET = r"""
import statistics, sys, time
from fractions import Fraction as F
from polyloss.fock import KrylovEvaluator, default_ring, run_program
from sympy.external.gmpy import GROUND_TYPES
backend, L, t, symbolic = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
mus = [F(3, 7), F(5, 11), F(7, 13), F(11, 17), F(13, 19), F(17, 23), F(19, 29), F(23, 31), F(29, 37)]
ts = []
for _ in range(3):
    t0 = time.perf_counter()
    R = default_ring(None, 2 * t + 1, backend=backend, eta_free=True) if symbolic else default_ring(mus, backend=backend)
    run_program(KrylovEvaluator(R), L, t)
    ts.append(time.perf_counter() - t0)
print(GROUND_TYPES, statistics.median(ts))
"""


def ring_compare(L, t, symbolic, backend, ground):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if ground:
        env["SYMPY_GROUND_TYPES"] = ground
    out = subprocess.run([sys.executable, "-c", RING_SNIPPET, backend, str(L), str(t), "1" if symbolic else "0"],
                         capture_output=True, text=True, env=env, timeout=900)
    if out.returncode:
        return None, out.stderr.strip().splitlines()[-1]
    gt, med = out.stdout.split()
    return float(med), gt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS-derive.md"))
    ap.add_argument("--skip-rings", action="store_true")
    args = ap.parse_args(argv)

    from polyloss.data import linear_teacher
    from polyloss.derive import closed_form, derive
    from polyloss.fock import HAS_FLINT

    ds = linear_teacher(d=5, m=8, noise=0.1, seed=3)
    rows = []
    for L, t, target in [(4, 3, 5.0), (3, 4, 30.0)]:
        med, ts = _median_time(lambda: derive(L, t, data=ds), args.repeats)
        d = derive(L, t, data=ds)
        rows.append((f"derive L={L} t={t}, data exact-binary (m=8, d=5)", med, ts, target,
                     f"degree {d.degree}, {len(d.critical_points)} critical points, eta_inf = {d.eta_inf.eta[:20]}"))
        med, ts = _median_time(lambda: derive(L, t, data=ds, rationalize="1e-6"), args.repeats)
        rows.append((f"derive L={L} t={t}, data rationalised (tol 1e-6)", med, ts, target, ""))
        med, ts = _median_time(lambda: derive(L, t, data=ds, exact=False), args.repeats)
        rows.append((f"derive L={L} t={t}, data --float (inexact)", med, ts, None, ""))
    for L, t in [(4, 3)]:
        def cf():
            closed_form.cache_clear()
            return derive(L, t)
        med, ts = _median_time(cf, args.repeats)
        rows.append((f"derive L={L} t={t}, closed form in mu_j (no data)", med, ts, 5.0,
                     f"{closed_form(L, t).n_terms} terms in the loss"))

    lines = [
        "# Benchmark: polyloss derive (exact infinite-width limit)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"python-flint {'yes' if HAS_FLINT else 'no'}. Medians of {args.repeats} runs "
        "(`python benchmarks/bench_derive.py`).",
        "",
        "| case | median (s) | runs (s) | target (s) | note |",
        "|---|---|---|---|---|",
    ]
    for name, med, ts, target, note in rows:
        tgt = f"{target:g}" if target else "-"
        lines.append(f"| {name} | {med:.3f} | {', '.join(f'{x:.2f}' for x in ts)} | {tgt} | {note} |")
    lines += [
        "",
        "The closed form for L = 3, t = 4 is not feasible in 30 s (its f alone did not finish in 300 s):",
        "with data, derive substitutes the exact moments into the same engine (identical result, tested).",
        "With exact-binary float data, most of the L = 3, t = 4 time is sympy's real-root isolation",
        "(degree 435, coefficients of ~50 000 bits); data rounded to a common decimal grid (--rationalize) cost less than half.",
    ]
    if not args.skip_rings:
        lines += ["", "## Scalar rings: python-flint vs sympy (engine only, median of 3)", "",
                  "| case | flint (s) | sympy, gmpy2 ground types (s) | sympy, python ground types (s) |", "|---|---|---|---|"]
        for L, t, sym in [(3, 3, False), (4, 3, False), (3, 4, False), (3, 3, True), (4, 3, True)]:
            cells = []
            for backend, ground in [("flint", None), ("sympy", "gmpy"), ("sympy", "python")]:
                if backend == "sympy" and ground == "python" and (sym and L >= 4 or (L, t) == (3, 4)):
                    cells.append("skipped")
                    continue
                med, gt = ring_compare(L, t, sym, backend, ground)
                cells.append(f"{med:.3f}" if med is not None else f"failed ({gt})")
            kind = "closed form" if sym else "numeric mu"
            lines.append(f"| L={L} t={t} {kind} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
