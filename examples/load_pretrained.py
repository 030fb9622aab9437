"""Load plain pretrained weights into a weight-normalised model with frozen biases.

An equinox MLP is trained without any wrappers. A new model of the same shape has its
weights weight-normalised (each scale kept positive as ``softplus`` of a raw value) and
its biases frozen. One call,

    loaded = lf.rewrap(wrapped, pretrained)

sets every raw parameter of the new model, through its wrappers, so that it computes
exactly what the pretrained model computes. Fine-tuning then trains the weights'
directions and scales and leaves the biases as they were loaded.

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
PRETRAIN_STEPS = 50 if SMALL else 1500
FINETUNE_STEPS = 20 if SMALL else 500
WEIGHTS = lf.at.layers.each().weight
BIASES = lf.at.layers.each().bias


def make_data(key: jax.Array, n: int = 256) -> tuple[jax.Array, jax.Array]:
    x = jax.random.uniform(key, (n, 2), minval=-2.0, maxval=2.0)
    return x, jnp.sin(x[:, :1]) * jnp.cos(x[:, 1:])


def loss(model: eqx.nn.MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    predict = jax.vmap(lf.unwrap(model))  # a plain model comes back unchanged
    return jnp.mean((predict(x) - y) ** 2)


def train(model: eqx.nn.MLP, x: jax.Array, y: jax.Array, steps: int) -> eqx.nn.MLP:
    optimiser = optax.adam(3e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = optimiser.init(params)

    @jax.jit
    def step(params: eqx.nn.MLP, state: optax.OptState) -> tuple[eqx.nn.MLP, optax.OptState]:
        grads = jax.grad(lambda p: loss(eqx.combine(p, static), x, y))(params)
        updates, state = optimiser.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return eqx.combine(params, static)


def main() -> None:
    data_key, pretrain_key, fresh_key = jax.random.split(jax.random.key(0), 3)
    x, y = make_data(data_key)

    # 1. A model trained without wrappers.
    pretrained = eqx.nn.MLP(2, 1, width_size=32, depth=2, activation=jnp.tanh, key=pretrain_key)
    pretrained = train(pretrained, x, y, PRETRAIN_STEPS)
    print(f"pretrained loss                  {loss(pretrained, x, y):.5f}")

    # 2. The model to fine-tune: same shape, weight-normalised weights, frozen biases.
    fresh = eqx.nn.MLP(2, 1, width_size=32, depth=2, activation=jnp.tanh, key=fresh_key)
    wrapped = lf.non_trainable(WEIGHTS.wrap(fresh, lf.WeightNormalization), where=BIASES)

    # 3. One call loads the pretrained values through every wrapper.
    loaded = lf.rewrap(wrapped, pretrained)
    ours, theirs = jax.vmap(lf.unwrap(loaded))(x), jax.vmap(pretrained)(x)
    gap = float(jnp.max(jnp.abs(ours - theirs)))
    assert gap < 1e-5, f"the loaded model differs from the pretrained one by {gap}"
    assert jax.tree_util.tree_structure(loaded) == jax.tree_util.tree_structure(wrapped)
    print(f"loaded loss                      {loss(loaded, x, y):.5f}  (max output gap {gap:.1e})")
    print(lf.describe(loaded))

    # 4. Fine-tuning moves the weights; the frozen biases stay as loaded.
    tuned = train(loaded, x, y, FINETUNE_STEPS)
    print(f"fine-tuned loss                  {loss(tuned, x, y):.5f}")
    for before, after in zip(BIASES.get_all(loaded), BIASES.get_all(tuned), strict=True):
        assert bool(jnp.array_equal(lf.unwrap(before), lf.unwrap(after)))
    assert not all(
        bool(jnp.array_equal(lf.unwrap(a), lf.unwrap(b)))
        for a, b in zip(WEIGHTS.get_all(loaded), WEIGHTS.get_all(tuned), strict=True)
    )
    assert loss(tuned, x, y) <= loss(loaded, x, y) * 1.01


if __name__ == "__main__":
    main()
