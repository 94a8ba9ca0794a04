"""``polyloss poly``: the exact loss polynomial of one given network on one data set."""

from __future__ import annotations

import argparse
import sys

from polyloss.commands._common import add_param, add_recipe_options, positive_float, positive_int

EPILOG = """example:
  polyloss data --synthetic linear --d 10 --m 50 --seed 1 --out data.npz
  polyloss data --network --depth 2 --width 64 --d 10 --param mup --seed 1 --out net.npz
  polyloss poly --data data.npz --weights net.npz --steps 2 --param mup --json > poly.json

  data.npz holds X (m x d) and y (m,); net.npz holds the effective weights W0 (n x d),
  W1..WL (n x n) and V (n,) with f(x) = V^T W_L ... W_1 W_0 x. The parametrization only sets the
  hidden learning-rate multiplier (mup/sp: 1, ntp: 1/n); its readout exponent alpha is not used with
  given weights (a warning says when V does not look like N(0, n^-alpha)). JSON schema: polyloss.poly/3
  (strict JSON: null, never NaN/Infinity; the `recipe` block records the training recipe).

  polyloss poly --data data.npz --weights net.npz --steps 2 --schedule warmup:2 --weight-decay 0.1 --wd-mode decoupled --momentum 0.5

  polyloss poly --data data.npz --weights net.npz --steps 3 --eval 0.5,1,2   # stable loss at given etas

  Coefficients: every printed coefficient comes with a certified error bound (float64 running error
  analysis; for networks small enough, a recomputation in arb ball arithmetic), and the output says
  how many leading coefficients are accurate to 1e-6 relative. Summing them at eta is still
  ill-conditioned for T >= 2: use --eval or the reported losses for values.
  Local minima: all sign changes of L'(eta) in the window are isolated rigorously when the ball
  recomputation ran ("certified"); otherwise a grid + refinement search that can miss narrow basins.
  Window: if GD diverges (overflows) inside the window - the default one or --window - the window is
  shrunk to the stable region (just below the first divergent eta, found by bisection) and the
  output says so.
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
    p.add_argument("--certify", choices=("auto", "bound", "arb"), default="auto",
                   help="coefficient certification: bound = float64 error bounds only; arb = always recompute in "
                        "ball arithmetic (slow for large n); auto (default) = arb when cheap (~10 s)")
    p.add_argument("--eval", default=None, metavar="ETAS",
                   help="also print the stable loss at these etas > 0: a comma list, lin:A:B:K or log:A:B:K")
    p.add_argument("--json", action="store_true", help="print the polyloss.poly/3 JSON document")
    add_recipe_options(p)
    p.set_defaults(func=run, _param_default=p.get_default("param"))


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def run(args) -> int:
    from polyloss._jsonsafe import dump
    from polyloss.data import load_data
    from polyloss.poly import alpha_consistent, check_eval_etas, exact_polynomial
    from polyloss.weights import load_weights
    from polyloss.commands._common import recipe_from_args

    recipe = recipe_from_args(args, args.steps)
    evals = None if args.eval is None else check_eval_etas(args.eval)
    data = load_data(args.data)
    weights = load_weights(args.weights, input_dim=data.d)
    if args.param is not getattr(args, "_param_default", None) and not alpha_consistent(args.param.alpha, weights.V):
        from polyloss.poly import observed_alpha

        print(f"warning: --param alpha={args.param.alpha} does not match the given V (|V|^2/n suggests alpha ~ "
              f"{observed_alpha(weights.V):.2f}); alpha is not used with given weights (only gamma is)", file=sys.stderr)
    res = exact_polynomial(weights, data, args.param, args.steps, args.degree, args.window,
                           certify=args.certify, eval_etas=evals, recipe=recipe)
    if args.json:
        dump(res.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    p, mn = res.polynomial, res.minimisation
    doc = res.to_json()
    acc = doc["coefficient_accuracy"]
    print(f"network: L={res.depth} n={res.width} d={res.input_dim}; data m={res.m}; param {args.param.name}; T={p.steps} steps")
    print(f"recipe: {recipe.describe()}")
    kept = f"{p.degree} (truncated; full degree {p.full_degree})" if p.truncated else f"{p.degree} (complete)"
    print(f"loss polynomial, degree kept {kept}:")
    n_acc = acc["accurate_loss_coefficients"]
    if n_acc is None:
        print("  coefficients: float64, not certified")
    else:
        print(f"  coefficients: {acc['method']}; c_0..c_{n_acc - 1} certified to relative error <= {acc['rtol']:g}"
              f" ({n_acc} of {p.degree + 1})" if n_acc else
              f"  coefficients: {acc['method']}; none certified to relative error <= {acc['rtol']:g}")
    errs = doc["loss_coefficient_errors"]
    for k, c in enumerate(doc["loss_coefficients"][:12]):
        cs = "   (outside float64)" if c is None else f"{c: .12e}"
        print(f"  c_{k:<3d} = {cs}  (error <= {_fmt(None if errs is None else errs[k])})")
    if len(p.loss) > 12:
        print(f"  ... ({len(p.loss) - 12} more; use --json)")
    if acc["monomial_error_at_eta_opt"] is not None:
        print(f"  (summing c_k eta^k at eta_opt is exact only to +- {acc['monomial_error_at_eta_opt']:.3g}: "
              "use the values below)")
    if mn.window_shrunk:
        print(f"window shrunk from (0, {mn.requested_window:.6g}] to (0, {mn.window:.6g}]: GD diverges (overflows) beyond")
    edge = "  (at the window's edge)" if mn.at_edge else ""
    print(f"eta_opt in (0, {mn.window:.6g}] = {mn.eta_opt:.15g}, loss {mn.loss_opt:.12g}{edge}")
    how = ("all sign changes of L' in the window isolated rigorously" if mn.certified else
           "grid + refinement search (not certified: may miss basins narrower than the grid)")
    print(f"local minima ({how}):")
    for lm in mn.local_minima:
        print(f"  local minimum: eta = {lm.eta:.15g}, loss = {lm.loss:.12g}{' (edge)' if lm.at_edge else ''}")
    for e, v in res.evaluations:
        print(f"loss at eta = {e:.15g}: " + (f"{v:.15g}" if v is not None else "GD diverges (overflow)"))
    return 0
