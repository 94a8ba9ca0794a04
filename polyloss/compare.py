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

Basins: when the limit has several local minimisers in the window (t ≥ 2 can), the seeds' η_n
fall into different basins and their mean across basins is no estimate of anything. Each seed's
η_n is then assigned to the nearest minimiser of the limit (:func:`polyloss.analysis.nearest_basin`,
the rule of claim C6), and η_n is compared per basin (rows ``eta_n[k]``: the seeds of basin k
against minimiser k, with the basin's share of the seeds). A basin with a single seed has no
standard error and is reported, not tested.

Transfer gaps (:mod:`polyloss.gaps`, Ghosh, Wu & Bietti 2026): for every network the loss gap
a = |𝓛_n(η_n) − 𝓛_∞(η_∞)|, the hyperparameter gap b = |η_n − η_∞|, the transfer penalty
c = 𝓛_∞(η_n) − 𝓛_∞(η_∞) and c/a, for the window-global and the first local minimiser, with per-width
summaries, rate fits and the fast-transfer verdict (``Comparison.gaps``, JSON block ``gaps``).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
from scipy import stats

from polyloss.data import Dataset, load_data, synthetic
from polyloss.errors import PolylossError, RunError
from polyloss.gaps import FAST_RULE, QUANTITY_WORDS
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
    need = {"synthetic": ("teacher", "d", "m", "noise"), "file": ("path", "sha256")}.get(desc.get("kind"), ())
    bad = [k for k in need if not isinstance(desc.get(k), (str, int, float)) or isinstance(desc.get(k), bool)]
    if bad:
        raise RunError(f"the run's data description {desc!r} lacks or mangles {', '.join(bad)}; run.json is corrupt")
    if desc["kind"] == "synthetic":
        return synthetic(desc["teacher"], desc["d"], desc["m"], desc["noise"], data_seed(cfg["seed"]))
    if desc["kind"] != "file":
        raise RunError(f"the run's data ({desc.get('kind')!r}: {desc.get('source', '?')}) were passed in memory and cannot be rebuilt")
    path = desc["path"]
    if not os.path.isfile(path):
        if not os.path.isabs(path):  # runs made before paths were stored absolute
            raise RunError(f"the run's data file {path!r} was stored relative to the directory the run was started "
                           f"from and is not found from {os.getcwd()!r}: run from that directory")
        raise RunError(f"the run's data file {path!r} no longer exists (the run stored its path and SHA-256)")
    digest = file_digest(path)
    if digest != desc["sha256"]:
        raise RunError(f"the run's data file {path!r} exists but its content changed since the run "
                       f"(SHA-256 {digest[:12]}…, the run recorded {str(desc['sha256'])[:12]}…)")
    return load_data(path)


def _limit_from_derivation(doc: dict, window: float, source: str) -> Limit:
    from polyloss.derive import parse_fraction

    coeffs = tuple(parse_fraction(c) for c in doc["loss_coefficients"])
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


def read_derivation(path) -> dict:
    """A ``polyloss.derivation/1`` JSON document from ``path``, or a one-line :class:`RunError`."""
    from polyloss._paths import read_json

    doc = read_json(path, "a polyloss.derivation/1 JSON file or 'auto'", name="derivation", exc=RunError)
    if doc.get("schema") != "polyloss.derivation/1":
        raise RunError(f"`derivation`={os.fspath(path)!r} has schema {doc.get('schema')!r}, expected 'polyloss.derivation/1'")
    if not isinstance(doc.get("loss_coefficients"), list) or not isinstance(doc.get("spec"), dict):
        raise RunError(f"`derivation`={os.fspath(path)!r} lacks `loss_coefficients` or `spec`; it is not a derivation written by polyloss derive")
    return doc


def run_recipe(cfg: dict):
    """The training recipe of a run's config (run.json without ``recipe``: the plain recipe)."""
    from polyloss.recipe import Recipe

    return Recipe.from_dict(cfg.get("recipe"))


def run_training(cfg: dict) -> str:
    """How a run trained, in words: its recipe, or its optimizer when that is not GD (the first Adam step)."""
    opt = cfg.get("optimizer") or {}
    if opt.get("name") == "adam":
        return f"one Adam step on the hidden layers (eps = {opt.get('eps')}, hidden rate {opt.get('hidden_lr', 'eta/n')})"
    return run_recipe(cfg).describe()


def limit_recipe(cfg: dict, run_dir):
    """The recipe to derive a run's limit with (None for plain GD), or a one-line refusal when the exact
    limit of the run's recipe does not exist (yet): :func:`polyloss.derive.check_recipe` decides."""
    from polyloss.derive import check_recipe
    from polyloss.errors import SpecError
    from polyloss.spec import Parametrization

    recipe = run_recipe(cfg)
    p = cfg["param"]
    param = Parametrization.custom(Fraction(p["alpha"]), Fraction(p["gamma"]))
    if recipe.is_plain_for(param):
        return None
    try:
        return check_recipe(recipe, param if p.get("name") != "mup" else "mup", cfg.get("steps"))
    except SpecError as exc:
        raise RunError(f"run {os.fspath(run_dir)!r} used the training recipe '{recipe.describe()}', whose exact "
                       f"limit polyloss cannot derive: {exc}") from None


def limit_for_run(run: SampleRun, derivation: str = "auto") -> Limit:
    """The exact μP limit for a run: derived now on the run's data (``"auto"``) or read from a file."""
    cfg = run.config
    if cfg["param"]["name"] != "mup":
        raise RunError(f"compare needs a muP run (the limit is deterministic only under muP); this run used "
                       f"param={cfg['param']['name']!r}: use `polyloss report` for its scaling fits")
    if (cfg.get("optimizer") or {}).get("name") == "adam":
        return _adam_limit_for_run(run, derivation)
    recipe = limit_recipe(cfg, run.path)
    window = float(cfg["window"])
    if derivation == "auto":
        from polyloss.derive import derive

        res = derive(cfg["depth"], cfg["steps"], data=run_dataset(run), window=window, recipe=recipe)
        return _limit_from_derivation(res.to_json(), window, "derived on the run's data")
    doc = read_derivation(derivation)
    spec = doc.get("spec", {})
    for key in ("depth", "steps"):
        if spec.get(key) != cfg[key]:
            raise RunError(f"derivation {derivation!r} is for {key}={spec.get(key)}, but the run has {key}={cfg[key]}")
    from polyloss.recipe import Recipe

    try:
        theirs = Recipe.from_dict(doc.get("recipe"))
    except PolylossError:
        raise RunError(f"derivation {derivation!r} has an invalid `recipe` block") from None
    if theirs != (recipe or Recipe()):  # a derivation without a recipe block is plain GD
        raise RunError(f"derivation {derivation!r} is for the recipe '{theirs.describe()}', but the run trained with "
                       f"'{run_recipe(cfg).describe()}'")
    try:
        from polyloss.derive import parse_fraction

        [parse_fraction(c) for c in doc["loss_coefficients"]]
    except (ValueError, TypeError, KeyError):
        raise RunError(f"derivation {derivation!r} is a closed form in the moments mu_j, not evaluated on data; "
                       "derive it with --data (the run's data) or use --derivation auto") from None
    moments = doc.get("moments") or {}
    if "mu1" in moments:
        mine = run_dataset(run).moments(2)[1]
        theirs = float(parse_fraction(moments["mu1"]))
        if abs(mine - theirs) > 1e-9 * max(abs(mine), abs(theirs)):
            raise RunError(f"derivation {derivation!r} was computed on other data (mu_1 = {theirs:.6g}, the run's "
                           f"data have mu_1 = {mine:.6g})")
    return _limit_from_derivation(doc, window, f"file {derivation}")


def _adam_limit_for_run(run: SampleRun, derivation) -> Limit:
    """The μP limit after one Adam step with ε → 0 (:func:`polyloss.adam.adam_limit`): a convex quadratic,
    so its minimiser in (0, window] is min(η_∞, window). Only for runs made with ε = 0: with a fixed
    ε > 0 the ε term dominates the update of wide networks, and the ε → 0 limit is not theirs."""
    from polyloss.adam import adam_limit

    cfg = run.config
    eps = cfg["optimizer"].get("eps")
    if eps != 0:
        raise RunError(f"run {os.fspath(run.path)!r} took its Adam step with eps = {eps}: its exact limit is the eps -> 0 "
                       "one only for eps = 0 (a fixed eps > 0 dominates the update of wide networks); sample with "
                       "--adam-eps 0 to compare")
    if derivation != "auto":
        raise RunError(f"`derivation`={os.fspath(derivation)!r} is for gradient descent; run {os.fspath(run.path)!r} took "
                       "an Adam step, whose limit is computed from the run's data: use --derivation auto")
    lim = adam_limit(cfg["depth"], run_dataset(run))
    window = float(cfg["window"])
    eta = float(lim.eta_inf)
    best = min(eta, window)
    return Limit(tuple(float(c) for c in lim.coefficients), best, eta, eta, window, False,
                 "first-Adam-step limit (eps -> 0) on the run's data (docs/theory.md §10)", (best,))


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
    basin: int | None = None  # η_n rows split by basin: index into Limit.minima (0-based)
    share: float | None = None  # the basin's share of the width's seeds
    tested: bool = True  # False for a one-seed basin (no standard error): reported, not judged

    def to_dict(self) -> dict:  # strict JSON: an undefined number (one seed) is null
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    @property
    def verdict(self) -> str:
        return "not tested (1 seed)" if not self.tested else ("consistent" if self.consistent else "INCONSISTENT")


@dataclass(frozen=True)
class Comparison:
    run: str
    rows: tuple
    level: float
    n_comparisons: int
    limit: Limit
    per_seed: dict  # quantity -> {width: per-seed values}, for rate fits
    recipe: str = "plain GD (hidden layers, constant rate)"  # Recipe.describe() of the run
    gaps: dict | None = None  # {"window" | "first_local": polyloss.gaps.Gaps}; None when not computed
    horizons: dict | None = None  # growing horizon: {T: {"widths", "limit"}}; ``limit`` is then the largest T's
    steps_rule: str | None = None

    @property
    def consistent(self) -> bool:
        return all(r.consistent for r in self.rows if r.tested)

    @property
    def basins(self) -> tuple:
        """The limit's local minimisers that η_n is compared with per basin (empty: one minimiser)."""
        return tuple(self.limit.minima) if len(self.limit.minima) > 1 else ()

    def basin_note(self) -> str:
        """One sentence on how η_n was compared (per basin or with the window minimiser)."""
        if not self.basins:
            return "eta_n is compared with the limit's minimiser in the window."
        mins = ", ".join(f"[{k + 1}] {x:.6g}" for k, x in enumerate(self.basins))
        at = "" if self.horizons is None else f"At the largest horizon T = {max(self.horizons)}: "
        return (f"{at}The limit has {len(self.basins)} local minimisers in the window ({mins}); each seed's eta_n is "
                "assigned to the nearest one (its basin, as in claim C6) and compared per basin (rows eta_n[k], "
                "with the basin's share of the seeds), not averaged across basins.")

    def to_json(self) -> dict:
        return {
            "schema": "polyloss.compare/2",  # /2: the `gaps` block
            "run": self.run,
            "recipe": self.recipe,
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
                "minima": list(self.limit.minima),
            },
            "steps_rule": self.steps_rule,
            "horizons": None if self.horizons is None else {
                str(T): {"widths": h["widths"], "eta_window_min": h["limit"].eta_window_min,
                         "loss_coefficients": [str(c) for c in h["limit"].loss_coefficients]}
                for T, h in self.horizons.items()},
            "basins": list(self.basins),
            "basin_rule": self.basin_note(),
            "rows": [r.to_dict() for r in self.rows],
            "all_consistent": self.consistent,
            "gaps": None if self.gaps is None else {
                "rule": FAST_RULE, "definitions": dict(QUANTITY_WORDS),
                **{m: g.to_dict() for m, g in self.gaps.items()}},
        }


