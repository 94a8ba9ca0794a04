"""Training recipes: which layers train, per-layer rates, schedule, weight decay, momentum.

One frozen, validated :class:`Recipe` describes how the network is trained; every engine, the
reference trainer (:mod:`polyloss.gd_recipe`) and every record use it. Definitions
(docs/theory.md §7), for step s = 0..t−1 of a t-step run with base learning rate η:

- **trained layers** ``trained`` ⊆ {``input`` (W_0), ``hidden`` (W_1..W_L), ``readout`` (V)};
  default {``hidden``}. Layers outside the set keep their initial values and are never decayed.
- **per-layer rates** λ_ℓ = n^{−γ_ℓ} with exponents ``lr_exponents`` = (γ_in, γ_hid, γ_out).
  ``None`` (default) follows the parametrization: the hidden exponent is its γ, and for the presets
  the input/readout exponents are those of :data:`LR_PRESETS` (``mup``: −1, 0, 1 — Yang & Hu's μP
  for SGD in effective weights, input ×n, hidden ×1, readout ×1/n; ``sp``: 0, 0, 0; ``ntp``:
  0, 1, 1). An explicit triple (or a preset name) overrides the parametrization's γ.
  ``lr_scales`` = (c_in, c_hid, c_out) multiplies them by width-independent constants,
  λ_ℓ = c_ℓ·n^{−γ_ℓ} (default 1, 1, 1): the per-layer multipliers of ``mup.MuSGD`` (input ×n/base,
  readout ×output_mult²·base/n) or of a PyTorch parameter group are a constant times a width power
  (:mod:`polyloss.interop` derives them from a user's model).
- **schedule** ρ_s > 0 (:class:`Schedule`): ``constant`` (ρ_s = 1), ``warmup:K``
  (ρ_s = min(1, (s+1)/K)), ``exp-warmup:r`` (ρ_s = 1 − r^{s+1}, 0 < r < 1), ``cosine``
  (ρ_s = (1 + cos(π s/t))/2, which is > 0 for s < t and ends at sin²(π/2t)), or an explicit list
  ``ρ_0,ρ_1,…`` of positive numbers (at least t of them); the decays ``linear-decay``
  (ρ_s = 1 − s/t: 1, (t−1)/t, …, 1/t) and ``exp-decay:r`` (ρ_s = r^s, 0 < r < 1); ``n-warmup:K`` depends on the width:
  ρ_s = n^{−(1 − s/K)} for s < K (from 1/n up geometrically), then 1 — Kosson et al.'s exponential
  warmup that starts at 1/n of the rate, "μP as an implicit warmup" for SP (no infinite-width limit:
  ``sweep``, ``poly``, ``sample`` only).
- **weight decay** ω ≥ 0 in mode ``wd_mode``, with G the gradient of 𝓛 at the current weights:

  - ``l2`` (coupled):      W ← W − ηρ_sλ_ℓ (G + ωW)           (decay factor 1 − ηρ_sλ_ℓω);
  - ``decoupled`` (AdamW): W ← (1 − ηρ_sω) W − ηρ_sλ_ℓ G       (base rate, not scaled by λ_ℓ);
  - ``independent``:       W ← (1 − ω) W − ηρ_sλ_ℓ G           (not scaled by η; needs ω < 1);
  - ``torch``:             W ← (1 − ηρ_sλ_ℓω) W − ηρ_sλ_ℓ D     (PyTorch's AdamW/SGDW with each layer's
    rate in its parameter group, as mup.MuAdamW: the decay follows the layer's μP rate, so it fades
    with width on the hidden layers of μP-Adam — Kosson et al.'s "coupled" decay). Without momentum
    it equals ``l2`` for GD.

- **momentum** β ∈ [0, 1) with PyTorch SGD semantics (no dampening): with g = G (+ ωW in ``l2``
  mode), the buffer is v ← βv + g (v = g at the first step) and the update direction is v, or
  g + βv with ``nesterov`` (which needs β > 0). The direction replaces G in the formulas above;
  the decay factors of ``decoupled``/``independent``/``torch`` stay outside the buffer.

All trained layers are updated simultaneously from the weights of step s. Exponents and numbers are
stored exactly as :class:`fractions.Fraction`; a float is read as the decimal it prints as
(``0.1`` → 1/10). Bad values raise one-line :class:`~polyloss.errors.SpecError` messages naming the
argument, the value and what is valid.

Degrees (docs/theory.md §7): with k trained matrices (L for the hidden layers, +1 each for input and
readout), every trained matrix has degree D_t in η after t steps, D_0 = 0, D_{t+1} = 1 + (2k−1)D_t,
and the loss has degree 2k·D_t — for every schedule, decay mode and momentum
(:func:`recipe_loss_degree`).

Example:
  >>> r = Recipe(trained="input,hidden,readout", lr_exponents="mup", schedule="warmup:2",
  ...            weight_decay="0.1", wd_mode="independent", momentum="0.9")
  >>> r.rho(0, 3), r.rho(1, 3), recipe_loss_degree(2, 2, r)
  (Fraction(1, 2), Fraction(1, 1), 64)
  >>> Recipe.from_dict(r.to_dict()) == r
  True
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from fractions import Fraction

from polyloss.errors import SpecError, invalid, short_repr
from polyloss.spec import EXPONENT_VALID, Parametrization, check_exponent

__all__ = [
    "Recipe",
    "Schedule",
    "LAYERS",
    "WD_MODES",
    "LR_PRESETS",
    "PLAIN",
    "parse_trained",
    "parse_schedule",
    "parse_lr_exponents",
    "parse_lr_scales",
    "Biases",
    "parse_variance",
    "recipe_weight_degree",
    "recipe_f_degree",
    "recipe_loss_degree",
]

#: The trainable parts of f(x) = Vᵀ W_L ⋯ W_1 W_0 x, in this canonical order.
LAYERS = ("input", "hidden", "readout")
WD_MODES = ("l2", "decoupled", "independent", "torch")

#: Learning-rate exponents (γ_in, γ_hid, γ_out), λ_ℓ = n^{−γ_ℓ}. The hidden entries are those of
#: :data:`polyloss.spec.PRESETS` (today's rates); ``mup`` adds μP for SGD in effective weights
#: (input ×n, readout ×1/n), ``sp`` trains everything at the base rate, ``ntp`` is GD on raw
#: N(0, 1) weights with 1/√fan-in multipliers (hidden and readout η/n; the input rate of that
#: model is η/d, a width-independent factor this family does not represent, so it is 1 here).
LR_PRESETS: dict[str, tuple[Fraction, Fraction, Fraction]] = {
    "mup": (Fraction(-1), Fraction(0), Fraction(1)),
    "sp": (Fraction(0), Fraction(0), Fraction(0)),
    "ntp": (Fraction(0), Fraction(1), Fraction(1)),
}

#: Bounds on the recipe's numbers: nonzero values have magnitude in [1e-12, 1e6] and the exact
#: fraction has a denominator <= 1e30 (every float's printed decimal fits), so each is faithfully a
#: float64 and its exact value is short in run.json.
MAX_VALUE = Fraction(10**6)
MIN_NONZERO = Fraction(1, 10**12)
MAX_DENOMINATOR = 10**30
MAX_WARMUP = 10**6
_NUMBER = "(int, decimal such as 0.1, or fraction p/q; nonzero values between 1e-12 and 1e6)"


def _rational(name: str, value, valid: str) -> Fraction:
    """``value`` as an exact Fraction, or a one-line SpecError (NaN, inf, 1e400, junk)."""
    if isinstance(value, bool):
        raise invalid(name, value, valid)
    try:
        if isinstance(value, str):
            text = value.strip()
            if not text or len(text) > 40:
                raise ValueError
            frac = Fraction(text)
        elif isinstance(value, numbers.Rational):
            frac = Fraction(int(value.numerator), int(value.denominator))
        elif isinstance(value, numbers.Real):
            x = float(value)
            if not math.isfinite(x):
                raise ValueError
            frac = Fraction(repr(x))  # the decimal the float prints as: 0.1 -> 1/10
        else:
            raise TypeError
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        raise invalid(name, value, valid) from None
    if abs(frac) > MAX_VALUE or (frac != 0 and abs(frac) < MIN_NONZERO) or frac.denominator > MAX_DENOMINATOR:
        raise invalid(name, value, valid)
    return frac


def _fmt(q: Fraction) -> str:
    return str(q)


# ----------------------------------------------------------------------------------------- schedule

_SCHEDULE_VALID = (
    "'constant', 'warmup:K' (integer K >= 1), 'exp-warmup:r' (0 < r < 1), 'cosine', 'linear-decay', 'exp-decay:r' "
    "(0 < r < 1), 'n-warmup:K' (from 1/n of the rate to 1 in K steps), or a comma list of positive numbers such as "
    "'0.5,1,1' " + _NUMBER
)


@dataclass(frozen=True)
class Schedule:
    """The learning-rate schedule ρ_s (s = 0..t−1) of a t-step run; every ρ_s > 0.

    ``kind`` is one of ``constant``, ``warmup`` (``arg`` = K), ``exp-warmup`` (``arg`` = r),
    ``cosine``, ``list`` (``arg`` = the tuple of values). :meth:`rho` is an exact Fraction for
    every kind except ``cosine``, where it is exact only when cos(π s/t) is rational (by Niven's
    theorem: s/t ∈ {0, 1/3, 1/2, 2/3}, which covers every step of runs with t ≤ 3) and otherwise
    a float (``math.cos``); :meth:`exact` says which.
    """

    kind: str = "constant"
    arg: object = None

    def __post_init__(self) -> None:
        kind, arg = self.kind, self.arg
        if kind in ("constant", "cosine", "linear-decay"):
            if arg is not None:
                raise invalid("schedule", f"{kind}:{arg}", _SCHEDULE_VALID)
        elif kind in ("warmup", "n-warmup"):
            if isinstance(arg, bool) or not isinstance(arg, numbers.Integral) or not 1 <= int(arg) <= MAX_WARMUP:
                raise invalid("schedule", f"{kind}:{arg}", f"'{kind}:K' with an integer 1 <= K <= 10^6")
            object.__setattr__(self, "arg", int(arg))
        elif kind in ("exp-warmup", "exp-decay"):
            valid = f"'{kind}:r' with 0 < r < 1 " + _NUMBER
            try:
                r = _rational("schedule", arg, valid)
            except SpecError:
                raise invalid("schedule", f"{kind}:{arg}", valid) from None
            if not 0 < r < 1:
                raise invalid("schedule", f"{kind}:{arg}", valid)
            object.__setattr__(self, "arg", r)
        elif kind == "list":
            if isinstance(arg, (str, bytes)) or not hasattr(arg, "__iter__"):
                raise invalid("schedule", arg, _SCHEDULE_VALID)
            valid = "a non-empty list of positive numbers " + _NUMBER
            shown = ",".join(map(str, arg)) if isinstance(arg, (list, tuple)) else arg
            try:
                values = tuple(_rational("schedule", v, valid) for v in arg)
            except SpecError:
                raise invalid("schedule", shown, valid) from None
            if not values or any(v <= 0 for v in values):
                raise invalid("schedule", shown, valid)
            object.__setattr__(self, "arg", values)
        else:
            raise invalid("schedule", kind, _SCHEDULE_VALID)

    @classmethod
    def parse(cls, value) -> "Schedule":
        """Accept a Schedule, ``'constant'``, ``'warmup:3'``, ``'exp-warmup:0.5'``, ``'cosine'``,
        ``'0.5,1,1'`` (or ``'list:0.5,1,1'``), or a list/tuple of positive numbers."""
        if isinstance(value, Schedule):
            return value
        if value is None:
            return cls()
        if isinstance(value, (list, tuple)):
            return cls("list", tuple(value))
        if not isinstance(value, str):
            raise invalid("schedule", value, _SCHEDULE_VALID)
        text = value.strip().lower()
        if len(text) > 2000:
            raise invalid("schedule", value, _SCHEDULE_VALID)
        if text in ("constant", "cosine", "linear-decay"):
            return cls(text)
        head, sep, rest = text.partition(":")
        if sep and head in ("warmup", "n-warmup"):
            if not (rest.strip().isascii() and rest.strip().isdigit()):
                raise invalid("schedule", value, f"'{head}:K' with an integer 1 <= K <= 10^6")
            return cls(head, int(rest))
        if sep and head in ("exp-warmup", "exp-decay"):
            return cls(head, rest)
        if sep and head == "list":
            text = rest
        items = [s.strip() for s in text.split(",")]
        if not items or any(not s for s in items):
            raise invalid("schedule", value, _SCHEDULE_VALID)
        try:
            return cls("list", tuple(items))
        except SpecError:
            raise invalid("schedule", value, _SCHEDULE_VALID) from None

    @property
    def spec(self) -> str:
        """The canonical string; :meth:`parse` of it gives back this schedule."""
        if self.kind in ("constant", "cosine", "linear-decay"):
            return self.kind
        if self.kind == "list":
            return ",".join(_fmt(v) for v in self.arg)
        return f"{self.kind}:{_fmt(self.arg) if isinstance(self.arg, Fraction) else self.arg}"

    def __str__(self) -> str:
        return self.spec

    @property
    def is_constant(self) -> bool:
        """ρ_s = 1 at every step of every run (cosine is not: it decays for t >= 2)."""
        if self.kind == "constant":
            return True
        if self.kind == "warmup":
            return self.arg == 1
        if self.kind == "list":
            return all(v == 1 for v in self.arg)
        return False

    def check_steps(self, steps) -> int:
        """Validate a run length against this schedule (a list must cover every step)."""
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            raise invalid("steps", steps, "an integer >= 0")
        steps = int(steps)
        if self.kind == "list" and len(self.arg) < steps:
            raise SpecError(
                f"`schedule`={self.spec!r} is invalid for steps={steps}: an explicit schedule must list at "
                f"least one rate per step ({steps} values), it has {len(self.arg)}"
            )
        return steps

    @property
    def needs_width(self) -> bool:
        """ρ_s depends on the width n (``n-warmup``): there is no infinite-width limit."""
        return self.kind == "n-warmup"

    def exact(self, steps: int) -> bool:
        """Whether every ρ_s of a ``steps``-step run is an exact Fraction (never for a width-dependent one)."""
        if self.needs_width:
            return False
        return all(isinstance(self.rho(s, steps), Fraction) for s in range(self.check_steps(steps)))

    def rho(self, s: int, steps: int, width: int | None = None):
        """ρ_s for step ``s`` (0-based) of a run of ``steps`` steps: a Fraction, or a float for
        ``cosine`` where cos(π s/t) is irrational and for ``n-warmup`` (which needs ``width``)."""
        steps = self.check_steps(steps)
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or not 0 <= s < steps:
            raise invalid("s", s, f"an integer step index in [0, {steps - 1}] for steps={steps}")
        s = int(s)
        kind = self.kind
        if kind == "constant":
            return Fraction(1)
        if kind == "n-warmup":
            if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
                raise SpecError(f"`schedule`={self.spec!r} depends on the width n: give the network's width")
            if s >= self.arg:
                return Fraction(1)
            return Fraction(1) if width == 1 else float(width) ** (-(1.0 - s / self.arg))
        if kind == "warmup":
            return min(Fraction(1), Fraction(s + 1, self.arg))
        if kind == "exp-warmup":
            return 1 - self.arg ** (s + 1)
        if kind == "exp-decay":
            return self.arg ** s
        if kind == "linear-decay":
            return Fraction(steps - s, steps)
        if kind == "list":
            return self.arg[s]
        # cosine: (1 + cos(pi q))/2 with q = s/t in [0, 1); rational exactly at q in {0, 1/3, 1/2, 2/3}
        q = Fraction(s, steps)
        exact_cos = {Fraction(0): Fraction(1), Fraction(1, 3): Fraction(1, 2), Fraction(1, 2): Fraction(0),
                     Fraction(2, 3): Fraction(-1, 2)}
        if q in exact_cos:
            return (1 + exact_cos[q]) / 2
        return (1.0 + math.cos(math.pi * s / steps)) / 2.0

    def rhos(self, steps: int) -> tuple:
        """(ρ_0, …, ρ_{steps−1})."""
        return tuple(self.rho(s, steps) for s in range(self.check_steps(steps)))


def parse_schedule(value) -> Schedule:
    """``parse_schedule("warmup:3")`` etc.; see :meth:`Schedule.parse`."""
    return Schedule.parse(value)


# ------------------------------------------------------------------------------ layers and exponents

_TRAINED_VALID = "a non-empty subset of input, hidden, readout, e.g. 'hidden' or 'input,hidden,readout'"


def parse_trained(value) -> frozenset:
    """``"input,hidden,readout"`` (or an iterable of those names) → a frozenset; no empty or
    unknown names, no repeats."""
    if isinstance(value, str):
        items = [s.strip().lower() for s in value.split(",")]
    elif isinstance(value, (set, frozenset, list, tuple)):
        items = list(value)
        if not all(isinstance(s, str) for s in items):
            raise invalid("trained", value, _TRAINED_VALID)
        items = [s.strip().lower() for s in items]
    else:
        raise invalid("trained", value, _TRAINED_VALID)
    if not items or any(s not in LAYERS for s in items) or len(set(items)) != len(items):
        raise invalid("trained", value, _TRAINED_VALID)
    return frozenset(items)


_LR_VALID = ("'mup', 'sp', 'ntp' or 'IN,HID,OUT' (three width exponents, λ = n^-γ, e.g. '-1,0,1'), each "
             + EXPONENT_VALID)


def parse_lr_exponents(value):
    """``"-1,0,1"``, a preset name (``mup``/``sp``/``ntp``) or a 3-sequence → (γ_in, γ_hid, γ_out)
    as Fractions; ``None`` stays ``None`` (follow the parametrization)."""
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().lower()
        if key in LR_PRESETS:
            return LR_PRESETS[key]
        parts = key.split(",")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise invalid("lr_exponents", value, _LR_VALID)
    if len(parts) != 3:
        raise invalid("lr_exponents", value, _LR_VALID)
    try:
        return tuple(check_exponent(f"lr_exponents[{name}]", p) for name, p in zip(LAYERS, parts))
    except SpecError:
        raise invalid("lr_exponents", value, _LR_VALID) from None


_SCALES_VALID = ("'IN,HID,OUT': three width-independent constants c > 0 (λ_ℓ = c_ℓ·n^-γ_ℓ), e.g. '1/64,1,64', "
                 "each " + _NUMBER)


def parse_lr_scales(value):
    """``"1/64,1,64"`` or a 3-sequence → (c_in, c_hid, c_out) as positive Fractions; ``None`` and
    (1, 1, 1) give ``None`` (no constants: the rates are n^-γ_ℓ alone)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.strip().split(",")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise invalid("lr_scales", value, _SCALES_VALID)
    if len(parts) != 3:
        raise invalid("lr_scales", value, _SCALES_VALID)
    try:
        out = tuple(_rational(f"lr_scales[{name}]", p, _SCALES_VALID) for name, p in zip(LAYERS, parts))
    except SpecError:
        raise invalid("lr_scales", value, _SCALES_VALID) from None
    if any(c <= 0 for c in out):
        raise invalid("lr_scales", value, _SCALES_VALID)
    return None if all(c == 1 for c in out) else out


