"""Train a sharded, wrapped model with JAX's own SPMD, on 8 simulated CPU devices.

lensify adds no distributed machinery: wrappers are pytree nodes, so
``jax.device_put`` places them, ``jax.jit`` shards through them, and ``lf.unwrap``
inside the loss keeps every leaf's sharding. An optic chooses which leaves to
shard: here the rows of every 2-D leaf (the weights, and WeightNormalization's row
scale with them) go over the ``model`` axis of the mesh, everything else is
replicated, and the batch is split over ``data``.

Run with ``python examples/sharding.py``. It asks XLA for 8 host devices itself,
unless ``XLA_FLAGS`` is already set.
"""

from __future__ import annotations

import os

# Must happen before JAX first talks to a device.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import lensify as lf

SIZES = (16, 64, 64, 8)


def init(key: jax.Array) -> dict[str, Any]:
    layers = []
    for n_in, n_out in itertools.pairwise(SIZES):
        key, k_w = jax.random.split(key)
        layers.append(
            {
                "weight": jax.random.normal(k_w, (n_out, n_in)) / np.sqrt(n_in),
                "bias": jnp.zeros(n_out),
            }
        )
    return {"layers": layers}


def wrap(params: dict[str, Any]) -> dict[str, Any]:
    """Weight-normalise the hidden weights, keep a positive bias, freeze the read-out."""
    first, middle, last = params["layers"]
    return {
        "layers": [
            {"weight": lf.WeightNormalization(first["weight"]), "bias": first["bias"]},
            {
                "weight": lf.WeightNormalization(middle["weight"]),
                "bias": lf.Parameterize(jax.nn.softplus, jnp.full(middle["bias"].shape, -1.0)),
            },
            lf.NonTrainable(last),
        ]
    }


def forward(params: dict[str, Any], x: jax.Array) -> jax.Array:
    *hidden, last = params["layers"]
    for layer in hidden:
        x = jax.nn.gelu(x @ layer["weight"].T + layer["bias"])
    return x @ last["weight"].T + last["bias"]


def loss(model: dict[str, Any], x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((forward(lf.unwrap(model), x) - y) ** 2)


def main() -> None:
    print(f"{jax.device_count()} devices: {jax.devices()[0].platform}")
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    rows = NamedSharding(mesh, P("model"))
    replicated = NamedSharding(mesh, P())
    batch = NamedSharding(mesh, P("data"))

    model = wrap(init(jax.random.key(0)))

    # An optic picks the 2-D leaves; its mask becomes a tree of shardings.
    matrices = lf.at.leaves().where(lambda x: jnp.ndim(x) == 2)
    shardings = jax.tree_util.tree_map(
        lambda selected: rows if selected else replicated, matrices.mask(model)
    )
    for path in matrices.paths(model):
        print(f"  shard rows of {jax.tree_util.keystr(tuple(path))}")
    model = jax.device_put(model, shardings)

    def step(model: dict[str, Any], x: jax.Array, y: jax.Array) -> tuple[Any, jax.Array]:
        value, grads = jax.value_and_grad(loss)(model, x, y)
        model = jax.tree_util.tree_map(lambda p, g: p - 0.05 * g, model, grads)
        return model, value

    train = jax.jit(
        step,
        in_shardings=(shardings, batch, batch),
        out_shardings=(shardings, replicated),
    )

    key_x, key_t = jax.random.split(jax.random.key(1))
    x = jax.random.normal(key_x, (256, SIZES[0]))
    target = init(key_t)
    y = forward(target, x)  # learn a fixed random network
    x, y = jax.device_put(x, batch), jax.device_put(y, batch)

    for i in range(201):
        # One step at a time: with many 8-device steps queued at once, XLA's CPU
        # collectives can stall on a machine with fewer cores than devices.
        model, value = jax.block_until_ready(train(model, x, y))
        if i % 50 == 0:
            print(f"step {i:3d}  loss {float(value):.4f}")

    weight = model["layers"][0]["weight"]
    spec = weight.weight.sharding.spec
    print(f"first weight is still {type(weight).__name__}, its weight sharded as {spec}")
    unwrapped = jax.jit(lf.unwrap)(model)
    print(
        f"unwrapped first weight: shape {unwrapped['layers'][0]['weight'].shape}, sharded as "
        f"{unwrapped['layers'][0]['weight'].sharding.spec}"
    )


if __name__ == "__main__":
    main()
