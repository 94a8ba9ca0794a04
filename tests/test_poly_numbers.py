"""Numbers that `poly` prints must be right (issue 10): certified coefficients, strict JSON, every local
minimum, divergent windows, the readout exponent with user weights, `--eval`.

References come from independent routes: exact rational GD + exact interpolation (flint fmpq),
plain float GD (polyloss.gd), a dense grid scan of the stable oracle.
"""

from __future__ import annotations

import json
import subprocess
import sys

import flint
import numpy as np
import pytest

from polyloss._jsonsafe import dumps, finite
from polyloss.data import Dataset, linear_teacher
from polyloss.engine import LossEngine
from polyloss.gd import gd_losses
from polyloss.minimize import minimise
from polyloss.poly import alpha_consistent, exact_polynomial, observed_alpha
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.weights import sample_weights

MUP, SP = Parametrization.preset("mup"), Parametrization.preset("sp")


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _q(x) -> flint.fmpq:
    return flint.fmpq(*float(x).as_integer_ratio())


def _exact_gd_loss(w, ds, param, eta: flint.fmpq, steps: int) -> flint.fmpq:
    """Plain full-batch GD in exact rational arithmetic (the float64 weights and data taken as exact)."""
    Q = lambda a: flint.fmpq_mat([[_q(v) for v in row] for row in np.atleast_2d(a)])  # noqa: E731
    X, y, W0, V = Q(ds.X), Q(ds.y[:, None]), Q(w.W0), Q(w.V[:, None])
    hidden = [Q(W) for W in w.hidden]
    lam = flint.fmpq(1) if param.gamma == 0 else None
    m = ds.m
    for t in range(steps + 1):
        hs = [X * W0.transpose()]
        for W in hidden:
            hs.append(hs[-1] * W.transpose())
        r = hs[-1] * V - y
        if t == steps:
            return (r.transpose() * r)[0, 0] / (2 * m)
        delta = r * V.transpose() / m
        grads = [None] * len(hidden)
        for l in range(len(hidden), 0, -1):
            grads[l - 1] = delta.transpose() * hs[l - 1]
            delta = delta * hidden[l - 1]
        hidden = [W - lam * eta * g for W, g in zip(hidden, grads)]


def _exact_coefficients(w, ds, param, steps: int, degree: int) -> list:
    """Exact coefficients by exact GD at η = 0..degree and exact interpolation (Vandermonde over Q)."""
    nodes = list(range(degree + 1))
    vals = flint.fmpq_mat([[_exact_gd_loss(w, ds, param, flint.fmpq(e), steps)] for e in nodes])
    Vd = flint.fmpq_mat([[flint.fmpq(e) ** k for k in range(degree + 1)] for e in nodes])
    sol = Vd.solve(vals)
    return [sol[k, 0] for k in range(degree + 1)]


@pytest.fixture(scope="module")
def tiny():
    ds = linear_teacher(d=3, m=4, seed=2)
    w = sample_weights(NetworkSpec(2, 4, 3), MUP, np.random.SeedSequence(5))
    return w, ds


@pytest.mark.parametrize("certify", ["bound", "arb"])
def test_coefficient_bounds_hold_against_exact_rationals(tiny, certify):
    """Every printed coefficient is within its certified error of the exact coefficient (exact GD)."""
    w, ds = tiny
    steps = 2  # degree 2L·D_2 = 16
    res = exact_polynomial(w, ds, MUP, steps, certify=certify)
    p = res.polynomial
    exact = _exact_coefficients(w, ds, MUP, steps, p.full_degree)
    assert p.loss_error is not None and len(exact) == p.loss.size == 17
    for k, (c, e, ce) in enumerate(zip(p.loss, p.loss_error, exact)):
        assert abs(_q(c) - ce) <= _q(e), (k, c, e, float(ce))
    n_acc = p.accurate_terms(1e-6)
    assert n_acc == p.loss.size  # a small network: every coefficient certified
    doc = _strict(dumps(res.to_json()))
    assert doc["schema"] == "polyloss.poly/3"
    assert doc["coefficient_accuracy"]["accurate_loss_coefficients"] == n_acc


