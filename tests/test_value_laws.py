"""The value laws of lf.rewrap (DESIGN.md), and optic.unwrapped() as a lens, over
generated trees of wrappers that can be set by value, and for each built-in wrapper."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lensify as lf
import lensify.testing as lt

LAWS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TREES = lt.wrapped_trees(
    wrappers=lt.INVERTIBLE_WRAPPERS, max_depth=2, nodes=lt.ALL_NODES, leaves=lt.all_leaves()
)


@LAWS
@given(st.data())
def test_value_laws_over_generated_trees(data: st.DataObject) -> None:
    tree = data.draw(TREES, label="tree")
    v = data.draw(lt.nudged_values(tree), label="v")
    w = data.draw(lt.nudged_values(tree), label="w")
    lt.assert_value_laws(tree, v, w)


WRAPPERS = lt.wrapped_arrays(wrappers=lt.INVERTIBLE_WRAPPERS, max_depth=2).filter(lf.is_unwrappable)


def _children(node: Any) -> tuple[list[Any], Any]:
    return jax.tree_util.tree_flatten(node, is_leaf=lambda x: x is not node)


def _pushed(old: Any, new: Any) -> Any:
    # What rewrap makes of a child with_value returned: the very same object is kept,
    # anything else is a value set into the old child (through containers too).
    if new is old:
        return old
    if type(old) in (list, tuple, dict) and type(new) is type(old):
        olds, _ = _children(old)
        news, treedef = _children(new)
        return jax.tree_util.tree_unflatten(treedef, list(map(_pushed, olds, news)))
    return lf.rewrap(old, new)


@LAWS
@given(st.data())
def test_rewrap_of_a_wrapper_is_its_with_value(data: st.DataObject) -> None:
    # One inversion protocol: rewrap(w, v) is w.with_value(v), its values pushed
    # into w's children (exactly w.with_value(v) when they are raw arrays).
    wrapper = data.draw(WRAPPERS, label="wrapper")
    v = data.draw(lt.nudged_values(wrapper), label="v")
    target = wrapper.with_value(v)
    olds, _ = _children(wrapper)
    news, treedef = _children(target)
    expected = jax.tree_util.tree_unflatten(treedef, list(map(_pushed, olds, news)))
    got = lf.rewrap(wrapper, v)
    assert type(got) is type(wrapper)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(expected)
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(got), leaves(expected), strict=True):
        np.testing.assert_array_equal(a, b)


def _same(a: Any, b: Any, tolerance: tuple[float, float]) -> bool:
    same_structure = jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    return same_structure and lt.trees_close(a, b, rtol=tolerance[0], atol=tolerance[1])


@LAWS
@given(st.data())
def test_unwrapped_is_a_lens_for_every_lens(data: st.DataObject) -> None:
    tree = data.draw(TREES, label="tree")
    optic = data.draw(lt.lenses_for(tree), label="optic").unwrapped()
    stored = lf.at.from_path(optic.paths(tree)[0]).get(tree)
    v = data.draw(lt.nudged_values(stored), label="v")
    w = data.draw(lt.nudged_values(stored), label="w")
    tolerance = lt.value_tolerance(stored)
    assert _same(optic.set(tree, optic.get(tree)), tree, tolerance), "get-set"
    assert _same(optic.get(optic.set(tree, v)), v, tolerance), "set-get"
    assert _same(optic.set(optic.set(tree, v), w), optic.set(tree, w), tolerance), "set-set"


def _knots(x: jax.Array) -> lf.RealToIncreasingOnInterval:
    return lf.RealToIncreasingOnInterval(x, (-1.0, 2.0), min_width=0.05, include_endpoints="both")


BUILT_INS = {
    "non_trainable": lf.NonTrainable,
    "exp": lambda x: lf.Parameterize(jnp.exp, x),
    "softplus": lambda x: lf.Parameterize(jax.nn.softplus, x),
    "sigmoid": lambda x: lf.Parameterize(jax.nn.sigmoid, x),
    "identity": lambda x: lf.Parameterize(lf.identity, x),
    "weight_normalization": lf.WeightNormalization,
    "frozen_exp_weight_normalization": lambda x: lf.WeightNormalization(
        lf.NonTrainable(lf.Parameterize(jnp.exp, x))
    ),
    "increasing_on_interval": _knots,
}
MATRICES = lt.float_arrays([(1, 2), (2, 3)], nonzero=True)
VECTORS = lt.float_arrays([(2,), (4,)])


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_value_laws_for_each_builtin_wrapper(name: str) -> None:
    arrays = MATRICES if "weight_normalization" in name else None
    arrays = VECTORS if name == "increasing_on_interval" else arrays
    lt.check_value_laws(BUILT_INS[name], arrays=arrays, max_examples=10)


def _positive(x: jax.Array) -> jax.Array:
    return jnp.abs(x) + 0.25


def _unit(x: jax.Array) -> jax.Array:
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def _lower(x: jax.Array) -> jax.Array:
    return jnp.tril(x, -1) + jnp.diag(jnp.abs(jnp.diagonal(x)) + 0.25)


def _symmetric(x: jax.Array) -> jax.Array:
    return (x + x.T) / 2


def _interval(x: jax.Array) -> lf.Interval:
    return lf.interval(x, -3.0, 3.0)


SQUARES = lt.float_arrays([(2, 2), (3, 3)], nonzero=True)
# Each constraint with inputs inside its support; values are nudged raw parameters.
CONSTRAINTS = {
    "positive": (lf.positive, lt.float_arrays(nonzero=True).map(_positive)),
    "interval": (_interval, lt.float_arrays()),
    "simplex": (lf.simplex, lt.float_arrays([(3,), (2, 3)]).map(jax.nn.softmax)),
    "unit_vector": (lf.unit_vector, lt.float_arrays([(3,)], nonzero=True).map(_unit)),
    "cholesky_factor": (lf.cholesky_factor, SQUARES.map(_lower)),
    "symmetric": (lf.symmetric, SQUARES.map(_symmetric)),
}


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_value_laws_for_each_constraint(name: str) -> None:
    build, arrays = CONSTRAINTS[name]
    lt.check_value_laws(build, arrays=arrays, max_examples=10)
