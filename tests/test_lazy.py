"""Lazy (Gaussian-conditioning) sampler: exact identities, exact laws, and equality in distribution
with dense sampling (independent references: dense matrices, χ²/normal laws, plain GD).

Statistical checks use fixed seeds (deterministic) at a stated level: two-sample or one-sample
Kolmogorov–Smirnov at α = 1e-3, and means within 3 standard errors of the difference. The
``*_detects_*`` tests run the same checks on deliberately broken samplers and require a rejection,
so the checks can fail.
"""

import numpy as np
import pytest
from scipy import stats

from polyloss.data import linear_teacher
from polyloss.engine import LossEngine
from polyloss.errors import RunError, SpecError
from polyloss.gd import gd_losses
from polyloss.lazy import (LAZY_MIN_WIDTH, LazyCapacityError, LazyLayer, LazyWeights, draw_weights,
                           resolve_sampler, sample_lazy_weights)
from polyloss.poly import exact_polynomial
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.weights import Weights, child_seed, sample_weights

ALPHA = 1e-3
MUP = Parametrization.preset("mup")


def lazy(n, d, L, seed, coords="auto", capacity=None, param=MUP, steps=None):
    return sample_lazy_weights(NetworkSpec(L, n, d), param, np.random.SeedSequence(seed), coords=coords,
                               capacity=capacity, steps=steps)


# (coords, n, capacity): ambient Rⁿ; reduced frame with n ≫ capacity; reduced with the frame exhausted (n = capacity)
MODES = [("ambient", 40, None), ("reduced", 2**20, 64), ("reduced", 24, 24)]
MODE_IDS = ["ambient", "reduced-wide", "reduced-full"]


# ---------------------------------------------------------------------------------------------- exact identities
def _interleaved(w):
    """A mixed sequence of forward/backward queries on layer 1 of a depth-1 net; returns (X, FX, Y, BY)."""
    op = w.operators()[0]
    X0, V = w.W0.T, w.V  # rows in space 0, the readout in space 1
    xs, fs, ys, bs = [], [], [], []

    def fwd(X):
        xs.append(X), fs.append(op.forward(X))
        return fs[-1]

    def bwd(Y):
        ys.append(Y), bs.append(op.backward(Y))
        return bs[-1]

    a1 = bwd(V[None, :])
    f1 = fwd(X0[:3])
    b2 = bwd(np.stack([f1[0] + 0.5 * V, f1[1] - f1[2]]))
    f2 = fwd(np.concatenate([X0[3:] + a1, b2[:1]]))
    bwd(np.stack([f2[1], f2[0] + 3 * f1[2]]))
    fwd(X0[::2] - 2 * b2[1])
    return np.concatenate(xs), np.concatenate(fs), np.concatenate(ys), np.concatenate(bs)


@pytest.mark.parametrize("coords,n,cap", MODES, ids=MODE_IDS)
def test_forward_and_backward_answers_are_one_matrix(coords, n, cap):
    """yᵀ(W x) = (Wᵀ y)ᵀ x for every forward query x and backward query y, whatever the order."""
    w = lazy(n, 6, 1, seed=3, coords=coords, capacity=cap)
    X, FX, Y, BY = _interleaved(w)
    lhs, rhs = Y @ FX.T, BY @ X.T
    scale = np.outer(np.linalg.norm(Y, axis=1), np.linalg.norm(FX, axis=1)) + np.outer(
        np.linalg.norm(BY, axis=1), np.linalg.norm(X, axis=1))
    assert np.max(np.abs(lhs - rhs) / scale) < 1e-13


