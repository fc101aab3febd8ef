"""What an AR layer costs where it runs: inside a training step against the floor, and per thread
count on the planes of a U-Net. docs/performance.md, "twentieth pass", quotes runs.

Usage::

    THREADS=2 .venv/bin/python benchmarks/layer_floor.py step [N,C,H,W]   # default 4,64,16,16
    .venv/bin/python benchmarks/layer_floor.py planes
    .venv/bin/python benchmarks/layer_floor.py new

``step``: forward + backward of ``Conv2d(C, 128, 3)`` and of ``ARMA2d(C, 128, 3)`` (issue 13's
layer row) beside two floors, alternating blocks in one process (medians, ratios to the
convolution): ``conv*1``, the convolution followed by one elementwise product (what any extra
operation on the output costs in that step: its allocation, its pass over memory cold from the
convolution, its autograd node); ``conv+node``, the convolution followed by the layer's compiled
solve node called directly (the layer's kernels and node without the module around them; needs
the compiled node). Run it with freed memory kept (``MALLOC_TRIM_THRESHOLD_=4294967296
MALLOC_MMAP_THRESHOLD_=33554432``) to leave glibc's page faults out.

``planes``: ``AR2d`` forward and backward alone (best of 7 blocks of 20 calls, microseconds) on
issue 13's 16 x 16 layer and the U-Net's planes, at one and two torch threads in turn.

``new``: what a new ``theta`` costs a call (a U-Net calls each layer once per optimizer step),
one thread, at the U-Net's layer shapes: ``AR2d``'s forward with ``theta`` changed in place
before every call against the same forward with ``theta`` kept (medians of alternating blocks,
microseconds), and the line solver's plans of both directions for the circular and the zeros
boundary alone.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PLANES = [(4, 128, 16, 16), (16, 32, 16, 16), (16, 64, 8, 8), (16, 128, 4, 4), (16, 16, 32, 32)]


def step(shape: tuple[int, ...]) -> None:
    import cost
    import torch
    from timing import side_by_side

    from arma_core.nn import ARMA2d

    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(shape[1], 128, 3, padding=1)
    arma = cost._randomize_ar(ARMA2d(shape[1], 128, 3, padding=1))
    x = torch.randn(shape).requires_grad_(True)
    g = torch.randn((shape[0], 128) + shape[2:])

    def run(f, params):
        def one():
            x.grad = None
            for p in params:
                p.grad = None
            f(x).backward(g)

        return one

    fns = {"conv": run(conv, list(conv.parameters())), "arma": run(arma, list(arma.parameters()))}
    fns["conv*1"] = run(lambda x: conv(x) * 1.0, list(conv.parameters()))
    fns["arma"]()  # makes the layer's kept shortcut (the node with its plans bound)
    short = arma.ar.__dict__.get("_short")
    node = None if short is None else next((r for r in short.runs.values() if r is not None), None)
    if node is not None:

        def conv_node(x):
            return node(torch.nn.functional.conv2d(x, arma.weight, arma.bias, padding=1), True)

        fns["conv+node"] = run(conv_node, list(arma.parameters()))
    t = side_by_side(fns, 60, rounds=6)
    print(f"threads {torch.get_num_threads()}, {'x'.join(map(str, shape))}, ms (ratio to conv):")
    print("  " + ", ".join(f"{k} {v * 1e3:.3f} ({v / t['conv']:.3f})" for k, v in t.items()))


def planes() -> None:
    import torch

    from arma_core.nn import AR2d

    print("| planes | forward, 1 / 2 threads (us) | backward, 1 / 2 threads (us) |")
    print("|---|---|---|")
    before = torch.get_num_threads()
    try:
        for shape in PLANES:
            torch.manual_seed(0)
            m = AR2d(shape[1])
            x, g = torch.randn(*shape, requires_grad=True), torch.randn(*shape)
            best = {}
            for threads in (1, 2, 1, 2):
                torch.set_num_threads(threads)
                for _ in range(20):
                    m(x).backward(g)
                for _ in range(7):
                    t0 = time.perf_counter()
                    for _ in range(20):
                        m(x)
                    t1 = time.perf_counter()
                    for _ in range(20):
                        m(x).backward(g)
                    t2 = time.perf_counter()
                    f, b = (t1 - t0) / 20, (t2 - t1) / 20 - (t1 - t0) / 20
                    old = best.get(threads, (f, b))
                    best[threads] = (min(old[0], f), min(old[1], b))
            cells = [f"{best[1][i] * 1e6:.0f} / {best[2][i] * 1e6:.0f}" for i in range(2)]
            print(f"| {'x'.join(map(str, shape))} | " + " | ".join(cells) + " |")
    finally:
        torch.set_num_threads(before)


def new() -> None:
    import numpy as np
    import torch
    from timing import side_by_side

    from arma_core.backends import _lines
    from arma_core.filters import reparameterize_host
    from arma_core.nn import AR2d

    torch.set_num_threads(1)
    print("| planes | forward, theta kept (us) | forward, theta changed (us) | plans, circular / zeros (us) |")
    print("|---|---|---|---|")
    for shape in [(16, 8, 64, 64), (16, 16, 32, 32), (16, 32, 16, 16), (16, 64, 8, 8), (16, 128, 4, 4)]:
        torch.manual_seed(0)
        m, x = AR2d(shape[1]), torch.randn(*shape)
        with torch.no_grad():
            m.theta.normal_(0.0, 0.5)

        def changed():
            with torch.no_grad():
                m.theta.add_(1e-7)
            m(x)

        t = side_by_side({"kept": lambda: m(x), "changed": changed}, 300, rounds=3)
        taps = reparameterize_host(m.theta.detach().numpy().astype(np.float64), "strip")[0]
        plans = {}
        for b in ("circular", "zeros"):
            plans[b] = side_by_side({b: lambda: _lines.plan(taps, shape[2:], 1, b, False, {}, 1, both=True)}, 300)[b]
        cells = [f"{t['kept'] * 1e6:.0f}", f"{t['changed'] * 1e6:.0f}"]
        cells.append(f"{plans['circular'] * 1e6:.1f} / {plans['zeros'] * 1e6:.1f}")
        print(f"| {'x'.join(map(str, shape))} | " + " | ".join(cells) + " |")


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "step"
    if what == "step":
        step(tuple(int(s) for s in argv[1].split(",")) if len(argv) > 1 else (4, 64, 16, 16))
    elif what == "planes":
        planes()
    elif what == "new":
        new()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
