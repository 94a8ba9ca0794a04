"""Empirical learning-rate sweeps by actual training (``polyloss sweep``); no polynomial involved.

For every width ``n`` in ``widths`` and sample ``s`` in ``0..seeds-1``, the network (n, s) is drawn
exactly as ``polyloss sample`` draws it (``sample_weights(NetworkSpec(L, n, d), param,
SeedSequence(seed, spawn_key=(n, s)))``), trained for ``steps`` full-batch steps at every learning
rate of an η grid, and the training loss is recorded at every step 0..steps. A sweep and a
``sample`` run with the same seed, data and parametrization therefore see the same networks.

How each network is trained (network, optimizers, recipes, minibatches, init gains, RMSNorm,
alignment diagnostics, vectorisation, divergence): :mod:`polyloss.train`.

Run directory (:mod:`polyloss._rundir`), schema ``polyloss.sweep/1``:

* ``run.json``: depth, steps, etas (the grid, sorted ascending), eta_spec, activation, optimizer,
  param, recipe (:meth:`polyloss.recipe.Recipe.to_dict`; absent in runs written before recipes:
  the plain recipe), adam ({betas, eps, exponent} or null), dtype, method, seed, data description, backend, widths,
  seeds, m, input_dim, polyloss_version;
* ``records.jsonl``: one line per (width, sample) appended as soon as it is finished: ``width``,
  ``sample``, ``seed`` ({entropy, spawn_key}), ``losses`` (one list per η of the grid, the loss
  at steps 0..steps; null = +inf), ``eta_best``/``loss_best`` (grid argmin of the final loss, null
  if every η diverged), ``diverged`` (number of η whose final loss is +inf), ``method`` (the one
  used), ``seconds``.

``resume=True`` continues a killed run (a torn last line is dropped) and may add widths or seeds;
everything else must match. Records do not depend on chunking or on the other widths/seeds.

Example:
  >>> from polyloss.data import linear_teacher
  >>> ds = linear_teacher(d=4, m=10, seed=0)
  >>> run = run_sweep(tmp_dir, depth=2, widths=[16], etas="lin:0.1:2:20", seeds=2, steps=1,
  ...                 data=ds, progress=False)                       # doctest: +SKIP
  >>> run.optimum(16).eta                                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import time
from dataclasses import dataclass

import numpy as np

from polyloss import __version__
from polyloss._backend import get_xp
from polyloss._progress import Progress
from polyloss._rundir import RECORDS, load_run_config, read_records, run_session
from polyloss.data import Dataset
from polyloss.errors import RunError, SpecError, invalid
from polyloss.executor import batches, check_executor, resolve_executor
from polyloss.recipe import PLAIN
from polyloss.spec import NetworkSpec, Parametrization, parse_widths
# the training engine; its public names are re-exported here, where they were defined before the split
from polyloss.train import (ACTIVATIONS, ADAM_BETAS, ADAM_EXPONENTS, ALIGNMENT_METRICS, DEFAULT_ADAM_EPS,
                            DEFAULT_MEMORY_MB, DTYPES, INIT_GAINS, METHODS, NORMS, OPTIMIZERS, READOUT_INITS,
                            _check_choice, _check_count, _check_positive, _cost, _plain, _record_method,
                            adam_exponent_for, adam_layer_exponents, alignment_layers, alignment_steps, batch_schedule,
                            choose_method, parse_etas, parse_init_gain, sweep_network, with_init_gain)
from polyloss.weights import child_seed, sample_weights

__all__ = [
    "SCHEMA",
    "ACTIVATIONS",
    "OPTIMIZERS",
    "DTYPES",
    "METHODS",
    "choose_method",
    "ADAM_BETAS",
    "ADAM_EXPONENTS",
    "parse_etas",
    "adam_exponent_for",
    "sweep_network",
    "batch_schedule",
    "parse_init_gain",
    "with_init_gain",
    "INIT_GAINS",
    "SweepOptimum",
    "sweep_optimum",
    "SweepRun",
    "run_sweep",
    "load_sweep",
    "summarise",
]

SCHEMA = "polyloss.sweep/1"
RECORD_FIELDS = ("width", "sample", "losses")
_MATCH_KEYS = ("depth", "steps", "etas", "activation", "optimizer", "param", "adam", "dtype", "method", "seed", "data", "backend",
               "recipe", "batch", "init_gain", "alignment", "readout_init", "norm", "models")
#: Keys a run.json may lack (written before they existed), with the value that absence means.
_DEFAULTS = {"recipe": PLAIN.to_dict(), "batch": None, "init_gain": "1", "alignment": False, "readout_init": "param",
             "norm": None, "models": None}


# ----------------------------------------------------------------------------------------- optimum
@dataclass(frozen=True)
class SweepOptimum:
    """Grid minimisers at one width (``losses`` of shape seeds × etas at one step).

    ``eta``: argmin of the seed-mean loss (``None`` when every η diverged for some seed — the mean
    over seeds is +inf wherever any seed diverged); ``loss`` the seed-mean loss there; ``index``
    its grid index; ``spacing`` the larger grid gap next to it (for a unimodal loss the true
    minimiser is within ``spacing`` of ``eta``); ``at_edge`` the argmin is the first or last grid
    point (the minimum may lie outside the grid). ``seed_etas``: the per-seed argmins (NaN where
    every η diverged), ``seed_eta_mean``/``seed_eta_se`` their mean and standard error.
    """

    eta: float | None
    loss: float | None
    index: int | None
    spacing: float | None
    at_edge: bool
    seed_etas: tuple
    seed_eta_mean: float
    seed_eta_se: float
    count: int
    diverged: int

    def to_dict(self) -> dict:
        return {
            "eta": self.eta, "loss": self.loss, "index": self.index, "spacing": self.spacing, "at_edge": self.at_edge,
            "seed_etas": list(self.seed_etas), "seed_eta_mean": self.seed_eta_mean, "seed_eta_se": self.seed_eta_se,
            "count": self.count, "diverged": self.diverged,
        }


def _gap(etas: np.ndarray, i: int) -> float:
    gaps = []
    if i > 0:
        gaps.append(etas[i] - etas[i - 1])
    if i + 1 < etas.size:
        gaps.append(etas[i + 1] - etas[i])
    return float(max(gaps)) if gaps else 0.0


def sweep_optimum(etas, losses) -> SweepOptimum:
    """Per-seed grid argmins and the argmin of the seed-mean loss; ``losses`` is (seeds, etas) or (etas,)."""
    etas = np.asarray(etas, dtype=np.float64)
    L = np.atleast_2d(np.asarray(losses, dtype=np.float64))
    if L.shape[1] != etas.size:
        raise invalid("losses", L.shape, f"an array of shape (seeds, {etas.size}) matching the grid")
    if etas.size > 1 and np.any(np.diff(etas) <= 0):
        raise invalid("etas", etas.tolist(), "a strictly increasing grid")
    L = np.where(np.isfinite(L), L, np.inf)
    seed_etas = []
    for row in L:
        seed_etas.append(float(etas[int(np.argmin(row))]) if np.isfinite(row).any() else float("nan"))
    se_arr = np.array(seed_etas)
    fin = se_arr[np.isfinite(se_arr)]
    mean_eta = float(fin.mean()) if fin.size else float("nan")
    se = float(fin.std(ddof=1) / np.sqrt(fin.size)) if fin.size > 1 else float("nan")
    mean_loss = L.mean(axis=0)
    diverged = int(np.sum(~np.isfinite(mean_loss)))
    if np.isfinite(mean_loss).any():
        i = int(np.argmin(mean_loss))
        eta, loss, spacing = float(etas[i]), float(mean_loss[i]), _gap(etas, i)
        edge = i == 0 or i == etas.size - 1
    else:
        i = eta = loss = spacing = None
        edge = False
    return SweepOptimum(eta, loss, i, spacing, edge, tuple(seed_etas), mean_eta, se, int(L.shape[0]), diverged)


# ----------------------------------------------------------------------------------------- runs
def _inf_to_null(a: np.ndarray) -> list:
    return [[None if not math.isfinite(v) else v for v in row] for row in a.tolist()]


def _null_to_inf(rows) -> np.ndarray:
    return np.array([[np.inf if v is None else v for v in row] for row in rows], dtype=np.float64)


@dataclass(frozen=True)
class SweepRun:
    """A sweep directory: its configuration and finished records (sorted by width, sample)."""

    path: str
    config: dict
    records: tuple

    @property
    def etas(self) -> np.ndarray:
        return np.asarray(self.config["etas"], dtype=np.float64)

    @property
    def steps(self) -> int:
        return int(self.config["steps"])

    @property
    def widths(self) -> list[int]:
        return sorted({r["width"] for r in self.records})

    def by_width(self) -> dict:
        out: dict[int, list] = {}
        for r in self.records:
            out.setdefault(r["width"], []).append(r)
        return out

    def losses(self, width: int) -> np.ndarray:
        """Losses at ``width``: shape (seeds, etas, steps + 1), +inf where diverged."""
        recs = self.by_width().get(int(width))
        if not recs:
            raise invalid("width", width, "one of the run's finished widths " + str(self.widths))
        return np.stack([_null_to_inf(r["losses"]) for r in recs])

    def final_losses(self, width: int, step: int | None = None) -> np.ndarray:
        """Losses at ``step`` (default: the last), shape (seeds, etas)."""
        k = self.steps if step is None else _check_step(step, self.steps)
        return self.losses(width)[:, :, k]

    def optimum(self, width: int, step: int | None = None) -> SweepOptimum:
        return sweep_optimum(self.etas, self.final_losses(width, step))

    def summary(self, step: int | None = None) -> list[dict]:
        return summarise(self, step)


def _check_step(step, steps: int) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or not 0 <= int(step) <= steps:
        raise invalid("step", step, f"an integer in 0..{steps}")
    return int(step)


def summarise(run: SweepRun, step: int | None = None) -> list[dict]:
    """Per width: :class:`SweepOptimum` as a dict, plus ``width``."""
    return [{"width": n, **run.optimum(n, step).to_dict()} for n in run.widths]


@dataclass(frozen=True)
class _SweepJob:
    """What every record of a sweep needs besides its (width, sample): sent once to each worker."""

    depth: int
    param: Parametrization
    seed: int
    data: Dataset
    grid: np.ndarray
    steps: int
    activation: str
    optimizer: str
    adam_eps: float
    adam_exponent: object
    dtype: str
    memory_mb: float
    method: str
    backend: str
    recipe: object
    methods: dict  # the method recorded per width
    batch: int | None = None
    gain: float = 1.0
    alignment: bool = False
    readout_init: str = "param"
    norm: str | None = None
    models: dict | None = None  # {width: Weights}: the user's networks instead of sampled ones


def _check_models(models, depth: int, d: int, widths, seeds, init_gain, readout_init):
    """({width: Weights}, JSON description) of a user's networks, or (None, None); one-line errors."""
    from polyloss.weights import Weights

    if models is None:
        return None, None
    if isinstance(models, (str, bytes)) or not hasattr(models, "__iter__"):
        raise invalid("models", type(models).__name__, "a list of Weights or ImportedModel, one per width")
    out, desc = {}, []
    for m in models:
        w = getattr(m, "weights", m)
        if not isinstance(w, Weights):
            raise invalid("models", type(m).__name__, "a list of Weights or ImportedModel, one per width")
        if w.depth != depth or w.input_dim != d:
            raise invalid("models", f"a model of depth {w.depth} on {w.input_dim} inputs",
                          f"models of depth {depth} on the data's d = {d} inputs")
        if w.width in out:
            raise invalid("models", f"two models of width {w.width}", "one model per width")
        h = hashlib.sha256()
        for a in (w.W0, *[np.asarray(W) for W in w.hidden], w.V):
            h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
        out[w.width] = w
        desc.append({"width": w.width, "sha256": h.hexdigest(), "notes": list(getattr(m, "notes", ()))})
    if not out:
        raise invalid("models", "[]", "a non-empty list of models")
    if widths is not None:
        raise invalid("widths", widths, "None with models (their widths are used)")
    if seeds != 1:
        raise invalid("seeds", seeds, "1 with models (one network per width)")
    if str(init_gain) != "1" or readout_init != "param":
        raise SpecError("`init_gain`/`readout_init` are invalid with models: the given weights are trained as they are")
    return out, sorted(desc, key=lambda r: r["width"])


