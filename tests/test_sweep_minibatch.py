"""`sweep` minibatches and init gains (issue 14, part 3): against a hand-written numpy training loop,
the He-rescaling identity of ReLU networks, the data-order stream, and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyloss import api
from polyloss.cli import main
from polyloss.data import linear_teacher
from polyloss.errors import SpecError
from polyloss.recipe import Recipe
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.train import batch_schedule, parse_init_gain, sweep_network, with_init_gain
from polyloss.weights import child_seed, sample_weights

DATA = linear_teacher(d=5, m=24, noise=0.1, seed=2)
MUP = Parametrization.parse("mup")


def _net(n, L=2, s=0):
    return sample_weights(NetworkSpec(L, n, DATA.d), MUP, child_seed(7, n, s))


def reference(w, X, y, eta, steps, rows, relu, lam=None, omega=0.0, beta=0.0):
    """Minibatch GD written out layer by layer: h_0 = W_0 x, h_l = W_l phi(h_{l-1}), f = V . phi(h_L),
    loss (1/2m) sum (f - y)^2 on all rows; step k's gradient on rows[k] with 1/B; every layer in ``lam``
    (input / hidden / readout multiplier) updated from the same weights with independent decay omega and
    heavy-ball momentum beta (buffer = g at the first step). Returns the losses at steps 0..steps."""
    lam = lam or {"hidden": 1.0}
    phi = (lambda a: np.maximum(a, 0)) if relu else (lambda a: a)
    dphi = (lambda a: (a > 0).astype(float)) if relu else (lambda a: np.ones_like(a))
    W = {"input": w.W0.copy(), "readout": w.V.copy(), **{("hidden", i): M.copy() for i, M in enumerate(w.hidden)}}
    L = len(w.hidden)
    buf, out = {}, []
    for k in range(steps + 1):
        pre = [X @ W["input"].T]
        for i in range(L):
            pre.append(phi(pre[-1]) @ W[("hidden", i)].T)
        f = phi(pre[-1]) @ W["readout"]
        out.append(float(np.sum((f - y) ** 2) / (2 * len(y))))
        if k == steps:
            break
        b = rows[k]
        r = (f - y)[b] / len(b)
        grads = {"readout": phi(pre[-1][b]).T @ r}
        delta = r[:, None] * W["readout"][None, :] * dphi(pre[-1][b])  # dloss/dh_L on the batch rows
        for i in range(L - 1, -1, -1):
            grads[("hidden", i)] = delta.T @ phi(pre[i][b])
            delta = (delta @ W[("hidden", i)]) * dphi(pre[i][b])
        grads["input"] = delta.T @ X[b]
        new = {}
        for key, M in W.items():
            kind = key[0] if isinstance(key, tuple) else key
            if kind not in lam:
                continue
            buf[key] = grads[key] if k == 0 or beta == 0 else beta * buf[key] + grads[key]
            new[key] = (1 - omega) * M - eta * lam[kind] * buf[key]
        W.update(new)
    return np.array(out)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("method", ["dense", "lowrank"])
def test_minibatch_gd_equals_the_reference_loop(relu, method):
    if relu and method == "lowrank":
        method = "dense"  # low rank is for any activation, but one ReLU case suffices
    n, steps = 32, 6
    w = _net(n)
    rows = batch_schedule(DATA.m, 5, steps, seed=7, sample=0)
    etas = np.array([0.05, 0.3, 1.0])
    got = sweep_network(w, DATA, MUP, etas, steps, activation="relu" if relu else "linear", method=method, batches=rows)
    ref = np.array([reference(w, DATA.X, DATA.y, e, steps, rows, relu) for e in etas])
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=0)
    full = sweep_network(w, DATA, MUP, etas, steps, activation="relu" if relu else "linear", method=method)
    assert not np.allclose(got[:, -1], full[:, -1], rtol=1e-6)  # minibatches are not full-batch GD


def test_minibatch_recipe_equals_the_reference_loop():
    """Every layer trained (muP rates x n, x 1, x 1/n), independent decay and momentum, ReLU, B = 7."""
    n, steps = 24, 5
    w = _net(n)
    rows = batch_schedule(DATA.m, 7, steps, seed=7, sample=1)
    recipe = Recipe(trained="input,hidden,readout", weight_decay="0.05", wd_mode="independent", momentum="0.5")
    etas = np.array([0.02, 0.1, 0.4])
    got = sweep_network(w, DATA, MUP, etas, steps, activation="relu", recipe=recipe, batches=rows)
    lam = {"input": float(n), "hidden": 1.0, "readout": 1.0 / n}
    ref = np.array([reference(w, DATA.X, DATA.y, e, steps, rows, True, lam=lam, omega=0.05, beta=0.5) for e in etas])
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=0)


def test_batch_schedule_is_epochs_of_permutations():
    rows = batch_schedule(10, 4, 5, seed=3, sample=2)  # 20 rows: two epochs of 10
    assert rows.shape == (5, 4)
    flat = rows.ravel()
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert np.array_equal(rows, batch_schedule(10, 4, 5, seed=3, sample=2))  # reproducible
    assert not np.array_equal(rows, batch_schedule(10, 4, 5, seed=3, sample=3))  # another sample, another order
    assert not np.array_equal(rows, batch_schedule(10, 4, 5, seed=4, sample=2))


def test_he_gain_is_a_rescaling_of_eta_and_y():
    """ReLU is positively homogeneous: W_0 and W_l scaled by g multiply f by g^(L+1), so GD at eta on y with
    gain g equals GD at eta g^(2L) on y / g^(L+1) with gain 1, losses times g^(2(L+1))."""
    L, n, steps, g = 2, 32, 4, np.sqrt(2.0)
    w = _net(n, L)
    etas = np.array([0.1, 0.5, 2.0])
    he = sweep_network(with_init_gain(w, g), DATA, MUP, etas, steps, activation="relu", method="dense")
    scaled = type(DATA)(DATA.X, DATA.y / g ** (L + 1), source="scaled")
    one = sweep_network(w, scaled, MUP, etas * g ** (2 * L), steps, activation="relu", method="dense")
    np.testing.assert_allclose(he, one * g ** (2 * (L + 1)), rtol=1e-10)


def test_init_gain_names():
    assert parse_init_gain("he") == ("he", np.sqrt(2.0))
    assert parse_init_gain("torch")[1] == pytest.approx(1 / np.sqrt(3.0))
    assert parse_init_gain(1) == ("1", 1.0) and parse_init_gain("0.5") == ("0.5", 0.5)
    for bad in ("0", "-1", "nan", "inf", "kaiming", True, None):
        with pytest.raises(SpecError, match="`init_gain`="):
            parse_init_gain(bad)


def _run(out, **kw):
    opts = dict(depth=2, widths=[16, 32], etas="lin:0.05:1:6", seeds=2, steps=3, seed=7, progress=False)
    opts.update(kw)
    return api.sweep(out, data=DATA, **opts)


def test_run_records_use_the_schedule_of_each_sample(tmp_path):
    run_ = _run(tmp_path / "r", batch=6, init_gain="he", activation="relu")
    assert run_.config["batch"] == 6 and run_.config["init_gain"] == "he"
    for rec in run_.records:
        n, s = rec["width"], rec["sample"]
        w = with_init_gain(_net(n, s=s), np.sqrt(2.0))
        ref = sweep_network(w, DATA, MUP, run_.etas, 3, activation="relu", batches=batch_schedule(DATA.m, 6, 3, 7, s))
        assert np.array_equal(np.array(rec["losses"], dtype=float), ref)
    full = _run(tmp_path / "full", batch=DATA.m)  # one batch of all rows is full-batch GD, bit for bit
    plain = _run(tmp_path / "plain")
    assert full.config["batch"] is None
    assert [r["losses"] for r in full.records] == [r["losses"] for r in plain.records]
    with open(tmp_path / "plain" / "run.json") as fh:
        assert json.load(fh)["init_gain"] == "1"


@pytest.mark.parametrize("extra, message", [
    (["--batch", "0"], "`batch`='0' is invalid"),
    (["--batch", "21"], "`batch`=21 is invalid: must be an integer in [1, m = 20]"),
    (["--init-gain", "kaiming"], "`init_gain`='kaiming' is invalid"),
])
def test_bad_batch_and_gain(tmp_path, capsys, extra, message):
    args = ["sweep", "--depth", "1", "--widths", "8", "--etas", "lin:0.1:1:5", "--steps", "2", "--d", "6", "--m", "20",
            "--out", str(tmp_path / "r")] + extra
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "r").exists()


def test_resume_refuses_another_batch(tmp_path):
    _run(tmp_path / "r", batch=6)
    with pytest.raises(Exception, match="batch"):
        _run(tmp_path / "r", batch=4, resume=True)


def adam_reference(w, X, y, eta, steps, relu, rates, omega=0.0, mode="l2", rhos=None, eps=1e-8):
    """Adam (beta 0.9, 0.999, bias-corrected) on every layer in ``rates`` (layer kind -> rate multiplier),
    written out; weight decay l2 (into g), decoupled (1 - eta rho omega) or independent (1 - omega)."""
    phi = (lambda a: np.maximum(a, 0)) if relu else (lambda a: a)
    dphi = (lambda a: (a > 0).astype(float)) if relu else (lambda a: np.ones_like(a))
    W = {"input": w.W0.copy(), "readout": w.V.copy(), **{("hidden", i): M.copy() for i, M in enumerate(w.hidden)}}
    L, m1, m2, out = len(w.hidden), {}, {}, []
    for k in range(steps + 1):
        pre = [X @ W["input"].T]
        for i in range(L):
            pre.append(phi(pre[-1]) @ W[("hidden", i)].T)
        f = phi(pre[-1]) @ W["readout"]
        out.append(float(np.sum((f - y) ** 2) / (2 * len(y))))
        if k == steps:
            break
        r = (f - y) / len(y)
        grads = {"readout": phi(pre[-1]).T @ r}
        delta = r[:, None] * W["readout"][None, :] * dphi(pre[-1])
        for i in range(L - 1, -1, -1):
            grads[("hidden", i)] = delta.T @ phi(pre[i])
            delta = (delta @ W[("hidden", i)]) * dphi(pre[i])
        grads["input"] = delta.T @ X
        rho = 1.0 if rhos is None else rhos[k]
        new = {}
        for key, M in W.items():
            kind = key[0] if isinstance(key, tuple) else key
            if kind not in rates:
                continue
            g = grads[key] + (omega * M if mode == "l2" else 0)
            m1[key] = 0.1 * g + (0.9 * m1[key] if k else 0)
            m2[key] = 0.001 * g * g + (0.999 * m2[key] if k else 0)
            d = (m1[key] / (1 - 0.9 ** (k + 1))) / (np.sqrt(m2[key] / (1 - 0.999 ** (k + 1))) + eps)
            decay = {"decoupled": 1 - eta * rho * omega, "independent": 1 - omega,
                     "torch": 1 - eta * rho * rates[kind] * omega}.get(mode, 1.0)
            new[key] = decay * M - eta * rho * rates[kind] * d
        W.update(new)
    return np.array(out)


@pytest.mark.parametrize("mode", ["l2", "decoupled", "independent", "torch"])
def test_adamw_recipe_equals_the_reference_loop(mode):
    """AdamW-μP with every layer trained (rates eta, eta/n, eta/n), a warmup, each decay mode, ReLU."""
    n, steps = 16, 5
    w = _net(n)
    recipe = Recipe(trained="input,hidden,readout", weight_decay="0.05", wd_mode=mode, schedule="warmup:3")
    etas = np.array([0.003, 0.03])
    got = sweep_network(w, DATA, MUP, etas, steps, activation="relu", optimizer="adam", recipe=recipe)
    rhos = [min(1.0, (k + 1) / 3) for k in range(steps)]
    ref = np.array([adam_reference(w, DATA.X, DATA.y, e, steps, True, {"input": 1.0, "hidden": 1 / n, "readout": 1 / n},
                                   omega=0.05, mode=mode, rhos=rhos) for e in etas])
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=0)


def test_adam_recipe_reduces_to_plain_adam():
    """A recipe that only spells out the plain one (hidden layers at the Adam rate eta/n given as explicit
    exponents) takes the recipe trainer and agrees with the plain Adam trainer to rounding; explicit exponents
    that GD would call plain are Adam rates too (here eta, not eta/n)."""
    n, steps = 32, 4
    w = _net(n)
    etas = np.array([0.01, 0.1, 1.0])
    plain = sweep_network(w, DATA, MUP, etas, steps, activation="relu", optimizer="adam")
    spelled = Recipe(trained="hidden", lr_exponents="0,1,1")
    got = sweep_network(w, DATA, MUP, etas, steps, activation="relu", optimizer="adam", recipe=spelled)
    np.testing.assert_allclose(got, plain, rtol=1e-12)
    at_eta = sweep_network(w, DATA, MUP, etas, steps, activation="relu", optimizer="adam",
                           recipe=Recipe(trained="hidden", lr_exponents="-1,0,1"))
    sp = sweep_network(w, DATA, MUP, etas, steps, activation="relu", optimizer="adam", adam_exponent=0)
    np.testing.assert_allclose(at_eta, sp, rtol=1e-12)


def test_adam_recipe_refusals():
    w = _net(8)
    with pytest.raises(SpecError, match="Adam keeps its own first moment"):
        sweep_network(w, DATA, MUP, [0.1], 2, optimizer="adam", recipe=Recipe(momentum="0.9"))
    with pytest.raises(SpecError, match="lr_exponents`=None is invalid"):
        sweep_network(w, DATA, Parametrization.parse("3/2,0"), [0.1], 2, optimizer="adam", adam_exponent=1,
                      recipe=Recipe(trained="hidden,readout"))


def test_adam_recipe_run_records_its_layer_rates(tmp_path):
    """run.json names the Adam rate of every layer; an explicit hidden exponent is applied, not the preset."""
    rec = Recipe(trained="input,hidden,readout", lr_exponents="0,1/2,1")
    run_ = _run(tmp_path / "r", optimizer="adam", recipe=rec, activation="relu")
    assert run_.config["adam"]["layer_exponents"] == ["0", "1/2", "1"] and run_.config["adam"]["exponent"] == "1/2"
    w = _net(16)
    ref = adam_reference(w, DATA.X, DATA.y, float(run_.etas[2]), 3, True, {"input": 1.0, "hidden": 16 ** -0.5,
                                                                            "readout": 1 / 16})
    got = np.array(next(r for r in run_.records if r["width"] == 16 and r["sample"] == 0)["losses"], dtype=float)[2]
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_zero_readout(tmp_path):
    """V = 0 at initialisation (Lingle's ablation): the reference loop from zero V, every layer trained; a
    recipe that does not train V is refused (nothing would move)."""
    rec = Recipe(trained="input,hidden,readout")
    run_ = _run(tmp_path / "z", readout_init="zero", recipe=rec, activation="relu", seeds=1)
    assert run_.config["readout_init"] == "zero"
    w = _net(16)
    w0 = type(w)(w.W0, w.hidden, np.zeros_like(w.V))
    rows = [np.arange(DATA.m)] * 3
    ref = reference(w0, DATA.X, DATA.y, float(run_.etas[3]), 3, rows, True,
                    lam={"input": 16.0, "hidden": 1.0, "readout": 1 / 16})
    got = np.array(next(r for r in run_.records if r["width"] == 16)["losses"], dtype=float)[3]
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    assert got[0] == pytest.approx(np.sum(DATA.y ** 2) / (2 * DATA.m))  # f = 0 at initialisation
    with pytest.raises(SpecError, match="`readout_init`='zero' is invalid"):
        _run(tmp_path / "bad", readout_init="zero")


def _norm_forward(P, X, relu, eps):
    """Loss of the RMS-normalised MLP: z_l = g_l * a_l / sqrt(mean(a_l^2) + eps) before each hidden layer and V."""
    phi = (lambda a: np.maximum(a, 0)) if relu else (lambda a: a)
    L = sum(1 for k in P if k[0] == "hidden")
    a = phi(X @ P[("input",)].T)
    for l in range(L + 1):
        z = P[("gain", l)] * a / np.sqrt(np.mean(a * a, axis=1, keepdims=True) + eps)
        if l < L:
            a = phi(z @ P[("hidden", l)].T)
    return z @ P[("readout",)]


@pytest.mark.parametrize("gains", ["rms", "rms-fixed"])
def test_rmsnorm_gd_equals_a_finite_difference_loop(gains):
    """GD on the normalised network with every gradient taken by central finite differences of the loss (no
    backpropagation formula shared with the trainer): every layer and the gains trained at the muP rates."""
    n, L, steps, eta, relu = 6, 2, 3, 0.05, True
    w = _net(n, L)
    eps = float(np.finfo(np.float64).eps)
    P = {("input",): w.W0.copy(), ("readout",): w.V.copy(), **{("hidden", i): M.copy() for i, M in enumerate(w.hidden)},
         **{("gain", l): np.ones(n) for l in range(L + 1)}}
    rate = {"input": float(n), "hidden": 1.0, "readout": 1.0 / n, "gain": float(n) if gains == "rms" else 0.0}
    loss = lambda Q: float(np.sum((_norm_forward(Q, DATA.X, relu, eps) - DATA.y) ** 2) / (2 * DATA.m))  # noqa: E731
    ref = [loss(P)]
    for _ in range(steps):
        new = {}
        for key, M in P.items():
            G, h = np.zeros_like(M), 1e-6
            for i in np.ndindex(M.shape):
                up, dn = dict(P), dict(P)
                up[key] = M.copy()
                up[key][i] += h
                dn[key] = M.copy()
                dn[key][i] -= h
                G[i] = (loss(up) - loss(dn)) / (2 * h)
            new[key] = M - eta * rate[key[0]] * G
        P = new
        ref.append(loss(P))
    got = sweep_network(w, DATA, MUP, [eta], steps, activation="relu", norm=gains,
                        recipe=Recipe(trained="input,hidden,readout"))[0]
    np.testing.assert_allclose(got, ref, rtol=1e-7)
    assert got[-1] < got[0]


def test_rmsnorm_runs_and_refusals(tmp_path):
    run_ = _run(tmp_path / "r", norm="rms", optimizer="adam", activation="relu", seeds=1)
    assert run_.config["norm"] == "rms" and run_.records[0]["method"] == "dense"
    with pytest.raises(SpecError, match="`norm`='batch' is invalid"):
        _run(tmp_path / "x", norm="batch")
    with pytest.raises(SpecError, match="`method`='lowrank' is invalid"):
        _run(tmp_path / "y", norm="rms", method="lowrank")


def test_adam_eps_zero_is_sign_descent_at_the_first_step():
    """eps = 0: the first Adam step moves every hidden entry by exactly the rate times sign(G) (the exact first
    Adam step of polyloss.adam), and sweep's loss after it equals that polynomial."""
    from polyloss.adam import adam_first_step

    w = _net(16)
    etas = np.array([0.1, 1.0, 3.0])
    got = sweep_network(w, DATA, MUP, etas, 1, optimizer="adam", adam_eps=0.0)
    poly = adam_first_step(w, DATA, MUP, eps=0.0)
    np.testing.assert_allclose(got[:, 1], poly(etas), rtol=1e-11)
    assert np.isfinite(sweep_network(w, DATA, MUP, etas, 5, optimizer="adam", adam_eps=0.0, activation="relu")).all()


def test_width_warmup_in_sweep():
    """SP-Adam with an exponential warmup from 1/n (n-warmup:3): the reference Adam loop with those rates."""
    n, steps = 16, 5
    sp = Parametrization.parse("sp")
    w = sample_weights(NetworkSpec(2, n, DATA.d), sp, child_seed(7, n, 0))
    rec = Recipe(trained="input,hidden,readout", schedule="n-warmup:3")
    etas = np.array([0.003, 0.03])
    got = sweep_network(w, DATA, sp, etas, steps, optimizer="adam", recipe=rec, activation="relu")
    rhos = [n ** (-(1 - s / 3)) if s < 3 else 1.0 for s in range(steps)]
    ref = np.array([adam_reference(w, DATA.X, DATA.y, e, steps, True, {"input": 1.0, "hidden": 1.0, "readout": 1.0},
                                   rhos=rhos) for e in etas])
    np.testing.assert_allclose(got, ref, rtol=1e-10)
