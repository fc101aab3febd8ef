"""Compiled ``O(N Q)`` line solvers for the AR system: the ``"lines"`` method (numba, optional).

Each factor of one axis is an ``n x n`` matrix ``A_f = f_0 I + f_-1 S_{+d} + f_1 S_{-d}`` under
the boundary rule (``docs/math.md``). It is split as

    A_f = T + E,

``T`` the same factor with the ``zeros`` rule (a Toeplitz matrix whose only diagonals are
``0, +-d``: ``d`` interleaved tridiagonal chains) and ``E`` the boundary's correction, which
lives in the first and last ``d`` rows only (rank ``m <= 2 d``; ``E = 0`` for ``zeros``).

- ``T`` is solved by Thomas' algorithm without pivoting, which is safe on the whole stable
  strip ``|f_-1 + f_1| < f_0`` of Theorem 6: the pivots obey ``p_i = f_0 - f_-1 f_1 / p_{i-d}``;
  when ``f_-1 f_1 <= 0`` they stay ``>= f_0``, otherwise ``|f_-1| + |f_1| = |s| < f_0`` makes
  ``T`` strictly diagonally dominant and ``p_i > f_0 - |f_-1| > |f_1|``. The pivots, the
  multipliers and everything else below depend on the taps and the size only, so they are
  computed once per call (per channel, axis and factor), never per batch item.
- ``E = U V^T`` (``U`` the unit columns of the rows ``E`` touches) is handled exactly by the
  Sherman-Morrison-Woodbury identity: with ``z = T^{-1} t``,
  ``A_f^{-1} t = z - M z[cols]``, ``M = T^{-1} U (I + V^T T^{-1} U)^{-1} V^T[:, cols]``
  (``n x |cols|``, ``|cols| <= 2 d``). ``I + V^T T^{-1} U`` is invertible exactly when ``A_f``
  is (its inverse is ``I - V^T A_f^{-1} U``). This covers ``circular`` (cyclic Thomas),
  ``reflect`` and ``replicate`` for every dilation, including their chain couplings for
  ``d > 1``, without the zero pivots that eliminating the edge rows directly can hit (e.g.
  ``replicate``'s first pivot ``f_0 + f_1`` vanishes at ``f_1 = -1``, inside the strip). The
  correction is one more vector pass after the back substitution, over the rows where ``M``
  is not negligible: entries of ``M`` below ``2^-53`` of its largest are dropped (below
  float64's rounding), so rows far from the edges cost nothing when the filter decays fast.

Work per sample and factor: one forward and one backward recurrence (plus the correction where
it is not negligible), in float64 whatever the signal's precision (float32 recurrences lose
up to ``cond(A_f) * 2^-24`` near the edge of the strip). Every axis of a channel block is
solved while the block is in cache, so the signal is read once and written once: the outer
axes first, on a float64 copy of the block, with recurrences across rows vectorised along
them; then the contiguous last axis in strips of 32 rows, each transposed into a small
scratch, solved with the same vectorised recurrences and transposed into the output (a
transpose costs less than one factor's scalar recurrences). Parallel over the batch x channel
blocks. Output buffers are advised onto transparent huge pages (:func:`advise_hugepages`).

The backward pass (Theorem 4, Eq. 6) runs in one kernel per plane too: the transposed solve
and the taps' gradient ``-<(A_j^(1..q-1))^T left, E_tap A_j^(q+1..Q) B_j right>`` as
dot products of shifted contiguous slices, accumulated in float64.

numba is optional (``pip install arma-nets[fast]``): :func:`available` says whether it can be
used; without it the generic array-API methods run.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

from arma_core.boundary import source

__all__ = [
    "available",
    "accurate",
    "preferred",
    "MAX_SPREAD",
    "MIN_ROWS_1D",
    "solve",
    "solve_vjp",
    "plan",
    "operators",
    "empty",
    "advise_hugepages",
]


@functools.cache
def available() -> bool:
    """True when numba is importable (the compiled line solver can run)."""
    return importlib.util.find_spec("numba") is not None


# ---------------------------------------------------------------------------------------------
# host side: the structure of E (sizes only, no data)


#: largest ``|f_-1 - f_1| / |f_0|`` of any factor for which ``method="auto"`` sends the
#: ``circular``, ``reflect`` and ``replicate`` boundaries to this solver. Their Woodbury edge
#: correction loses accuracy roughly like ``spread^2 * 2^-53`` (measured against ``fft`` and the
#: sparse reference, float64, n = 5..257: rel. error <= 1.2e-12 at spread 10, 2e-9 at 100,
#: 1e-3 and worse from 1e4; the strip of Theorem 6 bounds ``|f_-1 + f_1|`` only, so any spread
#: can occur). Trained filters sit far below the bound (the official diamond region has spread
#: < 1); beyond it ``auto`` falls back to ``fft`` / ``dense``. ``zeros`` has no correction and
#: no bound.
MAX_SPREAD = 16.0


def accurate(taps, boundary: str) -> bool:
    """Whether the line solver is accurate for ``taps`` (any array convertible to numpy,
    ``(..., 3)``) with ``boundary``: every factor in the strip ``|f_-1 + f_1| < |f_0|`` and,
    except for ``zeros``, ``|f_-1 - f_1| <= MAX_SPREAD * |f_0|``. ``taps=None`` (unknown)
    counts as accurate for ``zeros`` only."""
    if taps is None:
        return boundary == "zeros"
    a = np.asarray(taps, dtype=np.float64)
    if not np.all(np.abs(a[..., 0] + a[..., 2]) < np.abs(a[..., 1])):
        return False  # outside the strip Thomas' pivots may vanish (only fft/dense solve those)
    if boundary == "zeros":
        return True
    spread = np.abs(a[..., 0] - a[..., 2])
    return bool(np.all(spread <= MAX_SPREAD * np.abs(a[..., 1])))


#: 1-D ``circular`` signals go to the line solver only with at least this many rows per channel
#: and factor: its operators cost one serial pass per channel, factor and line (about 20 ns
#: per sample), which the solve of a few rows does not repay, while ``fft`` needs no per-channel
#: work. Measured with numpy on 16 channels, n = 1024..65536 (``make compare``, table in
#: docs/performance.md): at Q = 1 ``lines`` is 1.1-1.6x faster than ``fft`` with 4 rows and
#: 2.0-2.7x with 8, 0.6-1.1x with 1-2; at Q = 3 0.7-0.8x with 4 rows, 1.0-1.1x with 8.
MIN_ROWS_1D = 4


def preferred(shape, taps, boundary: str) -> bool:
    """Whether ``method="auto"`` should take the line solver for a signal of ``shape``.

    It must be accurate (:func:`accurate`); for 1-D ``circular`` signals it must also have at
    least ``MIN_ROWS_1D * Q`` rows per channel (otherwise ``fft`` is faster). ``taps``: array
    convertible to numpy ``(C, k, Q, 3)``, or None (unknown: preferred for ``zeros`` only, as
    :func:`accurate` says).
    """
    if not accurate(taps, boundary):
        return False
    if boundary != "circular":  # taps may be None here (zeros)
        return True
    C, k, Q = np.shape(taps)[:3]
    if k == 1:
        rows = int(np.prod(shape[:-1], dtype=np.int64)) // max(C, 1)
        return rows >= MIN_ROWS_1D * Q
    return True


@functools.lru_cache(maxsize=256)
def edge_structure(n: int, d: int, boundary: str):
    """Entries of ``E = A_f - T`` as ``(rows, cols, taps)`` int arrays (structure only).

    ``taps`` is 0 for an entry that carries ``f_-1`` (it multiplies ``y[i + d]``) and 2 for
    ``f_1`` (``y[i - d]``). Repeated ``(row, col)`` pairs add up.
    """
    rows, cols, taps = [], [], []
    for i in range(n):
        for off, tap in ((d, 0), (-d, 2)):
            p = i + off
            if 0 <= p < n:
                continue  # inside the axis: that entry is T's
            j = source(p, n, boundary)
            if j < n:
                rows.append(i)
                cols.append(j)
                taps.append(tap)
    as_int = functools.partial(np.asarray, dtype=np.int64)
    return as_int(rows), as_int(cols), as_int(taps)


@functools.lru_cache(maxsize=256)
def _indexed_structure(n: int, d: int, boundary: str, transposed: bool):
    """Rows and columns of ``E`` (of ``E^T`` when ``transposed``) as unique lists plus indices."""
    rows, cols, taps = edge_structure(n, d, boundary)
    if transposed:
        rows, cols = cols, rows
    urows = np.unique(rows)
    ucols = np.unique(cols)
    ri = np.searchsorted(urows, rows).astype(np.int64)
    ci = np.searchsorted(ucols, cols).astype(np.int64)
    return urows.astype(np.int64), ucols.astype(np.int64), ri, ci, taps


def _kernels():
    from . import _lines_kernels

    return _lines_kernels


# ---------------------------------------------------------------------------------------------
# output memory

_HUGE = 2 << 20  # a transparent huge page on x86-64 and aarch64 Linux


@functools.cache
def _madvise():
    """libc's ``madvise`` when this is Linux with transparent huge pages on request, else None."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            if "[never]" in f.read():
                return None
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def advise_hugepages(ptr: int, nbytes: int) -> None:
    """Ask the kernel to back a fresh (untouched) buffer with transparent huge pages.

    Outputs of the solver are fresh allocations whose pages are first touched by the parallel
    kernel; with 4 KiB pages the page faults of two threads contend and cost as much as the
    solve itself (measured: 40 ms instead of 19 ms at 32 MiB). This is what torch's
    ``THP_MEM_ALLOC_ENABLE=1`` does for its own allocations; it is a hint, harmless if ignored.
    Only the 2 MiB-aligned interior of buffers of at least 4 MiB is advised.
    """
    if nbytes < 2 * _HUGE:
        return
    fn = _madvise()
    if fn is None:
        return
    start = (ptr + _HUGE - 1) // _HUGE * _HUGE
    stop = (ptr + nbytes) // _HUGE * _HUGE
    if stop > start:
        fn(start, stop - start, 14)  # MADV_HUGEPAGE


