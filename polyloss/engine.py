r"""The finite-width engine: exact loss polynomials 𝓛_n^{(t)}(η) of one network on one data set.

After ``t`` full-batch GD steps with learning rate ``η`` (hidden multiplier ``λ``), the outputs
``f^{(t)}(x_i)`` and the loss ``𝓛^{(t)} = (1/2m) Σ_i (f^{(t)}(x_i) − y_i)²`` are polynomials in η.
This module computes their coefficients without ever forming a matrix of polynomials, using the
rank-one structure of THEORY §3:

* gradients are rank one, ``∇_{W_ℓ}𝓛 = b_ℓ u_ℓᵀ``, so ``W_ℓ^{(t)} = W_ℓ − λη Σ_{s<t} b_ℓ^{(s)} u_ℓ^{(s)ᵀ}``;
* unrolling the forward pass, ``h_ℓ^{(t)}(x) = h_ℓ(x) + Σ_{j≤ℓ, s<t} P_{ℓ,j,s} c^{(t)}_{j,s}(x)``
  with data-independent polynomial vectors ``P_{ℓ,j,s} = W_ℓ ⋯ W_{j+1} b_j^{(s)}`` and scalar
  polynomials ``c^{(t)}_{j,s}(x) = −λη ⟨u_j^{(s)}, h_{j−1}^{(t)}(x)⟩``.

So the data enter only through the initial forward pass ``h_ℓ(x_i)`` (computed once and cached);
every other matrix product acts on a handful of polynomial vectors (the words of THEORY §3).

One recursion, two uses. With η itself as the variable it yields the monomial coefficients
(exact up to the truncation degree ``K``). With ``η = η_0 + ε`` for a batch of centres ``η_0`` it
yields the Taylor expansion of the loss at each centre: this is plain GD at ``η_0`` carried with
forward-mode derivatives, hence numerically stable for any number of steps (THEORY §6), and it
is what evaluation and minimisation use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyloss import _tpoly as tp
from polyloss._backend import namespace_of, to_host
from polyloss.data import Dataset
from polyloss.errors import DataError, invalid
from polyloss.spec import Parametrization
from polyloss.weights import Weights

__all__ = ["LossEngine", "LossPolynomial", "loss_degree", "f_degree"]


def _d(depth: int, steps: int) -> int:
    """Degree of ``W^{(t)}`` in η: D_0 = 0, D_{t+1} = 1 + (2L − 1) D_t (THEORY §3)."""
    D = 0
    for _ in range(steps):
        D = 1 + (2 * depth - 1) * D
    return D


def f_degree(depth: int, steps: int) -> int:
    """Degree of ``f^{(t)}`` in η: ``L · D_t``."""
    return depth * _d(depth, steps)


def loss_degree(depth: int, steps: int) -> int:
    """Degree of ``𝓛^{(t)}`` in η: ``2L · D_t`` (L = 3, t = 3: 186)."""
    return 2 * f_degree(depth, steps)


@dataclass(frozen=True, eq=False)
class LossPolynomial:
    """Exact (float64) coefficients of one network's loss polynomial, ascending powers of η.

    Attributes:
      loss: ``c_0..c_K`` of 𝓛^{(T)}(η) at the final step T.
      f: shape (m, K_f + 1), coefficients of ``f^{(T)}(x_i)`` for each training point.
      loss_by_step / f_by_step: the same for every step ``s = 0..T``.
      steps: T.  degree: the truncation degree K used (exact up to K).
      full_degree: the complete degree ``2L·D_T`` of 𝓛^{(T)}.
    """

    loss: np.ndarray
    f: np.ndarray
    loss_by_step: tuple
    f_by_step: tuple
    steps: int
    degree: int
    full_degree: int

    @property
    def truncated(self) -> bool:
        return self.degree < self.full_degree

    def truncate(self, degree: int) -> "LossPolynomial":
        """The same polynomial kept up to ``degree`` (exact up to it, like a truncated computation)."""
        K = min(int(degree), self.degree)
        return LossPolynomial(self.loss[: K + 1], self.f[:, : K + 1], tuple(l[: K + 1] for l in self.loss_by_step),
                              tuple(f[:, : K + 1] for f in self.f_by_step), self.steps, K, self.full_degree)


class LossEngine:
    """Loss polynomials of one network (``weights``) trained on one data set.

    Args:
      weights: effective weights (sampled or loaded); their arrays fix the backend.
      data: the training set; ``data.d`` must equal the weights' input dimension.
      param: the parametrization; it sets the hidden learning-rate multiplier ``λ = n^{-γ}``.

    Example:
      >>> from polyloss.data import linear_teacher
      >>> from polyloss.spec import NetworkSpec, Parametrization
      >>> from polyloss.weights import sample_weights
      >>> import numpy as np
      >>> ds = linear_teacher(d=4, m=6, seed=0)
      >>> p = Parametrization.preset("mup")
      >>> w = sample_weights(NetworkSpec(2, 16, 4), p, np.random.SeedSequence(0))
      >>> LossEngine(w, ds, p).polynomial(steps=1).loss.shape   # degree 2L = 4
      (5,)
    """

    def __init__(self, weights: Weights, data: Dataset, param: Parametrization, xp=None):
        if weights.input_dim != data.d:
            raise DataError(
                f"weights have input dimension {weights.input_dim} (W0 is {weights.width}×{weights.input_dim}) "
                f"but the data have d = {data.d}; they must match"
            )
        if xp is None:
            xp = namespace_of(weights.V)
        self.xp = xp
        self.weights = weights
        self.param = param
        self.depth = weights.depth
        self.width = weights.width
        self.m = data.m
        self.lam = param.lr_multiplier(self.width)
        X = xp.asarray(data.X)
        self.y = xp.asarray(data.y)
        self.layers = weights.operators()  # forward(X) = X W_ℓᵀ, backward(Y) = Y W_ℓ
        H = [X @ weights.W0.T]  # rows: h_0(x_i)
        for op in self.layers:
            H.append(op.forward(H[-1]))
        self.H = H  # H[ℓ] has shape (m, n): h_ℓ(x_i) for ℓ = 0..L
        self.f0 = H[-1] @ weights.V

    # ------------------------------------------------------------------ public API
    def polynomial(self, steps: int, degree: int | None = None) -> LossPolynomial:
        """Monomial coefficients of 𝓛^{(t)} and f^{(t)} for t = 0..steps, exact up to ``degree``."""
        steps = _check_steps(steps)
        full = loss_degree(self.depth, steps)
        if degree is None:
            K = full
        else:
            if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
                raise invalid("degree", degree, "an integer >= 0 (or None for the complete polynomial)")
            K = min(int(degree), full)
        losses, fs = self._run(steps, K, None)
        losses = tuple(to_host(l[:, 0]) for l in losses)
        fs = tuple(np.ascontiguousarray(to_host(f[:, 0, :]).T) for f in fs)
        return LossPolynomial(losses[-1], fs[-1], losses, fs, steps, K, full)

    def taylor(self, etas, steps: int, order: int = 2, chunk: int = 256):
        """Taylor coefficients of 𝓛^{(t)} at each ``η_0`` in ``etas``: array (G, order + 1).

        ``out[g, k] = 𝓛^{(k)}(η_g) / k!``. Computed by GD at ``η_g`` with forward-mode derivatives,
        so it is as stable as GD itself, whatever the degree of the polynomial.
        """
        steps = _check_steps(steps)
        etas = np.atleast_1d(np.asarray(etas, dtype=np.float64))
        if etas.ndim != 1 or not np.all(np.isfinite(etas)):
            raise invalid("etas", etas, "a finite 1-D array of learning rates")
        out = np.zeros((etas.shape[0], order + 1))
        for lo in range(0, etas.shape[0], chunk):
            e0 = self.xp.asarray(etas[lo : lo + chunk])
            with np.errstate(over="ignore", invalid="ignore"):  # divergent GD: inf/nan, reported by callers
                losses, _ = self._run(steps, order, e0, final_only=True)
            loss = to_host(losses[-1])
            out[lo : lo + chunk, : loss.shape[0]] = loss.T
        return out

    def loss_at(self, etas, steps: int) -> np.ndarray:
        """𝓛^{(t)}(η) at each η (stable; see :meth:`taylor`)."""
        return self.taylor(etas, steps, order=0)[:, 0]

    # ------------------------------------------------------------------ recursion
    @staticmethod
    def _apply(p, fn):
        """Apply a row-wise linear map ``fn`` (k → k') to every coefficient row of a polynomial vector (D+1, G, k)."""
        D1, G, k = p.shape
        out = fn(p.reshape(D1 * G, k))
        return out.reshape(D1, G, out.shape[1])

    def _run(self, steps: int, K: int, eta0, final_only: bool = False):
        xp, L, lam, m = self.xp, self.depth, self.lam, self.m
        H, ops, V = self.H, self.layers, self.weights.V
        G = 1 if eta0 is None else int(eta0.shape[0])

        def const(v):  # a constant polynomial vector (1, G, len)
            return xp.broadcast_to(v, (1, G, v.shape[0]))

        def scale_eta(p):  # −λ η p
            return tp.times_eta(p, eta0, K) * (-lam)

        Vc = const(V)
        b, u, P, A, Q, R = {}, {}, {}, {}, {}, {}
        losses, fs = [], []
        for t in range(steps + 1):
            # forward at the weights of step t: coefficients c[(j, s)], shape (D+1, G, m)
            c = {}
            for j in range(1, L + 1):
                for s in range(t):
                    acc = A[(j, s)]
                    for j2 in range(1, j):
                        for s2 in range(t):
                            acc = tp.add(acc, tp.mul(Q[(j, s, j2, s2)][..., None], c[(j2, s2)], K))
                    c[(j, s)] = scale_eta(acc)
            f = const(self.f0)
            for (j, s), cjs in c.items():
                f = tp.add(f, tp.mul(R[(j, s)][..., None], cjs, K))
            r = f.copy()
            r[0] = r[0] - self.y
            if not final_only or t == steps:
                losses.append(tp.sumsq(r, K) / (2 * m))
                fs.append(f)
            if t == steps:
                break
            # gradient factors at step t: u_j (space j−1) and b_j (space j)
            for j in range(1, L + 1):
                uj = self._apply(r, lambda Z, M=H[j - 1]: Z @ M)
                for j2 in range(1, j):
                    for s2 in range(t):
                        w = tp.vdot(c[(j2, s2)], r, K)
                        uj = tp.add(uj, tp.mul(P[(j - 1, j2, s2)], w[..., None], K))
                u[(j, t)] = uj / m
            b[(L, t)] = Vc
            for l in range(L, 1, -1):
                nb = self._apply(b[(l, t)], ops[l - 1].backward)
                for s in range(t):
                    g = tp.vdot(b[(l, s)], b[(l, t)], K)
                    nb = tp.add(nb, scale_eta(tp.mul(u[(l, s)], g[..., None], K)))
                b[(l - 1, t)] = nb
            for j in range(1, L + 1):
                P[(j, j, t)] = b[(j, t)]
                for l in range(j + 1, L + 1):
                    P[(l, j, t)] = self._apply(P[(l - 1, j, t)], ops[l - 1].forward)
                R[(j, t)] = tp.vdot(Vc, P[(L, j, t)], K)
            # cached inner products involving the new step
            for j in range(1, L + 1):
                A[(j, t)] = self._apply(u[(j, t)], lambda Z, M=H[j - 1]: Z @ M.T)
                for j2 in range(1, j):
                    for s2 in range(t + 1):
                        Q[(j, t, j2, s2)] = tp.vdot(u[(j, t)], P[(j - 1, j2, s2)], K)
                    for s in range(t):
                        Q[(j, s, j2, t)] = tp.vdot(u[(j, s)], P[(j - 1, j2, t)], K)
        return losses, fs


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise invalid("steps", steps, "an integer >= 1")
    return int(steps)
