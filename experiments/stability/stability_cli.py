"""``arma stability``: the paper's Figure 5, training with and without the re-parameterization.

VGG-11 with every convolution an ARMA layer (AR filters initialised at zero), trained side by
side with the same seeds and batches in several arms -- plain convolutions, the strip and the
official diamond re-parameterizations, raw taps, and raw taps at the re-parameterized arms'
effective step -- at several learning rates; per step the loss, the batch accuracy, the
smallest response modulus over all AR factors and the largest ``|f_-1 + f_1|``. Writes
``report.md`` (whether each run converged, stalled or went non-finite, and why),
``summary.csv``, ``runs.csv``, ``figure5.png`` and ``margins.png``.

Examples
--------
``arma stability --preset quick``                 MNIST, quarter-width VGG-11, 2-core CPU
``arma stability --preset quick --resume``        continue after an interruption
``arma stability --preset paper --data-dir ~/data/cifar-10-batches-py --device cuda``
``arma stability --optimizer sgd:0.1 --arms raw strip --seeds 5``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_common import add_common, overrides, parse_optimizer
from .task import ARMS, RunConfig

__all__ = ["PRESETS", "build_parser", "main", "plan"]

# "quick": sized for under 30 minutes on this 2-core CPU (calibration in docs/experiments.md);
# "paper": Figure 5's setting (full-width VGG-11 on CIFAR-10, batch 128, the official
# optimizer) around the official learning rate; "smoke": seconds, for the tests.
PRESETS: dict[str, dict] = {
    "quick": {
        "arms": ["conv", "strip", "raw", "raw-half"],
        "optimizers": ["sgd:0.025", "sgd:0.05", "sgd:0.1", "adam:0.001"],
        "seeds": [0, 1, 2],
        "config": {
            "model": "vgg11",
            "width": 0.25,
            "dataset": "mnist",
            "batch_size": 64,
            "steps_per_epoch": 50,
            "epochs": 6,
            "test_size": 2000,
            "eval_size": 500,
        },
        "jobs": 2,
        "threads": 1,
    },
    "paper": {
        "arms": ["conv", "strip", "diamond", "raw", "raw-half"],
        "optimizers": ["sgd:0.02", "sgd:0.05", "sgd:0.1", "sgd:0.2", "adam:0.001"],
        "seeds": [0, 1, 2],
        "config": {
            "model": "vgg11",
            "width": 1.0,
            "dataset": "cifar10",
            "batch_size": 128,
            "steps_per_epoch": 390,
            "epochs": 10,
            "test_size": None,
            "eval_size": 2000,
            "augment": True,
        },
        "jobs": 1,
        "threads": None,
    },
    "smoke": {
        "arms": ["conv", "raw"],
        "optimizers": ["sgd:0.05"],
        "seeds": [0],
        "config": {
            "model": "vgg11",
            "width": 0.125,
            "dataset": "mnist",
            "batch_size": 16,
            "steps_per_epoch": 3,
            "epochs": 1,
            "train_size": 64,
            "test_size": 32,
            "eval_size": 16,
        },
        "jobs": 1,
        "threads": 1,
    },
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arma stability",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(p, PRESETS)
    p.add_argument("--arms", nargs="+", choices=list(ARMS), help="arms to train (default: the preset's)")
    p.add_argument(
        "--optimizer",
        nargs="+",
        type=parse_optimizer,
        metavar="OPT:LR",
        help="optimizer settings, e.g. sgd:0.05 adam:0.001 (SGD: momentum 0.9, weight decay 5e-4)",
    )
    return p


def plan(args) -> tuple[list[tuple[RunConfig, Path]], list[str], Path]:
    """The runs ``(config, run directory)`` of an invocation, the arms and the output folder."""
    preset = PRESETS[args.preset]
    out = Path(args.out or Path("stability-runs") / args.preset)
    arms = args.arms or preset["arms"]
    optimizers = args.optimizer or [parse_optimizer(o) for o in preset["optimizers"]]
    seeds = args.seeds or preset["seeds"]
    base = {**preset["config"], **overrides(args)}
    items = []
    for name, lr in optimizers:
        for seed in seeds:
            for arm in arms:
                # Adam runs without weight decay (the presets never set weight_decay)
                decay = 0.0 if name == "adam" else RunConfig.weight_decay
                config = RunConfig(arm=arm, optimizer=name, lr=lr, seed=seed, weight_decay=decay, **base)
                items.append((config, out / f"{name}-{lr:g}" / f"{arm}-seed{seed}"))
    return items, arms, out


def write_report(out: Path, arms, wall: float | None = None) -> Path | None:
    """``report.md``, the CSVs and both figures from the results under ``out``."""
    from .report import load_runs, plot_figure5, plot_margins, stability_tables

    runs = load_runs(out)
    if not runs:
        return None
    c = runs[0]["config"]
    text = (
        f"# arma stability: {c['model']} width {c['width']:g} on {c['dataset']}, batch "
        f"{c['batch_size']}, {c['epochs'] * c['steps_per_epoch']} steps\n\n"
    )
    if wall is not None:
        text += f"Wall time of the invocation: {wall / 60:.1f} min.\n\n"
    text += stability_tables(runs, arms, out)
    text += "\n![Figure 5](figure5.png)\n\n![AR margins](margins.png)\n"
    plot_figure5(runs, arms, out / "figure5.png")
    plot_margins(runs, arms, out / "margins.png")
    path = out / "report.md"
    path.write_text(text)
    return path


def main(argv=None) -> int:
    """Entry point of ``arma stability``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        items, arms, out = plan(args)
    except ValueError as exc:
        print(f"arma stability: {exc}", file=sys.stderr)
        return 2
    wall = None
    if not args.table_only:
        from .run import run_invocation

        what = f"{len(items)} runs ({len(arms)} arms) in {out}"
        wall = run_invocation(items, args, PRESETS[args.preset], "stability", what)
        if wall is None:
            return 2
    path = write_report(out, arms, wall)
    if path is None:
        print(f"arma stability: no results in {out}", file=sys.stderr)
        return 1
    print(f"wrote {path}, {out / 'figure5.png'}, {out / 'margins.png'}")
    return 0
