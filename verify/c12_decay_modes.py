"""C12 — the exact η_∞(ω) of each weight-decay mode, and Kosson's coupled-vs-independent question under GD-μP."""

import random
from fractions import Fraction

import numpy as np

from polyloss.checks import Claim
from polyloss.claims._common import verdict
from polyloss.recipe import Recipe, recipe_loss_degree

STEPS = 2
BETA = "0.9"
#: ω grid of the η_∞(ω) curves (and of the exact comparisons), per scale
OMEGAS = {"quick": ("0", "0.02", "0.05", "0.1", "0.15", "0.2", "0.3"),
          "full": tuple(str(Fraction(k, 80)) for k in range(25))}  # 0, 1/80, ..., 3/10
#: the finite-width checks: one ω, exact rational network of this width, float engine at this width
OMEGA_FINITE, N_EXACT, N_ENGINE = "0.1", 3, 64
#: the engine's coefficients of the two updates agree to this relative tolerance (float64 rounding only)
ENGINE_RTOL = 1e-12

CLAIM = Claim(
    id="C12",
    title="Decay modes under GD-μP: l2 ≡ decoupled (no momentum), independent differs; exact η_∞(ω)",
    statement="Kosson et al. (2025) find that coupled and independent weight decay behave differently when the "
              "hidden learning rate is width-scaled. Under GD-μP the hidden rate is λ = 1, not width-scaled, so for "
              "hidden-only training without momentum l2 (coupled) and decoupled decay are the same update "
              "W ← (1 − ηρω)W − ηρG: their exact infinite-width loss polynomials, and their loss polynomials at any "
              "finite width, coincide exactly. Independent decay (1 − ω, not η-scaled) gives a different limit and "
              "a different η_∞. With momentum, l2 puts ωW into the buffer and decoupled does not, so they differ; "
              "with a width-scaled hidden rate (λ = 1/n) l2 decays by 1 − ηω/n and decoupled by 1 − ηω, so they "
              "differ at finite width (Kosson's setting). The exact η_∞(ω) curves of the three modes are reported.",
    source="docs/theory.md §7; Kosson, Welborn, Liu, Jaggi, Chen (2025), arXiv:2510.19093",
    statistic="exact (rational) comparisons: derive's loss coefficients of 𝓛_∞^(2) for l2 vs decoupled, l2 vs "
              "independent, l2+momentum vs decoupled+momentum on the ω grid; the certified window minimiser η_∞ of "
              "each; at finite width, the exact loss (rational weights and data, n = 3) of l2 vs decoupled at "
              "deg + 1 rational learning rates (two polynomials of degree ≤ deg that agree there are identical), "
              "the same with momentum and with λ_hid = 1/n; the float engine's coefficients at n = 64",
    tolerance="pass if every prediction holds: for every ω on the grid, l2 and decoupled limit coefficients are "
              "exactly equal (and so η_∞); for every ω > 0, independent's limit coefficients and certified η_∞ "
              "(30 digits) differ from l2's, and l2+momentum's coefficients differ from decoupled+momentum's; at "
              "ω = 0.1 the exact finite-width losses of l2 and decoupled agree at all deg + 1 points, differ at some "
              "point with momentum 0.9 and with λ_hid = 1/n, and the engine's coefficients at n = 64 agree to "
              f"{ENGINE_RTOL:g} relative. Fail if any prediction is contradicted (each is a yes/no fact).",
)


def _recipe(mode, omega, momentum="0"):
    return Recipe(weight_decay=omega, wd_mode=mode, momentum=momentum)


def _limits(depth, data, omegas) -> dict:
    """{(curve, ω): derivation} for the five curves: three modes, and l2/decoupled with momentum."""
    from polyloss.derive import derive

    curves = {"l2": ("l2", "0"), "decoupled": ("decoupled", "0"), "independent": ("independent", "0"),
              f"l2 + momentum {BETA}": ("l2", BETA), f"decoupled + momentum {BETA}": ("decoupled", BETA)}
    return {(name, w): derive(depth, STEPS, data, recipe=_recipe(mode, w, beta))
            for name, (mode, beta) in curves.items() for w in omegas}


