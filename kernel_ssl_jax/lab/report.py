"""`kssl report`: figures (PNG) and a markdown summary rebuilt from results files alone.

Sources:
  - a `kssl run` folder or its `results.json`: `accuracy.png` (test accuracy against labels per class for every
    objective's main probe, the base kernel and the supervised reference, and every probe), `spectrum.png` (Gram
    eigenvalues and the targets' kept eigenvalues), `kernels.png` (heat maps of the normalised base and induced
    kernels on test samples sorted by label, from the run's `kernels.npz`) and `report.md` (the accuracy table,
    losses, timings). `kssl run` draws its own figures with the same functions (`figure_accuracy`,
    `figure_spectrum`, `figure_kernels`), so a rebuilt figure equals the original;
  - a `kssl sweep` JSONL file: for every swept key, `sweep_<key>.png` (accuracy at one label budget against the
    key's values, one panel per objective, one line per value of the other swept key with the fewest values, the
    rest averaged; the base kernel dashed), `separation_<key>.png` (separation ratio of held-out augmented pairs for
    the induced and base kernels); for every pair of swept keys, `heatmap_accuracy_<x>__<y>.png` and
    `heatmap_separation_<x>__<y>.png` (the same two metrics over the grid of the two keys, one annotated panel per
    objective and one for the base kernel, other swept keys averaged); and `report.md` (one table row per point).

Nothing is recomputed: no data set, kernel or solver is touched, only JSON and the run's `kernels.npz`.

Example:
  >>> build_report("runs/sweep-lam-dim.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kernel_ssl_jax.lab import config as _config
from kernel_ssl_jax.lab.figures import (
    KERNEL_HEATMAPS,
    figure_accuracy,
    figure_kernels,
    figure_spectrum,
    load_kernel_heatmaps,
)

__all__ = [
    "build_report", "figure_accuracy", "figure_kernels", "figure_spectrum", "load_kernel_heatmaps", "load_source",
    "sweep_table",
]

ConfigError = _config.ConfigError


def load_source(source: str | Path) -> tuple[str, Any, Path]:
    """Reads a results source: returns `(kind, content, default_out_dir)`, kind `"run"` or `"sweep"`."""
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "results.json").is_file():
            path = path / "results.json"
        else:
            found = sorted(path.glob("*.jsonl"))
            if len(found) != 1:
                raise ConfigError(f"{str(source)!r} holds neither results.json nor exactly one .jsonl file")
            path = found[0]
    if not path.is_file():
        raise ConfigError(f"results source {str(source)!r} not found")
    if path.suffix == ".jsonl":
        from kernel_ssl_jax.lab import sweep

        records = [r for r in sweep.read_results(path) if "objectives" in r]
        if not records:
            raise ConfigError(f"{str(path)!r} holds no finished sweep points")
        return "sweep", records, path.with_name(path.stem + "-report")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(content, dict) or "accuracy" not in content:
        raise ConfigError(f"{str(path)!r} is not a 'kssl run' results.json (no 'accuracy')")
    check_run_results(content, path)
    return "run", content, path.parent / "report"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_run_results(content: Mapping, path: str | Path = "results.json") -> None:
    """Checks the fields of a run's `results.json` that the report reads, so that a damaged or hand-edited file is
    one clear error naming the field, not a half-drawn report.

    Raises:
      ConfigError: a missing or empty field, or one of the wrong type (the message names the field and the file).
    """
    where = str(path)

    def bad(field: str, problem: str):
        return ConfigError(f"{where!r}: field {field!r} {problem}; rerun 'kssl run' to rewrite the run folder")

    acc = content.get("accuracy")
    if not isinstance(acc, Mapping):
        raise bad("accuracy", f"must be a table of methods, got {type(acc).__name__}")
    if not acc:
        raise bad("accuracy", "is empty (no method was evaluated)")
    budgets = None
    for method, entry in acc.items():
        if not isinstance(entry, Mapping) or not entry:
            raise bad(f"accuracy.{method}", "is empty or not a table of label budgets")
        if budgets is None:
            budgets = list(entry)
        elif list(entry) != budgets:
            raise bad(f"accuracy.{method}", f"has label budgets {list(entry)}, other methods {budgets}")
        for budget, cell in entry.items():
            for stat in ("mean", "std"):
                if not isinstance(cell, Mapping) or not _is_number(cell.get(stat)):
                    raise bad(f"accuracy.{method}.{budget}.{stat}", "is missing or not a number")
    cfg = content.get("config")
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("ssl"), Mapping):
        raise bad("config.ssl", "is missing")
    ssl = cfg["ssl"]
    if not isinstance(ssl.get("objectives"), list):
        raise bad("config.ssl.objectives", "is missing or not a list")
    for key in ("dim", "lam", "rcond"):
        if not _is_number(ssl.get(key)):
            raise bad(f"config.ssl.{key}", "is missing or not a number")
    eig = content.get("eigenvalues", {})
    if not isinstance(eig, Mapping) or not isinstance(eig.get("gram", []), list) \
            or not isinstance(eig.get("targets", {}), Mapping):
        raise bad("eigenvalues", "must be a table with a list 'gram' and a table 'targets'")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "+".join(str(x) for x in v)
    return str(v)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)


# --------------------------------------------------------------------------------------------------------------------
# A kssl run

def _run_report(res: Mapping, out: Path, run_folder: Path) -> list[str]:
    acc = res["accuracy"]
    budgets = list(next(iter(acc.values())))
    data = res.get("data", {})
    figure_accuracy(acc, res["config"]["ssl"]["objectives"], out / "accuracy.png")
    figures = ["accuracy.png"]
    eigen = res.get("eigenvalues", {})
    if eigen.get("gram"):
        figure_spectrum(eigen, res["config"]["ssl"], out / "spectrum.png")
        figures.append("spectrum.png")
    notes = []
    if (run_folder / KERNEL_HEATMAPS).exists():
        figure_kernels(load_kernel_heatmaps(run_folder / KERNEL_HEATMAPS), out / "kernels.png")
        figures.append("kernels.png")
    else:
        notes.append(f"kernels.png not rebuilt: no {KERNEL_HEATMAPS} in the run folder (runs written before it "
                     f"existed).")

    lines = [f"# Run report: {data.get('name', '?')}", ""]
    lines.append(f"{data.get('n_train', '?')} unlabelled training samples x {res.get('views', {}).get('n_views', '?')}"
                 f" views, {data.get('n_test', '?')} test samples; kernel {res.get('kernel', {}).get('repr', '?')}; "
                 f"dim {res['config']['ssl']['dim']}, lam {res['config']['ssl']['lam']:g}.")
    lines += ["", "Test accuracy (mean ± std over label draws):", ""]
    lines.append("| method | probe | " + " | ".join(budgets) + " |")
    lines.append("|---|---|" + "---|" * len(budgets))
    for m in acc:
        probe = acc[m][budgets[0]].get("probe", "")
        cells = [f"{acc[m][b]['mean']:.3f} ± {acc[m][b]['std']:.3f}" for b in budgets]
        lines.append(f"| {m} | {probe} | " + " | ".join(cells) + " |")
    if res.get("losses"):
        lines += ["", "Losses: " + ", ".join(f"{o} {v:.4g}" for o, v in res["losses"].items())]
    if res.get("timings"):
        lines += ["", "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in res["timings"].items())]
    lines += ["", *notes] if notes else []
    lines += ["", *[f"![{f}]({f})" for f in figures], ""]
    return lines


# --------------------------------------------------------------------------------------------------------------------
# A sweep


def _swept(records: Sequence[Mapping]) -> dict[str, list]:
    keys: dict[str, list] = {}
    for r in records:
        for k, v in r["params"].items():
            vals = keys.setdefault(k, [])
            if json.dumps(v) not in [json.dumps(x) for x in vals]:
                vals.append(v)
    return {k: v for k, v in keys.items() if len(v) > 1}


def _sortable(values: list) -> list:
    try:
        return sorted(values)
    except TypeError:
        return values


def sweep_table(records: Sequence[Mapping], budget: str | None = None) -> tuple[list[str], list[list[str]]]:
    """A table of a sweep: one row per point (swept values, accuracy at `budget` per objective and base kernel,
    separation ratios). Returns `(header, rows)`."""
    swept = list(records[0]["params"])
    objectives = list(dict.fromkeys(o for r in records for o in r["objectives"]))
    b = budget or _budgets(records)[0]
    header = [*swept, *[f"{o} acc@{b}" for o in objectives], f"base acc@{b}",
              *[f"{o} sep" for o in objectives], "base sep"]
    rows = []
    for r in sorted(records, key=lambda r: r["index"]):
        row = [_fmt(r["params"][k]) for k in swept]
        row += [f"{r['objectives'][o]['accuracy'][b]['mean']:.3f}" if o in r["objectives"] else "" for o in objectives]
        row.append(f"{r['base_kernel']['accuracy'][b]['mean']:.3f}")
        row += [_ratio(r["objectives"][o]["separation"]) if o in r["objectives"] else "" for o in objectives]
        row.append(_ratio(r["base_kernel"]["separation"]))
        rows.append(row)
    return header, rows


def _ratio(sep: Mapping) -> str:
    return "n/a" if sep.get("ratio") is None else f"{sep['ratio']:.2f}"


def _budgets(records: Sequence[Mapping]) -> list[str]:
    first = next(iter(records[0]["objectives"].values()))
    return list(first["accuracy"])


def _aggregate(records, key, line_key, value_fn):
    """`{line_value: {x_value: [values]}}` with the other swept keys averaged."""
    out: dict[str, dict] = {}
    for r in records:
        v = value_fn(r)
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            continue
        lv = _fmt(r["params"][line_key]) if line_key else ""
        out.setdefault(lv, {}).setdefault(json.dumps(r["params"][key]), []).append(v)
    return out


def _sweep_figures(records: Sequence[Mapping], out: Path, budget: str) -> list[tuple[str, str]]:
    from matplotlib.figure import Figure

    swept = _swept(records)
    objectives = list(dict.fromkeys(o for r in records for o in r["objectives"]))
    figures = []
    for key, values in swept.items():
        xs = _sortable(values)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
        others = [k for k in swept if k != key]
        line_key = min(others, key=lambda k: len(swept[k])) if others else None
        positions = {json.dumps(v): (float(v) if numeric else i) for i, v in enumerate(xs)}
        positive = [float(v) for v in xs if numeric and v > 0]
        log = bool(positive) and min(xs) >= 0 and max(positive) / min(positive) >= 50
        for metric, ylabel, fname in (
            ("accuracy", f"test accuracy at {budget} labels/class", f"sweep_{_safe(key)}.png"),
            ("separation", "separation ratio pos/neg (held-out pairs)", f"separation_{_safe(key)}.png"),
        ):
            n = len(objectives)
            fig = Figure(figsize=(3.6 * n + 1, 3.8), layout="constrained")
            axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
            for ax, o in zip(axes, objectives, strict=True):
                def val(r, o=o, metric=metric):
                    if o not in r["objectives"]:
                        return None
                    e = r["objectives"][o]
                    return e["accuracy"][budget]["mean"] if metric == "accuracy" else e["separation"]["ratio"]

                def base(r, metric=metric):
                    e = r["base_kernel"]
                    return e["accuracy"][budget]["mean"] if metric == "accuracy" else e["separation"]["ratio"]

                for i, (lv, series) in enumerate(sorted(_aggregate(records, key, line_key, val).items())):
                    pts = sorted((positions[k], float(np.mean(v))) for k, v in series.items())
                    label = f"{line_key}={lv}" if line_key else o
                    ax.plot(*zip(*pts, strict=True), marker="o", color=f"C{i}", label=label)
                basel = _aggregate(records, key, None, base).get("", {})
                if basel:
                    pts = sorted((positions[k], float(np.mean(v))) for k, v in basel.items())
                    ax.plot(*zip(*pts, strict=True), ls="--", color="k", label="base kernel")
                if log:  # symlog keeps a 0 (e.g. lam = 0) on the axis
                    ax.set_xscale("symlog", linthresh=min(positive)) if min(xs) == 0 else ax.set_xscale("log")
                if not numeric:
                    ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs], rotation=30)
                ax.set_xlabel(key)
                ax.set_title(o)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7)
            axes[0].set_ylabel(ylabel)
            fig.suptitle(f"{'accuracy' if metric == 'accuracy' else 'separation ratio'} against {key}"
                         + (f" (lines: {line_key}; other keys averaged)" if line_key else ""))
            fig.savefig(out / fname, dpi=100)
            figures.append((fname, f"{metric} against {key}"))
    return figures


def _grid_mean(records, kx, xs, ky, ys, value_fn) -> np.ndarray:
    """`(len(ys), len(xs))` means of `value_fn` over the records at each `(ky, kx)` cell (NaN where none)."""
    cells: dict[tuple[int, int], list[float]] = {}
    col = {json.dumps(v): i for i, v in enumerate(xs)}
    row = {json.dumps(v): i for i, v in enumerate(ys)}
    for r in records:
        v = value_fn(r)
        if v is None or not math.isfinite(v):
            continue
        cells.setdefault((row[json.dumps(r["params"][ky])], col[json.dumps(r["params"][kx])]), []).append(v)
    grid = np.full((len(ys), len(xs)), np.nan)
    for (i, j), vals in cells.items():
        grid[i, j] = np.mean(vals)
    return grid


def _sweep_heatmaps(records: Sequence[Mapping], out: Path, budget: str) -> list[tuple[str, str]]:
    """For every pair of swept keys: accuracy and separation ratio over the two keys' grid, one panel per
    objective and one for the base kernel, every cell annotated (other swept keys averaged)."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    swept = _swept(records)
    objectives = list(dict.fromkeys(o for r in records for o in r["objectives"]))
    panels = [*objectives, "base kernel"]
    figures = []
    for k1, k2 in itertools.combinations(swept, 2):
        kx, ky = (k1, k2) if len(swept[k1]) > len(swept[k2]) else (k2, k1)  # the longer key along x
        xs, ys = _sortable(swept[kx]), _sortable(swept[ky])
        rest = [k for k in swept if k not in (kx, ky)]
        for metric, label, fmt in (("accuracy", f"test accuracy at {budget} labels per class", "{:.3f}"),
                                   ("separation", "separation ratio pos/neg (held-out pairs)", "{:.2f}")):
            def value(r, name, metric=metric):
                e = r["base_kernel"] if name == "base kernel" else r["objectives"].get(name)
                if e is None:
                    return None
                return e["accuracy"][budget]["mean"] if metric == "accuracy" else e["separation"]["ratio"]

            grids = [_grid_mean(records, kx, xs, ky, ys, lambda r, name=name: value(r, name)) for name in panels]
            finite = np.concatenate([g[np.isfinite(g)] for g in grids])
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            # One colour scale for all panels so that they compare; ratios span decades, hence log.
            log = metric == "separation" and lo > 0 and hi / lo > 3
            norm = LogNorm(lo, hi) if log else Normalize(lo, hi if hi > lo else lo + 1e-12)
            fig = Figure(figsize=(0.75 * len(xs) * len(panels) + 2.5, 0.55 * len(ys) + 2.2), layout="constrained")
            axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
            for ax, name, grid in zip(axes, panels, grids, strict=True):
                im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", norm=norm, aspect="auto",
                               origin="lower")
                for (i, j), v in np.ndenumerate(grid):
                    dark = math.isfinite(v) and norm(v) < 0.55
                    ax.text(j, i, fmt.format(v) if math.isfinite(v) else "n/a", ha="center", va="center",
                            fontsize=7, color="w" if dark else "k")
                ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs])
                ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys])
                ax.set_xlabel(kx)
                ax.set_title(name, fontsize=9)
            axes[0].set_ylabel(ky)
            cbar = fig.colorbar(im, ax=list(axes), label=label, shrink=0.9)
            if log:
                plain = FuncFormatter(lambda v, _: f"{v:g}")
                cbar.ax.yaxis.set_major_formatter(plain)
                cbar.ax.yaxis.set_minor_formatter(plain)
            fig.suptitle(f"{label} over {ky} x {kx}" + (f" ({', '.join(rest)} averaged)" if rest else ""))
            fname = f"heatmap_{metric}_{_safe(kx)}__{_safe(ky)}.png"
            fig.savefig(out / fname, dpi=100)
            figures.append((fname, f"{metric} over {ky} x {kx}"))
    return figures


