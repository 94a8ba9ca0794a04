"""``polyloss poly --model``: a user's mup / PyTorch state_dict trained as its optimizer trains it, in the user's
units (η = the optimizer's lr; ``--loss mse`` = nn.MSELoss). References: an independent numpy loop that trains the
*raw* parameters (not polyloss's effective weights) with mup.MuSGD's per-parameter learning rates and torch's
SGD semantics (momentum buffer, coupled weight decay), on (1/m)Σ(f − y)²."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from polyloss.data import linear_teacher
from polyloss.errors import SpecError
from polyloss.interop import import_model, loss_convention
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.weights import child_seed, sample_weights
from tests.test_interop import write_safetensors

DATA = linear_teacher(d=4, m=10, noise=0.1, seed=3)
N, L, BASE, OM = 24, 2, 6, 1.5


def _raw_model(mup=True):
    """A mup MLP's raw parameters: input (n×d), hidden (n×n), MuReadout weight R (1×n) with V = R·OM/(N/BASE)
    (``mup=False``: a plain nn.Linear readout, R = V)."""
    w = sample_weights(NetworkSpec(L, N, DATA.d), Parametrization.parse("mup"), child_seed(9, N, 0))
    return {"input.weight": w.W0, **{f"hidden.{i}.weight": W for i, W in enumerate(w.hidden)},
            "readout.weight": (w.V * ((N / BASE) / OM if mup else 1.0))[None, :]}


def _musgd_mse_losses(sd, lr, steps, momentum=0.0, weight_decay=0.0, loss="mse", mup=True, mup_wd=False):
    """Raw-parameter MuSGD (torch.optim.SGD semantics per group: g ← grad + wd·p, buf ← β·buf + g (buf = g at
    the first step), p ← p − lr_group·buf) on the MSE (or half-MSE) of f(x) = (OM/wm)·R·W_L⋯W_1·W_0·x.
    mup's groups: vector-like parameters (the input weight: fan_in d finite; the readout weight: fan_out 1
    finite) at lr·wm, matrix-like hidden weights at lr. ``mup=False``: torch SGD on plain nn.Linear layers
    (every group at lr, f = R·W_L⋯W_0·x). ``mup_wd``: MuSGD's weight decay per group, wd / wm on the vector-like
    groups (whose lr is ×wm). Returns the loss after each step."""
    wm = N / BASE if mup else 1.0
    OM_ = OM if mup else 1.0
    names = ["input.weight", *[f"hidden.{i}.weight" for i in range(L)], "readout.weight"]
    P = {k: np.array(v, dtype=float) for k, v in sd.items()}
    lr_of = {k: lr * (wm if k in ("input.weight", "readout.weight") else 1.0) for k in names}
    buf = {}
    X, y, m = DATA.X, DATA.y, DATA.m
    scale = 2.0 if loss == "mse" else 1.0
    out = []

    def forward():
        hs = [X.T]
        for k in names[:-1]:
            hs.append(P[k] @ hs[-1])
        f = (OM_ / wm) * (P["readout.weight"] @ hs[-1])[0]
        return hs, f

    for s in range(steps + 1):
        hs, f = forward()
        r = f - y
        out.append(scale * 0.5 * np.mean(r**2))
        if s == steps:
            break
        df = scale * r / m  # d loss / d f_i
        grads = {"readout.weight": (OM_ / wm) * (df @ hs[-1].T)[None, :]}
        back = (OM_ / wm) * P["readout.weight"].T * df[None, :]  # d loss / d h_L, (n × m)
        for j in range(len(names) - 2, -1, -1):
            k = names[j]
            grads[k] = back @ hs[j].T
            back = P[k].T @ back
        for k in names:
            wd = weight_decay / wm if (mup_wd and k in ("input.weight", "readout.weight")) else weight_decay
            g = grads[k] + wd * P[k]
            buf[k] = g if k not in buf else momentum * buf[k] + g
            P[k] = P[k] - lr_of[k] * (buf[k] if momentum else g)
    return np.array(out)


def _poly(tmp_path, sd, *extra, fmt="safetensors", opt="musgd"):
    np.savez(tmp_path / "d.npz", X=DATA.X, y=DATA.y)
    path = tmp_path / f"m.{fmt}"
    if fmt == "safetensors":
        write_safetensors(path, sd)
    else:
        np.savez(path, **sd)
    cmd = [sys.executable, "-m", "polyloss", "poly", "--data", str(tmp_path / "d.npz"), "--model", str(path),
           "--model-optimizer", opt, *(["--base-width", str(BASE), "--output-mult", str(OM)] if opt == "musgd" else []),
           "--json", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("loss", ["mse", "half-mse"])
@pytest.mark.parametrize("opt,knob", [("musgd", "plain"), ("musgd", "momentum"), ("sgd", "l2"),
                                      ("sgd", "l2-momentum"), ("musgd", "mup-decay")])
def test_musgd_on_raw_parameters_equals_poly_in_the_users_units(tmp_path, loss, opt, knob):
    """Coupled (l2) decay on plain SGD; MuSGD's decay, which mup rescales to 1 − lr·wd on every layer, is
    polyloss's decoupled mode (no momentum)."""
    lrs = [0.002, 0.01, 0.03] if opt == "musgd" else [0.0005, 0.002, 0.005]
    steps = 2
    kw = {"plain": {}, "momentum": {"momentum": 0.5}, "l2": {"weight_decay": 0.1},
          "l2-momentum": {"weight_decay": 0.1, "momentum": 0.5}, "mup-decay": {"weight_decay": 0.1, "mup_wd": True}}[knob]
    flags = {"plain": [], "momentum": ["--momentum", "0.5"], "l2": ["--weight-decay", "0.1"],
             "l2-momentum": ["--weight-decay", "0.1", "--momentum", "0.5"],
             "mup-decay": ["--weight-decay", "0.1", "--wd-mode", "decoupled"]}[knob]
    mup = opt == "musgd"
    doc = _poly(tmp_path, _raw_model(mup), "--steps", str(steps), "--loss", loss, "--eval", ",".join(map(str, lrs)),
                *flags, opt=opt)
    got = [e["loss"] for e in doc["eval"]]
    ref = [_musgd_mse_losses(_raw_model(mup), lr, steps, loss=loss, mup=mup, **kw)[-1] for lr in lrs]
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    assert [e["eta"] for e in doc["eval"]] == lrs
    # the polynomial in lr: Σ c_k lr^k = the trained loss (summed in float: small lr, well conditioned)
    c = np.array(doc["loss_coefficients"])
    assert abs(np.polyval(c[::-1], lrs[0]) - ref[0]) <= 1e-9 * ref[0]
    assert doc["model"]["optimizer"] == opt and doc["convention"]["loss"] == loss


