"""Issue 13's layer rows with glibc's default heap settings and with freed memory kept.

Usage::

    THREADS=1 .venv/bin/python benchmarks/allocator_ab.py [runs] [repeats]

Each run measures ``cost.measure_layers`` (``ARMA2d / Conv2d``, 64 -> 128, 3x3, forward +
backward at the three shapes of the table) in two fresh processes, one with the environment as
it is and one with

    MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_MMAP_THRESHOLD_=33554432   (cost.KEEP_FREED)

the two alternating. With glibc's defaults, the 8-16 MiB tensors of a step are often returned
to the kernel when they are freed (the top of the heap is trimmed, or the block was a mapping of
its own) and page-faulted in again at the next step, in both steps, depending on glibc's dynamic
mmap threshold (the history of allocations in the process). The two variables keep the freed
memory in the heap for the next allocation. They change nothing but the allocator, and only
where glibc is the allocator; the library itself leaves the process's allocator alone. Prints
each run's ratios and, per shape and setting, the median over the runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cost import layers_in_child  # noqa: E402


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 2
    repeats = int(argv[1]) if len(argv) > 1 else 15
    ratios: dict = {}
    for run in range(runs):
        for keep in (False, True):
            label = "freed memory kept" if keep else "glibc defaults"
            for r in layers_in_child(repeats, keep, int(os.environ.get("THREADS", "1"))):
                shape, ratio, a, b = r["shape"], r["ratio"], r["a"], r["b"]
                ratios.setdefault((shape, keep), []).append(ratio)
                print(f"run {run + 1}, {label}: {shape} ARMA2d / Conv2d {ratio:.3f} ({a * 1e3:.2f} / {b * 1e3:.2f} ms)")
            sys.stdout.flush()
    print("\n| shape | glibc defaults | freed memory kept |\n|---|---|---|")
    for shape in dict.fromkeys(s for s, _ in ratios):
        cells = []
        for k in (False, True):
            runs_k = ratios[shape, k]
            cells.append(f"{np.median(runs_k):.3f} ({', '.join(f'{r:.2f}' for r in runs_k)})")
        print(f"| {shape} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
