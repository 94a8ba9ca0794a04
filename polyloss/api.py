"""The Python API, one function per CLI verb, each returning a typed result.

>>> from polyloss import api
>>> api.sample, api.derive, api.sweep, api.compare, api.report, api.verify, api.transfer   # doctest: +SKIP

(The package's submodules carry the same names — ``polyloss.compare`` is the module — so the
verbs are gathered here.)

Every verb validates its arguments before any work and raises a :class:`~polyloss.errors.PolylossError`
subclass (mostly :class:`~polyloss.errors.SpecError`) whose one-line message names the argument,
the value and what is valid. The same forms are accepted everywhere:

* ``param``: ``'mup'``, ``'sp'``, ``'ntp'``, ``'ALPHA,GAMMA'``, a pair ``(alpha, gamma)`` or a
  :class:`~polyloss.spec.Parametrization`;
* ``data``: a :class:`~polyloss.data.Dataset`, a path to an NPZ/CSV file, a pair ``(X, y)`` or a
  mapping with ``'X'`` and ``'y'``;
* ``weights`` (``poly``): a :class:`~polyloss.weights.Weights` or a path to an NPZ file;
* paths: ``str`` or ``os.PathLike``;
* ``recipe`` (``poly``, ``sample``, ``sweep``): a :class:`~polyloss.recipe.Recipe`, a dict as
  :meth:`~polyloss.recipe.Recipe.to_dict` writes, or None for the plain recipe (GD on the hidden
  layers at a constant rate).

Requests whose estimated memory or time is absurd are refused up front (:mod:`polyloss._budget`).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping

from polyloss.errors import SpecError, invalid

__all__ = ["poly", "sample", "derive", "sweep", "compare", "report", "verify", "transfer"]

_DATA_FORMS = "a polyloss Dataset, a path to an .npz/.csv file, a pair (X, y) or a mapping with 'X' and 'y'"


def as_param(param):
    """Any accepted form of a parametrization as a :class:`~polyloss.spec.Parametrization`."""
    from polyloss.spec import Parametrization

    return Parametrization.parse(param)


def as_dataset(data, name: str = "data"):
    """Any accepted form of a data set as a :class:`~polyloss.data.Dataset`."""
    from polyloss.data import Dataset, load_data

    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return load_data(data)
    if isinstance(data, Mapping):
        if "X" not in data or "y" not in data:
            raise invalid(name, f"mapping with keys {sorted(map(str, data))}", _DATA_FORMS)
        return Dataset(data["X"], data["y"], source=f"`{name}` mapping")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return Dataset(data[0], data[1], source=f"`{name}` pair")
    raise invalid(name, type(data).__name__, _DATA_FORMS)


def _as_weights(weights, input_dim: int):
    from polyloss.weights import Weights, load_weights

    if isinstance(weights, Weights):
        if weights.input_dim != input_dim:
            raise invalid("weights", f"W0 of shape {tuple(weights.W0.shape)}", f"W0 of shape (n, {input_dim}) to match the data")
        return weights
    if isinstance(weights, (str, os.PathLike)):
        return load_weights(weights, input_dim=input_dim)
    raise invalid("weights", type(weights).__name__, "a polyloss Weights or a path to an NPZ with W0, W1..WL, V")


def _bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise invalid(name, value, "True or False")
    return value


def _int(name: str, value, minimum: int, maximum: int | None = None) -> int:
    from polyloss._budget import check_int

    return check_int(name, value, minimum, maximum)


def _window(value):
    if value is None:
        return None
    from polyloss.poly import _check_window

    return _check_window(value)


def _path(name: str, value) -> str:
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise invalid(name, type(value).__name__, "a path (str or os.PathLike)")
    return os.fspath(value)


def _choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise invalid(name, value, "one of " + ", ".join(map(repr, choices)))
    return value


def as_recipe(recipe):
    """Any accepted form of a training recipe as a :class:`~polyloss.recipe.Recipe` (None: plain)."""
    from polyloss.poly import as_recipe as _as_recipe

    return _as_recipe(recipe)


def poly(weights, data, param="mup", steps: int = 1, degree: int | None = None, window: float | None = None,
         n_grid: int = 96, recipe=None, **options):
    """The exact loss polynomial of one network after ``steps`` GD steps, η_n and the local minima
    (:func:`polyloss.poly.exact_polynomial`; ``options``: ``certify``, ``eval_etas``)."""
    from polyloss.poly import exact_polynomial

    ds = as_dataset(data)
    p = as_param(param)
    steps = _int("steps", steps, 1)
    recipe = as_recipe(recipe)
    recipe.check_steps(steps)
    if degree is not None:
        degree = _int("degree", degree, 0)
    window = _window(window)
    n_grid = _int("n_grid", n_grid, 8, 100_000)
    w = _as_weights(weights, ds.d)
    return exact_polynomial(w, ds, p, steps, degree, window, n_grid=n_grid, recipe=recipe, **options)


def sample(out_dir, *, depth: int, sampling, training, param="mup", data, data_description: dict | None = None,
           window: float | None = None, backend: str = "numpy", resume: bool = False, progress: bool = True,
           n_grid: int = 96, sampler: str = "auto", recipe=None, executor=None, optimizer: str = "gd",
           adam_eps: float | None = None, adam_exponent=None):
    """Sample networks per width into a run directory (:func:`polyloss.sampling.run_sample`).

    ``sampling``: a :class:`~polyloss.spec.SamplingSpec` or a mapping ``{widths, samples, seed}``;
    ``training``: a :class:`~polyloss.spec.TrainingSpec`, a mapping ``{steps, degree}`` or the
    number of steps; ``recipe``: the training recipe (see the module docstring); ``executor``: where
    the networks are computed — None or 'serial' (this process), a number of local Dask worker
    processes or 'auto' (all cores), a scheduler address 'tcp://HOST:PORT', or a ``distributed.Client``
    (:mod:`polyloss.executor`; needs ``pip install "polyloss[distributed]"``). Records are identical
    whichever computes them. ``optimizer='adam'``: the exact loss after one Adam step (steps 1, plain
    recipe; ``adam_eps`` default 1e-8, 0 = sign descent; ``adam_exponent`` the hidden Adam rate η n^-κ,
    default by ``param``; :mod:`polyloss.adam`).
    """
    from polyloss._budget import check_sample
    from polyloss.executor import check_executor
    from polyloss._paths import check_out_dir
    from polyloss.sampling import run_sample
    from polyloss.spec import SamplingSpec, TrainingSpec

    out_dir = check_out_dir("out", out_dir)
    depth = _int("depth", depth, 1)
    if isinstance(sampling, Mapping):
        sampling = SamplingSpec(**{k: sampling[k] for k in sampling if k in ("widths", "samples", "seed")})
    if not isinstance(sampling, SamplingSpec):
        raise invalid("sampling", type(sampling).__name__, "a SamplingSpec or a mapping {widths, samples, seed}")
    if isinstance(training, Mapping):
        training = TrainingSpec(**{k: training[k] for k in training if k in ("steps", "degree")})
    elif isinstance(training, numbers.Integral) and not isinstance(training, bool):
        training = TrainingSpec(int(training))
    if not isinstance(training, TrainingSpec):
        raise invalid("training", type(training).__name__, "a TrainingSpec, a mapping {steps, degree} or the number of steps")
    if sampling.seed >= 2**63:
        raise invalid("seed", sampling.seed, "an integer >= 0 and < 2^63")
    p = as_param(param)
    recipe = as_recipe(recipe)
    from polyloss.horizon import check_horizons

    check_horizons(training.steps, sampling.widths, recipe)  # a horizon rule T(n): every width, every T
    recipe.resolve_lr_exponents(p)  # an input/readout rate must be defined
    ds = as_dataset(data)
    if data_description is None:
        data_description = {"kind": "array", "source": ds.source, "m": ds.m, "d": ds.d}
    if not isinstance(data_description, Mapping):
        raise invalid("data_description", type(data_description).__name__, "a JSON-able dict or None")
    window = _window(window)
    backend = _choice("backend", backend, ("numpy", "cupy"))
    sampler = _choice("sampler", sampler, ("dense", "lazy", "auto"))
    resume, progress = _bool("resume", resume), _bool("progress", progress)
    n_grid = _int("n_grid", n_grid, 8, 100_000)
    check_executor(executor)
    check_sample(depth, sampling.widths, sampling.samples, training.steps, training.degree, ds.m, ds.d, sampler,
                 trained=recipe.trained_matrices(depth))
    return run_sample(out_dir, depth=depth, sampling=sampling, training=training, param=p, data=ds,
                      data_description=dict(data_description), window=window, backend=backend, resume=resume,
                      progress=progress, n_grid=n_grid, sampler=sampler, recipe=recipe,
                      executor=executor, optimizer=optimizer, adam_eps=adam_eps, adam_exponent=adam_exponent)


def derive(depth: int, steps: int, data=None, param="mup", window=None, **options):
    """The exact infinite-width limit (:func:`polyloss.derive.derive`); ``data`` in any accepted form
    (or None for the closed form in the moments)."""
    from polyloss._budget import check_derive
    from polyloss.derive import MAX_DEPTH, MAX_STEPS
    from polyloss.derive import derive as _derive

    from polyloss.recipe import Biases, Recipe

    rc, bz = options.get("recipe"), options.get("biases")
    check_derive(_int("depth", depth, 1, MAX_DEPTH), _int("steps", steps, 1, MAX_STEPS),
                 rc if isinstance(rc, Recipe) else None, bz if isinstance(bz, Biases) else None)
    if data is not None and not _is_exact_pair(data):
        data = as_dataset(data)
    return _derive(depth, steps, data=data, param=as_param(param), window=window, **options)


def _is_exact_pair(data) -> bool:
    """(X, y) given as nested lists (e.g. of Fractions) stays exact: derive converts it itself."""
    return isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], (list, tuple))


def sweep(out_dir, *, data, recipe=None, **kwargs):
    """Learning-rate sweeps by actual training (:func:`polyloss.sweep.run_sweep`); ``data`` in any
    accepted form, ``param`` in any accepted form, ``recipe`` as in the module docstring, ``executor``
    as in :func:`sample` (records identical whichever trains them)."""
    from polyloss.sweep import run_sweep

    return run_sweep(_path("out", out_dir), data=as_dataset(data), recipe=as_recipe(recipe), **kwargs)


def transfer(out_dir, *, data, models=None, factory=None, widths=None, **kwargs):
    """Does a user's model's learning rate transfer (:func:`polyloss.transfer.run_transfer`): ``models`` (state_dicts,
    paths or torch modules, one per width) or ``factory`` (a callable ``f(width[, seed])`` or 'module:function') with
    ``widths``; ``data`` in any accepted form; ``limit='exact'`` also measures the family against its exact
    infinite-width limit. Returns the report dict (verdict, per-width table, rule, ``exact_limit``)."""
    from polyloss.transfer import run_transfer

    return run_transfer(_path("out", out_dir), models=models, factory=factory, widths=widths, data=as_dataset(data),
                        **kwargs)


def compare(run_dir, derivation="auto", *, level: float = 0.05, n_coeffs: int = 4, limit=None):
    """A μP sample run against the exact limit (:func:`polyloss.compare.compare`)."""
    from polyloss.compare import compare as _compare

    run_dir = _path("run_dir", run_dir)
    if not (isinstance(derivation, str) and derivation == "auto"):
        derivation = _path("derivation", derivation)
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < float(level) < 1:
        raise invalid("level", level, "a number in (0, 1)")
    n_coeffs = _int("n_coeffs", n_coeffs, 1)
    return _compare(run_dir, derivation, level=float(level), n_coeffs=n_coeffs, limit=limit)


def report(run_dirs, out_dir, *, derivation="auto", level: float = 0.05, n_coeffs: int = 4, **options):
    """The convergence report of sample/sweep runs (:func:`polyloss.report.report`)."""
    from polyloss.report import report as _report

    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    if not isinstance(run_dirs, (list, tuple)):
        raise invalid("run_dirs", type(run_dirs).__name__, "a run directory or a list of them")
    run_dirs = [_path("run_dirs", p) for p in run_dirs]
    if not (isinstance(derivation, str) and derivation == "auto"):
        derivation = _path("derivation", derivation)
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < float(level) < 1:
        raise invalid("level", level, "a number in (0, 1)")
    n_coeffs = _int("n_coeffs", n_coeffs, 1)
    return _report(run_dirs, _path("out_dir", out_dir), derivation=derivation, level=float(level), n_coeffs=n_coeffs,
                   **options)


def verify(ids="all", mode: str = "quick", out_dir=None, *, resume: bool = False, progress: bool = True,
           overrides: dict | None = None, seed: int = 0, **options):
    """Every claim as a check with a verdict (:func:`polyloss.checks.run_claims`); ``executor=`` (as in
    :func:`sample`) computes the claims' networks and sweeps on Dask workers, with identical verdicts."""
    from polyloss.checks import run_claims

    if out_dir is None:
        raise SpecError("`out_dir` is required: the directory for the verdicts and the report")
    mode = _choice("mode", mode, ("quick", "full"))
    seed = _int("seed", seed, 0, 2**63 - 1)
    resume, progress = _bool("resume", resume), _bool("progress", progress)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise invalid("overrides", type(overrides).__name__, "a mapping NAME -> PARAM, e.g. {'mup': 'sp'}")
    return run_claims(ids, mode, _path("out_dir", out_dir), resume=resume, progress=progress, overrides=overrides,
                      seed=seed, **options)
