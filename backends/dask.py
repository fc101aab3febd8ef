"""Dask fast paths: the AR operators applied lazily, one chunk at a time.

The AR solve couples every sample of a spatial axis with every other (``A^{-1}`` is dense
along each axis), but it never mixes batch entries or channels. So a dask array chunked along
its batch and channel axes, with each spatial axis in a single chunk, is solved block by block
with :func:`dask.array.map_blocks`: each block is an ordinary array (numpy, cupy, ...) handed to
the public ``arma_core`` function, with the slice of ``taps`` that belongs to the block's
channels. Nothing is computed until ``.compute()``; the taps (``(C, k, Q, 3)``, tiny) are
computed once, when the graph is built.

``arma_core`` validates the arguments before dispatching here (shapes, dtypes, finite and
stable taps); it reads only the signal's metadata (shape, dtype), never its values.
"""
from __future__ import annotations

import array_api_compat
import dask.array as da
from dask.base import tokenize

import arma_core
from arma_core.backends import register

__all__ = ["ar_solve", "ar_solve_adjoint", "ar_apply", "ar_apply_adjoint", "check_spatial_chunks"]


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


def _blockwise(function, x, taps, name: str, **kwargs):
    """``function(block, taps[channels of block], **kwargs)`` for every block of ``x``, lazily."""
    taps = _host_taps(taps)
    if not array_api_compat.is_dask_array(x):
        # dask taps with a concrete signal: an ordinary eager call in the signal's library
        return function(x, taps, **kwargs)
    k = taps.shape[1]
    check_spatial_chunks(x, k, name)
    taps = _like_chunks(x, taps)
    ch = x.ndim - k - 1
    # start of every channel chunk: block index i along the channel axis covers
    # channels [starts[i], starts[i] + x.chunks[ch][i])
    starts = [0]
    for size in x.chunks[ch][:-1]:
        starts.append(starts[-1] + size)

    def block(b, block_id=None):
        c0 = starts[block_id[ch]]
        return function(b, taps[c0:c0 + b.shape[ch]], **kwargs)

    token = tokenize(x, taps, function.__name__, sorted(kwargs.items()))
    return da.map_blocks(
        block,
        x,
        dtype=x.dtype,
        meta=x._meta,
        name=f"arma-{function.__name__}-{token}",
    )


@register("ar_solve", "dask")
def ar_solve(t, taps, *, boundary, dilation, method):
    """Lazy ``A^{-1} t``: :func:`arma_core.ar_solve` on every chunk of ``t``."""
    return _blockwise(arma_core.ar_solve, t, taps, "t", boundary=boundary, dilation=dilation, method=method)


@register("ar_solve_adjoint", "dask")
def ar_solve_adjoint(t, taps, *, boundary, dilation, method):
    """Lazy ``A^{-T} t``: :func:`arma_core.ar_solve_adjoint` on every chunk of ``t``."""
    return _blockwise(
        arma_core.ar_solve_adjoint, t, taps, "t", boundary=boundary, dilation=dilation, method=method
    )


@register("ar_apply", "dask")
def ar_apply(y, taps, *, boundary, dilation):
    """Lazy ``A y``: :func:`arma_core.ar_apply` on every chunk of ``y``."""
    return _blockwise(arma_core.ar_apply, y, taps, "y", boundary=boundary, dilation=dilation)


@register("ar_apply_adjoint", "dask")
def ar_apply_adjoint(z, taps, *, boundary, dilation):
    """Lazy ``A^T z``: :func:`arma_core.ar_apply_adjoint` on every chunk of ``z``."""
    return _blockwise(arma_core.ar_apply_adjoint, z, taps, "z", boundary=boundary, dilation=dilation)
