"""The exact infinite-width (μP) limit: one GD word program evaluated on a full Fock space.

This module owns THEORY §5. Under μP, with ``g_ℓ = n b_ℓ`` and ``⟨a, b⟩ = aᵀb/n``, the t-step GD
recursion of a deep linear network is a linear Tensor Program whose n → ∞ limit is realised
exactly on the full Fock space over the 2L letters ``a_1..a_L, b_1..b_L`` with base space
``B = R^d ⊕ R``: ``W_ℓ ↦ ℓ(a_ℓ) + ℓ(b_ℓ)*`` and ``W_ℓᵀ ↦ ℓ(b_ℓ) + ℓ(a_ℓ)*``,
``h_0(x_i) ↦ e_∅⊗(x_i, 0)``, ``g_L ↦ e_∅⊗(0, 1)``.

The program (:func:`run_program`) is written once against a small *evaluator* interface; three
evaluators realise the base space differently:

* :class:`KrylovEvaluator` — every data-space vector is ``P(K̄) y`` (the Krylov space of ``K̄`` and
  ``y``), so every inner product reduces to the moments ``μ_j = (1/m) yᵀK̄^j y``. With ``μ_j`` as
  indeterminates (``symbolic=True``) it yields the closed form in ``Q[η, μ_0, μ_1, …]``; with
  exact rational ``μ_j`` it yields the loss polynomial of a data set in ``Q[η]``.
* :class:`ExplicitEvaluator` — an independent realisation that keeps every data-space vector as an
  explicit coefficient vector over the m training inputs and uses the Gram matrix ``K`` (cost grows
  like m²; meant for checking the Krylov route on small data).

Scalars are polynomials in η (and the μ_j) with exact rational coefficients, held by a
:class:`ScalarRing`: python-flint (``fmpq_poly`` / ``fmpq_mpoly``) when installed, else sympy's
sparse polynomial rings over ``QQ``. A float ring (:class:`FloatRing`) evaluates the same program in
float64 for large problems; its results are labelled as such by :mod:`polyloss.derive`.

No numpy here: data arrive as Python ``Fraction``/``float`` lists and results leave as Fractions.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

__all__ = [
    "MomentIndexError",
    "ScalarRing",
    "FlintRing",
    "SympyRing",
    "FloatRing",
    "default_ring",
    "KrylovEvaluator",
    "ExplicitEvaluator",
    "ProgramResult",
    "RecipeScalars",
    "LimitScalars",
    "LimitBiases",
    "BlockKrylovEvaluator",
    "frozen_scalars",
    "recipe_scalars",
    "recipe_needs_eta",
    "run_program",
    "limit_degree_f",
    "limit_degree_loss",
    "vacuum_moment",
    "catalan",
    "apply_W",
    "apply_WT",
    "HAS_FLINT",
]

try:  # python-flint: fast exact univariate and multivariate polynomials over Q
    import flint as _flint

    HAS_FLINT = True
except ImportError:  # pragma: no cover - exercised only without python-flint
    _flint = None
    HAS_FLINT = False


# --------------------------------------------------------------------------------------------
# Degrees
# --------------------------------------------------------------------------------------------


def limit_degree_f(depth: int, steps: int) -> int:
    """Degree in η of ``f_∞^{(t)}``: 1 at t = 1, then ``deg_{t+1} = (2L−1)·deg_t + L``; 0 at t = 0."""
    if steps <= 0:
        return 0
    deg = 1
    for _ in range(steps - 1):
        deg = (2 * depth - 1) * deg + depth
    return deg


def limit_degree_loss(depth: int, steps: int) -> int:
    """Degree in η of ``𝓛_∞^{(t)}``: twice that of ``f_∞^{(t)}``."""
    return 2 * limit_degree_f(depth, steps)


# --------------------------------------------------------------------------------------------
# Scalar rings: polynomials in η (and μ_j) over Q, or float64 polynomials in η
# --------------------------------------------------------------------------------------------


class MomentIndexError(IndexError):
    """A moment ``μ_j`` beyond the ring's generators was needed (retry with a larger ring)."""

    def __init__(self, j: int):
        super().__init__(f"moment mu{j} needed but not in the ring")
        self.j = j


class ScalarRing:
    """Arithmetic for the scalar coefficients of Fock vectors.

    Elements support ``+``, ``-``, ``*`` and truth testing (``False`` iff zero). Subclasses provide
    the constants, ``eta``, the moments ``mu(j)`` and the extraction of η-coefficients.
    """

    symbolic: bool = False
    exact: bool = True
    zero = None
    one = None
    eta = None

    def const(self, q) -> object:
        """The constant ``q`` (a Fraction, int or float) as a ring element."""
        raise NotImplementedError

    _mu: list = []

    def mu(self, j: int) -> object:
        """The moment ``μ_j`` (an indeterminate in symbolic rings, a constant otherwise)."""
        try:
            return self._mu[j]
        except IndexError:
            raise MomentIndexError(j) from None

    def eta_coefficients(self, x) -> list:
        """Ascending η-coefficients of ``x``: Fractions (numeric), floats (float ring), or dicts
        ``{μ-exponent tuple: Fraction}`` (symbolic)."""
        raise NotImplementedError


def _fraction_coprime(p: int, q: int) -> Fraction:
    """A Fraction from a numerator/denominator already in lowest terms with q > 0 (no gcd: the gcd of
    two ~100k-bit integers is most of the conversion time of a long-horizon loss)."""
    try:
        return Fraction(p, q, _normalize=False)
    except TypeError:  # Python >= 3.12
        return Fraction._from_coprime_ints(p, q)


def _to_fraction(q) -> Fraction:
    if isinstance(q, Fraction):
        return q
    if isinstance(q, int):
        return Fraction(q)
    if isinstance(q, float):
        return Fraction(q)  # exact binary value
    if _flint is not None and isinstance(q, _flint.fmpq):  # canonical: coprime, q > 0
        return _fraction_coprime(int(q.p), int(q.q))
    # fmpq / mpq / PythonMPQ: numerator/denominator attributes (p/q for flint)
    num = getattr(q, "numerator", None)
    den = getattr(q, "denominator", None)
    if num is None:
        num, den = q.p, q.q
    return Fraction(int(num), int(den))


