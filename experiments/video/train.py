"""Training and evaluation of the video predictors with the paper's recipe (Table 3).

Recipe (appendix A of the paper and the official code): Adam, learning rate 1e-3; loss = mean L1
+ mean MSE over the ``input_frames + future_frames - 1`` outputs (next-frame reconstructions of
the input phase and the predicted future); scheduled sampling; gradient-norm clipping at 3.

Schedules (``VideoConfig.tf_schedule``):

- ``"plateau"`` (the paper's): the teacher-forcing ratio starts at 1; once the validation loss
  has not improved for ``tf_patience`` (20) epochs the decay starts and from then on the ratio
  drops by ``tf_decay`` (4e-3) every epoch and the learning rate is multiplied by ``lr_decay``
  (0.98) every ``lr_decay_every`` (5) epochs. (The paper prints 4e-4; the official code uses 4e-3.
  "Once triggered, the decay continues" is our reading of the official schedule.)
- ``"linear"`` (for short runs, where no plateau can be seen): the ratio falls linearly from 1
  to 0 over the first ``tf_linear_fraction`` of the optimizer steps; the learning rate is
  constant.

Everything random is derived from ``(seed, epoch)``, so a run resumed from its per-epoch
checkpoint continues exactly as if it had not stopped.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .models import VIDEO_MODELS, build_video_model, count_parameters
from .data import MovingMNIST
from .metrics import FrameMetrics

__all__ = [
    "VideoConfig",
    "TF_SCHEDULES",
    "prediction_loss",
    "make_datasets",
    "evaluate_model",
    "evaluate_baselines",
    "end_of_epoch_schedule",
    "train_and_evaluate",
    "run_directory",
    "load_checkpoint",
    "model_from_checkpoint",
]

TF_SCHEDULES = ("plateau", "linear")
CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"


@dataclass
class VideoConfig:
    """One training run: a model at a speed, its data and its recipe.

    Attributes
    ----------
    model : str
        A name of :data:`arma_core.nn.models.VIDEO_MODELS`.
    speed : float
        1, 2 or 3 (step 0.1 * speed).
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
        every model at every speed sees the same evaluation digits, starts and directions.
    seed : int
        Seed of the initialisation, batch order and teacher-forcing coins.
    epochs, batch_size, micro_batch, eval_batch_size : int
        ``micro_batch`` (0 = ``batch_size``) splits a batch for gradient accumulation (memory).
    lr, lr_decay, lr_decay_every, tf_schedule, tf_patience, tf_decay, tf_linear_fraction
        Optimiser and schedules (see the module docstring).
    grad_clip : float or None
        Gradient-norm clipping threshold (paper: 3); None disables it.
    output_bias_init : bool
        Start the output convolution's bias at ``logit(mean training pixel)`` instead of 0, so
        the untrained network predicts the mean intensity instead of 0.5 gray. The paper does
        not say how the output layer was initialised; this matters only for short runs.
    max_minutes : float or None
        Wall-clock budget of the training loop: no new epoch starts when the last epoch's
        duration would overrun it (the run is then marked ``stopped_by_budget``).
    """

    model: str = "convlstm3"
    speed: float = 1
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
    seed: int = 0
    epochs: int = 500
    batch_size: int = 32
    micro_batch: int = 0
    eval_batch_size: int = 32
    lr: float = 1e-3
    lr_decay: float = 0.98
    lr_decay_every: int = 5
    tf_schedule: str = "plateau"
    tf_patience: int = 20
    tf_decay: float = 4e-3
    tf_linear_fraction: float = 0.5
    grad_clip: float | None = 3.0
    output_bias_init: bool = False
    max_minutes: float | None = None

    def __post_init__(self):
        if self.model not in VIDEO_MODELS:
            raise ValueError(f"model must be one of {sorted(VIDEO_MODELS)}, got {self.model!r}")
        if self.tf_schedule not in TF_SCHEDULES:
            raise ValueError(f"tf_schedule must be one of {TF_SCHEDULES}, got {self.tf_schedule!r}")
        for name in ("train_size", "test_size", "epochs", "batch_size", "eval_batch_size",
                     "input_frames", "future_frames", "lr_decay_every", "tf_patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.val_size, int) or self.val_size < 0:
            raise ValueError(f"val_size must be a non-negative int, got {self.val_size!r}")
        if not isinstance(self.micro_batch, int) or self.micro_batch < 0:
            raise ValueError(f"micro_batch must be a non-negative int, got {self.micro_batch!r}")
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # Fields that may change when a run is resumed (they do not change what was computed so far).
    RESUMABLE_CHANGES = ("epochs", "max_minutes", "eval_batch_size", "micro_batch")


def run_directory(out_dir: str | os.PathLike, model: str, speed: float) -> Path:
    """``out_dir / "<model>-speed<speed>"``: where a run keeps its checkpoint and results."""
    return Path(out_dir) / f"{model}-speed{speed:g}"


def make_datasets(config: VideoConfig) -> tuple[MovingMNIST, MovingMNIST | None, MovingMNIST]:
    """Training, validation (or None) and test sets of a run."""
    common = dict(
        speed=config.speed,
        canvas_size=config.canvas_size,
        digit_size=config.digit_size,
        num_digits=config.num_digits,
        num_frames=config.num_frames,
        digit_pool=config.digit_pool,
    )
    train = MovingMNIST("train", config.train_size, seed=config.data_seed,
                        resample=config.resample_train, **common)
    val = (MovingMNIST("val", config.val_size, seed=config.data_seed + 1, **common)
           if config.val_size else None)
    test = MovingMNIST("test", config.test_size, seed=config.data_seed + 2, **common)
    return train, val, test


def prediction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's loss: mean absolute error + mean squared error."""
    diff = pred - target
    return diff.abs().mean() + (diff * diff).mean()


