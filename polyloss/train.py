"""Actual training of one network at many learning rates at once (the engine behind ``polyloss sweep``).

No polynomial is involved: :func:`sweep_network` runs the optimizer itself, for every η of a grid together,
and returns the training loss at every step. :mod:`polyloss.sweep` runs it over widths and seeds into a
resumable run directory.

Network (THEORY §1, with an optional non-linearity): ``h_0 = W_0 x``, ``h_ℓ = W_ℓ φ(h_{ℓ−1})``
(ℓ = 1..L), ``f(x) = Vᵀ φ(h_L)``, with φ = identity (``activation='linear'``, the deep linear MLP
of the rest of polyloss) or ReLU (``'relu'``, φ'(0) := 0). ``W_0`` and ``V`` are frozen; the hidden
``W_1..W_L`` are trained on ``𝓛 = (1/2m) Σ_i (f(x_i) − y_i)²``, all layers updated simultaneously.

Optimizers (hidden learning rate = η × a width multiplier):

* ``gd``: ``W_ℓ ← W_ℓ − η λ ∇_{W_ℓ}𝓛`` with ``λ = param.lr_multiplier(n) = n^{-γ}`` (μP/SP: 1,
  NTP: 1/n), exactly as :func:`polyloss.gd.gd_train` (linear + GD coincides with it).
* ``adam``: full-batch Adam, ``m ← β1 m + (1−β1) g``, ``v ← β2 v + (1−β2) g²``,
  ``W ← W − η κ_n · m̂ / (√v̂ + ε)`` with ``m̂ = m/(1−β1^k)``, ``v̂ = v/(1−β2^k)`` (k = 1, 2, …),
  β1 = 0.9, β2 = 0.999, ε = ``adam_eps`` (default 1e-8), state initialised to 0. The width
  multiplier is ``κ_n = n^{-adam_exponent}``; Adam's update is invariant to the gradient's scale,
  so it is *not* the GD multiplier:

  - μP: ``κ_n = 1/n`` = 1/fan_in (μP-Adam, Tensor Programs V, Table 3: hidden learning rate η/fan_in);
  - SP: ``κ_n = 1`` (plain Adam on the effective weights);
  - NTP: ``κ_n = 1/√n`` — the consistent rule: NTP's effective weight is ``W = w/√n`` with raw
    ``w ~ N(0, 1)`` trained at learning rate η, and Adam's raw step of size ~η per entry moves
    ``W`` by ~η/√n;
  - a custom ``ALPHA,GAMMA`` parametrization does not determine the Adam rule (the GD multiplier
    fixes only 2a + c in abc-terms, Adam needs a + c), so ``adam_exponent`` must be given;
    it may also override the preset's exponent.

  ε is added to √v̂ on the *effective* weights' gradient; under μP hidden gradients have small
  entries at large n, so ε = 1e-8 is not negligible there — hence the option.

Training recipes (``recipe``, :mod:`polyloss.recipe`): trained layers (W_0, the hidden W_ℓ, V),
per-layer rates ``η ρ_s λ_ℓ``, schedule, weight decay (l2/decoupled/independent) and (Nesterov)
momentum, exactly as :func:`polyloss.gd_recipe.train`, with dense per-η weights and one buffer per
trained matrix (:func:`_train_recipe`); with φ = ReLU the gradients carry φ' as above. The plain
recipe runs the trainers below unchanged (bit for bit). With ``optimizer='adam'`` a recipe trains
its layers with Adam at rates η ρ_s n^-κ_ℓ: the recipe's explicit ``lr_exponents`` are the κ_ℓ, else
μP-Adam's (0, 1, 1) — input η, hidden and readout η/fan_in, as mup.MuAdam in effective weights —
SP's (0, 0, 0) or NTP's (0, ½, ½) (:data:`ADAM_LAYER_EXPONENTS`); ``l2`` decay enters the
gradient before Adam's moments (PyTorch Adam(weight_decay)), ``decoupled`` scales W by 1 − ηρ_sω
(AdamW with the base rate, not the layer's), ``independent`` by 1 − ω and ``torch`` by 1 − ηρ_sκ_ℓω
(PyTorch's AdamW with each layer's Adam rate in its parameter group, as mup.MuAdamW: under μP-Adam
the hidden layers' decay fades like 1/n); momentum must be 0.

Minibatches (``batch`` B < m): step k's gradient is that of the rows ``batch_schedule(...)[k]``
with 1/B in place of 1/m — consecutive slices of seeded random permutations of the m rows, a new
one each epoch, drawn from ``SeedSequence(seed, spawn_key=(0, sample))``: the same data order at
every width and every η, another per sample. The recorded loss is always the full-data loss.

Init gain (``init_gain``): W_0 and the hidden layers drawn with standard deviation gain/√fan_in
(the networks of ``polyloss sample`` times the gain; V unchanged): '1' (default), 'he' (√2),
'torch' (1/√3, PyTorch's nn.Linear default) or a number. For ReLU and GD a gain g is only a
rescaling: it equals gain 1 at η·g^{2L} on y/g^{L+1}, with losses times g^{2(L+1)} (tested).
RMSNorm (``norm``, Lingle's trainable-gain ablation): 'rms' puts z = γ ⊙ a/√(mean_j a_j² + ε)
(ε = the dtype's machine epsilon, as PyTorch's RMSNorm) before every hidden layer and before the
readout, with gain vectors γ starting at 1 and trained at the input layer's rate (vector-like
parameters: μP-SGD ×n, μP-Adam ×1) and never decayed; 'rms-fixed' keeps γ = 1. Trained densely
through the recipe trainer (any optimizer); the loss is no longer a polynomial in η.

Readout initialisation (``readout_init``): 'param' (default, V ~ N(0, n^-α) as the parametrization
says) or 'zero' (V = 0, one of Lingle's μ-transfer ablations; it needs a recipe that trains the
readout, since with V = 0 every other layer's gradient vanishes until V moves).

Alignment diagnostics (``alignment=True``; Kosson et al. 2025): for every trained layer with
weights W, input X (the layer's input on all m rows) and update ΔW = W_{s+1} − W_s (decay
included), at steps s = 0, 1, 3, 7, … and the last (:func:`alignment_steps`): the relative update
‖ΔW‖/‖W‖, the relative representation change ‖XΔWᵀ‖/‖XWᵀ‖ and the alignments
α_W = ‖XWᵀ‖/(‖W‖‖X‖) and α_ΔW = ‖XΔWᵀ‖/(‖ΔW‖‖X‖) (Frobenius norms). μP assumes α_ΔW = Θ(1) and
α_W = Θ(n^{-1/2}) (a random W does not align with its input, a gradient update does).

Vectorisation: all learning rates of one network are trained together along a leading η axis,
chunked so that one chunk fits ``memory_mb``. Step 0 is the same network for every η, so its
forward/backward pass is done once and broadcast. Learning rates that diverge are dropped from the
batch. Two methods (``method``):

* ``dense``: per-η hidden weight matrices (E × n × n), batched matmuls. Needed for Adam. For
  linear + GD it performs exactly the floating-point operations of :func:`polyloss.gd.gd_train`
  (bit-identical losses), and records do not depend on the chunk size.
* ``lowrank`` (GD only): a GD update ``∇_{W_ℓ}𝓛 = Σ_i δ_i φ(h_{ℓ−1}(x_i))ᵀ`` has rank <= m, so after k
  steps ``W_ℓ^{(k)} = W_ℓ − Σ_{s<k} P_sᵀ Q_s`` with m × n factors per η; the shared ``W_ℓ`` is
  applied to all η at once as one large matrix product. Costs ~t·m·n instead of n² memory per η
  and is several times faster when t·m ≪ n; equal to ``dense`` up to rounding (~1e-15 relative).
* ``auto`` (default): ``lowrank`` for GD when ``steps · m <= 2 n``, else ``dense``.

Divergence: a loss that overflows or becomes NaN (overflow of the weights) is recorded as ``+inf``
at that step and every later step; training at that η stops. No NaN is ever recorded, and no
floating-point warning escapes. In ``records.jsonl`` +inf is stored as JSON ``null`` (strict
JSON); :func:`load_sweep` turns ``null`` back into ``inf``.

"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

import numpy as np

from polyloss._backend import to_host
from polyloss.data import Dataset
from polyloss.errors import SpecError, invalid
from polyloss.spec import Parametrization
from polyloss.weights import Weights

ACTIVATIONS = ("linear", "relu")
OPTIMIZERS = ("gd", "adam")
DTYPES = ("float64", "float32")
METHODS = ("auto", "dense", "lowrank")
ADAM_BETAS = (0.9, 0.999)
DEFAULT_ADAM_EPS = 1e-8
DEFAULT_MEMORY_MB = 1024.0
#: Adam width exponent κ (hidden learning rate η · n^-κ) per preset parametrization.
ADAM_EXPONENTS = {"mup": Fraction(1), "sp": Fraction(0), "ntp": Fraction(1, 2)}
#: Adam per-layer width exponents (κ_in, κ_hid, κ_out), rates η·n^-κ, of a recipe whose lr_exponents are not
#: given: μP-Adam (Tensor Programs V; mup.MuAdam in effective weights) trains the input at η and the hidden
#: and readout layers at η/fan_in; SP trains everything at η; NTP at η/√fan_in beyond the input (fan_in d fixed).
ADAM_LAYER_EXPONENTS = {"mup": (Fraction(0), Fraction(1), Fraction(1)), "sp": (Fraction(0),) * 3,
                        "ntp": (Fraction(0), Fraction(1, 2), Fraction(1, 2))}
READOUT_INITS = ("param", "zero")
NORMS = ("none", "rms", "rms-fixed")
#: At most this many learning rates in one grid.
MAX_ETAS = 100_000
_ETAS_VALID = ("'lin:START:STOP:COUNT' (0 <= START < STOP), 'log:START:STOP:COUNT' (0 < START < STOP), 2 <= COUNT <= "
               "100000, or a comma list of distinct finite numbers >= 0")


# ----------------------------------------------------------------------------------------- inputs
def parse_etas(value) -> np.ndarray:
    """The η grid, sorted ascending, float64.

    ``value`` is ``'lin:START:STOP:COUNT'`` (``numpy.linspace``, 0 <= START < STOP), ``'log:START:STOP:COUNT'``
    (``numpy.geomspace``, 0 < START < STOP), a comma list ``'0.1,0.2,0.5'`` or a sequence of numbers
    (finite, >= 0, distinct). COUNT >= 2.

    Example:
      >>> parse_etas("lin:0:1:5").tolist()
      [0.0, 0.25, 0.5, 0.75, 1.0]
    """

    def bad() -> SpecError:
        return invalid("etas", value, _ETAS_VALID)

    if isinstance(value, str):
        text = value.strip()
        head = text.split(":", 1)[0].strip().lower()
        if head in ("lin", "log"):
            parts = text.split(":")
            if len(parts) != 4:
                raise bad()
            try:
                start, stop = float(parts[1]), float(parts[2])
                count = int(parts[3])
            except ValueError:
                raise bad() from None
            if not (math.isfinite(start) and math.isfinite(stop) and 2 <= count <= MAX_ETAS and start < stop and start >= 0):
                raise bad()
            if head == "log" and start <= 0:
                raise bad()
            grid = np.linspace(start, stop, count) if head == "lin" else np.geomspace(start, stop, count)
            grid[0], grid[-1] = start, stop
            return grid
        items = [s.strip() for s in text.split(",")]
        if not text or any(not s for s in items):
            raise bad()
        try:
            vals = [float(s) for s in items]
        except ValueError:
            raise bad() from None
    else:
        try:
            vals = list(np.atleast_1d(np.asarray(value)).ravel())
        except Exception:
            raise bad() from None
        if not vals or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.integer, np.floating)) for v in vals):
            raise bad()
        vals = [float(v) for v in vals]
    arr = np.asarray(vals, dtype=np.float64)
    if arr.size > MAX_ETAS:
        raise bad()
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.unique(arr).size != arr.size:
        raise bad()
    return np.sort(arr)


def _check_choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise invalid(name, value, "one of " + ", ".join(map(repr, choices)))
    return value.lower()


def _check_positive(name: str, value, allow_zero: bool = False) -> float:
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool):
        raise invalid(name, value, f"a finite number {bound}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise invalid(name, value, f"a finite number {bound}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise invalid(name, value, f"a finite number {bound}")
    return v


def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise invalid(name, value, f"an integer >= {minimum}")
    return int(value)


def adam_exponent_for(param: Parametrization, exponent=None) -> Fraction:
    """κ in Adam's hidden learning rate η · n^-κ: ``exponent`` if given, else the preset's rule."""
    if exponent is not None:
        from polyloss.spec import EXPONENT_VALID, check_exponent

        try:
            return check_exponent("adam_exponent", exponent)
        except SpecError:
            raise invalid("adam_exponent", exponent, EXPONENT_VALID + ", e.g. 1 (muP), 0 (SP), 1/2 (NTP)") from None
    if param.name in ADAM_EXPONENTS:
        return ADAM_EXPONENTS[param.name]
    raise SpecError(
        f"`adam_exponent` is required with optimizer 'adam' and the custom parametrization "
        f"({param.alpha},{param.gamma}): give the hidden Adam learning rate eta*n^-K (muP: 1, SP: 0, NTP: 1/2)"
    )


# ----------------------------------------------------------------------------------------- training
def _per_eta_bytes(n: int, m: int, depth: int, steps: int, method: str, adam: bool, itemsize: int) -> int:
    """Peak memory per learning rate of the batched trainers (weights or factors, state, temporaries)."""
    vecs = 2 * depth + 6  # pre-/post-activations, deltas, temporaries (m × n each)
    if method == "lowrank":
        return itemsize * (2 * depth * steps * m * n + vecs * m * n + 4 * m * m + 8 * m)
    mats = depth * (3 if adam else 1) + 3  # weights (+ Adam m, v) + gradient + update temporaries
    return itemsize * (mats * n * n + vecs * m * n + 8 * m)


def _chunk_size(n, m, depth, steps, method, adam, itemsize, memory_mb) -> int:
    return max(1, int(memory_mb * 2**20 // _per_eta_bytes(n, m, depth, steps, method, adam, itemsize)))


def choose_method(method: str, optimizer: str, width: int, m: int, steps: int) -> str:
    """'dense' or 'lowrank' for ``method='auto'``: low rank for GD when ``steps · m <= 2 n``."""
    method = _check_choice("method", method, METHODS)
    if method == "lowrank" and optimizer != "gd":
        raise invalid("method", method, "'auto' or 'dense' with optimizer 'adam' (Adam updates are not low rank)")
    if method != "auto":
        return method
    return "lowrank" if optimizer == "gd" and steps * m <= 2 * width else "dense"


def _cost(method: str, n: int, m: int, steps: int, n_eta: int) -> float:
    """Relative cost of one record, for the progress bar: dense trains one n×n matrix per η (m n² per
    product); low rank shares one m n² gemm and adds m² n per η and step."""
    if method == "dense":
        return float(n_eta) * m * n * n
    return float(m) * n * n + float(n_eta) * steps * m * m * n


def _record_loss(out, alive, k: int, r, m: int):
    """Store the step-``k`` loss (r·r / 2m, as gd.py) of the live learning rates ``alive`` (rows of the
    residuals ``r``) in ``out``; return the finite mask, or None when the shared step-0 network
    (one row for every η) already overflowed."""
    loss = to_host((r[:, None, :] @ r[:, :, None])[:, 0, 0] / (2 * m)).astype(np.float64)
    ok = np.isfinite(loss)
    if k == 0:
        if not ok[0]:
            return None
        out[:, 0] = loss[0]
    else:
        out[alive[ok], k] = loss[ok]
    return ok


def _prune(xp, ok, alive, arrays):
    """Keep the learning rates with a finite loss; ``arrays``: groups of 3-D arrays whose leading axis
    is the batch (size ``alive.size``) or 1 (shared by every η, left alone)."""
    B = alive.size
    keep_h = np.nonzero(ok)[0]
    keep = xp.asarray(keep_h)
    cut = lambda a: a[keep] if (B > 1 and a.shape[0] == B) else a  # noqa: E731
    return alive[keep_h], keep, [[cut(a) for a in group] for group in arrays]


def _rows(arrays, ib):
    """The rows ``ib`` (the minibatch) of each (..., m, n) array."""
    return [a[..., ib, :] for a in arrays]


ALIGNMENT_METRICS = ("rel_update", "rel_repr", "align_w", "align_dw")


def alignment_steps(steps: int) -> list[int]:
    """The steps whose update the alignment diagnostics record: 0, 1, 3, 7, … (2^j − 1) and the last."""
    out, j = [], 1
    while j - 1 < steps:
        out.append(j - 1)
        j *= 2
    return sorted(set(out) | {steps - 1})


def _fro(xp, a):
    """Frobenius norm over the last two axes (one per η)."""
    return xp.sqrt(xp.sum(a * a, axis=(-2, -1)))


def _alignment(xp, Xin, W, dW, E: int) -> np.ndarray:
    """(E, 4): ‖ΔW‖/‖W‖, ‖ΔW X‖/‖W X‖, α_W = ‖W X‖/(‖W‖‖X‖), α_ΔW = ‖ΔW X‖/(‖ΔW‖‖X‖) (Frobenius; X the
    layer's input on all data, rows = samples). ``W`` (E or 1, out, in), ``dW`` (E, out, in), ``Xin``
    (E or 1, m, in) or (m, in)."""
    nX = _fro(xp, Xin)
    nW, ndW = _fro(xp, W), _fro(xp, dW)
    nXW, nXdW = _fro(xp, Xin @ W.transpose(0, 2, 1)), _fro(xp, Xin @ dW.transpose(0, 2, 1))
    vals = [ndW / nW, nXdW / nXW, nXW / (nW * nX), nXdW / (ndW * nX)]
    return np.stack([np.broadcast_to(to_host(v).astype(np.float64).reshape(-1), (E,)) for v in vals], axis=1)


def _adam_step(xp, m_hat, root_v, eps: float):
    """Adam's direction m̂/(√v̂ + ε); with ε = 0 (sign descent at the first step) an entry whose v̂ is 0
    (its gradient has always been 0) does not move, instead of 0/0."""
    if eps > 0:
        return m_hat / (root_v + eps)
    return xp.where(root_v > 0, m_hat / xp.where(root_v > 0, root_v, 1.0), 0.0)


def _train_lowrank(xp, W0, hidden0, V, X, y, lr, steps, relu, out, idx=None):
    """GD on the η batch without per-η weight matrices (every GD update is rank <= m).

    ``W_ℓ^{(k)} = W_ℓ − Σ_{s<k} P_sᵀ Q_s`` with ``P_s = δ_ℓ^{(s)}`` (m × n) and ``Q_s = λη φ(h_{ℓ−1}^{(s)})``,
    so ``a W^{(k)ᵀ} = a W_ℓᵀ − Σ (a Q_sᵀ) P_s`` (one shared gemm plus m × m products) and
    ``δ W^{(k)} = δ W_ℓ − Σ (δ P_sᵀ) Q_s``. Same arithmetic as GD up to rounding (~1e-16 relative).
    """
    E = int(lr.shape[0])
    m, n = X.shape[0], W0.shape[0]
    alive = np.arange(E)
    lr3 = lr[:, None, None]
    h0 = X @ W0.T
    a0 = xp.maximum(h0, 0) if relu else h0
    h1 = a0 @ hidden0[0].T  # the shared part of layer 1
    Lh = len(hidden0)
    P = [[] for _ in range(Lh)]
    Q = [[] for _ in range(Lh)]

    def gemm(a, W, transpose):
        flat = a.reshape(-1, n)
        return (flat @ (W.T if transpose else W)).reshape(a.shape)

    for k in range(steps + 1):
        pre, acts = [], [a0]
        for l, W in enumerate(hidden0):
            a = acts[-1]
            h = h1[None] if l == 0 else gemm(a, W, True)
            for Ps, Qs in zip(P[l], Q[l]):
                h = h - (a @ Qs.transpose(0, 2, 1)) @ Ps
            pre.append(h)
            acts.append(xp.maximum(h, 0) if relu else h)
        r = acts[-1] @ V - y
        ok = _record_loss(out, alive, k, r, m)
        if ok is None or k == steps:
            return
        if k > 0 and not ok.all():
            alive, keep, (pre, acts1, [lr3], *PQ) = _prune(xp, ok, alive, [pre, acts[1:], [lr3]] + P + Q)
            acts, r = [a0] + acts1, r[keep]
            P, Q = PQ[:Lh], PQ[Lh:]
            if alive.size == 0:
                return
        if idx is not None:  # the gradient of this step's minibatch
            r, pre, acts = r[:, idx[k]], _rows(pre, idx[k]), _rows(acts, idx[k])
        delta = (r / r.shape[1])[:, :, None] * V
        if relu:
            delta = delta * (pre[-1] > 0)
        for l in range(Lh, 0, -1):
            newP, newQ = delta, lr3 * acts[l - 1]
            if l > 1:
                nd = gemm(delta, hidden0[l - 1], False)
                for Ps, Qs in zip(P[l - 1], Q[l - 1]):
                    nd = nd - (delta @ Ps.transpose(0, 2, 1)) @ Qs
                delta = nd * (pre[l - 2] > 0) if relu else nd
            P[l - 1].append(newP)
            Q[l - 1].append(newQ)


def _train_chunk(xp, W0, hidden0, V, X, y, lr, steps, relu, adam, eps, out, idx=None, diag=None):
    """Train one chunk of learning rates; write losses (E, steps+1) into the host array ``out``.

    ``lr`` (E,) holds the effective hidden learning rates (η × width multiplier) on ``xp``;
    ``idx``: None (full batch) or the minibatch rows of each step (steps × B, on ``xp``).
    ``diag``: None, or a host array (E, L, len(alignment_steps), 4) filled with the alignment
    diagnostics of each hidden layer's update at :func:`alignment_steps` (NaN where diverged).
    """
    E = int(lr.shape[0])
    logged = {k: j for j, k in enumerate(alignment_steps(steps))} if diag is not None else {}
    m = X.shape[0]
    b1, b2 = ADAM_BETAS
    alive = np.arange(E)
    lr3 = lr[:, None, None]
    hidden = [W[None] for W in hidden0]  # leading η axis; size 1 while every η is the same network
    h0 = X @ W0.T
    a0 = xp.maximum(h0, 0) if relu else h0
    mom = vel = None
    for k in range(steps + 1):
        pre, acts = [], [a0]
        for W in hidden:
            h = acts[-1] @ W.transpose(0, 2, 1)
            pre.append(h)
            acts.append(xp.maximum(h, 0) if relu else h)
        f = acts[-1] @ V
        r = f - y
        ok = _record_loss(out, alive, k, r, m)
        if ok is None or k == steps:
            return
        if k > 0 and not ok.all():
            keep_h = np.nonzero(ok)[0]
            alive = alive[keep_h]
            if alive.size == 0:
                return
            keep = xp.asarray(keep_h)
            hidden = [W[keep] for W in hidden]
            pre = [h[keep] for h in pre]
            acts = [acts[0]] + [a[keep] for a in acts[1:]]
            r = r[keep]
            lr3 = lr3[keep]
            if adam:
                mom = [a[keep] for a in mom]
                vel = [a[keep] for a in vel]
        inputs = acts  # every layer's input on all data, for the diagnostics
        if idx is not None:  # the gradient of this step's minibatch
            r, pre, acts = r[:, idx[k]], _rows(pre, idx[k]), _rows(acts, idx[k])
        # backward, updating W_ℓ right after its gradient (delta_{ℓ-1} uses the old W_ℓ)
        delta = (r / r.shape[1])[:, :, None] * V
        if relu:
            delta = delta * (pre[-1] > 0)
        if adam:
            c1, c2 = 1.0 - b1 ** (k + 1), 1.0 - b2 ** (k + 1)
            if mom is None:
                mom, vel = [None] * len(hidden), [None] * len(hidden)
        for l in range(len(hidden), 0, -1):
            a_prev = acts[l - 1]
            g = delta.transpose(0, 2, 1) @ a_prev
            if l > 1:
                delta = delta @ hidden[l - 1]
                if relu:
                    delta = delta * (pre[l - 2] > 0)
            if adam:
                i = l - 1
                if mom[i] is None:
                    mom[i] = (1.0 - b1) * g
                    vel[i] = (1.0 - b2) * (g * g)
                else:
                    mom[i] *= b1
                    mom[i] += (1.0 - b1) * g
                    vel[i] *= b2
                    vel[i] += (1.0 - b2) * (g * g)
                upd = _adam_step(xp, mom[i] / c1, xp.sqrt(vel[i] / c2), eps)
                upd = lr3 * upd
            else:
                upd = lr3 * g
            if k in logged:  # ΔW = −upd, before W_ℓ changes
                diag[alive, l - 1, logged[k]] = _alignment(xp, inputs[l - 1], hidden[l - 1], upd, alive.size)
            if k > 0:  # in place on our own batched copy
                hidden[l - 1] -= upd
            else:  # never write into the caller's weights; broadcasts to the η axis
                hidden[l - 1] = hidden[l - 1] - upd
            del g, upd
        if adam and mom[0].shape[0] != hidden[0].shape[0]:  # step 0: the state is shared
            mom = [xp.broadcast_to(a, hidden[0].shape).copy() for a in mom]
            vel = [xp.broadcast_to(a, hidden[0].shape).copy() for a in vel]


def _train_recipe(xp, W0, hidden0, V, X, y, etas, steps, relu, recipe, lam, out, idx=None, diag=None, adam=None,
                  norm=None):
    """GD on the η batch under a training recipe (:mod:`polyloss.recipe`), dense per-η weights.

    ``etas`` (E,) are the base learning rates on ``xp``; ``lam`` the per-layer multipliers
    ``{layer: λ_ℓ}`` of the trained layers. Every trained layer (W_0 (E×n×d), W_1..W_L (E×n×n),
    V (E×n)) is updated simultaneously from the weights of step s by exactly the rules of
    :func:`polyloss.gd_recipe.train`: ``l2`` adds ωW to the gradient, the momentum buffer
    ``v ← βv + g`` (``v = g`` at s = 0) gives the direction ``v`` or ``g + βv`` (Nesterov), the
    step is ``ηρ_sλ_ℓ · direction``, and ``decoupled``/``independent`` first scale W by
    ``1 − ηρ_sω`` / ``1 − ω``. Untrained layers stay shared (leading axis 1) and are never decayed.
    Losses (E, steps+1) go into the host array ``out`` (+inf where not finite). ``diag``: None or a
    host array (E, trained layers in the order input, hidden…, readout, len(alignment_steps), 4) for
    the alignment diagnostics of each trained layer's whole change W_{s+1} − W_s (decay included).

    ``adam``: None (GD) or Adam's ε: the direction is then Adam's m̂/(√v̂ + ε) of g (β = ADAM_BETAS,
    bias-corrected, per trained matrix; ``l2`` puts ωW into g before the moments — PyTorch's
    Adam(weight_decay) — while ``decoupled``/``independent`` scale W outside, as for GD: AdamW with
    the base rate, resp. with ω alone), and ``lam`` holds the Adam rates η·n^-κ_ℓ
    (:func:`adam_layer_multipliers`).

    ``norm``: None, or ``(eps, gains_trained)``: RMSNorm before every hidden layer and before the readout,
    z = γ ⊙ a / √(mean_j a_j² + eps) per sample, with gain vectors γ (initially 1; trained at the rate
    ``lam["gain"]`` without decay when ``gains_trained``).
    """
    if norm is not None:
        return _train_recipe_norm(xp, W0, hidden0, V, X, y, etas, steps, relu, recipe, lam, out, idx, diag, adam, norm)
    E = int(etas.shape[0])
    logged = {k: j for j, k in enumerate(alignment_steps(steps))} if diag is not None else {}
    m = X.shape[0]
    trained = recipe.trained
    # the weights with a leading η axis (size 1 while shared by every η)
    params = {"input": W0[None], "readout": V[None]}
    for l, W in enumerate(hidden0):
        params[("hidden", l)] = W[None]
    keys = ([("input", "input")] if "input" in trained else []) \
        + ([(("hidden", l), "hidden") for l in range(len(hidden0))] if "hidden" in trained else []) \
        + ([("readout", "readout")] if "readout" in trained else [])
    buffers = {}
    Lh = len(hidden0)
    for k in range(steps + 1):
        W0b, Vb = params["input"], params["readout"]
        h0 = X @ W0b.transpose(0, 2, 1)  # (E or 1, m, n)
        pre, acts = [h0], [xp.maximum(h0, 0) if relu else h0]
        for l in range(Lh):
            h = acts[-1] @ params[("hidden", l)].transpose(0, 2, 1)
            pre.append(h)
            acts.append(xp.maximum(h, 0) if relu else h)
        f = (acts[-1] @ Vb[:, :, None])[:, :, 0]
        r = f - y
        loss = to_host((r[:, None, :] @ r[:, :, None])[:, 0, 0] / (2 * m)).astype(np.float64)
        out[:, k] = np.broadcast_to(loss, (E,))
        if k == steps:
            return
        # gradients at the weights of step k (all layers from the same weights), on the minibatch if any
        Xg, inputs = X, {"input": X, "readout": acts[-1], **{("hidden", l): acts[l] for l in range(Lh)}}
        if idx is not None:
            r, pre, acts, Xg = r[:, idx[k]], _rows(pre, idx[k]), _rows(acts, idx[k]), X[idx[k]]
        rm = r / r.shape[1]
        grads = {}
        if "readout" in trained:
            grads["readout"] = (acts[-1].transpose(0, 2, 1) @ rm[:, :, None])[:, :, 0]
        delta = rm[:, :, None] * Vb[:, None, :]
        if relu:
            delta = delta * (pre[-1] > 0)
        for l in range(Lh, 0, -1):
            if "hidden" in trained:
                grads[("hidden", l - 1)] = delta.transpose(0, 2, 1) @ acts[l - 1]
            if l > 1 or "input" in trained:
                delta = delta @ params[("hidden", l - 1)]
                if relu:
                    delta = delta * (pre[l - 1] > 0)
        if "input" in trained:
            grads["input"] = delta.transpose(0, 2, 1) @ Xg
        rho = float(recipe.rho(k, steps, int(W0.shape[0])))
        step_all = etas * rho  # η ρ_s
        new = {key: _recipe_update(xp, key, params[key], grads[key], k, recipe, adam, buffers, step_all, lam[kind])
               for key, kind in keys}
        if k in logged:
            _log_alignment(xp, diag, logged[k], keys, params, new, inputs, E)
        params.update(new)
        del grads, new


def _recipe_update(xp, key, W, g, k: int, recipe, adam, buffers: dict, step_all, lam: float, decays: bool = True):
    """The new value of one trained parameter W (leading η axis) after step k under ``recipe``: the l2 term
    into g, the direction (Adam's m̂/(√v̂ + ε) when ``adam`` is its ε, else the (Nesterov) momentum buffer
    or g; state in ``buffers[key]``), the decoupled/independent/torch decay of W (unless ``decays`` is
    False), and the step η ρ_s λ · direction, with ``step_all`` = η ρ_s per η and ``lam`` = λ."""
    omega, beta, mode = float(recipe.weight_decay), float(recipe.momentum), recipe.wd_mode
    decays = decays and omega != 0
    sc = step_all * lam
    sc = sc[:, None] if W.ndim == 2 else sc[:, None, None]
    if decays and mode == "l2":
        g = g + W * omega
    if adam is not None:
        b1, b2 = ADAM_BETAS
        m1 = (1.0 - b1) * g if k == 0 else buffers[key] * b1 + (1.0 - b1) * g
        m2 = (1.0 - b2) * (g * g) if k == 0 else buffers[(key, 2)] * b2 + (1.0 - b2) * (g * g)
        buffers[key], buffers[(key, 2)] = m1, m2
        direction = _adam_step(xp, m1 / (1.0 - b1 ** (k + 1)), xp.sqrt(m2 / (1.0 - b2 ** (k + 1))), adam)
    elif beta != 0:
        buf = g if k == 0 else buffers[key] * beta + g
        buffers[key] = buf
        direction = g + buf * beta if recipe.nesterov else buf
    else:
        direction = g
    if decays and mode == "decoupled":
        f_ = 1 - step_all * omega
        W = W * (f_[:, None] if W.ndim == 2 else f_[:, None, None])
    elif decays and mode == "independent":
        W = W * (1 - omega)
    elif decays and mode == "torch":  # ω times the layer's own rate ηρ_sλ_ℓ
        W = W * (1 - sc * omega)
    return W - direction * sc


def _log_alignment(xp, diag, j: int, keys, params: dict, new: dict, inputs: dict, E: int) -> None:
    """Column ``j`` of the alignment diagnostics: every trained matrix's update new − old at its input."""
    with np.errstate(all="ignore"):
        for i, (key, _) in enumerate(keys):
            W, dW = params[key], new[key] - params[key]
            if W.ndim == 2:  # the readout vector as a 1 × n matrix
                W, dW = W[:, None, :], dW[:, None, :]
            diag[:, i, j] = _alignment(xp, inputs[key], W, dW, E)


def _train_recipe_norm(xp, W0, hidden0, V, X, y, etas, steps, relu, recipe, lam, out, idx, diag, adam, norm):
    """:func:`_train_recipe` with RMSNorm (gains γ_0..γ_L) before each hidden layer and the readout."""
    E = int(etas.shape[0])
    logged = {k: j for j, k in enumerate(alignment_steps(steps))} if diag is not None else {}
    m, n = X.shape[0], W0.shape[0]
    eps, gains_trained = norm
    trained = recipe.trained
    Lh = len(hidden0)
    params = {"input": W0[None], "readout": V[None]}
    for l, W in enumerate(hidden0):
        params[("hidden", l)] = W[None]
    for l in range(Lh + 1):
        params[("gain", l)] = xp.ones((1, n), dtype=W0.dtype)
    keys = ([("input", "input")] if "input" in trained else []) \
        + ([(("hidden", l), "hidden") for l in range(Lh)] if "hidden" in trained else []) \
        + ([("readout", "readout")] if "readout" in trained else [])
    gkeys = [(("gain", l), "gain") for l in range(Lh + 1)] if gains_trained else []
    buffers = {}
    phi = (lambda a: xp.maximum(a, 0)) if relu else (lambda a: a)
    for k in range(steps + 1):
        pre, acts, rs, ins = [], [], [], []
        for l in range(Lh + 1):
            h = X @ params["input"].transpose(0, 2, 1) if l == 0 else ins[-1] @ params[("hidden", l - 1)].transpose(0, 2, 1)
            a = phi(h)
            rr = xp.sqrt(xp.mean(a * a, axis=-1, keepdims=True) + eps)
            pre.append(h)
            acts.append(a)
            rs.append(rr)
            ins.append(params[("gain", l)][:, None, :] * (a / rr))
        f = (ins[-1] @ params["readout"][:, :, None])[:, :, 0]
        r = f - y
        loss = to_host((r[:, None, :] @ r[:, :, None])[:, 0, 0] / (2 * m)).astype(np.float64)
        out[:, k] = np.broadcast_to(loss, (E,))
        if k == steps:
            return
        inputs = {"input": X, "readout": ins[-1], **{("hidden", l): ins[l] for l in range(Lh)}}
        Xg = X
        if idx is not None:
            r, pre, acts, rs, ins, Xg = (r[:, idx[k]], _rows(pre, idx[k]), _rows(acts, idx[k]), _rows(rs, idx[k]),
                                         _rows(ins, idx[k]), X[idx[k]])
        rm = r / r.shape[1]
        grads = {}
        if "readout" in trained:
            grads["readout"] = (ins[-1].transpose(0, 2, 1) @ rm[:, :, None])[:, :, 0]
        dz = rm[:, :, None] * params["readout"][:, None, :]  # dL/d(readout input)
        for l in range(Lh, -1, -1):
            a, rr, gam = acts[l], rs[l], params[("gain", l)][:, None, :]
            if gains_trained:
                grads[("gain", l)] = xp.sum(dz * (a / rr), axis=1)
            gdz = gam * dz
            da = gdz / rr - a * xp.sum(gdz * a, axis=-1, keepdims=True) / (n * rr ** 3)
            dh = da * (pre[l] > 0) if relu else da
            if l == 0:
                if "input" in trained:
                    grads["input"] = dh.transpose(0, 2, 1) @ Xg
                break
            if "hidden" in trained:
                grads[("hidden", l - 1)] = dh.transpose(0, 2, 1) @ ins[l - 1]
            dz = dh @ params[("hidden", l - 1)]
        step_all = etas * float(recipe.rho(k, steps, n))
        new = {key: _recipe_update(xp, key, params[key], grads[key], k, recipe, adam, buffers, step_all, lam[kind],
                                   decays=kind != "gain")  # gains are never decayed
               for key, kind in keys + gkeys}
        if k in logged:
            _log_alignment(xp, diag, logged[k], keys, params, new, inputs, E)
        params.update(new)
        del grads, new


#: Init gains by name: weight standard deviation gain/√fan_in for W_0 and the hidden layers.
INIT_GAINS = {"1": 1.0, "he": math.sqrt(2.0), "torch": 1.0 / math.sqrt(3.0)}
_GAIN_VALID = "'1', 'he' (√2, Kaiming for ReLU), 'torch' (1/√3, PyTorch's default nn.Linear init) or a number > 0"
#: The spawn-key width of the data-order stream: no network has width 0, so it never meets a network's seed.
BATCH_STREAM = 0


def parse_init_gain(value) -> tuple[str, float]:
    """(name, gain) for ``value``: a name of :data:`INIT_GAINS` or a finite number > 0."""
    if isinstance(value, str) and value.strip().lower() in INIT_GAINS:
        name = value.strip().lower()
        return name, INIT_GAINS[name]
    try:
        g = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        g = float("nan")
    if not (math.isfinite(g) and g > 0):
        raise invalid("init_gain", value, _GAIN_VALID)
    return ("1" if g == 1.0 else repr(g)), g


def with_init_gain(weights: Weights, gain: float, readout_init: str = "param") -> Weights:
    """``weights`` with W_0 and the hidden layers multiplied by ``gain``; V as drawn, or 0 (``readout_init='zero'``)."""
    if gain == 1.0 and readout_init == "param":
        return weights
    V = weights.V * 0.0 if readout_init == "zero" else weights.V
    return Weights(weights.W0 * gain, tuple(W * gain for W in weights.hidden), V)


def batch_schedule(m: int, batch: int, steps: int, seed: int, sample: int) -> np.ndarray:
    """The minibatch rows of steps 0..steps-1 (shape steps × batch) for sample ``sample``.

    Consecutive slices of a stream of random permutations of range(m) (a new permutation each
    epoch; a batch may straddle two epochs), drawn from ``SeedSequence(seed, spawn_key=(0, sample))``:
    the same data order at every width and every η, a different one per sample."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(BATCH_STREAM, sample)))
    need = steps * batch
    stream = np.concatenate([rng.permutation(m) for _ in range(-(-need // m))])
    return stream[:need].reshape(steps, batch)


def sweep_network(
    weights: Weights,
    data: Dataset,
    param,
    etas,
    steps: int,
    *,
    activation: str = "linear",
    optimizer: str = "gd",
    adam_eps: float = DEFAULT_ADAM_EPS,
    adam_exponent=None,
    dtype: str = "float64",
    memory_mb: float = DEFAULT_MEMORY_MB,
    method: str = "auto",
    xp=np,
    recipe=None,
    batches=None,
    alignment: bool = False,
    norm=None,
):
    """Train one network at every η of ``etas``; return the losses, shape (len(etas), steps + 1), numpy float64.

    Row i is the loss at steps 0..steps with learning rate ``etas[i]`` (in the given order);
    +inf marks divergence (module docstring). ``weights`` may live on ``xp``. ``method``:
    'dense' (per-η weight matrices; GD bit-identical to :func:`polyloss.gd.gd_train`), 'lowrank'
    (GD only, no per-η matrices) or 'auto' (:func:`choose_method`).

    ``recipe``: the training recipe (a :class:`~polyloss.recipe.Recipe`, its ``to_dict()`` dict or
    None for plain GD). A plain recipe (``is_plain_for(param)``) runs the code above unchanged; any
    other is GD only, trained densely (``method`` 'auto' or 'dense') by :func:`_train_recipe`.

    ``batches``: None (full batch) or the rows of each step's minibatch, an integer array of shape
    (>= steps, B) (:func:`batch_schedule`); the loss is always recorded on the full data.

    ``norm``: None, 'rms' (RMSNorm with trainable gains before every hidden layer and the readout;
    gains start at 1 and train at the input layer's rate — vector-like parameters — without decay) or
    'rms-fixed' (gains frozen at 1); trains through :func:`_train_recipe` (dense, any optimizer).

    ``alignment``: also return the alignment diagnostics of every trained layer's update at the
    steps :func:`alignment_steps` — ``(losses, diag)`` with ``diag`` of shape (len(etas), layers
    (:func:`alignment_layers`), steps logged, 4) holding :data:`ALIGNMENT_METRICS` (NaN after
    divergence); trains densely (``method`` 'lowrank' is refused).
    """
    from polyloss.poly import as_recipe

    recipe = as_recipe(recipe)
    param = Parametrization.parse(param)
    etas = np.asarray(parse_etas(etas) if isinstance(etas, str) else etas, dtype=np.float64).ravel()
    if etas.size == 0 or not np.all(np.isfinite(etas)) or np.any(etas < 0):
        raise invalid("etas", etas.tolist(), _ETAS_VALID)
    steps = _check_count("steps", steps, 1)
    activation = _check_choice("activation", activation, ACTIVATIONS)
    optimizer = _check_choice("optimizer", optimizer, OPTIMIZERS)
    dtype = _check_choice("dtype", dtype, DTYPES)
    adam_eps = _check_positive("adam_eps", adam_eps, allow_zero=True)
    memory_mb = _check_positive("memory_mb", memory_mb)
    if weights.input_dim != data.d:
        raise invalid("data", f"d={data.d}", f"data with d = {weights.input_dim} columns to match W0")
    n, L, m = weights.width, weights.depth, data.m
    idx = None
    if batches is not None:
        rows = np.asarray(batches)
        if rows.ndim != 2 or rows.shape[0] < steps or rows.dtype.kind not in "iu" or rows.size == 0 \
                or rows.min() < 0 or rows.max() >= m:
            raise invalid("batches", f"an array of shape {rows.shape}",
                          f"an integer array of shape (>= {steps}, B) with rows in [0, {m})")
        idx = [xp.asarray(r) for r in rows[:steps]]
    adam = optimizer == "adam"
    norm = _check_choice("norm", "none" if norm is None else norm, NORMS)
    norm = None if norm == "none" else norm
    if norm is not None and isinstance(method, str) and method.lower() == "lowrank":
        raise invalid("method", method, "'auto' or 'dense' with a norm layer (it trains densely)")
    if norm is not None and recipe.momentum != 0 and optimizer == "adam":
        raise SpecError("`recipe` with momentum is invalid with optimizer 'adam': Adam keeps its own first moment")
    plain = _plain(recipe, param, optimizer, method, steps) and norm is None
    if not isinstance(alignment, bool):
        raise invalid("alignment", alignment, "True or False")
    if alignment and plain and isinstance(method, str) and method.lower() == "lowrank":
        raise invalid("method", method, "'auto' or 'dense' with the alignment diagnostics (they need each update)")
    method = choose_method(method, optimizer, n, m, steps) if plain and not alignment else "dense"
    mult = (float(n) ** (-float(adam_exponent_for(param, adam_exponent))) if adam else param.lr_multiplier(n)) if plain else None
    dt = getattr(xp, dtype)
    cast = lambda a: xp.asarray(a, dtype=dt)  # noqa: E731
    W0, V = cast(weights.W0), cast(weights.V)
    hidden = [cast(W) for W in weights.hidden]
    X, y = cast(data.X), cast(data.y)
    lr_all = mult * etas if plain else None  # the same float64 products as gd.py's ``lam * eta``
    out = np.full((etas.size, steps + 1), np.inf)
    chunk = _chunk_size(n, m, L, steps, method, adam, np.dtype(dtype).itemsize, memory_mb)
    relu = activation == "relu"
    if not plain:
        chunk = _chunk_size(n, m, L + 2, steps, "dense", recipe.momentum != 0, np.dtype(dtype).itemsize, memory_mb)
        lam = adam_layer_multipliers(recipe, n, param, adam_exponent) if adam else recipe.lr_multipliers(n, param)
        if norm == "rms":  # gains: vector-like, at the input layer's rate
            g_in = adam_layer_exponents(recipe, param, adam_exponent)[0] if adam else recipe.resolve_lr_exponents(param)[0]
            if g_in is None:
                raise SpecError(f"`norm`='rms' needs the input layer's rate for the gains: give the recipe's lr_exponents "
                                f"with the custom parametrization ({param.alpha},{param.gamma})")
            lam = dict(lam, gain=float(n) ** (-float(g_in)))
    diag = np.full((etas.size, len(alignment_layers(L, recipe, param)), len(alignment_steps(steps)),
                    len(ALIGNMENT_METRICS)), np.nan) if alignment else None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for i in range(0, etas.size, chunk):
            sl = slice(i, min(i + chunk, etas.size))
            dsl = None if diag is None else diag[sl]
            if not plain:
                _train_recipe(xp, W0, hidden, V, X, y, cast(etas[sl]), steps, relu, recipe, lam, out[sl], idx, dsl,
                              adam=adam_eps if adam else None,
                              norm=None if norm is None else (float(np.finfo(dtype).eps), norm == "rms"))
            elif method == "lowrank":
                _train_lowrank(xp, W0, hidden, V, X, y, cast(lr_all[sl]), steps, relu, out[sl], idx)
            else:
                _train_chunk(xp, W0, hidden, V, X, y, cast(lr_all[sl]), steps, relu, adam, adam_eps, out[sl], idx, dsl)
    out[~np.isfinite(out)] = np.inf
    # once diverged, stays diverged
    losses = np.where(np.cumsum(np.isinf(out), axis=1) > 0, np.inf, out)
    if diag is None:
        return losses
    # an update taken from diverged weights (loss +inf at or before its step) says nothing: NaN
    for j, k in enumerate(alignment_steps(steps)):
        diag[~np.isfinite(losses[:, k + 1]), :, j] = np.nan
    diag[~np.isfinite(diag)] = np.nan
    return losses, diag


def adam_layer_exponents(recipe, param, adam_exponent=None) -> tuple:
    """(κ_in, κ_hid, κ_out): Adam rates η·n^-κ_ℓ of a recipe — its explicit lr_exponents, else
    :data:`ADAM_LAYER_EXPONENTS` of ``param`` (a custom parametrization needs explicit ones);
    ``adam_exponent`` (when given) sets the hidden κ."""
    param = Parametrization.parse(param)
    if recipe.lr_exponents is not None:
        kappas = list(recipe.lr_exponents)
    elif param.name in ADAM_LAYER_EXPONENTS:
        kappas = list(ADAM_LAYER_EXPONENTS[param.name])
    else:
        raise SpecError(f"`recipe` needs lr_exponents with optimizer 'adam' and the custom parametrization "
                        f"({param.alpha},{param.gamma}): give the Adam rates eta*n^-K per layer (muP-Adam: 0,1,1)")
    if adam_exponent is not None:
        kappas[1] = Fraction(adam_exponent)
    return tuple(kappas)


def adam_layer_multipliers(recipe, width: int, param, adam_exponent=None) -> dict:
    """{layer: c_ℓ·n^-κ_ℓ} for the trained layers of ``recipe`` (:func:`adam_layer_exponents`; c_ℓ the
    recipe's ``lr_scales``, e.g. mup.MuAdam's base/n on the hidden layers is c = base, κ = 1)."""
    kap = dict(zip(("input", "hidden", "readout"), adam_layer_exponents(recipe, param, adam_exponent)))
    out = {}
    for layer in recipe.trained_layers:
        c = recipe.lr_scale(layer)
        out[layer] = float(width) ** (-float(kap[layer])) if c == 1 else float(c) * float(width) ** (-float(kap[layer]))
    return out


def alignment_layers(depth: int, recipe=None, param="mup") -> list[str]:
    """Names of the layers the alignment diagnostics cover: the trained ones, W0 (input), W1..WL, V."""
    from polyloss.poly import as_recipe

    recipe = as_recipe(recipe)
    trained = ("hidden",) if recipe.is_plain_for(Parametrization.parse(param)) else recipe.trained
    return ((["W0"] if "input" in trained else []) + ([f"W{l}" for l in range(1, depth + 1)] if "hidden" in trained else [])
            + (["V"] if "readout" in trained else []))


def _plain(recipe, param, optimizer: str, method: str, steps: int) -> bool:
    """Whether ``recipe`` is plain GD for ``param`` (today's trainers, bit for bit); a non-plain recipe
    is validated against the other options here (one-line SpecErrors)."""
    if recipe.is_plain_for(param) and (optimizer != "adam" or recipe.lr_exponents is None):
        return True  # (explicit exponents with Adam are Adam rates: the recipe trainer applies them)
    recipe.check_steps(steps)
    if optimizer != "adam" or recipe.lr_exponents is not None or param.name not in ADAM_LAYER_EXPONENTS:
        recipe.resolve_lr_exponents(param)  # input/readout rates must be defined for the layers trained
    if optimizer == "adam" and recipe.momentum != 0:
        raise SpecError(f"`recipe` ({recipe.describe()}) is invalid with optimizer 'adam': Adam keeps its own first "
                        "moment (beta1 = 0.9); give momentum 0")
    if isinstance(method, str) and method.lower() == "lowrank":
        raise invalid("method", method, "'auto' or 'dense' with a non-plain training recipe (recipes train densely)")
    return False


def _record_method(method: str, optimizer: str, n: int, m: int, steps: int, plain: bool) -> str:
    return choose_method(method, optimizer, n, m, steps) if plain else "dense"
