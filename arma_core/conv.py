"""The moving-average (MA) part of an ARMA layer: an N-D convolution over the array API.

Equation 5a of the paper, ``T[:, t] = sum_s W[:, t, s] * X[:, s]``, is an ordinary
convolutional layer. :func:`conv` computes it with exactly the semantics of
``torch.nn.functional.conv1d/2d/3d`` (cross-correlation, ``stride``, ``padding``, ``dilation``,
``groups``) plus ``nn.Conv2d``'s ``padding_mode``, for any array-API library, with any number
of leading batch axes.

The generic path pads once (through the boundary index maps of :mod:`arma_core.boundary`, the
same ones the AR operators use), then accumulates matmuls over ``C_in / groups`` channels times
a chunk of kernel offsets, taken as strided slices of the padded input. A library with a faster
convolution registers it as ``("conv", library)`` in :mod:`arma_core.backends`; arguments are
checked here, before dispatch, so every backend raises the same errors.
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple

from ._array import device_kind
from ._validate import check_float_dtype, namespace
from .boundary import gather, source_indices
from .capabilities import resolve

__all__ = ["conv", "PADDING_MODES"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvSpec(NamedTuple):
    """Checked and resolved arguments of one convolution (host-side integers only)."""

    k: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]  # (left, right) per spatial axis
    groups: int
    padding_mode: str
    out_size: tuple[int, ...]


def _int_tuple(value, k: int, name: str, *, minimum: int) -> tuple[int, ...]:
    """``value`` (int or length-``k`` sequence of ints) as a ``k``-tuple of ints >= ``minimum``."""
    kind = "positive" if minimum == 1 else "non-negative"
    if isinstance(value, (list, tuple)):
        items = tuple(value)
        if len(items) != k:
            raise ValueError(f"{name} must be an int or a tuple of {k} ints (one per spatial axis), got {value!r}")
    else:
        items = (value,) * k
    ints = []
    for v in items:
        try:
            if isinstance(v, bool):
                raise TypeError
            ints.append(operator.index(v))  # int, numpy integers, ...
        except TypeError:
            raise TypeError(f"{name} must be a {kind} int or a tuple of {k} of them, got {value!r}") from None
        if ints[-1] < minimum:
            raise ValueError(f"{name} must be {kind}, got {value!r}")
    return tuple(ints)


def resolve_padding(padding, kernel_size, dilation, stride) -> tuple[tuple[int, int], ...]:
    """Padding as ``(left, right)`` per spatial axis.

    Parameters
    ----------
    padding : int, tuple of k ints, tuple of k ``(left, right)`` pairs, "same" or "valid"
        ``"same"`` keeps the size (stride 1 only): total ``dilation * (K - 1)``, split as
        torch does, the extra sample on the right.
    kernel_size, dilation, stride : tuple of k ints

    Returns
    -------
    tuple of k ``(left, right)`` int pairs
    """
    k = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * k
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' is only supported with stride 1, got stride={stride}")
            pads = []
            for K, d in zip(kernel_size, dilation):
                total = d * (K - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"padding={padding!r} is not 'same', 'valid', an int or a tuple of ints")
    if isinstance(padding, (list, tuple)) and len(padding) == k and all(isinstance(p, (list, tuple)) for p in padding):
        pairs = []
        for p in padding:
            if len(p) != 2:
                raise ValueError(f"padding pairs must be (left, right), got {padding!r}")
            left, right = _int_tuple(tuple(p), 2, "padding", minimum=0)
            pairs.append((left, right))
        return tuple(pairs)
    return tuple((p, p) for p in _int_tuple(padding, k, "padding", minimum=0))


def _check(xp, x, weight, bias, stride, padding, dilation, groups, padding_mode) -> _ConvSpec:
    """Every argument check of :func:`conv`; returns the resolved arguments."""
    for name, a in (("x", x), ("weight", weight), ("bias", bias)):
        if a is not None:
            check_float_dtype(xp, a, name)
    if x.dtype != weight.dtype:
        raise TypeError(f"x has dtype {x.dtype} but weight has dtype {weight.dtype}; cast one of them")
    if bias is not None and bias.dtype != weight.dtype:
        raise TypeError(f"bias has dtype {bias.dtype} but weight has dtype {weight.dtype}; cast one of them")
    if not 3 <= weight.ndim <= 5:
        raise ValueError(
            "weight must have shape (C_out, C_in/groups, K_1, ..., K_k) with k = 1, 2 or 3 "
            f"spatial axes, got shape {tuple(weight.shape)}"
        )
    k = weight.ndim - 2
    c_out, c_in_g = weight.shape[0], weight.shape[1]
    kernel_size = tuple(weight.shape[2:])
    if c_out < 1 or c_in_g < 1 or any(K < 1 for K in kernel_size):
        raise ValueError(f"weight has an empty axis: shape {tuple(weight.shape)}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode={padding_mode!r} is not one of {', '.join(repr(m) for m in PADDING_MODES)}")
    if isinstance(groups, bool) or not hasattr(groups, "__index__"):
        raise TypeError(f"groups must be a positive int, got {groups!r}")
    groups = operator.index(groups)
    if groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if c_out % groups != 0:
        raise ValueError(f"weight has C_out={c_out} output channels, not divisible by groups={groups}")
    if x.ndim < k + 1:
        raise ValueError(
            f"x must have shape (..., C_in, n_1, ..., n_{k}) for a weight with k={k} spatial "
            f"axes, got shape {tuple(x.shape)}"
        )
    c_in = x.shape[-k - 1]
    if c_in != c_in_g * groups:
        raise ValueError(
            f"x has C_in={c_in} channels at axis {-k - 1} (shape {tuple(x.shape)}) but weight "
            f"expects C_in/groups * groups = {c_in_g} * {groups} = {c_in_g * groups}"
        )
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias must have shape (C_out,) = ({c_out},), got {tuple(bias.shape)}")
    stride_t = _int_tuple(stride, k, "stride", minimum=1)
    dilation_t = _int_tuple(dilation, k, "dilation", minimum=1)
    pads = resolve_padding(padding, kernel_size, dilation_t, stride_t)
    sizes = tuple(x.shape[-k:])
    out_size = []
    for j, (n, K, s, d, (left, right)) in enumerate(zip(sizes, kernel_size, stride_t, dilation_t, pads)):
        if padding_mode == "reflect" and max(left, right) >= n:
            raise ValueError(
                f"padding={padding!r} with padding_mode='reflect' needs each pad smaller than "
                f"the input size, but spatial axis {j} of x has size {n} and pads ({left}, {right})"
            )
        if padding_mode == "circular" and max(left, right) > n:
            raise ValueError(
                f"padding={padding!r} with padding_mode='circular' wraps around more than once: "
                f"spatial axis {j} of x has size {n} and pads ({left}, {right})"
            )
        span = d * (K - 1) + 1
        padded = n + left + right
        if padded < span:
            raise ValueError(
                f"x's spatial axis {j} has size {n} (padded: {padded}), smaller than the dilated "
                f"kernel size {span} (kernel {K}, dilation {d}); the output would be empty"
            )
        out_size.append((padded - span) // s + 1)
    return _ConvSpec(k, stride_t, dilation_t, pads, groups, padding_mode, tuple(out_size))


def _pad(xp, x, spec: _ConvSpec):
    """``x`` padded along its ``k`` trailing axes by the boundary index maps."""
    for j, (left, right) in enumerate(spec.padding):
        if left == 0 and right == 0:
            continue
        axis = x.ndim - spec.k + j
        n = x.shape[axis]
        x = gather(xp, x, axis, source_indices(range(-left, n + right), n, spec.padding_mode))
    return x


# Offsets are stacked until each matmul contracts over at least this many (channel, offset)
# pairs: one matmul per offset is slow when C_in/groups is small (3 input channels: ~7x slower
# than stacking all offsets, measured in numpy), while stacking every offset of a wide layer
# costs prod(K) copies of the input for no gain (same time at 32 channels).
_MIN_CONTRACTION = 128


def generic_kernel(xp, x, weight, bias, spec: _ConvSpec):
    """The generic ``conv`` row: pad once, then ``out += W_chunk @ patches_chunk`` over chunks
    of kernel offsets (any array-API library)."""
    k, groups = spec.k, spec.groups
    batch = tuple(x.shape[: -k - 1])
    c_in = x.shape[-k - 1]
    c_out = weight.shape[0]
    cg, og = c_in // groups, c_out // groups
    B = math.prod(batch)
    n_out = math.prod(spec.out_size)
    offsets = _offsets(tuple(weight.shape[2:]))

    xpad = _pad(xp, x, spec)
    xpad = xp.reshape(xpad, (B, groups, cg) + tuple(xpad.shape[-k:]))
    # (groups, og, offset * cg + c): the contraction index of the stacked patches below
    w = xp.reshape(weight, (groups, og, cg, len(offsets)))
    w = xp.reshape(xp.permute_dims(w, (0, 1, 3, 2)), (groups, og, len(offsets) * cg))

    per_chunk = max(1, -(-_MIN_CONTRACTION // cg))
    out = None
    for start in range(0, len(offsets), per_chunk):
        chunk = offsets[start : start + per_chunk]
        patches = []
        for offset in chunk:
            index = tuple(
                slice(o * d, o * d + (m - 1) * s + 1, s)
                for o, d, s, m in zip(offset, spec.dilation, spec.stride, spec.out_size)
            )
            patches.append(xp.reshape(xpad[(slice(None),) * 3 + index], (B, groups, cg, n_out)))
        patch = patches[0] if len(patches) == 1 else xp.concat(patches, axis=2)
        w_chunk = w[:, :, start * cg : (start + len(chunk)) * cg]
        # (groups, og, m cg) @ (B, groups, m cg, n) -> (B, groups, og, n)
        term = xp.matmul(w_chunk, patch)
        if out is None:
            out = term
        else:
            out += term  # term is a fresh array of out's shape; in place saves an allocation
    out = xp.reshape(out, batch + (c_out,) + spec.out_size)
    if bias is not None:
        out = out + xp.reshape(bias, (c_out,) + (1,) * k)
    return out


def _offsets(kernel_size):
    """All kernel offsets ``(o_1, ..., o_k)`` in C order."""
    offsets: list[tuple[int, ...]] = [()]
    for K in kernel_size:
        offsets = [o + (i,) for o in offsets for i in range(K)]
    return offsets


def conv(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", method="auto"):
    """N-D convolution (cross-correlation): the MA layer of an ARMA layer (Eq. 5a).

    Same semantics as ``torch.nn.functional.conv1d/2d/3d``, with ``nn.Conv2d``'s
    ``padding_mode``, on any array-API library (the namespace comes from the inputs):

    ``out[..., t, i] = bias[t] + sum_c sum_o weight[t, c, o] * xpad[..., g C_g + c, i*stride + o*dilation]``

    with ``g = t // (C_out / groups)`` the group of output channel ``t``, ``C_g = C_in / groups``,
    ``c`` in ``[0, C_g)``, ``o`` over the kernel offsets, and ``xpad`` the input padded by
    ``padding`` under ``padding_mode``.

    Parameters
    ----------
    x : array, shape (..., C_in, n_1, ..., n_k)
        Channel-first input with any number (0, 1, 2, ...) of leading batch axes.
    weight : array, shape (C_out, C_in / groups, K_1, ..., K_k)
        Kernel; ``k = weight.ndim - 2`` spatial axes, 1 to 3. Same real floating dtype as ``x``.
    bias : array, shape (C_out,), optional
    stride : int or tuple of k ints, default 1
    padding : int, tuple of k ints, tuple of k (left, right) pairs, "same" or "valid", default 0
        Samples added on both sides of each spatial axis (pairs: asymmetric padding, an
        extension of torch's arguments). ``"same"`` (stride 1 only) keeps the size, with total
        padding ``dilation * (K - 1)`` split as torch does (the extra sample on the right);
        ``"valid"`` is no padding.
    dilation : int or tuple of k ints, default 1
    groups : int, default 1
        ``C_in`` and ``C_out`` must be divisible by ``groups``; ``groups = C_in`` is depthwise.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default "zeros"
        Value of the padded samples (names of ``nn.Conv2d``; the index maps are those of the
        AR boundary rules). As in torch, "reflect" needs each pad < n and "circular" pad <= n.
    method : {"auto", "native", "generic"}, default "auto"
        ``"native"``: the library's own convolution (torch's ``F.conv*d``); ``"generic"``: the
        array-API implementation; ``"auto"``: native where there is one
        (:mod:`arma_core.capabilities`).

    Returns
    -------
    array, shape (..., C_out, m_1, ..., m_k)
        ``m_j = floor((n_j + pad_left_j + pad_right_j - dilation_j (K_j - 1) - 1) / stride_j) + 1``,
        same library, device and dtype as ``x``.

    Raises
    ------
    TypeError
        Non-real-floating dtypes, dtype mismatch, arrays of different libraries, non-int
        stride/padding/dilation/groups.
    ValueError
        Channel or group mismatch, bad ``padding``/``padding_mode``, ``"same"`` with
        stride > 1, non-positive stride/dilation, an input smaller than the dilated kernel.

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core import conv
    >>> x = np.ones((2, 3, 8, 8)); w = np.ones((4, 3, 3, 3)) / 27
    >>> conv(x, w, padding="same", padding_mode="replicate").shape
    (2, 4, 8, 8)
    """
    xp = namespace(x, weight, bias, names=("x", "weight", "bias"))
    spec = _check(xp, x, weight, bias, stride, padding, dilation, groups, padding_mode)
    row = resolve("conv", xp, method=method, boundary=spec.padding_mode, dtype=None, device=device_kind(x))
    return row.load()(xp, x, weight, bias, spec)
