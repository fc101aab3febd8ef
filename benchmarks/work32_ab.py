"""The line solver's float32 work copies against its float64 ones, side by side in one process.

Usage::

    THREADS=1 .venv/bin/python benchmarks/work32_ab.py [rounds] [networks]

For float32 planes (one factor per axis, ``large.theta_like``'s taps for ``AR2d(C)``) at the
sizes of issue 13's layer rows and of the U-Net's levels, ``circular`` and ``zeros``, it prints
the best time of the compiled ``solve`` and ``solve_vjp`` (with the taps' gradient) with
``_lines_c.set_work32(True)`` and ``(False)`` alternating in rounds, and the median time of
``AR2d(C)`` forward + backward under both settings (alternating blocks); ratios above 1 mean
the float32 work copies are faster. With ``networks``, instead: issue 13's two network rows
(``benchmarks/cost.py``'s ARMA U-Net and ARMA-LSTM training steps against the U-Net and the
ConvLSTM), the ARMA step once with each setting, the three in alternating blocks. One thread.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from large import theta_like
from timing import side_by_side

KERNEL_SHAPES = [(16, 128, 4, 4), (16, 64, 8, 8), (4, 128, 16, 16), (16, 128, 32, 32), (8, 128, 64, 64)]
LAYER_SHAPES = [(4, 128, 16, 16), (16, 128, 32, 32), (8, 128, 64, 64)]


def _kernels(shape, boundary, rounds, ext):
    import torch

    from arma_core.backends import _lines
    from arma_core.nn import AR2d

    taps = theta_like(AR2d(shape[1]), 1).taps().detach().numpy()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    g = rng.standard_normal(shape, dtype=np.float32)
    y, w = np.empty_like(x), np.empty_like(x)
    kw = dict(boundary=boundary, dilation=1, threads=1)
    best = {(k, f): np.inf for k in ("solve", "vjp") for f in (True, False)}
    with torch.no_grad():
        for _ in range(rounds):
            for flag in (True, False):
                ext.set_work32(flag)
                for kind in ("solve", "vjp"):
                    for _ in range(3):
                        t0 = time.perf_counter()
                        if kind == "solve":
                            _lines.solve(x, taps, out=y, **kw)
                        else:
                            _lines.solve_vjp(y, g, taps, out=w, need_taps=True, **kw)
                        best[kind, flag] = min(best[kind, flag], time.perf_counter() - t0)
    return best


def _layer(shape, rounds, ext):
    import torch

    from arma_core.nn import AR2d

    ar = theta_like(AR2d(shape[1]), 1)
    x = torch.randn(shape).requires_grad_(True)
    g = torch.randn(shape)

    def run(flag):
        def step():
            ext.set_work32(flag)
            x.grad = None
            ar.zero_grad(set_to_none=True)
            ar(x).backward(g)

        return step

    reps = max(rounds, int(2e5 // np.prod(shape[1:])) * rounds // 3)
    return side_by_side({"w32": run(True), "w64": run(False)}, reps, rounds=rounds)


def _networks(rounds, ext):
    """The network rows of ``cost.py`` with float32 and float64 work copies: ``{row: (w64, w32)}``."""
    import cost

    def flagged(flag, step):
        def run():
            ext.set_work32(flag)
            step()

        return run

    out = {}
    for network, row, reps in (
        ("unet", "ARMA U-Net / U-Net training step", 5 * rounds),
        ("video", "ARMA-LSTM / ConvLSTM training step", 2 * rounds),
    ):
        steps = cost.network_steps(network)
        fns = {"w32": flagged(True, steps["arma"]), "w64": flagged(False, steps["arma"]), "plain": steps["plain"]}
        t = side_by_side(fns, reps, rounds=rounds)
        out[row] = (t["w64"] / t["plain"], t["w32"] / t["plain"])
    return out


def main(argv: list[str]) -> int:
    import torch

    from arma_core.backends import _lines

    if not _lines.available():
        raise SystemExit("work32_ab: the compiled line solver is not built")
    ext = _lines._ext()
    torch.set_num_threads(1)
    rounds = int(argv[0]) if argv else 5
    old = ext.set_work32(True)
    try:
        if "networks" in argv[1:]:
            print("| row | float64 work copies | float32 work copies |")
            print("|---|---|---|")
            for row, (w64, w32) in _networks(rounds, ext).items():
                print(f"| {row} | {w64:.3f} | {w32:.3f} |")
            return 0
        print("| planes | boundary | solve float64 -> float32 work (ms) | vjp float64 -> float32 work (ms) | ratios |")
        print("|---|---|---|---|---|")
        for shape in KERNEL_SHAPES:
            for b in ("circular", "zeros"):
                t = _kernels(shape, b, rounds, ext)
                s64, s32, v64, v32 = (1e3 * t[k, f] for k in ("solve", "vjp") for f in (False, True))
                planes = "x".join(map(str, shape))
                ratios = f"{s64 / s32:.2f}, {v64 / v32:.2f}"
                print(f"| {planes} | {b} | {s64:.3f} -> {s32:.3f} | {v64:.3f} -> {v32:.3f} | {ratios} |")
        print()
        print("| planes | AR2d fwd+bwd, float64 -> float32 work (ms) | ratio |")
        print("|---|---|---|")
        for shape in LAYER_SHAPES:
            t = _layer(shape, rounds, ext)
            planes = "x".join(map(str, shape))
            print(f"| {planes} | {1e3 * t['w64']:.2f} -> {1e3 * t['w32']:.2f} | {t['w64'] / t['w32']:.2f} |")
    finally:
        ext.set_work32(old)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
