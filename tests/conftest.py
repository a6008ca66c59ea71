"""Test configuration: float64, strict rank promotion and two fake CPU devices.

The device count must be set before JAX initialises its backends, so it is set here, at import time.
"""

import os

os.environ.setdefault("XLA_FLAGS", "")
import jax

jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
