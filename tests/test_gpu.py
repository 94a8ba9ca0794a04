"""CuPy backend: same results as numpy for the same weights.

Every test taking ``cupy_xp`` runs twice: on real CuPy (marked ``gpu``, skipped without a device)
and on tests/_strictxp.py, a host stand-in that enforces CuPy's device/host boundary, so that the
GPU code paths, from the command line down, also run in CI.
"""

import sys

import numpy as np
import pytest

from polyloss._backend import get_xp, to_host
from polyloss.cli import main
from polyloss.data import linear_teacher
from polyloss.engine import LossEngine
from polyloss.errors import BackendUnavailable, SpecError
from polyloss.sampling import data_seed, load_run
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.sweep import load_sweep, sweep_network
from polyloss.weights import Weights, child_seed, sample_weights
from tests.conftest import make_net


def test_unknown_backend_is_a_spec_error():
    with pytest.raises(SpecError, match="`backend`"):
        get_xp("tpu")


def test_cupy_missing_or_deviceless_gives_clear_error():
    try:
        get_xp("cupy")
    except BackendUnavailable as exc:
        assert "backend" in str(exc) and "numpy" in str(exc)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_cupy_engine_matches_numpy(cupy_xp, small_data, steps):
    w, p = make_net(3, 64, small_data, seed=steps)
    wg = Weights(cupy_xp.asarray(w.W0), tuple(cupy_xp.asarray(W) for W in w.hidden), cupy_xp.asarray(w.V))
    cpu = LossEngine(w, small_data, p)
    gpu = LossEngine(wg, small_data, p)
    np.testing.assert_allclose(gpu.polynomial(steps).loss, cpu.polynomial(steps).loss, rtol=1e-9, atol=1e-14)
    etas = [0.1, 0.5, 1.0]
    np.testing.assert_allclose(gpu.taylor(etas, steps), cpu.taylor(etas, steps), rtol=1e-10)


def test_cupy_sampling_has_the_right_variances(cupy_xp):
    n, d = 512, 16
    w = sample_weights(NetworkSpec(2, n, d), Parametrization.preset("mup"), child_seed(0, n, 0), xp=cupy_xp)
    assert isinstance(to_host(w.V), np.ndarray)
    assert float(w.hidden[0].var()) == pytest.approx(1 / n, rel=5 * np.sqrt(2) / n)
    assert float(w.V.var()) == pytest.approx(n**-2.0, rel=5 * np.sqrt(2 / n))


@pytest.fixture
def cupy_backend(cupy_xp, monkeypatch):
    """``--backend cupy`` end to end: the real CuPy, or the strict stand-in installed as ``cupy``."""
    monkeypatch.setitem(sys.modules, "cupy", cupy_xp)
    return cupy_xp


def _host(w):
    return Weights(to_host(w.W0), tuple(to_host(W) for W in w.hidden), to_host(w.V))


SAMPLE = ["sample", "--depth", "2", "--steps", "2", "--d", "6", "--m", "20", "--degree", "12", "--quiet"]
DATA = linear_teacher(6, 20, 0.0, data_seed(0))  # what SAMPLE's --d/--m/--seed 0 generate
MUP = Parametrization.preset("mup")


def test_cupy_sample_dense_records_are_the_numpy_engine_on_the_same_networks(cupy_backend, tmp_path):
    run = tmp_path / "r"
    assert main(SAMPLE + ["--widths", "16,32", "--samples", "2", "--sampler", "dense", "--backend", "cupy", "--out", str(run)]) == 0
    result = load_run(run)
    recs = result.records
    assert len(recs) == 4 and {r["sampler"] for r in recs} == {"dense"}
    for rec in recs:
        n, s = rec["width"], rec["sample"]
        w = _host(sample_weights(NetworkSpec(2, n, 6), MUP, child_seed(0, n, s), xp=cupy_backend))
        ref = LossEngine(w, DATA, MUP).polynomial(2, degree=12).loss
        np.testing.assert_allclose(rec["loss_coefficients"], ref, rtol=1e-9, atol=1e-14)
        assert 0 < rec["eta_opt"] <= result.config["window"]


def test_cupy_sample_lazy_equals_numpy_sample(cupy_backend, tmp_path):
    """Reduced-coordinate lazy networks draw their Gaussians on the host: the same networks on both
    backends (width 128 > the frame capacity 103 here); width 64 runs the ambient lazy path on the device."""
    a, b = tmp_path / "numpy", tmp_path / "cupy"
    args = SAMPLE + ["--widths", "64,128,256", "--samples", "2", "--sampler", "lazy"]
    assert main(args + ["--out", str(a)]) == 0
    assert main(args + ["--backend", "cupy", "--out", str(b)]) == 0
    ra, rb = load_run(a).records, load_run(b).records
    assert [(r["width"], r["sample"]) for r in ra] == [(r["width"], r["sample"]) for r in rb]
    for x, y in zip(ra, rb):
        assert np.all(np.isfinite(y["loss_coefficients"])) and y["eta_opt"] > 0
        if x["width"] >= 128:
            np.testing.assert_allclose(y["loss_coefficients"], x["loss_coefficients"], rtol=1e-9, atol=1e-14)
            assert y["eta_opt"] == pytest.approx(x["eta_opt"], rel=1e-7)


@pytest.mark.parametrize("activation,optimizer", [("linear", "gd"), ("relu", "gd"), ("relu", "adam")])
def test_cupy_sweep_records_are_the_numpy_training_of_the_same_networks(cupy_backend, tmp_path, activation, optimizer):
    run = tmp_path / "s"
    assert main(["sweep", "--depth", "2", "--widths", "8,24", "--etas", "0.1,1,4", "--seeds", "2", "--steps", "2",
                 "--d", "6", "--m", "20", "--activation", activation, "--optimizer", optimizer, "--backend", "cupy",
                 "--quiet", "--out", str(run)]) == 0
    for rec in load_sweep(run).records:
        n, s = rec["width"], rec["sample"]
        w = _host(sample_weights(NetworkSpec(2, n, 6), MUP, child_seed(0, n, s), xp=cupy_backend))
        ref = sweep_network(w, DATA, MUP, np.array([0.1, 1.0, 4.0]), 2, activation=activation, optimizer=optimizer,
                            method=rec["method"])
        got = np.array([[np.inf if v is None else v for v in row] for row in rec["losses"]])
        np.testing.assert_allclose(got, ref, rtol=1e-10)
