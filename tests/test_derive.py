"""polyloss.derive and ``polyloss derive``: routes agree exactly, minimisers are certified, the
limit matches sampled finite-width networks, bad input fails with one line."""

from __future__ import annotations

import json
import random
from fractions import Fraction
from math import comb

import mpmath
import numpy as np
import pytest
import sympy

from polyloss.cli import main
from polyloss.derive import (
    SCHEMA,
    closed_form,
    critical_points,
    data_moments,
    derive,
    evaluate_closed_form,
    explicit_limit,
    finite_expansion,
    power_counting,
)
from polyloss.errors import DataError, SpecError
from tests.conftest import rational_data




def poly_from_roots_of_derivative(roots, lead=Fraction(1)):
    """Coefficients of p with p' = lead * prod (eta - r) (p(0) = 1)."""
    dp = [lead]
    for r in roots:
        dp = [Fraction(0)] + dp
        for k in range(len(dp) - 1):
            dp[k] -= r * dp[k + 1]
    return [Fraction(1)] + [c / (k + 1) for k, c in enumerate(dp)]


# ------------------------------------------------------------------ routes agree exactly
@pytest.mark.parametrize("L,t", [(1, 2), (2, 1), (2, 2), (3, 2), (2, 3), (3, 3)])
def test_data_route_equals_moments_route(L, t):
    X, y = rational_data(5, 3, seed=L * 7 + t)
    d = derive(L, t, data=(X, y))
    mus = data_moments((X, y), t).mus
    assert d.moments == mus
    assert list(d.loss_coefficients) == evaluate_closed_form(closed_form(L, t), mus)
    if L * t <= 4:
        assert list(d.loss_coefficients) == explicit_limit(L, t, (X, y))
    # f: the closed form F_b applied to Kbar^b y equals the data route's f coefficients
    cf = closed_form(L, t)
    kry = data_moments((X, y), t).krylov
    F = {b: evaluate_closed_form(type(cf)(L, t, cs, {}), mus) for b, cs in cf.f.items()}
    for i in range(5):
        for k, c in enumerate(d.f_coefficients[i]):
            assert c == sum(F[b][k] * kry[b][i] for b in F if k < len(F[b]))


def test_float_data_are_converted_exactly():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    d = derive(2, 2, data=(X, y))
    Xq = [[Fraction(float(v)) for v in row] for row in X]
    yq = [Fraction(float(v)) for v in y]
    assert list(d.loss_coefficients) == explicit_limit(2, 2, (Xq, yq))
    assert d.data_info["conversion"] == "exact-binary"
    r = derive(2, 2, data=(X, y), rationalize="1e-6")
    assert r.data_info["conversion"].startswith("rationalized")
    assert r.moments[0] != d.moments[0] and abs(r.moments[0] - d.moments[0]) < Fraction(1, 10**4)
    tol = Fraction(1, 10**6)
    Xr = [[Fraction(round(float(v) * 10**6), 10**6) for v in row] for row in X]
    yr = [Fraction(round(float(v) * 10**6), 10**6) for v in y]
    assert all(abs(a - Fraction(float(v))) <= tol for ra, row in zip(Xr, X) for a, v in zip(ra, row))
    assert list(r.loss_coefficients) == explicit_limit(2, 2, (Xr, yr))
    assert list(r.loss_coefficients) == explicit_limit(2, 2, (X, y), rationalize="1e-6")
    fl = derive(2, 2, data=(X, y), exact=False)
    assert fl.route == "data-float" and not fl.exact
    np.testing.assert_allclose([float(c) for c in fl.loss_coefficients], [float(c) for c in d.loss_coefficients], rtol=1e-9)


def test_closed_form_strings_are_sympy_parsable_and_equal():
    d = derive(3, 2)
    strings = d.coefficient_strings()
    rnd = random.Random(0)
    vals = {f"mu{j}": sympy.Rational(rnd.randint(1, 9), rnd.randint(1, 9)) for j in range(5)}
    mus = [Fraction(int(vals[f"mu{j}"].p), int(vals[f"mu{j}"].q)) for j in range(5)]
    ref = evaluate_closed_form(closed_form(3, 2), mus)
    for s, r in zip(strings, ref):
        v = sympy.sympify(s).subs(vals)
        assert Fraction(int(v.p), int(v.q)) == r
    assert strings[:3] == ["mu0/2", "-6*mu1", "27*mu2"]


