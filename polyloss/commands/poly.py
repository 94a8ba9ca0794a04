"""``polyloss poly``: the exact loss polynomial of one given network on one data set."""

from __future__ import annotations

import argparse
import sys

from polyloss.commands._common import add_model_options, add_param, add_recipe_options, positive_float, positive_int

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

  --model FILE instead of --weights: a PyTorch/mup MLP's state_dict (.safetensors or .npz), every layer
  trained as its optimizer trains it, eta = that optimizer's lr (--loss mse: nn.MSELoss); worked
  example in docs/interop.md.

  polyloss poly --data data.npz --weights net.npz --steps 1 --optimizer adam --adam-eps 0
      # the loss after one Adam step (eps = 0: sign descent), an exact polynomial of degree 2L;
      # hidden Adam rate eta*n^-K (K: muP 1, sp 0, ntp 1/2, or --adam-exponent), steps must be 1.
      # Default window 4*eta_inf of the muP Adam limit (polyloss derive --optimizer adam).

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
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="NPZ with W0, W1..WL, V (effective weights; or --model: a PyTorch/mup state_dict)")
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
    add_optimizer_options(p)
    add_model_options(p)
    p.set_defaults(func=run, _param_default=p.get_default("param"))


def _eps(text: str) -> float:
    from polyloss.commands._common import positive_float

    return positive_float("adam-eps", allow_zero=True)(text)


def add_optimizer_options(p) -> None:
    """--optimizer gd|adam, --adam-eps, --adam-exponent (shared by poly, sample and derive)."""
    g = p.add_argument_group("optimizer (adam: the exact first Adam step, --steps 1 only)")
    g.add_argument("--optimizer", choices=("gd", "adam"), default="gd",
                   help="gd (default), or adam: one bias-corrected Adam step from zero state, update "
                        "lr*g/(|g|+eps) (sweep's Adam; eps = 0 is sign descent)")
    g.add_argument("--adam-eps", type=_eps, default=None, metavar="EPS",
                   help="Adam epsilon >= 0 (default 1e-8, as sweep; 0 = sign descent)")
    g.add_argument("--adam-exponent", default=None, metavar="K",
                   help="hidden Adam rate eta*n^-K (default by --param: mup 1, sp 0, ntp 1/2; required for A,G)")


