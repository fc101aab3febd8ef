"""Training-step times of the video models side by side in one process (``arma video --time-steps``).

The models are timed in turn, round after round, so a change of the machine's load affects all
of them alike; the ratio of each model's median to ConvLSTM (size 3)'s is what the docs quote
(e.g. how much an ARMA-LSTM step costs over the ConvLSTM it extends).

Examples
--------
>>> from arma_experiments.video.models import NetworkSize
>>> t = step_times(["convlstm3", "arma-lstm"], NetworkSize(4, 2, 1, 0), canvas_size=8,
...                batch_size=2, rounds=2, frames=(2, 2))
>>> sorted(t), t["convlstm3"]["ratio"]
(['arma-lstm', 'convlstm3'], 1.0)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch

from .models import NetworkSize, build_video_model, count_parameters
from .train import prediction_loss

__all__ = ["step_times"]


def step_times(
    models: Sequence[str],
    size: NetworkSize,
    canvas_size: int = 32,
    batch_size: int = 16,
    rounds: int = 5,
    frames: tuple[int, int] = (10, 10),
    loss: str = "bce",
    reference: str = "convlstm3",
) -> dict[str, dict]:
    """Median forward + backward + Adam step time of each model on random frames.

    Parameters
    ----------
    models : sequence of str
        Names of :data:`~arma_experiments.video.models.VIDEO_MODELS`.
    size : NetworkSize
    canvas_size, batch_size : int
        Frame side and sequences per step.
    rounds : int
        Timed rounds (each model once per round) after one untimed warm-up round.
    frames : (int, int)
        Input and future frames.
    loss : {"bce", "l1mse"}
    reference : str
        The model the ratios are taken to (timed too when missing from ``models``).

    Returns
    -------
    dict
        Per model: ``seconds`` (median), ``all`` (every round), ``params``, and ``ratio`` to the
        reference's median.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds!r}")
    names = list(dict.fromkeys([reference, *models]))
    nets = {}
    for name in names:
        net = build_video_model(name, size)
        nets[name] = (net, torch.optim.Adam(net.parameters(), lr=1e-3))
    x = torch.rand(batch_size, sum(frames), 1, canvas_size, canvas_size, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds + 1):
        for name, (net, opt) in nets.items():
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            prediction_loss(net(x, *frames, logits=True), x[:, 1:], loss).backward()
            opt.step()
            if r:
                times[name].append(time.perf_counter() - start)
    ref = statistics.median(times[reference])
    return {
        name: {
            "seconds": statistics.median(t),
            "all": t,
            "params": count_parameters(nets[name][0]),
            "ratio": statistics.median(t) / ref,
        }
        for name, t in times.items()
        if name in models
    }