def empty(shape, dtype) -> np.ndarray:
    """``np.empty`` whose large buffers are backed by huge pages (:func:`advise_hugepages`)."""
    a = np.empty(shape, dtype)
    advise_hugepages(a.ctypes.data, a.nbytes)
    return a


# ---------------------------------------------------------------------------------------------
# host drivers


def _block_shape(shape, k):
    """``(..., C, n_1..n_k)`` -> ``(P, n1, n2, n3)`` with leading spatial sizes 1 when k < 3."""
    spatial = tuple(shape[len(shape) - k :])
    P = int(np.prod(shape[: len(shape) - k], dtype=np.int64))
    return (P,) + (1,) * (3 - k) + spatial


def operators(taps64, spatial, dilation, boundary, transposed):
    """Per-axis solve operators (Thomas factors + Woodbury correction), one tuple per block axis.

    Parameters
    ----------
    taps64 : ndarray (C, k, Q, 3) float64
    spatial : tuple of k ints
    transposed : bool
        Operators of ``A^T`` (for ``ar_solve_adjoint`` and the backward pass).

    Returns
    -------
    ops : 3 tuples ``(l, pinv, sup, M, rng, cols)`` for block axes 0, 1, 2 (dummies for
    missing axes); zrows : the largest ``len(cols)`` (scratch rows).
    """
    precompute = _kernels().precompute
    C, k, Q = taps64.shape[:3]
    out = []
    zrows = 1
    for b in range(3):
        j = b - (3 - k)
        if j < 0:
            z = np.zeros((C, Q, 1))
            e = np.zeros((C, Q, 0, 1))
            r = np.zeros((C, Q, 2), np.int64)
            out.append((z, z, np.zeros((C, Q)), e, r, np.zeros(0, np.int64)))
            continue
        n = int(spatial[j])
        urows, ucols, ri, ci, etap = _indexed_structure(n, dilation, boundary, transposed)
        nc = len(ucols)
        l = np.empty((C, Q, n))
        pinv = np.empty((C, Q, n))
        sup = np.empty((C, Q))
        M = np.zeros((C, Q, nc, n))
        rng = np.zeros((C, Q, 2), np.int64)
        precompute(
            np.ascontiguousarray(taps64[:, j]),
            n,
            dilation,
            transposed,
            urows,
            ucols,
            ri,
            ci,
            etap,
            l,
            pinv,
            sup,
            M,
            rng,
            _chunks(C * Q),
        )
        zrows = max(zrows, nc)
        out.append((l, pinv, sup, M, rng, ucols))
    return tuple(out), zrows


