import os

# Small matrices: multithreaded BLAS costs more than it saves (10x measured on 2 cores), and
# subprocesses started by tests inherit this.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
import pytest

from polyloss.data import linear_teacher
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.weights import sample_weights


@pytest.fixture(scope="session")
def quick_verify(tmp_path_factory):
    """One ``polyloss verify --quick`` of every claim, shared by tests/test_verify.py and tests/test_k_claims.py
    (each claim's quick run costs up to ~40 s: running them once keeps the suite within its budget)."""
    from polyloss.cli import main

    out = tmp_path_factory.mktemp("verify")
    assert main(["verify", "--quick", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture
def small_data():
    return linear_teacher(d=5, m=7, noise=0.1, seed=11)


def make_net(depth, width, data, param="mup", seed=0):
    p = Parametrization.parse(param)
    return sample_weights(NetworkSpec(depth, width, data.d), p, np.random.SeedSequence(seed)), p


@pytest.fixture(params=[pytest.param("cupy", marks=pytest.mark.gpu), "strict-host"])
def cupy_xp(request):
    """The GPU namespace: real CuPy (skipped without a CUDA device), and a host stand-in that
    enforces CuPy's device/host boundary (tests/_strictxp.py) so that the GPU paths run in CI too."""
    if request.param == "strict-host":
        from _strictxp import XP

        return XP
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception:
        pytest.skip("no CUDA device")
    return cupy


def rational_data(m, d, seed):
    """Small exact data (Fractions) for the symbolic tests; y is never all zero."""
    import random
    from fractions import Fraction

    rnd = random.Random(seed)
    X = [[Fraction(rnd.randint(-6, 6), rnd.randint(1, 4)) for _ in range(d)] for _ in range(m)]
    y = [Fraction(rnd.randint(-6, 6), rnd.randint(1, 3)) for _ in range(m)]
    if all(v == 0 for v in y):
        y[0] = Fraction(1)
    return X, y