def _sweep_batch(job: _SweepJob, units) -> list[tuple]:
    """Train ``units`` ((width, sample, lo, hi): the learning rates ``grid[lo:hi]`` of one network), in
    order: one executor task. Returns (width, sample, lo, losses, seconds) per unit. Each η trains
    independently of the others, so pieces of a grid give the rows of the whole grid bit for bit."""
    xp = get_xp(job.backend)
    out = []
    for n, s, lo, hi in units:
        t0 = time.perf_counter()
        if job.models is not None:  # the user's network (one per width)
            w = job.models[n]
            weights = w if xp is np else type(w)(xp.asarray(w.W0), tuple(xp.asarray(W) for W in w.hidden), xp.asarray(w.V))
        else:
            weights = sample_weights(NetworkSpec(job.depth, n, job.data.d), job.param, child_seed(job.seed, n, s), xp=xp)
        rows = None if job.batch is None else batch_schedule(job.data.m, job.batch, job.steps, job.seed, s)
        losses = sweep_network(with_init_gain(weights, job.gain, job.readout_init), job.data, job.param, job.grid[lo:hi], job.steps,
                               activation=job.activation, optimizer=job.optimizer, adam_eps=job.adam_eps,
                               adam_exponent=job.adam_exponent, dtype=job.dtype, memory_mb=job.memory_mb,
                               method=job.method, xp=xp, recipe=job.recipe, batches=rows, alignment=job.alignment,
                               norm=job.norm)
        out.append((n, s, lo, losses, time.perf_counter() - t0))
    return out