class FlintRing(ScalarRing):
    """python-flint: ``fmpq_poly`` in η (numeric μ) or ``fmpq_mpoly`` in (η, μ_0..μ_N) (symbolic)."""

    def __init__(self, mu_values: Sequence | None = None, n_mu: int | None = None, eta_free: bool = False):
        if not HAS_FLINT:  # pragma: no cover
            raise ImportError("python-flint is not installed")
        self.eta_free = bool(eta_free) and mu_values is None
        if mu_values is None:
            self.symbolic = True
            n_mu = int(n_mu or 1)
            names = (("mu", n_mu),) if self.eta_free else ("eta", ("mu", n_mu))
            self._ctx = _flint.fmpq_mpoly_ctx.get(names, "lex")
            gens = self._ctx.gens()
            nv = len(gens)
            self.zero, self.one = self._ctx.from_dict({}), self._ctx.from_dict({(0,) * nv: 1})
            if self.eta_free:
                self.eta, self._mu = self.one, list(gens)
            else:
                self.eta, self._mu = gens[0], list(gens[1:])
        else:
            self.symbolic = False
            self.eta = _flint.fmpq_poly([0, 1])
            self.zero, self.one = _flint.fmpq_poly([]), _flint.fmpq_poly([1])
            self._mu = [self.const(v) for v in mu_values]

    def const(self, q):
        q = _to_fraction(q)
        c = _flint.fmpq(q.numerator, q.denominator)
        return self.one * c

    def eta_coefficients(self, x, offset: int = 0):
        if not self.symbolic:
            return [_to_fraction(c) for c in x.coeffs()]
        return _group_by_eta(x.to_dict().items(), self.eta_free, offset)


class SympyRing(ScalarRing):
    """sympy's sparse ``PolyElement`` over ``QQ`` (ground types gmpy2/flint/python as configured)."""

    def __init__(self, mu_values: Sequence | None = None, n_mu: int | None = None, eta_free: bool = False):
        from sympy import QQ
        from sympy.polys.rings import ring

        self._QQ = QQ
        self.eta_free = bool(eta_free) and mu_values is None
        if mu_values is None:
            self.symbolic = True
            n_mu = int(n_mu or 1)
            names = ([] if self.eta_free else ["eta"]) + [f"mu{j}" for j in range(n_mu)]
            R, *gens = ring(",".join(names), QQ)
            if self.eta_free:
                self.eta, self._mu = R.one, list(gens)
            else:
                self.eta, self._mu = gens[0], list(gens[1:])
        else:
            self.symbolic = False
            R, self.eta = ring("eta", QQ)
            self._mu = None
        self._R = R
        self.zero, self.one = R.zero, R.one
        if mu_values is not None:
            self._mu = [self.const(v) for v in mu_values]

    def const(self, q):
        q = _to_fraction(q)
        return self._R(self._QQ(q.numerator, q.denominator))

    def eta_coefficients(self, x, offset: int = 0):
        if self.symbolic:
            return _group_by_eta(x.items(), self.eta_free, offset)
        out = {mon[0]: _to_fraction(c) for mon, c in x.items()}
        deg = max(out, default=-1)
        return [out.get(k, Fraction(0)) for k in range(deg + 1)]


def _group_by_eta(items, eta_free: bool, offset: int) -> list:
    """Group ``{monomial: coeff}`` by the power of η.

    With ``eta_free`` the ring has no η: the power is recovered from the weight of the μ-monomial
    (``μ_j`` has weight ``j + 1``) as ``weight + offset``. This is exact because of the scaling
    symmetry ``x → √c x, y → √c y, η → η/c`` (which leaves every W^{(t)} unchanged and scales f and
    r by √c): a term ``η^k Π μ_j^{e_j}`` of the loss has ``k = Σ (j+1) e_j − 1`` (offset −1), and a
    term of the coefficient ``F_b`` of ``K̄^b y`` in f has ``k = Σ (j+1) e_j + b`` (offset b).
    """
    out: dict[int, dict] = {}
    for mon, c in items:
        mon = tuple(int(e) for e in mon)
        if eta_free:
            k = sum((j + 1) * e for j, e in enumerate(mon)) + offset
            key = tuple(mon)
        else:
            k, key = mon[0], tuple(mon[1:])
        out.setdefault(k, {})[key] = _to_fraction(c)
    deg = max(out, default=-1)
    if out and min(out) < 0:
        raise ArithmeticError("negative power of eta: the grading offset is wrong")
    return [out.get(k, {}) for k in range(deg + 1)]


class _FloatPoly:
    """A float64 polynomial in η (ascending list); just enough arithmetic for the program."""

    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c

    def __bool__(self):
        return any(v != 0.0 for v in self.c)

    def __add__(self, o):
        a, b = self.c, o.c
        if len(a) < len(b):
            a, b = b, a
        r = list(a)
        for i, v in enumerate(b):
            r[i] += v
        return _FloatPoly(r)

    def __neg__(self):
        return _FloatPoly([-v for v in self.c])

    def __sub__(self, o):
        return self + (-o)

    def __mul__(self, o):
        a, b = self.c, o.c
        if not a or not b:
            return _FloatPoly([])
        r = [0.0] * (len(a) + len(b) - 1)
        for i, u in enumerate(a):
            if u != 0.0:
                for j, v in enumerate(b):
                    r[i + j] += u * v
        return _FloatPoly(r)


class FloatRing(ScalarRing):
    """float64 polynomials in η with float moments: a fast, *inexact* evaluation of the program."""

    exact = False

    def __init__(self, mu_values: Sequence):
        self.zero, self.one, self.eta = _FloatPoly([]), _FloatPoly([1.0]), _FloatPoly([0.0, 1.0])
        self._mu = [self.const(v) for v in mu_values]

    def const(self, q):
        return _FloatPoly([float(q)])

    def eta_coefficients(self, x):
        c = list(x.c)
        while c and c[-1] == 0.0:
            c.pop()
        return c


