"""``polyloss derive``: the exact infinite-width limit of the t-step loss polynomial (docs/theory.md §4–§6)."""

from __future__ import annotations

import argparse
import sys

from polyloss.commands._common import add_param, positive_int

EPILOG = """examples:
  polyloss derive --depth 3 --steps 2                   # closed form in mu_j = (1/m) y^T Kbar^j y
  polyloss data --synthetic linear --d 10 --m 50 --seed 1 --out data.npz
  polyloss derive --depth 3 --steps 3 --data data.npz   # exact on data: coefficients, eta_inf, minima
  polyloss derive --depth 2 --steps 1 --finite          # where each power of eta comes from at t = 1
  polyloss derive --depth 3 --steps 1 --param sp        # power counting: width exponents, eta_n ~ n^-1
  polyloss derive --depth 4 --steps 3 --data data.npz --format json > d.json

  Data (NPZ with X (m x d) and y (m,), or CSV) are converted exactly (each float's binary value);
  --rationalize TOL rounds each value to a decimal grid (error <= TOL); --float evaluates in
  float64 instead (fast, inexact, labelled). Minimisers are certified by real-root isolation over Q.
  JSON schema: polyloss.derivation/1 (loss_coefficients ascending in eta, exact strings).
"""


def register(sub) -> None:
    p = sub.add_parser(
        "derive",
        help="exact infinite-width limit (closed form in the data moments, or on data)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--depth", required=True, type=positive_int("depth"), help="number of hidden layers L >= 1")
    p.add_argument("--steps", required=True, type=positive_int("steps"), help="number of full-batch GD steps t >= 1")
    p.add_argument("--data", metavar="FILE", default=None, help="NPZ (X, y) or CSV; omit for the closed form")
    add_param(p)
    p.add_argument("--window", default=None, metavar="LAMBDA",
                   help="also report the minimiser over (0, LAMBDA] (default with data: 4*mu1/(L*mu2))")
    p.add_argument("--finite", action="store_true", help="show the t = 1 finite-width expansion (phi_k over k-subsets)")
    p.add_argument("--format", choices=("text", "latex", "json"), default="text", help="output format (default text)")
    p.add_argument("--digits", type=positive_int("digits"), default=30,
                   help="significant digits of minimisers and losses (default 30)")
    p.add_argument("--rationalize", default=None, metavar="TOL",
                   help="round each datum to the decimal grid 10^-k with 10^-k/2 <= TOL instead of its exact binary value")
    p.add_argument("--float", dest="float_eval", action="store_true",
                   help="evaluate on the data in float64 (fast, inexact; for large problems)")
    p.add_argument("--max-terms", type=positive_int("max-terms"), default=400,
                   help="text/latex: stop printing coefficients after this many terms (json has all)")
    p.add_argument("--output", metavar="FILE", default=None, help="write here instead of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from polyloss.derive import derive

    data = None
    if args.data:
        from polyloss.data import load_data

        data = load_data(args.data)
    d = derive(
        args.depth,
        args.steps,
        data=data,
        param=args.param,
        window=args.window,
        exact=not args.float_eval,
        rationalize=args.rationalize,
        digits=args.digits,
        finite=args.finite,
    )
    if args.format == "json":
        text = d.to_json_str()
    elif args.format == "latex":
        text = d.to_latex(max_terms=args.max_terms)
    else:
        text = d.to_text(max_terms=args.max_terms)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0
