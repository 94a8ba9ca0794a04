"""The exact μP limit of networks with biases (docs/theory.md §8, issue 15).

Reference routes, each independent of the block Krylov evaluator that ``derive`` uses:
- the explicit m×m evaluator (every value vector kept over the training inputs);
- the input bias's initial variance σ² as a shift of the data kernel, K + σ²𝟙𝟙ᵀ, on the bias-free program;
- a closed form: with the hidden layers frozen, every bias and the input layer learn a kernel GD with kernel
  c_in·d·K̄ + (c_b,in + L·c_b,hid + c_b,out)·𝟙𝟙ᵀ/m;
- sampled finite-width μP networks with biases (the engine's bias channel, itself checked against raw MuSGD
  loops and real torch+mup): their mean coefficients lie within 4 standard errors of the limit.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction as F

import numpy as np
import pytest

from polyloss.derive import derive, explicit_limit
from polyloss.errors import SpecError
from polyloss.fock import (BlockKrylovEvaluator, ExplicitEvaluator, KrylovEvaluator, LimitScalars, default_ring,
                           run_program)
from polyloss.recipe import Biases, Recipe
from tests.test_fock_recipes import _poly_add, _poly_mul
from tests.test_fock_trained_io import _data

ALL = "input,hidden,readout"

BIASES = {
    "all": Biases("all", "1/2,1,2", "1/3"),
    "input": Biases("input"),
    "hidden": Biases("hidden", "1,3,1"),
    "readout": Biases("readout"),
    "init-only": Biases((), input_var="1/4"),
    "mup-init": Biases("all", "1/4,1/4,1", "1/9", "1/12"),
}
RECIPES = {
    "plain": None,
    "all-momentum": Recipe(trained=ALL, momentum="1/2", lr_scales="1/2,1,3"),
    "hidden-readout-nesterov-warmup": Recipe(trained="hidden,readout", momentum="1/2", nesterov=True,
                                             schedule="warmup:2"),
}


def _moments(X, y):
    m, d = len(X), len(X[0])
    Kb = [[sum(a * b for a, b in zip(X[i], X[j])) / (d * m) for j in range(m)] for i in range(m)]
    vecs = {0: [list(y)], 1: [[F(1)] * m]}

    def vec(k, b):
        while len(vecs[k]) <= b:
            v = vecs[k][-1]
            vecs[k].append([sum(Kb[i][j] * v[j] for j in range(m)) for i in range(m)])
        return vecs[k][b]

    return lambda k1, k2, n: sum(a * b for a, b in zip(vec(k1, 0), vec(k2, n))) / m


# ------------------------------------------------------------------ exact routes
@pytest.mark.parametrize("bname", sorted(BIASES))
@pytest.mark.parametrize("rname", sorted(RECIPES))
@pytest.mark.parametrize("L,t", [(1, 2), (2, 2), (3, 1)])
def test_block_krylov_equals_the_explicit_evaluator(bname, rname, L, t):
    X, y = _data()
    d = derive(L, t, data=(X, y), recipe=RECIPES[rname], biases=BIASES[bname])
    assert d.biases == BIASES[bname] and d.route == "data-exact"
    assert list(d.loss_coefficients) == explicit_limit(L, t, (X, y), recipe=RECIPES[rname], biases=BIASES[bname])
    # the biases matter: the bias-free limit differs
    assert d.loss_coefficients != derive(L, t, data=(X, y), recipe=RECIPES[rname]).loss_coefficients


def test_block_krylov_without_biases_is_todays_limit():
    """No bias: the block evaluator's k = 0 block is the Krylov evaluator, exactly; ``Biases()`` is no bias."""
    X, y = _data()
    R = default_ring([], backend="auto")
    moment = _moments(X, y)
    for L, t in [(1, 3), (2, 2), (3, 2)]:
        mus = [moment(0, 0, n) for n in range(4 * t + 4)]
        a = run_program(KrylovEvaluator(default_ring(mus)), L, t)
        b = run_program(BlockKrylovEvaluator(R, moment), L, t, scalars=LimitScalars())
        assert R.eta_coefficients(a.loss) == R.eta_coefficients(b.loss)
        plain = derive(L, t, data=(X, y))
        assert derive(L, t, data=(X, y), biases=Biases()) == plain and plain.biases is None
        assert "biases" not in plain.to_json()


