"""arma-nets: learnable, provably stable ARMA layers over the Python array API.

The math lives here once, written over the array API standard (array-api-compat): every
function takes its namespace from its inputs and returns arrays of the same library, device
and dtype. ``arma_core.capabilities`` says which kernel runs where, ``arma_core.reference``
holds the exact scipy.sparse references, ``arma_core.backends`` the per-library kernels,
``arma_core.nn`` the PyTorch modules, ``arma_core.testing`` the assertions the tests use.

Shapes: signals are channel-first ``(..., C, n_1, ..., n_k)`` by default (``axes=`` picks
others); AR taps are ``(C, k, Q, 3)`` (channel, spatial axis, factor, tap
``(f_-1, f_0, f_1)``); see ``docs/math.md``.
"""

from ._typing import BOUNDARIES, METHODS, REGIONS
from ._validate import UnstableFilterError
from .arma import arma
from .conv import conv
from .filters import check_stable, is_stable, official_to_theta, reparameterize, stability_margin
from .operator import ARFilter, ar_apply, ar_apply_adjoint, ar_solve, ar_solve_adjoint
from .polynomial import taps_from_kernel, taps_from_lfilter

__version__ = "0.1.0"

__all__ = [
    "BOUNDARIES",
    "METHODS",
    "REGIONS",
    "UnstableFilterError",
    "reparameterize",
    "official_to_theta",
    "stability_margin",
    "is_stable",
    "check_stable",
    "ARFilter",
    "ar_apply",
    "ar_apply_adjoint",
    "ar_solve",
    "ar_solve_adjoint",
    "conv",
    "arma",
    "taps_from_lfilter",
    "taps_from_kernel",
]
