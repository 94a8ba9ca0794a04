"""The claim-verification framework behind ``polyloss verify``.

A claim suite (a module of ``verify/``, installed as ``polyloss.claims``) states one claim of the
paper or of docs/theory.md as a :class:`Claim` and checks it in ``run(ctx) -> Verdict``. The
:class:`Context` gives it the scale of the run (``quick``: CI-sized, about a minute for all claims
on 2 cores; ``full``: the paper's scale), a data set, and resumable ``sample``/``sweep`` runs
stored under the verification directory, so a killed ``verify`` loses no finished network.

A :class:`Verdict` is ``pass``, ``fail``, ``inconclusive`` or ``observation`` (for open questions,
where the data are reported rather than judged), with the numbers behind it, the seeds and widths,
package versions and the runtime. :func:`run_claims` runs suites, writes ``verdicts/<id>.json`` as
each finishes (``resume`` skips finished claims), and writes the verdict report (HTML, Markdown,
JSON) through the report machinery.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import platform
import time
from dataclasses import dataclass, field

import numpy as np

from polyloss import __version__
from polyloss import _jsonsafe as jsonsafe
from polyloss.errors import RunError, SpecError, invalid

__all__ = ["Claim", "Verdict", "Context", "Scale", "SCALES", "run_claims", "claim_ids", "VERDICTS"]

VERDICTS = ("pass", "fail", "inconclusive", "observation")


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    statement: str  # the claim in our words
    source: str  # paper section or docs/theory.md §
    statistic: str  # what is measured
    tolerance: str  # the decision rule and why


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    verdict: str
    summary: str
    numbers: dict
    seeds: dict
    widths: list
    mode: str
    runtime_s: float = 0.0
    versions: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise invalid("verdict", self.verdict, "one of " + ", ".join(VERDICTS))

    def to_json(self) -> dict:
        return {"schema": "polyloss.verdict/1", **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, doc: dict) -> "Verdict":
        d = {k: v for k, v in doc.items() if k != "schema"}
        d["claim"] = Claim(**d["claim"])
        return cls(**d)


@dataclass(frozen=True)
class Scale:
    """Sizes of a verification run."""

    d: int
    m: int
    widths: tuple
    seeds: int
    depth: int
    depths: tuple  # for the depth claim
    steps_any: tuple  # t values for the any-step claim
    depth_any: int
    widths_any: tuple
    seeds_any: int
    sweep_widths: tuple
    sweep_seeds: int
    sweep_etas: str
    sweep_depth: int
    teachers: tuple


SCALES = {
    "quick": Scale(d=10, m=40, widths=(64, 128, 256, 512, 1024), seeds=24, depth=3, depths=(1, 2, 3, 4),
                   steps_any=(2,), depth_any=2, widths_any=(64, 128, 256, 512), seeds_any=16,
                   sweep_widths=(64, 256, 1024), sweep_seeds=4, sweep_etas="log:1e-6:1e3:46", sweep_depth=2,
                   teachers=("linear",)),
    # the paper stops at 2^13; the lazy sampler (n >= 2048) makes 2^18 cost about as much as 2^11
    "full": Scale(d=100, m=1000, widths=tuple(2**k for k in range(7, 19)), seeds=64, depth=3,
                  depths=(3, 6, 9, 12, 15, 18, 21, 24, 27), steps_any=(2, 3), depth_any=3,
                  widths_any=tuple(2**k for k in range(7, 17)), seeds_any=32,
                  sweep_widths=(128, 512, 2048), sweep_seeds=6, sweep_etas="log:1e-7:1e3:61", sweep_depth=3,
                  teachers=("linear", "nonlinear")),
}


class Context:
    """What a claim suite gets: the scale, data, resumable runs, and parametrization overrides.

    ``overrides`` maps a parametrization name to the one actually used (e.g. ``{"mup": "sp"}``
    runs the μP claims with the SP readout — a deliberately broken setup the verifier must reject).
    ``executor``: where the per-network work of :meth:`sample`, :meth:`sweep` and :meth:`networks`
    runs — None (serial, here) or an executor made by :func:`polyloss.executor.resolve_executor`
    (the caller closes it). Records are identical either way.
    """

    def __init__(self, mode: str, work_dir: str, *, seed: int = 0, progress: bool = True, overrides: dict | None = None,
                 executor=None):
        from polyloss.executor import SerialExecutor

        if mode not in SCALES:
            raise invalid("mode", mode, "'quick' or 'full'")
        self.mode, self.scale, self.work_dir, self.seed = mode, SCALES[mode], work_dir, seed
        self.progress = progress
        self.overrides = dict(overrides or {})
        self.executor = SerialExecutor() if executor is None else executor

    def __getstate__(self):
        # a claim's per-network function may close over the context; it travels to workers without
        # the executor (a Dask client cannot be pickled, and workers compute serially)
        return {k: v for k, v in self.__dict__.items() if k != "executor"}

    def __setstate__(self, state):
        from polyloss.executor import SerialExecutor

        self.__dict__.update(state)
        self.executor = SerialExecutor()

    @property
    def _executor_spec(self):
        """What run_sample/run_sweep take: None for serial, else the Dask client (left open)."""
        return getattr(self.executor, "client", None)

    def param(self, name: str):
        from polyloss.spec import Parametrization

        return Parametrization.parse(self.overrides.get(name, name))

    def _run_path(self, name: str, param: str) -> str:
        if param in self.overrides:  # keep overridden runs apart from genuine ones
            name = f"{name}@{self.overrides[param].replace(',', '_').replace('/', 'o')}"
        return os.path.join(self.work_dir, "runs", name)

    def data(self, teacher: str = "linear"):
        from polyloss.data import synthetic
        from polyloss.sampling import data_seed

        s = self.scale
        return synthetic(teacher, s.d, s.m, 0.0, data_seed(self.seed)), {
            "kind": "synthetic", "teacher": teacher, "d": s.d, "m": s.m, "noise": 0.0}

    def sample(self, name: str, *, depth: int, widths, samples: int, steps: int, param: str, teacher: str = "linear",
               degree: int | None = None, window: float | None = None, recipe=None, optimizer: str = "gd",
               adam_eps: float | None = None):
        """A resumable ``sample`` run under ``work_dir/runs/name``.

        ``optimizer``/``adam_eps``: passed to :func:`polyloss.sampling.run_sample` ('adam': the exact first
        Adam step; give the run a name of its own, as a GD run of the same name would not resume it).

        ``recipe``: a :class:`polyloss.recipe.Recipe` (or None for plain GD). A non-plain recipe keeps its
        run apart: the directory name gains ``+r<digest>``, the first 10 hex digits of the SHA-256 of
        ``recipe.to_dict()`` (canonical JSON), so two recipes never share a run and a plain run keeps its path."""
        from polyloss.sampling import run_sample
        from polyloss.spec import SamplingSpec, TrainingSpec

        data, desc = self.data(teacher)
        if recipe is not None and not recipe.is_plain:
            name = f"{name}+r{recipe_digest(recipe)}"
        path = self._run_path(name, param)
        return run_sample(path, depth=depth, sampling=SamplingSpec(tuple(widths), samples, self.seed),
                          training=TrainingSpec(steps, degree), param=self.param(param), data=data,
                          data_description=desc, window=window, resume=True, progress=self.progress,
                          recipe=recipe, executor=self._executor_spec, optimizer=optimizer, adam_eps=adam_eps)

    def sweep(self, name: str, *, depth: int, widths, seeds: int, steps: int, etas: str, activation: str,
              optimizer: str, param: str, teacher: str = "linear", data=None, **options):
        """A resumable ``sweep`` run under ``work_dir/runs/name``; ``options``: further :func:`polyloss.sweep.run_sweep`
        settings (``init_gain``, ``batch``, ``recipe``, ``norm``, ``alignment``, …), recorded in its run.json.
        ``data``: a (Dataset, description) pair to train on instead of the scale's synthetic set of ``teacher``."""
        from polyloss.sweep import parse_etas, run_sweep

        data, desc = self.data(teacher) if data is None else data
        path = self._run_path(name, param)
        return run_sweep(path, depth=depth, widths=list(widths), etas=parse_etas(etas), seeds=seeds, steps=steps,
                         activation=activation, optimizer=optimizer, param=self.param(param), data=data,
                         data_description=desc, seed=self.seed, resume=True, progress=self.progress,
                         executor=self._executor_spec, **options)

    def networks(self, name: str, *, param: str, widths, samples: int, config: dict, compute, desc: str = "") -> dict:
        """A resumable per-network computation under ``work_dir/runs/name`` for what ``sample`` does
        not record: ``compute(n, s) -> dict`` runs for each (width, sample) not yet on disk and is
        appended at once (a kill loses no finished network), with its compute time (``seconds``, as
        in sample/sweep records). ``config`` (JSON) must match on resume. On Dask workers (``executor``), ``compute`` is pickled (cloudpickle: closures travel by value)
        and the results arrive in any order; this process alone writes them.
        Returns {width: [record for samples 0..samples-1]}."""
        from polyloss._progress import Progress
        from polyloss._rundir import run_session

        path = self._run_path(name, param)
        cfg = {"schema": "polyloss.claim-networks/1", "name": name, "param": self.param(param).to_dict(),
               "seed": self.seed, "widths": list(widths), "samples": samples, "config": config}
        with run_session(path, cfg, ("name", "param", "seed", "config"), True, grow_keys=("widths", "samples"),
                         required=("width", "sample")) as (cfg, old, writer):
            have = {(r["width"], r["sample"]): r for r in old}
            # the merged widths × samples, so that run.json claims no record it lacks
            todo = [(n, s) for n in cfg["widths"] for s in range(cfg["samples"]) if (n, s) not in have]
            bar = Progress(len(todo), desc=desc or name, enabled=self.progress, costs=[float(n) for n, _ in todo])
            try:
                for n, s, out, seconds in self.executor.map_unordered(_network, todo, costs=[float(n) for n, _ in todo],
                                                             label="networks", shared=compute):
                    if (n, s) in have:  # a task that ran twice (a killed worker's): written already
                        continue
                    have[(n, s)] = rec = {"width": n, "sample": s, **out, "seconds": seconds}
                    writer.write(rec)
                    bar.update()
            finally:
                bar.close()
        return {n: [have[(n, s)] for s in range(samples)] for n in widths}


