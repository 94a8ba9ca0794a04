r"""The exact first Adam step: the loss after one Adam (or SignGD) step is a polynomial in η.

Finite width
------------
One Adam step from zero state, bias-corrected (PyTorch convention, as :mod:`polyloss.train`'s
trainer): ``m̂ = g``, ``v̂ = g²`` after the first step, so the update of a trained matrix is
``−lr · g/(|g| + ε)`` entry by entry. Only the hidden ``W_1..W_L`` train (polyloss's plain
recipe); their Adam rate is ``lr = η κ_n`` with the width multiplier ``κ_n = n^{-κ}`` of
:func:`polyloss.train.adam_exponent_for` (μP: κ = 1, i.e. η/n; SP: 0; NTP: 1/2; a custom
parametrization needs ``adam_exponent``). So after one step

    W_ℓ' = W_ℓ − η κ_n S_ℓ,    S_ℓ = G_ℓ / (|G_ℓ| + ε)  (entrywise),   G_ℓ = ∇_{W_ℓ}𝓛 = b_ℓ u_ℓᵀ,

and ``S_ℓ`` does not depend on η. Hence ``f^{(1)}(x) = Vᵀ W_L'⋯W_1' W_0 x`` is a polynomial of
degree L in η and ``𝓛^{(1)}(η)`` one of degree 2L, computed exactly here (float64 coefficients,
no truncation). Two routes:

* ``"rank1"`` (ε = 0 only): ``S_ℓ = sign(b_ℓ) sign(u_ℓ)ᵀ`` is rank one (sign descent), so the
  forward pass needs W_ℓ only as an operator — dense or lazily sampled (:mod:`polyloss.lazy`,
  ambient coordinates: a sign vector is a nonlinear function of a vector's entries, so it needs
  the vector itself, not its frame coordinates). Cost O(L²·m·n) plus the operator products.
* ``"dense"`` (any ε ≥ 0): forms each ``S_ℓ`` (n×n); needs materialised weights.

``sign(0) = 0`` (an exactly zero gradient entry does not move; PyTorch would give 0/0 = NaN with ε = 0).

When does ε matter? Entry (i, j) of the update is ``sign(G_ij)/(1 + ε/|G_ij|)``: the result reports
``eps_ratio_max = ε / min |G_ij|`` and ``eps_ratio_median`` over the nonzero entries, and (dense
route, ε > 0) the relative change of every loss coefficient against ε = 0. Under μP the hidden
gradient entries are O(1/n) (``b_ℓ = O(1/n)``, ``u_ℓ = O(1)``), so a fixed ε matters more as n grows.

Infinite width (μP, ε → 0)
--------------------------
:func:`adam_limit`: ``𝓛_∞(η) = ½ μ_0 − (2L/π) √μ_1 η + (2L²/π²)(μ_2/μ_1) η²`` with the data moments
``μ_j = (1/m) yᵀ K̄^j y``, minimised at ``η_∞ = π μ_1^{3/2} / (2 L μ_2)``. Derivation: docs/theory.md
("The first Adam step").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from polyloss.data import Dataset
from polyloss.errors import SpecError, invalid
from polyloss.spec import Parametrization

__all__ = ["AdamStep", "AdamLimit", "adam_first_step", "adam_limit", "check_adam_steps", "check_adam_eps",
           "adam_multiplier", "DEFAULT_ADAM_EPS", "ROUTES", "adam_config"]

#: sweep's default ε (:data:`polyloss.train.DEFAULT_ADAM_EPS`).
DEFAULT_ADAM_EPS = 1e-8
ROUTES = ("auto", "rank1", "dense")


def check_adam_steps(steps) -> int:
    """Adam is implemented for the first step only: ``steps`` must be 1 (one-line SpecError otherwise)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or int(steps) != 1:
        raise invalid("steps", steps, "1 with optimizer 'adam' (only the first Adam step is an exact polynomial "
                                      "here; use optimizer 'gd' or `polyloss sweep` for more steps)")
    return 1


