"""An MLP weight-normalised by one optic call, trained with optax and plain ``jax.grad``.

    model = lf.at.layers.each().weight.wrap(mlp, lf.WeightNormalization)

replaces the weight of every layer by ``scale * w / ‖w‖`` (one scale per output unit).
lensify's ``WeightNormalization`` starts its scale at the row norms of the weight, so the
wrapped model computes exactly what the plain one did; training then moves the
direction and the length of each row separately.

The plain MLP is trained alongside with the same optimiser, for comparison.

Set ``LENSIFY_EXAMPLE_SMALL=1`` for a quick run.
"""

from __future__ import annotations

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import lensify as lf

SMALL = os.environ.get("LENSIFY_EXAMPLE_SMALL") == "1"
STEPS = 50 if SMALL else 2000
WEIGHTS = lf.at.layers.each().weight


class MLP(eqx.Module):
    """tanh hidden layers and a linear output; the activation is code, not a field."""

    layers: list[eqx.nn.Linear]

    def __init__(self, sizes: list[int], *, key: jax.Array) -> None:
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = [
            eqx.nn.Linear(n_in, n_out, key=k)
            for n_in, n_out, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        ]

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = jnp.tanh(layer(x))
        return self.layers[-1](x)


def make_data(key: jax.Array, n: int = 256) -> tuple[jax.Array, jax.Array]:
    x = jax.random.uniform(key, (n, 1), minval=-3.0, maxval=3.0)
    return x, jnp.sin(2.0 * x) + 0.3 * x


def loss(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    predict = jax.vmap(lf.unwrap(model))  # unwrap once, then an ordinary equinox model
    return jnp.mean((predict(x) - y) ** 2)


def train(model: MLP, x: jax.Array, y: jax.Array, label: str) -> MLP:
    optimiser = optax.adam(1e-2)
    state = optimiser.init(model)

    @jax.jit  # plain jax.jit and jax.grad: the model holds arrays and wrappers only
    def step(model: MLP, state: optax.OptState) -> tuple[MLP, optax.OptState, jax.Array]:
        value, grads = jax.value_and_grad(loss)(model, x, y)
        updates, state = optimiser.update(grads, state, model)
        return optax.apply_updates(model, updates), state, value

    for i in range(STEPS + 1):
        model, state, value = step(model, state)
        if i % max(1, STEPS // 4) == 0:
            print(f"{label:>16}  step {i:5d}  loss {float(value):.5f}")
    return model


def main() -> None:
    key_data, key_model = jax.random.split(jax.random.key(0))
    x, y = make_data(key_data)
    mlp = MLP([1, 32, 32, 1], key=key_model)

    model = WEIGHTS.wrap(mlp, lf.WeightNormalization)
    print(f"wrapped {len(WEIGHTS.get_all(model))} weights with {WEIGHTS!r}")
    assert jnp.allclose(jax.vmap(lf.unwrap(model))(x), jax.vmap(mlp)(x), atol=1e-5)

    model = train(model, x, y, "weight-normed")
    plain = train(mlp, x, y, "plain")

    for i, layer in enumerate(model.layers):
        row_norms = jnp.linalg.norm(lf.unwrap(layer.weight), axis=-1, keepdims=True)
        scales = lf.unwrap(layer.weight.scale)
        assert jnp.allclose(row_norms, scales, rtol=1e-4)
        print(f"layer {i}: row norms equal the learned scales, mean {float(scales.mean()):.3f}")
    final = float(loss(model, x, y))
    print(f"final loss: weight-normed {final:.5f}, plain {float(loss(plain, x, y)):.5f}")
    assert isinstance(model.layers[0].weight, lf.WeightNormalization)
    if not SMALL:
        assert final < 0.01


if __name__ == "__main__":
    main()
