"""Monte Carlo over sampled networks (``polyloss sample``): incremental, resumable, reproducible.

A run directory holds

* ``run.json`` — schema ``polyloss.sample/1``: depth, steps, parametrization, training ``recipe``
  (:meth:`polyloss.recipe.Recipe.to_dict`; optional: a run.json without it, written before
  recipes existed, is the plain recipe), degree (capped at the recipe's full degree), root seed,
  data description, window, backend, sampler ('dense' | 'lazy' | 'auto', with ``lazy_min_width``),
  polyloss version, and the widths/samples asked for;
* ``records.jsonl`` — one JSON line per (width, sample), appended and flushed as soon as that
  network is done: ``width``, ``sample``, ``seed`` ({entropy, spawn_key}), ``loss_coefficients``
  (c_0..c_K), ``accurate_coefficients`` (how many leading c_k are certified to relative error 1e-6;
  null for lazily sampled networks), ``eta_opt``, ``loss_at_eta_opt``, ``at_edge``, ``local_minima``, ``curve_loss`` (the
  stable loss at the η values ``config["curve_etas"]``, the minimiser's search grid), ``sampler``
  (the one used for this network: 'dense' or 'lazy'), ``seconds``.

Network (n, s) is drawn from ``SeedSequence(seed, spawn_key=(n, s))`` (see :mod:`polyloss.weights`),
so records do not depend on chunking or on which other widths/samples are in the run. A killed run
resumes with ``resume=True`` and loses no finished record; resuming may also add widths or samples
(everything else must match). Synthetic data are drawn from ``SeedSequence(seed, spawn_key=(0,))``.

Horizons (``steps``): an integer T, or a rule T(n) (:mod:`polyloss.horizon`: an expression in n such as
``ceil(2*n**0.15)``, or ``WIDTH:T`` pairs). A fixed T gives the run.json and records above, unchanged.
A rule gives each width its own T: run.json stores ``"steps": null`` and ``"steps_rule": <spec>`` (a
resume key: ``--resume`` refuses a changed rule; widths added on resume get their own T), ``degree``
is then the cap on the kept degree (width n keeps min(degree, full degree at T(n)):
:func:`polyloss.horizon.degree_for`), and every record carries ``"steps": T``. A record of a rule
run equals, field for field (apart from ``seconds`` and ``steps``), the record of a fixed-T run at
that T with the same seed. :func:`load_run` refuses a rule run unless called with
``horizons=True`` (readers written for one T — compare, report — would misread it);
:func:`polyloss.horizon.split_by_steps` cuts it into fixed-T runs.

Optimizer (``optimizer``): 'gd' (default; run.json and records exactly as above, no optimizer key)
or 'adam' — the exact loss after one Adam step (:mod:`polyloss.adam`; ``steps`` must be 1, plain
recipe). An Adam run's run.json carries ``"optimizer": {name, steps, eps, exponent, betas, hidden_lr}``
(a resume key; absent means GD), its full degree is 2L, its default window is 4 η_∞ of the μP Adam
limit, and each record adds ``"optimizer": "adam"`` and ``"adam"`` (route, ``eps_ratio_max``,
``eps_ratio_median``, ``eps_coefficient_change``). Its lazy networks use *ambient* coordinates (a sign
vector needs the entries; memory O(n·(m + k))) and need ε = 0 (ε > 0 needs the dense n×n update).

Samplers (``sampler``): 'dense' draws every n×n matrix; 'lazy' samples the hidden layers by Gaussian
conditioning on the few vectors the program touches (:mod:`polyloss.lazy`: exact in distribution,
cost independent of n); 'auto' is lazy for n ≥ ``lazy_min_width`` (2048), dense below. Dense and
lazy draws from the same seed are different networks with the same distribution, so the sampler is
part of what a resumed run must match.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np

from polyloss import __version__
from polyloss._backend import get_xp
from polyloss._progress import Progress
from polyloss._rundir import RECORDS, load_run_config, read_records, run_session
from polyloss.data import Dataset
from polyloss.engine import LossEngine
from polyloss.errors import RunError
from polyloss.executor import batches, check_executor, resolve_executor
from polyloss.horizon import StepsRule, check_horizons, degree_for
from polyloss.lazy import LAZY_MIN_WIDTH, draw_weights, resolve_sampler
from polyloss.minimize import VERSION as MINIMISER_VERSION
from polyloss.minimize import minimise, search_grid
from polyloss.poly import _check_window, as_recipe, default_window, polynomial_for_minimisation
from polyloss.recipe import PLAIN, recipe_loss_degree
from polyloss.spec import NetworkSpec, Parametrization, SamplingSpec, TrainingSpec
from polyloss.weights import child_seed

__all__ = ["SampleRun", "run_sample", "load_run", "summarise", "data_seed", "file_digest"]

SCHEMA = "polyloss.sample/1"
DEFAULT_SAMPLE_DEGREE = 8
RECORD_FIELDS = ("width", "sample", "eta_opt", "loss_at_eta_opt", "at_edge", "local_minima", "loss_coefficients", "curve_loss")
_MATCH_KEYS = ("depth", "steps", "param", "degree", "seed", "data", "window", "backend", "n_grid", "minimiser", "sampler",
               "lazy_min_width", "recipe")
#: Keys a run.json may lack (written before they existed), with the value that absence means.
_DEFAULTS = {"recipe": PLAIN.to_dict()}
#: Resume keys of a rule run: the rule replaces ``steps`` (null in every rule run).
_RULE_MATCH_KEYS = tuple("steps_rule" if k == "steps" else k for k in _MATCH_KEYS)


def data_seed(seed: int) -> np.random.SeedSequence:
    """The seed sequence of a run's synthetic data (disjoint from every network's child)."""
    return np.random.SeedSequence(int(seed), spawn_key=(0,))


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class SampleRun:
    """A run directory's configuration and its finished records (sorted by width, sample)."""

    path: str
    config: dict
    records: tuple

    def by_width(self) -> dict:
        out: dict[int, list] = {}
        for r in self.records:
            out.setdefault(r["width"], []).append(r)
        return out