def check_adam_eps(eps) -> float:
    """ε ≥ 0, finite (ε = 0: sign descent)."""
    try:
        v = float(eps)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(eps, bool) or not (v == v and 0.0 <= v < float("inf")):
        raise invalid("adam_eps", eps, "a finite number >= 0 (0 = sign descent)")
    return v


def adam_multiplier(param, width: int, adam_exponent=None) -> tuple[float, Fraction]:
    """(κ_n, κ): the hidden Adam learning rate is ``η κ_n`` with ``κ_n = n^-κ`` (sweep's convention)."""
    from polyloss.train import adam_exponent_for

    param = Parametrization.parse(param)
    kappa = adam_exponent_for(param, adam_exponent)
    return float(width) ** (-float(kappa)), kappa


def adam_config(param, eps: float, adam_exponent=None) -> dict:
    """The ``optimizer`` block recorded in run.json / poly JSON for an Adam run."""
    from polyloss.train import ADAM_BETAS, adam_exponent_for

    kappa = adam_exponent_for(Parametrization.parse(param), adam_exponent)
    return {"name": "adam", "steps": 1, "eps": float(eps), "exponent": str(kappa), "betas": list(ADAM_BETAS),
            "hidden_lr": f"eta*n^-{kappa}"}


def _poly_mul_sum(R: np.ndarray) -> np.ndarray:
    """Coefficients of Σ_i R_i(η)² for rows of ascending coefficients R (m, K+1)."""
    K = R.shape[1] - 1
    C = R.T @ R
    out = np.zeros(2 * K + 1)
    for k in range(K + 1):
        out[k : k + K + 1] += C[k]
    return out


@dataclass(frozen=True, eq=False)
class AdamStep:
    """The exact loss polynomial after one Adam step (ascending powers of η).

    ``loss`` (2L + 1,), ``f`` (m, L + 1): coefficients of 𝓛^{(1)} and of f^{(1)}(x_i);
    ``loss0``: 𝓛 at initialisation; ``eps``; ``multiplier`` κ_n and ``exponent`` κ; ``route``;
    ``eps_ratio_max``/``eps_ratio_median``: ε / |G_ij| over nonzero gradient entries (0 when ε = 0);
    ``eps_coefficient_change``: max_k |c_k(ε) − c_k(0)| / max(|c_k(0)|, |c_k(ε)|) (dense route, else None;
    1 means some coefficient exists only because of ε — with ε = 0 a product such as
    sign(u_{ℓ+1})ᵀsign(b_ℓ), a sum of n terms ±1, can vanish exactly for even n);
    ``zero_gradient_entries``: how many G_ij are exactly 0 (their update is 0).
    """

    loss: np.ndarray
    f: np.ndarray
    loss0: float
    eps: float
    multiplier: float
    exponent: Fraction
    route: str
    width: int
    depth: int
    eps_ratio_max: float
    eps_ratio_median: float
    eps_coefficient_change: float | None = None
    zero_gradient_entries: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def degree(self) -> int:
        return self.loss.size - 1

    def __call__(self, etas):
        """𝓛^{(1)} at ``etas`` (Horner; the degree is only 2L, so the monomial form is well conditioned)."""
        e = np.asarray(etas, dtype=np.float64)
        out = np.zeros_like(e)
        for c in self.loss[::-1]:
            out = out * e + c
        return out

    def taylor(self, etas):
        """(G, 3): value, first derivative and half the second derivative (a :mod:`polyloss.minimize` oracle)."""
        P = np.polynomial.Polynomial(self.loss)
        d1, d2 = P.deriv(1), P.deriv(2)
        e = np.atleast_1d(np.asarray(etas, dtype=np.float64))
        return np.stack([P(e), d1(e), d2(e) / 2.0], axis=1)

    def minimise(self, window: float, n_grid: int = 96):
        """Local minima over (0, window] (:func:`polyloss.minimize.minimise`, complete coefficients given)."""
        from polyloss.minimize import minimise

        return minimise(self.taylor, window, n_grid=n_grid, coeffs=self.loss, shrink=False)

    def to_dict(self) -> dict:
        return {
            "optimizer": "adam", "steps": 1, "eps": self.eps, "exponent": str(self.exponent),
            "multiplier": self.multiplier, "route": self.route, "eps_ratio_max": self.eps_ratio_max,
            "eps_ratio_median": self.eps_ratio_median, "eps_coefficient_change": self.eps_coefficient_change,
            "zero_gradient_entries": self.zero_gradient_entries,
        }


