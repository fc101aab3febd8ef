"""PyTorch adapter: ARMA layers as drop-in replacements for ``nn.Conv1d/2d/3d``.

- :class:`ARMA1d`, :class:`ARMA2d`, :class:`ARMA3d`: convolution + stable learnable AR filter,
  subclasses of ``nn.Conv{k}d`` with the same constructor (plus ``ar_*`` options);
- :class:`AR1d`, :class:`AR2d`, :class:`AR3d`: the AR filter alone;
- :func:`armafy`: convert every convolution of a model;
- :func:`load_official_state_dict`: load checkpoints of the official implementation;
- :func:`radius_from_init` / :func:`init_from_radius`: choose ``ar_init`` by receptive field;
- :func:`erf` (from :mod:`arma_core.nn.erf`) and the :mod:`arma_core.nn.models` subpackage,
  both imported on first use.

See ``docs/nn.md``.
"""

import importlib as _importlib

from .convert import armafy
from .modules import (
    REGIONS,
    AR1d,
    AR2d,
    AR3d,
    ARMA1d,
    ARMA2d,
    ARMA3d,
    init_from_radius,
    radius_from_init,
)
from .official import load_official_state_dict, official_keys_to_ours

__all__ = [
    "AR1d",
    "AR2d",
    "AR3d",
    "ARMA1d",
    "ARMA2d",
    "ARMA3d",
    "REGIONS",
    "armafy",
    "load_official_state_dict",
    "official_keys_to_ours",
    "radius_from_init",
    "init_from_radius",
    "erf",
]

_SUBPACKAGES = ("models",)


def erf(*args, **kwargs):
    """Effective receptive field; see :func:`arma_core.nn.erf.erf` (imported on first call).

    Importing the submodule ``arma_core.nn.erf`` rebinds this package attribute to the module,
    which is itself callable as this function, so ``arma_core.nn.erf(...)`` works either way.

    Examples
    --------
    >>> from torch import nn
    >>> import arma_core.nn
    >>> m = arma_core.nn.erf(nn.Conv1d(1, 1, 3, padding=1, bias=False), (1, 1, 9))
    >>> m.shape, int((m > 0).sum())          # one 3-tap convolution sees 3 input pixels
    ((9,), 3)
    """
    return _importlib.import_module(".erf", __name__).erf(*args, **kwargs)


def __getattr__(name):
    if name in _SUBPACKAGES:
        try:
            return _importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # the subpackage exists but one of its imports is missing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
