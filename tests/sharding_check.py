"""Checks of lensify on sharded trees, run by tests/test_sharding.py in a subprocess.

JAX fixes its device count when it starts, so these run in their own interpreter
with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``: 8 simulated CPU devices
on a ``(data=2, model=4)`` mesh. Each check is a plain function; the script runs
them all and prints one JSON line per check (its name, whether it passed, and the
traceback if not), so the calling test can report each check on its own.

Run it directly with ``python tests/sharding_check.py``; it sets ``XLA_FLAGS``
itself if that is not set yet (XLA reads it when JAX first uses a device, so that
is early enough). Importing it has no side effects.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import lensify as lf

N_DEVICES = 8
CHECKS: list[Callable[[], None]] = []


def check(fn: Callable[[], None]) -> Callable[[], None]:
    CHECKS.append(fn)
    return fn


# --------------------------------------------------------------------------- helpers


def mesh(axis_type: Any = None) -> Any:
    axis_type = AxisType.Explicit if axis_type is None else axis_type
    return jax.make_mesh((2, 4), ("data", "model"), axis_types=(axis_type,) * 2)


def rows(m: Any) -> Any:
    """Shard the first (output) axis over ``model``: weights and their row scales."""
    return NamedSharding(m, P("model"))


def replicated(m: Any) -> Any:
    return NamedSharding(m, P())


def same_sharding(a: Any, b: Any) -> bool:
    return bool(a.sharding.is_equivalent_to(b.sharding, a.ndim))


def shardings(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: x.sharding, tree)


def init_params(key: Any, sizes: tuple[int, ...] = (4, 8, 8, 4)) -> dict[str, Any]:
    """A three-layer perceptron, unwrapped: ``{"layers": [{"weight", "bias"}, ...]}``."""
    layers = []
    for n_in, n_out in itertools.pairwise(sizes):
        key, k_w, k_b = jax.random.split(key, 3)
        layers.append(
            {
                "weight": jax.random.normal(k_w, (n_out, n_in)) / np.sqrt(n_in),
                "bias": 0.1 * jax.random.normal(k_b, (n_out,)),
            }
        )
    return {"layers": layers}


def wrap_params(params: dict[str, Any]) -> dict[str, Any]:
    """Weight-normalise the first layer, keep a positive bias, freeze the last layer."""
    first, middle, last = params["layers"]
    return {
        "layers": [
            {"weight": lf.WeightNormalization(first["weight"]), "bias": first["bias"]},
            {
                "weight": middle["weight"],
                "bias": lf.Parameterize(jax.nn.softplus, lf.inv_softplus(jnp.abs(middle["bias"]))),
            },
            lf.NonTrainable(last),
        ]
    }


def forward(params: dict[str, Any], x: Any) -> Any:
    *hidden, last = params["layers"]
    for layer in hidden:
        x = jnp.tanh(x @ layer["weight"].T + layer["bias"])
    return x @ last["weight"].T + last["bias"]


def is_matrix(x: Any) -> bool:
    return jnp.ndim(x) == 2


def sharding_tree(tree: Any, m: Any) -> Any:
    """Rows of every 2-D leaf sharded, every other leaf replicated, chosen by an optic."""
    matrices = lf.at.leaves().where(is_matrix)
    return jax.tree_util.tree_map(
        lambda selected: rows(m) if selected else replicated(m), matrices.mask(tree)
    )


def sharded_model(m: Any) -> Any:
    model = wrap_params(init_params(jax.random.key(0)))
    return jax.device_put(model, sharding_tree(model, m))


# ---------------------------------------------------------------------------- checks


@check
def devices_are_simulated() -> None:
    assert jax.device_count() == N_DEVICES, jax.devices()


def _unwrap_keeps_shardings(axis_type: Any) -> None:
    m = mesh(axis_type)
    w = jax.device_put(jax.random.normal(jax.random.key(1), (8, 4)), rows(m))
    b = jax.device_put(jnp.ones(8), rows(m))
    c = jax.device_put(jnp.zeros(3), replicated(m))
    tree = {
        "normalised": lf.WeightNormalization(w),
        "positive": lf.Parameterize(jax.nn.softplus, b),
        "frozen": lf.NonTrainable({"w": w, "c": c}),
        "knots": lf.RealToIncreasingOnInterval(
            c, (0.0, 1.0), min_width=0.1, include_endpoints="both"
        ),
        "plain": w,
    }
    out = jax.jit(lf.unwrap)(tree)
    expected = {"normalised": w, "positive": b, "frozen": {"w": w, "c": c}, "knots": c, "plain": w}
    for path, leaf in jax.tree_util.tree_leaves_with_path(out):
        source = dict(jax.tree_util.tree_leaves_with_path(expected))[path]
        assert isinstance(leaf.sharding, NamedSharding), (path, leaf.sharding)
        assert same_sharding(leaf, source), (path, leaf.sharding, source.sharding)
    assert np.allclose(out["normalised"], w, atol=1e-5)


@check
def jitted_unwrap_keeps_named_shardings_explicit_axes() -> None:
    _unwrap_keeps_shardings(AxisType.Explicit)


@check
def jitted_unwrap_keeps_named_shardings_auto_axes() -> None:
    _unwrap_keeps_shardings(AxisType.Auto)


@check
def optic_set_and_modify_keep_untouched_shardings() -> None:
    m = mesh()
    model = sharded_model(m)
    before = jax.tree_util.tree_leaves_with_path(model)
    first_bias = lf.at["layers"][0]["bias"]
    weights = lf.at["layers"][:2]["weight"]
    changed = {
        "set": (first_bias, first_bias.set(model, jnp.zeros(8))),
        "modify": (weights, weights.modify(model, lf.NonTrainable)),
        "jit set": (first_bias, jax.jit(lambda t: first_bias.set(t, jnp.zeros(8)))(model)),
        "jit modify": (weights, jax.jit(lambda t: weights.modify(t, lambda w: w))(model)),
    }
    for name, (optic, tree) in changed.items():
        touched = optic.paths(model)
        untouched = [
            (path, leaf)
            for path, leaf in before
            if not any(tuple(path[: len(t)]) == tuple(t) for t in touched)
        ]
        assert len(untouched) == len(before) - (1 if optic is first_bias else 3), name
        for path, leaf in untouched:
            new = lf.at.from_path(path).get(tree)
            assert same_sharding(new, leaf), (name, path, new.sharding, leaf.sharding)
            if not name.startswith("jit"):
                assert new is leaf, (name, path)


@check
def optic_built_sharding_tree_is_accepted_by_device_put_and_jit() -> None:
    m = mesh()
    model = wrap_params(init_params(jax.random.key(0)))
    specs = sharding_tree(model, m)
    # The same tree built by modifying a tree of shapes.
    shapes = jax.eval_shape(lambda: model)
    matrices = lf.at.leaves().where(lambda s: len(s.shape) == 2)
    by_modify = lf.at.leaves().modify(
        matrices.set(shapes, rows(m)),
        lambda s: s if isinstance(s, NamedSharding) else replicated(m),
    )
    assert jax.tree_util.tree_structure(by_modify) == jax.tree_util.tree_structure(specs)
    assert jax.tree_util.tree_leaves(by_modify) == jax.tree_util.tree_leaves(specs)

    placed = jax.device_put(model, specs)
    for leaf, spec in zip(
        jax.tree_util.tree_leaves(placed), jax.tree_util.tree_leaves(specs), strict=True
    ):
        assert leaf.sharding == spec, (leaf.shape, leaf.sharding, spec)
    n_sharded = sum(s.spec == P("model") for s in jax.tree_util.tree_leaves(specs))
    # Three weights and WeightNormalization's (8, 1) scale.
    assert n_sharded == 4, n_sharded

    unwrap = jax.jit(lf.unwrap, in_shardings=(specs,))
    out = unwrap(placed)
    assert np.allclose(out["layers"][0]["weight"], model["layers"][0]["weight"].weight, atol=1e-5)
    assert out["layers"][0]["weight"].sharding.is_equivalent_to(rows(m), 2)


@check
def instances_of_selects_wrappers_for_their_own_sharding() -> None:
    m = mesh()
    model = wrap_params(init_params(jax.random.key(0)))
    normalised = lf.at.instances_of(lf.WeightNormalization)
    mask = normalised.mask(model)
    specs = jax.tree_util.tree_map(lambda s: rows(m) if s else replicated(m), mask)
    placed = jax.device_put(model, specs)
    (wn,) = normalised.get_all(placed)
    assert wn.weight.sharding.spec == P("model")
    assert wn.scale.args[0].sharding.spec == P("model")
    assert placed["layers"][1]["weight"].sharding.spec == P()


@check
def training_step_over_a_sharded_wrapped_model() -> None:
    m = mesh()
    model = wrap_params(init_params(jax.random.key(0)))
    specs = sharding_tree(model, m)
    model = jax.device_put(model, specs)
    data_sharding = NamedSharding(m, P("data"))
    x = jax.device_put(jax.random.normal(jax.random.key(1), (16, 4)), data_sharding)
    y = jax.device_put(jnp.sin(jnp.arange(16.0 * 4).reshape(16, 4)), data_sharding)

    def loss(params: Any, x: Any, y: Any) -> Any:
        return jnp.mean((forward(lf.unwrap(params), x) - y) ** 2)

    def step(params: Any, x: Any, y: Any) -> tuple[Any, Any]:
        value, grads = jax.value_and_grad(loss)(params, x, y)
        params = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)
        return params, value

    train = jax.jit(
        step,
        in_shardings=(specs, data_sharding, data_sharding),
        out_shardings=(specs, replicated(m)),
    )
    losses = []
    params = model
    for _ in range(5):
        params, value = train(params, x, y)
        losses.append(float(value))
    assert losses[-1] < losses[0], losses
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(model)
    for new, old in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(model), strict=True
    ):
        assert new.sharding == old.sharding, (new.sharding, old.sharding)
    frozen = params["layers"][2]
    assert type(frozen) is lf.NonTrainable
    assert np.array_equal(frozen.tree["weight"], model["layers"][2].tree["weight"])
    assert not np.array_equal(params["layers"][1]["weight"], model["layers"][1]["weight"])


def run() -> list[dict[str, Any]]:
    results = []
    for fn in CHECKS:
        try:
            fn()
        except Exception:
            results.append({"check": fn.__name__, "ok": False, "error": traceback.format_exc()})
        else:
            results.append({"check": fn.__name__, "ok": True, "error": ""})
    return results


def main() -> int:
    # XLA reads the flag when JAX first talks to a device, not on import.
    flag = f"--xla_force_host_platform_device_count={N_DEVICES}"
    if flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    results = run()
    for result in results:
        print(json.dumps(result))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
