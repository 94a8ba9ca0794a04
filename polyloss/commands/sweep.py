"""``polyloss sweep``: empirical learning-rate sweeps by actual training (no polynomial), per width (resumable).

Trains the networks of ``polyloss sample`` (network (n, s) from SeedSequence(seed, spawn_key=(n, s)))
for T full-batch steps at every eta of a grid and records the training loss at steps 0..T.
Network h_0 = W_0 x, h_l = W_l phi(h_{l-1}), f = V^T phi(h_L), phi = identity (linear) or ReLU;
W_0 and V frozen, hidden W_1..W_L trained on (1/2m) sum (f - y)^2.

Hidden learning rates: gd: eta * n^-gamma (muP/SP: eta, NTP: eta/n), as `polyloss poly`.
adam (beta1 = 0.9, beta2 = 0.999, eps = --adam-eps, bias-corrected, full batch):
eta * n^-K with K = 1 under muP (muP-Adam: eta/fan_in), 0 under SP, 1/2 under NTP (raw NTP
weights w = sqrt(n) W move ~eta per entry); an ALPHA,GAMMA parametrization needs --adam-exponent K.

Training recipes (see "training recipe" below): --train, --lr-exponents, --weight-decay,
--wd-mode, --schedule, --momentum, --nesterov apply exactly as in `polyloss poly`/`sample` (dense
per-eta weights; for linear + gd the losses are the recipe's polynomial), recorded in run.json.
With --optimizer adam the layers train with Adam at eta*n^-K per layer: --lr-exponents are the K
(default muP 0,1,1: input eta, hidden and readout eta/fan_in, as mup.MuAdam; SP 0,0,0; NTP 0,1/2,1/2);
l2 decay enters Adam's gradient, decoupled/independent scale W outside it; no --momentum.

A user's networks: --model F1[,F2,...] (state_dicts, one per width: .safetensors or .npz with torch key
names; --model-optimizer sgd|musgd|muadam, --base-width, --output-mult, --layout as in `polyloss poly`)
trains those networks, every layer at its optimizer's rate (muadam: Adam), eta = the optimizer's lr
(losses are polyloss's (1/2m) sum (f - y)^2: nn.MSELoss is twice that; docs/interop.md).

Diverged losses (overflow/NaN) are +inf, stored as null in records.jsonl; training at that eta
stops. The closing table gives per width the argmin of the seed-mean final loss (+inf if any seed
diverged), that loss, the grid spacing there, and the mean +- s.e. of the per-seed argmins.
"""

from __future__ import annotations

import argparse
import sys

from polyloss.commands._common import (EXECUTOR_HELP, add_backend, add_data_options, add_executor_options,
                                       add_model_options, add_param, add_recipe_options, positive_float, positive_int)

EPILOG = """example:
  polyloss sweep --depth 3 --widths 64,256,1024 --etas lin:0.05:3:60 --seeds 4 --steps 2 \\
      --activation linear --optimizer gd --param mup --d 20 --m 100 --seed 0 --out results/sweep-L3

  --etas takes lin:START:STOP:COUNT (linspace), log:START:STOP:COUNT (geomspace) or a comma list.
  Writes results/sweep-L3/run.json and appends one line per (width, seed) to records.jsonl as soon
  as it is done; a killed run continues with the same command plus --resume (which may also add
  widths or seeds). With the same --seed/--param/data, `polyloss sample` sees the same networks,
  so for linear + gd the sweep optimum agrees with eta_n to within the grid spacing.

  polyloss sweep --depth 2 --widths 32,64 --etas lin:0.05:2:20 --steps 2 --d 10 --m 50 \\
      --train input,hidden,readout --weight-decay 0.1 --wd-mode independent --momentum 0.9 --out results/sweep-recipe

  polyloss sweep --depth 2 --widths 32,128 --etas log:0.1:30:20 --seeds 2 --steps 20 --batch 10 \\
      --activation relu --init-gain he --d 10 --m 50 --out results/sweep-minibatch
  (minibatch SGD, B = 10 of m = 50 rows per step, He-initialised ReLU network)

{executor}
  Limits: {limits}.
"""


