"""``arma segment``: loss, prediction rule, end-to-end smoke preset, resume, ISIC pipeline."""

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from arma_experiments.segment.train import (
    SegmentConfig,
    predict_labels,
    segmentation_loss,
    train_and_evaluate,
)


def test_digit_loss_is_foreground_bce_plus_digit_ce_on_foreground():
    torch.manual_seed(0)
    logits = torch.randn(2, 11, 4, 4)
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, 1, 1], target[1, 2, :] = 4, 10
    fg = (target > 0).float()
    p = torch.sigmoid(logits[:, 0])
    bce = -(fg * torch.log(p) + (1 - fg) * torch.log(1 - p)).mean()
    picked = [(0, 1, 1, 3)] + [(1, 2, j, 9) for j in range(4)]
    ce = torch.stack([-torch.log_softmax(logits[n, 1:, i, j], 0)[c] for n, i, j, c in picked]).mean()
    torch.testing.assert_close(segmentation_loss(logits, target), bce + ce)
    # no foreground in the batch: the binary term alone
    zero = torch.zeros_like(target)
    torch.testing.assert_close(
        segmentation_loss(logits, zero),
        torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], zero.float()),
    )


def test_prediction_rule():
    logits = torch.zeros(1, 11, 1, 3)
    logits[0, 0] = torch.tensor([[-1.0, 0.5, 0.0]])
    logits[0, 1 + 7, 0, :] = 2.0
    assert predict_labels(logits).tolist() == [[[0, 8, 0]]]


def _main(*args):
    from arma_experiments.segment.cli import main

    return main(list(args))


@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path, capsys):
    pytest.importorskip("mnist")
    out = tmp_path / "runs"
    assert _main("--preset", "smoke", "--out", str(out), "--no-progress") == 0
    for name in (
        "results.md",
        "results.csv",
        "runs.csv",
        "predictions.png",
        "erf.png",
        "erf.json",
        "ar_histogram-arma3.png",
    ):
        assert (out / name).is_file(), name
    text = (out / "results.md").read_text()
    assert "ARMA 3x3" in text and "All background" in text and "mIoU" in text
    # the summary CSV is the mean over the per-run CSV
    runs = list(csv.DictReader((out / "runs.csv").open()))
    summary = {(r["model"], r["metric"]): float(r["mean"]) for r in csv.DictReader((out / "results.csv").open())}
    for r in runs:
        assert summary[(r["model"], "miou")] == pytest.approx(float(r["miou"]))
    assert _main("--preset", "smoke", "--out", str(out), "--no-progress") == 2  # no silent overwrite
    capsys.readouterr()
    assert _main("--preset", "smoke", "--out", str(out), "--no-progress", "--resume") == 0
    assert "2 finished run(s) reused" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_equals_uninterrupted(tmp_path):
    pytest.importorskip("mnist")
    common = {
        "model": "arma3",
        "epochs": 2,
        "train_size": 8,
        "val_size": 2,
        "test_size": 4,
        "batch_size": 4,
        "canvas": 32,
        "digits": (1, 2),
        "scale": (0.6, 0.8),
        "depth": 2,
        "width": 4,
    }
    whole = train_and_evaluate(SegmentConfig(**common), tmp_path / "a", progress=False)
    train_and_evaluate(SegmentConfig(**{**common, "epochs": 1}), tmp_path / "b", progress=False)
    resumed = train_and_evaluate(SegmentConfig(**common), tmp_path / "b", resume=True, progress=False)
    assert json.dumps(resumed["metrics"]) == json.dumps(whole["metrics"])  # NaN-safe equality
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in whole["history"]]


def test_isic_pipeline_selects_the_best_validation_epoch(tmp_path):
    from arma_experiments.data.isic import write_isic_layout

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 20, 24, 3), dtype=np.uint8)
    masks = np.zeros((10, 20, 24), np.uint8)
    masks[:, 5:15, 6:18] = 255
    images[masks > 0] //= 3  # a darker lesion
    write_isic_layout(tmp_path / "isic", images, masks)
    config = SegmentConfig(
        model="arma-unet",
        task="isic",
        isic_root=str(tmp_path / "isic"),
        epochs=2,
        batch_size=4,
        eval_batch_size=4,
        image_size=16,
        widths=(4, 8),
        lr_decay=0.98,
    )
    r = train_and_evaluate(config, tmp_path / "runs", progress=False)
    assert r["evaluated_weights"].startswith("best-val (epoch ")
    assert set(r["metrics"]) >= {"ACC", "SE", "SP", "PC", "F1", "JS", "DC"} and "miou" not in r["metrics"]
    saved = json.loads((tmp_path / "runs" / "arma-unet" / "seed0" / "results.json").read_text())
    assert saved["params"] == r["params"] and len(saved["history"]) == 2 and "val_JS" in saved["history"][0]
    with pytest.raises(ValueError, match="isic_root"):
        SegmentConfig(task="isic")


def test_list_models_shows_the_pinned_counts(capsys):
    assert _main("--list-models") == 0
    out = capsys.readouterr().out
    assert "34,527,041" in out and "34,554,433" in out and "3.453M" in out
