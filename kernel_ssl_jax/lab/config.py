"""The configuration of an experiment: schema, built-in defaults, TOML loading, `--set` overrides and validation.

A configuration is a plain nested dict `{section: {key: value}}` of TOML values (strings, integers, floats, booleans
and arrays), so it round-trips through TOML and JSON unchanged. The schema below is the single source of truth:
its defaults ARE the default configuration (`configs/default.toml` at the top of the repository holds the same
content, with comments; a test keeps the two equal), and every key a file or an override may set is listed in it.

Sections:
  [data]    which data set and how it is split (`data.load`);
  [views]   augmented views of the unlabelled training samples (`augment.make_views`, `augment.from_config`);
  [graph]   the relationship graph: view cliques, plus an optional k-NN graph over the views (`graphs`);
  [kernel]  the base kernel (`kernels.by_name`); `bandwidth = "median"` uses the median distance between views;
  [ssl]     the objectives and their shared hyper-parameters (`spectral.solve_gram`);
  [eval]    the few-label protocol (`evaluate`) and the peer methods of `kssl run` (`peers`);
  [select]  model selection without the test split (`select`): a labelled validation subset of the TRAINING split
            and the grid of hyper-parameters chosen on it, per method and label budget (`kssl run --select`);
  [output]  where run folders go.

Errors are `ConfigError` (a `ValueError`) with a one-line message that names the key, e.g.
`unknown key 'ssl.dimm'; valid keys in [ssl]: beta, dim, lam, objectives, rcond` or
`ssl.dim must be an integer, got the string 'ten'`.

Example:
  >>> cfg = load_config(overrides=["ssl.dim=20", "eval.n_draws=3"])
  >>> cfg["ssl"]["dim"], cfg["kernel"]["bandwidth"]
  (20, 'median')
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import numbers
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from kernel_ssl_jax.lab import data as _data
from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import objectives as _objectives

__all__ = [
    "ConfigError",
    "Option",
    "SCHEMA",
    "defaults",
    "dumps",
    "load_config",
    "parse_override",
    "validate",
    "describe",
    "PEERS",
]

FEATURE_PROBES = ("knn", "ridge", "logistic", "kernel_ridge")
"""Probes of the learnt representation: cosine k-NN, ridge and logistic on `f(x)`, kernel ridge with `k*`."""

PEERS = ("label_spreading", "laplacian_eigenmaps", "laplacian_eigenmaps_knn", "kernel_pca")
"""Reference methods of `kssl run` (`kernel_ssl_jax.lab.peers`), each selected by the protocol of `[select]`."""

DATA_NEEDS_PATH = {"file": "the .npz or .csv file"}
# Data sets that read data.path when it is set; with it empty, mnist and fashion_mnist are fetched into the cache
# folder ($KSSL_DATA_DIR, else ~/.cache/kernel_ssl_jax) on first use.
DATA_TAKES_PATH = {"mnist": "a directory holding the four MNIST IDX files or mnist.npz",
                   "fashion_mnist": "a directory holding the four Fashion-MNIST IDX files or fashion_mnist.npz",
                   **DATA_NEEDS_PATH}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line and names the offending key."""


@dataclasses.dataclass(frozen=True)
class Option:
    """One configuration key.

    Attributes:
      kind: the value type: "int", "float", "str", "bool", or a composite handled by `check`.
      default: the built-in default (also the content of `configs/default.toml`).
      help: one line for `kssl run --help`.
      check: optional `check(value) -> value` that normalises a value of the right type or raises `ConfigError`
        with a message that does not repeat the key (the caller prefixes it).
    """

    kind: str
    default: Any
    help: str
    check: Callable[[Any], Any] | None = None


# --------------------------------------------------------------------------------------------------------------------
# Value checks (the type is checked first, by `_coerce`)


def describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, numbers.Integral):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, list):
        return f"the array {json.dumps(value, default=str)}"
    if isinstance(value, dict):
        return "a table"
    return f"{type(value).__name__} {value!r}"


