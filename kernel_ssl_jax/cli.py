"""The `kssl` command line: `kssl run` and room for more subcommands.

Each subcommand is a `Command` in `COMMANDS` (name -> help, how to add its arguments, a handler returning the exit
code); adding one is adding an entry. Shared pieces for subcommands that read a configuration: `add_config_arguments`
(`--config`, `--set`) and `config_from_args`.

Errors the user can fix (unknown data set, objective or config key, a wrong type, an unparsable `--set`, a missing
file or directory, a bad option) print ONE line `kssl: error: ...` on stderr and exit with code 2, before anything
is written.

Example:
  $ kssl run                                  # the default configuration (configs/default.toml) on digits
  $ kssl run --set ssl.dim=20 --set 'eval.labels_per_class=[1, 5]' --out /tmp/runs
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence

from kernel_ssl_jax import config as _config

__all__ = ["Command", "COMMANDS", "UsageError", "add_config_arguments", "config_from_args", "build_parser", "main"]

PROG = "kssl"


class UsageError(Exception):
    """Bad input on the command line: reported as `kssl: error: <message>`, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (`kssl: error: ...`) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


@dataclasses.dataclass(frozen=True)
class Command:
    """A subcommand.

    Attributes:
      help: one line shown by `kssl --help`.
      description: the text at the top of `kssl <name> --help`.
      add_arguments: adds the subcommand's options to its parser.
      handler: runs it from the parsed arguments; returns the exit code. Raising `UsageError` or
        `config.ConfigError` reports a one-line error with exit code 2.
      epilog: text at the end of `kssl <name> --help`.
    """

    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]
    epilog: str = ""


# --------------------------------------------------------------------------------------------------------------------
# Shared arguments


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` and repeatable `--set section.key=value`."""
    parser.add_argument("--config", metavar="FILE",
                        help="TOML configuration; keys it omits keep their defaults (default: the built-in "
                             "configuration, identical to configs/default.toml)")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                        help="override one key after --config, e.g. --set ssl.dim=20 or "
                             "--set 'eval.labels_per_class=[1, 5, \"all\"]'; the value is TOML (a bare word is a "
                             "string); repeatable")


def config_from_args(args: argparse.Namespace) -> dict:
    """The validated configuration from `--config` and `--set` (raises `config.ConfigError`)."""
    return _config.load_config(args.config, args.overrides)


# --------------------------------------------------------------------------------------------------------------------
# kssl run


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", metavar="DIR",
                        help="directory under which the run folder <timestamp>-<name> is made (default: output.dir, "
                             "i.e. runs/)")
    parser.add_argument("--quiet", action="store_true",
                        help="do not print progress (the final table and the run folder are still printed)")


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    from kernel_ssl_jax import experiment  # jax is imported only when there is work to do

    experiment.run(cfg, out_dir=args.out, progress=not args.quiet)
    return 0


_RUN_DESCRIPTION = """\
Learn kernel-SSL representations from augmented views of the unlabelled training samples (all four objectives in
closed form, sharing one eigendecomposition of the Gram), then evaluate them with few labels on held-out samples
against the plain base kernel and a supervised reference.

It prints progress, then a table (rows: method (probe); columns: labels per class; mean ± std over label draws) and
writes a run folder <out>/<timestamp>-<name>/ with results.json, results.csv, config.toml and PNG figures
(accuracy.png, kernels.png, spectrum.png). With no options it runs the default configuration on digits."""


def _run_epilog() -> str:
    return "configuration keys (set them in --config FILE or with --set section.key=value):\n" + _config.describe()


COMMANDS: dict[str, Command] = {
    "run": Command(help="learn representations, evaluate them with few labels, write a run folder",
                   description=_RUN_DESCRIPTION, add_arguments=_run_arguments, handler=_run,
                   epilog=_run_epilog()),
}


# --------------------------------------------------------------------------------------------------------------------
# Entry point


def build_parser() -> argparse.ArgumentParser:
    """The `kssl` parser with one subparser per entry of `COMMANDS`."""
    from kernel_ssl_jax import __version__

    parser = _Parser(prog=PROG, description="Joint-embedding self-supervised learning in the kernel regime.",
                     epilog="Run 'kssl <command> --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.description, epilog=cmd.epilog or None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        cmd.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `kssl` with `argv` (default `sys.argv[1:]`); returns the exit code (0 success, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        print(f"{PROG}: error: choose a command: {', '.join(COMMANDS)} (see '{PROG} --help')", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command].handler(args)
    except (UsageError, _config.ConfigError) as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())
