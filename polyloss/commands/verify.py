"""``polyloss verify``: every claim of the paper as an executable check with a verdict."""

from __future__ import annotations

import argparse
import sys

EPILOG = """example:
  polyloss verify --quick --out results/verify          # all claims, CI scale (~1 min on 2 cores)
  polyloss verify --full --claims C2,C6 --out results/verify-full --resume
  polyloss verify --claims C2 --override mup=sp --out results/broken    # must FAIL
  polyloss verify --quick --claims C1,C3 --workers 2 --out results/verify-2w   # on 2 local Dask workers

  Writes OUT/verify.html (open it), verify.md, verify.json and verdicts/<claim>.json as each claim
  finishes; the sample/sweep runs behind them live in OUT/runs and resume after a kill.
  Verdicts: pass / fail / inconclusive, or observation for the paper's open question (C7).
  A directory belongs to one --quick/--full, --seed and --override: --resume with others is refused.
  BLAS runs one thread in this process unless OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS
  is set (many small problems: extra BLAS threads only spin when the cores are busy).
  --workers N|auto / --scheduler ADDRESS compute the claims' networks and sweeps on Dask workers
  (one cluster for every claim; pip install "polyloss[distributed]"); verdicts are those of a serial
  run, and the run directories resume as usual (with or without workers).

exit status:
  0  every claim passed, was inconclusive, or is an observation
  1  at least one claim FAILED (also with --override, where failing is the point)
  2  bad input (an argument, a file, a directory in use or made with other options)
"""


def register(sub) -> None:
    p = sub.add_parser("verify", help="check each claim of the paper, with verdicts and a report",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="mode", action="store_const", const="quick", help="CI scale (default)")
    g.add_argument("--full", dest="mode", action="store_const", const="full",
                   help="the paper's scale: d=100, m=1000, widths 2^7..2^18 (the paper stops at 2^13), depths 3..27, linear and non-linear targets")
    p.set_defaults(mode="quick")
    p.add_argument("--claims", default="all", metavar="C1,C2,...", help="which claims (default: all)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted verification in DIR")
    p.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    p.add_argument("--override", action="append", default=[], metavar="NAME=PARAM",
                   help="run the claims with parametrization NAME replaced by PARAM, e.g. mup=sp (muP with the SP "
                        "readout: a broken setup that C2 must fail); repeatable")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    from polyloss.commands._common import add_executor_options

    add_executor_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from polyloss.checks import parse_claims, run_claims
    from polyloss.commands._common import executor_from_args
    from polyloss.errors import SpecError

    if args.seed < 0:
        raise SpecError(f"`seed`={args.seed} is invalid: must be an integer >= 0")
    ids = parse_claims(args.claims)
    executor = executor_from_args(args)  # the extra is installed
    overrides = {}
    for item in args.override:
        name, sep, value = item.partition("=")
        if not sep or name not in ("mup", "sp", "ntp"):
            raise SpecError(f"`override`={item!r} is invalid: must be NAME=PARAM with NAME in mup, sp, ntp (e.g. mup=sp)")
        from polyloss.spec import Parametrization

        Parametrization.parse(value)  # validates PARAM
        overrides[name] = value
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    verdicts = run_claims(ids, args.mode, args.out, resume=args.resume, progress=not args.quiet, seed=args.seed, log=log,
                          overrides=overrides, executor=executor)
    from polyloss.checks import broken_setup_banner, verdict_recipe

    banner = broken_setup_banner(verdicts)
    if banner:
        print(banner)
    width = max(len(v.claim.title) for v in verdicts)
    for v in verdicts:
        print(f"{v.claim.id:<3} {v.verdict.upper():<13} {v.claim.title:<{width}}  {v.summary}")
    from polyloss.recipe import PLAIN

    plain = PLAIN.describe()
    others = [v.claim.id for v in verdicts if verdict_recipe(v) != plain]
    if not others:
        print("recipe: " + plain)
    elif len(others) == len(verdicts) == 1:
        print("recipe: " + verdict_recipe(verdicts[0]))
    else:  # one line per run, not every recipe of every claim: verify.md names them per claim
        print(f"recipe: {plain}, except {', '.join(others)} (their training recipes are listed per claim in verify.md)")
    print(f"report: {args.out}/verify.html")
    return 1 if any(v.verdict == "fail" for v in verdicts) else 0