def register(sub) -> None:
    from polyloss._budget import LIMITS_HELP

    p = sub.add_parser("sweep", help="learning-rate sweeps by actual training (linear/relu, gd/adam)",
                       description=__doc__, epilog=EPILOG.replace("{limits}", LIMITS_HELP).replace("{executor}", EXECUTOR_HELP), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depth", type=positive_int("depth"), default=None,
                   help="number L >= 1 of hidden n x n layers (required unless --model)")
    p.add_argument("--widths", default=None, metavar="N1,N2,...",
                   help="comma-separated widths, e.g. 64,128,256 (required unless --model)")
    p.add_argument("--etas", required=True, metavar="SPEC",
                   help="eta grid: lin:START:STOP:COUNT, log:START:STOP:COUNT or a comma list, e.g. lin:0.05:3:60")
    p.add_argument("--seeds", type=positive_int("seeds"), default=1, help="networks per width: samples 0..S-1 (default 1)")
    p.add_argument("--steps", required=True, type=positive_int("steps"), help="number of full-batch training steps T >= 1")
    p.add_argument("--activation", choices=("linear", "relu"), default="linear", help="phi (default linear)")
    p.add_argument("--optimizer", choices=("gd", "adam"), default="gd", help="full-batch optimizer (default gd)")
    add_param(p)
    p.add_argument("--adam-eps", type=positive_float("adam-eps", allow_zero=True), default=1e-8,
                   help="Adam epsilon (default 1e-8; 0: sign descent at the first step, an entry whose gradient was always 0 stays put)")
    p.add_argument("--adam-exponent", default=None, metavar="K",
                   help="Adam hidden learning rate eta*n^-K (default: muP 1, SP 0, NTP 1/2; required for ALPHA,GAMMA)")
    add_data_options(p)
    p.add_argument("--seed", type=positive_int("seed", 0, 2**63 - 1), default=0, help="root seed (default 0)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="training precision (default float64)")
    p.add_argument("--batch", type=positive_int("batch"), default=None, metavar="B",
                   help="minibatch size B <= m (default: full batch); step k uses rows of seeded per-epoch "
                        "permutations (the same at every width and eta); the loss is recorded on all data")
    p.add_argument("--alignment", action="store_true",
                   help="record per trained layer, at steps 0, 1, 3, 7, ... and the last, the relative update "
                        "|dW|/|W|, representation change |dW X|/|W X| and alignments |W X|/(|W||X|), "
                        "|dW X|/(|dW||X|) (Kosson et al.); trains densely")
    p.add_argument("--norm", choices=("none", "rms", "rms-fixed"), default="none",
                   help="RMSNorm before every hidden layer and the readout: rms (gains trained at the input layer's "
                        "rate, no decay), rms-fixed (gains frozen at 1), none (default)")
    p.add_argument("--readout-init", choices=("param", "zero"), default="param",
                   help="readout V at initialisation: as --param says (default) or zero (needs --train with readout)")
    p.add_argument("--init-gain", default="1", metavar="GAIN",
                   help="W_0 and hidden weights with std GAIN/sqrt(fan_in): 1 (default; the networks of `sample`), "
                        "he (sqrt 2), torch (1/sqrt 3, PyTorch's nn.Linear default) or a number > 0")
    p.add_argument("--memory-mb", type=positive_float("memory-mb"), default=1024.0,
                   help="memory budget (MiB) for one chunk of learning rates trained together (default 1024; at most "
                        "half the available memory)")
    p.add_argument("--method", choices=("auto", "dense", "lowrank"), default="auto",
                   help="dense: per-eta weight matrices (gd bit-identical to plain GD; needed for adam); "
                        "lowrank: gd only, updates kept as rank-m factors; auto: lowrank when gd and steps*m <= 2n")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory")
    p.add_argument("--resume", action="store_true", help="continue a run in DIR, skipping finished (width, seed) pairs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_backend(p)
    add_executor_options(p)
    add_recipe_options(p)
    add_model_options(p, loss=False)
    p.add_argument("--weights", default=None, metavar="F1,F2,...",
                   help="train these networks instead of sampled ones: NPZ files of effective weights W0, W1..WL, V "
                        "(as `polyloss poly --weights`), one per width; trained by the recipe flags and --param")
    p.set_defaults(func=run)


def _fmt(v, spec: str) -> str:
    return "-" if v is None or v != v else format(v, spec)


def run(args) -> int:
    from polyloss.commands._common import resolve_data
    from polyloss.errors import invalid
    from polyloss.sampling import data_seed
    from polyloss.sweep import run_sweep

    from polyloss._budget import check_sweep
    from polyloss.commands._common import executor_from_args, out_dir, recipe_from_args
    from polyloss.errors import SpecError
    from polyloss.spec import EXPONENT_VALID, check_exponent, parse_widths
    from polyloss.sweep import parse_etas

    out_dir(args)
    executor = executor_from_args(args)  # the extra is installed
    recipe = recipe_from_args(args, args.steps)
    if args.model is not None or args.weights is not None:
        if args.model is not None and args.weights is not None:
            raise SpecError("give one of --model (state_dicts) and --weights (effective weights), not both")
        return _run_models(args, executor, recipe)
    for flag in ("depth", "widths"):
        if getattr(args, flag) is None:
            raise SpecError(f"`--{flag}` is required (or --model/--weights FILE[,FILE...]: a user's networks)")
    for flag in ("layout", "base_width", "base_shapes"):
        if getattr(args, flag) is not None:
            raise SpecError(f"`--{flag.replace('_', '-')}` is invalid without --model")
    kappa = None
    if args.adam_exponent is not None:
        try:
            kappa = check_exponent("adam-exponent", args.adam_exponent)
        except SpecError:
            raise invalid("adam-exponent", args.adam_exponent, EXPONENT_VALID + ", e.g. 1, 0.5 or 1/2") from None
    widths, grid = parse_widths(args.widths), parse_etas(args.etas)
    if args.data is None:  # refuse absurd work before drawing the data
        check_sweep(args.depth, widths, args.seeds, args.steps, len(grid), args.m, args.d, args.optimizer == "adam",
                    args.memory_mb)
    data, desc = resolve_data(args, data_seed(args.seed))
    run_ = run_sweep(args.out, depth=args.depth, widths=args.widths, etas=args.etas, seeds=args.seeds,
                     steps=args.steps, activation=args.activation, optimizer=args.optimizer, param=args.param,
                     data=data, data_description=desc, seed=args.seed, adam_eps=args.adam_eps,
                     adam_exponent=kappa, dtype=args.dtype, memory_mb=args.memory_mb, method=args.method, backend=args.backend,
                     resume=args.resume, progress=not args.quiet, recipe=recipe, executor=executor, batch=args.batch,
                     init_gain=args.init_gain, alignment=args.alignment, readout_init=args.readout_init,
                     norm=None if args.norm == "none" else args.norm)
    _print_run(args, run_, data, recipe)
    return 0


def _run_models(args, executor, recipe) -> int:
    """sweep --model F1[,F2,...] (state_dicts, trained as their optimizer trains them) or --weights F1[,F2,...]
    (effective weights, trained by the recipe flags): the user's networks, one per width."""
    from polyloss.commands._common import check_mup_decay, model_recipe, resolve_data
    from polyloss.errors import SpecError
    from polyloss.interop import import_model
    from polyloss.sampling import data_seed
    from polyloss.sweep import run_sweep

    which = "--model" if args.model is not None else "--weights"
    for flag, bad in (("widths", args.widths is not None), ("seeds", args.seeds != 1),
                      ("init-gain", args.init_gain != "1"), ("readout-init", args.readout_init != "param"),
                      ("adam-exponent", args.adam_exponent is not None and args.model is not None)):
        if bad:
            raise SpecError(f"`--{flag}` is invalid with {which}: the networks' widths and weights are used as they are")
    data, desc = resolve_data(args, data_seed(args.seed))
    if args.weights is not None:  # polyloss's effective weights, trained by the recipe flags and --param
        from polyloss.weights import load_weights

        nets = [load_weights(path.strip(), input_dim=data.d) for path in args.weights.split(",")]
        rec, optimizer, notes = recipe, args.optimizer, ()
    else:
        optimizer = "adam" if args.model_optimizer == "muadam" else "gd"
        if args.optimizer != optimizer and args.optimizer != "gd":
            raise SpecError(f"`--optimizer`={args.optimizer!r} is invalid with --model-optimizer {args.model_optimizer}: "
                            "the model's optimizer decides (muadam: adam; sgd, musgd: gd)")
        nets = [import_model(path.strip(), layout=args.layout, optimizer=args.model_optimizer,
                             base_width=args.base_width, output_mult=args.output_mult, base_shapes=args.base_shapes)
                for path in args.model.split(",")]
        if args.depth is not None and args.depth != nets[0].weights.depth:
            raise SpecError(f"`--depth`={args.depth} is invalid: the model has {nets[0].weights.depth} hidden layers")
        check_mup_decay(args.model_optimizer, recipe)
        rec, notes = model_recipe(args, nets[0], args.steps), nets[0].notes
        import dataclasses

        from polyloss.interop import augmented_network

        no_decay = dataclasses.replace(rec, weight_decay=0)  # (only: do any biases matter)
        if any(m.biases is not None and augmented_network(m, data, no_decay) is not None for m in nets):
            raise SpecError("`--model` has biases that train (or are non-zero): sweep's trainer has no biases; the "
                            "exact polynomial with biases is polyloss poly --model / polyloss transfer")
    run_ = run_sweep(args.out, depth=getattr(nets[0], "weights", nets[0]).depth, widths=None, etas=args.etas, seeds=1,
                     steps=args.steps, activation=args.activation, optimizer=optimizer, param=args.param, data=data,
                     data_description=desc, seed=args.seed, adam_eps=args.adam_eps, dtype=args.dtype,
                     memory_mb=args.memory_mb, method=args.method, backend=args.backend, resume=args.resume,
                     progress=not args.quiet, recipe=rec, executor=executor, batch=args.batch,
                     alignment=args.alignment, norm=None if args.norm == "none" else args.norm, models=nets)
    for note in notes:
        print(f"mapped: {note}")
    _print_run(args, run_, data, rec, optimizer)
    return 0


def _print_run(args, run_, data, recipe, optimizer=None) -> None:
    from polyloss.sweep import summarise

    optimizer = optimizer or args.optimizer
    cfg, etas = run_.config, run_.etas
    print(f"run {args.out}: L={cfg['depth']} T={cfg['steps']} {cfg['activation']}/{cfg['optimizer']} "
          f"param={cfg['param']['name']} m={data.m} d={data.d}; {etas.size} etas in [{etas[0]:.6g}, {etas[-1]:.6g}]"
          + (f"; adam eps={cfg['adam']['eps']:g} lr=eta*n^-{cfg['adam']['exponent']}" if cfg["adam"] else "")
          + (" (input, hidden, readout: eta*n^-K with K = " + ", ".join(cfg["adam"]["layer_exponents"]) + ")"
             if cfg["adam"] and cfg["adam"].get("layer_exponents") else "")
          + (f"; minibatch {cfg['batch']}" if cfg.get("batch") else "")
          + (f"; init gain {cfg['init_gain']}" if cfg.get("init_gain", "1") != "1" else "")
          + ("; zero readout" if cfg.get("readout_init", "param") == "zero" else "")
          + (f"; norm {cfg['norm']}" if cfg.get("norm") else "")
          + "; recipe: " + (recipe.describe().replace("plain GD", "plain Adam") if optimizer == "adam" else recipe.describe()))
    print(f"{'width':>7} {'seeds':>5} {'eta* (seed-mean loss)':>22} {'loss at eta*':>13} {'spacing':>10} "
          f"{'seed argmins (mean ± s.e.)':>27} {'edge':>4} {'diverged':>8}")
    for r in summarise(run_):
        print(f"{r['width']:>7} {r['count']:>5} {_fmt(r['eta'], '22.6g')} {_fmt(r['loss'], '13.6e')} "
              f"{_fmt(r['spacing'], '10.3g')} {_fmt(r['seed_eta_mean'], '13.6g')} ± {_fmt(r['seed_eta_se'], '<11.2g')} "
              f"{'yes' if r['at_edge'] else 'no':>4} {r['diverged']:>8}")
    sys.stdout.flush()
