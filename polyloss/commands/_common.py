"""Argument helpers shared by subcommands: typed options that fail with one-line messages."""

from __future__ import annotations

import argparse
import os

from polyloss.data import TEACHERS, Dataset, load_data, synthetic
from polyloss.errors import SpecError, short_repr
from polyloss.spec import Parametrization


def _bad(name: str, text, valid: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"`{name}`={short_repr(text)} is invalid: must be {valid}")


def positive_int(name: str, minimum: int = 1, maximum: int | None = None):
    """An argparse type: a plain decimal integer (ASCII digits) in [minimum, maximum]."""
    valid = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")

    def parse(text: str) -> int:
        s = text.strip()
        digits = s[1:] if s[:1] in "+-" else s
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 30:
            raise _bad(name, text, valid)
        v = int(s)
        if v < minimum or (maximum is not None and v > maximum):
            raise _bad(name, text, valid)
        return v

    return parse


def positive_float(name: str, allow_zero: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text) if text.strip().isascii() else float("nan")
        except ValueError:
            v = float("nan")
        ok = v == v and v != float("inf") and (v >= 0 if allow_zero else v > 0)
        if not ok:
            bound = ">= 0" if allow_zero else "> 0"
            raise _bad(name, text, f"a finite number {bound}")
        return v

    return parse


def out_dir(args, name: str = "out") -> str:
    """Check ``args.<name>`` as an output directory before any work (see :mod:`polyloss._paths`)."""
    from polyloss._paths import check_out_dir

    return check_out_dir(name, getattr(args, name.replace("-", "_")))


