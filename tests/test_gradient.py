"""The gradient path (kernel_ssl_jax/gradient.py) against the closed forms (SPEC.md §4-5)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import kernel_ssl_jax as kssl
from kernel_ssl_jax import gradient, graphs, kernels

from helpers import D_IN, DIM, N, weighted_problem

KERNEL = kernels.rbf(1.5)
problem = weighted_problem


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def rel_gap(loss, reference):
    # barlow's optimum is 0: the gap is then absolute (its loss at C = 0 is dim).
    return (float(loss) - float(reference)) / max(abs(float(reference)), 1.0)


# One object each, so that runs of the same problem (same steps) share their compilation.
LBFGS = optax.lbfgs()
ADAM = optax.adam(optax.cosine_decay_schedule(1e-2, 3000, alpha=1e-3))


def noise_aug(key, x):
    return x + 0.1 * jax.random.normal(key, x.shape, x.dtype)


# --------------------------------------------------------------------------------------------------------------------
# Representer path == closed form


@pytest.mark.parametrize("lam", [0.0, 0.1])
@pytest.mark.parametrize("objective", ["contrastive", "vicreg", "vicreg_hard", "barlow"])
def test_representer_reaches_closed_form(objective, lam):
    X, A, pairs, X_test = problem()
    kw = dict(pairs=pairs) if objective == "barlow" else dict(A=A)
    closed = kssl.solve(objective, X, kernel=KERNEL, dim=DIM, lam=lam, **kw)
    # barlow: the minimum-norm solution among the zero-loss ones, selected by a vanishing norm penalty (slow
    # along the zero-loss manifold, hence a quasi-Newton optimiser).
    barlow = objective == "barlow"
    steps = 1000 if barlow else 3000
    sol = gradient.train(objective, X, kernel=KERNEL, dim=DIM, lam=lam, precondition="whiten",
                         optimizer=LBFGS if barlow else ADAM, steps=steps, key=jax.random.key(0),
                         norm_penalty=1e-5 if barlow else 0.0, **kw)
    assert sol.method == "gradient/representer/whiten"
    assert sol.loss_history.shape == (steps,)
    assert float(closed.loss) <= float(sol.loss) + 1e-9 * max(1.0, abs(float(closed.loss)))
    assert rel_gap(sol.loss, closed.loss) < 1e-4
    assert rel(sol.induced_kernel(X_test), closed.induced_kernel(X_test)) < 1e-3
    # The returned loss is the SPEC §2 objective at the returned coefficients.
    K = kssl.gram(KERNEL, X)
    direct = kssl.objectives.loss_from_coef(objective, sol.coef, K, lam=lam, **kw)
    np.testing.assert_allclose(float(direct), float(sol.loss), rtol=1e-9, atol=1e-12)
    if objective == "vicreg_hard":  # the whitening parameterisation keeps the constraint Q = I exactly
        Q = sol.coef @ (K @ K + lam * K) @ sol.coef.T
        np.testing.assert_allclose(Q, np.eye(DIM), atol=1e-9)


def test_plain_representer_with_adam():
    """No preconditioning (gradients in C): on a well-conditioned Gram, adam reaches the closed form too."""
    X, A, _, X_test = problem()
    k = kernels.rbf(0.8)
    closed = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=0.1)
    opt = optax.adam(optax.cosine_decay_schedule(3e-2, 4000, alpha=1e-3))
    sol = gradient.train("contrastive", X, A, kernel=k, dim=DIM, lam=0.1, optimizer=opt, steps=4000,
                         key=jax.random.key(1))
    assert sol.method == "gradient/representer"
    assert rel_gap(sol.loss, closed.loss) < 1e-4
    assert rel(sol.induced_kernel(X_test), closed.induced_kernel(X_test)) < 1e-3
    # The loss goes down (mostly) monotonically from a small initialisation.
    assert sol.loss_history[-1] < sol.loss_history[0]


def test_minibatches_of_sources_approach_the_optimum():
    X, _, _, _ = problem()
    groups = np.repeat(np.arange(N // 2), 2)
    A = graphs.from_groups(groups)
    closed = kssl.solve("vicreg", X, A, kernel=KERNEL, dim=DIM, lam=0.1, beta=0.5)
    opt = optax.adam(optax.cosine_decay_schedule(3e-2, 3000, alpha=1e-3))
    sol = gradient.train("vicreg", X, A, kernel=KERNEL, dim=DIM, lam=0.1, beta=0.5, precondition="whiten",
                         optimizer=opt, steps=3000, batch_sources=5, groups=groups, key=jax.random.key(2))
    assert rel_gap(sol.loss, closed.loss) < 1e-2


def test_barlow_gamma_lives_on_the_gradient_path():
    X, _, pairs, _ = problem()
    sol = gradient.train("barlow", X, kernel=KERNEL, dim=DIM, pairs=pairs, gamma=5.0, precondition="whiten",
                         optimizer=LBFGS, steps=1000, key=jax.random.key(0))
    assert float(sol.loss) < 1e-8  # the zero-loss set does not depend on gamma
    with pytest.raises(ValueError, match="gamma"):
        gradient.train("contrastive", X, problem()[1], kernel=KERNEL, dim=DIM, gamma=2.0, steps=5,
                       key=jax.random.key(0))


# --------------------------------------------------------------------------------------------------------------------
# Features path


@pytest.mark.parametrize("kind,kernel", [("rff", kernels.rbf(1.5)), ("rff", kernels.laplacian(2.0)),
                                         ("nystrom", kernels.ntk(2, b_var=0.1)), ("identity", kernels.linear())])
def test_feature_maps_and_their_representer_form(kind, kernel):
    X, _, _, X_test = problem()
    fm = gradient.feature_map(kernel, kind, n_features=4096 if kind == "rff" else 12, key=jax.random.key(3),
                              points=X)
    # Exact representer form: coef k(train_x, x) == W psi(x), for any W.
    W = jax.random.normal(jax.random.key(4), (DIM, fm.dim))
    train_x, k_sol, coef = fm.representer(W)
    np.testing.assert_allclose(kssl.gram(k_sol, X_test, train_x) @ coef.T, fm.batch(X_test) @ W.T, atol=1e-10)
    K_psi = fm.batch(X_test) @ fm.batch(X_test).T
    if kind == "rff":  # unbiased: psi . psi ~ k (Gaussian / Cauchy frequencies)
        assert np.max(np.abs(K_psi - kssl.gram(kernel, X_test))) < 0.06
    elif kind == "nystrom":  # exact on the landmarks
        np.testing.assert_allclose(fm.batch(fm.landmarks) @ fm.batch(fm.landmarks).T,
                                   kssl.gram(kernel, fm.landmarks), atol=1e-8)
    else:
        np.testing.assert_allclose(K_psi, X_test @ X_test.T, atol=1e-12)


@pytest.mark.parametrize("objective,lam", [("contrastive", 0.1), ("vicreg", 0.0)])
def test_features_path_reaches_the_closed_form_of_its_feature_kernel(objective, lam):
    """Full batch on fixed views, the features path solves the closed form for the kernel psi(x) . psi(y)."""
    X, A, _, X_test = problem()
    fm = gradient.feature_map(KERNEL, "rff", n_features=64, key=jax.random.key(5), points=X)
    closed = kssl.solve(objective, X, A, kernel=fm.kernel, dim=DIM, lam=lam)
    sol = gradient.train(objective, X, A, kernel=KERNEL, dim=DIM, lam=lam, param="features", feature_map=fm,
                         optimizer=LBFGS, steps=1000, key=jax.random.key(0))
    assert sol.method == "gradient/features/rff"
    assert rel_gap(sol.loss, closed.loss) < 1e-4
    # With D > N the part of W orthogonal to psi(views) is free at lam = 0: compare on the training views there.
    X_eval = X_test if lam > 0 else X
    assert rel(sol.induced_kernel(X_eval), closed.induced_kernel(X_eval)) < 1e-3


@pytest.mark.parametrize("objective,lam", [("contrastive", 0.1), ("vicreg", 0.0)])
def test_whitened_features_path_reaches_the_closed_form_with_adam(objective, lam):
    """W = B (Psi^T Psi + lam I)^{-1/2}: adam reaches the features' closed form, far closer than on W itself."""
    X, A, _, _ = problem()
    fm = gradient.feature_map(KERNEL, "rff", n_features=64, key=jax.random.key(5), points=X)
    closed = kssl.solve(objective, X, A, kernel=fm.kernel, dim=DIM, lam=lam)
    gaps = {}
    for pre in (None, "whiten"):
        sol = gradient.train(objective, X, A, kernel=KERNEL, dim=DIM, lam=lam, param="features", feature_map=fm,
                             precondition=pre, optimizer=optax.adam(optax.cosine_decay_schedule(1e-2, 500, 1e-3)),
                             steps=500, log_every=250, key=jax.random.key(0))
        gaps[pre] = rel_gap(sol.loss, closed.loss)
        assert sol.method == "gradient/features/rff" + ("/whiten" if pre else "")
    assert 0 <= gaps["whiten"] < 1e-8
    assert gaps["whiten"] < 1e-3 * gaps[None]