# ----------------------------------------------------------------------------------------- recipe

@dataclass(frozen=True)
class Recipe:
    """How the network is trained (see the module docstring for the exact update rules).

    Fields: ``trained`` (frozenset of ``input``/``hidden``/``readout``), ``lr_exponents``
    (``None`` or (γ_in, γ_hid, γ_out)), ``lr_scales`` (``None`` or constants (c_in, c_hid, c_out)), ``schedule`` (:class:`Schedule`), ``weight_decay`` ω,
    ``wd_mode`` (``l2``/``decoupled``/``independent``), ``momentum`` β, ``nesterov``. Every field
    also accepts its CLI string (``Recipe(trained="input,hidden", schedule="warmup:3",
    weight_decay="0.1", lr_exponents="-1,0,1")``).
    """

    trained: frozenset = frozenset({"hidden"})
    lr_exponents: tuple | None = None
    schedule: Schedule = field(default_factory=Schedule)
    weight_decay: Fraction = Fraction(0)
    wd_mode: str = "l2"
    momentum: Fraction = Fraction(0)
    nesterov: bool = False
    lr_scales: tuple | None = None

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("trained", parse_trained(self.trained))
        set_("lr_exponents", parse_lr_exponents(self.lr_exponents))
        set_("lr_scales", parse_lr_scales(self.lr_scales))
        set_("schedule", Schedule.parse(self.schedule))
        omega_in = self.weight_decay
        omega = _rational("weight_decay", omega_in, "a number >= 0 " + _NUMBER)
        if omega < 0:
            raise invalid("weight_decay", omega_in, "a number >= 0 " + _NUMBER)
        set_("weight_decay", omega)
        mode = self.wd_mode.strip().lower() if isinstance(self.wd_mode, str) else self.wd_mode
        if mode not in WD_MODES:
            raise invalid("wd_mode", self.wd_mode, "one of " + ", ".join(WD_MODES))
        set_("wd_mode", mode)
        if mode == "independent" and omega >= 1:
            raise invalid("weight_decay", omega_in,
                          "a number in [0, 1) with wd_mode='independent' (each step multiplies the weights by 1 − ω)")
        beta = _rational("momentum", self.momentum, "a number in [0, 1) " + _NUMBER)
        if not 0 <= beta < 1:
            raise invalid("momentum", self.momentum, "a number in [0, 1) " + _NUMBER)
        set_("momentum", beta)
        if not isinstance(self.nesterov, bool):
            raise invalid("nesterov", self.nesterov, "True or False")
        if self.nesterov and beta == 0:
            raise invalid("nesterov", self.nesterov, "False when momentum is 0 (Nesterov needs momentum > 0)")

    # ---- the rules
    @property
    def trained_layers(self) -> tuple:
        """The trained layers in canonical order (input, hidden, readout)."""
        return tuple(k for k in LAYERS if k in self.trained)

    def trained_matrices(self, depth: int) -> int:
        """k: the number of trained weight matrices (L hidden ones count L)."""
        depth = _depth(depth)
        return ("input" in self.trained) + depth * ("hidden" in self.trained) + ("readout" in self.trained)

    def resolve_lr_exponents(self, param=None) -> tuple:
        """(γ_in, γ_hid, γ_out) for this recipe under ``param`` (a Parametrization or its string).

        Explicit ``lr_exponents`` win. Otherwise the hidden exponent is ``param.gamma`` and the
        input/readout exponents come from :data:`LR_PRESETS` for a preset parametrization; for a
        custom (α, γ) they are ``None``, which is an error if that layer is trained.
        """
        if self.lr_exponents is not None:
            return self.lr_exponents
        if param is None:
            raise SpecError("`param`=None is invalid: must be a parametrization ('mup', 'sp', 'ntp' or 'ALPHA,GAMMA') "
                            "when the recipe's lr_exponents are not given")
        param = Parametrization.parse(param)
        if param.name in LR_PRESETS:
            g_in, _, g_out = LR_PRESETS[param.name]
        else:
            g_in = g_out = None
            for layer in ("input", "readout"):
                if layer in self.trained:
                    raise SpecError(
                        f"`lr_exponents`=None is invalid with param={param.name!r} (alpha={param.alpha}, "
                        f"gamma={param.gamma}) and the {layer} layer trained: must be given as 'IN,HID,OUT' "
                        f"(only the presets mup, sp, ntp define input and readout rates)"
                    )
        return (g_in, param.gamma, g_out)

    def lr_scale(self, layer: str) -> Fraction:
        """c_ℓ, the constant of layer ``layer``'s rate (1 unless ``lr_scales`` says otherwise)."""
        return Fraction(1) if self.lr_scales is None else self.lr_scales[LAYERS.index(layer)]

    def lr_multipliers(self, width: int, param=None, *, exact: bool = False) -> dict:
        """{layer: λ_ℓ = c_ℓ·n^{−γ_ℓ}} for the trained layers. Floats computed exactly as
        :meth:`Parametrization.lr_multiplier` does (so the plain recipe gives today's bits; a
        constant c_ℓ ≠ 1 multiplies that float once); ``exact=True`` gives Fractions (integer
        exponents only)."""
        if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
            raise invalid("width", width, "an integer >= 1")
        gammas = dict(zip(LAYERS, self.resolve_lr_exponents(param)))
        out = {}
        for layer in self.trained_layers:
            g = gammas[layer]
            if exact:
                if g.denominator != 1:
                    raise invalid(f"lr_exponents[{layer}]", str(g), "an integer for exact rational multipliers n^-γ")
                out[layer] = self.lr_scale(layer) * Fraction(int(width)) ** (-int(g))
            else:
                c = self.lr_scale(layer)
                out[layer] = float(width) ** (-float(g)) if c == 1 else float(c) * float(width) ** (-float(g))
        return out

    def check_steps(self, steps: int) -> int:
        return self.schedule.check_steps(steps)

    def rho(self, s: int, steps: int, width: int | None = None):
        """ρ_s of a ``steps``-step run (Fraction, or float for an irrational cosine value or a width-dependent
        schedule, which needs ``width``)."""
        return self.schedule.rho(s, steps, width)

    # ---- identities
    @property
    def is_plain(self) -> bool:
        """Today's recipe: hidden layers only, at the parametrization's rate, ρ ≡ 1, ω = 0, β = 0."""
        return (self.trained == frozenset({"hidden"}) and self.lr_exponents is None and self.lr_scales is None
                and self.schedule.is_constant and self.weight_decay == 0 and self.momentum == 0)

    def is_plain_for(self, param) -> bool:
        """Like :attr:`is_plain`, but an explicit hidden exponent equal to ``param``'s γ also counts
        (the input/readout exponents do not matter when those layers are frozen)."""
        if self.lr_scales is not None and (self.trained != frozenset({"hidden"}) or self.lr_scale("hidden") != 1):
            return False
        if self.trained == frozenset({"hidden"}) and (self.lr_exponents is not None or self.lr_scales is not None):
            same = self.lr_exponents is None or self.lr_exponents[1] == Parametrization.parse(param).gamma
            return same and self.schedule.is_constant and self.weight_decay == 0 and self.momentum == 0
        return self.is_plain

    # ---- records
    def to_dict(self) -> dict:
        """JSON-safe: lists and strings only; exact numbers as strings ('1/10'). ``lr_scales`` appears
        only when set (so records of recipes without constants are unchanged)."""
        out = {
            "trained": list(self.trained_layers),
            "lr_exponents": None if self.lr_exponents is None else [_fmt(g) for g in self.lr_exponents],
            "schedule": self.schedule.spec,
            "weight_decay": _fmt(self.weight_decay),
            "wd_mode": self.wd_mode,
            "momentum": _fmt(self.momentum),
            "nesterov": self.nesterov,
        }
        if self.lr_scales is not None:
            out["lr_scales"] = [_fmt(c) for c in self.lr_scales]
        return out

    @classmethod
    def from_dict(cls, data) -> "Recipe":
        """Inverse of :meth:`to_dict`; missing keys take their defaults (``{}`` is the plain
        recipe), unknown keys are refused."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise invalid("recipe", data, "a dict as written by Recipe.to_dict()")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise invalid("recipe", short_repr(unknown), "a dict with keys among " + ", ".join(_FIELDS))
        return cls(**data)

    def describe(self) -> str:
        """One short line for reports, e.g. 'train input+hidden+readout · lr n^-(-1,0,1) · warmup:3
        · wd 1/10 (independent) · momentum 9/10 nesterov'; 'plain GD (hidden layers, constant rate)'."""
        if self.is_plain:
            return "plain GD (hidden layers, constant rate)"
        parts = ["train " + "+".join(self.trained_layers)]
        if self.lr_exponents is not None:
            parts.append("lr n^-(" + ",".join(_fmt(g) for g in self.lr_exponents) + ")")
        if self.lr_scales is not None:
            parts.append("lr x(" + ",".join(_fmt(c) for c in self.lr_scales) + ")")
        parts.append("schedule " + self.schedule.spec)
        parts.append(f"wd {_fmt(self.weight_decay)} ({self.wd_mode})" if self.weight_decay else "no wd")
        if self.momentum:
            parts.append(f"momentum {_fmt(self.momentum)}" + (" nesterov" if self.nesterov else ""))
        return " · ".join(parts)


