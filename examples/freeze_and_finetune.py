"""Freeze a pretrained block with ``non_trainable`` on an optic, fine-tune the rest.

1. Pretrain a small MLP on task A.
2. Freeze its body (the first two layers) in one call:

       model = lf.non_trainable(pretrained, where=BODY)   # BODY = lf.at.layers[:2]

3. Fine-tune on task B with ``optax.adamw``. ``NonTrainable`` stops the gradient, and the
   optic's mask keeps the frozen weights out of the weight decay as well (decoupled
   weight decay would otherwise shrink them with a zero gradient).
4. Check that the body did not move by a single bit while the head trained.

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
PRETRAIN_STEPS = 40 if SMALL else 1500
FINETUNE_STEPS = 40 if SMALL else 1500

BODY = lf.at.layers[:2]  # the feature extractor: frozen for fine-tuning
HEAD = lf.at.layers[-1]


class MLP(eqx.Module):
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


def make_task(key: jax.Array, sign: float, n: int = 256) -> tuple[jax.Array, jax.Array]:
    x = jax.random.uniform(key, (n, 2), minval=-2.0, maxval=2.0)
    y = jnp.sin(2.0 * x[:, :1]) + sign * jnp.cos(x[:, 1:])
    return x, y


def loss(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((jax.vmap(lf.unwrap(model))(x) - y) ** 2)


def fit(
    model: MLP,
    optimiser: optax.GradientTransformation,
    task: tuple[jax.Array, jax.Array],
    steps: int,
    label: str,
) -> MLP:
    state = optimiser.init(model)

    @jax.jit
    def step(model: MLP, state: optax.OptState) -> tuple[MLP, optax.OptState, jax.Array]:
        value, grads = jax.value_and_grad(loss)(model, *task)
        updates, state = optimiser.update(grads, state, model)
        return optax.apply_updates(model, updates), state, value

    for i in range(steps + 1):
        model, state, value = step(model, state)
        if i % max(1, steps // 3) == 0:
            print(f"{label:>9}  step {i:5d}  loss {float(value):.5f}")
    return model


def main() -> None:
    key_a, key_b, key_model = jax.random.split(jax.random.key(0), 3)
    task_a, task_b = make_task(key_a, +1.0), make_task(key_b, -1.0)

    pretrained = fit(
        MLP([2, 32, 32, 1], key=key_model), optax.adam(1e-2), task_a, PRETRAIN_STEPS, "pretrain"
    )

    model = lf.non_trainable(pretrained, where=BODY)
    print(lf.count_parameters(model))

    def not_frozen(params: MLP) -> MLP:
        return jax.tree_util.tree_map(lambda frozen: not frozen, BODY.mask(params))

    optimiser = optax.adamw(1e-2, weight_decay=1e-2, mask=not_frozen)
    print(f"task B loss before fine-tuning: {float(loss(model, *task_b)):.5f}")
    model = fit(model, optimiser, task_b, FINETUNE_STEPS, "fine-tune")

    body_before = lf.unwrap(BODY.get_all(pretrained))  # a slice is a traversal: get_all
    body_after = lf.unwrap(BODY.get_all(model))
    same = jax.tree_util.tree_map(lambda a, b: bool(jnp.array_equal(a, b)), body_before, body_after)
    head_moved = float(jnp.max(jnp.abs(HEAD.weight.get(model) - HEAD.weight.get(pretrained))))
    print(f"frozen body unchanged, bit for bit: {all(jax.tree_util.tree_leaves(same))}")
    print(f"head weight moved by up to {head_moved:.3f}")
    assert all(jax.tree_util.tree_leaves(same)) and head_moved > 0


if __name__ == "__main__":
    main()