def _host(a):
    from polyloss._backend import to_host

    return np.asarray(to_host(a), dtype=np.float64)


def _initial_pass(ops, W0, V, X, y):
    """Forward activations H_0..H_L (m × dim each), f^{(0)}, residual, b_1..b_L and u_1..u_L."""
    L = len(ops)
    H = [X @ W0.T]
    for op in ops:
        H.append(op.forward(H[-1]))
    f0 = H[-1] @ V
    r = f0 - y
    m = X.shape[0]
    b = [None] * (L + 1)
    b[L] = V
    for l in range(L, 1, -1):
        b[l - 1] = ops[l - 1].backward(b[l][None, :])[0]
    u = [None] + [(r @ H[l - 1]) / m for l in range(1, L + 1)]
    return H, f0, r, b, u


def _forward_poly(ops, H0, apply_update, L):
    """Coefficient stacks P_ℓ (ℓ+1, m, dim) of h_ℓ^{(1)}: P_ℓ[k] = W_ℓ P_{ℓ−1}[k] − κ S_ℓ P_{ℓ−1}[k−1]."""
    P = H0[None]
    for l in range(1, L + 1):
        k, m, dim = P.shape
        fw = ops[l - 1].forward(P.reshape(k * m, dim)).reshape(k, m, -1)
        new = np.zeros((k + 1, m, fw.shape[2]))
        new[:k] = fw
        new[1:] -= apply_update(l, P)
        P = new
    return P


def _loss_coeffs(P, V, y):
    F = P @ V  # (L+1, m)
    F = F.T.copy()
    R = F.copy()
    R[:, 0] -= y
    return _poly_mul_sum(R) / (2 * y.shape[0]), F


