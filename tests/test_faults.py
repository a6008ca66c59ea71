"""Faults: `kssl run`, `kssl compare` and `kssl sweep` killed with SIGKILL at different moments, concurrent claims of
run folders in the same directory and second, and a full disk (a write raising `OSError(ENOSPC)`).

The invariants: nothing half-written is ever read as complete (a run folder is complete or an empty reservation,
partial data lives only in hidden `.<name>.partial-<pid>` folders and hidden temporary files), the next run cleans up
what a dead process left, a resumed sweep loses and duplicates nothing, and concurrent processes never share a folder.
Only the kill tests use subprocesses (started together, so they overlap); everything else runs in-process.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kernel_ssl_jax.lab import cli, config, outputs, sweep

REPO = Path(__file__).resolve().parents[1]

TINY_RUN = """
[data]
max_train = 40
max_test = 20
[views]
rotation = 0.0
shift = 0.0
[graph]
knn = 0
[ssl]
objectives = ["contrastive"]
dim = 4
[eval]
labels_per_class = [1]
n_draws = 1
probes = ["knn"]
heatmap_per_class = 1
[output]
name = "tiny"
"""

TINY_SWEEP = TINY_RUN + '\n[sweep]\ngrid = {"ssl.lam" = [0.1, 1.0]}\n'

RUN_FILES = {"config.toml", "kernels.npz", "results.csv", "results.json"}


def _env(tmp_path):
    del tmp_path  # the suite's persistent compilation cache (conftest.py) is inherited
    return dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")


def _start(tmp_path, tag, *args):
    log = tmp_path / f"{tag}.log"
    f = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "kernel_ssl_jax", *args], env=_env(tmp_path), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=f)
    f.close()
    return proc, log


def _kill_all_when(jobs, timeout=180.0):
    """`jobs`: tag -> (proc, log, condition). SIGKILLs each process as soon as its `condition()` holds (all polled
    every few ms, so that a late moment of one job does not let another finish)."""
    waiting = dict(jobs)
    deadline = time.time() + timeout
    while waiting and time.time() < deadline:
        for tag, (proc, log, condition) in list(waiting.items()):
            if condition():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                del waiting[tag]
            elif proc.poll() is not None:
                pytest.fail(f"{tag} ended before it could be killed: {log.read_text()[-2000:]}")
        time.sleep(0.002)
    if waiting:
        for proc, _, _ in waiting.values():
            proc.kill()
        pytest.fail(f"the moment to kill never came for {', '.join(waiting)}")


def _partial_exists(out):
    return lambda: out.is_dir() and any(outputs.PARTIAL_RE.match(p.name) for p in out.iterdir())


def _logged(log, text):
    return lambda: text in log.read_text(errors="replace")


def _check_complete_or_empty(out, files):
    """Every visible folder is either complete (all `files`, results.json valid JSON) or an empty reservation."""
    complete = []
    for d in sorted(out.iterdir()) if out.is_dir() else []:
        if d.name.startswith("."):
            assert outputs.PARTIAL_RE.match(d.name), f"unexpected hidden entry {d.name}"
            continue
        names = {p.name for p in d.iterdir()}
        assert not any(n.startswith(".") for n in names), names  # no temporary file in a visible folder
        if names:
            assert files <= names, names
            json.loads((d / "results.json").read_text())
            complete.append(d)
    return complete


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Starts four jobs together and SIGKILLs each at its moment; returns their folders."""
    tmp = tmp_path_factory.mktemp("killed")
    (tmp / "run.toml").write_text(TINY_RUN)
    (tmp / "sweep.toml").write_text(TINY_SWEEP.replace('name = "tiny"', 'name = "tiny"\ndir = "out"'))
    jobs = {
        # kssl run, killed while it computes (nothing may be on disk yet) and while it writes its run folder
        "run-compute": (["run", "--config", "run.toml", "--out", "runs-compute"], "runs-compute", "[kssl] views"),
        "run-write": (["run", "--config", "run.toml", "--out", "runs-write"], "runs-write", "partial"),
        # kssl compare, killed once its computation has started
        "compare": (["compare", "--n-sources", "30", "--dim", "3", "--steps", "40", "--dynamics-steps", "20",
                     "--set", "eval.n_draws=1", "--set", "data.max_test=20", "--set", "eval.labels_per_class=[1]",
                     "--set", "views.rotation=0.0", "--set", "views.shift=0.0",
                     "--out", "runs-compare"], "runs-compare", "[kssl] kernel"),
        # kssl sweep, killed once it holds the results file, before (usually) its first point is written
        "sweep-start": (["sweep", "sweep.toml"], "out", "sweep: 2 points"),
    }
    started = {}
    for tag, (args, out, moment) in jobs.items():
        proc, log = _start(tmp, tag, *args)
        started[tag] = (proc, log, _partial_exists(tmp / out) if moment == "partial" else _logged(log, moment))
    _kill_all_when(started)
    return tmp


