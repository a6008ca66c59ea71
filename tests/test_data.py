"""Tests for kernel_ssl_jax.lab.data: built-in data sets, the IDX reader, MNIST and generic files, dispatch."""

import gzip
import random
import struct

import numpy as np
import pytest

from kernel_ssl_jax.lab import data

# ----------------------------------------------------------------------------------------------------------------------
# An independent IDX writer: the reference the reader is tested against.
# ----------------------------------------------------------------------------------------------------------------------

_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def write_idx(path, array, compress=False):
    array = np.asarray(array)
    header = struct.pack(">BBBB", 0, 0, _CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def _check_dataset(ds, n_features, image_shape, name):
    assert isinstance(ds, data.Dataset)
    assert ds.name == name
    assert ds.image_shape == image_shape
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        assert isinstance(X, np.ndarray) and X.dtype == np.float64
        assert isinstance(y, np.ndarray) and y.dtype == np.int64
        assert X.ndim == 2 and X.shape[1] == n_features
        assert y.shape == (X.shape[0],)


# ----------------------------------------------------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------------------------------------------------


def test_digits_shapes_and_range():
    ds = data.digits()
    _check_dataset(ds, 64, (8, 8), "digits")
    assert ds.X_train.shape == (1437, 64) and ds.X_test.shape == (360, 64)
    for X in (ds.X_train, ds.X_test):
        assert X.min() == 0.0 and X.max() == 1.0
    assert ds.n_classes == 10 and ds.n_features == 64
    # Stratified: each class's share of the test set is its share of the data, up to rounding.
    per_class = np.bincount(np.concatenate([ds.y_train, ds.y_test]))
    np.testing.assert_array_less(np.abs(np.bincount(ds.y_test) - 0.2 * per_class), 1.0)


def test_digits_split_is_seeded():
    a, b, c = data.digits(seed=3), data.digits(seed=3), data.digits(seed=4)
    for left, right in zip(a[:4], b[:4], strict=True):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a.y_train, c.y_train)
    # Train and test together are the whole data set, each image once with its own label.
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    reference = np.c_[X / 16.0, y]
    merged = np.concatenate([np.c_[a.X_train, a.y_train], np.c_[a.X_test, a.y_test]])
    np.testing.assert_array_equal(np.unique(merged, axis=0), np.unique(reference, axis=0))
    assert merged.shape == reference.shape


def test_digits_test_size_and_subsample():
    ds = data.digits(test_size=100, seed=0, max_train=50, max_test=30)
    assert ds.X_train.shape == (50, 64) and ds.X_test.shape == (30, 64)
    np.testing.assert_array_equal(np.bincount(ds.y_train), 5)  # stratified subset: 5 per class
    again = data.digits(test_size=100, seed=0, max_train=50, max_test=30)
    np.testing.assert_array_equal(ds.X_train, again.X_train)
    tiny = data.digits(max_train=3)  # fewer than the classes: falls back to a plain random subset
    assert tiny.X_train.shape == (3, 64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_size": 0.0}, r"test_size must be a fraction in \(0, 1\) or a positive integer"),
        ({"test_size": 1.5}, "test_size must be a fraction"),
        ({"test_size": 5000}, "test_size=5000 leaves no train or no test samples"),
        ({"max_train": 0}, "max_train must be an integer >= 1 or None, got 0"),
        ({"max_test": 2.5}, "max_test must be an integer >= 1 or None, got 2.5 .float."),
    ],
)
def test_digits_argument_errors(kwargs, match):
    with pytest.raises(TypeError if ".float." in match else ValueError, match=match):
        data.digits(**kwargs)


# ----------------------------------------------------------------------------------------------------------------------
# mnist1d
# ----------------------------------------------------------------------------------------------------------------------


def test_mnist1d_shapes_range_and_no_side_effects():
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    ds = data.mnist1d(n_samples=200, seed=0)
    # The generator reseeds the global RNGs internally; loading must leave them as they were.
    assert np.random.rand() == expected_np and random.random() == expected_py
    _check_dataset(ds, 40, None, "mnist1d")
    assert ds.X_train.shape == (160, 40) and ds.X_test.shape == (40, 40)
    full = np.concatenate([ds.X_train, ds.X_test])
    assert full.min() == 0.0 and full.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y_test), 4)
    again = data.mnist1d(n_samples=200, seed=0)
    np.testing.assert_array_equal(ds.X_train, again.X_train)


def test_mnist1d_generator_args():
    ds = data.mnist1d(n_samples=100, final_seq_length=24, max_train=30)
    assert ds.X_train.shape == (30, 24)
    with pytest.raises(ValueError, match="unknown mnist1d generator argument 'url'"):
        data.mnist1d(n_samples=100, url="http://example.com")
    with pytest.raises(ValueError, match="n_samples must be an integer >= 20"):
        data.mnist1d(n_samples=5)


