"""polyloss: exact learning-rate loss polynomials of deep linear networks.

After ``t`` full-batch GD steps the training loss of a deep linear MLP is a polynomial in the
learning rate η. polyloss computes it exactly for sampled or user-given finite-width networks,
derives its infinite-width limit, and checks learning-rate transfer (Hayou 2025, arXiv 2511.01734).
"""

__version__ = "0.1.0"

# Core types and functions, imported on first use so that `import polyloss` stays light. The CLI
# verbs (poly, sample, derive, sweep, compare, report, verify) live in `polyloss.api`.
_API = {
    "LossEngine": "polyloss.engine",
    "exact_polynomial": "polyloss.poly",
    "NetworkSpec": "polyloss.spec",
    "Parametrization": "polyloss.spec",
    "TrainingSpec": "polyloss.spec",
    "SamplingSpec": "polyloss.spec",
    "Dataset": "polyloss.data",
    "load_data": "polyloss.data",
    "linear_teacher": "polyloss.data",
    "nonlinear_teacher": "polyloss.data",
    "sample_weights": "polyloss.weights",
    "load_weights": "polyloss.weights",
    "PolylossError": "polyloss.errors",
}
__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'polyloss' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_API[name]), name)
