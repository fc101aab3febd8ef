"""Command-line pieces shared by ``arma stability`` and ``arma classify``."""

from __future__ import annotations

import argparse

from .data import DATASETS

__all__ = ["add_common", "overrides", "parse_optimizer", "parse_seeds"]


def parse_optimizer(text: str) -> tuple[str, float]:
    """``"sgd:0.05"`` -> ``("sgd", 0.05)``; ``"adam:1e-3"`` -> ``("adam", 0.001)``."""
    name, sep, lr = text.partition(":")
    try:
        value = float(lr)
    except ValueError:
        value = -1.0
    if not sep or name not in ("sgd", "adam") or not value > 0:
        raise argparse.ArgumentTypeError(f"expected sgd:LR or adam:LR with LR > 0, got {text!r}")
    return name, value


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> ``[0, 1, 2]``; ``"0,4,7"`` -> ``[0, 4, 7]``."""
    try:
        if "," in text:
            return [int(s) for s in text.split(",")]
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes a count or a comma list, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--seeds must be >= 1, got {n}")
    return list(range(n))


def add_common(p: argparse.ArgumentParser, presets) -> None:
    """Options both commands take (preset, data, sizes, parallelism, resume)."""
    p.add_argument("--preset", choices=sorted(presets), default="quick")
    p.add_argument("--out", help="output folder (default: <command>-runs/<preset>)")
    p.add_argument("--dataset", choices=DATASETS)
    p.add_argument("--data-dir", help="Fashion-MNIST's or CIFAR-10's folder (cifar-10-batches-py)")
    p.add_argument("--width", type=float, help="channel multiplier of the networks")
    p.add_argument("--seeds", type=parse_seeds, help="a count (0..n-1) or a comma list")
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--train-size", type=int)
    p.add_argument("--test-size", type=int)
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps (Fabric's accelerator; one process)")
    p.add_argument("--jobs", type=int, help="parallel worker processes (one per core on a CPU)")
    p.add_argument("--threads", type=int, help="torch threads per worker")
    p.add_argument("--resume", action="store_true", help="skip finished runs, continue interrupted ones")
    p.add_argument("--table-only", action="store_true", help="rebuild tables and figures from the results")


def overrides(args) -> dict:
    """The RunConfig fields set on the command line."""
    names = ("dataset", "data_dir", "width", "epochs", "steps_per_epoch", "batch_size", "train_size", "test_size")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}
