"""PyTorch fast paths: the AR solve as an autograd Function (Theorem 4), conv via F.conv*d.

The math is the core's (``arma_core.solve.solve_kernel`` / ``solve_vjp``); this module adds
what is particular to torch: autograd, autocast, and the batched-LU hazard of the CPU build.
"""
from __future__ import annotations

import torch
from array_api_compat import array_namespace
from torch.autograd.function import once_differentiable

from arma_core.backends import register
from arma_core.solve import solve_kernel, solve_vjp

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
        with torch.autocast(g.device.type, enabled=False):
            xp = array_namespace(g)
            g = g.contiguous()
            if not ctx.needs_input_grad[1]:
                w = solve_kernel(
                    xp, g, taps, boundary=boundary, dilation=dilation, method=method, adjoint=not adjoint
                )
                return w, None, None, None, None, None
            gt, gtaps = solve_vjp(
                xp, y, g, taps, boundary=boundary, dilation=dilation, method=method, adjoint=adjoint
            )
        return (gt if ctx.needs_input_grad[0] else None), gtaps, None, None, None, None


def _solve(t, taps, *, boundary, dilation, method, adjoint):
    if method == "auto":
        from arma_core.solve import choose_method

        method = choose_method(array_namespace(t), t, taps, boundary, dilation)
    return ARSolve.apply(t, taps, boundary, dilation, method, adjoint)


@register("ar_solve", "torch")
def ar_solve(t, taps, *, boundary, dilation, method):
    return _solve(t, taps, boundary=boundary, dilation=dilation, method=method, adjoint=False)


@register("ar_solve_adjoint", "torch")
def ar_solve_adjoint(t, taps, *, boundary, dilation, method):
    return _solve(t, taps, boundary=boundary, dilation=dilation, method=method, adjoint=True)
