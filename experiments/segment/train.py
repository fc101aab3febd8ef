"""Training and evaluation of one segmentation run (a model, a task, a seed) on the shared loop.

Tasks:

- ``"digits"``: multi-digit MNIST segmentation (:mod:`arma_experiments.data.mnist_segmentation`),
  11 classes. The network has 11 output channels: channel 0 is a foreground logit, channels
  1-10 the digit logits. The loss is the binary cross-entropy of the foreground logit on every
  pixel plus the 10-way cross-entropy of the digit logits on the foreground pixels (a plain
  11-way cross-entropy collapsed to "all background" in calibration: 95% of the pixels are
  background). Prediction: background where the foreground logit is <= 0, else the digit with
  the largest logit. Fresh training images every epoch (a function of ``(data_seed, epoch)``),
  a fixed test set from the MNIST test digits, a small validation set from the held-out
  training digits for the per-epoch learning curve. The last epoch's weights are evaluated.
- ``"isic"``: ISIC 2018 Task 1 (:mod:`arma_experiments.data.isic`), one output channel,
  binary cross-entropy (the paper's recipe); the weights of the epoch with the best validation
  JS + DC are evaluated on the test split, as the official code does.

Everything random is a function of ``(seed, data_seed, epoch)``, so a run resumed from its
per-epoch checkpoint equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..results import write_json
from ..training import Task, fit, load_state, make_fabric, seeded
from .metrics import BinaryScores, MulticlassScores
from .models import SEGMENT_MODELS, build_model, count_parameters

__all__ = [
    "TASKS",
    "SegmentConfig",
    "SegmentTask",
    "baselines",
    "evaluate",
    "make_datasets",
    "model_from_run",
    "predict_labels",
    "run_directory",
    "segmentation_loss",
    "train_and_evaluate",
]

TASKS = ("digits", "isic")
RESULTS = "results.json"
PREDICTIONS = "prediction.npz"


@dataclass
class SegmentConfig:
    """One run: model, task, data, recipe and seed.

    Attributes
    ----------
    model : str
        A name of :data:`~arma_experiments.segment.models.SEGMENT_MODELS`.
    task : {"digits", "isic"}
    seed : int
        Initialisation and batch order.
    data_seed : int
        Digits: training images use ``data_seed``, the validation set ``data_seed + 1``, the
        test set ``data_seed + 2``. ISIC: the split permutation and the augmentation.
    epochs, batch_size, eval_batch_size : int
    train_size : int
        Digits: training images per epoch (fresh each epoch). ISIC: ignored (the split).
    val_size, test_size : int
        Digits: validation / test images. ISIC: ignored.
    lr, beta1, beta2 : float
        Adam (the official ISIC recipe: 1e-3, 0.5, 0.999).
    lr_decay : float
        Learning rate multiplied by this after every epoch (official ISIC recipe: 0.98).
    canvas, digits, scale, threshold
        Digit-task geometry (see :class:`~arma_experiments.data.mnist_segmentation.MultiDigitSegmentation`).
    depth, width : int
        Flat networks.
    widths : list of int
        U-Nets (paper: 64 ... 1024).
    ar_boundary : str
        AR boundary rule of the ARMA layers (paper: circular).
    isic_root : str or None
        The ISIC folder (task "isic").
    image_size, augmentation_prob : int, float
        ISIC input size (224) and augmentation probability (0.2).
    max_minutes : float or None
        Training-time budget (checked between epochs).
    """

    model: str = "conv3"
    task: str = "digits"
    seed: int = 0
    data_seed: int = 0
    epochs: int = 10
    batch_size: int = 16
    eval_batch_size: int = 32
    train_size: int = 800
    val_size: int = 64
    test_size: int = 256
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    lr_decay: float = 1.0
    canvas: int = 64
    digits: tuple[int, int] = (1, 3)
    scale: tuple[float, float] = (1.0, 1.0)
    threshold: float = 0.5
    depth: int = 6
    width: int = 32
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
    ar_boundary: str = "circular"
    isic_root: str | None = None
    image_size: int = 224
    augmentation_prob: float = 0.2
    max_minutes: float | None = None

    RESUMABLE_CHANGES = ("epochs", "max_minutes", "eval_batch_size")

    def __post_init__(self):
        if self.model not in SEGMENT_MODELS:
            raise ValueError(f"model must be one of {sorted(SEGMENT_MODELS)}, got {self.model!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        for name in (
            "epochs",
            "batch_size",
            "eval_batch_size",
            "train_size",
            "test_size",
            "canvas",
            "depth",
            "width",
            "image_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.val_size, int) or self.val_size < 0:
            raise ValueError(f"val_size must be a non-negative int, got {self.val_size!r}")
        if not self.lr > 0 or not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr must be positive and lr_decay in (0, 1], got {self.lr!r}, {self.lr_decay!r}")
        if self.task == "isic" and not self.isic_root:
            raise ValueError("task 'isic' needs isic_root, the folder of the ISIC 2018 Task 1 data")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be positive or None, got {self.max_minutes!r}")
        for name in ("digits", "scale"):
            if len(getattr(self, name)) != 2:
                raise ValueError(f"{name} must be a (low, high) pair, got {getattr(self, name)!r}")
        self.digits = (int(self.digits[0]), int(self.digits[1]))
        self.scale = (float(self.scale[0]), float(self.scale[1]))
        self.widths = tuple(int(v) for v in self.widths)

    @property
    def out_channels(self) -> int:
        return 11 if self.task == "digits" else 1

    @property
    def in_channels(self) -> int:
        return 1 if self.task == "digits" else 3

    def to_dict(self) -> dict:
        """JSON-normalised fields (tuples as lists), as saved in checkpoints and results."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def model_for(config: SegmentConfig) -> torch.nn.Module:
    """The untrained network of a run (initialised from torch's current random state)."""
    return build_model(
        config.model,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        depth=config.depth,
        width=config.width,
        widths=config.widths,
        ar_boundary=config.ar_boundary,
    )


