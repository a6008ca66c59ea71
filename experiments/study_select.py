"""Kernel SSL against its peers, every method selected WITHOUT the test split, over several seeds; graph ablation.

For each seed `s` (the train/test split, the views, the validation subset and the label draws all use `s`):

1. `experiment.prepare`: views, graph (view cliques + k-NN), ONE Gram of the views and ONE eigendecomposition.
2. The protocol of `kernel_ssl_jax.lab.select`: `select.val_per_class` labelled validation digits per class from
   the TRAINING split; each method's grid is scored on them per budget (selection draws from the rest of the
   training split) and the chosen point is scored once on the test split with `eval.n_draws` label draws.
3. Rows: the SSL objectives (grid `select.lam` x `select.dim` [x `select.beta`]) on three graphs over the same
   views, the ablation of the relationship graph: `cliques` (view cliques only), `knn` (the k-NN graph over the
   views alone, `graph.cliques = false`) and `both` (the default); the base kernel (kernel ridge, grid
   `select.reg`); and the peers of `eval.peers`, each with its own grid (see `kernel_ssl_jax.lab.peers`).

Output: one table per budget, mean ± std over seeds of the per-seed test accuracy (itself a mean over the label
draws), the mean of the per-seed std over draws, and the paired difference (per seed, same draws) of the best
kernel-SSL row against each peer; a JSON file with every per-seed number and every choice.

Usage:
  python experiments/study_select.py --seeds 0 1 2                        # 2 views, about 4 min per seed
  python experiments/study_select.py --seeds 0 1 2 --set views.n_views=4 --set views.rotation=20 \\
      --set views.shift=1.0 --set views.scale=0.1 --out runs/study_select_4views.json
  python experiments/study_select.py --seeds 1 2 3 --graphs both --normalize none sym --rcond 1e-9 1e-5 \
      --set ssl.rcond=1e-9 --out runs/study_select_rcond.json     # graph weighting x spectral cut-off
  python experiments/study_select.py --summarise runs/study_select_rcond.json   # tables of a saved (partial) run
  python experiments/study_select.py --summarise shift=runs/a.json full=runs/b.json   # view sets, merged
  python experiments/study_select.py --summarise runs/s0.json runs/s12.json         # disjoint seeds, concatenated
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax.lab import config, experiment, select

GRAPHS = ("cliques", "knn", "both")


def one_seed(cfg: dict, seed: int, objectives, progress, graph_names=GRAPHS, normalizations=("none",),
             rconds=None) -> dict:
    cfg = config.validate({**cfg, "data": {**cfg["data"], "seed": seed}, "views": {**cfg["views"], "seed": seed},
                           "eval": {**cfg["eval"], "seed": seed}, "select": {**cfg["select"], "seed": seed,
                                                                             "enabled": True}})
    prep = experiment.prepare(cfg, progress)
    ds, sel, ev = prep.ds, cfg["select"], cfg["eval"]
    n_classes = int(ds.n_classes)
    proto = select.protocol(ds.y_train, ev["labels_per_class"], sel)
    grams = experiment.view_grams(prep, sel["bandwidth_scale"], progress)
    knn = cfg["graph"]["knn"]
    graphs = {
        "cliques": experiment.build_graph({**cfg, "graph": {**cfg["graph"], "knn": 0}}, prep.views, prep.groups),
        "knn": experiment.build_graph({**cfg, "graph": {**cfg["graph"], "cliques": False}}, prep.views, prep.groups),
        "both": prep.A,
    }
    graphs = {name: graphs[name] for name in graph_names}
    rows, choices = {}, {}
    # Spectral cut-offs of the SSL rows: truncations of the one decomposition (made at ssl.rcond, the smallest).
    rconds = rconds or [cfg["ssl"]["rcond"]]
    cut = {r: experiment.truncated_grams(grams, [r]) for r in rconds}
    for objective in objectives:
        for name, norm, rc in ((g, n, rc) for g in graph_names for n in normalizations for rc in rconds):
            t = time.perf_counter()
            A = _graphs.normalize(graphs[name], kind=norm)
            label = ", ".join([name] + ([norm] if norm != "none" else []) + ([f"rcond {rc:g}"] if len(rconds) > 1
                                                                              else []))
            cands = experiment.ssl_candidates(prep, objective, cut[rc], {label: A}, n_classes)
            key = f"{objective} [{label}]"
            rows[key], choices[key] = experiment.score_selected(cands, proto, prep, "knn, selected")
            progress.note(f"seed {seed}: {key}: " + ", ".join(f"{b}: {r['mean']:.3f}" for b, r in rows[key].items())
                          + f" ({time.perf_counter() - t:.0f} s)")
    rows["base_kernel"], choices["base_kernel"] = experiment.score_selected(
        experiment.base_kernel_candidates(prep, grams, sel["reg"], n_classes), proto, prep, "kernel_ridge")
    rows["base_kernel/knn"], choices["base_kernel/knn"] = experiment.score_selected(
        experiment.base_kernel_knn_candidates(prep, grams, n_classes), proto, prep, "knn")
    t = time.perf_counter()
    peer_rows, peer_choices = experiment.evaluate_peers(prep, proto, grams)
    rows.update(peer_rows)
    choices.update(peer_choices)
    progress.note(f"seed {seed}: peers " + ", ".join(f"{m}: {r['1']['mean']:.3f}" for m, r in peer_rows.items()
                                                     if "1" in r) + f" ({time.perf_counter() - t:.0f} s)")
    graph_edges = {name: int((np.count_nonzero(np.asarray(A)) - A.shape[0]) // 2) for name, A in graphs.items()}
    return {"seed": seed, "knn": knn, "n_views": cfg["views"]["n_views"], "graph_edges": graph_edges,
            "val_labels": int(proto.val_idx.size),
            "rows": {m: {b: {"mean": e["mean"], "std": e["std"], "draws": e["draws"], "params": e["params"]}
                         for b, e in r.items()} for m, r in rows.items()},
            "choices": {m: {b: {"params": c["params"], "val_accuracy": c["val_accuracy"]} for b, c in r.items()}
                        for m, r in choices.items()}}


SELECTED = "kernel SSL [selected]"


def with_selected(per_seed: list[dict], budgets) -> list[dict]:
    """Adds the row `kernel SSL [selected]`: per seed and budget, the SSL row (objective x graph x weighting x
    cut-off) whose chosen point has the best VALIDATION accuracy (the first on ties), i.e. the protocol run over
    the union of the rows' grids. Unlike the best row by mean test accuracy, it reads no test label."""
    out = []
    for s in per_seed:
        ssl_rows = [m for m in s["rows"] if "[" in m and m != SELECTED]
        row = {}
        for b in (str(b) for b in budgets):
            m = max(ssl_rows, key=lambda m: s["choices"][m][b]["val_accuracy"])  # max keeps the first of ties
            row[b] = {**s["rows"][m][b], "row": m}
        out.append({**s, "rows": {**s["rows"], SELECTED: row}})
    return out