def default_ring(
    mu_values: Sequence | None = None, n_mu: int | None = None, backend: str = "auto", eta_free: bool = False
) -> ScalarRing:
    """Pick the exact scalar ring: python-flint when available (``backend='auto'``), else sympy.

    ``mu_values=None`` gives the symbolic ring in ``μ_0..μ_{n_mu−1}`` (and η unless ``eta_free``).
    """
    if backend == "flint" or (backend == "auto" and HAS_FLINT):
        return FlintRing(mu_values, n_mu, eta_free)
    if backend in ("sympy", "auto"):
        return SympyRing(mu_values, n_mu, eta_free)
    raise ValueError(f"unknown scalar backend {backend!r}")


# --------------------------------------------------------------------------------------------
# Fock operators on dict-vectors {(word, *slot): scalar}; a word is a tuple of letters,
# letter +ℓ = a_ℓ, −ℓ = b_ℓ (ℓ = 1..L); the first letter is the most recently created one.
# --------------------------------------------------------------------------------------------


def _apply(vec: dict, create: int, annihilate: int) -> dict:
    """``ℓ(create) + ℓ(annihilate)*`` applied to a Fock vector."""
    out: dict = {}
    for key, c in vec.items():
        w = key[0]
        out[((create,) + w,) + key[1:]] = c  # creation is injective and never collides with itself
    for key, c in vec.items():
        w = key[0]
        if w and w[0] == annihilate:
            nk = (w[1:],) + key[1:]
            prev = out.get(nk)
            if prev is None:
                out[nk] = c
            else:
                s = prev + c
                if s:
                    out[nk] = s
                else:
                    del out[nk]
    return out


def apply_W(layer: int, vec: dict) -> dict:
    """``W_ℓ ↦ ℓ(a_ℓ) + ℓ(b_ℓ)*``."""
    return _apply(vec, layer, -layer)


def apply_WT(layer: int, vec: dict) -> dict:
    """``W_ℓᵀ ↦ ℓ(b_ℓ) + ℓ(a_ℓ)*``."""
    return _apply(vec, -layer, layer)


def _axpy(acc: dict, key, val) -> None:
    prev = acc.get(key)
    if prev is None:
        if val:
            acc[key] = val
    else:
        s = prev + val
        if s:
            acc[key] = s
        else:
            del acc[key]


def _by_word(vec: dict) -> dict:
    out: dict = {}
    for key, c in vec.items():
        out.setdefault(key[0], []).append((key[1], c))
    return out


def vacuum_moment(ops: Sequence[tuple[str, int]]) -> int:
    """``⟨Ω, op_1 ⋯ op_k Ω⟩`` in the Fock space, ops as ``('W', ℓ)`` or ``('WT', ℓ)`` (rightmost first
    applied). Integer valued; used to check the free circular law (Catalan numbers)."""
    vec: dict = {((), 0): 1}
    for kind, layer in reversed(list(ops)):
        vec = apply_W(layer, vec) if kind == "W" else apply_WT(layer, vec)
    return vec.get(((), 0), 0)


def catalan(k: int) -> int:
    """The k-th Catalan number (reference values for ``⟨e, (WWᵀ)^k e⟩``)."""
    from math import comb

    return comb(2 * k, k) // (k + 1)


# --------------------------------------------------------------------------------------------
# Evaluators
# --------------------------------------------------------------------------------------------


