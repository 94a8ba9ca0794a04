"""Reading a PyTorch / ``mup`` MLP's parameters into polyloss's effective weights (issue 15, first part).

A user's model is a chain input layer → L hidden n × n layers → readout, saved as a ``state_dict``:

* **safetensors** (``.safetensors``; read here without torch: an 8-byte little-endian header length, a
  JSON header ``{name: {dtype, shape, data_offsets}}`` and the raw little-endian data), or
* **NPZ** with torch's key names (``np.savez(path, **{k: v.numpy() for k, v in sd.items()})``).

:func:`read_state_dict` returns ``{name: float64 array}``; :func:`infer_layout` finds the chain (or
checks a declared one); :func:`import_model` maps it to :class:`polyloss.weights.Weights` and says
exactly what it did (:attr:`ImportedModel.notes`). Biases (input, hidden, readout) are kept: a network with
biases is a network without them on one more coordinate, a constant channel (:func:`augmented_network`).

Effective weights (THEORY §1: f(x) = Vᵀ W_L ⋯ W_1 W_0 x): W_0 = input weight (n × d), W_ℓ = hidden
weights, V = readout weight × ``output_mult / width_mult`` for a ``mup.MuReadout`` (width_mult =
n / base width), the readout weight itself for a plain ``nn.Linear``. Biases are raw = effective (a MuReadout
adds its bias after the scaling); an all-zero bias is dropped (and the notes say so): it stays 0 only if it
is not trained, so a trained layer's zero bias is kept like any other.

Learning rates in effective weights, relative to the user's lr (:meth:`ImportedModel.lr_rates`, each a
constant times n^-γ): torch SGD trains every layer at lr; ``mup.MuSGD`` at input ×n/base, hidden ×1,
readout ×output_mult²·base/n; ``mup.MuAdam`` (Adam rates) at input ×1, hidden ×base/n, readout
×output_mult·base/n. They were measured against real MuSGD/MuAdam training (issue 15: 4.4e-16).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from polyloss.errors import DataError, SpecError, invalid
from polyloss.weights import Weights

__all__ = ["read_state_dict", "read_base_shapes", "infer_layout", "Layout", "ImportedModel", "import_model", "augmented_network",
           "limit_spec", "check_limit_init",
           "OPTIMIZERS", "LOSSES",
           "LossConvention", "loss_convention", "poly_doc_in_user_units"]

#: safetensors dtype codes polyloss reads (floats; everything is converted to float64).
_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": "bf16"}
OPTIMIZERS = ("sgd", "musgd", "muadam")
_MAX_HEADER = 100 * 2**20


def _read_safetensors(path: str) -> dict:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise DataError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        (n,) = struct.unpack("<Q", head)
        if n > min(_MAX_HEADER, size - 8):
            raise DataError(f"{path}: not a safetensors file (header length {n} exceeds the file)")
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise DataError(f"{path}: not a safetensors file (its header is not JSON)") from None
        if not isinstance(header, dict):
            raise DataError(f"{path}: not a safetensors file (its header is not a JSON object)")
        data = fh.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (lo, hi) = info["dtype"], [int(s) for s in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: tensor {name!r} has a malformed header entry {info!r}") from None
        if dtype not in _DTYPES:
            raise DataError(f"{path}: tensor {name!r} has dtype {dtype!r}; polyloss reads {', '.join(_DTYPES)}")
        if not (0 <= lo <= hi <= len(data)):
            raise DataError(f"{path}: tensor {name!r} points outside the file (offsets {lo}..{hi})")
        raw = data[lo:hi]
        if dtype == "BF16":  # the top 16 bits of a float32
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=_DTYPES[dtype])
        count = int(np.prod(shape)) if shape else 1
        if a.size != count:
            raise DataError(f"{path}: tensor {name!r} holds {a.size} values, its shape {shape} needs {count}")
        out[name] = a.astype(np.float64).reshape(shape)
    return out


def read_state_dict(path) -> dict:
    """``{name: float64 array}`` from a ``.safetensors`` or ``.npz`` state_dict (one-line errors)."""
    if not isinstance(path, (str, os.PathLike)):
        raise invalid("model", path, "a path to a .safetensors or .npz file, or a dict of arrays")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise invalid("model", path, "an existing .safetensors or .npz file")
    if path.endswith(".safetensors"):
        sd = _read_safetensors(path)
    elif path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as z:
                sd = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: not a readable NPZ file ({exc})") from None
    else:
        raise invalid("model", path, "a .safetensors or .npz file (a state_dict with torch's key names)")
    bad = [k for k, v in sd.items() if not np.all(np.isfinite(v))]
    if bad:
        raise DataError(f"{path}: tensor {bad[0]!r} holds NaN or infinity")
    return sd


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class Layout:
    """Which state_dict entries are the input layer, the hidden layers (in order) and the readout."""

    input: str
    hidden: tuple
    readout: str

    @property
    def names(self) -> tuple:
        return (self.input, *self.hidden, self.readout)


_FIRST = ("input", "inp", "embed", "first", "in_proj", "fc_in")
_LAST = ("readout", "output", "out", "head", "last", "fc_out", "classifier")


def _rank(name: str) -> int:
    stem = name.rsplit(".", 1)[0].lower()
    parts = re.split(r"[._]", stem)
    if any(p in _FIRST for p in parts):
        return 0
    if any(p in _LAST for p in parts):
        return 2
    return 1


def infer_layout(state: dict, layout: str | None = None) -> Layout:
    """The chain of 2-D ``*.weight`` entries: declared as ``'input=NAME,hidden=N1;N2,readout=NAME'`` (module
    names, ``.weight`` optional), or inferred — names such as input/inp/embed first, readout/out/head last,
    the rest in natural order (``0.weight`` < ``2.weight`` < ``10.weight``) — and checked by shape:
    input n × d, hidden n × n, readout 1 × n."""
    weights = [k for k, v in state.items() if k.endswith("weight") and np.ndim(v) == 2]
    if layout is not None:
        parts = {}
        for item in str(layout).split(","):
            key, sep, val = item.partition("=")
            if not sep or key.strip() not in ("input", "hidden", "readout") or not val.strip():
                raise invalid("layout", layout, "'input=NAME,hidden=NAME1;NAME2;...,readout=NAME'")
            parts[key.strip()] = [v.strip() if v.strip().endswith("weight") else v.strip() + ".weight"
                                  for v in val.split(";")]
        if set(parts) != {"input", "hidden", "readout"} or len(parts["input"]) != 1 or len(parts["readout"]) != 1:
            raise invalid("layout", layout, "all three of input=…, hidden=…, readout=… (one input, one readout)")
        missing = [n for ns in parts.values() for n in ns if n not in state]
        if missing:
            raise invalid("layout", layout, f"names of the state_dict's weights (no {missing[0]!r}; it has "
                                            f"{', '.join(weights) or 'none'})")
        lay = Layout(parts["input"][0], tuple(parts["hidden"]), parts["readout"][0])
    else:
        if len(weights) < 3:
            raise DataError(f"the state_dict has {len(weights)} 2-D weight(s) ({', '.join(weights) or 'none'}); an MLP "
                            "needs an input layer, at least one hidden layer and a readout")
        order = sorted(weights, key=lambda k: (_rank(k), _natural(k)))
        lay = Layout(order[0], tuple(order[1:-1]), order[-1])
    _check_chain(state, lay)
    return lay


def _check_chain(state: dict, lay: Layout) -> None:
    W0, R = state[lay.input], state[lay.readout]
    n, d = W0.shape
    problems = []
    for name in lay.hidden:
        if state[name].shape != (n, n):
            problems.append(f"{name} is {state[name].shape[0]}×{state[name].shape[1]}, not {n}×{n}")
    if R.shape != (1, n):
        problems.append(f"{lay.readout} is {R.shape[0]}×{R.shape[1]}, not 1×{n} (one output)")
    if n == d and not lay.hidden:
        problems.append("no hidden layer")
    if problems:
        raise DataError(f"the layout input={lay.input}, hidden={';'.join(lay.hidden)}, readout={lay.readout} is not "
                        f"an MLP of width {n} on {d} inputs: " + "; ".join(problems) + " (declare it with --layout)")


@dataclass(frozen=True)
class ImportedModel:
    """A user's MLP in polyloss's terms: effective weights, the mapping, and the per-layer learning rates.

    ``biases``: {'input': (n,), 'hidden': ((n,), …) with None for a layer without one, 'readout': float or None}
    (None: no bias at all)."""

    weights: Weights
    layout: Layout
    optimizer: str
    base_width: int | None
    output_mult: Fraction
    notes: tuple = field(default_factory=tuple)
    biases: dict | None = None

    def bias_rates(self) -> dict:
        """{layer: (constant c, exponent γ)} of the biases' rates, like :meth:`lr_rates`: torch SGD trains every
        bias at lr; mup.MuSGD treats the input and hidden biases as vector-like (lr × width_mult = lr·n/base) and
        the MuReadout's bias (one entry) as fixed (lr)."""
        if self.optimizer == "sgd":
            return {k: (Fraction(1), Fraction(0)) for k in ("input", "hidden", "readout")}
        if self.optimizer == "musgd":
            b = Fraction(self.base_width)
            return {"input": (1 / b, Fraction(-1)), "hidden": (1 / b, Fraction(-1)), "readout": (Fraction(1), Fraction(0))}
        raise SpecError("`model` has biases and optimizer 'muadam': Adam on a bias channel is not exact in effective "
                        "weights; build the model with bias=False")

    def lr_rates(self) -> dict:
        """{layer: (constant c, exponent γ)}: layer ℓ moves at the user's lr × c·n^-γ in effective weights
        (for ``muadam``: Adam rates). Constants are exact Fractions."""
        om = self.output_mult
        b = Fraction(self.base_width) if self.base_width is not None else None
        if self.optimizer == "sgd":
            return {"input": (Fraction(1), Fraction(0)), "hidden": (Fraction(1), Fraction(0)),
                    "readout": (Fraction(1), Fraction(0))}
        if self.optimizer == "musgd":
            return {"input": (1 / b, Fraction(-1)), "hidden": (Fraction(1), Fraction(0)), "readout": (om * om * b, Fraction(1))}
        return {"input": (Fraction(1), Fraction(0)), "hidden": (b, Fraction(1)), "readout": (om * b, Fraction(1))}


    def recipe(self, trained=None, **knobs):
        """The :class:`~polyloss.recipe.Recipe` that trains this model as its optimizer does, with η = the
        user's lr: every layer (or ``trained``) at c_ℓ·n^-γ_ℓ from :meth:`lr_rates` (as ``lr_exponents``
        and ``lr_scales``); ``knobs`` (schedule, weight_decay, wd_mode, momentum, nesterov) as given. For
        ``muadam`` these are Adam rates (``sweep --optimizer adam``)."""
        from polyloss.recipe import LAYERS, Recipe

        rates = self.lr_rates()
        return Recipe(trained=",".join(LAYERS) if trained is None else trained,
                      lr_exponents=[rates[k][1] for k in LAYERS], lr_scales=[rates[k][0] for k in LAYERS], **knobs)

    @property
    def adam(self) -> bool:
        """Whether the optimizer is Adam (mup.MuAdam)."""
        return self.optimizer == "muadam"