def _config_steps(path: str, config: dict):
    """The run's horizon rule, checking run.json's ``steps``/``steps_rule`` (one-line RunError)."""
    from polyloss._rundir import CONFIG, CONFIG_CHECKS
    from polyloss.errors import SpecError

    cfg_path = os.path.join(path, CONFIG)
    if config.get("steps_rule") is None:
        ok, valid = CONFIG_CHECKS["steps"]
        if not ok(config.get("steps")):
            raise RunError(f"{cfg_path}: `steps`={config.get('steps')!r} is invalid: must be {valid}; "
                           "the run directory is corrupt")
        return StepsRule.parse(config["steps"])
    try:
        rule = StepsRule.parse(config["steps_rule"])
    except SpecError as exc:
        raise RunError(f"{cfg_path}: {exc}; the run directory is corrupt") from None
    if rule.is_fixed or config.get("steps") is not None:
        raise RunError(f"{cfg_path}: `steps_rule`={config['steps_rule']!r} with `steps`={config.get('steps')!r}: a rule "
                       "run has steps null and a rule that is not one integer; the run directory is corrupt")
    return rule


def load_run(path, *, horizons: bool = False) -> SampleRun:
    """Load a run directory written by :func:`run_sample`.

    A run whose widths train for different horizons (``steps_rule``: ``config["steps"]`` is None) is
    refused in one line unless ``horizons`` is true: code that assumes one T per run must not read
    it (cut it into fixed-T runs with :func:`polyloss.horizon.split_by_steps`)."""
    path = os.fspath(path)
    required = tuple(k for k in _MATCH_KEYS if k != "steps") + ("widths", "samples", "m", "input_dim", "curve_etas")
    config = load_run_config(path, SCHEMA, required, _DEFAULTS)
    rule = _config_steps(path, config)
    if not rule.is_fixed and not horizons:
        raise RunError(f"run {path!r} trains each width for its own number of steps (steps rule {rule.spec!r}); "
                       "this reader takes runs with one T only so far (polyloss.horizon.split_by_steps cuts the run "
                       "into one run per T)")
    rec_path = os.path.join(path, RECORDS)
    recs = read_records(rec_path, required=RECORD_FIELDS)
    by_w = {} if rule.is_fixed else _rule_widths(rec_path, rule, {r["width"] for r in recs} | set(config["widths"]))
    for r in recs:  # every record holds c_0..c_degree (the per-width averages need equal lengths)
        if rule.is_fixed:
            T, degree, where = rule.fixed, config["degree"], f"run.json's degree {config['degree']}"
        else:
            T = by_w[r["width"]]
            if r.get("steps") != T:
                raise RunError(f"{rec_path}: the record of width {r['width']}, sample {r['sample']} has steps="
                               f"{r.get('steps')!r}, the rule {rule.spec!r} gives {T}; the run is corrupt")
            degree = degree_for(config, T)
            where = f"the degree {degree} at T = {T}"
        if len(r["loss_coefficients"]) != degree + 1:
            raise RunError(f"{rec_path}: the record of width {r['width']}, sample {r['sample']} has "
                           f"{len(r['loss_coefficients'])} loss coefficients, {where} "
                           f"needs {degree + 1}; the run is corrupt")
    recs.sort(key=lambda r: (r["width"], r["sample"]))
    return SampleRun(path, config, tuple(recs))


