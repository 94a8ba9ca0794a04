"""Strict JSON for every document polyloss writes: no NaN, no ±Infinity (RFC 8259).

Python's :mod:`json` writes ``NaN`` and ``Infinity`` by default, which other JSON readers reject.
Use these helpers instead of ``json.dump``/``json.dumps``:

* :func:`finite` converts a structure recursively (dicts, lists, tuples, numpy arrays and scalars)
  into plain Python objects, with every non-finite float replaced by ``None`` (JSON ``null``);
* :func:`dumps` / :func:`dump` apply :func:`finite` and then write with ``allow_nan=False``, so a
  non-finite number can never reach the output.

Example:
  >>> dumps({"loss": float("nan"), "c": [1.0, float("inf")]})
  '{"loss": null, "c": [1.0, null]}'
"""

from __future__ import annotations

import json
import math

import numpy as np

__all__ = ["finite", "dumps", "dump"]


def finite(obj):
    """``obj`` as plain JSON-able Python objects, every NaN/±inf float replaced by None."""
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else str(k)): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return finite(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def dumps(obj, **kw) -> str:
    """``json.dumps`` of :func:`finite` (obj), strict (``allow_nan=False``)."""
    return json.dumps(finite(obj), allow_nan=False, **kw)


def dump(obj, fp, **kw) -> None:
    """``json.dump`` of :func:`finite` (obj) to a text file object, strict (``allow_nan=False``)."""
    json.dump(finite(obj), fp, allow_nan=False, **kw)
