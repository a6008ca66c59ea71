"""Tests for the `kssl` command line (kernel_ssl_jax/lab/cli.py) and the main job it runs (lab/experiment.py).

The end-to-end test runs `kssl run` on a tiny configuration (200 digits x 2 views) and checks the run folder, the
JSON structure and the printed table; the bad-input tests check the one-line error, exit code 2 and that nothing is
written.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from kernel_ssl_jax import graphs, kernels, spectral
from kernel_ssl_jax.lab import cli, config, experiment, report

OBJECTIVES = ["contrastive", "vicreg", "vicreg_hard", "barlow"]

TINY = """\
[data]
max_train = 200
max_test = 100

[views]
n_views = 2

[graph]
knn = 5

[ssl]
dim = 6

[eval]
labels_per_class = [1, 2, "all"]
n_draws = 2
probes = ["knn", "kernel_ridge"]
heatmap_per_class = 3

[output]
name = "tiny"
"""


def _call(argv):
    """Runs `kssl` in-process; returns the exit code (argparse exits through SystemExit)."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One end-to-end `kssl run` shared by the checks below: (exit code, stdout, stderr, out dir, config)."""
    root = tmp_path_factory.mktemp("tiny")
    cfg_path = root / "tiny.toml"
    cfg_path.write_text(TINY)
    out = root / "runs"
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = _call(["run", "--config", str(cfg_path), "--out", str(out)])
    return code, stdout.getvalue(), stderr.getvalue(), out, config.load_config(cfg_path)


