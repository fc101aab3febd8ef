"""Training-step time of the ARMA U-Net against the U-Net, side by side in one process.

Examples
--------
>>> from arma_experiments.segment.timing import time_unet_steps
>>> r = time_unet_steps(widths=(4, 8), batch_size=2, size=16, in_channels=1, out_channels=2, steps=2)
>>> sorted(r)[:3], r["ratio"] > 0
(['arma-unet_seconds', 'batch_size', 'ratio'], True)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch

from ..training import seeded, torch_threads
from .models import build_model

__all__ = ["time_unet_steps"]


def _step(model, optimizer, x, y) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def time_unet_steps(
    *,
    widths: Sequence[int],
    batch_size: int,
    size: int,
    in_channels: int,
    out_channels: int,
    steps: int = 20,
    warmup: int = 3,
    threads: int | None = None,
) -> dict:
    """Median seconds of one Adam training step (forward, backward, update) of the U-Net and
    the ARMA U-Net on the same batch, the two models' steps interleaved so that both see the
    same machine load; ``ratio`` = ARMA U-Net / U-Net.
    """
    with seeded(0):
        models = {
            name: build_model(name, in_channels=in_channels, out_channels=out_channels, widths=widths)
            for name in ("unet", "arma-unet")
        }
        x = torch.randn(batch_size, in_channels, size, size)
        y = torch.randn(batch_size, out_channels, size, size)
    optimizers = {n: torch.optim.Adam(m.parameters(), lr=1e-3) for n, m in models.items()}
    times: dict[str, list[float]] = {n: [] for n in models}
    with torch_threads(threads):
        for i in range(warmup + steps):
            for name, model in models.items():
                t = _step(model, optimizers[name], x, y)
                if i >= warmup:
                    times[name].append(t)
        used = torch.get_num_threads()
    med = {n: statistics.median(v) for n, v in times.items()}
    return {
        "unet_seconds": med["unet"],
        "arma-unet_seconds": med["arma-unet"],
        "ratio": med["arma-unet"] / med["unet"],
        "widths": list(widths),
        "batch_size": batch_size,
        "size": size,
        "threads": used,
        "steps": steps,
        "torch": torch.__version__,
    }