def _minima(d) -> list:
    win = Fraction(d.window)
    return [float(cp.eta) for cp in d.critical_points if cp.kind == "min" and 0 < Fraction(cp.eta) <= win]


def _rational_problem(depth, n, seed=0):
    rnd = random.Random(seed)
    q = lambda: Fraction(rnd.choice([-3, -2, -1, 1, 2, 3]), rnd.randint(1, 3))  # noqa: E731
    arr = lambda *shape: np.array([q() for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)  # noqa: E731
    d, m = 2, 3
    return arr(n, d), [arr(n, n) for _ in range(depth)], arr(n), arr(m, d), arr(m)


def finite_exact(depth, omega=OMEGA_FINITE, n=N_EXACT) -> dict:
    """Exact losses after t = 2 steps of a rational network (width n) at deg + 1 rational η, for pairs of
    recipes that the claim says are (or are not) the same polynomial. Returns {pair: bool equal everywhere}."""
    from polyloss.gd_recipe import train

    W0, hidden, V, X, y = _rational_problem(depth, n)
    deg = recipe_loss_degree(depth, STEPS, _recipe("l2", omega, BETA))
    etas = [Fraction(k, 7) for k in range(1, deg + 2)]

    def losses(recipe, lr=None):
        return [train(W0, hidden, V, X, y, recipe, e, STEPS, lr=lr, dtype=object)[-1] for e in etas]

    width_scaled = {"hidden": Fraction(1, n)}
    return {
        "l2 = decoupled": losses(_recipe("l2", omega)) == losses(_recipe("decoupled", omega)),
        f"l2 = decoupled with momentum {BETA}": losses(_recipe("l2", omega, BETA)) == losses(_recipe("decoupled", omega, BETA)),
        "l2 = decoupled with λ_hid = 1/n": losses(_recipe("l2", omega), width_scaled) == losses(_recipe("decoupled", omega), width_scaled),
        "points": len(etas), "degree": deg, "width": n, "omega": omega,
    }


def engine_difference(ctx, depth, omega=OMEGA_FINITE, n=N_ENGINE) -> float:
    """Largest relative coefficient difference of the float engine's 𝓛^(2) polynomials (l2 vs decoupled) for
    one μP network of width n on the claim's data."""
    from polyloss.engine import LossEngine
    from polyloss.spec import NetworkSpec
    from polyloss.weights import child_seed, sample_weights

    data, _ = ctx.data()
    param = ctx.param("mup")
    w = sample_weights(NetworkSpec(depth, n, data.d), param, child_seed(ctx.seed, n, 0))
    a = LossEngine(w, data, param, recipe=_recipe("l2", omega)).polynomial(STEPS).loss
    b = LossEngine(w, data, param, recipe=_recipe("decoupled", omega)).polynomial(STEPS).loss
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), np.finfo(float).tiny)))


