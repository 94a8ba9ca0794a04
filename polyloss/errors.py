"""The polyloss exception hierarchy.

Every expected failure (bad argument, bad data, missing backend, a run directory that does not
match the requested run) raises a subclass of :class:`PolylossError`. The CLI turns these into a
one-line message and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PolylossError(Exception):
    """Root of all polyloss errors."""


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


def invalid(name: str, value, valid: str, exc: type[PolylossError] = SpecError) -> PolylossError:
    """Build the standard one-line message: ``name=value is invalid: must be <valid>``."""
    return exc(f"`{name}`={value!r} is invalid: must be {valid}")
