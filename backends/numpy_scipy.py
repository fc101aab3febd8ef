"""NumPy kernels: the compiled line solver (C extension) and ``scipy.fft`` for the ``fft`` method.

- :func:`lines_kernel` (``method="lines"``): :mod:`arma_core.backends._lines`, exact for every
  boundary, ``O(N Q)`` work, one read and one write of the signal.
- :func:`fft_kernel` (``method="fft"``): the core's math with ``scipy.fft``, which transforms
  float32 in single precision and honours ``scipy.fft.set_workers``; ``numpy.fft`` computes in
  double precision and is about 4x slower on float32 signals.

Their rows in :mod:`arma_core.capabilities` say when they run.
"""

from __future__ import annotations

from arma_core.solve import cached, denominator

from . import _lines

__all__ = ["lines_kernel", "fft_kernel"]


def lines_kernel(xp, t, taps, *, boundary, dilation, adjoint, cache=None):
    """``A^{-1} t`` (``A^{-T} t``) with the compiled line solver; operators kept in ``cache``."""
    return _lines.solve(t, taps, boundary=boundary, dilation=dilation, adjoint=adjoint, cache=cache)


def fft_kernel(xp, t, taps, *, boundary, dilation, adjoint, cache=None):
    """The core's ``fft`` method (one real FFT, analytic separable denominator) on scipy.fft."""
    import scipy.fft as sfft

    k = taps.shape[1]
    spatial = tuple(t.shape[-k:])
    axes = tuple(range(-k, 0))
    T = sfft.rfftn(t, axes=axes)
    D = cached(
        cache,
        ("fft", spatial, adjoint, str(T.dtype)),
        lambda: denominator(xp, taps, spatial, dilation, conj=adjoint, dtype=T.dtype),
    )
    T /= D
    return sfft.irfftn(T, s=spatial, axes=axes).astype(t.dtype, copy=False)
