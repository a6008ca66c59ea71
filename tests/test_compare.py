"""Closed form vs gradient descent, and the learning dynamics (kernel_ssl_jax/lab/compare.py), plus `kssl compare`."""

import json
import os

import numpy as np
import pytest

from kernel_ssl_jax import graphs, kernels
from kernel_ssl_jax.lab import cli, compare, regime

from helpers import D_IN, DIM, N, weighted_problem

KERNEL = kernels.rbf(1.5)


def problem(seed=0):
    """Views, a random weighted graph (distinct top eigenvalues: a unique optimum) and held-out points."""
    X, A, _, X_test = weighted_problem(seed, n_test=12)
    return X, A, X_test


def reference_kernel_distance(Fa, Fb):
    Ka, Kb = Fa @ Fa.T, Fb @ Fb.T
    return np.linalg.norm(Ka - Kb) / np.linalg.norm(Kb)


# --------------------------------------------------------------------------------------------------------------------
# compare


@pytest.mark.parametrize("lam", [0.0, 0.1])
def test_compare_gradient_reaches_closed_form(lam):
    X, A, X_test = problem()
    cmp = compare.compare("contrastive", X, A, kernel=KERNEL, dim=DIM, lam=lam, X_test=X_test, steps=3000)
    m = cmp.metrics
    assert m["loss_closed"] <= m["loss_gradient"] + 1e-9 * abs(m["loss_closed"])
    assert m["rel_loss_gap"] < 1e-4
    assert m["kernel_distance"] < 1e-3
    assert m["max_angle_rad"] < 1e-3
    assert m["eigengap"] > 1e-3  # a unique optimum, so the kernel and the angle are meaningful
    assert m["method_gradient"] == "gradient/representer/whiten"
    # The metrics are what they say: an independent computation from the two solutions.
    Fc, Fg = np.asarray(cmp.closed.features(X_test)), np.asarray(cmp.trained.features(X_test))
    np.testing.assert_allclose(m["kernel_distance"], reference_kernel_distance(Fg, Fc), rtol=1e-6, atol=1e-14)
    assert m["time_closed_s"] > 0 and m["time_gradient_s"] > 0
    assert cmp.accuracy == {}
    json.dumps(m)  # JSON-ready


def test_compare_metrics_detect_a_different_solution():
    # Too few steps from the default start: the gap, the kernel distance and the angle are all clearly nonzero.
    X, A, X_test = problem()
    cmp = compare.compare("contrastive", X, A, kernel=KERNEL, dim=DIM, lam=0.1, X_test=X_test, steps=3,
                          precondition=None, warmup=False)
    assert cmp.metrics["rel_loss_gap"] > 1e-2
    assert cmp.metrics["kernel_distance"] > 1e-2
    assert cmp.metrics["max_angle_rad"] > 1e-2


