"""The polyloss exception hierarchy.

Every expected failure (bad argument, bad data, missing backend, a run directory that does not
match the requested run) raises a subclass of :class:`PolylossError`. The CLI turns these into a
one-line message and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


def one_line(text) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


class PolylossError(Exception):
    """Root of all polyloss errors. The message is always one line: whitespace runs (the newlines
    of a multi-line repr, e.g. a ``SeedSequence`` inside a message) are collapsed to one space."""

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (one_line(args[0]),)
        super().__init__(*args)


class SpecError(PolylossError, ValueError):
    """An argument has an invalid value; the message names the argument, the value and what is valid."""


class DataError(PolylossError, ValueError):
    """Data or weights are malformed (wrong shape, NaN/inf, empty, inconsistent)."""


class BackendUnavailable(PolylossError, ImportError):
    """An optional array backend (CuPy) was requested but cannot be used."""


class RunError(PolylossError):
    """A run directory is missing, empty, or does not match the requested run."""


class NumericalError(PolylossError, ArithmeticError):
    """A computation could not be carried out reliably in floating point."""


def short_repr(value, limit: int = 120) -> str:
    """``repr(value)`` on one line, shortened to about ``limit`` characters (a 5000-digit argument
    or a whole array does not belong in an error message)."""
    text = one_line(repr(value))
    if len(text) > limit:
        text = f"{text[: limit // 2]}...{text[-limit // 4:]} ({len(text)} characters)"
    return text


def invalid(name: str, value, valid: str, exc: type[PolylossError] = SpecError) -> PolylossError:
    """Build the standard one-line message: ``name=value is invalid: must be <valid>``."""
    return exc(f"`{name}`={short_repr(value)} is invalid: must be {valid}")
