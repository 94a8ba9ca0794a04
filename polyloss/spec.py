"""Frozen, validated specifications: network, parametrization, training and sampling.

Every entry point (API and CLI) builds these first, so a bad value is rejected before any work
starts, with a message that names the argument, the value and what would be valid.

Conventions (docs/theory.md §1–2): ``f(x) = Vᵀ W_L ⋯ W_1 W_0 x`` with ``W_0`` of shape
``n × d``, hidden ``W_ℓ`` of shape ``n × n`` (ℓ = 1..L) and readout ``V`` of length ``n``; only the
hidden layers are trained. The parametrization fixes the readout variance ``n^{-α}`` and the
hidden learning-rate multiplier ``λ = n^{-γ}``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction

from polyloss.errors import SpecError, invalid

__all__ = [
    "NetworkSpec",
    "Parametrization",
    "TrainingSpec",
    "SamplingSpec",
    "PRESETS",
    "parse_widths",
]


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise invalid(name, value, f"an integer >= {minimum}")
    value = int(value)
    if value < minimum:
        raise invalid(name, value, f"an integer >= {minimum}")
    return value


#: Width exponents (alpha, gamma, Adam's K) are rationals with |value| <= MAX_EXPONENT and a
#: denominator <= MAX_DENOMINATOR: n^-alpha must be a float64 for every width, and the exponent
#: is stored exactly in run.json.
MAX_EXPONENT = 64
MAX_DENOMINATOR = 10**6
EXPONENT_VALID = f"a real number in [-{MAX_EXPONENT}, {MAX_EXPONENT}] (int, decimal or fraction p/q with q <= 10^6)"


def check_exponent(name: str, value) -> Fraction:
    """A width exponent as an exact Fraction (floats: nearest fraction with denominator <= 10^6)."""
    if isinstance(value, bool):
        raise invalid(name, value, EXPONENT_VALID)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 40:
            raise invalid(name, value, EXPONENT_VALID)
        value = text
    try:
        if isinstance(value, float) or (not isinstance(value, (str, numbers.Rational)) and isinstance(value, numbers.Real)):
            if not math.isfinite(float(value)):
                raise ValueError
            frac = Fraction(float(value)).limit_denominator(MAX_DENOMINATOR)
        else:
            frac = Fraction(value)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        raise invalid(name, value, EXPONENT_VALID) from None
    if abs(frac) > MAX_EXPONENT or frac.denominator > MAX_DENOMINATOR:
        raise invalid(name, value, EXPONENT_VALID)
    return frac


_check_exponent = check_exponent


@dataclass(frozen=True)
class NetworkSpec:
    """A deep linear MLP: depth ``L`` hidden n×n layers, width ``n``, input dimension ``d``."""

    depth: int
    width: int
    input_dim: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _check_int("depth", self.depth, 1))
        object.__setattr__(self, "width", _check_int("width", self.width, 1))
        object.__setattr__(self, "input_dim", _check_int("input_dim", self.input_dim, 1))


@dataclass(frozen=True)
class Parametrization:
    """Initialisation and learning-rate scaling of the hidden layers (THEORY §2).

    ``W_0 ~ N(0, 1/d)`` and ``W_ℓ ~ N(0, 1/n)`` always; the readout is ``V ~ N(0, n^{-alpha})`` and
    the hidden layers use the learning rate ``η · n^{-gamma}``. Presets: ``mup`` (α=2, γ=0),
    ``sp`` (α=1, γ=0), ``ntp`` (α=1, γ=1). Exponents are stored exactly as fractions.

    Example:
      >>> Parametrization.preset("mup").readout_variance(4)
      0.0625
    """

    name: str
    alpha: Fraction
    gamma: Fraction

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise invalid("param", self.name, "one of 'mup', 'sp', 'ntp' or 'custom'")
        object.__setattr__(self, "alpha", _check_exponent("alpha", self.alpha))
        object.__setattr__(self, "gamma", _check_exponent("gamma", self.gamma))
        preset = PRESETS.get(self.name)
        if preset is not None and (preset != (self.alpha, self.gamma)):
            raise SpecError(
                f"`param`={self.name!r} fixes (alpha, gamma)={tuple(map(str, preset))}, got "
                f"({self.alpha}, {self.gamma}); use name='custom' for other exponents"
            )

    @classmethod
    def preset(cls, name: str) -> "Parametrization":
        key = str(name).lower()
        if key not in PRESETS:
            raise invalid("param", name, "one of " + ", ".join(repr(k) for k in PRESETS))
        alpha, gamma = PRESETS[key]
        return cls(key, alpha, gamma)

    @classmethod
    def custom(cls, alpha, gamma) -> "Parametrization":
        a, g = _check_exponent("alpha", alpha), _check_exponent("gamma", gamma)
        for key, val in PRESETS.items():
            if val == (a, g):
                return cls(key, a, g)
        return cls("custom", a, g)

    @classmethod
    def parse(cls, value) -> "Parametrization":
        """Accept a Parametrization, a preset name, or ``'alpha,gamma'`` / ``(alpha, gamma)``."""
        if isinstance(value, Parametrization):
            return value
        if isinstance(value, str) and "," in value:
            parts = value.split(",")
            if len(parts) != 2:
                raise invalid("param", value, "'mup', 'sp', 'ntp' or 'ALPHA,GAMMA' (e.g. '2,0')")
            try:
                return cls.custom(check_exponent("alpha", parts[0]), check_exponent("gamma", parts[1]))
            except SpecError:
                raise invalid("param", value, f"'mup', 'sp', 'ntp' or 'ALPHA,GAMMA' (e.g. '2,0') with each exponent "
                              f"{EXPONENT_VALID}") from None
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return cls.custom(*value)
        if isinstance(value, str):
            return cls.preset(value.strip())
        raise invalid("param", value, "'mup', 'sp', 'ntp' or 'ALPHA,GAMMA' (e.g. '2,0')")

    def readout_variance(self, width: int) -> float:
        return float(width) ** (-float(self.alpha))

    def lr_multiplier(self, width: int) -> float:
        """λ = n^{-γ}, the multiplier of η on every hidden layer."""
        return float(width) ** (-float(self.gamma))

    def to_dict(self) -> dict:
        return {"name": self.name, "alpha": str(self.alpha), "gamma": str(self.gamma)}


PRESETS: dict[str, tuple[Fraction, Fraction]] = {
    "mup": (Fraction(2), Fraction(0)),
    "sp": (Fraction(1), Fraction(0)),
    "ntp": (Fraction(1), Fraction(1)),
}


@dataclass(frozen=True)
class TrainingSpec:
    """Full-batch GD for ``steps`` steps; coefficients kept up to ``degree`` (None: all).

    ``steps``: an integer T >= 1, or a horizon rule T(n) (a :class:`polyloss.horizon.StepsRule` or
    its text, e.g. ``'ceil(2*n**0.15)'`` or ``'64:1,128:2'``; ``sample`` only). A fixed rule is stored
    as the plain int, so ``steps`` is an int exactly when every width trains for the same T.
    """

    steps: object
    degree: int | None = None

    def __post_init__(self) -> None:
        from polyloss.horizon import StepsRule

        if isinstance(self.steps, (str, StepsRule)):
            rule = StepsRule.parse(self.steps)
            object.__setattr__(self, "steps", rule.fixed if rule.is_fixed else rule)
        else:
            object.__setattr__(self, "steps", _check_int("steps", self.steps, 1))
        if self.degree is not None:
            object.__setattr__(self, "degree", _check_int("degree", self.degree, 0))

    @property
    def rule(self):
        """The horizon as a :class:`polyloss.horizon.StepsRule` (fixed or growing)."""
        from polyloss.horizon import StepsRule

        return StepsRule.parse(self.steps)

    def steps_for(self, width: int) -> int:
        """T at ``width``."""
        return self.rule.steps_for(width)


def parse_widths(value) -> tuple[int, ...]:
    """Parse ``"64,128,256"`` or an iterable of ints into a sorted tuple of distinct widths."""
    if isinstance(value, str):
        items = [s.strip() for s in value.split(",")]
        if not all(s.isascii() and s.isdigit() for s in items):  # also refuses empty items: '64,,128'
            raise invalid("widths", value, "a comma-separated list of integers >= 1 without empty items, e.g. 64,128,256")
        widths = [int(s) for s in items]
    else:
        try:
            widths = list(value)
        except TypeError:
            raise invalid("widths", value, "a list of integers >= 1") from None
    if not widths:
        raise invalid("widths", value, "a non-empty list of integers >= 1, e.g. 64,128,256")
    from polyloss._budget import MAX_WIDTH

    for w in widths:
        if isinstance(w, bool) or not isinstance(w, numbers.Integral) or not 1 <= int(w) <= MAX_WIDTH:
            raise invalid("widths", value, "a list of integers >= 1 and <= 2^40, e.g. 64,128,256")
    return tuple(sorted({int(w) for w in widths}))


@dataclass(frozen=True)
class SamplingSpec:
    """Which networks to sample: ``samples`` networks at each width, from one root ``seed``.

    The network for (width n, sample s) is drawn from ``SeedSequence(seed, spawn_key=(n, s))``, so
    it does not depend on which other widths or samples are in the run, nor on chunking.
    """

    widths: tuple[int, ...]
    samples: int
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", parse_widths(self.widths))
        object.__setattr__(self, "samples", _check_int("samples", self.samples, 1))
        object.__setattr__(self, "seed", _check_int("seed", self.seed, 0))
        if self.seed >= 2**63:
            raise invalid("seed", self.seed, "an integer >= 0 and < 2^63")
