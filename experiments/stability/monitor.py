"""Where a network's AR filters are relative to the stable region, during training.

For every factor ``(f_-1, f_0 = 1, f_1)`` of every ARMA layer: the smallest modulus of its
frequency response over the unit circle (:func:`arma_core.stability_margin`; 0 means a zero on
the unit circle, a singular filter) and ``|f_-1 + f_1|``. The strip ``|f_-1 + f_1| < 1`` is the
connected set of non-singular factors that contains the identity, so a factor with
``|f_-1 + f_1| >= 1`` has *crossed* a singular filter on its way out (its margin passed through
0), whatever its margin is afterwards.
"""

from __future__ import annotations

import math
from typing import Protocol, cast

import torch

import arma_core

__all__ = ["ar_layers", "ar_state", "layer_sums"]


class _HasTaps(Protocol):
    def taps(self) -> torch.Tensor: ...


def _ar_taps(module: torch.nn.Module) -> torch.Tensor:
    """``module.ar.taps()`` of a module that :func:`ar_layers` returned (it checked the method)."""
    return cast(_HasTaps, module.ar).taps()


def ar_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``(qualified name, module)`` of every module with an AR part (``module.ar.taps()``)."""
    out = []
    for name, module in model.named_modules():
        ar = getattr(module, "ar", None)
        if ar is not None and callable(getattr(ar, "taps", None)):
            out.append((name, module))
    return out


@torch.no_grad()
def layer_sums(model: torch.nn.Module) -> dict[str, float]:
    """Largest ``|f_-1 + f_1|`` per AR layer (NaN when a layer's taps are not finite)."""
    out = {}
    for name, module in ar_layers(model):
        t = _ar_taps(module).detach()
        out[name] = float((t[..., 0] + t[..., 2]).abs().max()) if torch.isfinite(t).all() else math.nan
    return out


@torch.no_grad()
def ar_state(model: torch.nn.Module) -> dict:
    """Summary of all AR factors of ``model``.

    Returns
    -------
    dict
        ``min_margin``: the smallest response modulus over all factors (NaN if a tap is not
        finite, None without AR layers); ``max_abs_sum``: the largest ``|f_-1 + f_1|``;
        ``worst_layer``: the layer holding it; ``outside``: how many factors have
        ``|f_-1 + f_1| >= 1``; ``finite``: whether every tap is finite.

    Examples
    --------
    >>> from arma_core.nn import ARMA2d
    >>> net = torch.nn.Sequential(ARMA2d(1, 2, 3, padding=1, ar_region="raw"))
    >>> with torch.no_grad():
    ...     net[0].ar.theta[0, 0, 0] = torch.tensor([0.7, 0.6])
    >>> s = ar_state(net)
    >>> round(s["max_abs_sum"], 6), s["worst_layer"], s["outside"], round(s["min_margin"], 3)
    (1.3, '0', 1, 0.064)
    """
    layers = ar_layers(model)
    if not layers:
        return {"min_margin": None, "max_abs_sum": None, "worst_layer": None, "outside": 0, "finite": True}
    margin, worst, worst_name, outside, finite = math.inf, -1.0, None, 0, True
    for name, module in layers:
        t = _ar_taps(module).detach()
        if not torch.isfinite(t).all():
            finite, worst_name = False, worst_name or name
            continue
        s = (t[..., 0] + t[..., 2]).abs()
        margin = min(margin, float(arma_core.stability_margin(t).min()))
        outside += int((s >= 1).sum())
        if float(s.max()) > worst:
            worst, worst_name = float(s.max()), name
    return {
        "min_margin": margin if finite else math.nan,
        "max_abs_sum": worst if finite else math.nan,
        "worst_layer": worst_name,
        "outside": outside,
        "finite": finite,
    }
