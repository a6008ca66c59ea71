"""`KernelSSL`: the closed-form solvers as a scikit-learn transformer.

`fit(X)` learns a representation from `X` alone: it draws `n_views` augmented views of every sample (seeded by
`random_state`), joins the views of one sample (their group, SPEC.md §1), optionally adds a k-NN graph over the views,
and solves the chosen objective in closed form (`spectral.solve`). Labels are never used: `fit(X, y)` ignores `y`, so
the estimator can sit in front of a classifier in a `Pipeline`. Views made elsewhere are passed as
`fit(views, groups=groups)`.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from kernel_ssl_jax import augment as _augment
from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import objectives as _objectives
from kernel_ssl_jax import spectral as _spectral
from kernel_ssl_jax import validation as _validation

__all__ = ["KernelSSL"]

# Kernels whose bandwidth defaults to the median distance between training views when given by name.
_BANDWIDTH_KERNELS = ("rbf", "laplacian")
# Methods that draw random landmarks or frequencies: they get a key derived from `random_state`.
_RANDOM_METHODS = ("nystrom", "rff")
_MAX_SEED = 2**32 - 1  # numpy's RandomState range, so that every valid scikit-learn seed is accepted


def _type_name(value) -> str:
    return type(value).__name__


class KernelSSL(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Kernel-regime SSL representation as a scikit-learn transformer.

    `fit(X)` makes `n_views` augmented views of each row of `X` (`augment`, seeded by `random_state`), joins the
    views of one sample, optionally adds a `knn` graph over the views, and solves `objective` in closed form
    (`spectral.solve`). `transform(X)` returns `f(x) = C k(views, x)`, one row per sample. Labels are never used:
    `fit(X, y)` ignores `y`, so `make_pipeline(KernelSSL(), LogisticRegression()).fit(X, y)` learns the same
    representation for any `y`. With `fit(views, groups=groups)` (or `A=`) the rows of `X` are taken as the views
    themselves and no augmentation is drawn.

    Parameters are validated in `fit` (scikit-learn convention): a wrong type raises TypeError, a wrong value
    ValueError, each naming the parameter, the value and what is allowed.

    Args:
      objective: `"contrastive"`, `"vicreg"`, `"vicreg_hard"` or `"barlow"`.
      kernel: a `kernels.Kernel` (or a callable `k(x, y)` on single examples), or a kernel name (`"rbf"`,
        `"laplacian"`, `"linear"`, `"polynomial"`, `"nngp"`, `"ntk"`). For `"rbf"`/`"laplacian"` given by name the
        bandwidth is the median distance between the training views unless `kernel_params` sets it.
      dim: output dimension, at most the rank of the Gram of the training views.
      lam: ridge strength on the map (see `spectral.solve`); unused by `barlow`.
      beta: invariance weight of `vicreg`.
      knn: if > 0, add a `knn`-nearest-neighbour graph over the views to the groups (not with `barlow`, which only
        pairs views of one sample). At most the number of training views minus one.
      kernel_params: keyword parameters for a kernel given by name, e.g. `{"bandwidth": 2.0}`.
      rcond: eigenvalue cut-off passed to `spectral.solve` (None: its default).
      method: solver path passed to `spectral.solve` (`"auto"`, `"dense"`, `"structured"`, `"nystrom"`, `"rff"`,
        `"linear"`); `"nystrom"`/`"rff"` draw their landmarks / frequencies from `random_state`.
      augment: how `fit(X)` makes views. A number `a >= 0`: Gaussian noise whose standard deviation is `a` times each
        feature's standard deviation over `X` (`x + a * std(X) * N(0, I)`; features of X do not need scaling). Or
        any augmentation `aug(key, x)` on one example, e.g. `augment.gaussian_noise(0.1)` or
        `augment.from_config({"rotation": 10.0, "noise": 0.05}, (8, 8))`, applied through `augment.make_views`.
        Unused when `groups` or `A` is given to `fit`.
      n_views: views per sample drawn by `fit(X)` (>= 1; >= 2 for `barlow`). Unused with `groups` or `A`.
      random_state: None, an int in [0, 2**32 - 1] or a `numpy.random.RandomState`, as in scikit-learn. An int `s`
        fixes the views, so repeated fits give identical results: the default noise is drawn by
        `numpy.random.default_rng(s)`, and a callable `aug` gets `jax.random.key(s)` (the views equal
        `augment.make_views(jax.random.key(s), X, n_views, aug)`). None or a RandomState draw a fresh seed each fit.

    Attributes:
      solution_: the `spectral.Solution`; `solution_.train_x` holds the training views.
      kernel_: the kernel used (with its median bandwidth when chosen by `fit`).
      coef_: `(dim, N)` coefficients `C` over the `N` training views (numpy).
      loss_: the objective at the solution (SPEC.md §2).
      eigenvalues_: `(dim,)` eigenvalues kept by the solver (see `spectral.Solution`).
      n_features_in_: number of features of `X`.
      feature_names_in_: column names of `X`, when it is a DataFrame with string column names.

    Example:
      >>> import numpy as np
      >>> from sklearn.linear_model import LogisticRegression
      >>> from sklearn.pipeline import make_pipeline
      >>> rng = np.random.default_rng(0)
      >>> X, y = rng.normal(size=(30, 4)), rng.integers(0, 2, size=30)
      >>> est = KernelSSL(dim=3, random_state=0).fit(X)  # 2 noisy views of each row
      >>> est.transform(X[:5]).shape
      (5, 3)
      >>> clf = make_pipeline(KernelSSL(dim=3, random_state=0), LogisticRegression()).fit(X, y)  # y: probe only
      >>> views, groups = np.repeat(X, 2, axis=0) + 0.1 * rng.normal(size=(60, 4)), np.repeat(np.arange(30), 2)
      >>> KernelSSL(dim=3).fit(views, groups=groups).transform(X).shape  # views made elsewhere
      (30, 3)
    """

    def __init__(self, objective: str = "contrastive", kernel="rbf", dim: int = 32, lam: float = _spectral.DEFAULT_LAM,
                 beta: float = 1.0, knn: int = 0, kernel_params: dict | None = None, rcond: float | None = None,
                 method: str = "auto", augment=0.1, n_views: int = 2, random_state=None):
        self.objective = objective
        self.kernel = kernel
        self.dim = dim
        self.lam = lam
        self.beta = beta
        self.knn = knn
        self.kernel_params = kernel_params
        self.rcond = rcond
        self.method = method
        self.augment = augment
        self.n_views = n_views
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The views are random: repeated fits agree only with a fixed seed.
        tags.non_deterministic = self.random_state is None
        tags.input_tags.allow_nan = False  # X must be finite: fit and transform raise on NaN / Inf
        # Every input is computed in JAX's default float (float64 unless KSSL_ENABLE_X64=0).
        tags.transformer_tags.preserves_dtype = [np.dtype(jnp.zeros(()).dtype).name]
        return tags

    # ------------------------------------------------------------------------------------------------------------------
    # Parameters

    def _check_params(self) -> None:
        _validation.choice("objective", self.objective, _objectives.OBJECTIVES)
        kernel = self.kernel
        if isinstance(kernel, str):
            _validation.choice("kernel", kernel, _kernels.KERNELS)
        elif not callable(kernel):
            raise TypeError(f"kernel must be a kernels.Kernel, a callable k(x, y) or one of "
                            f"{sorted(_kernels.KERNELS)}; got {kernel!r} ({_type_name(kernel)})")
        if self.kernel_params is not None:
            if not isinstance(self.kernel_params, dict):
                raise TypeError(f"kernel_params must be a dict or None; got {self.kernel_params!r} "
                                f"({_type_name(self.kernel_params)})")
            if self.kernel_params and not isinstance(kernel, str):
                raise ValueError(f"kernel_params apply to a kernel given by name only; got kernel={kernel!r} with "
                                 f"kernel_params={self.kernel_params!r}")
        _validation.integer("dim", self.dim, minimum=1)
        _validation.real("lam", self.lam)
        _validation.real("beta", self.beta)
        _validation.real("rcond", self.rcond, allow_none=True)
        knn = _validation.integer("knn", self.knn, minimum=0)
        _validation.choice("method", self.method, _spectral.METHODS)
        if not callable(self.augment):
            if isinstance(self.augment, bool) or not isinstance(self.augment, numbers.Real):
                raise TypeError(f"augment must be a noise level (a finite number >= 0) or an augmentation "
                                f"aug(key, x); got {self.augment!r} ({_type_name(self.augment)})")
            _validation.real("augment", self.augment)
        n_views = _validation.integer("n_views", self.n_views, minimum=1)
        if self.objective == "barlow":
            if knn:
                raise ValueError(f"knn must be 0 for objective='barlow' (it pairs the views of one sample and takes "
                                 f"no graph); got knn={knn}")
            if n_views < 2:
                raise ValueError(f"n_views must be >= 2 for objective='barlow' (it pairs the views of one sample); "
                                 f"got n_views={n_views}")
        rs = self.random_state
        if rs is not None and not isinstance(rs, np.random.RandomState):
            if isinstance(rs, bool) or not isinstance(rs, numbers.Integral):
                raise TypeError(f"random_state must be None, an int in [0, {_MAX_SEED}] or a numpy.random.RandomState;"
                                f" got {rs!r} ({_type_name(rs)})")
            if not 0 <= rs <= _MAX_SEED:
                raise ValueError(f"random_state must be None, an int in [0, {_MAX_SEED}] or a "
                                 f"numpy.random.RandomState; got {rs!r}")

    def _seed(self) -> int:
        """The seed of this fit: `random_state` itself for an int, else drawn from numpy's global or given state."""
        rs = self.random_state
        if rs is None or isinstance(rs, np.random.RandomState):
            return int(check_random_state(rs).randint(np.iinfo(np.int32).max))
        return int(rs)

    def _make_kernel(self, views: np.ndarray):
        if not isinstance(self.kernel, str):
            return self.kernel
        params = dict(self.kernel_params or {})
        if self.kernel in _BANDWIDTH_KERNELS and "bandwidth" not in params:
            params["bandwidth"] = _kernels.median_bandwidth(views)
        try:
            return _kernels.by_name(self.kernel, **params)
        except ValueError as e:
            raise ValueError(f"kernel_params={self.kernel_params!r} do not fit kernel={self.kernel!r}: {e}") from None

    def _make_views(self, seed: int, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`n_views` views of each row of `X`, source-major, and their group ids (as `augment.make_views`)."""
        n, d = X.shape
        if callable(self.augment):
            views, groups = _augment.make_views(jax.random.key(seed), jnp.asarray(X), int(self.n_views), self.augment)
            return np.asarray(views, dtype=X.dtype), np.asarray(groups)
        # Drawn with numpy: jax.random would compile once per data shape, which cross-validation changes every fold.
        noise = np.random.default_rng(seed).standard_normal((n, self.n_views, d)).astype(X.dtype)
        views = X[:, None, :] + (float(self.augment) * X.std(axis=0))[None, None, :] * noise
        return views.reshape(n * self.n_views, d), np.repeat(np.arange(n, dtype=np.int32), self.n_views)

    # ------------------------------------------------------------------------------------------------------------------
    # Fit and transform

    def fit(self, X, y=None, *, groups=None, A=None) -> KernelSSL:
        """Learns the representation from `X` alone; `y` is ignored.

        Args:
          X: `(n, d)` samples; views are drawn from them with `augment`. With `groups` or `A`: the `(N, d)` views.
          y: ignored (present for pipelines): labels are never used to learn the representation.
          groups: `(N,)` source id of each row of `X` when `X` holds views made elsewhere (keyword only).
          A: `(N, N)` relationship matrix between the rows of `X` instead of `groups` (not for `barlow`).

        Returns:
          self, fitted.

        Raises:
          TypeError, ValueError: for invalid parameters (naming the parameter), invalid `X`, `groups` or `A`, or a
            `dim` the solver cannot reach (the message gives the largest feasible value).
        """
        del y  # The representation depends on X (and groups / A) only.
        self._check_params()
        dtype = np.dtype(jnp.zeros(()).dtype)
        X = validate_data(self, X, dtype=dtype, ensure_min_samples=2)
        if groups is not None and A is not None:
            raise ValueError("fit takes groups or A, not both")
        seed = None
        if groups is None and A is None:
            seed = self._seed()
            views, groups = self._make_views(seed, X)
        else:
            views = X
            if groups is not None:
                groups = _graphs.check_groups(groups, views.shape[0])
            elif self.objective == "barlow":
                raise ValueError("objective='barlow' pairs the views of one source: give groups, not A")
            else:
                A = _graphs.check_adjacency(A, views.shape[0])
        n_views_total = views.shape[0]
        if self.knn > n_views_total - 1:
            raise ValueError(f"knn must be at most the number of training views minus one ({n_views_total - 1}); "
                             f"got knn={self.knn}")
        if self.knn:
            base = _graphs.from_groups(groups, dtype=views.dtype) if A is None else A
            A, groups = jnp.maximum(base, _graphs.knn(views, int(self.knn))), None
        options = {}
        if self.method in _RANDOM_METHODS:
            options["key"] = jax.random.fold_in(jax.random.key(self._seed() if seed is None else seed), 1)
        kernel = self._make_kernel(views)
        self.solution_ = _spectral.solve(self.objective, views, A, kernel=kernel, dim=self.dim, lam=self.lam,
                                         beta=self.beta, groups=groups, rcond=self.rcond, method=self.method,
                                         **options)
        self.kernel_ = kernel
        self.coef_ = np.asarray(self.solution_.coef)
        self.loss_ = float(self.solution_.loss)
        self.eigenvalues_ = np.asarray(self.solution_.eigenvalues)
        self._n_features_out = self.solution_.dim
        return self

    def _check_x(self, X) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=np.dtype(self.solution_.train_x.dtype))

    def transform(self, X) -> np.ndarray:
        """Representations `f(x) = C k(views, x)` of the rows of `X`: `(n, dim)`, row `i` from `X[i]` alone.

        Raises:
          NotFittedError: before `fit`.
          ValueError: if `X` does not have `n_features_in_` features, or holds NaN/Inf.
        """
        X = self._check_x(X)
        return np.asarray(self.solution_.features(X))

    def induced_kernel(self, Xa, Xb=None) -> np.ndarray:
        """The induced kernel `k*(Xa, Xb) = f(Xa) f(Xb)^T`, `(na, nb)` (`Xb=None`: `Xb = Xa`)."""
        Xa = self._check_x(Xa)
        Xb = None if Xb is None else self._check_x(Xb)
        return np.asarray(self.solution_.induced_kernel(Xa, Xb))
