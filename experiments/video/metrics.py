"""Frame-quality metrics of the paper's Table 3: PSNR, SSIM and MSE per predicted frame.

Protocol (appendix A of the paper, official evaluation code): the metric is computed per image,
averaged over the sequences, then over the 10 future frames. PSNR uses a data range of 1 on
``[0, 1]`` frames. The paper's SSIM came from an old scikit-image whose defaults were a 7 x 7
uniform window and, for float images, ``data_range = 2``; ``data_range = 1`` is the correct value
for ``[0, 1]`` frames and is what we report first, with ``data_range = 2`` for comparison.

:func:`psnr` is torchmetrics' ``peak_signal_noise_ratio`` per image. :func:`ssim` reproduces
``skimage.metrics.structural_similarity`` (Wang et al. 2004, Eq. 13 of that paper): local means,
sample (co)variances with ``N / (N - 1)`` for the uniform window, ``C1 = (K1 L)^2``,
``C2 = (K2 L)^2``, and the mean of the SSIM map over the pixels whose window lies inside the
image. torchmetrics' SSIM is a different estimator (reflect-padded borders averaged in,
population variances): on 32 x 32 Moving-MNIST frames it differs from scikit-image's by up to
0.2 (tested), so it does not reproduce the paper's protocol and is not used.

Examples
--------
>>> import torch
>>> target = torch.zeros(8, 8); target[2:5, 2:5] = 1.0
>>> round(float(psnr(torch.zeros(8, 8), target)), 3)  # 9 of 64 pixels wrong by 1
8.519
>>> float(ssim(target, target))
1.0
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["FrameMetrics", "psnr", "psnr_ceiling", "ssim"]


def _as_images(name: str, x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (..., H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    return x


def _check_pair(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    pred, target = _as_images("pred", pred), _as_images("target", target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    dtype = torch.promote_types(pred.dtype, target.dtype)
    return pred.to(dtype), target.to(target.device).to(dtype)


def psnr(pred, target, data_range: float = 1.0, max_db: float | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, ``10 log10(L^2 / MSE)`` (torchmetrics).

    Parameters
    ----------
    pred, target : array_like, shape (..., H, W)
    data_range : float
        ``L``, the range of the pixel values (1 for ``[0, 1]`` frames).
    max_db : float, optional
        Ceiling of the result (e.g. :func:`psnr_ceiling`). Without one, an image reproduced
        exactly scores ``inf``, and so does any mean over images that includes it.

    Returns
    -------
    Tensor, shape (...)
        ``inf`` (or ``max_db``) where an image is reproduced exactly.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio

    pred, target = _check_pair(pred, target)
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range!r}")
    out = peak_signal_noise_ratio(pred, target, data_range=float(data_range), reduction="none", dim=(-2, -1))
    return out if max_db is None else out.clamp(max=float(max_db))


def psnr_ceiling(height: int, width: int, levels: int = 256) -> float:
    """The PSNR of an ``height x width`` image whose only error is one quantisation step
    (``L / (levels - 1)``) in one pixel: ``10 log10((levels - 1)^2 H W)`` dB, independent of ``L``.

    :class:`FrameMetrics` scores an exactly reproduced frame with this value instead of ``inf``
    (the copy-last baseline reproduces a future frame exactly when the digits return to where
    they were): an 8-bit source cannot tell a smaller error from none.

    >>> round(psnr_ceiling(32, 32), 2)
    78.23
    """
    if height < 1 or width < 1 or levels < 2:
        raise ValueError(f"need height, width >= 1 and levels >= 2, got {height}, {width}, {levels}")
    return 10.0 * math.log10((levels - 1) ** 2 * height * width)


def _gaussian_kernel(sigma: float, truncate: float, dtype, device) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def ssim(
    pred,
    target,
    data_range: float = 1.0,
    win_size: int = 7,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity per image (grey-level), as ``skimage.metrics.structural_similarity``.

    Parameters
    ----------
    pred, target : array_like, shape (..., H, W)
    data_range : float
        ``L`` of the stabilising constants ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``.
    win_size : int
        Side of the uniform window (odd, default 7: the paper's scikit-image default). Ignored
        when ``gaussian_weights`` is True.
    gaussian_weights : bool
        Use a Gaussian window (``sigma``, truncated at 3.5 sigma: 11 x 11 for sigma = 1.5) and
        population (co)variances, like scikit-image with ``gaussian_weights=True``.
    sigma, k1, k2 : float
        Gaussian width and the constants of Wang et al. (2004).

    Returns
    -------
    Tensor, shape (...)
        Mean SSIM over the pixels whose window lies inside the image.
    """
    pred, target = _check_pair(pred, target)
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range!r}")
    if gaussian_weights:
        kernel1d = _gaussian_kernel(sigma, 3.5, pred.dtype, pred.device)
        win = kernel1d.numel()
        cov_norm = 1.0
    else:
        if not isinstance(win_size, int) or win_size < 3 or win_size % 2 == 0:
            raise ValueError(f"win_size must be an odd int >= 3, got {win_size!r}")
        win = win_size
        kernel1d = torch.full((win,), 1.0 / win, dtype=pred.dtype, device=pred.device)
        cov_norm = win * win / (win * win - 1.0)
    h, w = pred.shape[-2:]
    if h < win or w < win:
        raise ValueError(f"images of {h} x {w} are smaller than the {win} x {win} SSIM window")
    batch_shape = pred.shape[:-2]
    x = pred.reshape(-1, 1, h, w)
    y = target.reshape(-1, 1, h, w)

    def filt(z: torch.Tensor) -> torch.Tensor:
        # separable 'valid' filtering = the interior that scikit-image keeps after cropping
        z = F.conv2d(z, kernel1d.view(1, 1, win, 1))
        return F.conv2d(z, kernel1d.view(1, 1, 1, win))

    stacked = filt(torch.cat([x, y, x * x, y * y, x * y], dim=1).reshape(-1, 1, h, w))
    stacked = stacked.reshape(x.shape[0], 5, h - win + 1, w - win + 1)
    ux, uy, uxx, uyy, uxy = stacked.unbind(dim=1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return (numerator / denominator).mean(dim=(-2, -1)).reshape(batch_shape)


class FrameMetrics:
    """Running per-frame PSNR, SSIM and MSE over batches of predicted sequences.

    Parameters
    ----------
    num_frames : int
        Predicted frames per sequence (paper: 10).
    ssim_data_ranges : tuple of float
        SSIM is accumulated for each of these data ranges (default: 1, the correct one, and 2,
        the paper's scikit-image default).
    win_size : int
        SSIM window (7, uniform).

    Notes
    -----
    :meth:`update` takes ``pred, target`` of shape ``(B, T, C, H, W)`` (or ``(B, T, H, W)``) in
    ``[0, 1]``; multi-channel frames are scored per channel and averaged. :meth:`result` gives
    the per-frame means over all sequences seen and their average over frames. The MSE is the
    mean squared pixel error (per image, then averaged like the others), the quantity the
    baselines' acceptance margin is stated in. A frame reproduced exactly scores
    :func:`psnr_ceiling` dB (78.2 at 32 x 32) instead of ``inf``; ``result()["exact_frames"]``
    counts them.

    Examples
    --------
    >>> import torch
    >>> m = FrameMetrics(2)
    >>> target = torch.zeros(3, 2, 1, 8, 8); target[..., 2:5, 2:5] = 1.0
    >>> m.update(torch.zeros_like(target), target)
    >>> r = m.result()
    >>> r["count"], r["mse"], r["mse_per_frame"]
    (3, 0.140625, [0.140625, 0.140625])
    """

    def __init__(self, num_frames: int, ssim_data_ranges=(1.0, 2.0), win_size: int = 7):
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
        self.num_frames = num_frames
        self.ssim_data_ranges = tuple(float(r) for r in ssim_data_ranges)
        self.win_size = win_size
        self.count = 0
        self.exact_frames = 0
        self._psnr = torch.zeros(num_frames, dtype=torch.float64)
        self._mse = torch.zeros(num_frames, dtype=torch.float64)
        self._ssim = {r: torch.zeros(num_frames, dtype=torch.float64) for r in self.ssim_data_ranges}

    def update(self, pred, target) -> None:
        """Add a batch ``(B, num_frames, C, H, W)`` (or ``(B, num_frames, H, W)``) of predictions."""
        pred, target = _check_pair(pred, target)
        if pred.ndim == 4:
            pred, target = pred[:, :, None], target[:, :, None]
        if pred.ndim != 5 or pred.shape[1] != self.num_frames:
            raise ValueError(f"pred must have shape (B, {self.num_frames}, C, H, W), got {tuple(pred.shape)}")
        pred = pred.detach().to("cpu", torch.float64)
        target = target.detach().to("cpu", torch.float64)
        per_image = psnr(pred, target, 1.0)
        ceiling = psnr_ceiling(pred.shape[-2], pred.shape[-1])
        self.exact_frames += int((per_image >= ceiling).sum())
        self._psnr += per_image.clamp(max=ceiling).mean(dim=2).sum(dim=0)
        self._mse += ((pred - target) ** 2).mean(dim=(2, 3, 4)).sum(dim=0)
        for r in self.ssim_data_ranges:
            self._ssim[r] += ssim(pred, target, r, self.win_size).mean(dim=2).sum(dim=0)
        self.count += pred.shape[0]

    def result(self) -> dict:
        """Means per frame and over frames: ``psnr``, ``mse``, ``ssim``, ``ssim_dr2``, ...

        Each ``key`` comes with ``key_per_frame`` (a list); ``ssim`` uses the first data range,
        ``ssim_dr<r>`` the others (e.g. ``ssim_dr2``); ``count`` is the number of sequences,
        ``exact_frames`` the number of images scored at the PSNR ceiling.
        """
        if self.count == 0:
            raise ValueError("no sequences were added")
        out: dict = {"count": self.count, "exact_frames": self.exact_frames}

        def put(key: str, total: torch.Tensor) -> None:
            per_frame = (total / self.count).tolist()
            out[key] = sum(per_frame) / len(per_frame)
            out[key + "_per_frame"] = per_frame

        put("psnr", self._psnr)
        put("mse", self._mse)
        for i, r in enumerate(self.ssim_data_ranges):
            put("ssim" if i == 0 else f"ssim_dr{r:g}", self._ssim[r])
        if any(math.isnan(v) for v in out["mse_per_frame"]):
            raise FloatingPointError("MSE is NaN: predictions contain NaN")
        return out
