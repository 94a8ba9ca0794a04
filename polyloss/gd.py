"""Plain full-batch gradient descent on a deep linear MLP: the independent reference.

No polynomials here: dense weight matrices, explicit backpropagation, one learning rate at a time.
Used by tests (polynomial ≡ GD), by benchmarks (the grid method users run today) and by sweeps.
"""

from __future__ import annotations

import numpy as np

from polyloss.data import Dataset
from polyloss.spec import Parametrization
from polyloss.weights import Weights

__all__ = ["gd_losses", "gd_train"]


def _forward(W0, hidden, V, X):
    hs = [X @ W0.T]
    for W in hidden:
        hs.append(hs[-1] @ W.T)
    return hs, hs[-1] @ V


def gd_train(weights: Weights, data: Dataset, param: Parametrization, eta: float, steps: int):
    """Run ``steps`` GD steps at learning rate ``eta``; return the losses after each step (0..steps)."""
    W0, V = np.asarray(weights.W0), np.asarray(weights.V)
    hidden = [np.array(W, dtype=np.float64, copy=True) for W in weights.hidden]
    X, y, m = data.X, data.y, data.m
    lam = param.lr_multiplier(weights.width)
    losses = []
    for t in range(steps + 1):
        hs, f = _forward(W0, hidden, V, X)
        r = f - y
        losses.append(float(r @ r) / (2 * m))
        if t == steps:
            break
        # backprop: delta_L[i] = r_i V / m ; grad W_l = sum_i delta_l[i] h_{l-1}[i]^T
        delta = np.outer(r / m, V)  # (m, n): dL/dh_L(x_i)
        grads = [None] * len(hidden)
        for l in range(len(hidden), 0, -1):
            grads[l - 1] = delta.T @ hs[l - 1]
            delta = delta @ hidden[l - 1]
        for l, g in enumerate(grads):
            hidden[l] -= lam * eta * g
    return np.array(losses)


def gd_losses(weights: Weights, data: Dataset, param: Parametrization, etas, steps: int) -> np.ndarray:
    """Final loss after ``steps`` GD steps, one full training per learning rate in ``etas``."""
    return np.array([gd_train(weights, data, param, float(e), steps)[-1] for e in np.atleast_1d(etas)])
