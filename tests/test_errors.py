"""Bad input to every `kssl` command: exit status 2, ONE line on stderr (`kssl: error: ...`) with the words that say
what is wrong, no traceback unless `--debug`, and nothing created. All in-process and before any computation, so the
table is fast."""

import json

import pytest

from kernel_ssl_jax.lab import cli, config, outputs, report

SWEEP = """
[data]
max_train = 30
max_test = 30
[ssl]
objectives = ["contrastive"]
[eval]
labels_per_class = [1]
n_draws = 1
[sweep]
grid = {"ssl.lam" = [0.1, 1.0]}
"""

# (argv, words in the message); {tmp} is the test's folder, holding `file` (a regular file), `dir/` (an empty
# folder), `sweep.toml` (a valid sweep), `badsweep.toml` (a sweep with a typo) and `run/` (a valid run folder).
BAD = [
    # argument errors
    ([], "choose a command: run, compare, sweep, report"),
    (["frobnicate"], "argument <command>: invalid choice: 'frobnicate'"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["sweep"], "the following arguments are required: CONFIG"),
    (["report"], "the following arguments are required: RUN_DIR_OR_JSONL"),
    (["sweep", "{tmp}/sweep.toml", "--max-points", "0"], "argument --max-points: expected a positive integer, got '0'"),
    (["compare", "--dim", "ten"], "argument --dim: expected a positive integer, got 'ten'"),
    (["compare", "--lam", "nan"], "argument --lam: expected a finite number >= 0, got 'nan'"),
    (["compare", "--objective", "simclr"], "argument --objective: invalid choice: 'simclr'"),
    (["compare", "--network", "foo"], "argument --network: invalid choice: 'foo'"),
    (["compare", "--network", "mlp", "--widths", "0"], "argument --widths: expected a positive integer, got '0'"),
    (["compare", "--network", "mlp", "--objective", "vicreg_hard"], "train_network does not train vicreg_hard"),
    (["run", "--set", "ssl.dim"], "cannot parse --set 'ssl.dim': expected section.key=value"),
    # bad configuration values
    (["run", "--set", "ssl.dim=0"], "ssl.dim must be >= 1, got 0"),
    (["run", "--set", "ssl.dim=ten"], "ssl.dim must be an integer, got the string 'ten'"),
    (["run", "--set", "ssl.lam=-1"], "ssl.lam must be a finite number >= 0, got -1.0"),
    (["run", "--set", "views.n_views=1"], "views.n_views must be >= 2 when ssl.objectives includes barlow"),
    (["run", "--set", "data.name=cifar"], "data.name must be one of digits"),
    (["run", "--set", "data.name=file"], "data.path is required for data.name = 'file'"),
    (["compare", "--set", "ssl.dimm=3"], "unknown config key 'ssl.dimm'"),
    (["sweep", "{tmp}/badsweep.toml"], "sweep.grid: unknown config key 'ssl.lamb'"),
    # bad paths: outputs are checked before any computation
    (["run", "--out", "{tmp}/file/runs"], "--out: cannot create '{tmp}/file/runs': '{tmp}/file' exists and is not a "
                                          "directory"),
    (["run", "--out", "{tmp}/file"], "--out: '{tmp}/file' exists and is not a directory"),
    (["run", "--set", "output.dir={tmp}/file/runs"], "output.dir: cannot create '{tmp}/file/runs'"),
    (["compare", "--out", "{tmp}/file/runs"], "--out: cannot create '{tmp}/file/runs'"),
    (["sweep", "{tmp}/sweep.toml", "--out", "{tmp}/file/out.jsonl"], "--out: cannot create '{tmp}/file/out.jsonl'"),
    (["sweep", "{tmp}/sweep.toml", "--out", "{tmp}/dir"], "--out: '{tmp}/dir' exists and is not a file"),
    (["report", "{tmp}/run", "--out", "{tmp}/file/report"], "--out: cannot create '{tmp}/file/report'"),
    (["run", "--config", "{tmp}/dir"], "config file '{tmp}/dir' is a directory"),
    # missing files and folders
    (["run", "--config", "{tmp}/missing.toml"], "config file '{tmp}/missing.toml' not found"),
    (["sweep", "{tmp}/missing.toml"], "config file '{tmp}/missing.toml' not found"),
    (["report", "{tmp}/nowhere"], "results source '{tmp}/nowhere' not found"),
    (["report", "{tmp}/dir"], "'{tmp}/dir' holds neither results.json nor exactly one .jsonl file"),
    (["run", "--set", "data.name=mnist", "--set", "data.path={tmp}/nowhere"],
     "data.path: MNIST directory '{tmp}/nowhere' does not exist"),
    (["run", "--set", "data.name=fashion_mnist", "--set", "data.path={tmp}/dir"],
     "data.path: Fashion-MNIST file 'train-images-idx3-ubyte' (or train-images-idx3-ubyte.gz) not found"),
    (["run", "--set", "data.name=file", "--set", "data.path={tmp}/nothing.npz"], "data.path: data file"),
]


def _results():
    entry = {b: {"mean": 0.5, "std": 0.1, "draws": [0.5], "probe": "knn"} for b in ("1", "all")}
    results = {"accuracy": {"contrastive": entry, "base_kernel": entry, "supervised": entry},
               "config": config.defaults(), "data": {"name": "digits", "n_train": 10, "n_test": 5},
               "eigenvalues": {"gram": [3.0, 2.0, 1.0], "targets": {"contrastive": [1.0, 0.5]}}}
    return json.loads(json.dumps(results))  # no shared sub-tables