def _rule_widths(rec_path: str, rule: StepsRule, widths) -> dict:
    from polyloss.errors import SpecError

    try:
        return rule.by_width(sorted(widths))
    except SpecError as exc:
        raise RunError(f"{rec_path}: {exc}; the run is corrupt") from None


def _analyse(engine: LossEngine, steps: int, degree: int, window: float, n_grid: int) -> dict:
    poly, screen = polynomial_for_minimisation(engine, steps, degree, certify=True)
    mn = minimise(lambda e: engine.taylor(e, steps, order=2), window, n_grid=n_grid, coeffs=screen)
    # how many leading coefficients carry a certified relative error <= engine.COEFF_RTOL (None: lazy layers)
    out = {"loss_coefficients": poly.loss.tolist(), "accurate_coefficients": poly.accurate_terms()}
    out.update(mn.to_dict())
    out["curve_loss"] = list(mn.grid_loss)  # the stable loss on config["curve_etas"]
    return out


@dataclass(frozen=True)
class _SampleJob:
    """What every record of a run needs besides its (width, sample, T): sent once to each worker."""

    depth: int
    param: Parametrization
    seed: int
    data: Dataset
    sampler: str
    recipe: object
    backend: str
    window: float
    n_grid: int
    fixed: bool
    degrees: dict
    adam: dict | None = None  # {"eps", "adam_exponent"} for optimizer 'adam'


def _sample_batch(job: _SampleJob, units) -> list[dict]:
    """The records of ``units`` ((width, sample, T) triples), in order: one executor task."""
    xp = get_xp(job.backend)
    out = []
    for n, s, T in units:
        t0 = time.perf_counter()
        if job.adam is not None:
            out.append(_adam_record(job, n, s, xp, t0))
            continue
        weights, used = draw_weights(NetworkSpec(job.depth, n, job.data.d), job.param, child_seed(job.seed, n, s), xp=xp,
                                     sampler=job.sampler, steps=T)
        rec = {"width": n, "sample": s, "seed": {"entropy": job.seed, "spawn_key": [n, s]}, "sampler": used}
        if not job.fixed:
            rec["steps"] = T
        rec.update(_analyse(LossEngine(weights, job.data, job.param, recipe=job.recipe, xp=xp), T, job.degrees[T],
                            job.window, job.n_grid))
        rec["seconds"] = round(time.perf_counter() - t0, 4)
        out.append(rec)
    return out