def test_killed_run_leaves_nothing_that_looks_complete_and_the_next_run_cleans_up(killed, monkeypatch, capsys):
    assert _check_complete_or_empty(killed / "runs-compute", RUN_FILES) == []
    out = killed / "runs-write"
    before = _check_complete_or_empty(out, RUN_FILES)  # complete only if the kill landed just after the rename
    assert [p for p in out.iterdir() if outputs.PARTIAL_RE.match(p.name)] or before
    for reservation in [d for d in out.iterdir() if not d.name.startswith(".") and not any(d.iterdir())]:
        # An empty reservation is not a run: `kssl report` refuses it.
        assert cli.main(["report", str(reservation)]) == 2
        assert "holds neither results.json" in capsys.readouterr().err
    # The next run in the folder (its claim, as in experiment.write_run) removes what the dead process left.
    monkeypatch.setattr(outputs, "STALE_AFTER_S", 0.0)  # the dead pid's folder is only seconds old
    with outputs.new_run_folder(out, "tiny") as (tmp, final):
        outputs.atomic_write(tmp / "results.json", "{}")
    entries = sorted(out.iterdir())
    assert not [p for p in entries if p.name.startswith(".")], "the dead process's partial folder is cleaned up"
    assert final in entries and len(entries) == len(before) + 1, "no empty reservation is left, nothing lost"


def test_killed_compare_leaves_nothing_behind(killed):
    out = killed / "runs-compare"
    assert not out.exists() or list(out.iterdir()) == []


