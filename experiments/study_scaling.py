"""Scaling study: time and peak memory of the closed-form paths against the number of views N.

Paths (all through `kssl.solve`, contrastive, view-clique graph given as `groups`, RBF at the median distance between
the views, dim 32, lam 0.1):

  dense          `method="dense"`: eigendecomposition of the N x N Gram, O(N^3) time, O(N^2) memory;
  structured     `method="structured"`: one Cholesky factorisation of K + lam I, O(N^3 / 3), O(N^2) memory;
  nystrom-<m>    `method="nystrom", n_landmarks=m` (k-means++): O(N m^2 + m^3), O(n m + m^2) memory.

Data: N views of the scikit-learn digits training sources (random affine warp <= 10 degrees and 1 pixel, plus
Gaussian noise 0.05), min(N / 4, 1000) sources with N / sources views each (4 views per source up to N = 4000, then
more views per source: 1000 x 8 at N = 8000, 1000 x 32 at N = 32,000). The same seed gives the same views to every
path at a given N.

Each (path, N) point runs in its own subprocess, so the peak memory (`ru_maxrss` of the child) is per point. The
first call of `kssl.solve` includes JIT compilation, the second is warm; both are reported. Where the dense path
runs, the other paths are compared with it on the same data: relative loss difference (for Nystrom, the loss of the
Nystrom kernel) and relative difference of the induced kernel on 100 held-out test digits. Each point also reports
the ridge-probe accuracy on the held-out digits (features of the clean training digits).

Outputs (in --out, default docs/figures/scaling): results.json (rewritten atomically after every point, so a run cut
short keeps what it measured) and scaling.png (log-log time and memory against N, one line per path) with the fitted
slope d log(time) / d log(N) per path.

Usage:
  OPENBLAS_NUM_THREADS=2 python experiments/study_scaling.py          # about 5 minutes on 2 CPU cores
  python experiments/study_scaling.py --quick                         # N up to 2000, seconds
  python experiments/study_scaling.py --plot-only                     # redraw the figure from results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

DIM = 32
LAM = 0.1
MAX_SOURCES = 1000
N_COMPARE = 100  # held-out test digits on which the induced kernels are compared
GRID = [500, 1000, 2000, 4000, 8000, 16000, 32000]
QUICK_GRID = [250, 500, 1000]


# --------------------------------------------------------------------------------------------------------------------
# One point (runs in a subprocess)


def _maxrss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def views(N: int, seed: int = 0):
    """`(X, groups, probe)`: N augmented views of min(N / 4, 1000) digits sources, and the clean train/test digits."""
    import jax
    import numpy as np

    import kernel_ssl_jax as kssl

    ds = kssl.data.digits(seed=0)
    n_sources = max(1, min(N // 4, MAX_SOURCES, ds.X_train.shape[0]))
    n_views = -(-N // n_sources)
    aug = kssl.augment.compose(kssl.augment.affine((8, 8), max_degrees=10.0, max_shift=1.0),
                               kssl.augment.gaussian_noise(0.05))
    X, groups = kssl.augment.make_views(jax.random.key(seed), jax.numpy.asarray(ds.X_train[:n_sources]), n_views, aug)
    X, groups = np.asarray(X)[:N], np.asarray(groups)[:N]
    return X, groups, (ds.X_train, ds.y_train, ds.X_test, ds.y_test)


def measure(path: str, N: int, m: int = 0, repeats: int = 1, seed: int = 0) -> dict:
    """Times `kssl.solve` for one path at N views: the first call (compilation included), then the best of `repeats`
    warm calls; returns the timings, the peak memory and the outputs compared by the parent."""
    import jax
    import numpy as np

    import kernel_ssl_jax as kssl
    from kernel_ssl_jax import evaluate

    t0 = time.perf_counter()
    X, groups, (Xtr, ytr, Xte, yte) = views(N, seed)
    k = kssl.kernels.rbf(kssl.median_bandwidth(X))
    t_data = time.perf_counter() - t0
    options = dict(method=path)
    if path == "nystrom":
        options["n_landmarks"] = m

    def fit():
        t0 = time.perf_counter()
        sol = jax.block_until_ready(kssl.solve("contrastive", X, groups=groups, kernel=k, dim=DIM, lam=LAM, **options))
        return time.perf_counter() - t0, sol

    rss_before = _maxrss_gib()
    t_cold, sol = fit()
    t_warm = min(fit()[0] for _ in range(repeats))
    rss_peak = _maxrss_gib()
    F_tr, F_te = np.asarray(sol.features(Xtr, block_size=2048)), np.asarray(sol.features(Xte))
    acc = float(np.mean(np.asarray(evaluate.ridge_probe(F_tr, ytr, F_te)) == yte))
    return dict(path=path if path != "nystrom" else f"nystrom-{m}", method=sol.method, N=int(X.shape[0]),
                n_sources=int(groups.max()) + 1, m=m, t_data=t_data, t_cold=t_cold, t_warm=t_warm,
                t_compile=max(t_cold - t_warm, 0.0), repeats=repeats, rss_before_gib=rss_before,
                rss_peak_gib=rss_peak, rss_added_gib=rss_peak - rss_before,
                loss=float(sol.loss), acc_ridge=100 * acc, F_compare=F_te[:N_COMPARE].tolist())


# --------------------------------------------------------------------------------------------------------------------
# Orchestration


def _spawn(path: str, N: int, m: int, repeats: int, timeout: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--point", json.dumps(dict(path=path, N=N, m=m, repeats=repeats))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {timeout} s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return dict(error=(proc.stderr or proc.stdout).strip()[-2000:] or f"exit status {proc.returncode}")
    return json.loads(lines[-1])


def write_json(path: str, obj) -> None:
    """Writes `obj` as JSON to `path` atomically (a temporary file in the same folder, then `os.replace`)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the results are meant to be read
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def slope(points: list[dict], key: str = "t_warm", last: int | None = None) -> float | None:
    """Least-squares slope of log(key) against log(N) over the points (the `last` largest N only, if given)."""
    import numpy as np

    pts = sorted((p["N"], p[key]) for p in points if p.get(key, 0) > 0)
    if last is not None:
        pts = pts[-last:]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def compare(points: list[dict], F_by: dict) -> None:
    """Adds to each point the relative loss and induced-kernel differences from the dense point at the same N."""
    import numpy as np

    dense = {p["N"]: p for p in points if p["path"] == "dense"}
    for p in points:
        ref = dense.get(p["N"])
        if ref is None or p["path"] == "dense":
            continue
        p["rel_loss_vs_dense"] = abs(p["loss"] - ref["loss"]) / abs(ref["loss"])
        Fa, Fb = np.asarray(F_by[p["path"], p["N"]]), np.asarray(F_by["dense", p["N"]])
        Ka, Kb = Fa @ Fa.T, Fb @ Fb.T
        p["rel_induced_kernel_vs_dense"] = float(np.linalg.norm(Ka - Kb) / np.linalg.norm(Kb))


