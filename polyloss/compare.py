"""Sampled vs exact: how far the finite-width runs are from the infinite-width limit (``polyloss compare``).

For a μP ``sample`` run and the exact limit 𝓛_∞^{(t)} (computed on the run's own data, or read
from a stored derivation), for each width: every loss coefficient ``c_k`` (k ≤ K) and ``η_n`` get
the seed mean ± standard error, the exact limit, the z-score, the relative RMS deviation
``RMS_seeds(c − c_∞)/|c_∞|``, and a verdict — *consistent* when the two-sided p-value of the z-score
is at least ``level / N`` (Bonferroni over the N comparisons of the table), else *inconsistent*.

η_n is compared with the limit's minimiser over the *same window* (0, Λ] that the run used (the
window-global minimiser; THEORY §6), and the first local minimiser of the limit is reported too.
Means at finite n carry an O(1/n) bias, so with enough seeds small widths are expected to be
flagged: the verdict answers "can these samples tell the mean from the limit?", and the rate
fits (:mod:`polyloss.analysis`) say how fast the difference closes.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
from scipy import stats

from polyloss.data import Dataset, load_data, synthetic
from polyloss.errors import RunError
from polyloss.sampling import SampleRun, data_seed, file_digest, load_run

__all__ = ["Limit", "Comparison", "compare", "run_dataset", "limit_for_run"]


@dataclass(frozen=True)
class Limit:
    """The exact infinite-width loss polynomial on a data set and its minimisers in a window."""

    loss_coefficients: tuple  # Fractions (exact) or floats, ascending powers of η
    eta_window_min: float  # minimiser of 𝓛_∞ over (0, window]
    eta_first_local_min: float | None
    eta_global_min: float | None  # over η > 0
    window: float
    exact: bool
    source: str
    minima: tuple = ()  # every local minimiser of 𝓛_∞ in (0, window], with the window's edge if 𝓛_∞ still falls there

    def coefficient(self, k: int) -> float:
        return float(self.loss_coefficients[k]) if k < len(self.loss_coefficients) else 0.0


def run_dataset(run: SampleRun | dict) -> Dataset:
    """Rebuild the data set a run was made on (synthetic: from its seed; file: checked by SHA-256)."""
    cfg = run.config if isinstance(run, SampleRun) else run
    desc = cfg["data"]
    if desc["kind"] == "synthetic":
        return synthetic(desc["teacher"], desc["d"], desc["m"], desc["noise"], data_seed(cfg["seed"]))
    if desc["kind"] != "file":
        raise RunError(f"the run's data ({desc.get('kind')!r}: {desc.get('source', '?')}) were passed in memory and cannot be rebuilt")
    path = desc["path"]
    if not os.path.exists(path):
        raise RunError(f"the run's data file {path!r} no longer exists")
    if file_digest(path) != desc["sha256"]:
        raise RunError(f"the run's data file {path!r} changed since the run (SHA-256 differs)")
    return load_data(path)


def _limit_from_derivation(doc: dict, window: float, source: str) -> Limit:
    coeffs = tuple(Fraction(c) for c in doc["loss_coefficients"])
    minima = [cp for cp in doc.get("critical_points", []) if cp.get("kind") == "min"]
    etas = sorted(float(cp["eta"]) for cp in minima)
    in_window = [cp for cp in minima if 0 < float(cp["eta"]) <= window]
    if in_window:
        best = min(in_window, key=lambda cp: float(cp["loss"]))
        eta_w = float(best["eta"])
        edge_loss = eval_exact(coeffs, window)
        if edge_loss < float(best["loss"]):
            eta_w = window
    else:
        eta_w = window  # the limit decreases through the whole window
    local = tuple(sorted(float(cp["eta"]) for cp in in_window))
    if eta_w == window:
        local = local + (window,)
    return Limit(coeffs, eta_w, etas[0] if etas else None,
                 float(doc["eta_inf"]) if doc.get("eta_inf") is not None else None, window, True, source, local)


def eval_exact(coeffs, eta: float) -> float:
    """An exact polynomial (Fraction coefficients) at a float point, without cancellation (Horner in Q)."""
    x, acc = Fraction(float(eta)), Fraction(0)
    for c in reversed(coeffs):
        acc = acc * x + c
    return float(acc)


def limit_for_run(run: SampleRun, derivation: str = "auto") -> Limit:
    """The exact μP limit for a run: derived now on the run's data (``"auto"``) or read from a file."""
    cfg = run.config
    if cfg["param"]["name"] != "mup":
        raise RunError(f"compare needs a muP run (the limit is deterministic only under muP); this run used "
                       f"param={cfg['param']['name']!r}: use `polyloss report` for its scaling fits")
    window = float(cfg["window"])
    if derivation == "auto":
        from polyloss.derive import derive

        res = derive(cfg["depth"], cfg["steps"], data=run_dataset(run), window=window)
        return _limit_from_derivation(res.to_json(), window, "derived on the run's data")
    if not os.path.exists(derivation):
        raise RunError(f"`derivation`={derivation!r} does not exist; give a polyloss.derivation/1 JSON file or 'auto'")
    try:
        with open(derivation) as fh:
            doc = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"`derivation`={derivation!r} is not a readable JSON file ({exc})") from None
    if doc.get("schema") != "polyloss.derivation/1":
        raise RunError(f"`derivation`={derivation!r} has schema {doc.get('schema')!r}, expected 'polyloss.derivation/1'")
    spec = doc.get("spec", {})
    for key in ("depth", "steps"):
        if spec.get(key) != cfg[key]:
            raise RunError(f"derivation {derivation!r} is for {key}={spec.get(key)}, but the run has {key}={cfg[key]}")
    try:
        [Fraction(c) for c in doc["loss_coefficients"]]
    except (ValueError, TypeError, KeyError):
        raise RunError(f"derivation {derivation!r} is a closed form in the moments mu_j, not evaluated on data; "
                       "derive it with --data (the run's data) or use --derivation auto") from None
    moments = doc.get("moments") or {}
    if "mu1" in moments:
        mine = run_dataset(run).moments(2)[1]
        theirs = float(Fraction(moments["mu1"]))
        if abs(mine - theirs) > 1e-9 * max(abs(mine), abs(theirs)):
            raise RunError(f"derivation {derivation!r} was computed on other data (mu_1 = {theirs:.6g}, the run's "
                           f"data have mu_1 = {mine:.6g})")
    return _limit_from_derivation(doc, window, f"file {derivation}")


