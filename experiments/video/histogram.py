"""Histogram of the learned AR coefficients of a trained video model (the paper's Figure 6)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["ar_coefficients", "plot_ar_histogram"]


@torch.no_grad()
def ar_coefficients(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """All AR taps of a model's ARMA layers, flattened.

    Every module with an ``ar`` submodule exposing ``taps()`` (``arma_core.nn.ARMA2d`` and
    friends) contributes its ``(C, k, Q, 3)`` taps.

    Returns
    -------
    dict
        ``"f_minus"``: the taps ``f_-1``; ``"f_plus"``: the taps ``f_1``; ``"sum"``: ``f_-1 + f_1``,
        whose modulus sets the reach of the AR filter (a factor's gain at frequency 0 or pi is
        ``1 / (1 - |f_-1 + f_1|)``); ``"layers"``: the number of AR layers. ``f_0 = 1`` always.

    Raises
    ------
    ValueError
        If the model has no AR layer (e.g. a plain ConvLSTM).
    """
    taps = []
    for module in model.modules():
        ar = getattr(module, "ar", None)
        if ar is not None and callable(getattr(ar, "taps", None)):
            taps.append(ar.taps().detach().cpu().double().reshape(-1, 3))
    if not taps:
        raise ValueError(f"{type(model).__name__} has no AR layers: nothing to plot")
    t = torch.cat(taps).numpy()
    return {"f_minus": t[:, 0], "f_plus": t[:, 2], "sum": t[:, 0] + t[:, 2], "layers": len(taps)}


#: a run's learned AR coefficients (:func:`ar_coefficients` of its evaluated weights), written
#: next to ``results.json`` by every ARMA run: Figure 6's record, a few kB, kept by
#: ``make video-records`` where the checkpoints (megabytes) are not
AR_COEFFICIENTS = "ar_coefficients.npz"


def save_ar_coefficients(coef: dict, path: str | os.PathLike) -> None:
    """Write :func:`ar_coefficients`'s ``coef`` to ``path`` (``.npz``: ``f_minus``, ``f_plus``,
    ``layers``; ``sum`` is recomputed on loading)."""
    np.savez(path, f_minus=coef["f_minus"], f_plus=coef["f_plus"], layers=np.int64(coef["layers"]))


def load_ar_coefficients(path: str | os.PathLike) -> dict:
    """What :func:`save_ar_coefficients` wrote, in :func:`ar_coefficients`'s form."""
    with np.load(path) as z:
        fm, fp, layers = z["f_minus"], z["f_plus"], int(z["layers"])
    return {"f_minus": fm, "f_plus": fp, "sum": fm + fp, "layers": layers}


def plot_ar_histogram(model: torch.nn.Module, path: str | os.PathLike, title: str = "") -> dict:
    """Save a PNG with histograms of ``f_-1``, ``f_1`` and ``f_-1 + f_1`` over all AR layers.

    Returns the summary printed by ``arma video --histogram``: counts, mean and max of
    ``|f_-1 + f_1|`` and the fraction of factors with ``|f_-1 + f_1| > 0.5``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coef = ar_coefficients(model)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, key, label in zip(axes, ("f_minus", "f_plus", "sum"), ("$f_{-1}$", "$f_{1}$", "$f_{-1} + f_{1}$")):
        ax.hist(coef[key], bins=60, range=(-1, 1), color="tab:blue")
        ax.set_xlabel(label)
        ax.set_xlim(-1, 1)
    axes[0].set_ylabel("count")
    fig.suptitle(title or "learned AR coefficients")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    s = np.abs(coef["sum"])
    return {
        "path": str(path),
        "layers": coef["layers"],
        "factors": int(s.size),
        "mean_abs_sum": float(s.mean()),
        "max_abs_sum": float(s.max()),
        "fraction_abs_sum_gt_0.5": float((s > 0.5).mean()),
    }
