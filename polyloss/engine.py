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

Training recipes that train the hidden layers only (docs/theory.md §7) keep this structure: every
hidden matrix is ``W_ℓ^{(t)} = c_t W_ℓ + Σ_{s<t} a_{t,s} b_ℓ^{(s)} u_ℓ^{(s)ᵀ}`` with data-independent
scalar polynomials c_t (the decay) and a_{t,s} (step sizes, schedule, momentum), so the same words
appear, weighted by a_{t,s} instead of −λη and by powers of c_t (:meth:`LossEngine._run_recipe`).
Recipes that also train the input layer W_0 or the readout V (rates λ_in, λ, λ_V, so c and a per
layer type) treat W_0 and Vᵀ as layers 0 and L + 1 of the same recursion: the readout gradient is a
forward word, the input gradient ``b_0 ξᵀ`` acts on the data through ``X ξ`` only
(:meth:`LossEngine._run_io`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyloss import _tpoly as tp
from polyloss._backend import namespace_of, to_host
from polyloss.data import Dataset
from polyloss.errors import DataError, SpecError, invalid
from polyloss.recipe import Recipe, recipe_loss_degree
from polyloss.spec import Parametrization
from polyloss.weights import Weights

__all__ = ["LossEngine", "LossPolynomial", "loss_degree", "f_degree", "COEFF_RTOL", "arb_cost", "arb_seconds"]

#: Relative accuracy to which coefficients are called accurate (:meth:`LossPolynomial.accurate_terms`).
COEFF_RTOL = 1e-6


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
    loss_error: np.ndarray | None = None
    f_error: np.ndarray | None = None
    loss_balls: tuple | None = None  # arb balls of the loss coefficients (from :meth:`LossEngine.polynomial_arb`)

    @property
    def truncated(self) -> bool:
        return self.degree < self.full_degree

    @property
    def certified(self) -> bool:
        """Whether every coefficient at step T carries a rigorous error bound."""
        return self.loss_error is not None

    def truncate(self, degree: int) -> "LossPolynomial":
        """The same polynomial kept up to ``degree`` (exact up to it, like a truncated computation)."""
        K = min(int(degree), self.degree)
        cut = lambda a, f=False: None if a is None else (a[:, : K + 1] if f else a[: K + 1])  # noqa: E731
        return LossPolynomial(self.loss[: K + 1], self.f[:, : K + 1], tuple(l[: K + 1] for l in self.loss_by_step),
                              tuple(f[:, : K + 1] for f in self.f_by_step), self.steps, K, self.full_degree,
                              cut(self.loss_error), cut(self.f_error, True),
                              None if self.loss_balls is None else self.loss_balls[: K + 1])

    def accurate_terms(self, rtol: float = COEFF_RTOL) -> int | None:
        """How many leading loss coefficients ``c_0..c_{k−1}`` are certified to relative error ≤ ``rtol``
        (an exact zero counts); None when not certified (see :meth:`LossEngine.polynomial`)."""
        if self.loss_error is None:
            return None
        return _leading(_accurate(self.loss, self.loss_error, rtol))

    def accurate_f_terms(self, rtol: float = COEFF_RTOL) -> int | None:
        """The same for ``f^{(T)}(x_i)``: the smallest count over the training points."""
        if self.f_error is None:
            return None
        ok = _accurate(self.f, self.f_error, rtol)
        return min((_leading(row) for row in ok), default=0)


def _accurate(c, err, rtol):
    c, err = np.asarray(c), np.asarray(err)
    with np.errstate(invalid="ignore"):
        return np.isfinite(c) & np.isfinite(err) & (err <= rtol * np.abs(c))


def _leading(ok) -> int:
    bad = np.nonzero(~np.asarray(ok))[0]
    return int(bad[0]) if bad.size else int(np.size(ok))


class LossEngine:
    """Loss polynomials of one network (``weights``) trained on one data set.

    Args:
      weights: effective weights (sampled or loaded); their arrays fix the backend.
      data: the training set; ``data.d`` must equal the weights' input dimension.
      param: the parametrization; it sets the hidden learning-rate multiplier ``λ = n^{-γ}``.
      recipe: a :class:`~polyloss.recipe.Recipe` (docs/theory.md §7), or None. None and every plain
        recipe (``Recipe.is_plain_for(param)``) run today's code, bit for bit. Hidden-only recipes
        (schedule, l2/decoupled/independent weight decay, heavy-ball or Nesterov momentum, another
        hidden exponent) are exact like plain GD, certifiable too; so are recipes that train the
        input and/or readout layer (per-layer rates from ``recipe.lr_multipliers``; dense or lazy
        hidden layers). A custom (α, γ) with W_0 or V trained needs explicit ``lr_exponents``.

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

    def __init__(self, weights: Weights, data: Dataset, param: Parametrization, recipe=None, xp=None,
                 channel: bool = False):
        self.recipe = _engine_recipe(recipe, param)
        # ``channel``: the last coordinate of every space is a constant channel carrying biases (a network with
        # biases written as one without, :func:`polyloss.interop.augmented_network`): the last row of every
        # matrix is frozen, so every backward vector (the left factor of an update) has its last entry masked
        self.channel = bool(channel)
        if self.channel:
            if not isinstance(recipe, Recipe) or recipe.weight_decay != 0:
                raise invalid("recipe", recipe, "a Recipe without weight decay for a network with a bias channel "
                              "(decay would scale the frozen channel)")
            self.recipe = recipe
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
        self.lams = {}
        if self.recipe is not None:  # the recipe's rates (the hidden one equal to λ unless its exponents say otherwise)
            self.lams = self.recipe.lr_multipliers(self.width, param)
            self.lam = self.lams.get("hidden", self.lam)
        X = xp.asarray(data.X)
        self._X = X
        self.y = xp.asarray(data.y)
        self.layers = weights.operators()  # forward(X) = X W_ℓᵀ, backward(Y) = Y W_ℓ
        H = [X @ weights.W0.T]  # rows: h_0(x_i)
        for op in self.layers:
            H.append(op.forward(H[-1]))
        self.H = H  # H[ℓ] has shape (m, n): h_ℓ(x_i) for ℓ = 0..L
        self.f0 = H[-1] @ weights.V

    # ------------------------------------------------------------------ public API
    def polynomial(self, steps: int, degree: int | None = None, certify: bool = False) -> LossPolynomial:
        """Monomial coefficients of 𝓛^{(t)} and f^{(t)} for t = 0..steps, up to ``degree``.

        Truncation is exact (coefficients up to ``degree`` are those of the complete polynomial), but
        they are computed in float64, where the recursion can cancel catastrophically at high
        degree. ``certify=True`` also returns a rigorous bound on the absolute error of every
        coefficient at step ``steps`` (:class:`_BoundOps`; about 3× the time, values bit-identical);
        see :attr:`LossPolynomial.loss_error` and :meth:`LossPolynomial.accurate_terms`. Lazily
        sampled layers cannot be certified (the bounds stay None).
        """
        steps = self._check_recipe_steps(_check_steps(steps))
        full = self._loss_degree(steps)  # = loss_degree(L, t) for plain GD and every hidden-only recipe
        if degree is None:
            K = full
        else:
            if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
                raise invalid("degree", degree, "an integer >= 0 (or None for the complete polynomial)")
            K = min(int(degree), full)
        if certify and self.certifiable:
            losses, fs = self._run(steps, K, None, ops=_BoundOps(self, K))
            loss_err = _host_bound(losses[-1].e[:, 0])
            f_err = np.ascontiguousarray(_host_bound(fs[-1].e[:, 0, :]).T)
            losses, fs = [l.v for l in losses], [f.v for f in fs]
        else:
            losses, fs = self._run(steps, K, None)
            loss_err = f_err = None
        losses = tuple(to_host(l[:, 0]) for l in losses)
        fs = tuple(np.ascontiguousarray(to_host(f[:, 0, :]).T) for f in fs)
        if self.recipe is not None:  # a cancelled top coefficient still has its place (degree = recipe_loss_degree)
            kf = min(K, self._loss_degree(steps) // 2)
            losses = tuple(_pad(l, min(K, self._loss_degree(s))) for s, l in zip(range(steps + 1), losses))
            fs = tuple(_pad(f, min(K, self._loss_degree(s) // 2)) for s, f in zip(range(steps + 1), fs))
            loss_err = None if loss_err is None else _pad(loss_err, K)
            f_err = None if f_err is None else _pad(f_err, kf)
        return LossPolynomial(losses[-1], fs[-1], losses, fs, steps, K, full, loss_err, f_err)

    def polynomial_arb(self, steps: int, degree: int | None = None, prec: int = 256) -> LossPolynomial:
        """The same coefficients recomputed in ball arithmetic (python-flint ``arb``, ``prec`` bits)
        from the float64 weights and data, taken as exact: each returned float is the ball's
        midpoint rounded to float64, and the error bound covers the radius and that rounding
        (a result below the normal float64 range is not certified). Python object arrays: slow,
        use :func:`arb_cost` to decide. Dense numpy layers only."""
        import flint

        from polyloss.weights import DenseLayer, Weights

        steps = _check_steps(steps)
        full = loss_degree(self.depth, steps)
        K = full if degree is None else min(int(degree), full)
        if self.recipe is not None:
            raise SpecError(f"`recipe` ({self.recipe.describe()}) is not supported by polynomial_arb yet (issue 11): "
                            f"use polynomial(steps, certify=True)")
        if not self.certifiable or self.xp is not np:
            raise invalid("weights", "lazy or device layers", "dense numpy layers for ball arithmetic")
        old = flint.ctx.prec
        flint.ctx.prec = int(prec)
        try:
            to_arb = np.vectorize(lambda x: flint.arb(float(x)), otypes=[object])
            w = self.weights
            g = self.param.gamma
            lam = flint.arb(self.width) ** (-flint.arb(g.numerator) / g.denominator) if g != 0 else flint.arb(1)
            eng = LossEngine.__new__(LossEngine)
            eng.xp, eng.param, eng.depth, eng.width, eng.m, eng.lam = np, self.param, self.depth, self.width, self.m, lam
            eng.recipe = None  # plain GD (recipes are refused above)
            eng.weights = Weights(to_arb(w.W0), tuple(to_arb(op.W) for op in self.layers), to_arb(w.V))
            eng.y = to_arb(self.y)
            eng.layers = [DenseLayer(W) for W in eng.weights.hidden]
            H = [to_arb(self._X) @ eng.weights.W0.T]
            for op in eng.layers:
                H.append(op.forward(H[-1]))
            eng.H, eng.f0 = H, H[-1] @ eng.weights.V
            losses, fs = eng._run(steps, K, None, final_only=True)
            balls = tuple(flint.arb(x) for x in losses[-1][:, 0])
            loss, loss_err = _arb_to_float(losses[-1][:, 0])
            f, f_err = _arb_to_float(fs[-1][:, 0, :])
        finally:
            flint.ctx.prec = old
        f, f_err = np.ascontiguousarray(f.T), np.ascontiguousarray(f_err.T)
        return LossPolynomial(loss, f, (loss,), (f,), steps, K, full, loss_err, f_err, balls)

    @property
    def certifiable(self) -> bool:
        """Whether :meth:`polynomial` can bound its rounding errors (dense hidden layers only)."""
        from polyloss.weights import DenseLayer

        return all(isinstance(op, DenseLayer) for op in self.layers)

    def taylor(self, etas, steps: int, order: int = 2, chunk: int = 256):
        """Taylor coefficients of 𝓛^{(t)} at each ``η_0`` in ``etas``: array (G, order + 1).

        ``out[g, k] = 𝓛^{(k)}(η_g) / k!``. Computed by GD at ``η_g`` with forward-mode derivatives,
        so it is as stable as GD itself, whatever the degree of the polynomial.
        """
        steps = self._check_recipe_steps(_check_steps(steps))
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

    def _loss_degree(self, steps: int) -> int:
        """Degree of 𝓛^{(t)}: ``recipe_loss_degree`` (2k·D_t, k trained matrices; 2L·D_t for plain GD)."""
        if self.recipe is None:
            return loss_degree(self.depth, steps)
        return recipe_loss_degree(self.depth, steps, self.recipe)

    def _check_recipe_steps(self, steps: int) -> int:
        return steps if self.recipe is None else self.recipe.check_steps(steps)

    # ------------------------------------------------------------------ recursion
    @staticmethod
    def _apply(p, fn):
        """Apply a row-wise linear map ``fn`` (k → k') to every coefficient row of a polynomial vector (D+1, G, k)."""
        D1, G, k = p.shape
        out = fn(p.reshape(D1 * G, k))
        return out.reshape(D1, G, out.shape[1])

    def _run(self, steps: int, K: int, eta0, final_only: bool = False, ops=None):
        """The GD recursion of THEORY §3 on truncated polynomials. ``ops`` is the arithmetic: plain
        arrays (:class:`_FloatOps`, the default) or values with certified error bounds
        (:class:`_BoundOps`); the recursion is the same, operation for operation."""
        L, m = self.depth, self.m
        A_ = _FloatOps(self, K, eta0) if ops is None else ops
        if self.recipe is not None:
            if self.channel or self.recipe.trained != frozenset({"hidden"}):  # trained input and/or readout
                coefs = {k: _recipe_coefficients(self.recipe, steps, A_, lam, self.width,
                                                 scaled=self.recipe.lr_scale(k) != 1) for k, lam in self.lams.items()}
                return self._run_io(steps, A_, final_only, coefs)
            cw, aw = _recipe_coefficients(self.recipe, steps, A_, self.lam, self.width,
                                          scaled=self.recipe.lr_scale("hidden") != 1)
            return self._run_recipe(steps, A_, final_only, cw, aw)
        b, u, P, A, Q, R = {}, {}, {}, {}, {}, {}
        losses, fs = [], []
        Vc = A_.const_V()
        for t in range(steps + 1):
            # forward at the weights of step t: coefficients c[(j, s)], shape (D+1, G, m)
            c = {}
            for j in range(1, L + 1):
                for s in range(t):
                    acc = A[(j, s)]
                    for j2 in range(1, j):
                        for s2 in range(t):
                            acc = A_.add(acc, A_.mul(A_.col(Q[(j, s, j2, s2)]), c[(j2, s2)]))
                    c[(j, s)] = A_.scale_eta(acc)
            f = A_.const_f0()
            for (j, s), cjs in c.items():
                f = A_.add(f, A_.mul(A_.col(R[(j, s)]), cjs))
            r = A_.minus_y(f)
            if not final_only or t == steps:
                losses.append(A_.div(A_.vdot(r, r), 2 * m))
                fs.append(f)
            if t == steps:
                break
            # gradient factors at step t: u_j (space j−1) and b_j (space j)
            for j in range(1, L + 1):
                uj = A_.data(r, j - 1, transpose=False)
                for j2 in range(1, j):
                    for s2 in range(t):
                        w = A_.vdot(c[(j2, s2)], r)
                        uj = A_.add(uj, A_.mul(P[(j - 1, j2, s2)], A_.col(w)))
                u[(j, t)] = A_.div(uj, m)
            b[(L, t)] = Vc
            for l in range(L, 1, -1):
                nb = A_.layer(b[(l, t)], l - 1, backward=True)
                for s in range(t):
                    g = A_.vdot(b[(l, s)], b[(l, t)])
                    nb = A_.add(nb, A_.scale_eta(A_.mul(u[(l, s)], A_.col(g))))
                b[(l - 1, t)] = nb
            for j in range(1, L + 1):
                P[(j, j, t)] = b[(j, t)]
                for l in range(j + 1, L + 1):
                    P[(l, j, t)] = A_.layer(P[(l - 1, j, t)], l - 1, backward=False)
                R[(j, t)] = A_.vdot(Vc, P[(L, j, t)])
            # cached inner products involving the new step
            for j in range(1, L + 1):
                A[(j, t)] = A_.data(u[(j, t)], j - 1, transpose=True)
                for j2 in range(1, j):
                    for s2 in range(t + 1):
                        Q[(j, t, j2, s2)] = A_.vdot(u[(j, t)], P[(j - 1, j2, s2)])
                    for s in range(t):
                        Q[(j, s, j2, t)] = A_.vdot(u[(j, s)], P[(j - 1, j2, t)])
        return losses, fs

    def _run_recipe(self, steps: int, A_, final_only: bool, cw, aw):
        """:meth:`_run` for a hidden-only recipe (docs/theory.md §7). Every hidden matrix is
        ``W_ℓ^{(t)} = c_t W_ℓ + Σ_{s<t} a_{t,s} b_ℓ^{(s)} u_ℓ^{(s)ᵀ}`` with data-independent scalar
        polynomials ``c_t = cw[t]`` (None: exactly 1) and ``a_{t,s} = aw[t][s]``, shared by all hidden
        layers (decay and momentum only recombine the initial matrix and the past rank-one gradients).
        So ``h_ℓ^{(t)} = c_t^ℓ h_ℓ + Σ_{j≤ℓ,s<t} c_t^{ℓ−j} P_{ℓ,j,s} k_{j,s}`` with
        ``k_{j,s}(x) = a_{t,s} ⟨u_j^{(s)}, h_{j−1}^{(t)}(x)⟩``: the plain recursion with ``−λη`` replaced
        by ``a_{t,s}`` and powers of ``c_t`` on each word (plain GD: c_t = 1, a_{t,s} = −λη)."""
        L, m = self.depth, self.m
        b, u, P, A, Q, R = {}, {}, {}, {}, {}, {}
        losses, fs = [], []
        Vc = A_.const_V()

        def add(x, y):
            return y if x is None else x if y is None else A_.add(x, y)

        for t in range(steps + 1):
            cp = [None]  # cp[e] = c_t^e (None: exactly 1)
            for _ in range(L):
                cp.append(None if cw[t] is None else cw[t] if cp[-1] is None else A_.mul(cp[-1], cw[t]))

            def sc(e, p):  # c_t^e · p for a polynomial vector p
                return p if cp[e] is None or p is None else A_.mul(A_.col(cp[e]), p)

            c = {}
            for j in range(1, L + 1):
                for s in range(t):
                    acc = sc(j - 1, A[(j, s)])
                    for j2 in range(1, j):
                        part = None
                        for s2 in range(t):
                            part = add(part, A_.mul(A_.col(Q[(j, s, j2, s2)]), c[(j2, s2)]))
                        acc = add(acc, sc(j - 1 - j2, part))
                    c[(j, s)] = A_.mul(A_.col(aw[t][s]), acc)
            f = sc(L, A_.const_f0())
            for j in range(1, L + 1):
                part = None
                for s in range(t):
                    part = add(part, A_.mul(A_.col(R[(j, s)]), c[(j, s)]))
                f = add(f, sc(L - j, part))
            r = A_.minus_y(f)
            if not final_only or t == steps:
                losses.append(A_.div(A_.vdot(r, r), 2 * m))
                fs.append(f)
            if t == steps:
                break
            for j in range(1, L + 1):
                uj = sc(j - 1, A_.data(r, j - 1, transpose=False))
                for j2 in range(1, j):
                    part = None
                    for s2 in range(t):
                        w = A_.vdot(c[(j2, s2)], r)
                        part = add(part, A_.mul(P[(j - 1, j2, s2)], A_.col(w)))
                    uj = add(uj, sc(j - 1 - j2, part))
                u[(j, t)] = A_.div(uj, m)
            b[(L, t)] = Vc
            for l in range(L, 1, -1):
                nb = sc(1, A_.layer(b[(l, t)], l - 1, backward=True))
                for s in range(t):
                    g = A_.mul(aw[t][s], A_.vdot(b[(l, s)], b[(l, t)]))
                    nb = A_.add(nb, A_.mul(u[(l, s)], A_.col(g)))
                b[(l - 1, t)] = nb
            for j in range(1, L + 1):
                P[(j, j, t)] = b[(j, t)]
                for l in range(j + 1, L + 1):
                    P[(l, j, t)] = A_.layer(P[(l - 1, j, t)], l - 1, backward=False)
                R[(j, t)] = A_.vdot(Vc, P[(L, j, t)])
            for j in range(1, L + 1):
                A[(j, t)] = A_.data(u[(j, t)], j - 1, transpose=True)
                for j2 in range(1, j):
                    for s2 in range(t + 1):
                        Q[(j, t, j2, s2)] = A_.vdot(u[(j, t)], P[(j - 1, j2, s2)])
                    for s in range(t):
                        Q[(j, s, j2, t)] = A_.vdot(u[(j, s)], P[(j - 1, j2, t)])
        return losses, fs

    def _run_io(self, steps: int, A_, final_only: bool, coefs):
        """:meth:`_run` for a recipe that trains the input and/or readout layer (docs/theory.md §7).

        Index the layers j = 0 (W_0: inputs → space 0), 1..L (hidden), L + 1 (the readout Vᵀ: space
        L → outputs), with h_{−1}(x) = x and the backward vector b_{L+1} = 1. Then every gradient is
        ``G_j = b_j u_jᵀ``, ``u_j = (1/m) Σ_i r_i h_{j−1}(x_i)`` — for the readout ``u_{L+1} = ∂𝓛/∂V`` (a
        forward word), for the input ``u_0 = ξ = Xᵀr/m`` (data space) — and every trained layer is
        ``W_j^{(t)} = c_j W_j + Σ_{s<t} a_{j,s} b_j^{(s)} u_j^{(s)ᵀ}`` with scalar polynomials c, a of its
        layer type (``coefs[type] = (cw, aw)``, rates λ_in, λ, λ_V). Unrolled, with ``C(i..ℓ) = Π c``:

          h_ℓ^{(t)}(x) = C(0..ℓ) h_ℓ(x) + Σ_{j≤ℓ trained, s<t} C(j+1..ℓ) P_{ℓ,j,s} k_{j,s}(x),
          k_{j,s}(x) = a_{j,s} ⟨u_j^{(s)}, h_{j−1}^{(t)}(x)⟩,

        with data-independent words ``P_{ℓ,j,s} = W_ℓ⋯W_{j+1} b_j^{(s)}`` (initial matrices) and
        ``P_{L+1,j,s} = Vᵀ P_{L,j,s}``, ``P_{L+1,L+1,s} = 1``. So f^{(t)} needs only the cached inner
        products ``A_{j,s} = H_{j−1} u_j^{(s)}`` (H_{−1} = X: ξᵀx_i through the data alone),
        ``Q = ⟨u_j^{(s)}, P_{j−1,j2,s2}⟩`` and ``R = ⟨V, P_{L,j,s}⟩``; the backward pass starts from
        ``b_L^{(t)} = V^{(t)} = c_V V + Σ_s a_{V,s} u_{L+1}^{(s)}`` (V and forward words), and hidden
        layers are reached only through ``forward``/``backward`` (lazy layers work unchanged).

        Cost (issue 11): the data-side scalars k_{j,s}(x) are never formed; their triangular system is
        solved on scalar polynomials (``f = C f_0 + Σ w_{j,s} α_{j,s} A_{j,s}`` with the adjoint w, and
        ``⟨k, r⟩`` forwards), the readout enters f through V^{(t)}, the words of all lower layers pass
        through W_l in one product, and sums of scalar × vector products are one Toeplitz product
        (:meth:`_FloatOps.lincomb`). What remains above plain GD is inherent: one more backward product
        per step (down to b_0) and the words' higher degree (rows), and scalar work growing with the
        number of word pairs.
        """
        L, m, Lp = self.depth, self.m, self.depth + 1
        kind = {0: "input", Lp: "readout", **{j: "hidden" for j in range(1, L + 1)}}
        trained = [j for j in range(L + 2) if kind[j] in coefs]
        low = [j for j in trained if j <= L]  # layers whose gradients need backward vectors b_j
        b, u, P, A, Q, R = {}, {}, {}, {}, {}, {}
        losses, fs = [], []
        Vc = A_.const_V()
        readout = kind[Lp] in coefs

        def smul(x, y):  # scalar polynomials, None: exactly 1
            return y if x is None else x if y is None else A_.smul(x, y)

        for t in range(steps + 1):
            cl = [coefs[kind[j]][0][t] if kind[j] in coefs else None for j in range(L + 2)]
            memo = {}

            def C(lo, hi):  # Π_{i=lo..hi} c_i (None: exactly 1)
                if (lo, hi) not in memo:
                    if hi < lo:
                        memo[(lo, hi)] = None
                    else:
                        prev, ci = C(lo, hi - 1), cl[hi]
                        memo[(lo, hi)] = prev if ci is None else ci if prev is None else A_.smul(prev, ci)
                return memo[(lo, hi)]

            def a(j, s):
                return coefs[kind[j]][1][t][s]

            # The data-side scalars k_{j,s}(x) = α_{j,s} A_{j,s} + Σ_{j2<j, s2} M_{(j,s),(j2,s2)} k_{j2,s2} (a triangular
            # system with scalar polynomial coefficients α = a_{j,s} C(0..j−1), M = a_{j,s} C(j2+1..j−1) Q) are never
            # formed as vectors: f needs ρᵀk = wᵀ(α∘A) with w = ρ + Mᵀw (solved downwards), and the gradients
            # need ⟨k, r⟩ = α∘⟨A, r⟩ + M⟨k, r⟩ (solved upwards), both on scalar polynomials only.
            alpha, M = {}, {}
            for j in low:
                for s in range(t):
                    aj = a(j, s)
                    alpha[(j, s)] = smul(aj, C(0, j - 1))
                    for j2 in low:
                        if j2 >= j:
                            break
                        cj = smul(aj, C(j2 + 1, j - 1))
                        for s2 in range(t):
                            M[(j, s, j2, s2)] = A_.smul(cj, Q[(j, s, j2, s2)])
            # f^{(t)}(x) = ⟨V^{(t)}, h_L^{(t)}(x)⟩ with V^{(t)} = c_V V + Σ_s a_{V,s} u_{L+1}^{(s)}: the readout's
            # words enter through scalars ρ_{j,s} = C(j+1..L) ⟨V^{(t)}, P_{L,j,s}⟩, ⟨V^{(t)}, P_{L,j,s}⟩ =
            # c_V R_{j,s} + Σ_s' a_{V,s'} Q_{L+1,s',j,s}
            w = {}
            for j in reversed(low):
                for s in range(t):
                    rt = smul(cl[Lp], R[(j, s)])
                    if readout:
                        for s1 in range(t):
                            rt = A_.add(rt, A_.smul(a(Lp, s1), Q[(Lp, s1, j, s)]))
                    acc = smul(C(j + 1, L), rt)
                    for j1 in low:
                        if j1 > j:
                            for s1 in range(t):
                                acc = A_.add(acc, A_.smul(w[(j1, s1)], M[(j1, s1, j, s)]))
                    w[(j, s)] = acc
            terms = [(C(0, Lp), A_.const_f0())]
            if readout:
                terms += [(smul(a(Lp, s), C(0, L)), A[(Lp, s)]) for s in range(t)]
            terms += [(smul(w[key], alpha[key]), A[key]) for key in alpha]
            f = A_.lincomb(terms)
            r = A_.minus_y(f)
            if not final_only or t == steps:
                losses.append(A_.div(A_.vdotf(r, r), 2 * m))
                fs.append(f)
            if t == steps:
                break
            # gradient factors at step t: u_j = (1/m) Σ_i r_i h_{j−1}^{(t)}(x_i)
            kr = {}
            for j in low:
                for s in range(t):
                    acc = A_.smul(alpha[(j, s)], A_.vdotf(A[(j, s)], r))
                    for j2 in low:
                        if j2 >= j:
                            break
                        for s2 in range(t):
                            acc = A_.add(acc, A_.smul(M[(j, s, j2, s2)], kr[(j2, s2)]))
                    kr[(j, s)] = acc
            for j in trained:
                terms = [(C(0, j - 1), A_.data(r, j - 1, transpose=False))]
                for j2 in trained:
                    if j2 >= j:
                        break
                    cj = C(j2 + 1, j - 1)
                    for s2 in range(t):
                        terms.append((smul(cj, kr[(j2, s2)]), P[(j - 1, j2, s2)]))
                u[(j, t)] = A_.div(A_.lincomb(terms), m)
            if low:  # backward vectors at step t, from b_L = V^{(t)}
                terms = [(cl[Lp], Vc)]
                if readout:
                    terms += [(a(Lp, s), u[(Lp, s)]) for s in range(t)]
                b[(L, t)] = A_.lincomb(terms)
                if self.channel:  # the readout's channel entry (the readout bias) is no gradient factor
                    b[(L, t)] = A_.mask_last(b[(L, t)])
                for l in range(L, low[0], -1):
                    terms = [(cl[l], A_.layers([b[(l, t)]], l - 1, backward=True)[0])]
                    if kind[l] in coefs:
                        for s in range(t):
                            terms.append((A_.smul(a(l, s), A_.vdotf(b[(l, s)], b[(l, t)])), u[(l, s)]))
                    b[(l - 1, t)] = A_.lincomb(terms)
                    if self.channel:
                        b[(l - 1, t)] = A_.mask_last(b[(l - 1, t)])
                for j in low:
                    P[(j, j, t)] = b[(j, t)]
                for l in range(low[0] + 1, L + 1):  # the words of all lower layers through W_l in one product
                    js = [j for j in low if j < l]
                    for j, pw in zip(js, A_.layers([P[(l - 1, j, t)] for j in js], l - 1, backward=False)):
                        P[(l, j, t)] = pw
                for j in low:
                    R[(j, t)] = A_.vdotf(Vc, P[(L, j, t)])
            # cached inner products involving the new step
            for j in trained:
                A[(j, t)] = A_.data(u[(j, t)], j - 1, transpose=True)
                for j2 in trained:
                    if j2 >= j:
                        break
                    for s2 in range(t + 1):
                        Q[(j, t, j2, s2)] = A_.vdotf(u[(j, t)], P[(j - 1, j2, s2)])
                    for s in range(t):
                        Q[(j, s, j2, t)] = A_.vdotf(u[(j, s)], P[(j - 1, j2, t)])
        return losses, fs


def _engine_recipe(recipe, param):
    """The recipe the engine runs: None for plain GD (today's code path, bit for bit), the recipe
    itself for a supported (hidden-only) one, or a one-line SpecError."""
    if recipe is None:
        return None
    if not isinstance(recipe, Recipe):
        raise invalid("recipe", recipe, "None or a polyloss.recipe.Recipe")
    if recipe.is_plain_for(param):
        return None
    recipe.lr_multipliers(1, param)  # a custom parametrization needs explicit input/readout exponents: one-line error now
    return recipe


def _recipe_coefficients(recipe, steps: int, A_, lam: float, width: int | None = None, *, scaled: bool = False):
    """The scalar polynomials of ``W_ℓ^{(t)} = c_t W_ℓ + Σ_{s<t} a_{t,s} G^{(s)}`` (``G^{(s)} = b^{(s)}u^{(s)ᵀ}``,
    the gradient at step s) for t = 0..steps, in the arithmetic ``A_``: ``(cw, aw)`` with ``cw[t]``
    (None: exactly 1) and ``aw[t] = {s: a_{t,s}}``. The rules of :mod:`polyloss.recipe`: with
    g = G^{(t)} (+ ωW^{(t)} in l2 mode), buffer v ← βv + g (v = g at t = 0), direction D = v
    (Nesterov: g + βv; g without momentum), W^{(t+1)} = δ_t W^{(t)} − ηρ_tλ D with δ_t = 1 (l2),
    1 − ηρ_tω (decoupled), 1 − ω (independent), 1 − ηρ_tλω (torch). Each of g, v, D is kept as coefficients on the same
    basis {W, G^{(0)}, …}; a None coefficient is zero. ``scaled``: λ = fl(fl(c)·fl(n^-γ)) carries a
    constant c ≠ 1 (:attr:`Recipe.lr_scales`), two more roundings in its error bound."""
    from fractions import Fraction

    omega, beta, mode = recipe.weight_decay, recipe.momentum, recipe.wd_mode
    eta = A_.eta_poly()
    one = A_.const(1)
    lam_q = Fraction(lam)
    # |λ̂ − λ|: fl(n^-γ) is within 2u of n^-γ (see _BoundOps.scale_eta); with a constant, fl(c) and the
    # product add one rounding each: (1+u)²(1+2u) − 1 ≤ 4u(1+4u)
    lam_err = 0.0 if (lam == 1.0 and not scaled) else (4 if scaled else 2) * _U * lam * (1 + 4 * _U)

    def add(x, y):
        return y if x is None else x if y is None else A_.add(x, y)

    def mul(x, y):
        return None if x is None or y is None else A_.mul(x, y)

    def comb(x, y, fx=None, fy=None):  # fx·x + fy·y on coefficient dicts (factor None: 1)
        out = {}
        for key in set(x) | set(y):
            px, py = x.get(key), y.get(key)
            out[key] = add(px if fx is None else mul(fx, px), py if fy is None else mul(fy, py))
        return out

    cw, aw = [None], [{}]
    v = None  # the momentum buffer, {"W" or s: coefficient}
    for t in range(steps):
        rho = Fraction(recipe.rho(t, steps, width))  # exact (a float cosine or width-warmup value is the recipe's ρ)
        cur = dict(aw[t])
        cur["W"] = one if cw[t] is None else cw[t]
        g = {t: one}
        if mode == "l2" and omega != 0:
            g = comb(g, cur, None, A_.const(omega))
        if beta != 0:
            bc = A_.const(beta)
            v = dict(g) if t == 0 else comb(v, g, bc, None)
            d = comb(g, v, None, bc) if recipe.nesterov else v
        else:
            d = g
        step = A_.mul(A_.const(-rho * lam_q, float(abs(rho)) * lam_err), eta)  # −ηρ_tλ
        if mode == "decoupled" and omega != 0:
            decay = A_.add(one, A_.mul(A_.const(-rho * omega), eta))
        elif mode == "independent" and omega != 0:
            decay = A_.const(1 - omega)
        elif mode == "torch" and omega != 0:  # the layer's own rate λ times ω (λ's float error as for the step)
            decay = A_.add(one, A_.mul(A_.const(-rho * omega * lam_q, float(abs(rho * omega)) * lam_err), eta))
        else:
            decay = None
        new = comb(cur, d, decay, step)
        nw = new.pop("W")
        cw.append(None if (cw[t] is None and decay is None and d.get("W") is None) else nw)
        aw.append(new)
    return cw, aw


_U = 2.0**-53  # unit roundoff of float64
_TINY = 2.0**-1074  # smallest subnormal: bounds the absolute error of one underflowing product


def _gamma(k: int) -> float:
    """Higham's γ_k = k u / (1 − k u): a sum of k products carries relative error ≤ γ_k."""
    if k * _U >= 0.5:
        return float("inf")
    return k * _U / (1.0 - k * _U)


class _FloatOps:
    """The plain float arithmetic of :meth:`LossEngine._run` (the default, fast path)."""

    def __init__(self, engine: "LossEngine", K: int, eta0):
        self.xp, self.K, self.eta0, self.lam, self.y = engine.xp, K, eta0, engine.lam, engine.y
        self.H, self.layers_, self.V, self.f0 = engine.H, engine.layers, engine.weights.V, engine.f0
        self.X = getattr(engine, "_X", None)  # the inputs (absent in polynomial_arb's plain-GD copy)
        self.G = 1 if eta0 is None else int(eta0.shape[0])

    def const_V(self):
        return self.xp.broadcast_to(self.V, (1, self.G, self.V.shape[0]))

    def const_f0(self):
        return self.xp.broadcast_to(self.f0, (1, self.G, self.f0.shape[0]))

    def const(self, x, err: float = 0.0):
        """The scalar polynomial ``x`` (a Fraction or float; ``err`` bounds |x − intended value|), shape (1, G)."""
        return self.xp.full((1, self.G), float(x))

    def eta_poly(self):
        """η itself as a scalar polynomial: ``[η_0, 1]`` (``[0, 1]`` for monomials), truncated at K."""
        return tp.times_eta(self.xp.ones((1, self.G)), self.eta0, self.K)

    def add(self, a, b):
        return tp.add(a, b)

    def mul(self, a, b):
        return tp.mul(a, b, self.K)

    def vdot(self, a, b):
        return tp.vdot(a, b, self.K)

    def vdotf(self, a, b):
        """:meth:`vdot` for :meth:`LossEngine._run_io`: with a single centre one BLAS product of the
        coefficient rows (einsum does not use BLAS), then the same sums along anti-diagonals."""
        if a.shape[1] != 1 or b.shape[1] != 1:
            return tp.vdot(a, b, self.K)
        with _beyond_K(_deg(a) + _deg(b) > self.K):
            M = a[:, 0, :] @ b[:, 0, :].T
        return _antidiag(M, self.K)[..., None]

    def smul(self, a, b):
        """:meth:`mul` of two scalar polynomials; with a single centre one ``numpy.convolve``."""
        if a.shape[1] == 1 and b.shape[1] == 1 and self.xp is np:
            D = min(_deg(a) + _deg(b), self.K)
            with _beyond_K(_deg(a) + _deg(b) > self.K):
                return np.convolve(a[: D + 1, 0], b[: D + 1, 0])[: D + 1, None]
        return tp.mul(a, b, self.K)

    def lincomb(self, terms):
        """``Σ_i q_i p_i`` for scalar polynomials ``q_i`` (D+1, G) (None: exactly 1) and polynomial vectors
        ``p_i`` (D+1, G, k), truncated at K. The products go into one matrix product per centre (the
        Toeplitz matrices of the ``q_i`` side by side times the ``p_i`` stacked, :func:`_block_toeplitz`):
        with a single centre those of two long polynomials (:func:`_toeplitz_pays`), with several all
        but those whose ``p`` is shared by the centres; the others as in :meth:`mul`."""
        out, big = None, []
        for q, p in terms:
            if q is None:
                out = p if out is None else tp.add(out, p)
            elif (_toeplitz_pays(_deg(q), _deg(p), self.K) if self.G == 1 else
                  p.shape[1] > 1 and p.strides[1] != 0):  # several centres: batched BLAS, unless p is shared
                big.append((q, p))
            else:
                out = _add(out, tp.mul(q[..., None], p, self.K))
        if big:
            out = _add(out, _block_toeplitz(self.xp, big, self.K))
        return out

    def layers(self, ps, idx: int, backward: bool):
        """:meth:`layer` of every polynomial vector in ``ps`` as one matrix product (one pass over the
        matrix instead of one each); a vector broadcast over the centres (the words of step 0 in
        Taylor mode: independent of η) is multiplied once."""
        op = self.layers_[idx]
        rows, shapes = [], []
        for p in ps:
            q = p[:, :1] if p.shape[1] > 1 and p.strides[1] == 0 else p
            rows.append(q.reshape(q.shape[0] * q.shape[1], q.shape[2]))
            shapes.append((q.shape[:2], p.shape[1]))
        Z = rows[0] if len(rows) == 1 else self.xp.concatenate(rows, axis=0)
        out = op.backward(Z) if backward else op.forward(Z)
        res, lo = [], 0
        for (qs, G) in shapes:
            hi = lo + qs[0] * qs[1]
            o = out[lo:hi].reshape(qs + (out.shape[1],))
            res.append(o if qs[1] == G else self.xp.broadcast_to(o, (qs[0], G, out.shape[1])))
            lo = hi
        return res

    @staticmethod
    def col(a):
        return a[..., None]

    def mask_last(self, p):
        """The vector polynomial ``p`` with its last coordinate set to 0 (exact)."""
        q = p.copy()
        q[..., -1] = 0
        return q

    def scale_eta(self, p):  # −λ η p
        return tp.times_eta(p, self.eta0, self.K) * (-self.lam)

    def minus_y(self, f):
        r = f.copy()
        r[0] = r[0] - self.y
        return r

    @staticmethod
    def div(a, m):
        return a / m

    def data(self, p, j: int, transpose: bool):  # rows ↦ rows · H_j (or · H_jᵀ); j = −1: the inputs X
        Hj = self.X if j < 0 else self.H[j]
        M = Hj.T if transpose else Hj
        return LossEngine._apply(p, lambda Z: Z @ M)

    def layer(self, p, idx: int, backward: bool):
        op = self.layers_[idx]
        return LossEngine._apply(p, op.backward if backward else op.forward)


class _B:
    """A float array and a rigorous bound on its absolute error (``e=None``: exact)."""

    __slots__ = ("v", "e")

    def __init__(self, v, e=None):
        self.v, self.e = v, e


def _fin(e, k: int):
    """Cover the rounding of a bound computed from nonnegative terms with at most ``k`` summands
    (and a few products), and of underflow: inflate by 1 + 4(k+4)u, add (k+4)·2^-1074."""
    return e * (1.0 + 4.0 * (k + 4) * _U) + (k + 4) * _TINY


def _deg(a) -> int:
    return a.shape[0] - 1


class _BoundOps(_FloatOps):
    """Running error analysis of the monomial recursion (η itself the variable, ``eta0=None``).

    Every value is computed by exactly the operations of :class:`_FloatOps` (so the values are
    bit-identical to the fast path) and carries a rigorous bound on its distance to the exact
    result of the same recursion on the given float64 weights and data (IEEE arithmetic, any
    summation order or FMA, gradual underflow): for ``ĉ = Σ_{i≤k} â_i b̂_i`` computed with inputs
    ``|â − a| ≤ e_a``, ``|b̂ − b| ≤ e_b`` the bound is
    ``Σ |â_i| (e_b + γ_k |b̂_i|) + e_a (|b̂_i| + e_b)`` (Higham, *Accuracy and Stability*, §3.1),
    itself inflated to cover its own rounding (:func:`_fin`). Needs dense hidden layers.
    """

    def __init__(self, engine: "LossEngine", K: int):
        super().__init__(engine, K, None)
        xp = self.xp
        self.absW = [xp.abs(op.W) for op in self.layers_]
        W0 = engine.weights.W0
        X = xp.asarray(engine._X)
        # the data pass H_0 = X W0ᵀ, H_ℓ = H_{ℓ−1} W_ℓᵀ, f0 = H_L V, with its rounding errors
        H, eH = self.H, [_fin(_gamma(W0.shape[1]) * (xp.abs(X) @ xp.abs(W0).T), W0.shape[1])]
        g = _gamma(engine.width)
        for l in range(1, len(H)):
            eH.append(_fin((eH[-1] + g * xp.abs(H[l - 1])) @ self.absW[l - 1].T, engine.width))
        self.eH = eH
        self.ef0 = _fin((eH[-1] + g * xp.abs(H[-1])) @ xp.abs(self.V), engine.width)
        self.exact_lam = self.lam == 1.0

    def const_V(self):
        return _B(super().const_V())

    def const_f0(self):
        return _B(super().const_f0(), self.xp.broadcast_to(self.ef0, (1, 1, self.ef0.shape[0])))

    def const(self, x, err: float = 0.0):
        from fractions import Fraction

        v = super().const(x)
        q = Fraction(x)
        e = float(abs(Fraction(float(q)) - q)) * (1 + 4 * _U) + float(err)
        return _B(v, None if e == 0 else self.xp.full(v.shape, _fin(e, 2)))

    def eta_poly(self):
        return _B(super().eta_poly())

    def add(self, a, b):
        v = tp.add(a.v, b.v)
        e = self.xp.abs(v) * _U
        for x in (a.e, b.e):
            if x is not None:
                e = tp.add(e, x)
        return _B(v, _fin(e, 3))

    def mul(self, a, b):
        v = tp.mul(a.v, b.v, self.K)
        xp, k = self.xp, min(_deg(a.v), _deg(b.v)) + 1
        ab = xp.abs(b.v)
        e = tp.mul(xp.abs(a.v), _gamma(k) * ab if b.e is None else b.e + _gamma(k) * ab, self.K)
        if a.e is not None:
            e = tp.add(e, tp.mul(a.e, ab if b.e is None else ab + b.e, self.K))
        return _B(v, _fin(e, k))

    def vdot(self, a, b):
        v = tp.vdot(a.v, b.v, self.K)
        xp, k = self.xp, a.v.shape[-1] * (min(_deg(a.v), _deg(b.v)) + 1)
        ab = xp.abs(b.v)
        e = tp.vdot(xp.abs(a.v), _gamma(k) * ab if b.e is None else b.e + _gamma(k) * ab, self.K)
        if a.e is not None:
            e = tp.add(e, tp.vdot(a.e, ab if b.e is None else ab + b.e, self.K))
        return _B(v, _fin(e, k))

    def vdotf(self, a, b):
        """:meth:`vdot` with the values of :meth:`_FloatOps.vdotf` (the same bound: any summation order)."""
        f = super().vdotf
        v = f(a.v, b.v)
        xp, k = self.xp, a.v.shape[-1] * (min(_deg(a.v), _deg(b.v)) + 1)
        ab = xp.abs(b.v)
        e = f(xp.abs(a.v), _gamma(k) * ab if b.e is None else b.e + _gamma(k) * ab)
        if a.e is not None:
            e = tp.add(e, f(a.e, ab if b.e is None else ab + b.e))
        return _B(v, _fin(e, k))

    def smul(self, a, b):
        """:meth:`mul` with the values of :meth:`_FloatOps.smul` (the same bound: any summation order)."""
        f = super().smul
        v = f(a.v, b.v)
        xp, k = self.xp, min(_deg(a.v), _deg(b.v)) + 1
        ab = xp.abs(b.v)
        e = f(xp.abs(a.v), _gamma(k) * ab if b.e is None else b.e + _gamma(k) * ab)
        if a.e is not None:
            e = tp.add(e, f(a.e, ab if b.e is None else ab + b.e))
        return _B(v, _fin(e, k))

    def lincomb(self, terms):
        """:meth:`_FloatOps.lincomb` (same values) with a bound: each coefficient is a sum of at most N
        products or terms (in whatever order), so with inputs within e its error is at most
        ``Σ_i |q̂_i| (e_{p_i} + γ_N |p̂_i|) + e_{q_i} (|p̂_i| + e_{p_i})`` (a term without q: e_p + γ_N |p̂|)."""
        f = super().lincomb
        v = f([(None if q is None else q.v, p.v) for q, p in terms])
        if len(terms) == 1 and terms[0][0] is None:
            return terms[0][1]
        N = sum(1 if q is None else min(_deg(q.v), _deg(p.v)) + 1 for q, p in terms)
        xp, g, et = self.xp, _gamma(N), []
        for q, p in terms:
            ap = xp.abs(p.v)
            ep = g * ap if p.e is None else p.e + g * ap
            et.append((None if q is None else xp.abs(q.v), ep))
            if q is not None and q.e is not None:
                et.append((q.e, ap if p.e is None else ap + p.e))
        e = f(et)
        return _B(v, _fin(xp.broadcast_to(e, v.shape) if e.shape != v.shape else e, 2 * N))

    def layers(self, ps, idx: int, backward: bool):
        """:meth:`layer` of each vector, the values from :meth:`_FloatOps.layers` (one product)."""
        vs = super().layers([p.v for p in ps], idx, backward)
        aW = self.absW[idx]
        return [self._matmul(p, v, aW if backward else aW.T, None, aW.shape[0]) for p, v in zip(ps, vs)]

    @staticmethod
    def col(a):
        return _B(a.v[..., None], None if a.e is None else a.e[..., None])

    def mask_last(self, p):
        """Values and bounds with the last coordinate set to 0 (exact: no rounding)."""
        v = p.v.copy()
        v[..., -1] = 0
        if p.e is None:
            return _B(v, None)
        e = self.xp.array(self.xp.broadcast_to(p.e, p.v.shape))
        e[..., -1] = 0
        return _B(v, e)

    def scale_eta(self, p):
        v = tp.times_eta(p.v, None, self.K) * (-self.lam)
        if self.exact_lam:  # η shifts coefficients, −1 is exact
            e = None if p.e is None else tp.times_eta(p.e, None, self.K)
        else:  # λ̂ = fl(n^-γ) within 2u of n^-γ, one more rounding in the product
            xp, lam = self.xp, abs(self.lam)
            pe = 0 if p.e is None else p.e
            e = _fin(tp.times_eta(lam * pe * (1 + _U) + 3 * _U * lam * (xp.abs(p.v) + pe), None, self.K), 3)
        return _B(v, e)

    def minus_y(self, f):
        r = super().minus_y(f.v)
        e = self.xp.zeros(r.shape, dtype=r.dtype) if f.e is None else self.xp.array(f.e, copy=True) + 0 * r
        e[0] = e[0] + _U * self.xp.abs(r[0])
        return _B(r, _fin(e, 2))

    def div(self, a, m):
        v = a.v / m
        e = _U * self.xp.abs(v)
        if a.e is not None:
            e = e + a.e / m
        return _B(v, _fin(e, 2))

    def _matmul(self, p, v, absM, eM, k):
        e = p.e
        g = _gamma(k) * self.xp.abs(p.v)
        e = LossEngine._apply(g if e is None else e + g, lambda Z: Z @ (absM if eM is None else absM + eM))
        if eM is not None:
            e = e + LossEngine._apply(self.xp.abs(p.v), lambda Z: Z @ eM)
        return _B(v, _fin(e, k))

    def data(self, p, j: int, transpose: bool):
        v = super().data(p.v, j, transpose)
        if j < 0:  # the inputs X, exact
            M = self.X.T if transpose else self.X
            return self._matmul(p, v, self.xp.abs(M), None, M.shape[0])
        M, eM = (self.H[j].T, self.eH[j].T) if transpose else (self.H[j], self.eH[j])
        return self._matmul(p, v, self.xp.abs(M), eM, M.shape[0])

    def layer(self, p, idx: int, backward: bool):
        v = super().layer(p.v, idx, backward)
        aW = self.absW[idx]
        return self._matmul(p, v, aW if backward else aW.T, None, aW.shape[0])


def _beyond_K(truncated: bool):
    """Silence overflow in products of degree above K, computed by one BLAS call and then discarded
    (they never mix with the kept coefficients; the loop of :func:`_tpoly.vdot` does not form them)."""
    import contextlib

    return np.errstate(over="ignore", invalid="ignore") if truncated else contextlib.nullcontext()


def _add(x, y):
    return y if x is None else tp.add(x, y)


def _block_toeplitz(xp, prods, K: int):
    """``Σ_i q_i p_i`` (truncated at K) as one matrix product per centre: the lower-triangular Toeplitz
    matrices of the ``q_i`` side by side times the coefficient rows of the ``p_i`` stacked."""
    D = min(max(_deg(q) + _deg(p) for q, p in prods), K)
    G = max(max(q.shape[1], p.shape[1]) for q, p in prods)
    Ts, Ps = [], []
    for q, p in prods:
        Dq, Dp = _deg(q), min(_deg(p), D)
        idx = np.arange(D + 1)[:, None] - np.arange(Dp + 1)[None, :]
        ok = xp.asarray((idx >= 0) & (idx <= Dq))
        T = xp.where(ok[None], xp.moveaxis(q, 0, -1)[:, xp.asarray(np.clip(idx, 0, Dq))], 0.0)  # (G, D+1, Dp+1)
        Ts.append(xp.broadcast_to(T, (G,) + T.shape[1:]))
        Ps.append(xp.broadcast_to(p[: Dp + 1], (Dp + 1, G, p.shape[2])))
    T = Ts[0] if len(Ts) == 1 else xp.concatenate(Ts, axis=2)
    if G == 1:
        Pm = Ps[0] if len(Ps) == 1 else xp.concatenate(Ps, axis=0)
        return (T[0] @ Pm[:, 0, :])[:, None, :]
    # contiguous (G, rows, k) operands: numpy's batched matmul leaves BLAS for strided ones (100× slower)
    Pm = xp.empty((G, sum(p.shape[0] for p in Ps), Ps[0].shape[2]), dtype=Ps[0].dtype)
    lo = 0
    for p in Ps:
        Pm[:, lo : lo + p.shape[0]] = xp.moveaxis(p, 0, 1)
        lo += p.shape[0]
    return xp.ascontiguousarray(xp.moveaxis(xp.matmul(xp.ascontiguousarray(T), Pm), 1, 0))


def _antidiag(M, K: int):
    """``out[k] = Σ_{i+j=k} M[i, j]`` for k ≤ K (trailing axes batch): row i of M shifted by i (a strided
    view of a zero-padded copy), then one sum over the rows."""
    xp = namespace_of(M)
    D = min(M.shape[0] + M.shape[1] - 2, K)
    M = M[: D + 1, : D + 1]
    r, c = M.shape[0], M.shape[1]
    W = r + c  # padded row length: entry (i, j) sits at i·W + j = i·(W − 1) + (i + j)
    Z = xp.zeros((r, W) + M.shape[2:], dtype=M.dtype)
    Z[:, :c] = M
    Z = Z.reshape((r * W,) + M.shape[2:])[: r * (W - 1)].reshape((r, W - 1) + M.shape[2:])
    return Z[:, : D + 1].sum(axis=0)


def _toeplitz_pays(dq: int, dp: int, K: int) -> bool:
    """Whether ``q · p`` (degrees dq, dp; p the vector) joins the one Toeplitz product of a sum: a dense
    (D+1)×(dp+1) block at BLAS speed against a numpy loop over q's coefficients (a pass over p each,
    plus an output of its own). Only a short q against a long p loses, its block being mostly zeros."""
    return dq >= dp or min(dq + dp, K) + 1 <= 16 * (dq + 1)


def arb_cost(depth: int, width: int, m: int, steps: int, degree: int) -> float:
    """Rough count of scalar ball operations of :meth:`LossEngine.polynomial_arb` (about 1e6 per
    second in Python object arrays): the matrix products of the recursion."""
    return float(degree + 1) * (m + depth * steps) * width * max(width, m) * depth * steps


def arb_seconds(depth: int, width: int, m: int, steps: int, degree: int, prec: int) -> float:
    """Rough (pessimistic) wall time of :meth:`LossEngine.polynomial_arb` at ``prec`` bits on one
    core: 3 ns × (1 + prec/512) per operation of :func:`arb_cost` (measured 2–12 ns at 128–2048 bits)."""
    return arb_cost(depth, width, m, steps, degree) * 3e-9 * (1 + prec / 512)


def _arb_to_float(a):
    """Float64 midpoints of an object array of arb balls, and bounds on |float − exact value|."""
    import flint

    mid = np.empty(a.shape)
    err = np.empty(a.shape)
    for idx, x in np.ndenumerate(a):
        x = flint.arb(x)
        v = float(x.mid())
        mid[idx] = v
        if not np.isfinite(v) or (v != 0 and abs(v) < np.finfo(float).tiny) or (v == 0 and not x.is_zero()):
            err[idx] = np.inf  # overflow, or below the normal range: not representable to relative accuracy
            continue
        e = abs(x - flint.arb(v)).upper()  # radius + rounding of the midpoint, as an upper bound
        err[idx] = float(e) * (1 + 2 * _U) + _TINY
    return mid, err


def _host_bound(e):
    """Error bounds to the host, with NaN (from an overflowed bound) read as +inf."""
    e = np.array(to_host(e), dtype=np.float64)
    e[~(e >= 0)] = np.inf
    return e


def _pad(a, degree: int):
    """Coefficients along the last axis cut or zero-padded to ``degree`` + 1 entries."""
    a = np.asarray(a)
    if a.shape[-1] > degree + 1:
        return np.ascontiguousarray(a[..., : degree + 1])
    out = np.zeros(a.shape[:-1] + (degree + 1,), dtype=a.dtype)
    out[..., : a.shape[-1]] = a
    return out


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise invalid("steps", steps, "an integer >= 1")
    return int(steps)
