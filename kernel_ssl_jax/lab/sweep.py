"""Hyper-parameter sweeps (`kssl sweep CONFIG`): a base configuration plus a grid, run fast, resumable, nothing lost.

A sweep config is a `kssl run` configuration (same sections, same keys, same validation) plus a `[sweep]` section:

    [sweep]
    grid = {"ssl.lam" = [0, 0.1, 1], "ssl.dim" = [10, 20], "kernel.bandwidth" = [2.0, 4.0], "data.seed" = [0, 1]}
    output = "runs/sweep-lam-dim.jsonl"     # optional; default <output.dir>/sweep-<config file stem>.jsonl

Every grid key is `section.key` of the schema and every value is checked like the same key in a config file, so a
typo fails before anything is written (`ConfigError` naming the key). The grid is the Cartesian product in the
order the keys are written; each point is a full resolved configuration.

Fast. Points are grouped by what they share (SPEC.md §3: one eigendecomposition serves every objective):
  - one data set / view set / graph per distinct `[data]`, `[views]`, `[graph]` (cached across kernels);
  - one Gram and ONE eigendecomposition per distinct kernel (only the kernel's own parameters count: an RBF point
    with `kernel.depth = 3` shares the decomposition of `kernel.depth = 1`) and `ssl.rcond`;
  - for each objective, the target is prepared once (`spectral.target`) and all `(lam, beta)` of the group are
    solved by one `jax.vmap` of `spectral.coefficients` over the traced `lam`/`beta`, at the group's largest
    `dim`: the solutions for smaller `dim` are its leading rows (the top-M eigenpairs are nested, see
    `nested_dims` and the tests).

Nothing lost. Each finished point is one JSON line appended to the results file with a single `os.write` on an
`O_APPEND` descriptor, then `fsync`. A line is keyed by `point_key`, a stable hash of the point's full resolved
configuration (`[output]` excluded: it does not change the result). Rerunning the same command skips finished points;
a record written before a configuration key existed counts as written with that key's default (`record_key`: a new
key's default keeps the earlier behaviour, so upgrading the package does not recompute a sweep);
a trailing partial line (a kill during the write) is cut off first. An exclusive `flock` stops two sweeps writing the
same file. Results of a resumed sweep equal those of an uninterrupted one: a group's batched solve always covers all
its points (finished or not), so the numbers do not depend on which points were left.

Per point and objective, a record holds the loss, the kept target eigenvalues, test accuracy against labels per class
with the main probe of `[eval]`, and the separation of held-out augmented pairs under the induced kernel; per point
also the base kernel's accuracy (kernel ridge with the base kernel, SPEC.md §6, as in `kssl run`) and separation.

Separation (our definition): draw two fresh augmented views of up to `SEPARATION_SAMPLES` held-out test samples
(augmentation seed `views.seed + 1`, never used for training). With the normalised kernel
`c(x, y) = k(x, y) / sqrt(k(x, x) k(y, y))` (for `k*` this is the cosine of `f(x)`, `f(y)`), `pos` is the mean of
`c` over the pairs of views of the same sample, `neg` over pairs of views of different samples; the separation
ratio is `pos / neg` (null when `neg <= 0`), the margin `pos - neg`.

Example:
  >>> spec = load_sweep("configs/sweep_lam_dim.toml")  # doctest: +SKIP
  >>> run_sweep(spec)                                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from kernel_ssl_jax.lab import batched as _batched
from kernel_ssl_jax.lab import config as _config
from kernel_ssl_jax.lab import outputs as _outputs

ConfigError = _config.ConfigError

__all__ = [
    "SweepSpec",
    "Point",
    "load_sweep",
    "parse_sweep",
    "point_key",
    "record_key",
    "read_results",
    "append_line",
    "solve_batch",
    "nested_dims",
    "separation",
    "run_sweep",
]

SWEEP_KEYS = ("grid", "output")
SEPARATION_SAMPLES = 200
# Kernel parameters that matter per kernel: the rest of [kernel] does not change the Gram (used to share it).
_KERNEL_PARAMS = {"linear": (), "polynomial": ("degree", "scale", "offset"), "rbf": ("bandwidth",),
                  "laplacian": ("bandwidth",), "nngp": ("depth", "w_var", "b_var"), "ntk": ("depth", "w_var", "b_var"),
                  "cnngp": ("depth", "w_var", "b_var", "readout"), "cntk": ("depth", "w_var", "b_var", "readout")}


class Point(NamedTuple):
    """One grid point: its position, the swept values, the full resolved configuration and its stable key."""

    index: int
    params: dict
    config: dict
    key: str


class SweepSpec(NamedTuple):
    """A validated sweep: base configuration, grid (`"section.key" -> values`), output JSONL path, points."""

    base: dict
    grid: dict
    output: Path
    points: list


# --------------------------------------------------------------------------------------------------------------------
# Configuration


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def point_key(cfg: Mapping) -> str:
    """A stable hash of a resolved configuration (all sections but `[output]`): 16 hex digits of its SHA-256."""
    content = {s: cfg[s] for s in sorted(cfg) if s != "output"}
    return hashlib.sha256(_canonical(content).encode()).hexdigest()[:16]


def record_key(record: Mapping) -> str | None:
    """The point key of a finished record under the CURRENT schema: its stored configuration with every key added to
    the schema since it was written set to that key's default (a new key's default keeps the earlier behaviour).

    A key of the record that the schema no longer has stays in, so such a record matches no point (it is recomputed:
    nothing is read as finished that the current code would not reproduce). Records without a stored configuration
    keep their own `key`.
    """
    stored = record.get("config")
    if not isinstance(stored, Mapping):
        return record.get("key")
    cfg: dict[str, Any] = _config.defaults()
    for section, values in stored.items():
        if isinstance(values, Mapping) and isinstance(cfg.get(section), dict):
            cfg[section].update(values)
        else:
            cfg[section] = values
    return point_key(cfg)


def _grid_key(name: Any, where: str) -> tuple[str, str]:
    parts = name.split(".") if isinstance(name, str) else []
    if len(parts) != 2:
        raise ConfigError(f"sweep.grid key {name!r}{where} must be section.key, e.g. \"ssl.lam\"")
    section, key = parts
    if section not in _config.SCHEMA:
        raise ConfigError(f"sweep.grid: unknown config section [{section}] in key {name!r}{where}; valid sections: "
                          f"{', '.join(_config.SCHEMA)}")
    if key not in _config.SCHEMA[section]:
        raise ConfigError(f"sweep.grid: unknown config key {name!r}{where}; valid keys in [{section}]: "
                          f"{', '.join(sorted(_config.SCHEMA[section]))}")
    return section, key


def parse_sweep(raw: Mapping, *, where: str = "", default_output: str | Path | None = None) -> SweepSpec:
    """Validates a sweep configuration (a dict as read from TOML) and expands its grid into points.

    Raises:
      ConfigError: a missing `[sweep]`, an unknown sweep option, grid key, section or config key, a value of the
        wrong type or range (the message names the key), or a point that fails the cross-key checks.
    """
    raw = copy.deepcopy(dict(raw))
    sweep = raw.pop("sweep", None)
    if not isinstance(sweep, Mapping):
        raise ConfigError(f"a sweep config needs a [sweep] section with grid = {{\"ssl.lam\" = [0, 0.1]}}{where}")
    for k in sweep:
        if k not in SWEEP_KEYS:
            raise ConfigError(f"unknown key 'sweep.{k}'{where}; valid keys in [sweep]: {', '.join(SWEEP_KEYS)}")
    grid_raw = sweep.get("grid")
    if not isinstance(grid_raw, Mapping) or not grid_raw:
        raise ConfigError(f"sweep.grid{where} must be a non-empty table of \"section.key\" = [values]")
    base = _config.validate(_config.merge(_config.defaults(), raw, where))
    grid: dict[str, list] = {}
    for name, values in grid_raw.items():
        section, key = _grid_key(name, where)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.grid.\"{name}\"{where} must be a non-empty array of values, got "
                              f"{_config.describe_value(values)}")
        checked = [_config.check_key(section, key, v, f" (sweep.grid{where})") for v in values]
        if len({_canonical(v) for v in checked}) != len(checked):
            raise ConfigError(f"sweep.grid.\"{name}\"{where} lists a value twice: {values}")
        grid[name] = checked
    output = sweep.get("output", "")
    if not isinstance(output, str):
        raise ConfigError(f"sweep.output{where} must be a string path, got {_config.describe_value(output)}")
    if not output:
        stem = default_output if default_output is not None else "sweep"
        output = str(Path(base["output"]["dir"]) / f"sweep-{stem}.jsonl")
    points = []
    names = list(grid)
    for index, combo in enumerate(itertools.product(*(grid[n] for n in names))):
        cfg = copy.deepcopy(base)
        for name, value in zip(names, combo, strict=True):
            section, key = name.split(".")
            cfg[section][key] = copy.deepcopy(value)
        params = dict(zip(names, combo, strict=True))
        try:
            cfg = _config.validate(cfg)
        except ConfigError as e:
            raise ConfigError(f"sweep point {index} {_canonical(params)}{where}: {e}") from None
        points.append(Point(index, params, cfg, point_key(cfg)))
    return SweepSpec(base, grid, Path(output).expanduser(), points)


def load_sweep(path: str | Path, output: str | Path | None = None) -> SweepSpec:
    """Reads and validates a sweep TOML file (see the module docstring); `output` overrides `sweep.output`."""
    raw = _config.read_toml(path)
    if output is not None and isinstance(raw.get("sweep"), dict):
        raw["sweep"]["output"] = str(output)
    return parse_sweep(raw, where=f" in {str(path)!r}", default_output=Path(path).stem)


# --------------------------------------------------------------------------------------------------------------------
# The results file: one JSON line per finished point, appended atomically


def read_results(path: str | Path, *, repair: bool = False) -> list[dict]:
    """The records of a sweep JSONL file, in file order, ignoring a trailing partial line.

    With `repair=True` the partial line is also cut off the file (done under the sweep's lock, before appending).
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data) and repair:
        os.truncate(path, end)
    records = []
    for number, line in enumerate(data[:end].splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:  # only a complete line written by something else can get here
                raise ConfigError(f"results file {str(path)!r}, line {number}, is not JSON ({e}); move the file "
                                  f"away or fix that line") from None
    return records


def append_line(fd: int, record: Mapping) -> None:
    """Appends `record` as ONE JSON line with one `os.write` on an `O_APPEND` descriptor, then `fsync`s.

    If the write fails or is short (a full disk), the file is cut back to its previous length before the error
    propagates, so no partial line is left behind (the caller holds the file's exclusive lock).
    """
    line = (json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n").encode()
    size = os.fstat(fd).st_size
    try:
        written = _outputs.write_once(fd, line)
        if written != len(line):  # a regular file takes the whole write unless the disk is full
            raise OSError(errno.ENOSPC, f"short write to the results file ({written} of {len(line)} bytes)")
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise


# --------------------------------------------------------------------------------------------------------------------
# Batched closed forms


solve_batch = _batched.solve_batch  # one implementation, shared with model selection (kernel_ssl_jax.lab.select)
nested_dims = _batched.nested_dims


# --------------------------------------------------------------------------------------------------------------------
# Metrics


def separation(S) -> dict[str, float | None]:
    """Separation of a normalised similarity matrix `S[i, j] = c(view1 of i, view2 of j)` (see module docstring)."""
    import numpy as np

    S = np.asarray(S, dtype=float)
    n = S.shape[0]
    pos = float(np.mean(np.diag(S)))
    neg = float((S.sum() - np.trace(S)) / (n * n - n)) if n > 1 else float("nan")
    return {"pos": pos, "neg": neg, "ratio": pos / neg if neg > 0 else None, "margin": pos - neg}


def _normalise_rows(F):
    import numpy as np

    F = np.asarray(F)
    norm = np.linalg.norm(F, axis=1, keepdims=True)
    return F / np.where(norm > 0, norm, 1.0)


# --------------------------------------------------------------------------------------------------------------------
# The engine


def _group_key(cfg: Mapping) -> str:
    kc = cfg["kernel"]
    kernel = {"name": kc["name"], **{p: kc[p] for p in _KERNEL_PARAMS.get(kc["name"], tuple(kc))}}
    return _canonical({"data": cfg["data"], "views": cfg["views"], "graph": cfg["graph"], "kernel": kernel,
                       "rcond": cfg["ssl"]["rcond"]})


class _Cache:
    """Data sets, views, graphs and held-out pairs shared across groups (keyed by their config sections)."""

    def __init__(self):
        self.data: dict[str, Any] = {}
        self.views: dict[str, Any] = {}
        self.graph: dict[str, Any] = {}

    def dataset(self, cfg):
        from kernel_ssl_jax.lab import experiment

        k = _canonical(cfg["data"])
        if k not in self.data:
            self.data[k] = experiment.load_data(cfg)
        return self.data[k]

    def view_set(self, cfg):
        import jax
        import jax.numpy as jnp
        import numpy as np

        from kernel_ssl_jax import augment

        from kernel_ssl_jax.lab import experiment

        k = _canonical([cfg["data"], cfg["views"]])
        if k not in self.views:
            ds = self.dataset(cfg)
            views, groups = experiment.build_views(cfg, ds)
            # Held-out pairs for the separation metric: two fresh views of test samples, another seed.
            rng = np.random.default_rng(cfg["views"]["seed"])
            m = min(SEPARATION_SAMPLES, ds.X_test.shape[0])
            idx = np.sort(rng.permutation(ds.X_test.shape[0])[:m])
            aug = augment.from_config({key: cfg["views"][key] for key in augment.CONFIG_KEYS}, ds.image_shape)
            held, _ = augment.make_views(jax.random.key(cfg["views"]["seed"] + 1), jnp.asarray(ds.X_test[idx]), 2,
                                         aug)
            self.views[k] = (views, groups, held[0::2], held[1::2])
        return self.views[k]

    def adjacency(self, cfg):
        from kernel_ssl_jax.lab import experiment

        k = _canonical([cfg["data"], cfg["views"], cfg["graph"]])
        if k not in self.graph:
            views, groups, _, _ = self.view_set(cfg)
            self.graph[k] = experiment.build_graph(cfg, views, groups)
        return self.graph[k]


class _Group:
    """One Gram and its decomposition, the solutions of all its points and the shared evaluation inputs."""

    def __init__(self, cfg, cache: _Cache):
        import jax
        import jax.numpy as jnp
        import numpy as np

        from kernel_ssl_jax import graphs, kernels

        from kernel_ssl_jax.lab import experiment

        self.cfg = cfg
        self.ds = cache.dataset(cfg)
        self.views, self.groups, self.held1, self.held2 = cache.view_set(cfg)
        self.A = cache.adjacency(cfg)
        self.pairs = graphs.pairs_from_groups(self.groups) if cfg["views"]["n_views"] >= 2 else None
        self.kernel = experiment.build_kernel(cfg, self.views, self.ds.image_shape)
        self.K = kernels.gram(self.kernel, self.views)
        if not bool(jnp.all(jnp.isfinite(self.K))):
            raise ConfigError(f"kernel: the Gram matrix under {self.kernel!r} has NaN or Inf")
        self.eig, _ = experiment.decompose(self.K, cfg["ssl"]["rcond"])
        self.rank = int(self.eig.rank)
        X_train, X_test = jnp.asarray(self.ds.X_train), jnp.asarray(self.ds.X_test)
        self.K_train_views = kernels.gram(self.kernel, X_train, self.views)
        self.K_test_views = kernels.gram(self.kernel, X_test, self.views)
        self.H1_views = kernels.gram(self.kernel, self.held1, self.views)
        self.H2_views = kernels.gram(self.kernel, self.held2, self.views)
        diag = jax.vmap(self.kernel)
        d1, d2 = np.asarray(diag(self.held1, self.held1)), np.asarray(diag(self.held2, self.held2))
        self.base_separation = separation(np.asarray(kernels.gram(self.kernel, self.held1, self.held2))
                                          / np.sqrt(np.outer(d1, d2)))
        self.solutions: dict = {}
        self._base_acc: dict = {}

    def solve(self, points: Sequence[Point]) -> None:
        """Batched solves covering every point of the group (finished or not, so numbers never depend on that)."""
        import numpy as np

        want: dict[str, set] = {}
        max_dim: dict[str, int] = {}
        for p in points:
            ssl = p.config["ssl"]
            for o in ssl["objectives"]:
                want.setdefault(o, set()).add(_hyper(o, ssl))
                max_dim[o] = max(max_dim.get(o, 0), ssl["dim"])
        for o, hypers in want.items():
            hypers = sorted(hypers)
            dim = min(max_dim[o], self.rank)
            if o == "barlow" and self.pairs is None:
                continue
            coefs, ws, method = solve_batch(o, self.K, self.eig, self.A, self.pairs, [h[0] for h in hypers],
                                            [h[1] for h in hypers], dim)
            coefs, ws = np.asarray(coefs), np.asarray(ws)
            for i, h in enumerate(hypers):
                self.solutions[(o, h)] = (coefs[i], ws[i], method)

    def base_accuracy(self, ev: Mapping) -> dict:
        import numpy as np

        from kernel_ssl_jax import evaluate, kernels

        k = _canonical(ev)
        if k not in self._base_acc:
            ds = self.ds
            y_tr, y_te = np.asarray(ds.y_train), np.asarray(ds.y_test)
            nc = int(max(y_tr.max(), y_te.max())) + 1
            Xtr, Xte = ds.X_train, ds.X_test
            Ktr = np.asarray(kernels.gram(self.kernel, Xtr))
            Kte = np.asarray(kernels.gram(self.kernel, Xte, Xtr))

            def predict(idx):
                return evaluate.kernel_ridge_classify(Ktr[np.ix_(idx, idx)], y_tr[idx], Kte[:, idx],
                                                      reg=ev["kernel_ridge_reg"], n_classes=nc)

            res = evaluate.accuracy_vs_labels(predict, y_tr, y_te, ev["labels_per_class"], ev["n_draws"], ev["seed"])
            self._base_acc[k] = {b: {**e, "probe": "kernel_ridge"} for b, e in res.items()}
        return self._base_acc[k]


def _hyper(objective: str, ssl: Mapping) -> tuple[float, float]:
    # Only the hyper-parameters an objective uses: barlow ignores lam and beta, only vicreg uses beta.
    if objective == "barlow":
        return (0.0, 0.0)
    return (float(ssl["lam"]), float(ssl["beta"]) if objective == "vicreg" else 0.0)


def _probe(name: str, F_train, F_test, y_tr, ev: Mapping, nc: int):
    import numpy as np

    from kernel_ssl_jax import evaluate

    if name == "knn":
        return lambda idx: evaluate.knn_cosine(F_train[idx], y_tr[idx], F_test, k=min(ev["knn_k"], len(idx)),
                                               n_classes=nc)
    if name == "ridge":
        return lambda idx: evaluate.ridge_probe(F_train[idx], y_tr[idx], F_test, reg=ev["ridge_reg"], n_classes=nc)
    if name == "logistic":
        return lambda idx: evaluate.logistic_probe(F_train[idx], y_tr[idx], F_test, n_classes=nc)
    Ktr, Kte = F_train @ F_train.T, F_test @ F_train.T
    return lambda idx: evaluate.kernel_ridge_classify(Ktr[np.ix_(idx, idx)], y_tr[idx], Kte[:, idx],
                                                      reg=ev["kernel_ridge_reg"], n_classes=nc)


def _evaluate_point(group: _Group, point: Point) -> dict:
    import jax.numpy as jnp
    import numpy as np

    from kernel_ssl_jax import eigenbasis, evaluate, objectives

    cfg = point.config
    ssl, ev = cfg["ssl"], cfg["eval"]
    ds = group.ds
    y_tr, y_te = np.asarray(ds.y_train), np.asarray(ds.y_test)
    nc = int(max(y_tr.max(), y_te.max())) + 1
    dim = ssl["dim"]
    record: dict[str, Any] = {"objectives": {}, "warnings": []}
    try:
        eigenbasis.check_rank(dim, group.rank, ssl["rcond"])
    except ValueError as e:  # a sweep records what a single solve raises, and goes on with the next point
        record["error"] = f"ssl.dim: {e}"
        return record
    for o in ssl["objectives"]:
        coef_full, w_full, method = group.solutions[(o, _hyper(o, ssl))]
        coef, w = jnp.asarray(coef_full[:dim]), w_full[:dim]
        kw = {"pairs": group.pairs} if o == "barlow" else {"A": group.A, "beta": ssl["beta"]}
        loss = float(objectives.loss_from_coef(o, coef, group.K, lam=ssl["lam"], **kw))
        if o == "barlow":
            try:
                eigenbasis.check_barlow_feasible(w, dim, ssl["rcond"])
            except ValueError as e:
                record["warnings"].append(f"{e}; its features beyond are 0")
        F_train = np.asarray(group.K_train_views @ coef.T)
        F_test = np.asarray(group.K_test_views @ coef.T)
        acc = evaluate.accuracy_vs_labels(_probe(ev["main_probe"], F_train, F_test, y_tr, ev, nc), y_tr, y_te,
                                          ev["labels_per_class"], ev["n_draws"], ev["seed"])
        H1 = _normalise_rows(group.H1_views @ coef.T)
        H2 = _normalise_rows(group.H2_views @ coef.T)
        record["objectives"][o] = {
            "loss": loss, "eigenvalues": [float(v) for v in w], "method": method, "probe": ev["main_probe"],
            "accuracy": {b: {"mean": e["mean"], "std": e["std"], "draws": e["draws"]} for b, e in acc.items()},
            "separation": separation(H1 @ H2.T),
        }
    record["base_kernel"] = {"accuracy": group.base_accuracy(ev), "separation": group.base_separation}
    record["kernel"] = repr(group.kernel)
    record["gram_rank_kept"] = group.rank
    return record


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def run_sweep(spec: SweepSpec, *, progress: bool = True, stream=None, max_points: int | None = None) -> dict:
    """Runs (or resumes) a sweep: every unfinished point is computed and appended to `spec.output`.

    Args:
      spec: from `load_sweep` / `parse_sweep`.
      progress: print a progress line per point (points done, elapsed, time left) to `stream` (stderr).
      max_points: stop after computing this many new points (for tests and partial runs).

    Returns:
      `{"output", "total", "skipped", "computed", "seconds"}`.

    Raises:
      ConfigError: data-dependent checks (label budgets, sizes, augmentations), before anything is written; or
        another process holding the results file.
    """
    stream = stream if stream is not None else sys.stderr
    start = time.perf_counter()
    try:  # before any computation: a bad output path fails at once
        _outputs.check_output_file(spec.output, "sweep.output")
    except _outputs.OutputError as e:
        raise ConfigError(str(e)) from None
    cache = _Cache()
    from kernel_ssl_jax.lab import experiment

    # Data-dependent validation for every point before the results file is touched.
    for p in spec.points:
        try:
            experiment.check_against_data(p.config, cache.dataset(p.config))
        except ConfigError as e:
            raise ConfigError(f"sweep point {p.index} {_canonical(p.params)}: {e}") from None
    out = spec.output
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another kssl sweep is writing {str(out)!r}; wait for it or choose another output") \
                from None
        done = {record_key(r) for r in read_results(out, repair=True)}
        todo = [p for p in spec.points if p.key not in done]
        skipped = len(spec.points) - len(todo)
        total = len(spec.points)

        def say(text):
            if progress:
                stream.write(f"[kssl] sweep: {text}\n")
                stream.flush()

        say(f"{total} points, {skipped} already in {out}, {len(todo)} to run")
        groups: dict[str, list[Point]] = {}
        for p in spec.points:
            groups.setdefault(_group_key(p.config), []).append(p)
        computed, t_work = 0, time.perf_counter()
        for members in groups.values():
            pending = [p for p in members if p.key not in done]
            if not pending:
                continue
            if max_points is not None and computed >= max_points:
                break
            t0 = time.perf_counter()
            group = _Group(members[0].config, cache)
            group.solve(members)
            t_group = time.perf_counter() - t0
            for p in pending:
                if max_points is not None and computed >= max_points:
                    break
                t1 = time.perf_counter()
                result = _evaluate_point(group, p)
                record = {"key": p.key, "index": p.index, "params": p.params, "config": p.config, **result,
                          "timings": {"group": t_group, "point": time.perf_counter() - t1}}
                append_line(fd, record)
                done.add(p.key)
                computed += 1
                elapsed = time.perf_counter() - t_work
                left = elapsed / computed * (len(todo) - computed)
                say(f"{skipped + computed}/{total} points done, {_fmt_time(time.perf_counter() - start)} elapsed, "
                    f"~{_fmt_time(left)} left")
    finally:
        os.close(fd)
    return {"output": str(out), "total": len(spec.points), "skipped": skipped, "computed": computed,
            "seconds": time.perf_counter() - start}
