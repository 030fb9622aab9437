"""Checkpoints with orbax: the standard checkpointer, and lensify.checkpoint on top of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lensify as lf
from lensify.constraints import CATALOGUE

ocp = pytest.importorskip("orbax.checkpoint")


def _x() -> jax.Array:
    return jnp.array([[0.5, 1.5, 0.25], [2.0, 0.75, 1.0]])


def _softplus_of_sum(a: jax.Array, b: jax.Array) -> jax.Array:
    return jax.nn.softplus(a + b)


# Every built-in wrapper, every catalogued constraint and some nested stacks, each
# built from concrete values.
WRAPPERS: dict[str, Callable[[], Any]] = {
    "non_trainable": lambda: lf.NonTrainable(_x()),
    "parameterize_function": lambda: lf.Parameterize(jnp.exp, _x()),
    "parameterize_kwargs": lambda: lf.Parameterize(_softplus_of_sum, _x(), b=jnp.ones(3)),
    "parameterize_lambda": lambda: lf.Parameterize(lambda a: a**2, _x()),
    "weight_normalization": lambda: lf.WeightNormalization(_x()),
    "increasing_on_interval": lambda: lf.RealToIncreasingOnInterval(
        jnp.zeros((2, 3)), (0.0, 1.0), min_width=0.1, include_endpoints="both"
    ),
    **{
        entry.name: (lambda entry=entry: entry.build(entry.example((2, *entry.event_shape(3)))))
        for entry in CATALOGUE
    },
    "stack_frozen_weight_norm_of_positive": lambda: lf.NonTrainable(
        lf.WeightNormalization(lf.positive(_x()))
    ),
    "stack_parameterize_of_interval": lambda: lf.Parameterize(
        jnp.tanh, lf.interval(_x(), 0.0, 3.0)
    ),
    "stack_model": lambda: {
        "layers": [
            {"w": lf.WeightNormalization(_x()), "b": lf.non_trainable(jnp.zeros(2))},
            {"w": lf.positive(_x()), "b": None},
        ],
        "scale": lf.Parameterize(jax.nn.softplus, jnp.array(0.5)),
    },
}


def abstract(tree: Any) -> Any:
    """The tree with each array leaf replaced by its shape and dtype."""
    return jax.eval_shape(lambda t: t, tree)


def assert_same_tree(restored: Any, tree: Any) -> None:
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(tree)
    pairs = zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(tree), strict=True)
    for got, want in pairs:
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_hoisted_function_leaves_no_empty_child() -> None:
    # orbax names every leaf and every empty node (None included) by its key path:
    # a function kept in the structure must not leave a None child behind.
    tree = lf.Parameterize(jnp.exp, jnp.ones(2))
    leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: x is None)
    assert [jax.tree_util.keystr(path) for path, _ in leaves] == [".args[0]"]


def test_hoisted_function_survives_a_map_over_empty_nodes() -> None:
    tree = lf.Parameterize(jnp.exp, jnp.ones(2), scale=None)
    names = jax.tree_util.tree_map_with_path(
        lambda path, _: jax.tree_util.keystr(path), tree, is_leaf=lambda x: x is None
    )
    assert names.fn is jnp.exp
    assert names.args == (".args[0]",)
    assert names.kwargs == {"scale": ".kwargs['scale']"}


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_orbax_standard_checkpointer_round_trip(name: str, tmp_path: Path) -> None:
    tree = WRAPPERS[name]()
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "ckpt", tree)
        checkpointer.wait_until_finished()
        restored = checkpointer.restore(tmp_path / "ckpt", abstract(tree))
    assert_same_tree(restored, tree)
    assert_same_tree(lf.unwrap(restored), lf.unwrap(tree))
