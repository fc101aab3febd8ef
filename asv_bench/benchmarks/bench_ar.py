"""asv benchmarks of the AR solve: every backend, shape, boundary, Q and method.

Parameter combinations a backend cannot run (cupy without a GPU, ``lines`` without numba or
on array-api-strict, ``fft`` or ``official`` with a non-circular boundary) are skipped by
raising ``NotImplementedError`` in ``setup`` (asv prints them as ``n/a``).

- :class:`Solve`: ``arma_core.ar_solve`` forward, on numpy, torch (CPU), cupy and
  array-api-strict (the generic array-API path).
- :class:`ForwardBackward`: ``ar_solve`` forward + backward through torch autograd, including
  the official algorithm re-expressed with ``torch.fft`` (``benchmarks/official_baseline.py``).
- :class:`Baselines`: a 3x3 convolution forward + backward and one ``x.clone()`` on the same
  tensors (the ratios of ``docs/performance.md`` are relative to these).
- :class:`Growth`: the fastest exact method (``auto``) from 64^2 to 1024^2 at B * C = 16.

All signals are float32; taps come from ``arma_core.reparameterize`` of theta ~ N(0, 0.5^2)
(a fixed seed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_REPO / "benchmarks"))

BACKENDS = ["numpy", "torch", "cupy", "array_api_strict"]
SHAPES = ["8x16x64x64", "1x16x256x256"]
BOUNDARIES = ["circular", "zeros", "reflect", "replicate"]
QS = [1, 3]
METHODS = ["auto", "lines", "fft", "dense"]


def _shape(text):
    return tuple(int(v) for v in text.split("x"))


def _namespace(backend):
    """The array module of ``backend``; NotImplementedError (asv: skip) when unavailable."""
    try:
        if backend == "numpy":
            return np
        if backend == "torch":
            import torch

            return torch
        if backend == "array_api_strict":
            import array_api_strict

            return array_api_strict
        if backend == "cupy":
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise NotImplementedError("no GPU")
            return cupy
    except ImportError as exc:
        raise NotImplementedError(f"{backend} is not installed") from exc
    except Exception as exc:  # a CUDA runtime without a device
        raise NotImplementedError(f"{backend} unusable: {exc}") from exc
    raise NotImplementedError(backend)


def _to(backend, mod, a):
    if backend == "torch":
        return mod.from_numpy(np.ascontiguousarray(a))
    return mod.asarray(a)


def _taps(C, k, Q, seed=0):
    import arma_core as ac

    theta = 0.5 * np.random.default_rng(seed).standard_normal((C, k, Q, 2))
    return np.asarray(ac.reparameterize(theta), dtype=np.float32)


def _check(method, boundary, t):
    """NotImplementedError unless ``method`` is exact for ``boundary`` on ``t``'s library."""
    from arma_core._validate import namespace
    from arma_core.solve import check_method

    try:
        check_method(method, boundary, namespace(t))
    except ValueError as exc:
        raise NotImplementedError(str(exc)) from exc


class _Settings:
    timeout = 300
    repeat = (1, 3, 10.0)  # min, max repeats, max seconds: the slow dense cases stay bounded
    number = 1
    processes = 1


class Solve(_Settings):
    """Forward ``ar_solve`` on every backend."""

    params = [BACKENDS, SHAPES, BOUNDARIES, QS, METHODS]
    param_names = ["backend", "shape", "boundary", "Q", "method"]

    def setup(self, backend, shape, boundary, Q, method):
        mod = _namespace(backend)
        B, C, H, W = _shape(shape)
        rng = np.random.default_rng(1)
        self.t = _to(backend, mod, rng.standard_normal((B, C, H, W)).astype(np.float32))
        self.taps = _to(backend, mod, _taps(C, 2, Q))
        _check(method, boundary, self.t)
        self.kw = dict(boundary=boundary, method=method)
        self.sync = (lambda: mod.cuda.Stream.null.synchronize()) if backend == "cupy" else (lambda: None)
        Solve.time_solve(self, backend, shape, boundary, Q, method)  # compile / plan caches

    def time_solve(self, backend, shape, boundary, Q, method):
        import arma_core as ac

        ac.ar_solve(self.t, self.taps, **self.kw)
        self.sync()