_FIELDS = ("trained", "lr_exponents", "schedule", "weight_decay", "wd_mode", "momentum", "nesterov", "lr_scales")

#: Today's recipe.
PLAIN = Recipe()


# ----------------------------------------------------------------------------------------- biases

_BIAS_LAYERS_VALID = "'none', 'all' or a subset of input, hidden, readout, e.g. 'input,hidden'"
_BIAS_SCALES_VALID = ("'IN,HID,OUT': three constants c > 0 of the biases' muP rates (input c·n, hidden c·n, readout "
                      "c), e.g. '1/64,1/64,1', each " + _NUMBER)
_BIAS_VAR_VALID = "a number >= 0 (a bias's entry variance at initialisation) " + _NUMBER


def parse_variance(name: str, value) -> Fraction:
    """A bias's initial entry variance as an exact Fraction >= 0, or a one-line SpecError naming ``name``."""
    var = _rational(name, value, _BIAS_VAR_VALID)
    if var < 0:
        raise invalid(name, value, _BIAS_VAR_VALID)
    return var


@dataclass(frozen=True)
class Biases:
    """Trained biases for the exact μP limit (:func:`polyloss.derive.derive`, docs/theory.md §12).

    h_0 = W_0 x + β_0, h_ℓ = W_ℓ h_{ℓ−1} + β_ℓ, f = Vᵀh_L + β_V. ``layers`` ⊆ {input, hidden, readout}: the
    biases that train, at their μP rates c·n (input and hidden: ``mup.MuSGD`` treats them as vector-like,
    lr × n/base, so c = 1/base) and c (the readout's, one entry: lr), with ``lr_scales`` = (c_in, c_hid,
    c_out), default 1, 1, 1. Biases share the recipe's schedule and momentum and take no weight decay.
    The input bias starts with entry variance ``input_var`` (torch's default U(±1/√d): 1/(3d); 0: zero init),
    every hidden bias with ``hidden_var`` (mup's ``set_base_shapes`` rescales torch's U(±1/√n) to U(±1/√base):
    1/(3·base); 0 for torch's own o(1) init or a zero init), trained or not; the readout bias starts at o(1)
    (mup's MuReadout rescales it to O(1), a random offset with no limit: zero it). ``Biases()`` (no layer,
    variances 0) is no bias at all."""

    layers: frozenset = frozenset()
    lr_scales: tuple = (Fraction(1), Fraction(1), Fraction(1))
    input_var: Fraction = Fraction(0)
    hidden_var: Fraction = Fraction(0)

    def __post_init__(self):
        def set_(k, v):
            object.__setattr__(self, k, v)
        lay = self.layers
        if isinstance(lay, str) and lay.strip().lower() in ("none", ""):
            lay = frozenset()
        elif isinstance(lay, str) and lay.strip().lower() == "all":
            lay = frozenset(LAYERS)
        elif not (isinstance(lay, (set, frozenset, list, tuple)) and not lay):
            try:
                lay = parse_trained(lay)
            except SpecError:
                raise invalid("biases", self.layers, _BIAS_LAYERS_VALID) from None
        set_("layers", frozenset(lay))
        try:
            sc = parse_lr_scales(self.lr_scales)
        except SpecError:
            raise invalid("bias_lr_scales", self.lr_scales, _BIAS_SCALES_VALID) from None
        set_("lr_scales", (Fraction(1),) * 3 if sc is None else sc)
        for field_, name in (("input_var", "input_bias_var"), ("hidden_var", "hidden_bias_var")):
            set_(field_, parse_variance(name, getattr(self, field_)))

    @property
    def none(self) -> bool:
        """No bias matters: none trains and the input bias starts at 0."""
        return not self.layers and self.input_var == 0 and self.hidden_var == 0

    def lr_scale(self, layer: str) -> Fraction:
        return self.lr_scales[LAYERS.index(layer)]

    def to_dict(self) -> dict:
        out = {"layers": [x for x in LAYERS if x in self.layers], "lr_scales": [_fmt(c) for c in self.lr_scales],
               "input_var": _fmt(self.input_var)}
        if self.hidden_var:  # (records without it read as 0)
            out["hidden_var"] = _fmt(self.hidden_var)
        return out

    @classmethod
    def from_dict(cls, data) -> "Biases":
        if not isinstance(data, dict):
            raise invalid("biases", data, "a dict with layers, lr_scales, input_var")
        return cls(data.get("layers", ()), data.get("lr_scales"), data.get("input_var", 0), data.get("hidden_var", 0))

    def describe(self) -> str:
        parts = ["biases " + (",".join(x for x in LAYERS if x in self.layers) or "none trained")]
        if any(c != 1 for c in self.lr_scales):
            parts.append("rates x(" + ",".join(_fmt(c) for c in self.lr_scales) + ")")
        if self.input_var:
            parts.append(f"input bias var {_fmt(self.input_var)}")
        if self.hidden_var:
            parts.append(f"hidden bias var {_fmt(self.hidden_var)}")
        return ", ".join(parts)


