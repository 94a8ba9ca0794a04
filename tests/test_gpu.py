"""CuPy backend: same results as numpy for the same weights (run on a machine with a GPU)."""

import numpy as np
import pytest

from polyloss._backend import get_xp, to_host
from polyloss.engine import LossEngine
from polyloss.errors import BackendUnavailable, SpecError
from polyloss.spec import NetworkSpec, Parametrization
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


@pytest.mark.gpu
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_cupy_engine_matches_numpy(cupy_xp, small_data, steps):
    w, p = make_net(3, 64, small_data, seed=steps)
    wg = Weights(cupy_xp.asarray(w.W0), tuple(cupy_xp.asarray(W) for W in w.hidden), cupy_xp.asarray(w.V))
    cpu = LossEngine(w, small_data, p)
    gpu = LossEngine(wg, small_data, p)
    np.testing.assert_allclose(gpu.polynomial(steps).loss, cpu.polynomial(steps).loss, rtol=1e-9, atol=1e-14)
    etas = [0.1, 0.5, 1.0]
    np.testing.assert_allclose(gpu.taylor(etas, steps), cpu.taylor(etas, steps), rtol=1e-10)


@pytest.mark.gpu
def test_cupy_sampling_has_the_right_variances(cupy_xp):
    n, d = 512, 16
    w = sample_weights(NetworkSpec(2, n, d), Parametrization.preset("mup"), child_seed(0, n, 0), xp=cupy_xp)
    assert isinstance(to_host(w.V), np.ndarray)
    assert float(w.hidden[0].var()) == pytest.approx(1 / n, rel=5 * np.sqrt(2) / n)
    assert float(w.V.var()) == pytest.approx(n**-2.0, rel=5 * np.sqrt(2 / n))