def _adam_record(job: _SampleJob, n: int, s: int, xp, t0: float) -> dict:
    """One record of an Adam run: the first-Adam-step polynomial of network (n, s) and its minima."""
    from polyloss.adam import adam_first_step
    from polyloss.lazy import sample_lazy_weights
    from polyloss.weights import sample_weights

    net = NetworkSpec(job.depth, n, job.data.d)
    used = resolve_sampler(job.sampler, n)
    seq = child_seed(job.seed, n, s)
    weights = (sample_weights(net, job.param, seq, xp=xp) if used == "dense"
               else sample_lazy_weights(net, job.param, seq, xp=np, coords="ambient"))  # the adam engine is host-side
    st = adam_first_step(weights, job.data, job.param, eps=job.adam["eps"], adam_exponent=job.adam["adam_exponent"])
    mn = st.minimise(job.window, n_grid=job.n_grid)
    rec = {"width": n, "sample": s, "seed": {"entropy": job.seed, "spawn_key": [n, s]}, "sampler": used,
           "optimizer": "adam", "loss_coefficients": st.loss[: job.degrees[1] + 1].tolist(), "accurate_coefficients": None}
    rec.update(mn.to_dict())
    rec["curve_loss"] = list(mn.grid_loss)
    d = st.to_dict()
    rec["adam"] = {k: d[k] for k in ("route", "eps", "eps_ratio_max", "eps_ratio_median", "eps_coefficient_change")}
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    return rec


#: Seconds per record beyond the cost model (engine set-up, minimiser) and per unit of :func:`_cost`
#: × T, measured on the 2-core reference machine (benchmarks/RESULTS.md): only used to size tasks.
SECONDS_PER_RECORD = 0.02
SECONDS_PER_COST = 1.2e-9


def _seconds(width: int, sampler: str, m: int, steps: int) -> float:
    return SECONDS_PER_RECORD + SECONDS_PER_COST * _cost(width, sampler, m) * steps


