"""Training recipes (polyloss.recipe) and their reference trainer (polyloss.gd_recipe).

Independent routes used here: finite differences and exact directional derivatives (a polynomial
in ε) for the gradients; polyloss.gd for the plain recipe; update rules written out by hand with
scalar loops for each weight-decay mode and momentum; the exact loss as a polynomial in η (the
trainer run over Q[η]) for the degree formulas and the first-order coefficient.
"""

import itertools
import json
import random
from fractions import Fraction as F

import flint
import numpy as np
import pytest

from polyloss.engine import loss_degree
from polyloss.errors import SpecError
from polyloss.gd import gd_train
from polyloss.gd_recipe import gradients, loss, recipe_train, train
from polyloss.recipe import (LR_PRESETS, Recipe, parse_lr_exponents, parse_schedule, parse_trained,
                             recipe_f_degree, recipe_loss_degree, recipe_weight_degree)
from polyloss.spec import PRESETS, NetworkSpec, Parametrization
from polyloss.weights import sample_weights
from tests.conftest import make_net, rational_data


# ------------------------------------------------------------------ exact polynomials over Q (python-flint)

class QPoly:
    """A polynomial over Q usable inside numpy object arrays (no sequence protocol, so numpy treats
    it as a scalar); mixes with ints and Fractions."""

    __slots__ = ("p",)

    def __init__(self, p):
        self.p = p if isinstance(p, flint.fmpq_poly) else flint.fmpq_poly(p)

    @staticmethod
    def _c(x):
        if isinstance(x, QPoly):
            return x.p
        if isinstance(x, F):
            return flint.fmpq(x.numerator, x.denominator)
        if isinstance(x, int):
            return x
        return None

    def _op(self, other, fn):
        c = self._c(other)
        return NotImplemented if c is None else QPoly(fn(self.p, c))

    def __add__(self, o):
        return self._op(o, lambda a, b: a + b)

    __radd__ = __add__

    def __mul__(self, o):
        return self._op(o, lambda a, b: a * b)

    __rmul__ = __mul__

    def __sub__(self, o):
        return self._op(o, lambda a, b: a - b)

    def __rsub__(self, o):
        return self._op(o, lambda a, b: b - a)

    def __neg__(self):
        return QPoly(-self.p)

    @property
    def degree(self):
        return self.p.degree()

    def coeff(self, k):
        cs = self.p.coeffs()
        if k >= len(cs):
            return F(0)
        return F(int(cs[k].p), int(cs[k].q))

    def __call__(self, x):
        return sum((self.coeff(k) * F(x) ** k for k in range(self.degree + 1)), F(0))


ETA = QPoly([0, 1])


