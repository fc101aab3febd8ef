"""ISIC 2018 Task 1 (skin-lesion segmentation) from a local copy, for users who have the data.

The data cannot be shipped or downloaded here; point :class:`ISICSegmentation` at the folder
that holds the challenge's training release in its original layout::

    ROOT/ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg, ...
    ROOT/ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png, ...

(2,594 dermoscopic RGB images and binary masks, 0 / 255). As the paper's official code, the
images are split at random into 70% training, 10% validation and 20% test images (a seeded
permutation of the sorted image ids here, so the split is reproducible), and every image and
mask is resized to ``image_size x image_size`` (224) after the official code's intermediate
resize to 256 pixels wide (height ``256 * h / w`` rounded down to a multiple of 16); images
are scaled to ``[-1, 1]`` (``(x - 0.5) / 0.5``), masks resized bilinearly and thresholded at
half their range (the official code's metrics count ``mask == max(mask)`` as lesion).

Training augmentation (``augment=True``, applied to an image with probability
``augmentation_prob``, paper: 0.2), after the official code: resize to a random width in
[300, 320] pixels, rotation by a random multiple of 90 degrees and by a random angle in
[-10, 10] degrees, a centre crop of random width in [250, 270] pixels, random crops of 0-20
pixels from each side, horizontal and vertical flips with probability 1/2, and brightness and
contrast jitter by up to 20% (the official code's hue jitter of 0.02 is left out). All
randomness is a function of ``(seed, epoch, index)``.

Images are decoded once and kept in memory at ``cache_width`` pixels wide (320, the widest
size the pipeline uses), so an epoch does not decode 2,594 full-size JPEGs again.

Examples
--------
>>> import tempfile, numpy as np
>>> from PIL import Image
>>> from arma_experiments.data.isic import ISICSegmentation, write_isic_layout
>>> with tempfile.TemporaryDirectory() as root:
...     rng = np.random.default_rng(0)
...     images = rng.integers(0, 256, size=(10, 30, 40, 3), dtype=np.uint8)
...     masks = np.zeros((10, 30, 40), np.uint8); masks[:, 10:20, 10:30] = 255
...     _ = write_isic_layout(root, images, masks)
...     test = ISICSegmentation(root, "test", image_size=32)
...     x, y = test.batch([0, 1])
>>> len(test), x.shape, x.dtype, y.shape, sorted(np.unique(y).tolist())
(2, (2, 3, 32, 32), dtype('float32'), (2, 1, 32, 32), [0.0, 1.0])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "INPUT_DIR",
    "SPLITS",
    "TRUTH_DIR",
    "ISICSegmentation",
    "find_isic_pairs",
    "write_isic_layout",
]

INPUT_DIR = "ISIC2018_Task1-2_Training_Input"
TRUTH_DIR = "ISIC2018_Task1_Training_GroundTruth"
#: The official code's split fractions.
SPLITS = {"train": (0.0, 0.7), "val": (0.7, 0.8), "test": (0.8, 1.0)}


def find_isic_pairs(root: str | os.PathLike) -> list[tuple[Path, Path]]:
    """``(image, mask)`` paths of every ``ISIC_*.jpg`` under ``root`` in the challenge layout.

    Raises
    ------
    FileNotFoundError
        When a folder, or the mask of an image, is missing (the message names it).
    """
    root = Path(root)
    inputs, truths = root / INPUT_DIR, root / TRUTH_DIR
    for folder in (inputs, truths):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder} does not exist: root must hold the ISIC 2018 Task 1 training release "
                f"({INPUT_DIR}/ISIC_*.jpg and {TRUTH_DIR}/ISIC_*_segmentation.png)"
            )
    pairs = []
    for image in sorted(inputs.glob("ISIC_*.jpg")):
        mask = truths / f"{image.stem}_segmentation.png"
        if not mask.is_file():
            raise FileNotFoundError(f"the mask of {image.name} is missing: expected {mask}")
        pairs.append((image, mask))
    if not pairs:
        raise FileNotFoundError(f"no ISIC_*.jpg images in {inputs}")
    return pairs


def write_isic_layout(
    root: str | os.PathLike, images: np.ndarray, masks: np.ndarray, first_id: int = 0
) -> list[tuple[Path, Path]]:
    """Write RGB ``images (N, H, W, 3)`` uint8 and ``masks (N, H, W)`` uint8 in the ISIC layout.

    For tests and for converting other data to the layout; returns the written pairs.
    """
    from PIL import Image

    root = Path(root)
    (root / INPUT_DIR).mkdir(parents=True, exist_ok=True)
    (root / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    out = []
    for k, (image, mask) in enumerate(zip(images, masks)):
        name = f"ISIC_{first_id + k:07d}"
        ipath = root / INPUT_DIR / f"{name}.jpg"
        mpath = root / TRUTH_DIR / f"{name}_segmentation.png"
        Image.fromarray(np.asarray(image, np.uint8), "RGB").save(ipath, quality=95)
        Image.fromarray(np.asarray(mask, np.uint8), "L").save(mpath)
        out.append((ipath, mpath))
    return out


def _load_pair(image_path: Path, mask_path: Path, width: int):
    from PIL import Image

    with Image.open(image_path) as im:
        im.draft("RGB", (width, width))  # JPEG: decode at a reduced scale when it is large
        image = im.convert("RGB")
    with Image.open(mask_path) as m:
        mask = m.convert("L")
    if mask.size != image.size:
        mask = mask.resize(image.size, Image.Resampling.NEAREST)
    w, h = image.size
    if w > width:
        size = (width, max(1, round(h * width / w)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        mask = mask.resize(size, Image.Resampling.BILINEAR)
    return image, mask


class ISICSegmentation:
    """One split of ISIC 2018 Task 1 (see the module docstring).

    Parameters
    ----------
    root : path
        Folder with ``ISIC2018_Task1-2_Training_Input`` and ``ISIC2018_Task1_Training_GroundTruth``.
    split : {"train", "val", "test"}
        70% / 10% / 20% of the images.
    image_size : int
        Side of the network's input (paper: 224).
    augment : bool
        Random augmentation (training).
    augmentation_prob : float
        Probability that an image is augmented (paper: 0.2).
    seed : int
        Seed of the split permutation and of the augmentation.
    cache_width : int
        Width at which decoded images are kept in memory.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        image_size: int = 224,
        augment: bool = False,
        augmentation_prob: float = 0.2,
        seed: int = 0,
        cache_width: int = 320,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if not 0.0 <= augmentation_prob <= 1.0:
            raise ValueError(f"augmentation_prob must be in [0, 1], got {augmentation_prob!r}")
        pairs = find_isic_pairs(root)
        order = np.random.default_rng(seed).permutation(len(pairs))
        lo, hi = SPLITS[split]
        chosen = order[round(lo * len(pairs)) : round(hi * len(pairs))]
        chosen_pairs = [pairs[i] for i in chosen]
        self.ids = [image.stem for image, _ in chosen_pairs]
        self._cache = [_load_pair(image, mask, cache_width) for image, mask in chosen_pairs]
        self.split, self.image_size, self.augment = split, image_size, bool(augment)
        self.augmentation_prob, self.seed = float(augmentation_prob), int(seed)

    def __len__(self) -> int:
        return len(self._cache)

    def _augmented(self, image, mask, rng: np.random.Generator):
        from PIL import Image, ImageEnhance

        def both(f):
            return f(image), f(mask)

        w, h = image.size
        width = int(rng.integers(300, 321))
        image, mask = both(lambda im: im.resize((width, max(1, round(h * width / w))), Image.Resampling.BILINEAR))
        quarter = [None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270]
        turn = quarter[int(rng.integers(4))]
        if turn is not None:
            image, mask = both(lambda im: im.transpose(turn))
        angle = float(rng.uniform(-10, 10))
        image, mask = both(lambda im: im.rotate(angle, Image.Resampling.BILINEAR))
        w, h = image.size
        cw = min(w, int(rng.integers(250, 271)))
        ch = min(h, max(1, round(cw * h / w)))
        left, top = (w - cw) // 2, (h - ch) // 2
        image, mask = both(lambda im: im.crop((left, top, left + cw, top + ch)))
        cut = rng.integers(0, 21, size=4)
        box = (int(cut[0]), int(cut[1]), max(int(cut[0]) + 1, cw - int(cut[2])), max(int(cut[1]) + 1, ch - int(cut[3])))
        image, mask = both(lambda im: im.crop(box))
        if rng.random() < 0.5:
            image, mask = both(lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        if rng.random() < 0.5:
            image, mask = both(lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM))
        image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.8, 1.2)))
        image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.8, 1.2)))
        return image, mask

    def sample(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Image ``(3, S, S)`` float32 in ``[-1, 1]`` and mask ``(1, S, S)`` float32 in ``{0, 1}``."""
        from PIL import Image

        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} images")
        image, mask = self._cache[index]
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, index])
            if rng.random() < self.augmentation_prob:
                image, mask = self._augmented(image, mask, rng)
        w, h = image.size
        height = max(16, int(256 * h / w) - int(256 * h / w) % 16)
        s = self.image_size
        image = image.resize((256, height), Image.Resampling.BILINEAR).resize((s, s), Image.Resampling.BILINEAR)
        mask = mask.resize((256, height), Image.Resampling.BILINEAR).resize((s, s), Image.Resampling.BILINEAR)
        x = (np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
        m = np.asarray(mask, np.float32)
        top = float(m.max())
        y = (m >= 0.5 * top).astype(np.float32) if top > 0 else np.zeros_like(m)
        return x, y[None]

    def batch(self, indices: Sequence[int], epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Images ``(N, 3, S, S)`` and masks ``(N, 1, S, S)`` of ``indices``."""
        pairs = [self.sample(int(i), epoch) for i in indices]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
