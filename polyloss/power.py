"""Power counting: how the optimal learning rate scales with width, before any sampling.

Two jobs of one kind, both by counting powers of n in the t = 1 update (docs/theory.md §2 and §7):

* :func:`power_counting` — plain GD of the hidden layers in the (α, γ) family (``V ~ N(0, n^{-α})``,
  hidden rate ``η n^{-γ}``): the typical size of every term of the one-step loss and the exponent
  ``s`` of ``η_n ∝ n^s`` from its Newton polygon;
* :func:`recipe_power_counting` — a training recipe (:mod:`polyloss.recipe`): per-layer rates
  ``λ_ℓ = n^{-γ_ℓ}`` for the input, hidden and readout layers and the three weight-decay modes.
  It says at which scale ``η = η̃ n^s`` the first part of the training stops vanishing, which layers
  learn and which decays act at that scale, and hence whether the recipe has an infinite-width limit
  in η itself (``s = 0``, computed exactly by :func:`polyloss.derive.derive`).

No numpy, no sympy: exact Fractions only.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from polyloss.errors import invalid
from polyloss.spec import Parametrization

__all__ = [
    "MAX_DEPTH",
    "PowerCounting",
    "power_counting",
    "sp_rescaled_mean_coefficients",
    "RecipePowerCounting",
    "recipe_power_counting",
    "MUP_LR_EXPONENTS",
]

MAX_DEPTH = 64


def _check_int(name, value, lo, hi=None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise invalid(name, value, f"an integer >= {lo}" + (f" and <= {hi}" if hi else ""))
    if value < lo or (hi is not None and value > hi):
        raise invalid(name, value, f"an integer >= {lo}" + (f" and <= {hi}" if hi else ""))
    return int(value)


# --------------------------------------------------------------------------------------------
# Plain GD of the hidden layers: the (α, γ) family (THEORY §2, t = 1)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerCounting:
    """Width exponents (typical size ``n^e``) of the t = 1 quantities under ``V ~ N(0, n^{-α})``,
    hidden learning rate ``η n^{-γ}``; predictions for the measured slopes.

    ``phi``: exponent of φ_k (k = 1..L); ``loss``: exponent of c_j (j = 0..2L);
    ``eta``: exponent ``s`` of the optimal learning rate, ``η_n ∝ n^s``; ``residual``: exponent of
    ``r = f^{(0)} − y``. ``rescaled``: description of the limit in ``η̃ = n^{-s} η`` where derived.
    """

    alpha: Fraction
    gamma: Fraction
    depth: int
    residual: Fraction
    phi: tuple
    loss: tuple
    eta: Fraction
    rescaled: str
    notes: tuple

    def to_json(self) -> dict:
        return {
            "alpha": str(self.alpha),
            "gamma": str(self.gamma),
            "residual_exponent": str(self.residual),
            "phi_exponents": {str(k): str(e) for k, e in enumerate(self.phi, start=1)},
            "loss_coefficient_exponents": {str(j): str(e) for j, e in enumerate(self.loss)},
            "eta_exponent": str(self.eta),
            "rescaled_limit": self.rescaled,
            "notes": list(self.notes),
        }


def power_counting(param, depth: int) -> PowerCounting:
    r"""Power counting at t = 1 for the (α, γ) family.

    With ``b_ℓ = W_{ℓ+1}ᵀ⋯W_Lᵀ V`` (entries ``n^{-α/2}``) and forward vectors of O(1) entries, the
    k-subset term of φ_k factorises into ``n^{-kγ}`` × ``‖b‖² ~ n^{1-α}`` × (k−1) cross factors
    ``uᵀ(W⋯)b ~ n^{(1-α)/2}`` (mean zero: V and W_0 occur once) × ``uᵀh ~ n`` × ``r^k``, with
    ``r ~ n^ρ``, ``ρ = max(0, (1−α)/2)``. So ``e_k = A + Bk`` with ``A = 1 + (1−α)/2`` and
    ``B = (1−α)/2 − γ + ρ``; ``c_0 ~ n^{2ρ}``, ``c_1 ~ n^{ρ+A+B}``, ``c_j ~ n^{max(ρ+A, 2A) + Bj}``.
    The optimal rate sits where the first terms balance ``c_0`` (Newton polygon):
    ``s = min_j (E_0 − E_j)/j``, which is ``α + γ − 2`` whenever ``α ≤ 3``.
    """
    p = Parametrization.parse(param)
    depth = _check_int("depth", depth, 1, MAX_DEPTH)
    a, g = p.alpha, p.gamma
    half = Fraction(1, 2)
    rho = max(Fraction(0), (1 - a) * half)
    A = 1 + (1 - a) * half
    B = (1 - a) * half - g + rho
    phi = tuple(A + B * k for k in range(1, depth + 1))
    E = [2 * rho, rho + A + B] + [max(rho + A, 2 * A) + B * j for j in range(2, 2 * depth + 1)]
    s = min((E[0] - E[j]) / j for j in range(1, len(E)))
    notes = [
        "exponents are of the typical size (fluctuation scale) at leading order in n; a mean can be smaller",
        f"optimal learning rate eta_n ~ n^({s})",
    ]
    if a == 2 and g == 0:
        rescaled = (
            "muP: no rescaling needed; L_inf^(t)(eta) is the exact Fock-space limit "
            "(t = 1: (mu0 - 2 L mu1 eta + L^2 mu2 eta^2)/2)"
        )
    elif a == 2:
        rescaled = f"same limit as muP in eta~ = n^({-g})*eta: L(eta) -> L_inf^muP(eta~)"
    elif a == 1:
        rescaled = (
            f"lazy (kernel) regime: with eta~ = n^({1 - g})*eta, for every t, "
            "L(eta) -> (1/(2m))||(I - eta~ L Kbar)^t r0||^2, r0 = f0 - y, f0 ~ N(0, K) at the training "
            "inputs (a random limit: f0 is an O(1) Gaussian process); its mean is "
            "(1/2) sum_k C(2t,k) (-L eta~)^k (mu_k + kappa_k), kappa_k = tr(Kbar^(k+1))"
        )
    else:
        rescaled = "not derived for this (alpha, gamma): exponents only"
    if a > 3:
        notes.append("alpha > 3: the residual term r*phi_k dominates c_k and all orders balance at eta_n")
    if a < 1:
        notes.append("alpha < 1: the output at initialisation diverges like n^((1-alpha)/2)")
    return PowerCounting(a, g, depth, rho, phi, tuple(E), s, rescaled, tuple(notes))


def sp_rescaled_mean_coefficients(depth: int, steps: int, mus: Sequence, kappas: Sequence) -> list:
    """Mean of the SP/NTP rescaled limit: ``½ Σ_k C(2t,k)(−L)^k (μ_k + κ_k) η̃^k`` (exact)."""
    return [
        Fraction(math.comb(2 * steps, k)) * Fraction(-depth) ** k * (mus[k] + kappas[k]) / 2
        for k in range(2 * steps + 1)
    ]


# --------------------------------------------------------------------------------------------
# Training recipes: per-layer rates and weight decay (docs/theory.md §7)
# --------------------------------------------------------------------------------------------

#: μP for SGD in effective weights (Yang & Hu): input ×n, hidden ×1, readout ×1/n, i.e. γ* = (−1, 0, 1).
MUP_LR_EXPONENTS = {"input": Fraction(-1), "hidden": Fraction(0), "readout": Fraction(1)}


@dataclass(frozen=True)
class RecipePowerCounting:
    """What power counting says about a recipe (:func:`recipe_power_counting`).

    ``eta``: the exponent ``s`` of ``η_n ∝ n^s`` — the largest scale ``η = η̃ n^s`` at which no part
    of the update diverges. ``bounds``: each constraint ``(what, exponent)`` behind it.
    ``gradient[ℓ]`` / ``decay[ℓ]``: ``"active"`` or ``"vanishes"`` at that scale for every trained
    layer (``decay`` is ``"none"`` without weight decay). ``effective``: per trained layer, the
    ``(wd_mode, ω)`` that acts in the limit (ω = 0 where the decay vanishes). ``has_limit``: μP
    initialisation (α = 2), ``s = 0`` and some layer learns — the loss has an infinite-width limit
    in η itself, which :func:`polyloss.derive.derive` computes exactly. ``learns``: some layer's
    gradient step survives at scale s (otherwise f stays at its initial value to leading order and
    the minimiser is set by sub-leading terms, so ``eta`` is only an upper bound on the scale).
    """

    alpha: Fraction
    exponents: dict
    eta: Fraction
    bounds: tuple
    gradient: dict
    decay: dict
    effective: dict
    has_limit: bool
    learns: bool
    notes: tuple

    def to_json(self) -> dict:
        return {
            "alpha": str(self.alpha),
            "lr_exponents": {k: str(v) for k, v in self.exponents.items()},
            "eta_exponent": str(self.eta),
            "bounds": [{"from": what, "exponent": str(e)} for what, e in self.bounds],
            "gradient": dict(self.gradient),
            "decay": dict(self.decay),
            "has_limit": self.has_limit,
            "learns": self.learns,
            "notes": list(self.notes),
        }

    def lines(self) -> list:
        out = [f"power counting (recipe): eta_n ~ n^({self.eta})"
               + ("" if self.learns else " at most (no layer learns at that scale: the loss is flat to leading order)")]
        for what, e in self.bounds:
            out.append(f"  bound from {what}: n^({e})")
        for layer in self.gradient:
            out.append(f"  {layer}: gradient step {self.gradient[layer]}, weight decay {self.decay[layer]} "
                       f"(rate n^-({self.exponents[layer]}))")
        out += ["  " + n for n in self.notes]
        return out


def recipe_power_counting(recipe, param="mup", depth: int = 1) -> RecipePowerCounting:
    r"""Power counting for a training recipe at t = 1 (docs/theory.md §7, "Power counting").

    Each trained layer ℓ with rate ``λ_ℓ = n^{-γ_ℓ}`` moves f by ``η n^{-γ_ℓ}`` times a width power
    fixed by the initialisation (``V ~ N(0, n^{-α})``, hidden ``N(0, 1/n)``, ``W_0 ~ N(0, 1/d)``):

    * input:   ``Δf = −η λ_0 ‖b_0‖² ξᵀx`` with ``‖b_0‖² ~ n^{1−α}``       → ``s ≤ γ_0 + α − 1``;
    * hidden:  THEORY §2                                                   → ``s ≤ γ + α − 2``;
    * readout: ``Δf = −η λ_V (1/m) Σ_i r_i h_L(x_i)ᵀ h_L(x)``, ``‖h‖² ~ n``   → ``s ≤ γ_V − 1``.

    Weight decay rescales the weights: ``l2`` and ``torch`` by ``1 − ηρλ_ℓω`` (``s ≤ γ_ℓ``), ``decoupled`` by
    ``1 − ηρω`` (``s ≤ 0``), ``independent`` by ``1 − ω`` (no bound). The optimal rate sits at the
    largest scale where nothing diverges, ``s = min`` of the bounds, where the terms that meet
    their bound with equality are *active* and the others vanish. Under μP (α = 2, γ = (−1, 0, 1))
    every gradient bound is 0; coupled (l2) decay on a trained input layer gives ``s ≤ −1``: the
    input rate n multiplies ω, no limit exists in η and learning stops at the surviving scale.
    Derived for 1 ≤ α ≤ 3 (see :func:`power_counting`); the exact limit needs α = 2.
    """
    from polyloss.recipe import LAYERS, Recipe

    if not isinstance(recipe, Recipe):
        raise invalid("recipe", recipe, "a polyloss.recipe.Recipe")
    p = Parametrization.parse(param)
    _check_int("depth", depth, 1, MAX_DEPTH)
    a = p.alpha
    if not 1 <= a <= 3:
        raise invalid("param", p.name, "a parametrization with 1 <= alpha <= 3 for recipe power counting")
    gammas = dict(zip(LAYERS, recipe.resolve_lr_exponents(p)))
    trained = recipe.trained_layers
    shift = {"input": a - 1, "hidden": a - 2, "readout": Fraction(-1)}
    omega, mode = recipe.weight_decay, recipe.wd_mode
    grad_bound = {layer: gammas[layer] + shift[layer] for layer in trained}
    bounds = [(f"{layer} gradient step", e) for layer, e in grad_bound.items()]
    if omega:
        if mode == "decoupled":
            bounds.append(("decoupled weight decay 1 - eta*rho*omega", Fraction(0)))
        elif mode in ("l2", "torch"):
            bounds += [(f"{mode} weight decay on the {layer} layer 1 - eta*rho*n^-({gammas[layer]})*omega", gammas[layer])
                       for layer in trained]
    s = min(e for _, e in bounds)
    gradient = {layer: "active" if grad_bound[layer] == s else "vanishes" for layer in trained}
    decay, effective = {}, {}
    for layer in trained:
        if not omega:
            decay[layer], w = "none", Fraction(0)
        elif mode == "independent":
            decay[layer], w = "active", omega
        elif mode == "decoupled":
            decay[layer], w = ("active", omega) if s == 0 else ("vanishes", Fraction(0))
        else:
            decay[layer], w = ("active", omega) if gammas[layer] == s else ("vanishes", Fraction(0))
        # torch: 1 − ηρλ_ℓω outside the momentum buffer; at the layer's own scale that is the decoupled
        # factor 1 − ηρω of the rate-normalised limit (and it vanishes where λ_ℓ is below the scale)
        # (with a rate constant c_ℓ the factor is 1 − ηρc_ℓω: decoupled with ω' = c_ℓω)
        effective[layer] = ("decoupled", w * recipe.lr_scale(layer)) if mode == "torch" else (mode, w)
    learns = "active" in gradient.values()
    notes = []
    if a == 2:
        mup = all(gammas[layer] == MUP_LR_EXPONENTS[layer] for layer in trained)
        if s == 0 and learns:
            notes.append("muP scale: the loss has an exact infinite-width limit in eta (derive computes it)"
                         + ("" if mup else "; layers whose gradient step vanishes are frozen in it"))
        elif learns:
            notes.append(f"the limit exists in eta~ = n^({-s})*eta with the active layers only; eta_n -> "
                         + ("0" if s < 0 else "infinity"))
        if omega and mode in ("l2", "torch") and "input" in trained and gammas["input"] < 0:
            notes.append(f"coupled ({mode}) decay scaled by the input rate n^(-gamma_in) diverges: no transfer in eta")
    else:
        notes.append(f"alpha = {a}: f at initialisation does not vanish; exponent only (the exact limit needs alpha = 2)")
    return RecipePowerCounting(a, {layer: gammas[layer] for layer in trained}, s, tuple(bounds), gradient, decay,
                               effective, a == 2 and s == 0 and learns, learns, tuple(notes))
