"""Bad input across the public API (`kernel_ssl_jax/validation.py` and its callers): one table, one rule.

Each row calls a public function with one bad argument and asserts the error type (TypeError for a wrong type,
ValueError for a wrong value) and the words of the message: the argument's name, the value given and what is
allowed. The command line has its own table in `tests/test_errors.py`. A property test checks that finite input
never yields NaN or Inf from `gram` (a clear error instead).
"""

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernel_ssl_jax as kssl
from kernel_ssl_jax import augment, evaluate, graphs, kernels, objectives, validation

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 3))
GROUPS = np.repeat(np.arange(6), 2)
A = np.asarray(graphs.from_groups(GROUPS))
PAIRS = graphs.pairs_from_groups(GROUPS)
K_RBF = kernels.rbf(1.0)
NAN_X = np.where(np.eye(12, 3) > 0, np.nan, X)


def solve(**kw):
    args = dict(objective="contrastive", X=X, A=A, kernel=K_RBF, dim=2, lam=0.1)
    args.update(kw)
    return kssl.solve(args.pop("objective"), args.pop("X"), args.pop("A"), **args)


def loss(name="vicreg", **kw):
    Z = RNG.normal(size=(2, 12))
    return objectives.loss(name, kw.pop("Z", Z), **{"A": A, **kw} if name != "barlow" else kw)


def _solution():
    return kssl.solve("contrastive", X, groups=GROUPS, kernel=K_RBF, dim=2)


def train(**kw):
    args = dict(kernel=K_RBF, dim=2, steps=5, key=jax.random.key(0))
    args.update(kw)
    return kssl.train("contrastive", X, A, **args)


