"""Tests of the MNIST / Fashion-MNIST download (kernel_ssl_jax/lab/data.py: `fetch`, `mnist`, `fashion_mnist`).

Nothing leaves the machine: each test makes tiny IDX files, serves them from a local `http.server` on 127.0.0.1 in a
thread, and passes the mirror URL and the files' md5 checksums (computed here) to the loaders.
"""

import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import socket
import struct
import threading

import numpy as np
import pytest

from kernel_ssl_jax.lab import cli, data

FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"]


def _idx_gz(array: np.ndarray) -> bytes:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(header + array.astype(np.uint8).tobytes())
    return buf.getvalue()


def _tiny_files(seed=0, n_train=20, n_test=10):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(n_test) % 10,
    }
    return {name: _idx_gz(a) for name, a in arrays.items()}, arrays


def _md5(blob: bytes) -> str:
    return "md5:" + hashlib.md5(blob).hexdigest()


class _Server:
    """Serves `files` (name -> bytes) on 127.0.0.1; counts requests."""

    def __init__(self, files):
        self.files = dict(files)
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(name)
                blob = server.files.get(name)
                if blob is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served():
    blobs, arrays = _tiny_files()
    server = _Server(blobs)
    yield server, {n: _md5(b) for n, b in blobs.items()}, arrays
    server.close()


def _closed_port_url() -> str:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_first_use_downloads_and_verifies_then_reads_the_cache(tmp_path, served, name):
    server, registry, arrays = served
    loader = functools.partial(data.load, name, data_dir=tmp_path / "cache", registry=registry)
    ds = loader(mirrors=[server.url])
    assert sorted(server.requests) == sorted(FILES)
    assert sorted(p.name for p in (tmp_path / "cache" / name).iterdir()) == sorted(FILES)  # no temporary left
    assert ds.name == name and ds.image_shape == (28, 28)
    np.testing.assert_array_equal(ds.X_train, arrays["train-images-idx3-ubyte.gz"].reshape(20, -1) / 255.0)
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    # Second use: the cache, no network (the only mirror is now closed).
    server.close()
    again = loader(mirrors=[_closed_port_url()], max_train=10)
    assert again.X_train.shape == (10, 784) and len(server.requests) == 4


def test_corrupted_download_is_rejected_and_not_kept(tmp_path, served):
    server, registry, _ = served
    good = server.files["t10k-images-idx3-ubyte.gz"]
    server.files["t10k-images-idx3-ubyte.gz"] = good[:-10] + b"0123456789"
    with pytest.raises(data.DownloadError) as info:
        data.mnist(data_dir=tmp_path, mirrors=[server.url], registry=registry)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{server.url}t10k-images-idx3-ubyte.gz" in msg and "checksum" in msg
    assert registry["t10k-images-idx3-ubyte.gz"] in msg and str(tmp_path / "mnist") in msg
    assert "t10k-images-idx3-ubyte.gz" not in [p.name for p in (tmp_path / "mnist").iterdir()]
    assert all(not p.name.startswith("tmp") for p in (tmp_path / "mnist").iterdir())
    # A second mirror with the right bytes is used after the bad one.
    good_server = _Server({"t10k-images-idx3-ubyte.gz": good})
    try:
        ds = data.mnist(data_dir=tmp_path, mirrors=[server.url, good_server.url], registry=registry)
    finally:
        good_server.close()
    assert ds.X_test.shape == (10, 784) and good_server.requests == ["t10k-images-idx3-ubyte.gz"]