def _sqrt_ratio(q: Fraction) -> tuple[float, bool]:
    """(√q as a float, whether it is exact): exact when numerator and denominator are perfect squares."""
    import math

    a, b = math.isqrt(q.numerator), math.isqrt(q.denominator)
    if a * a == q.numerator and b * b == q.denominator:
        return a / b, True
    return math.sqrt(q.numerator / q.denominator), False


def augmented_network(model: ImportedModel, data, recipe):
    """A network with biases as one without them on a constant channel: ``(weights, data, recipe, notes)`` for
    :class:`polyloss.engine.LossEngine` with ``channel=True``; None when no bias matters (none, or only all-zero
    biases of frozen layers, which stay 0).

    Every space gets one more coordinate whose value is a constant κ: x̃ = (x, κ_in), h̃_ℓ = (h_ℓ, κ_ℓ); layer ℓ
    becomes W̃_ℓ = [[W_ℓ, b_ℓ/κ_{ℓ−1}], [0, κ_ℓ/κ_{ℓ−1}]] and the readout Ṽ = (V, c/κ_L), so h̃ and f are those of
    the network with biases. GD on W̃ with its last row frozen (the engine masks the left factor of every update)
    moves the bias column at the layer's rate λ_ℓ times κ_{ℓ−1}², so κ_{ℓ−1} = √(λ_bias/λ_ℓ) gives each bias its
    own rate (mup: input and hidden biases lr·n/base, the readout bias lr). The weights' rates go into the recipe
    as absolute constants (exponents 0), so the engine's width n + 1 never enters them. When a ratio is not a
    square of rationals, κ is rounded to float64 (relative 2^-53 in the bias entries; the notes say so). Weight
    decay (which would scale the frozen channel) and width-dependent schedules are refused."""
    from polyloss.data import Dataset
    from polyloss.recipe import LAYERS, Recipe
    from polyloss.spec import Parametrization

    w, bz = model.weights, model.biases
    if bz is None:
        return None
    trained = recipe.trained
    # a bias stays as it is when its layer is frozen: an all-zero one can then be left out
    live = {"input": bz["input"] if (bz["input"] is not None and ("input" in trained or np.any(bz["input"]))) else None,
            "hidden": tuple(b if (b is not None and ("hidden" in trained or np.any(b))) else None for b in bz["hidden"]),
            "readout": bz["readout"] if (bz["readout"] is not None and ("readout" in trained or bz["readout"] != 0))
            else None}
    if live["input"] is None and live["readout"] is None and all(b is None for b in live["hidden"]):
        return None
    bz = live
    if recipe.weight_decay != 0:
        raise SpecError("`--weight-decay` is invalid with a model that has biases: polyloss carries biases on a constant "
                        "channel that decay would scale (build the model with bias=False, or give --weight-decay 0)")
    if recipe.schedule.needs_width:
        raise invalid("schedule", recipe.schedule.spec, "a width-independent schedule with a model that has biases")
    n, L = w.width, w.depth
    lam = recipe.lr_multipliers(n, Parametrization.preset("mup"), exact=True)  # weights: {layer: c·n^-γ}
    brates = model.bias_rates()
    lam_b = {k: c * Fraction(n) ** (-int(g)) for k, (c, g) in brates.items()}
    notes, rounded = [], []

    def kappa(layer: str, has_bias: bool) -> float:
        if not has_bias or layer not in lam:  # no bias, or a frozen layer (its bias is frozen too)
            return 1.0
        k, exact = _sqrt_ratio(lam_b[layer] / lam[layer])
        if not exact:
            rounded.append(layer)
        return k

    hb = bz["hidden"]
    k_in = kappa("input", bz["input"] is not None)
    ks = [kappa("hidden", hb[l] is not None) for l in range(L)] + [kappa("readout", bz["readout"] is not None)]
    # κ_{−1} = k_in (the input channel), κ_ℓ = ks[ℓ] for ℓ = 0..L (ks[ℓ] serves layer ℓ+1's bias, ks[L] the readout's)

    def block(W, b, k_prev, k_next):
        top = np.hstack([W, (np.zeros(W.shape[0]) if b is None else b / k_prev)[:, None]])
        bottom = np.zeros((1, W.shape[1] + 1))
        bottom[0, -1] = k_next / k_prev
        return np.vstack([top, bottom])

    W0 = block(np.asarray(w.W0), bz["input"], k_in, ks[0])
    hidden = tuple(block(np.asarray(W), hb[l], ks[l], ks[l + 1]) for l, W in enumerate(w.hidden))
    V = np.append(np.asarray(w.V), 0.0 if bz["readout"] is None else bz["readout"] / ks[L])
    X = np.hstack([data.X, np.full((data.m, 1), k_in)])
    rec = Recipe(trained=recipe.trained, lr_exponents=[0, 0, 0], lr_scales=[lam.get(k, Fraction(1)) for k in LAYERS],
                 schedule=recipe.schedule, momentum=recipe.momentum, nesterov=recipe.nesterov)
    notes.append("biases carried on a constant channel (one more coordinate per space), each at its own rate"
                 + (f"; channel values rounded to float64 for the {', '.join(sorted(set(rounded)))} bias rates "
                    "(relative 2^-53 in the bias entries)" if rounded else "; channel values exact"))
    return Weights(W0, hidden, V), Dataset(X, np.asarray(data.y)), rec, tuple(notes)


