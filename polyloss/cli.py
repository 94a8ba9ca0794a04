"""The ``polyloss`` command line: parse, call the library, write the result.

Each subcommand lives in ``polyloss.commands.<name>`` and exposes ``register(subparsers)``, which
adds its parser and sets ``func(args) -> int``. Expected failures (:class:`PolylossError`) print one
line on stderr and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from polyloss import __version__
from polyloss.errors import PolylossError, one_line

COMMANDS = ("poly", "sample", "sweep", "compare", "report", "verify", "derive", "data", "transfer")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors reach :func:`main` (one line on stderr, exit code 2)."""

    def error(self, message: str):
        raise _UsageError(one_line(f"{self.prog}: error: {message}"))

    def _get_values(self, action, arg_strings):
        # Python 3.11's argparse turns `--opt=--` into an empty list that skips the type check
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return super()._get_values(action, arg_strings)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="polyloss",
        description="Exact learning-rate loss polynomials of deep linear networks, and checks of "
        "learning-rate transfer (Hayou 2025).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="start here:\n"
        "  polyloss verify --quick --out results/verify     # every claim of the paper, ~1 min\n"
        "  polyloss derive --depth 3 --steps 2               # the exact infinite-width loss\n"
        "  polyloss COMMAND --help                           # options and an example per command",
    )
    parser.add_argument("--version", action="version", version=f"polyloss {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"polyloss.commands.{name}").register(sub)
    return parser


#: BLAS thread variables :func:`main` sets to 1 for ``verify`` unless the user set one of them.
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _pin_blas_for_verify(argv) -> None:
    """``verify`` runs thousands of small problems: with BLAS threads on a machine whose cores are busy, OpenBLAS's
    spinning threads made one ReLU sweep record take 53 s instead of 0.57 s (measured; on an idle machine one
    thread is as fast). So unless the user set a BLAS thread count, the verify driver uses one thread. This only
    works before numpy is loaded, i.e. from the command line, which builds its parser after this call."""
    args = sys.argv[1:] if argv is None else argv
    if "verify" in args[:1] and not any(v in os.environ for v in BLAS_VARS) and "numpy" not in sys.modules:
        for v in BLAS_VARS:
            os.environ[v] = "1"


def main(argv: list[str] | None = None) -> int:
    _pin_blas_for_verify(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PolylossError as exc:
        print(one_line(f"polyloss {args.command}: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"polyloss {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `polyloss compare RUN | head`): stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        except (OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE, as a shell reports a process killed by a broken pipe


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