def _batches(n: int, batch_size: int, order: np.ndarray | None = None):
    idx = np.arange(n) if order is None else order
    for start in range(0, n, batch_size):
        yield idx[start:start + batch_size]


def _to_device(frames: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(frames).to(device)


@torch.no_grad()
def _validation_loss(model, dataset: MovingMNIST, config: VideoConfig, device) -> float:
    model.eval()
    total, count = 0.0, 0
    for idx in _batches(len(dataset), config.eval_batch_size):
        frames = _to_device(dataset.batch(idx), device)
        pred = model(frames, config.input_frames, config.future_frames)
        total += float(prediction_loss(pred, frames[:, 1:])) * len(idx)
        count += len(idx)
    model.train()
    return total / count


@torch.no_grad()
def evaluate_model(model, dataset: MovingMNIST, config: VideoConfig, device, progress=None) -> dict:
    """PSNR and SSIM of the ``future_frames`` predictions, per frame and averaged (Table 3).

    The model sees only the first ``input_frames`` true frames (no teacher forcing).
    ``progress`` is an optional callable ``progress(num_sequences_done)``.
    """
    model.eval()
    metrics = FrameMetrics(config.future_frames)
    for idx in _batches(len(dataset), config.eval_batch_size):
        frames = _to_device(dataset.batch(idx), device)
        pred = model(frames[:, :config.input_frames], config.input_frames, config.future_frames)
        metrics.update(pred[:, -config.future_frames:], frames[:, config.input_frames:])
        if progress is not None:
            progress(len(idx))
    model.train()
    return metrics.result()


def evaluate_baselines(dataset: MovingMNIST, config: VideoConfig) -> dict:
    """Metrics of two trivial predictors on the same test set.

    ``"copy_last"`` repeats the last input frame; ``"blank"`` predicts black frames (on
    Moving-MNIST, PSNR and SSIM are dominated by the black background, so a blank prediction
    is a baseline any useful model has to beat too).
    """
    copy_last = FrameMetrics(config.future_frames)
    blank = FrameMetrics(config.future_frames)
    for idx in _batches(len(dataset), config.eval_batch_size):
        frames = torch.from_numpy(dataset.batch(idx))
        future = frames[:, config.input_frames:]
        last = frames[:, config.input_frames - 1:config.input_frames].expand_as(future)
        copy_last.update(last, future)
        blank.update(torch.zeros_like(future), future)
    return {"copy_last": copy_last.result(), "blank": blank.result()}


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


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_json(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`train_and_evaluate` (a run directory or the file)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not a video checkpoint of arma_core.nn.video")
    return ckpt


def model_from_checkpoint(ckpt: dict, which: str = "best") -> tuple[torch.nn.Module, VideoConfig]:
    """Rebuild the network of a checkpoint; ``which`` = "best" (validation) or "last" weights."""
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    config = VideoConfig(**ckpt["config"])
    model = build_video_model(config.model)
    state = ckpt["best_model"] if which == "best" and ckpt.get("best_model") else ckpt["model"]
    model.load_state_dict(state)
    return model, config


def _check_resumable(saved: dict, config: VideoConfig) -> None:
    now = config.to_dict()
    diff = [k for k in now if k not in VideoConfig.RESUMABLE_CHANGES and saved.get(k) != now[k]]
    if diff:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in diff)
        raise ValueError(f"cannot resume: the checkpoint was made with different settings ({details})")


def _set_output_bias(model, train: MovingMNIST) -> None:
    sample = train.batch(np.arange(min(len(train), 256)))
    mean = float(np.clip(sample.mean(), 1e-4, 1 - 1e-4))
    with torch.no_grad():
        model.output.bias.fill_(math.log(mean / (1 - mean)))


def _save_prediction_png(model, dataset: MovingMNIST, config: VideoConfig, device, path: Path) -> np.ndarray:
    """PNG of test sequence 0: inputs, true future, predicted future. Returns the prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    frames = dataset.batch([0])
    with torch.no_grad():
        x = _to_device(frames[:, :config.input_frames], device)
        pred = model(x, config.input_frames, config.future_frames)[:, -config.future_frames:]
    model.train()
    pred = pred.cpu().numpy()[0, :, 0]
    inputs, truth = frames[0, :config.input_frames, 0], frames[0, config.input_frames:, 0]
    cols = max(config.input_frames, config.future_frames)
    fig, axes = plt.subplots(3, cols, figsize=(1.1 * cols, 3.6), squeeze=False)
    for r, (label, row) in enumerate((("input", inputs), ("truth", truth), ("predicted", pred))):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(row):
                ax.imshow(row[c], cmap="gray", vmin=0, vmax=1)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label)
    label = VIDEO_MODELS[config.model].label
    fig.suptitle(f"{label}, speed {config.speed:g}x: test sequence 0")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return pred


def train_and_evaluate(
    config: VideoConfig,
    out_dir: str | os.PathLike,
    device="cpu",
    resume: bool = False,
    progress: bool = True,
    log=print,
) -> dict:
    """Train one model at one speed, checkpoint every epoch, then evaluate it on the test set.

    Parameters
    ----------
    config : VideoConfig
    out_dir : path
        Parent directory; the run lives in :func:`run_directory` ``(out_dir, model, speed)``.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ...
    resume : bool
        Continue from the run's checkpoint if there is one (its settings must match, except
        ``epochs``, ``max_minutes``, ``eval_batch_size`` and ``micro_batch``). Without it, an
        existing checkpoint is an error, so finished work is never overwritten silently.
    progress : bool
        Show a tqdm bar (loss, teacher-forcing ratio, ETA).
    log : callable
        Where to print one-line messages.

    Returns
    -------
    dict
        What is also written to ``results.json``: the config, parameter count, training time,
        epochs, history, test metrics of the model and of the baselines.
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
    run_dir = run_directory(out_dir, config.model, config.speed)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise FileExistsError(f"{ckpt_path} exists; pass resume=True (--resume) or choose another --out")

    train_set, val_set, test_set = make_datasets(config)
    torch.manual_seed(config.seed)
    model = build_video_model(config.model)
    if config.output_bias_init:
        _set_output_bias(model, train_set)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    steps_per_epoch = math.ceil(config.train_size / config.batch_size)
    state = {
        "epoch": 0,
        "step": 0,
        "tf_ratio": 1.0,
        "lr": config.lr,
        "best_val": math.inf,
        "stall": 0,
        "decay_epochs": -1,  # epochs since the plateau schedule started decaying (-1: not yet)
        "train_seconds": 0.0,
        "stopped_by_budget": False,
        "history": [],
    }
    best_model = None
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        _check_resumable(ckpt["config"], config)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state.update(ckpt["state"])
        best_model = ckpt.get("best_model")
        state["stopped_by_budget"] = False
        log(f"resumed {run_dir.name} after epoch {state['epoch']}")

    micro = config.micro_batch or config.batch_size
    total_steps = steps_per_epoch * config.epochs
    bar = None
    if progress and state["epoch"] < config.epochs:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=min(state["step"], total_steps), unit="batch",
                   desc=f"{config.model} {config.speed:g}x", dynamic_ncols=True)
    last_epoch_seconds = 0.0
    model.train()
    while state["epoch"] < config.epochs:
        epoch = state["epoch"]
        if (config.max_minutes is not None
                and state["train_seconds"] + last_epoch_seconds > 60 * config.max_minutes):
            state["stopped_by_budget"] = True
            log(f"{run_dir.name}: time budget of {config.max_minutes} min reached after {epoch} epochs")
            break
        start = time.perf_counter()
        train_set.set_epoch(epoch)
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train_set))
        coins = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        for g in optimizer.param_groups:
            g["lr"] = state["lr"]
        running = 0.0
        for i, idx in enumerate(_batches(len(train_set), config.batch_size, order)):
            if config.tf_schedule == "linear":
                horizon = config.tf_linear_fraction * total_steps
                state["tf_ratio"] = max(0.0, 1.0 - state["step"] / horizon)
            frames = _to_device(train_set.batch(idx), device)
            optimizer.zero_grad(set_to_none=True)
            loss_value = 0.0
            for chunk in torch.split(frames, micro):
                pred = model(chunk, config.input_frames, config.future_frames,
                             teacher_forcing_ratio=state["tf_ratio"], generator=coins)
                loss = prediction_loss(pred, chunk[:, 1:]) * (len(chunk) / len(frames))
                loss.backward()
                loss_value += float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"training loss became {loss_value} at epoch {epoch}, batch {i}")
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            state["step"] += 1
            running += (loss_value - running) / (i + 1)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{running:.4f}", tf=f"{state['tf_ratio']:.2f}")
        val_loss = _validation_loss(model, val_set, config, device) if val_set is not None else None
        record = {"epoch": epoch + 1, "train_loss": running, "val_loss": val_loss,
                  "tf_ratio": state["tf_ratio"], "lr": state["lr"]}
        if end_of_epoch_schedule(state, val_loss, config):
            best_model = copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})
        last_epoch_seconds = time.perf_counter() - start
        state["train_seconds"] += last_epoch_seconds
        record["seconds"] = last_epoch_seconds
        state["history"].append(record)
        state["epoch"] = epoch + 1
        _atomic_save(
            {"config": config.to_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "best_model": best_model, "state": state},
            ckpt_path,
        )
        if bar is None:
            log(f"{run_dir.name} epoch {epoch + 1}/{config.epochs}: loss {running:.4f}"
                + (f", val {val_loss:.4f}" if val_loss is not None else ""))
    if bar is not None:
        bar.close()

    if best_model is not None:
        model.load_state_dict(best_model)
    eval_start = time.perf_counter()
    ebar = None
    if progress:
        from tqdm.auto import tqdm

        ebar = tqdm(total=len(test_set), unit="seq", desc=f"eval {config.model} {config.speed:g}x",
                    dynamic_ncols=True)
    metrics = evaluate_model(model, test_set, config, device,
                             progress=ebar.update if ebar is not None else None)
    if ebar is not None:
        ebar.close()
    baselines = evaluate_baselines(test_set, config)
    pred = _save_prediction_png(model, test_set, config, device, run_dir / "prediction.png")
    frames = test_set.batch([0])[0, :, 0]
    np.savez_compressed(run_dir / "prediction.npz", input=frames[:config.input_frames],
                        truth=frames[config.input_frames:], predicted=pred)
    spec = VIDEO_MODELS[config.model]
    results = {
        "model": config.model,
        "label": spec.label,
        "speed": config.speed,
        "params": count_parameters(model),
        "paper_params_million": spec.paper_params,
        "paper": {"psnr": spec.paper_table3.get(int(config.speed), (None, None))[0],
                  "ssim": spec.paper_table3.get(int(config.speed), (None, None))[1]}
        if float(config.speed).is_integer() else {"psnr": None, "ssim": None},
        "epochs_completed": state["epoch"],
        "stopped_by_budget": state["stopped_by_budget"],
        "train_seconds": state["train_seconds"],
        "eval_seconds": time.perf_counter() - eval_start,
        "evaluated_weights": "best validation" if best_model is not None else "last",
        "metrics": metrics,
        "baselines": baselines,
        "history": state["history"],
        "config": config.to_dict(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    _write_json(results, run_dir / RESULTS)
    return results