def adam_first_step(weights, data: Dataset, param="mup", *, eps: float = DEFAULT_ADAM_EPS, adam_exponent=None,
                    route: str = "auto", steps: int = 1) -> AdamStep:
    """The exact loss polynomial 𝓛^{(1)}(η) after one Adam step (module docstring).

    ``weights``: :class:`polyloss.weights.Weights` (dense) or :class:`polyloss.lazy.LazyWeights` in
    ambient coordinates (route 'rank1', ε = 0). ``route``: 'rank1' (ε = 0, any operator), 'dense'
    (any ε, materialised weights) or 'auto' (rank1 when ε = 0, else dense).
    """
    check_adam_steps(steps)
    eps = check_adam_eps(eps)
    if route not in ROUTES:
        raise invalid("route", route, "one of 'auto', 'rank1', 'dense'")
    if route == "auto":
        route = "rank1" if eps == 0 else "dense"
    if route == "rank1" and eps != 0:
        raise invalid("route", route, "'dense' or 'auto' with adam_eps > 0 (with eps > 0 the update g/(|g|+eps) "
                                      "is not rank one)")
    lazy = not hasattr(weights, "hidden")
    if lazy and getattr(weights, "coords", "ambient") != "ambient":
        raise invalid("weights", f"lazy network in {weights.coords} coordinates",
                      "dense weights or a lazy network in ambient coordinates (sign vectors need the entries)")
    if lazy and route == "dense":
        raise invalid("adam_eps", eps, "0 for a lazily sampled network (eps > 0 needs the dense n x n update; "
                                       "use dense weights, e.g. sampler 'dense')")
    if weights.input_dim != data.d:
        raise invalid("data", f"d={data.d}", f"data with d = {weights.input_dim} columns to match W0")
    n, L = weights.width, weights.depth
    kappa_n, kappa = adam_multiplier(param, n, adam_exponent)
    X, y = data.X, data.y
    W0, V = _host(weights.W0), _host(weights.V)
    if lazy:
        ops = weights.operators()
    else:
        from polyloss.weights import DenseLayer

        ops = [DenseLayer(_host(W)) for W in weights.hidden]
    H, f0, r, b, u = _initial_pass(ops, W0, V, X, y)
    loss0 = float(r @ r / (2 * data.m))
    zeros = sum(int(np.count_nonzero(b[l] == 0)) * u[l].size + int(np.count_nonzero(u[l] == 0)) * b[l].size
                - int(np.count_nonzero(b[l] == 0)) * int(np.count_nonzero(u[l] == 0)) for l in range(1, L + 1))
    ratio_max = ratio_med = 0.0
    if eps > 0:
        mins, meds = [], []
        for l in range(1, L + 1):
            ab, au = np.abs(b[l]), np.abs(u[l])
            ab, au = ab[ab > 0], au[au > 0]
            if ab.size and au.size:
                mins.append(ab.min() * au.min())
                meds.append(np.median(np.outer(ab, au)) if ab.size * au.size <= 2**24 else
                            np.median(ab) * np.median(au))
        ratio_max = float(eps / min(mins)) if mins else 0.0
        ratio_med = float(eps / min(meds)) if meds else 0.0

    sb = [None] + [np.sign(b[l]) for l in range(1, L + 1)]
    su = [None] + [np.sign(u[l]) for l in range(1, L + 1)]

    def rank1(l, P):  # κ S_ℓ P[k] for every k, S_ℓ = sign(b) sign(u)ᵀ
        return kappa_n * (P @ su[l])[..., None] * sb[l][None, None, :]

    loss_r1 = F_r1 = None
    if route == "rank1" or eps > 0:
        loss_r1, F_r1 = _loss_coeffs(_forward_poly(ops, H[0], rank1, L), V, y)
    change = None
    if route == "dense":
        S = [None]
        for l in range(1, L + 1):
            G = np.outer(b[l], u[l])
            with np.errstate(invalid="ignore", divide="ignore"):
                Sl = np.where(G == 0, 0.0, G / (np.abs(G) + eps))
            S.append(Sl)

        def dense(l, P):
            return kappa_n * (P @ S[l].T)

        loss_c, F = _loss_coeffs(_forward_poly(ops, H[0], dense, L), V, y)
        if eps > 0:
            scale = np.maximum(np.abs(loss_r1), np.abs(loss_c))
            diff = np.abs(loss_c - loss_r1)
            change = float(np.max(np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), 0.0)))
        else:
            change = 0.0
    else:
        loss_c, F = loss_r1, F_r1
    return AdamStep(loss=loss_c, f=F, loss0=loss0, eps=eps, multiplier=kappa_n, exponent=kappa, route=route,
                    width=n, depth=L, eps_ratio_max=ratio_max, eps_ratio_median=ratio_med,
                    eps_coefficient_change=change, zero_gradient_entries=zeros)


# ----------------------------------------------------------------------------------------- the μP limit
def data_moments(data: Dataset, count: int = 3) -> list[Fraction]:
    """μ_j = (1/m) yᵀ K̄^j y, j < count, exactly (each float's binary value), K̄ = X Xᵀ/(d m)."""
    X = [[Fraction(float(v)) for v in row] for row in np.asarray(data.X)]
    y = [Fraction(float(v)) for v in np.asarray(data.y)]
    m, d = data.m, data.d
    out, v = [], y
    for j in range(count):
        out.append(sum(a * b for a, b in zip(y, v)) / m)
        if j + 1 < count:  # v ← K̄ v = X (Xᵀ v) / (d m)
            xtv = [sum(X[i][k] * v[i] for i in range(m)) for k in range(d)]
            v = [sum(X[i][k] * xtv[k] for k in range(d)) / (d * m) for i in range(m)]
    return out


