"""The ARMA layer: the MA convolution followed by the AR solve (the paper's Eq. 2 / Eq. 5)."""
from __future__ import annotations

from ._validate import check_boundary, check_positive_int, check_taps, namespace
from .conv import conv
from .solve import _solve

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
    taps : array, shape ``(C_out, k, Q, 3)``, stable AR factors
    bias : array ``(C_out,)`` or None
    stride, padding, dilation, groups, padding_mode
        As in :func:`arma_core.conv` (``torch.nn.functional.conv*d`` semantics).
    boundary, ar_dilation, method
        As ``boundary``, ``dilation``, ``method`` of :func:`arma_core.ar_solve`.

    Returns
    -------
    y : array, shape ``(..., C_out, m_1, ..., m_k)`` (the convolution's output shape).
    """
    # the AR arguments are checked under their own names: ar_solve calls them "dilation" and "t",
    # which in arma() would point at the convolution's dilation and input. The cheap ones and the
    # taps/weight channel match go first, so that bad AR arguments fail before the convolution.
    check_positive_int(ar_dilation, "ar_dilation")
    check_boundary(boundary)
    check_taps(namespace(taps), taps)
    if weight.ndim >= 1 and taps.shape[0] != weight.shape[0]:
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
    return _solve(t, taps, boundary, ar_dilation, method, False, "the convolution's output",
                  dilation_name="ar_dilation")