VIEW_FREE = ("base_kernel", "base_kernel/knn", "peer:label_spreading")  # rows that do not depend on the views


def merge(named: list[tuple[str, list[dict]]]) -> list[dict]:
    """Per-seed results of several runs on the SAME seeds (e.g. one per augmentation set) as one run: every row
    that depends on the views is prefixed `<name>: `; the rows of `VIEW_FREE` are taken from the first run. The
    `kernel SSL [selected]` row of the merged run then chooses among the view sets too, on validation."""
    seeds = [[s["seed"] for s in per_seed] for _, per_seed in named]
    if any(s != seeds[0] for s in seeds):
        raise SystemExit(f"--summarise: the runs must hold the same seeds; got {seeds}")
    out = []
    for i in range(len(seeds[0])):
        rows, choices = {}, {}
        for j, (name, per_seed) in enumerate(named):
            s = per_seed[i]
            for m in s["rows"]:
                if m in VIEW_FREE:
                    if j == 0:
                        rows[m], choices[m] = s["rows"][m], s["choices"][m]
                else:
                    rows[f"{name}: {m}"], choices[f"{name}: {m}"] = s["rows"][m], s["choices"][m]
        out.append({**named[0][1][i], "rows": rows, "choices": choices})
    return out


def concatenate(runs: list[list[dict]]) -> list[dict]:
    """Per-seed results of several runs on DISJOINT seeds (one study split over runs) as one run, keeping the rows
    that every seed has (e.g. a row run on the first seeds only is dropped)."""
    per_seed = [s for run in runs for s in run]
    common = set.intersection(*(set(s["rows"]) for s in per_seed))
    return [{**s, "rows": {m: r for m, r in s["rows"].items() if m in common},
             "choices": {m: c for m, c in s["choices"].items() if m in common}} for s in per_seed]