class KrylovEvaluator:
    """Base space realised on the Krylov space of (K̄, y); inner products are moments μ_j.

    Unbatched vectors (``g``, ``u``): keys ``(w, i)`` — ``i ≥ 0``: the data vector whose coefficient
    vector over the x_l is ``K̄^i y / m``; ``i = −1``: the scalar slot ``(0, 1)``.
    Batched vectors (``h(x_j)`` for all training j at once): keys ``(w, a, b)`` — base slot ``a`` as
    above tensored with the value vector ``(K̄^b y)_j``; ``a = −2`` (with b = 0) is the input itself,
    ``e_w ⊗ (x_j, 0)``. Value vectors (``f``, ``r``): ``{b: c}`` meaning ``Σ_b c_b K̄^b y``.
    """

    def __init__(self, ring: ScalarRing, track_mu: bool = False):
        self.R = ring
        self.max_mu = -1
        self._track = track_mu
        self._prune = not track_mu
        # numeric exact μ (constants): fold μ into one factor before the polynomial products
        # (exact, so the same rationals; float rings keep their summation order)
        self._fold = ring.exact and not ring.symbolic and self._prune

    def _mu(self, j):
        if j > self.max_mu:
            self.max_mu = j
        return self.R.mu(j)

    # --- initial vectors
    def h0(self) -> dict:
        return {((), -2, 0): self.R.one}

    def gL(self) -> dict:
        return {((), -1): self.R.one}

    # --- inner products
    def inner(self, u: dict, v: dict):
        """⟨u, v⟩ for unbatched vectors (scalar)."""
        if len(u) > len(v):
            u, v = v, u
        uw = _by_word(u)
        if self._fold:
            return self._inner_folded(uw, _by_word(v))
        buckets: dict = {}
        R = self.R
        for key, c in v.items():
            lst = uw.get(key[0])
            if not lst:
                continue
            j = key[1]
            for i, cu in lst:
                if (i < 0) != (j < 0):
                    continue
                n = -1 if i < 0 else i + j + 1
                if self._prune:
                    _axpy(buckets, n, cu * c)
                else:
                    buckets[n] = buckets.get(n, R.zero) + cu * c
        total = R.zero
        for n, s in buckets.items():
            total = total + (s if n < 0 else s * self._mu(n))
        return total

    def _inner_folded(self, uw: dict, vw: dict):
        """:meth:`inner` for numeric μ: per word, ``Σ_{i,j} a_i b_j μ_{i+j+1}`` as ``Σ_i a_i (Σ_j b_j μ_{i+j+1})``
        with μ folded into the side with more entries (constant multiples only), so one polynomial product
        per entry of the other side; the scalar slots (−1) pair among themselves."""
        R = self.R
        total = R.zero
        for w, A in uw.items():
            B = vw.get(w)
            if not B:
                continue
            if len(A) > len(B):
                A, B = B, A
            for i, a in A:  # one product per entry of A
                g = R.zero
                if i < 0:
                    for j, b in B:
                        if j < 0:
                            g = g + b
                else:
                    for j, b in B:
                        if j >= 0:
                            g = g + b * self._mu(i + j + 1)
                if g:
                    total = total + a * g
        return total

    def inner_batched(self, u: dict, H: dict) -> dict:
        """⟨u, h(x_j)⟩ for all j, as a value vector ``{b: c}``."""
        uw = _by_word(u)
        if self._fold:
            return self._inner_batched_folded(uw, H)
        mu_b: dict = {}  # (b, n) -> accumulated coefficient of μ_n K̄^b y
        out: dict = {}
        R = self.R
        for (w, a, b), h in H.items():
            lst = uw.get(w)
            if not lst:
                continue
            for i, c in lst:
                if a >= 0:
                    if i >= 0:
                        k = (b, i + a + 1)
                        mu_b[k] = mu_b.get(k, R.zero) + c * h
                elif a == -1:
                    if i < 0:
                        out[b] = out.get(b, R.zero) + c * h
                else:  # identity slot: ⟨K̄^i y/m (coeff. form), x_j⟩_B = (K̄^{i+1} y)_j
                    if i >= 0:
                        out[i + 1] = out.get(i + 1, R.zero) + c * h
        for (b, n), s in mu_b.items():
            out[b] = out.get(b, R.zero) + s * self._mu(n)
        return {b: s for b, s in out.items() if s or not self._prune}

    def _inner_batched_folded(self, uw: dict, H: dict) -> dict:
        """:meth:`inner_batched` for numeric μ: ``Σ_{w,a} (Σ_i c_{w,i} μ_{i+a+1}) h_{w,a,b}`` — one
        polynomial product per entry of H instead of one per (entry, matching u-entry) pair."""
        out: dict = {}
        R = self.R
        folded: dict = {}  # (w, a) -> Σ_i c_{w,i} μ_{i+a+1}
        for (w, a, b), h in H.items():
            lst = uw.get(w)
            if not lst:
                continue
            if a >= 0:
                g = folded.get((w, a))
                if g is None:
                    g = R.zero
                    for i, c in lst:
                        if i >= 0:
                            g = g + c * self._mu(i + a + 1)
                    folded[(w, a)] = g
                if g:
                    out[b] = out.get(b, R.zero) + g * h
            else:
                for i, c in lst:
                    if a == -1:
                        if i < 0:
                            out[b] = out.get(b, R.zero) + c * h
                    elif i >= 0:  # identity slot: ⟨K̄^i y/m (coeff. form), x_j⟩_B = (K̄^{i+1} y)_j
                        out[i + 1] = out.get(i + 1, R.zero) + c * h
        return {b: s for b, s in out.items() if s}

    def value_inner(self, r: dict, v: dict):
        """``(1/m) rᵀ v`` for value vectors."""
        buckets: dict = {}
        R = self.R
        if self._fold:  # Σ_i r_i (Σ_j v_j μ_{i+j}): one polynomial product per entry of r
            total = R.zero
            for i, a in r.items():
                g = R.zero
                for j, b in v.items():
                    g = g + b * self._mu(i + j)
                if g:
                    total = total + a * g
            return total
        if r is v:  # symmetric: r_i r_j once per unordered pair
            items = sorted(r.items(), key=lambda kv: kv[0])
            for p, (i, a) in enumerate(items):
                buckets[2 * i] = buckets.get(2 * i, R.zero) + a * a
                for j, b in items[p + 1:]:
                    ab = a * b
                    buckets[i + j] = buckets.get(i + j, R.zero) + ab + ab
        else:
            for i, a in r.items():
                for j, b in v.items():
                    buckets[i + j] = buckets.get(i + j, R.zero) + a * b
        total = R.zero
        for n, s in buckets.items():
            if s:
                total = total + s * self._mu(n)
        return total

    # --- updates
    def sub_outer(self, H: dict, g: dict, q: dict, coef) -> dict:
        """``H + coef · g ⊗ q`` (g unbatched, q a value vector)."""
        H = dict(H)
        cq = [(b, coef * v) for b, v in q.items()]
        for (w, i), c in g.items():
            for b, v in cq:
                if self._prune:
                    _axpy(H, (w, i, b), c * v)
                else:
                    H[(w, i, b)] = H.get((w, i, b), self.R.zero) + c * v
        return H

    def axpy(self, v: dict, coef, u: dict) -> dict:
        """``v + coef · u`` for unbatched vectors."""
        v = dict(v)
        for key, c in u.items():
            if self._prune:
                _axpy(v, key, coef * c)
            else:
                v[key] = v.get(key, self.R.zero) + coef * c
        return v

    def contract(self, H: dict, r: dict) -> dict:
        """``(1/m) Σ_j r_j h(x_j)`` (unbatched)."""
        R = self.R
        rho: dict = {}
        out: dict = {}
        for (w, a, b), h in H.items():
            if a >= -1:
                if b not in rho:
                    s = R.zero
                    for l, rl in r.items():
                        s = s + rl * self._mu(l + b)
                    rho[b] = s
                val = h * rho[b]
                if self._prune:
                    _axpy(out, (w, a), val)
                else:
                    out[(w, a)] = out.get((w, a), R.zero) + val
            else:  # (1/m) Σ_j r_j x_j = coefficient vector r/m = Σ_l r_l K̄^l y / m
                for l, rl in r.items():
                    if self._prune:
                        _axpy(out, (w, l), h * rl)
                    else:
                        out[(w, l)] = out.get((w, l), R.zero) + h * rl
        return out

    def readout(self, H: dict) -> dict:
        """``f(x_j) = ⟨g_L, h_L(x_j)⟩`` as a value vector."""
        return {b: h for (w, a, b), h in H.items() if a == -1 and not w}

    def kernel_value(self, r: dict, scale) -> dict:
        """``scale · K̄ r`` for a value vector r (``Σ_b c_b K̄^b y ↦ Σ_b scale·c_b K̄^{b+1} y``)."""
        return {b + 1: scale * c for b, c in r.items() if c}

    def residual(self, f: dict) -> dict:
        r = dict(f)
        r[0] = r.get(0, self.R.zero) - self.R.one
        return r

    def loss(self, r: dict):
        """``(1/(2m)) ‖r‖²``."""
        return self.value_inner(r, r) * self.R.const(Fraction(1, 2))


