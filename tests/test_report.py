"""Tests of kernel_ssl_jax/lab/report.py on synthetic results files (no data set, kernel or solver): the kernel heat
maps read back from `kernels.npz`, the sweep heat maps over two swept keys, and the errors for bad files.

The end-to-end checks (a real `kssl run` folder rebuilt by `kssl report`) are in tests/test_cli.py."""

import json

import numpy as np
import pytest

from kernel_ssl_jax.lab import cli, config, report

PNG = b"\x89PNG\r\n\x1a\n"


def _heatmaps(n_per_class=3, classes=3, objectives=("contrastive", "vicreg")):
    labels = np.repeat(np.arange(classes), n_per_class)
    n = labels.size
    rng = np.random.default_rng(0)
    mats = []
    for _ in range(1 + len(objectives)):
        F = rng.normal(size=(n, 4))
        F /= np.linalg.norm(F, axis=1, keepdims=True)
        mats.append(F @ F.T)
    return {"names": np.asarray(["base", *objectives]), "kernels": np.stack(mats).astype(np.float32),
            "labels": labels, "test_index": np.arange(n) * 2}


def _run_folder(tmp_path, heatmaps=None):
    budgets = ["1", "all"]
    entry = {b: {"mean": 0.5, "std": 0.1, "draws": [0.5], "probe": "knn"} for b in budgets}
    results = {"accuracy": {"contrastive": entry, "base_kernel": entry, "supervised": entry},
               "config": config.defaults(), "data": {"name": "digits", "n_train": 10, "n_test": 5},
               "eigenvalues": {"gram": [3.0, 2.0, 1.0], "targets": {"contrastive": [1.0, 0.5]}}}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(results))
    if heatmaps is not None:
        np.savez(run_dir / "kernels.npz", **heatmaps)
    return run_dir


# --------------------------------------------------------------------------------------------------------------------
# Kernel heat maps of a run


def test_kernel_heatmaps_round_trip_and_are_drawn(tmp_path):
    data = _heatmaps()
    run_dir = _run_folder(tmp_path, data)
    loaded = report.load_kernel_heatmaps(run_dir / "kernels.npz")
    assert set(loaded) == set(data)
    for k in data:
        np.testing.assert_array_equal(loaded[k], data[k])
    out = report.build_report(run_dir)
    assert (out / "kernels.png").read_bytes()[:8] == PNG
    assert "![kernels.png](kernels.png)" in (out / "report.md").read_text()
    # The same function on the same arrays draws the same file.
    report.figure_kernels(data, tmp_path / "direct.png")
    assert (tmp_path / "direct.png").read_bytes() == (out / "kernels.png").read_bytes()


def test_report_of_a_run_without_kernels_npz_says_so(tmp_path):
    run_dir = _run_folder(tmp_path)
    out = report.build_report(run_dir / "results.json", out_dir=tmp_path / "rep")
    assert not (out / "kernels.png").exists()
    assert "kernels.png not rebuilt: no kernels.npz in the run folder" in (out / "report.md").read_text()


def _bad_npz(path, case):
    data = _heatmaps()
    if case == "not zip":
        path.write_bytes(b"not an npz archive")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "missing array":
        np.savez(path, **{k: v for k, v in data.items() if k != "labels"})
    elif case == "shapes":
        np.savez(path, **dict(data, kernels=data["kernels"][:, :-1]))
    elif case == "names":
        np.savez(path, **dict(data, names=data["names"][:1]))


@pytest.mark.parametrize("case, message", [
    ("not zip", "is not a valid kernels.npz"),
    ("empty", "is not a valid kernels.npz"),
    ("missing array", "lacks the array(s) labels"),
    ("shapes", "has inconsistent shapes"),
    ("names", "has inconsistent shapes"),
])
def test_bad_kernels_npz_gives_a_clear_error(tmp_path, capsys, case, message):
    run_dir = _run_folder(tmp_path)
    _bad_npz(run_dir / "kernels.npz", case)
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        report.load_kernel_heatmaps(run_dir / "kernels.npz")
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kssl: error: ") and message in err and err.count("\n") == 1


def test_missing_kernels_npz_is_an_error_when_asked_for(tmp_path):
    with pytest.raises(config.ConfigError, match="kernels.npz' not found"):
        report.load_kernel_heatmaps(tmp_path / "kernels.npz")