def test_float_bound_is_rigorous_against_arb_and_values_unchanged():
    ds = linear_teacher(d=5, m=12, seed=1)
    for param in (MUP, SP, Parametrization.preset("ntp")):
        w = sample_weights(NetworkSpec(2, 16, 5), param, np.random.SeedSequence(3))
        eng = LossEngine(w, ds, param)
        fast, cert = eng.polynomial(3), eng.polynomial(3, certify=True)
        np.testing.assert_array_equal(fast.loss, cert.loss)  # certification never changes a value
        np.testing.assert_array_equal(fast.f, cert.f)
        ball = eng.polynomial_arb(3, prec=512)
        assert np.all(np.abs(cert.loss - ball.loss) <= cert.loss_error + ball.loss_error)
        assert np.all(np.abs(cert.f - ball.f) <= cert.f_error + ball.f_error)


def test_overflowing_coefficients_give_strict_json_with_nulls(tmp_path, capsys):
    """Coefficients beyond float64 used to print as NaN/Infinity (invalid JSON) with truncated false."""
    from polyloss.cli import main

    base = linear_teacher(d=3, m=5, seed=0)
    ds = Dataset(base.X * 1e40, base.y)
    w = sample_weights(NetworkSpec(2, 8, 3), MUP, np.random.SeedSequence(0))
    with np.errstate(all="ignore"):
        assert not np.all(np.isfinite(LossEngine(w, ds, MUP).polynomial(2).loss))  # the defect's precondition
    ds.to_npz(tmp_path / "d.npz")
    w.to_npz(tmp_path / "w.npz")
    assert main(["poly", "--data", str(tmp_path / "d.npz"), "--weights", str(tmp_path / "w.npz"), "--steps", "2",
                 "--window", "1e-100", "--certify", "bound", "--json"]) == 0
    doc = _strict(capsys.readouterr().out)
    acc = doc["coefficient_accuracy"]
    assert None in doc["loss_coefficients"] and acc["null_coefficients"] > 0
    k = doc["loss_coefficients"].index(None)
    assert acc["accurate_loss_coefficients"] <= k  # a null coefficient is never counted as accurate
    assert doc["loss_coefficient_errors"][k] is None


def test_jsonsafe_helper():
    obj = {"a": float("nan"), "b": [1.0, float("inf"), np.float64(-np.inf)], "c": np.array([2.0, np.nan]), "d": np.int64(3)}
    assert dumps(obj) == '{"a": null, "b": [1.0, null, null], "c": [2.0, null], "d": 3}'
    assert finite((1, np.bool_(True))) == [1, True]
    with pytest.raises(ValueError):
        json.dumps({"x": float("nan")}, allow_nan=False)


@pytest.fixture(scope="module")
def wiggly():
    """A configuration where the grid search missed 3 of 6 local minima (SP, L = 2, T = 3, n = 64)."""
    ds = linear_teacher(d=10, m=50, seed=1)
    w = sample_weights(NetworkSpec(2, 64, 10), SP, np.random.SeedSequence(7))
    return w, ds


def test_all_local_minima_found_and_certified(wiggly):
    w, ds = wiggly
    steps = 3
    eng = LossEngine(w, ds, SP)
    oracle = lambda e: eng.taylor(e, steps, order=2)  # noqa: E731
    res = exact_polynomial(w, ds, SP, steps)
    mn = res.minimisation
    assert mn.certified
    # independent: a dense scan of L' (4001 points) finds these sign changes - → +
    grid = np.linspace(0, mn.window, 4001)[1:]
    d = oracle(grid)[:, 1]
    idx = np.nonzero((d[:-1] < 0) & (d[1:] >= 0))[0]
    found = np.array([lm.eta for lm in mn.local_minima if not lm.at_edge])
    for i in idx:
        assert np.any((found >= grid[i]) & (found <= grid[i + 1])), f"missed the minimum in [{grid[i]}, {grid[i + 1]}]"
    assert len(found) >= len(idx) >= 6
    old = minimise(oracle, mn.window)  # the grid search alone misses some of them
    assert len([lm for lm in old.local_minima if not lm.at_edge]) < len(idx)
    # each reported minimum is one of plain GD: lower than at η(1 ± 1e-4)
    for eta in found[:4]:
        lo, mid, hi = gd_losses(w, ds, SP, [eta * (1 - 1e-4), eta, eta * (1 + 1e-4)], steps)
        assert mid <= lo and mid <= hi