# ----------------------------------------------------------------------------------------------------------------------
# IDX and MNIST
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, compress):
    array = (np.arange(2 * 3 * 4).reshape(2, 3, 4) * 7 - 20).astype(dtype)
    if dtype == np.uint8:
        array = (np.arange(24).reshape(2, 3, 4) * 10).astype(dtype)
    path = write_idx(tmp_path / "a.idx", array, compress)
    out = data.read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_one_dimensional_and_gzip_by_content(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    # Gzip is detected from the bytes, so a misleading name does not matter.
    path = write_idx(tmp_path / "labels-without-gz-suffix", labels, compress=True)
    np.testing.assert_array_equal(data.read_idx(path), labels)


def test_read_idx_errors(tmp_path):
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="is not an IDX file: bad magic number 01020801"):
        data.read_idx(bad_magic)
    bad_code = tmp_path / "code"
    bad_code.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="unknown IDX type code 0x07"):
        data.read_idx(bad_code)
    short = write_idx(tmp_path / "short", np.zeros((2, 3), np.uint8))
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"header gives shape \(2, 3\) \(6 bytes of data\) but the file holds 5"):
        data.read_idx(short)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.read_idx(tmp_path / "nowhere")


def _tiny_mnist(rng, n):
    images = rng.integers(0, 256, size=(n, 4, 3), dtype=np.uint8)
    images[0, 0, 0], images[1, 0, 0] = 0, 255  # pin the range so [0, 1] is reached exactly
    labels = np.repeat(np.arange(3, dtype=np.uint8), n // 3)
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_from_idx_files(tmp_path, compress):
    rng = np.random.default_rng(0)
    (train_x, train_y), (test_x, test_y) = _tiny_mnist(rng, 12), _tiny_mnist(rng, 6)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", train_x, compress)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", train_y, compress)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", test_x, compress)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", test_y, compress)
    ds = data.mnist(tmp_path)
    _check_dataset(ds, 12, (4, 3), "mnist")
    # The standard split is kept in file order.
    np.testing.assert_array_equal(ds.X_train, train_x.reshape(12, -1) / 255.0)
    np.testing.assert_array_equal(ds.y_train, train_y)
    np.testing.assert_array_equal(ds.X_test, test_x.reshape(6, -1) / 255.0)
    np.testing.assert_array_equal(ds.y_test, test_y)
    assert ds.X_train.min() == 0.0 and ds.X_train.max() == 1.0
    sub = data.mnist(tmp_path, max_train=6, seed=1)
    assert sub.X_train.shape == (6, 12)
    np.testing.assert_array_equal(np.bincount(sub.y_train), 2)


def test_mnist_from_npz(tmp_path):
    rng = np.random.default_rng(1)
    (train_x, train_y), (test_x, test_y) = _tiny_mnist(rng, 9), _tiny_mnist(rng, 3)
    np.savez(tmp_path / "mnist.npz", x_train=train_x, y_train=train_y, x_test=test_x, y_test=test_y)
    ds = data.load("mnist", directory=tmp_path)
    _check_dataset(ds, 12, (4, 3), "mnist")
    np.testing.assert_array_equal(ds.X_test, test_x.reshape(3, -1) / 255.0)
    np.testing.assert_array_equal(ds.y_train, train_y)


def test_mnist_missing_file_names_file_and_directory(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = _tiny_mnist(rng, 6)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, compress=True)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte") as info:
        data.mnist(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "mnist.npz" in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.mnist(tmp_path / "absent")


def test_mnist_mismatched_counts(tmp_path):
    images, labels = _tiny_mnist(np.random.default_rng(0), 6)
    for prefix, n in (("train", 6), ("t10k", 5)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images[:n])
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels[:6])
    with pytest.raises(ValueError, match="MNIST test set has 5 images but 6 labels"):
        data.mnist(tmp_path)


# ----------------------------------------------------------------------------------------------------------------------
# Generic files
# ----------------------------------------------------------------------------------------------------------------------


def _features(n=40, d=3, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)), np.arange(n) % classes


@pytest.mark.parametrize("keys", [("X", "y"), ("x", "y")])
def test_from_file_npz_split(tmp_path, keys):
    X, y = _features()
    path = tmp_path / "feats.npz"
    np.savez(path, **{keys[0]: X, keys[1]: y})
    ds = data.from_file(path, test_size=0.25, seed=2)
    _check_dataset(ds, 3, None, "feats")
    assert ds.X_train.shape == (30, 3) and ds.X_test.shape == (10, 3)
    # The split is a permutation of the stored rows, labels attached to their rows.
    merged = np.concatenate([np.c_[ds.X_train, ds.y_train], np.c_[ds.X_test, ds.y_test]])
    np.testing.assert_array_equal(merged[np.lexsort(merged.T[::-1])], np.c_[X, y][np.lexsort(np.c_[X, y].T[::-1])])
    same = data.load("file", path=path, test_size=0.25, seed=2)
    np.testing.assert_array_equal(ds.X_test, same.X_test)