def rational_net(depth, n, d, seed):
    rnd = random.Random(seed)
    q = lambda: F(rnd.choice([-3, -2, -1, 1, 2, 3]), rnd.randint(1, 3))  # noqa: E731
    arr = lambda *shape: np.array([q() for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)  # noqa: E731
    return arr(n, d), [arr(n, n) for _ in range(depth)], arr(n)


def rational_problem(depth, n=2, d=2, m=3, seed=0):
    W0, hidden, V = rational_net(depth, n, d, seed)
    X, y = rational_data(m, d, seed + 100)
    return W0, hidden, V, np.array(X, dtype=object), np.array(y, dtype=object)


LR = {"input": F(2), "hidden": F(1), "readout": F(1, 2)}


# ----------------------------------------------------------------------------------------- parsing

def test_parse_trained():
    assert parse_trained("hidden") == frozenset({"hidden"})
    assert parse_trained(" Input , readout") == frozenset({"input", "readout"})
    assert parse_trained(["readout", "hidden", "input"]) == frozenset({"input", "hidden", "readout"})
    assert Recipe(trained="readout,input").trained_layers == ("input", "readout")
    assert Recipe(trained="input,hidden,readout").trained_matrices(3) == 5
    assert Recipe().trained_matrices(3) == 3


def test_parse_schedule_and_exact_rates():
    assert parse_schedule("warmup:3").rhos(5) == (F(1, 3), F(2, 3), F(1), F(1), F(1))
    assert parse_schedule("exp-warmup:0.5").rhos(3) == (F(1, 2), F(3, 4), F(7, 8))
    assert parse_schedule("exp-warmup:1/3").rho(1, 2) == F(8, 9)
    assert parse_schedule(" Constant ").rhos(2) == (F(1), F(1))
    assert parse_schedule("0.5,1,2").rhos(3) == (F(1, 2), F(1), F(2))
    assert parse_schedule("list:1/4,1").rhos(2) == (F(1, 4), F(1))
    assert parse_schedule([F(1, 2), 1]).spec == "1/2,1"
    # cosine: (1 + cos(pi s/t))/2, exact where cos is rational (every step for t <= 3)
    cos = parse_schedule("cosine")
    assert cos.rhos(1) == (F(1),) and cos.rhos(2) == (F(1), F(1, 2)) and cos.rhos(3) == (F(1), F(3, 4), F(1, 4))
    assert cos.exact(3) and not cos.exact(4)
    r4 = cos.rhos(4)
    assert r4[0] == 1 and r4[2] == F(1, 2)
    assert abs(r4[1] - (1 + np.cos(np.pi / 4)) / 2) < 1e-15 and abs(r4[3] - np.sin(np.pi / 8) ** 2) < 1e-15
    assert all(v > 0 for t in range(1, 40) for v in cos.rhos(t))
    for text in ("constant", "warmup:4", "exp-warmup:1/10", "cosine", "1/2,3/4,1"):
        assert parse_schedule(text).spec == text and parse_schedule(parse_schedule(text).spec) == parse_schedule(text)


def test_parse_lr_exponents():
    assert parse_lr_exponents("-1,0,1") == (F(-1), F(0), F(1)) == LR_PRESETS["mup"]
    assert parse_lr_exponents("1/2, 0.5 ,-2") == (F(1, 2), F(1, 2), F(-2))
    assert parse_lr_exponents("NTP") == (F(0), F(1), F(1))
    assert parse_lr_exponents(None) is None
    assert all(type(g) is F for g in parse_lr_exponents((1, 0.25, "3")))


BAD = [
    (dict(weight_decay="nan"), "weight_decay", "nan"),
    (dict(weight_decay=float("inf")), "weight_decay", "inf"),
    (dict(weight_decay="1e400"), "weight_decay", "1e400"),
    (dict(weight_decay=-0.1), "weight_decay", "-0.1"),
    (dict(weight_decay=""), "weight_decay", "''"),
    (dict(weight_decay=True), "weight_decay", "True"),
    (dict(weight_decay=1, wd_mode="independent"), "weight_decay", "1"),
    (dict(wd_mode="coupled"), "wd_mode", "coupled"),
    (dict(momentum=1), "momentum", "1"),
    (dict(momentum=-0.5), "momentum", "-0.5"),
    (dict(momentum=float("nan")), "momentum", "nan"),
    (dict(nesterov=True), "nesterov", "True"),
    (dict(momentum=0.9, nesterov="yes"), "nesterov", "yes"),
    (dict(trained=""), "trained", "''"),
    (dict(trained=[]), "trained", "[]"),
    (dict(trained="input,embedding"), "trained", "embedding"),
    (dict(trained="hidden,hidden"), "trained", "hidden,hidden"),
    (dict(schedule=""), "schedule", "''"),
    (dict(schedule="warmup:0"), "schedule", "warmup:0"),
    (dict(schedule="warmup:2.5"), "schedule", "warmup:2.5"),
    (dict(schedule="exp-warmup:1"), "schedule", "exp-warmup:1"),
    (dict(schedule="exp-warmup:nan"), "schedule", "exp-warmup:nan"),
    (dict(schedule="1,,2"), "schedule", "1,,2"),
    (dict(schedule="1,-2"), "schedule", "1,-2"),
    (dict(schedule="0"), "schedule", "0"),
    (dict(schedule="1,inf"), "schedule", "1,inf"),
    (dict(schedule="linear"), "schedule", "linear"),
    (dict(lr_exponents="1,2"), "lr_exponents", "1,2"),
    (dict(lr_exponents="a,0,1"), "lr_exponents", "a,0,1"),
    (dict(lr_exponents="1e400,0,1"), "lr_exponents", "1e400,0,1"),
    (dict(lr_exponents="muP2"), "lr_exponents", "muP2"),
]


@pytest.mark.parametrize("kwargs,name,shown", BAD, ids=[f"{b[1]}={b[2]}" for b in BAD])
def test_bad_values_get_one_line_errors(kwargs, name, shown):
    with pytest.raises(SpecError) as err:
        Recipe(**kwargs)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"`{name}`=") and shown in msg and "must be" in msg