def test_compare_downstream_accuracy_uses_the_same_draws(tmp_path):
    X, A, X_test = problem()
    rng = np.random.default_rng(1)
    X_probe, y_probe, y_test = rng.normal(size=(16, D_IN)), np.repeat(np.arange(2), 8), rng.integers(0, 2, 12)
    cmp = compare.compare("contrastive", X, A, kernel=KERNEL, dim=DIM, lam=0.1, X_test=X_test, X_probe=X_probe,
                          y_probe=y_probe, y_test=y_test, labels_per_class=(1, "all"), n_draws=2, steps=3000,
                          warmup=False)
    for probe in ("knn", "ridge"):
        for budget in ("1", "all"):
            c, g = cmp.accuracy["closed"][probe][budget], cmp.accuracy["gradient"][probe][budget]
            assert c["draws"] == pytest.approx(g["draws"])  # same solution, same draws, same accuracy
    text = compare.format_comparison(cmp)
    assert "relative loss gap" in text and "acc knn @ 1/class" in text
    compare.plot_comparison(cmp, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_compare_flags_a_degenerate_optimum():
    # vicreg with view cliques at lam = 0, dim < n: the top eigenvalue of P - (beta/2) F L F is 1, n-fold.
    X, _, X_test = problem()
    A = graphs.from_groups(np.repeat(np.arange(N // 2), 2))
    cmp = compare.compare("vicreg", X, A, kernel=KERNEL, dim=DIM, lam=0.0, X_test=X_test, steps=200, warmup=False)
    assert cmp.metrics["eigengap"] < compare.DEGENERATE_GAP
    assert "degenerate optimum" in compare.format_comparison(cmp)


def test_compare_errors():
    X, A, X_test = problem()
    with pytest.raises(ValueError, match="X_test needs at least dim"):
        compare.compare("contrastive", X, A, kernel=KERNEL, dim=DIM, X_test=X_test[:2])
    with pytest.raises(ValueError, match="X_probe, y_probe and y_test"):
        compare.compare("contrastive", X, A, kernel=KERNEL, dim=DIM, X_test=X_test, y_test=np.zeros(12, int))
    with pytest.raises(ValueError, match="objective must be one of"):
        compare.compare("simclr", X, A, kernel=KERNEL, dim=DIM, X_test=X_test)


# --------------------------------------------------------------------------------------------------------------------
# dynamics


def staircase_problem(n_per_block=4, weights=(2.0, 1.0, 0.5), seed=0):
    """K = I (linear kernel on orthonormal rows) and A = weighted cliques: target eigenvalues 8, 4, 2 (/(1 + lam))."""
    rng = np.random.default_rng(seed)
    n = n_per_block * len(weights)
    X, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = np.zeros((n, n))
    for b, w in enumerate(weights):
        A[b * n_per_block:(b + 1) * n_per_block, b * n_per_block:(b + 1) * n_per_block] = w
    return X, A


def test_dynamics_learns_eigenvalues_one_at_a_time(tmp_path):
    X, A = staircase_problem()
    lam = 0.1
    dyn = compare.dynamics("contrastive", X, A, kernel=kernels.linear(), dim=3, lam=lam, steps=400,
                           record_every=2, init_scale=1e-3)
    expected = 4 * np.array([2.0, 1.0, 0.5]) / (1 + lam)
    np.testing.assert_allclose(dyn.closed_eigenvalues, expected, rtol=1e-10)
    # Learned in order: the time to reach half the closed-form value increases with the rank.
    assert np.all(dyn.half_steps > 0)
    assert np.all(np.diff(dyn.half_steps) > 0), dyn.half_steps
    # ... and by a lot: the first is learned before the second leaves zero (a staircase, not a joint rise).
    first = np.searchsorted(dyn.steps, dyn.half_steps[0])
    assert dyn.eigenvalues[first, 1] < 0.1 * expected[1]
    # Training ends at the closed form.
    np.testing.assert_allclose(dyn.eigenvalues[-1], expected, rtol=1e-4)
    assert dyn.loss_history.shape == (400,)
    np.testing.assert_allclose(dyn.loss_history[-1], dyn.closed_loss, rtol=1e-4)
    # The loss has plateaus: between the steps it is nearly flat at the partial optima -sum_{j<i} mu_j^2.
    # A record where the first direction is learned and the second has not started sits on the first plateau.
    partial = -np.cumsum(expected**2)
    learned, waiting = dyn.eigenvalues[:, 0] > 0.99 * expected[0], dyn.eigenvalues[:, 1] < 0.01 * expected[1]
    plateau = np.flatnonzero(learned & waiting)
    assert plateau.size >= 2
    for r in plateau:
        assert dyn.loss_history[dyn.steps[r] - 1] == pytest.approx(partial[0], rel=2e-2)
    compare.plot_dynamics(dyn, tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 0


def test_dynamics_rejects_objectives_without_q():
    X, A = staircase_problem()
    with pytest.raises(ValueError, match="dynamics records Q"):
        compare.dynamics("vicreg_hard", X, A, kernel=kernels.linear(), dim=2)
    with pytest.raises(ValueError, match="record_every"):
        compare.dynamics("contrastive", X, A, kernel=kernels.linear(), dim=2, record_every=0)


# --------------------------------------------------------------------------------------------------------------------
# kssl compare


TINY = ["--n-sources", "60", "--dim", "4", "--steps", "100", "--dynamics-steps", "50", "--quiet",
        "--set", "eval.n_draws=2", "--set", "data.max_test=60"]


def test_cli_compare_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli.main(["compare", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    (run_dir,) = list(out.iterdir())
    assert run_dir.name.endswith("-compare-contrastive")
    assert sorted(p.name for p in run_dir.iterdir()) == ["compare.png", "dynamics.png", "results.json"]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["metrics"]["dim"] == 4 and results["metrics"]["steps"] == 100
    assert results["data"]["n_sources"] == 60 and results["data"]["n_views"] == 120
    assert set(results["accuracy"]) == {"closed", "gradient"}
    assert len(results["dynamics"]["half_steps"]) == 4
    assert "relative loss gap" in printed and f"run folder: {run_dir}" in printed


@pytest.mark.parametrize("args, message", [
    (["--dim", "0"], "--dim"),
    (["--dim", "2.5"], "expected a positive integer, got '2.5'"),
    (["--lam", "-1"], "--lam"),
    (["--lam", "inf"], "expected a finite number >= 0, got 'inf'"),
    (["--lam", "nan"], "expected a finite number >= 0, got 'nan'"),
    (["--dynamics-steps", "-1"], "expected an integer >= 0, got '-1'"),
    (["--objective", "simclr"], "--objective"),
    (["--set", "ssl.dimm=3"], "ssl.dimm"),
    (["--n-sources", "60", "--dim", "500"], "ssl.dim"),
    # kssl compare --network (the kernel regime, lab/regime.py)
    (["--network", "foo"], "argument --network: invalid choice: 'foo'"),
    (["--network", "mlp", "--widths", "0"], "argument --widths: expected a positive integer, got '0'"),
    (["--network", "mlp", "--widths"], "argument --widths: expected at least one argument"),
    (["--network", "mlp", "--objective", "vicreg_hard"], "train_network does not train vicreg_hard"),
    (["--network", "cnn", "--set", "data.name=moons", "--set", "views.rotation=0", "--set", "views.shift=0"],
     "--network cnn needs images; data set 'moons'"),
    (["--network", "mlp", "--lr", "0"], "argument --lr: expected a finite number > 0, got '0'"),
])
def test_cli_compare_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "runs"
    try:
        code = cli.main(["compare", *args, "--out", str(out)])
    except SystemExit as e:  # argparse errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("kssl: error:") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() or not os.listdir(out)


def test_cli_compare_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["compare", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--objective", "--dim", "--lam", "--steps", "--dynamics-steps", "--n-sources", "--set", "--out",
                   "--quiet"):
        assert option in text


# --------------------------------------------------------------------------------------------------------------------
# kssl compare --network: the kernel regime, observed (kernel_ssl_jax/lab/regime.py)


def test_cli_regime_writes_the_run_folder_and_the_analytic_limit_gets_closer_with_width(tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["compare", "--network", "mlp", "--depth", "1", "--widths", "16", "256", "--steps", "30", "--n-sources",
            "10", "--quiet", "--set", "data.max_test=20", "--set", "eval.n_draws=2", "--set", "graph.knn=2",
            "--out", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    (run_dir,) = list(out.iterdir())
    assert run_dir.name.endswith("-regime-mlp-contrastive")
    assert sorted(p.name for p in run_dir.iterdir()) == ["regime.png", "results.json"]
    assert (run_dir / "regime.png").stat().st_size > 1000
    results = json.loads((run_dir / "results.json").read_text())
    rows = results["rows"]
    assert [r["width"] for r in rows] == [16, 256] and results["data"]["n_views"] == 20
    assert set(results["slopes"]) == set(results["links"]) == set(regime.LINKS)
    np.testing.assert_allclose(results["slopes"]["net_ana"],
                               np.log(rows[1]["net_ana"] / rows[0]["net_ana"]) / np.log(16), rtol=1e-9)
    # The Monte Carlo error of the empirical kernels (~ width^-1/2, a factor 4 here) dominates at these sizes.
    assert rows[1]["net_ana"] < 0.7 * rows[0]["net_ana"]
    assert rows[1]["emp_ana"] < 0.7 * rows[0]["emp_ana"]
    assert set(results["accuracy"]) == set(regime.MODELS) and len(results["accuracy"]["network"]) == 2
    assert "net_ana" in printed and f"run folder: {run_dir}" in printed


def test_normalised_distance_and_slope():
    K = np.array([[2.0, 1.0], [1.0, 3.0]])
    assert regime.normalised_distance(K, 5 * K) < 1e-15
    expected = np.linalg.norm(K / np.linalg.norm(K) - np.eye(2) / np.sqrt(2))
    assert abs(regime.normalised_distance(K, np.eye(2)) - expected) < 1e-15
    assert abs(regime.loglog_slope([10, 100, 1000], [1.0, 0.1, 0.01]) + 1.0) < 1e-12
    assert np.isnan(regime.loglog_slope([10], [1.0]))