def test_offline_is_a_one_line_error_naming_the_url_and_the_folder(tmp_path, monkeypatch):
    url = _closed_port_url()
    monkeypatch.setenv("KSSL_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(data.DownloadError) as info:
        data.fashion_mnist(mirrors=[url, url + "second/"])
    msg = str(info.value)
    assert "\n" not in msg
    assert f"could not download Fashion-MNIST file 'train-images-idx3-ubyte.gz' from {url}" in msg
    assert "1 other mirror(s) failed too" in msg
    assert f"put the files {', '.join(FILES)} into {str(tmp_path / 'cache' / 'fashion_mnist')!r} by hand" in msg
    assert isinstance(info.value, OSError)


def test_cli_offline_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    url = _closed_port_url()
    monkeypatch.setenv("KSSL_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(data.REMOTE, "mnist", dict(data.REMOTE["mnist"], mirrors=[url]))
    assert cli.main(["run", "--set", "data.name=mnist", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kssl: error: data.name = 'mnist': could not download MNIST")
    assert url in err and "by hand" in err
    assert not (tmp_path / "runs").exists()


def test_data_dir_argument_then_environment_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("KSSL_DATA_DIR", raising=False)
    assert str(data.data_dir()).endswith(".cache/kernel_ssl_jax") and "~" not in str(data.data_dir())
    monkeypatch.setenv("KSSL_DATA_DIR", str(tmp_path / "env"))
    assert data.data_dir() == tmp_path / "env"
    assert data.data_dir(tmp_path / "arg") == tmp_path / "arg"


@pytest.mark.parametrize("kwargs, error, message", [
    ({"name": "cifar"}, ValueError, "name 'cifar' is not a downloadable data set; known: mnist, fashion_mnist"),
    ({"name": 3}, TypeError, "name must be a str, got int 3"),
    ({"name": "mnist", "mirrors": "http://x/"}, TypeError, "mirrors must be a list of base URLs (str), got str"),
    ({"name": "mnist", "mirrors": []}, ValueError, "mirrors must list at least one base URL"),
    ({"name": "mnist", "registry": ["a"]}, TypeError, "registry must map file names (str) to checksums"),
    ({"name": "mnist", "registry": {}}, ValueError, "registry must list at least one file"),
    ({"name": "mnist", "timeout": 0}, ValueError, "timeout must be > 0 seconds, got 0"),
    ({"name": "mnist", "directory": 5}, TypeError, "data_dir must be None, a str or an os.PathLike, got int 5"),
])
def test_fetch_argument_errors(kwargs, error, message):
    with pytest.raises(error) as info:
        data.fetch(**kwargs)
    assert message in str(info.value)


def test_loader_directory_type_error():
    with pytest.raises(TypeError, match="directory must be None, a str or an os.PathLike, got int 7"):
        data.mnist(7)


def test_known_checksums_are_the_published_ones():
    # The md5 sums of the original gzipped IDX files (as listed by torchvision's datasets/mnist.py).
    assert data.REMOTE["mnist"]["files"]["train-images-idx3-ubyte.gz"] == "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert data.REMOTE["fashion_mnist"]["files"]["t10k-labels-idx1-ubyte.gz"] == "md5:bb300cfdad3c16e7a12a480ee83cd310"
    for remote in data.REMOTE.values():
        assert sorted(remote["files"]) == sorted(FILES)
        assert all(v.startswith("md5:") and len(v) == 36 for v in remote["files"].values())
        assert isinstance(remote["mirrors"], list) and remote["mirrors"]


def test_config_data_name_fetches_through_experiment_load_data(tmp_path, served, monkeypatch):
    from kernel_ssl_jax.lab import config, experiment

    server, registry, arrays = served
    monkeypatch.setenv("KSSL_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(data.REMOTE, "fashion_mnist",
                        dict(data.REMOTE["fashion_mnist"], mirrors=["http://127.0.0.1:9/nothing/", server.url],
                             files=registry))
    cfg = config.load_config(overrides=["data.name=fashion_mnist", "eval.labels_per_class=[1]"])
    ds = experiment.load_data(cfg)
    assert ds.name == "fashion_mnist" and ds.X_train.shape == (20, 784) and ds.image_shape == (28, 28)
    assert (tmp_path / "cache" / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz").is_file()
