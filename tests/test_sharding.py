"""lensify on sharded trees: 8 simulated CPU devices, in a subprocess.

JAX fixes the device count when it starts, so the checks in ``sharding_check.py`` run
once in their own interpreter (the rest of the suite keeps its single device), and
each check is reported here as its own test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sharding_check

SCRIPT = Path(__file__).with_name("sharding_check.py")
EXAMPLE = Path(__file__).parents[1] / "examples" / "sharding.py"


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count", "--unset")
    flags = " ".join(f for f in flags.split() if not f.startswith("--unset"))
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=8".strip()
    env["JAX_PLATFORMS"] = "cpu"
    return env


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    by_check = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            by_check[result["check"]] = result
    if not by_check:
        pytest.fail(f"sharding_check.py reported nothing:\n{done.stdout}\n{done.stderr}")
    return by_check


@pytest.mark.parametrize("check", [fn.__name__ for fn in sharding_check.CHECKS])
def test_sharded(check: str, results: dict[str, dict[str, Any]]) -> None:
    assert check in results, f"{check} did not run"
    result = results[check]
    assert result["ok"], result["error"]


@pytest.mark.skipif(not EXAMPLE.exists(), reason="examples/sharding.py not written yet")
def test_sharding_example_runs() -> None:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # the example sets it itself
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "devices" in done.stdout
