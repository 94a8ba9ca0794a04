"""Reference trainer for every training recipe: dense full-batch GD, written from docs/theory.md §7.

No polynomials and no word program: dense weights, the rank-one gradients of §3/§7 written out
for every layer, one momentum buffer per trained matrix, the decay modes and the schedule exactly
as :mod:`polyloss.recipe` defines them. It is the independent route that the recipe engines are
tested against.

Arithmetic: float64 by default; with ``dtype=object`` (or any object-dtype input) every array is
an object array and every scalar stays as given — ``fractions.Fraction`` gives exact rational
training, and any ring element that supports ``+``, ``-``, ``*`` with ints and Fractions (e.g. a
polynomial in η) may be passed as ``eta``. Float inputs are then converted to the Fractions they
represent exactly.

Example:
  >>> import numpy as np
  >>> from fractions import Fraction as F
  >>> from polyloss.recipe import Recipe
  >>> W0, W1, V = np.eye(2), np.eye(2), np.array([1.0, 0.0])
  >>> X, y = np.array([[1.0, 0.0]]), np.array([0.0])
  >>> train(W0, [W1], V, X, y, Recipe(trained="readout"), F(1, 2), 1, dtype=object)
  [Fraction(1, 2), Fraction(1, 8)]
"""

from __future__ import annotations

import numbers
from fractions import Fraction

import numpy as np

from polyloss.errors import invalid
from polyloss.recipe import LAYERS, Recipe

__all__ = ["gradients", "loss", "train", "recipe_train", "recipe_losses"]


def _forward(W0, hidden, X):
    """H_0 = X W_0ᵀ, H_ℓ = H_{ℓ−1} W_ℓᵀ: row i of H_ℓ is h_ℓ(x_i)."""
    H = [X @ W0.T]
    for W in hidden:
        H.append(H[-1] @ W.T)
    return H


def _inv(m: int, exact: bool):
    return Fraction(1, m) if exact else 1.0 / m


def loss(W0, hidden, V, X, y, *, exact: bool | None = None):
    """𝓛 = (1/2m) Σ_i (f(x_i) − y_i)², forward pass only."""
    exact = _is_object(W0, V, X, y, *hidden) if exact is None else exact
    r = _forward(W0, hidden, X)[-1] @ V - y
    return (r @ r) * _inv(2 * len(y), exact)


def gradients(W0, hidden, V, X, y, *, exact: bool | None = None):
    """The loss and its gradient for every layer, from the rank-one formulas (docs/theory.md §3, §7).

    With r_i = f(x_i) − y_i, b_L = V, b_{ℓ−1} = W_ℓᵀ b_ℓ:
      ∂𝓛/∂W_ℓ = b_ℓ u_ℓᵀ, u_ℓ = (1/m) Σ_i r_i h_{ℓ−1}(x_i)   (ℓ = 1..L),
      ∂𝓛/∂W_0 = b_0 ξᵀ,   ξ = (1/m) Σ_i r_i x_i,
      ∂𝓛/∂V   = (1/m) Σ_i r_i h_L(x_i).
    Returns ``(loss, {"input": G_0, "hidden": [G_1..G_L], "readout": G_V})``.
    """
    exact = _is_object(W0, V, X, y, *hidden) if exact is None else exact
    L, m = len(hidden), len(y)
    inv_m = _inv(m, exact)
    H = _forward(W0, hidden, X)
    r = H[L] @ V - y
    value = (r @ r) * _inv(2 * m, exact)
    b = [None] * (L + 1)
    b[L] = V
    for l in range(L, 0, -1):
        b[l - 1] = hidden[l - 1].T @ b[l]
    G_hidden = [np.outer(b[l], (H[l - 1].T @ r) * inv_m) for l in range(1, L + 1)]
    G_input = np.outer(b[0], (X.T @ r) * inv_m)
    G_readout = (H[L].T @ r) * inv_m
    return value, {"input": G_input, "hidden": G_hidden, "readout": G_readout}


def _is_object(*arrays) -> bool:
    return any(getattr(a, "dtype", None) == object for a in arrays)


