"""``polyloss transfer``: does my model's learning rate transfer across widths? Exact optima per width.

Takes models of one architecture at several widths - a factory MODULE:FUNCTION called as FUNCTION(width)
or FUNCTION(width, seed) that returns a state_dict (dict of arrays or tensors), a torch.nn.Module or a
path, or stored state_dicts (--models, one per width) - and how they are trained (--model-optimizer sgd
or musgd, --base-width, --output-mult, --loss, the recipe flags). For every (width, seed): the exact loss
polynomial after T GD steps, its optimum eta_n in the window, and the loss at the smallest width's optimum
eta_n0 (reused). Prints the table, the extrapolated limit of eta_n, and a one-line verdict by the rule:
  {rule}
"""

from __future__ import annotations

import argparse

from polyloss.commands._common import (add_data_options, add_model_options, add_recipe_options, out_dir,
                                       positive_float, positive_int)

EPILOG = """examples (demo factories in polyloss.demo_models; yours: mypackage.models:make or models.py:make):
  polyloss transfer --factory polyloss.demo_models:mup_mlp --widths 32,64,128,256 --seeds 4 --steps 2 \\
      --model-optimizer musgd --base-width 16 --d 10 --m 40 --limit exact --out results/transfer-mup
  polyloss transfer --factory polyloss.demo_models:sp_mlp --widths 32,64,128,256 --seeds 4 --steps 2 \\
      --model-optimizer sgd --d 10 --m 40 --out results/transfer-sp

  Writes DIR/run.json, DIR/records.jsonl (one record per (width, seed) as it finishes; --resume continues a
  killed run), DIR/report.json and DIR/transfer.png (loss curves per width with each optimum and the reused
  rate; eta_n vs width with the extrapolated limit; the penalty of reusing eta_n0 vs width with the 1% line;
  with --limit exact also the limit's loss curve and eta_inf).
  Learning rates are the optimizer's lr (--loss mse: PyTorch's nn.MSELoss convention). The models must be
  linear MLPs (biases are carried exactly, at their optimizer's rates); worked example: docs/interop.md.
"""