class ExplicitEvaluator:
    """Base space realised with explicit coefficient vectors over the m training inputs.

    Unbatched keys ``(w, i)``: ``i ∈ 0..m−1`` the input x_i, ``i = −1`` the scalar slot, ``i = −3 − ℓ`` the
    initial bias of layer ℓ (biases, :class:`LimitBiases`; variance ``input_bias_var`` for ℓ = 0, else
    ``hidden_bias_var``).
    Batched keys ``(w, i, j)``: slot ``i`` of the base vector of ``h(x_j)``. Value vectors: ``{j: c}``.
    The Gram matrix ``K[i][l] = x_iᵀx_l / d`` gives every data-space inner product.
    """

    def __init__(self, ring: ScalarRing, K: Sequence[Sequence], y: Sequence, input_bias_var=0, hidden_bias_var=0):
        self.R = ring
        self.m = len(y)
        self.K = [[ring.const(v) for v in row] for row in K]
        self._Kzero = [[not v for v in row] for row in K]
        self.y = [ring.const(v) for v in y]
        self.inv_m = ring.const(Fraction(1, self.m))
        self.var = ring.const(input_bias_var)
        self.hvar = ring.const(hidden_bias_var)

    def h0(self) -> dict:
        return {((), j, j): self.R.one for j in range(self.m)}

    def gL(self) -> dict:
        return {((), -1): self.R.one}

    def ones(self) -> dict:
        """The value vector ``𝟙`` (every training input)."""
        return {j: self.R.one for j in range(self.m)}

    def bias_dir(self, layer: int = 0) -> dict:
        """Layer ``layer``'s bias at initialisation, ``e_∅ ⊗ β_ℓ^{(0)}``: slot −3 − ℓ, ``⟨β_0, β_0⟩`` = the input
        bias's variance, ``⟨β_ℓ, β_ℓ⟩`` = the hidden biases' (ℓ ≥ 1); distinct slots are orthogonal."""
        return {((), -3 - layer): self.R.one}

    def _pair(self, i, l):
        if i < 0 or l < 0:
            if i != l:
                return None
            return True if i == -1 else (self.var if i == -3 else self.hvar)
        return None if self._Kzero[i][l] else self.K[i][l]

    def inner(self, u: dict, v: dict):
        uw = _by_word(u)
        total = self.R.zero
        for (w, l), c in v.items():
            for i, cu in uw.get(w, ()):
                k = self._pair(i, l)
                if k is None:
                    continue
                total = total + (cu * c if k is True else cu * c * k)
        return total

    def inner_batched(self, u: dict, H: dict) -> dict:
        uw = _by_word(u)
        out: dict = {}
        for (w, a, j), h in H.items():
            for i, c in uw.get(w, ()):
                k = self._pair(i, a)
                if k is None:
                    continue
                val = c * h if k is True else c * h * k
                out[j] = out.get(j, self.R.zero) + val
        return {j: s for j, s in out.items() if s}

    def value_inner(self, r: dict, v: dict):
        total = self.R.zero
        for j, a in r.items():
            b = v.get(j)
            if b is not None:
                total = total + a * b
        return total * self.inv_m

    def sub_outer(self, H: dict, g: dict, q: dict, coef) -> dict:
        H = dict(H)
        cq = [(j, coef * v) for j, v in q.items()]
        for (w, i), c in g.items():
            for j, v in cq:
                _axpy(H, (w, i, j), c * v)
        return H

    def axpy(self, v: dict, coef, u: dict) -> dict:
        v = dict(v)
        for key, c in u.items():
            _axpy(v, key, coef * c)
        return v

    def contract(self, H: dict, r: dict) -> dict:
        out: dict = {}
        for (w, a, j), h in H.items():
            rj = r.get(j)
            if rj is not None:
                _axpy(out, (w, a), h * rj * self.inv_m)
        return out

    def readout(self, H: dict) -> dict:
        return {j: h for (w, a, j), h in H.items() if a == -1 and not w}

    def kernel_value(self, r: dict, scale) -> dict:
        """``scale · K̄ r``: ``(scale/m) Σ_i K[j][i] r_i`` for each j."""
        out: dict = {}
        for j in range(self.m):
            acc = self.R.zero
            for i, ri in r.items():
                if not self._Kzero[j][i]:
                    acc = acc + self.K[j][i] * ri
            if acc:
                out[j] = acc * self.inv_m * scale
        return out

    def residual(self, f: dict) -> dict:
        r = dict(f)
        for j in range(self.m):
            r[j] = r.get(j, self.R.zero) - self.y[j]
        return r

    def loss(self, r: dict):
        return self.value_inner(r, r) * self.R.const(Fraction(1, 2))


