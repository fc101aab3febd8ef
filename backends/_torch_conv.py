"""Torch kernel of :func:`arma_core.conv` (the MA layer, Eq. 5a): ``torch.nn.functional.conv{k}d``.

``arma_core.backends.torch.conv_kernel`` (the ``conv`` row for torch in
:mod:`arma_core.capabilities`) calls :func:`conv_torch`. Differentiable by autograd (only
torch operations are used).
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from arma_core.conv import resolve_padding

__all__ = ["conv_torch"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _as_tuple(value, k: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * k


def conv_torch(x, weight, bias=None, *, stride, padding, dilation, groups, padding_mode):
    """``torch.nn.functional.conv{k}d`` with any number of leading batch axes and ``padding_mode``.

    Called by :func:`arma_core.conv` after it has checked the arguments (its errors are the
    same on every backend); this function does not re-check them.

    Parameters
    ----------
    x : torch.Tensor, shape (..., C_in, n_1, ..., n_k)
        Any number (0, 1, 2, ...) of leading batch axes; they are flattened into one.
    weight : torch.Tensor, shape (C_out, C_in / groups, K_1, ..., K_k), k = 1, 2 or 3
    bias : torch.Tensor, shape (C_out,), optional
    stride, dilation : int or tuple of k ints
    padding : int, tuple of k ints, tuple of k (left, right) pairs, "same" or "valid"
        :func:`arma_core.conv` passes the resolved ``(left, right)`` pairs.
    groups : int
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        Non-zero modes pad with ``F.pad`` first, as ``nn.Conv2d`` does.

    Returns
    -------
    torch.Tensor, shape (..., C_out, m_1, ..., m_k)
    """
    k = weight.ndim - 2
    stride = _as_tuple(stride, k)
    dilation = _as_tuple(dilation, k)
    pads = resolve_padding(padding, tuple(weight.shape[2:]), dilation, stride)

    batch = tuple(x.shape[: x.ndim - k - 1])
    xb = x.reshape((math.prod(batch),) + tuple(x.shape[x.ndim - k - 1 :]))
    if padding_mode == "zeros" and all(left == right for left, right in pads):
        conv_padding = tuple(left for left, _ in pads)
    else:
        # F.pad lists the last axis first: (left_k, right_k, ..., left_1, right_1)
        flat = [p for pair in reversed(pads) for p in pair]
        if any(flat):
            mode = "constant" if padding_mode == "zeros" else padding_mode
            xb = F.pad(xb, flat, mode=mode)
        conv_padding = (0,) * k
    out = _CONV[k](xb, weight, bias, stride, conv_padding, dilation, groups)
    return out.reshape(batch + tuple(out.shape[1:]))