def _at_least(low: float, strict: bool = False) -> Callable[[Any], Any]:
    def check(v):
        if not math.isfinite(v) or v < low or (strict and v == low):
            raise ConfigError(f"must be a finite number {'>' if strict else '>='} {low:g}, got {v!r}")
        return v

    return check


def _open_unit(v):
    if not 0.0 < v < 1.0:
        raise ConfigError(f"must be in the open interval (0, 1), got {v!r}")
    return v


def _probability(v):
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"must be a probability in [0, 1], got {v!r}")
    return v


def _choice(choices: Iterable[str]) -> Callable[[str], str]:
    choices = tuple(choices)

    def check(v):
        if v not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}; got {v!r}")
        return v

    return check


def _subset(choices: Iterable[str], what: str) -> Callable[[list], list]:
    choices = tuple(choices)

    def check(v):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"must be an array of {what} names, got {describe_value(v)}")
        if not v:
            raise ConfigError(f"must name at least one {what}")
        for x in v:
            if x not in choices:
                raise ConfigError(f"has unknown {what} {x!r}; valid: {', '.join(choices)}")
        if len(set(v)) != len(v):
            raise ConfigError(f"names a {what} twice: {v}")
        return list(v)

    return check


def _test_size(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"must be a fraction in (0, 1) or a count >= 1, got {describe_value(v)}")
    if isinstance(v, int) and v >= 1:
        return v
    if isinstance(v, float) and 0.0 < v < 1.0:
        return v
    raise ConfigError(f"must be a fraction in (0, 1) or an integer count >= 1, got {v!r}")


def _bandwidth(v):
    if v == "median":
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ConfigError(f"must be \"median\" or a positive number, got {describe_value(v)}")
    return float(v)


def _budgets(v):
    if not isinstance(v, list) or not v:
        raise ConfigError(f"must be a non-empty array of positive integers and/or \"all\", got {describe_value(v)}")
    for x in v:
        ok = x == "all" or (isinstance(x, int) and not isinstance(x, bool) and x >= 1)
        if not ok:
            raise ConfigError(f"must hold positive integers and/or \"all\"; got {describe_value(x)}")
    keys = [str(x) for x in v]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"names a budget twice: {v}")
    return list(v)


def _list_of(kind: str, check: Callable[[Any], Any], *, allow_empty: bool = False, unique: bool = True):
    """An array whose items are of `kind` ("int" or "float") and each pass `check` (e.g. `_at_least(0.0)`)."""

    def check_list(v):
        what = "integers" if kind == "int" else "numbers"
        if not isinstance(v, list):
            raise ConfigError(f"must be an array of {what}, got {describe_value(v)}")
        if not v and not allow_empty:
            raise ConfigError(f"must be a non-empty array of {what}, got []")
        out = []
        for x in v:
            is_int = isinstance(x, int) and not isinstance(x, bool)
            if not (is_int or (kind == "float" and isinstance(x, float))):
                raise ConfigError(f"must hold only {what}; got {describe_value(x)} in {describe_value(v)}")
            try:
                out.append(check(float(x) if kind == "float" else x))
            except ConfigError as e:
                raise ConfigError(f"item {x!r}: {e}") from None
        if unique and len(set(out)) != len(out):
            raise ConfigError(f"names a value twice: {v}")
        return out

    return check_list


def _optional_subset(choices: Iterable[str], what: str) -> Callable[[list], list]:
    """As `_subset`, but the empty array is allowed (none)."""
    check = _subset(choices, what)
    return lambda v: [] if isinstance(v, list) and not v else check(v)


def _nonneg_int(v):
    if v < 0:
        raise ConfigError(f"must be >= 0, got {v}")
    return v


def _pos_int(v):
    if v < 1:
        raise ConfigError(f"must be >= 1, got {v}")
    return v


