"""Array backends: numpy by default, CuPy only when asked for (never imported otherwise).

Numeric code takes an array namespace ``xp``; results leave this layer as numpy arrays
(:func:`to_host`), so analysis, storage and plotting never see device arrays.
"""

from __future__ import annotations

import sys

import numpy as np

from polyloss.errors import BackendUnavailable, invalid

BACKENDS = ("numpy", "cupy")


def get_xp(name: str = "numpy"):
    """Return the array namespace for ``name`` ('numpy' or 'cupy')."""
    if name == "numpy":
        return np
    if name == "cupy":
        try:
            import cupy  # noqa: PLC0415  (optional dependency, imported only on request)
        except Exception as exc:  # ImportError, or CUDA libraries missing at import time
            raise BackendUnavailable(
                f"`backend`='cupy' is unavailable ({type(exc).__name__}: {exc}); "
                "install polyloss[gpu] on a machine with a CUDA GPU, or use backend='numpy'"
            ) from None
        try:
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no CUDA device")
        except Exception as exc:
            raise BackendUnavailable(
                f"`backend`='cupy' is unavailable: no usable CUDA device ({exc}); use backend='numpy'"
            ) from None
        return cupy
    raise invalid("backend", name, "one of 'numpy', 'cupy'")


def namespace_of(a):
    """The array namespace that ``a`` belongs to: numpy, CuPy, or whatever ``a.__array_namespace__()``
    names (array-API objects). Never imports CuPy for a numpy array."""
    if isinstance(a, (np.ndarray, np.generic)):
        return np
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(a, cupy.ndarray):
        return cupy
    ns = getattr(a, "__array_namespace__", None)
    if ns is not None:
        return ns()
    raise TypeError(f"not an array of a known backend: {type(a).__name__}")


def make_rng(xp, seed_seq: np.random.SeedSequence):
    """A generator for ``xp`` seeded from ``seed_seq`` (numpy: PCG64; CuPy: its default bit generator).

    Streams differ between backends for the same seed: compare backends in distribution.
    """
    if xp is np:
        return np.random.Generator(np.random.PCG64(seed_seq))
    state = int(seed_seq.generate_state(2, dtype=np.uint64)[0])
    return xp.random.default_rng(state)


def to_host(a):
    """Return ``a`` as a numpy array (copying from the device when needed)."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)
    if get is not None:
        return get()
    return np.asarray(a)
