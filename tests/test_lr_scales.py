"""Per-layer rate constants (``Recipe.lr_scales``: λ_ℓ = c_ℓ·n^-γ_ℓ, the multipliers of mup.MuSGD /
MuAdam and of PyTorch parameter groups): parsing, the finite-width engine against the reference trainer
given hand-computed rates (float and exact over Q[η]), and the exact μP limit against exact identities
(uniform constants rescale η) and hand-derived kernel GD."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

from polyloss.derive import derive
from polyloss.engine import LossEngine
from polyloss.errors import SpecError
from polyloss.gd_recipe import train
from polyloss.recipe import Recipe
from tests.conftest import make_net
from tests.test_fock_trained_io import _data, _kernel_gd_loss, _mc
from tests.test_recipe import ETA

ALL = "input,hidden,readout"


# ------------------------------------------------------------------ the field
def test_parsing_and_records():
    r = Recipe(trained=ALL, lr_exponents="mup", lr_scales="1/64,1,64")
    assert r.lr_scales == (F(1, 64), F(1), F(64))
    assert r.lr_scale("readout") == 64 and r.lr_scale("hidden") == 1
    assert Recipe.from_dict(r.to_dict()) == r and r.to_dict()["lr_scales"] == ["1/64", "1", "64"]
    assert "lr x(1/64,1,64)" in r.describe()
    # all ones is no constant at all: the record of a recipe without constants is unchanged
    assert Recipe(lr_scales="1,1,1") == Recipe() and "lr_scales" not in Recipe(trained=ALL).to_dict()
    assert Recipe(lr_scales=[0.5, 2, 1]).lr_scales == (F(1, 2), F(2), F(1))


@pytest.mark.parametrize("bad", ["0,1,1", "-1,1,1", "1,1", "a,1,1", "1,1,1,1", 3, "1e9,1,1"])
def test_bad_scales_are_refused_in_one_line(bad):
    with pytest.raises(SpecError) as exc:
        Recipe(lr_scales=bad)
    msg = str(exc.value)
    assert msg.startswith("`lr_scales`") and "\n" not in msg and "c > 0" in msg


def test_plainness():
    assert Recipe(lr_scales="5,1,7").is_plain_for("mup")  # constants of frozen layers change nothing
    assert not Recipe(lr_scales="1,2,1").is_plain_for("mup")
    assert not Recipe(lr_scales="5,1,7").is_plain
    assert not Recipe(trained=ALL, lr_scales="1,1,2").is_plain_for("mup")


def test_multipliers_are_the_constant_times_the_width_power():
    r = Recipe(trained=ALL, lr_exponents="mup", lr_scales="1/8,2,3")
    assert r.lr_multipliers(16, "mup", exact=True) == {"input": F(2), "hidden": F(2), "readout": F(3, 16)}
    assert r.lr_multipliers(16, "mup") == {"input": 2.0, "hidden": 2.0, "readout": 3 / 16}


# ------------------------------------------------------------------ the finite-width engine
KNOBS = {
    "plain": {},
    "torch-momentum": dict(weight_decay="0.1", wd_mode="torch", momentum="0.5"),
    "decoupled-warmup": dict(weight_decay="0.1", wd_mode="decoupled", schedule="warmup:2"),
}


@pytest.mark.parametrize("trained", ["hidden", ALL, "hidden,readout"])
@pytest.mark.parametrize("knob", sorted(KNOBS))
@pytest.mark.parametrize("depth,steps", [(1, 2), (2, 1), (2, 3)])
def test_engine_equals_the_reference_trainer_with_hand_computed_rates(small_data, trained, knob, depth, steps):
    n = 12
    w, p = make_net(depth, n, small_data, "mup", seed=3 * depth + steps)
    rc = Recipe(trained=trained, lr_exponents="mup", lr_scales="1/8,2,3", **KNOBS[knob])
    lr = {"input": 12 / 8, "hidden": 2.0, "readout": 3 / 12}  # c·n^-γ by hand: n/8, 2, 3/n
    lr = {k: v for k, v in lr.items() if k in rc.trained}
    etas = np.array([0.02, 0.1, 0.25])
    got = LossEngine(w, small_data, p, recipe=rc).taylor(etas, steps, order=0)[:, 0]
    ref = [train(w.W0, list(w.hidden), w.V, small_data.X, small_data.y, rc, float(e), steps, lr=lr)[-1] for e in etas]
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=0)


@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_certified_coefficients_contain_the_exact_polynomial(knob):
    """Over Q[η] with exact rates c·n^-γ (1/3·3 = 1 for the input, 2/3, 5/3): the certified bounds of
    the float engine (two extra roundings for fl(c)·fl(n^-γ)) contain every exact coefficient."""
    from polyloss.data import linear_teacher

    data = linear_teacher(d=2, m=3, noise=0.1, seed=5)
    n = 3
    w, p = make_net(2, n, data, "mup", seed=11)
    rc = Recipe(trained=ALL, lr_exponents="mup", lr_scales="1/3,2/3,5", **KNOBS[knob])
    lam = {"input": F(1), "hidden": F(2, 3), "readout": F(5, 3)}
    cert = LossEngine(w, data, p, recipe=rc).polynomial(2, certify=True)
    exact = train(w.W0, list(w.hidden), w.V, data.X, data.y, rc, ETA, 2, lr=lam, dtype=object)[-1]
    assert len(cert.loss) == exact.degree + 1
    for k in range(exact.degree + 1):
        assert abs(F(float(cert.loss[k])) - exact.coeff(k)) <= F(float(cert.loss_error[k])), k


def test_uniform_constant_rescales_eta_at_finite_width(small_data):
    """c on every trained layer (no decoupled decay): 𝓛_c(η) = 𝓛_1(cη), coefficient k times c^k."""
    w, p = make_net(2, 10, small_data, "mup", seed=2)
    base = dict(trained=ALL, lr_exponents="mup", weight_decay="0.1", wd_mode="torch", momentum="0.5")
    a = LossEngine(w, small_data, p, recipe=Recipe(**base, lr_scales="3,3,3")).polynomial(2).loss
    b = LossEngine(w, small_data, p, recipe=Recipe(**base)).polynomial(2).loss
    np.testing.assert_allclose(a, b * 3.0 ** np.arange(len(b)), rtol=1e-9, atol=1e-12 * np.abs(a).max())


def test_adam_sweep_constant_equals_a_rescaled_eta(small_data):
    """Adam's update is lr·m̂/(√v̂+ε): a constant c on every layer's rate is training at cη."""
    from polyloss.sweep import sweep_network

    w, p = make_net(2, 16, small_data, "mup", seed=5)
    etas = np.array([0.01, 0.05])
    kw = dict(activation="relu", optimizer="adam")
    a = sweep_network(w, small_data, p, etas, 3, recipe=Recipe(trained=ALL, lr_scales="4,4,4"), **kw)
    b = sweep_network(w, small_data, p, 4 * etas, 3, recipe=Recipe(trained=ALL), **kw)
    np.testing.assert_allclose(a, b, rtol=1e-10)


# ------------------------------------------------------------------ the exact limit
@pytest.mark.parametrize("knob", ["none", "torch", "l2-momentum", "independent"])
def test_uniform_constant_rescales_eta_in_the_limit(knob):
    X, y = _data()
    # (torch decay on an input layer trained at rate n has no limit in η: power counting)
    extra = {"none": {}, "torch": dict(weight_decay="1/5", wd_mode="torch", trained="hidden,readout"),
             "l2-momentum": dict(weight_decay="1/5", momentum="1/2", trained="hidden,readout"),
             "independent": dict(weight_decay="1/5", wd_mode="independent")}[knob]
    base = {"trained": ALL, "lr_exponents": "mup", **extra}
    c = F(3, 2)
    a = derive(2, 2, data=(X, y), recipe=Recipe(**base, lr_scales=[c, c, c])).loss_coefficients
    b = derive(2, 2, data=(X, y), recipe=Recipe(**base)).loss_coefficients
    assert len(b) > 4 and list(a) == [bk * c**k for k, bk in enumerate(b)]


def test_decoupled_decay_does_not_scale_with_the_constant():
    """(1 − ηρω) W − ηρc G: with c on every layer this is the c = 1 recipe at cη with ω/c."""
    X, y = _data()
    c, omega = F(2), F(1, 5)
    base = {"trained": ALL, "lr_exponents": "mup", "wd_mode": "decoupled"}
    a = derive(2, 2, data=(X, y), recipe=Recipe(**base, weight_decay=omega, lr_scales=[c, c, c])).loss_coefficients
    b = derive(2, 2, data=(X, y), recipe=Recipe(**base, weight_decay=omega / c)).loss_coefficients
    assert len(b) > 4 and list(a) == [bk * c**k for k, bk in enumerate(b)]


@pytest.mark.parametrize("L", [1, 2])
def test_input_only_with_a_constant_is_kernel_gd_at_rate_c_d_eta(L):
    """Only W_0 trained at c·n: f^{(s+1)} = f^{(s)} − c d η K̄ r^{(s)} (hand-derived, THEORY §7)."""
    X, y = _data()
    d, c = len(X[0]), F(2, 7)
    rc = Recipe(trained="input", lr_scales=[c, 1, 1])
    for t in (1, 2):
        assert list(derive(L, t, data=(X, y), recipe=rc).loss_coefficients) == _kernel_gd_loss(X, y, t, [0, c * d], [F(1)])


def test_limit_with_different_constants_against_sampled_networks():
    """MuSGD-like constants (input 1/2, hidden 2, readout 3) with decoupled decay, and torch decay on the
    hidden and readout layers: the sampled mean of the first coefficients at n = 2048 lies within 4 s.e.
    of the exact limit."""
    _mc({"scaled-decoupled": Recipe(trained=ALL, lr_exponents="mup", lr_scales="1/2,2,3", weight_decay="0.1",
                                    wd_mode="decoupled"),
         "scaled-torch": Recipe(trained="hidden,readout", lr_exponents="mup", lr_scales="1,2,3", weight_decay="0.1",
                                wd_mode="torch")}, 2, 2, n=2048, seeds=6)


# ------------------------------------------------------------------ the command line
def test_cli_flag_and_its_one_line_error(tmp_path):
    import subprocess
    import sys

    from polyloss.data import linear_teacher

    data = linear_teacher(d=3, m=4, seed=1)
    np.savez(tmp_path / "d.npz", X=data.X, y=data.y)
    w, _ = make_net(1, 8, data, "mup", seed=1)
    np.savez(tmp_path / "w.npz", W0=w.W0, W1=w.hidden[0], V=w.V)
    base = [sys.executable, "-m", "polyloss", "poly", "--data", str(tmp_path / "d.npz"), "--weights",
            str(tmp_path / "w.npz"), "--steps", "1", "--train", ALL, "--json"]
    ok = subprocess.run(base + ["--lr-scales", "1/8,2,3"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    import json

    doc = json.loads(ok.stdout)
    assert doc["recipe"]["lr_scales"] == ["1/8", "2", "3"]
    bad = subprocess.run(base + ["--lr-scales", "0,1,1"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "`--lr-scales`" in bad.stderr
