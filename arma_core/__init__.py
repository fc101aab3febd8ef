"""arma-nets: learnable, provably stable ARMA layers over the Python array API.

The math lives here once, written over the array API standard (array-api-compat): every
function takes its namespace from its inputs and returns arrays of the same library, device
and dtype. ``arma_core.reference`` holds the exact scipy.sparse references, ``arma_core.backends``
the per-library fast paths, ``arma_core.nn`` the PyTorch modules.

Shapes: signals are channel-first ``(..., C, n_1, ..., n_k)``; AR taps are ``(C, k, Q, 3)``
(channel, spatial axis, factor, tap ``(f_-1, f_0, f_1)``); see ``docs/math.md``.
"""
from ._validate import BOUNDARIES, UnstableFilterError
from .filters import check_stable, is_stable, official_to_theta, reparameterize, stability_margin
from .apply import ar_apply, ar_apply_adjoint
from .solve import METHODS, ar_solve, ar_solve_adjoint
from .conv import conv
from .arma import arma

__version__ = "0.1.0"

__all__ = [
    "BOUNDARIES",
    "METHODS",
    "UnstableFilterError",
    "reparameterize",
    "official_to_theta",
    "stability_margin",
    "is_stable",
    "check_stable",
    "ar_apply",
    "ar_apply_adjoint",
    "ar_solve",
    "ar_solve_adjoint",
    "conv",
    "arma",
]
