"""Boundary rules as index maps, shared by the AR operators and by ``conv``'s padding.

A boundary rule says which sample stands at a position ``p`` outside ``[0, n)``:

- ``circular``: ``p mod n`` (wrap);
- ``zeros``: nothing (the value is 0);
- ``reflect``: numpy's ``'reflect'`` / torch's reflection padding, ``d c b | a b c d``
  (the edge sample is not repeated; period ``2 (n - 1)``);
- ``replicate``: the nearest edge sample.

Index maps are built on the host with Python integers (they depend on sizes only, never on
data) and use the sentinel ``n`` for "zero".
"""

from __future__ import annotations

import numpy as np
from array_api_compat import device as _device

from ._validate import check_boundary

__all__ = ["source", "source_indices", "gather", "shift", "shift_adjoint", "shift_matrix"]


def source(p: int, n: int, boundary: str) -> int:
    """Index in ``[0, n)`` of the sample at position ``p``, or ``n`` when it is a zero.

    Examples
    --------
    >>> from arma_core.boundary import source
    >>> [source(-1, 4, b) for b in ("circular", "zeros", "reflect", "replicate")]
    [3, 4, 1, 0]
    """
    if 0 <= p < n:
        return p
    if boundary == "circular":
        return p % n
    if boundary == "zeros":
        return n
    if boundary == "replicate":
        return 0 if p < 0 else n - 1
    if boundary == "reflect":
        if n == 1:
            return 0
        q = p % (2 * n - 2)
        return q if q < n else 2 * n - 2 - q
    check_boundary(boundary)
    raise AssertionError("unreachable")


def source_indices(positions, n: int, boundary: str) -> list[int]:
    """:func:`source` of every position in ``positions``.

    Examples
    --------
    >>> from arma_core.boundary import source_indices
    >>> source_indices(range(-2, 6), 4, "reflect")      # d c b | a b c d | c b
    [2, 1, 0, 1, 2, 3, 2, 1]
    >>> source_indices(range(-2, 6), 4, "zeros")        # 4 = n stands for a zero
    [4, 4, 0, 1, 2, 3, 4, 4]
    """
    return [source(p, n, boundary) for p in positions]


def gather(xp, x, axis: int, index: list[int]):
    """``x`` taken along ``axis`` at ``index`` (sentinel ``n = x.shape[axis]`` gives 0).

    Parameters
    ----------
    xp : namespace
        ``x``'s array-API namespace (``array_api_compat.array_namespace(x)``).
    x : array
    axis : int
    index : list of int
        Indices in ``[0, n]``.

    Returns
    -------
    array
        ``x``'s shape with ``len(index)`` samples along ``axis``; same namespace, dtype, device.

    Examples
    --------
    >>> import numpy as np
    >>> from array_api_compat import array_namespace
    >>> from arma_core.boundary import gather
    >>> x = np.array([1.0, 2.0, 3.0, 4.0])
    >>> gather(array_namespace(x), x, 0, [3, 4, 0])
    array([4., 0., 1.])
    """
    n = x.shape[axis]
    axis = axis % x.ndim
    if any(i == n for i in index):
        shape = list(x.shape)
        shape[axis] = 1
        x = xp.concat([x, xp.zeros(tuple(shape), dtype=x.dtype, device=_device(x))], axis=axis)
    # the library's default integer dtype: int64 is not available everywhere (jax without x64)
    idx = xp.asarray(index, device=_device(x))
    return xp.take(x, idx, axis=axis)


def shift(xp, x, axis: int, offset: int, boundary: str):
    """``y[i] = x[i + offset]`` along ``axis``, positions outside resolved by ``boundary``.

    Examples
    --------
    >>> import numpy as np
    >>> from array_api_compat import array_namespace
    >>> from arma_core.boundary import shift
    >>> x = np.array([1.0, 2.0, 3.0, 4.0])
    >>> xp = array_namespace(x)
    >>> [shift(xp, x, 0, 1, b).tolist() for b in ("circular", "zeros", "reflect", "replicate")]
    [[2.0, 3.0, 4.0, 1.0], [2.0, 3.0, 4.0, 0.0], [2.0, 3.0, 4.0, 3.0], [2.0, 3.0, 4.0, 4.0]]
    >>> shift(xp, np.arange(6.0).reshape(2, 3), -1, -1, "zeros")    # along the last axis
    array([[0., 0., 1.],
           [0., 3., 4.]])
    """
    n = x.shape[axis]
    if offset == 0:
        return x
    if boundary == "circular":
        return xp.roll(x, -offset, axis=axis)
    return gather(xp, x, axis, source_indices(range(offset, n + offset), n, boundary))


def shift_adjoint(xp, z, axis: int, offset: int, boundary: str):
    """The transpose of :func:`shift`: a scatter-add, done as a few gathers.

    Each target index receives from the set of rows whose source it is; these sets are split
    into "layers" (at most one source per target per layer) and each layer is one gather.

    Examples
    --------
    >>> import numpy as np
    >>> from array_api_compat import array_namespace
    >>> from arma_core.boundary import shift_adjoint, shift_matrix
    >>> z = np.array([1.0, 1.0, 1.0, 1.0])
    >>> shift_adjoint(array_namespace(z), z, 0, 1, "replicate")    # the last sample is read twice
    array([0., 1., 1., 2.])
    >>> shift_matrix(4, 1, "replicate").T @ z
    array([0., 1., 1., 2.])
    """
    n = z.shape[axis]
    if offset == 0:
        return z
    if boundary == "circular":
        return xp.roll(z, offset, axis=axis)
    src = source_indices(range(offset, n + offset), n, boundary)
    receives: list[list[int]] = [[] for _ in range(n)]
    for i, j in enumerate(src):
        if j < n:
            receives[j].append(i)
    depth = max((len(r) for r in receives), default=0)
    out = None
    for layer in range(depth):
        index = [r[layer] if layer < len(r) else n for r in receives]
        term = gather(xp, z, axis, index)
        out = term if out is None else out + term
    if out is None:
        return xp.zeros_like(z)
    return out


def shift_matrix(n: int, offset: int, boundary: str) -> np.ndarray:
    """Dense ``(n, n)`` float64 matrix ``S`` with ``(S x)_i = x[i + offset]`` under ``boundary``.

    Examples
    --------
    >>> from arma_core.boundary import shift_matrix
    >>> shift_matrix(4, -1, "reflect")      # row 0 reads x[-1] = x[1]
    array([[0., 1., 0., 0.],
           [1., 0., 0., 0.],
           [0., 1., 0., 0.],
           [0., 0., 1., 0.]])
    """
    S = np.zeros((n, n))
    for i, j in enumerate(source_indices(range(offset, n + offset), n, boundary)):
        if j < n:
            S[i, j] += 1.0
    return S
