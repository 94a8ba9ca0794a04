"""A host stand-in for CuPy that enforces its device/host boundary, so the GPU code paths run in CI.

CI has no GPU, and CuPy code that was never run fails in a predictable way: an array that should
be on the device meets a numpy array (``cupy_array @ numpy_array``, ``cupy.concatenate([numpy,
…])``), or a device array is turned into a numpy array implicitly (``np.asarray(cupy_array)``,
which CuPy refuses). This module is a namespace ``xp`` whose arrays (:class:`DeviceArray`) wrap
numpy arrays and behave like ``cupy.ndarray`` at that boundary:

* ``np.asarray(a)`` / ``a.__array__()`` raise ``TypeError`` (CuPy's message); ``a.get()`` and
  ``xp.asnumpy(a)`` copy to the host explicitly;
* arithmetic, ``@``, ufuncs, ``np.<function>`` dispatch and ``xp.<function>`` accept device
  arrays and Python / numpy *scalars*, and raise ``TypeError`` on a numpy array;
* ``xp.asarray`` / ``xp.array`` accept host data (the explicit host → device copy);
* ``float(a)``, ``int(a)``, ``bool(a)`` work on size-1 arrays (an implicit synchronisation, as in
  CuPy);
* ``xp.random.default_rng(seed)`` gives a generator whose draws are device arrays.

What it cannot show: CuPy functions that do not exist or behave differently, kernels, and speed.
Those need a GPU (``pytest -m gpu``).
"""

from __future__ import annotations

import operator
import types

import numpy as np

_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
    "array explicitly."
)


def _unwrap(obj, where: str):
    """Device arrays → their numpy data (recursing into lists/tuples/dicts); numpy arrays → TypeError."""
    if isinstance(obj, DeviceArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise TypeError(f"Unsupported type {type(obj)} in {where} (a host numpy array met device arrays)")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, where) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, where) for k, v in obj.items()}
    return obj


def _wrap(obj):
    if isinstance(obj, np.ndarray):
        return DeviceArray(obj)
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    if isinstance(obj, np.generic):  # CuPy reductions return 0-d device arrays, never host scalars
        return DeviceArray(np.asarray(obj))
    return obj


def _binary(op, reflected=False):
    def method(self, other):
        other = _unwrap(other, op.__name__)
        return _wrap(op(other, self._a) if reflected else op(self._a, other))

    return method


class DeviceArray:
    """A numpy array posing as a ``cupy.ndarray`` (see the module docstring)."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, a):
        self._a = np.asarray(a)

    # --- the boundary -------------------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def get(self):
        return self._a.copy()

    def __array_namespace__(self, api_version=None):
        return XP

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = _unwrap(inputs, f"numpy.{ufunc.__name__}")
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"], f"numpy.{ufunc.__name__}(out=)")
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        name = getattr(func, "__name__", str(func))
        return _wrap(func(*_unwrap(args, f"numpy.{name}"), **_unwrap(kwargs, f"numpy.{name}")))

    # --- attributes ---------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: DeviceArray(self._a.T))
    real = property(lambda self: DeviceArray(self._a.real))
    imag = property(lambda self: DeviceArray(self._a.imag))
    flags = property(lambda self: self._a.flags)

    def __getattr__(self, name):  # methods: sum, reshape, astype, copy, max, ravel, …
        if name.startswith("__"):  # never __array_interface__, __array_struct__, __dlpack__, …
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            return _wrap(attr(*_unwrap(args, f"ndarray.{name}"), **_unwrap(kwargs, f"ndarray.{name}")))

        return method

    def __repr__(self):
        return f"DeviceArray({self._a!r})"

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(x) for x in self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        self._a[_index(key)] = _unwrap(value, "ndarray.__setitem__")

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __index__(self):
        return operator.index(self._a.item()) if self._a.size == 1 else operator.index(self._a)

    __add__, __radd__ = _binary(operator.add), _binary(operator.add, True)
    __sub__, __rsub__ = _binary(operator.sub), _binary(operator.sub, True)
    __mul__, __rmul__ = _binary(operator.mul), _binary(operator.mul, True)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv), _binary(operator.floordiv, True)
    __mod__, __rmod__ = _binary(operator.mod), _binary(operator.mod, True)
    __pow__, __rpow__ = _binary(operator.pow), _binary(operator.pow, True)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _binary(operator.matmul, True)
    __and__, __rand__ = _binary(operator.and_), _binary(operator.and_, True)
    __or__, __ror__ = _binary(operator.or_), _binary(operator.or_, True)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)
    __hash__ = None

    def _inplace(op):  # noqa: N805  (class-body helper)
        def method(self, other):
            self._a[...] = op(self._a, _unwrap(other, op.__name__))
            return self

        return method

    __iadd__, __isub__ = _inplace(operator.add), _inplace(operator.sub)
    __imul__, __itruediv__ = _inplace(operator.mul), _inplace(operator.truediv)
    del _inplace

    def __neg__(self):
        return DeviceArray(-self._a)

    def __pos__(self):
        return DeviceArray(+self._a)

    def __abs__(self):
        return DeviceArray(abs(self._a))

    def __invert__(self):
        return DeviceArray(~self._a)


def _index(key):
    """Indices may be device arrays, ints, slices, … (host index arrays are copied, as CuPy does)."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, DeviceArray):
        return key._a
    return key


