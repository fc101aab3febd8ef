"""Two builds of the compiled line solver side by side in one process: kernel times and results.

Usage (from ``/tmp``, so that the working tree's package is the one imported)::

    git archive <rev> | tar -x -C /tmp/old && (cd /tmp/old && python setup.py -q build_ext --inplace)
    python /path/to/benchmarks/kernel_ab.py /tmp/old/backends/_lines_c.*.so [rounds] [shapes]

``old`` is the given ``.so``; ``new`` the one ``arma_core`` imports. For float32 planes (one
factor per axis, ``AR2d``'s default taps of ``large.theta_like``) at the three shapes of issue
13's layer rows (128 channels), or at ``shapes`` (comma-separated, e.g. ``16x128x4x4,16x64x12x12``),
and the ``circular`` and ``zeros`` boundaries, it prints the best
time of ``solve`` and of ``solve_vjp`` (with the taps' gradient) for each build, the two builds
alternating in rounds, one thread, and whether the outputs are bit-identical (the taps' gradient:
the largest relative difference).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

SHAPES = [(4, 128, 16, 16), (16, 128, 32, 32), (8, 128, 64, 64)]
BOUNDARIES = ["circular", "zeros"]


def load_build(path: str):
    """The extension module at ``path`` (a ``_lines_c*.so``), loaded beside the installed one."""
    spec = importlib.util.spec_from_file_location("arma_core.backends._lines_c", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"kernel_ab: cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str]) -> int:
    if not argv or not Path(argv[0]).is_file():
        print(__doc__)
        return 2
    rounds = int(argv[1]) if len(argv) > 1 else 3
    shapes = SHAPES
    if len(argv) > 2:
        shapes = [tuple(int(v) for v in s.split("x")) for s in argv[2].split(",")]
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    import large

    from arma_core.backends import _lines

    torch.set_num_threads(1)
    installed = _lines._ext()  # first: loading the other build first would shadow it
    builds = {"old": load_build(argv[0]), "new": installed}
    print(
        "| planes | boundary | solve old -> new (ms) | vjp old -> new (ms) "
        "| y, input gradient identical | taps gradient, max rel. diff |"
    )
    print("|---|---|---|---|---|---|")
    try:
        for shape in shapes:
            taps = large.layer_taps(shape[-3])
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            g = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
            for b in BOUNDARIES:
                best: dict[str, list[float]] = {k: [np.inf, np.inf] for k in builds}
                outs = {}
                for _ in range(rounds):
                    for name, mod in builds.items():
                        _lines._EXT = mod
                        cache: dict = {}
                        y, gx = np.empty_like(x), np.empty_like(x)
                        for _ in range(6):
                            t0 = time.perf_counter()
                            _lines.solve(x, taps, boundary=b, dilation=1, adjoint=False, out=y, cache=cache, threads=1)
                            t1 = time.perf_counter()
                            opts = dict(boundary=b, dilation=1, adjoint=False, cache=cache, threads=1)
                            _, gt = _lines.solve_vjp(y, g, taps, need_taps=True, out=gx, **opts)
                            t2 = time.perf_counter()
                            best[name][0] = min(best[name][0], t1 - t0)
                            best[name][1] = min(best[name][1], t2 - t1)
                        outs[name] = (y, gx, gt)
                (yo, go, to), (yn, gn, tn) = outs["old"], outs["new"]
                same = np.array_equal(yo, yn) and np.array_equal(go, gn)
                rel = float(np.max(np.abs(to - tn) / np.maximum(np.abs(to), 1e-300)))
                o, n = best["old"], best["new"]
                print(
                    f"| {'x'.join(map(str, shape))} | {b} | {o[0] * 1e3:.2f} -> {n[0] * 1e3:.2f} "
                    f"| {o[1] * 1e3:.2f} -> {n[1] * 1e3:.2f} | {'yes' if same else 'NO'} | {rel:.1e} |"
                )
    finally:
        _lines._EXT = builds["new"]
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
