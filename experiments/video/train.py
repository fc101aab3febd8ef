"""Training and evaluation of the video predictors (Table 3) on the shared training loop.

One run (a model at a speed with a seed) is a :class:`VideoTask` given to
:func:`arma_experiments.training.fit`, which checkpoints after every epoch and resumes exactly;
:func:`train_and_evaluate` then scores the best-validation weights and the baselines on the
test set and writes ``results.json``.

Recipe (appendix A of the paper and the official code): Adam, learning rate 1e-3; the loss is
taken over the ``input_frames + future_frames - 1`` outputs (next-frame reconstructions of the
input phase and the predicted future); scheduled sampling; gradient-norm clipping at 3.

Losses (``VideoConfig.loss``):

- ``"l1mse"`` (the paper's): mean absolute error + mean squared error of the sigmoid output;
- ``"bce"``: binary cross-entropy on the logits, pixels read as probabilities (the loss of the
  original Moving-MNIST work). Mean L1 + MSE has a blank-frame optimum on sparse frames: about
  5% of the pixels are lit, L1's per-pixel optimum is their median, 0, and the sigmoid's
  gradient vanishes there; short CPU runs stay at the blank frame with it (docs/experiments.md).

Teacher-forcing schedules (``VideoConfig.tf_schedule``):

- ``"plateau"`` (the paper's): the ratio starts at 1; once the validation loss has not improved
  for ``tf_patience`` (20) epochs the decay starts and from then on the ratio drops by
  ``tf_decay`` (4e-3) every epoch and the learning rate is multiplied by ``lr_decay`` (0.98)
  every ``lr_decay_every`` (5) epochs. (The paper prints 4e-4; the official code uses 4e-3.
  "Once triggered, the decay continues" is our reading of the official schedule.)
- ``"linear"``: the ratio falls linearly from 1 to 0 over the first ``tf_linear_fraction`` of
  the optimizer steps; the learning rate is constant.
- ``"none"``: ratio 0 (the model always reads its own predictions in the future phase, as it
  does at test time); the learning rate is constant.

Learning-rate schedules (``VideoConfig.lr_schedule``): ``"constant"`` (apart from the plateau
schedule's decay), or ``"cosine"``: ``lr * (1 + cos(pi * step / total_steps)) / 2`` at every
optimizer step, the usual annealing for a fixed short budget.

Everything random is derived from ``(seed, epoch)``, so a run resumed from its per-epoch
checkpoint continues exactly as if it had not stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import results as R
from ..training import Task, TrainState, fit, make_fabric, seeded
from .data import MovingMNIST
from .histogram import AR_COEFFICIENTS, ar_coefficients, save_ar_coefficients
from .metrics import FrameMetrics
from .models import VIDEO_MODELS, NetworkSize, build_video_model, count_parameters

__all__ = [
    "BASELINES",
    "LOSSES",
    "TF_SCHEDULES",
    "VideoConfig",
    "VideoTask",
    "end_of_epoch_schedule",
    "evaluate_baselines",
    "evaluate_model",
    "load_checkpoint",
    "make_datasets",
    "mean_pixel",
    "model_from_checkpoint",
    "prediction_loss",
    "run_directory",
    "train_and_evaluate",
]

LOSSES = ("l1mse", "bce")
TF_SCHEDULES = ("plateau", "linear", "none")
LR_SCHEDULES = ("constant", "cosine")
#: The trivial predictors every model is compared with: key -> label.
BASELINES = {"blank": "Blank frame", "mean_pixel": "Mean-pixel frame", "copy_last": "Copy last frame"}
CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"


@dataclass
class VideoConfig:
    """One training run: a model at a speed with a seed, its data, network size and recipe.

    Attributes
    ----------
    model : str
        A name of :data:`arma_experiments.video.models.VIDEO_MODELS`.
    speed : float
        1, 2 or 3 (step 0.1 * speed).
    seed : int
        Seed of the initialisation, batch order and teacher-forcing coins.
    hidden, blocks, cells_per_block, skip_stride, nonlocal_subsample : int
        The network's size (:class:`~arma_experiments.video.models.NetworkSize`; paper: 32, 4,
        3, 2, 1).
    canvas_size, digit_size, num_digits, input_frames, future_frames
        Moving-MNIST geometry (paper: 64, 28, 2, 10, 10).
    train_size, val_size, test_size : int
        Sequences in each set (paper: 10000, 3000, 5000). ``val_size = 0`` skips validation
        (the final model is then evaluated, and the plateau schedule never triggers).
    resample_train : bool
        Draw fresh training sequences every epoch (deterministic in ``(data_seed, epoch)``).
    digit_pool : int or None
        Use only the first ``digit_pool`` digits of each split (tiny test subsets).
    data_seed : int
        Seed of the sequences; validation and test use ``data_seed + 1`` and ``data_seed + 2``, so
        every model at every speed and seed sees the same evaluation digits, starts and directions.
    epochs, batch_size, micro_batch, eval_batch_size : int
        ``micro_batch`` (0 = ``batch_size``) splits a batch for gradient accumulation (memory).
    loss : {"l1mse", "bce"}
        The paper's L1 + MSE, or binary cross-entropy on logits (see the module docstring).
    lr, lr_schedule, lr_decay, lr_decay_every, tf_schedule, tf_patience, tf_decay, tf_linear_fraction
        Optimiser and schedules (see the module docstring).
    grad_clip : float or None
        Gradient-norm clipping threshold (paper: 3); None disables it.
    output_bias_init : bool
        Start the output convolution's bias at ``logit(mean training pixel)`` instead of 0, so
        the untrained network predicts the mean intensity instead of 0.5 gray. The paper does
        not say how the output layer was initialised; this matters only for short runs.
    max_minutes : float or None
        Training-time budget of the run (:func:`arma_experiments.training.fit`).
    """

    model: str = "convlstm3"
    speed: float = 1
    seed: int = 0
    hidden: int = 32
    blocks: int = 4
    cells_per_block: int = 3
    skip_stride: int = 2
    nonlocal_subsample: int = 1
    canvas_size: int = 64
    digit_size: int = 28
    num_digits: int = 2
    input_frames: int = 10
    future_frames: int = 10
    train_size: int = 10000
    val_size: int = 3000
    test_size: int = 5000
    resample_train: bool = False
    digit_pool: int | None = None
    data_seed: int = 0
    epochs: int = 500
    batch_size: int = 32
    micro_batch: int = 0
    eval_batch_size: int = 32
    loss: str = "l1mse"
    lr: float = 1e-3
    lr_schedule: str = "constant"
    lr_decay: float = 0.98
    lr_decay_every: int = 5
    tf_schedule: str = "plateau"
    tf_patience: int = 20
    tf_decay: float = 4e-3
    tf_linear_fraction: float = 0.5
    grad_clip: float | None = 3.0
    output_bias_init: bool = False
    max_minutes: float | None = None

    # Fields that may change when a run is resumed (they do not change what was computed so far;
    # "epochs" only without the linear and cosine schedules, whose horizons depend on it).
    RESUMABLE_CHANGES = ("epochs", "max_minutes", "eval_batch_size", "micro_batch")

    def __post_init__(self):
        if self.model not in VIDEO_MODELS:
            raise ValueError(f"model must be one of {sorted(VIDEO_MODELS)}, got {self.model!r}")
        for name, allowed in (("loss", LOSSES), ("tf_schedule", TF_SCHEDULES), ("lr_schedule", LR_SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in (
            "train_size",
            "test_size",
            "epochs",
            "batch_size",
            "eval_batch_size",
            "input_frames",
            "future_frames",
            "lr_decay_every",
            "tf_patience",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("val_size", "micro_batch", "seed", "data_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        _ = self.size  # validates the network size
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip!r}")
        if not 0 < self.tf_linear_fraction <= 1:
            raise ValueError(f"tf_linear_fraction must be in (0, 1], got {self.tf_linear_fraction!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be positive or None, got {self.max_minutes!r}")

    @property
    def num_frames(self) -> int:
        return self.input_frames + self.future_frames

    @property
    def size(self) -> NetworkSize:
        """The network size of the run."""
        return NetworkSize(self.hidden, self.blocks, self.cells_per_block, self.skip_stride, self.nonlocal_subsample)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_directory(out_dir: str | os.PathLike, model: str, speed: float, seed: int = 0) -> Path:
    """``out_dir / "<model>-speed<speed>-seed<seed>"``: where a run keeps its checkpoint and results."""
    return Path(out_dir) / f"{model}-speed{speed:g}-seed{seed}"


def make_datasets(config: VideoConfig) -> tuple[MovingMNIST, MovingMNIST | None, MovingMNIST]:
    """Training, validation (or None) and test sets of a run."""

    def moving_mnist(split: str, size: int, seed: int, resample: bool = False) -> MovingMNIST:
        return MovingMNIST(
            split,
            size,
            seed=seed,
            resample=resample,
            speed=config.speed,
            canvas_size=config.canvas_size,
            digit_size=config.digit_size,
            num_digits=config.num_digits,
            num_frames=config.num_frames,
            digit_pool=config.digit_pool,
        )

    train = moving_mnist("train", config.train_size, config.data_seed, resample=config.resample_train)
    val = moving_mnist("val", config.val_size, config.data_seed + 1) if config.val_size else None
    test = moving_mnist("test", config.test_size, config.data_seed + 2)
    return train, val, test


def mean_pixel(train: MovingMNIST, sequences: int = 1024) -> float:
    """Mean pixel of the first ``sequences`` training sequences (of epoch 0).

    The constant of the mean-pixel baseline and, through its logit, the initial output bias.
    """
    frames = train.batch(np.arange(min(len(train), sequences)))
    return float(frames.mean(dtype=np.float64))


def prediction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "l1mse") -> torch.Tensor:
    """The training loss of output logits against target frames in ``[0, 1]``.

    Parameters
    ----------
    logits : Tensor, shape (B, T, C, H, W)
        The network's output before the sigmoid (``ConvLSTMNet(..., logits=True)``).
    target : Tensor, same shape
    kind : {"l1mse", "bce"}
        ``"l1mse"``: mean ``|p - y|`` + mean ``(p - y)^2`` with ``p = sigmoid(logits)`` (the
        paper's); ``"bce"``: mean binary cross-entropy, computed from the logits.

    Examples
    --------
    >>> y = torch.tensor([0.0, 1.0])
    >>> float(prediction_loss(torch.tensor([0.0, 0.0]), y))  # p = 0.5 everywhere
    0.75
    >>> round(float(prediction_loss(torch.tensor([0.0, 0.0]), y, "bce")), 4)  # log 2
    0.6931
    """
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "l1mse":
        diff = torch.sigmoid(logits) - target
        return diff.abs().mean() + (diff * diff).mean()
    raise ValueError(f"kind must be one of {LOSSES}, got {kind!r}")


def _batches(n: int, batch_size: int, order: np.ndarray | None = None):
    idx = np.arange(n) if order is None else order
    for start in range(0, n, batch_size):
        yield idx[start : start + batch_size]


def end_of_epoch_schedule(state: dict, val_loss: float | None, config: VideoConfig) -> bool:
    """Update the plateau schedule after an epoch; True when ``val_loss`` is a new best.

    ``state`` holds ``best_val``, ``stall`` (epochs without improvement), ``decay_epochs``
    (-1 until the decay starts), ``tf_ratio`` and ``lr``; it is modified in place. With the
    "plateau" schedule, once ``stall`` reaches ``tf_patience`` the decay starts and continues
    every epoch: ``tf_ratio -= tf_decay`` (floored at 0), ``lr *= lr_decay`` every
    ``lr_decay_every`` epochs. Without validation (``val_loss`` None) nothing ever stalls.
    """
    improved = False
    if val_loss is not None:
        if val_loss < state["best_val"]:
            state["best_val"], state["stall"] = val_loss, 0
            improved = True
        else:
            state["stall"] += 1
    if config.tf_schedule == "plateau":
        if state["decay_epochs"] < 0 and state["stall"] >= config.tf_patience:
            state["decay_epochs"] = 0
        if state["decay_epochs"] >= 0:
            state["decay_epochs"] += 1
            state["tf_ratio"] = max(0.0, state["tf_ratio"] - config.tf_decay)
            if state["decay_epochs"] % config.lr_decay_every == 0:
                state["lr"] *= config.lr_decay
    return improved


def _plain(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a Fabric wrapper (or the module itself)."""
    return getattr(model, "module", model)


class VideoTask(Task):
    """One run of :class:`VideoConfig` for :func:`arma_experiments.training.fit`.

    The task's resumable state (:meth:`state_dict`) is the schedule (``tf_ratio``, ``lr``,
    best validation loss, stall and decay counters) and the best-validation weights.

    Parameters
    ----------
    config : VideoConfig
    datasets : tuple, optional
        ``(train, val, test)`` from :func:`make_datasets` (built when omitted).

    Examples
    --------
    >>> cfg = VideoConfig(canvas_size=8, digit_size=4, hidden=4, blocks=2, cells_per_block=1,
    ...                   train_size=6, val_size=2, test_size=2, batch_size=4, digit_pool=16)
    >>> task = VideoTask(cfg)
    >>> model, optimizer = task.build()
    >>> [len(b) for b in task.batches(0)], round(task.mean_pixel, 3)  # 6 sequences, batches of 4
    ([4, 2], 0.054)
    """

    def __init__(
        self, config: VideoConfig, datasets: tuple[MovingMNIST, MovingMNIST | None, MovingMNIST] | None = None
    ):
        self.video = config
        self.config = config.to_dict()
        # the linear and cosine schedules' horizons are fractions of all steps: the epochs fix them
        fixed = config.tf_schedule == "linear" or config.lr_schedule == "cosine"
        self.resumable_changes = tuple(k for k in VideoConfig.RESUMABLE_CHANGES if not (k == "epochs" and fixed))
        self.clip_grad_norm = config.grad_clip
        self.train_set, self.val_set, self.test_set = datasets or make_datasets(config)
        self.mean_pixel = mean_pixel(self.train_set)
        self.steps_per_epoch = math.ceil(config.train_size / config.batch_size)
        self.schedule = {
            "tf_ratio": 0.0 if config.tf_schedule == "none" else 1.0,
            "lr": config.lr,
            "best_val": math.inf,
            "stall": 0,
            "decay_epochs": -1,
        }
        self.best_model: dict | None = None
        self.coins: torch.Generator | None = None

    def build(self):
        with seeded(self.video.seed):
            model = build_video_model(self.video.model, self.video.size)
        if self.video.output_bias_init:
            m = min(max(self.mean_pixel, 1e-4), 1 - 1e-4)
            assert model.output.bias is not None  # the output convolution is built with bias=True
            with torch.no_grad():
                model.output.bias.fill_(math.log(m / (1 - m)))
        return model, torch.optim.Adam(model.parameters(), lr=self.video.lr)

    def batches(self, epoch: int):
        self.train_set.set_epoch(epoch)
        order = np.random.default_rng([self.video.seed, epoch]).permutation(len(self.train_set))
        return list(_batches(len(self.train_set), self.video.batch_size, order))

    def start_epoch(self, model, optimizer, state: TrainState) -> None:
        for group in optimizer.param_groups:
            group["lr"] = self.schedule["lr"]
        self.coins = torch.Generator().manual_seed(self.video.seed * 1_000_003 + state.epoch)

    def training_step(self, fabric, model, batch, state: TrainState):
        cfg = self.video
        total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.tf_schedule == "linear":
            horizon = cfg.tf_linear_fraction * total_steps
            self.schedule["tf_ratio"] = max(0.0, 1.0 - state.step / horizon)
        if cfg.lr_schedule == "cosine":
            lr = self.schedule["lr"] * 0.5 * (1 + math.cos(math.pi * state.step / total_steps))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        frames = torch.from_numpy(self.train_set.batch(batch)).to(fabric.device)
        total = 0.0
        for chunk in torch.split(frames, cfg.micro_batch or cfg.batch_size):
            out = model(
                chunk,
                cfg.input_frames,
                cfg.future_frames,
                teacher_forcing_ratio=self.schedule["tf_ratio"],
                generator=self.coins,
                logits=True,
            )
            loss = prediction_loss(out, chunk[:, 1:], cfg.loss) * (len(chunk) / len(frames))
            fabric.backward(loss)
            total += float(loss.detach())
        return {"loss": total}

    def end_epoch(self, fabric, model, state: TrainState):
        val = None if self.val_set is None else self._validation_loss(fabric, model, self.val_set)
        record = {"val_loss": val, "tf_ratio": self.schedule["tf_ratio"], "lr": self.optimizer.param_groups[0]["lr"]}
        if end_of_epoch_schedule(self.schedule, val, self.video):
            self.best_model = {k: v.detach().cpu().clone() for k, v in _plain(model).state_dict().items()}
        return record

    def _validation_loss(self, fabric, model, val_set: MovingMNIST) -> float:
        cfg = self.video
        total = 0.0
        for idx in _batches(len(val_set), cfg.eval_batch_size):
            frames = torch.from_numpy(val_set.batch(idx)).to(fabric.device)
            out = model(frames, cfg.input_frames, cfg.future_frames, logits=True)
            total += float(prediction_loss(out, frames[:, 1:], cfg.loss)) * len(idx)
        return total / len(val_set)

    def state_dict(self) -> dict:
        return {"schedule": dict(self.schedule), "best_model": self.best_model}

    def load_state_dict(self, state: dict) -> None:
        self.schedule = dict(state["schedule"])
        self.best_model = state["best_model"]


@torch.no_grad()
def evaluate_model(model, dataset: MovingMNIST, config: VideoConfig, device="cpu", progress=None) -> dict:
    """PSNR, SSIM and MSE of the ``future_frames`` predictions, per frame and averaged (Table 3).

    The model sees only the first ``input_frames`` true frames (no teacher forcing).
    ``progress`` is an optional callable ``progress(num_sequences_done)``.
    """
    model.eval()
    metrics = FrameMetrics(config.future_frames)
    for idx in _batches(len(dataset), config.eval_batch_size):
        frames = torch.from_numpy(dataset.batch(idx)).to(device)
        pred = model(frames[:, : config.input_frames], config.input_frames, config.future_frames)
        metrics.update(pred[:, -config.future_frames :], frames[:, config.input_frames :])
        if progress is not None:
            progress(len(idx))
    return metrics.result()


def evaluate_baselines(dataset: MovingMNIST, config: VideoConfig, mean: float) -> dict:
    """Metrics of the trivial predictors of :data:`BASELINES` on the same test set.

    ``"blank"`` predicts black frames, ``"mean_pixel"`` the constant ``mean`` (the mean training
    pixel: the best constant under MSE), ``"copy_last"`` repeats the last input frame. On
    Moving-MNIST most pixels are black, so an empty or blurry prediction scores well: a model
    has learned motion only when it beats all three.
    """
    scores = {key: FrameMetrics(config.future_frames) for key in BASELINES}
    for idx in _batches(len(dataset), config.eval_batch_size):
        frames = torch.from_numpy(dataset.batch(idx)).double()
        future = frames[:, config.input_frames :]
        last = frames[:, config.input_frames - 1 : config.input_frames].expand_as(future)
        scores["blank"].update(torch.zeros_like(future), future)
        scores["mean_pixel"].update(torch.full_like(future, mean), future)
        scores["copy_last"].update(last, future)
    return {key: m.result() for key, m in scores.items()}


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`train_and_evaluate` (a run directory or the file).

    Loaded with ``weights_only=True`` (plain tensors and containers only).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or not {"config", "model", "task"} <= set(ckpt):
        raise ValueError(f"{path} is not a video checkpoint of arma_experiments.video")
    return ckpt


def model_from_checkpoint(ckpt: dict, which: str = "best") -> tuple[torch.nn.Module, VideoConfig]:
    """Rebuild the network of a checkpoint; ``which`` = "best" (validation) or "last" weights."""
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    config = VideoConfig(**ckpt["config"])
    model = build_video_model(config.model, config.size)
    best = ckpt["task"].get("best_model")
    model.load_state_dict(best if which == "best" and best else ckpt["model"])
    return model.eval(), config


def _save_prediction(model, dataset: MovingMNIST, config: VideoConfig, device, path: Path) -> None:
    """``prediction.npz``: inputs, true and predicted future of test sequence 0."""
    frames = dataset.batch([0])
    with torch.no_grad():
        x = torch.from_numpy(frames[:, : config.input_frames]).to(device)
        pred = model(x, config.input_frames, config.future_frames)[:, -config.future_frames :]
    seq = frames[0, :, 0]
    np.savez_compressed(
        path, input=seq[: config.input_frames], truth=seq[config.input_frames :], predicted=pred.cpu().numpy()[0, :, 0]
    )


def train_and_evaluate(
    config: VideoConfig,
    out_dir: str | os.PathLike,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
    log=print,
) -> dict:
    """Train one run with checkpoints every epoch, then evaluate it on the test set.

    Parameters
    ----------
    config : VideoConfig
    out_dir : path
        Parent directory; the run lives in :func:`run_directory` ``(out_dir, model, speed, seed)``.
    device : str
        ``"cpu"``, ``"cuda"``, ... (:func:`arma_experiments.training.make_fabric`).
    resume : bool
        Continue from the run's checkpoint if there is one (its settings must match, except
        :attr:`VideoConfig.RESUMABLE_CHANGES`). Without it, an existing checkpoint is an error.
    progress : bool
        Show a progress bar.
    log : callable
        Where one-line messages go.

    Returns
    -------
    dict
        What is also written to ``results.json``: the config, parameter count, training time,
        epochs, history, the test metrics of the model and of the baselines.

    Examples
    --------
    >>> import tempfile
    >>> cfg = VideoConfig(canvas_size=8, digit_size=4, hidden=4, blocks=2, cells_per_block=1,
    ...                   input_frames=3, future_frames=2, train_size=4, val_size=2, test_size=2,
    ...                   epochs=2, batch_size=2, loss="bce", digit_pool=16)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     r = train_and_evaluate(cfg, d, progress=False, log=lambda m: None)
    >>> r["steps"], sorted(r["baselines"]), len(r["metrics"]["mse_per_frame"])
    (4, ['blank', 'copy_last', 'mean_pixel'], 2)
    """
    run_dir = run_directory(out_dir, config.model, config.speed, config.seed)
    task = VideoTask(config)
    desc = f"{config.model} {config.speed:g}x seed {config.seed}"
    state = fit(
        task,
        make_fabric(device),
        run_dir,
        epochs=config.epochs,
        resume=resume,
        max_minutes=config.max_minutes,
        progress=progress,
        desc=desc,
        log=log,
    )
    model = _plain(task.model)
    if task.best_model is not None:
        model.load_state_dict(task.best_model)
    start = time.perf_counter()
    metrics = evaluate_model(model, task.test_set, config, device)
    baselines = evaluate_baselines(task.test_set, config, task.mean_pixel)
    _save_prediction(model, task.test_set, config, device, run_dir / "prediction.npz")
    spec = VIDEO_MODELS[config.model]
    if spec.arma:  # Figure 6's record of this run (the checkpoint may not be kept)
        save_ar_coefficients(ar_coefficients(model), run_dir / AR_COEFFICIENTS)
    paper = spec.paper_table3.get(config.speed) if float(config.speed).is_integer() else None
    results = {
        "model": config.model,
        "label": spec.label,
        "speed": config.speed,
        "seed": config.seed,
        "params": count_parameters(model),
        "paper_params_million": spec.paper_params,
        "paper": {"psnr": paper[0] if paper else None, "ssim": paper[1] if paper else None},
        "epochs_completed": state.epoch,
        "steps": state.step,
        "stopped_by_budget": state.stopped == "budget",
        "train_seconds": state.seconds,
        "eval_seconds": time.perf_counter() - start,
        "evaluated_weights": "best validation" if task.best_model is not None else "last",
        "mean_pixel": task.mean_pixel,
        "metrics": metrics,
        "baselines": baselines,
        "history": state.history,
        "config": config.to_dict(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    R.write_json(results, run_dir / RESULTS)
    return results
