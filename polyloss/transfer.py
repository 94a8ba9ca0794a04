"""Does *my* model's learning rate transfer? The exact optimum of a user's MLP at several widths (issue 15, part 4).

A user gives models of one architecture at several widths — a factory ``module:function`` called with each
width (and a seed), or stored state_dicts — and how they are trained (:mod:`polyloss.interop`: torch SGD,
mup.MuSGD; the loss convention). For every (width, seed) polyloss computes the exact loss polynomial after t
GD steps (:func:`polyloss.poly.exact_polynomial`) and reports, in the user's units (η = the optimizer's lr):

* η_n, the optimum in the window (the same window at every width), and 𝓛_n(η_n);
* the **transfer penalty** of tuning on the smallest width and reusing the rate at width n: with
  𝓛̄_n(η) the seed-mean loss curve at width n, 𝓛̄_n(0) its initial loss and η̄_{n0} the minimiser of the
  smallest width's curve, p_n = (𝓛̄_n(η̄_{n0}) − min 𝓛̄_n) / (𝓛̄_n(0) − min 𝓛̄_n): the share of the achievable
  improvement that reusing the rate gives up (the numerator's first term exact — the stable loss of every
  seed at η̄_{n0}; the minimum and η̄_{n0} from the curves on a log grid of 100 points per decade over the 6
  decades below the window's end, refined by a parabola in log η). The practitioner's "tune small, reuse
  large", on seed-mean curves so that seed-to-seed noise of the per-network optimum is not counted as a
  transfer cost, and relative to the improvement rather than to the minimum, which can be arbitrarily close
  to 0 (a linear model that nearly interpolates) and would make any ratio to it unbounded;
* the extrapolated limit η̂_∞ of the seed means (weighted least squares on a + b/n, as
  :func:`polyloss.analysis.extrapolate`; plain least squares with one seed) and the hyperparameter gaps
  |η_n − η̂_∞|; the log-log slope of η_n in n;
* the fast-transfer gaps (Ghosh, Wu & Bietti 2026) with the largest width N in place of the limit's curve (a
  user's initialisation has no exact limit here): the loss gap a_n = |min 𝓛̄_n − 𝓛̂_∞| (𝓛̂_∞ extrapolated like η̂_∞)
  and the penalty c_n = 𝓛̄_N(η*_n) − min 𝓛̄_N of deploying width n's tuned rate at N (exact values), with c/a and
  its log-log slope — reported, not judged.

With ``limit='exact'`` the family has an exact limit (:func:`polyloss.derive.derive` with the model's recipe and
biases, :func:`polyloss.interop.limit_spec`), when the models are initialised as polyloss's μP networks (checked on
every model, :func:`polyloss.interop.check_limit_init`) and the recipe has one: the report adds η_∞ (the limit's
minimiser in the window), the gaps |η_n − η_∞|, a_n = |min 𝓛̄_n − min 𝓛_∞| and the penalty c_n = 𝓛_∞(η*_n) −
min 𝓛_∞ of using width n's tuned rate in the limit (Ghosh, Wu & Bietti's definitions, exact), and the log-log
slopes of |η_n − η_∞| and of c/a — reported, not judged.

The verdict (:data:`RULE`, fixed before any data): the learning rate **transfers** when the mean penalty at the
largest width is at most :data:`TOLERANCE` (1 %), **does not transfer** when it is larger, and is
**inconclusive** when an optimum of the smallest or the largest width sits at the window's edge (the optimum
may lie outside the window). Records are written one per (width, seed) as they finish (locked, resumable).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from polyloss.data import Dataset
from polyloss.errors import RunError, SpecError, invalid

__all__ = ["SCHEMA", "RULE", "TOLERANCE", "LIMITS", "exact_limit", "limit_loss", "load_factory", "state_of", "run_transfer", "transfer_report", "curve_minimum",
           "report_text", "plot_transfer"]

SCHEMA = "polyloss.transfer/1"
TOLERANCE = 0.01
RULE = ("the learning rate transfers when the rate tuned on the smallest width (the minimiser eta_n0 of its seed-mean "
        "loss curve Lbar) gives up at most 1% of the achievable improvement at the largest width N, "
        "(Lbar_N(eta_n0) - min Lbar_N)/(Lbar_N(0) - min Lbar_N) <= 0.01; it does not transfer when that penalty is "
        "larger (infinite when GD diverges at eta_n0 at width N); inconclusive when the minimiser of the smallest or "
        "the largest width's curve lies at the window's edge")
RECORD_FIELDS = ("width", "sample", "eta_opt", "loss_at_eta_opt", "at_edge", "loss_init", "curve_loss")
_MATCH_KEYS = ("source", "steps", "seeds", "data", "optimizer", "base_width", "output_mult", "layout", "loss",
               "recipe", "window", "grid", "limit")
LIMITS = ("extrapolate", "exact")
GRID_DECADES, GRID_PER_DECADE = 6, 100  # the curves' common log grid: 6 decades below the window's end


# ----------------------------------------------------------------------------------------- models
def load_factory(spec: str):
    """``'package.module:function'`` or ``'path/to/file.py:function'`` → the callable (one-line errors)."""
    valid = "'module:function' or 'file.py:function' naming a callable that takes the width (and a seed)"
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise invalid("factory", spec, valid)
    mod_name, fn_name = (s.strip() for s in spec.split(":"))
    if not mod_name or not fn_name.isidentifier():
        raise invalid("factory", spec, valid)
    try:
        if mod_name.endswith(".py"):
            if not os.path.isfile(mod_name):
                raise invalid("factory", spec, f"{valid} (no file {mod_name!r})")
            name = "_polyloss_factory_" + os.path.splitext(os.path.basename(mod_name))[0]
            spec_ = importlib.util.spec_from_file_location(name, mod_name)
            module = importlib.util.module_from_spec(spec_)
            spec_.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(mod_name)
    except SpecError:
        raise
    except Exception as exc:  # the user's module: any import error is theirs, reported in one line
        raise SpecError(f"`factory`={spec!r} is invalid: importing {mod_name!r} failed ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise invalid("factory", spec, f"{valid} ({mod_name!r} has no callable {fn_name!r})")
    return fn


def state_of(obj) -> dict:
    """A state_dict-like ``{name: float64 array}`` from what a factory returns: a dict of arrays or tensors, an
    object with ``state_dict()`` (a torch module), or a path to a .safetensors/.npz file."""
    from polyloss.interop import read_state_dict

    if isinstance(obj, (str, os.PathLike)):
        return read_state_dict(obj)
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise invalid("factory result", type(obj).__name__, "a dict of arrays, a torch.nn.Module or a path to a "
                      ".safetensors/.npz state_dict")
    out = {}
    for k, v in obj.items():
        if hasattr(v, "detach"):  # a torch tensor: no torch import needed
            v = v.detach().cpu().double().numpy()
        out[str(k)] = v
    return out


def _call_factory(fn, width: int, seed: int, seeds: int):
    try:
        params = inspect.signature(fn).parameters
        takes_seed = len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params.values())
    except (TypeError, ValueError):
        takes_seed = True
    if seeds > 1 and not takes_seed:
        raise SpecError(f"`seeds`={seeds} is invalid with a factory that takes only the width: give --seeds 1 or a "
                        "factory function(width, seed)")
    try:
        return fn(width, seed) if takes_seed else fn(width)
    except Exception as exc:
        raise SpecError(f"the factory failed at width {width}, seed {seed}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


# ----------------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class _Job:
    data: Dataset
    steps: int
    conv: object  # LossConvention
    knobs: dict  # recipe knobs (schedule, weight decay, momentum, trained)
    window: float | None  # in the user's lr units
    grid: np.ndarray  # the user's lr units
    bias_vars: object = None  # with the exact limit: the declared (input, hidden) bias variances (checked on each model)


def _record(job: _Job, model, width: int, sample: int, eta_base: float | None, tuned: dict | None = None) -> dict:
    from polyloss.engine import LossEngine
    from polyloss.poly import exact_polynomial
    from polyloss.spec import Parametrization

    mup = Parametrization.preset("mup")  # only its hidden γ would matter, and the recipe's explicit exponents win
    t0 = time.perf_counter()
    if model.weights.width != width:
        raise SpecError(f"the model for width {width} has width {model.weights.width} (its input layer is "
                        f"{model.weights.width}×{model.weights.input_dim})")
    if model.weights.input_dim != job.data.d:
        raise SpecError(f"the model takes {model.weights.input_dim} inputs, the data has d = {job.data.d}")
    if job.bias_vars is not None:  # the exact limit is that of polyloss's muP initialisation
        from polyloss.interop import check_limit_init

        check_limit_init(model, job.bias_vars[0], hidden_bias_var=job.bias_vars[1])
    knobs = dict(job.knobs)
    trained = knobs.pop("trained", None)
    recipe = job.conv.internal_recipe(model.recipe(trained=trained, **knobs))
    a, b = job.conv.eta_factor, job.conv.loss_factor
    net, data, channel = model.weights, job.data, False
    if model.biases is not None:  # biases on a constant channel (polyloss.interop.augmented_network)
        from polyloss.interop import augmented_network

        aug = augmented_network(model, job.data, recipe)
        if aug is not None:
            net, data, recipe, _ = aug
            channel = True
    with np.errstate(over="ignore", invalid="ignore"):
        res = exact_polynomial(net, data, mup, job.steps, window=job.window * a, certify="bound", recipe=recipe,
                               channel=channel)
        eng = LossEngine(net, data, mup, recipe=recipe, channel=channel)
        curve = eng.loss_at(job.grid * a, job.steps) * b
        at_base = None if eta_base is None else float(eng.loss_at(np.array([eta_base * a]), job.steps)[0] * b)
        init = float(eng.loss_at(np.array([0.0]), job.steps)[0] * b)
        at_tuned = None
        if tuned:  # the largest width at every smaller width's tuned rate (the fast-transfer penalties)
            vals = eng.loss_at(np.array([tuned[k] * a for k in sorted(tuned)]), job.steps) * b
            at_tuned = {str(k): (float(v) if np.isfinite(v) else None) for k, v in zip(sorted(tuned), vals)}
    mn = res.minimisation
    return {"width": int(width), "sample": int(sample), "eta_opt": mn.eta_opt / a, "loss_at_eta_opt": mn.loss_opt * b,
            "at_edge": bool(mn.at_edge), "local_minima": [{"eta": lm.eta / a, "loss": lm.loss * b} for lm in mn.local_minima],
            "eta_base": eta_base, "loss_at_eta_base": at_base if at_base is None or math.isfinite(at_base) else None,
            "loss_init": init, "loss_at_tuned": at_tuned,
            "curve_loss": [float(v) if np.isfinite(v) else None for v in curve], "seconds": time.perf_counter() - t0}


def exact_limit(model, data: Dataset, steps: int, conv, knobs: dict, window: float, input_bias_var=None,
                hidden_bias_var=None) -> dict:
    """The exact infinite-width limit of ``model``'s family (JSON-safe, in the user's units): its loss polynomial's
    exact coefficients (polyloss's η and loss), η_∞ = the limit's minimiser in the window (None at its edge) and
    min 𝓛_∞. A recipe without a limit, or biases without one, is a one-line SpecError."""
    from fractions import Fraction

    from polyloss.derive import derive
    from polyloss.interop import check_limit_init, limit_spec

    trained = knobs.get("trained")
    rk = {k: v for k, v in knobs.items() if k != "trained"}
    rec, bz = limit_spec(model, conv.internal_recipe(model.recipe(trained=trained, **rk)), input_bias_var,
                         hidden_bias_var)
    a, b = conv.eta_factor, conv.loss_factor
    dv = derive(model.weights.depth, steps, data=data, recipe=rec, biases=bz, window=Fraction(repr(window * a)))
    if dv.route == "power-counting":
        raise SpecError(f"`limit`='exact' is invalid for this model trained by {rec.describe()}: it has no "
                        f"infinite-width limit in the lr (power counting: eta_n ~ n^({dv.recipe_power.eta})); use "
                        "limit='extrapolate'")
    iv, hv = (0, 0) if bz is None else (bz.input_var, bz.hidden_var)
    check_limit_init(model, iv, hidden_bias_var=hv)
    wm = dv.eta_window_min
    return {"eta_inf": None if wm is None else float(Fraction(wm.eta)) / a,
            "loss_inf": None if wm is None else float(Fraction(wm.loss)) * b, "at_window_edge": wm is None,
            "coefficients": dv.coefficient_strings(), "eta_factor": a, "loss_factor": b, "degree": dv.degree,
            "recipe": rec.to_dict(), "biases": None if bz is None else bz.to_dict()}


def limit_loss(limit: dict, eta) -> float | list:
    """𝓛_∞ at the user's lr ``eta`` (user units; a number or a sequence), evaluated exactly on the limit's
    rational coefficients at the float's exact value (python-flint when installed), then rounded once."""
    from fractions import Fraction

    from polyloss.fock import HAS_FLINT

    many = not isinstance(eta, (int, float))
    xs = [Fraction(float(e)) * Fraction(repr(float(limit["eta_factor"]))) for e in (eta if many else [eta])]
    cs = [Fraction(c) for c in limit["coefficients"]]
    if HAS_FLINT:
        import flint

        P = flint.fmpq_poly([flint.fmpq(c.numerator, c.denominator) for c in cs])
        vals = [P(flint.fmpq(x.numerator, x.denominator)) for x in xs]
        vals = [Fraction(int(v.p), int(v.q)) for v in vals]
    else:  # pragma: no cover - exercised only without python-flint
        vals = []
        for x in xs:
            acc = Fraction(0)
            for c in reversed(cs):
                acc = acc * x + c
            vals.append(acc)
    out = [float(v) * limit["loss_factor"] for v in vals]
    return out if many else out[0]


def run_transfer(out_dir, *, models=None, factory=None, widths=None, seeds: int = 1, data: Dataset, steps: int,
                 optimizer: str = "sgd", base_width=None, output_mult=1.0, layout=None, loss: str = "half-mse",
                 recipe_knobs: dict | None = None, window=None, data_description: dict | None = None,
                 resume: bool = False, progress: bool = True, base_shapes=None, limit: str = "extrapolate",
                 input_bias_var=None, hidden_bias_var=None) -> dict:
    """Compute the records of a transfer report into ``out_dir`` and return :func:`transfer_report`.

    Models: ``models`` (a list of state_dicts or paths, one per width, one seed) or ``factory`` (a callable or
    'module:function', called as ``factory(width)`` or ``factory(width, seed)``) with ``widths``. ``window``:
    where η_n is searched, in the user's lr units (default: polyloss's default window of the smallest model).
    ``recipe_knobs``: schedule, weight_decay, wd_mode, momentum, nesterov, trained (see
    :meth:`polyloss.interop.ImportedModel.recipe`). ``base_shapes``: mup's base-shape file (instead of ``base_width``).
    ``limit``: 'extrapolate' (default) or 'exact' (:func:`exact_limit`; ``input_bias_var`` and
    ``hidden_bias_var``: the biases' declared initial entry variances, :func:`polyloss.interop.limit_spec`)."""
    from polyloss._paths import check_out_dir
    from polyloss._progress import Progress
    from polyloss._rundir import run_session
    from polyloss.interop import loss_convention
    from polyloss.poly import default_window
    from polyloss.spec import parse_widths
    from polyloss.train import _check_count

    if not isinstance(data, Dataset):
        raise invalid("data", type(data).__name__, "a polyloss.data.Dataset")
    out_dir = check_out_dir("out", out_dir)
    steps = _check_count("steps", steps, 1)
    seeds = _check_count("seeds", seeds, 1)
    conv = loss_convention(loss, "gd")
    if limit not in LIMITS:
        raise invalid("limit", limit, "'extrapolate' or 'exact'")
    for name, v in (("input_bias_var", input_bias_var), ("hidden_bias_var", hidden_bias_var)):
        if v is not None and limit != "exact":
            raise invalid(name, v, "None unless limit='exact' (it declares the init of the limit)")
    if optimizer == "muadam":
        raise invalid("optimizer", optimizer, "'sgd' or 'musgd' (the transfer report is exact for GD; Adam-trained "
                      "models are swept with polyloss sweep)")
    if (models is None) == (factory is None):
        raise SpecError("give exactly one of `models` (stored state_dicts, one per width) and `factory` (with widths)")
    if models is not None:
        if isinstance(models, (str, os.PathLike)) or not hasattr(models, "__iter__"):
            raise invalid("models", models, "a list of state_dicts or paths, one per width")
        states = [state_of(m) for m in models]
        if seeds != 1:
            raise invalid("seeds", seeds, "1 with stored models (one model per width)")
        if not states:
            raise invalid("models", models, "a non-empty list of state_dicts or paths, one per width")
        by_width = {}
        for st in states:
            m = _imported_raw(st, layout, optimizer, base_width, output_mult, base_shapes)
            if m.weights.width in by_width:
                raise invalid("models", f"two models of width {m.weights.width}", "one model per width")
            by_width[m.weights.width] = m
        widths = sorted(by_width)
        source = {"kind": "models", "paths": [os.path.abspath(os.fspath(p)) if isinstance(p, (str, os.PathLike))
                                              else None for p in models]}
        fn = None
    else:
        fn = load_factory(factory) if isinstance(factory, str) else factory
        if not callable(fn):
            raise invalid("factory", factory, "a callable or 'module:function'")
        widths = list(parse_widths(widths))
        source = {"kind": "factory", "spec": factory if isinstance(factory, str) else getattr(fn, "__qualname__", "?")}
        by_width = None
    if len(widths) < 2:
        raise invalid("widths", widths, "at least two widths (transfer is between widths)")
    knobs = dict(recipe_knobs or {})
    first = by_width[widths[0]] if by_width else _imported_raw(_call_factory(fn, widths[0], 0, seeds), layout,
                                                                 optimizer, base_width, output_mult, base_shapes)
    if first.weights.input_dim != data.d:  # before any work (each record checks its own model again)
        raise SpecError(f"the model takes {first.weights.input_dim} inputs, the data has d = {data.d}")
    if window is None:
        trained = knobs.get("trained")
        rk = {k: v for k, v in knobs.items() if k != "trained"}
        rec = conv.internal_recipe(first.recipe(trained=trained, **rk))
        window = default_window(data, first.weights.depth, rec, "mup") / conv.eta_factor
    window = float(window)
    if not (math.isfinite(window) and window > 0):
        raise invalid("window", window, "a number > 0")
    grid = np.geomspace(window / 10.0**GRID_DECADES, window, GRID_DECADES * GRID_PER_DECADE + 1)
    lim, var = None, None
    if limit == "exact":
        lim = exact_limit(first, data, steps, conv, knobs, window, input_bias_var, hidden_bias_var)
        var = (0, 0) if lim["biases"] is None else (lim["biases"]["input_var"], lim["biases"].get("hidden_var", 0))
    job = _Job(data, steps, conv, knobs, window, grid, var)
    config = {"schema": SCHEMA, "source": source, "widths": widths, "seeds": seeds, "steps": steps,
              "data": data_description or {"kind": "array", "m": data.m, "d": data.d},
              "optimizer": optimizer, "base_width": first.base_width, "output_mult": float(output_mult), "layout": layout,
              "loss": conv.to_json(), "recipe": {k: (str(v) if not isinstance(v, (bool, type(None))) else v)
                                                   for k, v in knobs.items()},
              "window": window, "grid": grid.tolist(), "rule": RULE, "depth": first.weights.depth,
              "mapping": list(first.notes), "limit": lim}
    with run_session(out_dir, config, _MATCH_KEYS, resume, grow_keys=("widths",), required=RECORD_FIELDS) as (
            config, old, writer):
        done = {(r["width"], r["sample"]): r for r in old}
        todo = [(n, s) for n in config["widths"] for s in range(seeds) if (n, s) not in done]
        bar = Progress(len(todo), desc=f"transfer t={steps} {len(widths)} widths", enabled=progress,
                       costs=[float(n) ** 2 for n, _ in todo])
        base_n = min(config["widths"])
        for n, s in todo:
            eta_base = None
            if n != base_n:
                base = [r for (w, _), r in done.items() if w == base_n]
                if len(base) < seeds:  # (the base width is computed first: todo is width-ordered)
                    raise RunError(f"the records of the smallest width {base_n} are incomplete in {out_dir}")
                eta_base = curve_minimum(config["grid"], [r["curve_loss"] for r in base])[0]
            model = (by_width[n] if by_width else
                     (first if (n, s) == (widths[0], 0) else _imported_raw(_call_factory(fn, n, s, seeds), layout,
                                                                             optimizer, base_width, output_mult, base_shapes)))
            tuned = None
            if n == max(config["widths"]):  # each smaller width's tuned rate (all computed: todo is width-ordered)
                tuned = {w: curve_minimum(config["grid"], [r["curve_loss"] for (w2, _), r in done.items() if w2 == w])[0]
                         for w in config["widths"] if w != n}
            rec = _record(job, model, n, s, eta_base, tuned)
            if n == base_n:
                rec["eta_base"] = None
            writer.write(rec)
            done[(n, s)] = rec
            bar.update()
        bar.close()
        records = list(done.values())
    return transfer_report(config, records)


def _imported_raw(state, layout, optimizer, base_width, output_mult, base_shapes=None):
    from polyloss.interop import import_model

    return import_model(state_of(state), layout=layout, optimizer=optimizer, base_width=base_width,
                        output_mult=output_mult, base_shapes=base_shapes)


# ----------------------------------------------------------------------------------------- the report
def curve_minimum(grid, curves) -> tuple[float, float, bool]:
    """(η*, min, at_edge) of the seed-mean of ``curves`` (lists on the log ``grid``, None = diverged): the grid
    argmin refined by the vertex of the parabola in log η through it and its neighbours (the grid point itself
    when the parabola does not open upward). A diverged seed makes the mean +inf there."""
    g = np.log(np.asarray(grid, float))
    rows = np.array([[np.inf if v is None else v for v in c] for c in curves], float)
    mean = rows.mean(axis=0)
    i = int(np.argmin(mean))
    if not np.isfinite(mean[i]):
        return float(np.exp(g[0])), math.inf, True
    edge = i == 0 or i == g.size - 1  # (a neighbour where GD diverges is no edge: the minimum is inside)
    if not edge and np.all(np.isfinite(mean[i - 1:i + 2])):
        x, y = g[i - 1:i + 2], mean[i - 1:i + 2]
        c2, c1, c0 = np.polyfit(x, y, 2)
        if c2 > 0:
            xv = -c1 / (2 * c2)
            if x[0] <= xv <= x[2]:
                return float(np.exp(xv)), float(min(y[1], c0 + c1 * xv + c2 * xv * xv)), False
    return float(np.exp(g[i])), float(mean[i]), edge


def _fit_limit(groups: dict) -> tuple[float | None, str]:
    from polyloss.analysis import extrapolate

    ns = sorted(groups)
    if len(ns) < 2:
        return None, "-"
    if all(len(groups[n]) >= 2 and np.std(groups[n]) > 0 for n in ns):
        ex = extrapolate({n: np.asarray(groups[n], float) for n in ns})
        return ex.value, ex.model + " (weighted by the seeds' s.e.)"
    x = 1.0 / np.array(ns, float)
    y = np.array([np.mean(groups[n]) for n in ns])
    coef = np.polyfit(x, y, 1)
    return float(coef[1]), "a + b/n (least squares on the seed means)"


def transfer_report(config: dict, records: list) -> dict:
    """The per-width table, the extrapolated limit, the slope of η_n and the verdict (:data:`RULE`)."""
    widths = sorted({r["width"] for r in records})
    by = {n: sorted((r for r in records if r["width"] == n), key=lambda r: r["sample"]) for n in widths}
    base_n = widths[0]
    eta_base, _, base_edge = curve_minimum(config["grid"], [r["curve_loss"] for r in by[base_n]])
    rows = []
    for n in widths:
        etas = np.array([r["eta_opt"] for r in by[n]])
        losses = np.array([r["loss_at_eta_opt"] for r in by[n]])
        eta_curve, min_curve, edge = curve_minimum(config["grid"], [r["curve_loss"] for r in by[n]])
        if n == base_n:
            pen, at_mean = None, None
        else:
            at = [r["loss_at_eta_base"] for r in by[n]]
            at_mean = None if any(v is None for v in at) else float(np.mean(at))
            init = float(np.mean([r["loss_init"] for r in by[n]]))
            gain = init - min_curve
            pen = math.inf if at_mean is None else (max(0.0, at_mean - min_curve) / gain if gain > 0 else math.inf)
        rows.append({"width": n, "seeds": len(etas), "eta_opt_mean": float(etas.mean()),
                     "eta_opt_se": float(etas.std(ddof=1) / math.sqrt(len(etas))) if len(etas) > 1 else None,
                     "loss_at_eta_opt_mean": float(losses.mean()), "eta_mean_curve": eta_curve,
                     "min_mean_curve": min_curve, "mean_curve_at_edge": edge, "loss_at_eta_base_mean": at_mean,
                     "penalty": pen, "at_edge": any(r["at_edge"] for r in by[n])})
    eta_inf, model = _fit_limit({n: [r["eta_opt"] for r in by[n]] for n in widths})
    loss_inf, _ = _fit_limit({n: [r["loss_at_eta_opt"] for r in by[n]] for n in widths})
    for row in rows:
        row["hyperparameter_gap"] = None if eta_inf is None else abs(row["eta_opt_mean"] - eta_inf)
    # fast transfer (Ghosh, Wu & Bietti 2026), with the largest width N standing in for the limit's curve (no exact
    # limit exists for the user's initialisation): loss gap a_n = |min Lbar_n - Lhat_inf| (Lhat_inf extrapolated like
    # eta_inf), penalty c_n = Lbar_N(eta*_n) - min Lbar_N of deploying width n's tuned rate at N
    big = widths[-1]
    tuned_vals = [r.get("loss_at_tuned") for r in by[big]]
    for row in rows:
        n = row["width"]
        row["loss_gap"] = None if loss_inf is None else abs(row["min_mean_curve"] - loss_inf)
        vals = [None if not t else t.get(str(n)) for t in tuned_vals]
        if n == big or any(v is None for v in vals):
            row["penalty_at_largest"], row["c_over_a"] = None, None
            continue
        c = max(0.0, float(np.mean(vals)) - rows[-1]["min_mean_curve"])
        row["penalty_at_largest"] = c
        row["c_over_a"] = c / row["loss_gap"] if row["loss_gap"] else None
    exact = _exact_gaps(config.get("limit"), rows)
    ratios = [(r["width"], r["c_over_a"]) for r in rows if r["c_over_a"]]
    fast_slope = (float(np.polyfit(np.log([w for w, _ in ratios]), np.log([v for _, v in ratios]), 1)[0])
                  if len(ratios) >= 2 else None)
    slope = None
    if len(widths) >= 2:
        slope = float(np.polyfit(np.log(widths), np.log([r["eta_opt_mean"] for r in rows]), 1)[0])
    last = rows[-1]
    if base_edge or last["mean_curve_at_edge"]:
        verdict = "inconclusive"
        why = "the minimiser of a seed-mean loss curve lies at the window's edge (give a wider --window)"
    elif last["penalty"] <= TOLERANCE:
        verdict = "transfers"
        why = (f"reusing eta = {eta_base:.6g} from n = {base_n} gives up {100 * last['penalty']:.3g}% of the achievable "
               f"improvement at n = {last['width']}")
    else:
        verdict = "does not transfer"
        why = (f"reusing eta = {eta_base:.6g} from n = {base_n} gives up "
               + ("divergence" if math.isinf(last["penalty"]) else f"{100 * last['penalty']:.3g}%")
               + f" of the achievable improvement at n = {last['width']} (its own seed-mean curve's minimiser is "
               f"{last['eta_mean_curve']:.6g})")
    return {"schema": SCHEMA, "rule": RULE, "tolerance": TOLERANCE, "verdict": verdict, "why": why,
            "eta_base": eta_base, "base_width": base_n, "eta_inf_extrapolated": eta_inf, "extrapolation": model,
            "slope_log_eta_vs_log_n": slope, "widths": rows, "config": config,
            "loss_inf_extrapolated": loss_inf,
            "fast_transfer": {"slope_log_c_over_a": fast_slope,
                              "reading": "reported, not judged: c_n is measured at the largest width N in place of the "
                                         "limit, so c/a falling with n (negative slope) is the finite-width sign of fast "
                                         "transfer (c = o(a)); a needs the extrapolated limit loss"},
            "exact_limit": exact,
            "units": "eta: the optimizer's lr; loss: " + ("nn.MSELoss (1/m) sum (f-y)^2"
                                                           if config["loss"]["loss"] == "mse" else "(1/2m) sum (f-y)^2")}


def _loglog_slope(pairs) -> float | None:
    pairs = [(w, v) for w, v in pairs if v is not None and v > 0 and math.isfinite(v)]
    if len(pairs) < 2:
        return None
    return float(np.polyfit(np.log([w for w, _ in pairs]), np.log([v for _, v in pairs]), 1)[0])


def _exact_gaps(limit: dict | None, rows: list) -> dict | None:
    """Against the exact limit (adds per-width fields to ``rows``): the hyperparameter gap |η_n − η_∞| (seed mean
    of the per-network optima), the loss gap a_n = |min 𝓛̄_n − min 𝓛_∞| and the penalty c_n = 𝓛_∞(η*_n) −
    min 𝓛_∞ (η*_n the seed-mean curve's minimiser), with log-log slopes in n; None without an exact limit."""
    if limit is None:
        return None
    if limit["eta_inf"] is None:
        return {**limit, "reading": "the limit's minimiser lies at the window's edge: no gaps (give a wider window)"}
    e, lo = limit["eta_inf"], limit["loss_inf"]
    for row in rows:
        row["hyperparameter_gap_exact"] = abs(row["eta_opt_mean"] - e)
        row["loss_gap_exact"] = abs(row["min_mean_curve"] - lo)
        row["penalty_exact"] = max(0.0, limit_loss(limit, row["eta_mean_curve"]) - lo)
        row["c_over_a_exact"] = row["penalty_exact"] / row["loss_gap_exact"] if row["loss_gap_exact"] else None
    return {**limit,
            "slope_log_hyperparameter_gap": _loglog_slope([(r["width"], r["hyperparameter_gap_exact"]) for r in rows]),
            "slope_log_loss_gap": _loglog_slope([(r["width"], r["loss_gap_exact"]) for r in rows]),
            "slope_log_penalty": _loglog_slope([(r["width"], r["penalty_exact"]) for r in rows]),
            "slope_log_c_over_a": _loglog_slope([(r["width"], r["c_over_a_exact"]) for r in rows]),
            "reading": "reported, not judged: fast transfer (Ghosh, Wu & Bietti 2026) is c_n = o(a_n), i.e. c/a falling "
                       "with n; the hyperparameter gap's slope is the rate at which eta_n approaches the limit's"}


def report_text(rep: dict) -> list[str]:
    cfg = rep["config"]
    out = [f"transfer of the learning rate: {cfg['source'].get('spec') or 'stored models'}, L = {cfg['depth']}, "
           f"t = {cfg['steps']} GD steps, {cfg['optimizer']}" + (f" (base width {cfg['base_width']})"
                                                                 if cfg["base_width"] else "") + f"; {rep['units']}",
           f"  {'width':>7} {'seeds':>5} {'eta_n (mean)':>14} {'s.e.':>9} {'loss at eta_n':>14} "
           f"{'eta* (mean curve)':>17} {'penalty (% gain)':>18} {'|eta_n - eta_inf^|':>18}"]
    for r in rep["widths"]:
        pen = "(base)" if r["penalty"] is None else ("diverges" if math.isinf(r["penalty"]) else
                                                     f"{100 * r['penalty']:.3g}%")
        se = "-" if r["eta_opt_se"] is None else f"{r['eta_opt_se']:.3g}"
        gap = "-" if r["hyperparameter_gap"] is None else f"{r['hyperparameter_gap']:.4g}"
        out.append(f"  {r['width']:>7} {r['seeds']:>5} {r['eta_opt_mean']:>14.6g} {se:>9} "
                   f"{r['loss_at_eta_opt_mean']:>14.6g} {r['eta_mean_curve']:>17.6g} {pen:>18} {gap:>18}"
                   + ("  (edge)" if r["at_edge"] or r["mean_curve_at_edge"] else ""))
    if rep["eta_inf_extrapolated"] is not None:
        out.append(f"  extrapolated eta_inf = {rep['eta_inf_extrapolated']:.6g} ({rep['extrapolation']}); "
                   f"log-log slope of eta_n in n: {rep['slope_log_eta_vs_log_n']:.3f}")
    gaps = [r for r in rep["widths"] if r.get("c_over_a") is not None]
    if gaps:
        out.append("  fast transfer (c_n: deploying width n's tuned rate at the largest width, a_n: |min Lbar_n - "
                   "Lhat_inf|): " + ", ".join(f"n = {r['width']}: c/a = {r['c_over_a']:.3g}" for r in gaps)
                   + ("" if rep["fast_transfer"]["slope_log_c_over_a"] is None else
                      f"; slope of log c/a = {rep['fast_transfer']['slope_log_c_over_a']:.2f} (reported, not judged)"))
    ex = rep.get("exact_limit")
    if ex is not None:
        if ex["eta_inf"] is None:
            out.append(f"  exact limit (degree {ex['degree']}): {ex['reading']}")
        else:
            fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
            out.append(f"  exact limit: eta_inf = {ex['eta_inf']:.6g}, min L_inf = {ex['loss_inf']:.6g} (degree "
                       f"{ex['degree']}); log-log slopes in n: |eta_n - eta_inf| {fmt(ex['slope_log_hyperparameter_gap'])}, "
                       f"a_n {fmt(ex['slope_log_loss_gap'])}, c_n {fmt(ex['slope_log_penalty'])}, c/a "
                       f"{fmt(ex['slope_log_c_over_a'])} (reported, not judged)")
            out.append("    " + ", ".join(f"n = {r['width']}: |eta_n - eta_inf| = {r['hyperparameter_gap_exact']:.3g}, "
                                          f"c/a = {fmt(r['c_over_a_exact'])}" for r in rep["widths"]))
    out.append(f"verdict: {rep['verdict']}: {rep['why']}")
    out.append(f"  rule: {rep['rule']}")
    return out


def plot_transfer(rep: dict, records: list, path) -> dict:
    """One figure, three panels: (a) the loss vs η per width (seed mean) with each η_n and the reused η_{n0}, and
    the exact limit's curve when there is one; (b) η_n vs width with η̂_∞ (and the exact η_∞) and η_{n0}; (c) the
    penalty of reusing η_{n0} vs width with the 1 % line."""
    from polyloss import plots

    cfg = rep["config"]
    grid = np.asarray(cfg["grid"], float)
    fig, axes = plots.new_figure(3, width=5.2)
    widths = [r["width"] for r in rep["widths"]]
    curves = {}
    for n in widths:
        rows = np.array([[np.nan if v is None else v for v in r["curve_loss"]] for r in records if r["width"] == n])
        mean = np.nanmean(rows, axis=0) if rows.size else np.full(grid.size, np.nan)
        se = (np.nanstd(rows, axis=0, ddof=1) / np.sqrt(rows.shape[0])) if rows.shape[0] > 1 else np.zeros(grid.size)
        curves[n] = (mean, se)
    unit = "lr" if cfg["loss"]["loss"] == "mse" else "η"
    ex = rep.get("exact_limit")
    lim_curve = None if ex is None else limit_loss(ex, grid)
    a = plots.loss_curves(axes[0], grid, curves, f"(a) loss after t = {cfg['steps']} steps, per width",
                          limit_curve=lim_curve,
                          minima={r["width"]: r["eta_mean_curve"] for r in rep["widths"]},
                          focus=plots.focus_range([r["eta_mean_curve"] for r in rep["widths"]] + [rep["eta_base"]],
                                                  grid[0], grid[-1]))
    axes[0].axvline(rep["eta_base"], color="k", ls="-.", lw=1, label=f"reused {unit} from n = {rep['base_width']}")
    axes[0].legend(fontsize=7)
    axes[0].set_xlabel(f"learning rate {unit} (the optimizer's, log scale)")
    extra = {f"reused {unit}_n0 (n = {rep['base_width']})": rep["eta_base"]}
    b = plots.eta_vs_width(axes[1], widths, [r["eta_opt_mean"] for r in rep["widths"]],
                           [r["eta_opt_se"] or 0.0 for r in rep["widths"]], "(b) optimal learning rate vs width",
                           extra_lines=extra)
    if rep["eta_inf_extrapolated"] is not None:
        axes[1].axhline(rep["eta_inf_extrapolated"], color="tab:red", ls="--", lw=1,
                        label=f"extrapolated limit {rep['eta_inf_extrapolated']:.4g} ({rep['extrapolation'].split(' (')[0]})")
        axes[1].legend(fontsize=7)
    if ex is not None and ex["eta_inf"] is not None:
        axes[1].axhline(ex["eta_inf"], color="tab:green", ls="-", lw=1.2, label=f"exact limit {ex['eta_inf']:.4g}")
        axes[1].legend(fontsize=7)
    ax = axes[2]
    ws = [r["width"] for r in rep["widths"] if r["penalty"] is not None]
    ps = [r["penalty"] for r in rep["widths"] if r["penalty"] is not None]
    finite = [(w, 100 * p) for w, p in zip(ws, ps) if math.isfinite(p)]
    if finite:
        ax.plot([w for w, _ in finite], [max(p, 1e-6) for _, p in finite], "o-",
                label=f"(Lbar(reused {unit}_n0) − min Lbar)/(Lbar(0) − min Lbar), % (seed-mean curves)")
    ax.axhline(100 * TOLERANCE, color="k", ls=":", label="1% tolerance of the verdict")
    ax.set_yscale("log")
    plots.width_axis(ax, widths)
    ax.set_ylabel("improvement given up by the reused rate, % (log)")
    ax.set_title(f"(c) verdict: {rep['verdict']}")
    ax.legend(fontsize=7)
    fig.suptitle("Learning-rate transfer of the user's model: exact optima per width (polyloss transfer)", fontsize=10)
    plots.save(fig, path)
    return {"loss_curves": a, "eta_vs_width": b, "penalty": {"width": ws, "penalty": ps}}