#: the μP exponents γ of the biases' rates (λ = c·n^-γ): input and hidden c·n, readout c
_MUP_BIAS_EXPONENT = {"input": Fraction(-1), "hidden": Fraction(-1), "readout": Fraction(0)}


def _declared_var(value, default, name: str, torch_value, mup_value=None):
    """A declared initial variance: None → ``default``; 'torch'/'mup' → those values; else an exact number >= 0."""
    if value is None:
        return default
    if isinstance(value, str) and value.strip().lower() in ("torch", "mup"):
        key = value.strip().lower()
        if key == "mup" and mup_value is None:
            raise invalid(name, value, "a number >= 0 or torch (mup needs --model-optimizer musgd and a base width)")
        return torch_value if key == "torch" else mup_value
    from polyloss.recipe import parse_variance

    return parse_variance(name, value)


def limit_spec(model: ImportedModel, recipe, input_bias_var=None, hidden_bias_var=None):
    """``(recipe, biases)`` for :func:`polyloss.derive.derive`: the exact infinite-width limit of the family of
    networks this model belongs to, trained by ``recipe`` (the model's recipe in polyloss's units). A bias trains
    when its layer does (as in :func:`augmented_network`); at its μP rate (input and hidden c·n, readout c) it
    stays in the limit, below it it freezes, above it there is no limit. The initial entry variances, declared
    (the init is not in the weights' statistics alone; :func:`check_limit_init` tests the declaration):
    ``input_bias_var`` a number or 'torch' (nn.Linear's U(±1/√d): 1/(3d), the default); ``hidden_bias_var`` a
    number, 'torch' (U(±1/√n): o(1), 0 in the limit) or 'mup' (``set_base_shapes`` rescales it to U(±1/√base):
    1/(3·base)); default 'mup' for MuSGD, else 'torch'. Whether the recipe itself has a limit is
    :func:`polyloss.derive.derive`'s to say."""
    from polyloss.recipe import LAYERS, Biases

    bz = model.biases
    if bz is None:
        return recipe, None
    d = model.weights.input_dim
    var = _declared_var(input_bias_var, Fraction(1, 3 * d), "input_bias_var", Fraction(1, 3 * d))
    mup_h = Fraction(1, 3 * model.base_width) if model.optimizer == "musgd" and model.base_width else None
    hvar = _declared_var(hidden_bias_var, mup_h if mup_h is not None else Fraction(0), "hidden_bias_var",
                         Fraction(0), mup_h)
    if bz["input"] is None:
        var = Fraction(0)
    if all(b is None for b in bz["hidden"]):
        hvar = Fraction(0)
    hidden = [b is not None for b in bz["hidden"]]
    if any(hidden) and not all(hidden):
        raise SpecError("`model` has biases on some hidden layers but not on others: the exact limit takes a bias on "
                        "every hidden layer or on none")
    present = {"input": bz["input"] is not None, "hidden": all(hidden) and bool(hidden), "readout": bz["readout"] is not None}
    rates = model.bias_rates()
    layers, scales = [], []
    for layer in LAYERS:
        c, g = rates[layer]
        scales.append(c)
        # the rate is c·n^-g: a larger g is slower
        if not present[layer] or layer not in recipe.trained or g > _MUP_BIAS_EXPONENT[layer]:
            continue  # no bias, a frozen layer's bias, or a rate below muP's: frozen in the limit
        if g < _MUP_BIAS_EXPONENT[layer]:
            raise SpecError(f"the {layer} bias of `model` trains at lr*{c}*n^{-g}, above its muP rate "
                            f"(n^{-_MUP_BIAS_EXPONENT[layer]}): no infinite-width limit in the lr")
        layers.append(layer)
    return recipe, Biases(tuple(layers), scales, var, hvar)