def test_mse_convention_identity_on_effective_weights(tmp_path):
    """𝓛_mse(lr) = 2·𝓛(2·lr): the coefficients of --loss mse are 2^(k+1) times polyloss's, the same network."""
    sd = _raw_model()
    a = _poly(tmp_path, sd, "--steps", "2", "--loss", "mse")
    b = _poly(tmp_path, sd, "--steps", "2")
    ca, cb = np.array(a["loss_coefficients"]), np.array(b["loss_coefficients"])
    np.testing.assert_array_equal(ca, cb * 2.0 ** (np.arange(len(cb)) + 1))
    assert a["eta_opt"] == pytest.approx(b["eta_opt"] / 2, rel=1e-9)
    assert a["loss_at_eta_opt"] == pytest.approx(2 * b["loss_at_eta_opt"], rel=1e-9)
    conv = loss_convention("mse", "adam")
    assert conv.eta_factor == 1.0 and conv.loss_factor == 2.0  # Adam divides the gradient's scale out


def test_npz_and_safetensors_give_the_same_document(tmp_path):
    sd = _raw_model()
    a = _poly(tmp_path, sd, "--steps", "1", fmt="npz")
    b = _poly(tmp_path, sd, "--steps", "1", fmt="safetensors")
    assert a["loss_coefficients"] == b["loss_coefficients"] and a["eta_opt"] == b["eta_opt"]


