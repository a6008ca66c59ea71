"""`python -m kernel_ssl_jax <command>`: the same as the `kssl` console script."""

from kernel_ssl_jax.lab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