def register(sub) -> None:
    from polyloss.transfer import RULE

    p = sub.add_parser("transfer", help="does a user's model's learning rate transfer across widths (exact)",
                       description=__doc__.replace("{rule}", RULE), epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--factory", metavar="MODULE:FUNCTION",
                     help="a callable FUNCTION(width[, seed]) returning a state_dict, a torch module or a path")
    src.add_argument("--models", metavar="F1,F2,...",
                     help="stored state_dicts (.safetensors or .npz with torch key names), one per width")
    p.add_argument("--widths", default=None, metavar="N1,N2,...", help="widths for --factory (at least two)")
    p.add_argument("--seeds", type=positive_int("seeds"), default=1,
                   help="models per width for --factory (FUNCTION(width, seed), seeds 0..S-1; default 1)")
    p.add_argument("--steps", required=True, type=positive_int("steps"), help="number of full-batch GD steps T >= 1")
    p.add_argument("--window", type=positive_float("window"), default=None, metavar="LR",
                   help="search eta_n in (0, LR] (the optimizer's lr; default: polyloss's default window of the "
                        "smallest model, converted)")
    p.add_argument("--seed", type=positive_int("seed", 0, 2**63 - 1), default=0,
                   help="root seed of the synthetic data (default 0)")
    add_data_options(p)
    add_model_options(p, single=False)
    p.add_argument("--limit", choices=("extrapolate", "exact"), default="extrapolate",
                   help="extrapolate (default): eta_inf from a + b/n on the widths; exact: also the exact infinite-width "
                        "limit of the model's family (needs polyloss's muP initialisation, checked on every model, and a "
                        "recipe with a limit): eta_inf, |eta_n - eta_inf| and the fast-transfer gaps against it")
    p.add_argument("--input-bias-var", default=None, metavar="V",
                   help="with --limit exact: the input bias's entry variance at initialisation, a number or torch "
                        "(nn.Linear's default, 1/(3d); the default)")
    p.add_argument("--hidden-bias-var", default=None, metavar="V",
                   help="with --limit exact: every hidden bias's entry variance at initialisation, a number, torch "
                        "(U(-1/sqrt(n), 1/sqrt(n)): o(1)) or mup (set_base_shapes' U(-1/sqrt(base), 1/sqrt(base)): "
                        "1/(3*base)); default mup with --model-optimizer musgd, else torch")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory")
    p.add_argument("--resume", action="store_true", help="continue a run in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_recipe_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from polyloss._jsonsafe import dump
    from polyloss.commands._common import check_mup_decay, recipe_from_args, resolve_data
    from polyloss.errors import SpecError
    from polyloss.sampling import data_seed
    from polyloss.transfer import plot_transfer, report_text, run_transfer

    out = out_dir(args)
    for flag in ("lr_exponents", "lr_scales"):
        if getattr(args, flag) is not None:
            raise SpecError(f"`--{flag.replace('_', '-')}`={getattr(args, flag)!r} is invalid with polyloss transfer: "
                            "the rates come from --model-optimizer")
    if args.factory is not None and args.widths is None:
        raise SpecError("`--widths` is required with --factory (at least two widths, e.g. 32,64,128)")
    if args.models is not None and (args.widths is not None or args.seeds != 1):
        raise SpecError("`--widths`/`--seeds` are invalid with --models: the widths are the stored models' (one each)")
    user = recipe_from_args(args, args.steps)
    knobs = {"schedule": user.schedule.spec, "weight_decay": user.weight_decay, "wd_mode": user.wd_mode,
             "momentum": user.momentum, "nesterov": user.nesterov}
    if args.train is not None:
        knobs["trained"] = ",".join(user.trained_layers)
    check_mup_decay(args.model_optimizer, user)
    data, desc = resolve_data(args, data_seed(args.seed))
    models = None if args.models is None else [s.strip() for s in args.models.split(",")]
    rep = run_transfer(out, models=models, factory=args.factory, widths=args.widths, seeds=args.seeds, data=data,
                       steps=args.steps, optimizer=args.model_optimizer, base_width=args.base_width,
                       output_mult=args.output_mult, layout=args.layout, loss=args.loss, recipe_knobs=knobs,
                       window=args.window, data_description=desc, resume=args.resume, progress=not args.quiet,
                       base_shapes=args.base_shapes, limit=args.limit,
                       input_bias_var=_bias_var(args, "input_bias_var"), hidden_bias_var=_bias_var(args, "hidden_bias_var"))
    from polyloss._rundir import read_records

    records = read_records(os.path.join(out, "records.jsonl"))
    figure = plot_transfer(rep, records, os.path.join(out, "transfer.png"))
    with open(os.path.join(out, "report.json"), "w") as fh:
        dump({**rep, "figure": {"file": "transfer.png", **figure}}, fh, indent=1)
    print("\n".join(report_text(rep)))
    print(f"wrote {os.path.join(out, 'report.json')} and {os.path.join(out, 'transfer.png')}")
    return 0


def _bias_var(args, dest: str):
    """--input-bias-var / --hidden-bias-var as the API takes them: None, 'torch', 'mup' or an exact number >= 0."""
    from polyloss.errors import SpecError, invalid

    v = getattr(args, dest)
    flag = "--" + dest.replace("_", "-")
    if v is not None and args.limit != "exact":
        raise SpecError(f"`{flag}` is used with --limit exact (it declares the limit's initialisation)")
    if v is None or v.strip().lower() in ("torch", "mup"):
        return v
    from fractions import Fraction

    try:
        q = Fraction(v.strip())
    except (ValueError, ZeroDivisionError):
        q = None
    if q is None or q < 0 or q > 10**6:
        raise invalid(flag[2:], v, "a number >= 0 (decimal or p/q), torch or mup")
    return q