@pytest.mark.parametrize("coords,n,cap", MODES, ids=MODE_IDS)
def test_repeated_queries_are_identical_and_linear(coords, n, cap):
    w = lazy(n, 6, 1, seed=4, coords=coords, capacity=cap)
    op = w.operators()[0]
    X, FX, Y, BY = _interleaved(w)
    rank = op.rank
    again, third = op.forward(X), op.forward(X)
    np.testing.assert_array_equal(again, third)  # answered from history: deterministic
    np.testing.assert_allclose(again, FX, rtol=0, atol=1e-13 * np.abs(FX).max())
    np.testing.assert_allclose(op.backward(Y), BY, rtol=0, atol=1e-13 * np.abs(BY).max())
    combo = 2.0 * X[0] - 3.0 * X[4] + 0.25 * X[-1]
    np.testing.assert_allclose(op.forward(combo), 2.0 * FX[0] - 3.0 * FX[4] + 0.25 * FX[-1],
                               rtol=0, atol=1e-13 * np.abs(FX).max())
    assert op.rank == rank  # nothing new was sampled
    assert w.operators()[0] is op  # one fixed network across calls


def test_materialised_ambient_matrix_reproduces_every_answer():
    """After the interleaved queries, W := forward(I) and backward(I) = Wᵀ reproduce all earlier answers."""
    n = 20
    w = lazy(n, 6, 1, seed=5, coords="ambient")
    X, FX, Y, BY = _interleaved(w)
    op = w.operators()[0]
    W = op.forward(np.eye(n)).T  # column j = W e_j
    np.testing.assert_allclose(op.backward(np.eye(n)), W, rtol=0, atol=1e-13)  # rows: Wᵀ e_i = row i of W
    np.testing.assert_allclose(X @ W.T, FX, rtol=0, atol=1e-12)
    np.testing.assert_allclose(Y @ W, BY, rtol=0, atol=1e-12)
    assert op.rank == (n, n)


@pytest.mark.parametrize("param,L,steps", [("mup", 2, 2), ("sp", 3, 1), ("mup", 3, 3), ("1.5,0.5", 1, 2)])
def test_engine_on_lazy_equals_engine_and_gd_on_the_materialised_network(small_data, param, L, steps):
    """The lazy engine computes exactly the loss polynomial of the matrices it (afterwards) materialises."""
    n, p = 24, Parametrization.parse(param)
    w = lazy(n, small_data.d, L, seed=6, coords="ambient", param=p)
    eng = LossEngine(w, small_data, p)
    poly = eng.polynomial(steps)
    etas = np.array([0.05, 0.4, 1.1]) * (1 / n if param == "sp" else 1)
    tay = eng.taylor(etas, steps)
    dense = Weights(w.W0, tuple(op.forward(np.eye(n)).T for op in w.operators()), w.V)
    ref = LossEngine(dense, small_data, p)
    np.testing.assert_allclose(poly.loss, ref.polynomial(steps).loss, rtol=1e-9, atol=1e-13 * np.abs(poly.loss).max())
    np.testing.assert_allclose(tay, ref.taylor(etas, steps), rtol=1e-10)
    np.testing.assert_allclose(eng.loss_at(etas, steps), gd_losses(dense, small_data, p, etas, steps), rtol=1e-10)


def test_wide_ambient_data_pass_equals_the_materialised_network():
    """m = 600 rows of rank d = 20 in R^1024 (the pivoted-Cholesky route for big batches), then W := forward(I)."""
    data = linear_teacher(d=20, m=600, seed=2)
    n = 1024
    w = lazy(n, 20, 2, seed=8, coords="ambient")
    eng = LossEngine(w, data, MUP)
    poly = eng.polynomial(2, 8)
    assert w.operators()[0].rank[0] == 20
    dense = Weights(w.W0, tuple(op.forward(np.eye(n)).T for op in w.operators()), w.V)
    np.testing.assert_allclose(poly.loss, LossEngine(dense, data, MUP).polynomial(2, 8).loss, rtol=1e-9)


def test_data_pass_uses_the_row_space_not_the_rows():
    data = linear_teacher(d=7, m=300, seed=1)
    w = lazy(2**20, 7, 3, seed=0, steps=2)
    LossEngine(w, data, MUP).polynomial(2, 8)
    ranks = [op.rank for op in w.operators()]
    assert ranks[0] == (7, 0) and all(r[0] <= 7 + 4 and r[1] <= 4 for r in ranks)
    assert w.width == 2**20 and w.dim < 200 and w.coords == "reduced"