@pytest.mark.parametrize("L,t", [(1, 2), (2, 2), (2, 3)])
@pytest.mark.parametrize("rname", ["plain", "all-momentum"])
def test_input_bias_variance_is_a_kernel_shift(L, t, rname):
    """An untrained input bias with entry variance σ² only shifts the forward kernel: the limit equals the
    bias-free program on the Gram matrix K + σ²𝟙𝟙ᵀ — as long as the input layer is not trained (its update
    kernel stays d·K̄)."""
    X, y = _data()
    var = F(2, 7)
    rc = RECIPES[rname]
    got = derive(L, t, data=(X, y), recipe=rc, biases=Biases((), input_var=var)).loss_coefficients
    m, d = len(X), len(X[0])
    K = [[sum(a * b for a, b in zip(X[i], X[j])) / d + var for j in range(m)] for i in range(m)]
    R = default_ring([], backend="auto")
    if rc is None:
        sc = None
        ref = run_program(ExplicitEvaluator(R, K, y), L, t, scalars=sc)
        assert list(got) == R.eta_coefficients(ref.loss)
    else:  # a trained input layer sees the shifted kernel forward but d·K̄ in its update: not a kernel shift
        from polyloss.derive import limit_scalars

        ref = run_program(ExplicitEvaluator(R, K, y), L, t, scalars=limit_scalars(rc, t, R, d))
        assert list(got) != R.eta_coefficients(ref.loss)
        rc_h = Recipe(trained="hidden,readout", momentum="1/2")
        got = derive(L, t, data=(X, y), recipe=rc_h, biases=Biases((), input_var=var)).loss_coefficients
        ref = run_program(ExplicitEvaluator(R, K, y), L, t, scalars=limit_scalars(rc_h, t, R, d))
        assert list(got) == R.eta_coefficients(ref.loss)


@pytest.mark.parametrize("L,t", [(1, 2), (2, 3), (3, 2)])
def test_frozen_hidden_layers_give_kernel_gd_with_a_bias_kernel(L, t):
    """Hidden layers frozen, the input layer and every bias trained: f^{(0)} → 0 and every update reaches f
    through ⟨g_ℓ, g_ℓ⟩ = 1, so the residual follows kernel GD, r ← (I − η(c_in d K̄ + c_J 𝟙𝟙ᵀ/m)) r with
    c_J = c_b,in + L·c_b,hid + c_b,out (each hidden layer's bias counts once). The input bias's variance does
    not enter (f^{(0)} = 0 in the limit)."""
    X, y = _data()
    m = len(X)  # c_in·d·K̄ = c_in·XXᵀ/m: d cancels
    c_in, (cb_in, cb_h, cb_out) = F(1, 3), (F(1, 2), F(2), F(5, 4))
    rc = Recipe(trained="input", lr_exponents="mup", lr_scales=[c_in, 1, 1])
    bz = Biases("all", [cb_in, cb_h, cb_out], "1/5")
    got = list(derive(L, t, data=(X, y), recipe=rc, biases=bz).loss_coefficients)
    cJ = cb_in + L * cb_h + cb_out
    Ku = [[c_in * sum(a * b for a, b in zip(X[i], X[j])) / m + cJ / m for j in range(m)] for i in range(m)]
    r = [[-yi] for yi in y]  # residual polynomials in η
    for _ in range(t):
        Kr = [[F(0)] for _ in range(m)]
        for i in range(m):
            for j in range(m):
                Kr[i] = _poly_add(Kr[i], [Ku[i][j] * c for c in r[j]])
        r = [_poly_add(r[i], _poly_mul([F(0), F(-1)], Kr[i])) for i in range(m)]
    loss = [F(0)]
    for ri in r:
        loss = _poly_add(loss, _poly_mul(ri, ri))
    loss = [c / (2 * m) for c in loss]
    while loss and loss[-1] == 0:
        loss.pop()
    assert got == loss