# ------------------------------------------------------------------ minimisers
def test_eta_inf_at_one_step_is_exact():
    X, y = rational_data(6, 3, seed=1)
    for L in (1, 2, 4):
        d = derive(L, 1, data=(X, y))
        mus = d.moments
        assert d.eta_inf.eta_exact == mus[1] / (L * mus[2])
        assert d.eta_inf.kind == "min"
        assert d.eta_inf.loss_exact == mus[0] / 2 - mus[1] ** 2 / (2 * mus[2])


def test_critical_points_certified_and_classified():
    # p' = (eta - 1)(eta - 3)(eta + 1)(eta^2 - 2): positive roots 1, sqrt 2, 3
    roots_poly = poly_from_roots_of_derivative([Fraction(1), Fraction(3), Fraction(-1)])
    dp = [Fraction(-2), Fraction(0), Fraction(1)]
    base = [k * c for k, c in enumerate(roots_poly)][1:]
    prod = [Fraction(0)] * (len(base) + 2)
    for i, a in enumerate(base):
        for j, b in enumerate(dp):
            prod[i + j] += a * b
    p = [Fraction(0)] + [c / (k + 1) for k, c in enumerate(prod)]
    cps = critical_points(p, digits=40)
    etas = list(cps)
    assert len(etas) == 3
    assert etas[0].eta_exact == 1 and etas[2].eta_exact == 3
    with mpmath.workdps(50):
        assert abs(mpmath.mpf(etas[1].eta) - mpmath.sqrt(2)) < mpmath.mpf(10) ** -38
    lo, hi = etas[1].interval
    assert lo * lo < 2 < hi * hi and hi - lo < Fraction(1, 10**40)
    # signs of p' = (e-1)(e+1)(e-3)(e^2-2): just right of 1: (+)(+)(-)(-) => + : min at 1
    assert [cp.kind for cp in cps] == ["min", "max", "min"]


def test_double_root_is_inflection_and_global_vs_first_minimum():
    p = poly_from_roots_of_derivative([Fraction(2), Fraction(2)])  # p' = (e-2)^2 >= 0
    (cp,) = critical_points(p)
    assert cp.kind == "inflection" and cp.multiplicity == 2 and cp.eta_exact == 2
    # p' = (e-1)(e-2)(e-4): minima at 1 and 4; the one at 4 is deeper
    p = poly_from_roots_of_derivative([Fraction(1), Fraction(2), Fraction(4)])
    cps = critical_points(p)
    mins = [cp for cp in cps if cp.kind == "min"]
    assert [cp.eta_exact for cp in mins] == [1, 4]
    vals = [sum(c * r**k for k, c in enumerate(p)) for r in (1, 4)]
    assert vals[1] < vals[0]


def test_global_first_and_window_minimisers_on_data():
    X, y = rational_data(6, 3, seed=2)
    d = derive(3, 3, data=(X, y), digits=25)
    mins = [cp for cp in d.critical_points if cp.kind == "min"]
    assert d.eta_first_local_min is mins[0]
    assert d.eta_inf._loss_mid == min(cp._loss_mid for cp in mins)
    assert len(d.eta_inf.eta.replace(".", "").lstrip("0")) >= 17
    # kinds alternate on a polynomial whose critical points are all simple
    kinds = [cp.kind for cp in d.critical_points]
    assert all(a != b for a, b in zip(kinds, kinds[1:]))
    # a tiny window: the minimiser is its boundary (the loss decreases from 0)
    w = derive(3, 3, data=(X, y), window=Fraction(1, 10**6))
    assert w.eta_window_at_boundary and w.eta_window_min is None


# ------------------------------------------------------------------ other parametrizations, finite
def test_power_counting_presets():
    mup = power_counting("mup", 4)
    assert mup.eta == 0 and list(mup.phi) == [Fraction(-(k - 1), 2) for k in range(1, 5)]
    assert list(mup.loss[:5]) == [0, 0, 0, Fraction(-1, 2), -1]
    sp = power_counting("sp", 3)
    assert sp.eta == -1 and list(sp.loss) == [0, 1, 2, 2, 2, 2, 2]
    ntp = power_counting("ntp", 3)
    assert ntp.eta == 0
    for a, g in [(Fraction(3, 2), Fraction(0)), (Fraction(2), Fraction(1, 2)), (Fraction(1), Fraction(1, 3)), (3, 0)]:
        assert power_counting(f"{a},{g}", 3).eta == Fraction(a) + Fraction(g) - 2


