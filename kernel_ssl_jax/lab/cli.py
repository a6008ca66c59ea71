"""The `kssl` command line: `kssl run` and room for more subcommands.

Each subcommand is a `Command` in `COMMANDS` (name -> help, how to add its arguments, a handler returning the exit
code); adding one is adding an entry. Shared pieces for subcommands that read a configuration: `add_config_arguments`
(`--config`, `--set`) and `config_from_args`.

Errors the user can fix (unknown data set, objective or config key, a wrong type, an unparsable `--set`, a missing
file or directory, an output folder that cannot be created or written, a bad option, a damaged results file, a full
disk, a value a library function rejects with a ValueError) print ONE line `kssl: error: ...` on stderr and exit
with code 2; input and output paths are checked before
any computation. Anything else (a bug) prints one line `kssl: internal error: ...` and exits with code 1. No
traceback is shown unless the global `--debug` flag is given (`kssl --debug run ...`, or after the command).

Example:
  $ kssl run                                  # the default configuration (configs/default.toml) on digits
  $ kssl run --set ssl.dim=20 --set 'eval.labels_per_class=[1, 5]' --out /tmp/runs
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from kernel_ssl_jax.lab import config as _config

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
    parser.add_argument("--select", action="store_true",
                        help="choose hyper-parameters per method and label budget on a labelled validation subset of "
                             "the training split (the grid of [select]; same as --set select.enabled=true); the "
                             "test split is scored once, at the end")


def _check_dir(path, what: str) -> None:
    from kernel_ssl_jax.lab import outputs

    try:
        outputs.check_output_dir(path, what)
    except outputs.OutputError as e:
        raise UsageError(str(e)) from None


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.select:
        cfg = _config.validate({**cfg, "select": {**cfg["select"], "enabled": True}})
    _check_dir(args.out if args.out is not None else cfg["output"]["dir"],
               "--out" if args.out is not None else "output.dir")
    from kernel_ssl_jax.lab import experiment  # jax is imported only when there is work to do

    experiment.run(cfg, out_dir=args.out, progress=not args.quiet)
    return 0


_RUN_DESCRIPTION = """\
Learn kernel-SSL representations from augmented views of the unlabelled training samples (all four objectives in
closed form, sharing one eigendecomposition of the Gram), then evaluate them with few labels on held-out samples
against the plain base kernel and a supervised reference.

It prints progress, then a table (rows: method (probe); columns: labels per class; mean ± std over label draws) and
writes a run folder <out>/<timestamp>-<name>/ with results.json, results.csv, config.toml, kernels.npz (heat-map
data) and PNG figures (accuracy.png, kernels.png, spectrum.png). With no options it runs the default configuration
on digits."""


def _run_epilog() -> str:
    return "configuration keys (set them in --config FILE or with --set section.key=value):\n" + _config.describe()


# --------------------------------------------------------------------------------------------------------------------
# kssl compare


def _number(parse, minimum, expected: str):
    """An argparse type: `parse(text)` that must be finite and at least `minimum`, else "expected <expected>"."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not minimum <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return convert


