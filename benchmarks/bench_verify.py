"""Wall time of ``polyloss verify`` on Dask workers, per claim, and its projection to bigger clusters (issue 13).

Runs the claims one after another, as ``polyloss verify --workers W`` does (one LocalCluster serves every
claim), into ``--out`` (resumable: rerun the same command after a kill; claims whose timing is already in
``OUT/bench-verify.json`` are not rerun). Per claim it records

* ``wall``: the claim's wall time with W workers (driver included: fits, bootstraps, figures);
* the records the claim added to its sample / sweep / network runs (runs a claim only reads, such as
  C7 reading C2's, add none) and their compute times ``seconds`` as measured on the workers;
* ``driver = max(0, wall − Σ seconds / W)``: the part that does not spread over workers (analysis,
  scheduling, idle workers at the end of a run).

Projection to P workers: ``driver + max(Σ seconds / P, longest piece)`` — perfect spreading of the
records (a sweep record's grid can be cut down to single learning rates, any other record is one
piece), the driver unchanged, no batching or transfer overhead beyond what W workers showed. It is a
model from this run's measured costs, printed as such, not a measurement.

Usage: python benchmarks/bench_verify.py [--mode full] [--claims all] [--workers auto] [--out DIR]
       [--project 16,64] [--results FILE.md]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from _common import emit, machine, pin_blas_threads  # benchmarks/ is on sys.path

if __name__ == "__main__":
    pin_blas_threads("1")  # the driver's analysis must not compete with the workers for cores

from polyloss.checks import parse_claims, run_claims  # noqa: E402
from polyloss.executor import resolve_executor  # noqa: E402


def snapshot(out_dir: str) -> dict:
    """{run name: {(width, sample, steps): (seconds, smallest piece)}} of every run under ``out_dir/runs``;
    a sweep record can be cut down to one learning rate (``sweep`` splits grids over workers), any other
    record is indivisible."""
    runs = os.path.join(out_dir, "runs")
    snap = {}
    if not os.path.isdir(runs):
        return snap
    for name in sorted(os.listdir(runs)):
        path = os.path.join(runs, name, "records.jsonl")
        if not os.path.isfile(path):
            continue
        recs, pieces = {}, 1
        try:
            with open(os.path.join(runs, name, "run.json")) as fh:
                cfg = json.load(fh)
            if str(cfg.get("schema", "")).startswith("polyloss.sweep/"):
                pieces = len(cfg["etas"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        with open(path) as fh:
            for line in fh:
                try:
                    r = json.loads(line)
                except ValueError:  # a torn last line of a killed run
                    continue
                sec = float(r.get("seconds") or 0.0)
                recs[(r.get("width"), r.get("sample"), r.get("steps"))] = (sec, sec / pieces)
        snap[name] = recs
    return snap


def added(before: dict, after: dict) -> list:
    return [sec for name, recs in after.items() for key, sec in recs.items() if key not in before.get(name, {})]


def project(row: dict, workers: int) -> float:
    return row["driver"] + max(row["record_seconds"] / workers, row["longest_piece"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="full", choices=("quick", "full"))
    ap.add_argument("--claims", default="all")
    ap.add_argument("--workers", default="auto")
    ap.add_argument("--out", default="results/bench-verify")
    ap.add_argument("--project", default="16,64")
    ap.add_argument("--threads", default="1", help="BLAS threads in the driver (workers: always 1)")
    ap.add_argument("--results", default=None, help="append the table to this markdown file")
    args = ap.parse_args()
    ids = parse_claims(args.claims)
    targets = [int(p) for p in args.project.split(",")]
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "bench-verify.json")
    rows = json.load(open(log_path)) if os.path.exists(log_path) else {}
    load0 = os.getloadavg()[0]
    with resolve_executor(args.workers) as ex:
        W = ex.workers
        for cid in ids:
            if cid in rows:
                print(f"{cid}: timed earlier ({rows[cid]['wall']:.1f} s)", flush=True)
                continue
            before = snapshot(args.out)
            t0 = time.perf_counter()
            (v,) = run_claims([cid], args.mode, args.out, resume=True, progress=False, write_report=False,
                              executor=ex.client if hasattr(ex, "client") else None)
            wall = time.perf_counter() - t0
            new = added(before, snapshot(args.out))
            secs = [a for a, _ in new]
            total = sum(secs)
            rows[cid] = {"wall": wall, "records": len(secs), "record_seconds": total,
                         "longest_record": max(secs, default=0.0), "longest_piece": max((b for _, b in new), default=0.0),
                         "driver": max(0.0, wall - total / W),
                         "workers": W, "verdict": v.verdict, "load_before": os.getloadavg()[0]}
            with open(log_path + ".tmp", "w") as fh:
                json.dump(rows, fh, indent=1)
            os.replace(log_path + ".tmp", log_path)
            print(f"{cid}: {v.verdict} {wall:.1f} s wall, {len(secs)} records, {total:.1f} s on workers", flush=True)

    done = [c for c in ids if c in rows]
    W = rows[done[0]]["workers"] if done else 0
    head = ["claim", "verdict", f"wall, {W} workers (s)", "records", "Σ record s", "longest record s", "driver s"]
    head += [f"projected {p} workers (s)" for p in targets]
    lines = [f"## verify --{args.mode} on {W} local Dask workers ({time.strftime('%Y-%m-%d')}, {machine()}; "
             f"1-min load average {load0:.1f} at the start)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    tot = {k: 0.0 for k in ("wall", "records", "record_seconds", "driver")}
    for c in done:
        r = rows[c]
        for k in tot:
            tot[k] += r[k]
        lines.append(f"| {c} | {r['verdict']} | {r['wall']:.1f} | {r['records']} | {r['record_seconds']:.1f} | "
                     f"{r['longest_record']:.2f} | {r['driver']:.1f} | "
                     + " | ".join(f"{project(r, p):.1f}" for p in targets) + " |")
    if done:
        lines.append(f"| all ({len(done)}) | | {tot['wall']:.1f} | {int(tot['records'])} | {tot['record_seconds']:.1f} | | "
                     f"{tot['driver']:.1f} | " + " | ".join(f"{sum(project(rows[c], p) for c in done):.1f}" for p in targets)
                     + " |")
    lines += ["", "Projection: driver + max(Σ record seconds / P, longest piece: a record, or one learning rate of a "
              "sweep record), from this run's measured costs (a model, not a measurement)."]
    emit("\n".join(lines) + "\n", args.results)


if __name__ == "__main__":
    main()
