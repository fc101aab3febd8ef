"""Dask kernels: the AR operators applied lazily, one chunk at a time.

The AR solve couples every sample of a spatial axis with every other (``A^{-1}`` is dense
along each axis), but it never mixes batch entries or channels. So a dask array chunked along
its batch and channel axes, with each spatial axis in a single chunk, is solved block by block
with :func:`dask.array.map_blocks`: each block is an ordinary array (numpy, cupy, ...) handed to
the chunk library's kernel (the row of :mod:`arma_core.capabilities` for that library and
method), with the slice of ``taps`` that belongs to the block's channels. Nothing is computed
until ``.compute()``; the taps (``(C, k, Q, 3)``, tiny) are computed once, when the graph is
built. The signal's finiteness is checked inside the graph, block by block (its values do not
exist when the call is made).
"""

from __future__ import annotations

import array_api_compat
import dask.array as da
from dask.base import tokenize

from arma_core._array import device_kind, library_name
from arma_core._validate import check_finite as _check_finite

__all__ = ["solve_lines", "solve_fft", "solve_dense", "apply_direct", "check_spatial_chunks"]


def check_spatial_chunks(x, k: int, name: str) -> None:
    """ValueError (saying how to rechunk) when a spatial axis of ``x`` spans several chunks.

    Parameters
    ----------
    x : dask array, shape ``(..., C, n_1, ..., n_k)``
    k : int
        Number of spatial (trailing) axes.
    name : str
        The argument's name, for the message.
    """
    split = [j for j in range(k) if len(x.chunks[x.ndim - k + j]) > 1]
    if split:
        axes = ", ".join(str(j - k) for j in split)
        all_spatial = ", ".join(f"{j - k}: -1" for j in range(k))
        raise ValueError(
            f"{name} is a dask array split into several chunks along spatial axis {axes} "
            f"(chunks {x.chunks}); the AR filter couples every sample of a spatial axis, so each "
            f"spatial axis must be a single chunk (chunk along batch and channel axes instead): "
            f"use {name}.rechunk({{{all_spatial}}})"
        )


def _host_taps(taps):
    """``taps`` as a concrete (non-dask) array: computed once, when the graph is built."""
    if array_api_compat.is_dask_array(taps):
        return taps.compute()
    return taps


def _like_chunks(x, taps):
    """``taps`` in the library of ``x``'s chunks (e.g. numpy taps for a dask array of cupy)."""
    xp = array_api_compat.array_namespace(x._meta)
    try:
        same = array_api_compat.array_namespace(taps) is xp
    except TypeError:
        same = False
    return taps if same else xp.asarray(taps)


def _blockwise(operation, method, x, taps, *, boundary, dilation, adjoint, check_finite, name):
    """The chunk library's kernel of ``(operation, method)`` on every block of ``x``, lazily."""
    from arma_core.capabilities import resolve

    taps = _host_taps(taps)
    k = taps.shape[1]
    check_spatial_chunks(x, k, name)
    taps = _like_chunks(x, taps)
    cxp = array_api_compat.array_namespace(x._meta)
    kernel = resolve(
        operation, cxp, method=method, boundary=boundary, dtype=str(x.dtype), device=device_kind(x._meta)
    ).load()
    ch = x.ndim - k - 1
    # start of every channel chunk: block index i along the channel axis covers
    # channels [starts[i], starts[i] + x.chunks[ch][i])
    starts = [0]
    for size in x.chunks[ch][:-1]:
        starts.append(starts[-1] + size)
    broadcast = taps.shape[0] == 1

    def block(b, block_id=None):
        if check_finite:
            _check_finite(cxp, b, name)
        c0 = starts[block_id[ch]]
        tb = taps if broadcast else taps[c0 : c0 + b.shape[ch]]
        return kernel(cxp, b, tb, boundary=boundary, dilation=dilation, adjoint=adjoint, cache=None)

    token = tokenize(x, taps, operation, method, boundary, dilation, adjoint, check_finite)
    return da.map_blocks(
        block, x, dtype=x.dtype, meta=x._meta, name=f"arma-{operation}-{method}-{library_name(cxp)}-{token}"
    )


# a per-block cache would be rebuilt for every block (``cache`` is accepted and not used)


def solve_lines(xp, t, taps, *, boundary, dilation, adjoint, cache=None, check_finite=True, name="t"):
    """Lazy ``A^{-1} t`` with the line solver of the chunks' library."""
    return _blockwise(
        "solve",
        "lines",
        t,
        taps,
        boundary=boundary,
        dilation=dilation,
        adjoint=adjoint,
        check_finite=check_finite,
        name=name,
    )


def solve_fft(xp, t, taps, *, boundary, dilation, adjoint, cache=None, check_finite=True, name="t"):
    """Lazy ``A^{-1} t`` with the fft kernel of the chunks' library."""
    return _blockwise(
        "solve",
        "fft",
        t,
        taps,
        boundary=boundary,
        dilation=dilation,
        adjoint=adjoint,
        check_finite=check_finite,
        name=name,
    )


def solve_dense(xp, t, taps, *, boundary, dilation, adjoint, cache=None, check_finite=True, name="t"):
    """Lazy ``A^{-1} t`` with the dense kernel of the chunks' library."""
    return _blockwise(
        "solve",
        "dense",
        t,
        taps,
        boundary=boundary,
        dilation=dilation,
        adjoint=adjoint,
        check_finite=check_finite,
        name=name,
    )


def apply_direct(xp, y, taps, *, boundary, dilation, adjoint, cache=None, check_finite=True, name="y"):
    """Lazy ``A y`` (``A^T y``) with the generic shifts on every chunk."""
    return _blockwise(
        "apply",
        "direct",
        y,
        taps,
        boundary=boundary,
        dilation=dilation,
        adjoint=adjoint,
        check_finite=check_finite,
        name=name,
    )
