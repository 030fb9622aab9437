"""Checks on sharded parameters, and bounds as data.

- ``jit(rewrap)`` against ``jit(unwrap)`` of one ``lf.positive`` parameter of 4M
  entries sharded by rows over two CPU devices: rewrap's range check reduces on the
  devices to three scalars, so it must cost about what unwrap does (target: at most
  1.3x). Timed in a subprocess started with two CPU devices (JAX fixes the device
  count when it starts), with ``jax.jit(tree_map identity)`` of the same tree as
  the usual baseline.
- Twenty ``lf.interval`` constructions and eager unwraps, each with bounds never
  seen before, against twenty with the same bounds: a bound is data, not a
  compile-time constant (target: at most 3x).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks._harness import Row, best_time

ENTRIES = 4 * 1024 * 1024
N_INTERVALS = 20


def _sharded_rows() -> list[Row]:
    # Runs in the subprocess, with two CPU devices.
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import lensify as lf

    mesh = jax.make_mesh((2,), ("rows",))
    x = jax.device_put(jnp.full((2048, ENTRIES // 2048), 0.5), NamedSharding(mesh, P("rows")))
    tree = {"scale": lf.positive(x)}
    values = lf.unwrap(tree)
    unwrap, rewrap = jax.jit(lf.unwrap), jax.jit(lf.rewrap)
    identity = jax.jit(lambda t: jax.tree_util.tree_map(lambda a: a, t))
    group = "jit over a sharded 4M-entry lf.positive (2 CPU devices)"
    cases = [
        ("tree_map identity", lambda: jax.block_until_ready(identity(tree))),
        ("jit(unwrap)", lambda: jax.block_until_ready(unwrap(tree))),
        ("jit(rewrap)", lambda: jax.block_until_ready(rewrap(tree, values))),
    ]
    return [
        Row(group=group, case=case, n=ENTRIES, seconds=best_time(fn, repeat=5))
        for case, fn in cases
    ]


def _interval_rows() -> list[Row]:
    import lensify as lf

    x = jnp.full((16,), 0.5)
    fresh = itertools.count(1)

    def same() -> None:
        for _ in range(N_INTERVALS):
            jax.block_until_ready(lf.unwrap(lf.interval(x, -1.0, 1.0)))

    def distinct() -> None:
        k = next(fresh)
        for i in range(N_INTERVALS):  # bounds no call has used before
            jax.block_until_ready(lf.unwrap(lf.interval(x, -1.0 - k - i / 64, 1.0)))

    group = f"{N_INTERVALS} lf.interval built and unwrapped eagerly"
    return [
        Row(group=group, case="same bounds", n=N_INTERVALS, seconds=best_time(same)),
        Row(group=group, case="distinct bounds", n=N_INTERVALS, seconds=best_time(distinct)),
    ]


def run(sizes: list[int]) -> list[Row]:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, "--xla_force_host_platform_device_count=2"])
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_sharded"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    rows: list[Row] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows + _interval_rows()


def _child() -> None:
    rows: list[Any] = _sharded_rows()
    print(json.dumps(rows))


if __name__ == "__main__":
    _child()