def test_from_file_npz_with_test_set_and_images(tmp_path):
    rng = np.random.default_rng(0)
    X, X_test = rng.random((8, 2, 3)), rng.random((4, 2, 3))
    path = tmp_path / "imgs.npz"
    np.savez(path, X=X, y=np.arange(8) % 2, X_test=X_test, y_test=np.arange(4) % 2)
    ds = data.from_file(path, scale=2.0)
    _check_dataset(ds, 6, (2, 3), "imgs")
    np.testing.assert_array_equal(ds.X_train, X.reshape(8, 6) / 2.0)
    np.testing.assert_array_equal(ds.X_test, X_test.reshape(4, 6) / 2.0)


@pytest.mark.parametrize("header", [False, True])
def test_from_file_csv(tmp_path, header):
    X, y = _features(n=20, d=2, classes=2)
    path = tmp_path / "table.csv"
    lines = (["a,b,label"] if header else []) + [
        f"{float(a)!r},{float(b)!r},{label}" for (a, b), label in zip(X, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    ds = data.from_file(path, test_size=4, seed=0)
    _check_dataset(ds, 2, None, "table")
    assert ds.X_test.shape == (4, 2)
    rows = {tuple(row) for row in np.c_[ds.X_train, ds.y_train]} | {tuple(row) for row in np.c_[ds.X_test, ds.y_test]}
    assert rows == {tuple(row) for row in np.c_[X, y]}


def test_from_file_csv_class_names(tmp_path):
    path = tmp_path / "named.csv"
    path.write_text("x,kind\n" + "".join(f"{i}.5,{'cat' if i % 2 else 'dog'}\n" for i in range(10)))
    ds = data.from_file(path, test_size=0.2)
    # Sorted class names: cat -> 0, dog -> 1; odd features are cats.
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        np.testing.assert_array_equal(y, (np.floor(X[:, 0]) % 2 == 0).astype(int))


def test_from_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        data.from_file(tmp_path / "missing.npz")
    other = tmp_path / "data.txt"
    other.write_text("1,2\n")
    with pytest.raises(ValueError, match="unsupported data file extension '.txt'"):
        data.from_file(other)
    wrong_keys = tmp_path / "wrong.npz"
    np.savez(wrong_keys, features=np.zeros((4, 2)), labels=np.zeros(4))
    with pytest.raises(ValueError, match="found keys features, labels"):
        data.from_file(wrong_keys)
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, X=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(ValueError, match="got features of shape \\(4, 2\\) and 3 labels"):
        data.from_file(mismatch)
    fractional = tmp_path / "fractional.npz"
    np.savez(fractional, X=np.zeros((4, 2)), y=np.array([0, 1, 0.5, 1]))
    with pytest.raises(ValueError, match="non-integer value 0.5"):
        data.from_file(fractional)
    with pytest.raises(ValueError, match=r"image_shape \(3, 3\) does not match d = 2"):
        data.from_file(_save(tmp_path), image_shape=(3, 3))


def _save(tmp_path):
    X, y = _features(n=12, d=2, classes=2)
    path = tmp_path / "ok.npz"
    np.savez(path, X=X, y=y)
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Toys and dispatch
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, n_classes", [("moons", 2), ("circles", 2), ("blobs", 3)])
def test_toys(name, n_classes):
    ds = data.load(name, n=60, seed=1)
    _check_dataset(ds, 2, None, name)
    assert ds.X_train.shape == (48, 2)
    assert ds.n_classes == n_classes
    full = np.concatenate([ds.X_train, ds.X_test])
    assert full.min() == 0.0 and full.max() == 1.0
    again = data.load(name, n=60, seed=1)
    np.testing.assert_array_equal(ds.X_train, again.X_train)


def test_two_moons_keeps_aspect_ratio():
    # One scalar rescaling for both axes: the moons stay wider (about 3) than tall (about 1.5).
    ds = data.two_moons(n=400, noise=0.0)
    full = np.concatenate([ds.X_train, ds.X_test])
    extent = full.max(axis=0) - full.min(axis=0)
    assert extent[0] == 1.0
    np.testing.assert_allclose(extent[1], 1.5 / 3.0, atol=0.02)


def test_load_digits_default_and_unknown_name():
    ds = data.load("digits", max_train=100)
    assert ds.X_train.shape == (100, 64)
    with pytest.raises(
        ValueError,
        match="unknown dataset 'cifar'; known: blobs, circles, digits, fashion_mnist, file, mnist, mnist1d, moons"
    ):
        data.load("cifar")