@pytest.fixture
def tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default output (runs/) would land here: the test checks nothing appears
    (tmp_path / "file").write_text("not a folder\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "sweep.toml").write_text(SWEEP)
    (tmp_path / "badsweep.toml").write_text(SWEEP.replace('"ssl.lam"', '"ssl.lamb"'))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(_results()))
    return tmp_path


def _snapshot(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _call(argv):
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse errors
        return e.code


def _one_line_error(capsys, code, words):
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, err
    assert err.startswith("kssl: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    assert words in err, err
    return err


@pytest.mark.parametrize("argv, words", BAD, ids=[" ".join(a)[:60] or "(none)" for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp, capsys, argv, words):
    before = _snapshot(tmp)
    code = _call([a.format(tmp=tmp) for a in argv])
    _one_line_error(capsys, code, words.format(tmp=tmp))
    assert _snapshot(tmp) == before


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root may write anywhere")
def test_unwritable_output_folder(tmp, capsys):
    ro = tmp / "ro"
    ro.mkdir(mode=0o555)
    _one_line_error(capsys, _call(["run", "--out", str(ro / "runs")]), "is not writable")


# --------------------------------------------------------------------------------------------------------------------
# Damaged results files: `kssl report` says which field, exit 2


def _damage(results, path, value):
    node = results
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return results


DAMAGED = [
    (("accuracy",), {}, "field 'accuracy' is empty"),
    (("accuracy",), KeyError, "is not a 'kssl run' results.json (no 'accuracy')"),
    (("accuracy",), [1, 2], "field 'accuracy' must be a table of methods, got list"),
    (("accuracy", "contrastive"), {}, "field 'accuracy.contrastive' is empty"),
    (("accuracy", "supervised", "1", "mean"), KeyError, "field 'accuracy.supervised.1.mean' is missing"),
    (("accuracy", "base_kernel", "all", "std"), "high", "field 'accuracy.base_kernel.all.std' is missing or not a "
                                                        "number"),
    (("config",), KeyError, "field 'config.ssl' is missing"),
    (("config", "ssl", "objectives"), KeyError, "field 'config.ssl.objectives' is missing"),
    (("config", "ssl", "lam"), None, "field 'config.ssl.lam' is missing or not a number"),
    (("eigenvalues",), "none", "field 'eigenvalues' must be a table"),
]


@pytest.mark.parametrize("path, value, words", DAMAGED, ids=[".".join(p) + f"={v!r}"[:20] for p, v, _ in DAMAGED])
def test_report_of_a_damaged_run_folder(tmp, capsys, path, value, words):
    (tmp / "run" / "results.json").write_text(json.dumps(_damage(_results(), path, value)))
    err = _one_line_error(capsys, _call(["report", str(tmp / "run")]), words)
    assert str(tmp / "run" / "results.json") in err
    assert not (tmp / "run" / "report").exists()


def test_report_of_a_results_json_that_is_not_an_object(tmp, capsys):
    (tmp / "run" / "results.json").write_text("[1, 2]\n")
    _one_line_error(capsys, _call(["report", str(tmp / "run")]), "is not a 'kssl run' results.json")


def test_report_of_a_sweep_file_missing_a_field(tmp, capsys):
    record = {"key": "k", "index": 0, "params": {"ssl.lam": 0.1}, "objectives": {}, "base_kernel": {}}
    (tmp / "s.jsonl").write_text(json.dumps(record) + "\n")
    _one_line_error(capsys, _call(["report", str(tmp / "s.jsonl")]), "is not a complete 'kssl sweep' results file")


# --------------------------------------------------------------------------------------------------------------------
# --debug, file-system errors, internal errors


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_then_the_line(tmp, capsys, where):
    argv = ["run", "--set", "ssl.dim=0"]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    assert _call(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1] == "kssl: error: ssl.dim must be >= 1, got 0 (from --set 'ssl.dim=0')"


def test_os_errors_are_one_line_exit_2(tmp, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp / "x"))

    monkeypatch.setattr(report, "build_report", full)
    err = _one_line_error(capsys, _call(["report", str(tmp / "run")]), "No space left on device")
    assert str(tmp / "x") in err


def test_a_value_error_of_the_library_is_one_line_exit_2(tmp, capsys, monkeypatch):
    def bad_value(*args, **kwargs):
        raise ValueError("dim = 50 exceeds the rank of the Gram (40); choose dim <= 40")

    monkeypatch.setattr(report, "build_report", bad_value)
    _one_line_error(capsys, _call(["report", str(tmp / "run")]), "dim = 50 exceeds the rank of the Gram (40)")


def test_an_internal_error_is_one_line_exit_1_and_debug_shows_it(tmp, capsys, monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(report, "build_report", bug)
    assert _call(["report", str(tmp / "run")]) == 1
    err = capsys.readouterr().err
    assert err == ("kssl: internal error: RuntimeError: something broke (rerun with 'kssl --debug ...' for the "
                   "traceback and report it)\n")
    assert _call(["--debug", "report", str(tmp / "run")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: something" in err


def test_output_checks_name_the_argument_and_value():
    with pytest.raises(TypeError, match="--out must be a path \\(str or os.PathLike\\), got int 3"):
        outputs.check_output_dir(3)
    with pytest.raises(TypeError, match="sweep.output must be a path"):
        outputs.check_output_file(None, "sweep.output")
    assert issubclass(outputs.OutputError, ValueError)
