"""Tests of kernel_ssl_jax/lab/sweep.py and kernel_ssl_jax/lab/report.py: batched = single solves, nested dims, kill and
resume with nothing lost or duplicated, clear errors for bad sweep keys, reports rebuilt from files alone."""

import json
import os
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

import kernel_ssl_jax as kssl
from kernel_ssl_jax import spectral
from kernel_ssl_jax.lab import cli, config, experiment, report, sweep

TINY = """
[data]
max_train = 30
max_test = 30
[views]
n_views = 2
[graph]
knn = 3
[ssl]
objectives = ["contrastive"]
[eval]
labels_per_class = [1, "all"]
n_draws = 1
"""


def _write(tmp_path, grid, output="out.jsonl", extra=""):
    path = tmp_path / "sweep.toml"
    path.write_text(TINY + extra + f"\n[sweep]\ngrid = {grid}\noutput = {json.dumps(str(tmp_path / output))}\n")
    return path


@pytest.fixture(scope="module")
def preps():
    """Two prepared problems (one per bandwidth) shared by the solver tests: data, views, graph, Gram, eigh."""
    out = {}
    for bw in (2.0, 4.0):
        cfg = config.load_config(overrides=["eval.labels_per_class=[1]", "data.max_train=40", "data.max_test=10",
                                            "graph.knn=3", f"kernel.bandwidth={bw}", "ssl.rcond=1e-6"])
        out[bw] = experiment.prepare(cfg)
    return out


# --------------------------------------------------------------------------------------------------------------------
# Batched = single solves


@pytest.mark.parametrize("objective", ["contrastive", "vicreg", "vicreg_hard", "barlow"])
def test_batched_sweep_equals_single_solves(preps, objective):
    # A 2 x 3 grid of bandwidth x lam: one decomposition per bandwidth, one vmapped call over lam.
    lams, dim = [0.0, 0.1, 1.0], 6
    for prep in preps.values():
        coefs, ws, _ = sweep.solve_batch(objective, prep.K, prep.eig, prep.A, prep.pairs, lams, [1.0] * 3, dim)
        X_test = jnp.asarray(prep.ds.X_test)
        for i, lam in enumerate(lams):
            single = kssl.solve(objective, prep.views, None if objective == "barlow" else prep.A, kernel=prep.kernel,
                                dim=dim, lam=lam, beta=1.0, pairs=prep.pairs, rcond=1e-6)
            kw = {"pairs": prep.pairs} if objective == "barlow" else {"A": prep.A, "beta": 1.0}
            loss = kssl.objectives.loss_from_coef(objective, coefs[i], prep.K, lam=lam, **kw)
            np.testing.assert_allclose(float(loss), float(single.loss), rtol=1e-8)
            np.testing.assert_allclose(ws[i], single.eigenvalues, rtol=1e-8, atol=1e-10)
            F = kssl.kernels.gram(prep.kernel, X_test, prep.views) @ coefs[i].T
            induced, reference = F @ F.T, single.induced_kernel(X_test)
            assert float(jnp.linalg.norm(induced - reference)) <= 1e-8 * float(jnp.linalg.norm(reference))