class BlockKrylovEvaluator:
    """Base space on the block Krylov space of K̄ and the two value vectors ``s_0 = y``, ``s_1 = 𝟙``:
    the realisation for networks with biases (docs/theory.md §12, :class:`LimitBiases`).

    A bias enters the forward pass as the same vector at every input, so value vectors leave the Krylov
    space of (K̄, y): the mean residual ``r̄ = (1/m) 𝟙ᵀr`` drives every bias and the readout bias adds
    ``r̄·𝟙`` to f. Every value vector is ``Σ c_{k,b} K̄^b s_k`` and every inner product is a block moment
    ``M_{k,k'}(n) = (1/m) s_kᵀ K̄^n s_{k'}`` (``moment(k, k', n)``, exact or float, numeric only).

    Value vectors: ``{(k, b): c}``. Unbatched keys ``(w, a)``: ``a = (k, i)`` the data vector whose
    coefficient vector over the x_l is ``K̄^i s_k / m``; ``a = −1`` the scalar slot (g_L); ``a = −3 − ℓ`` the
    initial bias ``β_ℓ^{(0)}`` of layer ℓ (``⟨β_0, β_0⟩ = input_bias_var``, ``⟨β_ℓ, β_ℓ⟩ = hidden_bias_var``). Batched keys ``(w, a, v)``: slot
    ``a`` tensored with the value vector ``v = (k, b)``; ``a = −2`` (with ``v = None``) is the input
    itself, ``e_w ⊗ x_j``. With no bias this is :class:`KrylovEvaluator` on the ``k = 0`` block.
    """

    def __init__(self, ring: ScalarRing, moment: Callable, input_bias_var=0, hidden_bias_var=0):
        self.R = ring
        self._moment = moment
        self._mc: dict = {}
        self.var = ring.const(input_bias_var)
        self.hvar = ring.const(hidden_bias_var)

    def M(self, k1: int, k2: int, n: int):
        key = (k1, k2, n) if k1 <= k2 else (k2, k1, n)
        v = self._mc.get(key)
        if v is None:
            v = self._mc[key] = self.R.const(self._moment(*key))
        return v

    # --- initial vectors
    def h0(self) -> dict:
        return {((), -2, None): self.R.one}

    def gL(self) -> dict:
        return {((), -1): self.R.one}

    def ones(self) -> dict:
        return {(1, 0): self.R.one}

    def bias_dir(self, layer: int = 0) -> dict:
        return {((), -3 - layer): self.R.one}

    def _slot(self, a, b):
        """⟨a, b⟩_B for unbatched slots (None: orthogonal)."""
        if isinstance(a, tuple):
            return self.M(a[0], b[0], a[1] + b[1] + 1) if isinstance(b, tuple) else None
        if a != b or isinstance(b, tuple):
            return None
        return self.R.one if a == -1 else (self.var if a == -3 else self.hvar)

    # --- inner products
    def inner(self, u: dict, v: dict):
        if len(u) > len(v):
            u, v = v, u
        vw = _by_word(v)
        total = self.R.zero
        for w, A in _by_word(u).items():
            B = vw.get(w)
            if not B:
                continue
            for a, ca in A:  # one polynomial product per entry of u: fold the constants into B's side
                g = self.R.zero
                for b, cb in B:
                    k = self._slot(a, b)
                    if k is not None:
                        g = g + cb * k
                if g:
                    total = total + ca * g
        return total

    def inner_batched(self, u: dict, H: dict) -> dict:
        uw = _by_word(u)
        out: dict = {}
        folded: dict = {}
        R = self.R
        for (w, a, vb), h in H.items():
            lst = uw.get(w)
            if not lst:
                continue
            if a == -2:  # ⟨K̄^i s_k/m, x_j⟩_B = (K̄^{i+1} s_k)_j
                for i, c in lst:
                    if isinstance(i, tuple):
                        _axpy(out, (i[0], i[1] + 1), c * h)
                continue
            g = folded.get((w, a))
            if g is None:
                g = R.zero
                for i, c in lst:
                    k = self._slot(i, a)
                    if k is not None:
                        g = g + c * k
                folded[(w, a)] = g
            if g:
                _axpy(out, vb, g * h)
        return out

    def value_inner(self, r: dict, v: dict):
        """``(1/m) rᵀ v``."""
        total = self.R.zero
        for (k, i), a in r.items():
            g = self.R.zero
            for (k2, j), b in v.items():
                g = g + b * self.M(k, k2, i + j)
            if g:
                total = total + a * g
        return total

    # --- updates: the explicit evaluator's (keys carry the value index as their last entry in both)
    sub_outer = ExplicitEvaluator.sub_outer
    axpy = ExplicitEvaluator.axpy

    def contract(self, H: dict, r: dict) -> dict:
        """``(1/m) Σ_j r_j h(x_j)``."""
        rho: dict = {}
        out: dict = {}
        R = self.R
        for (w, a, vb), h in H.items():
            if a == -2:  # (1/m) Σ_j r_j x_j: the coefficient vector r/m
                for l, rl in r.items():
                    _axpy(out, (w, l), h * rl)
                continue
            s = rho.get(vb)
            if s is None:
                s = R.zero
                for (k, l), rl in r.items():
                    s = s + rl * self.M(k, vb[0], l + vb[1])
                rho[vb] = s
            if s:
                _axpy(out, (w, a), h * s)
        return out

    def readout(self, H: dict) -> dict:
        return {vb: h for (w, a, vb), h in H.items() if a == -1 and not w}

    def kernel_value(self, r: dict, scale) -> dict:
        return {(k, b + 1): scale * c for (k, b), c in r.items() if c}

    def residual(self, f: dict) -> dict:
        r = dict(f)
        _axpy(r, (0, 0), self.R.zero - self.R.one)
        return r

    def loss(self, r: dict):
        return self.value_inner(r, r) * self.R.const(Fraction(1, 2))



# --------------------------------------------------------------------------------------------
# The word program (THEORY §5)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipeScalars:
    """The data-independent scalars of a hidden-only recipe (docs/theory.md §7, "The μP limit of a
    recipe"): every hidden matrix is ``W_ℓ^{(t)} = c_t W_ℓ + Σ_{s<t} a_{t,s} g_ℓ^{(s)} ⟨u_ℓ^{(s)}, ·⟩``.

    ``c[t]`` is a ring element, or None when it is exactly 1; ``a[t]`` maps s < t to a ring element
    (a missing s is zero). Plain GD: ``c_t = 1``, ``a_{t,s} = −η``.
    """

    c: tuple
    a: tuple


def recipe_needs_eta(recipe) -> bool:
    """Whether the recipe's scalars are not homogeneous of degree (0, 1) in η: l2 or decoupled decay
    with ω ≠ 0 put ``1 − ηρω`` into c_t, which breaks the scaling symmetry behind the η-free ring
    (:func:`_group_by_eta`); such recipes need η as an indeterminate."""
    return recipe.weight_decay != 0 and recipe.wd_mode in ("l2", "decoupled", "torch")