def test_sp_rescaled_mean_limit_with_data():
    X, y = rational_data(5, 2, seed=4)
    d = derive(2, 1, data=(X, y), param="sp")
    mus = data_moments((X, y), 1).mus
    m, dd = 5, 2
    K = [[sum(a * b for a, b in zip(xi, xj)) / dd for xj in X] for xi in X]
    Kb = [[v / m for v in row] for row in K]
    tr1 = sum(Kb[i][i] for i in range(m))
    tr2 = sum(Kb[i][j] * Kb[j][i] for i in range(m) for j in range(m))
    tr3 = sum(Kb[i][j] * Kb[j][k] * Kb[k][i] for i in range(m) for j in range(m) for k in range(m))
    kap = [tr1, tr2, tr3]
    assert list(d.rescaled_mean) == [Fraction(comb(2, k)) * (-2) ** k * (mus[k] + kap[k]) / 2 for k in range(3)]
    assert d.eta_inf.eta_exact == (mus[1] + kap[1]) / (2 * (mus[2] + kap[2]))
    assert d.to_json()["power_counting"]["eta_exponent"] == "-1"


def test_finite_expansion_structure():
    fe = finite_expansion(4)
    assert [len(fe.terms[k]) for k in range(1, 5)] == [comb(4, k) for k in range(1, 5)]
    assert all(tm.survives == (k == 1) for k, ts in fe.terms.items() for tm in ts)
    assert all(tm.rate == Fraction(-(k - 1), 2) for k, ts in fe.terms.items() for tm in ts)
    assert "<u_3, W2 g_1>" in fe.terms[2][1].text  # S = {1, 3}: W_2 sits between
    assert r"\langle" in fe.to_latex() and "phi_4" in fe.to_text()


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(depth=0, steps=1), SpecError),
        (dict(depth=2, steps=0), SpecError),
        (dict(depth=2.5, steps=1), SpecError),
        (dict(depth=2, steps=1, window=-1), SpecError),
        (dict(depth=2, steps=1, param="bogus"), SpecError),
        (dict(depth=2, steps=2, finite=True), SpecError),
        (dict(depth=2, steps=1, data=([[1.0, float("nan")]], [1.0])), DataError),
        (dict(depth=2, steps=1, data=([[1.0], [2.0]], [1.0])), DataError),
        (dict(depth=2, steps=1, data=([[1.0, 0.0], [0.0, 0.0]], [0.0, 1.0])), DataError),  # K y = 0
        (dict(depth=2, steps=1, data="nonsense"), DataError),
    ],
)
def test_bad_input_one_line_errors(kwargs, exc):
    with pytest.raises(exc) as info:
        derive(**kwargs)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ CLI
