"""Test configuration: float64, strict rank promotion, two fake CPU devices and one compilation cache.

The device count must be set before JAX initialises its backends, so it is set here, at import time. Most of the
suite's time is XLA compilation: a persistent compilation cache shared by the xdist workers and by the `kssl`
subprocesses the CLI tests start (they inherit the environment) compiles each function once per machine.
The xdist workers already use every core, so each runs its BLAS (OpenBLAS spins while it waits for its threads) and
XLA's Eigen kernels on one thread: no worker waits on threads that compete with the other workers for the cores.
"""

import os
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"kssl-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
import jax

jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
