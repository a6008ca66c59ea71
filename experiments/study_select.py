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
  python experiments/study_select.py --summarise runs/dev_trans.json=trans runs/dev_ind.json=ind \
      --select-method-on validation       # rank the SSL rows of both files by mean validation accuracy over seeds
  python experiments/study_select.py --summarise runs/eval_trans.json=trans \
      --chosen runs/dev_ranking.json=protocol   # fresh seeds: the row ranked first on the development seeds
  python experiments/study_select.py --summarise runs/s0.json runs/s12.json         # disjoint seeds, one study
  python experiments/study_select.py --summarise runs/a.json=shift runs/b.json=full  # same seeds: view sets, merged
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats

from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax.lab import config, experiment, select

GRAPHS = ("cliques", "knn", "both")


def one_seed(cfg: dict, seed: int, objectives, progress, graph_names=GRAPHS, normalizations=("none",),
             rconds=None, val_sizes=(), extension_ridges=()) -> dict:
    cfg = config.validate({**cfg, "data": {**cfg["data"], "seed": seed}, "views": {**cfg["views"], "seed": seed},
                           "eval": {**cfg["eval"], "seed": seed}, "select": {**cfg["select"], "seed": seed,
                                                                             "enabled": True}})
    prep = experiment.prepare(cfg, progress)
    ds, sel, ev = prep.ds, cfg["select"], cfg["eval"]
    n_classes = int(ds.n_classes)
    proto = select.protocol(ds.y_train, ev["labels_per_class"], sel)
    # Larger validation subsets (--val-sizes): only the validation score of each SSL row's chosen point is kept,
    # for ranking the rows across development seeds (select.rank_methods); the test rows use `proto`.
    extra = {v: select.protocol(ds.y_train, ev["labels_per_class"], {**sel, "val_per_class": v}) for v in val_sizes}
    val_extra = {str(v): {} for v in val_sizes}
    grams = experiment.view_grams(prep, sel["bandwidth_scale"], progress, sel["kernel"])
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
            ridges = [0.0, *extension_ridges] if extension_ridges else []
            cands = experiment.ssl_candidates(prep, objective, cut[rc], {label: A}, n_classes, ridges)
            key = f"{objective} [{label}]"
            # With --extension-ridge: the row without the extension (ridge 0) and the row whose grid also has the
            # kernel-ridge out-of-sample extension (spectral.extend), from the same solves.
            for k, cs in ((key, [c for c in cands if not c.params.get("extension_ridge")]),
                          *(((f"{key[:-1]}, ext]", cands),) if ridges else ())):
                rows[k], choices[k] = experiment.score_selected(cs, proto, prep, "knn, selected")
                for v, p in extra.items():
                    val_extra[str(v)][k] = {b: c["val_accuracy"] for b, c in select.choose(cs, p, ds.y_train).items()}
            for k in [key] + ([f"{key[:-1]}, ext]"] if ridges else []):
                progress.note(f"seed {seed}: {k}: " + ", ".join(f"{b}: {r['mean']:.3f}" for b, r in rows[k].items())
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
            "val_labels": int(proto.val_idx.size), "val_extra": val_extra,
            "rows": {m: {b: {"mean": e["mean"], "std": e["std"], "draws": e["draws"], "params": e["params"]}
                         for b, e in r.items()} for m, r in rows.items()},
            "choices": {m: {b: {"params": c["params"], "val_accuracy": c["val_accuracy"]} for b, c in r.items()}
                        for m, r in choices.items()}}


DERIVED = "kernel SSL ["  # rows made from other rows (not SSL rows themselves)
SELECTED = "kernel SSL [selected]"


def with_selected(per_seed: list[dict], budgets) -> list[dict]:
    """Adds the row `kernel SSL [selected]`: per seed and budget, the SSL row (objective x graph x weighting x
    cut-off) whose chosen point has the best VALIDATION accuracy (the first on ties), i.e. the protocol run over
    the union of the rows' grids. Unlike the best row by mean test accuracy, it reads no test label."""
    out = []
    for s in per_seed:
        rows = [m for m in s["rows"] if "[" in m and not m.startswith(DERIVED)]
        row = {}
        for b in (str(b) for b in budgets):
            m = max(rows, key=lambda m: s["choices"][m][b]["val_accuracy"])  # max keeps the first of ties
            row[b] = {**s["rows"][m][b], "row": m}
        out.append({**s, "rows": {**s["rows"], SELECTED: row}})
    return out


def ssl_rows(per_seed: list[dict]) -> list[str]:
    return [m for m in per_seed[0]["rows"] if "[" in m and not m.startswith(DERIVED)]


