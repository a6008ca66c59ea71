"""Data sets as plain numpy arrays: digits (the embedded default), MNIST-1D, MNIST, files and 2-D toys.

Every loader returns a :class:`Dataset` of float64 features of shape ``(n, d)`` (images flattened row-major, with
``image_shape = (height, width)`` so augmentations can reshape them) and int64 labels of shape ``(n,)``. Built-in data
sets are scaled to [0, 1]; train/test splits are stratified and seeded, so the same ``seed`` always gives the same
split. MNIST and Fashion-MNIST are read from a folder the user names, or else fetched on first use into a cache folder
(:func:`data_dir`: the argument, else ``$KSSL_DATA_DIR``, else ``~/.cache/kernel_ssl_jax``) with ``pooch``, every
file checked against its known md5 checksum (:data:`REMOTE`); later uses read the cache with no network. MNIST-1D is
generated procedurally; digits ships with scikit-learn.

This module is the numpy edge of the package: arrays become JAX arrays only when a model consumes them.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import random
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from kernel_ssl_jax import validation as _validation


class Dataset(NamedTuple):
    """A train/test split of a labelled data set.

    Attributes:
        X_train: features, shape ``(n_train, d)``, float64.
        y_train: labels, shape ``(n_train,)``, int64.
        X_test: features, shape ``(n_test, d)``, float64.
        y_test: labels, shape ``(n_test,)``, int64.
        image_shape: ``(height, width)`` with ``height * width == d`` for images, None for plain vectors.
        name: short name of the data set, e.g. ``"digits"``.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int] | None
    name: str

    @property
    def n_features(self) -> int:
        """Feature dimension ``d``."""
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of distinct labels over train and test."""
        return int(np.unique(np.concatenate([self.y_train, self.y_test])).size)


# ----------------------------------------------------------------------------------------------------------------------
# Shared helpers: validation, labels, splitting, subsampling
# ----------------------------------------------------------------------------------------------------------------------


def _check_test_size(test_size) -> float:
    # bool is an int subclass, but test_size=True is surely a mistake rather than "one test sample".
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool) and test_size >= 1:
        return int(test_size)
    if isinstance(test_size, (float, np.floating)) and 0.0 < test_size < 1.0:
        return float(test_size)
    raise ValueError(f"test_size must be a fraction in (0, 1) or a positive integer count; got {test_size!r}")


def _check_count(name: str, value, minimum: int = 1, allow_none: bool = True) -> int | None:
    return _validation.integer(name, value, minimum=minimum, allow_none=allow_none)


def _encode_labels(*ys: np.ndarray) -> list[np.ndarray]:
    """Turns label arrays into int64, encoding them jointly so train and test codes agree.

    Integer-valued numbers are kept as they are; anything else (class names) is coded ``0 .. k-1`` in sorted order.
    """
    flat = [np.asarray(y).reshape(-1) for y in ys]
    joint = np.concatenate(flat)
    if joint.dtype.kind in "biu":
        codes = joint.astype(np.int64)
    else:
        try:
            numeric = joint.astype(np.float64)
        except (TypeError, ValueError):
            numeric = None
        if numeric is None:
            # Class names: stable, sorted codes so the same file always gives the same labels.
            _, codes = np.unique(joint.astype(str), return_inverse=True)
            codes = codes.astype(np.int64)
        else:
            if not np.all(np.isfinite(numeric)) or not np.all(numeric == np.round(numeric)):
                bad = numeric[~(np.isfinite(numeric) & (numeric == np.round(numeric)))][0]
                raise ValueError(f"labels must be integers or class names; got the non-integer value {bad}")
            codes = numeric.astype(np.int64)
    bounds = np.cumsum([len(y) for y in flat])[:-1]
    return np.split(codes, bounds)


def _n_test(test_size: float, n: int) -> int:
    return test_size if isinstance(test_size, int) else math.ceil(test_size * n)


def _stratifiable(y: np.ndarray, n_first: int) -> bool:
    """Whether a stratified draw of ``n_first`` samples (and the rest) is possible: >= 1 per class on each side."""
    _, counts = np.unique(y, return_counts=True)
    return counts.min() >= 2 and counts.size <= n_first <= len(y) - counts.size


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int):
    """Seeded train/test split, stratified by label unless some class is too small to appear on both sides."""
    n_test = _n_test(test_size, len(y))
    if not 1 <= n_test < len(y):
        raise ValueError(f"test_size={test_size} leaves no train or no test samples out of {len(y)}")
    stratify = y if _stratifiable(y, n_test) else None
    return train_test_split(X, y, test_size=n_test, random_state=seed, stratify=stratify)


def _subsample(X: np.ndarray, y: np.ndarray, max_n: int | None, seed: int):
    """Seeded subset of at most ``max_n`` samples, stratified when every class can be represented."""
    if max_n is None or max_n >= len(y):
        return X, y
    stratify = y if _stratifiable(y, max_n) else None
    X_sub, _, y_sub, _ = train_test_split(X, y, train_size=max_n, random_state=seed, stratify=stratify)
    return X_sub, y_sub


def _dataset(X_train, y_train, X_test, y_test, image_shape, name, max_train, max_test, seed) -> Dataset:
    """Applies the optional subsampling and fixes dtypes: the one exit point of every loader."""
    max_train = _check_count("max_train", max_train)
    max_test = _check_count("max_test", max_test)
    X_train, y_train = _subsample(X_train, y_train, max_train, seed)
    X_test, y_test = _subsample(X_test, y_test, max_test, seed)
    if image_shape is not None:
        image_shape = (int(image_shape[0]), int(image_shape[1]))
        if image_shape[0] * image_shape[1] != X_train.shape[1]:
            raise ValueError(f"image_shape {image_shape} does not match d = {X_train.shape[1]} features")
    return Dataset(
        np.ascontiguousarray(X_train, dtype=np.float64),
        np.asarray(y_train, dtype=np.int64),
        np.ascontiguousarray(X_test, dtype=np.float64),
        np.asarray(y_test, dtype=np.int64),
        image_shape,
        name,
    )


def _minmax(X: np.ndarray) -> np.ndarray:
    """One affine map of all values onto [0, 1]: a single scalar keeps the geometry (no per-feature stretching)."""
    low, high = X.min(), X.max()
    return (X - low) / (high - low) if high > low else np.zeros_like(X)


# ----------------------------------------------------------------------------------------------------------------------
# Built-in data sets
# ----------------------------------------------------------------------------------------------------------------------


def digits(test_size: float = 0.2, seed: int = 0, max_train: int | None = None, max_test: int | None = None) -> Dataset:
    """The scikit-learn 8x8 handwritten digits (1797 images, 10 classes), bundled offline: the default data set.

    Args:
        test_size: test fraction in (0, 1) or test count.
        seed: seed of the stratified split and of the optional subsampling.
        max_train: keep a seeded, stratified subset of at most this many training samples.
        max_test: same for the test set.

    Returns:
        A :class:`Dataset` with ``d = 64`` pixels in [0, 1] (divided by 16) and ``image_shape = (8, 8)``.

    Raises:
        ValueError: on an invalid ``test_size``, ``max_train`` or ``max_test``.

    Example:
        >>> ds = digits(seed=0)
        >>> ds.X_train.shape, ds.image_shape
        ((1437, 64), (8, 8))
    """
    test_size = _check_test_size(test_size)
    X, y = sk_datasets.load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = _split(X / 16.0, y, test_size, seed)
    return _dataset(X_train, y_train, X_test, y_test, (8, 8), "digits", max_train, max_test, seed)


def mnist1d(
    n_samples: int = 5000,
    test_size: float = 0.2,
    seed: int = 0,
    generator_seed: int = 42,
    max_train: int | None = None,
    max_test: int | None = None,
    **generator_args,
) -> Dataset:
    """MNIST-1D (Greydanus, 2020): 1-D signals of length 40, generated procedurally by the ``mnist1d`` package.

    The generator (``mnist1d.data.make_dataset``) runs locally; the package's download path is never used. Defaults
    are the package's reference settings (5000 samples, generator seed 42). The samples are then re-split
    (stratified, by ``seed``) and mapped onto [0, 1] by one global affine map (the generator already standardises
    with global statistics, so this changes the scale only).

    Args:
        n_samples: total samples; the generator makes ``n_samples // 10`` per class, so use a multiple of 10 (>= 20).
        test_size: test fraction in (0, 1) or test count.
        seed: seed of the split and of the optional subsampling.
        generator_seed: seed of the procedural generator (42 is the reference data set).
        max_train: keep a seeded, stratified subset of at most this many training samples.
        max_test: same for the test set.
        **generator_args: overrides of ``mnist1d.data.get_dataset_args()`` fields, e.g. ``iid_noise_scale=0.05``.

    Returns:
        A :class:`Dataset` with ``d = 40`` (``final_seq_length``), ``image_shape = None``.

    Raises:
        ValueError: if ``n_samples < 20``, on an unknown generator argument, or on invalid split arguments.

    Example:
        >>> ds = mnist1d(n_samples=200)
        >>> ds.X_train.shape
        (160, 40)
    """
    # Imported lazily: the package imports matplotlib and requests, which plain users of this module do not need.
    from mnist1d.data import get_dataset_args, make_dataset

    n_samples = _check_count("n_samples", n_samples, minimum=20, allow_none=False)
    test_size = _check_test_size(test_size)
    args = get_dataset_args()
    reserved = {"num_samples", "seed", "url", "train_split"}
    for key in generator_args:
        if key not in vars(args) or key in reserved:
            allowed = ", ".join(sorted(set(vars(args)) - reserved))
            raise ValueError(f"unknown mnist1d generator argument {key!r}; allowed: {allowed}")
    vars(args).update(generator_args, num_samples=n_samples, seed=generator_seed)

    # make_dataset reseeds the global numpy and random generators; restore them so loading data has no side effects.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    X = _minmax(np.concatenate([raw["x"], raw["x_test"]]))
    y = np.concatenate([raw["y"], raw["y_test"]])
    X_train, X_test, y_train, y_test = _split(X, y, test_size, seed)
    return _dataset(X_train, y_train, X_test, y_test, None, "mnist1d", max_train, max_test, seed)


# ----------------------------------------------------------------------------------------------------------------------
# MNIST from local files
# ----------------------------------------------------------------------------------------------------------------------

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); data are big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (the MNIST format), gzipped or not.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions, then each dimension as a big-endian uint32. Gzip is detected from the
    content, not the file name.

    Args:
        path: path of the file.

    Returns:
        The array with the stored shape and dtype, in native byte order.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: on a bad magic number, an unknown type code, or a size that disagrees with the header.

    Example:
        >>> images = read_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((60000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{str(path)!r} is not an IDX file: bad magic number {raw[:4].hex()}")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{str(path)!r}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    count = math.prod(dims)
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(
            f"{str(path)!r}: header gives shape {dims} ({count * dtype.itemsize} bytes of data) but the file holds "
            f"{len(raw) - header} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, name: str) -> Path | None:
    # Some mirrors spell the files "train-images.idx3-ubyte"; accept both spellings, gzipped or not.
    for stem in (name, name.replace("-idx", ".idx")):
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _pixels(images: np.ndarray) -> np.ndarray:
    """Flattens ``(n, h, w)`` images and scales 8-bit pixels to [0, 1]."""
    images = images.reshape(images.shape[0], -1)
    if images.dtype.kind in "iu" or images.max(initial=0) > 1:
        return images / 255.0
    return images.astype(np.float64)


# Where MNIST-like data sets are fetched from: base URLs tried in order (the first that answers with the right bytes
# wins) and the md5 checksum of every gzipped IDX file, as published with the data and used by torchvision.
REMOTE = {
    "mnist": {
        "title": "MNIST",
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
        "files": {
            "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion_mnist": {
        "title": "Fashion-MNIST",
        "mirrors": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "files": {
            "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
}

DATA_DIR_ENV = "KSSL_DATA_DIR"
"""Environment variable naming the cache folder of downloaded data sets (see :func:`data_dir`)."""

DOWNLOAD_TIMEOUT_S = 60.0


class DownloadError(OSError):
    """A data set file could not be fetched (no network, a mirror down, a checksum mismatch). The message is one line:
    the URL that failed, why, and where to put the files by hand."""


def data_dir(directory: str | os.PathLike | None = None) -> Path:
    """The cache folder of downloaded data sets: ``directory`` if given, else ``$KSSL_DATA_DIR`` if set and not
    empty, else ``~/.cache/kernel_ssl_jax`` (``~`` expanded). Creates nothing.

    Raises:
        TypeError: ``directory`` is not None, a string or a path.
    """
    if directory is None:
        directory = os.environ.get(DATA_DIR_ENV) or "~/.cache/kernel_ssl_jax"
    elif not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"data_dir must be None, a str or an os.PathLike, got {type(directory).__name__} {directory!r}")
    return Path(directory).expanduser()


def _short(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def fetch(name: str, directory: str | os.PathLike | None = None, *, mirrors: Sequence[str] | None = None,
          registry: Mapping[str, str] | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Makes sure the files of data set ``name`` are in ``<data_dir(directory)>/<name>/`` and returns that folder.

    A file already there with the right checksum is used as is (no network); otherwise it is downloaded from the
    first mirror that serves it with the right checksum (``pooch``: the download goes to a temporary file that is
    checked before it is moved into place, so a corrupted or partial download is never kept).

    Args:
        name: a key of :data:`REMOTE` (``"mnist"``, ``"fashion_mnist"``).
        directory: the cache folder (default: :func:`data_dir`).
        mirrors: base URLs to try in order, each ending in ``/`` or not (default: ``REMOTE[name]["mirrors"]``).
        registry: ``{file name: "md5:<hex>" or "sha256:<hex>"}`` (default: ``REMOTE[name]["files"]``).
        timeout: seconds to wait for a mirror to answer.

    Raises:
        TypeError: an argument of the wrong type (``mirrors`` a single string, ``registry`` not a mapping, ...).
        ValueError: an unknown ``name``, an empty ``mirrors`` or ``registry``, a non-positive ``timeout``.
        DownloadError: no mirror delivered a file with the right checksum; the one-line message names the URL(s)
            that failed, why, and the folder to put the files in by hand.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
    if name not in REMOTE:
        raise ValueError(f"name {name!r} is not a downloadable data set; known: {', '.join(REMOTE)}")
    remote = REMOTE[name]
    mirrors = remote["mirrors"] if mirrors is None else mirrors
    if isinstance(mirrors, (str, bytes)) or not isinstance(mirrors, Sequence) \
            or not all(isinstance(m, str) for m in mirrors):
        raise TypeError(f"mirrors must be a list of base URLs (str), got {type(mirrors).__name__} {mirrors!r}")
    if not mirrors:
        raise ValueError("mirrors must list at least one base URL, got an empty list")
    registry = remote["files"] if registry is None else registry
    if not isinstance(registry, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in registry.items()):
        raise TypeError(f"registry must map file names (str) to checksums like 'md5:<hex>' (str), got "
                        f"{type(registry).__name__} {registry!r}")
    if not registry:
        raise ValueError("registry must list at least one file, got an empty mapping")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__} {timeout!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    try:
        import pooch
    except ImportError:  # pragma: no cover - pooch is a dependency
        raise DownloadError(f"downloading {name} needs the package pooch (pip install pooch)") from None

    folder = data_dir(directory) / name
    title = remote["title"]
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # no "Downloading ..." lines on stderr: the caller reports progress
    try:
        for fname, known_hash in registry.items():
            failures = []
            for base in mirrors:
                url = base.rstrip("/") + "/" + fname
                try:
                    pooch.retrieve(url, known_hash=known_hash, fname=fname, path=folder,
                                   downloader=pooch.HTTPDownloader(timeout=timeout, progressbar=False))
                    break
                except ValueError as e:  # pooch: the downloaded file's hash differs from the known one
                    failures.append((url, "the download does not match its checksum " + known_hash
                                     + " (corrupted or changed file; it was not kept)" if "hash" in str(e).lower()
                                     else _short(e)))
                except Exception as e:
                    failures.append((url, _short(e)))
            else:
                url, why = failures[0]
                more = f" (and {len(failures) - 1} other mirror(s) failed too)" if len(failures) > 1 else ""
                raise DownloadError(
                    f"could not download {title} file {fname!r} from {url}: {why}{more}; without network, put the "
                    f"files {', '.join(registry)} into {str(folder)!r} by hand (they are checked against their "
                    f"checksums), or point data.path (the directory argument) at a folder holding them")
    finally:
        logger.setLevel(level)
    return folder


def _check_directory(directory) -> None:
    if directory is not None and not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory must be None, a str or an os.PathLike, got {type(directory).__name__} "
                        f"{directory!r}")


def mnist(directory: str | os.PathLike | None = None, seed: int = 0, max_train: int | None = None,
          max_test: int | None = None, *, data_dir: str | os.PathLike | None = None,
          mirrors: Sequence[str] | None = None, registry: Mapping[str, str] | None = None) -> Dataset:
    """MNIST: from local files, or fetched on first use into the cache folder (see :func:`fetch`).

    The standard split (60000 train, 10000 test) is kept; ``max_train``/``max_test`` take seeded stratified subsets.

    Args:
        directory: folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each possibly ``.gz``), or ``mnist.npz`` with
            keys ``x_train``, ``y_train``, ``x_test``, ``y_test``. The IDX files win when both are present. Nothing
            is downloaded then. None (the default): fetch into ``<data_dir>/mnist``.
        seed: seed of the optional subsampling.
        max_train: keep a seeded, stratified subset of at most this many training samples.
        max_test: same for the test set.
        data_dir: the cache folder (default: ``$KSSL_DATA_DIR``, else ``~/.cache/kernel_ssl_jax``).
        mirrors, registry: base URLs and checksums of the download (default: :data:`REMOTE`; see :func:`fetch`).

    Returns:
        A :class:`Dataset` with pixels in [0, 1] (divided by 255) and ``image_shape`` as stored (``(28, 28)``).

    Raises:
        FileNotFoundError: if ``directory`` is missing, or it holds neither ``mnist.npz`` nor all IDX files (the
            message names the first missing file and the directory).
        DownloadError: if ``directory`` is None and the files are neither cached nor downloadable.
        ValueError: if the images are not 3-D or the numbers of images and labels differ.

    Example:
        >>> ds = mnist(max_train=10000)  # doctest: +SKIP
        >>> ds.X_train.shape, ds.image_shape  # doctest: +SKIP
        ((10000, 784), (28, 28))
    """
    _check_directory(directory)
    if directory is None:
        directory = fetch("mnist", data_dir, mirrors=mirrors, registry=registry)
    return _read_mnist_like(directory, "mnist", seed, max_train, max_test)


def fashion_mnist(directory: str | os.PathLike | None = None, seed: int = 0, max_train: int | None = None,
                  max_test: int | None = None, *, data_dir: str | os.PathLike | None = None,
                  mirrors: Sequence[str] | None = None, registry: Mapping[str, str] | None = None) -> Dataset:
    """Fashion-MNIST (Zalando; 28 x 28 grey images of 10 clothing classes, 60000 train, 10000 test), in the MNIST
    file format: from local files (the four IDX files or ``fashion_mnist.npz``), or fetched on first use into
    ``<data_dir>/fashion_mnist``. Arguments, return value and errors as :func:`mnist`.

    Example:
        >>> ds = fashion_mnist(max_train=10000)  # doctest: +SKIP
    """
    _check_directory(directory)
    if directory is None:
        directory = fetch("fashion_mnist", data_dir, mirrors=mirrors, registry=registry)
    return _read_mnist_like(directory, "fashion_mnist", seed, max_train, max_test)


def _read_mnist_like(directory, name: str, seed: int, max_train: int | None, max_test: int | None) -> Dataset:
    title = REMOTE[name]["title"]
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"{title} directory {str(directory)!r} does not exist")
    found = {key: _find_idx(directory, fname) for key, fname in _MNIST_FILES.items()}
    npz = directory / f"{name}.npz"
    if all(found.values()):
        arrays = {key: read_idx(path) for key, path in found.items()}
    elif npz.is_file():
        with np.load(npz, allow_pickle=False) as archive:
            missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in archive]
            if missing:
                raise ValueError(f"{str(npz)!r} lacks the key(s) {', '.join(missing)}")
            arrays = {
                "train_images": archive["x_train"],
                "train_labels": archive["y_train"],
                "test_images": archive["x_test"],
                "test_labels": archive["y_test"],
            }
    else:
        missing = next(fname for key, fname in _MNIST_FILES.items() if found[key] is None)
        raise FileNotFoundError(
            f"{title} file {missing!r} (or {missing}.gz) not found in directory {str(directory)!r}; expected the four "
            f"IDX files {', '.join(_MNIST_FILES.values())} or {npz.name}"
        )
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3:
            raise ValueError(f"{title} {part} images must be 3-D (n, height, width); got shape {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{title} {part} set has {len(images)} images but {len(labels)} labels")
    image_shape = arrays["train_images"].shape[1:]
    y_train, y_test = _encode_labels(arrays["train_labels"], arrays["test_labels"])
    return _dataset(
        _pixels(arrays["train_images"]),
        y_train,
        _pixels(arrays["test_images"]),
        y_test,
        image_shape,
        name,
        max_train,
        max_test,
        seed,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Generic files
# ----------------------------------------------------------------------------------------------------------------------


def _first_key(archive, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in archive), None)


def _read_npz(path: Path):
    with np.load(path, allow_pickle=False) as archive:
        x_key, y_key = _first_key(archive, ("X", "x")), _first_key(archive, ("y", "Y"))
        if x_key is None or y_key is None:
            raise ValueError(
                f"{str(path)!r} must hold features under 'X' or 'x' and labels under 'y'; found keys "
                f"{', '.join(archive.files)}"
            )
        xt_key = _first_key(archive, ("X_test", "x_test"))
        yt_key = _first_key(archive, ("y_test", "Y_test"))
        if (xt_key is None) != (yt_key is None):
            raise ValueError(f"{str(path)!r} must hold both or neither of X_test and y_test")
        test = (archive[xt_key], archive[yt_key]) if xt_key else None
        return archive[x_key], archive[y_key], test


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path: Path):
    with open(path, newline="") as handle:
        first = next(csv.reader(handle), None)
    if not first:
        raise ValueError(f"{str(path)!r} is empty")
    n_columns = len(first)
    if n_columns < 2:
        raise ValueError(f"{str(path)!r} needs at least one feature column and a label column; got {n_columns}")
    # A header is a first row whose features are not all numbers.
    skip = 0 if all(_is_number(value) for value in first[:-1]) else 1
    read = {"delimiter": ",", "skiprows": skip, "quotechar": '"'}
    X = np.loadtxt(path, usecols=range(n_columns - 1), dtype=np.float64, ndmin=2, **read)
    y = np.char.strip(np.loadtxt(path, usecols=n_columns - 1, dtype=str, ndmin=1, **read))
    return X, y, None


def from_file(
    path: str | Path,
    test_size: float = 0.2,
    seed: int = 0,
    max_train: int | None = None,
    max_test: int | None = None,
    image_shape: tuple[int, int] | None = None,
    scale: float | None = None,
) -> Dataset:
    """Features and labels from a ``.npz`` or ``.csv`` file.

    - ``.npz``: features under ``X`` (or ``x``), labels under ``y``; optionally ``X_test``/``y_test`` (or
      ``x_test``), which are then the test set instead of a split. Features of shape ``(n, h, w)`` are flattened and
      give ``image_shape = (h, w)``.
    - ``.csv``: comma-separated, one sample a row, the last column the label, an optional header row.

    Labels may be integers or class names (coded ``0 .. k-1`` in sorted order). Values are kept as stored unless
    ``scale`` is given: a generic file has no known range, and a data-dependent rescaling would mix train and test.

    Args:
        path: the file.
        test_size: test fraction in (0, 1) or test count, when the file has no test set.
        seed: seed of the stratified split and of the optional subsampling.
        max_train: keep a seeded, stratified subset of at most this many training samples.
        max_test: same for the test set.
        image_shape: ``(height, width)`` of flat image features, if they are images.
        scale: divide all features by this number (e.g. 255 for 8-bit pixels), to bring them to [0, 1].

    Returns:
        A :class:`Dataset` named after the file's stem.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: on an unsupported extension, missing keys, mismatched lengths, non-integer numeric labels or
            an ``image_shape`` that does not match the features.

    Example:
        >>> ds = from_file("features.csv", test_size=0.25)  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} not found")
    test_size = _check_test_size(test_size)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        X, y, test = _read_npz(path)
    elif suffix == ".csv":
        X, y, test = _read_csv(path)
    else:
        raise ValueError(f"unsupported data file extension {path.suffix!r} of {str(path)!r}; use .npz or .csv")

    parts = [(X, y)] if test is None else [(X, y), test]
    for i, (features, labels) in enumerate(parts):
        where = "test set" if i else "file"
        if features.ndim < 2 or len(features) != len(np.reshape(labels, -1)):
            raise ValueError(
                f"{str(path)!r}: {where} features must be (n, d) with n labels; got features of shape "
                f"{features.shape} and {np.size(labels)} labels"
            )
    if image_shape is None and X.ndim == 3:
        image_shape = X.shape[1:]
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number or None; got {scale!r}")
    divisor = 1.0 if scale is None else float(scale)
    features = [np.asarray(f, dtype=np.float64).reshape(len(f), -1) / divisor for f, _ in parts]
    labels = _encode_labels(*(label for _, label in parts))
    if test is None:
        X_train, X_test, y_train, y_test = _split(features[0], labels[0], test_size, seed)
    else:
        (X_train, X_test), (y_train, y_test) = features, labels
        if X_test.shape[1] != X_train.shape[1]:
            raise ValueError(f"{str(path)!r}: train has {X_train.shape[1]} features but test has {X_test.shape[1]}")
    return _dataset(X_train, y_train, X_test, y_test, image_shape, path.stem, max_train, max_test, seed)