# ------------------------------------------------------------------ against sampled finite-width networks
def _sampled_with_biases(L, t, n, seeds, base, var, momentum, n_coef=4, z=4.0, hvar=F(0)):
    """mup.MuSGD (base width ``base``, every layer and bias trained) on μP-initialised networks with biases,
    through the engine's bias channel: the mean of the first coefficients lies within z s.e. of the limit.
    Hidden biases start U(±1/√n) (torch, o(1)) when ``hvar`` = 0, else uniform with variance ``hvar`` (mup)."""
    from polyloss.data import linear_teacher
    from polyloss.engine import LossEngine
    from polyloss.interop import ImportedModel, Layout, augmented_network
    from polyloss.spec import NetworkSpec, Parametrization
    from polyloss.weights import child_seed, sample_weights

    from polyloss.data import Dataset

    ds0 = linear_teacher(d=4, m=6, noise=0.1, seed=21)
    ds = Dataset(ds0.X, ds0.y + 1.5)  # targets with a mean: the biases carry it, so each bias matters
    p = Parametrization.preset("mup")
    b = F(base)
    rc_lim = Recipe(trained=ALL, lr_exponents="mup", lr_scales=[1 / b, 1, b], momentum=momentum)
    bz = Biases("all", [1 / b, 1 / b, 1], var, hvar)
    lim, nob = ([float(c) for c in dv.loss_coefficients[:n_coef]] + [0.0] * n_coef for dv in
                (derive(L, t, data=ds, recipe=rc_lim, biases=bz), derive(L, t, data=ds, recipe=rc_lim)))
    layout = Layout("inp", tuple(f"h{i}" for i in range(L)), "out")
    rows = []
    for s in range(seeds):
        seed = child_seed(9100 + 10 * L + t, n, s)
        w = sample_weights(NetworkSpec(L, n, ds.d), p, seed)
        g = np.random.default_rng(seed.spawn(1)[0])
        biases = {"input": g.standard_normal(n) * np.sqrt(float(var)),
                  "hidden": tuple(g.uniform(-1, 1, n) * (np.sqrt(3 * float(hvar)) if hvar else 1 / np.sqrt(n))
                                  for _ in range(L)),
                  "readout": float(g.uniform(-1, 1) / np.sqrt(n))}
        model = ImportedModel(w, layout, "musgd", base, F(1), (), biases)
        net, data, rec, _ = augmented_network(model, ds, model.recipe(momentum=momentum))
        c = LossEngine(net, data, p, recipe=rec, channel=True).polynomial(t, degree=n_coef - 1).loss[:n_coef]
        rows.append(np.pad(c, (0, n_coef - len(c))))
    r = np.array(rows)
    mean, se = r.mean(axis=0), r.std(axis=0, ddof=1) / np.sqrt(seeds)
    for k in range(n_coef):
        assert abs(mean[k] - lim[k]) <= z * se[k] + 1e-12, (L, t, k, mean[k], lim[k], se[k])
    # the check has teeth: the same rule rejects the bias-free limit
    assert max(abs(mean[k] - nob[k]) / se[k] for k in range(1, n_coef)) > z


def test_limit_with_biases_against_sampled_networks():
    """n = 2048 (κ = √(n/base) = 32 is exact), base width 2, momentum 1/2, input-bias variance 1/2."""
    _sampled_with_biases(2, 2, n=2048, seeds=6, base=2, var=F(1, 2), momentum=F(1, 2))


@pytest.mark.parametrize("L,t", [(1, 2), (2, 2), (3, 2)])
def test_limit_with_mups_hidden_bias_init_against_sampled_networks(L, t):
    """mup's set_base_shapes rescales hidden biases to U(±1/√base): O(1) entries, variance 1/(3·base), a free
    direction at every hidden layer in the limit."""
    _sampled_with_biases(L, t, n=2048, seeds=8, base=2, var=F(1, 6), momentum=F(0), hvar=F(1, 6))