@dataclass(frozen=True)
class AdamLimit:
    """𝓛_∞(η) after one Adam step (μP, ε → 0), ``c_0 + c_1 η + c_2 η²``.

    ``closed_form``: the coefficients and η_∞ as text in μ_0, μ_1, μ_2 and π; with data also
    ``moments`` (exact Fractions μ_0, μ_1, μ_2), ``coefficients`` and ``eta_inf`` / ``loss_at_eta_inf``
    (mpmath numbers at ``dps`` digits).
    """

    depth: int
    closed_form: dict
    moments: tuple | None = None
    coefficients: tuple | None = None
    eta_inf: object = None
    loss_at_eta_inf: object = None
    dps: int = 50

    def __call__(self, eta):
        if self.coefficients is None:
            raise SpecError("the Adam limit has numbers only with data (give `data`)")
        c0, c1, c2 = (float(c) for c in self.coefficients)
        e = np.asarray(eta, dtype=np.float64)
        return c0 + c1 * e + c2 * e * e

    def to_json(self, digits: int = 30) -> dict:
        import mpmath

        fmt = lambda v: None if v is None else mpmath.nstr(v, digits)  # noqa: E731
        out = {"schema": "polyloss.adam_limit/1", "optimizer": "adam", "steps": 1, "param": "mup", "eps": "0 (limit)",
               "depth": self.depth, "closed_form": self.closed_form}
        if self.moments is not None:
            out["moments"] = {f"mu{j}": str(v) for j, v in enumerate(self.moments)}
            out["loss_coefficients"] = [fmt(c) for c in self.coefficients]
            out["eta_inf"] = fmt(self.eta_inf)
            out["loss_at_eta_inf"] = fmt(self.loss_at_eta_inf)
        return out

    def to_text(self, digits: int = 30) -> str:
        import mpmath

        L = self.depth
        cf = self.closed_form
        lines = [f"first Adam step (eps -> 0), muP hidden rate eta/n, L = {L}, infinite width:",
                 f"  L_inf(eta) = {cf['c0']} + ({cf['c1']})*eta + ({cf['c2']})*eta^2",
                 f"  eta_inf = {cf['eta_inf']}",
                 "  mu_j = (1/m) y^T Kbar^j y; derivation: docs/theory.md, 'The first Adam step'"]
        if self.moments is not None:
            lines.append("on the data: " + ", ".join(f"mu{j} = {mpmath.nstr(mpmath.mpf(v.numerator) / v.denominator, 17)}"
                                                     for j, v in enumerate(self.moments)))
            for k, c in enumerate(self.coefficients):
                lines.append(f"  c_{k} = {mpmath.nstr(c, digits)}")
            lines.append(f"  eta_inf = {mpmath.nstr(self.eta_inf, digits)}")
            lines.append(f"  L_inf(eta_inf) = {mpmath.nstr(self.loss_at_eta_inf, digits)}")
        return "\n".join(lines) + "\n"


def adam_limit(depth: int, data: Dataset | None = None, *, param="mup", dps: int = 50) -> AdamLimit:
    """The μP infinite-width loss after one Adam step with ε → 0 (docs/theory.md, "The first Adam step").

    𝓛_∞(η) = ½μ_0 − (2L/π)√μ_1 η + (2L²/π²)(μ_2/μ_1) η²,   η_∞ = π μ_1^{3/2} / (2 L μ_2).
    Needs μ_1 > 0 (K y ≠ 0). Only μP has this limit (SP/NTP have no deterministic one).
    """
    import mpmath

    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or not 1 <= int(depth) <= 10**6:
        raise invalid("depth", depth, "an integer >= 1")
    L = int(depth)
    p = Parametrization.parse(param)
    if (p.alpha, p.gamma) != (2, 0):
        raise invalid("param", p.name, "mup (the first-Adam-step limit is derived for muP: V ~ N(0, 1/n^2), "
                                       "hidden Adam rate eta/n)")
    closed = {"c0": "mu0/2", "c1": f"-{2 * L}/pi*sqrt(mu1)", "c2": f"{2 * L * L}/pi^2*mu2/mu1",
              "eta_inf": f"pi*mu1^(3/2)/({2 * L}*mu2)", "loss_at_eta_inf": "mu0/2 - 2*mu1^2/(pi^2*mu2)"}
    if data is None:
        return AdamLimit(L, closed, dps=dps)
    mu = data_moments(data, 3)
    if mu[1] <= 0 or mu[2] <= 0:
        raise invalid("data", "K y = 0", "data with K y != 0 (mu_1 > 0): otherwise the first step does not move f")
    with mpmath.workdps(dps):
        m0, m1, m2 = (mpmath.mpf(v.numerator) / v.denominator for v in mu)
        c0 = m0 / 2
        c1 = -2 * L / mpmath.pi * mpmath.sqrt(m1)
        c2 = 2 * L * L / mpmath.pi**2 * m2 / m1
        eta = mpmath.pi * m1 * mpmath.sqrt(m1) / (2 * L * m2)
        loss = c0 + c1 * eta + c2 * eta**2
        coeffs = (+c0, +c1, +c2)
    return AdamLimit(L, closed, tuple(mu), coeffs, +eta, +loss, dps)


