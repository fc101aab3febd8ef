"""Datasets of the classification experiments: IDX, Fashion-MNIST, CIFAR-10 batches, foolbox images."""

import gzip
import pickle

import numpy as np
import pytest
import torch

from arma_experiments.data import cifar10, fashion_mnist
from arma_experiments.data.cifar10 import load_cifar10
from arma_experiments.data.fashion_mnist import (
    FASHION_MNIST_INSTALL,
    FashionMnistMissingError,
    load_fashion_mnist,
    read_idx,
)
from arma_experiments.stability.data import augment_batch, load_pair, step_indices


def _write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.array(array.shape, dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.tobytes()))


def _fake_fashion(folder, n_train=12, n_test=5):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))


def test_read_idx_roundtrip_and_errors(tmp_path):
    a = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", a)
    out = read_idx(tmp_path / "a.gz")
    assert out.dtype == np.int32 and out.tolist() == a.tolist() and not out.flags.writeable
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_from_a_folder_and_missing_message(tmp_path):
    _fake_fashion(tmp_path)
    x, y = load_fashion_mnist("train", root=tmp_path)
    assert x.shape == (12, 28, 28) and x.dtype == np.uint8 and y.tolist() == [i % 10 for i in range(12)]
    train, test = load_pair("fashion-mnist", data_dir=tmp_path)
    assert train.images.shape == (12, 1, 32, 32) and len(test) == 5
    assert int(train.images[:, :, :2].max()) == 0  # zero padding of 2 around 28 x 28
    with pytest.raises(FashionMnistMissingError, match="apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist("test", root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("val", root=tmp_path)


needs_fashion = pytest.mark.skipif(
    not (fashion_mnist.FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST not installed: {FASHION_MNIST_INSTALL}",
)


@needs_fashion
def test_real_fashion_mnist():
    x, y = load_fashion_mnist("test", root=fashion_mnist.FASHION_MNIST_DIR)
    assert x.shape == (10000, 28, 28) and np.bincount(y).tolist() == [1000] * 10
    x, y = load_fashion_mnist("train", root=fashion_mnist.FASHION_MNIST_DIR)
    assert x.shape == (60000, 28, 28) and np.bincount(y).tolist() == [6000] * 10
    assert 60 < x.mean() < 90  # grey clothes on black, not noise or blank


def _fake_cifar(folder, n=3):
    folder.mkdir()
    rng = np.random.default_rng(1)
    images = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, n).tolist())
        images[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump(
                {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n},
                f,
                protocol=2,
            )
    return images


def test_cifar10_batches(tmp_path):
    written = _fake_cifar(tmp_path / "cifar-10-batches-py")
    x, y = load_cifar10(tmp_path, "train")  # the parent folder works too
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.uint8 and len(y) == 15
    data, labels = written["data_batch_2"]
    # channel-major rows: the first 1024 bytes are the red plane
    np.testing.assert_array_equal(x[3, 0], data[0, :1024].reshape(32, 32))
    np.testing.assert_array_equal(x[3, 2], data[0, 2048:].reshape(32, 32))
    assert y[3:6].tolist() == labels
    x, y = load_cifar10(tmp_path / "cifar-10-batches-py", "test")
    assert x.shape == (3, 3, 32, 32)
    train, _ = load_pair("cifar10", data_dir=str(tmp_path / "cifar-10-batches-py"))
    assert train.channels == 3 and train.mean.shape == (3,)
    with pytest.raises(ValueError, match="needs data_dir"):
        load_pair("cifar10")


def test_cifar10_refuses_other_pickles(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "test_batch").write_bytes(
        pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": pickle.PickleBuffer})
    )
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_cifar10(folder, "test")
    with pytest.raises(cifar10.Cifar10MissingError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path / "none", "train")


@pytest.mark.slow
def test_foolbox_cifar10_images():
    try:
        folder = cifar10.foolbox_data_dir()
    except cifar10.Cifar10MissingError:
        pytest.skip(f"foolbox not installed: {cifar10.FOOLBOX_INSTALL}")
    x, y = cifar10.load_foolbox_cifar10()
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8
    assert y.tolist() == [int(p.stem.split("_")[-1]) for p in sorted(folder.glob("cifar10_*.png"))]
    assert 40 < x.mean() < 200 and x.std() > 30  # real photographs
    # the 3 x 32 x 32 path end to end: a few steps of an ARMA VGG-11 on them
    from arma_experiments.stability.models import build_model

    train, _ = load_pair("foolbox-cifar10")
    torch.manual_seed(0)
    net = build_model("vgg11", "strip", width=0.125, in_channels=3, dropout=False)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xb, yb = train.batch(torch.arange(20))
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_mnist_pair_and_batches():
    train, test = load_pair("mnist", train_size=256, test_size=64)
    x, _ = train.batch(torch.arange(256))
    assert x.shape == (256, 1, 32, 32) and abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    assert 0.1 <= test.majority_accuracy() < 0.3
    a = step_indices(256, 32, seed=3, steps=range(12))
    b = step_indices(256, 32, seed=3, steps=range(5, 12))
    assert all(torch.equal(u, v) for u, v in zip(a[5:], b))  # resumable: depends on the step only
    assert sorted(torch.cat(a[:8]).tolist()) == list(range(256))  # one pass = a permutation
    assert not torch.equal(torch.cat(a[:8]), torch.cat(a[8:12] + a[:4]))
    with pytest.raises(ValueError, match="batch_size"):
        step_indices(10, 32, 0, range(1))
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x[:4], g)
    assert out.shape == x[:4].shape and not torch.equal(out, x[:4])