CASES = [
    # solve: the data
    ("solve X NaN", lambda: solve(X=NAN_X), ValueError, ["X contains NaN or Inf"]),
    ("solve X strings", lambda: solve(X=np.full((12, 3), "a")), TypeError, ["X must be an array of real numbers"]),
    ("solve X 1-D", lambda: solve(X=np.ones(12)), ValueError, ["X must be a 2-D array", "(12,)"]),
    ("solve X empty", lambda: solve(X=np.zeros((0, 3)), A=np.zeros((0, 0))), ValueError, ["X must not be empty"]),
    ("solve dtype int", lambda: solve(dtype=np.int32), ValueError, ["dtype must be a floating dtype", "int32"]),
    ("solve dtype junk", lambda: solve(dtype="banana"), TypeError, ["dtype must be a floating dtype", "banana"]),
    # solve: hyper-parameters
    ("solve dim 0", lambda: solve(dim=0), ValueError, ["dim must be an integer >= 1", "got 0"]),
    ("solve dim float", lambda: solve(dim=2.5), TypeError, ["dim must be an integer", "2.5", "float"]),
    ("solve dim bool", lambda: solve(dim=True), TypeError, ["dim must be an integer", "True", "bool"]),
    ("solve dim str", lambda: solve(dim="3"), TypeError, ["dim must be an integer", "'3'"]),
    ("solve dim > rank", lambda: solve(dim=13), ValueError, ["dim = 13 exceeds the rank", "largest feasible dim"]),
    ("solve lam negative", lambda: solve(lam=-1.0), ValueError, ["lam must be a finite number >= 0", "-1.0"]),
    ("solve lam str", lambda: solve(lam="0.1"), TypeError, ["lam must be a finite number", "'0.1'", "str"]),
    ("solve lam nan", lambda: solve(lam=float("nan")), ValueError, ["lam must be a finite number", "nan"]),
    ("solve lam inf", lambda: solve(lam=float("inf")), ValueError, ["lam must be a finite number", "inf"]),
    ("solve beta negative", lambda: solve(objective="vicreg", beta=-1.0), ValueError, ["beta must be", "-1.0"]),
    ("solve rcond negative", lambda: solve(rcond=-1e-3), ValueError, ["rcond must be", "or None"]),
    ("solve method unknown", lambda: solve(method="fast"), ValueError, ["method must be one of", "'fast'"]),
    ("solve method int", lambda: solve(method=3), TypeError, ["method must be one of", "3"]),
    ("solve objective", lambda: solve(objective="simclr"), ValueError, ["objective must be one of", "'simclr'"]),
    ("solve kernel str", lambda: solve(kernel="rbf"), TypeError, ["kernel must be", "'rbf'"]),
    ("solve structured vicreg", lambda: solve(objective="vicreg", method="structured"), ValueError,
     ["method='structured'", "contrastive"]),
    ("solve option to dense", lambda: solve(method="dense", n_landmarks=4), TypeError, ["n_landmarks", "dense"]),
    ("solve n_landmarks 0", lambda: solve(method="nystrom", n_landmarks=0), ValueError, ["n_landmarks", "got 0"]),
    ("solve n_landmarks float", lambda: solve(method="nystrom", n_landmarks=2.5), TypeError, ["n_landmarks", "2.5"]),
    # solve: the graph
    ("solve A shape", lambda: solve(A=np.eye(5)), ValueError, ["A must be (12, 12)", "(5, 5)"]),
    ("solve A negative", lambda: solve(objective="vicreg", A=-A), ValueError, ["A must be non-negative", "-1"]),
    ("solve A asymmetric", lambda: solve(A=np.triu(np.ones((12, 12)))), ValueError, ["A must be symmetric"]),
    ("solve A NaN", lambda: solve(A=np.full((12, 12), np.nan)), ValueError, ["A contains NaN or Inf"]),
    ("solve A strings", lambda: solve(A=np.full((12, 12), "x")), TypeError, ["A must be an array of real numbers"]),
    ("solve A and groups", lambda: solve(groups=GROUPS), ValueError, ["either A or groups"]),
    ("solve groups length", lambda: solve(A=None, groups=GROUPS[:5]), ValueError, ["groups", "12"]),
    ("solve no graph", lambda: solve(A=None), ValueError, ["contrastive needs the relationship matrix A"]),
    ("solve barlow no pairs", lambda: solve(objective="barlow", A=None), ValueError, ["barlow needs pairs"]),
    ("solve pairs range", lambda: solve(objective="barlow", A=None, pairs=(np.array([0]), np.array([12]))),
     ValueError, ["pairs must index views in [0, 11]", "12"]),
    ("solve pairs float", lambda: solve(objective="barlow", A=None, pairs=(np.array([0.5]), np.array([1.0]))),
     TypeError, ["pairs must hold integer view indices", "float64"]),
    ("solve pairs not a pair", lambda: solve(objective="barlow", A=None, pairs=3), TypeError,
     ["pairs must be a tuple (v1, v2)", "int"]),
    ("solve pairs lengths", lambda: solve(objective="barlow", A=None, pairs=(np.array([0, 1]), np.array([2]))),
     ValueError, ["pairs must be two non-empty 1-D index arrays of equal length"]),
    # gram and kernels
    ("gram NaN", lambda: kssl.gram(K_RBF, NAN_X), ValueError, ["X contains NaN or Inf"]),
    ("gram block 0", lambda: kssl.gram(K_RBF, X, block_size=0), ValueError, ["block_size must be an integer >= 1"]),
    ("gram block float", lambda: kssl.gram(K_RBF, X, block_size=2.0), TypeError, ["block_size", "2.0"]),
    ("gram Y width", lambda: kssl.gram(K_RBF, X, np.ones((2, 4))), ValueError, ["Y must have 3 features", "4"]),
    ("gram empty", lambda: kssl.gram(K_RBF, np.zeros((0, 3))), ValueError, ["X must not be empty"]),
    ("gram overflow", lambda: kssl.gram(kernels.polynomial(degree=400), 10 * X), ValueError,
     ["has NaN or Inf although X is finite", "polynomial"]),
    ("gram kernel str", lambda: kssl.gram("rbf", X), TypeError, ["kernel must be"]),
    ("rbf numeric str", lambda: kernels.rbf("2"), TypeError, ["bandwidth must be a finite number > 0", "'2'"]),
    ("rbf zero", lambda: kernels.rbf(0.0), ValueError, ["bandwidth must be a finite number > 0", "0.0"]),
    ("rbf None", lambda: kernels.rbf(None), TypeError, ["bandwidth must be", "None"]),
    ("laplacian negative", lambda: kernels.laplacian(-1.0), ValueError, ["bandwidth", "-1.0"]),
    ("polynomial degree float", lambda: kernels.polynomial(degree=2.0), TypeError, ["degree must be an integer"]),
    ("polynomial degree 0", lambda: kernels.polynomial(degree=0), ValueError, ["degree must be an integer >= 1"]),
    ("polynomial scale", lambda: kernels.polynomial(scale=-1.0), ValueError, ["scale must be", "-1.0"]),
    ("nngp depth", lambda: kernels.nngp(depth=-1), ValueError, ["depth must be an integer >= 0", "-1"]),
    ("ntk w_var", lambda: kernels.ntk(w_var=0.0), ValueError, ["w_var must be a finite number > 0"]),
    ("ntk b_var str", lambda: kernels.ntk(b_var="0"), TypeError, ["b_var must be", "'0'"]),
    ("by_name unknown", lambda: kernels.by_name("gauss"), ValueError, ["kernel must be one of", "gauss"]),
    ("cnngp shape", lambda: kernels.cnngp((8, 8)), ValueError, ["image_shape must be a tuple (H, W, C)"]),
    ("cntk readout", lambda: kernels.cntk((8, 8, 1), readout="max"), ValueError, ["readout must be one of", "max"]),
    ("median one row", lambda: kssl.median_bandwidth(np.ones((1, 3))), ValueError, ["at least 2 rows"]),
    # graphs
    ("groups 2-D", lambda: graphs.from_groups(np.zeros((2, 2), int)), ValueError, ["groups must be a 1-D array"]),
    ("knn k 0", lambda: graphs.knn(X, 0), ValueError, ["k (neighbours among 12 points) must be an integer in [1, 11]"]),
    ("knn k float", lambda: graphs.knn(X, 2.5), TypeError, ["k (neighbours", "2.5"]),
    ("knn k too big", lambda: graphs.knn(X, 12), ValueError, ["[1, 11]", "12"]),
    ("from_weights negative", lambda: graphs.from_weights(-np.eye(3)), ValueError, ["W must be non-negative"]),
    # objectives
    ("loss beta negative", lambda: loss(beta=-1.0), ValueError, ["beta must be a finite number >= 0", "-1.0"]),
    ("loss A negative", lambda: loss(A=-A), ValueError, ["A must be non-negative"]),
    ("loss pairs range", lambda: loss("barlow", pairs=(np.array([0]), np.array([99]))), ValueError,
     ["pairs must index views in [0, 11]", "99"]),
    ("loss Z NaN", lambda: loss(Z=np.full((2, 12), np.nan)), ValueError, ["Z contains NaN or Inf"]),
    ("loss Z 1-D", lambda: loss(Z=np.ones(12)), ValueError, ["Z must be a 2-D array"]),
    ("loss objective", lambda: loss("byol"), ValueError, ["objective must be one of", "byol"]),
    ("loss gamma str", lambda: loss("barlow", pairs=PAIRS, gamma="a"), TypeError, ["gamma must be", "'a'"]),
    ("loss reg shape", lambda: loss(reg=np.eye(3)), ValueError, ["reg must be (2, 2)"]),
    # Solution
    ("features width", lambda: _solution().features(np.ones((2, 4))), ValueError, ["X must have 3 features", "4"]),
    ("features NaN", lambda: _solution().features(NAN_X), ValueError, ["X contains NaN or Inf"]),
    ("features block", lambda: _solution().features(X, block_size=0), ValueError, ["block_size must be an integer"]),
    ("features 3-D", lambda: _solution().features(np.ones((2, 2, 3))), ValueError, ["X must be a 1-D or 2-D array"]),
    # the gradient path
    ("train steps float", lambda: train(steps=2.5), TypeError, ["steps must be an integer >= 1", "2.5"]),
    ("train steps 0", lambda: train(steps=0), ValueError, ["steps must be an integer >= 1", "got 0"]),
    ("train learning rate 0", lambda: train(learning_rate=0.0), ValueError,
     ["learning_rate must be a finite number > 0"]),
    ("train optimizer str", lambda: train(optimizer="adam"), TypeError, ["optimizer must be an optax.Gradient"]),
    ("train key int", lambda: train(key=0), TypeError, ["key must be a JAX PRNG key"]),
    ("train param", lambda: train(param="weights"), ValueError, ["param must be one of", "weights"]),
    ("train vicreg_hard rank", lambda: kssl.train("vicreg_hard", X, A, kernel=kernels.linear(), dim=5, steps=5,
                                                   key=jax.random.key(0)), ValueError,
     ["dim = 5 exceeds the rank of the Gram matrix", "largest feasible dim is 3"]),
    # augmentations
    ("noise negative", lambda: augment.gaussian_noise(-1.0), ValueError, ["std must be a finite number >= 0"]),
    ("mask above 1", lambda: augment.feature_mask(2.0), ValueError, ["p must be a probability in [0, 1]", "2.0"]),
    ("mask str", lambda: augment.feature_mask("half"), TypeError, ["p must be a probability", "'half'"]),
    ("views 0", lambda: augment.make_views(jax.random.key(0), X, 0, augment.identity()), ValueError,
     ["n_views must be an integer >= 1", "got 0"]),
    ("rotate shape", lambda: augment.rotate((8,), 10.0), ValueError, ["shape must be a pair (height, width)"]),
    # probes
    ("ridge reg", lambda: evaluate.ridge_probe(X, GROUPS, X, reg=-1.0), ValueError,
     ["reg must be a finite number >= 0"]),
    ("knn k", lambda: evaluate.knn_cosine(X, GROUPS, X, k=0), ValueError, ["k must be an integer >= 1", "got 0"]),
    ("accuracy draws", lambda: evaluate.accuracy_vs_labels(lambda idx: GROUPS, GROUPS, GROUPS, [1], 0, 0),
     ValueError, ["n_draws must be an integer >= 1"]),
    # the estimator
    ("estimator knn float", lambda: kssl.KernelSSL(knn=2.5).fit(X), TypeError, ["knn must be an integer", "2.5"]),
    ("estimator dim 0", lambda: kssl.KernelSSL(dim=0).fit(X), ValueError, ["dim must be an integer >= 1"]),
    ("estimator objective", lambda: kssl.KernelSSL(objective="x").fit(X), ValueError, ["objective must be one of"]),
    # the checks themselves
    ("integer bool", lambda: validation.integer("n", True), TypeError, ["n must be an integer >= 1", "bool"]),
    ("real maximum", lambda: validation.real("p", 1.5, maximum=1.0), ValueError, ["p must be a probability in [0, 1]"]),
    ("choice", lambda: validation.choice("mode", "c", ("a", "b")), ValueError, ["mode must be one of ['a', 'b']"]),
]


