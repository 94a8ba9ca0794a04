"""``polyloss sample``: loss polynomials and eta_n of many sampled networks, per width (resumable)."""

from __future__ import annotations

import argparse
import math
import sys

from polyloss.commands._common import (add_backend, add_data_options, add_executor_options, add_param, add_recipe_options,
                                       positive_float, positive_int)

EPILOG = """example:
  polyloss sample --depth 3 --widths 64,128,256,512 --samples 16 --steps 1 \\
      --synthetic linear --d 20 --m 200 --seed 0 --out results/mup-L3

  writes results/mup-L3/run.json and appends one line per (width, sample) to records.jsonl as
  soon as it is done; a killed run continues with the same command plus --resume (which may also
  add widths or samples). Network (n, s) is drawn from SeedSequence(seed, spawn_key=(n, s)).

  --sampler auto (default) samples widths >= 2048 lazily (Gaussian conditioning on the vectors
  the program touches: exact in distribution, cost independent of the width), e.g. --widths
  1048576; dense and lazy draws from one seed are different networks with the same law.
  polyloss sample --depth 2 --widths 32,64 --samples 2 --steps 2 --d 10 --m 50 \\
      --schedule warmup:2 --weight-decay 0.1 --wd-mode independent --out results/wd

  polyloss sample --depth 1 --widths 64,256,1024 --samples 2 --steps 'ceil(log2(n)/4)' \\
      --d 10 --m 50 --out results/growing

  --steps takes an integer T, or a horizon that grows with the width: an expression in n
  (n, numbers, + - * / ** // %, ceil, floor, round, log, log2, sqrt, min, max; an integer in
  [1, 12] at every width), e.g. 'ceil(2*n**0.15)', or WIDTH:T pairs, e.g. '64:1,256:2,1024:3'
  (they may list widths a later --resume adds). Each width trains for its own T (here 64 -> 2,
  256 -> 2, 1024 -> 3); records carry "steps" and run.json the rule (`steps_rule`), and --resume
  refuses a changed rule. compare and report take runs with one T only so far.

  --workers N|auto computes the networks on N local Dask worker processes (auto: one per core),
  --scheduler tcp://host:8786 on an existing Dask cluster (dask scheduler / dask worker, or
  dask-jobqueue on SLURM); the records are those of a serial run and only this process writes them
  (--resume as usual). Needs the distributed extra: pip install "polyloss[distributed]".

  polyloss sample --depth 3 --widths 256,1024,4096 --samples 4 --steps 1 --d 10 --m 50 \\
      --optimizer adam --adam-eps 0 --out results/adam-L3

  --optimizer adam: the exact loss after one Adam step (steps 1, plain recipe; eps = 0 is sign
  descent); run.json records the optimizer, the default window is 4*eta_inf of the muP Adam limit
  (polyloss derive --optimizer adam), lazy widths need --adam-eps 0 (ambient coordinates).

  the training recipe flags (--train, --lr-exponents, --weight-decay, --wd-mode, --schedule,
  --momentum, --nesterov) are recorded in run.json (`recipe`); --resume refuses a changed recipe.
  Limits: {limits}.
"""


