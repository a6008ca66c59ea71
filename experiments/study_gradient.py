"""Closed form vs gradient descent on digits: loss curves, time to optimum, stepwise dynamics, the features path.

The views are those of `kssl run` (`experiment.prepare` on the default configuration with `data.max_train` reduced:
300 digits x 2 augmented views = 600 views, view cliques + 10-NN graph, RBF kernel at the median distance, dim 20,
lam 0.1). Four parts, all written to one `results.json` and a few PNGs:

(a) loss curves: the relative gap `(L - L*) / max(|L*|, 1)` to the closed-form loss `L*` (`spectral.solve`; the
    same convention as `kssl compare`: barlow's optimum is 0, so its gap is absolute) against the step and against
    wall-clock seconds, for each objective and four optimisers of `gradient.train` (representer path, full batch):
    adam without preconditioner, adam + whiten, sgd + whiten, L-BFGS + whiten (barlow: "whiten" is "rkhs").
(b) time to optimum: steps and seconds until the gap stays at or below 1e-2, 1e-4 (the SPEC §4 gap) and 1e-6, with
    the closed form's time in the same run. Compilation is separated by a warm-up: each configuration first runs two
    chunks of `--log-every` steps with the same optimiser object (`gradient.train` caches the compiled chunk, the
    Gram and eigendecomposition kernels are compiled too), then the timed run starts from scratch. The timed run
    includes what the closed form also pays (the Gram; the preconditioner's eigendecomposition of K). Times are read
    at chunk boundaries (every `--log-every` steps), so a time is the end of the chunk that reached the threshold.
    The closed form is timed the same way as in `compare.compare`: one call to compile, then the best of three.
(c) stepwise learning dynamics: `compare.dynamics` (plain gradient descent from init 1e-3, "rkhs": gradient
    descent on W in the RKHS) records the eigenvalues of `Q = C S C^T`; with "whiten" as a contrast.
(d) the features path (random Fourier features, contrastive with the view-clique graph, L-BFGS by default: it has
    no preconditioner and adam barely moves in 1000 steps) trained on the fixed views and with fresh augmentations
    every step, against the closed form on the same features (`lowrank.solve_psi`): the gap on the closed form's
    own views, and on a second, held-out draw of views of the same digits, along training.

Usage:
  OPENBLAS_NUM_THREADS=1 python experiments/study_gradient.py   # about 3 minutes on 2 shared CPU cores
  (one OpenBLAS thread: multi-threaded LAPACK eigendecompositions stall on a busy machine and spoil the timings)
  python experiments/study_gradient.py --quick         # fewer steps, two objectives (a smoke run)
  python experiments/study_gradient.py --plot-only     # figures and table again from results.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from kernel_ssl_jax import augment, gradient, graphs, lowrank, objectives, spectral
from kernel_ssl_jax.lab import compare, config, experiment

THRESHOLDS = (1e-2, 1e-4, 1e-6)
SPEC_GAP = 1e-4  # SPEC §4: the gradient path reaches the closed form within this relative gap
FLOOR = 1e-16  # gaps at or below round-off are drawn here on log scales
# Step sizes of plain sgd (+ whiten): the best of a coarse pilot grid (factors of about 3) on these views. Whitening
# makes the quadratic part Q isotropic but not the rest of the loss: vicreg's Dirichlet term keeps the largest
# eigenvalue of F L F (lr 0.1 diverged), barlow's cross-view term the largest eigenvalue 183 of K^+1/2 S12 K^+1/2.
SGD_LR = {"contrastive": 1e-2, "vicreg": 2e-2, "vicreg_hard": 1e-2, "barlow": 1e-3}
OPTIMISERS = ("adam", "adam+whiten", "sgd+whiten", "lbfgs+whiten")
# Printed and recorded: multi-threaded OpenBLAS (LAPACK eigh) is very slow on an oversubscribed machine.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "XLA_FLAGS")


# --------------------------------------------------------------------------------------------------------------------
# Helpers (no JAX)


def rel_gap(loss, reference: float) -> np.ndarray:
    """`(L - L*) / max(|L*|, 1)`, as `kssl compare` reports it (barlow's optimum is 0: the gap is then absolute)."""
    return (np.asarray(loss, dtype=np.float64) - reference) / max(abs(reference), 1.0)


def settle_step(gaps, threshold: float) -> int | None:
    """First step from which the gap stays at or below `threshold` to the end; None if the last one is above."""
    gaps = np.asarray(gaps)
    above = np.flatnonzero(gaps > threshold)
    if above.size == 0:
        return 0
    if above[-1] == gaps.shape[0] - 1:
        return None
    return int(above[-1]) + 1


def time_at(step: int, marks) -> float | None:
    """Seconds at the end of the first chunk whose parameters have taken `step` steps (`marks`: (steps, seconds))."""
    for done, seconds in marks:
        if done >= step:
            return float(seconds)
    return None


def per_step_ms(marks) -> float | None:
    """Milliseconds per step between the first and the last chunk boundary (no setup, no compilation)."""
    if len(marks) < 2 or marks[-1][0] == marks[0][0]:
        return None
    return 1e3 * (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0])


