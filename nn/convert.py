"""``armafy``: turn every ``nn.Conv{1,2,3}d`` of a model into the matching ARMA layer."""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from .modules import ARMA1d, ARMA2d, ARMA3d

__all__ = ["armafy"]

_TARGETS = {nn.Conv1d: ARMA1d, nn.Conv2d: ARMA2d, nn.Conv3d: ARMA3d}
_AR_OPTIONS = ("ar_order", "ar_boundary", "ar_region", "ar_dilation", "ar_init")

NameFilter = str | Iterable[str] | Callable[[str], bool] | None


def _matcher(spec: NameFilter, arg: str) -> Callable[[str], bool] | None:
    """A predicate on qualified module names; ``None`` means "no filter"."""
    if spec is None:
        return None
    if callable(spec):
        return lambda name: bool(spec(name))
    patterns = [spec] if isinstance(spec, str) else list(spec)
    for p in patterns:
        if not isinstance(p, str):
            raise TypeError(f"{arg} must be a name pattern, a list of patterns or a callable, got an item {p!r}")

    def match(name: str) -> bool:
        # "layer1" selects layer1 itself and everything below it; globs use fnmatch.
        return any(name == p or name.startswith(p + ".") or fnmatch.fnmatchcase(name, p) for p in patterns)

    return match


def _convert_one(conv: nn.Module, ar_options: dict) -> nn.Module:
    """The ARMA layer with ``conv``'s hyperparameters and *its* Parameter objects."""
    cls: Any = _TARGETS[type(conv)]  # type: ignore[index]  # callers pass convolutions only
    weight = conv.weight
    arma: Any = cls(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,  # a tuple, or the string "same" / "valid" as given
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device="meta",  # the convolution's own tensors are moved in below, no extra copy
        dtype=weight.dtype,
        **ar_options,
    )
    # Reuse the very Parameter objects: outputs stay identical and an optimizer that already
    # holds them keeps working (only the new ``ar.theta`` needs adding).
    arma.weight = conv.weight
    arma.bias = conv.bias
    if arma.ar is not None:
        arma.ar.to_empty(device=weight.device)
        arma.ar.reset_parameters()
    arma.train(conv.training)
    return arma


def _check_ar_options(ar_options: dict) -> None:
    unknown = sorted(set(ar_options) - set(_AR_OPTIONS))
    if unknown:
        raise TypeError(
            f"armafy() got unexpected keyword argument(s) {', '.join(unknown)}; the AR options "
            f"are {', '.join(_AR_OPTIONS)}"
        )


def _selector(keep, drop) -> Callable[[str, nn.Module], bool]:
    """Whether the module of a name is a convolution to convert, given the name filters."""

    def selected(name: str, module: nn.Module) -> bool:
        if type(module) not in _TARGETS:
            return False
        if keep is not None and not keep(name):
            return False
        return drop is None or not drop(name)

    return selected


def _replace_below(model: nn.Module, selected: Callable[[str, nn.Module], bool], ar_options: dict) -> None:
    """Replace, in place, every selected convolution below ``model`` by its ARMA layer.

    A module reachable under several names is visited once: a shared convolution becomes one
    shared ARMA layer.
    """
    done: dict[int, nn.Module] = {}

    def walk(parent: nn.Module, prefix: str) -> None:
        after_ar = False
        for child_name, child in list(parent._modules.items()):
            if child is None:
                continue
            if after_ar and isinstance(parent, nn.Sequential) and getattr(child, "inplace", False):
                # the AR solve keeps its output for the backward pass (Theorem 4): an in-place
                # activation right after it would overwrite that output
                # torch types Module.__setattr__'s value as Tensor | Module, but plain attributes
                # such as the activations' bool `inplace` are set through it too
                child.inplace = False  # type: ignore[assignment]
            name = f"{prefix}{child_name}"
            if id(child) in done:
                parent._modules[child_name] = done[id(child)]
            elif selected(name, child):
                done[id(child)] = _convert_one(child, ar_options)
                parent._modules[child_name] = done[id(child)]
            else:
                done[id(child)] = child
                walk(child, name + ".")
            after_ar = getattr(parent._modules[child_name], "ar", None) is not None

    walk(model, "")


def armafy(
    model: nn.Module,
    *,
    include: NameFilter = None,
    exclude: NameFilter = None,
    inplace: bool = False,
    **ar_options,
) -> nn.Module:
    """Replace every ``nn.Conv1d/2d/3d`` in ``model`` by ``ARMA1d/2d/3d``.

    The new layers take over the convolutions' hyperparameters (stride, padding including
    ``"same"``, dilation, groups, ``padding_mode``), their ``weight`` and ``bias`` Parameters,
    device, dtype and train/eval mode, and add an AR filter at the identity (``ar_init=0``), so
    the converted model computes exactly what the original computed (up to float rounding of
    the identity solve) until training moves the AR coefficients.

    Parameters
    ----------
    model : nn.Module
        Any model; it may itself be a convolution.
    include, exclude : str, list of str, or callable, optional
        Filters on qualified module names as in ``model.named_modules()`` (e.g.
        ``"layer1.0.conv1"``). A string pattern selects the module of that name, everything
        below it (``"layer4"`` selects ``"layer4.1.conv2"``) and names matching it as an
        ``fnmatch`` glob (``"*.conv1"``); a callable gets the name and returns a bool. A
        convolution is converted when it matches ``include`` (default: all) and does not match
        ``exclude`` (default: none). Use them to keep, e.g., convolutions whose outputs are too
        small for the AR filter (< 3 pixels per axis) or a stem that sees raw pixels.
    inplace : bool, default False
        ``False`` converts a deep copy and leaves ``model`` untouched; ``True`` converts
        ``model`` itself (its convolutions' Parameters become the ARMA layers' Parameters).
    **ar_options
        ``ar_order``, ``ar_boundary``, ``ar_region``, ``ar_dilation``, ``ar_init`` as for
        :class:`ARMA2d`. With ``ar_init > 0`` the outputs no longer equal the original's.

    Returns
    -------
    nn.Module
        The converted model (``model`` itself when ``inplace=True`` unless ``model`` is a
        convolution, which cannot change class in place).

    Notes
    -----
    Only modules whose type is exactly ``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Conv3d`` are
    converted: subclasses (weight-standardised convolutions, layers that are already ARMA,
    uninitialised ``nn.LazyConv2d``) and transposed convolutions keep their own behaviour.
    Hooks on a converted convolution are not carried over; a convolution reachable under
    several names is converted once and stays shared.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from arma_core.nn import armafy
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    >>> converted = armafy(model, exclude="0")           # keep the stem a plain convolution
    >>> [type(m).__name__ for m in converted]
    ['Conv2d', 'ReLU', 'ARMA2d']
    >>> x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> converted(x).shape, torch.allclose(converted(x), model(x), atol=1e-6)    # AR at identity
    (torch.Size([2, 4, 16, 16]), True)
    >>> converted[2].ar.theta.shape                       # (out_channels, 2 axes, ar_order, 2)
    torch.Size([4, 2, 1, 2])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_ar_options(ar_options)
    selected = _selector(_matcher(include, "include"), _matcher(exclude, "exclude"))
    if not inplace:
        model = copy.deepcopy(model)
    if selected("", model):
        return _convert_one(model, ar_options)
    _replace_below(model, selected, ar_options)
    return model
