"""The kernel regime, observed (SPEC.md §7): finite networks against their infinite-width kernels, link by link.

`chain` trains networks of growing width on one SSL objective and measures, on held-out points, the distance
between the normalised induced kernels `k*(x, x') = f(x) . f(x')` of successive models,
`d(K1, K2) = || K1 / ||K1||_F - K2 / ||K2||_F ||_F` (`normalised_distance`, invariant to the scale and to rotations
of the outputs), along two chains:

- NTK chain: the network with every layer trained (centred output `f_theta - f_theta0`, `train_network(...,
  train="all")`) -> its linearisation at `theta0` (`linearize=True`) -> the closed form of `spectral.solve_gram` with
  the empirical NTK of `theta0` -> the closed form with the analytic NTK (`Network.ntk`: `kernels.ntk` / `cntk`);
- NNGP chain: readout-only training (`train="readout"`) -> the closed form with the empirical NNGP
  `psi(x) . psi(y)` -> the closed form with the analytic NNGP (`kernels.nngp` / `cnngp`).

Theory (SPEC §7): the linearised network and the readout solve the same convex problem in function space as their
empirical closed forms (those links are at optimisation tolerance at every width); the empirical kernels converge
to the analytic ones as `width^-1/2`, and the trained network approaches its linearisation as the width grows under
plain gradient descent (not under Adam, whose per-parameter steps do not shrink with the width). `loglog_slope`
fits each link's log-log slope against the width. With labels, each model's features are also scored with few
labels (cosine k-NN and ridge probes, `compare.downstream_accuracy`, the same draws for all).

Why one output by default: when all layers train, the ridge `lam W W^*` has an `(M, M)` form only for `M = 1` (the
squared parameter distance, `network_training` module doc); at `lam = 0` the held-out induced kernel
`k_X(x)^T K^+ A K^+ k_X(x')` amplifies any optimisation or width error by `K^+`.

`run_cli` is `kssl compare --network mlp|cnn --widths ...` on a configured data set (digits by default);
`figures.figure_regime` draws its log-log figure from `results.json`; `experiments/study_kernel_regime.py --parts
chain` calls `chain` too.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import numpy as np
import optax

from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import network_training as _network_training
from kernel_ssl_jax import networks as _networks
from kernel_ssl_jax import objectives as _objectives
from kernel_ssl_jax import spectral as _spectral
from kernel_ssl_jax import validation as _validation

__all__ = [
    "NETWORKS",
    "OPTIMIZERS",
    "LINKS",
    "MODELS",
    "CLI_DEFAULTS",
    "JACOBIAN_BUDGET",
    "Chain",
    "chain",
    "format_chain",
    "loglog_slope",
    "make_network",
    "normalised_distance",
    "run_cli",
]

NETWORKS = ("mlp", "cnn")
OPTIMIZERS = ("sgd", "adam")

LINKS = {
    "net_lin": "network - linearised",
    "lin_emp": "linearised - closed form (empirical NTK)",
    "emp_ana": "closed forms: empirical - analytic NTK",
    "net_ana": "network - closed form (analytic NTK)",
    "ro_emp": "readout - closed form (empirical NNGP)",
    "emp_ana_nngp": "closed forms: empirical - analytic NNGP",
}
"""The links of the chain (keys of each row of `Chain.rows`) and what they compare."""

JACOBIAN_BUDGET = 2**26
"""Numbers held by one block of Jacobians of the empirical NTK by default (512 MiB in float64)."""

MODELS = ("network", "linearised", "empirical_ntk", "analytic_ntk", "readout", "empirical_nngp", "analytic_nngp")
"""The representations scored downstream (`Chain.accuracy`); the analytic ones do not depend on the width."""


def normalised_distance(K1, K2) -> float:
    """`|| K1 / ||K1||_F - K2 / ||K2||_F ||_F`: between 0 and 2, blind to the scale of either kernel."""
    K1, K2 = np.asarray(K1), np.asarray(K2)
    return float(np.linalg.norm(K1 / max(np.linalg.norm(K1), 1e-300) - K2 / max(np.linalg.norm(K2), 1e-300)))


def loglog_slope(widths: Sequence, values: Sequence) -> float:
    """The least-squares slope of `log(values)` against `log(widths)` (NaN with fewer than two positive points)."""
    w, v = np.asarray(widths, dtype=float), np.asarray(values, dtype=float)
    ok = (w > 0) & (v > 0) & np.isfinite(v)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(w[ok]), np.log(v[ok]), 1)[0])


def make_network(network: str, depth: int, width: int, out_dim: int, image_shape=None,
                 readout: str = "flatten") -> _networks.Network:
    """`networks.mlp(depth, width, out_dim)` or `networks.cnn(depth, width, (H, W, 1), out_dim, readout=readout)`.

    Raises:
      ValueError: unknown `network`; `"cnn"` without `image_shape` `(H, W)` (data that are not images).
    """
    _validation.choice("network", network, NETWORKS)
    if network == "mlp":
        return _networks.mlp(depth, width, out_dim=out_dim)
    if image_shape is None:
        raise ValueError("network='cnn' needs images: the data set has plain feature vectors (image_shape None); "
                         "use network='mlp'")
    return _networks.cnn(depth, width, (*tuple(image_shape), 1), out_dim=out_dim, readout=readout)


class Chain(NamedTuple):
    """Result of `chain`.

    Attributes:
      rows: one dict per width: `width`, the distances of `LINKS`, the final losses `loss_network`,
        `loss_linearised`, `loss_readout`, the closed-form losses `loss_empirical_ntk`, `loss_empirical_nngp`, and
        `seconds`.
      slopes: `{link: log-log slope against width}`.
      accuracy: `{model: [per-width accuracy]}` for the finite models and `{model: accuracy}` for the analytic ones
        (`compare.downstream_accuracy` format), or `{}` without labels.
      settings: the arguments that define the run (JSON-ready).
    """

    rows: list
    slopes: dict
    accuracy: dict
    settings: dict


def _closed_form_features(objective, Gram_rows, Gram_views, A, pairs, dim, lam, beta):
    """Features `Gram_rows @ C^T` of the closed form of `spectral.solve_gram` on the views' Gram, and its loss."""
    kw = dict(pairs=pairs) if objective == "barlow" else dict(A=A, beta=beta)
    coef = np.asarray(_spectral.solve_gram(objective, Gram_views, dim=dim, lam=lam, **kw)[0])
    loss = float(_objectives.loss_from_coef(objective, coef, Gram_views, lam=lam, **kw))
    return np.asarray(Gram_rows) @ coef.T, loss