@pytest.mark.parametrize("objective", ["contrastive", "vicreg", "vicreg_hard", "barlow"])
def test_nested_dims_equal_separate_solves(preps, objective):
    prep = preps[2.0]
    A = None if objective == "barlow" else prep.A
    big, w_big, _, _ = spectral.solve_gram(objective, prep.K, A, dim=12, lam=0.1, pairs=prep.pairs, eig=prep.eig)
    nested = sweep.nested_dims(big, w_big, [3, 7, 12])
    for d, (coef, w) in nested.items():
        alone, w_alone, _, _ = spectral.solve_gram(objective, prep.K, A, dim=d, lam=0.1, pairs=prep.pairs,
                                                   eig=prep.eig)
        np.testing.assert_allclose(coef, alone, rtol=1e-10, atol=1e-10 * float(jnp.max(jnp.abs(alone))))
        np.testing.assert_allclose(w, w_alone, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------------------------------
# Nothing lost: kill and resume


def _env(tmp_path):
    # The suite's persistent compilation cache (conftest.py) is inherited: the resumed runs stay fast.
    del tmp_path
    return dict(os.environ, JAX_PLATFORMS="cpu")


def _key_of(r):
    return r["key"]


def _strip(r):
    return {k: v for k, v in r.items() if k != "timings"}


def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path):
    grid = '{"kernel.bandwidth" = [2.0, 3.0], "ssl.lam" = [0.0, 0.1, 1.0], "ssl.dim" = [2, 4]}'
    path = _write(tmp_path, grid)
    out = tmp_path / "out.jsonl"
    spec = sweep.load_sweep(path)
    total = len(spec.points)
    assert total == 12

    proc = subprocess.Popen([sys.executable, "-m", "kernel_ssl_jax", "sweep", str(path)], env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") >= 2:
            break
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = sweep.read_results(out)
    assert 2 <= len(written) < total, "the kill must land mid-sweep"
    # Simulate a kill in the middle of a write: a trailing partial line is ignored and cut off on resume.
    with open(out, "ab") as f:
        f.write(b'{"key": "partial", "obj')

    # The killed process is the only subprocess: resuming is the same code in-process (and reuses its compilations).
    assert cli.main(["sweep", str(path), "--quiet"]) == 0
    data = out.read_bytes()
    assert data.endswith(b"\n") and b"partial" not in data
    resumed = sweep.read_results(out)
    keys = [r["key"] for r in resumed]
    assert len(keys) == len(set(keys)) == total, "no duplicated and no lost points"
    assert set(keys) == {p.key for p in spec.points}
    # The first records survived untouched.
    assert [_strip(r) for r in resumed[: len(written)]] == [_strip(r) for r in written]

    # A third run skips everything.
    assert cli.main(["sweep", str(path), "--quiet"]) == 0
    assert out.read_bytes() == data

    # Equal to an uninterrupted run.
    ref_out = tmp_path / "ref.jsonl"
    assert cli.main(["sweep", str(path), "--quiet", "--out", str(ref_out)]) == 0
    reference = {r["key"]: _strip(r) for r in sweep.read_results(ref_out)}
    assert {r["key"]: _strip(r) for r in resumed} == reference

    # And the report rebuilds from the file alone.
    rep = report.build_report(out, out_dir=tmp_path / "report")
    text = (rep / "report.md").read_text()
    assert text.count("\n| ") == total + 1  # header + one row per point
    for key in ("kernel_bandwidth", "ssl_lam", "ssl_dim"):
        assert (rep / f"sweep_{key}.png").stat().st_size > 1000
        assert (rep / f"separation_{key}.png").stat().st_size > 1000
    # One heat map per pair of swept keys and metric, the key with more values along x.
    for x, y in (("ssl_lam", "kernel_bandwidth"), ("ssl_dim", "kernel_bandwidth"), ("ssl_lam", "ssl_dim")):
        for metric in ("accuracy", "separation"):
            name = f"heatmap_{metric}_{x}__{y}.png"
            assert (rep / name).stat().st_size > 1000 and f"({name})" in text


# --------------------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("grid, message", [
    ('{"ssl.lamm" = [0.1]}', "unknown config key 'ssl.lamm'"),
    ('{"sll.lam" = [0.1]}', "unknown config section [sll]"),
    ('{"lam" = [0.1]}', "must be section.key"),
    ('{"ssl.dim" = ["ten"]}', "ssl.dim must be an integer"),
    ('{"ssl.lam" = [-1.0]}', "ssl.lam must be a finite number >= 0"),
    ('{"ssl.lam" = 0.1}', "must be a non-empty array"),
    ('{"ssl.objectives" = [["barlow"]], "views.n_views" = [1]}', "views.n_views must be >= 2"),
])
def test_bad_sweep_keys_give_a_clear_error_and_write_nothing(tmp_path, capsys, grid, message):
    path = _write(tmp_path, grid)
    assert cli.main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("kssl: error:") and err.count("\n") == 1
    assert not (tmp_path / "out.jsonl").exists()