def optimizer_from_args(args, steps) -> dict | None:
    """None for GD; for Adam {eps, adam_exponent}, with one-line errors for what adam cannot do."""
    from polyloss.errors import SpecError, invalid

    if args.optimizer == "gd":
        for flag, value in (("adam-eps", args.adam_eps), ("adam-exponent", args.adam_exponent)):
            if value is not None:
                raise SpecError(f"`--{flag}`={value!r} is invalid with --optimizer gd: give --optimizer adam")
        return None
    from polyloss.adam import DEFAULT_ADAM_EPS, adam_exponent_checked

    if steps != 1:
        raise invalid("steps", steps, "1 with --optimizer adam (only the first Adam step is an exact polynomial)")
    from polyloss.commands._common import recipe_from_args

    recipe = recipe_from_args(args, 1)
    if not recipe.is_plain_for(args.param):
        raise SpecError(f"the training recipe ({recipe.describe()}) is invalid with --optimizer adam: the first Adam "
                        "step is implemented for the plain recipe (hidden layers only)")
    exponent = adam_exponent_checked(args.param, args.adam_exponent)
    return {"eps": DEFAULT_ADAM_EPS if args.adam_eps is None else args.adam_eps, "adam_exponent": exponent}


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def run(args) -> int:
    from polyloss._jsonsafe import dump
    from polyloss.commands._common import model_from_args, model_recipe, recipe_from_args
    from polyloss.data import load_data
    from polyloss.errors import SpecError
    from polyloss.interop import loss_convention, poly_doc_in_user_units
    from polyloss.poly import alpha_consistent, check_eval_etas, exact_polynomial
    from polyloss.weights import load_weights

    if (args.weights is None) == (args.model is None):
        raise SpecError("give exactly one of --weights FILE (effective weights, NPZ) and --model FILE (a PyTorch/mup "
                        "state_dict)" + (", not both" if args.weights is not None else ""))
    adam = optimizer_from_args(args, args.steps)
    conv = loss_convention(args.loss, "adam" if adam is not None else "gd")
    if adam is not None and (args.model is not None or conv.loss != "half-mse"):
        raise SpecError("`--optimizer adam` is invalid with --model or --loss mse: the exact first Adam step covers "
                        "the hidden layers of effective weights; train a muadam model with polyloss sweep")
    evals = None if args.eval is None else check_eval_etas(args.eval)
    recipe = recipe_from_args(args, args.steps)  # every flag checked before any file is read
    data = load_data(args.data)
    model = model_from_args(args, data.d)
    if model is not None:
        if model.adam:
            raise SpecError("`--model-optimizer muadam` is invalid with polyloss poly: its polynomial is GD's; "
                            "Adam-trained models are swept by polyloss sweep --model")
        weights = model.weights
        recipe = model_recipe(args, model, args.steps)
    else:
        weights = load_weights(args.weights, input_dim=data.d)
    if (model is None and args.param is not getattr(args, "_param_default", None)
            and not alpha_consistent(args.param.alpha, weights.V)):
        from polyloss.poly import observed_alpha

        print(f"warning: --param alpha={args.param.alpha} does not match the given V (|V|^2/n suggests alpha ~ "
              f"{observed_alpha(weights.V):.2f}); alpha is not used with given weights (only gamma is)", file=sys.stderr)
    if adam is not None:
        return _run_adam(args, weights, data, evals, adam)
    a = conv.eta_factor
    internal = conv.internal_recipe(recipe)
    window = None if args.window is None else args.window * a
    net, dat, channel, bias_notes = weights, data, False, ()
    if model is not None and model.biases is not None:  # biases on a constant channel
        from polyloss.interop import augmented_network
        from polyloss.poly import default_window

        aug = augmented_network(model, data, internal)
        if aug is not None:
            window = default_window(data, weights.depth, internal, args.param) if window is None else window
            net, dat, internal, bias_notes = aug
            channel = True
    res = exact_polynomial(net, dat, args.param, args.steps, args.degree, window, certify=args.certify,
                           eval_etas=None if evals is None else evals * a, recipe=internal, channel=channel)
    doc = poly_doc_in_user_units(res.to_json(), conv) if (model is not None or conv.loss != "half-mse") else res.to_json()
    if channel:  # the user's network, not its augmented form
        doc["width"], doc["input_dim"], doc["observed_alpha"] = weights.width, weights.input_dim, None
    if model is not None:
        doc["recipe"] = recipe.to_dict()  # the user's recipe (the weight decay they gave)
        doc["model"] = {"source": str(args.model), "optimizer": model.optimizer, "base_width": model.base_width,
                        "output_mult": str(model.output_mult), "layout": {"input": model.layout.input,
                        "hidden": list(model.layout.hidden), "readout": model.layout.readout},
                        "mapping": list(model.notes) + list(bias_notes)}
    if args.json:
        dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    p = res.polynomial
    acc = doc["coefficient_accuracy"]
    print(f"network: L={res.depth} n={weights.width} d={weights.input_dim}; data m={res.m}; "
          + (f"model {args.model} ({model.optimizer})" if model is not None else f"param {args.param.name}")
          + f"; T={p.steps} steps")
    if model is not None:
        for note in model.notes + bias_notes:
            print(f"  mapped: {note}")
    print(f"recipe: {recipe.describe()}")
    lr = "eta"
    if "convention" in doc and doc["convention"]["loss"] == "mse":
        lr = "lr"
        print("loss: nn.MSELoss = (1/m) sum (f - y)^2; lr: torch's (GD at lr = polyloss's GD at eta = 2 lr"
              + (", weight decay w acting as w/2" if recipe.weight_decay and recipe.wd_mode != "independent" else "")
              + ")")
    kept = f"{p.degree} (truncated; full degree {p.full_degree})" if p.truncated else f"{p.degree} (complete)"
    print(f"loss polynomial in {lr}, degree kept {kept}:")
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
        print(f"  (summing c_k {lr}^k at {lr}_opt is exact only to +- {acc['monomial_error_at_eta_opt']:.3g}: "
              "use the values below)")
    if doc["requested_window"] is not None:
        print(f"window shrunk from (0, {doc['requested_window']:.6g}] to (0, {doc['window']:.6g}]: GD diverges "
              "(overflows) beyond")
    edge = "  (at the window's edge)" if doc["at_edge"] else ""
    print(f"{lr}_opt in (0, {doc['window']:.6g}] = {doc['eta_opt']:.15g}, loss {doc['loss_at_eta_opt']:.12g}{edge}")
    how = ("all sign changes of L' in the window isolated rigorously" if doc["minima_certified"] else
           "grid + refinement search (not certified: may miss basins narrower than the grid)")
    print(f"local minima ({how}):")
    for lm in doc["local_minima"]:
        print(f"  local minimum: {lr} = {lm['eta']:.15g}, loss = {lm['loss']:.12g}{' (edge)' if lm['at_edge'] else ''}")
    for e in doc["eval"]:
        print(f"loss at {lr} = {e['eta']:.15g}: " + (f"{e['loss']:.15g}" if e["loss"] is not None else
                                                      "GD diverges (overflow)"))
    return 0


def _run_adam(args, weights, data, evals, adam) -> int:
    from polyloss._jsonsafe import dump
    from polyloss.adam import adam_polynomial

    if args.degree is not None or args.certify != "auto":
        from polyloss.errors import SpecError

        raise SpecError("`--degree` and `--certify` are invalid with --optimizer adam (its polynomial has degree 2L, "
                        "computed completely in float64)")
    res = adam_polynomial(weights, data, args.param, eps=adam["eps"], adam_exponent=adam["adam_exponent"],
                          window=args.window, eval_etas=evals)
    doc = res.to_json()
    if args.json:
        dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    st, mn = res.step, res.minimisation
    print(f"network: L={st.depth} n={st.width} d={data.d}; data m={data.m}; param {args.param.name}; one Adam step")
    print(f"optimizer: adam, eps = {st.eps:g}, hidden rate eta*n^-{st.exponent} (= eta*{st.multiplier:.6g}); "
          f"{st.route} route")
    if st.eps > 0:
        print(f"eps vs |gradient entries|: max eps/|g_ij| = {st.eps_ratio_max:.3g}, median {st.eps_ratio_median:.3g}; "
              f"max relative change of a coefficient vs eps = 0: {st.eps_coefficient_change:.3g}")
    print(f"loss polynomial, degree {st.degree} (complete):")
    for k, c in enumerate(st.loss):
        print(f"  c_{k:<3d} = {c: .12e}")
    edge = "  (at the window's edge)" if mn.at_edge else ""
    print(f"eta_opt in (0, {mn.window:.6g}] = {mn.eta_opt:.15g}, loss {mn.loss_opt:.12g}{edge}")
    for lm in mn.local_minima:
        print(f"  local minimum: eta = {lm.eta:.15g}, loss = {lm.loss:.12g}{' (edge)' if lm.at_edge else ''}")
    for e, v in res.evaluations:
        print(f"loss at eta = {e:.15g}: {v:.15g}")
    return 0