def recipe_scalars(recipe, steps: int, R: ScalarRing, *, l2_omega=None, gradient: bool = True,
                   scale=1) -> RecipeScalars:
    """``c_t`` and ``a_{t,s}`` (t = 0..steps) of one trained layer at its μP rate in ring R.

    The rules of :mod:`polyloss.recipe`, written on the basis {W, G^{(0)}, G^{(1)}, …} (G^{(s)} the
    step-s gradient times the layer's rate, in normalised coordinates: ``g_ℓ^{(s)}⟨u_ℓ^{(s)}, ·⟩`` for
    a hidden layer, ``u_{L+1}^{(s)}`` for the readout ``g_L = nV``, ``g_0^{(s)} ξ^{(s)ᵀ}`` for the
    input): with ``g = G^{(t)}`` (+ ω_ℓW^{(t)} in l2 mode), buffer ``v ← βv + g`` (``v = g`` at t = 0),
    direction ``D = v`` (Nesterov: ``g + βv``; ``g`` without momentum), ``W^{(t+1)} = δ_t W^{(t)} −
    ηρ_t D`` with ``δ_t`` = 1 (l2), ``1 − ηρ_tω`` (decoupled), ``1 − ω`` (independent). Every ρ_t
    must be an exact Fraction.

    ``l2_omega``: the coupled-decay coefficient ω_ℓ this layer sees in the limit (default ω, right
    for a hidden layer at rate n^0; the readout's ω·n^{-1} → 0 gives 0). ``gradient=False``: the
    layer's gradient step vanishes in the limit (its rate is below μP's) but its decay still acts,
    so only ``c_t`` is kept. The W-coefficient c_t never receives gradient terms, so dropping the
    a_{t,s} afterwards is exact. ``scale``: the layer's rate constant c (:attr:`Recipe.lr_scales`), the
    step becomes −ηρ_t c D (l2 decay, inside D, scales with it; decoupled and independent decay do not).
    """
    omega, beta, mode, nesterov = (Fraction(recipe.weight_decay), Fraction(recipe.momentum), recipe.wd_mode,
                                   bool(recipe.nesterov))
    l2_omega = omega if l2_omega is None else Fraction(l2_omega)
    if getattr(R, "eta_free", False) and recipe_needs_eta(recipe):
        raise ValueError(f"{mode} weight decay puts 1 - eta*rho*omega into the weights: it needs a ring with eta")
    rhos = [recipe.rho(s, steps) for s in range(steps)]
    if not all(isinstance(r, Fraction) for r in rhos):
        raise ValueError("the schedule has irrational rates for this number of steps")
    one, zero, eta = R.one, R.zero, R.eta

    def comb(x: dict, y: dict, fx, fy) -> dict:  # fx·x + fy·y on coefficient dicts
        out = {}
        for key in list(x) + [k for k in y if k not in x]:
            out[key] = fx * x.get(key, zero) + fy * y.get(key, zero)
        return out

    c, a = [one], [{}]
    v: dict = {}
    bc, oc = R.const(beta), R.const(l2_omega)
    for t in range(steps):
        rho = rhos[t]
        cur = dict(a[t])
        cur["W"] = c[t]
        g = {t: one}
        if mode == "l2" and l2_omega:
            g = comb(g, cur, one, oc)
        if beta:
            v = dict(g) if t == 0 else comb(v, g, bc, one)
            d = comb(g, v, one, bc) if nesterov else v
        else:
            d = g
        step = R.const(-rho * Fraction(scale)) * eta
        if mode == "decoupled" and omega:
            decay = one - R.const(rho * omega) * eta
        elif mode == "independent" and omega:
            decay = R.const(1 - omega)
        else:
            decay = one
        new = comb(cur, d, decay, step)
        c.append(new.pop("W"))
        a.append({s: x for s, x in new.items() if x} if gradient else {})
    return RecipeScalars(tuple(None if not (x - one) else x for x in c), tuple(a))


#: A layer that does not move: W^{(t)} = W at every step.
def frozen_scalars(steps: int) -> RecipeScalars:
    return RecipeScalars((None,) * (steps + 1), ({},) * (steps + 1))


@dataclass(frozen=True)
class LimitScalars:
    """Per-layer scalars of a recipe in the μP limit (docs/theory.md §7): ``hidden`` for W_1..W_L
    (None: plain GD, ``−η``), ``input`` for W_0 and ``readout`` for ``g_L = nV`` (None: frozen).
    ``input_dim`` is d: the input update at the μP rate n moves ``h_0(x)`` by ``g_0 ξᵀx`` with
    ``ξᵀx_j = d·(K̄ r)_j``, so the limit depends on d as well as on K̄ and y."""

    hidden: RecipeScalars | None = None
    input: RecipeScalars | None = None
    readout: RecipeScalars | None = None
    input_dim: Fraction = Fraction(1)
    biases: "LimitBiases | None" = None  # needs an evaluator with ones() and bias_dir(): Explicit or BlockKrylov


@dataclass(frozen=True)
class LimitBiases:
    """Trained biases in the μP limit (docs/theory.md §12). ``input``, ``hidden`` (every hidden layer) and
    ``readout``: the :class:`RecipeScalars` of that bias at its μP rate (input and hidden ``c·n``, readout
    ``c``), or None for no trained bias. A bias at its μP rate moves by ``a_{t,s} r̄^{(s)} g_ℓ^{(s)}`` (Θ(1)
    per entry; ``r̄`` the mean residual; ``g_0 = n W_1ᵀ⋯V`` for the input's), the readout bias by
    ``a_{t,s} r̄^{(s)}``. The input bias starts as an independent vector with entry variance ``input_var``
    (torch: 1/(3d); 0 for a zero init), each hidden bias as one with ``hidden_var`` (mup rescales torch's
    U(±1/√n) to U(±1/√base): 1/(3·base); 0 for torch's own o(1) init or a zero init), trained or not; the
    readout bias starts at o(1). No weight decay (``c_t = 1``)."""

    input: RecipeScalars | None = None
    hidden: RecipeScalars | None = None
    readout: RecipeScalars | None = None
    input_var: Fraction = Fraction(0)
    hidden_var: Fraction = Fraction(0)


@dataclass(frozen=True)
class ProgramResult:
    """Raw output of :func:`run_program`: ring elements, not yet converted."""

    loss: object  # scalar ring element: 𝓛^{(t)}(η)
    f: dict  # value vector of f^{(t)} at the training inputs
    losses: tuple  # 𝓛^{(s)} for s = 0..t (only the last unless ``all_losses``)


