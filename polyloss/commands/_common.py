"""Argument helpers shared by subcommands: typed options that fail with one-line messages."""

from __future__ import annotations

import argparse
import os

from polyloss.data import TEACHERS, Dataset, load_data, synthetic
from polyloss.errors import SpecError
from polyloss.spec import Parametrization


def positive_int(name: str, minimum: int = 1):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{name}`={text!r} is invalid: must be an integer >= {minimum}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"`{name}`={text!r} is invalid: must be an integer >= {minimum}")
        return v

    return parse


def positive_float(name: str, allow_zero: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        ok = v == v and v != float("inf") and (v >= 0 if allow_zero else v > 0)
        if not ok:
            bound = ">= 0" if allow_zero else "> 0"
            raise argparse.ArgumentTypeError(f"`{name}`={text!r} is invalid: must be a finite number {bound}")
        return v

    return parse


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

    if args.data and getattr(args, "synthetic", None):
        raise SpecError("give either `--data` or `--synthetic`, not both")
    if args.data:
        ds = load_data(args.data)
        # the absolute path, so that compare/report find the file from any directory; the digest proves it unchanged
        return ds, {"kind": "file", "path": os.path.abspath(args.data), "sha256": file_digest(args.data), "m": ds.m, "d": ds.d}
    kind = args.synthetic or "linear"
    ds = synthetic(kind, args.d, args.m, args.noise, seed_seq)
    return ds, {"kind": "synthetic", "teacher": kind, "d": args.d, "m": args.m, "noise": args.noise}