@pytest.mark.parametrize("name, call, error, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_named_error(name, call, error, words):
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error or issubclass(type(info.value), error)
    message = str(info.value)
    for word in words:
        assert word in message, f"{name}: {word!r} not in {message!r}"


def test_the_table_is_large_enough():
    assert len(CASES) >= 90  # with the command line's table (tests/test_errors.py): well over 100 cases


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["rbf", "laplacian", "polynomial"]), log_param=st.floats(-300.0, 300.0),
       degree=st.sampled_from([1, 3, 400]), scale=st.floats(-30.0, 30.0), seed=st.integers(0, 100))
def test_gram_of_finite_input_is_finite_or_a_clear_error(name, log_param, degree, scale, seed):
    # One fixed shape (4 x 3) and three degrees (static: each is a compilation); the values vary freely.
    Xh = np.random.default_rng(seed).normal(size=(4, 3)) * 10.0 ** (scale / 10)
    k = kernels.polynomial(degree, scale=10.0 ** (log_param / 100)) if name == "polynomial" else \
        kernels.by_name(name, bandwidth=10.0 ** log_param)
    try:
        K = np.asarray(kssl.gram(k, Xh))
    except ValueError as e:
        assert "has NaN or Inf although X is finite" in str(e)
        return
    assert np.all(np.isfinite(K))