# ----------------------------------------------------------------------------------------------------------------------
# 2-D toys for plots
# ----------------------------------------------------------------------------------------------------------------------


def two_moons(
    n: int = 400,
    noise: float = 0.1,
    seed: int = 0,
    test_size: float = 0.2,
    max_train: int | None = None,
    max_test: int | None = None,
) -> Dataset:
    """Two interleaved half circles (``sklearn.datasets.make_moons``), scaled isotropically into [0, 1].

    Args:
        n: total number of points.
        noise: standard deviation of the Gaussian noise added to the points.
        seed: seed of the generator, the stratified split and the optional subsampling.
        test_size: test fraction in (0, 1) or test count.
        max_train: keep a seeded, stratified subset of at most this many training samples.
        max_test: same for the test set.

    Returns:
        A :class:`Dataset` with ``d = 2`` and labels in {0, 1}.

    Raises:
        ValueError: if ``n < 4`` or on invalid split arguments.

    Example:
        >>> two_moons(n=100).X_train.shape
        (80, 2)
    """
    n = _check_count("n", n, minimum=4, allow_none=False)
    X, y = sk_datasets.make_moons(n_samples=n, noise=noise, random_state=seed)
    return _toy(X, y, "moons", seed, test_size, max_train, max_test)


def circles(
    n: int = 400,
    noise: float = 0.05,
    factor: float = 0.5,
    seed: int = 0,
    test_size: float = 0.2,
    max_train: int | None = None,
    max_test: int | None = None,
) -> Dataset:
    """Two concentric circles (``sklearn.datasets.make_circles``), scaled isotropically into [0, 1].

    Args:
        n: total number of points.
        noise: standard deviation of the Gaussian noise added to the points.
        factor: radius of the inner circle relative to the outer one, in (0, 1).
        seed: seed of the generator, the stratified split and the optional subsampling.
        test_size: test fraction in (0, 1) or test count.
        max_train: keep a seeded, stratified subset of at most this many training samples.
        max_test: same for the test set.

    Returns:
        A :class:`Dataset` with ``d = 2`` and labels in {0, 1}.

    Raises:
        ValueError: if ``n < 4`` or on invalid arguments.

    Example:
        >>> circles(n=100).X_test.shape
        (20, 2)
    """
    n = _check_count("n", n, minimum=4, allow_none=False)
    X, y = sk_datasets.make_circles(n_samples=n, noise=noise, factor=factor, random_state=seed)
    return _toy(X, y, "circles", seed, test_size, max_train, max_test)


