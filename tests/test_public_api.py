"""Pins the public surface of kernel_ssl_jax: names users import must not vanish silently."""

import numpy as np
import pytest

import kernel_ssl_jax as kssl

PUBLIC = {
    "KernelSSL", "Kernel", "OBJECTIVES", "Solution", "features", "graphs", "gram", "induced_kernel", "kernels",
    "median_bandwidth", "objectives", "solve", "spectral", "augment", "data", "evaluate",
    "gradient", "train", "networks", "network_training", "Network", "NetworkSolution", "train_network",
    "empirical_nngp", "empirical_ntk",
}


def test_public_names():
    assert PUBLIC <= set(kssl.__all__)
    for name in kssl.__all__:
        assert hasattr(kssl, name), name


def test_kernel_constructors():
    for name in ("linear", "polynomial", "rbf", "laplacian", "nngp", "ntk", "cnngp", "cntk", "gram", "median_bandwidth",
                 "by_name"):
        assert callable(getattr(kssl.kernels, name)), name
    for name in ("from_groups", "knn", "from_weights", "normalize", "laplacian", "pairs_from_groups"):
        assert callable(getattr(kssl.graphs, name)), name
    for name in ("make_views", "from_config", "compose", "affine", "gaussian_noise", "feature_mask", "signal_shift",
                 "time_scale", "time_warp", "amplitude_scale", "slope", "correlated_noise", "resample_signal"):
        assert callable(getattr(kssl.augment, name)), name
    for name in ("load", "digits", "mnist1d", "mnist", "from_file"):
        assert callable(getattr(kssl.data, name)), name
    for name in ("ridge_probe", "logistic_probe", "kernel_ridge_classify", "knn_cosine", "accuracy_vs_labels"):
        assert callable(getattr(kssl.evaluate, name)), name
    for name in ("mlp", "cnn", "empirical_nngp", "empirical_ntk", "readout_matrix", "with_readout"):
        assert callable(getattr(kssl.networks, name)), name
    assert set(kssl.OBJECTIVES) == {"contrastive", "vicreg", "vicreg_hard", "barlow"}


def test_issue_example_runs():
    # The exact usage shown in the README.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    groups = np.repeat(np.arange(20), 2)
    X_test = rng.normal(size=(7, 5))
    k = kssl.kernels.rbf(bandwidth=2.0)
    K = kssl.gram(k, X)
    assert K.shape == (40, 40) and kssl.gram(k, X, X_test).shape == (40, 7)
    A = kssl.graphs.from_groups(groups)
    sol = kssl.solve("contrastive", X, A, kernel=k, dim=8, lam=1.0)
    assert sol.features(X_test).shape == (7, 8)
    assert sol.induced_kernel(X_test, X_test).shape == (7, 7)
    assert np.isfinite(float(sol.loss))
    est = kssl.KernelSSL(objective="vicreg", kernel=k, dim=8, lam=1.0).fit(X, groups=groups)
    assert est.transform(X_test).shape == (7, 8)
    assert est.coef_.shape == (8, 40)
    sol_b = kssl.solve("barlow", X, kernel=k, dim=4, pairs=kssl.graphs.pairs_from_groups(groups))
    assert sol_b.features(X_test).shape == (7, 4)
    direct = kssl.objectives.loss("contrastive", sol.representations, A=A, reg=1.0 * sol.coef @ K @ sol.coef.T)
    assert abs(float(direct) - float(sol.loss)) < 1e-8 * max(1.0, abs(float(direct)))


def test_readme_quick_start_runs():
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md quick start", "exec"), namespace)
    assert namespace["F"].shape == (300, 32)
    assert namespace["K_star"].shape == (10, 10)


CORE_MODULES = ["augment", "eigenbasis", "evaluate", "featuremaps", "gradient", "graphs", "kernels", "lowrank",
                "networks", "objectives", "solution", "spectral", "validation"]


@pytest.mark.parametrize("name", CORE_MODULES)
def test_docstring_examples_run(name):
    # The `Example:` sections of the public docstrings are doctests: they run as written.
    import doctest
    import importlib

    import jax
    import jax.numpy as jnp

    module = importlib.import_module(f"kernel_ssl_jax.{name}")
    globs = dict(vars(module), jax=jax, jnp=jnp, np=np, kssl=kssl)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=globs):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"