def _short(x: float) -> float:
    return float(f"{x:.6g}")


def _fmt(x, spec: str = ".2e", missing: str = "-") -> str:
    return missing if x is None else format(x, spec)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# --------------------------------------------------------------------------------------------------------------------
# (a, b) Loss curves and time to optimum


def _optimiser(name: str, objective: str, steps: int):
    """`(optax optimiser, precondition)` of a configuration (adam: cosine decay 1e-2 -> 1e-5, as kssl compare)."""
    adam = optax.adam(optax.cosine_decay_schedule(1e-2, steps, alpha=1e-3))
    return {"adam": (adam, None), "adam+whiten": (adam, "whiten"),
            "sgd+whiten": (optax.sgd(SGD_LR[objective]), "whiten"),
            "lbfgs+whiten": (optax.lbfgs(), "whiten")}[name]


def _timed_closed(solve):
    sol = solve()
    sol.coef.block_until_ready()
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        sol = solve()
        sol.coef.block_until_ready()
        best = min(best, time.perf_counter() - start)
    return sol, best


def run_objective(prep, objective: str, args, log) -> dict:
    """The closed form and every optimiser of `OPTIMISERS` on one objective: curves, thresholds, times."""
    ssl = prep.cfg["ssl"]
    dim, lam = ssl["dim"], ssl["lam"]
    graph = dict(pairs=prep.pairs) if objective == "barlow" else dict(A=prep.A)
    common = dict(kernel=prep.kernel, dim=dim, lam=lam, beta=ssl["beta"], **graph)
    closed, t_closed = _timed_closed(lambda: spectral.solve(objective, prep.views, **common))
    L_star = float(closed.loss)
    K = np.asarray(prep.K)
    coef = np.asarray(closed.coef)
    norm_closed = float(np.trace(coef @ K @ coef.T))
    log(f"{objective}: closed form loss {L_star:.10g}, {t_closed:.3f} s (best of 3 after compilation)")
    out = {"objective": objective, "loss_closed": L_star, "time_closed_s": t_closed, "norm_closed": norm_closed,
           "closed_eigenvalues": np.asarray(closed.eigenvalues).tolist(), "runs": {}}
    for name in args.optimisers:
        steps = args.lbfgs_steps if name.startswith("lbfgs") else args.steps
        opt, precondition = _optimiser(name, objective, steps)
        kw = dict(common, precondition=precondition, optimizer=opt, key=jax.random.key(args.seed),
                  log_every=args.log_every)
        run: dict = {"optimiser": name, "precondition": precondition, "max_steps": steps}
        if name.startswith("sgd"):
            run["learning_rate"] = SGD_LR[objective]
        try:
            # Warm-up of two chunks: optax.lbfgs's initial state has weakly typed scalars that the first update makes
            # strong, so the second chunk compiles again; adam and sgd compile once.
            start = time.perf_counter()
            jax.block_until_ready(gradient.train(objective, prep.views, steps=2 * args.log_every, **kw).coef)
            run["warmup_s"] = time.perf_counter() - start
            marks: list[tuple[int, float]] = []
            start = time.perf_counter()

            def mark(done, loss, params, marks=marks, start=start):
                marks.append((int(done), time.perf_counter() - start))

            sol = gradient.train(objective, prep.views, steps=steps, tol=args.tol, callback=mark, **kw)
            jax.block_until_ready(sol.coef)
            run["total_s"] = time.perf_counter() - start
        except FloatingPointError as e:
            run["diverged"] = str(e)
            log(f"  {name:14s} diverged: {e}")
            out["runs"][name] = run
            continue
        # gaps[s]: the loss after s steps (loss_history is the loss before each step; the last is Solution.loss).
        gaps = rel_gap(np.append(np.asarray(sol.loss_history), float(sol.loss)), L_star)
        c = np.asarray(sol.coef)
        run.update({
            "steps_run": int(gaps.shape[0] - 1), "gap": [_short(g) for g in gaps], "marks": marks,
            "final_gap": float(gaps[-1]), "ms_per_step": per_step_ms(marks),
            "norm_ratio": float(np.trace(c @ K @ c.T)) / norm_closed if norm_closed > 0 else None,
            "reach": {},
        })
        for thr in THRESHOLDS:
            s = settle_step(gaps, thr)
            t = None if s is None else time_at(s, marks)
            ratio = None if t is None else t / t_closed
            run["reach"][f"{thr:g}"] = {"steps": s, "seconds": t, "ratio_to_closed": ratio}
        r4 = run["reach"][f"{SPEC_GAP:g}"]
        log(f"  {name:14s} {run['steps_run']:5d} steps {run['total_s']:6.2f} s, final gap {gaps[-1]:9.2e}, "
            f"gap 1e-4 at step {_fmt(r4['steps'], 'd')} / {_fmt(r4['seconds'], '.2f')} s, "
            f"warm-up {run['warmup_s']:.1f} s")
        out["runs"][name] = run
    return out