def test_bad_steps_and_lists_and_dicts():
    with pytest.raises(SpecError, match="at least one rate per step"):
        Recipe(schedule="1,1").check_steps(3)
    assert Recipe(schedule="1,1,1/2").check_steps(2) == 2
    with pytest.raises(SpecError, match=r"`s`=3 is invalid"):
        Recipe().rho(3, 3)
    with pytest.raises(SpecError, match="`recipe`="):
        Recipe.from_dict({"weight_decay": "0", "wieght_decay": "1"})
    with pytest.raises(SpecError, match="`recipe`="):
        Recipe.from_dict(["hidden"])
    with pytest.raises(SpecError, match="`weight_decay`="):
        Recipe.from_dict({"weight_decay": "Infinity"})


# ----------------------------------------------------------------------------------------- records

RECIPES = [
    Recipe(),
    Recipe(trained="input,hidden,readout", lr_exponents="mup", schedule="warmup:3", weight_decay="0.1",
           wd_mode="independent", momentum="0.9", nesterov=True),
    Recipe(trained="readout", lr_exponents="1/2,-3/2,7", schedule="exp-warmup:0.3", weight_decay=1e-5,
           wd_mode="decoupled"),
    Recipe(schedule="cosine", weight_decay=F(1, 3), momentum=0.5),
    Recipe(schedule="0.5,1,1/3", trained=("input",)),
]


@pytest.mark.parametrize("recipe", RECIPES, ids=range(len(RECIPES)))
def test_to_dict_round_trip_is_json_safe(recipe):
    d = recipe.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = Recipe.from_dict(json.loads(text))
    assert back == recipe and hash(back) == hash(recipe)
    assert back.to_dict() == d
    assert all(isinstance(v, (str, bool, list, type(None))) for v in d.values())
    line = recipe.describe()
    assert "\n" not in line and len(line) < 160


def test_record_values_are_exact():
    d = RECIPES[1].to_dict()
    assert d == {"trained": ["input", "hidden", "readout"], "lr_exponents": ["-1", "0", "1"], "schedule": "warmup:3",
                 "weight_decay": "1/10", "wd_mode": "independent", "momentum": "9/10", "nesterov": True}
    assert Recipe.from_dict({}) == Recipe() == Recipe.from_dict(None)
    assert Recipe(weight_decay=1e-5).weight_decay == F(1, 100000)


def test_describe_says_what_differs():
    assert Recipe().describe() == "plain GD (hidden layers, constant rate)"
    text = RECIPES[1].describe()
    for word in ("input+hidden+readout", "warmup:3", "1/10", "independent", "9/10", "nesterov", "-1,0,1"):
        assert word in text


def test_is_plain():
    assert Recipe().is_plain and Recipe(schedule="warmup:1").is_plain and Recipe(schedule="1,1").is_plain
    assert Recipe(wd_mode="independent").is_plain  # the mode does not matter at omega = 0
    for r in (Recipe(schedule="cosine"), Recipe(weight_decay="0.1"), Recipe(momentum="0.1"),
              Recipe(trained="hidden,readout"), Recipe(lr_exponents="mup")):
        assert not r.is_plain
    assert Recipe(lr_exponents="mup").is_plain_for("mup") and Recipe(lr_exponents="5,0,5").is_plain_for("sp")
    assert not Recipe(lr_exponents="mup").is_plain_for("ntp")
    assert not Recipe(lr_exponents="mup", trained="input,hidden").is_plain_for("mup")


# ------------------------------------------------------------------------------------------ rates

@pytest.mark.parametrize("name", ["mup", "sp", "ntp"])
def test_presets_reproduce_todays_hidden_rates(name):
    param = Parametrization.preset(name)
    for n in (1, 3, 64, 1000, 2**20):
        assert Recipe().lr_multipliers(n, param) == {"hidden": param.lr_multiplier(n)}
        explicit = Recipe(lr_exponents=name)
        assert explicit.lr_multipliers(n, "sp")["hidden"] == param.lr_multiplier(n)
        assert explicit.resolve_lr_exponents()[1] == PRESETS[name][1]
    allr = Recipe(trained="input,hidden,readout")
    exact = allr.lr_multipliers(64, name, exact=True)
    expect = {"mup": (64, 1, F(1, 64)), "sp": (1, 1, 1), "ntp": (1, F(1, 64), F(1, 64))}[name]
    assert tuple(exact[k] for k in ("input", "hidden", "readout")) == expect
    assert allr.lr_multipliers(64, name) == {k: float(v) for k, v in exact.items()}


