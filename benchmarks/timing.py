"""Timing and the recorded environment, shared by ``benchmarks/compare.py``'s measurements.

Every ratio of the tables is measured in one process: the compared workloads run in
alternating blocks (:func:`side_by_side`) and are summarised by their medians, so that a drift
of a shared machine affects both sides alike.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["side_by_side", "environment", "Row", "synchronizer", "fmt_time", "child_json"]


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on the CPU)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def side_by_side(
    fns: dict,
    repeats: int,
    warmup: int = 1,
    rounds: int = 3,
    sync: Callable[[], None] = lambda: None,
    best_block: bool = False,
) -> dict:
    """Median seconds of each callable, measured in alternating blocks in this process.

    ``rounds`` times, each callable in turn runs ``warmup`` untimed calls then about
    ``repeats / rounds`` timed calls in a row (a block), so slow drifts of the machine hit all
    of them alike while each block runs in the steady state of a training loop (its own
    allocations recycled, its caches warm) rather than right after another workload's.
    ``sync`` is called before each clock reading (a GPU's queue).

    With ``best_block`` each callable's time is the smallest of its blocks' medians instead
    of the median of all its calls: the estimate for an absolute time of a few microseconds
    (``timeit``'s best of repeats), which a slow spell of a shared machine covering half the
    calls would otherwise set; ratios of alternating blocks take the plain median.
    """
    per = max(1, -(-repeats // rounds))
    times: dict = {name: [] for name in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            for _ in range(warmup):
                f()
            block = []
            for _ in range(per):
                sync()
                t0 = time.perf_counter()
                f()
                sync()
                block.append(time.perf_counter() - t0)
            times[name].append(block)
    if best_block:
        return {name: min(float(np.median(b)) for b in v) for name, v in times.items()}
    return {name: float(np.median(np.concatenate(v))) for name, v in times.items()}


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1.0:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


class Row(dict):
    """One line of the table: ``target``, ``shape``, ``what``, ``a``, ``b`` (seconds, or the
    ``unit``'s values), ``ratio`` (``a / b``, or ``a`` for absolute rows), ``goal``, ``le``
    (the goal is an upper bound), ``clone`` (seconds of one ``x.clone()``, or None)."""

    @property
    def met(self) -> bool:
        return self["ratio"] <= self["goal"] if self["le"] else self["ratio"] >= self["goal"]


def child_json(args: list[str], env: dict | None = None):
    """What a fresh Python process (``python *args``, environment ``env`` or this one's) prints
    as JSON on its last line of output; RuntimeError with the end of its stderr if it fails."""
    res = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"a measuring child process exited with {res.returncode}:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def node_status() -> str:
    """Whether the layers' solves run through the compiled autograd node, or why not."""
    from arma_core.backends import torch as bt

    return "used" if bt.lines_node() is not None else f"not used ({bt.NODE_STATUS})"


def environment(threads: int, device: str = "cpu") -> dict:
    import torch

    import arma_core
    from arma_core.backends import _lines

    env = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {_cpu_model()} ({os.cpu_count()} logical CPUs)",
        "device": device + (f" ({torch.cuda.get_device_name(device)})" if device.startswith("cuda") else ""),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "arma-nets": arma_core.__version__,
        "compiled line solver": "available" if _lines.available() else "not built",
        "compiled torch node": node_status(),
        "torch threads": torch.get_num_threads(),
        "line solver threads (numpy calls)": _lines.default_threads(),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE", "(unset)"),
        "transparent huge pages": _thp(),
        "load average (1, 5, 15 min)": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
    return env


def _version(name):
    try:
        return __import__(name).__version__
    except ImportError:
        return "not installed"


def _thp() -> str:
    try:
        return Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        return "?"


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"