def check_limit_init(model: ImportedModel, input_bias_var=Fraction(0), z: float = 6.0, hidden_bias_var=Fraction(0)) -> list:
    """Check that ``model`` is initialised as the exact limit assumes — polyloss's μP: W_0 ~ (0, 1/d), W_ℓ ~
    (0, 1/n), V ~ (0, 1/n²) in effective weights, an input bias of entry variance ``input_bias_var`` — by the mean
    of the squared entries, within ``z`` standard errors under that hypothesis (entries of variance v have
    Var(w²) ≤ 2v² for Gaussian or uniform ones, so the mean of N squares has s.e. ≤ √2·v/√N); a one-line
    SpecError names the first layer that is off (torch's default U(±1/√fan_in) has a third of these variances).
    Hidden biases are checked against ``hidden_bias_var`` like the rest, or, when it is 0, must be o(1)
    (torch's default U(±1/√n), or 0): a mean squared entry more than z s.e. above 1/n is refused. So must the
    readout bias — mup's MuReadout rescales it to U(±1/√base), O(1), a random offset with no deterministic limit
    (zero it). Returns the checks [(name, measured, expected)]."""
    w = model.weights
    n, d = w.width, w.input_dim
    items = [("input weight", np.asarray(w.W0), Fraction(1, d))]
    items += [(f"hidden weight {k + 1}", np.asarray(W), Fraction(1, n)) for k, W in enumerate(w.hidden)]
    items.append(("readout (effective V)", np.asarray(w.V), Fraction(1, n * n)))
    small = []  # biases that must be o(1): at most variance 1/n
    if model.biases is not None:
        if model.biases["input"] is not None:
            items.append(("input bias", np.asarray(model.biases["input"]), Fraction(input_bias_var)))
        hb = [(f"hidden bias {k + 1}", np.asarray(b)) for k, b in enumerate(model.biases["hidden"]) if b is not None]
        if Fraction(hidden_bias_var):
            items += [(nm, b, Fraction(hidden_bias_var)) for nm, b in hb]
        else:
            small += hb
        if model.biases["readout"] is not None:
            small.append(("readout bias", np.asarray([model.biases["readout"]])))
    out = []
    for name, a in small:
        sq = np.square(a, dtype=np.float64).ravel()
        mean, bound = float(sq.mean()), (1.0 + z * np.sqrt(2.0 / sq.size)) / n
        out.append((name, mean, 1.0 / n))
        if mean > bound:
            raise SpecError(f"`model` at width {n}: the {name} has mean squared entry {mean:.4g}, above 1/n = {1 / n:.4g} "
                            f"(+{z:g} s.e.): the exact limit assumes hidden and readout biases of size o(1) (torch's "
                            "default U(-1/sqrt(n), 1/sqrt(n)), or 0; mup's MuReadout rescales its bias to O(1): zero it)")
    for name, a, v in items:
        sq = np.square(a, dtype=np.float64).ravel()
        mean, se = float(sq.mean()), float(np.sqrt(2.0) * float(v) / np.sqrt(sq.size))
        out.append((name, mean, float(v)))
        if abs(mean - float(v)) > z * se + 1e-12 * float(v):
            raise SpecError(f"`model` at width {n}: the {name} has mean squared entry {mean:.4g}, not {float(v):.4g} "
                            f"(+-{z:g} s.e. = {z * se:.2g}): the exact limit assumes polyloss's muP initialisation "
                            "(W0 ~ N(0, 1/d), hidden ~ N(0, 1/n), effective readout ~ N(0, 1/n^2)"
                            + (", bias variances as declared" if "bias" in name else "")
                            + "); re-initialise the model (docs/interop.md) or use the extrapolated limit")
    return out