def run(ctx):
    s = ctx.scale
    depth, omegas = s.depth_any, OMEGAS[ctx.mode]
    data, _ = ctx.data()
    lim = _limits(depth, data, omegas)
    coeffs = {k: tuple(Fraction(c) for c in d.loss_coefficients) for k, d in lim.items()}
    eta = {k: d.eta_window_min.eta for k, d in lim.items()}
    pos = [w for w in omegas if Fraction(w) > 0]
    checks = {
        "limit: l2 = decoupled (every ω)": all(coeffs["l2", w] == coeffs["decoupled", w] and eta["l2", w] == eta["decoupled", w]
                                               for w in omegas),
        "limit: independent ≠ l2 (coefficients and η_∞, every ω > 0)": all(
            coeffs["independent", w] != coeffs["l2", w] and eta["independent", w] != eta["l2", w] for w in pos),
        f"limit: l2 ≠ decoupled with momentum {BETA} (every ω > 0)": all(
            coeffs[f"l2 + momentum {BETA}", w] != coeffs[f"decoupled + momentum {BETA}", w] for w in pos),
    }
    fin = finite_exact(depth)
    checks[f"n = {fin['width']} exact: l2 = decoupled"] = fin["l2 = decoupled"]
    checks[f"n = {fin['width']} exact: l2 ≠ decoupled with momentum {BETA}"] = not fin[f"l2 = decoupled with momentum {BETA}"]
    checks[f"n = {fin['width']} exact: l2 ≠ decoupled with λ_hid = 1/n"] = not fin["l2 = decoupled with λ_hid = 1/n"]
    rel = engine_difference(ctx, depth)
    checks[f"n = {N_ENGINE} engine: l2 = decoupled to {ENGINE_RTOL:g}"] = rel <= ENGINE_RTOL
    v = "pass" if all(checks.values()) else "fail"
    curves = {}
    for (name, w), d in lim.items():
        c = curves.setdefault(name, {"omega": [], "eta_window": [], "minima": []})
        c["omega"].append(float(Fraction(w)))
        c["eta_window"].append(float(d.eta_window_min.eta))
        c["minima"].append(_minima(d))
    failed = [k for k, ok in checks.items() if not ok]
    at = {w: eta["independent", w] for w in (pos[-1],)} if pos else {}
    summary = (("every prediction holds" if not failed else "CONTRADICTED: " + "; ".join(failed))
               + f" (L = {depth}, t = {STEPS}, {len(omegas)} ω values); η_∞ at ω = {pos[-1] if pos else '-'}: l2 = "
               f"decoupled {float(eta['l2', pos[-1]]):.4g}, independent {float(at[pos[-1]]):.4g}, with momentum l2 "
               f"{float(eta[f'l2 + momentum {BETA}', pos[-1]]):.4g} vs decoupled "
               f"{float(eta[f'decoupled + momentum {BETA}', pos[-1]]):.4g}; engine relative difference {rel:.2g}"
               if pos else "")
    top = str(max(omegas, key=Fraction))
    nums = {"recipes": [_recipe(m, top, b).to_dict() for m, b in (("l2", "0"), ("decoupled", "0"), ("independent", "0"),
                                                                 ("l2", BETA), ("decoupled", BETA))],
            "checks": checks, "depth": depth, "steps": STEPS, "omegas": list(omegas), "curves": curves,
            "window": float(next(iter(lim.values())).window), "finite_exact": fin, "engine_max_rel_diff": rel,
            "engine_width": N_ENGINE}
    return verdict(CLAIM, ctx, v, summary, nums, [N_EXACT, N_ENGINE], 1)


def figures(v):
    nums = v.numbers
    curves = nums.get("curves")
    if not curves:
        return []
    from polyloss import plots

    style = {"l2": ("C0", "o", "-"), "decoupled": ("C1", "x", "--"), "independent": ("C2", "s", "-"),
             f"l2 + momentum {BETA}": ("C3", "^", "-"), f"decoupled + momentum {BETA}": ("C4", "v", "--")}

    def draw(axes):
        ax = axes[0]
        drawn = {}
        for name, c in curves.items():
            color, marker, ls = style.get(name, ("k", ".", "-"))
            ax.plot(c["omega"], c["eta_window"], color=color, marker=marker, linestyle=ls, ms=6, lw=1.2,
                    label=f"{name}: window-global minimiser")
            xs = [w for w, ms in zip(c["omega"], c["minima"]) for _ in ms]
            ys = [m for ms in c["minima"] for m in ms]
            ax.scatter(xs, ys, s=12, facecolors="none", edgecolors=color, alpha=0.6)
            drawn[name] = {"omega": c["omega"], "eta_window": c["eta_window"]}
        ax.scatter([], [], s=12, facecolors="none", edgecolors="grey", label="other local minimisers in the window")
        ax.set_xlabel("weight decay ω")
        ax.set_ylabel("η_∞ (minimiser of the exact limit $\\mathcal{L}_\\infty^{(2)}$)")
        ax.set_title(f"C12: exact μP optimal learning rate vs weight decay (L = {nums['depth']}, t = {nums['steps']})")
        ax.legend(fontsize=7)
        drawn["axes"] = plots.describe(ax)
        return drawn

    return [("", f"C12: the exact η_∞(ω) of each decay mode (L = {nums['depth']}, t = {nums['steps']}, window "
                 f"(0, {nums['window']:.3g}]); l2 and decoupled coincide without momentum (dashed over solid), "
                 "independent differs, momentum separates l2 from decoupled; hollow markers: every local minimiser "
                 "in the window (jumps of the curves are switches between basins)", 1, draw)]