def _sweep_record(job: _SweepJob, n: int, s: int, losses, seconds: float) -> dict:
    diag = None
    if job.alignment:
        losses, diag = np.vstack([p[0] for p in losses]), np.concatenate([p[1] for p in losses])
    final = losses[:, -1]
    best = int(np.argmin(final)) if np.isfinite(final).any() else None
    return {
        "width": n,
        "sample": s,
        "seed": {"entropy": job.seed, "spawn_key": [n, s]},
        "losses": _inf_to_null(losses),
        "eta_best": None if best is None else float(job.grid[best]),
        "loss_best": None if best is None else float(final[best]),
        "diverged": int(np.sum(np.isinf(final))),
        "method": job.methods[n],
        **({} if diag is None else {"alignment": _alignment_json(diag)}),
        "seconds": round(seconds, 4),
    }


def _alignment_json(diag: np.ndarray) -> dict:
    """{metric: values[eta][layer][logged step]} with null for NaN (strict JSON)."""
    return {name: [[[None if not math.isfinite(v) else v for v in row] for row in per_eta]
                   for per_eta in diag[..., i].tolist()] for i, name in enumerate(ALIGNMENT_METRICS)}


def _eta_pieces(todo, seconds, n_eta: int, target: float, workers: int):
    """Split each network's grid into pieces so that a few expensive networks still spread over the
    workers: a record estimated above max(target, total / (4 workers)) seconds is cut into that many
    pieces (at most one η each). Serial (target 0 or one worker): one piece per network, the whole grid.
    Returns the units (width, sample, lo, hi) and their estimated seconds."""
    units, secs = [], []
    piece = max(target, sum(seconds) / (4 * workers)) if target > 0 and workers > 1 else math.inf
    for (n, s), sec in zip(todo, seconds):
        k = 1 if not math.isfinite(piece) else max(1, min(n_eta, math.ceil(sec / piece)))
        bounds = np.linspace(0, n_eta, k + 1).round().astype(int)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            units.append((n, s, int(lo), int(hi)))
            secs.append(sec * (hi - lo) / n_eta)
    return units, secs