# --------------------------------------------------------------------------------------------------------------------
# (c) Stepwise dynamics


def run_dynamics(prep, args, log) -> dict:
    ssl = prep.cfg["ssl"]
    out = {}
    for precondition, steps in (("rkhs", args.dyn_steps), ("whiten", args.dyn_whiten_steps)):
        start = time.perf_counter()
        dyn = compare.dynamics("contrastive", prep.views, prep.A, kernel=prep.kernel, dim=args.dyn_dim,
                               lam=ssl["lam"], beta=ssl["beta"], steps=steps, record_every=args.dyn_record,
                               precondition=precondition, key=jax.random.key(args.seed))
        seconds = time.perf_counter() - start
        log(f"dynamics (contrastive, sgd lr {dyn.learning_rate:.3g}, {precondition}, init 1e-3, {steps} steps, "
            f"{seconds:.1f} s): half-way steps {dyn.half_steps.tolist()}")
        d = {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in dyn._asdict().items()}
        d["loss_history"] = [_short(v) for v in d["loss_history"]]
        d["eigenvalues"] = [[_short(v) for v in row] for row in d["eigenvalues"]]
        out[precondition] = dict(d, precondition=precondition, seconds=seconds)
    return out


# --------------------------------------------------------------------------------------------------------------------
# (d) Features path with fresh augmentations


def _feature_optimiser(name: str, steps: int):
    if name == "lbfgs":
        return optax.lbfgs()
    return optax.adam(optax.cosine_decay_schedule(1e-2, steps, alpha=1e-3))


def run_features(prep, args, log) -> dict:
    """Features path (fixed views, fresh views) against `lowrank.solve_psi` on the same random features."""
    cfg, ssl, ds = prep.cfg, prep.cfg["ssl"], prep.ds
    dim, lam, n_views = ssl["dim"], ssl["lam"], cfg["views"]["n_views"]
    aug = augment.from_config({k: cfg["views"][k] for k in augment.CONFIG_KEYS}, ds.image_shape)
    sources = jnp.asarray(ds.X_train)
    held, held_groups = augment.make_views(jax.random.key(cfg["views"]["seed"] + 1), sources, n_views, aug,
                                           include_original=cfg["views"]["include_original"])
    A = graphs.from_groups(prep.groups, dtype=prep.views.dtype)  # fresh views use the view cliques: so does this
    A_held = graphs.from_groups(np.asarray(held_groups), dtype=prep.views.dtype)
    out = {"objective": "contrastive", "graph": "view cliques", "steps": args.feature_steps,
           "optimiser": args.feature_optimiser, "dims": {}}
    for D in args.feature_dims:
        fm = gradient.feature_map(prep.kernel, "rff", n_features=D, key=jax.random.key(args.seed + 1),
                                  points=prep.views)
        Psi, Psi_held = fm.batch(prep.views), fm.batch(held)

        def loss_on(W, P, graph):
            return float(objectives.loss("contrastive", W @ P.T, A=graph, reg=lam * (W @ W.T)))

        W_cf, _, _ = lowrank.solve_psi("contrastive", Psi, groups=prep.groups, dim=dim, lam=lam)
        L_cf, L_cf_held = loss_on(W_cf, Psi, A), loss_on(W_cf, Psi_held, A_held)
        entry = {"loss_closed": L_cf, "loss_closed_held": L_cf_held, "routes": {}}
        routes = {"fixed views": dict(X=prep.views, A=A),
                  "fresh views": dict(X=sources, aug=aug, n_views=n_views)}
        for route, data in routes.items():
            record: list = []
            start = time.perf_counter()

            def cb(done, loss, W, record=record, start=start, Psi=Psi, Psi_held=Psi_held):
                seconds = time.perf_counter() - start
                record.append((int(done), seconds, loss_on(W, Psi, A), loss_on(W, Psi_held, A_held)))

            X = data.pop("X")
            gradient.train("contrastive", X, kernel=prep.kernel, dim=dim, lam=lam, param="features", feature_map=fm,
                           optimizer=_feature_optimiser(args.feature_optimiser, args.feature_steps),
                           steps=args.feature_steps, log_every=args.feature_log_every,
                           key=jax.random.key(args.seed), callback=cb, **data)
            # From the second record on: the first two chunks compile (see run_objective's warm-up).
            marks = [(s, t) for s, t, _, _ in record][1:]
            entry["routes"][route] = {
                "steps": [r[0] for r in record],
                "gap": [_short(float(rel_gap(r[2], L_cf))) for r in record],
                "held_gap": [_short(float(rel_gap(r[3], L_cf_held))) for r in record],
                "ms_per_step": per_step_ms(marks), "total_s": time.perf_counter() - start,
            }
            e = entry["routes"][route]
            log(f"features rff D={D} {route}: gap {e['gap'][-1]:.3e} on the closed form's views, "
                f"{e['held_gap'][-1]:+.3e} on a held-out draw, {_fmt(e['ms_per_step'], '.1f')} ms/step")
        out["dims"][str(D)] = entry
    return out