def test_killed_sweep_resumes_on_a_full_disk_then_completes(killed, monkeypatch, capsys):
    monkeypatch.chdir(killed)  # output.dir = "out", relative
    out = killed / "out" / "sweep-sweep.jsonl"
    assert out.exists()
    before = sweep.read_results(out)  # usually none: killed while solving its first group
    spec = sweep.load_sweep(killed / "sweep.toml")
    if len(before) < 2:
        # Resume on a full disk: the first new line fails half-way and is cut off again; one line, exit 2.
        _full_disk(monkeypatch, 1)
        assert cli.main(["sweep", str(killed / "sweep.toml"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("kssl: error: No space left on device") and err.count("\n") == 1
        assert sweep.read_results(out) == before
        data = out.read_bytes()
        assert data == b"" or data.endswith(b"\n"), "no partial line is left"
        monkeypatch.setattr(outputs, "_os_write", os.write)
    summary = sweep.run_sweep(spec, progress=False)
    assert summary["computed"] == 2 - len(before) and summary["skipped"] == len(before)
    keys = [r["key"] for r in sweep.read_results(out)]
    assert sorted(keys) == sorted(p.key for p in spec.points), "nothing lost, nothing duplicated"


# --------------------------------------------------------------------------------------------------------------------
# Concurrent claims: several processes, the same directory, the same second, the same name


CLAIM = textwrap.dedent("""
    import importlib.util, json, os, sys, time
    spec = importlib.util.spec_from_file_location("outputs", sys.argv[1])
    outputs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(outputs)
    time.strftime = lambda *args: "20260101-000000"   # every process in the same second
    go = sys.argv[3]
    while not os.path.exists(go):
        time.sleep(0.001)
    with outputs.new_run_folder(sys.argv[2], "same") as (tmp, final):
        outputs.atomic_write(tmp / "results.json", json.dumps({"pid": os.getpid(), "run_dir": str(final)}))
        time.sleep(0.02)
""")


def test_concurrent_runs_in_the_same_folder_and_second_get_distinct_folders(tmp_path):
    out, go = tmp_path / "runs", tmp_path / "go"
    script = tmp_path / "claim.py"
    script.write_text(CLAIM)
    outputs_py = str(REPO / "kernel_ssl_jax" / "lab" / "outputs.py")
    procs = [subprocess.Popen([sys.executable, str(script), outputs_py, str(out), str(go)], stderr=subprocess.PIPE)
             for _ in range(8)]
    time.sleep(0.3)
    go.touch()
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read().decode()
    folders = sorted(out.iterdir())
    assert [f.name for f in folders] == sorted(["20260101-000000-same"] +
                                               [f"20260101-000000-same-{i}" for i in range(2, 9)])
    results = [json.loads((f / "results.json").read_text()) for f in folders]
    assert sorted(r["pid"] for r in results) == sorted(p.pid for p in procs), "every result kept"
    assert all(r["run_dir"] == str(f) for r, f in zip(results, folders, strict=True)), "each names its own folder"


def test_a_complete_folder_is_never_overwritten(tmp_path):
    out = tmp_path / "runs"
    with pytest.raises(OSError):
        with outputs.new_run_folder(out, "x") as (tmp, final):
            (tmp / "results.json").write_text("new")
            (final / "results.json").write_text("old")  # someone else filled the reservation
    assert (final / "results.json").read_text() == "old"
    assert [p.name for p in out.iterdir()] == [final.name]


# --------------------------------------------------------------------------------------------------------------------
# Stale partial folders


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_partials_need_a_dead_pid_and_age(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    dead, alive = _dead_pid(), os.getppid()
    old = time.time() - 3600

    def partial(name, pid, mtime):
        (out / name).mkdir()  # the reservation
        p = out / f".{name}.partial-{pid}"
        p.mkdir()
        (p / "results.json").write_text("{")
        os.utime(p, (mtime, mtime))
        return p

    dead_old = partial("a", dead, old)
    dead_new = partial("b", dead, time.time())
    alive_old = partial("c", alive, old)
    reused = partial("d", alive, time.time() - 2 * outputs.ABANDONED_AFTER_S)
    (out / "e").mkdir()
    (out / "e" / "results.json").write_text("{}")  # a complete folder with a dead partial of the same name
    dead_e = out / f".e.partial-{dead}"
    dead_e.mkdir()
    os.utime(dead_e, (old, old))
    removed = outputs.clean_stale_partials(out)
    assert sorted(removed) == sorted([dead_old, reused, dead_e])
    assert sorted(p.name for p in out.iterdir()) == sorted(["b", dead_new.name, "c", alive_old.name, "e"])
    assert (out / "e" / "results.json").read_text() == "{}"


# --------------------------------------------------------------------------------------------------------------------
# A full disk


def _full_disk(monkeypatch, fail_on):
    """Makes `outputs._os_write` write half of the data, then raise ENOSPC, on the `fail_on`-th call onwards."""
    real, calls = outputs._os_write, []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) >= fail_on:
            real(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(outputs, "_os_write", write)
    return calls


def test_atomic_write_on_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")
    _full_disk(monkeypatch, 1)
    with pytest.raises(OSError) as info:
        outputs.atomic_write(target, "x" * 1000)
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_run_folder_on_a_full_disk_is_removed_with_its_reservation(tmp_path, monkeypatch):
    # What experiment.write_run and compare.run_cli do: files written atomically into the claimed folder.
    _full_disk(monkeypatch, 2)  # results.json is written, results.csv fails half-way
    out = tmp_path / "runs"
    with pytest.raises(OSError) as info:
        with outputs.new_run_folder(out, "tiny") as (tmp, final):
            outputs.atomic_write(tmp / "results.json", "{}")
            outputs.atomic_write(tmp / "results.csv", "method,probe\n" * 100)
    assert info.value.errno == errno.ENOSPC
    assert list(out.iterdir()) == [], "neither the partial folder nor the reservation is left"


def test_a_failed_sweep_append_leaves_no_partial_line(tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        sweep.append_line(fd, {"key": "a"})
        _full_disk(monkeypatch, 1)
        with pytest.raises(OSError):
            sweep.append_line(fd, {"key": "b", "pad": "x" * 1000})
    finally:
        os.close(fd)
    assert path.read_bytes() == b'{"key":"a"}\n'


def test_report_on_a_full_disk_writes_no_report_md(tmp_path, monkeypatch, capsys):
    entry = {b: {"mean": 0.5, "std": 0.1, "draws": [0.5], "probe": "knn"} for b in ("1", "all")}
    results = {"accuracy": {"contrastive": entry}, "config": config.defaults(),
               "eigenvalues": {"gram": [3.0, 2.0, 1.0], "targets": {"contrastive": [1.0, 0.5]}}}
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results))
    _full_disk(monkeypatch, 1)
    assert cli.main(["report", str(run)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not (run / "report" / "report.md").exists()
    assert not [p for p in (run / "report").iterdir() if p.name.startswith(".")]