def test_cli_json_schema_closed_form(capsys):
    assert main(["derive", "--depth", "2", "--steps", "2", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == SCHEMA
    assert doc["loss_coefficients"][:3] == ["mu0/2", "-4*mu1", "12*mu2"]
    assert doc["eta_inf"] is None and doc["critical_points"] == []


def test_cli_json_with_data(tmp_path, capsys):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((7, 4))
    y = X @ rng.standard_normal(4)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert main(["derive", "--depth", "2", "--steps", "2", "--data", str(tmp_path / "d.npz"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    coeffs = [Fraction(s) for s in doc["loss_coefficients"]]
    assert coeffs == list(derive(2, 2, data=(X, y)).loss_coefficients)
    assert len(doc["eta_inf"].replace(".", "").lstrip("0")) >= 17
    assert doc["eta_first_local_min"] and all({"eta", "loss", "kind"} <= set(cp) for cp in doc["critical_points"])
    assert len(doc["f_coefficients"]) == 7
    assert main(["derive", "--depth", "2", "--steps", "1", "--data", str(tmp_path / "d.npz"), "--format", "latex"]) == 0
    assert r"\mathcal L" in capsys.readouterr().out


def test_cli_text_finite_and_param(capsys):
    assert main(["derive", "--depth", "2", "--steps", "1", "--finite"]) == 0
    out = capsys.readouterr().out
    assert "c_1 = -2*mu1" in out and "S={1, 2}" in out and "eta_inf = mu1/(2*mu2)" in out
    assert main(["derive", "--depth", "3", "--steps", "1", "--param", "sp"]) == 0
    assert "eta_n ~ n^(-1)" in capsys.readouterr().out


def test_cli_errors_exit_2(capsys, tmp_path):
    assert main(["derive", "--depth", "2", "--steps", "1", "--window", "abc"]) == 2
    assert "window" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, X=np.ones((3, 2)), y=np.ones(2))
    assert main(["derive", "--depth", "2", "--steps", "1", "--data", str(bad)]) == 2
    try:
        code = main(["derive", "--depth", "0", "--steps", "1"])
    except SystemExit as e:  # argparse usage errors
        code = e.code
    assert code == 2


# ------------------------------------------------------------------ against sampled finite-width networks
def _sampled_vs_limit(L, t, n, seeds, n_coef=4, z=4.0):
    from polyloss.data import linear_teacher
    from polyloss.engine import LossEngine
    from polyloss.spec import NetworkSpec, Parametrization
    from polyloss.weights import sample_weights

    ds = linear_teacher(d=4, m=6, noise=0.1, seed=21)
    p = Parametrization.preset("mup")
    lim = [float(c) for c in derive(L, t, data=ds).loss_coefficients[:n_coef]]
    lim += [0.0] * (n_coef - len(lim))
    rows = []
    for s in range(seeds):
        w = sample_weights(NetworkSpec(L, n, ds.d), p, np.random.SeedSequence([99, L, t, n, s]))
        c = LossEngine(w, ds, p).polynomial(t, degree=n_coef - 1).loss[:n_coef]
        rows.append(np.pad(c, (0, n_coef - len(c))))  # L = 1, t = 1 has degree 2 at every width
    rows = np.array(rows)
    mean = rows.mean(axis=0)
    se = rows.std(axis=0, ddof=1) / np.sqrt(seeds)
    for k in range(n_coef):
        assert abs(mean[k] - lim[k]) <= z * se[k] + 1e-12, (L, t, k, mean[k], lim[k], se[k])


@pytest.mark.parametrize("L,t", [(2, 2), (3, 3)])
def test_limit_against_sampled_networks_fast(L, t):
    _sampled_vs_limit(L, t, n=512, seeds=12)


@pytest.mark.slow
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("t", [1, 2, 3])
def test_limit_against_sampled_networks_n2048(L, t):
    _sampled_vs_limit(L, t, n=2048, seeds=24)


# --- issue 10, defect 2: rationals beyond Python's 4300-digit int<->str limit -------------------

def test_huge_rationals_round_trip_through_text():
    from fractions import Fraction

    from polyloss.derive import _frac_str, parse_fraction

    q = Fraction(-(3**20001) + 1, 7**6000)
    text = _frac_str(q)
    assert len(text) > 9000 and text.startswith("-")
    assert parse_fraction(text) == q
    assert parse_fraction(_frac_str(Fraction(5**9000))) == 5**9000
    with pytest.raises(ValueError):
        parse_fraction("1" * 5000 + "x")


def test_derive_on_data_with_huge_rationals_writes_json_and_text():
    """The `derive --help` example: L = 4, t = 3 on linear_teacher(d=10, m=50, seed=1) data, whose
    exact coefficients have > 10^4 digits; JSON and text used to crash in int -> str."""
    import json

    from polyloss.compare import _limit_from_derivation, eval_exact
    from polyloss.data import linear_teacher
    from polyloss.derive import derive, parse_fraction

    res = derive(4, 3, data=linear_teacher(d=10, m=50, seed=1))
    doc = json.loads(res.to_json_str())
    assert max(len(c) for c in doc["loss_coefficients"]) > 4300
    coeffs = [parse_fraction(c) for c in doc["loss_coefficients"]]
    assert coeffs == list(res.loss_coefficients)  # the text is the exact value
    text = res.to_text(max_terms=400)
    assert "degree" in text and len(text) > 4300
    lim = _limit_from_derivation(doc, 1.0, "test")  # and `compare --derivation` reads it back
    assert lim.loss_coefficients == tuple(coeffs)
    assert eval_exact(lim.loss_coefficients, 0.0) == float(coeffs[0])