# --------------------------------------------------------------------------------------------------------------------
# The schema: defaults, types and one line of help per key


SCHEMA: dict[str, dict[str, Option]] = {
    "data": {
        "name": Option("str", "digits", "data set: " + ", ".join(_data.LOADERS) + " (digits is bundled offline)",
                       _choice(_data.LOADERS)),
        "path": Option("str", "", "directory (mnist, fashion_mnist: local files; empty: download into $KSSL_DATA_DIR "
                                  "or ~/.cache/kernel_ssl_jax on first use) or .npz/.csv file (file) to read; empty "
                                  "for the others"),
        "test_size": Option("number", 0.2,
                            "held-out test fraction in (0, 1), or a count (unused by mnist, fashion_mnist)",
                            _test_size),
        "seed": Option("int", 0, "seed of the train/test split and of subsampling"),
        "max_train": Option("int", 0, "keep a seeded stratified subset of this many training samples (0: all)",
                            _nonneg_int),
        "max_test": Option("int", 0, "same for the test samples (0: all)", _nonneg_int),
    },
    "views": {
        "n_views": Option("int", 2, "augmented views per unlabelled training sample (barlow needs >= 2)", _pos_int),
        "include_original": Option("bool", False, "make the first view of each sample the untouched sample"),
        "transductive": Option("bool", False, "also make views of the test INPUTS (never their labels): the "
                               "unlabelled pool is train + test, as for the transductive peers"),
        "seed": Option("int", 0, "seed of the augmentations"),
        "rotation": Option("float", 12.0, "largest rotation angle in degrees (images)", _at_least(0.0)),
        "shift": Option("float", 0.5, "largest translation per axis in pixels, sub-pixel allowed (images)",
                        _at_least(0.0)),
        "scale": Option("float", 0.0, "zoom strength s: zoom factors in [1/(1+s), 1+s] (images)", _at_least(0.0)),
        "elastic": Option("float", 0.0, "largest displacement in pixels of an elastic deformation (images; 0: none)",
                          _at_least(0.0)),
        "elastic_sigma": Option("float", 1.0, "smoothness in pixels of the elastic deformation's field",
                                _at_least(0.0, strict=True)),
        "noise": Option("float", 0.03, "standard deviation of additive Gaussian noise", _at_least(0.0)),
        "cutout": Option("int", 0, "side in pixels of a random erased square, 0 for none (images)", _nonneg_int),
        "hflip": Option("float", 0.0, "probability of a horizontal flip (images; off for digits)", _probability),
        "mask": Option("float", 0.0, "probability of zeroing each feature", _probability),
        "amplitude": Option("float", 0.0, "amplitude strength s: scale about the example's mean by a factor in "
                            "[1/(1+s), 1+s]", _at_least(0.0)),
        "signal_shift": Option("float", 0.0, "largest shift in samples, sub-sample allowed (signals: data sets "
                               "without an image shape)", _at_least(0.0)),
        "signal_wrap": Option("bool", True, "signal shift/time scale wrap around (false: zeros come in)"),
        "time_scale": Option("float", 0.0, "time-scale strength s: stretch/compress about the centre by factors in "
                             "[1/(1+s), 1+s] (signals)", _at_least(0.0)),
        "time_warp": Option("float", 0.0, "largest log-rate of a smooth monotone time warp (signals; 0: none)",
                            _at_least(0.0)),
        "time_warp_sigma": Option("float", 4.0, "smoothness in samples of the time warp's field",
                                  _at_least(0.0, strict=True)),
        "slope": Option("float", 0.0, "largest end-to-end rise of an added linear trend (signals; 0: none)",
                        _at_least(0.0)),
        "corr_noise": Option("float", 0.0, "std of additive noise correlated along the signal (signals; 0: none)",
                             _at_least(0.0)),
        "corr_noise_sigma": Option("float", 2.0, "correlation length in samples of the correlated noise",
                                   _at_least(0.0, strict=True)),
    },
    "graph": {
        "knn": Option("int", 10, "add a k-nearest-neighbour graph over the views to the view cliques (0: cliques only)",
                      _nonneg_int),
        "mutual": Option("bool", False, "keep a k-NN edge only if each end is among the other's neighbours"),
        "cliques": Option("bool", True, "join the views of each sample (false: the k-NN graph alone, an ablation)"),
        "clique_weight": Option("float", 1.0, "weight of the view-clique edges (self-loops included); k-NN edges "
                                "between views of different samples weigh 1", _at_least(0.0, strict=True)),
        "normalize": Option("str", "none", "edge weighting of the graph (graphs.normalize): none, or sym for "
                            "D^-1/2 A D^-1/2 (the weighting of the normalised Laplacian)",
                            _choice(_graphs.NORMALIZATIONS)),
    },
    "kernel": {
        "name": Option("str", "rbf", "base kernel: " + ", ".join(_kernels.KERNELS), _choice(_kernels.KERNELS)),
        "bandwidth": Option("float|str", "median",
                            "rbf/laplacian bandwidth: \"median\" (median distance between views) or a number",
                            _bandwidth),
        "degree": Option("int", 2, "polynomial degree", _pos_int),
        "scale": Option("float", 1.0, "polynomial scale", _at_least(0.0)),
        "offset": Option("float", 1.0, "polynomial offset", _at_least(0.0)),
        "depth": Option("int", 1, "hidden layers of the nngp/ntk network; convolutional layers of cnngp/cntk (>= 1)",
                        _nonneg_int),
        "w_var": Option("float", 2.0, "weight variance of the nngp/ntk/cnngp/cntk network",
                        _at_least(0.0, strict=True)),
        "b_var": Option("float", 0.0, "bias variance of the nngp/ntk/cnngp/cntk network", _at_least(0.0)),
        "readout": Option("str", "flatten", "cnngp/cntk readout: flatten (O(P) per pair of images) or gap (global "
                          "average pooling, O(P^2))", _choice(_kernels.READOUTS)),
    },
    "ssl": {
        "objectives": Option("list[str]", list(_objectives.OBJECTIVES), "objectives to fit (closed forms), from: "
                             + ", ".join(_objectives.OBJECTIVES), _subset(_objectives.OBJECTIVES, "objective")),
        "dim": Option("int", 20, "output dimension M of the representation", _pos_int),
        "lam": Option("float", 0.1, "RKHS-norm penalty on the map, in units of the Gram's eigenvalues", _at_least(0.0)),
        "beta": Option("float", 1.0, "invariance weight of vicreg", _at_least(0.0)),
        "rcond": Option("float", 1e-5, "drop eigenvalues of the Gram below rcond * largest (a spectral cut-off; "
                        "also what makes the run fast)", _at_least(0.0)),
    },
    "eval": {
        "labels_per_class": Option("list[int|str]", [1, 2, 5, 10, "all"],
                                   "label budgets: labelled training samples per class, or \"all\"", _budgets),
        "n_draws": Option("int", 8, "seeded label draws per budget (the same draws for every method)", _pos_int),
        "probes": Option("list[str]", ["knn", "ridge", "kernel_ridge"], "probes of each representation, from: "
                         + ", ".join(FEATURE_PROBES), _subset(FEATURE_PROBES, "probe")),
        "main_probe": Option("str", "knn", "the probe reported as the objective's own row (always evaluated)",
                             _choice(FEATURE_PROBES)),
        "knn_k": Option("int", 1, "neighbours of the cosine k-NN probe", _pos_int),
        "ridge_reg": Option("float", 0.1, "relative ridge strength of the ridge probe", _at_least(0.0)),
        "kernel_ridge_reg": Option("float", 0.1, "relative ridge strength of kernel ridge (k* and base kernel)",
                                   _at_least(0.0)),
        "seed": Option("int", 0, "seed of the label draws"),
        "heatmap_per_class": Option("int", 20, "test samples per class in the kernel heat maps", _pos_int),
        "peers": Option("list[str]", list(PEERS), "reference methods evaluated with the same label draws (empty: "
                        "none), from: " + ", ".join(PEERS) + "; label_spreading and laplacian_eigenmaps(_knn) "
                        "are transductive (they see the unlabelled test inputs)", _optional_subset(PEERS, "peer")),
    },
    "select": {
        "enabled": Option("bool", False, "choose hyper-parameters per method and label budget on a labelled "
                          "validation subset of the training split (never the test split); also kssl run --select"),
        "val_per_class": Option("int", 5, "labelled validation samples per class, drawn from the training split, "
                                "held out of the selection draws (extra labels: state them)", _pos_int),
        "n_draws": Option("int", 16, "seeded label draws from the rest of the training split per budget; the "
                          "validation accuracy is averaged over them", _pos_int),
        "seed": Option("int", 0, "seed of the validation subset and of the selection draws"),
        "lam": Option("list[float]", [0.01, 0.1, 1.0], "grid of ssl.lam", _list_of("float", _at_least(0.0))),
        "dim": Option("list[int]", [10, 20, 40], "grid of ssl.dim (also laplacian_eigenmaps, kernel_pca)",
                      _list_of("int", _pos_int)),
        "beta": Option("list[float]", [1.0], "grid of ssl.beta (vicreg)", _list_of("float", _at_least(0.0))),
        "knn": Option("list[int]", [10], "grid of graph.knn (also laplacian_eigenmaps; label_spreading's "
                      "n_neighbors)", _list_of("int", _nonneg_int)),
        "kernel": Option("list[str]", [], "grid of kernel.name, from: " + ", ".join(_kernels.KERNELS) + " (each "
                         "kernel costs one Gram and one eigendecomposition; every other [kernel] key applies to "
                         "each; empty: kernel.name alone)", _optional_subset(_kernels.KERNELS, "kernel")),
        "clique_weight": Option("list[float]", [], "grid of graph.clique_weight (also laplacian_eigenmaps; each "
                                "weight costs one target per kernel); empty: graph.clique_weight alone",
                                _list_of("float", _at_least(0.0, strict=True), allow_empty=True)),
        "bandwidth_scale": Option("list[float]", [1.0], "grid of factors on the kernel bandwidth (rbf/laplacian; "
                                  "each factor costs one Gram and one eigendecomposition)",
                                  _list_of("float", _at_least(0.0, strict=True))),
        "rcond": Option("list[float]", [], "grid of spectral cut-offs of kernel SSL, each >= ssl.rcond (truncations "
                        "of the one decomposition made at ssl.rcond; empty: ssl.rcond alone)",
                        _list_of("float", _at_least(0.0), allow_empty=True)),
        "extension_ridge": Option("list[float]", [], "grid of the ridge of kernel SSL's kernel-ridge out-of-sample "
                                  "extension (spectral.extend: new points get k_X(x)^T (K + ridge I)^-1 Z of the "
                                  "training views' Z; 0: the solution itself); empty: no extension",
                                  _list_of("float", _at_least(0.0), allow_empty=True)),
        "alpha": Option("list[float]", [0.2, 0.5, 0.8], "grid of label_spreading's clamping factor alpha in (0, 1)",
                        _list_of("float", _open_unit)),
        "reg": Option("list[float]", [0.01, 0.1, 1.0], "grid of eval.kernel_ridge_reg for the base kernel",
                      _list_of("float", _at_least(0.0))),
    },
    "output": {
        "dir": Option("str", "runs", "directory under which each run makes its folder <timestamp>-<name>"),
        "name": Option("str", "", "name of the run folder after the timestamp (empty: the data set name)"),
        "figures": Option("bool", True, "write PNG figures"),
    },
}