def blobs(
    n: int = 400,
    centers: int = 3,
    std: float = 1.0,
    n_features: int = 2,
    seed: int = 0,
    test_size: float = 0.2,
    max_train: int | None = None,
    max_test: int | None = None,
) -> Dataset:
    """Isotropic Gaussian blobs (``sklearn.datasets.make_blobs``), scaled isotropically into [0, 1].

    Args:
        n: total number of points.
        centers: number of blobs (classes).
        std: standard deviation of each blob.
        n_features: dimension of the points.
        seed: seed of the generator, the stratified split and the optional subsampling.
        test_size: test fraction in (0, 1) or test count.
        max_train: keep a seeded, stratified subset of at most this many training samples.
        max_test: same for the test set.

    Returns:
        A :class:`Dataset` with ``d = n_features`` and labels in ``0 .. centers - 1``.

    Raises:
        ValueError: if ``n < 4`` or on invalid arguments.

    Example:
        >>> blobs(n=100, centers=4).n_classes
        4
    """
    n = _check_count("n", n, minimum=4, allow_none=False)
    centers = _check_count("centers", centers, allow_none=False)
    X, y = sk_datasets.make_blobs(
        n_samples=n, centers=centers, cluster_std=std, n_features=n_features, random_state=seed
    )
    return _toy(X, y, "blobs", seed, test_size, max_train, max_test)


