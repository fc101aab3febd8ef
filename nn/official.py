"""Load checkpoints of the official ARMA-Networks implementation (umd-huang-lab, 2020).

The official ``ARMA2d`` holds a ``moving_average`` convolution and an ``autoregressive`` part
whose parameter ``a.alpha`` has shape ``(T, P, 4)``: per output channel ``t`` and factor ``p``,
``(a0, a1)`` build the height-axis factor and ``(a2, a3)`` the width-axis factor through
``tanh``, a division by ``sqrt 2`` and a rotation by ``-pi/4`` -- the "diamond" region
``|f_-1| + |f_1| < 1`` -- and the AR step is a circular (FFT) solve, one factor after the other.
:func:`arma_core.official_to_theta` maps ``alpha`` to our ``theta`` layout ``(T, 2, P, 2)``,
which :func:`arma_core.reparameterize` with ``region="diamond"`` turns into the same taps.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

import arma_core

from .modules import ARMA2d

__all__ = ["load_official_state_dict", "official_keys_to_ours"]

_MA_W = "moving_average.weight"
_MA_B = "moving_average.bias"
_ALPHA = "autoregressive.a.alpha"


def _split(key: str, suffix: str) -> str | None:
    """The module prefix of ``key`` if it ends with ``suffix`` ("" or "features.3."), else None."""
    if key == suffix:
        return ""
    if key.endswith("." + suffix):
        return key[: -len(suffix)]
    return None


def official_keys_to_ours(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and convert) the official ARMA2d entries of ``state_dict``; others pass through.

    ``<prefix>moving_average.weight -> <prefix>weight``,
    ``<prefix>moving_average.bias -> <prefix>bias``,
    ``<prefix>autoregressive.a.alpha (T, P, 4) -> <prefix>ar.theta (T, 2, P, 2)``
    (:func:`arma_core.official_to_theta`). Every other key, e.g. a BatchNorm's, is kept, so a
    whole official network loads into a model with the same module names.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        An official ``state_dict``, or part of one.

    Returns
    -------
    dict of str to torch.Tensor
        The same entries under our names.

    Examples
    --------
    >>> import torch
    >>> from arma_core.nn import official_keys_to_ours
    >>> official = {"features.0.moving_average.weight": torch.zeros(8, 3, 3, 3),
    ...             "features.0.autoregressive.a.alpha": torch.zeros(8, 1, 4),
    ...             "features.1.running_mean": torch.zeros(8)}
    >>> {k: tuple(v.shape) for k, v in official_keys_to_ours(official).items()}
    {'features.0.weight': (8, 3, 3, 3), 'features.0.ar.theta': (8, 2, 1, 2), 'features.1.running_mean': (8,)}
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for suffix, ours in ((_MA_W, "weight"), (_MA_B, "bias"), (_ALPHA, "ar.theta")):
            prefix = _split(key, suffix)
            if prefix is not None:
                if suffix == _ALPHA:
                    if not isinstance(value, torch.Tensor) or value.dim() != 3 or value.shape[-1] != 4:
                        raise ValueError(
                            f"state_dict[{key!r}] must be the official alpha of shape (T, P, 4), "
                            f"got {tuple(getattr(value, 'shape', ()))}"
                        )
                    value = arma_core.official_to_theta(value)
                new = prefix + ours
                if new in out:
                    raise ValueError(f"state_dict has both {key!r} and an entry for {new!r}")
                out[new] = value
                break
        else:
            if key in out:
                raise ValueError(f"state_dict has both {key!r} and an official entry for it")
            out[key] = value
    return out


def _strip_data_parallel(module: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """``state_dict`` without the leading ``"module."`` of ``DataParallel`` when ``module``'s own
    keys do not have it."""
    own = module.state_dict().keys()
    keys = list(state_dict)
    if keys and all(k.startswith("module.") for k in keys) and not any(k.startswith("module.") for k in own):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return state_dict


def _check_holds_alpha(key: str, alpha: torch.Tensor, target: nn.Module, where: str) -> None:
    """ValueError unless ``target`` is an ARMA2d whose AR filter means what ``alpha`` means."""
    if not isinstance(target, ARMA2d) or target.ar is None:
        raise ValueError(
            f"{key!r} is an official AR parameter but {where} is a "
            f"{type(target).__name__}{' with ar_order=0' if isinstance(target, ARMA2d) else ''}"
            "; it must be an "
            "arma_core.nn.ARMA2d with ar_order = a_kernel_size // 2 and ar_region='diamond'"
        )
    ar = target.ar
    problems = []
    if ar.region != "diamond":
        problems.append(f"ar_region={ar.region!r} (the official taps are 'diamond')")
    if ar.boundary != "circular":
        problems.append(f"ar_boundary={ar.boundary!r} (the official solve is 'circular')")
    if ar.dilation != 1:
        problems.append(f"ar_dilation={ar.dilation} (the official code has no AR dilation)")
    if problems:
        raise ValueError(f"{where} cannot hold the official AR filter: " + "; ".join(problems))
    T, P = (tuple(alpha.shape) + (None, None))[:2]
    if alpha.dim() != 3 or alpha.shape[-1] != 4 or T != ar.channels or P != ar.order:
        raise ValueError(
            f"state_dict[{key!r}] has shape {tuple(alpha.shape)}, but {where} expects the "
            f"official (T, P, 4) = ({ar.channels}, {ar.order}, 4): build it with "
            f"out_channels = T and ar_order = P = a_kernel_size // 2"
        )


def _check_targets(module: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool) -> None:
    """Check every official ``alpha`` of ``state_dict`` against the layer it loads into."""
    modules = dict(module.named_modules())
    for key, alpha in state_dict.items():
        prefix = _split(key, _ALPHA)
        if prefix is None:
            continue
        name = prefix[:-1]
        target = modules.get(name)
        if target is None:
            if strict:
                raise ValueError(f"state_dict has {key!r} but the model has no module {name!r}")
            continue
        _check_holds_alpha(key, alpha, target, f"module {name!r}" if name else "the module")


def load_official_state_dict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True):
    """Load an official ARMA-Networks checkpoint into our ``ARMA2d`` layer(s).

    Build the layer with the official hyperparameters and ``ar_region="diamond"``::

        official: ARMA2d(in_channels, out_channels, w_kernel_size=3, w_padding=1, a_kernel_size=3)
        ours:     ARMA2d(in_channels, out_channels, 3, padding=1, ar_order=3 // 2,
                         ar_region="diamond")          # ar_boundary="circular", ar_dilation=1

    (``ar_order = a_kernel_size // 2``; the official ``w_stride``, ``w_dilation``,
    ``w_groups`` and ``bias`` are the convolution's ``stride``, ``dilation``, ``groups`` and
    ``bias``.) The loaded layer then gives the official forward pass's output up to float
    rounding, except that inputs smaller than ``2 * ar_order + 1`` pixels per axis raise
    ``ValueError`` instead of being returned unfiltered.

    Parameters
    ----------
    module : nn.Module
        An :class:`ARMA2d`, or a model containing ARMA2d layers at the module names the
        checkpoint uses (its other entries, e.g. BatchNorm statistics, load as usual).
    state_dict : mapping
        The official ``state_dict`` (``moving_average.weight``, optional
        ``moving_average.bias``, ``autoregressive.a.alpha`` of shape ``(T, P, 4)``, each
        possibly under a module prefix). A leading ``"module."`` written by ``DataParallel`` is
        stripped when ``module``'s own keys do not have it.
    strict : bool, default True
        As for ``nn.Module.load_state_dict``.

    Returns
    -------
    NamedTuple
        The missing and unexpected keys, from ``load_state_dict``.

    Raises
    ------
    ValueError
        If a target layer is not an ARMA2d with ``ar_region="diamond"``, ``ar_dilation=1`` and
        ``ar_boundary="circular"`` (the official taps mean something else under another
        region or boundary; change ``layer.ar.boundary`` after loading to fine-tune with
        another one), or if ``alpha``'s shape does not match ``ar.theta``'s.

    Examples
    --------
    >>> import torch
    >>> import arma_core
    >>> from arma_core.nn import ARMA2d, load_official_state_dict
    >>> g = torch.Generator().manual_seed(0)
    >>> official = {"moving_average.weight": torch.randn(8, 3, 3, 3, generator=g),
    ...             "autoregressive.a.alpha": torch.randn(8, 1, 4, generator=g)}   # T = 8, P = 1
    >>> layer = ARMA2d(3, 8, 3, padding=1, bias=False, ar_order=1, ar_region="diamond")
    >>> load_official_state_dict(layer, official)
    <All keys matched successfully>
    >>> taps = arma_core.reparameterize(arma_core.official_to_theta(official["autoregressive.a.alpha"]), "diamond")
    >>> torch.equal(layer.ar.taps(), taps), tuple(taps.shape)    # (T, 2 axes, P, 3)
    (True, (8, 2, 1, 3))
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    state_dict = _strip_data_parallel(module, state_dict)
    _check_targets(module, state_dict, strict)
    return module.load_state_dict(official_keys_to_ours(state_dict), strict=strict)