def test_divergent_window_is_shrunk(tmp_path, capsys):
    from polyloss.cli import main

    ds = linear_teacher(d=4, m=6, seed=0)
    w = sample_weights(NetworkSpec(2, 8, 4), MUP, np.random.SeedSequence(1))
    eng = LossEngine(w, ds, MUP)
    assert not np.isfinite(eng.loss_at([1e8], 3)[0])  # GD overflows inside the requested window
    res = exact_polynomial(w, ds, MUP, 3, window=1e8, certify="bound")
    mn = res.minimisation
    assert mn.requested_window == 1e8 and mn.window < 1e8
    assert np.isfinite(gd_losses(w, ds, MUP, [mn.window], 3)[0])  # plain GD is finite at the new edge
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.isfinite(eng.loss_at([mn.window * (1 + 1e-5)], 3)[0])  # and overflows just beyond
    ds.to_npz(tmp_path / "d.npz")
    w.to_npz(tmp_path / "w.npz")
    args = ["poly", "--data", str(tmp_path / "d.npz"), "--weights", str(tmp_path / "w.npz"), "--steps", "3",
            "--window", "1e8", "--certify", "bound"]
    assert main(args) == 0
    assert "window shrunk from (0, 1e+08]" in capsys.readouterr().out
    assert main(args + ["--json"]) == 0
    doc = _strict(capsys.readouterr().out)
    assert doc["requested_window"] == 1e8 and doc["window"] == mn.window
    assert doc["minima_certified"] is False  # --certify bound: the grid search, and it says so


def test_alpha_checked_against_user_V(tmp_path):
    ds = linear_teacher(d=4, m=6, seed=0)
    w = sample_weights(NetworkSpec(2, 64, 4), MUP, np.random.SeedSequence(1))
    assert abs(observed_alpha(w.V) - 2) < 0.2
    assert alpha_consistent(2, w.V) and not alpha_consistent(7, w.V) and not alpha_consistent(1, w.V)
    ds.to_npz(tmp_path / "d.npz")
    w.to_npz(tmp_path / "w.npz")

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "polyloss.cli", "poly", "--data", str(tmp_path / "d.npz"),
                               "--weights", str(tmp_path / "w.npz"), "--steps", "1", "--json", *extra],
                              capture_output=True, text=True)

    bad, good, default = run("--param", "7,0"), run("--param", "mup"), run()
    assert bad.returncode == good.returncode == default.returncode == 0
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "alpha=7" in lines[0] and "not used" in lines[0]
    assert good.stderr == "" and default.stderr == ""
    assert _strict(bad.stdout)["observed_alpha"] == pytest.approx(observed_alpha(w.V))


def test_eval_prints_stable_losses(tmp_path, capsys):
    from polyloss.cli import main

    ds = linear_teacher(d=4, m=6, seed=0)
    w = sample_weights(NetworkSpec(2, 8, 4), MUP, np.random.SeedSequence(1))
    ds.to_npz(tmp_path / "d.npz")
    w.to_npz(tmp_path / "w.npz")
    base = ["poly", "--data", str(tmp_path / "d.npz"), "--weights", str(tmp_path / "w.npz"), "--steps", "3"]
    assert main(base + ["--eval", "0.5,1.5,1e8", "--json"]) == 0
    doc = _strict(capsys.readouterr().out)
    got = doc["eval"]
    ref = gd_losses(w, ds, MUP, [0.5, 1.5], 3)
    assert [g["eta"] for g in got] == [0.5, 1.5, 1e8]
    np.testing.assert_allclose([g["loss"] for g in got[:2]], ref, rtol=1e-10)
    assert got[2] == {"eta": 1e8, "loss": None, "diverged": True}
    assert main(base + ["--eval", "lin:0.5:1.5:3"]) == 0
    out = capsys.readouterr().out
    assert out.count("loss at eta = ") == 3
    for bad in ("0,1", "-1", "nan", "abc", ""):
        proc = subprocess.run([sys.executable, "-m", "polyloss.cli"] + base + ["--eval", bad], capture_output=True, text=True)
        assert proc.returncode == 2 and "`eval`" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, bad