def _toy(X, y, name, seed, test_size, max_train, max_test) -> Dataset:
    # One scalar map for all coordinates: circles stay circles in the plots.
    X_train, X_test, y_train, y_test = _split(_minmax(X), y, _check_test_size(test_size), seed)
    return _dataset(X_train, y_train, X_test, y_test, None, name, max_train, max_test, seed)


# ----------------------------------------------------------------------------------------------------------------------
# Dispatch by name
# ----------------------------------------------------------------------------------------------------------------------

LOADERS = {
    "digits": digits,
    "mnist1d": mnist1d,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "file": from_file,
    "moons": two_moons,
    "circles": circles,
    "blobs": blobs,
}
"""Data set names accepted by :func:`load`, mapped to their loaders."""


def load(name: str, **kwargs) -> Dataset:
    """Loads a data set by name, forwarding keyword arguments to its loader.

    Args:
        name: one of ``"digits"``, ``"mnist1d"``, ``"mnist"`` and ``"fashion_mnist"`` (``directory=`` to read local
            files, else fetched into the cache folder), ``"file"`` (needs ``path=``),
            ``"moons"``, ``"circles"``, ``"blobs"``.
        **kwargs: arguments of the loader, e.g. ``seed``, ``test_size``, ``max_train``.

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: on an unknown name (the message lists the known ones), or whatever the loader raises.

    Example:
        >>> load("digits", seed=1, max_train=500).X_train.shape
        (500, 64)
    """
    loader = LOADERS.get(str(name).lower())
    if loader is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(LOADERS))}")
    return loader(**kwargs)
