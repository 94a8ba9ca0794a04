"""polyloss: exact learning-rate loss polynomials of deep linear networks.

After ``t`` full-batch GD steps the training loss of a deep linear MLP is a polynomial in the
learning rate η. polyloss computes it exactly for sampled or user-given finite-width networks,
derives its infinite-width limit, and checks learning-rate transfer (Hayou 2025, arXiv 2511.01734).
"""

__version__ = "0.1.0"
