r"""Lazily sampled hidden layers: Gaussian conditioning on the few vectors the engine touches.

The t-step program of :mod:`polyloss.engine` applies each hidden ``W_ℓ`` (entries iid N(0, 1/n))
and ``W_ℓᵀ`` only to a handful of vectors (THEORY §3). So ``W_ℓ`` is sampled only on that
subspace, one query at a time, and is never formed: cost O(dim·k²) per layer, memory O(dim·k),
``k`` the number of independent directions touched (``dim`` defined below).

Derivation (exact in distribution)
----------------------------------
Let ``W`` be n×n with iid N(0, 1/n) entries, and suppose the products seen so far are
``W q_i = a_i`` for an orthonormal set ``Q_in = [q_1..q_p]`` and ``Wᵀ o_j = b_j`` for an
orthonormal set ``Q_out = [o_1..o_q]`` (any interleaving of forward and backward queries; a
query outside the span of its side's basis is reduced to its orthonormal residual, so both bases
stay orthonormal). Complete both bases to orthonormal bases of Rⁿ, ``[Q_in, Q_in⊥]`` and
``[Q_out, Q_out⊥]``. By rotation invariance ``M = [Q_out, Q_out⊥]ᵀ W [Q_in, Q_in⊥]`` has iid
N(0, 1/n) entries. The observations are exactly the blocks ``M[:, :p]`` (= coordinates of the
``a_i``) and ``M[:q, :]`` (= coordinates of the ``b_j``); the only unobserved block is
``M[q:, p:] = Q_out⊥ᵀ W Q_in⊥``, which is independent of the observed ones. Hence, given the
observations,

    W = A Q_inᵀ + Q_out Bᵀ (I − Q_in Q_inᵀ) + P_out⊥ G P_in⊥,   G fresh iid N(0, 1/n),

with ``A = [a_i]``, ``B = [b_j]``, ``P⊥ = I − Q Qᵀ`` (the two observed parts agree on the shared
block ``Q_outᵀ W Q_in``, which the construction below keeps consistent). Therefore a forward
query ``x = Q_in c + r`` (``r ⊥ Q_in``, ``q = r/‖r‖`` a new direction) is answered by

    W x = A c + ‖r‖ (Q_out Bᵀ q + P_out⊥ g),   g ~ N(0, I_n/n) fresh,

and ``q``, ``W q`` join ``Q_in``, ``A``; a backward query is the mirror image
(``Wᵀ y = B c + ‖r‖ (Q_in Aᵀ o + P_in⊥ g)``). ``r`` is found by two passes of classical
Gram–Schmidt; a batch of rows (e.g. the m rows of the data pass, rank ≤ d) is reduced by
greedy pivoted Gram–Schmidt to an orthonormal basis of its residual row space, and only residuals
above ``tol`` relative to their row's norm add directions (the rest are answered from history,
an error ≤ tol·‖x‖). A vector already in the span is answered deterministically from history, so
one ``LazyLayer`` is one fixed matrix across all calls, however many engines and minimiser
steps query it — up to rounding: a vector asked again after the basis has grown is projected on
more directions, which can move the last bit of its answer (the same query sequence, e.g. one
``sample`` record, always gives the same bits).

Two coordinate systems (``coords``)
-----------------------------------
* ``"ambient"``: vectors live in Rⁿ (``dim = n``); ``W_0`` (n×d) and ``V`` (n,) are drawn densely,
  entry for entry as in :func:`polyloss.weights.sample_weights`. Memory O(n·k), cost O(n·k²).
* ``"reduced"`` (default for wide nets): the engine only ever takes inner products between vectors
  of the same layer space, so each layer space is represented by coordinates in an orthonormal
  *frame* that grows as directions are discovered (``dim = capacity`` ≪ n; unused slots are 0).
  A fresh Gaussian ``g ~ N(0, I_n/n)`` in a space whose frame has ``u`` slots in use splits into
  its frame coordinates (iid N(0, 1/n), ``u`` of them) and its part orthogonal to the frame, an
  isotropic Gaussian in ``n − u`` dimensions; for a batch of k fresh vectors that part is
  ``Q R`` with ``Q`` Haar (a new frame slot per column, independent of everything) and ``R`` the
  Bartlett factor: ``R_jj² ~ χ²_{n−u−j}/n``, ``R_ij ~ N(0, 1/n)`` (i < j), independent. Likewise
  ``W_0`` is its Bartlett factor in the first ``min(n, d)`` slots of space 0 (``R_jj² ~ χ²_{n−j}/d``)
  and ``V = σ_V·√(χ²_n)`` times the first slot of space L. Every inner product the engine forms
  then has exactly its finite-width law, at a cost that does not depend on n (only the χ²
  degrees of freedom do). ``W0.shape[0] == V.shape[0] == capacity``; ``width`` is the nominal n.
  Exceeding the capacity raises :class:`LazyCapacityError` (the default capacity,
  :func:`default_capacity`, has a wide margin; a query with components in unused slots is refused).

Randomness
----------
From a ``numpy.random.SeedSequence`` ``S`` (e.g. ``child_seed(seed, n, s)``), children are derived
by extending its spawn key (never with ``spawn()``, which is stateful): ``S/(0,)`` draws ``W_0`` then
``V``; ``S/(ℓ, 0)`` the Gaussian stream of layer ℓ and ``S/(ℓ, 1)`` its χ²/Bartlett stream
(ℓ = 1..L), consumed in query order. Gaussians come from ``make_rng(xp, ·)`` in ambient
coordinates; in reduced coordinates every draw is small and made on the host, so numpy and CuPy
give the same network there. A lazy network and a dense one drawn from the same seed are
*different networks with the same distribution*; so are the ambient and reduced lazy networks.
"""

