"""The lab: configuration, data sets, the main job, comparisons, sweeps, reports and the `kssl` command.

Built on the public API of the core (`kernel_ssl_jax`) only, as a user could have written it; nothing in the core
imports the lab (a contract checked by `tests/test_layers.py` with import-linter).
"""
