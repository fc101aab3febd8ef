"""One classification run (a :class:`arma_experiments.training.Task`), with the AR filters watched.

Used by ``arma stability`` (Figure 5: short runs, per-step records, the AR filters' distance to
instability) and ``arma classify`` (Appendix A.4: test accuracy and time per epoch). An "epoch"
of the loop is ``steps_per_epoch`` optimizer steps; the batches come from
:func:`arma_experiments.stability.data.step_indices`, so they depend on the seed only and every
arm of a comparison sees the same batches in the same order.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch
import torch.nn.functional as F

from arma_experiments.training import Task

from .data import ImageSet, augment_batch, step_indices
from .models import CONV_KINDS, build_model
from .monitor import ar_layers, ar_state

__all__ = ["ARMS", "ClassifyTask", "RunConfig", "evaluate"]

#: Arms of the comparison: name -> (convolution kind, learning-rate factor of the AR parameters).
#: "raw-half" runs the raw taps at half the learning rate: at theta = 0 both re-parameterizations
#: move the taps at half the step of raw taps (d f / d theta = 1/2), so this arm has the
#: re-parameterized arms' effective step and differs from them only by the missing bound.
ARMS: dict[str, tuple[str, float]] = {
    "conv": ("conv", 1.0),
    "strip": ("strip", 1.0),
    "diamond": ("diamond", 1.0),
    "raw": ("raw", 1.0),
    "raw-half": ("raw", 0.5),
}


@dataclasses.dataclass
class RunConfig:
    """Everything that defines one run (saved in its checkpoint and results).

    Attributes
    ----------
    model : {"vgg11", "resnet18"}
    arm : str
        A key of :data:`ARMS`.
    width : float
        Channel multiplier of the network.
    batch_norm, dropout : bool
        VGG-11 only.
    dataset : str
        See :data:`arma_experiments.stability.data.DATASETS`.
    train_size, test_size : int or None
        First images of each split (None: all).
    eval_size : int or None
        Test images scored after every epoch (the final score uses ``test_size``).
    optimizer : {"sgd", "adam"}
    lr, momentum, weight_decay : float
        SGD with momentum and weight decay as the official script (0.9, 5e-4); Adam uses
        ``lr`` and ``weight_decay`` (0 by default for Adam in the presets).
    schedule : {"constant", "cosine", "official"}
        Learning rate per step: constant; cosine annealing to 0 over the run; or the official
        script's (halved after epoch 30, ``MultiStepLR(milestones=[30], gamma=0.5)``).
    batch_size, steps_per_epoch, epochs : int
    augment : bool
        Random crop (padding 4) and horizontal flip.
    seed : int
        Model initialisation, dropout and data order.
    """

    model: str = "vgg11"
    arm: str = "conv"
    width: float = 0.25
    batch_norm: bool = False
    dropout: bool = True
    dataset: str = "mnist"
    data_dir: str | None = None
    train_size: int | None = None
    test_size: int | None = 2000
    eval_size: int | None = 1000
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "constant"
    batch_size: int = 128
    steps_per_epoch: int = 50
    epochs: int = 6
    augment: bool = False
    seed: int = 0
    record_steps: bool = True

    def __post_init__(self):
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {tuple(ARMS)}, got {self.arm!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.schedule not in ("constant", "cosine", "official"):
            raise ValueError(f"schedule must be 'constant', 'cosine' or 'official', got {self.schedule!r}")
        if not (self.lr > 0):
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        for name in ("batch_size", "steps_per_epoch", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    @property
    def kind(self) -> str:
        return ARMS[self.arm][0]

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


assert all(kind in CONV_KINDS for kind, _ in ARMS.values())


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: ImageSet, size: int | None = None, batch_size: int = 500) -> dict:
    """Accuracy and mean cross-entropy of ``model`` on the first ``size`` images of ``data``.

    Non-finite logits count as wrong and make the loss NaN.
    """
    n = len(data) if size is None else min(size, len(data))
    device = next(model.parameters()).device
    correct, total_loss = 0, 0.0
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(n, start + batch_size))
        x, y = (t.to(device) for t in data.batch(index))
        logits = model(x)
        finite = torch.isfinite(logits).all(dim=1)
        correct += int(((logits.argmax(dim=1) == y) & finite).sum())
        total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
    return {"accuracy": correct / n, "loss": total_loss / n, "images": n}


class ClassifyTask(Task):
    """The :class:`~arma_experiments.training.Task` of one run (see :func:`~arma_experiments.training.fit`)."""

    resumable_changes = ("eval_size",)
    clip_grad_norm = None

    def __init__(self, config: RunConfig, train: ImageSet, test: ImageSet):
        self.run = config
        self.config = config.to_dict()
        self.record_steps = config.record_steps
        self.train, self.test = train, test
        self.crossing: dict | None = None  # first step with a factor outside the strip
        self._epoch_start = 0.0
        self.train_seconds: list[float] = []

    def build(self):
        c = self.run
        torch.manual_seed(c.seed)
        model = build_model(
            c.model,
            c.kind,
            width=c.width,
            in_channels=self.train.channels,
            num_classes=10,
            batch_norm=c.batch_norm,
            dropout=c.dropout,
        )
        ar = [p for n, p in model.named_parameters() if n.endswith("ar.theta")]
        rest = [p for n, p in model.named_parameters() if not n.endswith("ar.theta")]
        factor = ARMS[c.arm][1]
        groups = [{"params": rest, "base_lr": c.lr}]
        if ar:
            # the same step on the taps as the re-parameterized arms; weight decay scaled so that
            # lr * weight_decay (the decay per step) is unchanged
            groups.append(
                {"params": ar, "lr": c.lr * factor, "base_lr": c.lr * factor, "weight_decay": c.weight_decay / factor}
            )
        opt: torch.optim.Optimizer
        if c.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        else:
            opt = torch.optim.Adam(groups, lr=c.lr, weight_decay=c.weight_decay)
        self.layer_names = [name for name, _ in ar_layers(model)]
        return model, opt

    def start_epoch(self, model, optimizer, state) -> None:
        torch.manual_seed(self.run.seed * 1_000_003 + state.epoch)  # dropout masks
        self._epoch_start = time.perf_counter()

    def batches(self, epoch: int):
        c = self.run
        steps = range(epoch * c.steps_per_epoch, (epoch + 1) * c.steps_per_epoch)
        return step_indices(len(self.train), c.batch_size, c.seed, steps)

    def _set_lr(self, optimizer, step: int) -> None:
        if self.run.schedule == "constant":
            return
        if self.run.schedule == "cosine":
            scale = 0.5 * (1 + math.cos(math.pi * step / self.run.steps))
        else:
            scale = 0.5 if step >= 30 * self.run.steps_per_epoch else 1.0
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * scale

    def training_step(self, fabric, model, index, state) -> dict:
        self._set_lr(self.optimizer, state.step)
        x, y = self.train.batch(index)
        if self.run.augment:
            g = torch.Generator().manual_seed(self.run.seed * 1_000_003 + state.step)
            x = augment_batch(x, g)
        x, y = fabric.to_device((x, y))
        record = self._ar_record(model, state.step + 1)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        record["loss"] = float(loss.detach())
        record["acc"] = float((logits.detach().argmax(dim=1) == y).float().mean())
        record["finite_output"] = bool(torch.isfinite(logits).all())
        if math.isfinite(record["loss"]):
            fabric.backward(loss)
        return record

    def _ar_record(self, model, step: int) -> dict:
        """The AR state of the taps this step's forward uses; notes the first strip crossing."""
        if not self.layer_names:
            return {}
        s = ar_state(getattr(model, "module", model))
        if self.crossing is None and (s["outside"] > 0 or not s["finite"]):
            self.crossing = {"step": step, "layer": s["worst_layer"], "abs_sum": s["max_abs_sum"]}
        return {
            "min_margin": s["min_margin"],
            "max_abs_sum": s["max_abs_sum"],
            "outside": s["outside"],
            "worst_layer": self.layer_names.index(s["worst_layer"]),
        }

    def end_epoch(self, fabric, model, state) -> dict:
        seconds = time.perf_counter() - self._epoch_start
        self.train_seconds.append(seconds)
        out = evaluate(model, self.test, self.run.eval_size)
        return {"train_seconds": seconds, "eval_accuracy": out["accuracy"], "eval_loss": out["loss"]}

    def state_dict(self) -> dict:
        return {"crossing": self.crossing, "train_seconds": self.train_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.crossing = state.get("crossing")
        self.train_seconds = list(state.get("train_seconds", []))