def defaults() -> dict[str, dict[str, Any]]:
    """The built-in default configuration (a fresh deep copy)."""
    return {section: {key: copy.deepcopy(opt.default) for key, opt in options.items()}
            for section, options in SCHEMA.items()}


# --------------------------------------------------------------------------------------------------------------------
# Types


_KIND_NAMES = {
    "int": "an integer",
    "float": "a number",
    "number": "a number",
    "str": "a string",
    "bool": "a boolean (true or false)",
    "float|str": "a number or a string",
    "list[str]": "an array of strings",
    "list[int|str]": "an array of integers and strings",
    "list[int]": "an array of integers",
    "list[float]": "an array of numbers",
}


def _coerce(kind: str, value: Any) -> Any:
    """Checks the TOML type of `value` against `kind`; returns it (ints are accepted where numbers are)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok = {
        "int": is_int,
        "float": is_int or isinstance(value, float),
        "number": is_int or isinstance(value, float),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "float|str": is_int or isinstance(value, (float, str)),
        "list[str]": isinstance(value, list),
        "list[int|str]": isinstance(value, list),
        "list[int]": isinstance(value, list),
        "list[float]": isinstance(value, list),
    }[kind]
    if not ok:
        raise ConfigError(f"must be {_KIND_NAMES[kind]}, got {describe_value(value)}")
    if kind == "float":
        return float(value)
    return value


def check_key(section: str, key: str, value: Any, where: str = "") -> Any:
    opt = SCHEMA[section][key]
    try:
        value = _coerce(opt.kind, value)
        return opt.check(value) if opt.check else value
    except ConfigError as e:
        raise ConfigError(f"{section}.{key} {e}{where}") from None


def _unknown_section(section: str, where: str) -> ConfigError:
    return ConfigError(f"unknown config section [{section}]{where}; valid sections: {', '.join(SCHEMA)}")


def _unknown_key(section: str, key: str, where: str) -> ConfigError:
    return ConfigError(f"unknown config key '{section}.{key}'{where}; valid keys in [{section}]: "
                       f"{', '.join(sorted(SCHEMA[section]))}")


def merge(base: dict, update: Mapping, where: str) -> dict:
    for section, table in update.items():
        if section not in SCHEMA:
            raise _unknown_section(section, where)
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{section}] must be a table of keys{where}, got {describe_value(table)}")
        for key, value in table.items():
            if key not in SCHEMA[section]:
                raise _unknown_key(section, key, where)
            base[section][key] = check_key(section, key, value, where)
    return base


def validate(config: Mapping) -> dict[str, dict[str, Any]]:
    """Checks a whole configuration: every section and key known, every value of the right type and range.

    Missing keys are filled from the defaults. Checks that involve two keys are done here too (barlow needs two
    views; file needs `data.path`, only mnist, fashion_mnist and file may set it).

    Returns:
      A new, normalised configuration dict.

    Raises:
      ConfigError: one line naming the offending key.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a configuration must be a table of sections, got {describe_value(config)}")
    cfg = merge(defaults(), config, "")
    name = cfg["data"]["name"]
    if name in DATA_NEEDS_PATH and not cfg["data"]["path"]:
        raise ConfigError(f"data.path is required for data.name = {name!r}: {DATA_NEEDS_PATH[name]}")
    if name not in DATA_TAKES_PATH and cfg["data"]["path"]:
        raise ConfigError(f"data.path is set ({cfg['data']['path']!r}) but data.name = {name!r} reads no files; "
                          f"use data.name = {', '.join(DATA_TAKES_PATH)}")
    if not cfg["graph"]["cliques"] and cfg["graph"]["knn"] == 0:
        raise ConfigError("graph.cliques = false needs graph.knn > 0 (otherwise the graph has no edges)")
    if cfg["select"]["enabled"] and not cfg["graph"]["cliques"] and 0 in cfg["select"]["knn"]:
        raise ConfigError(f"select.knn = {cfg['select']['knn']} holds 0 but graph.cliques = false "
                          "(a graph without edges)")
    if any(r < cfg["ssl"]["rcond"] for r in cfg["select"]["rcond"]):
        raise ConfigError(f"select.rcond = {cfg['select']['rcond']} holds a cut-off below ssl.rcond = "
                          f"{cfg['ssl']['rcond']:g} (the decomposition keeps only the eigenpairs above ssl.rcond)")
    if "barlow" in cfg["ssl"]["objectives"] and cfg["views"]["n_views"] < 2:
        raise ConfigError("views.n_views must be >= 2 when ssl.objectives includes barlow (it pairs views)")
    return cfg


