"""``polyloss report``: convergence-rate report (HTML, Markdown, PNG, JSON) from sample/sweep runs."""

from __future__ import annotations

import argparse
import sys

from polyloss.commands._common import positive_int

EPILOG = """example:
  polyloss sample --depth 2 --widths 64,128,256,512 --samples 16 --steps 1 --d 10 --m 50 --out runs/mup
  polyloss sample --depth 2 --widths 64,128,256,512 --samples 16 --steps 1 --d 10 --m 50 --param sp --out runs/sp
  polyloss report runs/mup runs/sp --out results/report     # open results/report/report.html

  Figures: (a) loss vs eta across widths, muP and SP side by side; (b) eta_n vs width with eta_inf;
  (c) log-log convergence with fitted slopes and bootstrap CIs; (d) L*eta across depths;
  (e) sweep curves over polynomial predictions. report.json holds every number shown.
"""


def register(sub) -> None:
    p = sub.add_parser("report", help="convergence report with plots from sample/sweep runs",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="directories written by `polyloss sample` or `polyloss sweep`")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--derivation", default="auto", metavar="FILE|auto", help="exact limit for muP runs (default: derive now)")
    p.add_argument("--coeffs", type=positive_int("coeffs", 1, 10_000), default=4, help="report c_0..c_{COEFFS-1} (default 4)")
    p.set_defaults(func=run)


def run(args) -> int:
    from polyloss.report import report

    rep = report(args.runs, args.out, derivation=args.derivation, n_coeffs=args.coeffs)
    for key, entry in rep.numbers.get("runs", {}).items():
        if "compare_error" in entry:  # said in the report too; a user reading the terminal must see it
            print(f"polyloss report: note: run {key}: no comparison with the exact limit: {entry['compare_error']}",
                  file=sys.stderr)
    print(f"wrote {len(rep.files)} files to {rep.out_dir}: report.html, report.md, report.json and {len(rep.figures)} figures")
    return 0