def chain(objective: str, X, A=None, *, X_test, network: str = "mlp", widths: Sequence[int] = (64, 256, 1024),
          depth: int = 2, image_shape=None, readout: str = "flatten", dim: int = 1, lam: float = 0.1,
          beta: float = 1.0, pairs=None, steps: int = 3000, learning_rate: float = 1.5e-3, optimizer: str = "sgd",
          init_scale: float = 0.1, block_size: int | None = None, seed: int = 0, X_probe=None, y_probe=None,
          y_test=None, labels_per_class: Sequence = (1,), n_draws: int = 5, knn_k: int = 1, ridge_reg: float = 0.1,
          progress: Callable[[str], None] | None = None) -> Chain:
    """The chain network -> linearised -> empirical closed form -> analytic closed form, per width (module doc).

    Args:
      objective: `"contrastive"`, `"vicreg"` or `"barlow"` (`train_network` does not train `vicreg_hard`).
      X: `(N, d)` training views (flat rows; the CNN reads them as `image_shape` images).
      A: `(N, N)` relationship matrix (contrastive, vicreg).
      X_test: `(m, d)` held-out points on which the induced kernels are compared.
      network: `"mlp"` or `"cnn"` (3x3 convolutions, `readout` `"flatten"` or `"gap"`).
      widths: hidden widths (MLP) or channels (CNN), each >= 1.
      depth: hidden (MLP) or convolutional (CNN) layers.
      image_shape: `(H, W)` of one-channel images (CNN only).
      dim: outputs M; `lam > 0` needs `dim = 1` (module doc).
      lam, beta, pairs: as for `train_network` / `spectral.solve_gram`.
      steps: full-batch optimisation steps of every trained model.
      learning_rate: step size of `optimizer`.
      optimizer: `"sgd"` (plain gradient descent, the NTK theory's) or `"adam"`.
      init_scale: `train_network`'s starting perturbation.
      block_size: examples per Jacobian block of the empirical NTK (default: as many as fit in
        `JACOBIAN_BUDGET` numbers; the blocks are unrolled in one compiled program, so fewer compile faster).
      seed: the network of width `w` is drawn with `jax.random.key(seed + w)`.
      X_probe, y_probe, y_test: labelled pool and the labels of `X_test`: turn on the downstream accuracy.
      labels_per_class, n_draws, knn_k, ridge_reg: as for `compare.downstream_accuracy`.
      progress: called with one line per finished width.

    Returns:
      A `Chain`.

    Raises:
      ValueError: unknown `network`/`optimizer`, bad widths or sizes, what `train_network` or the closed form
        rejects (e.g. `vicreg_hard`, `lam > 0` with `dim > 1`), labels given only in part.
      FloatingPointError: a training diverged (lower `learning_rate`).
    """
    from kernel_ssl_jax.lab import compare as _compare

    _network_training.check_objective(objective)
    _validation.choice("network", network, NETWORKS)
    _validation.choice("optimizer", optimizer, OPTIMIZERS)
    widths = [_validation.integer("widths", w, minimum=1) for w in widths]
    if not widths:
        raise ValueError("widths must hold at least one width, got []")
    depth = _validation.integer("depth", depth, minimum=1)
    dim = _validation.integer("dim", dim, minimum=1)
    lam = float(_validation.real("lam", lam))
    steps = _validation.integer("steps", steps)
    learning_rate = float(_validation.real("learning_rate", learning_rate, strict=True))
    X = np.asarray(_validation.array("X", X))
    X_test = np.asarray(_validation.array("X_test", X_test, d=X.shape[1]))
    labelled = [v is not None for v in (X_probe, y_probe, y_test)]
    if any(labelled) and not all(labelled):
        raise ValueError("downstream accuracy needs all of X_probe, y_probe and y_test (or none of them)")
    X_probe = np.asarray(_validation.array("X_probe", X_probe, d=X.shape[1])) if all(labelled) else X[:0]
    N, m = X.shape[0], X_test.shape[0]
    rows_all = np.concatenate([X, X_test, X_probe])  # views, held-out, probe pool
    test_rows, probe_rows = slice(N, N + m), slice(N + m, None)
    graph = dict(pairs=pairs) if objective == "barlow" else dict(A=_graphs.check_adjacency(A, N))

    def make(w):
        return make_network(network, depth, w, dim, image_shape, readout)

    def score(F):
        return _compare.downstream_accuracy(F[probe_rows], y_probe, F[test_rows], y_test, labels_per_class,
                                            n_draws=n_draws, knn_k=knn_k, ridge_reg=ridge_reg, seed=seed)

    # The analytic closed forms do not depend on the width.
    analytic = {}
    for name, kernel in (("ntk", make(widths[0]).ntk), ("nngp", make(widths[0]).nngp)):
        sol = _spectral.solve(objective, X, kernel=kernel, dim=dim, lam=lam, beta=beta, **graph)
        analytic[name] = np.asarray(sol.features(rows_all))
    K_ana = {name: F[test_rows] @ F[test_rows].T for name, F in analytic.items()}
    accuracy: dict = {}
    if all(labelled):
        accuracy = {"analytic_ntk": score(analytic["ntk"]), "analytic_nngp": score(analytic["nngp"])}
        accuracy.update({k: [] for k in MODELS if not k.startswith("analytic")})

    rows = []
    for w in widths:
        start = time.perf_counter()
        net = make(w)
        key = jax.random.key(seed + w)
        params0 = jax.jit(net.init, static_argnums=1)(key, (X.shape[1],))
        opt = optax.sgd(learning_rate) if optimizer == "sgd" else optax.adam(learning_rate)
        common = dict(network=net, key=key, params0=params0, steps=steps, lam=lam, beta=beta, optimizer=opt,
                      **graph)
        s_net = _network_training.train_network(objective, X, train="all", init_scale=init_scale, **common)
        s_lin = _network_training.train_network(objective, X, train="all", linearize=True, init_scale=init_scale,
                                                **common)
        s_ro = _network_training.train_network(objective, X, train="readout", **common)
        n_params = sum(p.size for p in jax.tree_util.tree_leaves(params0))
        block = block_size or max(1, JACOBIAN_BUDGET // (dim * n_params))
        Theta = np.asarray(_networks.empirical_ntk(net.apply, params0, rows_all, X, block_size=block))
        Psi_gram = np.asarray(_networks.empirical_nngp(net.features, params0, rows_all, X))
        F = {
            "network": np.asarray(s_net.features(rows_all)),
            "linearised": np.asarray(s_lin.features(rows_all)),
            "readout": np.asarray(s_ro.features(rows_all)),
        }
        F["empirical_ntk"], loss_emp_ntk = _closed_form_features(objective, Theta, Theta[:N], graph.get("A"),
                                                                 pairs, dim, lam, beta)
        F["empirical_nngp"], loss_emp_nngp = _closed_form_features(objective, Psi_gram, Psi_gram[:N],
                                                                   graph.get("A"), pairs, dim, lam, beta)
        K = {name: f[test_rows] @ f[test_rows].T for name, f in F.items()}
        row = dict(width=w,
                   net_lin=normalised_distance(K["network"], K["linearised"]),
                   lin_emp=normalised_distance(K["linearised"], K["empirical_ntk"]),
                   emp_ana=normalised_distance(K["empirical_ntk"], K_ana["ntk"]),
                   net_ana=normalised_distance(K["network"], K_ana["ntk"]),
                   ro_emp=normalised_distance(K["readout"], K["empirical_nngp"]),
                   emp_ana_nngp=normalised_distance(K["empirical_nngp"], K_ana["nngp"]),
                   loss_network=float(s_net.loss), loss_linearised=float(s_lin.loss), loss_readout=float(s_ro.loss),
                   loss_empirical_ntk=loss_emp_ntk, loss_empirical_nngp=loss_emp_nngp)
        if all(labelled):
            for name, f in F.items():
                accuracy[name].append(score(f))
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        if progress is not None:
            progress(f"width {w}: " + ", ".join(f"{k} {row[k]:.4f}" for k in LINKS) + f" ({row['seconds']:.0f} s)")
    slopes = {k: loglog_slope(widths, [r[k] for r in rows]) for k in LINKS}
    settings = dict(objective=objective, network=network, widths=widths, depth=depth,
                    image_shape=None if image_shape is None else list(image_shape),
                    readout=readout if network == "cnn" else None, dim=dim, lam=lam, beta=float(beta), steps=steps,
                    learning_rate=learning_rate, optimizer=optimizer, init_scale=float(init_scale), seed=seed,
                    n_views=N, n_test=m, n_probe=int(X_probe.shape[0]))
    return Chain(rows=rows, slopes=slopes, accuracy=accuracy, settings=settings)


def format_chain(result: Chain) -> str:
    """A plain-text table: one row per width, one column per link, the fitted slopes last; then the accuracies."""
    keys = list(LINKS)
    head = ["width", *keys]
    lines = ["  ".join(f"{h:>12s}" for h in head)]
    for r in result.rows:
        lines.append("  ".join([f"{r['width']:>12d}", *(f"{r[k]:12.4g}" for k in keys)]))
    lines.append("  ".join([f"{'slope':>12s}", *(f"{result.slopes[k]:+12.2f}" for k in keys)]))
    lines += ["", "links: " + "; ".join(f"{k} = {v}" for k, v in LINKS.items())]
    if result.accuracy:
        widths = [r["width"] for r in result.rows]
        lines += ["", "downstream accuracy (mean ± std over label draws), columns: widths, then the kernel limit"]
        budgets = list(result.accuracy["analytic_ntk"]["knn"])
        for probe in ("knn", "ridge"):
            for b in budgets:
                lines.append(f"{probe} @ {b}/class")
                for finite, limit in (("network", "analytic_ntk"), ("linearised", "analytic_ntk"),
                                      ("empirical_ntk", "analytic_ntk"), ("readout", "analytic_nngp"),
                                      ("empirical_nngp", "analytic_nngp")):
                    cells = [f"{a[probe][b]['mean']:.3f} ± {a[probe][b]['std']:.3f}"
                             for a in result.accuracy[finite]]
                    lim = result.accuracy[limit][probe][b]
                    lines.append(f"  {finite:15s} " + "  ".join(f"w{w}: {c}" for w, c in zip(widths, cells,
                                                                                         strict=True))
                                 + f"  | {limit}: {lim['mean']:.3f} ± {lim['std']:.3f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# The `kssl compare --network` job


CLI_DEFAULTS = (
    "data.max_train=20",
    "data.max_test=100",
    "views.n_views=2",
    "graph.knn=3",
    "ssl.dim=1",
    "ssl.lam=0.1",
    "eval.labels_per_class=[1]",
    "eval.n_draws=10",
)
"""`kssl compare --network` defaults: 20 digits x 2 views (2 per class, so 1 label per class can be drawn), a
3-NN graph on top of the view cliques, one output with `lam = 0.1` (module doc), 100 held-out digits."""


def run_cli(cfg: Mapping, *, objective: str, network: str, widths: Sequence[int], depth: int, readout: str,
            steps: int, learning_rate: float, optimizer: str, init_scale: float, out_dir, progress: bool = True,
            stdout=None, stderr=None) -> dict:
    """`kssl compare --network`: data, views and graph from `cfg`, then `chain`; prints the table and writes
    `<out_dir>/<timestamp>-regime-<network>-<objective>/` with `results.json` and `regime.png` (one rename once
    complete).

    Raises:
      config.ConfigError: bad configuration or data, or an unusable `out_dir`; ValueError: what `chain` rejects
        (nothing written); FloatingPointError: a training diverged.
    """
    from kernel_ssl_jax.lab import compare as _compare
    from kernel_ssl_jax.lab import experiment as _experiment
    from kernel_ssl_jax.lab import figures as _figures
    from kernel_ssl_jax.lab import outputs as _outputs

    stdout = stdout if stdout is not None else sys.stdout
    _network_training.check_objective(objective)  # before any computation: bad input fails at once
    _validation.choice("network", network, NETWORKS)
    try:
        where = _outputs.check_output_dir(out_dir, "--out")
    except _outputs.OutputError as e:
        raise _experiment.ConfigError(str(e)) from None
    start = time.perf_counter()
    prog = _experiment.Progress(progress, stderr)
    with prog.stage("data", cfg["data"]["name"], announce=False):
        ds = _experiment.load_data(cfg)
        _experiment.check_against_data(cfg, ds)
        if network == "cnn" and ds.image_shape is None:
            raise _experiment.ConfigError(f"--network cnn needs images; data set {ds.name!r} has plain feature "
                                          "vectors")
    with prog.stage("views", f"{ds.X_train.shape[0]} samples x {cfg['views']['n_views']} views"):
        views, groups = _experiment.build_views(cfg, ds)
        A = None if objective == "barlow" else _experiment.build_graph(cfg, views, groups)
        pairs = _graphs.pairs_from_groups(groups) if objective == "barlow" else None
    ssl, ev = cfg["ssl"], cfg["eval"]
    lines = []
    detail = (f"{objective}, {network} depth {depth}, widths {list(widths)}, {optimizer} lr {learning_rate:g}, "
              f"{steps} steps")
    with prog.stage("chain", detail):
        result = chain(objective, views, A, X_test=ds.X_test, network=network, widths=widths, depth=depth,
                       image_shape=ds.image_shape, readout=readout, dim=ssl["dim"], lam=ssl["lam"],
                       beta=ssl["beta"], pairs=pairs, steps=steps, learning_rate=learning_rate, optimizer=optimizer,
                       init_scale=init_scale, seed=cfg["views"]["seed"], X_probe=ds.X_train, y_probe=ds.y_train,
                       y_test=ds.y_test, labels_per_class=ev["labels_per_class"], n_draws=ev["n_draws"],
                       knn_k=ev["knn_k"], ridge_reg=ev["ridge_reg"],
                       progress=lambda line: (lines.append(line), prog.note(line)))
    results = {"rows": result.rows, "slopes": result.slopes, "accuracy": result.accuracy,
               "settings": result.settings, "links": LINKS,
               "data": {"name": ds.name, "n_sources": int(ds.X_train.shape[0]), "n_views": int(views.shape[0]),
                        "n_test": int(ds.X_test.shape[0])},
               "config": cfg}
    with prog.stage("write", "results.json, regime.png"), \
            _experiment.new_run_folder(where, f"regime-{network}-{objective}") as (tmp, final):
        results["run_dir"] = str(final)
        results["timings"] = dict(prog.timings, total=time.perf_counter() - start)
        _experiment.atomic_write(tmp / "results.json",
                                 json.dumps(_compare.jsonable(results), indent=1, allow_nan=True) + "\n")
        _figures.figure_regime(results, tmp / "regime.png")
    print(f"\nthe kernel regime: {detail}; {views.shape[0]} views of {ds.X_train.shape[0]} {ds.name} samples, "
          f"dim {ssl['dim']}, lam {ssl['lam']:g}; distances between normalised induced kernels on "
          f"{ds.X_test.shape[0]} held-out samples\n", file=stdout)
    print(format_chain(result), file=stdout)
    print(f"total time {time.perf_counter() - start:.1f} s", file=stdout)
    print(f"run folder: {final}", file=stdout)
    return results