def test_custom_parametrization_needs_explicit_input_and_readout_rates():
    assert Recipe().lr_multipliers(16, "2,1/2") == {"hidden": 16.0 ** -0.5}
    with pytest.raises(SpecError, match="readout layer trained"):
        Recipe(trained="hidden,readout").lr_multipliers(16, "3/2,0")
    assert Recipe(trained="hidden,readout", lr_exponents="0,0,1").lr_multipliers(16, "3/2,0") == {
        "hidden": 1.0, "readout": 1 / 16}
    with pytest.raises(SpecError, match="`param`=None"):
        Recipe().lr_multipliers(16)
    with pytest.raises(SpecError, match="an integer for exact"):
        Recipe(lr_exponents="1/2,0,0", trained="input").lr_multipliers(16, exact=True)


def test_mup_preset_power_counting_gives_order_one_slope_per_layer(small_data):
    """docs/theory.md §7: under μP initialisation λ_ℓ‖∂𝓛/∂W_ℓ‖² (layer ℓ's share of the slope c_1)
    stays of order one with the mup exponents (-1, 0, 1), while at the base rate the input share
    falls like 1/n and the readout share grows like n."""
    widths = (64, 256, 1024)
    shares = {k: [] for k in ("input", "hidden", "readout")}
    for n in widths:
        vals = []
        for seed in range(4):
            w = sample_weights(NetworkSpec(2, n, small_data.d), Parametrization.preset("mup"), np.random.SeedSequence(seed))
            _, G = gradients(w.W0, list(w.hidden), w.V, small_data.X, small_data.y)
            vals.append([np.sum(G["input"] ** 2), np.mean([np.sum(g ** 2) for g in G["hidden"]]), np.sum(G["readout"] ** 2)])
        for k, v in zip(shares, np.mean(vals, axis=0)):
            shares[k].append(v)
    lam = {n: Recipe(trained="input,hidden,readout").lr_multipliers(n, "mup") for n in widths}
    slope = lambda ys: np.polyfit(np.log(widths), np.log(ys), 1)[0]  # noqa: E731
    for k, expect in (("input", -1), ("hidden", 0), ("readout", 1)):
        assert abs(slope(shares[k]) - expect) < 0.2, (k, slope(shares[k]))
        assert abs(slope([lam[n][k] * v for n, v in zip(widths, shares[k])])) < 0.2


# --------------------------------------------------------------------------------- gradients