def test_unknown_sweep_option_and_missing_section(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[sweep]\ngridd = {}\n")
    with pytest.raises(config.ConfigError, match="unknown key 'sweep.gridd'"):
        sweep.load_sweep(path)
    path.write_text("[ssl]\ndim = 3\n")
    with pytest.raises(config.ConfigError, match=r"needs a \[sweep\] section"):
        sweep.load_sweep(path)
    path.write_text(TINY.replace("[ssl]", "[ssl]\ndimm = 3") + '\n[sweep]\ngrid = {"ssl.lam" = [0.1]}\n')
    with pytest.raises(config.ConfigError, match="unknown config key 'ssl.dimm'"):
        sweep.load_sweep(path)


def test_point_keys_are_stable_and_ignore_output():
    cfg = config.load_config()
    key = sweep.point_key(cfg)
    cfg2 = config.load_config(overrides=["output.dir=elsewhere"])
    assert sweep.point_key(cfg2) == key
    assert sweep.point_key(config.load_config(overrides=["ssl.lam=0.2"])) != key
    assert len(key) == 16


def test_a_file_written_before_a_key_existed_resumes_without_recomputing(tmp_path):
    # An older version wrote these records: its configurations lack `graph.clique_weight` (added later with the
    # default 1.0, the earlier behaviour). Resuming skips them; a different value of the new key recomputes, and so
    # does a record holding a key the schema no longer has.
    path = _write(tmp_path, '{"ssl.lam" = [0.1, 1.0]}')
    out = tmp_path / "out.jsonl"
    assert cli.main(["sweep", str(path), "--quiet"]) == 0
    records = sweep.read_results(out)
    assert [sweep.record_key(r) for r in records] == [r["key"] for r in records]
    for r in records:
        del r["config"]["graph"]["clique_weight"]
        r["key"] = "written-by-an-older-version"
    records[1]["config"]["graph"]["retired_key"] = 3
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    spec = sweep.load_sweep(path)
    assert sweep.record_key(records[0]) == spec.points[0].key
    assert sweep.record_key(records[1]) != spec.points[1].key
    assert sweep.record_key({"key": "k"}) == "k"
    summary = sweep.run_sweep(spec, progress=False)
    assert (summary["skipped"], summary["computed"]) == (1, 1)
    heavier = sweep.load_sweep(_write(tmp_path, '{"ssl.lam" = [0.1], "graph.clique_weight" = [4.0]}'))
    assert sweep.record_key(records[0]) != heavier.points[0].key


def test_report_rebuilds_a_run_from_results_json(tmp_path):
    budgets = ["1", "all"]
    entry = {b: {"mean": 0.5, "std": 0.1, "draws": [0.5], "probe": "knn"} for b in budgets}
    results = {"accuracy": {"contrastive": entry, "base_kernel": entry, "supervised": entry},
               "config": config.defaults(), "data": {"name": "digits", "n_train": 10, "n_test": 5},
               "eigenvalues": {"gram": [3.0, 2.0, 1.0], "targets": {"contrastive": [1.0, 0.5]}},
               "losses": {"contrastive": -1.0}, "timings": {"total": 1.0}}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(results))
    assert cli.main(["report", str(run_dir)]) == 0
    assert (run_dir / "report" / "accuracy.png").stat().st_size > 1000
    assert (run_dir / "report" / "spectrum.png").stat().st_size > 1000
    assert "| contrastive | knn | 0.500 ± 0.100" in (run_dir / "report" / "report.md").read_text()
    assert cli.main(["report", str(tmp_path / "missing")]) == 2


def test_separation_ratio_and_a_corrupt_results_line(tmp_path):
    S = np.array([[1.0, 0.2, 0.4], [0.2, 0.8, 0.0], [0.0, 0.4, 0.6]])
    sep = sweep.separation(S)
    np.testing.assert_allclose([sep["pos"], sep["neg"], sep["ratio"]], [0.8, 0.2, 4.0])
    assert sweep.separation(-S)["ratio"] is None
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"key": "a"}\nnot json\n{"key": "b"}\n{"key": "c')
    with pytest.raises(config.ConfigError, match="line 2, is not JSON"):
        sweep.read_results(path)
    path.write_bytes(b'{"key": "a"}\n{"key": "c')
    assert [r["key"] for r in sweep.read_results(path, repair=True)] == ["a"]
    assert path.read_bytes() == b'{"key": "a"}\n'
