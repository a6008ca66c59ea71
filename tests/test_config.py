"""Tests for kernel_ssl_jax/lab/config.py: defaults, TOML round trip, overrides and one-line validation errors."""

import sys
from pathlib import Path

import pytest

from kernel_ssl_jax.lab import config

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def test_default_toml_is_the_builtin_default():
    with open(REPO / "configs" / "default.toml", "rb") as f:
        on_disk = tomllib.load(f)
    assert on_disk == config.defaults()
    # Same keys in the same order, so the file reads like the schema.
    assert {s: list(t) for s, t in on_disk.items()} == {s: list(t) for s, t in config.defaults().items()}


def test_defaults_validate_and_are_fresh_copies():
    cfg = config.defaults()
    assert config.validate(cfg) == cfg
    cfg["ssl"]["objectives"].append("x")
    assert config.defaults()["ssl"]["objectives"] == ["contrastive", "vicreg", "vicreg_hard", "barlow"]
    assert config.load_config() == config.defaults()


@pytest.mark.parametrize("comments", [False, True])
def test_dumps_round_trip(tmp_path, comments):
    cfg = config.load_config(overrides=["ssl.dim=7", "data.name=moons", "views.rotation=0", "views.shift=0",
                                        "kernel.bandwidth=0.5", 'eval.labels_per_class=[1, 3, "all"]',
                                        'output.name="a \\"quoted\\" name"', "ssl.rcond=1e-12"])
    path = tmp_path / "c.toml"
    path.write_text(config.dumps(cfg, comments=comments))
    assert config.load_config(path) == cfg


def test_file_merges_over_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[ssl]\ndim = 5\nlam = 1\n[eval]\nn_draws = 3\n")
    cfg = config.load_config(path, overrides=["ssl.dim=6"])
    assert cfg["ssl"]["dim"] == 6  # --set wins over the file
    assert cfg["ssl"]["lam"] == 1.0 and isinstance(cfg["ssl"]["lam"], float)  # an int where a float is expected
    assert cfg["eval"]["n_draws"] == 3
    assert cfg["data"] == config.defaults()["data"]


@pytest.mark.parametrize("text, expected", [
    ("ssl.dim=20", ("ssl", "dim", 20)),
    ("ssl.lam = 0.5", ("ssl", "lam", 0.5)),
    ("data.name=mnist", ("data", "name", "mnist")),  # not TOML: a plain string
    ('data.name="mnist"', ("data", "name", "mnist")),
    ("views.include_original=true", ("views", "include_original", True)),
    ("eval.labels_per_class=[1, 5, 'all']", ("eval", "labels_per_class", [1, 5, "all"])),
    ("data.path=/tmp/a=b", ("data", "path", "/tmp/a=b")),
])
def test_parse_override(text, expected):
    assert config.parse_override(text) == expected


@pytest.mark.parametrize("text", ["ssl.dim", "dim=3", "ssl.=3", ".dim=3", "a.b.c=1", "=3"])
def test_unparsable_override(text):
    with pytest.raises(config.ConfigError, match="cannot parse --set"):
        config.load_config(overrides=[text])


