"""The figures of a run (`kssl run` draws them; `kssl report` redraws them from the run folder alone).

One drawing function per figure, so that a run and its report produce the same bytes.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kernel_ssl_jax.lab.config import ConfigError

__all__ = ["KERNEL_HEATMAPS", "figure_accuracy", "figure_kernels", "figure_regime", "figure_spectrum",
           "load_kernel_heatmaps"]


KERNEL_HEATMAPS = "kernels.npz"


def load_kernel_heatmaps(path: str | Path) -> dict[str, np.ndarray]:
    """Reads and checks a run's `kernels.npz` (written by `kssl run`, see `experiment.write_run`).

    Returns:
      `{"names": (P,) str, "kernels": (P, n, n), "labels": (n,), "test_index": (n,)}`: `names[0]` is `"base"`,
      the others are objectives; `kernels[p]` is the normalised kernel on the test samples `test_index`, sorted by
      `labels`.

    Raises:
      ConfigError: the file is missing, not an .npz archive, or lacks an array or has inconsistent shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{str(path)!r} not found: 'kssl run' writes it into the run folder")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ConfigError(f"{str(path)!r} is not a valid kernels.npz: {e}") from None
    missing = [k for k in ("names", "kernels", "labels", "test_index") if k not in data]
    if missing:
        raise ConfigError(f"{str(path)!r} lacks the array(s) {', '.join(missing)}")
    names, kmats, labels = data["names"], data["kernels"], data["labels"]
    n = labels.shape[0] if labels.ndim == 1 else -1
    if (n < 1 or names.ndim != 1 or kmats.shape != (names.shape[0], n, n) or data["test_index"].shape != (n,)
            or names.shape[0] < 1):
        raise ConfigError(f"{str(path)!r} has inconsistent shapes: names {names.shape}, kernels {kmats.shape}, "
                          f"labels {labels.shape}, test_index {data['test_index'].shape}")
    return data


def figure_kernels(heatmaps: Mapping[str, np.ndarray], path: str | Path) -> None:
    """Draws `kernels.png`: one heat map per kernel of `heatmaps` (see `load_kernel_heatmaps`), class boundaries
    as white lines. Used by `kssl run` (on the arrays it saves) and by `kssl report` (on the saved file)."""
    from matplotlib.figure import Figure

    names, kmats, ys = heatmaps["names"], np.asarray(heatmaps["kernels"]), np.asarray(heatmaps["labels"])
    titles = ["base kernel k" if str(n) == "base" else f"induced k* ({n})" for n in names]
    fig = Figure(figsize=(3.3 * len(titles), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(titles)))
    bounds = np.flatnonzero(np.diff(ys)) + 0.5
    for ax, title, G in zip(axes, titles, kmats, strict=True):
        im = ax.imshow(G, cmap="viridis", interpolation="nearest")
        for b in bounds:
            ax.axhline(b, color="w", lw=0.4)
            ax.axvline(b, color="w", lw=0.4)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"normalised kernels k(x,y)/sqrt(k(x,x)k(y,y)) on {ys.size} test samples sorted by label")
    fig.savefig(path, dpi=110)


def figure_accuracy(accuracy: Mapping, objectives: Sequence[str], path: str | Path) -> None:
    """`accuracy.png` of a run: left, each objective's main probe, the base kernel, the supervised reference and the
    peers (`peer:<name>`, dotted);
    right, every probe (colour: representation, line style: probe). `accuracy` as in `results.json`."""
    from matplotlib.figure import Figure

    keys = list(next(iter(accuracy.values())))
    x = np.arange(len(keys))
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    main = [m for m in [*objectives, "base_kernel", "supervised"] if m in accuracy]
    main += [m for m in accuracy if m.startswith("peer:")]  # reference methods (eval.peers)
    others = [m for m in accuracy if m not in main and "/" in m]
    # One colour per representation (objective, base kernel), one line style per probe.
    families = list(dict.fromkeys(m.split("/")[0] for m in accuracy))
    colours = {f: f"C{i % 10}" for i, f in enumerate(families)}
    probes = list(dict.fromkeys(m.split("/")[1] for m in others))
    styles = dict(zip(probes, ["-", "--", ":", "-."] * 3, strict=False))
    for ax, rows, title in ((axes[0], main, "main probe, base kernel, supervised and peers"),
                            (axes[1], others, "every probe (colour: representation, line: probe)")):
        for m in rows:
            mean = [accuracy[m][k]["mean"] for k in keys]
            std = [accuracy[m][k]["std"] for k in keys]
            family, _, probe = m.partition("/")
            style = styles.get(probe, {"base_kernel": "--", "supervised": ":"}.get(m, ":" if m.startswith("peer:")
                                                                                    else "-"))
            ax.errorbar(x, mean, yerr=std, color=colours[family], linestyle=style, marker="o", capsize=3, label=m)
        ax.set_xticks(x, keys)
        ax.set_xlabel("labels per class")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if rows:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("test accuracy")
    fig.savefig(path, dpi=110)


