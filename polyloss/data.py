"""Training data: seeded synthetic teachers and loaders for NPZ and CSV files.

A :class:`Dataset` holds ``X`` (m × d) and ``y`` (m,) as float64 and is validated on creation:
no empty data, no NaN/inf, matching lengths. The input kernel is ``K = X Xᵀ / d`` and the data
moments ``μ_j = (1/m) yᵀ K̄^j y`` with ``K̄ = K/m`` (THEORY §1, §4).

Synthetic teachers (``x ~ N(0, I_d)``, ``w* ~ N(0, I_d / d)``, ``ε ~ N(0, σ²)``):

* ``linear``:    ``y = w*ᵀ x + ε`` (the paper's setting; default d = 100, m = 1000).
* ``nonlinear``: ``y = tanh(2 w*ᵀ x) + 0.5 sin(3 x_1) + ε`` — a fixed smooth non-linear target
  whose best linear fit leaves a sizeable residual, to exercise the theory outside the
  realisable case.
* ``principal``: ``y = X v_1 + ε`` with v_1 the top right singular vector of X — a *degenerate*
  target: without noise y is an eigenvector of K (``K X v_1 = (σ_1²/d) X v_1``), so μ_j = λ^j μ_0,
  the μP limit interpolates the data at η_∞ (𝓛_∞(η_∞) = 0 at t = 1) and learning-rate transfer
  is not *fast* (issue 12: the loss gap and the transfer penalty both shrink like 1/n).

Draw order from ``SeedSequence(seed)``: X (m × d, row-major), then w*, then ε.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass

import numpy as np

from polyloss.errors import DataError, invalid, short_repr

__all__ = ["Dataset", "linear_teacher", "nonlinear_teacher", "principal_teacher", "synthetic", "load_data", "TEACHERS"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs ``X`` (m × d) and targets ``y`` (m,), float64, finite, non-empty."""

    X: np.ndarray
    y: np.ndarray
    source: str = "array"

    def __post_init__(self) -> None:
        X = _real_array(self.X, "X", self.source)
        y = _real_array(self.y, "y", self.source)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if X.ndim != 2:
            raise DataError(f"data from {self.source}: `X` has shape {X.shape}, must be 2-D (m, d)")
        if y.ndim != 1:
            raise DataError(f"data from {self.source}: `y` has shape {y.shape}, must be 1-D (m,)")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise DataError(f"data from {self.source}: `X` has shape {X.shape}; empty data (need m >= 1, d >= 1)")
        if X.shape[0] != y.shape[0]:
            raise DataError(
                f"data from {self.source}: `X` has {X.shape[0]} rows but `y` has {y.shape[0]} entries; they must match"
            )
        for name, arr in (("X", X), ("y", y)):
            if not np.all(np.isfinite(arr)):
                bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
                raise DataError(f"data from {self.source}: `{name}` contains {bad} NaN/inf value(s); all must be finite")
        _check_overflow(X, y, self.source)
        X.setflags(write=False)
        y.setflags(write=False)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)

    @property
    def m(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    def kernel(self) -> np.ndarray:
        """``K = X Xᵀ / d``."""
        return self.X @ self.X.T / self.d

    def moments(self, count: int = 3) -> np.ndarray:
        """``[μ_0, …, μ_{count-1}]`` with ``μ_j = (1/m) yᵀ K̄^j y``, computed without forming K."""
        out = np.empty(count)
        v = self.y.copy()
        for j in range(count):
            out[j] = self.y @ v / self.m
            v = self.X @ (self.X.T @ v) / (self.d * self.m)
        return out

    def eta_inf_t1(self, depth: int) -> float:
        """The μP one-step limit ``η_∞ = μ_1 / (L μ_2)`` (THEORY §4); needs ``K y ≠ 0``."""
        mu = self.moments(3)
        if not mu[2] > 1e-300 * max(1.0, mu[0]):
            raise DataError(
                f"data from {self.source}: K y = 0 (mu_2 = {mu[2]:.3g}), so the muP limit "
                "eta_inf = mu_1/(L mu_2) and the default window do not exist; pass an explicit window"
            )
        return float(mu[1] / (depth * mu[2]))

    def to_npz(self, path) -> None:
        np.savez(path, X=self.X, y=self.y)


def _real_array(value, name: str, source: str) -> np.ndarray:
    """``value`` as a float64 array; complex (the imaginary part would be lost), boolean, string and
    object arrays are refused rather than silently converted."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"data from {source}: `{name}` is not a numeric array ({exc})") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise DataError(f"data from {source}: `{name}` is complex ({arr.dtype}); must be real numbers "
                        "(the imaginary part would be dropped)")
    if kind not in "fiu":
        raise DataError(f"data from {source}: `{name}` has dtype {arr.dtype}; must be real numbers (float or int)")
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:  # pragma: no cover - numeric kinds convert
        raise DataError(f"data from {source}: `{name}` cannot be converted to float64 ({exc})") from None


def _check_overflow(X: np.ndarray, y: np.ndarray, source: str) -> None:
    """Refuse data whose kernel or moments overflow float64 (they would show up later as a
    misleading "K y = 0" or a diverging loss)."""
    if X.size == 0 or y.size == 0:
        return
    with np.errstate(all="ignore"):
        sx, sy = float(np.max(np.abs(X))), float(np.max(np.abs(y)))
        m, d = X.shape
        # |K_ij| <= sx^2, |(1/m) y^T Kbar^j y| <= sy^2 sx^(2j) for j <= 2; logs avoid overflowing here
        logs = [2 * math.log10(sx) if sx > 0 else -math.inf, 2 * math.log10(sy) if sy > 0 else -math.inf]
        worst = max(logs[0], logs[1] + 2 * logs[0], logs[1])
    if worst > 300:
        raise DataError(f"data from {source}: values overflow float64 (|X| up to {sx:.3g}, |y| up to {sy:.3g}: "
                        "the kernel X X^T/d and the moments mu_j exceed 1e300); rescale the data")


TEACHERS = ("linear", "nonlinear", "principal")


def _check_sizes(d, m, noise) -> tuple[int, int, float]:
    for name, v in (("d", d), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise invalid(name, v, "an integer >= 1")
    if isinstance(noise, bool):
        raise invalid("noise", noise, "a finite number >= 0")
    try:
        noise = float(noise)
    except (TypeError, ValueError, OverflowError):
        raise invalid("noise", noise, "a finite number >= 0 and <= 1e100") from None
    if not np.isfinite(noise) or noise < 0 or noise > 1e100:
        raise invalid("noise", noise, "a finite number >= 0 and <= 1e100")
    from polyloss._budget import check_data_size

    check_data_size(int(m), int(d))
    return int(d), int(m), noise


def _seed_seq(seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise invalid("seed", seed, "an integer >= 0 or a numpy SeedSequence")
    return np.random.SeedSequence(int(seed))


def _draw(d, m, noise, seed):
    d, m, noise = _check_sizes(d, m, noise)
    rng = np.random.Generator(np.random.PCG64(_seed_seq(seed)))
    X = rng.standard_normal((m, d))
    w = rng.standard_normal(d) / np.sqrt(d)
    eps = noise * rng.standard_normal(m)
    return X, w, eps


def linear_teacher(d: int = 100, m: int = 1000, noise: float = 0.0, seed=0) -> Dataset:
    """``y = w*ᵀx + ε`` with ``x ~ N(0, I_d)``, ``w* ~ N(0, I_d/d)``, ``ε ~ N(0, noise²)``.

    Example:
      >>> ds = linear_teacher(d=5, m=20, seed=1)
      >>> ds.X.shape, ds.y.shape
      ((20, 5), (20,))
    """
    X, w, eps = _draw(d, m, noise, seed)
    return Dataset(X, X @ w + eps, source=f"linear teacher (d={d}, m={m}, noise={noise}, seed={seed})")


def nonlinear_teacher(d: int = 100, m: int = 1000, noise: float = 0.0, seed=0) -> Dataset:
    """``y = tanh(2 w*ᵀx) + 0.5 sin(3 x_1) + ε`` (same draws as :func:`linear_teacher`)."""
    X, w, eps = _draw(d, m, noise, seed)
    y = np.tanh(2.0 * (X @ w)) + 0.5 * np.sin(3.0 * X[:, 0]) + eps
    return Dataset(X, y, source=f"nonlinear teacher (d={d}, m={m}, noise={noise}, seed={seed})")


def principal_teacher(d: int = 100, m: int = 1000, noise: float = 0.0, seed=0) -> Dataset:
    """``y = X v_1 + ε`` with v_1 the top right singular vector of X (sign fixed: largest entry
    positive), same draws as :func:`linear_teacher` (w* drawn and unused). With ``noise=0`` y is an
    eigenvector of K = XXᵀ/d: a degenerate target on which μP transfer is not fast."""
    X, _, eps = _draw(d, m, noise, seed)
    _, vecs = np.linalg.eigh(X.T @ X)
    v = vecs[:, -1]
    v = v if v[np.argmax(np.abs(v))] > 0 else -v
    return Dataset(X, X @ v + eps, source=f"principal teacher (d={d}, m={m}, noise={noise}, seed={seed})")


def synthetic(kind: str, d: int = 100, m: int = 1000, noise: float = 0.0, seed=0) -> Dataset:
    """Dispatch on ``kind`` in :data:`TEACHERS`."""
    if kind == "linear":
        return linear_teacher(d, m, noise, seed)
    if kind == "nonlinear":
        return nonlinear_teacher(d, m, noise, seed)
    if kind == "principal":
        return principal_teacher(d, m, noise, seed)
    raise invalid("synthetic", kind, "one of " + ", ".join(repr(t) for t in TEACHERS))


def _load_npz(path: str) -> Dataset:
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            keys = set(f.files)
            missing = {"X", "y"} - keys
            if missing:
                raise DataError(
                    f"data file {path!r} lacks key(s) {sorted(missing)}; an NPZ data file needs `X` (m×d) and `y` (m,), found {sorted(keys)}"
                )
            X, y = f["X"], f["y"]
    except DataError:
        raise
    except Exception as exc:  # corrupt zip, pickled objects, ...
        raise DataError(f"data file {path!r} is not a readable NPZ file ({type(exc).__name__}: {exc})") from None
    return Dataset(X, y, source=repr(path))


def _load_csv(path: str) -> Dataset:
    """CSV: one row per point, columns x_1..x_d then y; an optional non-numeric header row."""
    rows = []
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise DataError(f"data file {path!r} cannot be read ({exc.strerror})") from None
    if b"\x00" in raw:
        raise DataError(f"data file {path!r} is binary (it contains NUL bytes); expected CSV text with columns x_1..x_d, y")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"data file {path!r}, line {line}: not UTF-8 text (byte {raw[e.start:e.start + 1]!r}); "
                        "expected CSV text with columns x_1..x_d, y") from None
    try:
        for lineno, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            try:
                vals = [float(c) for c in row]
            except ValueError:
                if lineno == 1 and not rows:
                    continue  # header
                raise DataError(f"data file {path!r}, line {lineno}: non-numeric value in {short_repr(row)}") from None
            if not all(math.isfinite(v) for v in vals):
                raise DataError(f"data file {path!r}, line {lineno}: NaN/inf or a value beyond float64's range "
                                f"in {short_repr(row)}; all values must be finite")
            rows.append(vals)
    except csv.Error as exc:
        raise DataError(f"data file {path!r} is not valid CSV ({exc})") from None
    if not rows:
        raise DataError(f"data file {path!r} has no data rows; need columns x_1..x_d, y")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise DataError(f"data file {path!r}: rows have different numbers of columns {sorted(widths)}")
    arr = np.array(rows, dtype=np.float64)
    if arr.shape[1] < 2:
        raise DataError(f"data file {path!r} has {arr.shape[1]} column; need at least 2 (x_1..x_d, y)")
    return Dataset(arr[:, :-1], arr[:, -1], source=repr(path))


def load_data(path) -> Dataset:
    """Load ``.npz`` (keys ``X``, ``y``) or ``.csv`` (columns x_1..x_d, y) into a :class:`Dataset`."""
    from polyloss._paths import check_in_file

    path = check_in_file("data", path, "an .npz (X, y) or .csv file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        return _load_npz(path)
    if ext == ".csv":
        return _load_csv(path)
    raise invalid("data", path, "a path ending in .npz (keys X, y) or .csv (columns x_1..x_d, y)", DataError)