from __future__ import annotations

import math

import numpy as np

from polyloss._backend import make_rng, to_host
from polyloss.errors import PolylossError, invalid
from polyloss.spec import NetworkSpec, Parametrization

__all__ = [
    "LazyLayer",
    "LazyWeights",
    "LazyCapacityError",
    "sample_lazy_weights",
    "default_capacity",
    "draw_weights",
    "resolve_sampler",
    "SAMPLERS",
    "LAZY_MIN_WIDTH",
    "DEFAULT_TOL",
]

SAMPLERS = ("dense", "lazy", "auto")
LAZY_MIN_WIDTH = 2048  # sampler="auto" is lazy from this width on
DEFAULT_TOL = 1e-10  # relative residual above which a query adds a new direction


class LazyCapacityError(PolylossError):
    """A reduced-coordinate lazy network needed more frame slots than it was given."""


def default_capacity(width: int, input_dim: int, depth: int, steps: int | None = None) -> int:
    """Frame slots per layer space for reduced coordinates: ``d + 1`` for the data and V, plus a
    margin for the words of a ``steps``-step program (measured need for L ≤ 4, t ≤ 3 is ≤ 2·L·t + 2;
    the margin is 16·L·t + 32, t = 3 when unknown), capped at n."""
    t = 3 if steps is None else int(steps)
    return int(min(width, input_dim + 1 + 16 * depth * t + 32))


def _child(seq: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + tuple(int(k) for k in key),
                                  pool_size=seq.pool_size)


class _Space:
    """One layer space: the array length ``dim``, the true dimension ``n``, and the frame slots in use."""

    __slots__ = ("n", "dim", "used")

    def __init__(self, n: int, dim: int, used: int):
        self.n, self.dim, self.used = int(n), int(dim), int(used)


