"""The fold laws of ``unwrap`` (DESIGN.md), as hypothesis properties.

Trees are drawn from :mod:`lensify.testing`, the strategies lensify ships to users,
with every node and leaf kind they know: registered classes, ``Partial``,
``OrderedDict``, ``defaultdict``, equinox Modules, half-precision and complex arrays,
PRNG keys and ``ShapeDtypeStruct`` leaves, and half-precision arrays inside wrappers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lensify as lf
import lensify.testing as lt
from lensify import _tree
from lensify.algebra import unwrap_algebra

_FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Every example compiles: fewer of them.
_COMPILING = settings(_FAST, max_examples=10)

_PLAIN = lt.pytrees(nodes=lt.ALL_NODES, leaves=lt.all_leaves())
_WRAPPED = lt.wrapped_trees(
    nodes=lt.ALL_NODES, leaves=lt.all_leaves(), dtypes=(np.float32, *lt.LOW_PRECISION)
)


def _traceable(tree: Any) -> bool:
    return all(
        _tree.is_array(x) or type(x) in (int, float, bool) for x in jax.tree_util.tree_leaves(tree)
    )


def _traceable_leaf(x: Any) -> Any:
    # An abstract leaf becomes a concrete one of its shape; numbers stay, since a
    # wrapper may take them as arguments (a leaky_relu's slope).
    if isinstance(x, jax.ShapeDtypeStruct):
        return jnp.zeros(x.shape, x.dtype)
    return x if _tree.is_array(x) or type(x) in (int, float, bool) else None


@_FAST
@given(_PLAIN)
def test_identity_on_wrapper_free_trees(tree: Any) -> None:
    out = lf.unwrap(tree)
    assert out is tree
    assert lf.tree_equal(out, tree)


@_FAST
@given(_WRAPPED)
def test_idempotence(tree: Any) -> None:
    once = lf.unwrap(tree)
    assert lf.unwrap(once) is once
    assert lt.trees_close(lf.unwrap(once), once)


@_FAST
@given(_WRAPPED)
def test_no_wrappers_left(tree: Any) -> None:
    assert not lf.contains_unwrappables(lf.unwrap(tree))


def _every_wrapper(tree: Any) -> list[Any]:
    """Every wrapper node of ``tree``, nested ones included."""
    found = [tree] if lf.is_unwrappable(tree) else []
    for _, child in _tree.children(tree) or []:
        found += _every_wrapper(child)
    return found


@_FAST
@given(_WRAPPED)
def test_defining_equation(tree: Any) -> None:
    for wrapper in _every_wrapper(tree):
        pairs = _tree.children(wrapper)
        assert pairs is not None
        rebuilt = _tree.rebuild(wrapper, [lf.unwrap(child) for _, child in pairs])
        assert type(rebuilt) is type(wrapper)
        assert not lf.contains_unwrappables([child for _, child in _tree.children(rebuilt) or []])
        assert lt.trees_close(lf.unwrap(wrapper), lf.unwrap(rebuilt.unwrap()))


@_FAST
@given(_WRAPPED)
def test_unwrap_of_the_whole_is_unwrap_of_the_parts(tree: Any) -> None:
    leaves, treedef = jax.tree_util.tree_flatten(tree, is_leaf=lf.is_unwrappable)
    parts = jax.tree_util.tree_unflatten(treedef, [lf.unwrap(x) for x in leaves])
    assert lt.trees_close(lf.unwrap(tree), parts)


@_COMPILING
@given(
    lt.wrapped_trees(
        max_depth=2,
        nodes=lt.ALL_NODES,
        leaves=lt.all_leaves(),
        dtypes=(np.float32, *lt.LOW_PRECISION),
    )
)
def test_jit_equals_eager(tree: Any) -> None:
    if not _traceable(tree):
        tree = jax.tree_util.tree_map(_traceable_leaf, tree)
    assert lt.trees_close(jax.jit(lf.unwrap)(tree), lf.unwrap(tree))


def _exp_all(tree: Any) -> Any:
    return jax.tree_util.tree_map(jnp.exp, tree)


def _clip_all(tree: Any, *, low: float, high: float) -> Any:
    return jax.tree_util.tree_map(lambda v: jnp.clip(v, low, high), tree)


# Each constructor takes a float array with a last axis of 3 (or a tree holding one)
# and returns a wrapper around it that behaves the same for any such input.
_LAYERS: dict[str, Callable[[Any], Any]] = {
    "exp": lambda x: lf.Parameterize(_exp_all, x),
    "clip_kw": lambda x: lf.Parameterize(_clip_all, x, low=-1.0, high=1.0),
    "frozen": lambda x: lf.NonTrainable(x),
    "frozen_tree": lambda x: lf.NonTrainable({"x": x, "n": None, "s": 2}),
}
_ARRAY_LAYERS: dict[str, Callable[[Any], Any]] = {
    "weight_norm": lambda x: lf.WeightNormalization(jnp.stack([x + 3.0, x - 3.0])),
    "knots": lambda x: lf.RealToIncreasingOnInterval(
        x, (-1.0, 2.0), min_width=0.1, include_endpoints="both"
    ),
}


@st.composite
def _constructions(draw: st.DrawFn) -> Callable[[Any], Any]:
    """A function building nested wrappers around one array."""
    names = draw(st.lists(st.sampled_from(sorted(_LAYERS)), max_size=2))
    array_layer = draw(st.sampled_from([None, *sorted(_ARRAY_LAYERS)]))

    def build(x: Any) -> Any:
        out = _ARRAY_LAYERS[array_layer](x) if array_layer else x
        for name in names:
            out = _LAYERS[name](out)
        return {"w": out, "plain": x}

    return build


@_COMPILING
@given(
    _constructions(),
    st.sampled_from([(), (2,), (3, 2)]),
    st.integers(0, 2**31 - 1),
)
def test_vmap_construction_invariance(
    build: Callable[[Any], Any], batch: tuple[int, ...], seed: int
) -> None:
    x = jax.random.normal(jax.random.key(seed), (*batch, 3))
    build_batched, unwrap_batched = build, lf.unwrap
    for _ in batch:
        build_batched, unwrap_batched = jax.vmap(build_batched), jax.vmap(unwrap_batched)
    out = unwrap_batched(build_batched(x))
    first = (0,) * len(batch)
    at_first = jax.tree_util.tree_map(lambda v: v[first] if np.ndim(v) else v, out)
    assert lt.trees_close(at_first, lf.unwrap(build(x[first])))


@_FAST
@given(lt.pytrees(max_depth=2, nodes=lt.ALL_NODES, leaves=lt.all_leaves()))
def test_non_trainable_of_non_trainable(tree: Any) -> None:
    twice, once = lf.NonTrainable(lf.NonTrainable(tree)), lf.NonTrainable(tree)
    assert lt.trees_close(lf.unwrap(twice), lf.unwrap(once))
    gradients = lt.probe_gradients(twice)
    assert lt.trees_close(gradients, lt.probe_gradients(once))
    assert all(not np.any(np.asarray(g)) for g in gradients)


_ELEMENTWISE = [jnp.tanh, jnp.exp, jnp.negative, jnp.sin, jax.nn.softplus, lf.identity]


@_FAST
@given(lt.float_arrays(), st.sampled_from(_ELEMENTWISE), st.sampled_from(_ELEMENTWISE))
def test_parameterize_composes(x: Any, f: Callable[[Any], Any], g: Callable[[Any], Any]) -> None:
    nested = lf.Parameterize(f, lf.Parameterize(g, x))
    composed = lf.Parameterize(lambda v: f(g(v)), x)
    assert lt.trees_close(lf.unwrap(nested), lf.unwrap(composed))
    assert lt.trees_close(lt.probe_gradients(nested), lt.probe_gradients(composed))


class _Raises(lf.AbstractUnwrappable):
    """Raises on unwrapping: where the error notes of a walk are checked."""

    x: Any

    def unwrap(self) -> Any:
        raise ArithmeticError("raised on purpose")


def _folded(tree: Any) -> Any:
    return lf.fold(tree, unwrap_algebra)


@_FAST
@given(lt.wrapped_trees())
def test_fold_with_the_unwrap_algebra_equals_unwrap_in_value_and_structure(tree: Any) -> None:
    by_fold, by_unwrap = _folded(tree), lf.unwrap(tree)
    assert jax.tree_util.tree_structure(by_fold) == jax.tree_util.tree_structure(by_unwrap)
    assert lt.trees_close(by_fold, by_unwrap)


@_FAST
@given(lt.wrapped_trees(), st.data())
def test_fold_with_the_unwrap_algebra_equals_unwrap_in_error_notes(
    tree: Any, data: st.DataObject
) -> None:
    pairs, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lf.is_unwrappable)
    i = data.draw(st.integers(0, len(pairs)), label="position of the raising wrapper")
    if i == len(pairs):
        bad, path = _Raises(tree), "<root>"
    else:
        leaves = [leaf for _, leaf in pairs]
        leaves[i] = _Raises(leaves[i])
        bad = jax.tree_util.tree_unflatten(treedef, leaves)
        path = jax.tree_util.keystr(pairs[i][0]) or "<root>"
    notes = []
    for walk in (lf.unwrap, _folded):
        with pytest.raises(ArithmeticError, match="on purpose") as info:
            walk(bad)
        notes.append(info.value.__notes__)
    assert notes[0] == notes[1] == [f"at {path}: raised while unwrapping _Raises"]