#: Seconds per record beyond the cost model, and per unit of :func:`_cost` × steps × depth, measured on
#: the 2-core reference machine (dense ~1e-10, low rank ~2.5e-10 at L = 3): only used to size tasks.
SECONDS_PER_RECORD = 0.005
SECONDS_PER_COST = 2e-10


def _seconds(cost: float, steps: int, depth: int) -> float:
    return SECONDS_PER_RECORD + SECONDS_PER_COST * cost * steps * depth


def load_sweep(path) -> SweepRun:
    """Load a run directory written by :func:`run_sweep`."""
    path = os.fspath(path)
    # typed checks of etas (finite, >= 0) and steps (integer >= 1) happen in load_config
    config = load_run_config(path, SCHEMA, _MATCH_KEYS + ("widths", "seeds", "etas", "m", "input_dim"), _DEFAULTS)
    recs = sorted(read_records(os.path.join(path, RECORDS), required=RECORD_FIELDS), key=lambda r: (r["width"], r["sample"]))
    etas, steps = config["etas"], config["steps"]
    ok = lambda v: v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool) and not math.isnan(v))  # noqa: E731
    for r in recs:
        L = r["losses"]
        if (len(L) != len(etas) or not all(isinstance(row, list) and len(row) == steps + 1 and all(map(ok, row)) for row in L)):
            raise RunError(f"{os.path.join(path, RECORDS)}: the record of width {r['width']}, sample {r['sample']} has "
                           f"`losses` that are not {len(etas)} lists (one per eta) of {steps + 1} numbers or null; "
                           "the run is corrupt")
    return SweepRun(path, config, tuple(recs))


