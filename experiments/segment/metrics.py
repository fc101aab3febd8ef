"""Segmentation metrics: the paper's binary-mask metrics per image, and multi-class IoU.

Binary masks (the paper's Table 2, as its official code computes them): per image, with the
prediction thresholded at 0.5, the accuracy ACC, sensitivity SE (recall), specificity SP,
precision PC, F1, Jaccard index JS (IoU) and Dice coefficient DC; each metric is computed per
image and then averaged over the images (a macro mean; an image where a ratio's denominator is
0, e.g. SE of an image without foreground, counts as 0, as the official code's ``eps`` makes it).
Per image F1 and DC are the same number (both ``2 TP / (2 TP + FP + FN)``); the paper's
official code computes F1 from SE and PC and DC from the counts.

Multi-class label maps (the digit task): per-class IoU from the confusion matrix accumulated
over the whole test set, mIoU (their mean over the classes), pixel accuracy, and foreground
accuracy (pixel accuracy over the pixels whose true class is not background; predicting
background there is wrong).

The counts and ratios come from ``torchmetrics`` (``binary_stat_scores``, ``binary_recall``,
... with ``multidim_average="samplewise"``; ``MulticlassJaccardIndex``, ``MulticlassAccuracy``)
and are tested against hand-computed cases and scikit-learn.

Examples
--------
>>> import torch
>>> from arma_experiments.segment.metrics import binary_metrics
>>> prob = torch.tensor([[[0.9, 0.8], [0.2, 0.1]]])     # one 2 x 2 image
>>> truth = torch.tensor([[[1, 0], [1, 0]]])
>>> m = binary_metrics(prob, truth)                      # TP 1, FP 1, FN 1, TN 1
>>> [round(float(m[k][0]), 3) for k in ("ACC", "SE", "SP", "PC", "F1", "JS", "DC")]
[0.5, 0.5, 0.5, 0.5, 0.5, 0.333, 0.5]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypedDict

import torch

__all__ = ["BINARY_METRICS", "BinaryScores", "MulticlassScores", "binary_metrics"]

#: The paper's binary metrics, in Table 2's order plus Dice.
BINARY_METRICS = ("ACC", "SE", "SP", "PC", "F1", "JS", "DC")


class _SamplewiseArgs(TypedDict):
    """The keyword arguments shared by the torchmetrics binary functions below."""

    threshold: float
    multidim_average: Literal["global", "samplewise"]


def _check_pair(prob: torch.Tensor, truth: torch.Tensor) -> None:
    if prob.shape != truth.shape or prob.ndim < 2:
        raise ValueError(
            f"prob and truth must have the same shape (N, ...) with N images, got "
            f"{tuple(prob.shape)} and {tuple(truth.shape)}"
        )


def binary_metrics(prob: torch.Tensor, truth: torch.Tensor, threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """The paper's per-image binary metrics.

    Parameters
    ----------
    prob : Tensor, shape (N, ...)
        Foreground probabilities (or a 0/1 mask); foreground where ``prob > threshold``.
    truth : Tensor, shape (N, ...)
        True mask, 0/1 (bool or integer).
    threshold : float
        As the official code: strictly greater is foreground.

    Returns
    -------
    dict of str to Tensor, shape (N,), float64
        ``ACC, SE, SP, PC, F1, JS, DC`` of every image (average them over images for the
        paper's numbers).
    """
    from torchmetrics.functional.classification import (
        binary_accuracy,
        binary_f1_score,
        binary_precision,
        binary_recall,
        binary_specificity,
        binary_stat_scores,
    )

    _check_pair(prob, truth)
    # torchmetrics counts prob >= threshold as positive; the paper's rule is prob > threshold
    pred = (prob > threshold).long().flatten(1)
    target = truth.long().flatten(1)
    n = pred.shape[0]
    if n == 1:
        # torchmetrics 1.9's samplewise reduction squeezes a batch of one image to a scalar
        # and then fails to stack it: score the image twice and keep one
        pred, target = pred.repeat(2, 1), target.repeat(2, 1)
    args: _SamplewiseArgs = {"threshold": 0.5, "multidim_average": "samplewise"}
    tp, fp, _, fn, _ = binary_stat_scores(pred, target, **args).double().unbind(-1)
    union = tp + fp + fn
    jaccard = torch.where(union > 0, tp / union.clamp(min=1), torch.zeros_like(tp))
    dice = torch.where(union > 0, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.zeros_like(tp))
    scores = {
        "ACC": binary_accuracy(pred, target, **args),
        "SE": binary_recall(pred, target, **args),
        "SP": binary_specificity(pred, target, **args),
        "PC": binary_precision(pred, target, **args),
        "F1": binary_f1_score(pred, target, **args),
        "JS": jaccard,
        "DC": dice,
    }
    return {k: v.double()[:n] for k, v in scores.items()}


class BinaryScores:
    """Accumulates :func:`binary_metrics` over batches; :meth:`compute` gives the means.

    Examples
    --------
    >>> import torch
    >>> s = BinaryScores()
    >>> s.update(torch.tensor([[1.0, 0.0]]), torch.tensor([[1, 0]]))
    >>> s.update(torch.tensor([[0.0, 0.0]]), torch.tensor([[1, 0]]))
    >>> s.compute()["SE"], s.count
    (0.5, 2)
    """

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold
        self.sums = {k: 0.0 for k in BINARY_METRICS}
        self.count = 0

    def update(self, prob: torch.Tensor, truth: torch.Tensor) -> None:
        per_image = binary_metrics(prob, truth, self.threshold)
        for k, v in per_image.items():
            self.sums[k] += float(v.sum())
        self.count += int(prob.shape[0])

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no images were added")
        return {k: v / self.count for k, v in self.sums.items()}


class MulticlassScores:
    """Per-class IoU, mIoU, pixel accuracy and foreground accuracy of label maps.

    Parameters
    ----------
    num_classes : int
        Number of classes, class 0 being the background.

    Examples
    --------
    >>> import torch
    >>> s = MulticlassScores(3)
    >>> s.update(torch.tensor([[0, 1, 1, 2]]), torch.tensor([[0, 1, 2, 2]]))
    >>> r = s.compute()
    >>> r["iou"], round(r["miou"], 4), r["pixel_accuracy"], r["foreground_accuracy"]
    ([1.0, 0.5, 0.5], 0.6667, 0.75, 0.6666666865348816)
    """

    def __init__(self, num_classes: int):
        from torchmetrics.classification import (
            MulticlassAccuracy,
            MulticlassJaccardIndex,
        )

        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self._iou = MulticlassJaccardIndex(num_classes, average="none")
        self._pixel = MulticlassAccuracy(num_classes, average="micro")
        self._foreground = MulticlassAccuracy(num_classes, average="micro", ignore_index=0)
        self._present = torch.zeros(num_classes, dtype=torch.bool)

    def update(self, pred: torch.Tensor, truth: torch.Tensor) -> None:
        """Add a batch of predicted and true label maps, both ``(N, H, W)`` integers."""
        _check_pair(pred, truth)
        pred, truth = pred.long().cpu(), truth.long().cpu()
        self._iou.update(pred, truth)
        self._pixel.update(pred, truth)
        self._foreground.update(pred, truth)
        self._present |= torch.bincount(truth.flatten(), minlength=self.num_classes)[: self.num_classes] > 0
        self._present |= torch.bincount(pred.flatten(), minlength=self.num_classes)[: self.num_classes] > 0

    def compute(self) -> Mapping[str, object]:
        """``iou`` (list per class, NaN for a class absent from truth and prediction), ``miou``
        (mean over the classes that occur), ``pixel_accuracy``, ``foreground_accuracy``."""
        iou = self._iou.compute().double()
        iou[~self._present] = float("nan")
        present = iou[self._present]
        return {
            "iou": [float(v) for v in iou],
            "miou": float(present.mean()) if present.numel() else float("nan"),
            "pixel_accuracy": float(self._pixel.compute()),
            "foreground_accuracy": float(self._foreground.compute()),
        }
