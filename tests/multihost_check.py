"""Checks of lensify on multi-host global arrays, run by tests/test_multihost.py.

One of two processes (``python tests/multihost_check.py PROCESS_ID PORT CKPT_DIR``),
each with two CPU devices, joined by ``jax.distributed`` over gloo: every parameter
is a global array sharded by rows over the four devices, of which each process holds
two. Both processes run the same checks in the same order (every eager operation on
a global array is a computation both take part in) and print one JSON line per
check: its name, whether it passed, and a detail the caller compares across the
two processes (an error message must be the same in both).

Around the compilation of a jitted ``rewrap`` it writes markers to stderr, so that
the caller can tell that XLA warned of no "Involuntary full rematerialization"
there, and that it does for a check that ships a whole array to a host callback
(the control).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import lensify as lf  # noqa: E402

CHECKS: list[Callable[[], Any]] = []
ROWS = 8


def check(fn: Callable[[], Any]) -> Callable[[], Any]:
    CHECKS.append(fn)
    return fn


def mark(text: str) -> None:
    os.write(2, f"\n@@ {text}\n".encode())  # unbuffered, in order with XLA's own log


def global_array(host: np.ndarray) -> jax.Array:
    """``host`` (the same in every process) as a global array sharded by rows."""
    mesh = jax.make_mesh((jax.device_count(),), ("rows",))
    sharding = NamedSharding(mesh, P("rows"))
    host = np.asarray(host, np.float32)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def largest(x: Any) -> float:
    """A float every process can read: the largest magnitude of a global array."""
    return float(jax.jit(lambda a: jnp.max(jnp.abs(a)))(x))


def close(a: Any, b: Any, tol: float = 1e-5) -> bool:
    return largest(jnp.asarray(a) - jnp.asarray(b)) <= tol * max(1.0, largest(b))


RNG = np.random.default_rng(0)
POSITIVE = RNG.uniform(0.5, 2.0, (ROWS, 6))
UNIT = POSITIVE / np.linalg.norm(POSITIVE, axis=-1, keepdims=True)
SIMPLEX = POSITIVE / POSITIVE.sum(axis=-1, keepdims=True)
LOWER = np.tril(RNG.normal(size=(ROWS, 3, 3)), -1) + np.eye(3) * 1.5
SYMMETRIC = LOWER + np.swapaxes(LOWER, -1, -2)
INCREASING = np.cumsum(RNG.uniform(0.1, 0.2, (ROWS, 3)), axis=-1)


def model() -> dict[str, Any]:
    from numpyro.distributions import constraints

    return {
        "positive": lf.positive(global_array(POSITIVE)),
        "interval": lf.interval(global_array(POSITIVE), 0.0, 3.0),
        "bounds": lf.interval(global_array(POSITIVE), np.zeros(6), np.full(6, 2.5)),
        "simplex": lf.simplex(global_array(SIMPLEX)),
        "unit": lf.unit_vector(global_array(UNIT)),
        "cholesky": lf.cholesky_factor(global_array(LOWER)),
        "symmetric": lf.symmetric(global_array(SYMMETRIC)),
        "numpyro": lf.constrain(global_array(POSITIVE), constraints.positive),
        "weight": lf.WeightNormalization(global_array(POSITIVE)),
        "exp": lf.Parameterize(jnp.exp, global_array(np.log(POSITIVE))),
        "frozen": lf.NonTrainable(global_array(POSITIVE)),
        "frozen_fn": lf.non_trainable(global_array(POSITIVE)),
        "preimage": lf.positive(lf.WeightNormalization(global_array(POSITIVE))),
        "increasing": lf.RealToIncreasingOnInterval(
            global_array(np.zeros((ROWS, 4))), (0.0, 1.0), min_width=0.01, include_endpoints="both"
        ),
    }


VALUES = {
    "positive": POSITIVE,
    "interval": POSITIVE,
    "bounds": POSITIVE,
    "simplex": SIMPLEX,
    "unit": UNIT,
    "cholesky": LOWER,
    "symmetric": SYMMETRIC,
    "numpyro": POSITIVE,
    "weight": POSITIVE,
    "exp": POSITIVE,
    "frozen": POSITIVE,
    "frozen_fn": POSITIVE,
    "preimage": POSITIVE,
}


@check
def construction_of_every_builtin_preserves_the_value() -> str:
    values = lf.unwrap(model())
    for name, want in VALUES.items():
        assert close(values[name], global_array(want), 1e-4), name
    return "ok"


@check
def eager_and_jitted_unwrap_agree() -> str:
    tree = model()
    eager, jitted = lf.unwrap(tree), jax.jit(lf.unwrap)(tree)
    for name in tree:
        assert close(eager[name], jitted[name]), name
    assert jitted["positive"].sharding.is_equivalent_to(tree["positive"].raw.sharding, 2)
    return "ok"


@check
def eager_and_jitted_rewrap_round_trip() -> str:
    tree = model()
    values = lf.unwrap(tree)
    new = {name: 0.5 * values[name] for name in ("positive", "interval", "bounds", "weight")}
    for rewrap in (lf.rewrap, jax.jit(lf.rewrap)):
        back = rewrap(tree, {**values, **new})
        got = lf.unwrap(back)
        for name, want in new.items():
            assert close(got[name], want, 1e-4), name
        assert close(lf.unwrap(rewrap(tree, values))["simplex"], values["simplex"], 1e-4)
    return "ok"


@check
def optic_unwrapped_set_and_modify() -> str:
    tree = model()
    half = global_array(POSITIVE / 2)
    new = lf.at["positive"].unwrapped().set(tree, half)
    assert isinstance(new["positive"], lf.Positive)
    assert close(lf.unwrap(new)["positive"], half, 1e-4)
    new = lf.at["interval"].unwrapped().modify(tree, lambda v: v / 2)
    assert close(lf.unwrap(new)["interval"], half, 1e-4)
    new = lf.at["frozen"].set(tree, lf.NonTrainable(half))
    assert close(lf.unwrap(new)["frozen"], half)
    return "ok"


@check
def describe_and_count() -> str:
    tree = model()
    text = str(lf.describe(tree))
    assert "Positive" in text and "WeightNormalization" in text
    return str(lf.count_parameters(tree))


@check
def a_bad_value_is_refused_in_every_process_eagerly() -> str:
    bad = POSITIVE.copy()
    bad[6, 2] = -3.0  # a row held by the second process only
    try:
        lf.positive(global_array(bad))
    except lf.ConstraintError as error:
        assert error.index == (6, 2) and error.value == -3.0, error
        message = str(error)
    else:
        raise AssertionError("no ConstraintError")
    bad[1, 0] = np.nan  # first in row-major order, held by the first process
    try:
        lf.positive(global_array(bad))
    except lf.ConstraintError as error:
        assert error.index == (1, 0) and np.isnan(error.value) and error.count == 2, error
    else:
        raise AssertionError("no ConstraintError for a NaN")
    tree = model()
    values = lf.unwrap(tree)
    try:
        lf.rewrap(tree, {**values, "interval": global_array(bad)})
    except lf.ConstraintError as error:
        return f"{message} | {error}"
    raise AssertionError("rewrap accepted a value outside the interval")


@check
def a_bad_value_is_refused_in_every_process_under_jit() -> str:
    bad = POSITIVE.copy()
    bad[5, 1] = 7.0
    tree = model()
    values = lf.unwrap(tree)
    try:
        jax.block_until_ready(jax.jit(lf.rewrap)(tree, {**values, "interval": global_array(bad)}))
    except jax.errors.JaxRuntimeError as error:
        text = str(error)
        assert "at ['interval']: Interval got 7.0 at index (5, 1)" in text, text
    else:
        raise AssertionError("jit(rewrap) accepted a value outside the interval")
    nan = POSITIVE.copy()
    nan[6, 3] = np.nan  # each check's reductions cross the processes: NaN must survive
    try:
        jax.block_until_ready(jax.jit(lf.rewrap)(tree, {**values, "positive": global_array(nan)}))
    except jax.errors.JaxRuntimeError as error:
        text = str(error)
        assert "at ['positive']: Positive got nan at index (6, 3)" in text, text
        return "refused"
    raise AssertionError("jit(rewrap) accepted a NaN")


@check
def jitted_rewrap_gathers_nothing() -> str:
    big = np.full((1024, 64), 0.5)
    tree = {
        "p": lf.positive(global_array(big)),
        "w": lf.WeightNormalization(global_array(big)),
        "i": lf.interval(global_array(big), 0.0, 1.0),
        "e": lf.Parameterize(jnp.exp, global_array(big)),
        "s": lf.simplex(global_array(np.full((1024, 64), 1 / 64))),
    }
    values = lf.unwrap(tree)
    mark("rewrap start")
    out = jax.jit(lf.rewrap)(tree, values)
    jax.block_until_ready(out)
    mark("rewrap end")
    assert out["p"].raw.sharding.is_equivalent_to(tree["p"].raw.sharding, 2)

    def ships_the_array(x: jax.Array) -> jax.Array:
        jax.debug.callback(lambda v: None, x)
        return x

    mark("control start")
    jax.block_until_ready(jax.jit(ships_the_array)(values["p"]))
    mark("control end")
    return "ok"


@check
def checkpoint_save_and_restore() -> str:
    import lensify.checkpoint

    tree = {k: v for k, v in model().items() if k not in ("numpyro", "increasing")}
    path = os.path.join(sys.argv[3], "model")
    lensify.checkpoint.save(path, tree)
    restored = lensify.checkpoint.restore(path, tree)
    assert type(restored["interval"]) is lf.Interval
    got, want = lf.unwrap(restored), lf.unwrap(tree)
    for name in tree:
        assert close(got[name], want[name]), name
    return "ok"


def main() -> None:
    process_id, port = int(sys.argv[1]), int(sys.argv[2])
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}",
        num_processes=2,
        process_id=process_id,
        initialization_timeout=60,
    )
    assert jax.device_count() == 4 and jax.local_device_count() == 2
    for fn in CHECKS:
        try:
            detail, ok, error = fn(), True, None
        except Exception:
            detail, ok, error = None, False, traceback.format_exc()
        print(json.dumps({"check": fn.__name__, "ok": ok, "detail": detail, "error": error}))
        sys.stdout.flush()
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
