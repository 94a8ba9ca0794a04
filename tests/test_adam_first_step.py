"""The exact first Adam step (polyloss.adam, issue 14 part 1).

References are independent routes: a torch-free numpy Adam loop written here (full β1/β2 state
and bias correction, not the simplified g/(|g|+ε)), sweep's batched Adam trainer, a dense n×n
update vs the rank-one sign-descent route, a lazily sampled layer materialised column by column,
the first-order identity c_1 = −κ Σ G²/(|G|+ε), and for the limit the sampled mean of coefficients
of lazily sampled networks (and numpy float moments vs the exact Fraction moments).
"""

from __future__ import annotations

import json
import math
import numpy as np
import pytest

from polyloss.adam import (DEFAULT_ADAM_EPS, adam_first_step, adam_limit, check_adam_eps,
                           data_moments, default_adam_window)
from polyloss.cli import main
from polyloss.data import synthetic
from polyloss.errors import PolylossError
from polyloss.lazy import sample_lazy_weights
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.weights import Weights, child_seed, sample_weights

KAPPA = {"mup": 1.0, "sp": 0.0, "ntp": 0.5}


def _data(d=5, m=20, seed=1):
    return synthetic("linear", d, m, 0.0, np.random.SeedSequence(seed))


def _net(depth, n, d, param, s=0):
    return sample_weights(NetworkSpec(depth, n, d), Parametrization.parse(param), child_seed(0, n, s))


def numpy_adam_loss(w, data, lr, eps, betas=(0.9, 0.999)):
    """Loss after one full-batch Adam step on the hidden layers (PyTorch's algorithm, written out)."""
    X, y, m = data.X, data.y, data.m
    W = [np.array(M, dtype=np.float64) for M in w.hidden]
    hs = [X @ w.W0.T]
    for M in W:
        hs.append(hs[-1] @ M.T)
    r = hs[-1] @ w.V - y
    delta = np.outer(r / m, w.V)  # dL/dh_L, (m, n)
    grads = [None] * len(W)
    for l in range(len(W), 0, -1):
        grads[l - 1] = delta.T @ hs[l - 1]
        delta = delta @ W[l - 1]
    b1, b2 = betas
    new = []
    for M, g in zip(W, grads):
        mom = (1 - b1) * g  # m_0 = 0
        vel = (1 - b2) * g * g  # v_0 = 0
        mhat, vhat = mom / (1 - b1), vel / (1 - b2)
        with np.errstate(invalid="ignore", divide="ignore"):
            upd = np.where(mhat == 0, 0.0, mhat / (np.sqrt(vhat) + eps))
        new.append(M - lr * upd)
    h = X @ w.W0.T
    for M in new:
        h = h @ M.T
    res = h @ w.V - y
    return float(res @ res / (2 * m)), grads


