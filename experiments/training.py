"""The training loop, checkpoints and resume shared by every experiment, on Lightning Fabric.

An experiment describes one run as a :class:`Task` (its model, optimizer, data order, training
step and end-of-epoch evaluation); :func:`fit` runs it. Fabric provides the device, the
precision (``"32-true"``, ``"bf16-mixed"``, ...), data-parallel training across GPUs and nodes
(``devices``, ``num_nodes``, ``strategy``) and the checkpoint format; this module adds what the
paper's experiments need on top:

- a checkpoint after every epoch (``checkpoint.pt`` in the run directory, written atomically),
  and ``resume=True`` continuing exactly where it stopped: the task derives everything random
  from ``(seed, epoch)``, so an interrupted and resumed run equals an uninterrupted one;
- a time budget (``max_minutes``): no epoch is started that the last epoch's duration says
  would end beyond it, and the run is marked as stopped by the budget;
- non-finite losses either raise (``nonfinite="raise"``) or end the run with the step recorded
  (``nonfinite="stop"``, for experiments that study divergence);
- per-step and per-epoch records in the returned :class:`TrainState` and the checkpoint;
- a progress bar (tqdm) with the running loss.

Everything that changes process-wide state (torch's thread count, random seeds) is scoped:
:func:`torch_threads` and :func:`seeded` restore what they change.

Examples
--------
>>> import torch
>>> from arma_experiments.training import Task, fit, make_fabric
>>> class Line(Task):
...     def build(self):
...         model = torch.nn.Linear(1, 1)
...         return model, torch.optim.SGD(model.parameters(), lr=0.1)
...     def batches(self, epoch):
...         g = torch.Generator().manual_seed(epoch)
...         x = torch.randn(8, 4, 1, generator=g)
...         return [(xb, 2 * xb) for xb in x]
...     def training_step(self, fabric, model, batch, state):
...         x, y = batch
...         loss = torch.mean((model(x) - y) ** 2)
...         fabric.backward(loss)
...         return {"loss": float(loss.detach())}
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     state = fit(Line(), make_fabric(), d, epochs=5, progress=False, log=lambda m: None)
>>> state.epoch, state.step, state.history[-1]["train_loss"] < 1e-3
(5, 40, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import torch

__all__ = [
    "CHECKPOINT",
    "Task",
    "TrainState",
    "fit",
    "make_fabric",
    "load_state",
    "seeded",
    "torch_threads",
    "check_resumable",
]

CHECKPOINT = "checkpoint.pt"


def make_fabric(
    device: str = "cpu",
    *,
    precision: str = "32-true",
    devices: int | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
):
    """A launched :class:`lightning.fabric.Fabric` for ``device`` (``"cpu"``, ``"cuda"``, ``"mps"``).

    Parameters
    ----------
    device : str
        Fabric's accelerator; ``"cuda"`` fails with a clear message when no GPU is visible.
    precision : str
        Fabric's precision string, e.g. ``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``.
    devices, num_nodes, strategy
        As :class:`lightning.fabric.Fabric` (several GPUs or nodes: data-parallel training).
    """
    from lightning.fabric import Fabric

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch.cuda.is_available() is False")
    fabric = Fabric(
        accelerator=device, devices=devices, num_nodes=num_nodes, strategy=strategy, precision=cast(Any, precision)
    )
    fabric.launch()
    return fabric


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (``None``: unchanged); restore after."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def environment(values: Mapping[str, str], *, keep_existing: bool = False) -> Iterator[None]:
    """Run the block with the environment variables ``values`` set; restore the caller's after.

    For worker processes, which inherit the environment (e.g. ``OMP_NUM_THREADS``: an OpenMP
    pool starts that many threads, default every core, and its idle threads spin).
    ``keep_existing``: a variable the caller already set keeps its value.

    Examples
    --------
    >>> import os
    >>> with environment({"ARMA_EXAMPLE": "1"}):
    ...     os.environ["ARMA_EXAMPLE"]
    '1'
    >>> "ARMA_EXAMPLE" in os.environ
    False
    """
    before = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if not (keep_existing and before[k] is not None):
            os.environ[k] = v
    try:
        yield
    finally:
        for k, old in before.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def worker_pool(jobs: int):
    """A ``ProcessPoolExecutor`` of ``jobs`` spawned workers (no forked OpenMP state) that die
    with the process that made them.

    Killing a ``--jobs N`` command (``kill PID``, a job scheduler's time limit) stops its parent
    process only; without this, its workers kept training as orphans, and a command started
    again with ``--resume`` trained the same runs twice into the same directories. Each worker
    watches its parent (:func:`_exit_with_parent`) and exits when it is gone; a run killed
    mid-epoch resumes from its last checkpoint. Ctrl-C in a terminal already reached every
    process of the group.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """In a worker: a daemon thread that ends the process once ``parent`` is no longer its
    parent (the parent died and the worker was re-parented), checked every ``every`` seconds."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU (and CUDA) generators seeded by ``seed``; restore after.

    For model initialisation: the weights depend on ``seed`` only, and the caller's random
    state is untouched.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@dataclasses.dataclass
class TrainState:
    """Where a run is; saved in every checkpoint.

    Attributes
    ----------
    epoch, step : int
        Completed epochs and optimizer steps.
    seconds : float
        Training time so far (excluding evaluation after :func:`fit`).
    stopped : str or None
        Why :func:`fit` ended early: ``"budget"`` (``max_minutes``), ``"nonfinite"``, or None.
    nonfinite_step : int or None
        The first step whose loss was NaN or inf (``nonfinite="stop"``).
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss`` (mean over the epoch's steps),
        ``seconds`` and whatever :meth:`Task.end_epoch` returned.
    steps : list of dict
        One record per step when the task asks for them (:attr:`Task.record_steps`): ``step``
        and whatever :meth:`Task.training_step` returned.
    extra : dict
        The task's own state (:meth:`Task.state_dict`), e.g. a schedule or the best weights.
    """

    epoch: int = 0
    step: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    nonfinite_step: int | None = None
    history: list[dict] = dataclasses.field(default_factory=list)
    steps: list[dict] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Task:
    """One training run of an experiment; subclass it and pass it to :func:`fit`.

    Override :meth:`build`, :meth:`batches` and :meth:`training_step`; the rest is optional.

    Attributes
    ----------
    config : dict
        JSON-able settings, saved in the checkpoint; a resumed run must have the same ones
        except those in :attr:`resumable_changes`.
    record_steps : bool
        Keep one record per step in :attr:`TrainState.steps` (default False).
    clip_grad_norm : float or None
        Clip the gradient norm before every optimizer step (Fabric's ``clip_gradients``).
    """

    config: dict = {}
    #: set by :func:`fit`: the Fabric-wrapped model and optimizer of the run
    model: Any = None
    optimizer: Any = None
    resumable_changes: tuple[str, ...] = ("epochs", "max_minutes", "eval_batch_size", "micro_batch")
    record_steps: bool = False
    clip_grad_norm: float | None = None

    def build(self) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """The model and its optimizer, on the CPU (:func:`fit` moves them with Fabric)."""
        raise NotImplementedError

    def batches(self, epoch: int) -> Iterable[Any]:
        """The training batches of ``epoch``, in an order that depends on ``(seed, epoch)`` only."""
        raise NotImplementedError

    def training_step(self, fabric, model, batch, state: TrainState) -> Mapping[str, float]:
        """Forward and ``fabric.backward`` of one batch; returns at least ``{"loss": float}``.

        The gradients are zeroed before and the optimizer steps after (with
        :attr:`clip_grad_norm`); a step may call ``fabric.backward`` several times
        (micro-batches), with the losses scaled to sum to the batch's.
        """
        raise NotImplementedError

    def start_epoch(self, model, optimizer, state: TrainState) -> None:
        """Called before each epoch (e.g. to set the learning rate of a schedule)."""

    def end_epoch(self, fabric, model, state: TrainState) -> Mapping[str, Any]:
        """Called after each epoch, in eval mode; returns extra fields of the epoch's record."""
        return {}

    def state_dict(self) -> dict:
        """The task's own resumable state (saved with every checkpoint)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s result when resuming."""


def check_resumable(saved: Mapping[str, Any], config: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """ValueError naming the settings that differ between a checkpoint and this run."""
    allowed = set(allowed)
    diff = sorted(k for k in set(saved) | set(config) if k not in allowed and saved.get(k) != config.get(k))
    if diff:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in diff)
        raise ValueError(
            f"cannot resume: the checkpoint was made with other settings ({detail}); "
            "use another output directory or the same settings"
        )


def load_state(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`fit` as plain tensors and dicts (for evaluation)."""
    return torch.load(Path(path), map_location="cpu", weights_only=False)


def _save(fabric, path: Path, state: dict) -> None:
    """Fabric's save, made atomic: a crash mid-write leaves the previous checkpoint intact."""
    tmp = path.with_name(path.name + ".tmp")
    fabric.save(tmp, state)
    if fabric.is_global_zero:
        os.replace(tmp, path)
    fabric.barrier()


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=min(initial, total), unit="step", desc=desc, dynamic_ncols=True)


def fit(
    task: Task,
    fabric,
    directory: str | os.PathLike,
    *,
    epochs: int,
    resume: bool = False,
    max_minutes: float | None = None,
    nonfinite: Literal["raise", "stop"] = "raise",
    progress: bool = True,
    desc: str = "",
    log=print,
) -> TrainState:
    """Train ``task`` for ``epochs`` epochs with a checkpoint after each; returns the final state.

    Parameters
    ----------
    task : Task
    fabric : lightning.fabric.Fabric
        From :func:`make_fabric`.
    directory : path
        The run's directory (created); holds ``checkpoint.pt``.
    epochs : int
        Total epochs (a resumed run trains the missing ones).
    resume : bool
        Continue from the directory's checkpoint if there is one. Without it an existing
        checkpoint is an error, so finished work is never overwritten silently.
    max_minutes : float, optional
        Training-time budget (see the module docstring).
    nonfinite : {"raise", "stop"}
        What a NaN or inf training loss does: raise :class:`FloatingPointError`, or end the run
        with ``state.stopped = "nonfinite"`` and the step in ``state.nonfinite_step``.
    progress : bool
        Show a progress bar.
    desc : str
        The progress bar's and log lines' label.
    log : callable
        Where one-line messages go.

    Returns
    -------
    TrainState
        The model, optimizer and state are also in ``directory / "checkpoint.pt"``; the trained
        model is ``task.model`` (Fabric-wrapped; ``task.model.module`` is the plain module).
    """
    if nonfinite not in ("raise", "stop"):
        raise ValueError(f"nonfinite must be 'raise' or 'stop', got {nonfinite!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT
    if path.exists() and not resume:
        raise FileExistsError(f"{path} exists; pass resume=True (--resume) or choose another output directory")
    model, optimizer = fabric.setup(*task.build())
    task.model, task.optimizer = model, optimizer
    state = _restore(task, fabric, path, desc, log) if path.exists() else TrainState()
    run = _Run(task, fabric, model, optimizer, nonfinite, desc)
    last_epoch = 0.0
    while state.epoch < epochs and state.stopped != "nonfinite":
        if max_minutes is not None and state.seconds + last_epoch > 60 * max_minutes:
            state.stopped = "budget"
            log(f"{desc}: time budget of {max_minutes} min reached after {state.epoch} epochs")
            break
        start = time.perf_counter()
        mean_loss = run.epoch(state, lambda n: _progress(progress, n * epochs, state.step, desc))
        model.eval()
        with torch.no_grad():
            record = dict(task.end_epoch(fabric, model, state)) if state.stopped is None else {}
        last_epoch = time.perf_counter() - start
        state.seconds += last_epoch
        state.history.append({"epoch": state.epoch + 1, "train_loss": mean_loss, "seconds": last_epoch, **record})
        state.epoch += 1
        _save(
            fabric,
            path,
            {
                "model": model,
                "optimizer": optimizer,
                "config": task.config,
                "state": state.to_dict(),
                "task": task.state_dict(),
            },
        )
        if run.bar is None:
            log(f"{desc}: epoch {state.epoch}/{epochs}, loss {mean_loss:.4g}")
        if state.stopped == "nonfinite":
            log(f"{desc}: non-finite loss at step {state.nonfinite_step}; run stopped")
    if run.bar is not None:
        run.bar.close()
    return state


def _restore(task: Task, fabric, path: Path, desc: str, log) -> TrainState:
    """Model, optimizer, state and the task's own state from the checkpoint at ``path``."""
    saved = fabric.load(path, {"model": task.model, "optimizer": task.optimizer})
    check_resumable(saved["config"], task.config, task.resumable_changes)
    state = TrainState(**saved["state"])
    task.load_state_dict(saved["task"])
    if state.stopped == "budget":
        state.stopped = None  # a new invocation gets a new budget
    log(f"{desc}: resumed after epoch {state.epoch}")
    return state


class _Run:
    """The steps of one epoch: zero the gradients, the task's step, clip, step; non-finite
    losses raise or end the run (``nonfinite``); per-step records and the progress bar."""

    def __init__(self, task: Task, fabric, model, optimizer, nonfinite: str, desc: str):
        self.task, self.fabric, self.model, self.optimizer = task, fabric, model, optimizer
        self.nonfinite, self.desc = nonfinite, desc
        self.bar = None

    def epoch(self, state: TrainState, make_bar) -> float:
        """Train one epoch; returns its mean loss."""
        task = self.task
        self.model.train()
        task.start_epoch(self.model, self.optimizer, state)
        batches = list(task.batches(state.epoch))
        if not batches:
            raise ValueError(f"{self.desc}: task.batches({state.epoch}) yielded no batch")
        if self.bar is None:
            self.bar = make_bar(len(batches))
        total, done = 0.0, 0
        for batch in batches:
            loss = self._step(state, batch)
            done += 1
            total += loss
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(epoch=state.epoch + 1, loss=f"{total / done:.4g}")
            if state.stopped is not None:
                break
        return total / done

    def _step(self, state: TrainState, batch) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        out = dict(self.task.training_step(self.fabric, self.model, batch, state))
        loss = float(out["loss"])
        if not math.isfinite(loss):
            if self.nonfinite == "raise":
                raise FloatingPointError(
                    f"{self.desc}: training loss became {loss} at epoch {state.epoch + 1}, step {state.step + 1}"
                )
            state.nonfinite_step = state.step + 1
            state.stopped = "nonfinite"
        else:
            if self.task.clip_grad_norm is not None:
                self.fabric.clip_gradients(
                    self.model, self.optimizer, max_norm=self.task.clip_grad_norm, error_if_nonfinite=False
                )
            self.optimizer.step()
        state.step += 1
        if self.task.record_steps:
            state.steps.append({"step": state.step, **out})
        return loss
