"""The ARMA layer: the MA convolution followed by the AR solve (the paper's Eq. 2 / Eq. 5)."""

from __future__ import annotations

from .conv import conv
from .operator import _filter

__all__ = ["arma"]


def arma(
    x,
    weight,
    taps,
    bias=None,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    boundary="circular",
    ar_dilation=1,
    method="auto",
):
    """``y = A^{-1} (W * x + b)``: Eq. 5a (:func:`arma_core.conv`) then Eq. 5b (:func:`arma_core.ar_solve`).

    Parameters
    ----------
    x : array, shape ``(..., C_in, n_1, ..., n_k)``
    weight : array, shape ``(C_out, C_in / groups, K_1, ..., K_k)``
    taps : array, shape ``(C_out, k, Q, 3)`` (or ``(1, k, Q, 3)``: one filter for every
        channel), stable AR factors
    bias : array ``(C_out,)`` or None
    stride, padding, dilation, groups, padding_mode
        As in :func:`arma_core.conv` (``torch.nn.functional.conv*d`` semantics).
    boundary, ar_dilation, method
        As ``boundary``, ``dilation``, ``method`` of :func:`arma_core.ar_solve`.

    Returns
    -------
    y : array, shape ``(..., C_out, m_1, ..., m_k)`` (the convolution's output shape).

    Examples
    --------
    >>> import numpy as np
    >>> import arma_core as ac
    >>> x = np.random.default_rng(0).normal(size=(2, 3, 16, 16))
    >>> w = np.random.default_rng(1).normal(size=(4, 3, 3, 3))
    >>> taps = ac.reparameterize(np.zeros((4, 2, 1, 2)))   # theta = 0: the identity filter
    >>> np.allclose(ac.arma(x, w, taps, padding=1), ac.conv(x, w, padding=1))
    True
    """
    # the AR filter is built (and its arguments checked, under arma()'s own names) before the
    # convolution runs, so that bad AR arguments fail first
    ar = _filter(
        taps,
        boundary=boundary,
        dilation=ar_dilation,
        method=method,
        _names=("the convolution's output", "ar_dilation"),
    )
    if weight.ndim >= 1 and taps.shape[0] not in (1, weight.shape[0]):
        raise ValueError(
            f"taps has C={taps.shape[0]} channels but weight has {weight.shape[0]} output channels "
            f"(shape {tuple(weight.shape)}); the AR filter acts on the convolution's output"
        )
    t = conv(
        x,
        weight,
        bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    return ar.solve(t)