def test_divergent_learning_rates_do_not_disturb_the_network(small_data):
    w = lazy(2**16, small_data.d, 3, seed=2)
    eng = LossEngine(w, small_data, MUP)
    first = eng.polynomial(2, 6).loss
    # The first call realises the directions the program needs while it runs, so its earliest queries
    # are answered before the basis reached its final size; asked again with the grown basis, their
    # projections can move by an ulp (seed 2: 3e-16 relative). From then on the answers are fixed.
    before = eng.polynomial(2, 6).loss
    np.testing.assert_allclose(first, before, rtol=1e-13, atol=0)
    ranks = [op.rank for op in w.operators()]
    with np.errstate(over="ignore", invalid="ignore"):
        huge = eng.loss_at([1e3, 1e150], 2)
    assert not np.all(np.isfinite(huge))
    assert [op.rank for op in w.operators()] == ranks  # no direction realised from overflowing vectors
    np.testing.assert_array_equal(eng.polynomial(2, 6).loss, before)
    np.testing.assert_allclose(LossEngine(w, small_data, MUP).polynomial(2, 6).loss, before, rtol=1e-13)


# ---------------------------------------------------------------------------------------------- exact laws
def _law_samples(coords, n, cap, S, break_fresh=None):
    """Per seed, on a depth-1 net: n‖W x‖²/‖x‖² after a backward query of V (law χ²_n),
    √n ⟨V, W x⟩/(‖V‖‖x‖) (law N(0,1)), and n‖Wᵀ V‖²/‖V‖² after forward queries (law χ²_n)."""
    out = []
    for s in range(S):
        w = lazy(n, 6, 1, seed=1000 + s, coords=coords, capacity=cap)
        op = w.operators()[0]
        x, V = w.W0.T[0] + 0.5 * w.W0.T[1], w.V
        bV = op.backward(V)
        Wx = op.forward(x)
        q1 = n * (Wx @ Wx) / (x @ x)
        z = np.sqrt(n) * (V @ Wx) / np.sqrt((V @ V) * (x @ x))
        w2 = lazy(n, 6, 1, seed=7000 + s, coords=coords, capacity=cap)
        op2 = w2.operators()[0]
        op2.forward(w2.W0.T)
        bV2 = op2.backward(w2.V)
        q2 = n * (bV2 @ bV2) / (w2.V @ w2.V)
        out.append((q1, z, q2, np.isfinite(bV).all()))
    return np.array(out, dtype=float)


@pytest.mark.parametrize("coords,n,cap", MODES, ids=MODE_IDS)
def test_single_answers_have_the_exact_gaussian_law(coords, n, cap):
    a = _law_samples(coords, n, cap, 300)
    chi = stats.chi2(n)
    assert stats.kstest(a[:, 0], chi.cdf).pvalue > ALPHA
    assert stats.kstest(a[:, 1], "norm").pvalue > ALPHA
    assert stats.kstest(a[:, 2], chi.cdf).pvalue > ALPHA
    for col, mean, var in ((0, n, 2 * n), (1, 0, 1), (2, n, 2 * n)):
        assert abs(a[:, col].mean() - mean) < 3 * np.sqrt(var / len(a))


def test_exact_law_check_detects_a_wrong_variance(monkeypatch):
    orig = LazyLayer._fresh
    monkeypatch.setattr(LazyLayer, "_fresh", lambda self, space, k: orig(self, space, k) * 1.1)
    a = _law_samples("reduced", 2**20, 64, 300)
    assert stats.kstest(a[:, 0], stats.chi2(2**20).cdf).pvalue < ALPHA