def run_program(
    ev,
    depth: int,
    steps: int,
    progress: Callable[[str], None] | None = None,
    *,
    all_losses: bool = False,
    want_loss: bool = True,
    scalars: "RecipeScalars | LimitScalars | None" = None,
) -> ProgramResult:
    """Run ``steps`` full-batch GD steps of the depth-``L`` linear network on evaluator ``ev``.

    ``h_ℓ^{(t)} = W_ℓ h_{ℓ−1}^{(t)} − η Σ_{s<t} g_ℓ^{(s)} ⟨u_ℓ^{(s)}, h_{ℓ−1}^{(t)}⟩``,
    ``g_{ℓ−1}^{(t)} = W_ℓᵀ g_ℓ^{(t)} − η Σ_{s<t} u_ℓ^{(s)} ⟨g_ℓ^{(s)}, g_ℓ^{(t)}⟩``, ``g_L^{(t)} = g_L``,
    ``u_ℓ^{(t)} = (1/m) Σ_i r_i h_{ℓ−1}^{(t)}(x_i)``, ``f^{(t)}(x) = ⟨g_L, h_L^{(t)}(x)⟩``.

    With ``scalars`` (a recipe, :func:`recipe_scalars`) ``W_ℓ`` becomes ``c_t W_ℓ`` and ``−η``
    becomes ``a_{t,s}``; a :class:`LimitScalars` also trains the readout,
    ``g_L^{(t)} = c_t g_L + Σ_s a_{t,s} u_{L+1}^{(s)}`` with ``u_{L+1} = (1/m) Σ_i r_i h_L(x_i)``, and
    the input, ``h_0^{(t)}(x_j) = c_t h_0(x_j) + Σ_s a_{t,s} g_0^{(s)} · d(K̄ r^{(s)})_j``. None runs
    plain GD exactly as before.
    """
    L = depth
    R = ev.R
    minus_eta = R.zero - R.eta
    if isinstance(scalars, LimitScalars):
        hid, inp, out = scalars.hidden, scalars.input, scalars.readout
        d_scale = R.const(Fraction(scalars.input_dim))
        bz = scalars.biases
    else:
        hid, inp, out, d_scale, bz = scalars, None, None, None, None
    if bz is not None:  # biases (docs/theory.md §12): the mean residuals r̄^{(s)} drive them
        ones = ev.ones()
        rbar_hist: list = []

        def bias_terms(sc, t: int):
            """(s, a_{t,s}·r̄^{(s)}) for a trained bias (c_t = 1: no decay)."""
            if sc is None:
                return []
            return [(s_, a_ * rbar_hist[s_]) for s_, a_ in sc.a[t].items() if rbar_hist[s_]]
    g_hist: list[dict] = []  # g_hist[s][ℓ]
    u_hist: list[dict] = []
    q_hist: list[dict] = []  # d·K̄ r^{(s)} (trained input)
    uV_hist: list[dict] = []  # u_{L+1}^{(s)} (trained readout)
    losses = []
    f = r = None

    def moved(base: dict, sc: RecipeScalars, t: int, terms) -> dict:
        """c_t·base + Σ_s a_{t,s}·terms(s, a) for a trained input or readout."""
        ct = sc.c[t]
        vec = base if ct is None else {k: ct * v for k, v in base.items()}
        for s_, a_ in sc.a[t].items():
            vec = terms(vec, s_, a_)
        return vec

    for t in range(steps + 1):
        if hid is None:
            ct, coefs = None, [minus_eta] * t
        else:
            ct, coefs = hid.c[t], [hid.a[t].get(s) for s in range(t)]
        h = ev.h0()
        if inp is not None:
            h = moved(h, inp, t, lambda v, s_, a_: ev.sub_outer(v, g_hist[s_][0], q_hist[s_], a_) if q_hist[s_] else v)
        if bz is not None:  # h_0 + β_0^{(t)}: its initial value and its updates along g_0^{(s)}
            if bz.input_var:
                h = ev.sub_outer(h, ev.bias_dir(), ones, R.one)
            for s_, c_ in bias_terms(bz.input, t):
                h = ev.sub_outer(h, g_hist[s_][0], ones, c_)
        hs = [h]
        for layer in range(1, L + 1):
            h = apply_W(layer, hs[layer - 1])
            if ct is not None:
                h = {k: ct * v for k, v in h.items()}
            for s in range(t):
                if coefs[s] is None:
                    continue
                q = ev.inner_batched(u_hist[s][layer], hs[layer - 1])
                if q:
                    h = ev.sub_outer(h, g_hist[s][layer], q, coefs[s])
            if bz is not None:  # + β_ℓ^{(t)}: its initial value and its updates along g_ℓ^{(s)}
                if bz.hidden_var:
                    h = ev.sub_outer(h, ev.bias_dir(layer), ones, R.one)
                for s_, c_ in bias_terms(bz.hidden, t):
                    h = ev.sub_outer(h, g_hist[s_][layer], ones, c_)
            hs.append(h)
        if out is None:
            gL = ev.gL()
            f = ev.readout(hs[L])
        else:
            gL = moved(ev.gL(), out, t, lambda v, s_, a_: ev.axpy(v, a_, uV_hist[s_]))
            f = ev.inner_batched(gL, hs[L])
        if bz is not None:  # + the readout bias β_V^{(t)} at every input
            for s_, c_ in bias_terms(bz.readout, t):
                f = ev.axpy(f, c_, ones)
        r = ev.residual(f)
        if bz is not None:
            rbar_hist.append(ev.value_inner(r, ones))
        if all_losses or (t == steps and want_loss):
            losses.append(ev.loss(r))
        if progress:
            progress(f"step {t}: forward done ({sum(len(x) for x in hs)} batched terms)")
        if t == steps:
            break
        g_t = {L: gL}
        u_t = {}
        for layer in range(L, 0, -1):
            u_t[layer] = ev.contract(hs[layer - 1], r)
            if layer > 1 or inp is not None or (bz is not None and bz.input is not None):
                g = apply_WT(layer, g_t[layer])
                if ct is not None:
                    g = {k: ct * v for k, v in g.items()}
                for s in range(t):
                    if coefs[s] is None:
                        continue
                    c = ev.inner(g_hist[s][layer], g_t[layer])
                    if c:
                        g = ev.axpy(g, coefs[s] * c, u_hist[s][layer])
                g_t[layer - 1] = g
        if out is not None:
            uV_hist.append(ev.contract(hs[L], r))
        if inp is not None:
            q_hist.append(ev.kernel_value(r, d_scale))
        g_hist.append(g_t)
        u_hist.append(u_t)
    return ProgramResult(loss=losses[-1] if losses else None, f=f, losses=tuple(losses))
