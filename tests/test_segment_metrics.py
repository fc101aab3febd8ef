"""The paper's binary segmentation metrics (per image, then averaged) and multi-class IoU,
against hand-computed values and scikit-learn."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchmetrics")

from arma_experiments.segment.metrics import (
    BINARY_METRICS,
    BinaryScores,
    MulticlassScores,
    binary_metrics,
)


def test_hand_computed_image():
    # 3 x 4 image: TP 3, FP 1, FN 2, TN 6
    truth = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    pred = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0]]).float()
    m = {k: float(v[0]) for k, v in binary_metrics(pred[None], truth[None]).items()}
    expected = {
        "ACC": 9 / 12,
        "SE": 3 / 5,
        "SP": 6 / 7,
        "PC": 3 / 4,
        "F1": 2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4),
        "JS": 3 / 6,
        "DC": 6 / 9,
    }
    for k in BINARY_METRICS:
        assert m[k] == pytest.approx(expected[k], abs=1e-6), k
    assert m["F1"] == pytest.approx(m["DC"])


def test_per_image_mean_is_not_the_pooled_value():
    # image 1: one lesion pixel found; image 2: 3 lesion pixels, none found
    truth = torch.zeros(2, 4, 4, dtype=torch.long)
    truth[0, 0, 0] = 1
    truth[1, 0, :3] = 1
    pred = torch.zeros(2, 4, 4)
    pred[0, 0, 0] = 0.9
    scores = BinaryScores()
    scores.update(pred, truth)
    assert scores.compute()["SE"] == pytest.approx(0.5)  # (1 + 0) / 2, pooled would be 1 / 4
    assert scores.compute()["JS"] == pytest.approx(0.5)


def test_threshold_is_strict_and_empty_images_score_zero():
    prob = torch.full((1, 2, 2), 0.5)
    truth = torch.zeros(1, 2, 2, dtype=torch.long)
    m = {k: float(v[0]) for k, v in binary_metrics(prob, truth).items()}
    # nothing predicted (0.5 is not > 0.5), nothing true: the official eps makes SE, PC, F1, JS, DC 0
    assert m["ACC"] == m["SP"] == 1.0
    assert m["SE"] == m["PC"] == m["F1"] == m["JS"] == m["DC"] == 0.0


def test_against_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    truth = rng.random((6, 9, 7)) < 0.3
    prob = np.clip(truth * 0.6 + rng.random((6, 9, 7)) * 0.6, 0, 1)
    prob[5] = 0.0  # an image with no predicted foreground
    m = binary_metrics(torch.from_numpy(prob), torch.from_numpy(truth))
    for i in range(6):
        t, p = truth[i].ravel(), prob[i].ravel() > 0.5
        ref = {
            "ACC": sk.accuracy_score(t, p),
            "SE": sk.recall_score(t, p, zero_division=0),
            "SP": sk.recall_score(t, p, pos_label=0, zero_division=0),
            "PC": sk.precision_score(t, p, zero_division=0),
            "F1": sk.f1_score(t, p, zero_division=0),
            "JS": sk.jaccard_score(t, p, zero_division=0),
            "DC": sk.f1_score(t, p, zero_division=0),
        }
        for k in BINARY_METRICS:
            assert float(m[k][i]) == pytest.approx(ref[k], abs=1e-6), (i, k)


def test_single_image_batch_and_shape_errors():
    m = binary_metrics(torch.ones(1, 3, 3), torch.ones(1, 3, 3))
    assert all(v.shape == (1,) and float(v[0]) == 1.0 for k, v in m.items() if k != "SP")
    with pytest.raises(ValueError, match="same shape"):
        binary_metrics(torch.ones(2, 3, 3), torch.ones(2, 3, 4))


def test_multiclass_hand_computed_and_absent_classes():
    s = MulticlassScores(4)
    truth = torch.tensor([[[0, 0, 1, 1], [2, 2, 0, 0]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 0, 0, 0]]])
    s.update(pred, truth)
    r = s.compute()
    # class 0: TP 3, FP 1, FN 1 -> 3/5; class 1: TP 2, FP 1 -> 2/3; class 2: TP 1, FN 1 -> 1/2; class 3 absent
    assert r["iou"][:3] == pytest.approx([3 / 5, 2 / 3, 1 / 2])
    assert math.isnan(r["iou"][3])
    assert r["miou"] == pytest.approx((3 / 5 + 2 / 3 + 1 / 2) / 3)
    assert r["pixel_accuracy"] == pytest.approx(6 / 8)
    assert r["foreground_accuracy"] == pytest.approx(3 / 4)  # 2 of class 1 + 1 of class 2 out of 4


def test_multiclass_against_scikit_learn_accumulated_over_batches():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 11, size=(5, 12, 12))
    pred = np.where(rng.random((5, 12, 12)) < 0.6, truth, rng.integers(0, 11, size=(5, 12, 12)))
    s = MulticlassScores(11)
    for lo in (0, 2):  # two batches
        hi = 2 if lo == 0 else 5
        s.update(torch.from_numpy(pred[lo:hi]), torch.from_numpy(truth[lo:hi]))
    r = s.compute()
    t, p = truth.ravel(), pred.ravel()
    iou = sk.jaccard_score(t, p, labels=list(range(11)), average=None)
    assert r["iou"] == pytest.approx(list(iou), abs=1e-6)
    assert r["miou"] == pytest.approx(float(iou.mean()), abs=1e-6)
    assert r["pixel_accuracy"] == pytest.approx(sk.accuracy_score(t, p), abs=1e-6)
    fg = t > 0
    assert r["foreground_accuracy"] == pytest.approx(sk.accuracy_score(t[fg], p[fg]), abs=1e-6)