def test_consistency_check_detects_a_missing_projection(monkeypatch):
    """Without P_out⊥ on the fresh part, forward and backward answers stop being one matrix."""
    monkeypatch.setattr(LazyLayer, "_extend", _extend_without_projection)
    w = lazy(40, 6, 1, seed=3, coords="ambient")
    X, FX, Y, BY = _interleaved(w)
    assert np.max(np.abs(Y @ FX.T - BY @ X.T)) > 1e-3


def _extend_without_projection(self, side, Qn):
    Qx, Ax = self._Q[1 - side], self._A[1 - side]
    A = (Qn @ Ax.T) @ Qx + self._fresh(self._spaces[1 - side], Qn.shape[0])
    self._Q[side] = np.concatenate([self._Q[side], Qn])
    self._A[side] = np.concatenate([self._A[side], A])


def test_materialised_matrices_have_iid_gaussian_entries():
    """Conditioning leaves W iid N(0, 1/n): after interleaved queries, entries pooled over seeds."""
    n, vals, obs = 16, [], []
    for s in range(200):
        w = lazy(n, 6, 1, seed=s, coords="ambient")
        _interleaved(w)
        W = w.operators()[0].forward(np.eye(n)).T
        vals.append(W.ravel() * np.sqrt(n))
        obs.append(W[0, 0] * np.sqrt(n))
    vals = np.concatenate(vals)
    assert stats.kstest(vals, "norm").pvalue > ALPHA
    assert abs(vals.var() - 1) < 3 * np.sqrt(2 / vals.size)
    assert stats.kstest(obs, "norm").pvalue > ALPHA


# ---------------------------------------------------------------------------------------------- lazy vs dense
def _engine_stats(weights_fn, S, data, L, steps, degree=3):
    out = []
    for s in range(S):
        # float64 bounds only: a ball-arithmetic recomputation per network would cost ~1 s each and
        # change nothing here (c_0..c_2 and eta_n are compared in distribution)
        r = exact_polynomial(weights_fn(s), data, MUP, steps, degree=degree, certify="bound")
        out.append(list(r.polynomial.loss[:3]) + [r.minimisation.eta_opt])
    return np.array(out)


def _agree(a, b):
    """(KS p-values, |mean difference| / its standard error) per column."""
    p = np.array([stats.ks_2samp(a[:, j], b[:, j]).pvalue for j in range(a.shape[1])])
    se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
    return p, np.abs(a.mean(axis=0) - b.mean(axis=0)) / se


SMALL = dict(n=256, L=2, steps=2, S=150)


@pytest.fixture(scope="module")
def dense_small():
    data = linear_teacher(d=5, m=20, seed=3)
    n, L = SMALL["n"], SMALL["L"]
    net = NetworkSpec(L, n, data.d)
    a = _engine_stats(lambda s: sample_weights(net, MUP, child_seed(1, n, s)), SMALL["S"], data, L, SMALL["steps"])
    return data, a


@pytest.mark.parametrize("coords,cap", [("reduced", None), ("ambient", None)])
def test_lazy_and_dense_agree_in_distribution(dense_small, coords, cap):
    """c_0, c_1, c_2 and η_n: KS at α = 1e-3 and means within 3 s.e. (n = 256, L = 2, t = 2, 150 seeds each)."""
    data, dense = dense_small
    n, L = SMALL["n"], SMALL["L"]
    a = _engine_stats(lambda s: sample_lazy_weights(NetworkSpec(L, n, data.d), MUP, child_seed(2, n, s), coords=coords,
                                                    steps=SMALL["steps"]), SMALL["S"], data, L, SMALL["steps"])
    p, z = _agree(dense, a)
    assert np.all(p > ALPHA), p
    assert np.all(z < 3), z


