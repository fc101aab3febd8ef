"""Side-by-side speed and memory of the AR solve against what it competes with.

Run from the repository root::

    .venv/bin/python benchmarks/compare.py                      # every table (about 10 minutes)
    .venv/bin/python benchmarks/compare.py --only cost          # issue 13's rows only
    .venv/bin/python benchmarks/compare.py --device cuda        # the same table on a GPU
    .venv/bin/python benchmarks/compare.py --plot docs/performance.png --markdown out/perf.md

Every ratio is measured in one process, the compared workloads timed in alternating blocks
(``timing.side_by_side``) and summarised by their medians; the times of issue 5's rows are also
given as multiples of one ``x.clone()`` of the same tensor (one read and one write: the limit
an exact solve could reach). Memory is the peak resident set of a fresh subprocess over its
baseline. The environment (versions, threads, load average, allocator settings) is printed
first: timings on a machine shared with other work are noisy, so measure when the load average
is low and read the ratios, not the absolute times.

Rows (the targets of issues 5 and 13; ``docs/performance.md`` explains each):

- ``large.py``: issue 5 on 32x64x64x64 and 4x16x256x256 (AR2d against a 3x3 convolution and
  against the official algorithm, the boundaries against circular, NumPy against torch, peak
  memory), the growth of the cost with H*W, every forward method, 1-D signals;
- ``cost.py``: issue 13 (the fixed cost of a call, ARMA2d against Conv2d, ARMA-LSTM and the
  ARMA U-Net against their convolutional networks, cold start, SciPy's filters). ARMA2d against
  Conv2d is measured twice on glibc: as the process is, and in a fresh process with freed memory
  kept in the heap (``cost.measure_layers_kept``: without glibc's page faults, which hit both
  layers' steps by amounts that depend on the process's history).

With ``--device cuda`` the rows that run tensors run them on the GPU; NumPy, memory, cold
start and SciPy rows are CPU-only and left out.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cost  # noqa: E402
import large  # noqa: E402
from timing import environment, fmt_time  # noqa: E402

# ---------------------------------------------------------------------------------------------
# tables


def _measured(r) -> tuple[str, str]:
    unit = r.get("unit")
    if unit == "MiB":
        return f"{r['a']:.0f} / {r['b']:.0f} MiB (one tensor: {r['tensor_mib']:.0f} MiB)", "-"
    if unit == "us":
        return f"{r['a']:.1f} us", "-"
    if unit == "s":
        return f"{r['a']:.3f} s", "-"
    clone = "-" if r.get("clone") is None else f"{r['a'] / r['clone']:.1f} / {r['b'] / r['clone']:.1f}"
    return f"{fmt_time(r['a'])} / {fmt_time(r['b'])}", clone


def table(rows, growth: dict | None) -> str:
    lines = [
        "| # | shape | comparison | measured | ratio | goal | met | x clone |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        measured, clone = _measured(r)
        unit = {"us": " us", "s": " s"}.get(r.get("unit") or "", "")
        goal = f"{'<=' if r['le'] else '>='} {r['goal']}{unit}"
        ratio = f"{r['ratio']:.1f}" if r.get("unit") == "us" else f"{r['ratio']:.2f}"
        lines.append(
            f"| {r['target']} | {r['shape']} | {r['what']} | {measured} | {ratio} | {goal} | "
            f"{'yes' if r.met else 'NO'} | {clone} |"
        )
    for pas in ("fwd+bwd", "fwd") if growth else ():
        pts = growth.get(("torch", "auto", pas))
        if pts:
            e = exponent(pts)
            lines.append(
                f"| 7 | 1x16xHxW, H=W={large.SIZES[0]}..{large.SIZES[-1]} | growth of auto (torch, {pas}) in H*W: "
                f"{fmt_time(pts[0][1])} -> {fmt_time(pts[-1][1])} | fitted exponent | {e:.3f} | "
                f"<= {large.GOALS[7]} | {'yes' if e <= large.GOALS[7] else 'NO'} | - |"
            )
    return "\n".join(lines)


def exponent(points) -> float:
    hw, s = np.array(points).T
    return float(np.polyfit(np.log(hw), np.log(s), 1)[0])


def table_1d(rows) -> str:
    from arma_core.backends import _lines

    lines = ["| shape (rows x C x n) | Q | lines | fft | fft / lines | auto |", "|---|---|---|---|---|---|"]
    for shape, Q, tl, tf in rows:
        B, C, n = (int(v) for v in shape.split("x"))
        taps = np.zeros((C, 1, Q, 3))
        taps[..., 1] = 1.0
        auto = "lines" if _lines.preferred((B, C, n), taps, "circular") else "fft"
        lines.append(f"| {shape} | {Q} | {fmt_time(tl)} | {fmt_time(tf)} | {tf / tl:.2f} | {auto} |")
    return "\n".join(lines)


def algorithms_table(rows) -> str:
    lines = ["| shape | boundary | backend | method | forward | x clone |", "|---|---|---|---|---|---|"]
    for shape, boundary, backend, m, sec, rel in rows:
        lines.append(f"| {shape} | {boundary} | {backend} | {m} | {fmt_time(sec)} | {rel:.1f} |")
    return "\n".join(lines)


def growth_table(growth: dict) -> str:
    sizes = sorted({hw for pts in growth.values() for hw, _ in pts})
    keys = sorted(k for k in growth if k[1] != "clone")
    lines = [
        "| backend | method | pass | " + " | ".join(f"{int(round(hw**0.5))}^2" for hw in sizes) + " | exponent |",
        "|---|---|---|" + "---|" * len(sizes) + "---|",
    ]
    for key in keys + [("torch", "clone", "fwd")]:
        pts = dict(growth[key])
        cells = [f"{pts[hw] * 1e3:.2f}" if hw in pts else "-" for hw in sizes]
        name = "x.clone()" if key[1] == "clone" else key[1]
        lines.append(f"| {key[0]} | {name} | {key[2]} | " + " | ".join(cells) + f" | {exponent(growth[key]):.2f} |")
    return "\n".join(lines)


def plot(growth: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    style = {"lines": "o-", "fft": "s-", "dense": "^-", "official": "x--", "clone": "k:"}
    for ax, which in zip(axes, ["fwd", "fwd+bwd"]):
        for (backend, method, pas), pts in sorted(growth.items()):
            if (pas != which and method != "clone") or method not in style:
                continue
            hw, s = np.array(pts).T
            label = f"{backend} {method}" if method != "clone" else "torch x.clone() (one read + write)"
            ls = style[method] if backend == "torch" else style[method].replace("-", ":")
            ax.loglog(hw, s * 1e3, ls, label=f"{label} (slope {exponent(pts):.2f})", alpha=0.85)
        ax.set_xlabel("H * W  (B * C = 16, Q = 1, circular, float32)")
        ax.set_title("forward" if which == "fwd" else "forward + backward (torch autograd)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("time [ms] (median)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


# ---------------------------------------------------------------------------------------------
# main

GROUPS = ("targets", "cost", "algorithms", "growth")


def _parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per comparison (default 15)")
    p.add_argument("--device", default="cpu", help="torch device for the tensor rows (cpu, cuda, cuda:1)")
    p.add_argument("--quick", action="store_true", help="3 rounds, smaller growth sweep")
    p.add_argument("--only", nargs="+", choices=GROUPS, help=f"measure only these groups (default: {' '.join(GROUPS)})")
    p.add_argument("--no-growth", action="store_true", help="skip target 7 and the plot")
    p.add_argument("--no-algorithms", action="store_true", help="skip the tables of the forward methods and 1-D")
    p.add_argument("--plot", metavar="PNG", help="write the log-log plot of time vs H*W")
    p.add_argument("--markdown", metavar="MD", help="also write the tables to this file")
    p.add_argument("--child-memory", nargs=2, metavar=("KIND", "SHAPE"), help=argparse.SUPPRESS)
    return p


def _groups(args) -> set:
    groups = set(args.only or GROUPS)
    if args.no_growth:
        groups.discard("growth")
    if args.no_algorithms or args.device != "cpu":
        groups.discard("algorithms")
    return groups


def _measure(args, groups, repeats):
    rows = []
    if "targets" in groups:
        rows += large.measure_targets(repeats, args.threads, args.device)
    if "cost" in groups:
        rows += cost.measure_call_overhead(repeats, args.device)
        rows += cost.measure_layers(repeats, args.device)
        if args.device == "cpu" and platform.libc_ver()[0] == "glibc":
            rows += cost.measure_layers_kept(repeats, args.threads)
        rows += cost.measure_recurrent(repeats, args.device)
        rows += cost.measure_unet(repeats, args.device)
        if args.device == "cpu":
            rows += cost.measure_cold_start()
            rows += cost.measure_scipy(repeats)
    algos = large.measure_algorithms(repeats, args.threads) if "algorithms" in groups else None
    ones = large.measure_1d(repeats, args.threads) if "algorithms" in groups else None
    growth = None
    if "growth" in groups:
        sizes = large.SIZES[:3] if args.quick else large.SIZES
        growth = large.measure_growth(repeats, args.threads, device=args.device, sizes=sizes)
    return rows, algos, ones, growth


def main(argv=None):
    args = _parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.child_memory:
        kind, shape = args.child_memory
        large.child_memory(kind, tuple(int(v) for v in shape.split("x")), args.threads)
        return
    repeats = 3 if args.quick else args.repeats
    head = "\n".join(f"- {k}: {v}" for k, v in environment(args.threads, args.device).items())
    print(head, flush=True)
    rows, algos, ones, growth = _measure(args, _groups(args), repeats)
    out = [head, f"- load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}", "", table(rows, growth)]
    if algos:
        out += ["", "Every exact forward solve (float32, Q = 1, no autograd):", "", algorithms_table(algos)]
    if ones:
        title = "1-D circular signals, numpy, float32, forward (the rule `_lines.MIN_ROWS_1D`):"
        out += ["", title, "", table_1d(ones)]
    if growth:
        out += ["", "Times in ms (median), B*C = 16, Q = 1, circular, float32:", "", growth_table(growth)]
    text = "\n".join(out)
    print()
    print(text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text + "\n")
    if args.plot and growth:
        plot(growth, args.plot)


if __name__ == "__main__":
    main()