def test_whitened_features_path_with_augmentations_trains():
    X = problem()[0]
    kw = dict(kernel=KERNEL, dim=DIM, param="features", n_features=64, aug=noise_aug, n_views=2, batch_sources=8,
              steps=200, log_every=100, key=jax.random.key(0))
    sol = gradient.train("contrastive", X, precondition="whiten", **kw)
    h = np.asarray(sol.loss_history)
    assert sol.method == "gradient/features/rff/whiten" and np.all(np.isfinite(h))
    assert np.mean(h[-20:]) < np.mean(h[:20])
    # "rkhs" is the features path's own parameterisation: the same run as no preconditioner.
    np.testing.assert_array_equal(gradient.train("contrastive", X, precondition="rkhs", **kw).loss_history,
                                  gradient.train("contrastive", X, **kw).loss_history)


def test_features_path_escapes_the_span_for_vicreg_with_ridge():
    """SPEC §1's representer form does not hold for vicreg with lam > 0: lam W W^* sits inside ||Q - I||^2, so
    directions of W orthogonal to the training views (Z = 0 there) lower the loss. With D > N features the
    gradient path finds them and beats the (span-restricted) closed form."""
    X, A, _, _ = problem()
    fm = gradient.feature_map(KERNEL, "rff", n_features=64, key=jax.random.key(5), points=X)
    closed = kssl.solve("vicreg", X, A, kernel=fm.kernel, dim=DIM, lam=0.1)
    sol = gradient.train("vicreg", X, A, kernel=KERNEL, dim=DIM, lam=0.1, param="features", feature_map=fm,
                         optimizer=LBFGS, steps=1000, key=jax.random.key(0))
    assert float(sol.loss) < float(closed.loss) - 0.1


