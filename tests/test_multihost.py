"""lensify on multi-host global arrays: two processes, two CPU devices each, over gloo.

``multihost_check.py`` runs as two subprocesses joined by ``jax.distributed`` on a
free localhost port, under a time limit (neither may wait forever for the other).
Each check is reported here as its own test, and must pass in both processes with
the same result: a bad value is refused in both with the same message.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import multihost_check
import pytest

SCRIPT = Path(__file__).with_name("multihost_check.py")
TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def environment() -> dict[str, str]:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, "--xla_force_host_platform_device_count=2"])
    env["JAX_PLATFORMS"] = "cpu"
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    port, directory = free_port(), tmp_path_factory.mktemp("multihost")
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(i), str(port), str(directory)],
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        details = [proc.communicate() for proc in procs]
        pytest.fail(f"the two processes did not finish within {TIMEOUT} s: {details}")
    results = []
    for stdout, stderr in outputs:
        by_check = {}
        for line in stdout.splitlines():
            if line.startswith("{"):
                result = json.loads(line)
                by_check[result["check"]] = result
        if not by_check:
            pytest.fail(f"multihost_check.py reported nothing:\n{stdout}\n{stderr}")
        results.append({"checks": by_check, "stderr": stderr})
    return results


@pytest.mark.parametrize("check", [fn.__name__ for fn in multihost_check.CHECKS])
def test_multihost(check: str, runs: list[dict[str, Any]]) -> None:
    details = []
    for process, run in enumerate(runs):
        assert check in run["checks"], f"{check} did not run in process {process}"
        result = run["checks"][check]
        assert result["ok"], f"process {process}: {result['error']}"
        details.append(result["detail"])
    assert details[0] == details[1], details  # the same result, the same message


def between(stderr: str, start: str, end: str) -> str:
    return stderr.split(f"@@ {start}")[1].split(f"@@ {end}")[0]


def test_jitted_rewrap_gathers_no_parameter(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        stderr = run["stderr"]
        assert "Involuntary full rematerialization" not in between(
            stderr, "rewrap start", "rewrap end"
        )
        # The control: shipping a whole sharded array to a host callback does warn,
        # so the absence above means something.
        assert "Involuntary full rematerialization" in between(
            stderr, "control start", "control end"
        )
