"""Wrapped trees survive pickle, equinox's leaf serialisation and optimiser updates."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import attrs
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lensify as lf
from lensify._tree import tree_equal


def double(x: jax.Array) -> jax.Array:
    return 2 * x


def affine(x: jax.Array, shift: jax.Array, *, scale: float = 1.0) -> jax.Array:
    return scale * x + shift


class Squared(lf.AbstractUnwrappable[jax.Array]):
    x: jax.Array

    def unwrap(self) -> jax.Array:
        return self.x**2


@attrs.frozen
class Power(lf.AbstractUnwrappable[jax.Array]):
    x: jax.Array
    power: int = lf.field(static=True, default=2)

    def unwrap(self) -> jax.Array:
        return self.x**self.power


def wrapped_tree() -> dict[str, Any]:
    """One of every built-in wrapper, two user wrappers, and nesting."""
    return {
        "weight": lf.WeightNormalization(jnp.arange(1.0, 7.0).reshape(3, 2)),
        "positive": lf.Parameterize(jax.nn.softplus, jnp.array([-1.0, 0.0, 2.0])),
        "numpy": lf.Parameterize(np.exp, np.zeros(2)),
        "kwargs": lf.Parameterize(affine, jnp.ones(2), jnp.zeros(2), scale=3.0),
        "frozen": lf.NonTrainable((1.0, "label", None, jnp.ones(2))),
        "knots": lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (0.0, 1.0), min_width=0.1, include_endpoints="both"
        ),
        "user": [Squared(jnp.ones(2)), Power(jnp.full(2, 2.0), 3)],
        "nested": lf.NonTrainable(lf.Parameterize(double, Squared(jnp.array(3.0)))),
        "plain": (jnp.arange(3), 4, None),
    }


def test_pickle_round_trip_gives_an_equal_tree() -> None:
    tree = wrapped_tree()
    restored = pickle.loads(pickle.dumps(tree))
    assert tree_equal(restored, tree)
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(tree)
    assert tree_equal(lf.unwrap(restored), lf.unwrap(tree))


def test_pickle_round_trip_of_every_protocol() -> None:
    tree = wrapped_tree()
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        assert tree_equal(pickle.loads(pickle.dumps(tree, protocol=protocol)), tree)


def test_unpickled_record_is_still_immutable() -> None:
    restored = pickle.loads(pickle.dumps(Squared(jnp.ones(2))))
    with pytest.raises(AttributeError):
        restored.x = jnp.zeros(2)  # type: ignore[misc]
    assert restored.x.tolist() == [1.0, 1.0]


def test_pickle_of_weight_normalization_keeps_the_identity_at_construction() -> None:
    w = jnp.array([[3.0, 4.0], [1.0, -2.0]])
    restored = pickle.loads(pickle.dumps(lf.WeightNormalization(w)))
    assert np.allclose(lf.unwrap(restored), w)


def test_unpickled_tree_unwraps_under_jit() -> None:
    tree = {k: v for k, v in wrapped_tree().items() if k not in ("frozen", "plain", "numpy")}
    restored = pickle.loads(pickle.dumps(tree))
    expected = lf.unwrap(tree)
    got = jax.jit(lf.unwrap)(restored)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(expected)
    for a, b in zip(
        jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected), strict=True
    ):
        assert np.allclose(a, b)


def wrapped_mlp(key: jax.Array) -> eqx.nn.MLP:
    mlp = eqx.nn.MLP(3, 2, width_size=4, depth=2, key=key)
    mlp = eqx.tree_at(lambda m: m.layers[0].weight, mlp, replace_fn=lf.WeightNormalization)
    mlp = eqx.tree_at(
        lambda m: m.layers[1].bias,
        mlp,
        replace_fn=lambda b: lf.Parameterize(jax.nn.softplus, b),
    )
    return eqx.tree_at(lambda m: m.layers[2], mlp, replace_fn=lf.NonTrainable)


def test_equinox_leaf_serialisation_round_trips_a_wrapped_model(tmp_path: Path) -> None:
    model = wrapped_mlp(jax.random.key(0))
    path = tmp_path / "model.eqx"
    eqx.tree_serialise_leaves(path, model)
    like = wrapped_mlp(jax.random.key(1))
    assert not tree_equal(like, model)
    restored = eqx.tree_deserialise_leaves(path, like)
    assert tree_equal(restored, model)
    assert type(restored.layers[0].weight) is lf.WeightNormalization
    assert type(restored.layers[2]) is lf.NonTrainable
    x = jnp.ones(3)
    assert np.allclose(lf.unwrap(restored)(x), lf.unwrap(model)(x))


def test_equinox_leaf_serialisation_into_a_shape_only_skeleton(tmp_path: Path) -> None:
    model = wrapped_mlp(jax.random.key(0))
    path = tmp_path / "model.eqx"
    eqx.tree_serialise_leaves(path, model)
    # Unflatten never re-runs __init__, so wrappers rebuilt around shape structs,
    # which no validator would accept, are fine as a template.
    skeleton = eqx.filter_eval_shape(wrapped_mlp, jax.random.key(2))
    restored = eqx.tree_deserialise_leaves(path, skeleton)
    assert tree_equal(restored, model)


def loss(model: eqx.nn.MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    pred = jax.vmap(lf.unwrap(model))(x)
    return jnp.mean((pred - y) ** 2)


def wrapper_types(tree: Any, path: str = "") -> list[tuple[str, type]]:
    """Every wrapper in ``tree``, nested ones too, with its key path."""
    found = []
    if lf.is_unwrappable(tree):
        found.append((path, type(tree)))
    pairs, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is not tree)
    if len(pairs) == 1 and pairs[0][1] is tree:
        return found  # a leaf
    for keys, child in pairs:
        found += wrapper_types(child, path + jax.tree_util.keystr(keys))
    return found


def test_optax_update_keeps_every_wrapper() -> None:
    model = wrapped_mlp(jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    optimiser = optax.adam(1e-2)
    state = optimiser.init(params)
    x = jax.random.normal(jax.random.key(1), (8, 3))
    y = jnp.zeros((8, 2))

    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any]:
        grads = jax.grad(lambda p: loss(eqx.combine(p, static), x, y))(params)
        updates, state = optimiser.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    new_params = params
    for _ in range(3):
        new_params, state = step(new_params, state)
    new_model = eqx.combine(new_params, static)
    assert jax.tree_util.tree_structure(new_model) == jax.tree_util.tree_structure(model)
    assert wrapper_types(new_model) == wrapper_types(model)
    assert len(wrapper_types(model)) == 4  # WeightNormalization and its scale, two more
    # The trainable leaves moved, the frozen layer did not.
    assert not np.allclose(new_model.layers[0].weight.weight, model.layers[0].weight.weight)
    assert np.allclose(new_model.layers[2].tree.weight, model.layers[2].tree.weight)
    assert loss(new_model, x, y) < loss(model, x, y)


def test_optax_update_over_all_leaves_of_a_plain_wrapped_tree() -> None:
    tree = {
        "w": lf.WeightNormalization(jnp.ones((2, 3))),
        "b": lf.Parameterize(jax.nn.softplus, jnp.zeros(3)),
        "c": lf.NonTrainable(jnp.ones(3)),
    }
    optimiser = optax.sgd(0.1)
    state = optimiser.init(tree)
    grads = jax.grad(lambda t: sum(jnp.sum(v**2) for v in lf.unwrap(t).values()))(tree)
    updates, state = optimiser.update(grads, state, tree)
    new = optax.apply_updates(tree, updates)
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(tree)
    assert wrapper_types(new) == wrapper_types(tree)
    assert np.array_equal(new["c"].tree, tree["c"].tree)  # NonTrainable: zero gradient


def test_pickle_round_trip_of_constraints() -> None:
    tree = {
        "positive": lf.positive(jnp.array([0.5, 2.0])),
        "interval": lf.interval(jnp.full(2, 0.5), 0.0, 1.0),
        "simplex": lf.simplex(jnp.array([0.2, 0.3, 0.5])),
        "unit": lf.unit_vector(jnp.array([0.6, 0.8])),
        "symmetric": lf.symmetric(jnp.array([[2.0, 1.0], [1.0, 3.0]])),
        "cholesky": lf.cholesky_factor(jnp.array([[2.0, 0.0], [1.0, 3.0]])),
    }
    restored = pickle.loads(pickle.dumps(tree))
    assert tree_equal(restored, tree)
    assert tree_equal(lf.unwrap(restored), lf.unwrap(tree))
