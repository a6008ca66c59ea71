"""Joint-embedding self-supervised learning in the kernel regime, in JAX.

Example:
  >>> import kernel_ssl_jax as kssl
  >>> k = kssl.kernels.rbf(bandwidth=2.0)
  >>> # sol = kssl.solve("contrastive", X, kssl.graphs.from_groups(groups), kernel=k, dim=32, lam=1.0)
"""

import os as _os

import jax as _jax

# Closed forms use pseudo-inverses: float64 is the default on CPU. Set KSSL_ENABLE_X64=0 to keep JAX's float32 default.
if _os.environ.get("KSSL_ENABLE_X64", "1") != "0":
    _jax.config.update("jax_enable_x64", True)

from kernel_ssl_jax import augment, eigenbasis, evaluate, gradient, graphs, kernels, network_training, networks
from kernel_ssl_jax import objectives, spectral, validation
from kernel_ssl_jax.lab import data
from kernel_ssl_jax.estimator import KernelSSL
from kernel_ssl_jax.kernels import Kernel, gram, median_bandwidth
from kernel_ssl_jax.objectives import OBJECTIVES
from kernel_ssl_jax.gradient import train
from kernel_ssl_jax.network_training import NetworkSolution, train_network
from kernel_ssl_jax.networks import Network, empirical_nngp, empirical_ntk
from kernel_ssl_jax.solution import Solution, features, induced_kernel
from kernel_ssl_jax.spectral import solve

__version__ = "0.1.0"

__all__ = [
    "KernelSSL",
    "Kernel",
    "OBJECTIVES",
    "augment",
    "data",
    "eigenbasis",
    "evaluate",
    "gradient",
    "Solution",
    "features",
    "graphs",
    "gram",
    "induced_kernel",
    "kernels",
    "median_bandwidth",
    "Network",
    "NetworkSolution",
    "empirical_nngp",
    "empirical_ntk",
    "network_training",
    "networks",
    "objectives",
    "solve",
    "spectral",
    "train",
    "train_network",
    "validation",
]
