"""Test configuration: float64, strict rank promotion, two fake CPU devices and one compilation cache.

The device count must be set before JAX initialises its backends, so it is set here, at import time. Most of the
suite's time is XLA compilation: a persistent compilation cache shared by the xdist workers and by the `kssl`
subprocesses the CLI tests start (they inherit the environment) compiles each function once per machine.
The xdist workers already use every core, so each runs its BLAS (OpenBLAS spins while it waits for its threads) and
XLA's Eigen kernels on one thread: no worker waits on threads that compete with the other workers for the cores. The
tests compile with cheaper XLA CPU settings than a user's defaults (see `_TEST_XLA_FLAGS`): programs that run once
should not be optimised for minutes of running.
"""

import os
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Compile options of the test processes (and of the `kssl` subprocesses, which inherit them), added to any XLA_FLAGS
# already set: XLA's classic CPU fusion emitters and backend optimisation level 1 halve the time to compile the suite's
# thousands of small programs, each run a few times (user CPU of test_gradient + test_spectral_dense + test_kernels:
# 127 s -> 79 s; of test_cli + test_compare + test_sweep: 106 s -> 70 s); the same tolerances hold.
_TEST_XLA_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "--xla_cpu_use_fusion_emitters=false",
                   "--xla_backend_optimization_level=1")
_flags = os.environ.get("XLA_FLAGS", "").split()
_names = {f.split("=")[0] for f in _flags}
os.environ["XLA_FLAGS"] = " ".join(_flags + [f for f in _TEST_XLA_FLAGS if f.split("=")[0] not in _names])
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"kssl-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
import jax  # noqa: E402  (the environment above must be set before JAX starts)

jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