def _row(width, name, vals, limit, level_corr, basin=None, share=None) -> Row:
    vals = np.asarray(vals, dtype=float)
    k = vals.size
    mean = float(vals.mean())
    if k < 2:  # one seed in this basin: no standard error, nothing to test
        dev = float(abs(mean - limit))
        return Row(width, name, k, mean, math.nan, float(limit), math.nan, dev / abs(limit) if limit != 0 else dev,
                   math.nan, True, basin, share, False)
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
    return Row(width, name, k, mean, se, float(limit), float(z), rel, p, bool(p >= level_corr), basin, share)


def compare(run_dir, derivation: str = "auto", *, level: float = 0.05, n_coeffs: int = 4,
            limit: Limit | None = None, gaps: bool = True) -> Comparison:
    """Compare a μP ``sample`` run with the exact limit (see the module docstring); ``gaps``: also the
    transfer gaps of every network (:mod:`polyloss.gaps`)."""
    if not (0 < level < 1):
        raise RunError(f"`level`={level!r} is invalid: must be in (0, 1)")
    run = load_run(run_dir, horizons=True)
    if not run.records:
        raise RunError(f"run {os.fspath(run_dir)!r} has no finished records yet")
    thin = sorted(n for n, recs in run.by_width().items() if len(recs) < 2)
    if thin:
        raise RunError(f"run {os.fspath(run_dir)!r} has fewer than 2 samples at width(s) {thin}; "
                       "a standard error needs >= 2 (add samples with `polyloss sample ... --resume`)")
    if run.config.get("steps_rule") is not None:
        return _compare_horizons(run, run_dir, derivation, level, n_coeffs, limit, gaps)
    lim = limit if limit is not None else limit_for_run(run, derivation)
    return _compare_one(run, run_dir, lim, level, n_coeffs, gaps)


