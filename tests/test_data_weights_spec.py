"""Specs, data and weights: validation, determinism, loaders."""

import subprocess
import sys

import numpy as np
import pytest

from polyloss.data import Dataset, linear_teacher, load_data, nonlinear_teacher
from polyloss.errors import DataError, PolylossError, SpecError
from polyloss.spec import NetworkSpec, Parametrization, SamplingSpec, TrainingSpec, parse_widths
from polyloss.weights import child_seed, load_weights, sample_weights


@pytest.mark.parametrize("kw,name", [
    (dict(depth=0, width=4, input_dim=3), "depth"),
    (dict(depth=2, width=0, input_dim=3), "width"),
    (dict(depth=2, width=4, input_dim=-1), "input_dim"),
    (dict(depth=2.5, width=4, input_dim=3), "depth"),
    (dict(depth=True, width=4, input_dim=3), "depth"),
])
def test_network_spec_rejects(kw, name):
    with pytest.raises(SpecError, match=f"`{name}`"):
        NetworkSpec(**kw)


def test_parametrizations():
    assert Parametrization.parse("sp") == Parametrization.preset("sp")
    assert Parametrization.parse("1,1").name == "ntp"
    c = Parametrization.parse("3/2,1/2")
    assert c.name == "custom" and c.readout_variance(16) == pytest.approx(16**-1.5)
    assert c.lr_multiplier(16) == pytest.approx(0.25)
    for bad in ["xp", "1,2,3", "a,b", 7]:
        with pytest.raises(SpecError, match="`param`"):
            Parametrization.parse(bad)
    with pytest.raises(SpecError, match="custom"):
        Parametrization("mup", 1, 0)


def test_other_specs():
    assert parse_widths("256, 64,128,64") == (64, 128, 256)
    for bad in ["", "64,x", "0,3", [], [2, -1]]:
        with pytest.raises(SpecError, match="`widths`"):
            parse_widths(bad)
    with pytest.raises(SpecError, match="`samples`"):
        SamplingSpec((4,), 0)
    with pytest.raises(SpecError, match="`seed`"):
        SamplingSpec((4,), 1, seed=-3)
    with pytest.raises(SpecError, match="`steps`"):
        TrainingSpec(0)
    with pytest.raises(SpecError, match="`degree`"):
        TrainingSpec(1, degree=-1)


def test_teachers_are_seeded_and_scaled():
    a, b = linear_teacher(d=50, m=4000, seed=3), linear_teacher(d=50, m=4000, seed=3)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.y, linear_teacher(d=50, m=4000, seed=4).y)
    # y = w*ᵀx with w* ~ N(0, I/d): Var y = ‖w*‖² ≈ 1 (to a few s.e. of the chi-square)
    assert 0.5 < a.y.var() < 1.6
    nl = nonlinear_teacher(d=50, m=4000, seed=3)
    coef, *_ = np.linalg.lstsq(nl.X, nl.y, rcond=None)
    assert np.mean((nl.X @ coef - nl.y) ** 2) > 0.05 * nl.y.var()  # not realisable by a linear net


def test_dataset_validation():
    with pytest.raises(DataError, match="NaN"):
        Dataset(np.array([[1.0, np.nan]]), np.ones(1))
    with pytest.raises(DataError, match="rows"):
        Dataset(np.ones((3, 2)), np.ones(2))
    with pytest.raises(DataError, match="empty"):
        Dataset(np.ones((0, 2)), np.ones(0))
    with pytest.raises(DataError, match="2-D"):
        Dataset(np.ones(3), np.ones(3))


def test_loaders(tmp_path):
    ds = linear_teacher(d=3, m=5, seed=0)
    ds.to_npz(tmp_path / "d.npz")
    back = load_data(tmp_path / "d.npz")
    assert np.array_equal(back.X, ds.X) and np.array_equal(back.y, ds.y)
    np.savetxt(tmp_path / "d.csv", np.column_stack([ds.X, ds.y]), delimiter=",", header="a,b,c,y", comments="")
    csv = load_data(tmp_path / "d.csv")
    np.testing.assert_allclose(csv.X, ds.X, rtol=1e-15)
    np.savez(tmp_path / "bad.npz", X=ds.X)
    with pytest.raises(DataError, match="lacks"):
        load_data(tmp_path / "bad.npz")
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(DataError, match=".npz"):
        load_data(tmp_path / "d.txt")
    with pytest.raises(DataError, match="does not exist"):
        load_data(tmp_path / "missing.npz")
    (tmp_path / "e.csv").write_text("x,y\n")
    with pytest.raises(DataError, match="no data rows"):
        load_data(tmp_path / "e.csv")


