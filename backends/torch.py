"""PyTorch kernels: the AR solve as an autograd Function (Theorem 4) and conv via F.conv*d.

Each solve row of :mod:`arma_core.capabilities` for torch is one :class:`Solver`: a forward
kernel and its vector-Jacobian product, wrapped in :class:`ARSolve`, which saves only the
output ``y`` (Theorem 4 needs nothing else) and runs outside autocast:

- ``lines`` (CPU, numba installed): the compiled line solver of
  :mod:`arma_core.backends._lines`, forward and backward in one pass per channel plane each;
- ``fft``: the core's FFT kernel; the taps gradient in the Fourier domain
  (:mod:`arma_core.backends._fourier`);
- ``dense``: the core's dense kernel; the generic backward of :func:`arma_core.solve.solve_vjp`.

When neither input needs a gradient the forward kernel is called directly (no autograd node).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from arma_core.solve import dense_kernel as _dense
from arma_core.solve import fft_kernel as _fft
from arma_core.solve import solve_vjp

from . import _lines
from ._fourier import fft_solve_vjp
from ._torch_conv import conv_torch

__all__ = ["ARSolve", "Solver", "lines_kernel", "fft_kernel", "dense_kernel", "conv_kernel"]


# ---------------------------------------------------------------------------------------------
# the compiled line solver on CPU tensors


@contextlib.contextmanager
def _numba_threads() -> Iterator[None]:
    """numba's parallel loops on as many threads as torch's (``torch.set_num_threads``) for
    the block, never more than ``NUMBA_NUM_THREADS``; the calling thread's numba setting is
    restored after (numba's thread count is per calling thread)."""
    import numba

    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    before = numba.get_num_threads()
    if before == n:
        yield
        return
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _host(x: torch.Tensor):
    """A numpy view of a CPU tensor (copied only when not contiguous)."""
    return x.detach().contiguous().numpy()


def _empty(shape, dtype) -> torch.Tensor:
    """A new CPU tensor whose large buffer is backed by huge pages (``_lines.advise_hugepages``)."""
    out = torch.empty(shape, dtype=dtype)
    _lines.advise_hugepages(out.data_ptr(), out.numel() * out.element_size())
    return out


def _lines_solve(xp, t, taps, *, boundary, dilation, adjoint, cache):
    out = _empty(t.shape, t.dtype)
    with _numba_threads():
        _lines.solve(
            _host(t),
            _host(taps),
            boundary=boundary,
            dilation=dilation,
            adjoint=adjoint,
            out=out.numpy(),
            cache=cache,
        )
    return out


def _lines_vjp(xp, y, g, taps, *, boundary, dilation, adjoint, need_taps, cache):
    out = _empty(g.shape, g.dtype)
    with _numba_threads():
        _, gtaps = _lines.solve_vjp(
            _host(y),
            _host(g),
            _host(taps),
            boundary=boundary,
            dilation=dilation,
            adjoint=adjoint,
            need_taps=need_taps,
            out=out.numpy(),
            cache=cache,
        )
    if gtaps is not None:
        gtaps = torch.from_numpy(gtaps).to(dtype=taps.dtype, device=taps.device)
    return out, gtaps


def _fft_vjp(xp, y, g, taps, *, boundary, dilation, adjoint, need_taps, cache):
    return fft_solve_vjp(xp, y, g, taps, dilation=dilation, adjoint=adjoint, need_taps=need_taps, cache=cache)


def _dense_vjp(xp, y, g, taps, *, boundary, dilation, adjoint, need_taps, cache):
    if not need_taps:
        return _dense(xp, g, taps, boundary=boundary, dilation=dilation, adjoint=not adjoint, cache=cache), None
    return solve_vjp(xp, _dense, y, g, taps, boundary=boundary, dilation=dilation, adjoint=adjoint, cache=cache)


class Solver(NamedTuple):
    """A forward kernel and its vector-Jacobian product (Theorem 4)."""

    forward: Callable[..., Any]
    vjp: Callable[..., Any]


_SOLVERS = {
    "lines": Solver(_lines_solve, _lines_vjp),
    "fft": Solver(_fft, _fft_vjp),
    "dense": Solver(_dense, _dense_vjp),
}


class ARSolve(torch.autograd.Function):
    """``y = A^{-1} t`` (or ``A^{-T} t``) with the backward of Theorem 4; saves only ``y``."""

    @staticmethod
    def forward(ctx, t, taps, xp, method, boundary, dilation, adjoint, cache):
        solver = _SOLVERS[method]
        with torch.autocast(t.device.type, enabled=False):
            y = solver.forward(xp, t, taps, boundary=boundary, dilation=dilation, adjoint=adjoint, cache=cache)
        ctx.save_for_backward(y, taps)
        ctx.opts = (xp, solver, boundary, dilation, adjoint, cache)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        y, taps = ctx.saved_tensors
        xp, solver, boundary, dilation, adjoint, cache = ctx.opts
        with torch.autocast(g.device.type, enabled=False):
            gt, gtaps = solver.vjp(
                xp,
                y,
                g.contiguous(),
                taps,
                boundary=boundary,
                dilation=dilation,
                adjoint=adjoint,
                need_taps=ctx.needs_input_grad[1],
                cache=cache,
            )
        return (gt if ctx.needs_input_grad[0] else None), gtaps, None, None, None, None, None, None


def _solve(method, xp, t, taps, boundary, dilation, adjoint, cache):
    if torch.is_grad_enabled() and (t.requires_grad or taps.requires_grad):
        return ARSolve.apply(t, taps, xp, method, boundary, dilation, adjoint, cache)
    with torch.autocast(t.device.type, enabled=False):
        return _SOLVERS[method].forward(xp, t, taps, boundary=boundary, dilation=dilation, adjoint=adjoint, cache=cache)


def lines_kernel(xp, t, taps, *, boundary, dilation, adjoint, cache=None):
    """``method="lines"`` on CPU tensors, differentiable."""
    return _solve("lines", xp, t, taps, boundary, dilation, adjoint, cache)


def fft_kernel(xp, t, taps, *, boundary, dilation, adjoint, cache=None):
    """``method="fft"`` (circular) on any device, differentiable."""
    return _solve("fft", xp, t, taps, boundary, dilation, adjoint, cache)


def dense_kernel(xp, t, taps, *, boundary, dilation, adjoint, cache=None):
    """``method="dense"`` on any device, differentiable."""
    return _solve("dense", xp, t, taps, boundary, dilation, adjoint, cache)


def conv_kernel(xp, x, weight, bias, spec):
    """The ``conv`` row for torch: ``torch.nn.functional.conv{k}d`` (autograd by torch)."""
    return conv_torch(
        x,
        weight,
        bias,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        groups=spec.groups,
        padding_mode=spec.padding_mode,
    )