@pytest.mark.parametrize("L,t", [(1, 1), (1, 3), (3, 2), (2, 3)])
def test_limit_with_biases_against_sampled_networks_more(L, t):
    _sampled_with_biases(L, t, n=2048, seeds=12, base=8, var=F(1, 3), momentum=F(0))


# ------------------------------------------------------------------ refusals and the command line
@pytest.mark.parametrize("kw,needle", [
    (dict(data=None), "need data"),
    (dict(param="sp"), "derived under muP"),
    (dict(recipe=Recipe(weight_decay="0.1")), "weight decay"),
    (dict(finite=True, steps=1), "`finite`"),
    (dict(recipe=Recipe(trained=ALL, lr_exponents="0,1,2")), "no infinite-width limit"),
    (dict(biases="all"), "polyloss.recipe.Biases"),
])
def test_refusals_are_one_line(kw, needle):
    args = dict(data=_data(), biases=Biases("all"), steps=2)
    args.update(kw)
    steps = args.pop("steps")
    with pytest.raises(SpecError) as exc:
        derive(2, steps, **args)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_float_route_agrees_with_the_exact_one():
    X, y = _data()
    ex = derive(2, 2, data=(X, y), recipe=RECIPES["all-momentum"], biases=BIASES["all"])
    fl = derive(2, 2, data=(X, y), recipe=RECIPES["all-momentum"], biases=BIASES["all"], exact=False)
    assert fl.route == "data-float"
    np.testing.assert_allclose([float(c) for c in fl.loss_coefficients], [float(c) for c in ex.loss_coefficients],
                               rtol=1e-9)
    assert abs(float(fl.eta_inf.eta) - float(ex.eta_inf.eta)) < 1e-9


def test_f_rows_reproduce_the_loss():
    """f at the data (rows over the block Krylov vectors K̄^b y and K̄^b 𝟙) gives the loss: (1/2m)Σ(f − y)²."""
    X, y = _data()
    d = derive(2, 2, data=(X, y), recipe=RECIPES["all-momentum"], biases=BIASES["all"])
    m = len(y)
    loss = [F(0)]
    for row, yi in zip(d.f_coefficients, y):
        r = list(row)
        r[0] -= yi
        loss = _poly_add(loss, _poly_mul(r, r))
    loss = [c / (2 * m) for c in loss]
    while loss[-1] == 0:
        loss.pop()
    assert loss == list(d.loss_coefficients)


def test_cli(tmp_path):
    import json

    X, y = _data()
    np.savez(tmp_path / "d.npz", X=np.array(X, dtype=float), y=np.array(y, dtype=float))
    base = [sys.executable, "-m", "polyloss", "derive", "--depth", "2", "--steps", "2", "--data",
            str(tmp_path / "d.npz"), "--train", ALL]
    ok = subprocess.run(base + ["--biases", "all", "--bias-lr-scales", "1/2,1/2,1", "--input-bias-var", "torch",
                                "--format", "json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["biases"] == {"layers": ["input", "hidden", "readout"], "lr_scales": ["1/2", "1/2", "1"],
                             "input_var": "1/9"}  # torch: 1/(3d), d = 3
    from polyloss.data import load_data

    want = derive(2, 2, data=load_data(str(tmp_path / "d.npz")), recipe=Recipe(trained=ALL),
                  biases=Biases("all", "1/2,1/2,1", F(1, 9)))
    assert doc["loss_coefficients"] == want.coefficient_strings()
    text = subprocess.run(base + ["--biases", "hidden", "--hidden-bias-var", "1/48"], capture_output=True, text=True)
    assert text.returncode == 0 and "biases hidden, hidden bias var 1/48" in text.stdout
    for bad, needle in ((["--biases", "weights"], "`biases`"), (["--biases", "all", "--input-bias-var", "-1"],
                                                                 "`input_bias_var`"),
                        (["--bias-lr-scales", "1,1,1"], "`bias-lr-scales`"),
                        (["--biases", "all", "--hidden-bias-var", "x"], "`hidden_bias_var`")):
        r = subprocess.run(base + bad, capture_output=True, text=True)
        assert r.returncode == 2 and needle in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