def _array_description(data: Dataset) -> dict:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(data.X).tobytes())
    h.update(np.ascontiguousarray(data.y).tobytes())
    return {"kind": "array", "source": data.source, "sha256": h.hexdigest(), "m": data.m, "d": data.d}


def run_sweep(
    out_dir,
    *,
    depth: int,
    widths,
    etas,
    seeds: int,
    steps: int,
    data: Dataset,
    activation: str = "linear",
    optimizer: str = "gd",
    param="mup",
    data_description: dict | None = None,
    seed: int = 0,
    adam_eps: float = DEFAULT_ADAM_EPS,
    adam_exponent=None,
    dtype: str = "float64",
    memory_mb: float = DEFAULT_MEMORY_MB,
    method: str = "auto",
    backend: str = "numpy",
    resume: bool = False,
    progress: bool = True,
    recipe=None,
    executor=None,
    batch: int | None = None,
    init_gain="1",
    alignment: bool = False,
    readout_init: str = "param",
    norm=None,
    models=None,
) -> SweepRun:
    """Sweep η at every (width, sample) and append one record each to ``out_dir/records.jsonl``.

    Args:
      depth: number L of hidden n×n layers; widths: e.g. ``[64, 128]`` or ``"64,128"``.
      etas: grid spec (see :func:`parse_etas`) or a sequence of learning rates.
      seeds: networks per width (samples 0..seeds-1); seed: root seed (network (n, s) is
        ``SeedSequence(seed, spawn_key=(n, s))``, as in ``polyloss sample``).
      steps: full-batch training steps t >= 1; the loss is recorded at steps 0..t.
      activation: 'linear' | 'relu'; optimizer: 'gd' | 'adam'; param: 'mup' | 'sp' | 'ntp' |
        'ALPHA,GAMMA' | :class:`Parametrization`; adam_eps, adam_exponent: see the module docstring.
      data_description: JSON description of the data kept in run.json (default: a digest of X, y).
      dtype: 'float64' (default) or 'float32'; memory_mb: memory budget of one η chunk.
      method: 'auto' | 'dense' | 'lowrank' (see :func:`sweep_network`; 'auto' picks per width).
      backend: 'numpy' or 'cupy'; resume: continue (and possibly extend) an existing run.
      recipe: the training recipe (a Recipe, its ``to_dict()`` dict or None for plain GD; recorded
        in run.json, GD only, see :func:`sweep_network`).
      batch: minibatch size B (1 <= B <= m; None or m: full batch): step k uses the rows
        :func:`batch_schedule` gives sample s (the same at every width and η); losses on all data.
      init_gain: W_0 and hidden weights drawn with standard deviation gain/√fan_in: '1' (polyloss's
        networks, those of ``sample``), 'he' (√2), 'torch' (1/√3) or a number > 0.
      norm: None, 'rms' (RMSNorm with trainable gains before each hidden layer and the readout) or
        'rms-fixed' (gains frozen at 1); see :func:`sweep_network`.
      readout_init: 'param' (V drawn as the parametrization says) or 'zero' (V = 0; needs a recipe that
        trains the readout).
      alignment: record per trained layer the alignment diagnostics of the updates at
        :func:`alignment_steps` (record field ``alignment``: {metric: [eta][layer][step]}; run.json
        ``alignment_steps``/``alignment_layers``); trains densely.
      models: a user's networks instead of sampled ones — a sequence of :class:`~polyloss.weights.Weights` (or
        :class:`polyloss.interop.ImportedModel`), one per width, all of depth ``depth``; ``widths`` must then be
        None (the models' widths) and ``seeds`` 1. run.json records a digest of each model (``models``), so
        ``--resume`` refuses other models.
      executor: where the networks are trained (:func:`polyloss.executor.resolve_executor`): None or
        'serial' (here, in order), a number of local Dask workers or 'auto', a scheduler address, or a
        ``distributed.Client``. Records are identical whichever runs them; this process alone writes.
    Returns:
      the :class:`SweepRun` of ``out_dir`` (all records, including earlier ones).
    """
    from polyloss._budget import MAX_SEED, check_sweep
    from polyloss._paths import check_out_dir

    if not isinstance(data, Dataset):
        raise invalid("data", type(data).__name__, "a polyloss.data.Dataset")
    check_executor(executor)
    out_dir = check_out_dir("out", out_dir)
    NetworkSpec(depth, 1, data.d)  # validates depth
    models, models_desc = _check_models(models, depth, data.d, widths, seeds, init_gain, readout_init)
    widths = parse_widths(sorted(models) if models is not None else widths)
    grid = parse_etas(etas)
    seeds = _check_count("seeds", seeds, 1)
    seed = _check_count("seed", seed, 0)
    if seed >= MAX_SEED:
        raise invalid("seed", seed, "an integer >= 0 and < 2^63")
    steps = _check_count("steps", steps, 1)
    param = Parametrization.parse(param)
    activation = _check_choice("activation", activation, ACTIVATIONS)
    optimizer = _check_choice("optimizer", optimizer, OPTIMIZERS)
    dtype = _check_choice("dtype", dtype, DTYPES)
    adam_eps = _check_positive("adam_eps", adam_eps, allow_zero=True)
    memory_mb = _check_positive("memory_mb", memory_mb)
    choose_method(method, optimizer, 1, 1, 1)  # validates method
    method = method.lower()
    if batch is not None:
        batch = _check_count("batch", batch, 1)
        if batch > data.m:
            raise invalid("batch", batch, f"an integer in [1, m = {data.m}] (or None: full batch)")
        if batch == data.m:
            batch = None  # one batch of all rows is full-batch GD
    gain_name, gain = parse_init_gain(init_gain)
    readout_init = _check_choice("readout_init", readout_init, READOUT_INITS)
    norm = _check_choice("norm", "none" if norm is None else norm, NORMS)
    norm = None if norm == "none" else norm
    if norm is not None and method == "lowrank":
        raise invalid("method", method, "'auto' or 'dense' with a norm layer (it trains densely)")
    if not isinstance(alignment, bool):
        raise invalid("alignment", alignment, "True or False")
    if alignment and method == "lowrank":
        raise invalid("method", method, "'auto' or 'dense' with the alignment diagnostics (they need each update)")
    if not isinstance(resume, bool):
        raise invalid("resume", resume, "True or False")
    from polyloss.poly import as_recipe

    recipe = as_recipe(recipe)
    if readout_init == "zero" and "readout" not in recipe.trained_layers:
        raise invalid("readout_init", readout_init, "'param', or 'zero' with a recipe that trains the readout (with V = 0 "
                      "and V frozen every gradient is 0: nothing would train)")
    plain = _plain(recipe, param, optimizer, method, steps) and norm is None
    check_sweep(depth, widths, seeds, steps, len(grid), data.m, data.d, optimizer == "adam", memory_mb)
    adam = None
    if optimizer == "adam" and plain:
        kappa = adam_exponent_for(param, adam_exponent)
        adam = {"betas": list(ADAM_BETAS), "eps": adam_eps, "exponent": str(kappa)}
        adam_exponent = kappa
    elif optimizer == "adam":  # the recipe's layers train at their own Adam rates (adam_exponent: the hidden one)
        kappas = adam_layer_exponents(recipe, param, adam_exponent)
        adam = {"betas": list(ADAM_BETAS), "eps": adam_eps, "exponent": str(kappas[1]),
                "layer_exponents": [str(k) for k in kappas]}
    get_xp(backend)  # an unavailable backend is refused before the run directory exists
    out_dir = os.fspath(out_dir)
    config = {
        "schema": SCHEMA,
        "polyloss_version": __version__,
        "depth": depth,
        "steps": steps,
        "etas": grid.tolist(),
        "eta_spec": etas if isinstance(etas, str) else None,
        "activation": activation,
        "optimizer": optimizer,
        "param": param.to_dict(),
        "recipe": recipe.to_dict(),
        "adam": adam,
        "dtype": dtype,
        "method": method,
        "seed": seed,
        "data": data_description if data_description is not None else _array_description(data),
        "backend": backend,
        "widths": list(widths),
        "seeds": seeds,
        "m": data.m,
        "input_dim": data.d,
        "batch": batch,
        "init_gain": gain_name,
        "alignment": alignment,
        "readout_init": readout_init,
        "norm": norm,
        "models": models_desc,
    }
    if alignment:
        config["alignment_steps"] = alignment_steps(steps)
        config["alignment_layers"] = alignment_layers(depth, recipe, param)
        config["alignment_metrics"] = list(ALIGNMENT_METRICS)
    # the executor first: an unreachable scheduler is refused before the run directory exists
    session = run_session(out_dir, config, _MATCH_KEYS, resume, grow_keys=("widths", "seeds"), required=RECORD_FIELDS,
                          defaults=_DEFAULTS)
    with resolve_executor(executor) as ex, session as (config, old, writer):
        # every width of the merged config gets the merged seed count: run.json claims no record it lacks
        done = {(r["width"], r["sample"]) for r in old}
        todo = [(n, s) for n in config["widths"] for s in range(config["seeds"]) if (n, s) not in done]
        desc = f"sweep L={depth} t={steps} {activation}/{optimizer} {len(grid)} etas"
        methods = {n: _record_method(method, optimizer, n, data.m, steps, plain and not alignment and norm is None) for n in config["widths"]}
        costs = [_cost(methods[n], n, data.m, steps, len(grid)) for n, _ in todo]
        bar = Progress(len(todo), desc=desc, enabled=progress, costs=costs)
        job = _SweepJob(depth=depth, param=param, seed=seed, data=data, grid=grid, steps=steps, activation=activation,
                        optimizer=optimizer, adam_eps=adam_eps, adam_exponent=adam_exponent, dtype=dtype,
                        memory_mb=memory_mb, method=method, backend=backend, recipe=recipe, methods=methods,
                        batch=batch, gain=gain, alignment=alignment, readout_init=readout_init, norm=norm,
                        models=models)
        units, unit_seconds = _eta_pieces(todo, [_seconds(c, steps, depth) for c in costs], len(grid), ex.batch_seconds,
                                          ex.workers)
        tasks, task_costs = batches(units, unit_seconds, ex.batch_seconds, ex.workers)
        # pieces arrive in any order; a record is written when its last piece is in; only this process
        # writes, each (width, sample) once
        parts = {}
        for pieces in ex.map_unordered(_sweep_batch, tasks, costs=task_costs, label="sweep", shared=job):
            for n, s, lo, losses, sec in pieces:
                if (n, s) in done:  # a task that ran twice (a killed worker's): written already
                    continue
                got = parts.setdefault((n, s), {})
                got[lo] = (losses, sec)
                if sum(len(v[0][0] if alignment else v[0]) for v in got.values()) < len(grid):
                    continue
                del parts[(n, s)]
                rows = [got[k] for k in sorted(got)]
                done.add((n, s))
                losses = [r[0] for r in rows] if alignment else np.vstack([r[0] for r in rows])
                writer.write(_sweep_record(job, n, s, losses, sum(r[1] for r in rows)))
                bar.update()
    bar.close()
    return load_sweep(out_dir)
