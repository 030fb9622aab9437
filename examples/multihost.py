"""lensify on a multi-host run: two processes, two CPU devices each, one global mesh.

Run ``python examples/multihost.py``: it launches itself twice, as processes 0 and
1 of a ``jax.distributed`` run on a free localhost port (with gloo for the CPU
collectives and two simulated CPU devices per process), waits for both under a time
limit and prints what process 0 printed. Each process then holds two of the four
devices, and every parameter is a global ``jax.Array`` sharded by rows over all
four, which no single process can read whole.

lensify works there as on one device: constraints are built from global arrays,
their value checks reduce on the devices (only a count, an index and a value reach
the host), a jitted training step differentiates through ``lf.unwrap``, ``lf.rewrap``
and optics set values, and a bad value is refused in both processes with the same
error.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

SMALL = os.environ.get("LENSIFY_EXAMPLE_SMALL") == "1"
ROWS, COLUMNS = (8, 4) if SMALL else (64, 32)
STEPS = 5 if SMALL else 50


def launch() -> int:
    """Run this script as process 0 and 1 of a two-process run; print process 0's output."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(i), str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=300) for proc in procs]
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        print("the two processes did not finish in time", file=sys.stderr)
        return 1
    failed = [i for i, proc in enumerate(procs) if proc.returncode]
    for i in failed:
        print(f"process {i} failed:\n{outputs[i][1]}", file=sys.stderr)
    print(outputs[0][0], end="")
    return 1 if failed else 0


def run(process_id: int, port: int) -> None:
    """What each of the two processes runs."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}", num_processes=2, process_id=process_id
    )

    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import lensify as lf

    def say(*args: Any) -> None:
        if jax.process_index() == 0:
            print(*args)

    mesh = jax.make_mesh((jax.device_count(),), ("rows",))
    by_rows = NamedSharding(mesh, P("rows"))

    def global_array(host: np.ndarray) -> jax.Array:
        # Every process knows the whole host array here; each puts only its rows.
        host = np.asarray(host, np.float32)
        return jax.make_array_from_callback(host.shape, by_rows, lambda index: host[index])

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(ROWS, COLUMNS)) / np.sqrt(COLUMNS)
    scale = rng.uniform(0.5, 2.0, (ROWS, 1))
    say(f"{jax.process_count()} processes, {jax.device_count()} devices")

    # Constraints and wrappers are built from global arrays: their checks reduce on
    # the devices, and no process reads another's rows.
    model = {
        "weight": lf.WeightNormalization(global_array(weight)),
        "scale": lf.positive(global_array(scale)),
        "mix": lf.interval(global_array(np.full((ROWS, 1), 0.5)), 0.0, 1.0),
    }
    say(lf.describe(model))

    x = global_array(rng.normal(size=(ROWS, COLUMNS)))

    # A global array is passed to a jitted function, never closed over.
    def loss(model: Any, x: jax.Array) -> jax.Array:
        p = lf.unwrap(model)
        return jnp.mean((p["mix"] * p["scale"] * p["weight"] - x) ** 2)

    @jax.jit
    def step(model: Any, x: jax.Array) -> tuple[Any, jax.Array]:
        value, grads = jax.value_and_grad(loss)(model, x)
        return jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, model, grads), value

    start = float(loss(model, x))
    for _ in range(STEPS):
        # Each step is waited for: with many steps in flight at once, a CPU run
        # over gloo was seen to stall on a machine with two cores.
        model, value = jax.block_until_ready(step(model, x))
    say(f"loss {start:.4f} -> {float(value):.4f}")
    assert float(value) < start
    assert model["scale"].raw.sharding.is_equivalent_to(by_rows, 2)

    # Setting values: rewrap (eager or jitted) and an optic, through the constraints.
    values = lf.unwrap(model)
    halved = jax.jit(lf.rewrap)(model, {**values, "scale": values["scale"] / 2})
    halved = lf.at["mix"].unwrapped().set(halved, global_array(np.full((ROWS, 1), 0.25)))
    got = lf.unwrap(halved)
    assert float(jnp.max(jnp.abs(got["scale"] - values["scale"] / 2))) < 1e-5
    assert float(jnp.max(jnp.abs(got["mix"] - 0.25))) < 1e-6

    # A bad value is refused in every process, with the same error.
    bad = np.full((ROWS, 1), 0.5)
    bad[-1, 0] = 1.5  # in a row only the last process holds
    try:
        lf.rewrap(model, {**values, "mix": global_array(bad)})
    except lf.ConstraintError as error:
        print(f"process {jax.process_index()} refused it: {error}")
    else:
        raise AssertionError("a value outside the interval was accepted")
    jax.distributed.shutdown()


if __name__ == "__main__":
    if len(sys.argv) == 1:
        sys.exit(launch())
    run(int(sys.argv[1]), int(sys.argv[2]))