# --------------------------------------------------------------------------------------------------------------------
# Figures and table (from the results dict alone)


def _style(i: int) -> dict:
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
    return {"color": colors[i % len(colors)]}


def plot_objective(res: dict, path: Path) -> None:
    """Gap to the closed form against steps (left) and against seconds (right) for every optimiser."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for i, (name, run) in enumerate(res["runs"].items()):
        if "gap" not in run:
            continue
        g = np.maximum(np.asarray(run["gap"]), FLOOR)
        label = name + (f" (lr {run['learning_rate']:g})" if "learning_rate" in run else "")
        ax1.semilogy(np.arange(g.shape[0]), g, label=label, **_style(i))
        steps, secs = zip(*run["marks"], strict=True)
        ax2.loglog(secs, g[list(steps)], marker=".", ms=3, label=label, **_style(i))
    t_c = res["time_closed_s"]
    ax2.axvline(t_c, color="k", ls="--", lw=1, label=f"closed-form solve {t_c:.2f} s")
    for ax in (ax1, ax2):
        for thr in (1e-2, SPEC_GAP):
            ax.axhline(thr, color="gray", ls=":", lw=0.8)
        ax.set_ylabel("(L - L*) / max(|L*|, 1)")
        ax.set_ylim(FLOOR / 3, None)
        ax.legend(fontsize=8)
    ax1.set_xlabel("step")
    ax2.set_xlabel("wall-clock seconds (after compilation; Gram and preconditioner included)")
    ax1.set_title(f"{res['objective']}: gap to the closed form against steps")
    ax2.set_title(f"{res['objective']}: against time (dotted: 1e-2 and the SPEC gap 1e-4)")
    fig.savefig(path, dpi=100)


def plot_dynamics(dyn: dict, path: Path) -> None:
    """`compare.plot_dynamics` on the recorded run."""
    fields = {k: (np.asarray(dyn[k]) if isinstance(dyn[k], list) else dyn[k]) for k in compare.Dynamics._fields}
    compare.plot_dynamics(compare.Dynamics(**fields), path,
                          f"contrastive, sgd lr {dyn['learning_rate']:.3g}, precondition {dyn['precondition']}, "
                          "init 1e-3")


def plot_features(feat: dict, path: Path) -> None:
    """Gap to the features' closed form on its own views (log) and on a held-out draw of views (signed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for i, (D, entry) in enumerate(feat["dims"].items()):
        for route, ls in (("fixed views", "-"), ("fresh views", "--")):
            r = entry["routes"][route]
            label = f"D = {D}, {route}"
            ax1.semilogy(r["steps"], np.maximum(np.asarray(r["gap"]), FLOOR), ls=ls, label=label, **_style(i))
            ax2.plot(r["steps"], r["held_gap"], ls=ls, label=label, **_style(i))
    ax2.axhline(0.0, color="k", lw=0.8)
    ax2.set_yscale("symlog", linthresh=1e-2)
    for ax in (ax1, ax2):
        ax.set_xlabel(f"step ({feat['optimiser']}, full batch of 300 sources x 2 views)")
        ax.legend(fontsize=8)
    ax1.set_ylabel("(L - L*) / |L*| on the closed form's views")
    ax2.set_ylabel("(L - L*) / |L*| on a held-out draw of views")
    ax1.set_title(f"{feat['objective']}, random features: gap to their closed form")
    ax2.set_title("on a held-out draw of views (< 0: better than the closed form)")
    fig.savefig(path, dpi=100)


