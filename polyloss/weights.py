"""Network weights: sampling per parametrization, and loading a user's network from NPZ.

Weights are *effective* weights: ``f(x) = Vᵀ W_L ⋯ W_1 W_0 x`` with ``W_0`` (n × d), hidden
``W_1..W_L`` (n × n) and readout ``V`` (n,). The parametrization only sets the initial variances
(when sampling) and the hidden learning-rate multiplier (always).

Seeding: the network for (width n, sample s) of a run with root seed ``seed`` is drawn from
``SeedSequence(seed, spawn_key=(n, s))`` — an independent child per (width, sample), so a result
never depends on which other widths/samples are in the run or how the work was chunked. Within
one child the draw order is: ``W_0`` (n × d, row-major), ``W_1``, …, ``W_L`` (n × n each), ``V``;
each as standard normals times the standard deviation of THEORY §2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from polyloss._backend import make_rng, to_host
from polyloss.errors import DataError, invalid
from polyloss.spec import NetworkSpec, Parametrization

__all__ = ["Weights", "DenseLayer", "sample_weights", "child_seed", "load_weights"]


class DenseLayer:
    """A hidden layer as an operator on row-stacked vectors: ``forward(X) = X Wᵀ`` (each row x ↦ W x)
    and ``backward(Y) = Y W`` (each row y ↦ Wᵀ y). The engine only ever needs these two products,
    which is what lets a lazily sampled layer (Gaussian conditioning) stand in for a dense one."""

    __slots__ = ("W",)

    def __init__(self, W):
        self.W = W

    def forward(self, X):
        return X @ self.W.T

    def backward(self, Y):
        return Y @ self.W


@dataclass(frozen=True, eq=False)
class Weights:
    """Effective weights of a deep linear MLP; arrays may live on any backend (numpy or CuPy)."""

    W0: object
    hidden: tuple
    V: object

    @property
    def width(self) -> int:
        return int(self.V.shape[0])

    @property
    def depth(self) -> int:
        return len(self.hidden)

    @property
    def input_dim(self) -> int:
        return int(self.W0.shape[1])

    def operators(self) -> list:
        """One operator per hidden layer (see :class:`DenseLayer`)."""
        return [DenseLayer(W) for W in self.hidden]

    def to_npz(self, path) -> None:
        arrays = {"W0": to_host(self.W0), "V": to_host(self.V)}
        arrays.update({f"W{l}": to_host(w) for l, w in enumerate(self.hidden, start=1)})
        np.savez(path, **arrays)


def child_seed(seed: int, width: int, sample: int) -> np.random.SeedSequence:
    """The seed sequence of network (width, sample) in a run with root ``seed``."""
    return np.random.SeedSequence(int(seed), spawn_key=(int(width), int(sample)))


def sample_weights(
    net: NetworkSpec, param: Parametrization, seed_seq: np.random.SeedSequence, xp=np
) -> Weights:
    """Draw ``W_0 ~ N(0, 1/d)``, ``W_ℓ ~ N(0, 1/n)``, ``V ~ N(0, n^{-α})`` in float64 on ``xp``."""
    if not isinstance(seed_seq, np.random.SeedSequence):
        raise invalid("seed_seq", seed_seq, "a numpy.random.SeedSequence")
    n, d, L = net.width, net.input_dim, net.depth
    rng = make_rng(xp, seed_seq)
    W0 = rng.standard_normal((n, d), dtype=xp.float64)
    W0 *= 1.0 / np.sqrt(d)
    hidden = []
    for _ in range(L):
        W = rng.standard_normal((n, n), dtype=xp.float64)
        W *= 1.0 / np.sqrt(n)
        hidden.append(W)
    V = rng.standard_normal(n, dtype=xp.float64) * np.sqrt(param.readout_variance(n))
    return Weights(W0, tuple(hidden), V)


_KEY = re.compile(r"^W(\d+)$")


def _check_overflow(where: str, W0, hidden, V) -> None:
    """Refuse weights whose forward pass can overflow float64: |f(x)| <= |x| prod_l ||W_l||_F
    (the loss polynomial squares it and multiplies further by the learning rate)."""
    log_gain = 0.0
    for W in (W0, *hidden, V):
        top = float(np.max(np.abs(W))) if W.size else 0.0
        if top == 0.0:
            return  # the network is exactly zero somewhere: nothing can overflow
        log_gain += np.log10(top) + 0.5 * np.log10(float(np.sum(np.square(W / top))))
    if log_gain > 150:
        raise DataError(f"{where}: the weights' values overflow float64 (the layers' gains multiply to about "
                        f"1e{log_gain:.0f}; the loss polynomial needs their square and more); rescale the weights")


def load_weights(path, input_dim: int | None = None, xp=np) -> Weights:
    """Load ``W0`` (n×d), ``W1``…``WL`` (n×n) and ``V`` (n,) from an NPZ file, checking shapes.

    Args:
      path: the NPZ file (e.g. exported from PyTorch as effective weights).
      input_dim: the data's d, checked against ``W0``'s columns when given.
    """
    from polyloss._paths import check_in_file

    path = check_in_file("weights", path, "an NPZ with W0, W1..WL, V")
    where = f"weights file {path!r}"
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            raw = {k: np.asarray(f[k]) for k in f.files}
    except Exception as exc:  # corrupt zip, not an NPZ, pickled objects, ...
        raise DataError(f"{where} is not a readable NPZ of numeric arrays ({type(exc).__name__}: {exc})") from None
    arrays = {}
    for k, a in raw.items():
        if a.dtype.kind == "c":
            raise DataError(f"{where}: `{k}` is complex ({a.dtype}); weights must be real (the imaginary part would be dropped)")
        if a.dtype.kind not in "fiu":
            raise DataError(f"{where}: `{k}` has dtype {a.dtype}; weights must be real numbers (float or int)")
        arrays[k] = a.astype(np.float64)
    for key in ("W0", "V"):
        if key not in arrays:
            raise DataError(f"{where} lacks `{key}`; needs W0 (n×d), W1..WL (n×n), V (n,), found {sorted(arrays)}")
    layer_ids = sorted(int(m.group(1)) for k in arrays if (m := _KEY.match(k)) and m.group(1) != "0")
    if not layer_ids:
        raise DataError(f"{where} has no hidden layer; needs W1..WL (n×n) with L >= 1, found {sorted(arrays)}")
    if layer_ids != list(range(1, len(layer_ids) + 1)):
        raise DataError(f"{where}: hidden layers must be W1..WL without gaps, found {['W%d' % i for i in layer_ids]}")
    extra = sorted(set(arrays) - {"W0", "V"} - {f"W{i}" for i in layer_ids})
    if extra:
        raise DataError(f"{where} has unexpected key(s) {extra}; allowed: W0, W1..WL, V")
    V = arrays["V"].reshape(-1) if arrays["V"].ndim == 2 and 1 in arrays["V"].shape else arrays["V"]
    if V.ndim != 1 or V.shape[0] < 1:
        raise DataError(f"{where}: `V` has shape {arrays['V'].shape}, must be (n,)")
    n = V.shape[0]
    W0 = arrays["W0"]
    if W0.ndim != 2 or W0.shape[0] != n:
        raise DataError(f"{where}: `W0` has shape {W0.shape}, must be (n, d) = ({n}, d) to match V of length {n}")
    if input_dim is not None and W0.shape[1] != input_dim:
        raise DataError(f"{where}: `W0` has shape {W0.shape} but the data have d = {input_dim} columns; must be ({n}, {input_dim})")
    hidden = []
    for i in layer_ids:
        W = arrays[f"W{i}"]
        if W.shape != (n, n):
            raise DataError(f"{where}: `W{i}` has shape {W.shape}, must be ({n}, {n}) (n = len(V))")
        hidden.append(W)
    for key, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{where}: `{key}` contains NaN/inf; all weights must be finite")
    _check_overflow(where, W0, hidden, V)
    return Weights(xp.asarray(W0), tuple(xp.asarray(W) for W in hidden), xp.asarray(V))