def run_sample(
    out_dir,
    *,
    depth: int,
    sampling: SamplingSpec,
    training: TrainingSpec,
    param: Parametrization,
    data: Dataset,
    data_description: dict,
    window: float | None = None,
    backend: str = "numpy",
    resume: bool = False,
    progress: bool = True,
    n_grid: int = 96,
    sampler: str = "auto",
    recipe=None,
    executor=None,
    optimizer: str = "gd",
    adam_eps: float | None = None,
    adam_exponent=None,
) -> SampleRun:
    """Sample networks and append one record per (width, sample) to ``out_dir/records.jsonl``.

    ``training.degree`` None means :data:`DEFAULT_SAMPLE_DEGREE` (capped at the full degree).
    ``sampler``: 'dense', 'lazy' or 'auto' (lazy for n ≥ :data:`polyloss.lazy.LAZY_MIN_WIDTH`).
    ``recipe``: the training recipe (a Recipe, its ``to_dict()`` dict, or None for plain GD).
    ``executor``: where records are computed (:func:`polyloss.executor.resolve_executor`): None or
    'serial' (here, in order), a number of local Dask workers or 'auto', a scheduler address, or a
    ``distributed.Client``. Records are identical whichever runs them; this process alone writes.
    ``optimizer``: 'gd' or 'adam' (the first Adam step; ``adam_eps`` default 1e-8, 0 = sign descent;
    ``adam_exponent``: the hidden Adam rate η n^-κ, default by ``param`` as in ``sweep``).
    """
    check_executor(executor)
    adam = _check_adam(optimizer, adam_eps, adam_exponent, training, recipe, param, sampler, sampling.widths)
    NetworkSpec(depth, 1, data.d)  # validates depth
    resolve_sampler(sampler, 1)  # validates sampler
    recipe = as_recipe(recipe)
    rule = training.rule
    check_horizons(rule, sampling.widths, recipe)  # every requested width has a valid T, every T the schedule
    get_xp(backend)  # an unavailable backend is refused before the run directory exists
    if not recipe.is_plain_for(param):  # refuse what the engine cannot run before the run directory exists
        from polyloss.weights import Weights

        LossEngine(Weights(np.zeros((1, data.d)), tuple(np.zeros((1, 1)) for _ in range(depth)), np.zeros(1)), data, param,
                   recipe=recipe)
    degree = DEFAULT_SAMPLE_DEGREE if training.degree is None else training.degree
    if adam is not None:
        degree = min(degree, 2 * depth)
    elif rule.is_fixed:  # a rule run keeps the requested degree as the cap; each width takes min(cap, its full degree)
        degree = min(degree, recipe_loss_degree(depth, rule.fixed, recipe))
    if adam is not None and window is None:
        from polyloss.adam import default_adam_window

        window = default_adam_window(data, depth)
    window = default_window(data, depth, recipe, param) if window is None else _check_window(window)
    out_dir = os.fspath(out_dir)
    config = {
        "schema": SCHEMA,
        "polyloss_version": __version__,
        "depth": depth,
        "steps": rule.fixed if rule.is_fixed else None,
        "param": param.to_dict(),
        "recipe": recipe.to_dict(),
        "degree": degree,
        "seed": sampling.seed,
        "data": data_description,
        "window": window,
        "backend": backend,
        "sampler": sampler,
        "lazy_min_width": LAZY_MIN_WIDTH,
        "widths": list(sampling.widths),
        "samples": sampling.samples,
        "m": data.m,
        "input_dim": data.d,
        "n_grid": n_grid,
        "minimiser": MINIMISER_VERSION,
        "curve_etas": search_grid(window, n_grid).tolist(),
    }
    if not rule.is_fixed:
        config["steps_rule"] = rule.spec
    if adam is not None:
        from polyloss.adam import adam_config

        config["optimizer"] = adam_config(param, adam["eps"], adam["adam_exponent"])
    if resume:
        _check_resumed_rule(out_dir, rule)
    match = (_MATCH_KEYS if rule.is_fixed else _RULE_MATCH_KEYS) + ("optimizer",)
    # the executor first: an unreachable scheduler is refused before the run directory exists
    session = run_session(out_dir, config, match, resume, grow_keys=("widths", "samples"), required=RECORD_FIELDS,
                          defaults=dict(_DEFAULTS, steps_rule=None, optimizer=None))
    with resolve_executor(executor) as ex, session as (config, old, writer):
        # every width of the merged config gets the merged sample count: run.json claims no record it lacks
        done = {(r["width"], r["sample"]) for r in old}
        todo = [(n, s) for n in config["widths"] for s in range(config["samples"]) if (n, s) not in done]
        horizon = rule.by_width(config["widths"])  # widths grown on resume get their own T
        bar = Progress(len(todo), desc=f"sample L={depth} t={rule.spec}", enabled=progress,
                       costs=[_cost(n, sampler, data.m) * horizon[n] for n, _ in todo])
        job = _SampleJob(depth=depth, param=param, seed=sampling.seed, data=data, sampler=sampler, recipe=recipe,
                         backend=backend, window=window, n_grid=n_grid, fixed=rule.is_fixed,
                         degrees={T: degree if rule.is_fixed else degree_for(config, T) for T in set(horizon.values())},
                         adam=adam)
        units = [(n, s, horizon[n]) for n, s in todo]
        tasks, costs = batches(units, [_seconds(n, sampler, data.m, T) for n, _, T in units], ex.batch_seconds,
                                ex.workers)
        # results arrive in any order; only this process writes, each (width, sample) once
        for recs in ex.map_unordered(_sample_batch, tasks, costs=costs, label="sample", shared=job):
            for rec in recs:
                key = (rec["width"], rec["sample"])
                if key in done:  # a task that ran twice (a killed worker's): written already
                    continue
                done.add(key)
                writer.write(rec)
                bar.update()
    bar.close()
    return load_run(out_dir, horizons=True)


