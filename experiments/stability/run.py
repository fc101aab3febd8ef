"""Run one configuration to its ``results.json``, and many of them in parallel processes."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from arma_experiments.results import write_json

from .task import RunConfig

__all__ = ["RESULTS", "converged_threshold", "outcome", "run_many", "run_one"]

RESULTS = "results.json"


@functools.lru_cache(maxsize=2)
def _data(dataset: str, data_dir: str | None, train_size: int | None, test_size: int | None):
    from .data import load_pair

    return load_pair(dataset, data_dir=data_dir, train_size=train_size, test_size=test_size)


def converged_threshold(majority: float) -> float:
    """Test accuracy a run must reach to count as converged: halfway from the majority class to 1."""
    return majority + 0.5 * (1.0 - majority)


def outcome(result: dict) -> tuple[str, str]:
    """``(outcome, reason)`` of a finished run: "converged", "stalled" or "non-finite".

    Converged: finite throughout and a test accuracy of at least
    :func:`converged_threshold` of the majority-class accuracy. The reason names the AR layer
    that first left the strip ``|f_-1 + f_1| < 1`` (crossing a singular filter) and when.
    """
    parts = []
    cross = result.get("crossing")
    if result.get("ar_layers", 0) == 0:
        parts.append("no AR filters")
    elif cross is not None:
        parts.append(f"{cross['layer']} left the strip at step {cross['step']} (|f_-1+f_1| = {_num(cross['abs_sum'])})")
    else:
        parts.append(f"no AR factor left the strip (largest |f_-1+f_1| {_num(result['final_max_abs_sum'])})")
    if result.get("nonfinite_step") is not None:
        kind = "non-finite"
        parts.insert(0, f"loss non-finite at step {result['nonfinite_step']}")
    elif result.get("nonfinite_output_step") is not None:
        kind = "non-finite"
        parts.insert(0, f"output non-finite at step {result['nonfinite_output_step']}")
    elif result["test_accuracy"] >= converged_threshold(result["majority_accuracy"]):
        kind = "converged"
    else:
        kind = "stalled"
        parts.insert(
            0,
            f"test accuracy {result['test_accuracy']:.3f}, final loss "
            f"{_num(result['final_loss'])} (chance {math.log(10):.2f})",
        )
    return kind, "; ".join(parts)


def _num(x) -> str:
    if x is None:
        return "-"
    x = float(x)
    return f"{x:.3g}" if math.isfinite(x) and abs(x) < 1e4 else f"{x:.2e}"


def _sum_stats(model) -> dict:
    """Mean ``|f_-1 + f_1|`` over every AR factor and the share above 0.5 (Figure 6's numbers)."""
    import torch

    from .monitor import _ar_taps, ar_layers

    sums = [(_ar_taps(m)[..., 0] + _ar_taps(m)[..., 2]).detach().abs().reshape(-1) for _, m in ar_layers(model)]
    if not sums:
        return {"mean_abs_sum": None, "share_abs_sum_gt_half": None}
    s = torch.cat(sums).double()
    return {"mean_abs_sum": float(s.mean()), "share_abs_sum_gt_half": float((s > 0.5).double().mean())}


def _final_loss(steps: list[dict], tail: int = 20) -> float:
    losses = [s["loss"] for s in steps[-tail:]]
    return sum(losses) / len(losses) if losses else math.nan


def run_one(
    config: RunConfig, run_dir: str | os.PathLike, *, resume: bool = False, device: str = "cpu", progress: bool = False
) -> dict:
    """Train ``config`` in ``run_dir`` (checkpoint after every epoch), score it, write ``results.json``.

    With ``resume`` a finished run (its ``results.json`` exists with the same config) is
    returned as it is and an interrupted one continues from its checkpoint.
    """
    from arma_experiments.training import fit, make_fabric

    from .monitor import ar_state, layer_sums
    from .task import ClassifyTask, evaluate

    run_dir = Path(run_dir)
    done = run_dir / RESULTS
    if resume and done.is_file():
        saved = json.loads(done.read_text())
        if saved.get("config") == config.to_dict():
            return saved
    train, test = _data(config.dataset, config.data_dir, config.train_size, config.test_size)
    task = ClassifyTask(config, train, test)
    start = time.perf_counter()
    state = fit(
        task,
        make_fabric(device),
        run_dir,
        epochs=config.epochs,
        resume=resume,
        nonfinite="stop",
        progress=progress,
        desc=run_dir.name,
        log=lambda m: None,
    )
    model = getattr(task.model, "module", task.model)
    model.eval()
    final = evaluate(model, test, config.test_size)
    steps = state.steps
    bad_output = next((s["step"] for s in steps if not s.get("finite_output", True)), None)
    result = {
        "config": config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "ar_layers": len(task.layer_names),
        "ar_layer_names": task.layer_names,
        "steps_done": state.step,
        "nonfinite_step": state.nonfinite_step,
        "nonfinite_output_step": bad_output,
        "crossing": task.crossing,
        "final_layer_abs_sum": layer_sums(model),
        "final_max_abs_sum": ar_state(model)["max_abs_sum"],
        "final_min_margin": ar_state(model)["min_margin"],
        **_sum_stats(model),
        "test_accuracy": final["accuracy"],
        "test_loss": final["loss"],
        "test_images": final["images"],
        "majority_accuracy": test.majority_accuracy(),
        "final_loss": _final_loss(steps) if steps else state.history[-1]["train_loss"],
        "train_seconds": task.train_seconds,
        "seconds_per_epoch": sum(task.train_seconds) / max(1, len(task.train_seconds)),
        "wall_seconds": time.perf_counter() - start,
        "history": state.history,
        "steps": steps,
    }
    result["outcome"], result["reason"] = outcome(result)
    write_json(result, done)
    return result


def warm_up() -> None:
    """One forward and backward of each ARMA arm before the runs, so that no run's first epoch
    pays for one-time set-up (lazy imports, the solver's first plan)."""
    import torch

    from arma_core.nn import ARMA2d

    for region in ("strip", "raw"):
        layer = ARMA2d(2, 2, 3, padding=1, ar_region=region)
        layer(torch.randn(2, 2, 8, 8)).sum().backward()


def _worker(item: tuple[dict, str, bool, str]) -> tuple[str, str, float]:
    config, run_dir, resume, device = item
    threads = int(os.environ.get("ARMA_WORKER_THREADS", "1"))
    import torch

    torch.set_num_threads(threads)
    warm_up()
    result = run_one(RunConfig(**config), run_dir, resume=resume, device=device)
    return run_dir, f"{result['outcome']} (test accuracy {result['test_accuracy']:.3f})", result["wall_seconds"]


def run_many(
    items: Sequence[tuple[RunConfig, Path]],
    *,
    jobs: int = 1,
    threads: int = 1,
    resume: bool = False,
    device: str = "cpu",
    log=print,
) -> None:
    """Run every ``(config, run_dir)``; ``jobs`` spawned worker processes of ``threads`` threads.

    Workers are spawned, not forked (no inherited OpenMP state), and torch's OpenMP pool is
    sized to the worker's threads: two processes with pools of every core spin against each other.
    """
    if jobs > 1 and device != "cpu":
        raise ValueError(f"jobs > 1 runs one process per CPU core; use jobs=1 with device={device!r}")
    work = [(c.to_dict(), str(d), resume, device) for c, d in items]
    if jobs <= 1:
        import torch

        torch.set_num_threads(threads)
        for i, item in enumerate(work, 1):
            name, text, seconds = _worker(item)
            log(f"[{i}/{len(work)}] {Path(name).name}: {text}, {seconds:.0f} s")
        return
    from concurrent.futures import as_completed

    from arma_experiments.training import environment, worker_pool

    env = {
        "ARMA_WORKER_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    with environment(env):
        with worker_pool(jobs) as pool:
            futures = [pool.submit(_worker, item) for item in work]
            for i, fut in enumerate(as_completed(futures), 1):
                name, text, seconds = fut.result()
                log(f"[{i}/{len(work)}] {Path(name).name}: {text}, {seconds:.0f} s")


def run_invocation(
    items: Sequence[tuple[RunConfig, Path]], args, preset: dict, command: str, what: str
) -> float | None:
    """The training part of ``arma stability`` / ``arma classify``: runs ``items`` with the
    command line's ``--jobs`` / ``--threads`` / ``--resume`` / ``--device`` (else the preset's)
    and returns the wall time in seconds, or ``None`` after printing why it could not run (the
    command then exits with status 2).

    ``what`` describes the runs in the progress header, e.g. ``"12 runs in out/"``.
    """
    jobs = args.jobs or (preset["jobs"] if args.device == "cpu" else 1)
    threads = args.threads or preset["threads"] or 1
    if jobs < 1 or threads < 1:
        print(f"arma {command}: --jobs and --threads must be >= 1", file=sys.stderr)
        return None
    print(f"{what}, {jobs} process(es) x {threads} thread(s)", flush=True)
    start = time.perf_counter()
    try:
        run_many(
            items,
            jobs=jobs,
            threads=threads,
            resume=args.resume,
            device=args.device,
            log=lambda m: print(m, flush=True),
        )
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"arma {command}: {exc}", file=sys.stderr)
        return None
    return time.perf_counter() - start