def param_type(text: str) -> Parametrization:
    try:
        return Parametrization.parse(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_param(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", type=param_type, default=Parametrization.preset("mup"), metavar="mup|sp|ntp|A,G",
                   help="parametrization: a preset, or 'ALPHA,GAMMA' for V ~ N(0, n^-ALPHA) and hidden lr eta*n^-GAMMA (default: mup)")


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array backend (cupy needs polyloss[gpu] and a GPU)")


def add_data_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("data (a file, or a seeded synthetic teacher)")
    g.add_argument("--data", metavar="FILE", help="NPZ with X (m x d) and y (m,), or CSV with columns x_1..x_d, y")
    if not required:
        g.add_argument("--synthetic", choices=TEACHERS, default=None, help="synthetic teacher (default: linear when --data is absent)")
        g.add_argument("--d", type=positive_int("d"), default=100, help="input dimension of synthetic data (default 100)")
        g.add_argument("--m", type=positive_int("m"), default=1000, help="number of synthetic points (default 1000)")
        g.add_argument("--noise", type=positive_float("noise", allow_zero=True), default=0.0, help="label noise sigma (default 0)")


def resolve_data(args, seed_seq) -> tuple[Dataset, dict]:
    """The data set and a JSON description of where it came from."""
    from polyloss.sampling import file_digest  # local: avoid import cycles

    if args.data is not None and getattr(args, "synthetic", None):
        raise SpecError("give either `--data` or `--synthetic`, not both")
    if args.data is not None:
        ds = load_data(args.data)
        # the absolute path, so that compare/report find the file from any directory; the digest proves it unchanged
        return ds, {"kind": "file", "path": os.path.abspath(args.data), "sha256": file_digest(args.data), "m": ds.m, "d": ds.d}
    kind = args.synthetic or "linear"
    ds = synthetic(kind, args.d, args.m, args.noise, seed_seq)
    return ds, {"kind": "synthetic", "teacher": kind, "d": args.d, "m": args.m, "noise": args.noise}


RECIPE_HELP = """training recipe (docs/theory.md §7; defaults: plain GD on the hidden layers). Step s = 0..T-1
  updates every trained layer l with rate eta*rho_s*lambda_l, lambda_l = c_l*n^-gamma_l (--lr-scales c), G = dL/dW:
  --wd-mode l2 (coupled):      W <- W - eta*rho_s*lambda_l*(G + w*W)    (decay factor 1 - eta*rho_s*lambda_l*w)
  --wd-mode decoupled (AdamW): W <- (1 - eta*rho_s*w)*W - eta*rho_s*lambda_l*G   (base rate, not scaled by lambda_l)
  --wd-mode independent:       W <- (1 - w)*W - eta*rho_s*lambda_l*G    (not scaled by eta; needs w < 1)
  --wd-mode torch:             W <- (1 - eta*rho_s*lambda_l*w)*W - eta*rho_s*lambda_l*D   (PyTorch AdamW/SGDW with
                               per-layer rates, as mup.MuAdamW; = l2 for GD without momentum)
  --momentum B (PyTorch SGD, no dampening): with g = G (+ w*W in l2 mode) the buffer is v <- B*v + g
  (v = g at the first step) and the direction is v, or g + B*v with --nesterov; it replaces G above,
  the decoupled/independent decay factors stay outside the buffer. Untrained layers are never decayed."""


def add_recipe_options(p: argparse.ArgumentParser) -> None:
    """The training-recipe flags, the same on poly, sample, sweep and derive (:mod:`polyloss.recipe`)."""
    import re

    # '--lr-exponents -1,0,1' and '--weight-decay -1' reach the option (and its one-line check) as values
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = re.compile(r"^-\.?\d[\d.,/eE+-]*$")
    g = p.add_argument_group("training recipe", RECIPE_HELP)
    g.add_argument("--train", default=None, metavar="LAYERS",
                   help="trained layers: a comma subset of input,hidden,readout (default hidden, with --model "
                        "all three; untrained layers keep their initial values)")
    g.add_argument("--lr-exponents", default=None, metavar="IN,HID,OUT",
                   help="per-layer rates lambda_l = n^-gamma_l: three exponents such as -1,0,1, or a preset "
                        "mup (-1,0,1), sp (0,0,0), ntp (0,1,1) (default: the parametrization's; its gamma "
                        "for the hidden layers)")
    g.add_argument("--lr-scales", default=None, metavar="IN,HID,OUT",
                   help="width-independent constants c_l > 0 multiplying the rates, lambda_l = c_l*n^-gamma_l, e.g. "
                        "1/64,1,64 (mup.MuSGD with base width 64: input x n/64, readout x 64/n) (default 1,1,1)")
    g.add_argument("--weight-decay", default="0", metavar="W",
                   help="weight decay w >= 0 (default 0), applied as --wd-mode says")
    g.add_argument("--wd-mode", default="l2", metavar="l2|decoupled|independent|torch",
                   help="l2: coupled, the gradient of L + (w/2)|W|^2 at the layer's rate; decoupled: "
                        "W <- (1 - eta*rho_s*w) W before the step (AdamW, not scaled by lambda_l); "
                        "independent: W <- (1 - w) W (not scaled by eta, w < 1); torch: W <- (1 - eta*rho_s*lambda_l*w) W "
                        "(PyTorch AdamW/SGDW at each layer's rate) (default l2)")
    g.add_argument("--schedule", default="constant", metavar="SCHEDULE",
                   help="rho_s: constant (1), warmup:K (min(1, (s+1)/K)), exp-warmup:r (1 - r^(s+1), 0<r<1), "
                        "cosine ((1 + cos(pi s/T))/2), linear-decay (1 - s/T), exp-decay:r (r^s, 0<r<1), n-warmup:K (n^-(1 - s/K) for s < K, then 1: from 1/n of the rate; "
                        "no infinite-width limit) or a comma list rho_0,rho_1,... of >= T positive numbers (default constant)")
    g.add_argument("--momentum", default="0", metavar="B",
                   help="heavy-ball momentum B in [0, 1), PyTorch SGD semantics (default 0)")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum (needs --momentum > 0)")


_RECIPE_FLAGS = {"trained": "--train", "lr_exponents": "--lr-exponents", "lr_scales": "--lr-scales",
                 "weight_decay": "--weight-decay",
                 "wd_mode": "--wd-mode", "schedule": "--schedule", "momentum": "--momentum", "nesterov": "--nesterov"}


def recipe_from_args(args, steps: int | None = None):
    """The validated :class:`~polyloss.recipe.Recipe` of the recipe flags (checked against
    ``steps`` when given); a bad value is a one-line SpecError naming the flag."""
    from polyloss.recipe import Recipe

    fields = {"trained": "hidden" if args.train is None else args.train, "lr_exponents": args.lr_exponents, "schedule": args.schedule,
              "weight_decay": args.weight_decay, "wd_mode": args.wd_mode, "momentum": args.momentum,
              "nesterov": bool(args.nesterov), "lr_scales": getattr(args, "lr_scales", None)}
    try:
        recipe = Recipe(**fields)
        if steps is not None:
            recipe.check_steps(steps)
    except SpecError as exc:
        raise SpecError(_flag_message(str(exc))) from None
    param = getattr(args, "param", None)
    if recipe.lr_exponents is not None and param is not None and "hidden" in recipe.trained:
        import sys

        from polyloss.spec import Parametrization

        p = Parametrization.parse(param)
        if recipe.lr_exponents[1] != p.gamma:  # say so: the explicit exponents win over --param's hidden rate
            print(f"note: --lr-exponents sets the hidden rate n^-({recipe.lr_exponents[1]}), overriding "
                  f"--param {p.name}'s n^-({p.gamma}); the initialisation stays {p.name}'s", file=sys.stderr)
    return recipe


def _flag_message(msg: str) -> str:
    """'`weight_decay`=... is invalid' -> '`--weight-decay`=... is invalid' (the flag the user typed)."""
    for field_, flag in _RECIPE_FLAGS.items():
        for prefix in (f"`{field_}`", f"`{field_}["):
            if msg.startswith(prefix):
                return f"`{flag}" + msg[len(field_) + 1:]
    return msg


EXECUTOR_HELP = """  --workers N|auto computes on N local Dask worker processes (auto: one per core), --scheduler
  tcp://host:8786 on an existing Dask cluster (dask scheduler / dask worker, or dask-jobqueue on
  SLURM); the records are those of a serial run and only this process writes them (--resume as
  usual). Needs the distributed extra: pip install "polyloss[distributed]"."""


def add_executor_options(p) -> None:
    """--workers N|auto and --scheduler ADDRESS (mutually exclusive); read back by :func:`executor_from_args`."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_workers, default=None, metavar="N|auto",
                       help="compute on N local Dask worker processes (auto = all cores); needs polyloss[distributed]")
    where.add_argument("--scheduler", type=_scheduler, default=None, metavar="ADDRESS",
                       help="compute on an existing Dask cluster, e.g. tcp://host:8786 (dask scheduler / dask worker, "
                            "dask-jobqueue); needs polyloss[distributed]")


def executor_from_args(args):
    """The executor spec of --workers/--scheduler (None: serial); refuses a missing extra in one line."""
    from polyloss.executor import check_executor

    spec = args.workers if args.scheduler is None else args.scheduler
    check_executor(spec)
    return spec


def _workers(text: str):
    """argparse type of --workers: 'auto' or an integer >= 1."""
    from polyloss.executor import local_workers

    s = text.strip()
    if s == "auto":
        return s
    if local_workers(s) is None:
        raise argparse.ArgumentTypeError(f"`workers`={text!r} is invalid: must be an integer >= 1 or 'auto'")
    return int(s)


def _scheduler(text: str) -> str:
    """argparse type of --scheduler: a Dask scheduler address (tcp:// assumed when no protocol is given)."""
    s = text.strip()
    rest = s.split("://", 1)[-1]
    if not rest or any(c.isspace() for c in s):
        raise argparse.ArgumentTypeError(f"`scheduler`={text!r} is invalid: must be a Dask scheduler address such as "
                                         "tcp://host:8786")
    return s if "://" in s else "tcp://" + s


MODEL_HELP = """a user's PyTorch / mup MLP instead of --weights: its state_dict as .safetensors (read without
  torch) or .npz with torch's key names. The chain input -> hidden ... -> readout is inferred from the
  names (or --layout), mapped to effective weights (a MuReadout's output_mult/width_mult folded into V)
  and trained as its optimizer trains it: every layer at lr * c_l * n^-gamma_l (sgd: 1, 1, 1; musgd:
  input n/base, hidden 1, readout output_mult^2*base/n; muadam: Adam at 1, base/n, output_mult*base/n),
  so eta IS your optimizer's lr. Biases are kept and trained at their optimizer's rates (poly, transfer; not
  with weight decay or Adam)."""


def add_model_options(p, *, loss: bool = True, single: bool = True) -> None:
    """--model FILE (``single``), --layout, --model-optimizer, --base-width, --output-mult (and --loss)."""
    g = p.add_argument_group("a user's model (issue 15)", MODEL_HELP)
    if single:
        g.add_argument("--model", default=None, metavar="FILE",
                       help="state_dict of an MLP (.safetensors or .npz with torch key names)")
    g.add_argument("--layout", default=None, metavar="SPEC",
                   help="input=NAME,hidden=NAME1;NAME2,readout=NAME (module names; default: inferred)")
    g.add_argument("--model-optimizer", choices=("sgd", "musgd", "muadam"), default="sgd",
                   help="how the model is trained: torch SGD (plain nn.Linear layers), mup.MuSGD or mup.MuAdam "
                        "(default sgd)")
    g.add_argument("--base-width", type=positive_int("base-width"), default=None, metavar="B",
                   help="the base model's width given to mup.set_base_shapes (musgd, muadam)")
    g.add_argument("--base-shapes", default=None, metavar="FILE",
                   help="mup's base-shape file (mup.make_base_shapes(..., savefile=FILE)): the base width from it")
    g.add_argument("--output-mult", type=positive_float("output-mult"), default=1.0, metavar="M",
                   help="MuReadout's output_mult (default 1)")
    if loss:
        g.add_argument("--loss", choices=("half-mse", "mse"), default="half-mse",
                       help="the loss the lr and the reported losses refer to: half-mse = polyloss's "
                            "(1/2m) sum (f-y)^2 (default), mse = PyTorch's nn.MSELoss (twice it: GD at lr is "
                            "polyloss's GD at 2*lr; coupled/decoupled/torch weight decay w acts as w/2)")


def model_from_args(args, input_dim: int):
    """The :class:`~polyloss.interop.ImportedModel` of --model (None without it); one-line errors."""
    if getattr(args, "model", None) is None:
        for flag in ("layout", "base_width", "base_shapes"):
            if getattr(args, flag, None) is not None:
                raise SpecError(f"`--{flag.replace('_', '-')}`={getattr(args, flag)!r} is invalid without --model")
        return None
    from polyloss.interop import import_model

    model = import_model(args.model, layout=args.layout, optimizer=args.model_optimizer, base_width=args.base_width,
                         output_mult=args.output_mult, base_shapes=args.base_shapes)
    if model.weights.input_dim != input_dim:
        raise SpecError(f"`--model`={args.model!r} is invalid for this data: its input layer takes "
                        f"{model.weights.input_dim} inputs, the data has d = {input_dim}")
    return model


def check_mup_decay(optimizer: str, recipe) -> None:
    """Weight decay of a mup optimizer in polyloss's modes. mup scales each group's weight_decay inversely to its lr
    (MuSGD: vector-like lr x width_mult, wd / width_mult; MuAdam(W): matrix-like lr / width_mult, wd x width_mult),
    so torch's decay factor is 1 - lr*wd on every layer: polyloss's 'decoupled' (base rate) for MuSGD without
    momentum and for MuAdamW, never 'l2'/'torch' (which decay each layer at its own effective rate). With momentum,
    torch SGD puts the decay into the buffer, which no polyloss mode does. One-line refusals otherwise."""
    if optimizer == "sgd" or not recipe.weight_decay or recipe.wd_mode == "independent":
        return
    if recipe.wd_mode != "decoupled":
        raise SpecError(f"`--wd-mode`={recipe.wd_mode!r} is invalid with --model-optimizer {optimizer}: mup scales each "
                        "group's weight_decay inversely to its lr, so torch's decay is 1 - lr*wd on every layer, which is "
                        "--wd-mode decoupled (MuSGD without momentum, MuAdamW)")
    if optimizer == "musgd" and recipe.momentum:
        raise SpecError(f"`--momentum`={recipe.momentum} is invalid with --model-optimizer musgd and weight decay: torch "
                        "SGD adds the decay to the gradient inside the momentum buffer, which no polyloss mode does for "
                        "mup's rescaled groups (give --momentum 0 or --weight-decay 0)")


def model_recipe(args, model, steps: int | None = None):
    """The recipe of a --model run: the model's per-layer rates (c_l, gamma_l) with the recipe flags'
    trained layers, schedule, weight decay and momentum; --lr-exponents/--lr-scales are refused (the
    model's optimizer fixes them)."""
    for flag, value in (("lr-exponents", args.lr_exponents), ("lr-scales", getattr(args, "lr_scales", None))):
        if value is not None:
            raise SpecError(f"`--{flag}`={value!r} is invalid with --model: the rates come from --model-optimizer "
                            f"{args.model_optimizer} (see --help)")
    user = recipe_from_args(args, steps)
    check_mup_decay(model.optimizer, user)
    trained = None if args.train is None else user.trained  # default with a model: every layer, as torch trains it
    knobs = dict(schedule=user.schedule, weight_decay=user.weight_decay, wd_mode=user.wd_mode, momentum=user.momentum,
                 nesterov=user.nesterov)
    try:
        return model.recipe(trained=None if trained is None else ",".join(sorted(trained)), **knobs)
    except SpecError as exc:
        raise SpecError(_flag_message(str(exc))) from None