def test_distribution_check_detects_a_wrong_sampler(dense_small, monkeypatch):
    """The same check rejects a lazy sampler whose fresh part is 10 % too large."""
    orig = LazyLayer._fresh
    monkeypatch.setattr(LazyLayer, "_fresh", lambda self, space, k: orig(self, space, k) * 1.1)
    data, dense = dense_small
    n, L = SMALL["n"], SMALL["L"]
    a = _engine_stats(lambda s: sample_lazy_weights(NetworkSpec(L, n, data.d), MUP, child_seed(2, n, s),
                                                    steps=SMALL["steps"]), SMALL["S"], data, L, SMALL["steps"])
    p, z = _agree(dense, a)
    assert np.any(p < ALPHA) or np.any(z > 3), (p, z)


@pytest.mark.slow
@pytest.mark.parametrize("n,L,steps,S", [(1024, 3, 2, 300), (256, 3, 3, 400), (1024, 2, 1, 400)])
def test_lazy_and_dense_agree_in_distribution_large(n, L, steps, S):
    data = linear_teacher(d=10, m=50, seed=4)
    net = NetworkSpec(L, n, data.d)
    dense = _engine_stats(lambda s: sample_weights(net, MUP, child_seed(11, n, s)), S, data, L, steps)
    for coords in ("reduced", "ambient"):
        a = _engine_stats(lambda s: sample_lazy_weights(net, MUP, child_seed(12, n, s), coords=coords, steps=steps),
                          S, data, L, steps)
        p, z = _agree(dense, a)
        assert np.all(p > ALPHA) and np.all(z < 3), (coords, p, z)


@pytest.mark.slow
def test_reduced_and_ambient_lazy_agree_at_large_width():
    """At n = 2^14 (dense is slow there) the two lazy samplers agree in distribution."""
    data = linear_teacher(d=20, m=100, seed=5)
    n, L, steps, S = 2**14, 3, 2, 200
    net = NetworkSpec(L, n, data.d)
    res = [_engine_stats(lambda s: sample_lazy_weights(net, MUP, child_seed(13 + k, n, s), coords=c, steps=steps),
                         S, data, L, steps) for k, c in enumerate(("reduced", "ambient"))]
    p, z = _agree(*res)
    assert np.all(p > ALPHA) and np.all(z < 3), (p, z)


# ---------------------------------------------------------------------------------------------- API and errors
def test_capacity_exhaustion_is_a_clear_error(small_data):
    w = lazy(2**20, small_data.d, 3, seed=0, capacity=small_data.d + 1)
    with pytest.raises(LazyCapacityError, match="capacity"):
        LossEngine(w, small_data, MUP).polynomial(2)


def test_queries_outside_the_realised_frame_are_refused():
    w = lazy(2**20, 4, 1, seed=0, capacity=32)
    bad = np.zeros(32)
    bad[20] = 1.0
    with pytest.raises(ValueError, match="not yet realised"):
        w.operators()[0].forward(bad)


def test_lazy_weights_attributes_and_validation():
    w = lazy(2**20, 6, 3, seed=0, steps=2)
    assert isinstance(w, LazyWeights) and (w.width, w.depth, w.input_dim) == (2**20, 3, 6)
    assert w.W0.shape == (w.dim, 6) and w.V.shape == (w.dim,)
    a = lazy(64, 6, 2, seed=0)
    assert a.coords == "ambient" and a.W0.shape == (64, 6) and a.width == 64
    with pytest.raises(TypeError, match="materialised"):
        a.to_npz("x.npz")
    with pytest.raises(SpecError, match="coords"):
        lazy(64, 6, 2, seed=0, coords="sparse")
    with pytest.raises(SpecError, match="capacity"):
        lazy(64, 6, 2, seed=0, capacity=65)
    with pytest.raises(SpecError, match="sampler"):
        resolve_sampler("fast", 10)
    assert resolve_sampler("auto", LAZY_MIN_WIDTH - 1) == "dense" and resolve_sampler("auto", LAZY_MIN_WIDTH) == "lazy"


