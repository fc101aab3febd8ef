"""Every public function returns arrays of its input's library, dtype and device.

Run on numpy, torch, array-api-strict (on its default device and on ``device1``, which catches
arrays created on the default device by mistake), cupy and torch-on-CUDA where a GPU is present,
and jax where it is installed (float64 under ``jax.enable_x64``). ``import arma_core`` must
import none of the optional libraries.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import array_api_compat
import numpy as np
import pytest
from conftest import load_namespace, random_taps, rel_err

import arma_core as ac
from arma_core.capabilities import methods
from arma_core.testing import LIBRARIES

DTYPES = ["float32", "float64"]
TOL = {"float32": 1e-5, "float64": 1e-10}

LIBS = [
    (name, None if device == "cpu" else device)
    for name, device in LIBRARIES
    if name != "dask" and (name, device) != ("cupy", "cuda")
] + [("cupy", None)]
# jax dispatches op by op and compiles each new (op, shape, dtype) once: ~25 s for this file
PARAMS = [
    pytest.param((n, d), id=n if d is None else f"{n}-{d}", marks=[pytest.mark.slow] if n == "jax" else [])
    for n, d in LIBS
]


class Lib:
    """An array library under test, the device to put arrays on, and a dtype context."""

    def __init__(self, name, device):
        self.name = name
        if name == "jax":
            self.jax = pytest.importorskip("jax")
            self.xp = pytest.importorskip("jax.numpy")
        else:
            self.xp = load_namespace(name)
        self.device = None
        if device == "device1":
            self.device = self.xp.Device("device1")
        elif device == "cuda":
            if not self.xp.cuda.is_available():
                pytest.skip("torch has no CUDA device")
            self.device = self.xp.device("cuda")

    def dtype(self, dtype):
        """Context in which ``dtype`` exists (jax has float64 only with x64 enabled)."""
        if self.name == "jax" and dtype == "float64":
            return self.jax.enable_x64(True)
        return contextlib.nullcontext()

    def asarray(self, a, dtype):
        a = np.asarray(a).astype(dtype)
        kw = {} if self.device is None else {"device": self.device}
        if self.name == "torch":
            return self.xp.asarray(a, **kw)
        return self.xp.asarray(a, dtype=getattr(self.xp, dtype), **kw)


@pytest.fixture(params=PARAMS)
def lib(request):
    return Lib(*request.param)


def assert_like(out, ref):
    """``out`` has ``ref``'s array type, dtype and device."""
    assert type(out) is type(ref), (type(out), type(ref))
    assert out.dtype == ref.dtype, (out.dtype, ref.dtype)
    assert array_api_compat.device(out) == array_api_compat.device(ref)


def host(a) -> np.ndarray:
    from arma_core.reference import to_numpy

    return to_numpy(a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_filter_functions(lib, dtype):
    rng = np.random.default_rng(0)
    with lib.dtype(dtype):
        theta = lib.asarray(rng.normal(scale=20, size=(3, 2, 2, 2)), dtype)
        for region in ("strip", "diamond"):
            taps = ac.reparameterize(theta, region)
            assert_like(taps, theta)
            assert tuple(taps.shape) == (3, 2, 2, 3)
            margin = ac.stability_margin(taps)
            assert_like(margin, theta)
            assert tuple(margin.shape) == (3, 2, 2)
            assert ac.is_stable(taps) is True
            assert ac.check_stable(taps) is taps
        alpha = lib.asarray(rng.normal(size=(3, 2, 4)), dtype)
        th = ac.official_to_theta(alpha)
        assert_like(th, alpha)
        assert tuple(th.shape) == (3, 2, 2, 2)
        bad = np.tile([0.5, 1.0, 0.6], (2, 1, 1, 1))
        assert ac.is_stable(lib.asarray(bad, dtype)) is False
        with pytest.raises(ac.UnstableFilterError, match="channel 0, axis 0, factor 0"):
            ac.check_stable(lib.asarray(bad, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_ar_operators(lib, dtype):
    rng = np.random.default_rng(1)
    cases = [(1, (9,)), (2, (5, 6)), (3, (3, 4, 5))]
    if lib.name == "jax":  # op-by-op dispatch compiles every new shape: 2-D only keeps it short
        cases = cases[1:2]
    for k, spatial in cases:
        taps_np = random_taps(rng, 2, k, 2)
        t_np = rng.normal(size=(2, 2) + spatial)
        with lib.dtype(dtype):
            taps, t = lib.asarray(taps_np, dtype), lib.asarray(t_np, dtype)
            for boundary in ac.BOUNDARIES:
                for fn in (ac.ar_apply, ac.ar_apply_adjoint):
                    out = fn(t, taps, boundary=boundary)
                    assert_like(out, t)
                    expect = fn(t_np.astype(dtype), taps_np.astype(dtype), boundary=boundary)
                    assert rel_err(out, expect) < TOL[dtype], (fn.__name__, boundary)
                for method in ["auto"] + list(methods("solve", lib.name, boundary)):
                    for fn in (ac.ar_solve, ac.ar_solve_adjoint):
                        out = fn(t, taps, boundary=boundary, method=method)
                        assert_like(out, t)
                        expect = fn(t_np, taps_np, boundary=boundary, method=method)
                        assert rel_err(out, expect) < TOL[dtype], (k, fn.__name__, boundary, method)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_and_arma(lib, dtype):
    rng = np.random.default_rng(2)
    x_np = rng.normal(size=(2, 3, 7, 6))
    w_np = rng.normal(size=(4, 3, 3, 3))
    b_np = rng.normal(size=(4,))
    taps_np = random_taps(rng, 4, 2, 1)
    with lib.dtype(dtype):
        x, w, b, taps = (lib.asarray(a, dtype) for a in (x_np, w_np, b_np, taps_np))
        for mode in ("zeros", "reflect"):
            out = ac.conv(x, w, b, padding=1, padding_mode=mode)
            assert_like(out, x)
            expect = ac.conv(x_np, w_np, b_np, padding=1, padding_mode=mode)
            assert rel_err(out, expect) < TOL[dtype]
        for boundary in ("circular", "replicate"):
            out = ac.arma(x, w, taps, b, padding="same", boundary=boundary)
            assert_like(out, x)
            assert tuple(out.shape) == (2, 4, 7, 6)
            expect = ac.arma(x_np, w_np, taps_np, b_np, padding="same", boundary=boundary)
            assert rel_err(out, expect) < TOL[dtype]


def _imported_after(code: str) -> list[str]:
    script = (
        f"import sys\n{code}\nprint(' '.join(m for m in ('torch', 'scipy', 'cupy', 'dask', 'jax') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_import_does_not_pull_optional_libraries():
    assert _imported_after("import arma_core") == []


def test_numpy_solve_loads_no_other_library():
    """Backends load lazily, per library seen: numpy work does not import torch, cupy, dask.

    (Explicit methods: a compiled method's first call would spend its time compiling.)
    """
    code = (
        "import numpy as np, arma_core as ac\n"
        "taps = np.tile([0.2, 1.0, -0.3], (2, 2, 1, 1))\n"
        "t = np.ones((2, 5, 4))\n"
        "ac.ar_solve(t, taps, method='fft'); ac.ar_solve(t, taps, boundary='zeros', method='dense')\n"
        "ac.ar_apply(t, taps); ac.arma(t, np.ones((2, 2, 3, 3)), taps, padding=1, method='fft')"
    )
    # scipy may serve a numpy fast path; the others have nothing to do with numpy arrays
    assert [m for m in _imported_after(code) if m != "scipy"] == []