def with_chosen(per_seed: list[dict], rankings: dict, key: str) -> tuple[list[dict], str]:
    """Adds the row `kernel SSL [dev-chosen, <key>]`: per budget, the SSL row ranked first in `rankings[key]` (a
    --ranking-out file of DEVELOPMENT seeds: chosen on their validation labels before these seeds were run), the same
    row on every seed. Returns the results and the row's name."""
    name = f"{DERIVED}dev-chosen, {key}]"
    ranking = rankings["rankings"][key]
    missing = {b: rank[0]["method"] for b, rank in ranking.items()
               if b != "mean" and rank[0]["method"] not in per_seed[0]["rows"]}
    if missing:
        print(f"--chosen {key}: no row {missing} in the summarised files (tag the files as in the ranking, FILE=TAG); "
              "those budgets are left out", file=sys.stderr)
    out = []
    for s in per_seed:
        row = {b: {**s["rows"][rank[0]["method"]][b], "row": rank[0]["method"]}
               for b, rank in ranking.items() if b != "mean" and b not in missing}
        out.append({**s, "rows": {**s["rows"], name: row}})
    return out, name


def method_ranking(per_seed: list[dict], val_per_class: int | None = None) -> dict[str, list[dict]]:
    """`select.rank_methods` over the SSL rows of development seeds: by the validation score of each row's chosen
    point on the study's own validation subset (`val_per_class` None) or on a larger one recorded by --val-sizes."""
    rows = ssl_rows(per_seed)
    if val_per_class is None:
        scores = [{m: {b: c["val_accuracy"] for b, c in s["choices"][m].items()} for m in rows} for s in per_seed]
    else:
        scores = [{m: s["val_extra"][str(val_per_class)][m] for m in rows} for s in per_seed]
    return select.rank_methods(scores)


def format_ranking(per_seed: list[dict], ranking: dict[str, list[dict]], what: str) -> str:
    """The ranking by validation, with each row's TEST mean on the same seeds beside it (read after the choice)."""
    lines = [f"\nmethods ranked by mean VALIDATION accuracy over {len(per_seed)} development seeds ({what}); "
             "the test column is shown after the fact and took no part in the ranking"]
    for b, rank in ranking.items():
        lines += ["", f"budget {b}{' (mean over budgets)' if b == 'mean' else ' labels/class'}:", "",
                  "| rank | method | validation (mean ± se over seeds) | − first, paired (± se) | test (dev seeds) |",
                  "|---|---|---|---|---|"]
        top, tests = np.array(rank[0]["per_seed"]), []
        for i, r in enumerate(rank):
            budgets = [k for k in ranking if k != "mean"] if b == "mean" else [b]
            test = np.mean([s["rows"][r["method"]][k]["mean"] for s in per_seed for k in budgets])
            d = (np.array(r["per_seed"]) - top) * 100
            se = select.standard_error(d)
            lines.append(f"| {i + 1} | {r['method']} | {r['val_accuracy']:.3f} ± {r['se']:.3f} | "
                         f"{d.mean():+.1f} ± {se:.1f} | {test:.3f} |")
            tests.append(test)
        # How well the criterion tracks the test accuracy of the dev seeds (a diagnostic of the criterion only).
        rho = scipy.stats.spearmanr([r["val_accuracy"] for r in rank], tests).statistic
        lines.append(f"\nSpearman rank correlation of validation and test over the {len(rank)} rows: {rho:+.2f}")
    return "\n".join(lines)


def merge(saved: list[tuple[str, list[dict]]]) -> list[dict]:
    """The per-seed results of several studies over the SAME seeds (e.g. the transductive and the inductive study,
    or one study per augmentation set: same split, validation subset and draws), as one, over their common seeds:
    every SSL row of a study is renamed `<row> (<tag>)`, and so is any other row that differs between the studies
    (e.g. a peer on other views); the rows equal in every study (the base kernel, the peers on the same inputs) are
    kept once. `kernel SSL [selected]` of the merged result then chooses among the studies too, on validation."""
    seeds = [[s["seed"] for s in per_seed] for _, per_seed in saved]
    common = [x for x in seeds[0] if all(x in other for other in seeds)]
    if not common:
        raise SystemExit(f"--summarise: the tagged studies share no seed ({seeds}); give files of one study on "
                         "other seeds the same TAG")
    if common != seeds[0] or any(len(x) != len(common) for x in seeds):
        print(f"--summarise: the seeds common to every file: {common} (of {seeds})", file=sys.stderr)
    by_seed = [{s["seed"]: s for s in per_seed} for _, per_seed in saved]
    names = [m for m in by_seed[0][common[0]]["rows"]]
    shared = {m for m in names if "[" not in m and all(
        m in runs[x]["rows"] and runs[x]["rows"][m] == by_seed[0][x]["rows"][m] for runs in by_seed for x in common)}
    out = []
    for seed in common:
        rows, choices, val_extra = {}, {}, {}
        for (tag, _), runs in zip(saved, by_seed, strict=True):
            s = runs[seed]
            for m in s["rows"]:
                name = m if m in shared else f"{m} ({tag})"
                if name not in rows:
                    rows[name], choices[name] = s["rows"][m], s["choices"][m]
            for v, per in s.get("val_extra", {}).items():
                val_extra.setdefault(v, {}).update({f"{m} ({tag})": x for m, x in per.items()})
        out.append({**by_seed[0][seed], "seed": seed, "rows": rows, "choices": choices, "val_extra": val_extra})
    return out


