"""Issue 13's rows group by group against whichever ``arma_core`` is importable: the before /
after measurements of ``docs/performance.md``.

``compare.py --only cost`` measures the same rows; this driver also runs against an older
checkout of the library (``PYTHONPATH=<export of that commit>``), whose API may lack what
``compare.py``'s environment report asks for, and prints the table after every group::

    THREADS=1 .venv/bin/python benchmarks/cost_groups.py call,layers,kept,lstm,unet,scipy,cold 15

Groups: ``call`` (fixed cost of a call), ``layers`` (ARMA2d / Conv2d), ``kept`` (the same in a
fresh process with freed memory kept in glibc's heap), ``lstm`` (ARMA-LSTM /
ConvLSTM step), ``unet`` (ARMA U-Net / U-Net step), ``scipy`` (lfilter, solve_banded),
``cold`` (first solve in a fresh process). ``THREADS`` sets torch's threads (default 1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

GROUPS = ("call", "layers", "kept", "lstm", "unet", "scipy", "cold")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    groups = argv[0].split(",") if argv else list(GROUPS)
    repeats = int(argv[1]) if len(argv) > 1 else 15
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise SystemExit(f"unknown groups {sorted(unknown)}; choose from {', '.join(GROUPS)}")
    import torch

    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    import compare
    import cost
    import timing

    import arma_core
    from arma_core.backends import _lines

    print(
        f"- arma_core from: {Path(arma_core.__file__).parent}; compiled line solver: {_lines.available()}; "
        f"torch node: {timing.node_status()}; "
        f"torch threads: {torch.get_num_threads()}; load average before: {os.getloadavg()}",
        flush=True,
    )
    measure = {
        "call": lambda: cost.measure_call_overhead(repeats),
        "layers": lambda: cost.measure_layers(repeats),
        "kept": lambda: cost.measure_layers_kept(repeats, torch.get_num_threads()),
        "lstm": lambda: cost.measure_recurrent(repeats),
        "unet": lambda: cost.measure_unet(repeats),
        "scipy": lambda: cost.measure_scipy(repeats),
        "cold": cost.measure_cold_start,
    }
    rows: list = []
    for g in groups:
        rows += measure[g]()
        print(compare.table(rows, None), flush=True)
    print(f"- load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