#: Loss conventions: polyloss's (1/2m)Σ(f − y)² and PyTorch's nn.MSELoss (1/m)Σ(f − y)², twice it.
LOSSES = ("half-mse", "mse")


@dataclass(frozen=True)
class LossConvention:
    """How a user's loss and learning rate map to polyloss's (:func:`loss_convention`).

    polyloss computes 𝓛 = (1/2m)Σ(f − y)² after GD at η. Under ``mse`` (torch's MSELoss, 2𝓛) the gradient
    is twice polyloss's, so GD at the user's lr is polyloss's GD at η = 2·lr, and the user's loss is 2𝓛:
    𝓛_mse(lr) = 2·𝓛(2·lr), coefficient k times 2^(k+1). Coupled (l2), decoupled and torch weight decay
    ω_user act as polyloss's ω = ω_user/2 at η = 2·lr (independent decay is unchanged). Adam divides by
    the gradient's scale: η = lr (ε becomes ε/2)."""

    loss: str = "half-mse"
    eta_factor: float = 1.0  # polyloss's η = eta_factor · the user's lr
    loss_factor: float = 1.0  # the user's loss = loss_factor · 𝓛

    def internal_recipe(self, recipe):
        """``recipe`` with the weight decay the user gave mapped to polyloss's (ω/2 for mse GD)."""
        import dataclasses

        if self.eta_factor == 1.0 or recipe.weight_decay == 0 or recipe.wd_mode == "independent":
            return recipe
        return dataclasses.replace(recipe, weight_decay=recipe.weight_decay / 2)

    def to_json(self) -> dict:
        return {"loss": self.loss, "eta_factor": self.eta_factor, "loss_factor": self.loss_factor,
                "meaning": "polyloss eta = eta_factor * lr; reported loss = loss_factor * (1/2m) sum (f - y)^2"}