def _steps_rule(text: str):
    """argparse type of --steps: a StepsRule (a fixed rule for a plain integer); syntax errors are usage errors."""
    from polyloss.errors import SpecError
    from polyloss.horizon import StepsRule

    try:
        return StepsRule.parse(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub) -> None:
    from polyloss._budget import LIMITS_HELP

    p = sub.add_parser("sample", help="sample networks per width: coefficients and eta_n",
                       description=__doc__, epilog=EPILOG.replace("{limits}", LIMITS_HELP), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depth", required=True, type=positive_int("depth"), help="number L >= 1 of hidden n x n layers")
    p.add_argument("--widths", required=True, metavar="N1,N2,...", help="comma-separated widths, e.g. 64,128,256")
    p.add_argument("--samples", required=True, type=positive_int("samples"), help="networks per width")
    p.add_argument("--steps", required=True, type=_steps_rule, metavar="T|RULE",
                   help="number of full-batch GD steps: an integer T >= 1, an expression in the width n such as "
                        "'ceil(2*n**0.15)', or WIDTH:T pairs such as '64:1,128:2' (see below)")
    add_param(p)
    add_data_options(p)
    p.add_argument("--degree", type=positive_int("degree", 0), default=None,
                   help="record loss coefficients up to this power (default 8, capped at the full degree)")
    p.add_argument("--window", type=positive_float("window"), default=None, help="search eta_n in (0, WINDOW] (default 4*mu_1/(L*mu_2))")
    p.add_argument("--seed", type=positive_int("seed", 0, 2**63 - 1), default=0, help="root seed (default 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory")
    p.add_argument("--resume", action="store_true", help="continue a run in DIR, skipping finished (width, sample) pairs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--sampler", choices=("dense", "lazy", "auto"), default="auto",
                   help="hidden-layer sampler: dense n x n matrices, lazy (Gaussian conditioning), "
                        "or auto = lazy for width >= 2048 (default)")
    add_backend(p)
    add_executor_options(p)
    add_recipe_options(p)
    from polyloss.commands.poly import add_optimizer_options

    add_optimizer_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from polyloss._budget import check_sample
    from polyloss.api import sample as api_sample
    from polyloss.commands._common import executor_from_args, out_dir, recipe_from_args, resolve_data
    from polyloss.horizon import check_horizons
    from polyloss.sampling import data_seed, summarise
    from polyloss.spec import SamplingSpec, TrainingSpec

    out_dir(args)
    executor = executor_from_args(args)  # the extra is installed

    sampling = SamplingSpec(args.widths, args.samples, args.seed)
    rule = args.steps
    training = TrainingSpec(rule.fixed if rule.is_fixed else rule, args.degree)
    from polyloss.commands.poly import optimizer_from_args

    adam = optimizer_from_args(args, rule.fixed if rule.is_fixed else rule.spec)
    recipe = recipe_from_args(args, rule.fixed if rule.is_fixed else None)
    check_horizons(rule, sampling.widths, recipe)  # a T for every width, the schedule at every T
    if args.data is None:  # refuse absurd work before drawing the data
        check_sample(args.depth, sampling.widths, sampling.samples, training.steps, training.degree, args.m, args.d,
                     args.sampler, trained=recipe.trained_matrices(args.depth))
    data, desc = resolve_data(args, data_seed(args.seed))
    run_ = api_sample(args.out, depth=args.depth, sampling=sampling, training=training, param=args.param,
                      data=data, data_description=desc, window=args.window, backend=args.backend,
                      resume=args.resume, progress=not args.quiet, sampler=args.sampler, recipe=recipe,
                      executor=executor, **({} if adam is None else {
                          "optimizer": "adam", "adam_eps": adam["eps"], "adam_exponent": adam["adam_exponent"]}))
    rows = summarise(run_)
    print(f"run {args.out}: L={args.depth} T={rule.spec} param={args.param.name} m={data.m} d={data.d}; "
          f"window (0, {run_.config['window']:.6g}]")
    print(f"recipe: {recipe.describe()}" if adam is None else
          f"optimizer: adam, one step (hidden layers), eps = {adam['eps']:g}, hidden rate eta*n^-{adam['adam_exponent']}")
    k = max((len(r["coeff_mean"]) for r in rows), default=0)  # a growing horizon: widths may keep fewer
    steps_col = "" if rule.is_fixed else f"{'T':>3} "
    head = f"{'width':>7} {steps_col}{'count':>5} " + " ".join(f"{'c_' + str(i) + ' (mean ± s.e.)':>27}" for i in range(k))
    print(head + f" {'eta_n (mean ± s.e.)':>27} {'at edge':>7}")
    from polyloss.horizon import steps_by_width

    run_horizon = steps_by_width(run_)  # also the widths of an earlier call (resume)
    def cell(mean, se) -> str:  # one seed has no standard error: '–', never 'nan'
        return f"{mean: .6e} ± " + (f"{se:.1e}" if math.isfinite(se) else f"{'–':<7}")

    for r in rows:
        cells = " ".join([cell(m, s) for m, s in zip(r["coeff_mean"], r["coeff_se"])]
                         + [f"{'':>27}"] * (k - len(r["coeff_mean"])))
        t_cell = "" if rule.is_fixed else f"{run_horizon[r['width']]:>3} "
        print(f"{r['width']:>7} {t_cell}{r['count']:>5} {cells} {cell(r['eta_mean'], r['eta_se'])} {r['at_edge']:>7}")
    sys.stdout.flush()
    return 0