def _compare_horizons(run, run_dir, derivation, level, n_coeffs, limit, gaps) -> Comparison:
    """A growing-horizon run (``sample --steps RULE``): every width against the exact limit at its own
    T (derived once per distinct T), one Bonferroni family over all rows, gaps across all widths."""
    from polyloss.horizon import limits_by_steps, split_by_steps

    if limit is not None or derivation != "auto":
        raise RunError(f"run {os.fspath(run_dir)!r} trains each width for its own number of steps (steps rule "
                       f"{run.config['steps_rule']!r}): its limits are derived per T on the run's data; use "
                       "--derivation auto")
    subs = split_by_steps(run)
    lims = limits_by_steps(run)
    parts = {T: _compare_one(sub, run_dir, lims[T], level, n_coeffs, False) for T, sub in subs.items()}
    N = sum(c.n_comparisons for c in parts.values())
    rows = tuple(sorted((_retest(r, level / N) for c in parts.values() for r in c.rows), key=lambda r: r.width))
    per_seed: dict = {}
    for c in parts.values():
        for q, groups in c.per_seed.items():
            per_seed.setdefault(q, {}).update(groups)
    top = max(subs)
    g = None
    if gaps:
        from polyloss.gaps import gaps_for

        by_width = {n: lims[T] for T, sub in subs.items() for n in sub.config["widths"]}
        g = gaps_for(run.records, by_width)
    horizons = {T: {"widths": list(subs[T].config["widths"]), "limit": lims[T]} for T in sorted(subs)}
    return Comparison(os.fspath(run_dir), rows, level, N, lims[top], per_seed, run_training(run.config), g,
                      horizons=horizons, steps_rule=run.config["steps_rule"])