# --------------------------------------------------------------------------------------------------------------------
# Sweep heat maps


def _record(index, params, acc, sep, objectives=("contrastive", "vicreg")):
    def entry(a, s):
        return {"accuracy": {b: {"mean": a, "std": 0.0, "draws": [a]} for b in ("1", "5")},
                "separation": {"pos": s, "neg": 1.0, "ratio": s, "margin": s - 1.0}}

    cfg = config.defaults()
    return {"key": f"k{index}", "index": index, "params": params, "config": cfg,
            "objectives": {o: entry(acc + 0.1 * i, sep * (i + 2)) for i, o in enumerate(objectives)},
            "base_kernel": entry(acc - 0.1, 1.2), "warnings": []}


def _write_sweep(path, grid, extra=()):
    lines = []
    keys = list(grid)
    index = 0
    for a in grid[keys[0]]:
        for b in grid[keys[1]] if len(keys) > 1 else [None]:
            params = {keys[0]: a} if b is None else {keys[0]: a, keys[1]: b}
            lines.append(_record(index, params, 0.5 + 0.01 * index, 1.0 + index))
            index += 1
    lines += list(extra)
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_two_key_sweep_draws_heat_maps_listed_in_the_report(tmp_path):
    grid = {"views.rotation": [0.0, 12.0, 24.0], "views.noise": [0.0, 0.1]}
    path = _write_sweep(tmp_path / "s.jsonl", grid)
    out = report.build_report(path, out_dir=tmp_path / "rep", budget="5")
    text = (out / "report.md").read_text()
    for metric in ("accuracy", "separation"):
        name = f"heatmap_{metric}_views_rotation__views_noise.png"  # the key with more values along x
        assert (out / name).read_bytes()[:8] == PNG
        assert f"![{metric} over views.noise x views.rotation]({name})" in text
    for key in ("views_rotation", "views_noise"):  # the line plots are still there
        assert (out / f"sweep_{key}.png").stat().st_size > 1000


def test_grid_mean_averages_other_keys_and_leaves_holes():
    recs = [_record(0, {"a": 1, "b": "x", "c": 0}, 0.2, 1.0), _record(1, {"a": 1, "b": "x", "c": 1}, 0.4, 1.0),
            _record(2, {"a": 2, "b": "y", "c": 0}, 0.6, 1.0)]
    grid = report._grid_mean(recs, "a", [1, 2], "b", ["x", "y"],
                             lambda r: r["objectives"]["contrastive"]["accuracy"]["1"]["mean"])
    np.testing.assert_allclose(grid, [[0.3, np.nan], [np.nan, 0.6]])


def test_one_key_sweep_draws_no_heat_map_and_failed_points_are_listed(tmp_path):
    failed = {"key": "bad", "index": 9, "params": {"ssl.lam": 5.0}, "config": config.defaults(), "objectives": {},
              "warnings": [], "error": "ssl.dim = 20 exceeds the rank"}
    path = _write_sweep(tmp_path / "s.jsonl", {"ssl.lam": [0.0, 0.1]}, extra=[failed])
    out = report.build_report(path, out_dir=tmp_path / "rep")
    assert not list(out.glob("heatmap_*"))
    text = (out / "report.md").read_text()
    assert "1 point(s) failed" in text and "point 9 ssl.lam = 5: ssl.dim = 20 exceeds the rank" in text
    assert text.count("\n| ") == 3  # header + the two good points

    only_failed = tmp_path / "f.jsonl"
    only_failed.write_text(json.dumps(failed) + "\n")
    with pytest.raises(config.ConfigError, match="every sweep point failed, e.g. point 9: ssl.dim = 20"):
        report.build_report(only_failed, out_dir=tmp_path / "rep2")


def test_bad_budget_is_a_clear_error(tmp_path):
    path = _write_sweep(tmp_path / "s.jsonl", {"ssl.lam": [0.0, 0.1], "ssl.dim": [2, 4]})
    with pytest.raises(config.ConfigError, match="--budget '3' is not a label budget of this sweep; choose from 1, 5"):
        report.build_report(path, out_dir=tmp_path / "rep", budget="3")