def _edges(spatial, dilation, boundary, k):
    out = []
    for b in range(3):
        j = b - (3 - k)
        if j < 0:
            e = np.zeros(0, np.int64)
            out.append((e, e, e))
        else:
            out.append(edge_structure(int(spatial[j]), dilation, boundary))
    return tuple(out)


def _chunks(P):
    from numba import get_num_threads

    return max(1, min(P, 8 * get_num_threads()))


def _prepare(t, taps):
    t = np.ascontiguousarray(t)
    if t.dtype not in (np.float32, np.float64):
        raise TypeError(f"the line solver supports float32 and float64, got {t.dtype}")
    taps64 = np.ascontiguousarray(taps, dtype=np.float64)
    return t, taps64


def plan(taps, spatial, dilation, boundary, transposed, cache=None):
    """The operators of :func:`operators` for ``taps`` (any array numpy can read), kept in
    ``cache`` (a dict, or None) under ``("lines", spatial, transposed)``."""
    key = ("lines", tuple(int(n) for n in spatial), bool(transposed))
    if cache is not None and key in cache:
        return cache[key]
    taps64 = np.ascontiguousarray(taps, dtype=np.float64)
    out = operators(taps64, spatial, dilation, boundary, transposed)
    if cache is not None:
        cache[key] = out
    return out


