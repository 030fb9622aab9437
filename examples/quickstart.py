"""lensify in one minute: constrained, frozen and weight-normalised parameters.

A tiny regression model ``y = scale * tanh(x @ W) @ v + b`` where

* ``scale`` must stay positive: it is ``softplus`` of a raw parameter;
* ``W`` is weight-normalised, wrapped without changing what the model computes;
* ``v`` is a fixed random readout that must not train: frozen with ``non_trainable``.

Training uses nothing but ``jax.grad`` and a hand-written SGD step: wrappers are
ordinary pytree nodes, so no filtering is needed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import lensify as lf

STEPS = 300
LEARNING_RATE = 0.1


def make_data(key: jax.Array, n: int = 256) -> tuple[jax.Array, jax.Array]:
    kx, kw, kn = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, 3))
    true_w = jax.random.normal(kw, (3,))
    y = 2.0 * jnp.sin(x @ true_w) + 0.5 + 0.05 * jax.random.normal(kn, (n,))
    return x, y


def init_model(key: jax.Array) -> dict[str, object]:
    kw, kv = jax.random.split(key)
    weight = jax.random.normal(kw, (3, 16)) / jnp.sqrt(3.0)
    readout = jax.random.normal(kv, (16,)) / 4.0
    return {
        "scale": lf.Parameterize(jax.nn.softplus, lf.inv_softplus(jnp.array(1.0))),
        "weight": lf.WeightNormalization(weight.T),  # rows are output units
        "readout": lf.non_trainable(readout),
        "bias": jnp.zeros(()),
    }


def predict(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    hidden = jnp.tanh(x @ params["weight"].T)
    return params["scale"] * hidden @ params["readout"] + params["bias"]


def loss(model: dict[str, object], x: jax.Array, y: jax.Array) -> jax.Array:
    params = lf.unwrap(model)  # every wrapper replaced by its value
    return jnp.mean((predict(params, x) - y) ** 2)


@jax.jit
def sgd_step(model: dict[str, object], x: jax.Array, y: jax.Array) -> tuple[object, jax.Array]:
    value, grads = jax.value_and_grad(loss)(model, x, y)
    model = jax.tree_util.tree_map(lambda p, g: p - LEARNING_RATE * g, model, grads)
    return model, value


def main() -> None:
    key_data, key_model = jax.random.split(jax.random.key(0))
    x, y = make_data(key_data)
    model = init_model(key_model)
    before = lf.unwrap(model)

    for step in range(STEPS + 1):
        model, value = sgd_step(model, x, y)
        if step % 50 == 0:
            print(f"step {step:4d}  loss {float(value):.4f}")

    after = lf.unwrap(model)
    readout_moved = float(jnp.max(jnp.abs(after["readout"] - before["readout"])))
    print(f"scale = {float(after['scale']):.3f} (positive: {bool(after['scale'] > 0)})")
    print(f"frozen readout moved by {readout_moved:.1e}")
    print(f"weight row norms equal the learned scale: {_row_norms_match(model)}")
    assert after["scale"] > 0 and readout_moved == 0.0


def _row_norms_match(model: dict[str, object]) -> bool:
    weight_norm = model["weight"]
    assert isinstance(weight_norm, lf.WeightNormalization)
    rows = jnp.linalg.norm(lf.unwrap(weight_norm), axis=-1, keepdims=True)
    return bool(jnp.allclose(rows, lf.unwrap(weight_norm.scale), rtol=1e-5))


if __name__ == "__main__":
    main()