@pytest.mark.parametrize("override, message", [
    ("ssl.dimm=3", "unknown config key 'ssl.dimm' (from --set 'ssl.dimm=3'); valid keys in [ssl]: beta, dim, lam, "
                   "objectives, rcond"),
    ("sssl.dim=3", "unknown config section [sssl]"),
    ("ssl.dim=ten", "ssl.dim must be an integer, got the string 'ten'"),
    ("ssl.dim=2.5", "ssl.dim must be an integer, got the number 2.5"),
    ("ssl.dim=true", "ssl.dim must be an integer, got the boolean true"),
    ("ssl.dim=0", "ssl.dim must be >= 1"),
    ("ssl.lam=-1", "ssl.lam must be a finite number >= 0"),
    ("ssl.lam=fast", "ssl.lam must be a number, got the string 'fast'"),
    ("views.include_original=1", "views.include_original must be a boolean"),
    ("data.name=imagenet", "data.name must be one of digits, mnist1d, mnist"),
    ("data.name=3", "data.name must be a string, got the integer 3"),
    ("data.test_size=1.5", "data.test_size must be a fraction in (0, 1)"),
    ("ssl.objectives=['simclr']", "ssl.objectives has unknown objective 'simclr'; valid: contrastive, vicreg"),
    ("ssl.objectives=[]", "ssl.objectives must name at least one objective"),
    ("ssl.objectives=contrastive", "ssl.objectives must be an array of strings"),
    ("kernel.name=gauss", "kernel.name must be one of linear"),
    ("kernel.bandwidth=wide", "kernel.bandwidth must be \"median\" or a positive number"),
    ("kernel.bandwidth=-1", "kernel.bandwidth must be \"median\" or a positive number"),
    ("eval.labels_per_class=[0]", "eval.labels_per_class must hold positive integers and/or \"all\""),
    ("eval.labels_per_class=[1, 1]", "eval.labels_per_class names a budget twice"),
    ("eval.probes=['svm']", "eval.probes has unknown probe 'svm'"),
    ("views.hflip=2", "views.hflip must be a probability in [0, 1]"),
    ("views.signal_shift=-2", "views.signal_shift must be a finite number >= 0, got -2.0"),
    ("views.signal_wrap=1", "views.signal_wrap must be a boolean (true or false), got the integer 1"),
    ("views.time_warp_sigma=0", "views.time_warp_sigma must be a finite number > 0, got 0.0"),
    ("graph.normalize=rw", "graph.normalize"),
    ("graph.normalize=1", "graph.normalize"),
])
def test_bad_override_messages(override, message):
    with pytest.raises(config.ConfigError) as info:
        config.load_config(overrides=[override])
    text = str(info.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize("overrides, message", [
    (["data.name=file"], "data.path is required for data.name = 'file'"),
    (["data.name=blobs", "data.path=/tmp"], "data.path is set ('/tmp') but data.name = 'blobs' reads no files"),
    (["data.path=/tmp"], "data.path is set ('/tmp') but data.name = 'digits' reads no files"),
    (["views.n_views=1"], "views.n_views must be >= 2 when ssl.objectives includes barlow"),
])
def test_cross_key_checks(overrides, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.load_config(overrides=overrides)
    config.load_config(overrides=["views.n_views=1", "ssl.objectives=['contrastive']"])  # fine without barlow
    # mnist and fashion_mnist take data.path when given, else they are fetched into the cache folder.
    for name in ("mnist", "fashion_mnist"):
        config.load_config(overrides=[f"data.name={name}"])
        config.load_config(overrides=[f"data.name={name}", "data.path=/tmp"])


def test_file_errors(tmp_path):
    with pytest.raises(config.ConfigError, match="config file .*missing.toml' not found"):
        config.load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[ssl\ndim = 3\n")
    with pytest.raises(config.ConfigError, match="is not valid TOML"):
        config.load_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[ssl]\ndimension = 3\n")
    with pytest.raises(config.ConfigError, match=r"unknown config key 'ssl.dimension' in '.*unknown.toml'; valid keys"):
        config.load_config(unknown)
    not_table = tmp_path / "flat.toml"
    not_table.write_text("ssl = 3\n")
    with pytest.raises(config.ConfigError, match=r"\[ssl\] must be a table"):
        config.load_config(not_table)


def test_views_section_covers_every_augmentation():
    from kernel_ssl_jax import augment

    assert set(augment.CONFIG_KEYS) <= set(config.SCHEMA["views"])


def test_describe_lists_every_key():
    text = config.describe()
    for section, options in config.SCHEMA.items():
        for key in options:
            assert f"{section}.{key} = " in text


def test_graph_normalize_weights_the_built_graph():
    import jax.numpy as jnp
    import numpy as np

    from kernel_ssl_jax import graphs
    from kernel_ssl_jax.lab import experiment

    assert config.defaults()["graph"]["normalize"] == "none"
    views = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)))
    groups = np.repeat(np.arange(4), 2)
    plain = experiment.build_graph(config.load_config(overrides=["graph.knn=2"]), views, groups)
    sym = experiment.build_graph(config.load_config(overrides=["graph.knn=2", "graph.normalize=sym"]), views, groups)
    d = np.asarray(plain).sum(1)
    assert not np.allclose(d, d[0])  # degrees differ, so the weighting changes the graph
    np.testing.assert_allclose(sym, np.asarray(plain) / np.sqrt(np.outer(d, d)), rtol=1e-13)
    np.testing.assert_array_equal(sym, graphs.normalize(plain, kind="sym"))


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_file_loads(path):
    # Every file in configs/ is valid: a run configuration (kssl run --config) or a sweep (kssl sweep).
    from kernel_ssl_jax.lab import sweep

    if path.name.startswith("sweep_"):
        assert sweep.load_sweep(path).points
    else:
        assert config.load_config(path)["data"]["name"]