_positive_int = _number(int, 1, "a positive integer")
_non_negative_int = _number(int, 0, "an integer >= 0")
_non_negative_float = _number(float, 0.0, "a finite number >= 0")
_positive_float = _number(float, math.nextafter(0.0, 1.0), "a finite number > 0")


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--objective", default="contrastive",
                        choices=("contrastive", "vicreg", "vicreg_hard", "barlow"),
                        help="objective solved both ways (default: contrastive)")
    parser.add_argument("--dim", type=_positive_int, help="output dimension M (default 16)")
    parser.add_argument("--lam", type=_non_negative_float, help="ridge strength lam (default 0.1)")
    parser.add_argument("--steps", type=_positive_int, default=3000,
                        help="gradient steps of the comparison (adam, cosine decay 1e-2 -> 1e-5, whitening "
                             "preconditioner; L-BFGS for barlow) (default 3000)")
    parser.add_argument("--dynamics-steps", type=_non_negative_int, default=4000,
                        help="plain gradient-descent steps of the learning-dynamics run (sgd, RKHS gradient, "
                             "init scale 1e-3; contrastive when --objective is vicreg_hard or barlow); 0 skips it "
                             "(default 4000)")
    parser.add_argument("--n-sources", type=_positive_int,
                        help="unlabelled training samples, each with views.n_views views (default 300 x 2)")
    regime = parser.add_argument_group(
        "the kernel regime (with --network: finite networks against their infinite-width kernels)")
    regime.add_argument("--network", choices=("mlp", "cnn"),
                        help="run the chain network -> linearised network -> closed form with the empirical kernel "
                             "-> closed form with the analytic kernel instead (NTK chain; and readout -> empirical "
                             "-> analytic NNGP), one network per width; cnn needs images (3x3 convolutions)")
    regime.add_argument("--widths", type=_positive_int, nargs="+", default=None, metavar="W",
                        help="hidden widths (mlp) or channels (cnn) (default: 64 256 1024 for mlp, 16 64 for cnn)")
    regime.add_argument("--depth", type=_positive_int, default=2,
                        help="hidden layers (mlp) or convolutional layers (cnn) (default 2)")
    regime.add_argument("--readout", choices=("flatten", "gap"), default="flatten",
                        help="cnn readout: dense on the flattened last layer, or on its global average (default "
                             "flatten)")
    regime.add_argument("--lr", type=_positive_float, default=None,
                        help="learning rate of every trained model (default 1.5e-3 with sgd, 1e-3 with adam)")
    regime.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                        help="full-batch gradient descent (the NTK theory's optimiser; default) or adam (whose "
                             "per-parameter steps do not shrink with the width)")
    regime.add_argument("--init-scale", type=_positive_float, default=0.1,
                        help="norm of the starting perturbation of the centred network (default 0.1)")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                        help="override one configuration key (as in 'kssl run --help'), e.g. --set graph.knn=10 or "
                             "--set kernel.name=laplacian; the options above take precedence; repeatable")
    parser.add_argument("--out", metavar="DIR", default="runs",
                        help="directory under which the run folder <timestamp>-compare-<objective> (with --network: "
                             "<timestamp>-regime-<network>-<objective>) is made (default: runs/)")
    parser.add_argument("--quiet", action="store_true",
                        help="do not print progress (the table and the run folder are still printed)")


def _compare(args: argparse.Namespace) -> int:
    if args.network is not None:
        return _regime(args)
    from kernel_ssl_jax.lab import compare  # jax is imported only when there is work to do

    overrides = [*compare.CLI_DEFAULTS, *args.overrides, f'ssl.objectives=["{args.objective}"]']
    for key, value in (("ssl.dim", args.dim), ("ssl.lam", args.lam), ("data.max_train", args.n_sources)):
        if value is not None:
            overrides.append(f"{key}={value!r}")
    cfg = _config.load_config(None, overrides)
    _check_dir(args.out, "--out")
    try:
        compare.run_cli(cfg, objective=args.objective, steps=args.steps, dynamics_steps=args.dynamics_steps,
                        out_dir=args.out, progress=not args.quiet)
    except (ValueError, FloatingPointError) as e:
        if isinstance(e, _config.ConfigError):
            raise
        raise UsageError(str(e)) from None
    return 0


def _regime(args: argparse.Namespace) -> int:
    from kernel_ssl_jax.lab import regime  # jax is imported only when there is work to do

    overrides = [*regime.CLI_DEFAULTS, *args.overrides]
    for key, value in (("ssl.dim", args.dim), ("ssl.lam", args.lam), ("data.max_train", args.n_sources)):
        if value is not None:
            overrides.append(f"{key}={value!r}")
    cfg = _config.load_config(None, overrides)
    _check_dir(args.out, "--out")
    widths = args.widths or ([64, 256, 1024] if args.network == "mlp" else [16, 64])
    lr = args.lr if args.lr is not None else (1.5e-3 if args.optimizer == "sgd" else 1e-3)
    try:
        regime.run_cli(cfg, objective=args.objective, network=args.network, widths=widths, depth=args.depth,
                       readout=args.readout, steps=args.steps, learning_rate=lr, optimizer=args.optimizer,
                       init_scale=args.init_scale, out_dir=args.out, progress=not args.quiet)
    except (ValueError, FloatingPointError) as e:
        if isinstance(e, _config.ConfigError):
            raise
        raise UsageError(str(e)) from None
    return 0


