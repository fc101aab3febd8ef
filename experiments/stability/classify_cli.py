"""``arma classify``: the paper's Appendix A.4, classification accuracy of ARMA networks.

VGG-11 and ResNet-18 with plain convolutions against the same networks with every convolution
an ARMA layer (AR filters initialised at zero), the same seeds and batches; test accuracy mean
± std over seeds and training time per epoch. Writes ``report.md`` and ``classify.csv``; every
run directory keeps its ``checkpoint.pt`` (for ``arma figure6``).

Examples
--------
``arma classify --preset quick``                  Fashion-MNIST, quarter width, 2-core CPU
``arma classify --preset paper --data-dir ~/data/cifar-10-batches-py --device cuda``
``arma classify --models resnet18 --arms conv strip diamond --seeds 5``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_common import add_common, overrides, parse_optimizer
from .models import MODELS
from .task import ARMS, RunConfig

__all__ = ["PRESETS", "build_parser", "main", "plan"]

# "quick": under 30 minutes on this 2-core CPU (calibration in docs/experiments.md);
# "paper": the official script's recipe on CIFAR-10 (SGD 0.05, momentum 0.9, weight decay
# 5e-4, batch 128, 300 epochs, learning rate halved after epoch 30, crop + flip); "smoke": tests.
PRESETS: dict[str, dict] = {
    "quick": {
        "models": ["vgg11", "resnet18"],
        "arms": ["conv", "strip"],
        "seeds": [0, 1, 2],
        "optimizer": "sgd:0.05",
        "config": {
            "width": 0.25,
            "dataset": "fashion-mnist",
            "train_size": 12800,
            "test_size": None,
            "eval_size": 1000,
            "batch_size": 128,
            "steps_per_epoch": 100,
            "epochs": 3,
            "schedule": "cosine",
        },
        "jobs": 2,
        "threads": 1,
    },
    "paper": {
        "models": ["vgg11", "resnet18"],
        "arms": ["conv", "strip", "diamond"],
        "seeds": [0, 1, 2],
        "optimizer": "sgd:0.05",
        "config": {
            "width": 1.0,
            "dataset": "cifar10",
            "test_size": None,
            "eval_size": None,
            "batch_size": 128,
            "steps_per_epoch": 390,
            "epochs": 300,
            "schedule": "official",
            "augment": True,
        },
        "jobs": 1,
        "threads": None,
    },
    "smoke": {
        "models": ["vgg11", "resnet18"],
        "arms": ["conv", "strip"],
        "seeds": [0],
        "optimizer": "sgd:0.05",
        "config": {
            "width": 0.125,
            "dataset": "mnist",
            "train_size": 64,
            "test_size": 32,
            "eval_size": 16,
            "batch_size": 16,
            "steps_per_epoch": 2,
            "epochs": 1,
        },
        "jobs": 1,
        "threads": 1,
    },
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arma classify", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common(p, PRESETS)
    p.add_argument("--models", nargs="+", choices=MODELS)
    p.add_argument("--arms", nargs="+", choices=list(ARMS))
    p.add_argument(
        "--optimizer",
        type=parse_optimizer,
        metavar="OPT:LR",
        help="e.g. sgd:0.05 (momentum 0.9, weight decay 5e-4) or adam:0.001",
    )
    p.add_argument(
        "--batch-norm", action="store_true", help="VGG-11 with batch norm (the official script's VGG ran without)"
    )
    return p


def plan(args) -> tuple[list[tuple[RunConfig, Path]], Path]:
    """The runs ``(config, run directory)`` of an invocation and the output folder."""
    preset = PRESETS[args.preset]
    out = Path(args.out or Path("classify-runs") / args.preset)
    name, lr = args.optimizer or parse_optimizer(preset["optimizer"])
    base = {**preset["config"], **overrides(args)}
    if args.batch_norm:
        base["batch_norm"] = True
    if base.get("train_size") and "steps_per_epoch" not in overrides(args):
        base["steps_per_epoch"] = max(1, base["train_size"] // base["batch_size"])
    items = []
    for model in args.models or preset["models"]:
        for seed in args.seeds or preset["seeds"]:
            for arm in args.arms or preset["arms"]:
                # Adam runs without weight decay (the presets never set weight_decay)
                decay = 0.0 if name == "adam" else RunConfig.weight_decay
                config = RunConfig(
                    model=model,
                    arm=arm,
                    optimizer=name,
                    lr=lr,
                    seed=seed,
                    record_steps=False,
                    weight_decay=decay,
                    **base,
                )
                items.append((config, out / f"{model}-{arm}-seed{seed}"))
    # the most expensive runs first, so that two workers finish together
    cost = {"resnet18": 4, "vgg11": 1}
    items.sort(key=lambda it: -cost[it[0].model] * (1 if it[0].arm == "conv" else 2.5))
    return items, out


def write_report(out: Path, wall: float | None = None) -> Path | None:
    """``report.md`` and ``classify.csv`` from the results under ``out``."""
    from .report import classify_table, load_runs

    runs = load_runs(out)
    if not runs:
        return None
    c = runs[0]["config"]
    text = (
        f"# arma classify: {c['dataset']}, width {c['width']:g}, {c['epochs']} epochs of "
        f"{c['steps_per_epoch']} steps (batch {c['batch_size']}), {c['optimizer']} {c['lr']:g}, "
        f"{c['schedule']} schedule\n\n"
    )
    if wall is not None:
        text += f"Wall time of the invocation: {wall / 60:.1f} min.\n\n"
    text += classify_table(runs, out)
    text += (
        f"\nTest accuracy on {runs[0]['test_images']} test images, mean ± std over seeds; "
        "train s / epoch: training time of one epoch in one worker process.\n"
    )
    path = out / "report.md"
    path.write_text(text)
    return path


def main(argv=None) -> int:
    """Entry point of ``arma classify``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        items, out = plan(args)
    except ValueError as exc:
        print(f"arma classify: {exc}", file=sys.stderr)
        return 2
    wall = None
    if not args.table_only:
        from .run import run_invocation

        wall = run_invocation(items, args, PRESETS[args.preset], "classify", f"{len(items)} runs in {out}")
        if wall is None:
            return 2
    path = write_report(out, wall)
    if path is None:
        print(f"arma classify: no results in {out}", file=sys.stderr)
        return 1
    print(path.read_text())
    return 0