def summarise(results: dict) -> None:
    by_path: dict = {}
    for p in results["points"]:
        by_path.setdefault(p["path"], []).append(p)
    results["slopes"] = {
        name: dict(warm_all=slope(pts), warm_last3=slope(pts, last=3), cold_all=slope(pts, "t_cold"),
                   rss_added_last3=slope(pts, "rss_added_gib", last=3),
                   N=[p["N"] for p in sorted(pts, key=lambda q: q["N"])])
        for name, pts in by_path.items()}


def plot(results: dict, out_png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    by_path: dict = {}
    for p in results["points"]:
        by_path.setdefault(p["path"], []).append(p)
    for i, (name, pts) in enumerate(by_path.items()):
        pts = sorted(pts, key=lambda q: q["N"])
        N = [p["N"] for p in pts]
        color = f"C{i}"
        s = results.get("slopes", {}).get(name, {})
        label = (f"{name}, warm (slope {s['warm_all']:.2f}; largest 3 N: {s['warm_last3']:.2f})"
                 if s.get("warm_all") is not None else f"{name}, warm")
        ax_t.plot(N, [p["t_warm"] for p in pts], "o-", color=color, label=label)
        ax_t.plot(N, [p["t_cold"] for p in pts], "x--", color=color, alpha=0.5, label=f"{name}, first call")
        sm = results.get("slopes", {}).get(name, {}).get("rss_added_last3")
        ax_m.plot(N, [max(p["rss_added_gib"], 1e-3) for p in pts], "o-", color=color,
                  label=f"{name} (slope of the last 3: {sm:.2f})" if sm is not None else name)
    if results["points"]:
        # Guides N^1 and N^3 through the smallest warm time, for reading the slopes.
        n0 = min(p["N"] for p in results["points"])
        n1 = max(p["N"] for p in results["points"])
        t0 = min(p["t_warm"] for p in results["points"])
        for power, style in ((1, ":"), (2, "-."), (3, "--")):
            ax_t.plot([n0, n1], [t0, t0 * (n1 / n0) ** power], style, color="grey", lw=0.8, label=f"N^{power} guide")
    for ax in (ax_t, ax_m):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (training views)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if results["points"]:
        ax_t.set_ylim(0.5 * min(p["t_warm"] for p in results["points"]),
                      2.0 * max(p["t_cold"] for p in results["points"]))
    baseline = [p["rss_before_gib"] for p in results["points"]]
    ax_t.set_ylabel("kssl.solve time [s]")
    ax_m.set_ylabel("peak RSS added by the solve [GiB]")
    ax_t.set_title("time (solid: warm, best of repeats; dashed: first call incl. JIT)", fontsize=10)
    ax_m.set_title(f"memory: peak RSS minus RSS before the solve (that was {min(baseline, default=0):.2f}-"
                   f"{max(baseline, default=0):.2f} GiB)", fontsize=10)
    load = results.get("load_start", [float("nan")] * 3)
    fig.suptitle(f"kssl.solve contrastive (dim {results['settings']['dim']}, lam {results['settings']['lam']}) "
                 f"on digits views: dense, structured, Nystrom; {results.get('cores', '?')} CPU cores, "
                 f"load {load[0]:.1f} at the start")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def _fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def print_tables(results: dict) -> None:
    print(f"\n{'path':<14} {'N':>6} {'sources':>7} {'first [s]':>9} {'warm [s]':>9} {'RSS pre':>7} "
          f"{'RSS peak':>8} {'added':>6} {'ridge':>5} {'rel loss':>8} {'rel K*':>8} {'load':>5}")
    for p in sorted(results["points"], key=lambda q: (q["path"], q["N"])):
        print(f"{p['path']:<14} {p['N']:>6} {p['n_sources']:>7} {p['t_cold']:>9.3f} {p['t_warm']:>9.3f} "
              f"{p['rss_before_gib']:>7.2f} {p['rss_peak_gib']:>8.2f} {p['rss_added_gib']:>6.2f} "
              f"{p['acc_ridge']:>5.1f} {_fmt(p.get('rel_loss_vs_dense'), '.1e'):>8} "
              f"{_fmt(p.get('rel_induced_kernel_vs_dense'), '.1e'):>8} {p['load'][0]:>5.2f}")
    print(f"\n{'path':<14} {'slope warm':>10} {'last 3':>7} {'slope first':>11} {'slope added RSS, last 3':>23}  N")
    for name, s in results["slopes"].items():
        print(f"{name:<14} {_fmt(s['warm_all'], '.2f'):>10} {_fmt(s['warm_last3'], '.2f'):>7} "
              f"{_fmt(s['cold_all'], '.2f'):>11} {_fmt(s['rss_added_last3'], '.2f'):>23}  {s['N']}")
    for e in results.get("errors", []):
        print(f"ERROR {e['path']} N={e['N']}: {e['error'].splitlines()[-1] if e['error'] else '?'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=int, nargs="+", default=None, help=f"values of N (default {GRID})")
    parser.add_argument("--landmarks", type=int, nargs="+", default=[500, 2000],
                        help="Nystrom landmark counts m, one path each (default 500 2000; a path runs for N > m)")
    parser.add_argument("--max-dense", type=int, default=4000, help="largest N for the dense path (default 4000)")
    parser.add_argument("--max-structured", type=int, default=8000,
                        help="largest N for the structured path (default 8000)")
    parser.add_argument("--max-nystrom", type=int, default=32000, help="largest N for Nystrom (default 32000)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per point; a path stops at its first failure")
    parser.add_argument("--repeats", type=int, default=1, help="warm calls per point; the best is kept (default 1)")
    parser.add_argument("--quick", action="store_true", help=f"N in {QUICK_GRID}, m = 100 (a smoke run)")
    parser.add_argument("--out", default=os.path.join("docs", "figures", "scaling"), help="output folder")
    parser.add_argument("--plot-only", action="store_true", help="redraw scaling.png from OUT/results.json")
    parser.add_argument("--point", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.point:  # inside a measurement subprocess
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        print(json.dumps(measure(**json.loads(args.point))), flush=True)
        return 0

    out_json, out_png = os.path.join(args.out, "results.json"), os.path.join(args.out, "scaling.png")
    if args.plot_only:
        with open(out_json) as f:
            results = json.load(f)
        plot(results, out_png)
        print_tables(results)
        print(f"wrote {out_png}")
        return 0

    grid = args.grid or (QUICK_GRID if args.quick else GRID)
    landmarks = [100] if args.quick else args.landmarks
    paths = [("dense", 0, args.max_dense), ("structured", 0, args.max_structured)]
    paths += [("nystrom", m, args.max_nystrom) for m in landmarks]
    load = os.getloadavg()
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} "
          f"KSSL_ENABLE_X64={os.environ.get('KSSL_ENABLE_X64', 'unset (1)')} cores={os.cpu_count()} "
          f"python={platform.python_version()} load average at start={load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
          flush=True)
    results = dict(settings=dict(objective="contrastive", dim=DIM, lam=LAM, grid=grid, landmarks=landmarks,
                                 max_sources=MAX_SOURCES, compare_on=N_COMPARE,
                                 openblas_threads=os.environ.get("OPENBLAS_NUM_THREADS", "unset")),
                   cores=os.cpu_count(), python=platform.python_version(), load_start=list(load), points=[],
                   errors=[])
    F_by: dict = {}
    start = time.perf_counter()
    failed: set = set()
    for N in grid:
        for path, m, cap in paths:
            name = path if path != "nystrom" else f"nystrom-{m}"
            if N > cap or (path == "nystrom" and m >= N) or name in failed:
                continue
            t0 = time.perf_counter()
            r = _spawn(path, N, m, args.repeats, args.timeout)
            if "error" in r:
                failed.add(name)
                results["errors"].append(dict(path=name, N=N, error=r["error"]))
                print(f"  {name:<14} N={N:>6}  ERROR {r['error'].splitlines()[-1] if r['error'] else '?'}",
                      flush=True)
            else:
                F_by[name, N] = r.pop("F_compare")
                r["subprocess_wall"] = time.perf_counter() - t0
                r["load"] = list(os.getloadavg())
                results["points"].append(r)
                print(f"  {name:<14} N={N:>6}  cold {r['t_cold']:8.3f} s  warm {r['t_warm']:8.3f} s  "
                      f"peak RSS {r['rss_peak_gib']:.2f} GiB  ridge acc {r['acc_ridge']:.1f}  "
                      f"(load {r['load'][0]:.2f})", flush=True)
            compare(results["points"], F_by)
            summarise(results)
            results["load_end"] = list(os.getloadavg())
            results["wall_s"] = time.perf_counter() - start
            write_json(out_json, results)
    plot(results, out_png)
    print_tables(results)
    end = os.getloadavg()
    print(f"\ntotal {time.perf_counter() - start:.0f} s; load average at end={end[0]:.2f} {end[1]:.2f} {end[2]:.2f}")
    print(f"wrote {out_json} and {out_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
