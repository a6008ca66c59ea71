"""Tests of model selection without the test split (kernel_ssl_jax/lab/select.py, `kssl run --select`) and of the
peers (kernel_ssl_jax/lab/peers.py, `eval.peers`): the selection never reads the test labels, the protocol's
validation subset is disjoint from its draws, peers give valid accuracies in results.json, the new keys are checked."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from kernel_ssl_jax import evaluate
from kernel_ssl_jax.lab import cli, config, experiment, select

SMALL = ["data.max_train=60", "data.max_test=30", "graph.knn=5", "ssl.objectives=['vicreg']",
         "eval.labels_per_class=[1, 2]", "eval.n_draws=2", "select.enabled=true", "select.n_draws=2",
         "select.val_per_class=3", "select.lam=[0.01, 1.0]", "select.dim=[4, 8]", "select.knn=[5]",
         "select.alpha=[0.5]", "select.reg=[0.1, 1.0]", "ssl.dim=8", "output.figures=false",
         "eval.probes=['knn']"]


@pytest.fixture(scope="module")
def prep():
    # Transductive views (the test INPUTS are in the unlabelled pool): the selection must still not read y_test.
    return experiment.prepare(config.load_config(overrides=SMALL + ["eval.peers=['label_spreading']",
                                                                    "views.transductive=true"]))


def _chosen(selection):
    return {m: {b: c["params"] for b, c in per.items()} for m, per in selection["methods"].items()}


def test_selection_never_reads_the_test_labels(prep):
    assert prep.views.shape[0] == 2 * (60 + 30) and int(prep.groups.max()) == 89  # views of train + test inputs
    accuracy, selection = experiment.evaluate_selected(prep)
    # Corrupted test labels: shuffled and shifted by one class (no test label is right any more).
    corrupted = prep._replace(ds=prep.ds._replace(y_test=np.roll((prep.ds.y_test + 1) % 10, 7)))
    acc2, sel2 = experiment.evaluate_selected(corrupted)
    assert _chosen(sel2) == _chosen(selection)  # the same hyper-parameters for every method and budget
    assert sel2["methods"] == selection["methods"]  # and the same validation scores
    # ... while the test score does read them (the check above is not vacuous).
    assert acc2["vicreg"]["1"]["mean"] != accuracy["vicreg"]["1"]["mean"]
    assert set(accuracy) == {"vicreg", "base_kernel", "base_kernel/knn", "supervised", "peer:label_spreading"}
    # The base kernel's 1-NN (RBF: the Euclidean nearest neighbour) against scikit-learn, on the same label draws.
    ds, ev = prep.ds, prep.cfg["eval"]
    reference = evaluate.accuracy_vs_labels(
        lambda idx: KNeighborsClassifier(1).fit(ds.X_train[idx], ds.y_train[idx]).predict(ds.X_test),
        ds.y_train, ds.y_test, ev["labels_per_class"], ev["n_draws"], ev["seed"])
    for b in ("1", "2"):
        np.testing.assert_allclose(accuracy["base_kernel/knn"][b]["draws"], reference[b]["draws"])
    grid = selection["methods"]["vicreg"]["1"]["grid"]
    assert len(grid) == 4 and {tuple(sorted(g["params"])) for g in grid} == {
        ("bandwidth_scale", "beta", "dim", "knn", "lam")}
    # The validation subset is reported and lies in the training split.
    val = selection["protocol"]["val_index"]
    assert len(val) == 30 and max(val) < prep.ds.X_train.shape[0]
    for method, per_budget in selection["methods"].items():  # every chosen point is in the method's grid
        for entry in per_budget.values():
            assert entry["params"] in [g["params"] for g in entry["grid"]], method


def test_protocol_validation_subset_is_disjoint_from_the_selection_draws():
    y = np.repeat(np.arange(4), 10)
    proto = select.protocol(y, [1, 3, "all"], {"val_per_class": 2, "n_draws": 3, "seed": 1})
    assert np.bincount(y[proto.val_idx]).tolist() == [2, 2, 2, 2]
    for name, draws in proto.draws.items():
        for idx in draws:
            assert not set(idx) & set(proto.val_idx)
            if name != "all":
                assert np.bincount(y[idx], minlength=4).tolist() == [int(name)] * 4
    assert sorted(proto.draws["all"][0].tolist() + proto.val_idx.tolist()) == list(range(40))
    with pytest.raises(ValueError, match="fewer than the budget 9"):
        select.protocol(y, [9], {"val_per_class": 2, "n_draws": 1, "seed": 0})


def test_choose_picks_the_best_candidate_and_the_first_of_ties():
    y = np.repeat(np.arange(2), 5)
    proto = select.protocol(y, [1], {"val_per_class": 2, "n_draws": 2, "seed": 0})
    right = select.Candidate({"name": "right"}, lambda idx, q: y[q], None)
    wrong = select.Candidate({"name": "wrong"}, lambda idx, q: 1 - y[q], None)
    assert select.choose([wrong, right], proto, y)["1"]["params"] == {"name": "right"}
    assert select.choose([right, right._replace(params={"name": "twin"})], proto, y)["1"]["index"] == 0


def test_cli_select_flag_turns_selection_on_and_peers_write_valid_accuracies(tmp_path, capsys):
    args = ["run", "--select", "--quiet", "--out", str(tmp_path)]
    args += [a for s in SMALL if not s.startswith("select.enabled") for a in ("--set", s)]
    assert cli.main(args) == 0
    (run_dir,) = tmp_path.iterdir()
    res = json.loads((run_dir / "results.json").read_text())
    assert res["selection"]["protocol"]["val_labels"] == 30
    assert set(res["selection"]["methods"]) == {"vicreg", "base_kernel", "base_kernel/knn",
                                                *(f"peer:{p}" for p in config.PEERS)}
    printed = capsys.readouterr().out
    assert "Chosen hyper-parameters" in printed
    for peer in config.PEERS:
        row = res["accuracy"][f"peer:{peer}"]
        assert list(row) == ["1", "2"] and f"peer:{peer}" in printed
        for entry in row.values():
            assert 0.0 <= entry["mean"] <= 1.0 and len(entry["draws"]) == 2
            assert all(0.0 <= a <= 1.0 for a in entry["draws"])
        assert row["1"]["params"] == res["selection"]["methods"][f"peer:{peer}"]["1"]["params"]
    assert "transductive" in res["accuracy"]["peer:label_spreading"]["1"]["probe"]
    assert "transductive" in res["accuracy"]["peer:laplacian_eigenmaps"]["1"]["probe"]
    assert "clean inputs" in res["accuracy"]["peer:laplacian_eigenmaps_knn"]["1"]["probe"]


@pytest.mark.parametrize("override, message", [
    ("select.lam=[0.1, -1]", "select.lam item -1: must be a finite number >= 0, got -1.0"),
    ("select.dim=[10, 0]", "select.dim item 0: must be >= 1, got 0"),
    ("select.dim=10", "select.dim must be an array of integers, got the integer 10"),
    ("select.dim=[10, 'x']", "select.dim must hold only integers; got the string 'x'"),
    ("select.lam=[]", "select.lam must be a non-empty array of numbers, got []"),
    ("select.knn=[10, 10]", "select.knn names a value twice: [10, 10]"),
    ("select.alpha=[1.0]", "select.alpha item 1.0: must be in the open interval (0, 1), got 1.0"),
    ("select.bandwidth_scale=[0]", "select.bandwidth_scale item 0: must be a finite number > 0"),
    ("select.val_per_class=0", "select.val_per_class must be >= 1, got 0"),
    ("select.enabled=1", "select.enabled must be a boolean (true or false), got the integer 1"),
    ("eval.peers=['svm']", "eval.peers has unknown peer 'svm'; valid: label_spreading, laplacian_eigenmaps, "
                           "laplacian_eigenmaps_knn, kernel_pca"),
    ("eval.peers='kernel_pca'", "eval.peers must be an array of strings, got the string 'kernel_pca'"),
    ("graph.cliques=false", "graph.cliques = false needs graph.knn > 0"),
    ("select.rcond=[1e-9]", "select.rcond = [1e-09] holds a cut-off below ssl.rcond = 1e-05"),
    ("select.rcond=[-1.0]", "select.rcond item -1.0: must be a finite number >= 0"),
])
def test_new_keys_are_validated_with_messages_naming_key_value_and_range(override, message):
    overrides = [override] + (["graph.knn=0"] if override.startswith("graph.cliques") else [])
    with pytest.raises(config.ConfigError) as e:
        config.load_config(overrides=overrides)
    assert message in str(e.value)


def test_empty_peers_and_unknown_select_key():
    assert config.load_config(overrides=["eval.peers=[]"])["eval"]["peers"] == []
    with pytest.raises(config.ConfigError, match="unknown config key 'select.grid'.*valid keys in \\[select\\]: alpha"):
        config.load_config(overrides=["select.grid=[1]"])


def test_validation_labels_must_fit_in_the_training_split():
    cfg = config.load_config(overrides=SMALL + ["select.val_per_class=5", "eval.labels_per_class=[1, 2]"])
    with pytest.raises(config.ConfigError, match="select.val_per_class = 5 plus the largest budget 2"):
        experiment.load_data(cfg)


def test_rcond_grid_is_the_solve_at_each_cut_off(prep):
    # select.rcond: truncations of the one decomposition (made at ssl.rcond) give exactly the candidates of a run
    # whose decomposition is made at that cut-off, and the cut-off is a reported parameter of every SSL candidate.
    grams = experiment.view_grams(prep, [1.0])
    (loose,) = experiment.truncated_grams(grams, [1e-2])
    assert experiment.truncated_grams(grams, []) == grams
    assert 0 < int(loose.eig.rank) < int(grams[0].eig.rank)
    A = {5: prep.A}
    cands = experiment.ssl_candidates(prep, "vicreg", [loose], A, 10)
    assert {c.params["rcond"] for c in cands} == {1e-2}
    eig, _ = experiment.decompose(prep.K, 1e-2)
    ref = experiment.ssl_candidates(prep, "vicreg", [grams[0]._replace(eig=eig)], A, 10)
    idx = np.arange(20)
    for c, r in zip(cands, ref, strict=True):
        np.testing.assert_array_equal(c.predict_test(idx), r.predict_test(idx))
    cfg = config.load_config(overrides=["select.rcond=[1e-5, 1e-2]"])
    assert cfg["select"]["rcond"] == [1e-5, 1e-2] and config.load_config()["select"]["rcond"] == []


def test_kernel_grid_makes_one_gram_per_kernel_and_bandwidth_and_names_it_in_every_candidate(prep):
    # select.kernel x select.bandwidth_scale: one Gram per point, the run's own Gram reused, the Laplacian kernel's
    # Gram against numpy (median bandwidth of the views), the kernel named in every candidate of every method.
    grams = experiment.view_grams(prep, [1.0, 0.5], kernels=["rbf", "laplacian", "linear"])
    assert [g.params for g in grams] == [{"kernel": k, "bandwidth_scale": s} for k, s in
                                         [("rbf", 1.0), ("rbf", 0.5), ("laplacian", 1.0), ("laplacian", 0.5),
                                          ("linear", 1.0)]]  # a linear kernel has no bandwidth
    assert grams[0].K is prep.K and grams[0].eig is prep.eig
    V = np.asarray(prep.views)
    D = np.sqrt(np.maximum(((V[:, None, :] - V[None, :, :]) ** 2).sum(-1), 0.0))
    h = np.median(D[np.triu_indices(len(V), 1)])
    np.testing.assert_allclose(np.asarray(grams[3].K), np.exp(-D / (0.5 * h)), rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(np.asarray(grams[4].K), V @ V.T, rtol=1e-10)
    cands = experiment.ssl_candidates(prep, "vicreg", grams[2:4], {5: prep.A}, 10)
    assert {(c.params["kernel"], c.params["bandwidth_scale"]) for c in cands} == {("laplacian", 1.0),
                                                                                  ("laplacian", 0.5)}
    assert all(c.params["kernel"] == "linear" for c in experiment.base_kernel_candidates(prep, grams[4:], [0.1], 10))
    # Selecting over one other kernel is the run with that kernel: the same validation scores and test accuracy.
    sel = experiment.evaluate_selected(experiment.prepare(config.load_config(
        overrides=SMALL + ["eval.peers=['kernel_pca']", "select.kernel=['laplacian']"])))
    ref = experiment.evaluate_selected(experiment.prepare(config.load_config(
        overrides=SMALL + ["eval.peers=['kernel_pca']", "kernel.name=laplacian"])))
    for method in ("vicreg", "base_kernel", "peer:kernel_pca"):
        for b in ("1", "2"):
            assert sel[1]["methods"][method][b]["params"].pop("kernel") == "laplacian"
            assert sel[1]["methods"][method][b]["params"] == ref[1]["methods"][method][b]["params"]
            assert sel[1]["methods"][method][b]["val_accuracy"] == ref[1]["methods"][method][b]["val_accuracy"]
            np.testing.assert_allclose(sel[0][method][b]["draws"], ref[0][method][b]["draws"])
    with pytest.raises(config.ConfigError, match="select.kernel has unknown kernel 'gauss'; valid: linear"):
        config.load_config(overrides=["select.kernel=['gauss']"])


def test_extension_ridge_grid_adds_the_out_of_sample_extension_of_every_solution(prep):
    # select.extension_ridge: each solution at each ridge (0: the solution itself), reported as a parameter, and
    # the grid of `kssl run --select` (spectral.extend itself is checked against numpy in test_spectral.py).
    grams = experiment.view_grams(prep, [1.0])
    plain = experiment.ssl_candidates(prep, "contrastive", grams, {5: prep.A}, 10)
    ext = experiment.ssl_candidates(prep, "contrastive", grams, {5: prep.A}, 10, [0.0, 0.5])
    assert [c.params for c in ext if c.params["extension_ridge"] == 0.0] == [
        {**c.params, "extension_ridge": 0.0} for c in plain]
    idx = np.arange(20)
    for c, p in zip([c for c in ext if c.params["extension_ridge"] == 0.0], plain, strict=True):
        np.testing.assert_array_equal(c.predict_test(idx), p.predict_test(idx))
    cfg = config.load_config(overrides=SMALL + ["ssl.objectives=['contrastive']", "select.extension_ridge=[0.5]",
                                                "eval.peers=[]", "views.transductive=true"])
    acc, selection = experiment.evaluate_selected(experiment.prepare(cfg))
    grid = selection["methods"]["contrastive"]["1"]["grid"]
    assert {g["params"]["extension_ridge"] for g in grid} == {0.5} and len(grid) == 4
    assert acc["contrastive"]["1"]["params"]["extension_ridge"] == 0.5
    with pytest.raises(config.ConfigError, match="select.extension_ridge item -1.0: must be a finite number >= 0"):
        config.load_config(overrides=["select.extension_ridge=[-1.0]"])


def test_clique_weight_weighs_the_clique_edges_for_kernel_ssl_and_the_eigenmaps_peer_alike():
    # graph.clique_weight: clique edges (self-loops included) weigh w, the other k-NN edges 1; numpy/scikit-learn
    # reference for kernel SSL's dense graph and for the peer's sparse graph over the same nodes.
    from sklearn.neighbors import kneighbors_graph

    from kernel_ssl_jax.lab import peers

    rng = np.random.default_rng(0)
    views, groups = rng.normal(size=(12, 3)), np.repeat(np.arange(4), 3)
    knn = kneighbors_graph(views, 2, include_self=False).toarray()
    knn = np.maximum(knn, knn.T)
    same = groups[:, None] == groups[None, :]
    cfg = config.load_config(overrides=["graph.knn=2", "graph.clique_weight=2.5"])
    A = np.asarray(experiment.build_graph(cfg, jnp.asarray(views), groups))
    np.testing.assert_array_equal(A, np.where(same, 2.5, knn))
    assert (A == 1.0).any() and (A == 2.5).any()  # both kinds of edges are there
    sparse = peers._graph(views, groups, 2, cliques=True, mutual=False, clique_weight=2.5).toarray()
    np.testing.assert_array_equal(sparse, np.where(same & ~np.eye(12, dtype=bool), 2.5, knn))
    np.testing.assert_array_equal(  # weight 1: the union of the two 0/1 graphs, as before
        np.asarray(experiment.build_graph(config.load_config(overrides=["graph.knn=2"]), jnp.asarray(views), groups)),
        np.maximum(same, knn))


def test_clique_weight_grid_is_the_run_at_each_weight():
    # select.clique_weight: every SSL and eigenmaps candidate names its weight; the weight-2 candidates are those of
    # a run with graph.clique_weight = 2 (same validation scores and test accuracy).
    base = SMALL + ["eval.peers=['laplacian_eigenmaps']", "views.transductive=true"]
    acc, sel = experiment.evaluate_selected(experiment.prepare(config.load_config(
        overrides=base + ["select.clique_weight=[0.5, 2.0]"])))
    acc2, sel2 = experiment.evaluate_selected(experiment.prepare(config.load_config(
        overrides=base + ["graph.clique_weight=2.0", "select.clique_weight=[2.0]"])))
    for method in ("vicreg", "peer:laplacian_eigenmaps"):
        grid = sel["methods"][method]["1"]["grid"]
        assert {g["params"]["clique_weight"] for g in grid} == {0.5, 2.0}
        at2 = [g for g in grid if g["params"]["clique_weight"] == 2.0]
        assert at2 == sel2["methods"][method]["1"]["grid"]
    assert "clique_weight" not in experiment.evaluate_selected(experiment.prepare(config.load_config(
        overrides=base)))[1]["methods"]["vicreg"]["1"]["params"]  # no grid: not a reported parameter


def test_eigenmaps_knn_peer_is_scikit_learns_spectral_embedding_of_the_clean_inputs_knn_graph(prep):
    # peer:laplacian_eigenmaps_knn: no views, no cliques; the embedding of the symmetric k-NN graph of train + test
    # (scikit-learn), probed by cosine 1-NN (numpy) on the first `dim` columns.
    from sklearn.manifold import SpectralEmbedding
    from sklearn.neighbors import kneighbors_graph

    ds = prep.ds
    cands = experiment.peer_candidates(prep, "laplacian_eigenmaps_knn", [], 10)
    assert [c.params for c in cands] == [{"knn": 5, "dim": 4}, {"knn": 5, "dim": 8}]
    nodes = np.concatenate([ds.X_train, ds.X_test]).astype(np.float64)
    G = kneighbors_graph(nodes, 5, include_self=False)
    emb = SpectralEmbedding(n_components=8, affinity="precomputed",
                            random_state=prep.cfg["views"]["seed"]).fit_transform(G.maximum(G.T))
    n = ds.X_train.shape[0]
    idx = np.array([np.flatnonzero(ds.y_train == c)[0] for c in range(10)])  # one label per class
    for c, d in zip(cands, (4, 8), strict=True):
        F_tr, F_te = emb[:n, :d], emb[n:, :d]
        F_tr, F_te = (F / np.linalg.norm(F, axis=1, keepdims=True) for F in (F_tr, F_te))
        expected = ds.y_train[idx][np.argmax(F_te @ F_tr[idx].T, axis=1)]
        np.testing.assert_array_equal(np.asarray(c.predict_test(idx)), expected)


def test_rank_methods_ranks_by_the_mean_validation_accuracy_over_development_seeds():
    # Three methods with true validation accuracies a > b > c, seen through per-seed noise that makes b win seed 0:
    # the ranking must follow the mean over seeds (numpy reference), per budget and over budgets.
    rng = np.random.default_rng(0)
    truth = {"1": {"a": 0.80, "b": 0.78, "c": 0.70}, "2": {"a": 0.88, "b": 0.90, "c": 0.80}}
    seeds = [{m: {b: truth[b][m] + 0.01 * rng.standard_normal() for b in truth} for m in "abc"} for _ in range(6)]
    seeds[0]["b"]["1"], seeds[0]["a"]["1"] = 0.83, 0.77  # one noisy seed where b beats a
    ranking = select.rank_methods(seeds)
    assert set(ranking) == {"1", "2", "mean"}
    for key, budgets in (("1", ["1"]), ("2", ["2"]), ("mean", ["1", "2"])):
        ref = {m: np.mean([[s[m][b] for b in budgets] for s in seeds]) for m in "abc"}
        assert [r["method"] for r in ranking[key]] == sorted("abc", key=lambda m: -ref[m])
        for r in ranking[key]:
            per_seed = np.mean([[s[r["method"]][b] for b in budgets] for s in seeds], axis=1)
            np.testing.assert_allclose(r["per_seed"], per_seed)
            np.testing.assert_allclose(r["val_accuracy"], ref[r["method"]])
            np.testing.assert_allclose(r["se"], per_seed.std(ddof=1) / np.sqrt(len(seeds)))
    assert [r["method"] for r in ranking["1"]] == ["a", "b", "c"]  # the construction's order, not seed 0's
    assert max("abc", key=lambda m: seeds[0][m]["1"]) == "b"
    # Ties keep the first seed's order of the methods; one seed has no spread.
    tie = select.rank_methods([{"y": {"1": 0.5}, "x": {"1": 0.5}}])
    assert [r["method"] for r in tie["1"]] == ["y", "x"] and tie["1"][0]["se"] == 0.0
    with pytest.raises(ValueError, match="val_scores: expected at least one"):
        select.rank_methods([])
    with pytest.raises(ValueError, match="val_scores: seed 1 scores"):
        select.rank_methods([{"x": {"1": 0.5}}, {"x": {"2": 0.5}}])


def test_standard_error_is_scipys_sem_and_zero_for_one_value():
    import scipy.stats

    x = np.array([0.91, 0.88, 0.93, 0.85, 0.9])
    assert select.standard_error(x) == pytest.approx(scipy.stats.sem(x), rel=1e-12)
    assert select.standard_error([0.5]) == 0.0