# --- the namespace ------------------------------------------------------------------------------
_HOST_INPUT = {"asarray", "array", "asanyarray", "ascontiguousarray"}  # explicit host → device copies


def _function(name: str):
    fn = getattr(np, name)
    if name in _HOST_INPUT:

        def host_to_device(obj, *args, **kwargs):
            if isinstance(obj, DeviceArray):
                obj = obj._a
            return DeviceArray(fn(obj, *args, **kwargs))

        return host_to_device
    if not callable(fn) or isinstance(fn, type):  # dtypes (float64, …), constants (pi, inf, newaxis)
        return fn

    def device_function(*args, **kwargs):
        return _wrap(fn(*_unwrap(args, f"xp.{name}"), **_unwrap(kwargs, f"xp.{name}")))

    device_function.__name__ = name
    return device_function


class _Generator:
    """``xp.random.default_rng(seed)``: numpy's PCG64 stream, drawn as device arrays."""

    def __init__(self, seed):
        self._g = np.random.default_rng(seed)

    def __getattr__(self, name):
        fn = getattr(self._g, name)

        def draw(*args, **kwargs):
            return _wrap(fn(*_unwrap(args, f"Generator.{name}"), **_unwrap(kwargs, f"Generator.{name}")))

        return draw


def _submodule(name: str, host) -> types.ModuleType:
    mod = types.ModuleType(name)

    def __getattr__(attr):  # noqa: N807
        fn = getattr(host, attr)

        def device_function(*args, **kwargs):
            return _wrap(fn(*_unwrap(args, f"{name}.{attr}"), **_unwrap(kwargs, f"{name}.{attr}")))

        return device_function

    mod.__getattr__ = __getattr__
    return mod


def _make_module(name: str = "cupy") -> types.ModuleType:
    xp = types.ModuleType(name, __doc__)
    xp.ndarray = DeviceArray
    xp.asnumpy = lambda a: a.get() if isinstance(a, DeviceArray) else np.asarray(a)
    xp.linalg = _submodule(f"{name}.linalg", np.linalg)
    random = types.ModuleType(f"{name}.random")
    random.default_rng = _Generator
    random.Generator = _Generator
    xp.random = random
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)
    xp.cuda = types.SimpleNamespace(runtime=runtime, Device=lambda *a: types.SimpleNamespace(synchronize=lambda: None))
    xp.__getattr__ = _function
    return xp


XP = _make_module()  # the namespace; DeviceArray.__array_namespace__() returns it
