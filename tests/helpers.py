"""Shared test problems (imported by the test modules; never copied between them)."""

import numpy as np

N, D_IN, DIM = 20, 4, 3


def weighted_problem(seed=0, n_test=7):
    """Views, a random weighted graph (distinct top eigenvalues: a unique optimum), barlow pairs and held-out points."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D_IN))
    W = rng.uniform(size=(N, N))
    A = (np.triu(W, 1) + np.triu(W, 1).T) * (2.0 / N)
    pairs = (np.arange(0, N, 2), np.arange(1, N, 2))
    return X, A, pairs, rng.normal(size=(n_test, D_IN))