def test_weights_seeding_is_per_width_and_sample():
    p = Parametrization.preset("mup")
    w1 = sample_weights(NetworkSpec(2, 8, 3), p, child_seed(5, 8, 1))
    w2 = sample_weights(NetworkSpec(2, 8, 3), p, child_seed(5, 8, 1))
    w3 = sample_weights(NetworkSpec(2, 8, 3), p, child_seed(5, 8, 2))
    assert np.array_equal(w1.hidden[1], w2.hidden[1]) and not np.array_equal(w1.V, w3.V)


def test_weight_variances_follow_parametrization():
    n, d = 400, 20
    for name, var_v in [("mup", n**-2.0), ("sp", 1.0 / n)]:
        w = sample_weights(NetworkSpec(1, n, d), Parametrization.preset(name), np.random.SeedSequence(1))
        # sample variances of n² (or n, nd) normals: relative s.e. sqrt(2/N), allow 5 s.e.
        assert w.hidden[0].var() == pytest.approx(1.0 / n, rel=5 * np.sqrt(2 / n**2))
        assert w.W0.var() == pytest.approx(1.0 / d, rel=5 * np.sqrt(2 / (n * d)))
        assert w.V.var() == pytest.approx(var_v, rel=5 * np.sqrt(2 / n))


def test_load_weights_checks_shapes(tmp_path):
    rng = np.random.default_rng(0)
    good = dict(W0=rng.normal(size=(4, 3)), W1=rng.normal(size=(4, 4)), W2=rng.normal(size=(4, 4)), V=rng.normal(size=4))
    np.savez(tmp_path / "w.npz", **good)
    w = load_weights(tmp_path / "w.npz", input_dim=3)
    assert w.depth == 2 and w.width == 4
    cases = {
        "W1.*must be \\(4, 4\\)": dict(good, W1=rng.normal(size=(4, 5))),
        "W0.*= \\(4, d\\)": dict(good, W0=rng.normal(size=(5, 3))),
        "without gaps": {k: v for k, v in dict(good, W3=good["W2"]).items() if k != "W2"},
        "lacks `V`": {k: v for k, v in good.items() if k != "V"},
        "unexpected": dict(good, bias=np.ones(4)),
        "NaN": dict(good, W2=np.full((4, 4), np.nan)),
    }
    for pattern, arrays in cases.items():
        np.savez(tmp_path / "b.npz", **arrays)
        with pytest.raises(DataError, match=pattern):
            load_weights(tmp_path / "b.npz", input_dim=3)
    with pytest.raises(DataError, match="d = 7"):
        load_weights(tmp_path / "w.npz", input_dim=7)


def test_errors_share_a_root():
    assert issubclass(SpecError, PolylossError) and issubclass(DataError, PolylossError)


def test_import_does_not_import_cupy():
    code = "import sys, polyloss, polyloss.cli, polyloss.engine, polyloss.sampling; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_api_mirrors_the_cli_verbs():
    import polyloss
    from polyloss import api
    from polyloss.cli import COMMANDS

    assert set(api.__all__) == set(COMMANDS) - {"data"}  # `polyloss data` writes files: Dataset.to_npz, Weights.to_npz
    for name in api.__all__:
        assert callable(getattr(api, name)), name
    for name in polyloss.__all__:
        assert getattr(polyloss, name) is not None
    with pytest.raises(AttributeError):
        polyloss.nonexistent  # noqa: B018


def test_principal_teacher_is_a_kernel_eigenvector_and_the_limit_interpolates():
    """The degenerate target of issue 12: y = X v_1 is an eigenvector of K = XXᵀ/d, so the μP limit
    reaches zero loss at η_∞ (at t = 1: 𝓛_∞ = ½ μ_0 (1 − Lλη)²); the linear teacher does not."""
    from polyloss.data import principal_teacher, synthetic
    from polyloss.derive import derive

    ds = principal_teacher(8, 30, 0.0, 3)
    K = ds.X @ ds.X.T / 8
    lam = ds.y @ K @ ds.y / (ds.y @ ds.y)
    assert np.linalg.norm(K @ ds.y - lam * ds.y) <= 1e-12 * np.linalg.norm(K @ ds.y)
    assert synthetic("principal", 8, 30, 0.0, 3).y.tolist() == ds.y.tolist()
    for L, t in ((1, 1), (2, 1), (2, 2)):
        assert float(derive(L, t, ds).eta_window_min.loss) < 1e-20 * float(ds.y @ ds.y)
    lin = synthetic("linear", 8, 30, 0.0, 3)
    assert float(derive(2, 1, lin).eta_window_min.loss) > 1e-3 * float(lin.y @ lin.y) / 30
