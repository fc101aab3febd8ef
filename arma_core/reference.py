"""Exact references on scipy.sparse, float64: the ground truth every fast path is tested against.

The operator is built literally from the definitions in ``docs/math.md``: per channel, per
spatial axis and factor the ``n x n`` boundary matrix ``f_0 I + f_-1 S_{+d} + f_1 S_{-d}``,
lifted to the grid with Kronecker products; ``A`` is their product (block-diagonal over
channels). :func:`ar_solve` solves factor by factor (circular factors by
``scipy.linalg.solve_circulant``, the banded others by sparse LU), so that the conditioning of
the product of many near-singular factors does not compound (each factor is well conditioned
on its own: its condition number is about ``(1 + |f_-1| + |f_1|) / margin``).

Inputs may come from any library that numpy can read (``np.from_dlpack`` / ``np.asarray``);
outputs are float64 numpy arrays. scipy is imported here only.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ._array import to_numpy
from ._validate import check_boundary
from .boundary import source_indices

__all__ = ["ar_matrix", "factor_matrix", "ar_solve", "ar_apply", "to_numpy"]


def shift_sparse(n: int, offset: int, boundary: str) -> sp.csr_matrix:
    """``S`` with ``(S y)_i = y[i + offset]`` under ``boundary`` (zero rows where it is 0).

    Examples
    --------
    >>> from arma_core.reference import shift_sparse
    >>> shift_sparse(4, 1, "replicate").toarray()       # y[4] is the edge sample y[3]
    array([[0., 1., 0., 0.],
           [0., 0., 1., 0.],
           [0., 0., 0., 1.],
           [0., 0., 0., 1.]])
    """
    src = source_indices(range(offset, n + offset), n, boundary)
    rows = [i for i, j in enumerate(src) if j < n]
    cols = [j for j in src if j < n]
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def factor_matrix(n: int, f, dilation: int = 1, boundary: str = "circular") -> sp.csr_matrix:
    """The ``n x n`` matrix of one length-3 factor ``f = (f_-1, f_0, f_1)`` along one axis.

    Row ``i`` holds ``f_0`` at column ``i``, ``f_-1`` at the source of ``i + dilation`` and
    ``f_1`` at the source of ``i - dilation`` under ``boundary``.

    Parameters
    ----------
    n : int
        Length of the axis.
    f : sequence of 3 floats
        ``(f_-1, f_0, f_1)``.
    dilation : int
    boundary : {"circular", "zeros", "reflect", "replicate"}

    Returns
    -------
    scipy.sparse.csr_matrix, shape ``(n, n)``, float64

    Examples
    --------
    >>> from arma_core.reference import factor_matrix
    >>> factor_matrix(4, (0.5, 1.0, -0.25)).toarray()                    # circular: wraps
    array([[ 1.  ,  0.5 ,  0.  , -0.25],
           [-0.25,  1.  ,  0.5 ,  0.  ],
           [ 0.  , -0.25,  1.  ,  0.5 ],
           [ 0.5 ,  0.  , -0.25,  1.  ]])
    >>> factor_matrix(4, (0.5, 1.0, -0.25), boundary="zeros").toarray()[0]
    array([1. , 0.5, 0. , 0. ])
    """
    check_boundary(boundary)
    fm, f0, fp = (float(v) for v in f)
    return (
        f0 * sp.identity(n, format="csr")
        + fm * shift_sparse(n, dilation, boundary)
        + fp * shift_sparse(n, -dilation, boundary)
    ).tocsr()


def _lift(M, j: int, spatial) -> sp.csr_matrix:
    """``M`` acting on axis ``j`` of a C-ordered grid of shape ``spatial``."""
    left = int(np.prod(spatial[:j], dtype=np.int64))
    right = int(np.prod(spatial[j + 1 :], dtype=np.int64))
    return sp.kron(sp.kron(sp.identity(left), M), sp.identity(right)).tocsr()


def _channel_factors(spatial, taps_c, dilation, boundary):
    """Grid matrices of every factor of one channel, in solve order (axis by axis, q = 1..Q)."""
    k, Q = taps_c.shape[0], taps_c.shape[1]
    return [
        _lift(factor_matrix(spatial[j], taps_c[j, q], dilation, boundary), j, spatial)
        for j in range(k)
        for q in range(Q)
    ]


def ar_matrix(spatial_shape, taps, boundary: str = "circular", dilation: int = 1) -> sp.csr_matrix:
    """The AR operator ``A`` as a sparse ``(C N, C N)`` matrix, ``N = prod(spatial_shape)``.

    Block-diagonal over channels; the block of channel ``c`` is ``prod_j A_j`` with
    ``A_j = A_j^(1) ... A_j^(Q)``; it acts on the C-ordered flattening of ``(C, n_1, ..., n_k)``.

    Parameters
    ----------
    spatial_shape : sequence of int
        ``(n_1, ..., n_k)``.
    taps : array, shape ``(C, k, Q, 3)``
        Any library numpy can read.
    boundary : {"circular", "zeros", "reflect", "replicate"}
    dilation : int

    Returns
    -------
    scipy.sparse.csr_matrix, shape ``(C N, C N)``, float64

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core.reference import ar_apply, ar_matrix
    >>> taps = np.tile([0.3, 1.0, -0.2], (2, 2, 1, 1))      # (C, k, Q, 3) = (2, 2, 1, 3)
    >>> A = ar_matrix((3, 4), taps, boundary="reflect")
    >>> A.shape
    (24, 24)
    >>> x = np.random.default_rng(0).standard_normal((2, 3, 4))
    >>> bool(np.allclose(A @ x.ravel(), ar_apply(x, taps, boundary="reflect").ravel()))
    True
    """
    taps = to_numpy(taps)
    spatial = tuple(int(n) for n in spatial_shape)
    if taps.ndim != 4 or taps.shape[1] != len(spatial) or taps.shape[3] != 3:
        raise ValueError(f"taps must be (C, {len(spatial)}, Q, 3), got {taps.shape}")
    blocks = []
    for c in range(taps.shape[0]):
        N = int(np.prod(spatial))
        A = sp.identity(N, format="csr")
        for F in _channel_factors(spatial, taps[c], dilation, boundary):
            A = A @ F
        blocks.append(A)
    return sp.block_diag(blocks, format="csr")


def _per_channel(t, taps, fn):
    t = to_numpy(t)
    taps = to_numpy(taps)
    k = taps.shape[1]
    if taps.shape[0] == 1 and t.ndim > k:  # one filter for every channel
        taps = np.broadcast_to(taps, (t.shape[-k - 1],) + taps.shape[1:])
    C = taps.shape[0]
    spatial = t.shape[-k:]
    batch = t.shape[: -k - 1]
    flat = t.reshape((-1, C, int(np.prod(spatial))))
    out = np.empty_like(flat)
    for c in range(C):
        out[:, c, :] = fn(flat[:, c, :].T, spatial, taps[c]).T
    return out.reshape(batch + (C,) + tuple(spatial))


def ar_apply(y, taps, boundary: str = "circular", dilation: int = 1) -> np.ndarray:
    """``A y`` for ``y (..., C, n_1, ..., n_k)``, float64, factor by factor.

    Parameters
    ----------
    y : array, shape ``(..., C, n_1, ..., n_k)``
        Any library numpy can read.
    taps : array, shape ``(C, k, Q, 3)`` or ``(1, k, Q, 3)`` (one filter for every channel)
    boundary : {"circular", "zeros", "reflect", "replicate"}
    dilation : int

    Returns
    -------
    numpy.ndarray, float64, the shape of ``y``

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core.reference import ar_apply
    >>> taps = np.array([0.5, 1.0, -0.25]).reshape(1, 1, 1, 3)
    >>> ar_apply(np.array([[0.0, 1.0, 0.0, 0.0]]), taps, boundary="zeros")   # column 1 of A
    array([[ 0.5 ,  1.  , -0.25,  0.  ]])
    """
    check_boundary(boundary)

    def fn(cols, spatial, taps_c):
        for F in reversed(_channel_factors(spatial, taps_c, dilation, boundary)):
            cols = F @ cols
        return cols

    return _per_channel(y, taps, fn)


def _solve_circulant_axis(cols, spatial, j, column):
    """Solve the circulant system with first column ``column`` along axis ``j`` of every
    column of ``cols (N, m)`` (a C-ordered grid of shape ``spatial``)."""
    m = cols.shape[1]
    grid = cols.reshape(tuple(spatial) + (m,))
    moved = np.moveaxis(grid, j, 0)
    flat = moved.reshape(spatial[j], -1)
    solved = sla.solve_circulant(column, flat, singular="raise")
    return np.moveaxis(solved.reshape(moved.shape), 0, j).reshape(cols.shape)


def ar_solve(t, taps, boundary: str = "circular", dilation: int = 1, adjoint: bool = False) -> np.ndarray:
    """``A^{-1} t`` (or ``A^{-T} t``) for ``t (..., C, n_1, ..., n_k)``, float64, factor by factor.

    Circular factors are solved with ``scipy.linalg.solve_circulant`` (FFT-based): sparse LU
    with partial pivoting grows exponentially on wrap-around tridiagonal matrices whose
    off-diagonal dominates (``docs/math.md``). The other boundaries give banded factor matrices
    (bandwidth ``d``), solved by sparse LU, whose pivot growth is bounded on banded systems.

    Parameters
    ----------
    t : array, shape ``(..., C, n_1, ..., n_k)``
        Any library numpy can read.
    taps : array, shape ``(C, k, Q, 3)`` or ``(1, k, Q, 3)`` (one filter for every channel)
    boundary : {"circular", "zeros", "reflect", "replicate"}
    dilation : int
    adjoint : bool
        Solve with the transpose ``A^T`` instead.

    Returns
    -------
    numpy.ndarray, float64, the shape of ``t``

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core.reference import ar_apply, ar_matrix, ar_solve
    >>> taps = np.tile([0.3, 1.0, -0.2], (2, 2, 1, 1))      # (C, k, Q, 3) = (2, 2, 1, 3)
    >>> t = np.random.default_rng(0).standard_normal((5, 2, 3, 4))    # (N, C, n_1, n_2)
    >>> y = ar_solve(t, taps, boundary="reflect")
    >>> y.shape, bool(np.allclose(ar_apply(y, taps, boundary="reflect"), t))
    ((5, 2, 3, 4), True)
    >>> z = ar_solve(t[0], taps, boundary="reflect", adjoint=True)
    >>> bool(np.allclose(ar_matrix((3, 4), taps, "reflect").T @ z.ravel(), t[0].ravel()))
    True
    """
    check_boundary(boundary)

    def fn(cols, spatial, taps_c):
        k, Q = taps_c.shape[0], taps_c.shape[1]
        order = [(j, q) for j in range(k) for q in range(Q)]
        if adjoint:
            order = order[::-1]
        for j, q in order:
            F = factor_matrix(spatial[j], taps_c[j, q], dilation, boundary)
            if adjoint:
                F = F.T
            if boundary == "circular":
                cols = _solve_circulant_axis(cols, spatial, j, F.toarray()[:, 0])
            else:
                cols = spla.splu(_lift(F, j, spatial).tocsc()).solve(np.ascontiguousarray(cols))
        return cols

    return _per_channel(t, taps, fn)
