"""Why the default configuration, chosen WITHOUT the test split: validation accuracy over lam, dim and the graph.

The earlier version of this study printed TEST accuracy over the grid and the defaults (`ssl.lam = 0.1`,
`ssl.dim = 20`, `graph.knn = 10`, `eval.ridge_reg`) were read off it: a choice made on the test split. This version
applies the protocol of `kernel_ssl_jax.lab.select` (the same one as `kssl run --select`): `select.val_per_class`
labelled validation digits per class from the TRAINING split, `select.n_draws` label draws from the rest of the
training split per budget, the main probe of `kssl run` (cosine 1-NN on f(x)). Every grid point is scored on the
validation subset only; the test split is scored once, for the point chosen per budget.

The Gram is decomposed ONCE; each graph costs one target, and every `(lam, dim)` of an objective comes from one
vmapped solve at the largest dim (`experiment.ssl_candidates`).

Tables:
  1. validation accuracy over graph.knn x lam x dim for each objective, at each budget (the chosen point marked *);
  2. the chosen point per objective and budget, its validation accuracy and its test accuracy (read once).

Usage:
  python experiments/study_default.py                       # about 5 minutes on 2 busy CPU cores
  python experiments/study_default.py --set views.n_views=4 --set select.val_per_class=3
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from kernel_ssl_jax.lab import config, experiment, select

GRID = ["select.lam=[0.01, 0.1, 1.0]", "select.dim=[10, 20, 40]", "select.knn=[0, 5, 10, 20]",
        "eval.labels_per_class=[1, 5]"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied after the study's grid (as kssl run --set)")
    parser.add_argument("--objectives", nargs="+", default=["vicreg", "vicreg_hard", "contrastive"])
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cfg = config.load_config(overrides=[*GRID, "select.enabled=true", *args.overrides])
    progress = experiment.Progress(True)
    prep = experiment.prepare(cfg, progress)
    ds, sel, ev = prep.ds, cfg["select"], cfg["eval"]
    n_classes = int(np.max(ds.y_train)) + 1
    proto = select.protocol(ds.y_train, ev["labels_per_class"], sel)
    grams = experiment.view_grams(prep, sel["bandwidth_scale"], progress, sel["kernel"])
    with progress.stage("graphs", f"view cliques + k-NN for k in {sel['knn']}"):
        graphs = {k: experiment.build_graph({**cfg, "graph": {**cfg["graph"], "knn": k}}, prep.views, prep.groups)
                  for k in sel["knn"]}
    budgets = [str(b) for b in ev["labels_per_class"]]
    print(f"\nDigits: {ds.X_train.shape[0]} training digits x {cfg['views']['n_views']} views, "
          f"{ds.X_test.shape[0]} test digits. Validation: {proto.val_idx.size} labelled training digits "
          f"({sel['val_per_class']} per class, extra labels), {sel['n_draws']} selection draws per budget; "
          f"cosine 1-NN on f(x).")
    chosen_rows = []
    for objective in args.objectives:
        with progress.stage("solve", f"{objective}: {len(sel['knn'])} graphs x {len(sel['lam'])} lam x "
                                     f"{len(sel['dim'])} dim"):
            cands = experiment.ssl_candidates(prep, objective, grams, graphs, n_classes)
        row, choice = experiment.score_selected(cands, proto, prep, "knn")
        print(f"\nTable 1 ({objective}). Validation accuracy at {', '.join(budgets)} labels/class "
              "(* = chosen at that budget)")
        print(f"{'knn':>4}{'lam':>7}{'dim':>5}   " + "".join(f"{b:>10}" for b in budgets))
        for i, c in enumerate(cands):
            p = c.params
            cells = "".join(f"{choice[b]['grid'][i]['val_accuracy']:>9.3f}{'*' if choice[b]['index'] == i else ' '}"
                            for b in budgets)
            print(f"{p.get('knn', '-'):>4}{p['lam']:>7g}{p['dim']:>5}   {cells}")
        for b in budgets:
            chosen_rows.append((objective, b, select.describe(choice[b]["params"]), choice[b]["val_accuracy"],
                                row[b]["mean"], row[b]["std"]))
    print("\nTable 2. Chosen per objective and budget; test accuracy (mean ± std over "
          f"{ev['n_draws']} label draws) read once, after the choice")
    print("| objective | labels/class | chosen | validation | test |\n|---|---|---|---|---|")
    for o, b, p, v, m, s in chosen_rows:
        print(f"| {o} | {b} | {p} | {v:.3f} | {m:.3f} ± {s:.3f} |")
    print(f"\nstudy time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