def poly_doc_in_user_units(doc: dict, conv: LossConvention) -> dict:
    """A ``polyloss.poly/3`` document (:meth:`polyloss.poly.PolyResult.to_json`, computed at polyloss's
    η = a·lr with the internal recipe) in the user's units: 𝓛_user(lr) = b·𝓛(a·lr), so loss coefficient
    k (and its bound) × b·a^k, f coefficient k × a^k, learning rates / a, losses × b (a, b powers of 2:
    exact). Adds ``convention`` (:meth:`LossConvention.to_json`)."""
    a, b = conv.eta_factor, conv.loss_factor
    out = dict(doc)
    out["convention"] = conv.to_json()
    if a == 1.0 and b == 1.0:
        return out

    def scale(seq, first, ratio):
        return None if seq is None else [None if c is None else c * first * ratio**k for k, c in enumerate(seq)]

    out["loss_coefficients"] = scale(doc["loss_coefficients"], b, a)
    out["loss_coefficient_errors"] = scale(doc.get("loss_coefficient_errors"), b, a)
    out["f_coefficients"] = [scale(row, 1.0, a) for row in doc["f_coefficients"]]
    if doc.get("f_coefficient_errors") is not None:
        out["f_coefficient_errors"] = [scale(row, 1.0, a) for row in doc["f_coefficient_errors"]]
    acc = dict(doc["coefficient_accuracy"])
    if acc.get("monomial_error_at_eta_opt") is not None:
        acc["monomial_error_at_eta_opt"] *= b
    out["coefficient_accuracy"] = acc
    eta = lambda v: None if v is None else v / a  # noqa: E731
    loss = lambda v: None if v is None else v * b  # noqa: E731
    out["eta_opt"], out["loss_at_eta_opt"] = eta(doc["eta_opt"]), loss(doc["loss_at_eta_opt"])
    out["window"], out["requested_window"] = eta(doc["window"]), eta(doc.get("requested_window"))
    out["local_minima"] = [dict(lm, eta=eta(lm["eta"]), loss=loss(lm["loss"])) for lm in doc["local_minima"]]
    out["eval"] = [dict(e, eta=eta(e["eta"]), loss=loss(e["loss"])) for e in doc["eval"]]
    return out