_COMPARE_DESCRIPTION = """\
Solve one objective in closed form and train it by gradient descent (representer path, full batch) on the same
augmented views, and compare: relative loss gap, distance between the two induced kernels on held-out points
(relative Frobenius, rotation-invariant), largest principal angle between the two representation subspaces, wall
time of each (after a warm-up call, so without compilation; first-call times are shown too), and few-label test
accuracy of each (cosine 1-NN and ridge probes, the same label draws for both). Then train again from a small
initialisation with plain gradient descent and record the eigenvalues of Q = C S C^T: they rise one at a time.

Defaults: digits, 300 unlabelled samples x 2 views, view-clique graph, RBF kernel at the median distance, dim 16,
lam 0.1, contrastive. It prints the table and writes a run folder <out>/<timestamp>-compare-<objective>/ with
results.json, compare.png (loss against steps, closed-form optimum as a line) and dynamics.png (eigenvalues of Q and
the loss along plain gradient descent, closed-form eigenvalues dashed). Bad input: one-line error, exit code 2,
nothing written.

With --network mlp|cnn: the kernel regime, observed (SPEC.md section 7). For each width, a network of that width is
trained (all layers, centred output; its linearisation; readout only) with --steps full-batch steps, and each link of
the chain network -> linearised -> closed form with the empirical NTK -> closed form with the analytic NTK (and
readout -> empirical NNGP -> analytic NNGP closed forms) is measured as the distance between normalised induced
kernels on held-out samples, with log-log slopes against the width; plus few-label accuracy of every model against
its kernel limit. Defaults: digits, 20 samples x 2 views, cliques + 3-NN graph, dim 1, lam 0.1 (one output: the
ridge of a network trained in all layers has an (M, M) form only for M = 1), 100 held-out samples. It writes
<out>/<timestamp>-regime-<network>-<objective>/ with results.json and regime.png. --dynamics-steps is not used."""


# --------------------------------------------------------------------------------------------------------------------
# kssl sweep, kssl report


def _sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="sweep TOML: a run configuration plus a [sweep] section")
    parser.add_argument("--out", metavar="FILE", help="results JSONL file (default: sweep.output, else "
                                                      "<output.dir>/sweep-<config stem>.jsonl)")
    parser.add_argument("--max-points", type=_positive_int, default=None, metavar="N",
                        help="stop after computing N new points (rerun to continue)")
    parser.add_argument("--quiet", action="store_true", help="do not print progress")


def _sweep(args: argparse.Namespace) -> int:
    from kernel_ssl_jax.lab import sweep

    spec = sweep.load_sweep(args.config, output=args.out)
    from kernel_ssl_jax.lab import outputs

    try:
        outputs.check_output_file(spec.output, "--out" if args.out is not None else "sweep.output")
    except outputs.OutputError as e:
        raise UsageError(str(e)) from None
    summary = sweep.run_sweep(spec, progress=not args.quiet, max_points=args.max_points)
    print(f"{summary['computed']} points computed, {summary['skipped']} already done, {summary['total']} in the grid, "
          f"{summary['seconds']:.1f} s; results: {summary['output']}")
    return 0


_SWEEP_DESCRIPTION = """\
Run a grid of configurations. CONFIG holds the same sections and keys as 'kssl run' plus
  [sweep]
  grid = {"ssl.lam" = [0, 0.1, 1], "ssl.dim" = [10, 20], "data.seed" = [0, 1]}
  output = "runs/sweep.jsonl"
Points sharing data, views, graph and kernel reuse ONE Gram eigendecomposition; lam/beta are solved in one vmapped
call and every dim is read from one solve at the largest dim. Each finished point is appended atomically to the
JSONL file; rerunning the same command resumes, skipping finished points. Bad keys: one-line error, nothing written."""


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RUN_DIR_OR_JSONL",
                        help="a 'kssl run' folder (or its results.json) or a sweep results .jsonl file")
    parser.add_argument("--out", metavar="DIR", help="where figures and report.md go (default: <run dir>/report or "
                                                     "<jsonl stem>-report/ next to the file)")
    parser.add_argument("--budget", metavar="B", default=None,
                        help="labels per class plotted in sweep figures (default: the smallest budget)")