@dataclass(frozen=True)
class Row:
    width: int
    quantity: str  # "c_0", "c_1", ..., "eta_n"
    count: int
    mean: float
    se: float
    limit: float
    z: float
    rel_rms: float
    p_value: float
    consistent: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    run: str
    rows: tuple
    level: float
    n_comparisons: int
    limit: Limit
    per_seed: dict  # quantity -> {width: per-seed values}, for rate fits

    @property
    def consistent(self) -> bool:
        return all(r.consistent for r in self.rows)

    def to_json(self) -> dict:
        return {
            "schema": "polyloss.compare/1",
            "run": self.run,
            "level": self.level,
            "n_comparisons": self.n_comparisons,
            "bonferroni_level": self.level / max(self.n_comparisons, 1),
            "limit": {
                "loss_coefficients": [str(c) for c in self.limit.loss_coefficients],
                "eta_window_min": self.limit.eta_window_min,
                "eta_first_local_min": self.limit.eta_first_local_min,
                "eta_global_min": self.limit.eta_global_min,
                "window": self.limit.window,
                "source": self.limit.source,
            },
            "rows": [r.to_dict() for r in self.rows],
            "all_consistent": self.consistent,
        }


def _row(width, name, vals, limit, level_corr) -> Row:
    vals = np.asarray(vals, dtype=float)
    k = vals.size
    mean = float(vals.mean())
    se = float(vals.std(ddof=1) / math.sqrt(k))
    dev = vals - limit
    rms = float(np.sqrt(np.mean(dev * dev)))
    rel = rms / abs(limit) if limit != 0 else rms
    if se > 0:
        z = (mean - limit) / se
        p = float(2 * stats.norm.sf(abs(z)))
    else:
        z = 0.0 if mean == limit else math.copysign(math.inf, mean - limit)
        p = 1.0 if mean == limit else 0.0
    return Row(width, name, k, mean, se, float(limit), float(z), rel, p, bool(p >= level_corr))


def compare(run_dir, derivation: str = "auto", *, level: float = 0.05, n_coeffs: int = 4,
            limit: Limit | None = None) -> Comparison:
    """Compare a μP ``sample`` run with the exact limit (see the module docstring)."""
    if not (0 < level < 1):
        raise RunError(f"`level`={level!r} is invalid: must be in (0, 1)")
    run = load_run(run_dir)
    if not run.records:
        raise RunError(f"run {os.fspath(run_dir)!r} has no finished records yet")
    thin = sorted(n for n, recs in run.by_width().items() if len(recs) < 2)
    if thin:
        raise RunError(f"run {os.fspath(run_dir)!r} has fewer than 2 samples at width(s) {thin}; "
                       "a standard error needs >= 2 (add samples with `polyloss sample ... --resume`)")
    lim = limit if limit is not None else limit_for_run(run, derivation)
    K = min([n_coeffs - 1] + [len(r["loss_coefficients"]) - 1 for r in run.records])
    per_seed: dict = {f"c_{k}": {} for k in range(K + 1)}
    per_seed["eta_n"] = {}
    for n, recs in run.by_width().items():
        C = np.array([r["loss_coefficients"][: K + 1] for r in recs], dtype=float)
        for k in range(K + 1):
            per_seed[f"c_{k}"][n] = C[:, k]
        per_seed["eta_n"][n] = np.array([r["eta_opt"] for r in recs], dtype=float)
    limits = {f"c_{k}": lim.coefficient(k) for k in range(K + 1)}
    limits["eta_n"] = lim.eta_window_min
    N = sum(len(v) for v in per_seed.values())
    rows = [_row(n, q, vals, limits[q], level / N) for q, groups in per_seed.items() for n, vals in sorted(groups.items())]
    order = {q: i for i, q in enumerate(per_seed)}
    rows.sort(key=lambda r: (r.width, order[r.quantity]))
    return Comparison(os.fspath(run_dir), tuple(rows), level, N, lim, per_seed)