class LazyLayer:
    """One hidden ``W`` (n×n, iid N(0, 1/n)) sampled lazily by Gaussian conditioning.

    Same interface as :class:`polyloss.weights.DenseLayer`: ``forward(X)`` maps each row x ↦ W x,
    ``backward(Y)`` each row y ↦ Wᵀ y. Construct through :func:`sample_lazy_weights`.
    """

    def __init__(self, space_in: _Space, space_out: _Space, seed_seq: np.random.SeedSequence, xp=np,
                 tol: float = DEFAULT_TOL):
        self.xp = xp
        self.tol = float(tol)
        self._spaces = (space_in, space_out)
        reduced = space_in.dim < space_in.n or space_out.dim < space_out.n or space_in.used < space_in.dim
        self._reduced = reduced
        self._gauss_xp = np if reduced else xp
        self._gauss = make_rng(self._gauss_xp, _child(seed_seq, 0))
        self._bartlett = make_rng(np, _child(seed_seq, 1))
        # side 0 = forward: basis of queried inputs (space_in) and W q (space_out);
        # side 1 = backward: basis of queried outputs (space_out) and Wᵀ o (space_in).
        self._Q = [xp.zeros((0, space_in.dim)), xp.zeros((0, space_out.dim))]
        self._A = [xp.zeros((0, space_out.dim)), xp.zeros((0, space_in.dim))]

    # ------------------------------------------------------------------ public
    @property
    def rank(self) -> tuple:
        """(forward directions, backward directions) realised so far."""
        return int(self._Q[0].shape[0]), int(self._Q[1].shape[0])

    def forward(self, X):
        return self._query(X, 0)

    def backward(self, Y):
        return self._query(Y, 1)

    # ------------------------------------------------------------------ internals
    def _query(self, X, side: int):
        xp = self.xp
        src = self._spaces[side]
        X = xp.asarray(X, dtype=xp.float64)
        one = X.ndim == 1
        X2 = X.reshape(1, -1) if one else X
        if X2.ndim != 2 or X2.shape[1] != src.dim:
            raise invalid("X", f"array of shape {X.shape}", f"rows of length {src.dim}")
        if src.used < src.dim and X2.shape[0] and bool(xp.any(X2[:, src.used:] != 0)):
            raise ValueError("query has components in frame slots not yet realised; "
                             "reduced-coordinate vectors must be built from the network's own vectors")
        with np.errstate(over="ignore", invalid="ignore"):
            C, R = self._project(X2, self._Q[side])
            Qn = self._new_directions(X2, R, self._Q[side])
            if Qn.shape[0]:
                self._extend(side, Qn)
                # answer from the extended history, exactly as any later query of X will be
                C, _ = self._project(X2, self._Q[side])
            out = C @ self._A[side]
        return out[0] if one else out

    @staticmethod
    def _project(X, Q):
        """Coefficients on the orthonormal rows ``Q`` and the residual (two Gram–Schmidt passes)."""
        C = X @ Q.T
        R = X - C @ Q
        C2 = R @ Q.T
        R -= C2 @ Q
        return C + C2, R

    def _row_norms(self, X):
        return self.xp.sqrt(self.xp.sum(X * X, axis=1))

    def _new_directions(self, X, R, Q):
        """An orthonormal basis (rows) of the span of the residual rows ``R``, keeping only residuals
        above ``tol`` relative to their own query row: greedy pivoted Gram–Schmidt (pick the row with
        the largest relative residual, orthonormalise it twice against everything known, project it
        out of all rows, repeat). Large batches (numpy, or reduced coordinates on any backend) first
        take the bulk of the directions in one LAPACK call on the host (:meth:`_bulk_directions`);
        the greedy loop then only confirms or mops up."""
        xp = self.xp
        xn = self._row_norms(X)
        rn = self._row_norms(R)
        ok = xp.isfinite(xn) & xp.isfinite(rn) & (xn > 0)
        cand = ok & (rn > self.tol * xn)
        if not bool(xp.any(cand)):
            return xp.zeros((0, X.shape[1]))
        idx = xp.nonzero(cand)[0]
        scale = xn[idx]
        Rw = R[idx] / scale[:, None]  # relative residuals
        room = X.shape[1] - Q.shape[0]
        new = []
        if idx.shape[0] > 8 and (xp is np or self._reduced):
            # on the host (reduced coordinates are short rows): the same choice, hence the same
            # network, on every backend
            N = xp.asarray(self._bulk_directions(to_host(Rw), to_host(Q), room))
            if N.shape[0]:
                new = list(N)
                for _ in range(2):
                    Rw -= (Rw @ N.T) @ N
        while len(new) < room:
            rel = self._row_norms(Rw)
            j = int(xp.argmax(rel))
            if not float(rel[j]) > self.tol:
                break
            q = Rw[j] / rel[j]
            for _ in range(2):  # re-orthogonalise against everything known
                q = q - (Q @ q) @ Q
                for p in new:
                    q = q - (p @ q) * p
                q = q / xp.linalg.norm(q)
            new.append(q)
            Rw -= xp.outer(Rw @ q, q)
        return xp.stack(new) if new else xp.zeros((0, X.shape[1]))

    def _bulk_directions(self, Rs, Q, room):
        """Most of the greedy choice in one LAPACK call on the relative residual rows ``Rs`` (b × dim):
        column-pivoted QR of ``Rsᵀ`` when min(b, dim) is small (|R_kk| is then exactly the largest
        remaining relative residual at step k), else pivoted Cholesky of the Gram ``Rs Rsᵀ`` (the same
        pivot rule, resolved to ~1e-7 relative; the greedy loop finishes below that). The chosen
        directions are orthonormalised twice against ``Q`` and among themselves."""
        import scipy.linalg  # noqa: PLC0415

        b, dim = Rs.shape
        if min(b, dim) <= 512 or dim <= b:
            Qr, Rr, _ = scipy.linalg.qr(Rs.T, mode="economic", pivoting=True, check_finite=False)
            k = min(int(np.count_nonzero(np.abs(np.diag(Rr)) > self.tol)), room)
            N = Qr[:, :k].T
        else:
            _, piv, k, _ = scipy.linalg.lapack.dpstrf(Rs @ Rs.T, tol=1e-14, lower=0)
            k = min(int(k), room)
            N = Rs[piv[:k] - 1]
        if k == 0:
            return np.zeros((0, dim))
        for _ in range(2):  # against the known basis, then among themselves
            N = N - (N @ Q.T) @ Q
            N = np.linalg.qr(N.T)[0].T
        return N

    def _extend(self, side: int, Qn):
        """Answer the new orthonormal directions ``Qn`` (rows) by conditioning, and record them."""
        xp = self.xp
        Qx, Ax = self._Q[1 - side], self._A[1 - side]  # the other side's basis and its answers
        known = (Qn @ Ax.T) @ Qx  # component along the other side's basis, fixed by history
        fresh = self._fresh(self._spaces[1 - side], Qn.shape[0])
        for _ in range(2):  # P⊥ of the other side's basis, two passes
            fresh -= (fresh @ Qx.T) @ Qx
        self._Q[side] = xp.concatenate([self._Q[side], Qn], axis=0)
        self._A[side] = xp.concatenate([self._A[side], known + fresh], axis=0)

    def _fresh(self, space: _Space, k: int):
        """``k`` rows, each an independent N(0, I_n/n) vector of ``space`` in its coordinates."""
        xp, n, u = self.xp, space.n, space.used
        F = xp.zeros((k, space.dim))
        if u:
            g = self._gauss.standard_normal((k, u), dtype=np.float64)
            F[:, :u] = xp.asarray(g) * (1.0 / math.sqrt(n))
        new = min(k, n - u)
        if new > 0:  # reduced coordinates: the part orthogonal to the frame, by Bartlett
            if u + new > space.dim:
                raise LazyCapacityError(
                    f"lazy network: a layer space needs more than its {space.dim} frame slots "
                    f"(width {n}); sample it with a larger `capacity`")
            Rb = _bartlett(self._bartlett, n - u, new, k) / math.sqrt(n)
            F[:, u : u + new] = xp.asarray(Rb.T)
            space.used = u + new
        return F


