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