def loss_convention(loss: str = "half-mse", optimizer: str = "gd") -> LossConvention:
    """The :class:`LossConvention` of ``loss`` ('half-mse' or 'mse') for ``optimizer`` ('gd' or 'adam')."""
    if loss not in LOSSES:
        raise invalid("loss", loss, "one of " + ", ".join(LOSSES) + " (mse: PyTorch's nn.MSELoss, twice polyloss's loss)")
    if loss == "half-mse":
        return LossConvention()
    return LossConvention("mse", 1.0 if optimizer == "adam" else 2.0, 2.0)


def _as_arrays(state: dict) -> dict:
    """A dict of array-likes as float64 arrays: a non-numeric or non-finite entry is refused in one line."""
    out = {}
    for k, v in state.items():
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise invalid(f"model[{k!r}]", v, "an array of numbers") from None
        if not np.all(np.isfinite(a)):
            raise invalid(f"model[{k!r}]", "an array with NaN or infinity", "finite numbers")
        out[str(k)] = a
    return out


def read_base_shapes(path) -> dict:
    """``{name: [dim or None, ...]}`` from a mup base-shape file (``mup.make_base_shapes(..., savefile=)``: YAML lines
    ``name:`` then ``- 8`` / ``- null``, or ``name: [8, null]``), read without a YAML library; one-line errors."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise invalid("base_shapes", path, "an existing mup base-shape file (mup.make_base_shapes(..., savefile=...))")
    shapes, current = {}, None

    def dim(tok: str, line: int):
        tok = tok.strip()
        if tok in ("null", "~", ""):
            return None
        if tok.isdigit():
            return int(tok)
        raise DataError(f"{path}, line {line}: {tok!r} is not a dimension (an integer or null)")

    with open(path) as fh:
        for i, raw in enumerate(fh, start=1):
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            if line.lstrip().startswith("- "):
                if current is None:
                    raise DataError(f"{path}, line {i}: a dimension before any parameter name")
                shapes[current].append(dim(line.lstrip()[2:], i))
            elif ":" in line:
                name, _, rest = line.partition(":")
                current = name.strip()
                rest = rest.strip()
                shapes[current] = ([dim(t, i) for t in rest.strip("[]").split(",")] if rest.startswith("[") else [])
            else:
                raise DataError(f"{path}, line {i}: not a base-shape entry ({line.strip()!r})")
    if not shapes:
        raise DataError(f"{path}: no parameter shapes (not a mup base-shape file)")
    return shapes


def base_width_from_shapes(shapes: dict, lay: "Layout") -> int:
    """The base width of the hidden layers from a base-shape dict (:func:`read_base_shapes`)."""
    for name in (*lay.hidden, lay.input):
        dims = [d for d in shapes.get(name, []) if d is not None]
        if dims:
            return int(dims[0])
    raise DataError(f"the base-shape file has no width for {', '.join((*lay.hidden, lay.input))}")


def import_model(source, *, layout: str | None = None, optimizer: str = "sgd", base_width=None,
                 output_mult=1, base_shapes=None) -> ImportedModel:
    """Read ``source`` (a path to a .safetensors/.npz state_dict, or a dict of arrays) and map it.

    ``source`` may also be a live ``torch.nn.Module`` (its ``state_dict()``; torch is not imported here).
    ``optimizer``: 'sgd' (torch SGD, plain nn.Linear layers), 'musgd' or 'muadam' (mup: the readout is a
    MuReadout; ``base_width`` — the width of the base model given to ``set_base_shapes`` — or ``base_shapes``, mup's
    base-shape file, is required, and ``output_mult`` is MuReadout's)."""
    if hasattr(source, "state_dict") and callable(source.state_dict):  # a torch module
        source = {k: (v.detach().cpu().double().numpy() if hasattr(v, "detach") else v)
                  for k, v in source.state_dict().items()}
    state = read_state_dict(source) if not isinstance(source, dict) else _as_arrays(source)
    if optimizer not in OPTIMIZERS:
        raise invalid("optimizer", optimizer, "one of " + ", ".join(OPTIMIZERS))
    try:
        om = Fraction(str(output_mult))
    except (ValueError, ZeroDivisionError):
        raise invalid("output_mult", output_mult, "a number > 0") from None
    if om <= 0:
        raise invalid("output_mult", output_mult, "a number > 0")
    lay = infer_layout(state, layout)
    n, d = state[lay.input].shape
    notes = [f"input layer W_0 = {lay.input} ({n}×{d})",
             f"hidden layers W_1..W_{len(lay.hidden)} = " + ", ".join(lay.hidden)]
    biases, kept = {"input": None, "hidden": [None] * len(lay.hidden), "readout": None}, False
    for k, name in enumerate(lay.names):
        bias = name[: -len("weight")] + "bias"
        if bias in state:
            b = np.asarray(state[bias], dtype=np.float64).reshape(-1)
            if b.size != (1 if name == lay.readout else n):
                raise DataError(f"the bias {bias!r} has {b.size} entries, not {1 if name == lay.readout else n}")
            if name == lay.readout:
                biases["readout"] = float(b[0])
            elif name == lay.input:
                biases["input"] = b.copy()
            else:
                biases["hidden"][k - 1] = b.copy()
            kept = True
            notes.append(f"{bias}: kept as a bias (max |b| = {np.max(np.abs(b)):.3g})")
    biases["hidden"] = tuple(biases["hidden"])
    extra = sorted(set(state) - set(lay.names) - {nm[: -len('weight')] + 'bias' for nm in lay.names})
    if extra:
        raise SpecError(f"`model` has entries polyloss does not know how to map: {', '.join(extra[:4])}"
                        f"{'…' if len(extra) > 4 else ''} (an MLP is input → hidden … → readout; declare --layout)")
    V = state[lay.readout][0].copy()
    base = None
    if base_shapes is not None:
        found = base_width_from_shapes(read_base_shapes(base_shapes), lay)
        if base_width is not None and base_width != found:
            raise invalid("base_width", base_width, f"the base-shape file's width {found} (or leave it out)")
        base_width = found
        notes.append(f"base width {found} from the base-shape file {os.fspath(base_shapes)}")
    if optimizer in ("musgd", "muadam"):
        if base_width is None:
            raise SpecError(f"`base_width` is required with optimizer {optimizer!r}: the width of the base model "
                            "given to mup.set_base_shapes (or its base-shape file)")
        if isinstance(base_width, bool) or not isinstance(base_width, (int, np.integer)) or base_width < 1:
            raise invalid("base_width", base_width, "an integer >= 1")
        base = int(base_width)
        wm = Fraction(n, base)
        V = V * float(om / wm)
        notes.append(f"readout V = {lay.readout} · output_mult/width_mult = {lay.readout} · {om}/({n}/{base})")
    else:
        if om != 1:
            raise invalid("output_mult", output_mult, "1 with optimizer 'sgd' (a plain nn.Linear readout)")
        notes.append(f"readout V = {lay.readout}")
    w = Weights(state[lay.input].copy(), tuple(state[h].copy() for h in lay.hidden), V)
    return ImportedModel(w, lay, optimizer, base, om, tuple(notes), biases if kept else None)