def test_gradients_match_central_differences():
    rng = np.random.default_rng(0)
    n, d, m, L = 4, 3, 5, 2
    W0, V = rng.normal(size=(n, d)), rng.normal(size=n)
    hidden = [rng.normal(size=(n, n)) / 2 for _ in range(L)]
    X, y = rng.normal(size=(m, d)), rng.normal(size=m)
    _, G = gradients(W0, hidden, V, X, y)
    h = 1e-6
    arrays = [("input", W0), ("readout", V)] + [(("hidden", l), W) for l, W in enumerate(hidden)]
    for key, A in arrays:
        g = G[key] if isinstance(key, str) else G["hidden"][key[1]]
        fd = np.zeros_like(A)
        for idx in np.ndindex(A.shape):
            old = A[idx]
            A[idx] = old + h
            up = loss(W0, hidden, V, X, y)
            A[idx] = old - h
            down = loss(W0, hidden, V, X, y)
            A[idx] = old
            fd[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_gradients_equal_exact_directional_derivatives():
    """d/dε 𝓛(θ + εΔ) at ε = 0, computed exactly as the ε-coefficient of the loss polynomial,
    equals Σ_ℓ ⟨G_ℓ, Δ_ℓ⟩ from the rank-one formulas."""
    W0, hidden, V, X, y = rational_problem(2, n=3, d=2, m=3, seed=4)
    D0, Dh, DV = rational_net(2, 3, 2, seed=9)
    _, G = gradients(W0, hidden, V, X, y)
    eps = QPoly([0, 1])
    moved = loss(W0 + D0 * eps, [W + D * eps for W, D in zip(hidden, Dh)], V + DV * eps, X, y)
    expect = (G["input"] * D0).sum() + (G["readout"] * DV).sum() + sum((g * D).sum() for g, D in zip(G["hidden"], Dh))
    assert moved.coeff(1) == expect and moved.coeff(0) == loss(W0, hidden, V, X, y)
    # one layer at a time: the others' directions switched off
    moved = loss(W0, hidden, V + DV * eps, X, y)
    assert moved.coeff(1) == (G["readout"] * DV).sum() and moved.degree == 2


# ----------------------------------------------------------------------------- plain recipe = gd

@pytest.mark.parametrize("param", ["mup", "sp", "ntp"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_plain_recipe_equals_gd(small_data, param, depth):
    w, p = make_net(depth, 12, small_data, param, seed=depth)
    for eta in (0.1, 0.9):
        eta = eta / 12 if param == "sp" else eta
        ref = gd_train(w, small_data, p, eta, 3)
        for recipe in (Recipe(), Recipe(lr_exponents=param, schedule="warmup:1", wd_mode="independent")):
            got = recipe_train(w, small_data, p, recipe, eta, 3)
            np.testing.assert_allclose(got, ref, rtol=1e-13, atol=0)


def test_float_and_exact_arithmetic_agree_on_a_rich_recipe():
    W0, hidden, V, X, y = rational_problem(2, n=3, d=2, m=4, seed=1)
    recipe = Recipe(trained="input,hidden,readout", schedule="warmup:2", weight_decay="0.2", wd_mode="l2",
                    momentum="0.5", nesterov=True)
    exact = train(W0, hidden, V, X, y, recipe, F(1, 50), 3, lr=LR)
    floats = train(*(np.array(a, dtype=float) for a in (W0,)), [np.array(W, dtype=float) for W in hidden],
                   np.array(V, dtype=float), np.array(X, dtype=float), np.array(y, dtype=float), recipe, 0.02, 3,
                   lr={k: float(v) for k, v in LR.items()})
    assert all(type(v) is F for v in exact)
    np.testing.assert_allclose(floats, [float(v) for v in exact], rtol=1e-12)


# ------------------------------------------------------------------- hand-written update rules (L = 1)

def _hand_net(seed):
    rnd = random.Random(seed)
    q = lambda: F(rnd.randint(-4, 4), rnd.randint(1, 3))  # noqa: E731
    n, d, m = 2, 3, 2
    W0 = [[q() for _ in range(d)] for _ in range(n)]
    W1 = [[q() for _ in range(n)] for _ in range(n)]
    V = [q() for _ in range(n)]
    X = [[q() for _ in range(d)] for _ in range(m)]
    y = [q() for _ in range(m)]
    return {"W0": W0, "W1": W1, "V": V}, X, y


def _hand_f(p, x):
    h0 = [sum(p["W0"][b][c] * x[c] for c in range(len(x))) for b in range(len(p["W0"]))]
    h1 = [sum(p["W1"][a][b] * h0[b] for b in range(len(h0))) for a in range(len(h0))]
    return sum(p["V"][a] * h1[a] for a in range(len(h1))), h0, h1


def _hand_loss(p, X, y):
    return sum((_hand_f(p, x)[0] - t) ** 2 for x, t in zip(X, y)) / (2 * len(X))


def _hand_grads(p, X, y):
    """Chain rule on f(x) = Σ_a V_a Σ_b W1_ab Σ_c W0_bc x_c, entry by entry."""
    m, n, d = len(X), len(p["V"]), len(X[0])
    gV, gW1, gW0 = [F(0)] * n, [[F(0)] * n for _ in range(n)], [[F(0)] * d for _ in range(n)]
    for x, t in zip(X, y):
        f, h0, h1 = _hand_f(p, x)
        r = (f - t) / m
        for a in range(n):
            gV[a] += r * h1[a]
            for b in range(n):
                gW1[a][b] += r * p["V"][a] * h0[b]
        for b in range(n):
            back = sum(p["V"][a] * p["W1"][a][b] for a in range(n))
            for c in range(d):
                gW0[b][c] += r * back * x[c]
    return {"V": gV, "W1": gW1, "W0": gW0}


def _map(fn, *xs):
    if isinstance(xs[0], list):
        return [_map(fn, *parts) for parts in zip(*xs)]
    return fn(*xs)


HAND_LR = {"W0": F(3, 2), "W1": F(1), "V": F(1, 3)}
TO_LAYER = {"W0": "input", "W1": "hidden", "V": "readout"}


def _hand_train(p, X, y, eta, rhos, omega, mode, beta=F(0), nesterov=False):
    """Step by step as written in docs/theory.md §7, every layer trained."""
    buf = {}
    for s, rho in enumerate(rhos):
        G = _hand_grads(p, X, y)
        new = {}
        for k, W in p.items():
            g = _map(lambda gi, wi: gi + omega * wi, G[k], W) if mode == "l2" else G[k]
            buf[k] = g if s == 0 else _map(lambda bi, gi: beta * bi + gi, buf[k], g)
            direction = _map(lambda gi, bi: gi + beta * bi, g, buf[k]) if nesterov else buf[k]
            keep = {"l2": 1, "decoupled": 1 - eta * rho * omega, "independent": 1 - omega,
                    "torch": 1 - eta * rho * HAND_LR[k] * omega}[mode]
            new[k] = _map(lambda wi, di: keep * wi - eta * rho * HAND_LR[k] * di, W, direction)
        p = new
    return p


def _run_trainer(p, X, y, recipe, eta, steps):
    arr = lambda a: np.array(a, dtype=object)  # noqa: E731
    return train(arr(p["W0"]), [arr(p["W1"])], arr(p["V"]), arr(X), arr(y), recipe, eta, steps,
                 lr={TO_LAYER[k]: v for k, v in HAND_LR.items()}, return_weights=True)


@pytest.mark.parametrize("mode", ["l2", "decoupled", "independent", "torch"])
def test_each_decay_mode_one_step_by_hand(mode):
    p, X, y = _hand_net(seed=7)
    eta, omega = F(2, 7), F(1, 5)
    recipe = Recipe(trained="input,hidden,readout", weight_decay=omega, wd_mode=mode, schedule="warmup:2")
    losses, (W0, (W1,), V) = _run_trainer(p, X, y, recipe, eta, 1)
    # the one step, written out: rho_0 = 1/2
    G = _hand_grads(p, X, y)
    rho = F(1, 2)
    for k, got in (("W0", W0), ("W1", W1), ("V", V)):
        lam = HAND_LR[k]
        if mode == "l2":
            want = _map(lambda w, g: w - eta * rho * lam * (g + omega * w), p[k], G[k])
        elif mode == "decoupled":
            want = _map(lambda w, g: (1 - eta * rho * omega) * w - eta * rho * lam * g, p[k], G[k])
        elif mode == "torch":
            want = _map(lambda w, g: (1 - eta * rho * lam * omega) * w - eta * rho * lam * g, p[k], G[k])
        else:
            want = _map(lambda w, g: (1 - omega) * w - eta * rho * lam * g, p[k], G[k])
        assert got.tolist() == want, (mode, k)
        after = _hand_train(p, X, y, eta, [rho], omega, mode)
        assert after[k] == want
    assert losses == [_hand_loss(p, X, y), _hand_loss(after, X, y)]
    # the modes really differ
    others = {m: _run_trainer(p, X, y, Recipe(trained="input,hidden,readout", weight_decay=omega, wd_mode=m,
                                                   schedule="warmup:2"), eta, 1)[0][1] for m in ("l2", "decoupled", "independent")}
    assert len(set(others.values())) == 3  # (torch equals l2 for GD without momentum: test_torch_is_l2_without_momentum)


@pytest.mark.parametrize("mode", ["l2", "decoupled", "independent", "torch"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_three_steps_by_hand(mode, nesterov):
    p, X, y = _hand_net(seed=3)
    eta, omega, beta = F(1, 4), F(1, 10), F(3, 5)
    recipe = Recipe(trained="input,hidden,readout", weight_decay=omega, wd_mode=mode, schedule="1,1/2,3/2",
                    momentum=beta, nesterov=nesterov)
    losses, (W0, (W1,), V) = _run_trainer(p, X, y, recipe, eta, 3)
    want = _hand_train(p, X, y, eta, [F(1), F(1, 2), F(3, 2)], omega, mode, beta, nesterov)
    assert (W0.tolist(), W1.tolist(), V.tolist()) == (want["W0"], want["W1"], want["V"])
    assert losses[-1] == _hand_loss(want, X, y)
    # the first step ignores the (empty) buffer: heavy ball = plain, Nesterov = plain with (1 + beta) G
    plain = _run_trainer(p, X, y, Recipe(trained="input,hidden,readout", weight_decay=omega, wd_mode=mode), eta, 1)[0]
    one = _run_trainer(p, X, y, Recipe(trained="input,hidden,readout", weight_decay=omega, wd_mode=mode,
                                       momentum=beta, nesterov=nesterov), eta, 1)[0]
    assert (one == plain) == (not nesterov)


def test_frozen_layers_do_not_move_or_decay():
    W0, hidden, V, X, y = rational_problem(2, seed=5)
    recipe = Recipe(trained="hidden", weight_decay="1/2", wd_mode="independent", momentum="1/2")
    _, (W0b, hid, Vb) = train(W0, hidden, V, X, y, recipe, F(1, 3), 2, return_weights=True)
    assert (W0b == W0).all() and (Vb == V).all() and not (hid[0] == hidden[0]).all()


# ------------------------------------------------------------------------- degrees, exactly in Q[η]

def _poly_losses(depth, steps, recipe, seed=0):
    W0, hidden, V, X, y = rational_problem(depth, seed=seed)
    return train(W0, hidden, V, X, y, recipe, ETA, steps, lr=LR)


def test_plain_degree_is_todays():
    for L, t in itertools.product([1, 2, 3], [0, 1, 2, 3]):
        assert recipe_loss_degree(L, t, Recipe()) == loss_degree(L, t)
    assert recipe_weight_degree(2, 3, Recipe(trained="input,hidden,readout")) == 57
    assert recipe_f_degree(1, 2, Recipe(trained="readout")) == 2


SUBSETS = [",".join(c) for r in (1, 2, 3) for c in itertools.combinations(("input", "hidden", "readout"), r)]


@pytest.mark.parametrize("trained", SUBSETS)
@pytest.mark.parametrize("depth", [1, 2])
def test_degree_of_each_trained_subset_in_exact_arithmetic(trained, depth):
    recipe = Recipe(trained=trained)
    losses = _poly_losses(depth, 3, recipe, seed=depth)
    got = [l.degree if isinstance(l, QPoly) else 0 for l in losses]  # step 0: a number, no η yet
    # the loss after s steps of a t-step constant-rate run is the s-step loss
    assert got == [recipe_loss_degree(depth, s, recipe) for s in range(4)], got


RICH = {
    "l2+momentum": dict(weight_decay="1/3", wd_mode="l2", momentum="1/2"),
    "decoupled+nesterov": dict(weight_decay="1/3", wd_mode="decoupled", momentum="1/2", nesterov=True),
    "independent+warmup": dict(weight_decay="1/3", wd_mode="independent", schedule="warmup:2", momentum="1/4"),
    "l2+cosine": dict(weight_decay="2", wd_mode="l2", schedule="cosine"),
    "decoupled": dict(weight_decay="1/2", wd_mode="decoupled", schedule="exp-warmup:1/2"),
    "list+nesterov": dict(schedule="2,1/2,3", momentum="3/4", nesterov=True),
}


@pytest.mark.parametrize("rich", list(RICH))
@pytest.mark.parametrize("depth,trained", [(1, "input,hidden,readout"), (2, "hidden"), (2, "input,hidden,readout"),
                                           (1, "readout"), (2, "input,readout")])
def test_degree_with_decay_schedule_momentum_in_exact_arithmetic(rich, depth, trained):
    recipe = Recipe(trained=trained, **RICH[rich])
    for t in (1, 2, 3):
        final = _poly_losses(depth, t, recipe, seed=10 * depth + t)[-1]
        assert final.degree == recipe_loss_degree(depth, t, recipe), (t, final.degree)


@pytest.mark.parametrize("mode", ["l2", "decoupled", "independent"])
def test_first_order_coefficient_of_every_recipe(mode):
    """At η → 0 the weights move only through the decay (independent mode), so
    c_0 = 𝓛((1−ω)^t θ_trained); for l2/decoupled the weights are still θ_0 at η = 0 and
    c_1 = Σ_ℓ ⟨G_ℓ, dW_ℓ/dη⟩ with dW_ℓ/dη = −Σ_s ρ_s (λ_ℓ S_s g_ℓ + [decoupled] ω W_ℓ), where
    g = G (+ ωW in l2) and S_s = Σ_{j<=s} β^j is the heavy-ball buffer (Nesterov: Σ_{j<=s+1} β^j)."""
    W0, hidden, V, X, y = rational_problem(1, n=2, d=2, m=3, seed=8)
    omega, beta, rhos = F(1, 4), F(2, 3), [F(1, 2), F(1), F(2)]
    for nesterov in (False, True):
        recipe = Recipe(trained="input,hidden,readout", weight_decay=omega, wd_mode=mode, schedule="0.5,1,2",
                        momentum=beta, nesterov=nesterov)
        poly = train(W0, hidden, V, X, y, recipe, ETA, 3, lr=LR)[-1]
        value, G = gradients(W0, hidden, V, X, y)
        if mode == "independent":
            k = (1 - omega) ** 3
            assert poly.coeff(0) == loss(W0 * k, [W * k for W in hidden], V * k, X, y) != value
            continue
        assert poly.coeff(0) == value
        pairs = [("input", G["input"], W0), ("readout", G["readout"], V), ("hidden", G["hidden"][0], hidden[0])]
        S = [sum(beta ** j for j in range(s + 1 + nesterov)) for s in range(3)]
        grad_part = sum(((g * (LR[k] * (g + (omega * W if mode == "l2" else 0)))).sum() for k, g, W in pairs), F(0))
        decay_part = sum(((g * W).sum() for _, g, W in pairs), F(0)) * omega if mode == "decoupled" else 0
        c1 = -sum(r * S[s] for s, r in enumerate(rhos)) * grad_part - sum(rhos) * decay_part
        assert poly.coeff(1) == c1 != 0


def test_torch_is_l2_without_momentum_and_differs_with_it():
    """PyTorch's decoupled decay at the layer's own rate: (1 − ηρλω)W − ηρλG is l2's W − ηρλ(G + ωW) exactly when
    there is no momentum buffer; with momentum, l2 puts ωW into the buffer and torch does not."""
    p, X, y = _hand_net(seed=5)
    eta, omega = F(1, 3), F(1, 4)
    for beta, same in ((F(0), True), (F(1, 2), False)):
        runs = {m: _run_trainer(p, X, y, Recipe(trained="input,hidden,readout", weight_decay=omega, wd_mode=m,
                                                momentum=beta), eta, 3)[0] for m in ("l2", "torch")}
        assert (runs["l2"] == runs["torch"]) == same


def test_width_warmup_schedule():
    """n-warmup:K starts at 1/n of the rate and reaches it geometrically in K steps; it needs the width, has no
    limit (derive refuses), and the exact engine agrees with the reference trainer under it."""
    from polyloss.data import linear_teacher
    from polyloss.derive import derive
    from polyloss.engine import LossEngine
    from polyloss.gd_recipe import recipe_losses
    from polyloss.spec import NetworkSpec, Parametrization
    from polyloss.weights import child_seed, sample_weights

    r = Recipe(schedule="n-warmup:3")
    assert r.schedule.spec == "n-warmup:3" and Recipe.from_dict(r.to_dict()) == r and not r.is_plain
    assert [r.rho(s, 5, 64) for s in range(5)] == pytest.approx([1 / 64, 64 ** (-2 / 3), 64 ** (-1 / 3), 1, 1])
    with pytest.raises(SpecError, match="depends on the width"):
        r.rho(0, 5)
    with pytest.raises(SpecError, match="`schedule`='n-warmup:0' is invalid"):
        Recipe(schedule="n-warmup:0")
    data = linear_teacher(d=3, m=6, noise=0.1, seed=2)
    sp = Parametrization.parse("sp")
    w = sample_weights(NetworkSpec(2, 8, 3), sp, child_seed(1, 8, 0))
    rec = Recipe(trained="input,hidden,readout", schedule="n-warmup:2", momentum="0.5")
    etas = [0.05, 0.2]
    got = LossEngine(w, data, sp, recipe=rec).loss_at(etas, 3)
    ref = recipe_losses(w, data, sp, rec, etas, 3)
    np.testing.assert_allclose(got, ref, rtol=1e-11)
    with pytest.raises(SpecError, match="depends on the width n"):
        derive(2, 2, data=data, recipe=Recipe(schedule="n-warmup:2"))


def test_decay_schedules():
    """linear-decay (1 - s/t) and exp-decay:r (r^s): exact rates; the exact limit equals that of the same rates
    given as a list, and the finite-width engine equals the reference trainer."""
    from polyloss.data import linear_teacher
    from polyloss.derive import derive
    from polyloss.engine import LossEngine
    from polyloss.gd_recipe import recipe_losses
    from polyloss.spec import NetworkSpec, Parametrization
    from polyloss.weights import child_seed, sample_weights

    lin, ex = Recipe(schedule="linear-decay"), Recipe(schedule="exp-decay:0.5")
    assert [lin.rho(s, 4) for s in range(4)] == [F(1), F(3, 4), F(1, 2), F(1, 4)]
    assert [ex.rho(s, 3) for s in range(3)] == [F(1), F(1, 2), F(1, 4)]
    assert Recipe.from_dict(ex.to_dict()) == ex and lin.schedule.spec == "linear-decay"
    for bad in ("exp-decay:1", "exp-decay:0", "linear-decay:2"):
        with pytest.raises(SpecError, match="`schedule`="):
            Recipe(schedule=bad)
    data = linear_teacher(d=3, m=6, noise=0.1, seed=4)
    for rec, listed in ((lin, "1,2/3,1/3"), (ex, "1,1/2,1/4")):
        assert derive(2, 3, data=data, recipe=rec).loss_coefficients == \
            derive(2, 3, data=data, recipe=Recipe(schedule=listed)).loss_coefficients
    mup = Parametrization.parse("mup")
    w = sample_weights(NetworkSpec(2, 8, 3), mup, child_seed(2, 8, 0))
    rec = Recipe(trained="input,hidden,readout", schedule="exp-decay:0.7", momentum="0.5")
    np.testing.assert_allclose(LossEngine(w, data, mup, recipe=rec).loss_at([0.05, 0.3], 3),
                               recipe_losses(w, data, mup, rec, [0.05, 0.3], 3), rtol=1e-11)