def figure_spectrum(eigenvalues: Mapping, ssl: Mapping, path: str | Path) -> None:
    """`spectrum.png` of a run: the Gram's eigenvalues with the `rcond` cut-off and `lam`, and each objective's kept
    target eigenvalues. `eigenvalues` and `ssl` as in `results.json` (`eigenvalues`, `config.ssl`)."""
    from matplotlib.figure import Figure

    s = np.asarray(eigenvalues["gram"], dtype=float)
    s = s[s > 0]
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    ax0.loglog(np.arange(1, s.size + 1), s, label="eigenvalues of K")
    if s.size:
        kept = eigenvalues.get("gram_rank_kept", "?")
        ax0.axhline(ssl["rcond"] * s.max(), color="r", ls="--", lw=1, label=f"cut-off rcond x max ({kept} kept)")
    if ssl["lam"] > 0:
        ax0.axhline(ssl["lam"], color="k", ls=":", lw=1, label=f"lam = {ssl['lam']:g}")
    ax0.set_xlabel("index")
    ax0.set_ylabel("eigenvalue")
    ax0.set_title(f"Gram of the {len(eigenvalues['gram'])} training views")
    ax0.legend(fontsize=8)
    for o, w in eigenvalues.get("targets", {}).items():
        ax1.plot(np.arange(1, len(w) + 1), w, marker="o", label=o)
    ax1.set_xlabel("index")
    ax1.set_ylabel("eigenvalue")
    ax1.set_yscale("symlog", linthresh=1e-3)
    ax1.set_title("eigenvalues of the targets kept by each solver")
    ax1.legend(fontsize=8)
    fig.savefig(path, dpi=110)


def figure_regime(results: Mapping, path: str | Path) -> None:
    """`regime.png` of `kssl compare --network`: each link's distance against the width, log-log, with its fitted
    slope in the legend, and the Monte Carlo rate `width^-1/2` for reference. `results` as in its `results.json`
    (`rows`, `slopes`, `links`, `settings`)."""
    from matplotlib.figure import Figure

    rows, slopes, s = results["rows"], results["slopes"], results["settings"]
    widths = np.asarray([r["width"] for r in rows], dtype=float)
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    styles = ["o-", "v:", "s-", "D-", "^:", "x--"]
    floor = 1e-12  # links at optimisation tolerance may be ~0: drawn at the floor
    for (key, label), style in zip(results["links"].items(), styles * 2, strict=False):
        values = np.maximum(np.asarray([r[key] for r in rows], dtype=float), floor)
        ax.loglog(widths, values, style, label=f"{label} (slope {slopes[key]:+.2f})")
    if widths.size > 1:
        ref = rows[0]["net_ana"] * (widths / widths[0]) ** -0.5
        ax.loglog(widths, ref, color="gray", lw=0.8, ls="--", label="width^-1/2 (Monte Carlo rate)")
    ax.set_xlabel("width" if s["network"] == "mlp" else "channels")
    ax.set_ylabel("distance between normalised induced kernels (held-out)")
    ax.set_title(f"{s['objective']}, {s['network']} depth {s['depth']}, {s['optimizer']} lr {s['learning_rate']:g}, "
                 f"{s['steps']} steps", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