def test_model_recipe_is_the_optimizers():
    m = import_model(_raw_model(), optimizer="musgd", base_width=BASE, output_mult=OM)
    r = m.recipe()
    assert r.trained_layers == ("input", "hidden", "readout")
    assert r.lr_multipliers(N, "mup", exact=True) == {"input": N / BASE, "hidden": 1, "readout": OM**2 * BASE / N}


@pytest.mark.parametrize("extra,needle", [
    (["--weights", "w.npz"], "exactly one of --weights"),
    (["--lr-exponents", "mup"], "`--lr-exponents`"),
    (["--lr-scales", "1,2,3"], "`--lr-scales`"),
    (["--model-optimizer", "muadam"], "muadam"),
    (["--optimizer", "adam"], "--optimizer adam"),
    (["--weight-decay", "0.1"], "--wd-mode decoupled"),
    (["--weight-decay", "0.1", "--wd-mode", "torch"], "--wd-mode decoupled"),
    (["--weight-decay", "0.1", "--wd-mode", "decoupled", "--momentum", "0.5"], "momentum buffer"),
])
def test_model_refusals_are_one_line(tmp_path, extra, needle):
    np.savez(tmp_path / "d.npz", X=DATA.X, y=DATA.y)
    np.savez(tmp_path / "m.npz", **_raw_model())
    cmd = [sys.executable, "-m", "polyloss", "poly", "--data", str(tmp_path / "d.npz"), "--model",
           str(tmp_path / "m.npz"), "--base-width", str(BASE), "--steps", "1", *extra]
    if "--model-optimizer" not in extra:
        cmd += ["--model-optimizer", "musgd"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and needle in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr


def test_data_of_another_dimension_is_refused(tmp_path):
    other = linear_teacher(d=3, m=5, seed=1)
    np.savez(tmp_path / "d.npz", X=other.X, y=other.y)
    np.savez(tmp_path / "m.npz", **_raw_model())
    res = subprocess.run([sys.executable, "-m", "polyloss", "poly", "--data", str(tmp_path / "d.npz"), "--model",
                          str(tmp_path / "m.npz"), "--steps", "1"], capture_output=True, text=True)
    assert res.returncode == 2 and "d = 3" in res.stderr and res.stderr.strip().count("\n") == 0


def test_sweep_model_trains_the_users_networks(tmp_path):
    """sweep --model (two widths, MuSGD): the training loop's losses equal poly --model's exact polynomial values,
    two independent routes; run.json records each model's digest, --resume with other models is refused."""
    from polyloss.demo_models import mup_mlp

    np.savez(tmp_path / "d.npz", X=DATA.X, y=DATA.y)
    paths = []
    for n in (16, 32):
        np.savez(tmp_path / f"m{n}.npz", **mup_mlp(n, 0, d=DATA.d, base_width=8))
        paths.append(str(tmp_path / f"m{n}.npz"))
    lrs = [0.01, 0.05, 0.2]
    common = ["--data", str(tmp_path / "d.npz"), "--model-optimizer", "musgd", "--base-width", "8", "--steps", "2"]
    sw = subprocess.run([sys.executable, "-m", "polyloss", "sweep", "--model", ",".join(paths), "--etas",
                         ",".join(map(str, lrs)), "--out", str(tmp_path / "sw"), "--quiet", *common],
                        capture_output=True, text=True)
    assert sw.returncode == 0, sw.stderr
    recs = {json.loads(ln)["width"]: json.loads(ln) for ln in (tmp_path / "sw" / "records.jsonl").read_text().splitlines()}
    cfg = json.loads((tmp_path / "sw" / "run.json").read_text())
    assert [m["width"] for m in cfg["models"]] == [16, 32] and len(cfg["models"][0]["sha256"]) == 64
    for n, path in zip((16, 32), paths):
        res = subprocess.run([sys.executable, "-m", "polyloss", "poly", "--model", path, "--json", "--eval",
                              ",".join(map(str, lrs)), *common], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        exact = [e["loss"] for e in json.loads(res.stdout)["eval"]]
        np.testing.assert_allclose([row[-1] for row in recs[n]["losses"]], exact, rtol=1e-10)
    np.savez(tmp_path / "m16.npz", **mup_mlp(16, 1, d=DATA.d, base_width=8))  # another network, same file name
    again = subprocess.run([sys.executable, "-m", "polyloss", "sweep", "--model", ",".join(paths), "--etas",
                            ",".join(map(str, lrs)), "--out", str(tmp_path / "sw"), "--quiet", "--resume", *common],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "models" in again.stderr
    bad = subprocess.run([sys.executable, "-m", "polyloss", "sweep", "--model", paths[0], "--widths", "16", "--etas",
                          "0.1", "--out", str(tmp_path / "sw2"), *common], capture_output=True, text=True)
    assert bad.returncode == 2 and "`--widths` is invalid with --model" in bad.stderr


def test_sweep_weights_trains_given_effective_weights(tmp_path):
    """sweep --weights (polyloss's NPZ of effective weights): linear GD losses equal poly --weights's values."""
    from tests.conftest import make_net

    np.savez(tmp_path / "d.npz", X=DATA.X, y=DATA.y)
    w, _ = make_net(2, 12, DATA, "mup", seed=3)
    np.savez(tmp_path / "w.npz", W0=w.W0, W1=w.hidden[0], W2=w.hidden[1], V=w.V)
    lrs = [0.1, 0.5]
    common = ["--data", str(tmp_path / "d.npz"), "--steps", "2", "--weight-decay", "0.1", "--momentum", "0.5"]
    sw = subprocess.run([sys.executable, "-m", "polyloss", "sweep", "--weights", str(tmp_path / "w.npz"), "--etas",
                         ",".join(map(str, lrs)), "--out", str(tmp_path / "sw"), "--quiet", *common],
                        capture_output=True, text=True)
    assert sw.returncode == 0, sw.stderr
    rec = json.loads((tmp_path / "sw" / "records.jsonl").read_text().splitlines()[0])
    res = subprocess.run([sys.executable, "-m", "polyloss", "poly", "--weights", str(tmp_path / "w.npz"), "--json",
                          "--eval", ",".join(map(str, lrs)), *common], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose([row[-1] for row in rec["losses"]], [e["loss"] for e in json.loads(res.stdout)["eval"]],
                               rtol=1e-10)


def _raw_with_biases(sd, lr, steps, opt="musgd", loss="mse", momentum=0.0):
    """Raw-parameter training of input → hidden → readout with biases (torch SGD semantics per group): MuSGD's
    groups are vector-like (input weight and every hidden/input bias: lr·wm; the MuReadout weight: lr·wm), matrix
    hidden weights (lr) and the MuReadout's one-entry bias (fixed: lr); f = (OM/wm)·R·h_L + c. ``opt='sgd'``:
    plain nn.Linear layers, every group at lr."""
    wm, om = (N / BASE, OM) if opt == "musgd" else (1.0, 1.0)
    names = ["input", *[f"hidden.{i}" for i in range(L)], "readout"]
    P = {k: np.array(v, dtype=float) for k, v in sd.items()}
    X, y, m = DATA.X, DATA.y, DATA.m
    scale = 2.0 if loss == "mse" else 1.0
    lr_of = {}
    for k in P:
        vector_like = k in ("input.weight", "readout.weight") or (k.endswith(".bias") and k != "readout.bias")
        lr_of[k] = lr * (wm if vector_like else 1.0)
    buf = {}
    for s in range(steps + 1):
        hs = [X.T]
        for k in names[:-1]:
            hs.append(P[k + ".weight"] @ hs[-1] + P[k + ".bias"][:, None])
        f = (om / wm) * (P["readout.weight"] @ hs[-1])[0] + P["readout.bias"][0]
        r = f - y
        if s == steps:
            return scale * 0.5 * np.mean(r**2)
        df = scale * r / m
        grads = {"readout.weight": (om / wm) * (df @ hs[-1].T)[None, :], "readout.bias": np.array([df.sum()])}
        back = (om / wm) * P["readout.weight"].T * df[None, :]
        for j in range(len(names) - 2, -1, -1):
            grads[names[j] + ".weight"] = back @ hs[j].T
            grads[names[j] + ".bias"] = back.sum(axis=1)
            back = P[names[j] + ".weight"].T @ back
        for k in P:
            g = grads[k]
            buf[k] = g if k not in buf else momentum * buf[k] + g
            P[k] = P[k] - lr_of[k] * (buf[k] if momentum else g)


@pytest.mark.parametrize("opt,momentum", [("musgd", 0.0), ("musgd", 0.5), ("sgd", 0.0)])
def test_biases_against_an_independent_raw_parameter_loop(tmp_path, opt, momentum):
    """Biases on every layer (non-zero, trained): poly --model equals actual training of the raw parameters."""
    rng = np.random.default_rng(5)
    sd = _raw_model(opt == "musgd")
    sd.update({"input.bias": 0.3 * rng.standard_normal(N), "readout.bias": np.array([0.2]),
               **{f"hidden.{i}.bias": 0.3 * rng.standard_normal(N) for i in range(L)}})
    lrs = [0.002, 0.01, 0.02] if opt == "musgd" else [0.0005, 0.002]
    doc = _poly(tmp_path, sd, "--steps", "2", "--loss", "mse", "--momentum", str(momentum), "--eval",
                ",".join(map(str, lrs)), opt=opt)
    ref = [_raw_with_biases(sd, lr, 2, opt=opt, momentum=momentum) for lr in lrs]
    np.testing.assert_allclose([e["loss"] for e in doc["eval"]], ref, rtol=1e-10)
    assert doc["width"] == N and doc["input_dim"] == DATA.d
    assert any("constant channel" in note for note in doc["model"]["mapping"])
    # and the biases matter: the same weights without them give another polynomial
    no_bias = _poly(tmp_path, {k: v for k, v in sd.items() if not k.endswith("bias")}, "--steps", "2", "--loss",
                    "mse", "--momentum", str(momentum), "--eval", ",".join(map(str, lrs)), opt=opt)
    assert abs(no_bias["eval"][0]["loss"] - ref[0]) > 1e-3 * ref[0]


def test_bias_refusals(tmp_path):
    sd = {**_raw_model(), "input.bias": np.full(N, 0.1)}
    np.savez(tmp_path / "d.npz", X=DATA.X, y=DATA.y)
    np.savez(tmp_path / "m.npz", **sd)
    base = [sys.executable, "-m", "polyloss", "poly", "--data", str(tmp_path / "d.npz"), "--model",
            str(tmp_path / "m.npz"), "--model-optimizer", "musgd", "--base-width", str(BASE), "--steps", "1"]
    res = subprocess.run(base + ["--weight-decay", "0.1", "--wd-mode", "decoupled"], capture_output=True, text=True)
    assert res.returncode == 2 and "biases" in res.stderr and res.stderr.strip().count("\n") == 0
    sw = subprocess.run([sys.executable, "-m", "polyloss", "sweep", "--data", str(tmp_path / "d.npz"), "--model",
                         str(tmp_path / "m.npz"), "--model-optimizer", "musgd", "--base-width", str(BASE), "--steps",
                         "1", "--etas", "0.1", "--out", str(tmp_path / "sw")], capture_output=True, text=True)
    assert sw.returncode == 2 and "biases" in sw.stderr and sw.stderr.strip().count("\n") == 0
    with pytest.raises(SpecError, match="muadam"):
        import_model(sd, optimizer="muadam", base_width=BASE).bias_rates()