def test_seeding_is_reproducible_and_ambient_matches_dense_first_draws():
    a, b = lazy(2**20, 6, 2, seed=9), lazy(2**20, 6, 2, seed=9)
    data = linear_teacher(d=6, m=10, seed=0)
    np.testing.assert_array_equal(LossEngine(a, data, MUP).polynomial(2, 4).loss, LossEngine(b, data, MUP).polynomial(2, 4).loss)
    w, kind = draw_weights(NetworkSpec(2, 64, 6), MUP, child_seed(0, 64, 0), sampler="auto")
    assert kind == "dense" and isinstance(w, Weights)
    w, kind = draw_weights(NetworkSpec(2, 64, 6), MUP, child_seed(0, 64, 0), sampler="lazy")
    assert kind == "lazy" and isinstance(w, LazyWeights)


def test_run_sample_records_and_matches_the_sampler(tmp_path):
    from polyloss.sampling import run_sample
    from polyloss.spec import SamplingSpec, TrainingSpec

    data = linear_teacher(d=4, m=12, seed=0)
    kw = dict(depth=2, training=TrainingSpec(1, None), param=MUP, data=data, data_description={"kind": "test"},
              progress=False, n_grid=24)
    run = run_sample(tmp_path / "a", sampling=SamplingSpec("16,4096", 2, 0), sampler="auto", **kw)
    assert run.config["sampler"] == "auto" and run.config["lazy_min_width"] == LAZY_MIN_WIDTH
    assert [r["sampler"] for r in run.records] == ["dense", "dense", "lazy", "lazy"]
    dense = run_sample(tmp_path / "b", sampling=SamplingSpec("16", 2, 0), sampler="dense", **kw)
    assert [r["loss_coefficients"] for r in dense.records] == [r["loss_coefficients"] for r in run.records[:2]]
    with pytest.raises(RunError, match="sampler"):
        run_sample(tmp_path / "b", sampling=SamplingSpec("16", 3, 0), sampler="lazy", resume=True, **kw)
    with pytest.raises(SpecError, match="sampler"):
        run_sample(tmp_path / "c", sampling=SamplingSpec("16", 1, 0), sampler="fast", **kw)


# ---------------------------------------------------------------------------------------------- GPU
def test_cupy_reduced_lazy_is_the_numpy_network(cupy_xp, small_data):
    """Reduced coordinates draw on the host: the same seed gives the same network on both backends."""
    net = NetworkSpec(3, 2**20, small_data.d)
    cpu = sample_lazy_weights(net, MUP, np.random.SeedSequence(3), steps=2)
    gpu = sample_lazy_weights(net, MUP, np.random.SeedSequence(3), xp=cupy_xp, steps=2)
    assert isinstance(gpu.V, cupy_xp.ndarray) and gpu.V.dtype == cupy_xp.float64
    e_cpu, e_gpu = LossEngine(cpu, small_data, MUP), LossEngine(gpu, small_data, MUP)
    np.testing.assert_allclose(e_gpu.polynomial(2).loss, e_cpu.polynomial(2).loss, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(e_gpu.taylor([0.1, 0.5, 1.0], 2), e_cpu.taylor([0.1, 0.5, 1.0], 2), rtol=1e-10)


def test_cupy_ambient_lazy_is_one_matrix_with_the_right_law(cupy_xp, small_data):
    n = 512
    w = sample_lazy_weights(NetworkSpec(2, n, small_data.d), MUP, np.random.SeedSequence(4), xp=cupy_xp,
                            coords="ambient")
    op = w.operators()[0]
    X = w.W0.T
    FX = op.forward(X)
    BV = op.backward(FX[:2])
    lhs, rhs = FX[:2] @ FX.T, BV @ X.T
    assert float(cupy_xp.abs(lhs - rhs).max()) < 1e-12 * float(cupy_xp.abs(lhs).max())
    q = n * float(cupy_xp.sum(FX * FX)) / float(cupy_xp.sum(X * X))
    assert abs(q / n - 1) < 5 * np.sqrt(2 / (n * X.shape[0]))
    poly = LossEngine(w, small_data, MUP).polynomial(2)
    assert np.all(np.isfinite(poly.loss))