# ----------------------------------------------------------------------------------------- degrees

def _depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise invalid("depth", depth, "an integer >= 1")
    return int(depth)


def recipe_weight_degree(depth: int, steps: int, recipe: Recipe = PLAIN) -> int:
    """D_t, the degree in η of every trained matrix after t steps: D_0 = 0,
    D_{t+1} = 1 + (2k − 1) D_t with k = ``recipe.trained_matrices(depth)`` (docs/theory.md §7).

    Why: if all k trained matrices have degree D, f has degree kD; a gradient is the residual
    (degree kD) times the product of the other L+1 matrices (degree (k−1)D), so the update
    ηρλ·(direction) has degree 1 + (2k−1)D. A momentum buffer is a combination of gradients of the
    current and earlier steps, whose degrees are not larger; the l2/torch/decoupled decay factors
    (1 − ηρλω), (1 − ηρω) raise the old weight to degree D + 1 <= 1 + (2k−1)D; independent decay
    (1 − ω) and the schedule are constants. So no recipe option other than the set of trained
    layers changes the degree (only its leading coefficient).
    """
    if not isinstance(recipe, Recipe):
        raise invalid("recipe", recipe, "a polyloss.recipe.Recipe")
    k = recipe.trained_matrices(depth)
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise invalid("steps", steps, "an integer >= 0")
    D = 0
    for _ in range(int(steps)):
        D = 1 + (2 * k - 1) * D
    return D


def recipe_f_degree(depth: int, steps: int, recipe: Recipe = PLAIN) -> int:
    """Degree of f^{(t)} in η: k · D_t."""
    return recipe.trained_matrices(depth) * recipe_weight_degree(depth, steps, recipe)


def recipe_loss_degree(depth: int, steps: int, recipe: Recipe = PLAIN) -> int:
    """Degree of 𝓛^{(t)} in η: 2k · D_t (the plain recipe: k = L, today's ``engine.loss_degree``)."""
    return 2 * recipe_f_degree(depth, steps, recipe)
