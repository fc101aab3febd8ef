"""Effective receptive field of any PyTorch model through autograd (the paper's Definition 2).

``erf(model, input_shape)`` returns the centred ERF map of the model's output (or of an
intermediate layer's output) at one or several output pixels, as a NumPy array that the radius
functions of :mod:`arma_core.erf` measure (Eq. 3 :func:`~arma_core.erf.radius`, the variance form
:func:`~arma_core.erf.variance_radius` that Theorem 3 is about). For linear ARMA networks
:func:`arma_core.erf.linear_erf` gives the same map without torch.

Conventions
-----------
- Normalisation: every gradient map ``|dY[n, t, o] / dX[n, s, :]|`` is divided by its sum
  over input positions (the intended normalisation of Definition 2, over offsets; see
  ``docs/erf.md``) before the maps are averaged.
- Channels: ``channels="sum"`` (as the official script) differentiates the sum over output
  channels, one backward pass per output pixel; ``"each"`` is Definition 2 exactly, one
  backward pass per output channel ``t`` with every ``(s, t)`` map normalised on its own.
- Recentring: output pixel ``o`` lies over input pixel ``floor((o_j + 1/2) n_j / m_j - 1/2)``
  (``o_j`` itself at equal resolution, ``s o_j`` for a stride-``s`` "same" convolution); the
  map is shifted so that this pixel lands on the centre ``n_j // 2``, with zero fill (offsets
  beyond the window are dropped: right for zero-padded models) or, with ``wrap=True``,
  periodically (right for circular models, whose offsets wrap).
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["erf"]


class _Captured(Exception):
    """Raised by the forward hook to stop the forward pass once the layer's output is taken."""


def _find_layer(model: nn.Module, layer):
    if isinstance(layer, nn.Module):
        for _, m in model.named_modules():
            if m is layer:
                return m
        raise ValueError(f"layer={type(layer).__name__} is not a submodule of the model")
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer in modules:
            return modules[layer]
        names = [n for n in modules if n]
        shown = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        raise ValueError(f"layer={layer!r} is not a module name of the model; names are: {shown}")
    raise TypeError(f"layer must be None, a module name (str) or an nn.Module, got {type(layer).__name__}")


def _first_tensor(out, where):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"{where} returned {type(out).__name__}; erf needs a tensor (or a tuple starting with one)")


def _forward(model, x, layer):
    if layer is None:
        return _first_tensor(model(x), "the model")
    module = _find_layer(model, layer)
    box = []

    def hook(_module, _inputs, output):
        box.append(_first_tensor(output, f"layer {layer!r}"))
        raise _Captured

    handle = module.register_forward_hook(hook)
    try:
        model(x)
    except _Captured:
        pass
    finally:
        handle.remove()
    if not box:
        raise ValueError(f"layer {layer!r} was not called during the forward pass")
    return box[0]


def _shift_zero_fill(a: np.ndarray, shift: Sequence[int]) -> np.ndarray:
    """``out[..., i + shift] = a[..., i]`` over the trailing ``len(shift)`` axes, zeros elsewhere."""
    out = np.zeros_like(a)
    src, dst = [], []
    for s, n in zip(shift, a.shape[a.ndim - len(shift) :]):
        if abs(s) >= n:
            return out
        src.append(slice(max(0, -s), n - max(0, s)))
        dst.append(slice(max(0, s), n - max(0, -s)))
    lead = (slice(None),) * (a.ndim - len(shift))
    out[lead + tuple(dst)] = a[lead + tuple(src)]
    return out