def _sweep_report(records: Sequence[Mapping], out: Path, budget: str | None) -> list[str]:
    failed = [r for r in records if "base_kernel" not in r]
    records = [r for r in records if "base_kernel" in r]
    if not records:
        raise ConfigError(f"every sweep point failed, e.g. point {failed[0].get('index')}: "
                          f"{failed[0].get('error', 'no results')}")
    budgets = _budgets(records)
    b = budget if budget is not None else budgets[0]
    if b not in budgets:
        raise ConfigError(f"--budget {b!r} is not a label budget of this sweep; choose from {', '.join(budgets)}")
    figures = _sweep_figures(records, out, b) + _sweep_heatmaps(records, out, b)
    header, rows = sweep_table(records, b)
    data = records[0]["config"]["data"]["name"]
    lines = [f"# Sweep report ({data}, {len(records)} points)", ""]
    lines.append(f"Swept: {', '.join(f'{k} in {[_fmt(v) for v in vs]}' for k, vs in _swept(records).items())}. "
                 f"Accuracy: main probe, mean over label draws at {b} labels per class. Separation ratio: mean "
                 f"normalised similarity of positive over negative held-out augmented pairs.")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if failed:
        lines += ["", f"{len(failed)} point(s) failed and are left out:", ""]
        lines += [f"- point {r.get('index')} {_canonical_params(r)}: {r.get('error', 'no results')}" for r in failed]
    lines += ["", *[f"![{t}]({f})" for f, t in figures], ""]
    return lines


def _canonical_params(r: Mapping) -> str:
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in r.get("params", {}).items())


def build_report(source: str | Path, out_dir: str | Path | None = None, budget: str | None = None) -> Path:
    """Writes figures and `report.md` for a run folder / results.json or a sweep JSONL; returns the folder."""
    from kernel_ssl_jax.lab import outputs as _outputs

    kind, content, default_out = load_source(source)
    try:  # before drawing anything
        out = _outputs.check_output_dir(out_dir if out_dir is not None else default_out,
                                        "--out" if out_dir is not None else "report folder")
    except _outputs.OutputError as e:
        raise ConfigError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "run":  # default_out is <run folder>/report
            lines = _run_report(content, out, default_out.parent)
        else:
            lines = _sweep_report(content, out, budget)
    except (KeyError, IndexError, TypeError, StopIteration, AttributeError) as e:
        what = f"missing field {e.args[0]!r}" if isinstance(e, KeyError) and e.args else f"{type(e).__name__}: {e}"
        raise ConfigError(f"{str(source)!r} is not a complete 'kssl {kind}' results file ({what}); rerun the job "
                          f"that wrote it") from None
    _outputs.atomic_write(out / "report.md", "\n".join(lines))
    return out
