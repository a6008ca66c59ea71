"""The main job (`kssl run`): learn kernel-SSL representations from unlabelled views, evaluate them with few labels.

The pipeline, one stage per function so that other jobs (comparisons, sweeps, the study in `experiments/`) can reuse
the expensive parts:

1. `load_data`: the data set of `[data]`; its training samples are the unlabelled pool (labels unused until 6).
2. `build_views`: `n_views` augmented views of every training sample (`augment.make_views`).
3. `build_graph`: view cliques (`graphs.from_groups`), plus a k-NN graph over the views when `graph.knn > 0`,
   weighted by `graph.normalize` (`graphs.normalize`).
4. `build_kernel` and `decompose`: the base kernel (RBF at the median distance between views by default), ONE Gram
   `K` of the views and ONE eigendecomposition, shared by all objectives. Eigenvalues at or below
   `ssl.rcond * max` are dropped (SPEC.md §3) and the kept eigenpairs are compacted to an `(N, r)` basis, so each
   objective costs O(N^2 r + r^3) instead of O(N^3): with a cut-off every closed form of SPEC.md §3 lives in
   range(K_r), and the compacted solve is exactly the full one at the same `rcond`.
5. `fit_objectives`: the closed form of every objective of `[ssl]` (`spectral.solve_gram`; `barlow` pairs the views
   of each source with `graphs.pairs_from_groups`), as `spectral.Solution`s.
6. `evaluate_all`: features `f(x)` of the clean (un-augmented) training samples and of the held-out test samples,
   then accuracy against labels per class, over seeded label draws that are the same for every method:
   - `<objective>/<probe>` for each probe of `[eval]`: cosine k-NN (`knn`), ridge and logistic probes on `f(x)`,
     and kernel ridge with the induced kernel `k*` (`kernel_ridge`); `<objective>` alone repeats the main probe;
   - `base_kernel`: kernel ridge with the base kernel (SPEC.md §6, the plain-kernel baseline), a fixed protocol:
     no probe is chosen on the test split. For reference also `base_kernel/knn` (1-NN under the normalised base
     kernel `k(x, y) / sqrt(k(x, x) k(y, y))`, the base-kernel analogue of cosine k-NN on `f(x)`);
   - `supervised`: multinomial logistic regression on the raw inputs, trained on the same labelled draws (a
     labels-only reference that sees neither the unlabelled pool nor a kernel; its "all" column is the fully
     supervised reference).
7. `write_run`: `results.json`, `results.csv`, `config.toml`, `kernels.npz` (heat-map data) and PNG figures in a
   new run folder `<output.dir>/<timestamp>-<name>`; the folder appears (by one rename) only once everything is
   written.

Example:
  >>> from kernel_ssl_jax import config, experiment
  >>> cfg = config.load_config(overrides=["data.max_train=300", "eval.n_draws=2"])
  >>> results = experiment.run(cfg, out_dir="/tmp/kssl-runs", progress=False)  # doctest: +SKIP
  >>> results["accuracy"]["contrastive"]["1"]["mean"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kernel_ssl_jax import augment as _augment
from kernel_ssl_jax.lab import config as _config
from kernel_ssl_jax.lab import data as _data
from kernel_ssl_jax.lab import figures as _figures
from kernel_ssl_jax import evaluate as _evaluate
from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax.lab import batched as _batched
from kernel_ssl_jax.lab import outputs as _outputs
from kernel_ssl_jax.lab import peers as _peers
from kernel_ssl_jax.lab import select as _select
from kernel_ssl_jax import spectral as _spectral

__all__ = [
    "Progress",
    "Prepared",
    "load_data",
    "build_views",
    "build_graph",
    "build_kernel",
    "decompose",
    "prepare",
    "fit_objectives",
    "representations",
    "evaluate_all",
    "evaluate_selected",
    "evaluate_peers",
    "format_table",
    "new_run_folder",
    "atomic_write",
    "write_run",
    "run",
]

ConfigError = _config.ConfigError


# --------------------------------------------------------------------------------------------------------------------
# Progress


class Progress:
    """Prints stage names and times to a stream (stderr by default); records the times in `timings`.

    On a terminal, long stages also show a bar that is redrawn in place; elsewhere (logs, tests) each stage is one
    line. Disabled, it prints nothing but still records the times.
    """

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.timings: dict[str, float] = {}
        self._head = ""

    def _write(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text)
            self.stream.flush()

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "", announce: bool = True):
        """Times the enclosed block as stage `name`; `detail` says what it does.

        With `announce=False` the stage prints its line only once it has succeeded, so a stage that validates input
        fails with no output of its own (the caller reports the error in one line).
        """
        self._head = f"[kssl] {name}" + (f": {detail}" if detail else "")
        if announce:
            self._write(self._head + " ...")
        start = time.perf_counter()
        try:
            yield self
        except BaseException:
            if announce:
                self._write(" failed\n")
            raise
        elapsed = time.perf_counter() - start
        self.timings[name] = self.timings.get(name, 0.0) + elapsed
        if self.tty and announce:
            self._write("\r" + self._head + f" ... {elapsed:.1f} s\033[K\n")
        elif announce:
            self._write(f" {elapsed:.1f} s\n")
        else:
            self._write(self._head + f" ... {elapsed:.1f} s\n")

    def step(self, i: int, n: int, label: str = "") -> None:
        """Shows step `i` of `n` of the current stage (on a terminal only)."""
        if self.tty:
            width = 20
            filled = int(width * i / max(n, 1))
            bar = "#" * filled + "." * (width - filled)
            self._write(f"\r{self._head} [{bar}] {i}/{n} {label}\033[K")

    def note(self, text: str) -> None:
        """A line of its own, e.g. a warning."""
        self._write(f"[kssl] {text}\n")


# --------------------------------------------------------------------------------------------------------------------
# Stages 1-4: data, views, graph, kernel and the shared decomposition


def load_data(cfg: Mapping) -> _data.Dataset:
    """Loads the data set of `cfg["data"]`.

    Raises:
      ConfigError: an unknown data set, a missing directory or file, or arguments the loader rejects.
    """
    d = cfg["data"]
    kw: dict[str, Any] = {"seed": d["seed"], "max_train": d["max_train"] or None, "max_test": d["max_test"] or None}
    if d["name"] in ("mnist", "fashion_mnist"):
        kw["directory"] = d["path"] or None  # empty: fetched into the cache folder on first use
    else:
        kw["test_size"] = d["test_size"]
    if d["name"] == "file":
        kw["path"] = d["path"]
    try:
        ds = _data.load(d["name"], **kw)
    except FileNotFoundError as e:
        raise ConfigError(f"data.path: {e}") from None
    except _data.DownloadError as e:
        raise ConfigError(f"data.name = {d['name']!r}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"data: {e}") from None
    check_against_data(cfg, ds)
    return ds


def check_against_data(cfg: Mapping, ds: _data.Dataset) -> None:
    """The checks that need the data set: label budgets, sizes, augmentations (raises `ConfigError`)."""
    counts = np.bincount(ds.y_train)
    largest = max((b for b in cfg["eval"]["labels_per_class"] if b != "all"), default=0)
    if largest > counts.min():
        raise ConfigError(f"eval.labels_per_class asks for {largest} labels per class but class "
                          f"{int(np.argmin(counts))} has only {int(counts.min())} training samples")
    sel = cfg["select"]
    if sel["enabled"] and largest + sel["val_per_class"] > counts.min():
        raise ConfigError(f"select.val_per_class = {sel['val_per_class']} plus the largest budget {largest} of "
                          f"eval.labels_per_class exceeds the {int(counts.min())} training samples of class "
                          f"{int(np.argmin(counts))}")
    N = cfg["views"]["n_views"] * _pool(cfg, ds).shape[0]
    if sel["enabled"] and max(sel["dim"]) >= N:
        raise ConfigError(f"select.dim = {sel['dim']} must hold values smaller than the number of views ({N})")
    if sel["enabled"] and max(sel["knn"]) >= N:
        raise ConfigError(f"select.knn = {sel['knn']} must hold values smaller than the number of views ({N})")
    if N <= cfg["ssl"]["dim"]:
        raise ConfigError(f"ssl.dim = {cfg['ssl']['dim']} must be smaller than the number of views ({N})")
    if cfg["graph"]["knn"] >= N:
        raise ConfigError(f"graph.knn = {cfg['graph']['knn']} must be smaller than the number of views ({N})")
    _augmentation(cfg, ds)


def _augmentation(cfg: Mapping, ds: _data.Dataset) -> _augment.Augmentation:
    spec = {key: cfg["views"][key] for key in _augment.CONFIG_KEYS}
    try:
        return _augment.from_config(spec, ds.image_shape)
    except ValueError as e:
        raise ConfigError(f"views: {e} (data set {ds.name!r} has image shape {ds.image_shape})") from None


def _pool(cfg: Mapping, ds: _data.Dataset) -> np.ndarray:
    """The unlabelled samples that get views: the training inputs, plus the test inputs with
    `views.transductive` (sources `n_train + j`)."""
    if cfg["views"].get("transductive", False):
        return np.concatenate([ds.X_train, ds.X_test])
    return ds.X_train


def build_views(cfg: Mapping, ds: _data.Dataset) -> tuple[jax.Array, np.ndarray]:
    """`n_views` augmented views of every unlabelled sample (the training inputs, plus the test inputs with
    `views.transductive`): `(views (N, d), groups (N,))`, source-major."""
    v = cfg["views"]
    aug = _augmentation(cfg, ds)
    views, groups = _augment.make_views(jax.random.key(v["seed"]), jnp.asarray(_pool(cfg, ds)), v["n_views"], aug,
                                        include_original=v["include_original"])
    return views, np.asarray(groups)


def build_graph(cfg: Mapping, views: jax.Array, groups: np.ndarray) -> jax.Array:
    """View cliques of weight `graph.clique_weight`, plus a symmetric k-NN graph over the views when `graph.knn > 0`
    (its edges between views of different samples weigh 1), weighted by `graph.normalize` (`graphs.normalize`).

    With `graph.cliques = false` (an ablation) the k-NN graph alone.
    """
    k = cfg["graph"]["knn"]
    if cfg["graph"].get("cliques", True):
        A = cfg["graph"].get("clique_weight", 1.0) * _graphs.from_groups(groups, dtype=views.dtype)
        if k:
            A = jnp.where(A > 0, A, _graphs.knn(views, k, mutual=cfg["graph"]["mutual"]).astype(A.dtype))
    else:
        A = _graphs.knn(views, k, mutual=cfg["graph"]["mutual"]).astype(views.dtype)
    return _graphs.normalize(A, kind=cfg["graph"].get("normalize", "none"))


def build_kernel(cfg: Mapping, views, image_shape=None) -> _kernels.Kernel:
    """The base kernel of `cfg["kernel"]`; `bandwidth = "median"` is the median distance between views.

    The convolutional kernels (cnngp, cntk) need the data set's `image_shape` `(height, width)` (one channel).
    """
    kc = cfg["kernel"]
    name = kc["name"]
    params: dict[str, Any] = {}
    if name in ("rbf", "laplacian"):
        bw = kc["bandwidth"]
        params["bandwidth"] = _kernels.median_bandwidth(np.asarray(views)) if bw == "median" else float(bw)
    elif name == "polynomial":
        params = {"degree": kc["degree"], "scale": kc["scale"], "offset": kc["offset"]}
    elif name in ("nngp", "ntk"):
        params = {"depth": kc["depth"], "w_var": kc["w_var"], "b_var": kc["b_var"]}
    elif name in ("cnngp", "cntk"):
        if image_shape is None:
            raise ConfigError(f"kernel.name = {name!r} needs images; data set {cfg['data']['name']!r} has plain "
                              "feature vectors")
        params = {"image_shape": (*image_shape, 1), "depth": kc["depth"], "w_var": kc["w_var"],
                  "b_var": kc["b_var"], "readout": kc["readout"]}
    try:
        return _kernels.by_name(name, **params)
    except ValueError as e:
        raise ConfigError(f"kernel: {e}") from None


def decompose(K, rcond: float) -> tuple[_spectral.GramEigh, np.ndarray]:
    """One eigendecomposition of `K`, compacted to the eigenpairs above `rcond * max` (SPEC.md §3).

    Returns:
      `(eig, spectrum)`: `eig` a `spectral.GramEigh` with `s` of shape `(r,)` and `U` of shape `(N, r)` (ascending,
      all kept), which every solver of `spectral.solve_gram` accepts and which gives the same solution as the full
      decomposition at this `rcond` (the dropped directions carry zero weight in every closed form); `spectrum` all
      `N` eigenvalues of `K`, descending, clipped at 0 (for reports).
    """
    full = _spectral.decompose(jnp.asarray(K), 0.0)
    return _spectral.truncate(full, rcond), np.clip(np.asarray(full.s)[::-1], 0.0, None)


class Prepared(NamedTuple):
    """Everything the objectives share: data, views, graph, kernel, one Gram and its decomposition."""

    cfg: dict
    ds: _data.Dataset
    views: jax.Array
    groups: np.ndarray
    A: jax.Array | None
    pairs: tuple[np.ndarray, np.ndarray] | None
    kernel: _kernels.Kernel
    K: jax.Array
    eig: _spectral.GramEigh
    spectrum: np.ndarray


def prepare(cfg: Mapping, progress: Progress | None = None) -> Prepared:
    """Stages 1-4: data, views, graph, kernel, Gram and its decomposition (see the module docstring)."""
    progress = progress or Progress(False)
    objectives = cfg["ssl"]["objectives"]
    with progress.stage("data", cfg["data"]["name"], announce=False):
        ds = load_data(cfg)
    n, n_views = _pool(cfg, ds).shape[0], cfg["views"]["n_views"]
    what = " (train + test inputs, transductive)" if cfg["views"]["transductive"] else ""
    with progress.stage("views", f"{n} unlabelled samples{what} x {n_views} views"):
        views, groups = build_views(cfg, ds)
        views.block_until_ready()
    A = None
    if any(o != "barlow" for o in objectives):
        knn = cfg["graph"]["knn"]
        parts = (["view cliques"] if cfg["graph"]["cliques"] else []) + ([f"{knn}-NN over the views"] if knn else [])
        weighting = "" if cfg["graph"]["normalize"] == "none" else f", normalize = {cfg['graph']['normalize']}"
        with progress.stage("graph", " + ".join(parts) + weighting):
            A = build_graph(cfg, views, groups)
            A.block_until_ready()
    pairs = _graphs.pairs_from_groups(groups) if "barlow" in objectives else None
    N = views.shape[0]
    with progress.stage("kernel", f"Gram of {N} views"):
        kernel = build_kernel(cfg, views, ds.image_shape)
        K = _kernels.gram(kernel, views)
        if not bool(jnp.all(jnp.isfinite(K))):
            raise ConfigError(f"kernel: the Gram matrix under {kernel!r} has NaN or Inf; check the kernel parameters")
    with progress.stage("decompose", f"eigendecomposition of the {N} x {N} Gram"):
        eig, spectrum = decompose(K, cfg["ssl"]["rcond"])
        eig.U.block_until_ready()
    return Prepared(dict(cfg), ds, views, groups, A, pairs, kernel, K, eig, spectrum)


# --------------------------------------------------------------------------------------------------------------------
# Stage 5: the closed forms


def fit_objectives(prep: Prepared, *, objectives=None, dim=None, lam=None, beta=None, A=None,
                   progress: Progress | None = None) -> dict[str, _spectral.Solution]:
    """Closed-form solutions of the objectives on the shared decomposition (SPEC.md §3).

    Keyword arguments override `[ssl]` (and `A` the graph) without recomputing the decomposition, for studies.

    Returns:
      `{objective: spectral.Solution}`.

    Raises:
      ConfigError: if `dim` exceeds the rank of the Gram after the cut-off, or a barlow problem is infeasible (the
        one check of every path, `eigenbasis.check_rank` / `check_barlow_feasible`).
    """
    ssl = prep.cfg["ssl"]
    objectives = objectives or ssl["objectives"]
    dim = ssl["dim"] if dim is None else dim
    lam = ssl["lam"] if lam is None else lam
    beta = ssl["beta"] if beta is None else beta
    A = prep.A if A is None else A
    solutions = {}
    for objective in objectives:
        is_barlow = objective == "barlow"
        try:
            solutions[objective] = _spectral.solve_eig(
                objective, prep.K, prep.eig, prep.views, prep.kernel, A=None if is_barlow else A,
                pairs=prep.pairs if is_barlow else None, dim=dim, lam=lam, beta=beta, rcond=ssl["rcond"])
        except ValueError as e:
            raise ConfigError(f"ssl.dim = {dim}, {objective}: {e}") from None
        if progress is not None:
            progress.step(len(solutions), len(objectives), objective)
    return solutions


# --------------------------------------------------------------------------------------------------------------------
# Stage 6: evaluation


class Representations(NamedTuple):
    """Features of the clean training and test samples for each objective, and the base-kernel Grams."""

    features: dict[str, tuple[np.ndarray, np.ndarray]]
    base_train: np.ndarray
    base_test: np.ndarray
    base_diag_train: np.ndarray
    base_diag_test: np.ndarray


def representations(prep: Prepared, solutions: Mapping[str, _spectral.Solution]) -> Representations:
    """`f(x) = C k_X(x)` on the training and test samples (one cross-Gram shared by all objectives)."""
    ds, kernel = prep.ds, prep.kernel
    X_train, X_test = jnp.asarray(ds.X_train), jnp.asarray(ds.X_test)
    K_train_views = _kernels.gram(kernel, X_train, prep.views)
    K_test_views = _kernels.gram(kernel, X_test, prep.views)
    features = {o: (np.asarray(K_train_views @ s.coef.T), np.asarray(K_test_views @ s.coef.T))
                for o, s in solutions.items()}
    diag = jax.vmap(kernel)
    return Representations(features, np.asarray(_kernels.gram(kernel, X_train)),
                           np.asarray(_kernels.gram(kernel, X_test, X_train)),
                           np.asarray(diag(X_train, X_train)), np.asarray(diag(X_test, X_test)))


def _feature_predictors(F_train, F_test, y, ev: Mapping, n_classes: int) -> dict[str, Callable]:
    K_train = K_test = None
    if "kernel_ridge" in ev["probes"] or ev["main_probe"] == "kernel_ridge":
        # The induced kernel k*(x, x') = <f(x), f(x')> on the clean samples.
        K_train, K_test = F_train @ F_train.T, F_test @ F_train.T
    return {
        "knn": lambda idx: _evaluate.knn_cosine(F_train[idx], y[idx], F_test, k=min(ev["knn_k"], len(idx)),
                                                n_classes=n_classes),
        "ridge": lambda idx: _evaluate.ridge_probe(F_train[idx], y[idx], F_test, reg=ev["ridge_reg"],
                                                   n_classes=n_classes),
        "logistic": lambda idx: _evaluate.logistic_probe(F_train[idx], y[idx], F_test, n_classes=n_classes),
        "kernel_ridge": lambda idx: _evaluate.kernel_ridge_classify(
            K_train[np.ix_(idx, idx)], y[idx], K_test[:, idx], reg=ev["kernel_ridge_reg"], n_classes=n_classes),
    }


def _probes(ev: Mapping) -> list[str]:
    probes = list(ev["probes"])
    return probes if ev["main_probe"] in probes else [ev["main_probe"], *probes]


def evaluate_all(prep: Prepared, reps: Representations, progress: Progress | None = None) -> dict[str, dict]:
    """Accuracy against labels per class for every method (see the module docstring for the list).

    Returns:
      `accuracy[method][labels_per_class] = {"mean", "std", "draws", "probe"}`, with `labels_per_class` a string
      (`"1"`, ..., `"all"`) and the same label draws for every method.
    """
    ev = prep.cfg["eval"]
    ds = prep.ds
    y_train, y_test = np.asarray(ds.y_train), np.asarray(ds.y_test)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    probes = _probes(ev)

    def curve(predict):
        return _evaluate.accuracy_vs_labels(predict, y_train, y_test, ev["labels_per_class"], ev["n_draws"],
                                            ev["seed"])

    def labelled(result, probe):
        return {key: dict(entry, probe=probe) for key, entry in result.items()}

    methods: list[tuple[str, str, Callable]] = []
    for objective, (F_train, F_test) in reps.features.items():
        predictors = _feature_predictors(F_train, F_test, y_train, ev, n_classes)
        methods += [(f"{objective}/{p}", p, predictors[p]) for p in probes]
    base_probes = ["kernel_ridge"] + (["knn"] if "knn" in probes else [])
    S_test = reps.base_test / np.sqrt(np.outer(reps.base_diag_test, reps.base_diag_train))
    base = {
        "kernel_ridge": lambda idx: _evaluate.kernel_ridge_classify(
            reps.base_train[np.ix_(idx, idx)], y_train[idx], reps.base_test[:, idx], reg=ev["kernel_ridge_reg"],
            n_classes=n_classes),
        "knn": lambda idx: _evaluate.knn_similarity(S_test[:, idx], y_train[idx], k=min(ev["knn_k"], len(idx)),
                                                    n_classes=n_classes),
    }
    methods += [(f"base_kernel/{p}", p, base[p]) for p in base_probes]
    X_train, X_test = ds.X_train, ds.X_test
    methods.append(("supervised", "logistic on raw inputs",
                    lambda idx: _evaluate.logistic_probe(X_train[idx], y_train[idx], X_test, n_classes=n_classes)))

    per_method = {}
    for i, (name, probe, predict) in enumerate(methods):
        per_method[name] = labelled(curve(predict), probe)
        if progress is not None:
            progress.step(i + 1, len(methods), name)

    accuracy: dict[str, dict] = {}
    for objective in reps.features:
        accuracy[objective] = per_method[f"{objective}/{ev['main_probe']}"]
    # SPEC.md §6: the baseline's protocol is fixed in advance (kernel ridge), never picked per budget on test.
    accuracy["base_kernel"] = per_method["base_kernel/kernel_ridge"]
    accuracy["supervised"] = per_method["supervised"]
    accuracy.update((k, v) for k, v in per_method.items() if k != "supervised")
    return accuracy


# --------------------------------------------------------------------------------------------------------------------
# Stage 6 with model selection (`[select]`, `kernel_ssl_jax.lab.select`) and the peers (`eval.peers`)


class ViewGram(NamedTuple):
    """The Gram of the views under one kernel of the `[select]` grid (kernel name x bandwidth factor), its
    decomposition and the cross-Grams of the clean samples; `params` names the grid point (reported with every
    candidate made from it)."""

    params: dict
    kernel: _kernels.Kernel
    K: jax.Array
    eig: _spectral.GramEigh
    K_train_views: np.ndarray
    K_test_views: np.ndarray


def truncated_grams(grams: list[ViewGram], rconds) -> list[ViewGram]:
    """Each Gram's decomposition truncated at each cut-off of `rconds` (`spectral.truncate`; each at least the
    `ssl.rcond` the decomposition was made at), for the `select.rcond` grid. Empty `rconds`: `grams` unchanged."""
    return [g._replace(eig=_spectral.truncate(g.eig, r), params={**g.params, "rcond": float(r)})
            for g in grams for r in rconds] or grams


def view_grams(prep: Prepared, scales, progress: Progress | None = None, kernels=()) -> list[ViewGram]:
    """The Gram of the views and its decomposition for each kernel name of `kernels` (`select.kernel`; empty: the
    run's kernel alone) at each bandwidth factor of `scales` (rbf/laplacian; the other kernels have no bandwidth).
    The run's own kernel at factor 1.0 reuses the run's Gram and decomposition. Every other `[kernel]` key applies
    to each kernel; `params` is `{"bandwidth_scale": ...}`, with `"kernel"` first when `kernels` is given."""
    ds, out = prep.ds, []
    X_train, X_test = jnp.asarray(ds.X_train), jnp.asarray(ds.X_test)
    for name in list(kernels) or [prep.kernel.name]:
        base = prep.kernel if name == prep.kernel.name else build_kernel(
            {**prep.cfg, "kernel": {**prep.cfg["kernel"], "name": name}}, prep.views, ds.image_shape)
        for scale in scales if "bandwidth" in base.params else [1.0]:
            if base is prep.kernel and scale == 1.0:
                kernel, K, eig = prep.kernel, prep.K, prep.eig
            else:
                kernel = base if scale == 1.0 else _kernels.by_name(
                    name, bandwidth=float(base.params["bandwidth"]) * scale)
                K = _kernels.gram(kernel, prep.views)
                eig, _ = decompose(K, prep.cfg["ssl"]["rcond"])
                if progress is not None:
                    progress.note(f"select: Gram and eigendecomposition of {name} at bandwidth x {scale:g} "
                                  f"({int(eig.rank)} eigenpairs)")
            params = {**({"kernel": name} if kernels else {}), "bandwidth_scale": float(scale)}
            out.append(ViewGram(params, kernel, K, eig, np.asarray(_kernels.gram(kernel, X_train, prep.views)),
                                np.asarray(_kernels.gram(kernel, X_test, prep.views))))
    return out


def _graph_for(prep: Prepared, knn: int, clique_weight: float) -> jax.Array:
    gc = prep.cfg["graph"]
    if knn == gc["knn"] and clique_weight == gc["clique_weight"] and prep.A is not None:
        return prep.A
    return build_graph({**prep.cfg, "graph": {**gc, "knn": knn, "clique_weight": clique_weight}}, prep.views,
                       prep.groups)


def _graph_params(key) -> dict:
    """The reported parameters of a graph of `ssl_candidates`: `graph.knn` (an int), `(knn, clique_weight)` of the
    `select.clique_weight` grid (a tuple) or any other label (`graph`)."""
    if isinstance(key, tuple):
        return {"knn": key[0], "clique_weight": key[1]}
    return {"knn" if isinstance(key, int) else "graph": key}


def ssl_candidates(prep: Prepared, objective: str, grams: list[ViewGram], graphs: Mapping[Any, jax.Array],
                   n_classes: int, extension_ridges=()) -> list[_select.Candidate]:
    """Every point of the `[select]` grid for one objective: [kernel x] bandwidth factor [x rcond] x graph (knn
    [x clique weight]) x lam x beta [x extension ridge] x dim.

    `graphs` maps `graph.knn` values, `(knn, clique_weight)` pairs or any other label (reported as `graph`) to
    relationship matrices.
    `extension_ridges`: also the kernel-ridge out-of-sample extension (`spectral.extend`) of each solution at each
    ridge (0: the solution itself), reported as `extension_ridge`; empty: the solutions only.
    One target per (Gram, graph) and one `jax.vmap` over `(lam, beta)` at the largest dim (`batched.solve_batch`);
    smaller dims are the leading rows (`batched.nested_dims`).
    """
    sel, ev = prep.cfg["select"], prep.cfg["eval"]
    dims = sorted(sel["dim"])
    betas = sel["beta"] if objective == "vicreg" else [prep.cfg["ssl"]["beta"]]
    lam_beta = [(lam, beta) for beta in betas for lam in sel["lam"]]
    graph_items = [(None, None)] if objective == "barlow" else list(graphs.items())
    out = []
    for g in grams:
        for knn, A in graph_items:
            coefs, ws, _ = _batched.solve_batch(objective, g.K, g.eig, A, prep.pairs, [lb[0] for lb in lam_beta],
                                                [lb[1] for lb in lam_beta], max(dims))
            for i, (lam, beta) in enumerate(lam_beta):
                for ridge in extension_ridges or [None]:
                    C = np.asarray(coefs[i] if not ridge else _spectral.extend(coefs[i], g.eig, ridge))
                    for d in dims:
                        graph = {} if knn is None else _graph_params(knn)
                        params = {**g.params, **graph, "lam": lam, **({"beta": beta} if objective == "vicreg" else {}),
                                  **({} if ridge is None else {"extension_ridge": ridge}), "dim": d}
                        out.append(_select.feature_candidate(params, g.K_train_views @ C[:d].T,
                                                             g.K_test_views @ C[:d].T, prep.ds.y_train, ev,
                                                             n_classes))
    return out


def base_kernel_candidates(prep: Prepared, grams: list[ViewGram], regs, n_classes: int) -> list[_select.Candidate]:
    """Kernel ridge with the base kernel over bandwidth factor x `select.reg` (`eval.kernel_ridge_reg`)."""
    ds, out = prep.ds, []
    y = np.asarray(ds.y_train)
    for g in grams:
        K_tr = np.asarray(_kernels.gram(g.kernel, jnp.asarray(ds.X_train)))
        K_te = np.asarray(_kernels.gram(g.kernel, jnp.asarray(ds.X_test), jnp.asarray(ds.X_train)))
        for reg in regs:
            def train(idx, query, K_tr=K_tr, reg=reg):
                return _evaluate.kernel_ridge_classify(K_tr[np.ix_(idx, idx)], y[idx], K_tr[np.ix_(query, idx)],
                                                       reg=reg, n_classes=n_classes)

            def test(idx, K_tr=K_tr, K_te=K_te, reg=reg):
                return _evaluate.kernel_ridge_classify(K_tr[np.ix_(idx, idx)], y[idx], K_te[:, idx], reg=reg,
                                                       n_classes=n_classes)

            out.append(_select.Candidate({**g.params, "reg": reg}, train, test))
    return out


def base_kernel_knn_candidates(prep: Prepared, grams: list[ViewGram], n_classes: int) -> list[_select.Candidate]:
    """The reference row `base_kernel/knn`: `eval.knn_k`-NN under the normalised base kernel, one candidate per
    bandwidth factor (for rbf/laplacian the neighbours do not depend on the bandwidth, so the candidates tie)."""
    ds, out = prep.ds, []
    y, k = np.asarray(ds.y_train), prep.cfg["eval"]["knn_k"]
    for g in grams:
        K_tr = np.asarray(_kernels.gram(g.kernel, jnp.asarray(ds.X_train)))
        K_te = np.asarray(_kernels.gram(g.kernel, jnp.asarray(ds.X_test), jnp.asarray(ds.X_train)))
        diag_tr = np.diag(K_tr)
        S_tr = K_tr / np.sqrt(np.outer(diag_tr, diag_tr))
        X_test = jnp.asarray(ds.X_test)
        S_te = K_te / np.sqrt(np.outer(np.asarray(jax.vmap(g.kernel)(X_test, X_test)), diag_tr))

        def train(idx, query, S_tr=S_tr):
            return _evaluate.knn_similarity(S_tr[np.ix_(query, idx)], y[idx], k=min(k, len(idx)), n_classes=n_classes)

        def test(idx, S_te=S_te):
            return _evaluate.knn_similarity(S_te[:, idx], y[idx], k=min(k, len(idx)), n_classes=n_classes)

        out.append(_select.Candidate(dict(g.params), train, test))
    return out


def peer_candidates(prep: Prepared, peer: str, grams: list[ViewGram] | None, n_classes: int) -> list[_select.Candidate]:
    """The grid of one peer (`peers`): its `[select]` grid when selecting (`grams` given), else its default point."""
    cfg, ds = prep.cfg, prep.ds
    ev, sel = cfg["eval"], cfg["select"] if grams is not None else None
    if peer == "label_spreading":
        return _peers.label_spreading(ds.X_train, ds.X_test, ds.y_train, _peers.label_spreading_grid(sel))
    if peer in ("laplacian_eigenmaps", "laplacian_eigenmaps_knn"):
        knns = sel["knn"] if sel is not None else [cfg["graph"]["knn"]]
        knns = [k for k in knns if k > 0] or [10]  # a graph of cliques alone does not reach the test nodes
        weights = sel["clique_weight"] if sel is not None else []  # a grid: reported in every candidate
        views, groups = (prep.views, prep.groups) if peer == "laplacian_eigenmaps" else (None, None)
        return _peers.laplacian_eigenmaps(views, groups, ds.X_train, ds.X_test, ds.y_train, knns,
                                          sel["dim"] if sel is not None else [cfg["ssl"]["dim"]], ev, n_classes,
                                          cliques=cfg["graph"]["cliques"], mutual=cfg["graph"]["mutual"],
                                          clique_weights=weights or [cfg["graph"]["clique_weight"]],
                                          report_weight=bool(weights) and views is not None,
                                          seed=cfg["views"]["seed"])
    if peer == "kernel_pca":
        if grams is None:
            X_train, X_test = jnp.asarray(ds.X_train), jnp.asarray(ds.X_test)
            grams_ = [({"bandwidth_scale": 1.0}, prep.K, _kernels.gram(prep.kernel, X_train, prep.views),
                       _kernels.gram(prep.kernel, X_test, prep.views))]
        else:
            grams_ = [(g.params, g.K, g.K_train_views, g.K_test_views) for g in grams]
        return _peers.kernel_pca(grams_, ds.y_train, sel["dim"] if sel is not None else [cfg["ssl"]["dim"]], ev,
                                 n_classes, seed=cfg["views"]["seed"])
    raise ConfigError(f"eval.peers: unknown peer {peer!r}; valid: {', '.join(_config.PEERS)}")


def score_selected(candidates, proto, prep: Prepared, probe: str) -> tuple[dict, dict]:
    """Chooses per budget on the validation subset (or takes the single candidate without `proto`), then scores
    the chosen candidate ONCE on the test split with the `[eval]` label draws. Returns `(accuracy row, choice)`."""
    ev, ds = prep.cfg["eval"], prep.ds
    if proto is None:
        if len(candidates) != 1:
            raise ValueError("several candidates need a selection protocol")
        choice = {str(b): {"index": 0, "params": dict(candidates[0].params), "val_accuracy": None, "grid": []}
                  for b in ev["labels_per_class"]}
    else:
        choice = _select.choose(candidates, proto, ds.y_train)
    row = {}
    for b in ev["labels_per_class"]:
        chosen = candidates[choice[str(b)]["index"]]
        res = _evaluate.accuracy_vs_labels(chosen.predict_test, ds.y_train, ds.y_test, [b], ev["n_draws"],
                                           ev["seed"])[str(b)]
        row[str(b)] = dict(res, probe=probe, params=choice[str(b)]["params"])
    return row, choice


def evaluate_peers(prep: Prepared, proto=None, grams=None, progress: Progress | None = None) -> tuple[dict, dict]:
    """The rows `peer:<name>` of `eval.peers` (selected by `proto` when given) and their choices."""
    n_classes = int(np.max(prep.ds.y_train)) + 1  # from the training labels only
    rows, choices = {}, {}
    probe = prep.cfg["eval"]["main_probe"]
    for i, peer in enumerate(prep.cfg["eval"]["peers"]):
        cands = peer_candidates(prep, peer, grams, n_classes)
        label = _peers.LABELS[peer] + ("" if peer == "label_spreading" else f"; {probe}")
        rows[f"peer:{peer}"], choices[f"peer:{peer}"] = score_selected(cands, proto, prep, label)
        if progress is not None:
            progress.step(i + 1, len(prep.cfg["eval"]["peers"]), peer)
    return rows, choices


def evaluate_selected(prep: Prepared, progress: Progress | None = None) -> tuple[dict[str, dict], dict[str, Any]]:
    """Stage 6 with `[select]`: every objective (main probe), the base kernel and the peers chosen per budget on
    the validation subset of the training split (`select`), then scored once on the test split.

    Returns:
      `(accuracy, selection)`: rows as in `evaluate_all` (each budget's entry also holds the chosen `params`), and
      `{"protocol": {...}, "methods": {method: {budget: {"params", "val_accuracy", "grid"}}}}`.
    """
    cfg, ds = prep.cfg, prep.ds
    sel, ev = cfg["select"], cfg["eval"]
    n_classes = int(np.max(ds.y_train)) + 1  # from the training labels only
    try:
        proto = _select.protocol(ds.y_train, ev["labels_per_class"], sel)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    grams = view_grams(prep, sel["bandwidth_scale"], progress, sel["kernel"])
    weights = sel["clique_weight"] or [cfg["graph"]["clique_weight"]]
    graphs = {(k, w) if sel["clique_weight"] else k: _graph_for(prep, k, w) for k in sel["knn"] for w in weights} \
        if any(o != "barlow" for o in cfg["ssl"]["objectives"]) else {}
    accuracy, choices = {}, {}
    probe = ev["main_probe"]
    ssl_grams = truncated_grams(grams, sel["rcond"])
    for objective in cfg["ssl"]["objectives"]:
        cands = ssl_candidates(prep, objective, ssl_grams, graphs, n_classes, sel["extension_ridge"])
        accuracy[objective], choices[objective] = score_selected(cands, proto, prep, f"{probe}, selected")
        if progress is not None:
            progress.note(f"select: {objective}: {len(cands)} candidates; chosen "
                          + "; ".join(f"{b}: {_select.describe(c['params'])}" for b, c in choices[objective].items()))
    accuracy["base_kernel"], choices["base_kernel"] = score_selected(
        base_kernel_candidates(prep, grams, sel["reg"], n_classes), proto, prep, "kernel_ridge, selected")
    accuracy["base_kernel/knn"], choices["base_kernel/knn"] = score_selected(
        base_kernel_knn_candidates(prep, grams, n_classes), proto, prep, "knn")
    X_train, X_test, y_train = ds.X_train, ds.X_test, np.asarray(ds.y_train)
    sup = _select.Candidate({}, None, lambda idx: _evaluate.logistic_probe(X_train[idx], y_train[idx], X_test,
                                                                           n_classes=n_classes))
    accuracy["supervised"], _ = score_selected([sup], None, prep, "logistic on raw inputs")
    peer_rows, peer_choices = evaluate_peers(prep, proto, grams, progress)
    accuracy.update(peer_rows)
    choices.update(peer_choices)
    for row in accuracy.values():
        for entry in row.values():
            entry.setdefault("params", {})
    selection = {
        "protocol": {"val_per_class": proto.val_per_class, "val_labels": int(proto.val_idx.size),
                     "n_draws": sel["n_draws"], "seed": sel["seed"], "split": "training split only",
                     "criterion": f"mean validation accuracy of the main probe ({probe}) over the selection draws",
                     "val_index": [int(i) for i in proto.val_idx]},
        "methods": choices,
    }
    return accuracy, selection


def _summary(accuracy: Mapping, objectives) -> dict[str, Any]:
    """The gain of every objective (main probe) over the base kernel at every budget.

    No method is picked as "best": that would be a choice made on the test split (SPEC §6). Differences smaller than
    the spread over label draws (the `std` of each entry) are not resolved.
    """
    keys = list(accuracy["base_kernel"])
    return {"gain_over_base_kernel": {
        o: {k: accuracy[o][k]["mean"] - accuracy["base_kernel"][k]["mean"] for k in keys}
        for o in objectives if o in accuracy}}


# --------------------------------------------------------------------------------------------------------------------
# Reports: table, CSV, JSON, figures


def format_table(accuracy: Mapping, rows=None, title: str = "") -> str:
    """A text table: one row per method (with its probe), one column per label budget, `mean ± std`."""
    rows = list(accuracy) if rows is None else list(rows)
    keys = list(accuracy[rows[0]])
    labels = []
    for m in rows:
        probes = list(dict.fromkeys(accuracy[m][k].get("probe", "") for k in keys))
        probe = probes[0] if len(probes) == 1 else "best of " + ", ".join(sorted(probes))
        labels.append(m if "/" in m or not probe else f"{m} ({probe})")
    width = max(len(s) for s in labels + ["method"]) + 2
    col = 15
    lines = [title] if title else []
    lines.append("method".ljust(width) + "".join(k.rjust(col) for k in keys))
    for label, m in zip(labels, rows, strict=True):
        cells = [f"{accuracy[m][k]['mean']:.3f} ± {accuracy[m][k]['std']:.3f}" for k in keys]
        lines.append(label.ljust(width) + "".join(c.rjust(col) for c in cells))
    return "\n".join(lines)


def _csv_text(accuracy: Mapping) -> str:
    keys = list(next(iter(accuracy.values())))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", "probe"] + [f"{s}_{k}" for k in keys for s in ("mean", "std")] + ["n_draws"])
    for method, entry in accuracy.items():
        row = [method, entry[keys[0]].get("probe", "")]
        row += [f"{entry[k][s]:.6f}" for k in keys for s in ("mean", "std")]
        row.append(max(len(entry[k]["draws"]) for k in keys))
        writer.writerow(row)
    return buf.getvalue()


atomic_write = _outputs.atomic_write  # a file is complete or absent (see kernel_ssl_jax.lab.outputs)


def _kernel_heatmaps(prep: Prepared, solutions: Mapping) -> dict[str, np.ndarray]:
    """The data of `kernels.png`: normalised base and induced kernels on test samples sorted by label.

    `eval.heatmap_per_class` test samples of each class (seeded by `eval.seed`), sorted by label. Each kernel is
    normalised as `k(x, y) / sqrt(k(x, x) k(y, y))` (for the induced kernel `k*` the cosine of `f(x), f(y)`).

    Returns:
      The arrays of `kernels.npz` (`figures.load_kernel_heatmaps` reads them back): `names` (P,) (`"base"`, then
      the objectives), `kernels` (P, n, n) float32, `labels` (n,) and `test_index` (n,) (rows of the test set).
    """
    ds, ev = prep.ds, prep.cfg["eval"]
    rng = np.random.default_rng(ev["seed"])
    idx = np.concatenate([rng.permutation(np.flatnonzero(ds.y_test == c))[:ev["heatmap_per_class"]]
                          for c in np.unique(ds.y_test)])
    Xs = jnp.asarray(ds.X_test[idx])

    def cosine(G):
        d = np.sqrt(np.clip(np.diag(G), 1e-300, None))
        return G / np.outer(d, d)

    names, mats = ["base"], [cosine(np.asarray(_kernels.gram(prep.kernel, Xs)))]
    for o, sol in solutions.items():
        F = np.asarray(sol.features(Xs))
        names.append(o)
        mats.append(cosine(F @ F.T))
    # float32 keeps the file small (n = 200 by default); the figure is drawn from these stored values.
    return {"names": np.asarray(names), "kernels": np.stack(mats).astype(np.float32),
            "labels": np.asarray(ds.y_test[idx]), "test_index": idx}


new_run_folder = _outputs.new_run_folder  # atomic claim of <timestamp>-<name>, filled in a hidden folder


def write_run(results: dict, prep: Prepared, solutions: Mapping, out_dir: str | Path, *, what: str = "--out") -> Path:
    """Writes the run folder `<out_dir>/<timestamp>-<name>` (see `new_run_folder`) and returns its path.

    Files: `results.json`, `results.csv`, `config.toml`, `kernels.npz` (the heat-map matrices, see
    `_kernel_heatmaps`, so that `kssl report` can redraw `kernels.png`) and, with `output.figures`, `accuracy.png`,
    `kernels.png` and `spectrum.png`. The data files are each written atomically (temporary file, then
    `os.replace`), and the folder appears only once everything is in it.
    """
    with new_run_folder(out_dir, prep.cfg["output"]["name"] or prep.ds.name, what=what) as (tmp, final):
        results["run_dir"] = str(final)
        atomic_write(tmp / "results.json", json.dumps(results, indent=1, allow_nan=True) + "\n")
        atomic_write(tmp / "results.csv", _csv_text(results["accuracy"]))
        atomic_write(tmp / "config.toml", _config.dumps(prep.cfg))
        heatmaps = _kernel_heatmaps(prep, solutions)
        buf = io.BytesIO()
        np.savez(buf, **heatmaps)
        atomic_write(tmp / "kernels.npz", buf.getvalue())
        if prep.cfg["output"]["figures"]:
            _figures.figure_accuracy(results["accuracy"], list(solutions), tmp / "accuracy.png")
            _figures.figure_kernels(heatmaps, tmp / "kernels.png")
            _figures.figure_spectrum(results["eigenvalues"], prep.cfg["ssl"], tmp / "spectrum.png")
    return final


# --------------------------------------------------------------------------------------------------------------------
# The job


def _floats(x) -> list[float]:
    return [float(v) for v in np.asarray(x).reshape(-1)]


def run(config: Mapping, out_dir: str | Path | None = None, progress: bool = True, *, stdout=None,
        stderr=None) -> dict[str, Any]:
    """Runs the main job end to end (stages 1-7 of the module docstring) and returns the results.

    Args:
      config: a configuration dict (validated again here), e.g. from `config.load_config`.
      out_dir: directory under which the run folder is made; default `config["output"]["dir"]`.
      progress: print stage names and times to `stderr`.
      stdout: stream for the final table and the run folder path (default `sys.stdout`).
      stderr: stream for progress (default `sys.stderr`).

    Returns:
      The content of `results.json`: `accuracy`, `summary`, `config`, `timings`, `eigenvalues`, `losses`,
      `data`, `warnings`, `run_dir`, ...

    Raises:
      ConfigError: bad configuration or data (nothing is written then).
    """
    start = time.perf_counter()
    cfg = _config.validate(config)
    what = "--out" if out_dir is not None else "output.dir"
    try:  # before any computation: a bad output folder fails at once
        _outputs.check_output_dir(out_dir if out_dir is not None else cfg["output"]["dir"], what)
    except _outputs.OutputError as e:
        raise ConfigError(str(e)) from None
    stdout = stdout if stdout is not None else sys.stdout
    prog = Progress(progress, stderr)
    prep = prepare(cfg, prog)
    ssl = cfg["ssl"]
    with prog.stage("solve", f"{', '.join(ssl['objectives'])} (dim {ssl['dim']}, lam {ssl['lam']:g}, "
                             f"{int(prep.eig.rank)} eigenpairs)"):
        solutions = fit_objectives(prep, progress=prog)
    ev = cfg["eval"]
    sel = cfg["select"]
    selection = None
    if sel["enabled"]:
        with prog.stage("select", f"grid per method and budget on {sel['val_per_class']} validation labels per "
                                  f"class of the training split, then {len(ev['labels_per_class'])} label budgets "
                                  f"x {ev['n_draws']} draws on test"):
            accuracy, selection = evaluate_selected(prep, prog)
    else:
        with prog.stage("features", f"{prep.ds.X_train.shape[0]} training + {prep.ds.X_test.shape[0]} test samples"):
            reps = representations(prep, solutions)
        with prog.stage("evaluate", f"{len(ev['labels_per_class'])} label budgets x {ev['n_draws']} draws"):
            accuracy = evaluate_all(prep, reps, prog)
        if ev["peers"]:
            with prog.stage("peers", ", ".join(ev["peers"]) + " at their default settings"):
                accuracy.update(evaluate_peers(prep, None, None, prog)[0])

    ds = prep.ds
    results: dict[str, Any] = {
        "accuracy": accuracy,
        "summary": _summary(accuracy, ssl["objectives"]),
        "config": cfg,
        "data": {"name": ds.name, "n_train": int(ds.X_train.shape[0]), "n_test": int(ds.X_test.shape[0]),
                 "n_features": int(ds.X_train.shape[1]), "n_classes": int(ds.n_classes),
                 "image_shape": list(ds.image_shape) if ds.image_shape else None},
        "views": {"n_sources": int(_pool(cfg, ds).shape[0]), "n_views": cfg["views"]["n_views"],
                  "n_total": int(prep.views.shape[0])},
        "graph": None if prep.A is None else {
            "edges": int((np.count_nonzero(np.asarray(prep.A)) - prep.A.shape[0]) // 2),
            "mean_degree": float(np.asarray(prep.A).sum(1).mean())},
        "kernel": {"repr": repr(prep.kernel), "name": prep.kernel.name,
                   "params": {k: float(v) for k, v in prep.kernel.params.items()}},
        "eigenvalues": {"gram": _floats(prep.spectrum), "gram_rank_kept": int(prep.eig.rank),
                        "targets": {o: _floats(s.eigenvalues) for o, s in solutions.items()}},
        "losses": {o: float(s.loss) for o, s in solutions.items()},
        "methods": {o: s.method for o, s in solutions.items()},
        "warnings": [],  # kept for readers of results.json: infeasible problems now raise instead
        "selection": selection,
        "version": _version(),
        "timings": {},
    }
    with prog.stage("write", "results.json, results.csv, figures"):
        results["timings"] = dict(prog.timings, total=time.perf_counter() - start)
        run_dir = write_run(results, prep, solutions, out_dir if out_dir is not None else cfg["output"]["dir"],
                            what=what)
    results["timings"] = dict(prog.timings, total=time.perf_counter() - start)

    objectives = ssl["objectives"]
    n_draws = ev["n_draws"]
    peer_rows = [m for m in accuracy if m.startswith("peer:")]
    how = ("hyper-parameters chosen per budget on a validation subset of the TRAINING split "
           f"({selection['protocol']['val_labels']} extra labels)" if selection else "fixed hyper-parameters")
    print(format_table(accuracy, [*objectives, "base_kernel", "supervised", *peer_rows],
                       f"\nTest accuracy on {ds.X_test.shape[0]} held-out {ds.name} samples, mean ± std over "
                       f"{n_draws} label draws, {how} (columns: labels per class; rows: method (probe))"), file=stdout)
    if any("/" in m for m in accuracy):
        print(format_table(accuracy, [m for m in accuracy if "/" in m], "\nEvery probe:"), file=stdout)
    if selection:
        print("\nChosen hyper-parameters (validation accuracy):", file=stdout)
        for m, per_budget in selection["methods"].items():
            print(f"  {m}: " + "; ".join(f"{b}: {_select.describe(c['params']) or '-'} ({c['val_accuracy']:.3f})"
                                         for b, c in per_budget.items()), file=stdout)
    print("\npoints over base_kernel (mean over label draws; not resolved where smaller than the spread):",
          file=stdout)
    for o, per_budget in results["summary"]["gain_over_base_kernel"].items():
        print(f"  {o}: " + ", ".join(f"{g * 100:+.1f} at {k}" for k, g in per_budget.items()), file=stdout)
    print(f"total time {results['timings']['total']:.1f} s", file=stdout)
    print(f"run folder: {run_dir}", file=stdout)
    return results


def _version() -> str:
    from kernel_ssl_jax import __version__

    return __version__