def concatenate(runs: list[list[dict]]) -> list[dict]:
    """Per-seed results of several runs on DISJOINT seeds (one study split over runs) as one run, keeping the rows
    that every seed has (e.g. a row run on the first seeds only is dropped)."""
    per_seed = [s for run in runs for s in run]
    seeds = [s["seed"] for s in per_seed]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"--summarise: files of one study (no TAG, or the same TAG) must hold disjoint seeds, got "
                         f"{seeds}; tag studies over the same seeds differently (FILE=TAG)")
    common = set.intersection(*(set(s["rows"]) for s in per_seed))
    return [{**s, "rows": {m: r for m, r in s["rows"].items() if m in common},
             "choices": {m: c for m, c in s["choices"].items() if m in common}} for s in per_seed]


def summarise(per_seed: list[dict], budgets, refs=()) -> str:
    """Tables per budget and the paired differences of `kernel SSL [selected]`, of the rows `refs` (e.g. rows
    chosen on development seeds) and of the best row by mean TEST accuracy (shown, never a claim)."""
    per_seed = with_selected(per_seed, budgets)
    methods = list(per_seed[0]["rows"])
    lines = []
    for b in (str(b) for b in budgets):
        lines += [f"\n{b} label{'s' if b != '1' else ''}/class: test accuracy, mean ± std over {len(per_seed)} seeds "
                  "(in brackets: mean std over label draws)", "",
                  "| method | accuracy | draws std | per seed |", "|---|---|---|---|"]
        for m in [m for m in methods if b in per_seed[0]["rows"][m]]:
            means = np.array([s["rows"][m][b]["mean"] for s in per_seed])
            stds = np.array([s["rows"][m][b]["std"] for s in per_seed])
            lines.append(f"| {m} | {means.mean():.3f} ± {means.std(ddof=1) if len(means) > 1 else 0:.3f} | "
                         f"{stds.mean():.3f} | {' '.join(f'{v:.3f}' for v in means)} |")
        lines.append(f"\n{SELECTED} per seed: " + "; ".join(s["rows"][SELECTED][b]["row"] for s in per_seed))
        refs_b = [r for r in refs if b in per_seed[0]["rows"][r]]
        for ref in [r for r in refs_b if r.startswith(DERIVED)]:
            lines.append(f"{ref}: {per_seed[0]['rows'][ref][b]['row']}")
        rows = ssl_rows(per_seed)
        best = max(rows, key=lambda m: np.mean([s["rows"][m][b]["mean"] for s in per_seed]))
        for ref, what in ((SELECTED, "selected on validation per seed"),
                          *((r, "chosen on development seeds" if r.startswith(DERIVED) else "named by --rows")
                            for r in refs_b),
                          (best, "the best row by mean TEST accuracy")):
            lines += ["", f"paired differences (same split, views and label draws) of {ref} ({what}):"]
            for m in methods:
                if m == ref or m.startswith(DERIVED) or m in rows and "[both" not in m and m not in refs:
                    continue
                d = np.array([np.mean(np.array(s["rows"][ref][b]["draws"]) - np.array(s["rows"][m][b]["draws"]))
                              for s in per_seed])
                dd = np.concatenate([np.array(s["rows"][ref][b]["draws"]) - np.array(s["rows"][m][b]["draws"])
                                     for s in per_seed])
                lines.append(f"  - {ref} - {m}: {d.mean() * 100:+.1f} ± {select.standard_error(d) * 100:.1f} points "
                             f"(± the standard error over the {d.size} seeds, the one that says whether it holds on "
                             f"other seeds; over the {dd.size} paired draws, treated as independent: "
                             f"± {select.standard_error(dd) * 100:.1f}; ahead on {int(np.sum(d > 0))} of {d.size} "
                             f"seeds: {' '.join(f'{v * 100:+.1f}' for v in d)})")
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
    parser.add_argument("--val-sizes", type=int, nargs="+", default=[],
                        help="also score every SSL row's grid on larger validation subsets (per class, from the "
                             "training split) for --select-method-on")
    parser.add_argument("--extension-ridge", type=float, nargs="+", default=[],
                        help="also rows `<row>, ext` whose grid adds the kernel-ridge out-of-sample extension of each "
                             "solution (spectral.extend) at these ridges (units of the Gram's eigenvalues)")
    parser.add_argument("--summarise", metavar="JSON[=TAG]", nargs="+",
                        help="print the tables of a finished (or partial) --out file; files with the same TAG (or "
                             "all untagged) are one study over more seeds (`concatenate`); tagged studies are merged "
                             "over their common seeds, their SSL rows tagged (`merge`)")
    parser.add_argument("--select-method-on", choices=["validation"], default=None,
                        help="with --summarise: rank the SSL rows by mean validation accuracy over the seeds of the "
                             "file (development seeds), per budget and over budgets (select.rank_methods)")
    parser.add_argument("--ranking-out", metavar="JSON", help="with --select-method-on: write the rankings there")
    parser.add_argument("--chosen", metavar="RANKING_JSON=KEY", nargs="+", default=[],
                        help="with --summarise: add the row `kernel SSL [dev-chosen, KEY]`, the first row of the "
                             "ranking KEY (e.g. protocol, val_per_class=20) of a --ranking-out file of development "
                             "seeds, with its paired differences")
    parser.add_argument("--rows", nargs="+", default=[], metavar="ROW",
                        help="with --summarise: also the paired differences of these rows against every other row")
    args = parser.parse_args(argv)
    if args.summarise:
        groups: dict[str | None, list[dict]] = {}  # TAG -> the saved files of one study (disjoint seeds)
        for item in args.summarise:
            path, _, tag = item.partition("=")
            groups.setdefault(tag or None, []).append(json.loads(Path(path).read_text()))
        if None in groups and len(groups) > 1:
            raise SystemExit("--summarise: tag every file (FILE=TAG) or none")
        saved = next(iter(groups.values()))[0]
        parts = [(tag, concatenate([run["per_seed"] for run in runs]) if len(runs) > 1 else runs[0]["per_seed"])
                 for tag, runs in groups.items()]
        per_seed = parts[0][1] if None in groups else merge(parts)
        if args.select_method_on != "validation":
            refs = []
            for c in args.chosen:
                path, _, key = c.partition("=")
                per_seed, name = with_chosen(per_seed, json.loads(Path(path).read_text()), key or "protocol")
                refs.append(name)
            print(summarise(per_seed, saved["config"]["eval"]["labels_per_class"], refs + args.rows))
            return 0
        sizes = [None] + sorted(int(v) for v in per_seed[0].get("val_extra", {}))
        rankings = {}
        for v in sizes:
            ranking = method_ranking(per_seed, v)
            what = (f"{per_seed[0]['val_labels']} validation labels per seed" if v is None
                    else f"{v} validation labels per class per seed")
            print(format_ranking(per_seed, ranking, what))
            rankings["protocol" if v is None else f"val_per_class={v}"] = ranking
        if args.ranking_out:
            Path(args.ranking_out).write_text(json.dumps({"seeds": [s["seed"] for s in per_seed],
                                                          "rankings": rankings}, indent=1))
        return 0
    start = time.perf_counter()
    cfg = config.load_config(overrides=['eval.labels_per_class=[1, 2, 5]', *args.overrides])
    progress = experiment.Progress(True)
    per_seed = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        per_seed.append(one_seed(cfg, seed, args.objectives, progress, args.graphs, args.normalize,
                                 args.rcond, args.val_sizes, args.extension_ridge))
        out.write_text(json.dumps({"config": cfg, "overrides": args.overrides, "per_seed": per_seed}, indent=1))
    print(f"\n{len(per_seed)} seeds; views: {cfg['views']}; graph.knn = {cfg['graph']['knn']}; "
          f"validation labels: {per_seed[0]['val_labels']} (from the training split); label draws per seed: "
          f"{cfg['eval']['n_draws']}; graph edges (seed {per_seed[0]['seed']}): {per_seed[0]['graph_edges']}")
    print(summarise(per_seed, cfg["eval"]["labels_per_class"]))
    print(f"\nstudy time {time.perf_counter() - start:.0f} s; per-seed numbers in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