def _to_exact(a):
    a = np.asarray(a)
    if a.dtype == object:
        return a.copy()
    out = np.empty(a.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(a.reshape(-1).tolist()):
        flat[i] = Fraction(v)
    return out


def _scalar(x, exact: bool):
    """A recipe number in the trainer's arithmetic: exact stays as given (floats → their exact
    Fraction), float mode → float."""
    if not exact:
        return float(x)
    if isinstance(x, float):
        return Fraction(x)
    return x


def train(W0, hidden, V, X, y, recipe: Recipe, eta, steps: int, *, lr=None, dtype=None,
          return_weights: bool = False):
    """Train ``f(x) = Vᵀ W_L ⋯ W_1 W_0 x`` for ``steps`` full-batch steps under ``recipe``.

    Args:
      W0 (n×d), hidden (list of n×n), V (n,), X (m×d), y (m,): initial weights and data.
      recipe: a :class:`~polyloss.recipe.Recipe` (its rules are the module docstring of
        :mod:`polyloss.recipe`).
      eta: the base learning rate η (a float; with exact arithmetic a Fraction or any ring element).
      lr: the per-layer multipliers λ as a mapping ``{"input": λ_0, "hidden": λ, "readout": λ_V}``
        (missing entries are 1); no width logic here — :func:`recipe_train` derives them.
      dtype: ``object`` for exact arithmetic (see the module docstring); default float64 unless an
        input already has dtype object.
      return_weights: also return the final ``(W0, [W1..WL], V)``.

    Returns the losses after 0, 1, …, ``steps`` steps: a float64 array, or a list of exact values.
    """
    if not isinstance(recipe, Recipe):
        raise invalid("recipe", recipe, "a polyloss.recipe.Recipe")
    steps = recipe.check_steps(steps)
    exact = dtype is object or _is_object(W0, V, X, y, *hidden)
    if dtype not in (None, object, np.float64, float):
        raise invalid("dtype", dtype, "None, float (float64) or object (exact arithmetic)")
    conv = _to_exact if exact else (lambda a: np.array(a, dtype=np.float64, copy=True))
    params = {"input": conv(W0), "readout": conv(V)}
    params.update({("hidden", l): conv(W) for l, W in enumerate(hidden)})
    X, y = conv(X), conv(y)
    L = len(hidden)
    lr = dict(lr or {})
    bad = sorted(set(lr) - set(LAYERS))
    if bad:
        raise invalid("lr", bad, "a mapping with keys among input, hidden, readout")
    lam = {k: _scalar(lr.get(k, 1), exact) for k in LAYERS}
    eta = _scalar(eta, exact) if (isinstance(eta, numbers.Real) or not exact) else eta
    omega = _scalar(recipe.weight_decay, exact)
    beta = _scalar(recipe.momentum, exact)
    mode = recipe.wd_mode
    keys = []
    if "input" in recipe.trained:
        keys.append("input")
    if "hidden" in recipe.trained:
        keys.extend(("hidden", l) for l in range(L))
    if "readout" in recipe.trained:
        keys.append("readout")
    buffers = {}
    losses = []
    for s in range(steps + 1):
        hid = [params[("hidden", l)] for l in range(L)]
        if s == steps:
            losses.append(loss(params["input"], hid, params["readout"], X, y, exact=exact))
            break
        value, grads = gradients(params["input"], hid, params["readout"], X, y, exact=exact)
        losses.append(value)
        rho = _scalar(recipe.rho(s, steps, len(V)), exact)
        new = {}
        for key in keys:
            kind = key if isinstance(key, str) else key[0]
            W = params[key]
            g = grads[kind] if isinstance(key, str) else grads["hidden"][key[1]]
            if mode == "l2" and omega != 0:
                g = g + W * omega  # the gradient of 𝓛 + (ω/2)‖W‖²
            if beta != 0:
                buf = g if s == 0 else buffers[key] * beta + g
                buffers[key] = buf
                direction = g + buf * beta if recipe.nesterov else buf
            else:
                direction = g
            step = eta * rho * lam[kind]
            if mode == "decoupled" and omega != 0:
                W = W * (1 - eta * rho * omega)
            elif mode == "independent" and omega != 0:
                W = W * (1 - omega)
            elif mode == "torch" and omega != 0:
                W = W * (1 - step * omega)  # the layer's own rate ηρλ_ℓ times ω
            new[key] = W - direction * step
        params.update(new)
    if not exact:
        losses = np.array([float(v) for v in losses])
    if return_weights:
        return losses, (params["input"], [params[("hidden", l)] for l in range(L)], params["readout"])
    return losses


def recipe_train(weights, data, param, recipe: Recipe, eta: float, steps: int) -> np.ndarray:
    """:func:`train` on a :class:`~polyloss.weights.Weights` and a :class:`~polyloss.data.Dataset`,
    with λ_ℓ = n^{−γ_ℓ} from ``recipe.lr_multipliers(width, param)``; float64 losses after each step
    (the recipe counterpart of :func:`polyloss.gd.gd_train`)."""
    lr = recipe.lr_multipliers(weights.width, param)
    return train(np.asarray(weights.W0), [np.asarray(W) for W in weights.hidden], np.asarray(weights.V),
                 data.X, data.y, recipe, float(eta), steps, lr=lr)


def recipe_losses(weights, data, param, recipe: Recipe, etas, steps: int) -> np.ndarray:
    """Final loss after ``steps`` steps, one training per learning rate in ``etas``."""
    return np.array([recipe_train(weights, data, param, recipe, float(e), steps)[-1] for e in np.atleast_1d(etas)])
