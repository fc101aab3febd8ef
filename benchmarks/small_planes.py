"""Small planes with and without the line solver's dense inverses, side by side in one process.

Usage (the package's compiled line solver must be built)::

    .venv/bin/python benchmarks/small_planes.py [rounds]

For float32 planes with the layers' default taps (``large.theta_like``, one factor per axis,
``circular``) it prints the best time of building both plans (``_lines_c.plan(transposed=2)``),
of ``solve`` and of ``solve_vjp`` (with the taps' gradient), in microseconds, with dense inverses
(``_lines_c.set_dense_max(16)``, the default) and without (``set_dense_max(0)``: the
recurrences), the two alternating in rounds, one thread. The shapes: the U-Net's bottom levels
(16 x 16, 8 x 8 and 4 x 4 planes), issue 13's 4x64x16x16 layer (its AR part: 4x128x16x16),
non-square planes that take the dense form, sizes that keep the recurrences (6 x 6, 7 x 7,
3 x 3, 16 x 8, 32 x 32: the same time both ways) and the 1x8x8x8 call of issue 13's first row.
docs/performance.md, "twelfth pass" and "thirteenth pass", quote runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

SHAPES = [(1, 8, 8, 8), (16, 32, 16, 16), (4, 128, 16, 16), (16, 64, 8, 8), (16, 128, 4, 4)]
SHAPES += [(16, 64, 8, 4), (16, 64, 5, 8), (16, 64, 8, 16), (16, 32, 12, 16)]
SHAPES += [(16, 64, 6, 6), (16, 64, 7, 7), (16, 64, 3, 3), (16, 64, 16, 8), (16, 16, 32, 32)]


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 5
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    import large

    from arma_core.backends import _lines

    if not _lines.available():
        print("small_planes: the compiled line solver is not built")
        return 1
    torch.set_num_threads(1)
    ext = _lines._ext()
    old = ext.set_dense_max(16)
    print("| planes | both plans (us) | solve (us) | solve_vjp (us) |")
    print("|---|---|---|---|")
    try:
        for shape in SHAPES:
            C = shape[1]
            taps = large.layer_taps(C)
            taps64 = taps.astype(np.float64)
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            g = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
            best = {n: [np.inf] * 3 for n in (0, 16)}
            kw = dict(boundary="circular", dilation=1, adjoint=False, threads=1)
            for _ in range(rounds):
                for n in (0, 16):
                    ext.set_dense_max(n)
                    cache: dict = {}
                    y, gx = np.empty_like(x), np.empty_like(x)
                    for _ in range(10):
                        t0 = time.perf_counter()
                        ext.plan(taps64, C, 2, 1, shape[2:], 1, ext.CIRCULAR, 2, 1)
                        t1 = time.perf_counter()
                        _lines.solve(x, taps, out=y, cache=cache, **kw)
                        t2 = time.perf_counter()
                        _lines.solve_vjp(y, g, taps, need_taps=True, out=gx, cache=cache, **kw)
                        t3 = time.perf_counter()
                        b = best[n]
                        b[:] = [min(b[0], t1 - t0), min(b[1], t2 - t1), min(b[2], t3 - t2)]
            cells = [f"{best[0][i] * 1e6:.1f} -> {best[16][i] * 1e6:.1f}" for i in range(3)]
            print(f"| {'x'.join(map(str, shape))} | " + " | ".join(cells) + " |")
    finally:
        ext.set_dense_max(old)
    print("\n(recurrences -> dense inverses; best of", rounds * 10, "calls each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