def _report(args: argparse.Namespace) -> int:
    from kernel_ssl_jax.lab import report

    out = report.build_report(args.source, out_dir=args.out, budget=args.budget)
    print(f"report: {out / 'report.md'}")
    return 0


COMMANDS: dict[str, Command] = {
    "run": Command(help="learn representations, evaluate them with few labels, write a run folder",
                   description=_RUN_DESCRIPTION, add_arguments=_run_arguments, handler=_run,
                   epilog=_run_epilog()),
    "compare": Command(help="closed form vs gradient descent on the same views, and the learning dynamics",
                       description=_COMPARE_DESCRIPTION, add_arguments=_compare_arguments, handler=_compare,
                       epilog="configuration keys for --set: see 'kssl run --help'"),
    "sweep": Command(help="run a resumable grid of configurations, appending each point to a JSONL file",
                     description=_SWEEP_DESCRIPTION, add_arguments=_sweep_arguments, handler=_sweep),
    "report": Command(help="rebuild figures and a markdown summary from a run folder or a sweep JSONL file",
                      description="Rebuild PNG figures and report.md from results files alone (results.json of "
                                  "'kssl run', or a 'kssl sweep' JSONL).",
                      add_arguments=_report_arguments, handler=_report),
}


# --------------------------------------------------------------------------------------------------------------------
# Entry point


def build_parser() -> argparse.ArgumentParser:
    """The `kssl` parser with one subparser per entry of `COMMANDS`."""
    from kernel_ssl_jax import __version__

    parser = _Parser(prog=PROG, description="Joint-embedding self-supervised learning in the kernel regime.",
                     epilog="Run 'kssl <command> --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="on an error, show the Python traceback (default: one line on stderr)")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.description, epilog=cmd.epilog or None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        cmd.add_arguments(p)
        # Also accepted after the command; SUPPRESS keeps a `kssl --debug <command>` given before it.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="on an error, show the Python traceback")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `kssl` with `argv` (default `sys.argv[1:]`); returns the exit code (0 success, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        print(f"{PROG}: error: choose a command: {', '.join(COMMANDS)} (see '{PROG} --help')", file=sys.stderr)
        return 2
    debug = bool(getattr(args, "debug", False)) or os.environ.get("KSSL_DEBUG", "") not in ("", "0")
    try:
        return COMMANDS[args.command].handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        code, line = _describe_error(e)
        if debug:
            traceback.print_exc(file=sys.stderr)
        print(line, file=sys.stderr)
        return code


def _describe_error(e: BaseException) -> tuple[int, str]:
    """`(exit code, one line)` for an exception escaping a command: 2 for errors the user can fix, 1 for bugs."""
    from kernel_ssl_jax.lab import outputs

    if isinstance(e, (UsageError, _config.ConfigError, outputs.OutputError)):
        return 2, f"{PROG}: error: {_one_line(e)}"
    if isinstance(e, ValueError):  # the library's convention: a value the caller gave is not allowed (named in e)
        return 2, f"{PROG}: error: {_one_line(e) or type(e).__name__}"
    if isinstance(e, OSError):  # the file system: a missing or unwritable path, a full disk, a failed download
        if e.strerror:
            text = e.strerror + (f": {str(e.filename)!r}" if e.filename is not None else "")
        else:
            text = str(e) or type(e).__name__
        return 2, f"{PROG}: error: {_one_line(text)}"
    return 1, (f"{PROG}: internal error: {type(e).__name__}: {_one_line(e)} (rerun with 'kssl --debug ...' for the "
               f"traceback and report it)")


def _one_line(e: BaseException | str) -> str:
    return " ".join(str(e).split())
