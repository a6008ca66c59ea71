"""`kssl report`: figures (PNG) and a markdown summary rebuilt from results files alone.

Sources:
  - a `kssl run` folder or its `results.json`: `accuracy.png` (test accuracy against labels per class for every
    objective's main probe, the base kernel and the supervised reference), `spectrum.png` (Gram eigenvalues and the
    targets' kept eigenvalues) and `report.md` (the accuracy table, losses, timings);
  - a `kssl sweep` JSONL file: for every swept key, `sweep_<key>.png` (accuracy at one label budget against the
    key's values, one panel per objective, one line per value of the other swept key with the fewest values, the
    rest averaged; the base kernel dashed), `separation_<key>.png` (separation ratio of held-out augmented pairs for
    the induced and base kernels) and `report.md` (one table row per point).

Nothing is recomputed: no data set, kernel or solver is touched, only JSON.

Example:
  >>> build_report("runs/sweep-lam-dim.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kernel_ssl_jax import config as _config

__all__ = ["build_report", "load_source", "sweep_table"]

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
        from kernel_ssl_jax import sweep

        records = [r for r in sweep.read_results(path) if "objectives" in r]
        if not records:
            raise ConfigError(f"{str(path)!r} holds no finished sweep points")
        return "sweep", records, path.with_name(path.stem + "-report")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{str(path)!r} is not valid JSON: {e}") from None
    if "accuracy" not in content:
        raise ConfigError(f"{str(path)!r} is not a 'kssl run' results.json (no 'accuracy')")
    return "run", content, path.parent / "report"


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


def _run_report(res: Mapping, out: Path) -> list[str]:
    from matplotlib.figure import Figure

    acc = res["accuracy"]
    objectives = res["config"]["ssl"]["objectives"]
    main = [m for m in [*objectives, "base_kernel", "supervised"] if m in acc]
    budgets = list(acc[main[0]])
    x = np.arange(len(budgets))
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for i, m in enumerate(main):
        mean = [acc[m][b]["mean"] for b in budgets]
        std = [acc[m][b]["std"] for b in budgets]
        ls = {"base_kernel": "--", "supervised": ":"}.get(m, "-")
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, ls=ls, color=f"C{i}", label=m)
    ax.set_xticks(x, budgets)
    ax.set_xlabel("labels per class")
    ax.set_ylabel("test accuracy")
    data = res.get("data", {})
    ax.set_title(f"{data.get('name', '?')}: accuracy against labels per class (main probe)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(out / "accuracy.png", dpi=110)

    figures = ["accuracy.png"]
    eigen = res.get("eigenvalues", {})
    if eigen.get("gram"):
        fig = Figure(figsize=(10, 4), layout="constrained")
        ax0, ax1 = fig.subplots(1, 2)
        s = np.asarray(eigen["gram"])
        s = s[s > 0]
        ax0.loglog(np.arange(1, s.size + 1), s, label="eigenvalues of K")
        ax0.set_xlabel("index")
        ax0.set_ylabel("eigenvalue")
        ax0.set_title("Gram spectrum")
        ax0.legend(fontsize=8)
        for o, w in eigen.get("targets", {}).items():
            ax1.plot(np.arange(1, len(w) + 1), w, marker="o", label=o)
        ax1.set_yscale("symlog", linthresh=1e-3)
        ax1.set_xlabel("index")
        ax1.set_ylabel("eigenvalue")
        ax1.set_title("kept target eigenvalues")
        ax1.legend(fontsize=8)
        fig.savefig(out / "spectrum.png", dpi=110)
        figures.append("spectrum.png")

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


def _sweep_report(records: Sequence[Mapping], out: Path, budget: str | None) -> list[str]:
    budgets = _budgets(records)
    b = budget if budget is not None else budgets[0]
    if b not in budgets:
        raise ConfigError(f"--budget {b!r} is not a label budget of this sweep; choose from {', '.join(budgets)}")
    figures = _sweep_figures(records, out, b)
    header, rows = sweep_table(records, b)
    data = records[0]["config"]["data"]["name"]
    lines = [f"# Sweep report ({data}, {len(records)} points)", ""]
    lines.append(f"Swept: {', '.join(f'{k} in {[_fmt(v) for v in vs]}' for k, vs in _swept(records).items())}. "
                 f"Accuracy: main probe, mean over label draws at {b} labels per class. Separation ratio: mean "
                 f"normalised similarity of positive over negative held-out augmented pairs.")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", *[f"![{t}]({f})" for f, t in figures], ""]
    return lines


def build_report(source: str | Path, out_dir: str | Path | None = None, budget: str | None = None) -> Path:
    """Writes figures and `report.md` for a run folder / results.json or a sweep JSONL; returns the folder."""
    kind, content, default_out = load_source(source)
    out = Path(out_dir).expanduser() if out_dir is not None else default_out
    out.mkdir(parents=True, exist_ok=True)
    lines = _run_report(content, out) if kind == "run" else _sweep_report(content, out, budget)
    (out / "report.md").write_text("\n".join(lines))
    return out
