"""The official ARMA-Nets AR solve, re-expressed with ``torch.fft``: a benchmark baseline only.

Written from the description of the official code's algorithm (``notes/official-code.md``;
no code copied): for each of the Q factors, one round of

1. the H x W circular kernel image of the factor (the outer product of its height filter
   ``[f_0, f_1 at +d, 0, ..., 0, f_-1 at -d]`` and its width filter),
2. a full complex 2-D FFT of the input and of the kernel image,
3. division, inverse full complex 2-D FFT, real part,

with autograd through ``torch.fft`` for the backward pass (Theorem 4 falls out of it). Same
math as ``arma_core.ar_solve(..., boundary="circular")``; the difference is the cost: two full
complex FFTs per factor instead of one real FFT for all factors, and an autograd graph that
keeps the complex intermediates.
"""

from __future__ import annotations

import torch

__all__ = ["official_ar_solve"]


def _axis_kernel(f, n: int, dilation: int):
    """``(C, n)`` circular kernel of the factors ``f (C, 3) = (f_-1, f_0, f_1)`` along one axis."""
    idx = torch.tensor([0, dilation % n, (-dilation) % n], device=f.device)
    vals = torch.stack([f[:, 1], f[:, 2], f[:, 0]], dim=1)  # f_0 at 0, f_1 at +d, f_-1 at -d
    return torch.zeros(f.shape[0], n, dtype=f.dtype, device=f.device).index_add(1, idx, vals)


def official_ar_solve(x, taps, dilation: int = 1):
    """``A^{-1} x`` for ``x (B, C, H, W)`` and ``taps (C, 2, Q, 3)``, circular boundary.

    Differentiable w.r.t. ``x`` and ``taps`` by autograd through the complex FFTs.
    """
    B, C, H, W = x.shape
    y = x
    for q in range(taps.shape[2]):
        kh = _axis_kernel(taps[:, 0, q], H, dilation)
        kw = _axis_kernel(taps[:, 1, q], W, dilation)
        image = kh[:, :, None] * kw[:, None, :]  # (C, H, W)
        y = torch.fft.ifft2(torch.fft.fft2(y) / torch.fft.fft2(image)).real
    return y