def test_run_writes_a_complete_run_folder(tiny_run):
    code, stdout, stderr, out, _ = tiny_run
    assert code == 0, stderr
    folders = list(out.iterdir())
    assert len(folders) == 1, folders  # no leftover temporary folder
    run_dir = folders[0]
    assert re.fullmatch(r"\d{8}-\d{6}-tiny", run_dir.name)
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["accuracy.png", "config.toml", "kernels.npz", "kernels.png", "results.csv", "results.json",
                     "spectrum.png"]
    for png in ("accuracy.png", "kernels.png", "spectrum.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"run folder: {run_dir}" in stdout
    for stage in ("data", "views", "graph", "kernel", "decompose", "solve", "features", "evaluate", "write"):
        assert f"[kssl] {stage}" in stderr


def test_results_json_structure(tiny_run):
    _, _, _, out, cfg = tiny_run
    run_dir = next(out.iterdir())
    res = json.loads((run_dir / "results.json").read_text())
    assert res["config"] == cfg
    assert config.load_config(run_dir / "config.toml") == cfg
    assert res["run_dir"] == str(run_dir)
    acc = res["accuracy"]
    expected = OBJECTIVES + ["base_kernel", "supervised"]
    expected += [f"{o}/{p}" for o in OBJECTIVES for p in ("knn", "kernel_ridge")]
    expected += ["base_kernel/kernel_ridge", "base_kernel/knn"]
    expected += [f"peer:{p}" for p in config.PEERS]  # eval.peers, on by default
    assert list(acc) == expected
    for method, entry in acc.items():
        assert list(entry) == ["1", "2", "all"], method
        for key, cell in entry.items():
            extra = {"params"} if method.startswith("peer:") else set()  # a peer's (default) hyper-parameters
            assert set(cell) == {"mean", "std", "draws", "probe"} | extra
            assert len(cell["draws"]) == (1 if key == "all" else 2)
            assert 0.0 <= cell["mean"] <= 1.0
            assert cell["mean"] == pytest.approx(np.mean(cell["draws"]))
            assert cell["std"] == pytest.approx(np.std(cell["draws"]))
    for o in OBJECTIVES:
        assert acc[o] == acc[f"{o}/knn"]  # the main probe
    # SPEC.md §6: the baseline is kernel ridge with the base kernel at every budget, never picked on test.
    assert acc["base_kernel"] == acc["base_kernel/kernel_ridge"]
    assert {cell["probe"] for cell in acc["base_kernel"].values()} == {"kernel_ridge"}
    assert "best_method" not in res["summary"]  # no method is picked on the test split
    assert set(res["summary"]["gain_over_base_kernel"]) <= set(acc)
    assert len(res["eigenvalues"]["gram"]) == 400
    assert all(len(res["eigenvalues"]["targets"][o]) == 6 for o in OBJECTIVES)
    assert set(res["losses"]) == set(OBJECTIVES)
    assert {"decompose", "solve", "evaluate", "total"} <= set(res["timings"])
    assert res["data"]["n_train"] == 200 and res["data"]["n_test"] == 100 and res["views"]["n_total"] == 400


def test_results_csv_matches_json(tiny_run):
    _, _, _, out, _ = tiny_run
    run_dir = next(out.iterdir())
    acc = json.loads((run_dir / "results.json").read_text())["accuracy"]
    with open(run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == list(acc)
    for r in rows:
        for key in ("1", "2", "all"):
            assert float(r[f"mean_{key}"]) == pytest.approx(acc[r["method"]][key]["mean"], abs=1e-6)
            assert float(r[f"std_{key}"]) == pytest.approx(acc[r["method"]][key]["std"], abs=1e-6)


def test_printed_table(tiny_run):
    _, stdout, _, out, _ = tiny_run
    acc = json.loads((next(out.iterdir()) / "results.json").read_text())["accuracy"]
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("method"))
    assert header.split() == ["method", "1", "2", "all"]
    for label, method in [("contrastive (knn)", "contrastive"), ("barlow (knn)", "barlow"),
                          ("supervised (logistic on raw inputs)", "supervised"),
                          ("base_kernel/knn", "base_kernel/knn")]:
        row = next(line for line in lines if line.startswith(label + " "))
        cells = [f"{acc[method][k]['mean']:.3f} ± {acc[method][k]['std']:.3f}" for k in ("1", "2", "all")]
        assert row.split()[-9:] == " ".join(cells).split()
    assert any(line.startswith("base_kernel (") for line in lines)
    assert "points over base_kernel" in stdout


def test_kernels_npz_holds_the_heat_maps_the_run_computed(tiny_run):
    # Recomputed independently from the run's config.toml: the same test samples, base Gram and features.
    _, _, _, out, _ = tiny_run
    run_dir = next(out.iterdir())
    saved = report.load_kernel_heatmaps(run_dir / "kernels.npz")
    cfg = config.load_config(run_dir / "config.toml")
    prep = experiment.prepare(cfg)
    solutions = experiment.fit_objectives(prep)
    y_test = np.asarray(prep.ds.y_test)
    idx, labels = saved["test_index"], saved["labels"]
    n_classes = len(np.unique(y_test))
    assert idx.shape == (cfg["eval"]["heatmap_per_class"] * n_classes,) and len(set(idx.tolist())) == idx.size
    np.testing.assert_array_equal(labels, y_test[idx])
    assert np.all(np.diff(labels) >= 0)
    np.testing.assert_array_equal(np.bincount(labels), [cfg["eval"]["heatmap_per_class"]] * n_classes)
    assert saved["names"].tolist() == ["base", *OBJECTIVES] and saved["kernels"].dtype == np.float32
    Xs = jnp.asarray(prep.ds.X_test[idx])
    G = np.asarray(kernels.gram(prep.kernel, Xs))
    d = np.sqrt(np.diag(G))
    expected = [G / np.outer(d, d)]
    for o in OBJECTIVES:
        F = np.asarray(solutions[o].features(Xs))
        F = F / np.linalg.norm(F, axis=1, keepdims=True)
        expected.append(F @ F.T)
    for name, got, want in zip(saved["names"], saved["kernels"], expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=str(name))


def test_report_rebuilds_every_figure_from_the_run_folder_alone(tiny_run, tmp_path):
    _, _, _, out, _ = tiny_run
    run_dir = tmp_path / "copy"
    shutil.copytree(next(out.iterdir()), run_dir)
    figures = ("accuracy.png", "kernels.png", "spectrum.png")
    drawn_by_run = {f: (run_dir / f).read_bytes() for f in figures}
    for f in figures:
        (run_dir / f).unlink()
    assert _call(["report", str(run_dir), "--out", str(run_dir)]) == 0
    # One drawing function per figure, on the stored data: the very same files as `kssl run` wrote.
    for f in figures:
        assert (run_dir / f).read_bytes() == drawn_by_run[f], f
        assert f"![{f}]({f})" in (run_dir / "report.md").read_text()


def test_quiet_prints_no_progress(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY.replace('probes = ["knn", "kernel_ridge"]', 'probes = ["knn"]')
                   .replace("[output]", "[output]\nfigures = false"))
    code = _call(["run", "--config", str(cfg), "--out", str(tmp_path / "runs"), "--quiet",
                  "--set", "ssl.objectives=['contrastive']", "--set", "eval.labels_per_class=[1]"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == ""
    assert "contrastive (knn)" in captured.out
    run_dir = next((tmp_path / "runs").iterdir())
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.toml", "kernels.npz", "results.csv", "results.json"]


# --------------------------------------------------------------------------------------------------------------------
# Help


def test_help_lists_every_subcommand(capsys):
    assert _call(["--help"]) == 0
    text = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in text


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_subcommand_help(name, capsys):
    assert _call([name, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: kssl {name}")


def test_run_help_explains_every_option_and_key(capsys):
    assert _call(["run", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--config FILE", "--set KEY=VALUE", "--out DIR", "--quiet"):
        assert option in text
    for section, options in config.SCHEMA.items():
        for key in options:
            assert f"{section}.{key} = " in text


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "kernel_ssl_jax", "run", "--help"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: kssl run")


# --------------------------------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit code 2, nothing written


BAD_INPUT = [
    (["--set", "data.name=imagenet"], "data.name must be one of digits"),
    (["--set", "ssl.objectives=['simclr']"], "ssl.objectives has unknown objective 'simclr'"),
    (["--set", "ssl.dimm=3"], "unknown config key 'ssl.dimm'"),
    (["--set", "sssl.dim=3"], "unknown config section [sssl]"),
    (["--set", "ssl.dim=ten"], "ssl.dim must be an integer, got the string 'ten'"),
    (["--set", "ssl.dim"], "cannot parse --set 'ssl.dim'"),
    (["--set", "data.name=mnist", "--set", "data.path={tmp}/nowhere"], "data.path: MNIST directory"),
    (["--set", "data.name=file", "--set", "data.path={tmp}/nothing.npz"], "data.path: data file"),
    (["--set", "data.name=file"], "data.path is required for data.name = 'file'"),
    (["--config", "{tmp}/missing.toml"], "config file"),
    (["--config", "{tmp}/bad.toml"], "is not valid TOML"),
    (["--set", "data.name=moons"], "views: augmentation(s) rotation, shift need an image shape"),
    (["--set", "views.signal_shift=3"], "views: signal augmentation(s) signal_shift=3 act on 1-D signals"),
    (["--set", "data.max_train=50", "--set", "eval.labels_per_class=[10]"], "eval.labels_per_class asks for 10"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--out", "{tmp}/bad.toml"], "--out: '{tmp}/bad.toml' exists and is not a directory"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    (tmp_path / "bad.toml").write_text("[ssl\n")
    out = tmp_path / "runs"
    argv = ["run", "--out", str(out), *[a.format(tmp=tmp_path) for a in args]]  # a later --out wins
    assert _call(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kssl: error: ")
    assert err.count("\n") == 1, err
    assert message.format(tmp=tmp_path) in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_no_subcommand_is_an_error(capsys):
    assert _call([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kssl: error: choose a command: run") and err.count("\n") == 1


# --------------------------------------------------------------------------------------------------------------------
# The shared decomposition


@pytest.mark.parametrize("objective, knn", [(o, 3) for o in OBJECTIVES] + [("contrastive", 0)])
def test_compacted_decomposition_matches_full(objective, knn):
    """Solving on the compacted eigenpairs (experiment.decompose) equals spectral.solve_gram at the same rcond.

    `knn = 0` is the view-clique graph, for which contrastive takes the structured path.
    """
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(40, 3)))
    groups = np.repeat(np.arange(20), 2)
    A = graphs.from_groups(groups)
    if knn:
        A = jnp.maximum(A, graphs.knn(X, knn))
    pairs = graphs.pairs_from_groups(groups)
    K = kernels.gram(kernels.rbf(1.5), X)
    rcond = 1e-4
    eig, spectrum = experiment.decompose(K, rcond)
    assert int(eig.rank) < 40 and eig.U.shape == (40, int(eig.rank))
    assert np.all(np.diff(spectrum) <= 0)
    kw = dict(dim=4, lam=0.1, beta=0.5, pairs=pairs if objective == "barlow" else None, rcond=rcond)
    A_ = None if objective == "barlow" else A
    C_full, w_full, _, method = spectral.solve_gram(objective, K, A_, **kw)
    C_comp, w_comp, _, method_comp = spectral.solve_gram(objective, K, A_, eig=eig, **kw)
    assert method_comp == method == ("structured-eigh" if objective == "contrastive" and not knn else "dense-eigh")
    np.testing.assert_allclose(w_comp, w_full, rtol=1e-8, atol=1e-10)
    # Coefficients are unique up to rotations within degenerate eigenspaces: compare induced kernels.
    np.testing.assert_allclose(K @ C_comp.T @ C_comp @ K, K @ C_full.T @ C_full @ K, rtol=1e-6, atol=1e-8)


def test_convolutional_kernels_from_the_config_use_the_image_shape():
    cfg = config.load_config(overrides=["kernel.name=cntk", "kernel.readout=gap", "kernel.depth=2"])
    k = experiment.build_kernel(cfg, np.zeros((4, 64)), (8, 8))
    assert k.name == "cntk" and dict(k.static) == {"depth": 2, "image_shape": (8, 8, 1), "readout": "gap"}
    with pytest.raises(config.ConfigError, match="kernel.name = 'cntk' needs images"):
        experiment.build_kernel(cfg, np.zeros((4, 64)), None)
    with pytest.raises(config.ConfigError, match="readout"):
        config.load_config(overrides=["kernel.readout=max"])


def test_the_data_set_gives_the_convolutional_kernel_its_image_shape():
    # `kssl run --set kernel.name=cntk --set kernel.readout=gap` on digits (the run and the sweep build the kernel
    # from `ds.image_shape`): its Gram is the one of kernels.cntk on 8x8 images, not on another shape of 64 pixels.
    cfg = config.load_config(overrides=["kernel.name=cntk", "kernel.readout=gap", "data.max_train=20",
                                        "eval.labels_per_class=[1]"])
    ds = experiment.load_data(cfg)
    X = jnp.asarray(ds.X_train[:6])
    K = kernels.gram(experiment.build_kernel(cfg, X, ds.image_shape), X)
    direct = kernels.gram(kernels.cntk((8, 8, 1), 1, readout="gap"), X)
    np.testing.assert_allclose(K, direct, rtol=1e-12)
    wrong = kernels.gram(kernels.cntk((4, 16, 1), 1, readout="gap"), X)
    assert float(jnp.max(jnp.abs(wrong - direct))) > 1e-3 * float(jnp.max(direct))
    plain = config.load_config(overrides=["kernel.name=cnngp", "data.name=moons", "data.max_train=20",
                                                   "eval.labels_per_class=[1]", "views.rotation=0", "views.shift=0"])
    with pytest.raises(config.ConfigError, match="kernel.name = 'cnngp' needs images; data set 'moons'"):
        experiment.build_kernel(plain, X, experiment.load_data(plain).image_shape)
