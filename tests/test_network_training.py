"""Training networks on the SPEC §2 objectives (kernel_ssl_jax/network_training.py).

Readout-only training is exactly SPEC §2 on the features `psi` of the frozen hidden layers, so it must reach the
closed form of the empirical NNGP kernel `psi(x) . psi(y)` to optimisation tolerance (SPEC §7).
"""

import jax
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import kernel_ssl_jax as kssl
from kernel_ssl_jax import lowrank, networks
from kernel_ssl_jax.network_training import train_network

N_SOURCES, N_VIEWS, D = 8, 2, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(N_SOURCES, D))
    X = np.repeat(src, N_VIEWS, axis=0) + 0.3 * rng.normal(size=(N_SOURCES * N_VIEWS, D))
    groups = np.repeat(np.arange(N_SOURCES), N_VIEWS)
    return X, groups, rng.normal(size=(5, D))


def test_readout_training_reaches_the_closed_form_of_the_empirical_nngp(objective="contrastive"):
    X, groups, X_test = _data()
    A = kssl.graphs.from_groups(groups)
    net = networks.mlp(1, 24, out_dim=3, b_var=0.1)
    sol = train_network(objective, X, A, network=net, key=jax.random.key(0), lam=0.1, steps=100,
                        optimizer=optax.lbfgs())
    # The closed form for the explicit features psi of the same (frozen) hidden layers ...
    Psi = jax.vmap(net.features, (None, 0))(sol.params0, X)
    W, _, loss = lowrank.solve_psi(objective, Psi, A, dim=3, lam=0.1)
    assert abs(float(sol.loss) - float(loss)) <= 1e-6 * abs(float(loss))
    # ... and the same optimum through the representer form with the empirical NNGP as a callable kernel.
    psi = lambda x: net.features(sol.params0, x)  # noqa: E731
    closed = kssl.solve(objective, X, A, kernel=lambda x, y: psi(x) @ psi(y), dim=3, lam=0.1)
    assert abs(float(closed.loss) - float(loss)) <= 1e-9 * abs(float(loss))
    Xall = np.concatenate([X, X_test])
    K_net, K_closed = sol.induced_kernel(Xall), closed.induced_kernel(Xall)
    assert np.linalg.norm(K_net - K_closed) <= 1e-3 * np.linalg.norm(K_closed)


def test_linearised_model_is_the_jacobian_times_the_parameter_change():
    X, groups, X_test = _data(1)
    A = kssl.graphs.from_groups(groups)
    net = networks.mlp(1, 8, out_dim=2)
    sol = train_network("contrastive", X, A, network=net, key=jax.random.key(2), train="all", linearize=True,
                        steps=20, learning_rate=1e-2)
    assert float(sol.loss_history[-1]) < float(sol.loss_history[0])
    flat0, unravel = ravel_pytree(sol.params0)
    J = jax.jit(jax.vmap(jax.jacfwd(lambda f, x: net.apply(unravel(f), x)), (None, 0)))(flat0, X_test)
    expected = J @ (ravel_pytree(sol.params)[0] - flat0)
    np.testing.assert_allclose(sol.features(X_test), expected, rtol=1e-10, atol=1e-12)


def test_all_layers_train_the_centred_output():
    X, groups, _ = _data(2)
    A = kssl.graphs.from_groups(groups)
    net = networks.mlp(1, 8, out_dim=2)
    sol = train_network("barlow", X, network=net, key=jax.random.key(3), train="all", steps=20,
                        pairs=kssl.graphs.pairs_from_groups(groups))
    assert float(sol.loss_history[-1]) < float(sol.loss_history[0])
    centred = jax.vmap(lambda x: net.apply(sol.params, x) - net.apply(sol.params0, x))(X)
    np.testing.assert_allclose(sol.features(X), centred, rtol=1e-12, atol=1e-14)
    assert sol.induced_kernel(X).shape == (16, 16)
    del A


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(objective="vicreg_hard"), ValueError, "vicreg_hard"),
        (dict(train="hidden"), ValueError, r"train must be one of \['readout', 'all'\]"),
        (dict(train="all", lam=0.1, network=networks.mlp(1, 4, out_dim=2)), ValueError, "out_dim = 1 only"),
        (dict(network="mlp"), TypeError, "network must be a networks.Network"),
        (dict(steps=0), ValueError, "steps"),
        (dict(lam=-1.0), ValueError, "lam"),
    ],
)
def test_errors(kwargs, error, match):
    X, groups, _ = _data()
    args = dict(objective="contrastive", network=networks.mlp(1, 4), key=jax.random.key(0))
    args.update(kwargs)
    objective = args.pop("objective")
    with pytest.raises(error, match=match):
        train_network(objective, X, kssl.graphs.from_groups(groups), **args)


