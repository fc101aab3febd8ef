"""NumPy fast paths: the compiled line solver (numba) and ``scipy.fft`` for the ``fft`` method.

- ``method="lines"`` (registered when numba is installed): :mod:`arma_core.backends._lines`,
  exact for every boundary, ``O(N Q)`` work, one read and one write of the signal.
- ``method="fft"``: the core's math with ``scipy.fft`` (when scipy is installed), which
  transforms float32 in single precision and honours ``scipy.fft.set_workers``; ``numpy.fft``
  computes in double precision and is about 4x slower on float32 signals.

``method="auto"`` follows :func:`choose_method` (``docs/performance.md``).
"""
from __future__ import annotations

import importlib.util

import numpy as np

from arma_core.backends import register
from arma_core.solve import denominator

from . import _lines

__all__ = ["choose_method", "lines_solve", "ar_solve", "ar_solve_adjoint"]

_HAS_SCIPY = importlib.util.find_spec("scipy") is not None


def lines_solve(t, taps, *, boundary, dilation, adjoint):
    """``A^{-1} t`` (``A^{-T} t`` when ``adjoint``) with the compiled line solver."""
    return _lines.solve(t, taps, boundary=boundary, dilation=dilation, adjoint=adjoint)


if _lines.available():
    lines_solve.boundaries = _lines.BOUNDARIES
    register("method:lines", "numpy")(lines_solve)


@register("choose_method", "numpy")
def choose_method(t, taps, *, boundary, dilation):
    """The fastest exact method for a numpy array (measurements in ``docs/performance.md``).

    ``"lines"`` when numba is installed, the dtype is float32/float64 and the line solver is
    accurate and worth it (:func:`arma_core.backends._lines.preferred`: ``|f_-1 - f_1| <= 16 f_0``
    for the boundaries with an edge correction; for 1-D ``circular`` signals at least
    ``4 Q`` rows per channel); otherwise ``"fft"`` for ``circular`` and ``"dense"`` for the others.
    """
    if _lines.available() and t.dtype in (np.float32, np.float64) and _lines.preferred(t.shape, taps, boundary):
        return "lines"
    return "fft" if boundary == "circular" else "dense"


def _solve_fft_scipy(t, taps, dilation, adjoint):
    """The core's ``fft`` method (one real FFT, analytic separable denominator) on scipy.fft."""
    import scipy.fft as sfft

    from arma_core._validate import namespace

    xp = namespace(t)
    k = taps.shape[1]
    spatial = tuple(t.shape[-k:])
    axes = tuple(range(-k, 0))
    T = sfft.rfftn(t, axes=axes)
    D = denominator(xp, taps, spatial, dilation, conj=adjoint, dtype=T.dtype)
    T /= D
    return sfft.irfftn(T, s=spatial, axes=axes).astype(t.dtype, copy=False)


def _solve(t, taps, boundary, dilation, method, adjoint):
    if method == "auto":
        method = choose_method(t, taps, boundary=boundary, dilation=dilation)
    if method == "fft" and _HAS_SCIPY:
        return _solve_fft_scipy(t, taps, dilation, adjoint)
    if method == "lines":
        return lines_solve(t, taps, boundary=boundary, dilation=dilation, adjoint=adjoint)
    return NotImplemented  # the generic code (dense, or fft on numpy.fft without scipy)


@register("ar_solve", "numpy")
def ar_solve(t, taps, *, boundary, dilation, method):
    return _solve(t, taps, boundary, dilation, method, False)


@register("ar_solve_adjoint", "numpy")
def ar_solve_adjoint(t, taps, *, boundary, dilation, method):
    return _solve(t, taps, boundary, dilation, method, True)