def _retest(r: "Row", level_corr: float) -> "Row":
    """A row re-judged at the family-wide Bonferroni level of a growing-horizon comparison."""
    import dataclasses

    return r if not r.tested else dataclasses.replace(r, consistent=bool(r.p_value >= level_corr))


def _compare_one(run, run_dir, lim, level, n_coeffs, gaps) -> Comparison:
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
    # (quantity, width, values, limit, basin, share) for every comparison
    items = [(q, n, vals, limits[q], None, None) for q, groups in per_seed.items() if q != "eta_n"
             for n, vals in sorted(groups.items())]
    if len(lim.minima) > 1:
        from polyloss.analysis import nearest_basin

        for n, vals in sorted(per_seed["eta_n"].items()):
            idx = nearest_basin(vals, lim.minima)
            for b, x in enumerate(lim.minima):
                sel = vals[idx == b]
                if sel.size:
                    items.append((f"eta_n[{b + 1}]", n, sel, float(x), b, float(sel.size / vals.size)))
    else:
        items += [("eta_n", n, vals, limits["eta_n"], None, None) for n, vals in sorted(per_seed["eta_n"].items())]
    N = max(1, sum(1 for it in items if len(it[2]) >= 2))
    rows = [_row(n, q, vals, lmt, level / N, b, sh) for q, n, vals, lmt, b, sh in items]
    order = {q: i for i, q in enumerate(per_seed)}
    rows.sort(key=lambda r: (r.width, order.get(r.quantity, len(order)), -1 if r.basin is None else r.basin))
    g = None
    if gaps:
        from polyloss.gaps import gaps_for

        g = gaps_for(run.records, lim)
    return Comparison(os.fspath(run_dir), tuple(rows), level, N, lim, per_seed, run_training(run.config), g)