class SolveMemory(_Settings):
    """Peak memory of the forward solve (circular, Q = 1): numpy and torch, each method."""

    params = [["numpy", "torch"], SHAPES, METHODS]
    param_names = ["backend", "shape", "method"]

    def setup(self, backend, shape, method):
        Solve.setup(self, backend, shape, "circular", 1, method)

    def peakmem_solve(self, backend, shape, method):
        import arma_core as ac

        ac.ar_solve(self.t, self.taps, **self.kw)


class ForwardBackward(_Settings):
    """``ar_solve`` forward + backward (torch autograd), with the official algorithm."""

    params = [SHAPES, BOUNDARIES, QS, METHODS + ["official"]]
    param_names = ["shape", "boundary", "Q", "method"]

    def setup(self, shape, boundary, Q, method):
        import torch

        B, C, H, W = _shape(shape)
        rng = np.random.default_rng(2)
        self.x = torch.from_numpy(rng.standard_normal((B, C, H, W)).astype(np.float32)).requires_grad_(True)
        self.g = torch.from_numpy(rng.standard_normal((B, C, H, W)).astype(np.float32))
        self.taps = torch.from_numpy(_taps(C, 2, Q)).requires_grad_(True)
        if method == "official":
            if boundary != "circular":
                raise NotImplementedError("the official algorithm is circular only")
            from official_baseline import official_ar_solve

            self.fn = lambda x, taps: official_ar_solve(x, taps)
        else:
            _check(method, boundary, self.x)
            import arma_core as ac

            self.fn = lambda x, taps: ac.ar_solve(x, taps, boundary=boundary, method=method)
        ForwardBackward.time_forward_backward(self, shape, boundary, Q, method)

    def time_forward_backward(self, shape, boundary, Q, method):
        self.x.grad = None
        self.taps.grad = None
        self.fn(self.x, self.taps).backward(self.g)


class ForwardBackwardMemory(_Settings):
    """Peak memory of forward + backward (circular, Q = 1), each method and the official one."""

    params = [SHAPES, METHODS + ["official"]]
    param_names = ["shape", "method"]

    def setup(self, shape, method):
        ForwardBackward.setup(self, shape, "circular", 1, method)

    def peakmem_forward_backward(self, shape, method):
        ForwardBackward.time_forward_backward(self, shape, "circular", 1, method)


class Baselines(_Settings):
    """What the AR layer is compared with: a 3x3 convolution (fwd + bwd) and one clone."""

    params = [SHAPES]
    param_names = ["shape"]

    def setup(self, shape):
        import torch

        B, C, H, W = _shape(shape)
        torch.manual_seed(0)
        self.x = torch.randn(B, C, H, W, requires_grad=True)
        self.g = torch.randn(B, C, H, W)
        self.conv = torch.nn.Conv2d(C, C, 3, padding=1, bias=False)

    def time_conv3x3_forward_backward(self, shape):
        self.x.grad = None
        self.conv(self.x).backward(self.g)

    def peakmem_conv3x3_forward_backward(self, shape):
        self.time_conv3x3_forward_backward(shape)

    def time_clone(self, shape):
        self.x.detach().clone()


class Growth(_Settings):
    """The fastest exact method (``auto``) as H * W grows at B * C = 16 (target 7)."""

    params = [["numpy", "torch"], [64, 128, 256, 512, 1024]]
    param_names = ["backend", "n"]

    def setup(self, backend, n):
        mod = _namespace(backend)
        rng = np.random.default_rng(3)
        self.t = _to(backend, mod, rng.standard_normal((1, 16, n, n)).astype(np.float32))
        self.taps = _to(backend, mod, _taps(16, 2, 1))
        self.time_solve(backend, n)

    def time_solve(self, backend, n):
        import arma_core as ac

        ac.ar_solve(self.t, self.taps)