def test_nystrom_on_all_views_is_exact():
    X, A, _, X_test = problem()
    closed = kssl.solve("contrastive", X, A, kernel=KERNEL, dim=DIM, lam=0.1)
    sol = gradient.train("contrastive", X, A, kernel=KERNEL, dim=DIM, lam=0.1, param="features",
                         feature_map="nystrom", n_features=N, optimizer=LBFGS, steps=1000, key=jax.random.key(0))
    assert rel_gap(sol.loss, closed.loss) < 1e-4
    assert rel(sol.induced_kernel(X_test), closed.induced_kernel(X_test)) < 1e-3
    assert sol.train_x.shape == (N, D_IN) and sol.kernel is KERNEL


def test_random_features_gap_shrinks_with_D():
    X, A, _, X_test = problem()
    closed = kssl.solve("contrastive", X, A, kernel=KERNEL, dim=DIM, lam=0.1)
    gaps = []
    for n_features in (8, 64, 512):
        runs = [gradient.train("contrastive", X, A, kernel=KERNEL, dim=DIM, lam=0.1, param="features",
                               feature_map="rff", n_features=n_features, optimizer=ADAM, steps=3000,
                               key=jax.random.key(seed)) for seed in range(3)]
        gaps.append(np.mean([abs(rel_gap(s.loss, closed.loss)) for s in runs]))
    assert gaps[0] > gaps[1] > gaps[2], gaps
    assert gaps[2] < 0.05