@pytest.mark.parametrize("param", ["mup", "sp", "ntp"])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("eps", [0.0, 1e-8, 1e-3])
def test_polynomial_equals_numpy_adam(param, depth, eps):
    data = _data()
    n = 48
    w = _net(depth, n, data.d, param)
    st = adam_first_step(w, data, param, eps=eps)
    assert st.degree == 2 * depth and st.route == ("rank1" if eps == 0 else "dense")
    kappa = n ** -KAPPA[param]
    for eta in (0.05, 0.4, 1.5, 6.0):
        ref, _ = numpy_adam_loss(w, data, eta * kappa, eps)
        assert st(eta) == pytest.approx(ref, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("param,eps", [("mup", 1e-8), ("mup", 1e-4), ("sp", 1e-8), ("ntp", 1e-3)])
def test_polynomial_equals_sweep_adam(param, eps):
    from polyloss.sweep import sweep_network

    data = _data(d=4, m=12, seed=3)
    w = _net(3, 40, data.d, param, s=2)
    etas = np.array([0.1, 0.7, 2.0, 5.0])
    ref = sweep_network(w, data, param, etas, 1, optimizer="adam", adam_eps=eps)[:, 1]
    st = adam_first_step(w, data, param, eps=eps)
    np.testing.assert_allclose(st(etas), ref, rtol=1e-10)
    assert st.loss[0] == pytest.approx(sweep_network(w, data, param, etas[:1], 1, optimizer="adam", adam_eps=eps)[0, 0],
                                       rel=1e-12)


@pytest.mark.parametrize("param", ["mup", "sp"])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_rank_one_route_equals_dense_route(param, depth):
    data = _data()
    w = _net(depth, 32, data.d, param, s=1)
    r1 = adam_first_step(w, data, param, eps=0, route="rank1")
    de = adam_first_step(w, data, param, eps=0, route="dense")
    scale = np.abs(r1.loss).max()
    np.testing.assert_allclose(r1.loss, de.loss, rtol=1e-11, atol=1e-13 * scale)
    np.testing.assert_allclose(r1.f, de.f, rtol=1e-11, atol=1e-13 * np.abs(r1.f).max())
    assert de.eps_coefficient_change == 0.0


@pytest.mark.parametrize("eps", [0.0, 1e-8, 1e-2])
def test_first_coefficient_identity(eps):
    """c_1 = dL/deta at 0 = -kappa * sum_l sum_ij G_ij^2/(|G_ij| + eps) (G from the numpy reference)."""
    data = _data(d=6, m=15, seed=7)
    n = 64
    w = _net(3, n, data.d, "mup", s=3)
    _, grads = numpy_adam_loss(w, data, 0.0, eps)
    ref = -sum(float(np.sum(g * g / (np.abs(g) + eps))) for g in grads) / n
    st = adam_first_step(w, data, "mup", eps=eps)
    assert st.loss[1] == pytest.approx(ref, rel=1e-10)
    # the eps diagnostics: eps / min |G_ij|
    if eps > 0:
        assert st.eps_ratio_max == pytest.approx(eps / min(np.abs(g[g != 0]).min() for g in grads), rel=1e-10)
        assert 0 < st.eps_coefficient_change < 1
    else:
        assert st.eps_ratio_max == 0.0


def test_eps_matters_more_at_large_width():
    """Under muP the gradient entries are O(1/n): a fixed eps moves the coefficients more as n grows."""
    data = _data()
    ch = [adam_first_step(_net(2, n, data.d, "mup"), data, "mup", eps=1e-6).eps_coefficient_change for n in (16, 256)]
    assert ch[1] > ch[0]


def test_lazy_rank_one_route_equals_dense_on_materialised_layer():
    """A lazy (ambient) network is one fixed matrix: materialise it after the run and take the dense route."""
    data = _data(d=4, m=10, seed=5)
    n, L = 24, 3
    lw = sample_lazy_weights(NetworkSpec(L, n, data.d), Parametrization.parse("mup"), child_seed(5, n, 0),
                             coords="ambient")
    st = adam_first_step(lw, data, "mup", eps=0)
    hidden = tuple(np.asarray(layer.forward(np.eye(n))).T for layer in lw.operators())
    dense = Weights(np.asarray(lw.W0), hidden, np.asarray(lw.V))
    ref = adam_first_step(dense, data, "mup", eps=0, route="dense")
    np.testing.assert_allclose(st.loss, ref.loss, rtol=1e-8, atol=1e-12)
    lazy_red = sample_lazy_weights(NetworkSpec(L, 4096, data.d), Parametrization.parse("mup"), child_seed(5, 4096, 0))
    with pytest.raises(PolylossError, match="ambient"):
        adam_first_step(lazy_red, data, "mup", eps=0)
    with pytest.raises(PolylossError, match="adam_eps"):
        adam_first_step(lw, data, "mup", eps=1e-8)


# ----------------------------------------------------------------------------------------- the limit
def test_moments_exact_vs_float():
    data = _data(d=7, m=30, seed=11)
    mu = [float(v) for v in data_moments(data, 3)]
    Kb = data.X @ data.X.T / (data.d * data.m)
    ref = [float(data.y @ np.linalg.matrix_power(Kb, j) @ data.y) / data.m for j in range(3)]
    np.testing.assert_allclose(mu, ref, rtol=1e-12)


def test_limit_closed_form_consistency():
    data = _data(d=7, m=30, seed=11)
    for L in (1, 2, 5):
        lim = adam_limit(L, data)
        c0, c1, c2 = (float(c) for c in lim.coefficients)
        mu0, mu1, mu2 = (float(v) for v in lim.moments)
        assert c1 == pytest.approx(-L * (2 / math.pi) * math.sqrt(mu1), rel=1e-14)  # = -kappa*sum|G| in the limit
        assert float(lim.eta_inf) == pytest.approx(-c1 / (2 * c2), rel=1e-14)
        assert float(lim.eta_inf) * L == pytest.approx(float(adam_limit(1, data).eta_inf), rel=1e-14)  # eta_inf ∝ 1/L
        assert float(lim.loss_at_eta_inf) == pytest.approx(float(lim(float(lim.eta_inf))), rel=1e-12)
        assert default_adam_window(data, L) == pytest.approx(4 * float(lim.eta_inf), rel=1e-10)
    assert "sqrt(mu1)" in adam_limit(3).closed_form["c1"]
    with pytest.raises(PolylossError, match="param"):
        adam_limit(2, data, param="sp")


def _sampled_coefficients(L, n, S, data, seed=0):
    out = []
    for s in range(S):
        w = sample_lazy_weights(NetworkSpec(L, n, data.d), Parametrization.parse("mup"), child_seed(seed, n, s),
                                coords="ambient")
        out.append(adam_first_step(w, data, "mup", eps=0).loss[:3])
    return np.array(out)


def _check_limit(L, n, S, data):
    lim = adam_limit(L, data)
    ref = np.array([float(c) for c in lim.coefficients])
    C = _sampled_coefficients(L, n, S, data)
    mean, se = C.mean(0), C.std(0, ddof=1) / math.sqrt(S)
    z = (mean - ref) / se
    assert np.all(np.abs(z) < 4), (n, mean, ref, z)
    # and a wrong limit (GD's mu_1 instead of Adam's (2/pi) sqrt(mu_1)) is rejected by the same test
    mu1 = float(lim.moments[1])
    assert abs((mean[1] + L * mu1) / se[1]) > 4
    return z


@pytest.mark.parametrize("L", [1, 3])
def test_limit_against_sampled_mean_fast(L):
    _check_limit(L, 2048, 12, _data(d=5, m=20, seed=1))


def test_limit_against_sampled_mean_n_2_14():
    """The issue's test: n = 2^14, within 4 standard errors (24 networks, ~0.2 s each)."""
    _check_limit(3, 2**14, 24, _data(d=5, m=20, seed=1))


@pytest.mark.slow
@pytest.mark.parametrize("L,n,S", [(2, 2**14, 24), (3, 2**16, 16)])
def test_limit_against_sampled_mean_wide(L, n, S):
    """n up to 2^16 (lazy, ambient coordinates; ~3 s per network at 2^16, ~60 s in all)."""
    _check_limit(L, n, S, _data(d=5, m=20, seed=1))


def test_limit_ingredient_mean_abs():
    """(1/n) ||g_l||_1 -> E|z| = sqrt(2/pi) for g_l = n b_l (the first factor of every term)."""
    from polyloss.adam import _initial_pass

    data = _data()
    n, L = 8192, 3
    w = sample_lazy_weights(NetworkSpec(L, n, data.d), Parametrization.parse("mup"), child_seed(0, n, 0),
                            coords="ambient")
    _, _, _, b, _ = _initial_pass(w.operators(), w.W0, w.V, data.X, data.y)
    for l in range(1, L + 1):
        assert np.abs(n * b[l]).mean() == pytest.approx(math.sqrt(2 / math.pi), abs=5 / math.sqrt(n))


# ----------------------------------------------------------------------------------------- API and CLI
def test_api_errors():
    data = _data()
    w = _net(2, 16, data.d, "mup")
    with pytest.raises(PolylossError, match="`steps`=2"):
        adam_first_step(w, data, "mup", steps=2)
    with pytest.raises(PolylossError, match="adam_eps"):
        check_adam_eps(-1.0)
    with pytest.raises(PolylossError, match="route"):
        adam_first_step(w, data, "mup", eps=1e-8, route="rank1")
    with pytest.raises(PolylossError, match="adam_exponent"):
        adam_first_step(w, data, "1.5,0", eps=0)
    assert DEFAULT_ADAM_EPS == __import__("polyloss.sweep", fromlist=["x"]).DEFAULT_ADAM_EPS


@pytest.fixture
def files(tmp_path):
    data = _data(d=6, m=25, seed=2)
    np.savez(tmp_path / "data.npz", X=data.X, y=data.y)
    w = _net(2, 32, data.d, "mup", s=4)
    w.to_npz(tmp_path / "net.npz")
    return tmp_path, data, w


@pytest.mark.parametrize("argv,names", [
    (["poly", "--data", "{d}", "--weights", "{w}", "--steps", "2", "--optimizer", "adam"], "`steps`=2"),
    (["poly", "--data", "{d}", "--weights", "{w}", "--steps", "1", "--optimizer", "adam", "--adam-eps", "-1"],
     "adam-eps"),
    (["poly", "--data", "{d}", "--weights", "{w}", "--steps", "1", "--adam-eps", "0"], "--adam-eps"),
    (["derive", "--depth", "2", "--steps", "3", "--optimizer", "adam"], "`steps`=3"),
    (["derive", "--depth", "2", "--steps", "1", "--optimizer", "adam", "--param", "ntp"], "`param`"),
    (["sample", "--depth", "2", "--widths", "16", "--samples", "1", "--steps", "2", "--optimizer", "adam", "--d", "3",
      "--m", "5", "--out", "{o}"], "`steps`=2"),
])
def test_cli_errors_one_line_exit_2(files, capsys, argv, names):
    tmp, _, _ = files
    argv = [a.format(d=tmp / "data.npz", w=tmp / "net.npz", o=tmp / "out") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and names in err
    assert not (tmp / "out").exists()


def test_cli_poly_adam_json(files, capsys):
    tmp, data, w = files
    assert main(["poly", "--data", str(tmp / "data.npz"), "--weights", str(tmp / "net.npz"), "--steps", "1",
                 "--optimizer", "adam", "--adam-eps", "0", "--eval", "0.5,2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    st = adam_first_step(w, data, "mup", eps=0)
    assert doc["optimizer"]["name"] == "adam" and doc["optimizer"]["eps"] == 0.0
    np.testing.assert_allclose(doc["loss_coefficients"], st.loss, rtol=1e-14)
    ref, _ = numpy_adam_loss(w, data, 2.0 / 32, 0.0)
    assert doc["eval"][1]["loss"] == pytest.approx(ref, rel=1e-10)
    e = doc["eta_opt"]
    assert st.taylor([e])[0, 1] == pytest.approx(0, abs=1e-9)  # a stationary point
    assert main(["poly", "--data", str(tmp / "data.npz"), "--weights", str(tmp / "net.npz"), "--steps", "1",
                 "--json"]) == 0
    assert "optimizer" not in json.loads(capsys.readouterr().out)  # GD documents are unchanged


def test_cli_derive_adam(files, capsys):
    tmp, data, _ = files
    assert main(["derive", "--optimizer", "adam", "--depth", "3", "--steps", "1", "--data", str(tmp / "data.npz"),
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert float(doc["eta_inf"]) == pytest.approx(float(adam_limit(3, data).eta_inf), rel=1e-14)
    assert doc["optimizer"] == "adam"


def test_sample_adam_run_records(files, capsys):
    tmp, _, _ = files
    out = tmp / "run"
    argv = ["sample", "--depth", "2", "--widths", "16,32", "--samples", "2", "--steps", "1", "--d", "4", "--m", "9",
            "--optimizer", "adam", "--adam-eps", "0", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    cfg = json.loads((out / "run.json").read_text())
    assert cfg["optimizer"]["name"] == "adam" and cfg["degree"] == 4
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(r["optimizer"] == "adam" for r in recs)
    # a record is the polynomial of network (n, s) drawn as polyloss sample draws it
    from polyloss.commands._common import resolve_data
    from polyloss.sampling import data_seed, load_run

    class A:
        data, synthetic, d, m, noise = None, None, 4, 9, 0.0

    data, _ = resolve_data(A, data_seed(0))
    r = next(r for r in recs if r["width"] == 32 and r["sample"] == 1)
    st = adam_first_step(_net(2, 32, 4, "mup", s=1), data, "mup", eps=0)
    np.testing.assert_allclose(r["loss_coefficients"], st.loss, rtol=1e-14)
    assert load_run(out).records  # readable by the usual loader
    # resuming with GD is refused (the optimizer is a resume key); GD runs carry no optimizer key
    gd = ["sample", "--depth", "2", "--widths", "16", "--samples", "1", "--steps", "1", "--d", "4", "--m", "9",
          "--quiet", "--window", "1", "--out"]
    assert main(gd + [str(tmp / "gd")]) == 0
    assert "optimizer" not in json.loads((tmp / "gd" / "run.json").read_text())
    assert main(gd + [str(tmp / "gd"), "--resume", "--optimizer", "adam", "--adam-eps", "0"]) == 2
    assert "optimizer" in capsys.readouterr().err


def test_sample_adam_lazy_widths(tmp_path, capsys):
    """Lazy widths (auto: n >= 2048) run with eps = 0 in ambient coordinates; eps > 0 there is refused up front."""
    base = ["sample", "--depth", "2", "--widths", "2048", "--samples", "1", "--steps", "1", "--d", "3", "--m", "6",
            "--optimizer", "adam", "--quiet", "--out"]
    assert main(base + [str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "adam_eps" in err and not (tmp_path / "bad").exists()
    assert main(base + [str(tmp_path / "ok"), "--adam-eps", "0"]) == 0
    rec = json.loads((tmp_path / "ok" / "records.jsonl").read_text().splitlines()[0])
    assert rec["sampler"] == "lazy" and rec["adam"]["route"] == "rank1" and len(rec["loss_coefficients"]) == 5


def test_compare_an_adam_run_with_the_adam_limit(tmp_path, capsys):
    """compare/report judge a first-Adam-step run against the Adam limit (eps = 0), never the GD one; a run
    with eps > 0 or a GD derivation file is refused in one line."""
    from polyloss.adam import adam_limit
    from polyloss.cli import main
    from polyloss.compare import compare, run_dataset
    from polyloss.sampling import load_run

    base = ["sample", "--depth", "2", "--widths", "32,64", "--samples", "3", "--steps", "1", "--d", "6", "--m", "20",
            "--optimizer", "adam", "--quiet"]
    assert main(base + ["--adam-eps", "0", "--out", str(tmp_path / "a0")]) == 0
    cmp_ = compare(tmp_path / "a0")
    lim = adam_limit(2, run_dataset(load_run(tmp_path / "a0")))
    assert cmp_.limit.loss_coefficients == tuple(float(c) for c in lim.coefficients)
    assert cmp_.limit.eta_first_local_min == float(lim.eta_inf) and not cmp_.limit.exact
    assert "Adam" in cmp_.recipe
    assert main(base + ["--adam-eps", "1e-8", "--out", str(tmp_path / "a8")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a8")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "eps = 1e-08" in err and "--adam-eps 0" in err
    import json

    from polyloss.derive import derive

    (tmp_path / "gd.json").write_text(json.dumps(derive(2, 1, data=run_dataset(load_run(tmp_path / "a0"))).to_json()))
    assert main(["compare", str(tmp_path / "a0"), "--derivation", str(tmp_path / "gd.json")]) == 2
    assert "use --derivation auto" in capsys.readouterr().err
