"""`polyloss sweep`: empirical η sweeps by training — against plain GD, the exact polynomial, hand-computed Adam."""

import json

import numpy as np
import pytest

from polyloss.cli import main
from polyloss.data import linear_teacher
from polyloss.errors import SpecError
from polyloss.gd import gd_train
from polyloss.poly import exact_polynomial
from polyloss.sampling import data_seed
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.sweep import (
    adam_exponent_for,
    load_sweep,
    parse_etas,
    run_sweep,
    sweep_network,
    sweep_optimum,
)
from polyloss.weights import Weights, child_seed, sample_weights

MUP = Parametrization.preset("mup")


def _net(depth, width, data, param=MUP, seed=0, sample=0):
    return sample_weights(NetworkSpec(depth, width, data.d), param, child_seed(seed, width, sample))


def _strip(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


# ------------------------------------------------------------------------------------ η grids
def test_parse_etas_forms():
    np.testing.assert_array_equal(parse_etas("lin:0:1:5"), [0, 0.25, 0.5, 0.75, 1])
    g = parse_etas("log:1e-3:1:4")
    np.testing.assert_allclose(g, [1e-3, 1e-2, 1e-1, 1], rtol=1e-14)
    assert g[0] == 1e-3 and g[-1] == 1.0
    np.testing.assert_array_equal(parse_etas("0.5, 0.1,2"), [0.1, 0.5, 2])
    np.testing.assert_array_equal(parse_etas([0.3, 0.0]), [0.0, 0.3])


@pytest.mark.parametrize("spec", ["lin:1:0:5", "log:0:1:5", "lin:0:1", "lin:a:1:3", "lin:0:1:1", "1,,2", "-1,2",
                                  "1,1", "", "lin:0:inf:3", "foo:0:1:3", "x", [], [0.1, float("nan")]])
def test_parse_etas_rejects(spec):
    with pytest.raises(SpecError) as exc:
        parse_etas(spec)
    msg = str(exc.value)
    assert "`etas`" in msg and "lin:START:STOP:COUNT" in msg and "\n" not in msg and repr(spec) in msg


# ------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("pname", ["mup", "sp", "ntp", "1.5,0.5"])
def test_linear_gd_equals_gd_train(pname):
    """Dense path: the very floating-point operations of gd.py (bit-identical); low rank: to rounding."""
    ds = linear_teacher(d=5, m=9, noise=0.1, seed=4)
    p = Parametrization.parse(pname)
    w = _net(3, 12, ds, p)
    etas = np.array([0.0, 0.2, 0.7, 1.5, 3.0])
    ref = np.array([gd_train(w, ds, p, e, 3) for e in etas])
    dense = sweep_network(w, ds, p, etas, 3, method="dense")
    np.testing.assert_array_equal(dense, ref)
    np.testing.assert_array_equal(sweep_network(w, ds, p, etas, 3, method="dense", memory_mb=1e-4), ref)  # chunk = 1
    np.testing.assert_allclose(sweep_network(w, ds, p, etas, 3, method="lowrank"), ref, rtol=1e-12)
    np.testing.assert_allclose(sweep_network(w, ds, p, etas, 3, method="lowrank", memory_mb=1e-4), ref, rtol=1e-12)


def test_run_records_are_the_sampled_networks_trained_by_gd(tmp_path):
    ds = linear_teacher(5, 12, 0.0, data_seed(3))
    run = run_sweep(tmp_path / "r", depth=2, widths=[6, 10], etas="0,0.5,1.5", seeds=2, steps=2, data=ds,
                    param="sp", seed=3, progress=False)
    assert len(run.records) == 4
    for rec in run.records:
        w = _net(2, rec["width"], ds, Parametrization.preset("sp"), seed=3, sample=rec["sample"])
        ref = np.array([gd_train(w, ds, Parametrization.preset("sp"), e, 2) for e in (0, 0.5, 1.5)])
        np.testing.assert_array_equal(np.array(rec["losses"]), ref)
    assert run.losses(6).shape == (2, 3, 3)


@pytest.mark.parametrize("steps", [1, 2])
def test_sweep_optimum_matches_exact_polynomial(tmp_path, steps):
    """The grid argmin per seed brackets the exact polynomial minimiser (μP, linear, GD)."""
    ds = linear_teacher(6, 20, 0.0, data_seed(0))
    window = 4.0 * ds.eta_inf_t1(2)
    count = 61
    run = run_sweep(tmp_path / "r", depth=2, widths=[32], etas=f"lin:{window / count}:{window}:{count}", seeds=2,
                    steps=steps, data=ds, progress=False)
    opt = run.optimum(32)
    spacing = run.etas[1] - run.etas[0]
    for s, eta_grid in enumerate(opt.seed_etas):
        exact = exact_polynomial(_net(2, 32, ds, sample=s), ds, MUP, steps).minimisation
        assert not exact.at_edge
        assert abs(eta_grid - exact.eta_opt) <= spacing * (1 + 1e-9), (s, eta_grid, exact.eta_opt)
        assert spacing < 0.1 * exact.eta_opt  # the check has teeth
    assert opt.spacing == pytest.approx(spacing) and not opt.at_edge


@pytest.mark.parametrize("activation,optimizer", [("relu", "gd"), ("linear", "adam"), ("relu", "adam")])
def test_relu_and_adam_finite_and_decrease_at_small_eta(tmp_path, activation, optimizer):
    ds = linear_teacher(5, 16, 0.0, data_seed(1))
    run = run_sweep(tmp_path / "r", depth=2, widths=[16], etas="0,0.001,0.01,0.1", seeds=2, steps=3, data=ds,
                    activation=activation, optimizer=optimizer, seed=1, progress=False)
    L = run.losses(16)
    assert np.all(np.isfinite(L))
    np.testing.assert_array_equal(L[:, 0, :], L[:, :1, :1].repeat(4, axis=2)[:, 0])  # η = 0: no change
    assert np.all(L[:, 1, -1] < L[:, 0, -1]) and np.all(L[:, 2, -1] < L[:, 1, -1])
    assert run.config["adam"] == (None if optimizer == "gd" else {"betas": [0.9, 0.999], "eps": 1e-8, "exponent": "1"})


def _relu(a, on):
    return np.maximum(a, 0) if on else a


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("eps", [1e-8, 0.05])
def test_adam_two_steps_by_hand(relu, eps):
    """L = 1: g = (1/m) Σ_i r_i (V ⊙ φ'(h_1)) φ(h_0)ᵀ; step 1 is lr·g/(|g|+ε), step 2 bias-corrected; μP lr = η/n."""
    rng = np.random.default_rng(5)
    n, d, m, eta = 3, 2, 4, 0.3
    X, y = rng.standard_normal((m, d)), rng.standard_normal(m)
    W0, W1, V = rng.standard_normal((n, d)), rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal(n) / n
    from polyloss.data import Dataset

    ds = Dataset(X, y)
    a0 = _relu(X @ W0.T, relu)

    def loss_grad(W):
        h1 = a0 @ W.T
        r = _relu(h1, relu) @ V - y
        D = (r[:, None] * V[None, :]) * ((h1 > 0) if relu else 1.0)
        return r @ r / (2 * m), D.T @ a0 / m

    lr = eta / n
    l0, g1 = loss_grad(W1)
    upd1 = lr * g1 / (np.abs(g1) + eps)  # m̂ = g, v̂ = g²
    if eps == 1e-8:
        big = np.abs(g1) > 1e-3  # η·sign(g) up to ε/|g|
        np.testing.assert_allclose(upd1[big], lr * np.sign(g1[big]), rtol=1e-5)
    W = W1 - upd1
    l1, g2 = loss_grad(W)
    mo, ve = 0.1 * 0.9 * g1 + 0.1 * g2, 0.001 * 0.999 * g1**2 + 0.001 * g2**2
    W = W - lr * (mo / (1 - 0.9**2)) / (np.sqrt(ve / (1 - 0.999**2)) + eps)
    l2, _ = loss_grad(W)
    got = sweep_network(Weights(W0, (W1,), V), ds, MUP, [0.0, eta], 2, optimizer="adam", adam_eps=eps,
                        activation="relu" if relu else "linear")
    np.testing.assert_allclose(got[1], [l0, l1, l2], rtol=1e-12)
    np.testing.assert_array_equal(got[0], [l0, l0, l0])


def _relu_loss_grads(W0, hidden, V, X, y):
    """Plain 2-D backprop through h_0 = W_0 x, h_l = W_l relu(h_{l-1}), f = V^T relu(h_L)."""
    hs = [X @ W0.T]
    for W in hidden:
        hs.append(np.maximum(hs[-1], 0) @ W.T)
    r = np.maximum(hs[-1], 0) @ V - y
    m = len(y)
    delta = np.outer(r / m, V) * (hs[-1] > 0)
    grads = [None] * len(hidden)
    for l in range(len(hidden), 0, -1):
        grads[l - 1] = delta.T @ np.maximum(hs[l - 1], 0)
        delta = (delta @ hidden[l - 1]) * (hs[l - 1] > 0)
    return r @ r / (2 * m), grads


def test_relu_gd_equals_plain_backprop_checked_by_finite_differences():
    ds = linear_teacher(d=4, m=10, seed=6)
    w = _net(3, 10, ds)
    _, grads = _relu_loss_grads(w.W0, w.hidden, w.V, ds.X, ds.y)
    for l, (i, j) in [(0, (1, 2)), (1, (3, 0)), (2, (5, 7))]:  # the reference's gradient, by central differences
        hp = [W.copy() for W in w.hidden]
        hm = [W.copy() for W in w.hidden]
        hp[l][i, j] += 1e-6
        hm[l][i, j] -= 1e-6
        fd = (_relu_loss_grads(w.W0, hp, w.V, ds.X, ds.y)[0] - _relu_loss_grads(w.W0, hm, w.V, ds.X, ds.y)[0]) / 2e-6
        assert fd == pytest.approx(grads[l][i, j], rel=1e-5, abs=1e-12)
    etas = [0.0, 0.5, 2.0, 8.0]
    ref = []
    for eta in etas:
        hidden, row = [W.copy() for W in w.hidden], []
        for _ in range(3):
            loss, g = _relu_loss_grads(w.W0, hidden, w.V, ds.X, ds.y)
            row.append(loss)
            hidden = [W - eta * G for W, G in zip(hidden, g)]
        row.append(_relu_loss_grads(w.W0, hidden, w.V, ds.X, ds.y)[0])
        ref.append(row)
    for method in ("dense", "lowrank"):
        got = sweep_network(w, ds, MUP, etas, 3, activation="relu", method=method)
        np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert not np.allclose(ref[1], sweep_network(w, ds, MUP, etas, 3)[1], rtol=1e-3)  # ReLU ≠ linear here


def test_adam_width_rules():
    assert adam_exponent_for(MUP) == 1 and adam_exponent_for(Parametrization.preset("sp")) == 0
    assert adam_exponent_for(Parametrization.preset("ntp")) == 0.5
    with pytest.raises(SpecError, match="adam_exponent"):
        adam_exponent_for(Parametrization.parse("1.5,0"))
    assert adam_exponent_for(Parametrization.parse("1.5,0"), "3/4") == 0.75
    # the multiplier really is applied: μP-Adam at η equals SP-exponent Adam at η/n on the same network
    ds = linear_teacher(d=4, m=6, seed=1)
    w = _net(2, 8, ds)
    a = sweep_network(w, ds, MUP, [0.4], 2, optimizer="adam")
    b = sweep_network(w, ds, MUP, [0.4 / 8], 2, optimizer="adam", adam_exponent=0)
    np.testing.assert_allclose(a, b, rtol=1e-13)


@pytest.mark.parametrize("method,dtype", [("dense", "float64"), ("lowrank", "float64"), ("dense", "float32"),
                                          ("adam", "float64")])
def test_divergence_is_inf_never_nan(tmp_path, method, dtype):
    ds = linear_teacher(5, 10, 0.0, data_seed(0))
    opt = "adam" if method == "adam" else "gd"
    run = run_sweep(tmp_path / "r", depth=3, widths=[8], etas="0.1,1e3,1e9,1e300", seeds=1, steps=4, data=ds, param="sp",
                    optimizer=opt, method="dense" if opt == "adam" else method, dtype=dtype, progress=False)
    L = run.losses(8)[0]
    assert not np.isnan(L).any()
    assert np.isfinite(L[0]).all() and np.isinf(L[-1, -1])
    assert np.isinf(L[2, -1]) or opt == "adam"  # Adam's steps are bounded by η per entry: 1e9 need not overflow
    assert all(np.isinf(L[i, k:]).all() for i in range(4) for k in range(5) if np.isinf(L[i, k]))  # stays diverged
    raw = (tmp_path / "r" / "records.jsonl").read_text()
    assert "Infinity" not in raw and "NaN" not in raw and "null" in raw
    rec = json.loads(raw.splitlines()[0])
    assert rec["diverged"] >= 1 and rec["eta_best"] == 0.1


def test_sweep_optimum_summary():
    etas = np.array([0.0, 1.0, 2.0, 4.0])
    L = np.array([[3.0, 1.0, 2.0, np.inf], [3.0, 2.0, 1.5, 5.0], [np.inf] * 4])
    o = sweep_optimum(etas, L[:2])
    assert (o.eta, o.loss, o.index, o.spacing, o.at_edge) == (1.0, 1.5, 1, 1.0, False)
    assert o.seed_etas == (1.0, 2.0) and o.seed_eta_mean == 1.5 and o.seed_eta_se == pytest.approx(0.5)
    assert o.diverged == 1
    o = sweep_optimum(etas, L)
    assert o.eta is None and np.isnan(o.seed_etas[2]) and o.count == 3
    o = sweep_optimum(etas, [4.0, 3.0, 2.0, 1.0])
    assert o.eta == 4.0 and o.at_edge and o.spacing == 2.0 and np.isnan(o.seed_eta_se)


# ------------------------------------------------------------------------------------ runs and CLI
SWEEP = ["sweep", "--depth", "2", "--steps", "2", "--d", "5", "--m", "12", "--etas", "lin:0.1:2:7", "--quiet"]


def test_resume_after_kill_gives_identical_records(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(SWEEP + ["--widths", "8,16", "--seeds", "3", "--out", str(ref)]) == 0
    assert main(SWEEP + ["--widths", "16", "--seeds", "2", "--out", str(run)]) == 0  # fewer widths and seeds
    recs = run / "records.jsonl"
    lines = recs.read_bytes().splitlines(keepends=True)
    recs.write_bytes(lines[0] + lines[1][:40])  # a kill mid-write: one record lost, a torn line
    assert main(SWEEP + ["--widths", "8,16", "--seeds", "3", "--out", str(run), "--resume"]) == 0
    assert _strip(load_sweep(run).records) == _strip(load_sweep(ref).records)
    assert len(load_sweep(run).records) == 6
    assert load_sweep(run).config["widths"] == [8, 16] and load_sweep(run).config["seeds"] == 3


def test_resume_needs_matching_grid(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(SWEEP + ["--widths", "8", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(SWEEP + ["--widths", "8", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    args = SWEEP + ["--widths", "8", "--out", str(out), "--resume"]
    args[args.index("lin:0.1:2:7")] = "lin:0.1:2:9"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "`etas`" in err and len(err.splitlines()) == 1


def test_cli_table(tmp_path, capsys):
    assert main(SWEEP + ["--widths", "8,16", "--seeds", "2", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "eta*" in out[1] and "spacing" in out[1] and "s.e." in out[1]
    assert [line.split()[0] for line in out[2:]] == ["8", "16"]


BAD = [
    ({"--etas": "lin:1:0:5"}, "etas"),
    ({"--etas": "log:0:1:5"}, "etas"),
    ({"--etas": "0.1,x"}, "etas"),
    ({"--etas": "1,1"}, "etas"),
    ({"--activation": "tanh"}, "activation"),
    ({"--optimizer": "sgd"}, "optimizer"),
    ({"--optimizer": "adam", "--adam-eps": "-1e-8"}, "adam-eps"),
    ({"--optimizer": "adam", "--param": "1.5,0"}, "adam_exponent"),
    ({"--optimizer": "adam", "--adam-exponent": "x"}, "adam-exponent"),
    ({"--optimizer": "adam", "--method": "lowrank"}, "method"),
    ({"--seeds": "0"}, "seeds"),
    ({"--seed": "-1"}, "seed"),
    ({"--widths": "8,x"}, "widths"),
    ({"--steps": "0"}, "steps"),
    ({"--depth": "0"}, "depth"),
    ({"--dtype": "float16"}, "dtype"),
    ({"--memory-mb": "0"}, "memory-mb"),
    ({"--param": "xyz"}, "param"),
    ({"--data": "/nonexistent.npz"}, "data"),
    ({"--m": "0"}, "m"),
]


@pytest.mark.parametrize("override,name", BAD)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, override, name):
    base = {"--depth": "2", "--widths": "8", "--etas": "lin:0.1:1:4", "--steps": "1", "--d": "4", "--m": "6",
            "--out": str(tmp_path / "o"), "--quiet": None}
    args = ["sweep"]
    for k, v in {**base, **override}.items():
        args += [k] if v is None else [k, v]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and "Traceback" not in err, err


def test_help_shows_an_example(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and "polyloss sweep --depth" in out


def test_cupy_matches_numpy(cupy_xp):
    ds = linear_teacher(d=5, m=9, seed=4)
    w = _net(2, 16, ds)
    wc = Weights(cupy_xp.asarray(w.W0), tuple(cupy_xp.asarray(W) for W in w.hidden), cupy_xp.asarray(w.V))
    for method in ("dense", "lowrank"):
        ref = sweep_network(w, ds, MUP, "lin:0.1:3:5", 2, method=method)
        got = sweep_network(wc, ds, MUP, "lin:0.1:3:5", 2, method=method, xp=cupy_xp)
        assert isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, ref, rtol=1e-10)