def _bartlett(rng, p: int, rows: int, cols: int) -> np.ndarray:
    """The R factor (rows × cols, rows = min(p, cols)) of the QR of a p×cols iid N(0,1) matrix:
    R_jj = √χ²_{p−j}, R_ij ~ N(0,1) for i < j, 0 below the diagonal."""
    R = np.zeros((rows, cols))
    R[np.arange(rows), np.arange(rows)] = np.sqrt(rng.chisquare(p - np.arange(rows)))
    iu = np.triu_indices(rows, 1, cols)
    R[iu] = rng.standard_normal(iu[0].shape[0])
    return R


class LazyWeights:
    """Weights whose hidden layers are :class:`LazyLayer` operators (never materialised).

    Attributes as :class:`polyloss.weights.Weights`: ``W0``, ``V``, ``width`` (the nominal n),
    ``depth``, ``input_dim``, ``operators()`` (always the same layer objects: one fixed network);
    plus ``coords`` ('ambient' or 'reduced') and ``dim`` (the array length of every layer space).
    """

    __slots__ = ("W0", "V", "layers", "_width", "coords")

    def __init__(self, W0, V, layers, width: int, coords: str):
        self.W0, self.V, self.layers = W0, V, tuple(layers)
        self._width, self.coords = int(width), coords

    @property
    def width(self) -> int:
        return self._width

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def input_dim(self) -> int:
        return int(self.W0.shape[1])

    @property
    def dim(self) -> int:
        return int(self.V.shape[0])

    def operators(self) -> list:
        return list(self.layers)

    def to_npz(self, path) -> None:
        raise TypeError("lazily sampled weights are never materialised and cannot be saved; "
                        "use sample_weights for an exportable network")