# --------------------------------------------------------------------------------------------------------------------
# Overrides, files


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parses one `--set` override `section.key=value`.

    The value is read as a TOML value (`3`, `0.1`, `true`, `[1, 5, "all"]`, `"text"`); anything that is not valid
    TOML is taken as a plain string, so `data.name=mnist` needs no quotes.

    Returns:
      `(section, key, value)`, not yet validated.

    Raises:
      ConfigError: if `text` is not of the form `section.key=value`.

    Example:
      >>> parse_override("eval.labels_per_class=[1, 5, 'all']")
      ('eval', 'labels_per_class', [1, 5, 'all'])
    """
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"cannot parse --set {text!r}: expected section.key=value, e.g. ssl.dim=10")
    lhs, rhs = text.split("=", 1)
    parts = lhs.strip().split(".")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ConfigError(f"cannot parse --set {text!r}: the key must be section.key (e.g. ssl.dim), got {lhs!r}")
    section, key = (p.strip() for p in parts)
    rhs = rhs.strip()
    try:
        value = tomllib.loads(f"v = {rhs}")["v"]
    except tomllib.TOMLDecodeError:
        value = rhs
    return section, key, value


def read_toml(path: str | Path) -> dict:
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a directory; expected a TOML file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text: {e}") from None


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Reads a TOML configuration, merges it over the defaults, applies `--set` overrides and validates the result.

    Args:
      path: a TOML file, or None for the built-in defaults. It may set any subset of the keys.
      overrides: strings `section.key=value` (see `parse_override`), applied in order after the file.

    Returns:
      The validated configuration dict.

    Raises:
      ConfigError: a missing or malformed file, an unknown section or key, a wrong type or value, an unparsable
        override; one line naming the key.
    """
    cfg = defaults()
    if path is not None:
        cfg = merge(cfg, read_toml(path), f" in {str(path)!r}")
    for text in overrides:
        section, key, value = parse_override(text)
        where = f" (from --set {text!r})"
        if section not in SCHEMA:
            raise _unknown_section(section, where)
        if key not in SCHEMA[section]:
            raise _unknown_key(section, key, where)
        cfg[section][key] = check_key(section, key, value, where)
    return validate(cfg)


# --------------------------------------------------------------------------------------------------------------------
# Writing


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a TOML value")


def dumps(config: Mapping, comments: bool = False) -> str:
    """Writes a configuration as TOML (`load_config` reads it back to the same dict).

    Args:
      config: a configuration dict.
      comments: add each key's help line as a comment.
    """
    lines = []
    for section, table in config.items():
        if lines:
            lines.append("")
        lines.append(f"[{section}]")
        for key, value in table.items():
            line = f"{key} = {_toml_value(value)}"
            if comments and section in SCHEMA and key in SCHEMA[section]:
                line = f"{line:<40} # {SCHEMA[section][key].help}"
            lines.append(line)
    return "\n".join(lines) + "\n"


def describe() -> str:
    """One line per configuration key with its default and help (for `kssl run --help`)."""
    lines = []
    for section, options in SCHEMA.items():
        for key, opt in options.items():
            lines.append(f"  {section}.{key} = {_toml_value(opt.default)}\n      {opt.help}")
    return "\n".join(lines)
