"""`KernelSSL`: a scikit-learn style estimator over the closed-form solvers."""

from __future__ import annotations

import numpy as np

from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import objectives as _objectives
from kernel_ssl_jax import spectral as _spectral
from kernel_ssl_jax import validation as _validation

__all__ = ["KernelSSL"]


class KernelSSL:
    """Kernel-regime SSL representation with scikit-learn conventions (`fit`, `transform`, fitted `*_` attributes).

    Args:
      objective: `"contrastive"`, `"vicreg"`, `"vicreg_hard"` or `"barlow"`.
      kernel: a `kernels.Kernel`, or a kernel name (`"rbf"`, `"laplacian"`, ...); for `"rbf"`/`"laplacian"` given
        by name the bandwidth is the median distance between training views unless `kernel_params` sets it.
      dim: output dimension.
      lam: ridge strength on the map (see `spectral.solve`).
      beta: invariance weight of `vicreg`.
      knn: if > 0, add a `knn`-nearest-neighbour graph over the views to the view cliques.
      kernel_params: keyword parameters for a kernel given by name.
      rcond, method: passed to `spectral.solve`.

    Fitted attributes:
      solution_ (`spectral.Solution`), coef_, loss_, eigenvalues_, kernel_, n_features_in_.

    Example:
      >>> import numpy as np
      >>> X = np.random.default_rng(0).normal(size=(40, 5))
      >>> est = KernelSSL(objective="vicreg", kernel="rbf", dim=4).fit(X, np.repeat(np.arange(20), 2))
      >>> est.transform(X[:3]).shape
      (3, 4)
    """

    def __init__(self, objective: str = "contrastive", kernel="rbf", dim: int = 32, lam: float = _spectral.DEFAULT_LAM,
                 beta: float = 1.0, knn: int = 0, kernel_params: dict | None = None, rcond: float | None = None,
                 method: str = "auto"):
        self.objective = objective
        self.kernel = kernel
        self.dim = dim
        self.lam = lam
        self.beta = beta
        self.knn = knn
        self.kernel_params = kernel_params
        self.rcond = rcond
        self.method = method

    def get_params(self, deep: bool = True) -> dict:
        del deep
        return {k: getattr(self, k) for k in ("objective", "kernel", "dim", "lam", "beta", "knn", "kernel_params",
                                               "rcond", "method")}

    def set_params(self, **params) -> KernelSSL:
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"unknown parameter {k!r} for KernelSSL; valid: {sorted(self.get_params())}")
            setattr(self, k, v)
        return self

    def _make_kernel(self, X) -> _kernels.Kernel:
        if isinstance(self.kernel, str):
            params = dict(self.kernel_params or {})
            if self.kernel in ("rbf", "laplacian") and "bandwidth" not in params:
                params["bandwidth"] = _kernels.median_bandwidth(X)
            return _kernels.by_name(self.kernel, **params)
        if callable(self.kernel):
            return self.kernel
        raise TypeError(f"kernel must be a kernels.Kernel, a callable or a kernel name, got {self.kernel!r}")

    def fit(self, X, groups=None, y=None, *, A=None) -> KernelSSL:
        """Fits on views `X` (N, d) with their source ids `groups` (N,), or an explicit relationship matrix `A`.

        `y` is ignored (scikit-learn pipelines pass it); labels are never used to learn the representation.
        """
        del y
        _objectives.check_objective(self.objective)
        X = _validation.array("X", X)
        if groups is None and A is None:
            raise ValueError("fit needs groups (the source id of each view) or A (a relationship matrix)")
        kernel = self._make_kernel(np.asarray(X))
        pairs = None
        if groups is not None:
            groups = _graphs.check_groups(groups, X.shape[0])
        if self.objective == "barlow":
            if groups is None:
                raise ValueError("barlow needs groups to pair the views of each source")
            pairs = _graphs.pairs_from_groups(groups)
        elif A is None:
            A = _graphs.from_groups(groups, dtype=X.dtype)
            if self.knn:
                A = np.maximum(np.asarray(A), np.asarray(_graphs.knn(X, int(self.knn))))
        self.solution_ = _spectral.solve(self.objective, X, A, kernel=kernel, dim=self.dim, lam=self.lam,
                                         beta=self.beta, pairs=pairs, rcond=self.rcond, method=self.method)
        self.kernel_ = kernel
        self.coef_ = self.solution_.coef
        self.loss_ = float(self.solution_.loss)
        self.eigenvalues_ = self.solution_.eigenvalues
        self.n_features_in_ = X.shape[1]
        return self

    def _check_fitted(self):
        if not hasattr(self, "solution_"):
            raise RuntimeError("this KernelSSL instance is not fitted yet: call fit(X, groups) first")

    def transform(self, X) -> np.ndarray:
        """Representations `f(x)` of the rows of `X`: `(n, dim)`."""
        self._check_fitted()
        return np.asarray(self.solution_.features(X))

    def fit_transform(self, X, groups=None, y=None, *, A=None) -> np.ndarray:
        return self.fit(X, groups, y, A=A).transform(X)

    def induced_kernel(self, Xa, Xb=None) -> np.ndarray:
        """The induced kernel `k*(Xa, Xb)`."""
        self._check_fitted()
        return np.asarray(self.solution_.induced_kernel(Xa, Xb))

    def __repr__(self) -> str:
        return f"KernelSSL(objective={self.objective!r}, kernel={self.kernel!r}, dim={self.dim}, lam={self.lam})"
