"""Multi-digit MNIST semantic segmentation: real digits on a canvas, every pixel labelled.

Each image is a ``canvas x canvas`` black canvas holding 1 to 3 (``digits``) real MNIST digits
from :mod:`arma_experiments.data.mnist`, each rescaled by a factor drawn from ``scale`` and put
at a uniformly random position. A pixel belongs to a digit when the digit's intensity there is
at least ``threshold`` (a stroke threshold on ``[0, 1]`` intensities); its label is then the
digit's class plus one, and 0 (background) elsewhere, so there are 11 classes. Digits are
placed so that their strokes do not touch (rejection sampling, ``max_tries`` per digit); when
no free place is found the digit is placed anyway and a pixel's label is that of the brighter
digit there. The image is the pixel-wise maximum of the digits.

Splits never share a digit: ``"train"`` draws from the 50,000 MNIST training digits, ``"val"``
from the 10,000 held out of them, ``"test"`` from the 10,000 MNIST test digits. Every image is a
pure function of ``(seed, epoch, index)`` (``epoch`` is ignored unless ``resample``), so a test
set is fixed by its seed and a training run that resamples per epoch is exactly resumable.

Examples
--------
>>> from arma_experiments.data.mnist_segmentation import MultiDigitSegmentation
>>> data = MultiDigitSegmentation("test", 4, canvas=32, digits=(1, 2), scale=(0.5, 0.75),
...                               digit_pool=100)
>>> images, labels = data.batch([0, 1, 2, 3])
>>> images.shape, images.dtype, labels.shape, labels.dtype
((4, 1, 32, 32), dtype('float32'), (4, 32, 32), dtype('int64'))
>>> bool(((labels > 0) == (images[:, 0] >= 0.5)).all())  # labelled exactly where a stroke is
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .mnist import load_mnist

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "MultiDigitSegmentation", "resize_digit"]

#: Background plus the ten digits.
NUM_CLASSES = 11
CLASS_NAMES = ("background",) + tuple(str(d) for d in range(10))


def _pair(value, name: str, cast) -> tuple:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = (value, value)
    try:
        lo, hi = (cast(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}") from None
    if lo > hi:
        raise ValueError(f"{name} must have low <= high, got {value!r}")
    return lo, hi


def resize_digit(digit: np.ndarray, side: int) -> np.ndarray:
    """A 28 x 28 ``uint8`` digit resized to ``side x side`` float32 intensities in ``[0, 1]``.

    Area averaging when shrinking (no aliasing of the strokes), bilinear when enlarging;
    ``side = 28`` returns the digit unchanged (divided by 255).

    Parameters
    ----------
    digit : ndarray, shape (28, 28), uint8
    side : int, >= 1

    Returns
    -------
    ndarray, shape (side, side), float32
    """
    digit = np.asarray(digit)
    if digit.ndim != 2:
        raise ValueError(f"digit must be a 2-D image, got shape {digit.shape}")
    if not isinstance(side, (int, np.integer)) or side < 1:
        raise ValueError(f"side must be a positive int, got {side!r}")
    if side == digit.shape[0] == digit.shape[1]:
        return digit.astype(np.float32) / 255.0
    from PIL import Image

    method = Image.Resampling.BOX if side < digit.shape[0] else Image.Resampling.BILINEAR
    image = Image.fromarray(digit.astype(np.float32) / 255.0, mode="F")
    return np.clip(np.asarray(image.resize((side, side), method), dtype=np.float32), 0.0, 1.0)


class MultiDigitSegmentation:
    """A seeded set of multi-digit segmentation images (see the module docstring).

    Parameters
    ----------
    split : {"train", "val", "test"}
        Which MNIST digits are used.
    size : int
        Number of images (one epoch).
    canvas : int
        Side of the square canvas in pixels (>= the largest scaled digit).
    digits : int or (int, int)
        Number of digits per image, drawn uniformly from ``[low, high]``.
    scale : float or (float, float)
        Digit scale factor, drawn uniformly per digit; the digit's side is
        ``round(28 * scale)`` pixels.
    threshold : float in (0, 1)
        Stroke threshold on the rescaled digit's intensity.
    seed : int
        Seed of the set.
    resample : bool
        Draw new images every epoch (training); otherwise ``epoch`` is ignored (evaluation).
    digit_pool : int, optional
        Use only the first ``digit_pool`` digits of the split (tiny sets for tests).
    max_tries : int
        Placement attempts per digit before overlap is accepted.

    Attributes
    ----------
    num_classes : int
        11 (background and the ten digits).
    """

    num_classes = NUM_CLASSES

    def __init__(
        self,
        split: str,
        size: int,
        *,
        canvas: int = 64,
        digits=(1, 3),
        scale=(1.0, 1.0),
        threshold: float = 0.5,
        seed: int = 0,
        resample: bool = False,
        digit_pool: int | None = None,
        max_tries: int = 20,
    ):
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        self.digits = _pair(digits, "digits", int)
        if self.digits[0] < 1:
            raise ValueError(f"digits must be >= 1, got {digits!r}")
        self.scale = _pair(scale, "scale", float)
        if self.scale[0] <= 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        largest = round(28 * self.scale[1])
        if not isinstance(canvas, (int, np.integer)) or canvas < largest:
            raise ValueError(f"canvas must be an int >= the largest digit side {largest}, got {canvas!r}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        if not isinstance(max_tries, (int, np.integer)) or max_tries < 1:
            raise ValueError(f"max_tries must be a positive int, got {max_tries!r}")
        images, labels = load_mnist(split)
        if digit_pool is not None:
            if not isinstance(digit_pool, (int, np.integer)) or digit_pool < 1:
                raise ValueError(f"digit_pool must be a positive int, got {digit_pool!r}")
            images, labels = images[:digit_pool], labels[:digit_pool]
        self.split, self.size, self.canvas = split, int(size), int(canvas)
        self.threshold, self.seed, self.resample = float(threshold), int(seed), bool(resample)
        self.max_tries = int(max_tries)
        self._images, self._labels = images, labels

    def __len__(self) -> int:
        return self.size

    def _rng(self, index: int, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch if self.resample else 0, int(index)])

    def sample(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """One image.

        Returns
        -------
        image : ndarray, shape (canvas, canvas), float32 in [0, 1]
        labels : ndarray, shape (canvas, canvas), int64 in 0..10
        classes : list of int
            The digits drawn, in placement order.
        """
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} is out of range for a set of {self.size} images")
        rng = self._rng(index, epoch)
        n = self.canvas
        image = np.zeros((n, n), np.float32)
        labels = np.zeros((n, n), np.int64)
        classes = []
        for _ in range(int(rng.integers(self.digits[0], self.digits[1] + 1))):
            k = int(rng.integers(len(self._images)))
            side = round(28 * rng.uniform(*self.scale))
            digit = resize_digit(self._images[k], side)
            stroke = digit >= self.threshold
            for _ in range(self.max_tries):
                r, c = (int(v) for v in rng.integers(0, n - side + 1, size=2))
                window = (slice(r, r + side), slice(c, c + side))
                if not (stroke & (labels[window] > 0)).any():
                    break
            brighter = stroke & (digit > image[window])
            labels[window][brighter] = int(self._labels[k]) + 1
            np.maximum(image[window], digit, out=image[window])
            classes.append(int(self._labels[k]))
        return image, labels, classes

    def batch(self, indices: Sequence[int], epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of ``indices``: ``(N, 1, canvas, canvas)`` float32, ``(N, canvas, canvas)`` int64."""
        pairs = [self.sample(int(i), epoch)[:2] for i in indices]
        return np.stack([p[0] for p in pairs])[:, None], np.stack([p[1] for p in pairs])