def solve(t, taps, *, boundary, dilation, adjoint=False, out=None, cache=None):
    """``A^{-1} t`` (``A^{-T} t`` when ``adjoint``) with the compiled line solver.

    Parameters
    ----------
    t : ndarray ``(..., C, n_1, ..., n_k)``, float32 or float64 (validated by the caller).
    taps : ndarray ``(C, k, Q, 3)``, in the strip.
    out : optional C-contiguous ndarray like ``t`` to write into.
    cache : dict, optional
        Where the per-channel operators are kept between calls (:func:`plan`).

    Returns
    -------
    ndarray like ``t``.
    """
    t, taps64 = _prepare(t, taps)
    C, k = taps64.shape[:2]
    spatial = t.shape[-k:]
    ops, zrows = plan(taps64, spatial, dilation, boundary, adjoint, cache)
    if out is None:
        out = empty(t.shape, t.dtype)
    shape = _block_shape(t.shape, k)
    if k == 1:
        _solve_lines(t, out, C, dilation, adjoint, ops[2], zrows)
        return out
    _kernels().solve_planes(
        t.reshape(shape),
        out.reshape(shape),
        C,
        k,
        dilation,
        adjoint,
        ops[0],
        ops[1],
        ops[2],
        _chunks(shape[0]),
        zrows,
    )
    return out


def _solve_lines(t, out, C, dilation, rev, ops, zrows):
    """1-D signals: the rows of each channel 4 at a time (``_lines_kernels.solve_lines``)."""
    n = t.shape[-1]
    t2, out2 = t.reshape((-1, n)), out.reshape((-1, n))
    _kernels().solve_lines(t2, out2, C, dilation, rev, ops, _chunks(t2.shape[0]), zrows)


def solve_vjp(y, g, taps, *, boundary, dilation, adjoint=False, need_taps=True, out=None, cache=None):
    """Backward of ``y = A^{-1} t`` (of ``A^{-T} t`` when ``adjoint``), Theorem 4 in one pass.

    Returns
    -------
    grad_t : ndarray like ``g`` (``A^{-T} g``, or ``A^{-1} g`` for the adjoint solve).
    grad_taps : ndarray ``(C, k, Q, 3)`` float64, or None when not ``need_taps``.
    """
    g, taps64 = _prepare(g, taps)
    y = np.ascontiguousarray(y, dtype=g.dtype)
    C, k, Q = taps64.shape[:3]
    spatial = g.shape[-k:]
    ops, zrows = plan(taps64, spatial, dilation, boundary, not adjoint, cache)
    if out is None:
        out = empty(g.shape, g.dtype)
    shape = _block_shape(g.shape, k)
    P = shape[0]
    part = np.zeros((P if need_taps else 1, k, Q, 3))
    est = _edges(spatial, dilation, boundary, k)
    solved = k == 1
    if solved:
        _solve_lines(g, out, C, dilation, not adjoint, ops[2], zrows)
    if need_taps or not solved:
        _kernels().vjp_planes(
            y.reshape(shape),
            g.reshape(shape),
            out.reshape(shape),
            part,
            C,
            k,
            dilation,
            not adjoint,
            adjoint,
            ops[0],
            ops[1],
            ops[2],
            _chunks(P),
            zrows,
            taps64.astype(g.dtype),
            est[0],
            est[1],
            est[2],
            need_taps,
            solved,
        )
    if not need_taps:
        return out, None
    return out, part.reshape((-1, C, k, Q, 3)).sum(axis=0)