def _network(compute, unit):
    """One (width, sample) of :meth:`Context.networks` and its compute time: an executor task."""
    n, s = unit
    t0 = time.perf_counter()
    out = compute(n, s)
    return n, s, out, round(time.perf_counter() - t0, 4)


def recipe_digest(recipe) -> str:
    """A short stable name for a training recipe: the first 10 hex digits of the SHA-256 of
    ``recipe.to_dict()`` as canonical JSON (sorted keys, no spaces)."""
    import hashlib

    text = json.dumps(recipe.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def _claims_package():
    """``polyloss.claims``: installed from ``verify/`` by the package build, or — when polyloss is
    imported from a source checkout — the ``verify/`` folder beside the package, registered under
    that name so that the suites import the same way in both cases."""
    import importlib.util
    import sys

    try:
        return importlib.import_module("polyloss.claims")
    except ImportError:
        pass
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "verify")
    init = os.path.join(folder, "__init__.py")
    if not os.path.exists(init):
        from polyloss.errors import PolylossError

        raise PolylossError("the claim suites (polyloss.claims / verify/) are not installed; reinstall polyloss")
    spec = importlib.util.spec_from_file_location("polyloss.claims", init, submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules["polyloss.claims"] = module
    spec.loader.exec_module(module)
    return module


def claim_ids() -> dict:
    """``{claim id: module}`` for every suite in ``verify/``."""
    claims = _claims_package()

    out = {}
    for name in claims.SUITES:
        mod = importlib.import_module(f"polyloss.claims.{name}")
        out[mod.CLAIM.id] = mod
    return out


def parse_claims(value) -> list:
    known = claim_ids()
    if value is None or value == "all":
        return list(known)
    ids = [str(v).strip().upper() for v in (value.split(",") if isinstance(value, str) else value)]
    bad = [i for i in ids if i not in known]
    if bad or not ids:
        raise SpecError(f"`claims`={value!r} is invalid: must be a comma-separated subset of {','.join(known)}")
    return ids


def versions() -> dict:
    import scipy
    import sympy

    out = {"polyloss": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "scipy": scipy.__version__, "sympy": sympy.__version__, "machine": platform.machine()}
    try:
        import flint

        out["python-flint"] = flint.__version__
    except ImportError:
        pass
    return out


def run_claims(ids, mode: str, out_dir, *, resume: bool = False, progress: bool = True, overrides: dict | None = None,
               seed: int = 0, write_report: bool = True, log=None, executor=None) -> list:
    """Run claim suites ``ids`` and return their verdicts (see the module docstring).

    ``executor``: where the claims' networks and sweeps are computed (as for ``sample``: None or
    'serial', a number of local Dask workers or 'auto', a scheduler address, a ``distributed.Client``);
    one cluster serves every claim. Verdicts are identical whichever computes them."""
    from polyloss._rundir import RunLock
    from polyloss.executor import check_executor, resolve_executor

    ids = parse_claims(ids)
    check_executor(executor)
    from polyloss._paths import check_out_dir

    out_dir = check_out_dir("out", out_dir, exc=RunError)
    vdir = os.path.join(out_dir, "verdicts")
    os.makedirs(out_dir, exist_ok=True)
    lock = RunLock(out_dir)  # one verify per directory: its claims' runs would collide
    try:
        identity = _open_identity(out_dir, vdir, {"mode": mode, "seed": seed, "overrides": dict(overrides or {})}, resume)
        os.makedirs(vdir, exist_ok=True)
        with resolve_executor(executor) as ex:
            verdicts = _run_suites(ids, vdir, identity, progress, log, ex)
    finally:
        lock.release()
    if write_report:
        verdict_report(verdicts, out_dir)
    return verdicts


IDENTITY = "verify-run.json"


def _open_identity(out_dir: str, vdir: str, identity: dict, resume: bool) -> dict:
    """A verification directory belongs to one (mode, seed, overrides): ``verify-run.json`` says which,
    and a resume with another one is refused — its verdicts and runs would be mixed with these."""
    path = os.path.join(out_dir, IDENTITY)
    has_verdicts = os.path.isdir(vdir) and any(f.endswith(".json") for f in os.listdir(vdir))
    if (has_verdicts or os.path.exists(path)) and not resume:
        raise RunError(f"`out`={out_dir!r} already holds a verification; pass --resume to continue it or choose another directory")
    if os.path.exists(path):
        try:
            with open(path, "rb") as fh:
                old = json.loads(fh.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise RunError(f"{path}: not valid JSON; the verification directory is corrupt") from None
        if not isinstance(old, dict):
            raise RunError(f"{path}: not a JSON object; the verification directory is corrupt")
    elif has_verdicts:  # written before verify-run.json existed: its verdicts say what they were made with
        old = None
        for name in sorted(os.listdir(vdir)):
            if name.endswith(".json"):
                doc = _read_verdict(os.path.join(vdir, name))
                old = {"mode": doc.get("mode"), "seed": (doc.get("seeds") or {}).get("root"),
                       "overrides": (doc.get("numbers") or {}).get("_overrides", {})}
                break
    else:
        old = None
    if old is not None:
        for key in ("mode", "seed", "overrides"):
            if old.get(key) != identity[key]:
                flag = {"mode": "--quick/--full", "seed": "--seed", "overrides": "--override"}[key]
                raise RunError(f"cannot resume {out_dir!r}: it was verified with {key} {old.get(key)!r}, now {identity[key]!r} "
                               f"({flag}); use the same options or choose another --out")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"schema": "polyloss.verify-run/1", **identity}, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return identity


def _read_verdict(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise RunError(f"{path}: not valid JSON; delete it to recompute that claim") from None
    if not isinstance(doc, dict) or doc.get("schema") != "polyloss.verdict/1":
        raise RunError(f"{path}: not a polyloss.verdict/1 document; delete it to recompute that claim")
    return doc


def _run_suites(ids, vdir: str, identity: dict, progress: bool, log, executor=None) -> list:
    mode, overrides = identity["mode"], identity["overrides"]
    ctx = Context(mode, os.path.dirname(vdir), seed=identity["seed"], progress=progress, overrides=overrides,
                  executor=executor)
    suites = claim_ids()
    verdicts = []
    for cid in ids:
        path = os.path.join(vdir, f"{cid}.json")
        if os.path.exists(path):  # the directory's identity matched, so a finished verdict is reused
            try:
                verdicts.append(Verdict.from_json(_read_verdict(path)))
            except (TypeError, KeyError):
                raise RunError(f"{path}: a verdict with missing or unknown fields; delete it to recompute that claim") from None
            if log:
                log(f"{cid}: {verdicts[-1].verdict} (from an earlier run)")
            continue
        if log:
            log(f"{cid}: {suites[cid].CLAIM.title} ...")
        t0 = time.perf_counter()
        v = suites[cid].run(ctx)
        numbers = dict(v.numbers, _overrides=dict(overrides or {}))
        v = dataclasses.replace(v, numbers=numbers, runtime_s=round(time.perf_counter() - t0, 2), versions=versions(), mode=mode)
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            jsonsafe.dump(v.to_json(), fh, indent=1, default=_default)  # strict JSON: no NaN/Infinity
        os.replace(tmp, path)
        verdicts.append(v)
        if log:
            log(f"{cid}: {v.verdict} — {v.summary} ({v.runtime_s:.1f} s)")
    return verdicts


def _default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _rate_fits(numbers: dict, prefix: str = "") -> dict:
    """Every rate fit recorded in a verdict's numbers (dicts with slope, ci, intercept, widths, rms)."""
    from types import SimpleNamespace

    out = {}
    for key, val in numbers.items():
        if not isinstance(val, dict):
            continue
        label = f"{prefix}{key}"
        if {"slope", "ci", "intercept", "widths", "rms"} <= set(val) and val["ci"] is not None:
            out[label] = SimpleNamespace(slope=val["slope"], ci_low=val["ci"][0], ci_high=val["ci"][1],
                                         intercept=val["intercept"], widths=tuple(val["widths"]), rms=tuple(val["rms"]))
        else:
            out.update(_rate_fits(val, prefix=f"{label} "))
    return out


def broken_setup_banner(verdicts) -> str | None:
    """The warning that heads every output of a verification run with ``--override`` (None otherwise)."""
    overrides: dict = {}
    for v in verdicts:
        overrides.update(v.numbers.get("_overrides") or {})
    if not overrides:
        return None
    swaps = ", ".join(f"{name} replaced by {value}" for name, value in sorted(overrides.items()))
    return (f"BROKEN SETUP ON PURPOSE: {swaps} (--override). These verdicts test whether the verifier can say no; "
            "they are not evidence about the theory.")


def _claim_figures(doc, v) -> None:
    """The figures of one verdict: the claim suite's own (``figures(verdict)`` in its module: a list of
    (name, caption, ncols, draw(axes) -> data)), else every rate fit in its numbers against n^-1/2."""
    from polyloss import plots

    mod = claim_ids().get(v.claim.id)
    specs = getattr(mod, "figures", None)
    if specs is not None:
        for name, caption, ncols, draw in specs(v):
            fig, axes = plots.new_figure(ncols=ncols)
            doc.fig(f"fig_{v.claim.id}{name}", fig, caption, draw(axes))
        return
    fits = _rate_fits(v.numbers)
    if fits:
        fig, (ax,) = plots.new_figure()
        data = plots.convergence(ax, fits, f"{v.claim.id}: {v.claim.title}", reference_label="reference slope −1/2 (n^-1/2)")
        doc.fig(f"fig_{v.claim.id}", fig, f"{v.claim.id}: RMS over seeds vs width, fitted slopes with 95% CIs", data)


def verdict_recipe(v) -> str:
    """The training recipe of a verdict's networks, one line (:meth:`polyloss.recipe.Recipe.describe`): the
    ``recipe`` its numbers record (a ``Recipe.to_dict()`` dict); for a claim over several recipes, those of its
    ``recipes`` list or of its parts (dicts in its numbers with a ``recipe``); else plain GD — every claim suite
    trains the hidden layers at a constant rate unless it records otherwise."""
    from polyloss.recipe import Recipe

    numbers = v.numbers or {}
    several = numbers.get("recipes") or [x["recipe"] for x in numbers.values() if isinstance(x, dict) and "recipe" in x]
    if "recipe" not in numbers and several:  # a claim over several recipes (C9, C10, C12) records one per part
        try:
            return f"{len(several)} recipes: " + "; ".join(Recipe.from_dict(r).describe() for r in several)
        except Exception:  # noqa: BLE001 - a malformed record is shown, not fatal
            return f"unreadable recipes {str(several)[:60]}"
    try:
        return Recipe.from_dict(numbers.get("recipe")).describe()
    except Exception:  # noqa: BLE001 - a malformed record is shown, not fatal
        return f"unreadable recipe {str(numbers.get('recipe'))[:60]}"


def verdict_report(verdicts, out_dir) -> None:
    """verify.html / verify.md / verify.json: one section per claim, a summary table first."""
    from polyloss.report import _Doc, _table, _write_named

    os.makedirs(out_dir, exist_ok=True)  # (called directly on a folder that does not exist yet)
    doc = _Doc(out_dir)
    banner = broken_setup_banner(verdicts)
    doc.h("polyloss verify: the claims of Hayou (2025) checked by computation", 1)
    if banner:
        doc.p(f"**{banner}**")
    doc.p("Each claim is stated in our words with its source, the statistic, and the decision rule. "
          "**pass**: the data support the claim under the stated rule; **fail**: they contradict it; "
          "**inconclusive**: the data cannot decide at this scale; **observation**: an open question, reported.")
    doc.p(_table(["claim", "title", "verdict", "summary", "runtime s"],
                 [[v.claim.id, v.claim.title, v.verdict.upper(), v.summary, f"{v.runtime_s:.1f}"] for v in verdicts]))
    for v in verdicts:
        doc.h(f"{v.claim.id}: {v.claim.title} — {v.verdict.upper()}")
        doc.p(f"**Claim.** {v.claim.statement} (source: {v.claim.source})")
        doc.p(f"**Statistic.** {v.claim.statistic}")
        doc.p(f"**Decision rule.** {v.claim.tolerance}")
        doc.p(f"**Result.** {v.summary}")
        doc.p(f"**Training recipe.** {verdict_recipe(v)}")
        doc.p(f"Mode {v.mode}; widths {v.widths}; {v.seeds.get('per_width')} seeds per width from root seed "
              f"{v.seeds.get('root')} ({v.seeds.get('scheme')}); runtime {v.runtime_s:.1f} s.")
        _claim_figures(doc, v)
    numbers = {"schema": "polyloss.verify/1", "broken_setup": banner, "verdicts": [v.to_json() for v in verdicts],
               "recipes": {v.claim.id: verdict_recipe(v) for v in verdicts}}
    _write_named(doc, numbers, "verify")
