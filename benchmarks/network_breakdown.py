"""Where an ARMA network's extra time goes, measured inside its training step.

Usage::

    THREADS=1 .venv/bin/python benchmarks/network_breakdown.py [unet|lstm] [rounds]

Four networks of ``cost.py``'s rows (the U-Net of the segmentation CPU preset, or the ConvLSTM
of the video CPU preset), each one Adam step per round, alternating in rounds:

- ``plain``: the convolutional network (``conv2d_gate``);
- ``arma``: the ARMA network (``arma2d_gate``, ``theta`` ~ N(0, 0.5^2));
- ``arma, no AR``: the same ARMA network with every AR solve replaced by the identity (its
  convolutions are the plain network's; the difference to ``arma`` is the whole AR part);
- ``arma, clone``: the AR solve replaced by an autograd node that clones its input forward and
  its gradient backward (the allocations and the node, without any AR work).

For ``arma`` it also times, inside the step and without a profiler (``time.perf_counter``
around the calls), the compiled kernels (``solve``, ``vjp``, ``plan``), the host
reparameterization of the new ``theta`` and the layer's ``_filter`` (the new filter built after
every optimizer step). Prints medians over the rounds, in ms per step.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np


class _Timers:
    """Accumulated seconds of wrapped callables, reset per step."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}

    def wrap(self, name: str, fn):
        self.total[name] = 0.0

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[name] += time.perf_counter() - t

        return timed

    def reset(self) -> None:
        for k in self.total:
            self.total[k] = 0.0


class _ExtProxy:
    """The compiled module with its kernels timed (everything else passed through)."""

    def __init__(self, ext, timers: _Timers) -> None:
        self._ext = ext
        for name in ("solve", "vjp", "plan"):
            setattr(self, name, timers.wrap(f"kernel {name}", getattr(ext, name)))

    def __getattr__(self, name):
        return getattr(self._ext, name)


def _networks(kind: str):
    import cost
    import torch

    from arma_core.nn import AR2d
    from arma_core.nn.models import arma2d_gate

    torch.manual_seed(0)
    if kind == "unet":
        make, loss = cost.unet_make, None
    else:
        make, loss = cost.video_case()

    class Clone(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, theta):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g.clone(), None

    nets = {"plain": make(), "arma": cost._randomize_ar(make(gate=arma2d_gate()))}
    nets["arma, no AR"] = cost._randomize_ar(make(gate=arma2d_gate()))
    nets["arma, clone"] = cost._randomize_ar(make(gate=arma2d_gate()))
    for m in nets["arma, no AR"].modules():
        if isinstance(m, AR2d):
            m._solve = lambda x, who, own=False: x
    for m in nets["arma, clone"].modules():
        if isinstance(m, AR2d):
            m._solve = (lambda layer: lambda x, who, own=False: Clone.apply(x, layer.theta))(m)
    if loss is None:  # the U-Net's batch, drawn after its networks as in cost.network_steps
        loss = cost.unet_loss()
    steps = {k: cost._training_step(n, torch.optim.Adam(n.parameters(), 1e-3), loss) for k, n in nets.items()}
    return steps


def main(argv: list[str]) -> None:
    kind = argv[0] if argv else "unet"
    if kind not in ("unet", "lstm"):
        raise SystemExit(f"network_breakdown: choose unet or lstm, got {kind!r}")
    rounds = int(argv[1]) if len(argv) > 1 else 12
    import torch

    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    import arma_core.nn.modules as modules
    from arma_core.backends import _lines

    if not _lines.available():
        raise SystemExit("network_breakdown: the compiled line solver is not built")
    timers = _Timers()
    proxy = _ExtProxy(_lines._ext(), timers)
    _lines._ext = lambda: proxy  # type: ignore[assignment]
    modules.reparameterize_host = timers.wrap("reparameterize_host", modules.reparameterize_host)
    layer = modules._ARNd
    layer._filter = timers.wrap("layer _filter", layer._filter)
    layer._solve = timers.wrap("layer _solve (forward)", layer._solve)

    steps = _networks(kind)
    for step in steps.values():
        for _ in range(2):
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    parts: list[dict[str, float]] = []
    for _ in range(rounds):
        for name, step in steps.items():
            timers.reset()
            t = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t)
            if name == "arma":
                parts.append(dict(timers.total))
    print(f"{kind}: {rounds} rounds, torch threads {torch.get_num_threads()}, ms per step")
    print("| network | median | 25th percentile | min |\n|---|---|---|---|")
    for name, v in times.items():
        a = np.asarray(v) * 1e3
        print(f"| {name} | {np.median(a):.1f} | {np.percentile(a, 25):.1f} | {a.min():.1f} |")
    print("\n| inside the arma step | median |\n|---|---|")
    for key in parts[0]:
        print(f"| {key} | {np.median([p[key] for p in parts]) * 1e3:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
