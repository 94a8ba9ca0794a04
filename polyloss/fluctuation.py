"""The fluctuation law of the optimal learning rate η_n around its limit η_∞ (docs/theory.md §9).

Two parts:

* **The exact L = 1 law** (:func:`l1_fluctuation_law`). With one hidden layer, t GD steps are kernel
  gradient descent with the random kernel Ā = ‖V‖²·(XW_0ᵀ)(XW_0ᵀ)ᵀ/m from the random start f^{(0)};
  to first order in n^{-1/2} the kernel and the start are Gaussian with a covariance written in terms
  of K = XXᵀ/d, and the delta method through the first-order condition of 𝓛_∞ gives the limiting
  Gaussian law of √n(η_n − η_∞) and of √n(𝓛_n(η_n) − 𝓛_∞(η_∞)), with the variance split into its three
  sources (the initial outputs ε, the shape of the input Gram matrix Z, the readout norm ζ). Every
  quantity is a polynomial in η evaluated in the eigenbasis of K, with its η-derivative taken exactly.
* **Generic tools for any depth**, on a ``sample`` run: the √n-scaled deviations per width
  (:func:`scaled_deviations`), a normality test (:func:`anderson_darling`: Anderson–Darling with
  estimated mean and SD), the chi-square CI of an SD (:func:`sd_interval`), the log-log slope of the SD
  vs n with a stratified bootstrap CI (:func:`sd_rate`), a QQ plot (:func:`qq_plot`) and a per-width
  table (:func:`fluctuation_table`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from polyloss.errors import DataError, SpecError

__all__ = ["FluctuationLaw", "l1_fluctuation_law", "kernel_gd_loss", "kernel_gd_minimiser", "scaled_deviations",
           "NormalityTest", "anderson_darling", "sd_interval", "sd_rate", "qq_plot", "fluctuation_table",
           "SOURCES"]

#: the three independent Gaussian sources of the L = 1 law, in the order of :attr:`FluctuationLaw.var_eta`
SOURCES = ("initial outputs ε", "input Gram matrix Z", "readout norm ζ")


# --------------------------------------------------------------------------------------------
# The exact L = 1 law
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FluctuationLaw:
    """The limiting Gaussian law of the L = 1 optimum at t steps (docs/theory.md §9).

    ``var_eta[k]`` / ``var_loss[k]``: the share of source :data:`SOURCES`[k] in the variance of
    √n(η_n − η_∞) / √n(𝓛_n(η_n) − 𝓛_∞(η_∞)); the three are independent, so the variances add.
    """

    steps: int
    eta_inf: float
    loss_inf: float
    window: float
    curvature: float  # 𝓛_∞''(η_∞)
    var_eta: tuple
    var_loss: tuple
    sources: tuple = field(default=SOURCES)

    @property
    def sd_eta(self) -> float:
        return float(np.sqrt(sum(self.var_eta)))

    @property
    def sd_loss(self) -> float:
        return float(np.sqrt(sum(self.var_loss)))

    def to_dict(self) -> dict:
        return {**asdict(self), "sd_eta": self.sd_eta, "sd_loss": self.sd_loss}


class _Eigen:
    """K̄ = U diag(lam) Uᵀ, K = m K̄, and ỹ = Uᵀy: every L = 1 quantity is diagonal in this basis."""

    def __init__(self, data):
        K = np.asarray(data.kernel(), dtype=float)
        self.m = K.shape[0]
        kappa, U = np.linalg.eigh(K)
        self.kappa = np.maximum(kappa, 0.0)  # K is PSD: a round-off negative eigenvalue is 0
        self.lam = self.kappa / self.m
        self.U = U
        self.yt = U.T @ np.asarray(data.y, dtype=float)

    def powers(self, eta: float, k: int, deriv: int = 0) -> np.ndarray:
        """d^deriv/dη^deriv of (1 − η lam)^k, elementwise (exact: falling factorial × (−lam)^deriv)."""
        p = 1.0 - eta * self.lam
        if deriv > k:
            return np.zeros_like(p)
        coef = float(np.prod(np.arange(k, k - deriv, -1))) if deriv else 1.0
        return coef * (-self.lam) ** deriv * p ** (k - deriv)

    def loss(self, eta: float, steps: int, deriv: int = 0) -> float:
        """d^deriv 𝓛_∞/dη^deriv with 𝓛_∞(η) = (1/2m) Σ ỹ_a² (1 − η lam_a)^{2t}."""
        return float(self.yt**2 @ self.powers(eta, 2 * steps, deriv)) / (2 * self.m)

    def response(self, eta: float, steps: int, deriv: int):
        """(a, C) of δ𝓛 = −(1/m) aᵀε − (1/m²) tr((Z + ζK) C), or their η-derivatives (deriv = 1), in the eigenbasis:
        a = P^{2t} y, C = η Σ_{j<t} sym[(P^{t−1−j} y)(P^{t+j} y)ᵀ], P = I − ηK̄."""
        t = steps
        a = self.powers(eta, 2 * t, deriv) * self.yt
        S = np.zeros((self.m, self.m))
        dS = np.zeros((self.m, self.m))
        for j in range(t):
            u, v = self.powers(eta, t - 1 - j), self.powers(eta, t + j)
            S += 0.5 * (np.outer(u, v) + np.outer(v, u))
            if deriv:
                du, dv = self.powers(eta, t - 1 - j, 1), self.powers(eta, t + j, 1)
                dS += 0.5 * (np.outer(du, v) + np.outer(u, dv) + np.outer(dv, u) + np.outer(v, du))
        yy = np.outer(self.yt, self.yt)
        C = yy * (S + eta * dS) if deriv else yy * eta * S  # d(ηS)/dη = S + η S'
        return a, C

    def variances(self, a, C) -> tuple:
        """(Var of −aᵀε/m, Var of −tr(ZC)/m², Var of −ζ tr(KC)/m²) for ε ~ N(0, K), Cov(Z_ij, Z_kl) =
        K_ik K_jl + K_il K_jk, ζ ~ N(0, 2); C symmetric, all in the eigenbasis of K."""
        m, k = self.m, self.kappa
        v_eps = float(k @ a**2) / m**2
        v_z = 2.0 * float(np.einsum("ab,a,b->", C**2, k, k)) / m**4
        v_zeta = 2.0 * float(k @ np.diag(C)) ** 2 / m**4
        return v_eps, v_z, v_zeta


def l1_fluctuation_law(data, steps: int, window=None) -> FluctuationLaw:
    """The limiting law of √n(η_n − η_∞) and √n(𝓛_n(η_n) − 𝓛_∞(η_∞)) for L = 1, μP, t = ``steps`` GD steps.

    η_∞ is the certified window minimiser of ``derive(1, steps, data, window=window)`` (window None: the
    default 4μ_1/μ_2). Raises :class:`DataError` when the limit has no interior minimiser in the window (the
    delta method needs 𝓛_∞'(η_∞) = 0 and 𝓛_∞''(η_∞) > 0)."""
    from polyloss.derive import derive

    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise SpecError(f"`steps`={steps!r} is invalid: must be an integer >= 1")
    der = derive(1, int(steps), data, window=window)
    cp = der.eta_window_min
    if cp is None or der.eta_window_at_boundary:
        raise DataError(f"the L=1, t={steps} limit has no interior minimiser in the window (0, {float(der.window):.6g}]: "
                        "the fluctuation law needs 𝓛_∞'(η_∞) = 0; pass a wider window")
    eta = float(cp.eta)
    E = _Eigen(data)
    curv = E.loss(eta, steps, 2)
    if not curv > 0:
        raise DataError(f"𝓛_∞''(η_∞) = {curv:.3g} at η_∞ = {eta:.6g}: a degenerate minimum, no √n Gaussian law")
    var_loss = E.variances(*E.response(eta, steps, 0))
    var_eta = tuple(v / curv**2 for v in E.variances(*E.response(eta, steps, 1)))
    return FluctuationLaw(int(steps), eta, float(cp.loss), float(der.window), curv, var_eta, var_loss)


def kernel_gd_loss(Abar, r0, steps: int, eta: float, order: int = 2) -> np.ndarray:
    """[𝓛, 𝓛', 𝓛''][:order+1] at η of kernel GD: r^{(t)} = (I − ηĀ)^t r0, 𝓛 = ‖r^{(t)}‖²/(2m), by applying
    the matrices (exact derivatives: r' = −tĀQ^{t−1}r0, r'' = t(t−1)Ā²Q^{t−2}r0; never the monomial form)."""
    Abar = np.asarray(Abar, dtype=float)
    m = Abar.shape[0]
    Q = np.eye(m) - eta * Abar
    pw = [np.asarray(r0, dtype=float)]
    for _ in range(steps):
        pw.append(Q @ pw[-1])
    r = pw[steps]
    out = [r @ r / (2 * m)]
    if order >= 1:
        r1 = -steps * (Abar @ pw[steps - 1])
        out.append(r @ r1 / m)
    if order >= 2:
        r2 = steps * (steps - 1) * (Abar @ (Abar @ pw[steps - 2])) if steps >= 2 else np.zeros(m)
        out.append((r1 @ r1 + r @ r2) / m)
    return np.array(out)


def kernel_gd_minimiser(Abar, r0, steps: int, eta0: float, *, tol: float = 1e-15, max_iter: int = 60) -> float:
    """The local minimiser of the kernel-GD loss nearest ``eta0`` by Newton's method on 𝓛' (for a small
    perturbation of a limit whose minimiser is ``eta0``); raises when Newton does not settle on a minimum."""
    eta = float(eta0)
    for _ in range(max_iter):
        _, g, h = kernel_gd_loss(Abar, r0, steps, eta)
        if not h > 0:
            raise DataError(f"kernel_gd_minimiser: 𝓛'' = {h:.3g} <= 0 at η = {eta:.6g}; no minimum near {eta0:.6g}")
        step = g / h
        eta -= step
        if abs(step) <= tol * max(1.0, abs(eta)):
            return eta
    raise DataError(f"kernel_gd_minimiser: Newton did not converge from η = {eta0:.6g}")


# --------------------------------------------------------------------------------------------
# Generic tools (any depth) on a sample run
# --------------------------------------------------------------------------------------------

def scaled_deviations(run, eta_inf: float, loss_inf: float) -> dict:
    """``{n: {"eta": √n(η_n − η_∞), "loss": √n(𝓛_n(η_n) − 𝓛_∞(η_∞)), "at_edge": bool array}}`` per width of a
    sample run (records' ``eta_opt`` and ``loss_at_eta_opt``)."""
    out = {}
    for n, recs in sorted(run.by_width().items()):
        eta = np.array([r["eta_opt"] for r in recs], dtype=float)
        loss = np.array([r["loss_at_eta_opt"] for r in recs], dtype=float)
        out[int(n)] = {"eta": np.sqrt(n) * (eta - eta_inf), "loss": np.sqrt(n) * (loss - loss_inf),
                       "at_edge": np.array([bool(r["at_edge"]) for r in recs])}
    return out


@dataclass(frozen=True)
class NormalityTest:
    """Anderson–Darling test of normality with the mean and SD estimated from the sample."""

    statistic: float  # A²
    adjusted: float  # A*² = A²(1 + 0.75/N + 2.25/N²)
    p_value: float
    count: int
    method: str = "Anderson-Darling, mean and SD estimated (p-value: D'Agostino & Stephens 1986, Table 4.9)"

    def to_dict(self) -> dict:
        return asdict(self)


def anderson_darling(x) -> NormalityTest:
    """The Anderson–Darling statistic of ``x`` against N(mean, SD²) with both estimated (SD with ddof = 1, as
    ``scipy.stats.anderson``) and its p-value from the case-3 formulas of D'Agostino & Stephens (1986)."""
    x = np.sort(np.asarray(x, dtype=float).ravel())
    N = x.size
    if N < 8 or not np.all(np.isfinite(x)):
        raise SpecError(f"anderson_darling needs at least 8 finite values, got {N}")
    sd = x.std(ddof=1)
    if not sd > 0:
        raise SpecError("anderson_darling: the sample has zero spread")
    z = (x - x.mean()) / sd
    i = np.arange(1, N + 1)
    a2 = float(-N - np.mean((2 * i - 1) * (stats.norm.logcdf(z) + stats.norm.logsf(z[::-1]))))
    a = a2 * (1 + 0.75 / N + 2.25 / N**2)
    if a >= 0.6:
        p = np.exp(1.2937 - 5.709 * a + 0.0186 * a**2)
    elif a >= 0.34:
        p = np.exp(0.9177 - 4.279 * a - 1.38 * a**2)
    elif a >= 0.2:
        p = 1 - np.exp(-8.318 + 42.796 * a - 59.938 * a**2)
    else:
        p = 1 - np.exp(-13.436 + 101.14 * a - 223.73 * a**2)
    return NormalityTest(a2, float(a), float(min(1.0, max(0.0, p))), int(N))


def sd_interval(x, level: float = 0.95) -> tuple:
    """(SD, low, high): the sample SD (ddof = 1) and its chi-square confidence interval at ``level``
    ((N−1)s²/σ² ~ χ²_{N−1} for Gaussian data)."""
    x = np.asarray(x, dtype=float).ravel()
    N = x.size
    if N < 2:
        raise SpecError(f"sd_interval needs at least 2 values, got {N}")
    s = float(x.std(ddof=1))
    alpha = 1 - level
    lo = s * np.sqrt((N - 1) / stats.chi2.ppf(1 - alpha / 2, N - 1))
    hi = s * np.sqrt((N - 1) / stats.chi2.ppf(alpha / 2, N - 1))
    return s, float(lo), float(hi)


def sd_rate(groups: dict, *, level: float = 0.95, n_resamples: int = 2000, seed: int = 0):
    """``SD_seeds(value) ∝ n^slope`` by least squares in log-log, with a stratified bootstrap CI (seeds resampled
    within each width, the SD re-estimated about each resample's own mean). Returns a
    :class:`polyloss.analysis.RateFit` whose ``rms`` are the SDs (the shape the plots draw)."""
    from polyloss.analysis import RateFit

    items = sorted((int(n), np.asarray(v, dtype=float).ravel()) for n, v in groups.items())
    items = [(n, v[np.isfinite(v)]) for n, v in items]
    items = [(n, v) for n, v in items if v.size >= 3]
    if len(items) < 3:
        raise SpecError(f"sd_rate needs at least 3 widths with >= 3 finite samples each, got {len(items)}")
    ns = np.array([n for n, _ in items], dtype=float)
    vals = [v for _, v in items]
    logn = np.log(ns)

    def slope_of(*samples):
        sds = np.array([np.std(s, ddof=1) for s in samples])
        return np.polyfit(logn, np.log(np.maximum(sds, 1e-300)), 1)[0]

    sds = np.array([np.std(v, ddof=1) for v in vals])
    slope, intercept = np.polyfit(logn, np.log(np.maximum(sds, 1e-300)), 1)
    boot = stats.bootstrap(tuple(vals), slope_of, vectorized=False, paired=False, n_resamples=n_resamples,
                           confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    ci = boot.confidence_interval
    se = tuple(float(s / np.sqrt(2 * (v.size - 1))) for s, v in zip(sds, vals))
    return RateFit(float(slope), float(ci.low), float(ci.high), float(intercept), level, tuple(int(n) for n in ns),
                   tuple(float(s) for s in sds), se)


def fluctuation_table(devs: dict, *, predicted: dict | None = None, level: float = 0.95) -> dict:
    """Per width and quantity ('eta', 'loss') of :func:`scaled_deviations`: count, mean, SD with its chi-square CI
    at ``level``, the Anderson–Darling test, and (``predicted = {"eta": sd, "loss": sd}``) whether the CI holds the
    predicted SD. Returns ``{quantity: {n: row}}``."""
    out: dict = {}
    for q in ("eta", "loss"):
        rows = {}
        for n, d in sorted(devs.items()):
            x = np.asarray(d[q], dtype=float)
            s, lo, hi = sd_interval(x, level)
            row = {"count": int(x.size), "mean": float(x.mean()), "sd": s, "sd_ci": [lo, hi], "level": level,
                   "normality": anderson_darling(x).to_dict() if x.size >= 8 else None}
            if predicted is not None and predicted.get(q) is not None:
                row["predicted_sd"] = float(predicted[q])
                row["ratio"] = s / float(predicted[q])
                row["within_ci"] = bool(lo <= predicted[q] <= hi)
            rows[int(n)] = row
        out[q] = rows
    return out


def qq_plot(ax, samples: dict, title: str, *, scale: float | dict | None = None,
            what: str = "√n(η_n − η_∞)") -> dict:
    """Normal QQ plot of ``samples = {width: values}``: ordered values against standard-normal quantiles
    (Blom plotting positions), with the reference line of the law they should follow.

    ``scale`` None: each sample is standardised by its own mean and SD and the reference is the line y = x
    ("a Gaussian"); a number or {width: number}: the values are divided by that predicted SD without centring,
    and the reference y = x is the predicted law N(0, 1) itself."""
    from polyloss import plots

    drawn = {}
    lo_all, hi_all = [], []
    for color, (n, x) in zip(plots._colors(len(samples)), sorted(samples.items())):
        x = np.sort(np.asarray(x, dtype=float).ravel())
        N = x.size
        q = stats.norm.ppf((np.arange(1, N + 1) - 0.375) / (N + 0.25))
        if scale is None:
            z = (x - x.mean()) / x.std(ddof=1)
        else:
            z = x / float(scale[n] if isinstance(scale, dict) else scale)
        ax.plot(q, z, "o", ms=3, color=color, label=f"n = {n} ({N} seeds)")
        drawn[int(n)] = {"normal_quantile": q.tolist(), "value": z.tolist()}
        lo_all.append(min(q.min(), z.min()))
        hi_all.append(max(q.max(), z.max()))
    if lo_all:
        lim = [min(lo_all), max(hi_all)]
        ax.plot(lim, lim, "k--", lw=1, label=("reference y = x: a Gaussian (per width: own mean and SD)"
                                              if scale is None else "reference y = x: the predicted law"))
        drawn["reference"] = lim
    ax.set_xlabel("standard normal quantile")
    ax.set_ylabel(f"ordered {what} / " + ("its own SD, centred" if scale is None else "predicted SD"))
    ax.set_title(title)
    ax.legend(fontsize=7)
    drawn["axes"] = plots.describe(ax)
    return drawn
