"""Model factories for trying ``polyloss transfer`` without PyTorch: each returns the ``state_dict`` (numpy arrays
under torch's key names) of a bias-free linear MLP ``input → hidden × depth → readout`` at a given width.

* :func:`mup_mlp` — a ``mup`` model (``nn.Linear`` input and hidden layers, ``MuReadout`` with ``output_mult``,
  base width ``base_width``), initialised so that the effective weights are polyloss's μP networks
  (W_0 ~ N(0, 1/d), W_ℓ ~ N(0, 1/n), V ~ N(0, 1/n²)); train it with ``--model-optimizer musgd --base-width``.
* :func:`sp_mlp` — the same layers with a plain ``nn.Linear`` readout initialised as in standard practice,
  V ~ N(0, 1/n), trained by torch SGD at one learning rate for every layer (``--model-optimizer sgd``).

Network (width, seed) is drawn from ``numpy.random.SeedSequence(seed, spawn_key=(width,))``.
"""

from __future__ import annotations

import numpy as np

from polyloss.errors import invalid

__all__ = ["mup_mlp", "sp_mlp"]


def _draw(width: int, seed: int, depth: int, d: int):
    for name, v, lo in (("width", width, 1), ("seed", seed, 0), ("depth", depth, 1), ("d", d, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise invalid(name, v, f"an integer >= {lo}")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(width),)))
    W0 = rng.standard_normal((width, d)) / np.sqrt(d)
    hidden = [rng.standard_normal((width, width)) / np.sqrt(width) for _ in range(depth)]
    g = rng.standard_normal(width)
    return W0, hidden, g


def _state(W0, hidden, readout):
    return {"input.weight": W0, **{f"hidden.{i}.weight": W for i, W in enumerate(hidden)}, "readout.weight": readout}


def mup_mlp(width: int, seed: int = 0, *, depth: int = 2, d: int = 10, base_width: int = 16, output_mult: float = 1.0):
    """A mup MLP's state_dict at ``width``: MuReadout weight R with V = R·output_mult/(width/base_width) ~ N(0, 1/n²)."""
    W0, hidden, g = _draw(width, seed, depth, d)
    V = g / width
    return _state(W0, hidden, (V * (width / base_width) / output_mult)[None, :])


def sp_mlp(width: int, seed: int = 0, *, depth: int = 2, d: int = 10):
    """A standard-parametrization MLP's state_dict at ``width``: readout V ~ N(0, 1/n)."""
    W0, hidden, g = _draw(width, seed, depth, d)
    return _state(W0, hidden, (g / np.sqrt(width))[None, :])
