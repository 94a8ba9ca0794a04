"""``polyloss derive``: the exact infinite-width limit of the t-step loss polynomial (docs/theory.md §4–§6)."""

from __future__ import annotations

import argparse
import sys

from polyloss.commands._common import add_param, add_recipe_options, positive_int
from polyloss.errors import SpecError, invalid

EPILOG = """examples:
  polyloss derive --depth 3 --steps 2                   # closed form in mu_j = (1/m) y^T Kbar^j y
  polyloss data --synthetic linear --d 10 --m 50 --seed 1 --out data.npz
  polyloss derive --depth 3 --steps 3 --data data.npz   # exact on data: coefficients, eta_inf, minima
  polyloss derive --depth 2 --steps 1 --finite          # where each power of eta comes from at t = 1
  polyloss derive --depth 3 --steps 1 --param sp        # power counting: width exponents, eta_n ~ n^-1
  polyloss derive --depth 4 --steps 3 --data data.npz --format json > d.json
  polyloss derive --depth 2 --steps 2 --data data.npz --train input,hidden,readout --weight-decay 0.1 \
      --wd-mode independent                             # a training recipe's exact limit
  polyloss derive --depth 2 --steps 1 --train input,hidden,readout --input-dim 10   # its closed form
  polyloss derive --depth 2 --steps 2 --train input,hidden,readout --weight-decay 0.1   # l2 decay x input
      # rate n: no limit in eta; prints the power counting (eta_n ~ n^-1) instead
  polyloss derive --depth 2 --steps 2 --data data.npz --train input,hidden,readout --biases all \
      --bias-lr-scales 1,1,1 --input-bias-var torch     # with biases (mup.MuSGD, base width 1, torch init)
  polyloss derive --optimizer adam --depth 3 --steps 1  # one Adam step (eps -> 0), muP: closed form
  polyloss derive --optimizer adam --depth 3 --steps 1 --data data.npz   # its coefficients and eta_inf

  Data (NPZ with X (m x d) and y (m,), or CSV) are converted exactly (each float's binary value);
  --rationalize TOL rounds each value to a decimal grid (error <= TOL); --float evaluates in
  float64 instead (fast, inexact, labelled). Minimisers are certified by real-root isolation over Q.
  JSON schema: polyloss.derivation/1 (loss_coefficients ascending in eta, exact strings).
  Limits: depth <= 64, steps <= 12, and requests whose estimated time (which grows like D_t^3,
  D_t the degree of W^(t)) exceeds 48 h (POLYLOSS_MAX_HOURS) are refused.
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
    add_recipe_options(p)
    from polyloss.commands.poly import add_optimizer_options

    add_optimizer_options(p)
    p.add_argument("--input-dim", type=positive_int("input-dim"), default=None, metavar="D",
                   help="input dimension d for a closed form (no --data) whose recipe trains the input layer: "
                        "its muP update scales with d, so the limit depends on it")
    p.add_argument("--biases", default="none", metavar="LAYERS",
                   help="trained biases (h = W h + b): none (default), all, or a subset of input,hidden,readout; they "
                        "train at their muP rates (input and hidden c*n, readout c: mup.MuSGD's vector-like and "
                        "fixed rates) with the recipe's schedule and momentum; needs --data (docs/theory.md §12)")
    p.add_argument("--bias-lr-scales", default=None, metavar="IN,HID,OUT",
                   help="the constants c of the biases' rates (default 1,1,1; mup.MuSGD with base width B: 1/B,1/B,1)")
    p.add_argument("--input-bias-var", default=None, metavar="V",
                   help="entry variance of the input bias at initialisation, trained or not: a number >= 0, or torch "
                        "(nn.Linear's U(-1/sqrt(d), 1/sqrt(d)): 1/(3d)); default 0 (zero init). The readout bias starts "
                        "at o(1) (torch's default or 0) and vanishes from the limit's initial pass")
    p.add_argument("--hidden-bias-var", default=None, metavar="V",
                   help="entry variance of every hidden bias at initialisation: a number >= 0; default 0 (torch's "
                        "U(-1/sqrt(n), 1/sqrt(n)) or zero: o(1)); mup's set_base_shapes rescales it to 1/(3*base)")
    p.set_defaults(func=run)


def biases_from_args(args, data):
    """The :class:`polyloss.recipe.Biases` of --biases/--bias-lr-scales/--input-bias-var (None: no bias)."""
    from fractions import Fraction

    from polyloss.recipe import Biases

    var = args.input_bias_var
    if var is not None and var.strip().lower() == "torch":
        if data is None:
            raise SpecError("`--input-bias-var`=torch is 1/(3d): it needs `--data` (or give the number)")
        var = Fraction(1, 3 * data.d)
    hvar = args.hidden_bias_var
    given = (args.biases.strip().lower() not in ("none", "") or args.bias_lr_scales is not None or var is not None
             or hvar is not None)
    if not given:
        return None
    b = Biases(args.biases, args.bias_lr_scales, 0 if var is None else var, 0 if hvar is None else hvar)
    if args.bias_lr_scales is not None and not b.layers:
        raise invalid("bias-lr-scales", args.bias_lr_scales, "used with --biases naming the trained biases")
    return b


def check_number(name: str, text):
    """A positive number given as decimal or fraction text, finite as a float64 (1e400 and 1e-400 are
    refused: they are not numbers a user means); returned as the stripped text (derive keeps it exact)."""
    if text is None:
        return None
    from fractions import Fraction

    valid = "a positive finite number (decimal or fraction p/q) between 1e-300 and 1e300"
    s = text.strip()
    try:
        q = Fraction(s) if s.isascii() and len(s) <= 100 else None
    except (ValueError, ZeroDivisionError):
        q = None
    if q is None or not (Fraction(1, 10**300) <= q <= 10**300):
        raise invalid(name, text, valid)
    return s


def run(args) -> int:
    from polyloss.derive import derive

    from polyloss._budget import check_derive
    from polyloss._paths import check_out_file

    if args.output is not None:
        check_out_file("output", args.output)
    from polyloss.commands._common import recipe_from_args

    from polyloss.commands.poly import optimizer_from_args

    adam = optimizer_from_args(args, args.steps)
    if adam is not None:
        return _run_adam(args, adam)
    recipe = recipe_from_args(args, args.steps)
    # derive gives the exact limit of a recipe that has one, else its power counting (polyloss.power)
    recipe = None if recipe.is_plain_for(args.param) else recipe
    window = check_number("window", args.window)
    rationalize = check_number("rationalize", args.rationalize)
    if rationalize is not None and args.data is None:
        raise SpecError("`--rationalize` rounds the data: it needs `--data`")
    data = None
    if args.data is not None:
        from polyloss.data import load_data

        data = load_data(args.data)
    biases = biases_from_args(args, data)
    check_derive(args.depth, args.steps, recipe, biases)
    d = derive(
        args.depth,
        args.steps,
        data=data,
        param=args.param,
        window=window,
        exact=not args.float_eval,
        rationalize=rationalize,
        digits=args.digits,
        finite=args.finite,
        **({} if recipe is None else {"recipe": recipe}),
        **({} if args.input_dim is None else {"input_dim": args.input_dim}),
        **({} if biases is None else {"biases": biases}),
    )
    if args.format == "json":
        text = d.to_json_str()
    elif args.format == "latex":
        text = d.to_latex(max_terms=args.max_terms)
    else:
        text = d.to_text(max_terms=args.max_terms)
    return _write(args, text)


def _write(args, text: str) -> int:
    """The result to --output, or to stdout."""
    if args.output is not None:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _run_adam(args, adam) -> int:
    """The muP limit of the loss after one Adam step with eps -> 0 (polyloss.adam.adam_limit)."""
    from polyloss.adam import adam_limit

    if adam["eps"] != 0 and args.adam_eps is not None:
        raise invalid("adam-eps", args.adam_eps, "0 (or omitted) with derive: the limit is taken with eps -> 0 "
                                                 "(a fixed eps > 0 dominates the O(1/n) muP gradients as n grows)")
    p = args.param
    if (p.alpha, p.gamma) != (2, 0):
        raise invalid("param", p.name, "mup (the first-Adam-step limit is derived for muP: V ~ N(0, 1/n^2), "
                                       "hidden Adam rate eta/n)")
    if adam["adam_exponent"] != 1:
        raise invalid("adam-exponent", args.adam_exponent, "1 (or omitted) with derive: the limit is muP's hidden "
                                                           "Adam rate eta/n")
    for flag, bad in (("window", args.window is not None), ("finite", args.finite), ("rationalize", args.rationalize),
                      ("float", args.float_eval), ("input-dim", args.input_dim is not None),
                      ("format", args.format == "latex")):
        if bad:
            raise SpecError(f"`--{flag}` is invalid with --optimizer adam (the Adam limit has text or json output, "
                            "exact moments and mpmath numbers)")
    for flag, bad in (("biases", args.biases.strip().lower() != "none"), ("bias-lr-scales", args.bias_lr_scales),
                      ("input-bias-var", args.input_bias_var), ("hidden-bias-var", args.hidden_bias_var)):
        if bad:
            raise SpecError(f"`--{flag}` is invalid with --optimizer adam: the Adam limit is derived without biases "
                            "(polyloss carries biases exactly only under SGD-type updates)")
    data = None
    if args.data is not None:
        from polyloss.data import load_data

        data = load_data(args.data)
    lim = adam_limit(args.depth, data, param=args.param, dps=max(30, args.digits + 10))
    if args.format == "json":
        import json

        text = json.dumps(lim.to_json(digits=args.digits), indent=1) + "\n"
    else:
        text = lim.to_text(digits=args.digits)
    return _write(args, text)
