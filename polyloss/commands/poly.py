"""``polyloss poly``: the exact loss polynomial of one given network on one data set."""

from __future__ import annotations

import argparse
import json
import sys

from polyloss.commands._common import add_param, positive_float, positive_int

EPILOG = """example:
  polyloss data --synthetic linear --d 10 --m 50 --seed 1 --out data.npz
  polyloss data --network --depth 2 --width 64 --d 10 --param mup --seed 1 --out net.npz
  polyloss poly --data data.npz --weights net.npz --steps 2 --param mup --json > poly.json

  data.npz holds X (m x d) and y (m,); net.npz holds the effective weights W0 (n x d),
  W1..WL (n x n) and V (n,) with f(x) = V^T W_L ... W_1 W_0 x. The parametrization only sets the
  hidden learning-rate multiplier (mup/sp: 1, ntp: 1/n). JSON schema: polyloss.poly/1.
"""


def register(sub) -> None:
    p = sub.add_parser("poly", help="exact loss polynomial in eta of one given network",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="FILE", help="NPZ (X, y) or CSV (x_1..x_d, y)")
    p.add_argument("--weights", required=True, metavar="FILE", help="NPZ with W0, W1..WL, V")
    p.add_argument("--steps", required=True, type=positive_int("steps"), help="number of full-batch GD steps T >= 1")
    add_param(p)
    p.add_argument("--window", type=positive_float("window"), default=None,
                   help="search eta_n in (0, WINDOW] (default 4*mu_1/(L*mu_2))")
    p.add_argument("--degree", type=positive_int("degree", 0), default=None,
                   help="keep coefficients up to this power of eta (default: all; exact up to K)")
    p.add_argument("--json", action="store_true", help="print the polyloss.poly/1 JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    from polyloss.data import load_data
    from polyloss.poly import exact_polynomial
    from polyloss.weights import load_weights

    data = load_data(args.data)
    weights = load_weights(args.weights, input_dim=data.d)
    res = exact_polynomial(weights, data, args.param, args.steps, args.degree, args.window)
    if args.json:
        json.dump(res.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    p, mn = res.polynomial, res.minimisation
    print(f"network: L={res.depth} n={res.width} d={res.input_dim}; data m={res.m}; param {args.param.name}; T={p.steps} steps")
    kept = f"{p.degree} (truncated; full degree {p.full_degree})" if p.truncated else f"{p.degree} (complete)"
    print(f"loss polynomial, degree kept {kept}:")
    for k, c in enumerate(p.loss[: min(len(p.loss), 12)]):
        print(f"  c_{k:<3d} = {c: .12e}")
    if len(p.loss) > 12:
        print(f"  ... ({len(p.loss) - 12} more; use --json)")
    edge = "  (at the window's edge)" if mn.at_edge else ""
    print(f"eta_opt in (0, {mn.window:.6g}] = {mn.eta_opt:.15g}, loss {mn.loss_opt:.12g}{edge}")
    for lm in mn.local_minima:
        print(f"  local minimum: eta = {lm.eta:.15g}, loss = {lm.loss:.12g}{' (edge)' if lm.at_edge else ''}")
    return 0
