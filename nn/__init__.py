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
import sys as _sys
import types as _types

from .convert import armafy
from .modules import (
    AR1d,
    AR2d,
    AR3d,
    ARMA1d,
    ARMA2d,
    ARMA3d,
    REGIONS,
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

_SUBPACKAGES = ("models", "video")


class _CallableModule(_types.ModuleType):
    """``arma_core.nn.erf`` is both a submodule and, re-exported, its function ``erf``.

    Importing the submodule binds the package attribute ``erf`` to the module, shadowing the
    function; making the module callable keeps ``arma_core.nn.erf(...)`` working either way.
    """

    def __call__(self, *args, **kwargs):
        return self.erf(*args, **kwargs)


def _erf_module():
    module = _importlib.import_module(".erf", __name__)
    if not isinstance(module, _CallableModule):
        module.__class__ = _CallableModule
    return module


def erf(*args, **kwargs):
    """Effective receptive field; see :func:`arma_core.nn.erf.erf` (imported on first call)."""
    return _erf_module().erf(*args, **kwargs)


def __getattr__(name):
    if name in _SUBPACKAGES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


del _sys