def sample_lazy_weights(net: NetworkSpec, param: Parametrization, seed_seq: np.random.SeedSequence, xp=np, *,
                        coords: str = "auto", capacity: int | None = None, steps: int | None = None,
                        tol: float = DEFAULT_TOL) -> LazyWeights:
    """A lazily sampled network with the law of :func:`polyloss.weights.sample_weights`.

    Args:
      coords: 'ambient' (vectors in Rⁿ, W0/V dense), 'reduced' (frame coordinates of length
        ``capacity``), or 'auto' (reduced when ``capacity < n``, else ambient).
      capacity: frame slots per layer space (reduced); default :func:`default_capacity` for ``steps``.
    """
    if not isinstance(seed_seq, np.random.SeedSequence):
        raise invalid("seed_seq", seed_seq, "a numpy.random.SeedSequence")
    if coords not in ("auto", "ambient", "reduced"):
        raise invalid("coords", coords, "one of 'auto', 'ambient', 'reduced'")
    n, d, L = net.width, net.input_dim, net.depth
    cap = default_capacity(n, d, L, steps) if capacity is None else int(capacity)
    if not 1 <= cap <= n:
        raise invalid("capacity", capacity, f"an integer in [1, n = {n}]")
    if coords == "auto":
        coords = "reduced" if cap < n else "ambient"
    sd_v = math.sqrt(param.readout_variance(n))
    if coords == "ambient":
        rng = make_rng(xp, _child(seed_seq, 0))
        W0 = rng.standard_normal((n, d), dtype=xp.float64)
        W0 *= 1.0 / math.sqrt(d)
        V = rng.standard_normal(n, dtype=xp.float64) * sd_v
        spaces = [_Space(n, n, n) for _ in range(L + 1)]
    else:
        kd = min(n, d)
        if cap < kd + 1:
            raise invalid("capacity", capacity, f"at least min(n, d) + 1 = {kd + 1}")
        rng = make_rng(np, _child(seed_seq, 0))
        W0h = np.zeros((cap, d))
        W0h[:kd] = _bartlett(rng, n, kd, d) / math.sqrt(d)
        Vh = np.zeros(cap)
        Vh[0] = math.sqrt(rng.chisquare(n)) * sd_v
        W0, V = xp.asarray(W0h), xp.asarray(Vh)
        spaces = [_Space(n, cap, 0) for _ in range(L + 1)]
        spaces[0].used = kd
        spaces[L].used = 1
    layers = [LazyLayer(spaces[l - 1], spaces[l], _child(seed_seq, l), xp=xp, tol=tol) for l in range(1, L + 1)]
    return LazyWeights(W0, V, layers, n, coords)


def resolve_sampler(sampler: str, width: int) -> str:
    """'dense' or 'lazy' for ``sampler`` in :data:`SAMPLERS` ('auto': lazy when width ≥ :data:`LAZY_MIN_WIDTH`)."""
    if sampler not in SAMPLERS:
        raise invalid("sampler", sampler, "one of 'dense', 'lazy', 'auto'")
    if sampler == "auto":
        return "lazy" if width >= LAZY_MIN_WIDTH else "dense"
    return sampler


def draw_weights(net: NetworkSpec, param: Parametrization, seed_seq: np.random.SeedSequence, xp=np,
                 sampler: str = "dense", steps: int | None = None):
    """The network for ``seed_seq`` with the resolved sampler: returns (weights, 'dense' | 'lazy').

    Lazy networks use reduced coordinates when n exceeds :func:`default_capacity` (else ambient).
    Dense and lazy draws from one seed are different networks with the same distribution.
    """
    from polyloss.weights import sample_weights

    kind = resolve_sampler(sampler, net.width)
    if kind == "dense":
        return sample_weights(net, param, seed_seq, xp=xp), kind
    return sample_lazy_weights(net, param, seed_seq, xp=xp, steps=steps), kind
