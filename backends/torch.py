"""PyTorch fast paths: the AR solve as an autograd Function (Theorem 4), conv via F.conv*d.

The math is the core's (``arma_core.solve.solve_kernel`` / ``solve_vjp``); this module adds
what is particular to torch: autograd, autocast, the batched-LU hazard of the CPU build, and
the two fast backward passes:

- ``method="lines"`` (CPU, numba installed): the compiled line solver of
  :mod:`arma_core.backends._lines`, forward and backward (one pass per channel plane each);
- ``method="fft"``: the taps gradient in the Fourier domain (:mod:`arma_core.backends._fourier`).

``method="auto"`` follows :func:`choose_method` (``docs/performance.md``).
"""
from __future__ import annotations

import torch
from array_api_compat import array_namespace
from torch.autograd.function import once_differentiable

from arma_core.backends import register
from arma_core.solve import solve_kernel, solve_vjp

from . import _lines
from ._fourier import fft_solve_vjp
from ._torch_conv import conv_torch

register("conv", "torch")(conv_torch)


@register("linalg_inv", "torch")
def linalg_inv(M):
    """Inverse of a stack of matrices, one matrix at a time.

    On the CPU build of torch 2.13, after ``torch.set_num_threads(...)``, batched
    ``torch.linalg.inv`` on 256 x 256 matrices returns wrong results (errors ~1e-3) or raises,
    while one matrix at a time is right (DESIGN.md); the per-matrix loop costs nothing next to
    the O(n^3) work of each inverse.
    """
    if M.ndim == 2 or M.shape[0] == 1 or M.shape[-1] < 64:
        return torch.linalg.inv(M)
    flat = M.reshape((-1,) + tuple(M.shape[-2:]))
    return torch.stack([torch.linalg.inv(m) for m in flat.unbind(0)]).reshape(M.shape)


# ---------------------------------------------------------------------------------------------
# the compiled line solver on CPU tensors


def _numba_threads():
    """Run numba's parallel loops on as many threads as torch (``torch.set_num_threads``)."""
    import numba

    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)


def _host(x):
    """A numpy view of a CPU tensor (copied only when not contiguous)."""
    if x.device.type != "cpu":
        raise ValueError(
            f"method='lines' runs on CPU tensors only, got a tensor on {x.device}; "
            "use method='auto' (or 'fft' / 'dense')"
        )
    return x.detach().contiguous().numpy()


def _empty(shape, dtype):
    """A new CPU tensor whose large buffer is backed by huge pages (``_lines.advise_hugepages``)."""
    out = torch.empty(shape, dtype=dtype)
    _lines.advise_hugepages(out.data_ptr(), out.numel() * out.element_size())
    return out


def lines_solve(t, taps, *, boundary, dilation, adjoint):
    """``A^{-1} t`` (``A^{-T} t``) with the compiled line solver; a new contiguous tensor."""
    _numba_threads()
    out = _empty(t.shape, t.dtype)
    _lines.solve(_host(t), _host(taps), boundary=boundary, dilation=dilation, adjoint=adjoint,
                 out=out.numpy())
    return out


def lines_solve_vjp(y, g, taps, *, boundary, dilation, adjoint, need_taps):
    """Theorem 4's backward in one compiled pass: ``(grad_t, grad_taps or None)``."""
    _numba_threads()
    out = _empty(g.shape, g.dtype)
    _, gtaps = _lines.solve_vjp(_host(y), _host(g), _host(taps), boundary=boundary, dilation=dilation,
                                adjoint=adjoint, need_taps=need_taps, out=out.numpy())
    if gtaps is not None:
        gtaps = torch.from_numpy(gtaps).to(dtype=taps.dtype, device=taps.device)
    return out, gtaps


if _lines.available():
    lines_solve.boundaries = _lines.BOUNDARIES
    register("method:lines", "torch")(lines_solve)


# ---------------------------------------------------------------------------------------------
# method="auto"


@register("choose_method", "torch")
def choose_method(t, taps, *, boundary, dilation):
    """The fastest exact method for a torch tensor (measurements in ``docs/performance.md``).

    - CPU with numba, float32/float64: ``"lines"`` (``O(N Q)`` work in one read and one write
      of the signal), for every boundary, as long as the taps are within the line solver's
      accuracy bound (:func:`arma_core.backends._lines.preferred`: ``|f_-1 - f_1| <= 16 f_0``
      for the boundaries with an edge correction) and, for 1-D ``circular`` signals, there are
      at least ``4 Q`` rows per channel; otherwise as below.
    - otherwise (no numba, a GPU, huge tap spreads): ``"fft"`` for ``circular``, ``"dense"``
      for the others.
    """
    if t.device.type == "cpu" and _lines.available() and t.dtype in (torch.float32, torch.float64):
        host = None if taps is None else taps.detach().to("cpu", torch.float64).numpy()
        if _lines.preferred(tuple(t.shape), host, boundary):
            return "lines"
    return "fft" if boundary == "circular" else "dense"


# ---------------------------------------------------------------------------------------------
# autograd


class ARSolve(torch.autograd.Function):
    """``y = A^{-1} t`` (or ``A^{-T} t``) with the backward of Theorem 4; saves only ``y``."""

    @staticmethod
    def forward(ctx, t, taps, boundary, dilation, method, adjoint):
        with torch.autocast(t.device.type, enabled=False):
            xp = array_namespace(t)
            y = solve_kernel(xp, t, taps, boundary=boundary, dilation=dilation, method=method, adjoint=adjoint)
        ctx.save_for_backward(y, taps)
        ctx.opts = (boundary, dilation, method, adjoint)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        y, taps = ctx.saved_tensors
        boundary, dilation, method, adjoint = ctx.opts
        need_taps = ctx.needs_input_grad[1]
        with torch.autocast(g.device.type, enabled=False):
            xp = array_namespace(g)
            g = g.contiguous()
            if method == "lines":
                gt, gtaps = lines_solve_vjp(y, g, taps, boundary=boundary, dilation=dilation, adjoint=adjoint,
                                            need_taps=need_taps)
            elif method == "fft":
                gt, gtaps = fft_solve_vjp(xp, y, g, taps, dilation=dilation, adjoint=adjoint, need_taps=need_taps)
            elif not need_taps:
                gt = solve_kernel(xp, g, taps, boundary=boundary, dilation=dilation, method=method,
                                  adjoint=not adjoint)
                gtaps = None
            else:
                gt, gtaps = solve_vjp(
                    xp, y, g, taps, boundary=boundary, dilation=dilation, method=method, adjoint=adjoint
                )
        return (gt if ctx.needs_input_grad[0] else None), gtaps, None, None, None, None


def _solve(t, taps, *, boundary, dilation, method, adjoint):
    if method == "auto":
        from arma_core.solve import choose_method as rule

        method = rule(array_namespace(t), t, taps, boundary, dilation)
    return ARSolve.apply(t, taps, boundary, dilation, method, adjoint)


@register("ar_solve", "torch")
def ar_solve(t, taps, *, boundary, dilation, method):
    return _solve(t, taps, boundary=boundary, dilation=dilation, method=method, adjoint=False)


@register("ar_solve_adjoint", "torch")
def ar_solve_adjoint(t, taps, *, boundary, dilation, method):
    return _solve(t, taps, boundary=boundary, dilation=dilation, method=method, adjoint=True)
