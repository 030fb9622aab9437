"""lensify in one minute: constrained, frozen and weight-normalised parameters.

A tiny two-layer regression network, scaled by a positive ``scale``:

* ``scale`` must stay positive: it is ``softplus`` of a raw parameter;
* every weight matrix is weight-normalised, by one optic call, without changing
  what the model computes;
* every bias is frozen at its random initial value, by another optic call.

Training uses nothing but ``jax.grad`` and a hand-written SGD step: wrappers are
ordinary pytree nodes, so no filtering is needed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

import lensify as lf

STEPS = 400
LEARNING_RATE = 0.05


def make_data(key: jax.Array, n: int = 256) -> tuple[jax.Array, jax.Array]:
    kx, kw, kn = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, 3))
    true_w = jax.random.normal(kw, (3,))
    y = 2.0 * jnp.sin(x @ true_w) + 0.5 + 0.05 * jax.random.normal(kn, (n,))
    return x, y


def init_model(key: jax.Array) -> dict[str, Any]:
    k1, k2, k3, k4 = jax.random.split(key, 4)
    model = {
        "scale": lf.Parameterize(jax.nn.softplus, lf.inv_softplus(jnp.array(1.0))),
        "layers": [
            {"weight": jax.random.normal(k1, (16, 3)) / 2, "bias": jax.random.normal(k2, (16,))},
            {"weight": jax.random.normal(k3, (1, 16)) / 4, "bias": jax.random.normal(k4, (1,))},
        ],
    }
    # Two lines: weight-normalise every weight matrix, freeze every bias.
    model = lf.at["layers"].each()["weight"].wrap(model, lf.WeightNormalization)
    model = lf.non_trainable(model, where=lf.at["layers"].each()["bias"])
    return model


def predict(params: dict[str, Any], x: jax.Array) -> jax.Array:
    first, second = params["layers"]
    hidden = jnp.tanh(x @ first["weight"].T + first["bias"])
    return params["scale"] * (hidden @ second["weight"].T + second["bias"])[:, 0]


def loss(model: dict[str, Any], x: jax.Array, y: jax.Array) -> jax.Array:
    params = lf.unwrap(model)  # every wrapper replaced by its value
    return jnp.mean((predict(params, x) - y) ** 2)


@jax.jit
def sgd_step(model: dict[str, Any], x: jax.Array, y: jax.Array) -> tuple[Any, jax.Array]:
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
    biases_moved = max(
        float(jnp.max(jnp.abs(a["bias"] - b["bias"])))
        for a, b in zip(after["layers"], before["layers"], strict=True)
    )
    print(f"scale = {float(after['scale']):.3f} (positive: {bool(after['scale'] > 0)})")
    print(f"frozen biases moved by {biases_moved:.1e}")
    print(f"weight row norms equal the learned scales: {_row_norms_match(model)}")
    print("\nWhat each parameter is:")
    print(lf.describe(model))
    assert after["scale"] > 0 and biases_moved == 0.0


def _row_norms_match(model: dict[str, Any]) -> bool:
    checks = []
    for weight_norm in lf.at["layers"].each()["weight"].get_all(model):
        rows = jnp.linalg.norm(lf.unwrap(weight_norm), axis=-1, keepdims=True)
        checks.append(bool(jnp.allclose(rows, lf.unwrap(weight_norm.scale), rtol=1e-5)))
    return all(checks)


if __name__ == "__main__":
    main()