def table(results: dict) -> str:
    lines = ["| objective | optimiser | closed form s | to 1e-2: steps / s | to 1e-4 (SPEC): steps / s | "
             "to 1e-6: steps / s | time to 1e-4 / closed | final gap | ms/step | norm ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results["objectives"].values():
        for name, run in res["runs"].items():
            if "diverged" in run:
                lines.append(f"| {res['objective']} | {name} | {res['time_closed_s']:.2f} | diverged | | | | | | |")
                continue
            cells = []
            for thr in THRESHOLDS:
                r = run["reach"][f"{thr:g}"]
                cells.append(f"not in {run['steps_run']}" if r["steps"] is None
                             else f"{r['steps']} / {r['seconds']:.2f}")
            r4 = run["reach"][f"{SPEC_GAP:g}"]["ratio_to_closed"]
            lines.append(f"| {res['objective']} | {name} | {res['time_closed_s']:.2f} | {' | '.join(cells)} | "
                         f"{_fmt(r4, '.1f')} | {run['final_gap']:.1e} | {_fmt(run['ms_per_step'], '.1f')} | "
                         f"{_fmt(run['norm_ratio'], '.3g')} |")
    return "\n".join(lines)


def feature_table(feat: dict) -> str:
    lines = [f"| D | route | gap on the closed form's views after {feat['steps']} steps | gap on a held-out draw | "
             "ms/step |", "|---|---|---|---|---|"]
    for D, entry in feat["dims"].items():
        for route, r in entry["routes"].items():
            lines.append(f"| {D} | {route} | {r['gap'][-1]:.2e} | {r['held_gap'][-1]:+.2e} | "
                         f"{_fmt(r['ms_per_step'], '.1f')} |")
    return "\n".join(lines)


def write_figures(results: dict, out: Path) -> list[Path]:
    paths = []
    for objective, res in results["objectives"].items():
        paths.append(out / f"loss_{objective}.png")
        plot_objective(res, paths[-1])
    for precondition, dyn in (results.get("dynamics") or {}).items():
        paths.append(out / f"dynamics_{precondition}.png")
        plot_dynamics(dyn, paths[-1])
    if results.get("features"):
        paths.append(out / "features.png")
        plot_features(results["features"], paths[-1])
    return paths


# --------------------------------------------------------------------------------------------------------------------
# Main


def _csv(kind):
    return lambda text: [kind(v) for v in text.split(",") if v]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/figures/gradient", help="folder of results.json and the PNGs")
    parser.add_argument("--max-train", type=int, default=300, help="unlabelled digits (x 2 views)")
    parser.add_argument("--objectives", type=_csv(str), default=list(objectives.OBJECTIVES),
                        help="comma-separated objectives of parts (a, b)")
    parser.add_argument("--optimisers", type=_csv(str), default=list(OPTIMISERS),
                        help=f"comma-separated, from {','.join(OPTIMISERS)}")
    parser.add_argument("--steps", type=int, default=1000, help="steps of the first-order optimisers")
    parser.add_argument("--lbfgs-steps", type=int, default=200, help="steps of L-BFGS")
    parser.add_argument("--log-every", type=int, default=10, help="steps per compiled chunk (time resolution)")
    parser.add_argument("--tol", type=float, default=1e-13,
                        help="stop when the loss changes by at most tol |loss| over one chunk (converged)")
    parser.add_argument("--dyn-dim", type=int, default=8, help="output dimension of the dynamics run")
    parser.add_argument("--dyn-steps", type=int, default=3000, help="plain gradient steps of the dynamics (rkhs)")
    parser.add_argument("--dyn-whiten-steps", type=int, default=300, help="steps of the dynamics with whiten")
    parser.add_argument("--dyn-record", type=int, default=10, help="steps between two records of Q")
    parser.add_argument("--feature-dims", type=_csv(int), default=[128, 512], help="random features D (0: skip d)")
    parser.add_argument("--feature-steps", type=int, default=200, help="steps of the features path")
    parser.add_argument("--feature-optimiser", choices=("lbfgs", "adam"), default="lbfgs",
                        help="optimiser of the features path (adam: cosine decay 1e-2 -> 1e-5)")
    parser.add_argument("--feature-log-every", type=int, default=25, help="steps between two loss evaluations")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of initialisations and features")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override after the defaults (as kssl run --set), e.g. ssl.dim=10")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100 digits, contrastive and vicreg, 200 steps, short dynamics, D = 64")
    parser.add_argument("--plot-only", action="store_true", help="figures and table from <out>/results.json")
    args = parser.parse_args(argv)
    for name in args.optimisers:
        if name not in OPTIMISERS:
            parser.error(f"unknown optimiser {name!r}; choose from {', '.join(OPTIMISERS)}")
    for name in args.objectives:
        if name not in objectives.OBJECTIVES:
            parser.error(f"unknown objective {name!r}; choose from {', '.join(objectives.OBJECTIVES)}")
    if args.quick:
        args.max_train, args.objectives, args.steps, args.lbfgs_steps = 100, ["contrastive", "vicreg"], 200, 50
        args.dyn_steps, args.dyn_whiten_steps, args.feature_dims, args.feature_steps = 300, 100, [64], 50
    out = Path(args.out)
    if args.plot_only:
        if not (out / "results.json").is_file():
            parser.error(f"--plot-only: no results.json in {str(out)!r}; run the study first")
        results = json.loads((out / "results.json").read_text())
        write_figures(results, out)
        print(table(results))
        if results.get("features"):
            print("\n" + feature_table(results["features"]))
        return 0

    out.mkdir(parents=True, exist_ok=True)

    def log(text):
        print(text, flush=True)

    start = time.perf_counter()
    load_start = _load()
    log("  ".join(f"{k}={os.environ.get(k, 'unset')}" for k in THREAD_VARS) + f"  jax {jax.__version__} "
        f"{jax.default_backend()}  cpus {os.cpu_count()}")
    cfg = config.load_config(overrides=[f"data.max_train={args.max_train}", *args.overrides])
    prep = experiment.prepare(cfg, experiment.Progress(True))
    log(f"digits: {prep.ds.X_train.shape[0]} sources x {cfg['views']['n_views']} views = {prep.views.shape[0]} "
        f"views, {prep.kernel!r}, dim {cfg['ssl']['dim']}, lam {cfg['ssl']['lam']}, graph cliques + "
        f"{cfg['graph']['knn']}-NN; load average {load_start}")
    results: dict = {
        "setup": {"n_sources": int(prep.ds.X_train.shape[0]), "n_views": int(prep.views.shape[0]),
                  "kernel": repr(prep.kernel), "dim": cfg["ssl"]["dim"], "lam": cfg["ssl"]["lam"],
                  "beta": cfg["ssl"]["beta"], "knn": cfg["graph"]["knn"], "gap": "(L - L*) / max(|L*|, 1)",
                  "sgd_lr": SGD_LR, "adam": "cosine decay 1e-2 -> 1e-5 over the steps", "tol": args.tol,
                  "log_every": args.log_every, "argv": sys.argv[1:] if argv is None else list(argv)},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "jax": jax.__version__,
                    "backend": jax.default_backend(), **{k: os.environ.get(k, "unset") for k in THREAD_VARS}},
        "objectives": {},
    }
    for objective in args.objectives:
        results["objectives"][objective] = run_objective(prep, objective, args, log)
    results["dynamics"] = run_dynamics(prep, args, log) if args.dyn_steps > 0 else None
    feature_dims = [D for D in args.feature_dims if D > 0]
    results["features"] = run_features(prep, argparse.Namespace(**{**vars(args), "feature_dims": feature_dims}),
                                       log) if feature_dims else None
    results["load_average"] = {"start": load_start, "end": _load()}
    results["total_s"] = time.perf_counter() - start
    experiment.atomic_write(out / "results.json", json.dumps(results, separators=(",", ":")) + "\n")
    paths = write_figures(results, out)
    print()
    print(table(results))
    if results["features"]:
        print("\n" + feature_table(results["features"]))
    log(f"\ntotal {results['total_s']:.0f} s; load average (1, 5, 15 min) at start {load_start}, at end "
        f"{results['load_average']['end']}; wrote {out / 'results.json'} and {len(paths)} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