# ----------------------------------------------------------------------------------------- poly / sample
def default_adam_window(data: Dataset, depth: int) -> float:
    """4 η_∞ of the μP first-Adam-step limit (float64), the default search window (0, Λ]."""
    X, y = data.X, data.y
    kby = X @ (X.T @ y) / (data.d * data.m)
    mu1, mu2 = float(y @ kby) / data.m, float(kby @ kby) / data.m
    if not (mu1 > 0 and mu2 > 0):
        raise invalid("data", "K y = 0", "data with K y != 0 for the default window (or give `window`)")
    return 4.0 * np.pi * mu1**1.5 / (2 * depth * mu2)


@dataclass(frozen=True, eq=False)
class AdamPolyResult:
    """:func:`adam_polynomial`'s result: the polynomial (:class:`AdamStep`), its minimisation and evaluations."""

    step: AdamStep
    minimisation: object
    evaluations: tuple
    optimizer: dict
    param: Parametrization
    m: int
    input_dim: int

    def to_json(self) -> dict:
        from polyloss import __version__

        st, mn = self.step, self.minimisation
        return {
            "schema": "polyloss.poly/3", "polyloss_version": __version__, "depth": st.depth, "width": st.width,
            "input_dim": self.input_dim, "m": self.m, "steps": 1, "param": self.param.to_dict(),
            "optimizer": self.optimizer, "degree": st.degree, "full_degree": st.degree, "truncated": False,
            "loss_coefficients": st.loss.tolist(), "f_coefficients": st.f.tolist(),
            "coefficient_accuracy": {"method": f"float64, exact formula ({st.route} route), not certified"},
            "eps_diagnostics": st.to_dict(), "loss_at_init": st.loss0,
            **mn.to_dict(),
            "eval": [{"eta": e, "loss": v, "diverged": False} for e, v in self.evaluations],
        }


def adam_polynomial(weights, data: Dataset, param="mup", *, eps: float = DEFAULT_ADAM_EPS, adam_exponent=None,
                    window: float | None = None, eval_etas=None, n_grid: int = 96, steps: int = 1,
                    route: str = "auto") -> AdamPolyResult:
    """``polyloss poly --optimizer adam``: the first-Adam-step polynomial, its minimisers in (0, window]
    (default :func:`default_adam_window`) and its values at ``eval_etas``."""
    from polyloss.poly import _check_window, check_eval_etas

    check_adam_steps(steps)
    eps = check_adam_eps(eps)
    param = Parametrization.parse(param)
    evals = () if eval_etas is None else tuple(float(e) for e in check_eval_etas(eval_etas))
    window = default_adam_window(data, weights.depth) if window is None else _check_window(window)
    st = adam_first_step(weights, data, param, eps=eps, adam_exponent=adam_exponent, route=route)
    mn = st.minimise(window, n_grid=n_grid)
    return AdamPolyResult(st, mn, tuple((e, float(st(e))) for e in evals), adam_config(param, eps, adam_exponent),
                          param, data.m, data.d)


def adam_exponent_checked(param, exponent=None) -> Fraction:
    """κ of the hidden Adam rate η n^-κ (:func:`polyloss.train.adam_exponent_for`), one-line errors."""
    from polyloss.train import adam_exponent_for

    return adam_exponent_for(Parametrization.parse(param), exponent)