def summarise(per_seed: list[dict], budgets) -> str:
    per_seed = with_selected(per_seed, budgets)
    methods = list(per_seed[0]["rows"])
    lines = []
    for b in (str(b) for b in budgets):
        lines += [f"\n{b} label{'s' if b != '1' else ''}/class: test accuracy, mean ± std over {len(per_seed)} seeds "
                  "(in brackets: mean std over label draws)", "",
                  "| method | accuracy | draws std | per seed |", "|---|---|---|---|"]
        for m in methods:
            means = np.array([s["rows"][m][b]["mean"] for s in per_seed])
            stds = np.array([s["rows"][m][b]["std"] for s in per_seed])
            lines.append(f"| {m} | {means.mean():.3f} ± {means.std(ddof=1) if len(means) > 1 else 0:.3f} | "
                         f"{stds.mean():.3f} | {' '.join(f'{v:.3f}' for v in means)} |")
        lines.append(f"\n{SELECTED} per seed: " + "; ".join(s["rows"][SELECTED][b]["row"] for s in per_seed))
        ssl_rows = [m for m in methods if "[" in m and m != SELECTED]
        best = max(ssl_rows, key=lambda m: np.mean([s["rows"][m][b]["mean"] for s in per_seed]))
        for ref, what in ((SELECTED, "selected on validation"), (best, "the best row by mean TEST accuracy")):
            lines += ["", f"paired differences (same split, views and label draws) of {ref} ({what}):"]
            for m in methods:
                if m in (best, SELECTED) or m in ssl_rows and "[both" not in m:
                    continue
                d = np.array([np.mean(np.array(s["rows"][ref][b]["draws"]) - np.array(s["rows"][m][b]["draws"]))
                              for s in per_seed])
                dd = np.concatenate([np.array(s["rows"][ref][b]["draws"]) - np.array(s["rows"][m][b]["draws"])
                                     for s in per_seed])
                se = dd.std(ddof=1) / np.sqrt(dd.size) if dd.size > 1 else 0.0
                lines.append(f"  - {ref} - {m}: {d.mean() * 100:+.1f} points (per seed "
                             f"{' '.join(f'{v * 100:+.1f}' for v in d)}; standard error over {dd.size} paired "
                             f"draws {se * 100:.1f})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--objectives", nargs="+", default=["vicreg", "vicreg_hard", "contrastive"])
    parser.add_argument("--graphs", nargs="+", default=list(GRAPHS), choices=GRAPHS,
                        help="graphs of the SSL rows (the ablation): cliques, knn, both")
    parser.add_argument("--normalize", nargs="+", default=["none"], choices=["none", "sym"],
                        help="graph weightings of the SSL rows (graphs.normalize): none, sym (D^-1/2 A D^-1/2)")
    parser.add_argument("--rcond", type=float, nargs="+", default=None,
                        help="spectral cut-offs of the SSL rows, each >= ssl.rcond (truncations of one decomposition)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (as kssl run --set), e.g. views.n_views=4")
    parser.add_argument("--out", default="runs/study_select.json", help="JSON file with every per-seed number")
    parser.add_argument("--summarise", metavar="[NAME=]JSON", nargs="+",
                        help="print the tables of a finished (or partial) --out file; several files on disjoint seeds "
                             "are one study in parts (`concatenate`); several NAME=JSON files on the same seeds "
                             "(e.g. one per augmentation set) are merged into one table (`merge`)")
    args = parser.parse_args(argv)
    if args.summarise:
        named = [(item.partition("=")[0] if "=" in item else Path(item).stem, item.rpartition("=")[2])
                 for item in args.summarise]
        saved = [json.loads(Path(path).read_text()) for _, path in named]
        seeds = [s["seed"] for run in saved for s in run["per_seed"]]
        if len(saved) == 1:
            per_seed = saved[0]["per_seed"]
        elif len(set(seeds)) == len(seeds):  # disjoint seeds: one study run in parts
            per_seed = concatenate([run["per_seed"] for run in saved])
        else:
            per_seed = merge([(name, s["per_seed"]) for (name, _), s in zip(named, saved, strict=True)])
        print(summarise(per_seed, saved[0]["config"]["eval"]["labels_per_class"]))
        return 0
    start = time.perf_counter()
    cfg = config.load_config(overrides=['eval.labels_per_class=[1, 2, 5]', *args.overrides])
    progress = experiment.Progress(True)
    per_seed = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        per_seed.append(one_seed(cfg, seed, args.objectives, progress, args.graphs, args.normalize,
                                 args.rcond))
        out.write_text(json.dumps({"config": cfg, "overrides": args.overrides, "per_seed": per_seed}, indent=1))
    print(f"\n{len(per_seed)} seeds; views: {cfg['views']}; graph.knn = {cfg['graph']['knn']}; "
          f"validation labels: {per_seed[0]['val_labels']} (from the training split); label draws per seed: "
          f"{cfg['eval']['n_draws']}; graph edges (seed {per_seed[0]['seed']}): {per_seed[0]['graph_edges']}")
    print(summarise(per_seed, cfg["eval"]["labels_per_class"]))
    print(f"\nstudy time {time.perf_counter() - start:.0f} s; per-seed numbers in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
