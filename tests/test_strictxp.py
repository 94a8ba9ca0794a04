"""The CuPy stand-in (tests/_strictxp.py) must refuse what CuPy refuses, or the GPU-path tests prove nothing."""

import numpy as np
import pytest
from _strictxp import XP, DeviceArray

from polyloss._backend import namespace_of, to_host


@pytest.fixture
def a():
    return XP.asarray(np.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("mix", [
    lambda a, h: a + h,
    lambda a, h: h + a,
    lambda a, h: a @ h.T,
    lambda a, h: h @ a.T,
    lambda a, h: XP.concatenate([a, h]),
    lambda a, h: XP.maximum(a, h),
    lambda a, h: np.add(a, h),
    lambda a, h: np.concatenate([a, h]),
    lambda a, h: a.__setitem__(0, h[0]),
    lambda a, h: np.asarray(a),
    lambda a, h: np.array(a, dtype=float),
])
def test_host_and_device_arrays_do_not_mix(a, mix):
    with pytest.raises(TypeError):
        mix(a, np.ones((2, 3)))


def test_scalars_explicit_copies_and_numpy_dispatch_work(a):
    b = 2.0 * a + np.float64(1.0) - a / 2
    assert isinstance(b, DeviceArray) and isinstance(np.exp(b), DeviceArray)
    s = np.sum(a)  # dispatched like CuPy: a 0-d device array, then a host float on request
    assert isinstance(s, DeviceArray) and float(s) == 15.0
    np.testing.assert_array_equal(to_host(a @ a.T), np.arange(6.0).reshape(2, 3) @ np.arange(6.0).reshape(2, 3).T)
    assert isinstance(XP.asarray(np.ones(3)), DeviceArray) and XP.asnumpy(a).shape == (2, 3)
    assert namespace_of(a) is XP and namespace_of(np.ones(2)) is np
    assert isinstance(XP.random.default_rng(0).standard_normal((2, 2), dtype=np.float64), DeviceArray)
