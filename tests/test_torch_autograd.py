"""The torch autograd Function of the AR solve: Theorem 4's backward for every boundary."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_taps

import arma_core as ac
from arma_core.solve import dense_kernel, fft_kernel

torch = pytest.importorskip("torch")
from array_api_compat import array_namespace

SIZES = {1: (5,), 2: (4, 3), 3: (3, 2, 3)}


def _inputs(k, Q, seed, edge=None):
    rng = np.random.default_rng(seed)
    taps = torch.tensor(random_taps(rng, 2, k, Q, edge=edge, spread=1.0), requires_grad=True)
    t = torch.tensor(rng.normal(size=(2, 2) + SIZES[k]), requires_grad=True)
    return t, taps


@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("Q", [1, 2, 3])
def test_gradcheck(boundary, k, Q):
    t, taps = _inputs(k, Q, seed=10 * k + Q)
    d = 2 if (k == 1 and boundary != "reflect") else 1
    for fn in (ac.ar_solve, ac.ar_solve_adjoint):
        assert torch.autograd.gradcheck(lambda a, b: fn(a, b, boundary=boundary, dilation=d), (t, taps), fast_mode=True)


@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_custom_backward_equals_autograd_through_the_kernel(boundary):
    """Theorem 4's backward == autograd through the generic kernel's own torch ops."""
    for k, Q in [(1, 3), (2, 2), (3, 1)]:
        t, taps = _inputs(k, Q, seed=k, edge=1e-2)
        g = torch.randn(t.shape, dtype=t.dtype, generator=torch.Generator().manual_seed(k))
        xp = array_namespace(t)
        methods = ["dense"] + (["fft"] if boundary == "circular" else [])
        for method in methods:
            for adjoint in (False, True):
                fn = ac.ar_solve_adjoint if adjoint else ac.ar_solve
                y = fn(t, taps, boundary=boundary, method=method)
                ga = torch.autograd.grad(y, (t, taps), g)
                kernel = {"dense": dense_kernel, "fft": fft_kernel}[method]
                y2 = kernel(xp, t, taps, boundary=boundary, dilation=1, adjoint=adjoint)
                gb = torch.autograd.grad(y2, (t, taps), g)
                for a, b in zip(ga, gb):
                    assert torch.allclose(a, b, rtol=1e-8, atol=1e-10 * float(b.abs().max())), (k, Q, method)


def test_backward_saves_only_output():
    t, taps = _inputs(2, 1, seed=0)
    y = ac.ar_solve(t, taps)
    saved = [s for s in y.grad_fn.saved_tensors]
    assert len(saved) == 2 and saved[0].shape == y.shape and saved[1].shape == taps.shape


def test_float32_and_no_grad_paths():
    t, taps = _inputs(2, 2, seed=4)
    t32 = t.detach().float().requires_grad_(True)
    y = ac.ar_solve(t32, taps.detach().float(), boundary="reflect")
    assert y.dtype == torch.float32
    (gt,) = torch.autograd.grad(y.sum(), t32)
    assert gt.dtype == torch.float32 and torch.isfinite(gt).all()
    with torch.no_grad():
        assert ac.ar_solve(t, taps).grad_fn is None