def test_fresh_views_are_fresh_and_deterministic():
    X = jnp.asarray(problem()[0][:5])
    a = gradient.fresh_views(jax.random.key(0), X, noise_aug, 3)
    b = gradient.fresh_views(jax.random.key(0), X, noise_aug, 3)
    c = gradient.fresh_views(jax.random.key(1), X, noise_aug, 3)
    assert a.shape == (15, D_IN)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a[0], a[1])  # the views of one source differ too


def test_training_draws_fresh_augmentations_every_step():
    X = problem()[0][:10]
    # A zero learning rate: the loss changes only because the views change.
    kw = dict(kernel=KERNEL, dim=DIM, param="features", n_features=32, optimizer=optax.sgd(0.0), steps=6)
    h0 = np.asarray(gradient.train("contrastive", X, aug=noise_aug, key=jax.random.key(0), **kw).loss_history)
    h0b = np.asarray(gradient.train("contrastive", X, aug=noise_aug, key=jax.random.key(0), **kw).loss_history)
    h1 = np.asarray(gradient.train("contrastive", X, aug=noise_aug, key=jax.random.key(1), **kw).loss_history)
    np.testing.assert_array_equal(h0, h0b)  # deterministic for a key
    assert len(np.unique(h0)) == len(h0)  # fresh views at every step
    assert not np.allclose(h0[1:], h1[1:])  # different keys, different views


@pytest.mark.parametrize("objective", ["contrastive", "barlow", "vicreg_hard"])
def test_features_path_with_augmentations_and_minibatches_trains(objective):
    X = problem()[0]
    sol = gradient.train(objective, X, kernel=KERNEL, dim=DIM, param="features", n_features=64, aug=noise_aug,
                         n_views=2, batch_sources=8, steps=400, log_every=200, key=jax.random.key(0))
    h = np.asarray(sol.loss_history)
    assert h.shape == (400,) and np.all(np.isfinite(h))
    assert np.mean(h[-50:]) < np.mean(h[:50])
    assert sol.features(X).shape == (N, DIM)
    assert sol.method == "gradient/features/rff" and np.isfinite(float(sol.loss))


# --------------------------------------------------------------------------------------------------------------------
# Bad input


def test_divergence_names_the_step_and_learning_rate():
    X, A, _, _ = problem()
    with pytest.raises(FloatingPointError, match=r"step \d+.*learning rate 1e\+06"):
        gradient.train("contrastive", X, A, kernel=KERNEL, dim=DIM, optimizer=optax.sgd(1e6), learning_rate=1e6,
                       steps=200, key=jax.random.key(0))
    # The learning rate is also found in the optimiser state (optax.inject_hyperparams).
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=1e6)
    with pytest.raises(FloatingPointError, match=r"step \d+.*learning rate 1e\+06"):
        gradient.train("contrastive", X, A, kernel=KERNEL, dim=DIM, optimizer=opt, steps=200, key=jax.random.key(0))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(optimizer=3), TypeError, "optimizer must be an optax.GradientTransformation"),
    (dict(optimizer=(optax.adam(1e-2).init,)), TypeError, "optimizer"),
    (dict(key=0), TypeError, "PRNG key"),
    (dict(param="kernel"), ValueError, "param must be one of"),
    (dict(precondition="newton"), ValueError, "precondition must be one of"),
    (dict(aug=noise_aug), ValueError, "param='features'"),
    (dict(batch_sources=4), ValueError, "groups"),
    (dict(steps=0), ValueError, "steps"),
    (dict(lam=-1.0), ValueError, "lam"),
])
def test_bad_arguments(kwargs, error, match):
    X, A, _, _ = problem()
    kw = dict(kernel=KERNEL, dim=DIM, steps=5, key=jax.random.key(0))
    kw.update(kwargs)
    with pytest.raises(error, match=match):
        gradient.train("contrastive", X, A, **kw)


def test_bad_feature_maps():
    X = problem()[0]
    with pytest.raises(ValueError, match="even n_features"):
        gradient.feature_map(KERNEL, "rff", n_features=7, key=jax.random.key(0), points=X)
    with pytest.raises(ValueError, match="nystrom"):
        gradient.feature_map(kernels.ntk(1), "rff", n_features=8, key=jax.random.key(0), points=X)
    with pytest.raises(ValueError, match="linear kernel"):
        gradient.feature_map(KERNEL, "identity", points=X)
