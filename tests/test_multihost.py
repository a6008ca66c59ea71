"""Multi-host: the sharded feature-space solver run by two processes after `jax.distributed.initialize()`.

Two local CPU processes (one device each, collectives over gloo) stand in for two hosts: each runs the same script on
the same views, as docs/scaling.md tells cluster users to do, and must get the single-process solution.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import kernel_ssl_jax as kssl
from kernel_ssl_jax import lowrank

WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    pid, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=pid)
    import numpy as np
    import kernel_ssl_jax as kssl
    from kernel_ssl_jax import lowrank
    from test_multihost import problem
    X, groups, pairs, X_new = problem()
    result = {"process_count": jax.process_count(), "device_count": jax.device_count()}
    for objective in ("contrastive", "barlow"):
        extra = {"pairs": pairs} if objective == "barlow" else {}
        sol = lowrank.solve_features(objective, X, groups=groups, kernel=kssl.kernels.rbf(2.0), dim=3, lam=0.1,
                                     n_landmarks=16, shard=True, block_size=4, **extra)
        result[objective] = {"loss": float(sol.loss), "features": np.asarray(sol.features(X_new)).tolist()}
    with open(out, "w") as f:
        json.dump(result, f)
    """
)


def problem():
    """Odd N and an odd number of sources, so padding and the reduce-scatter over sources are exercised."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(37, 5))
    groups = np.repeat(np.arange(13), 3)[:37]
    pairs = (np.arange(0, 36, 3), np.arange(1, 37, 3))
    return X, groups, pairs, rng.normal(size=(6, 5))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = _free_port()
    # The package as this test imports it, and this file (for `problem`); one CPU device per process.
    paths = [str(Path(kssl.__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(paths))
    procs = [subprocess.Popen([sys.executable, str(script), str(i), str(port), str(tmp_path / f"out{i}.json")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=180)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the two-process run did not finish in 180 s")
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    outs = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]

    X, groups, pairs, X_new = problem()
    for out in outs:
        assert out["process_count"] == 2 and out["device_count"] == 2
        for objective in ("contrastive", "barlow"):
            extra = {"pairs": pairs} if objective == "barlow" else {}
            ref = lowrank.solve_features(objective, X, groups=groups, kernel=kssl.kernels.rbf(2.0), dim=3, lam=0.1,
                                         n_landmarks=16, block_size=4, **extra)
            assert out[objective]["loss"] == pytest.approx(float(ref.loss), rel=1e-10)
            F_ref = np.asarray(ref.features(X_new))
            F = np.asarray(out[objective]["features"])
            # Induced kernels (sign-free) equal to 1e-10 relative.
            np.testing.assert_allclose(F @ F.T, F_ref @ F_ref.T, rtol=1e-10, atol=1e-10 * np.abs(F_ref).max() ** 2)