def _check_adam(optimizer, eps, exponent, training, recipe, param, sampler, widths):
    """None for GD; for Adam {eps, adam_exponent}, refusing (one line) what the first-step engine cannot do."""
    from polyloss.errors import SpecError, invalid

    if optimizer not in ("gd", "adam"):
        raise invalid("optimizer", optimizer, "'gd' or 'adam'")
    if optimizer == "gd":
        if eps is not None or exponent is not None:
            raise SpecError("`adam_eps`/`adam_exponent` are invalid with optimizer 'gd': give optimizer='adam'")
        return None
    from polyloss.adam import DEFAULT_ADAM_EPS, adam_exponent_checked, check_adam_eps, check_adam_steps

    rule = training.rule
    check_adam_steps(rule.fixed if rule.is_fixed else rule.spec)
    eps = DEFAULT_ADAM_EPS if eps is None else check_adam_eps(eps)
    rec = as_recipe(recipe)
    if not rec.is_plain_for(param):
        raise SpecError(f"`recipe` ({rec.describe()}) is invalid with optimizer 'adam': the first Adam step is "
                        "implemented for the plain recipe (hidden layers only)")
    if eps > 0:
        lazy = [n for n in widths if resolve_sampler(sampler, n) == "lazy"]
        if lazy:
            raise invalid("adam_eps", eps, f"0 when widths are sampled lazily (here {lazy[:3]}, sampler {sampler!r}): "
                                           "eps > 0 needs the dense n x n update; use --sampler dense or --adam-eps 0")
    return {"eps": eps, "adam_exponent": adam_exponent_checked(param, exponent)}


def _check_resumed_rule(out_dir: str, rule: StepsRule) -> None:
    """Refuse resuming with another horizon in one line naming both (open_run would otherwise stop
    at the typed ``steps`` check of a rule run's null, or compare ``steps`` with ``steps_rule``)."""
    from polyloss._rundir import CONFIG, read_config

    if not os.path.isfile(os.path.join(out_dir, CONFIG)):
        return
    old = read_config(out_dir)
    if old.get("schema") != SCHEMA:
        return  # open_run names the schema mismatch
    was = old.get("steps_rule") if old.get("steps_rule") is not None else old.get("steps")
    if str(was) != rule.spec:
        raise RunError(f"cannot resume {out_dir!r}: `steps` was {str(was)!r}, now {rule.spec!r}; only widths, "
                       "samples may change on --resume")


def _cost(width: int, sampler: str, m: int) -> float:
    """Relative cost of one record, for the progress bar: the data pass (m n² per layer) when dense; a
    lazy record costs about as much as a dense one of width 1448 (benchmarks/RESULTS.md)."""
    n = width if resolve_sampler(sampler, width) == "dense" else 1448
    return (m + 1.0) * n * n


def summarise(run: SampleRun, n_coeffs: int = 4) -> list[dict]:
    """Per width: count, mean and standard error of c_0..c_{n_coeffs-1} and of η_n."""
    rows = []
    for n, recs in sorted(run.by_width().items()):
        C = np.array([r["loss_coefficients"][:n_coeffs] for r in recs], dtype=float)
        eta = np.array([r["eta_opt"] for r in recs], dtype=float)
        k = len(recs)
        se = (lambda a: a.std(axis=0, ddof=1) / np.sqrt(k)) if k > 1 else (lambda a: np.full(np.shape(a.mean(axis=0)), np.nan))
        rows.append({
            "width": n,
            "count": k,
            "coeff_mean": C.mean(axis=0).tolist(),
            "coeff_se": np.atleast_1d(se(C)).tolist(),
            "eta_mean": float(eta.mean()),
            "eta_se": float(se(eta)),
            "at_edge": int(sum(bool(r["at_edge"]) for r in recs)),
        })
    return rows