def _positions(positions, out_spatial):
    k = len(out_spatial)
    if positions is None:
        return [tuple(n // 2 for n in out_spatial)]
    if isinstance(positions, str):
        if positions != "all":
            raise ValueError(f"positions must be None, 'all' or a sequence of output positions, got {positions!r}")
        return [tuple(int(i) for i in idx) for idx in np.ndindex(*out_spatial)]
    pos = [tuple(int(i) for i in np.atleast_1d(p)) for p in positions] if k else [()]
    if not pos:
        raise ValueError("positions is empty")
    for p in pos:
        if len(p) != k or any(not 0 <= i < n for i, n in zip(p, out_spatial)):
            raise ValueError(f"output position {p} is not inside the output's spatial shape {tuple(out_spatial)}")
    return pos


def _given_input(input, input_shape) -> torch.Tensor:
    """A detached copy of the caller's ``input`` (checked against ``input_shape``)."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if input_shape is not None and tuple(input_shape) != tuple(input.shape):
        raise ValueError(f"input_shape {tuple(input_shape)} disagrees with input.shape {tuple(input.shape)}")
    x = input.detach().clone()
    if not x.is_floating_point():
        raise TypeError(f"input must be floating point, got {x.dtype}")
    return x


def _random_input(model: nn.Module, input_shape, seed, dtype, device) -> torch.Tensor:
    """A standard-normal input of ``input_shape`` from a private generator seeded with ``seed``."""
    if input_shape is None:
        raise ValueError("give input_shape (N, C, n_1, ..., n_k) or input")
    shape = tuple(input_shape)
    if len(shape) < 3 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape):
        raise ValueError(
            f"input_shape must be (N, C, n_1, ..., n_k) with positive ints and at least one "
            f"spatial axis, got {input_shape!r}"
        )
    params = next(model.parameters(), None)
    dtype = dtype or (params.dtype if params is not None and params.is_floating_point() else torch.float32)
    device = device or (params.device if params is not None else "cpu")
    gen = torch.Generator(device="cpu")
    if seed is not None:
        gen.manual_seed(int(seed))
    else:
        gen.seed()
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)


def _input(model: nn.Module, input_shape, input, seed, dtype, device) -> torch.Tensor:
    """The input the ERF is measured at, ``(N, C, n_1, ..., n_k)``, requiring grad."""
    x = (
        _given_input(input, input_shape)
        if input is not None
        else _random_input(model, input_shape, seed, dtype, device)
    )
    if x.ndim < 3:
        raise ValueError(f"the input must have shape (N, C, n_1, ..., n_k), got {tuple(x.shape)}")
    return x.requires_grad_(True)


def _check_output(out: torch.Tensor, x: torch.Tensor) -> None:
    if out.ndim < 2 or out.shape[0] != x.shape[0]:
        raise ValueError(
            f"the output must have shape (N, T, ...) with N = {x.shape[0]} samples, got {tuple(out.shape)}"
        )
    if out.ndim > 2 and out.ndim != x.ndim:
        raise ValueError(f"the output has {out.ndim - 2} spatial axes, the input {x.ndim - 2}")


def _targets(channels, T: int) -> list[int | None]:
    """The output channels to differentiate, one backward pass each (None: their sum)."""
    if channels == "sum":
        return [None]
    if channels == "each":
        return list(range(T))
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, bool):
        if not -T <= channels < T:
            raise ValueError(f"channels={channels} is out of range for an output with {T} channels")
        return [int(channels)]
    raise ValueError(f"channels must be 'sum', 'each' or an int, got {channels!r}")


def _normalised_maps(g: torch.Tensor) -> np.ndarray:
    """``|g|`` per sample and input channel, each map divided by its sum; zero maps dropped.

    ``g`` has shape ``(N, S, *in)``; the result ``(M, *in)`` float64 with ``M <= N S``.
    """
    in_spatial = tuple(g.shape[2:])
    a = g.detach().abs().to(device="cpu", dtype=torch.float64).numpy().reshape((-1,) + in_spatial)
    sums = a.reshape(a.shape[0], -1).sum(axis=1)
    keep = sums > 0
    return a[keep] / sums[keep].reshape((-1,) + (1,) * len(in_spatial))


def _recentre(maps: np.ndarray, o, in_spatial, out_spatial, wrap: bool) -> np.ndarray:
    """Shift ``maps (M, *in)`` so that the input pixel under output pixel ``o`` is the centre."""
    under = tuple(int(math.floor((oj + 0.5) * n / m - 0.5)) for oj, n, m in zip(o, in_spatial, out_spatial))
    shift = tuple(n // 2 - u for n, u in zip(in_spatial, under))
    if wrap:
        return np.roll(maps, shift, axis=tuple(range(1, len(in_spatial) + 1)))
    return _shift_zero_fill(maps, shift)


def _mean_map(x: torch.Tensor, out: torch.Tensor, pos, targets, wrap: bool) -> np.ndarray:
    """The average of the normalised, recentred maps of every (output pixel, target channel)."""
    in_spatial, out_spatial = tuple(x.shape[2:]), tuple(out.shape[2:])
    total = np.zeros(in_spatial)
    count = 0
    jobs = [(o, t) for o in pos for t in targets]
    for i, (o, t) in enumerate(jobs):
        sel = out[(slice(None), slice(None) if t is None else t) + o]
        (g,) = torch.autograd.grad(sel.sum(), x, retain_graph=i < len(jobs) - 1)
        maps = _normalised_maps(g)
        if maps.shape[0] == 0:
            continue
        if out_spatial:
            maps = _recentre(maps, o, in_spatial, out_spatial, wrap)
        total += maps.sum(axis=0)
        count += maps.shape[0]
    if count == 0 or total.sum() <= 0:
        raise ValueError("the selected output does not depend on the input (all gradients are zero)")
    return total / total.sum()


def erf(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    *,
    input: torch.Tensor | None = None,
    layer: str | nn.Module | None = None,
    channels: str | int = "sum",
    positions=None,
    wrap: bool = False,
    seed: int | None = 0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Effective receptive field (Definition 2) of a PyTorch model, by autograd.

    For every requested output pixel ``o`` the gradient ``dY[n, t, o] / dX[n, s, :]`` is taken,
    its absolute value normalised over input positions, recentred on the input pixel under ``o``
    and averaged over ``n``, ``s``, ``t`` and ``o`` (conventions: :mod:`arma_core.nn.erf`).

    Parameters
    ----------
    model : torch.nn.Module
        ``model(x)`` returns a tensor ``(N, T, m_1, ..., m_k)`` or ``(N, T)`` (or a tuple starting
        with one). Its train/eval mode is kept: call ``eval()`` so batch norm does not couple samples.
    input_shape : sequence of int, optional
        ``(N, S, n_1, ..., n_k)`` of a random standard-normal input drawn with ``seed``; the ERF
        of a non-linear model depends on the input, and ``N > 1`` averages over samples.
    input : torch.Tensor, optional
        This input instead, shape ``(N, S, n_1, ..., n_k)``; it is not modified.
    layer : str or torch.nn.Module, optional
        Measure this submodule's output (a name of ``model.named_modules()``, or the module):
        a forward hook takes its first output and stops the forward pass there.
    channels : {"sum", "each"} or int
        Differentiate the sum over output channels (default), each output channel (Definition
        2 exactly), or one output channel.
    positions : None, "all" or sequence of tuples
        Output pixels ``o``: default the centre ``m_j // 2``; ``"all"``: every output pixel.
    wrap : bool
        Recentre periodically (circular models) instead of with zero fill.
    seed : int or None
        Of the random input (a private ``torch.Generator``; global RNG state untouched).
    dtype, device : optional
        Of the random input; default the model's first parameter's (else float32 on the CPU).

    Returns
    -------
    numpy.ndarray, float64, shape ``(n_1, ..., n_k)``
        Non-negative map summing to 1; index ``n_j // 2`` (per axis) is the input pixel under
        the output pixel, ``c + q`` the input pixel at offset ``q``. For a strided output
        ``(m_1, ..., m_k)``, pixel ``o`` lies over input pixel ``floor((o_j + 1/2) n_j / m_j - 1/2)``.

    Raises
    ------
    ValueError, TypeError
        Bad shapes, an unknown layer, a channel out of range, or an output that does not depend
        on the input.

    Examples
    --------
    >>> import torch
    >>> from arma_core.erf import variance_radius
    >>> from arma_core.nn import ARMA2d
    >>> from arma_core.nn.erf import erf
    >>> layer = ARMA2d(1, 1, 3, padding=1, ar_init=0.8)
    >>> _ = torch.nn.init.constant_(layer.weight, 1 / 9)     # a linear layer: the ERF is exact
    >>> m = erf(layer, (1, 1, 65, 65))
    >>> m.shape, round(variance_radius(m), 3)      # sqrt(2 (8/12 + 0.8/0.2)): the variances add
    ((65, 65), 3.055)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x = _input(model, input_shape, input, seed, dtype, device)
    with torch.enable_grad():
        out = _forward(model, x, layer)
    _check_output(out, x)
    targets = _targets(channels, out.shape[1])
    return _mean_map(x, out, _positions(positions, tuple(out.shape[2:])), targets, wrap)


class _CallableModule(types.ModuleType):
    """Importing this submodule rebinds ``arma_core.nn.erf`` from the function to the module;
    making the module callable keeps ``arma_core.nn.erf(model, ...)`` working either way."""

    def __call__(self, *args, **kwargs):
        return erf(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