def run_directory(out_dir: str | os.PathLike, model: str, seed: int) -> Path:
    """``out_dir / model / "seed<seed>"``."""
    return Path(out_dir) / model / f"seed{seed}"


def make_datasets(config: SegmentConfig):
    """Training, validation (or None) and test sets of a run."""
    if config.task == "digits":
        from ..data.mnist_segmentation import MultiDigitSegmentation

        def digit_set(split: str, size: int, seed: int, resample: bool = False) -> MultiDigitSegmentation:
            return MultiDigitSegmentation(
                split,
                size,
                seed=seed,
                resample=resample,
                canvas=config.canvas,
                digits=config.digits,
                scale=config.scale,
                threshold=config.threshold,
            )

        train = digit_set("train", config.train_size, config.data_seed, resample=True)
        val = digit_set("val", config.val_size, config.data_seed + 1) if config.val_size else None
        test = digit_set("test", config.test_size, config.data_seed + 2)
        return train, val, test
    from ..data.isic import ISICSegmentation

    root = config.isic_root
    if not root:  # checked by SegmentConfig too; a config edited afterwards ends here
        raise ValueError("task 'isic' needs isic_root, the folder of the ISIC 2018 Task 1 data")
    size, seed = config.image_size, config.data_seed
    return (
        ISICSegmentation(
            root, "train", image_size=size, seed=seed, augment=True, augmentation_prob=config.augmentation_prob
        ),
        ISICSegmentation(root, "val", image_size=size, seed=seed),
        ISICSegmentation(root, "test", image_size=size, seed=seed),
    )


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The training loss of both tasks.

    Parameters
    ----------
    logits : Tensor, shape (N, 1, H, W) or (N, 11, H, W)
        Binary task: the foreground logit. Digit task: foreground logit and 10 digit logits.
    target : Tensor
        Binary task: ``(N, 1, H, W)`` float mask. Digit task: ``(N, H, W)`` labels 0..10.

    Returns
    -------
    Tensor, scalar
        Binary cross-entropy of the foreground logit (mean over pixels), plus for the digit
        task the cross-entropy of the digit logits averaged over the foreground pixels (0 when a
        batch has none).
    """
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits, target.float())
    foreground = target > 0
    loss = F.binary_cross_entropy_with_logits(logits[:, 0], foreground.float())
    if foreground.any():
        digit_logits = logits[:, 1:].permute(0, 2, 3, 1)[foreground]
        loss = loss + F.cross_entropy(digit_logits, target[foreground] - 1)
    return loss


def predict_labels(logits: torch.Tensor) -> torch.Tensor:
    """Label maps ``(N, H, W)`` from digit-task logits ``(N, 11, H, W)`` (see the module docstring)."""
    digit = logits[:, 1:].argmax(dim=1) + 1
    return torch.where(logits[:, 0] > 0, digit, torch.zeros_like(digit))


class SegmentTask(Task):
    """One run of :class:`SegmentConfig` for :func:`arma_experiments.training.fit`."""

    resumable_changes = SegmentConfig.RESUMABLE_CHANGES

    def __init__(self, config: SegmentConfig, datasets=None):
        self.cfg = config
        self.config = config.to_dict()
        self.train, self.val, self.test = datasets or make_datasets(config)
        self.best: dict | None = None  # {"score", "epoch", "weights"} for best-validation selection

    def build(self):
        c = self.cfg
        with seeded(c.seed):
            model = model_for(c)
        optimizer = torch.optim.Adam(model.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))
        return model, optimizer

    def batches(self, epoch: int):
        n, b = len(self.train), self.cfg.batch_size
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(n)
        return [(epoch, order[i : i + b]) for i in range(0, n, b)]

    def training_step(self, fabric, model, batch, state):
        epoch, indices = batch
        x, y = (torch.from_numpy(a) for a in self.train.batch(indices, epoch))
        x, y = fabric.to_device(x), fabric.to_device(y)
        loss = segmentation_loss(model(x), y)
        fabric.backward(loss)
        return {"loss": float(loss.detach())}

    def start_epoch(self, model, optimizer, state):
        for group in optimizer.param_groups:
            group["lr"] = self.cfg.lr * self.cfg.lr_decay**state.epoch

    def end_epoch(self, fabric, model, state):
        if self.val is None:
            return {}
        scores = evaluate(model, self.val, self.cfg.eval_batch_size, fabric.device)
        record = {f"val_{k}": v for k, v in scores.items() if isinstance(v, float)}
        if self.cfg.task == "isic":
            score = scores["JS"] + scores["DC"]
            if self.best is None or score > self.best["score"]:
                weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                self.best = {"score": score, "epoch": state.epoch + 1, "weights": weights}
        return record

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state.get("best")


@torch.no_grad()
def evaluate(model, dataset, batch_size: int = 32, device="cpu", keep: int = 0):
    """Test metrics of ``model`` on ``dataset`` (model in eval mode).

    Returns
    -------
    dict
        Binary task: ``ACC, SE, SP, PC, F1, JS, DC`` (per-image means). Digit task: those of the
        foreground mask, plus ``miou``, ``iou`` (per class), ``pixel_accuracy``,
        ``foreground_accuracy``. With ``keep > 0`` also ``"examples"``: the inputs, truths and
        predictions of the first ``keep`` images (numpy arrays).
    """
    was_training = model.training
    model.eval()
    binary = BinaryScores()
    classes = getattr(dataset, "num_classes", 2)
    multi = MulticlassScores(classes) if classes > 2 else None
    kept: dict[str, list] = {"input": [], "truth": [], "predicted": []}
    for start in range(0, len(dataset), batch_size):
        x, y = (torch.from_numpy(a) for a in dataset.batch(range(start, min(start + batch_size, len(dataset)))))
        logits = model(x.to(device)).float().cpu()
        if multi is not None:
            pred = predict_labels(logits)
            multi.update(pred, y)
            binary.update((pred > 0).float(), y > 0)
        else:
            pred = (torch.sigmoid(logits) > 0.5).float()
            binary.update(pred, y)
        if len(kept["input"]) < keep:
            for name, value in (("input", x), ("truth", y), ("predicted", pred)):
                kept[name].extend(value[: keep - len(kept[name])].numpy())
    model.train(was_training)
    out: dict = dict(binary.compute())
    if multi is not None:
        out.update(multi.compute())
    if keep:
        out["examples"] = {k: np.stack(v) for k, v in kept.items()}
    return out


def baselines(test, train=None, probe: int = 256) -> dict[str, dict]:
    """Scores of the trivial predictions on ``test`` (same metrics as :func:`evaluate`).

    ``"all-background"``: every pixel background (the majority class). Digit task also
    ``"threshold-majority"``: the true foreground mask (the input thresholded at the stroke
    threshold, which is exactly the labelled foreground) with every foreground pixel given the
    most frequent digit class of ``probe`` training images.
    """

    class _Constant(torch.nn.Module):
        def __init__(self, fill):
            super().__init__()
            self.fill = fill

        def forward(self, x):
            return self.fill(x)

    if getattr(test, "num_classes", 2) <= 2:
        return {"all-background": evaluate(_Constant(lambda x: torch.full_like(x[:, :1], -1.0)), test)}

    def logits(x, digit=None):
        out = torch.zeros(x.shape[0], 11, *x.shape[2:])
        out[:, 0] = -1.0 if digit is None else torch.where(x[:, 0] >= test.threshold, 1.0, -1.0)
        if digit is not None:
            out[:, 1 + digit] = 1.0
        return out

    result = {"all-background": evaluate(_Constant(logits), test)}
    if train is not None:
        _, labels = train.batch(range(min(probe, len(train))))
        counts = np.bincount(labels.ravel(), minlength=11)[1:]
        majority = int(counts.argmax())
        result["threshold-majority"] = evaluate(_Constant(lambda x: logits(x, majority)), test)
        result["threshold-majority"]["majority_digit"] = majority
    return result


def _save_examples(run_dir: Path, examples: dict) -> None:
    np.savez_compressed(run_dir / PREDICTIONS, **examples)


def train_and_evaluate(
    config: SegmentConfig,
    out_dir: str | os.PathLike,
    *,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
    keep: int = 4,
) -> dict:
    """Train one run (checkpoint every epoch), evaluate it and write ``results.json``.

    Returns the results record (also in ``run_dir / "results.json"``): model, label, seed,
    params, config, test metrics, epochs, train/eval seconds, budget stop, history.
    """
    run_dir = run_directory(out_dir, config.model, config.seed)
    fabric = make_fabric(device)
    task = SegmentTask(config)
    label = SEGMENT_MODELS[config.model].label
    state = fit(
        task,
        fabric,
        run_dir,
        epochs=config.epochs,
        resume=resume,
        max_minutes=config.max_minutes,
        progress=progress,
        desc=f"{label} seed {config.seed}",
    )
    model = task.model.module if hasattr(task.model, "module") else task.model
    selected = "last"
    if task.best is not None:
        model.load_state_dict(task.best["weights"])
        selected = f"best-val (epoch {task.best['epoch']})"
    start = time.perf_counter()
    metrics = evaluate(model, task.test, config.eval_batch_size, fabric.device, keep=keep)
    _save_examples(run_dir, metrics.pop("examples"))
    record = {
        "model": config.model,
        "label": label,
        "seed": config.seed,
        "task": config.task,
        "params": count_parameters(model),
        "config": config.to_dict(),
        "metrics": metrics,
        "epochs_completed": state.epoch,
        "steps": state.step,
        "train_seconds": state.seconds,
        "eval_seconds": time.perf_counter() - start,
        "stopped_by_budget": state.stopped == "budget",
        "evaluated_weights": selected,
        "history": state.history,
        "torch_threads": torch.get_num_threads(),
    }
    write_json(record, run_dir / RESULTS)
    return record


def model_from_run(run_dir: str | os.PathLike):
    """The trained model of a run directory (its checkpoint's weights, or the best-validation
    ones for ISIC) in eval mode, and its :class:`SegmentConfig`."""
    run_dir = Path(run_dir)
    saved = load_state(run_dir / "checkpoint.pt")
    fields = {f.name for f in dataclasses.fields(SegmentConfig)}
    config = SegmentConfig(**{k: v for k, v in saved["config"].items() if k in fields})
    model = model_for(config)
    best = (saved.get("task") or {}).get("best")
    model.load_state_dict(copy.deepcopy(best["weights"]) if best else saved["model"])
    return model.eval(), config
