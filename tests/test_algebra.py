"""The wrapper algebra: fold, describe, count_parameters, simplify, and its laws.

Trees come from :mod:`lensify.testing`, the strategies lensify ships to users.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lensify as lf
import lensify.testing as lt
from lensify import _tree
from lensify.algebra import Composed, ParameterCounts, unwrap_algebra

FAST = settings(max_examples=30, deadline=None)
ELEMENTWISE = st.sampled_from([jnp.exp, jnp.tanh, jax.nn.softplus, jnp.sin, lf.identity])


def _float_leaves(tree: Any) -> list[Any]:
    return [x for x in jax.tree_util.tree_leaves(tree) if lt.is_float_array(x)]


# -------------------------------------------------------------------------------- fold


@FAST
@given(lt.wrapped_trees())
def test_fold_with_the_unwrap_algebra_is_unwrap(tree: Any) -> None:
    assert _tree.tree_equal(lf.fold(tree, unwrap_algebra), lf.unwrap(tree))


@FAST
@given(lt.pytrees())
def test_fold_of_a_wrapper_free_tree_is_the_same_object(tree: Any) -> None:
    assert lf.fold(tree, lambda w: 0) is tree


@FAST
@given(lt.wrapped_trees())
def test_fold_with_the_rebuild_algebra_is_the_identity(tree: Any) -> None:
    assert _tree.tree_equal(lf.fold(tree, lambda w: w), tree)


@FAST
@given(lt.wrapped_trees())
def test_fold_hands_the_algebra_wrappers_with_folded_children(tree: Any) -> None:
    seen: list[Any] = []

    def algebra(wrapper: Any) -> str:
        children = [child for _, child in _tree.children(wrapper) or []]
        assert not lf.contains_unwrappables(children)
        seen.append(wrapper)
        return "folded"

    result = lf.fold(tree, algebra)
    assert not lf.contains_unwrappables(result)
    wrappers = lf.at.instances_of(lf.AbstractUnwrappable).get_all(tree)
    assert len(seen) >= len(wrappers)


def test_fold_visits_innermost_first() -> None:
    tree = lf.NonTrainable(lf.Parameterize(jnp.exp, lf.WeightNormalization(jnp.ones((2, 2)))))
    order: list[str] = []
    lf.fold(tree, lambda w: order.append(type(w).__name__) or w)
    assert order == ["Parameterize", "WeightNormalization", "Parameterize", "NonTrainable"]


def test_fold_does_not_mutate_its_input() -> None:
    inner = lf.Parameterize(jnp.exp, jnp.zeros(2))
    tree = {"a": [inner]}
    lf.fold(tree, lambda w: 1.0)
    assert tree["a"][0] is inner


# ---------------------------------------------------------------------------- describe


def test_describe_a_model() -> None:
    model = [
        {"weight": lf.WeightNormalization(jnp.ones((3, 2))), "bias": jnp.zeros(3)},
        {"scale": lf.Parameterize(jax.nn.softplus, lf.NonTrainable(jnp.ones(2))), "n": 3},
    ]
    assert str(lf.describe(model)).splitlines() == [
        "[0]['bias']: f32[3]",
        "[0]['weight']: WeightNormalization(scale=Parameterize(softplus))",
        "[1]['n']: int",
        "[1]['scale']: Parameterize(softplus, NonTrainable)",
    ]


def test_describe_records_and_attribute_paths() -> None:
    tree = lt.TreePair(
        left=np.ones(2, np.float32), right=lf.NonTrainable({"w": lf.Parameterize(jnp.exp, 1.0)})
    )
    lines = str(lf.describe(tree)).splitlines()
    assert lines == [".left: f32[2]", ".right: NonTrainable(tree['w']=Parameterize(exp))"]


def test_describe_keyword_arguments_and_compositions() -> None:
    x = jnp.ones(2)
    tree = lf.Parameterize(
        jax.nn.leaky_relu, lf.NonTrainable(x), negative_slope=lf.NonTrainable(0.1)
    )
    assert str(lf.describe(tree)) == (
        "<root>: Parameterize(leaky_relu, NonTrainable, negative_slope=NonTrainable)"
    )
    composed = lf.simplify(lf.Parameterize(jnp.exp, lf.Parameterize(jnp.tanh, x)))
    assert str(lf.describe(composed)) == "<root>: Parameterize(exp ∘ tanh)"


def test_describe_is_structured() -> None:
    described = lf.describe({"w": lf.WeightNormalization(jnp.ones((2, 2))), "b": jnp.ones(2)})
    assert [e.stack is None for e in described.entries] == [True, False]
    (entry,) = described.wrapped
    assert entry.path == (jax.tree_util.DictKey("w"),)
    assert entry.stack is not None and entry.stack.wrapper == "WeightNormalization"
    assert "WeightNormalization" in repr(described)


@FAST
@given(lt.wrapped_trees())
def test_describe_has_one_entry_per_leaf_or_outermost_wrapper(tree: Any) -> None:
    described = lf.describe(tree)
    expected = jax.tree_util.tree_leaves(tree, is_leaf=lf.is_unwrappable)
    assert len(described.entries) == len(expected)
    wrapped = [x for x in expected if lf.is_unwrappable(x)]
    assert [e.stack.wrapper for e in described.wrapped] == [type(w).__name__ for w in wrapped]


# -------------------------------------------------------------------- count_parameters


def test_count_parameters() -> None:
    model = {
        "w": lf.WeightNormalization(jnp.ones((3, 2))),
        "emb": lf.non_trainable(jnp.ones((4, 2))),
        "frozen_wn": lf.NonTrainable(lf.WeightNormalization(jnp.ones((1, 2)))),
        "steps": jnp.arange(3),
        "lr": 0.1,
    }
    counts = lf.count_parameters(model)
    assert (counts.trainable, counts.frozen, counts.total) == (9, 11, 20)


@FAST
@given(lt.pytrees())
def test_freezing_everything_moves_every_parameter_to_frozen(tree: Any) -> None:
    total = sum(int(np.size(x)) for x in _float_leaves(tree))
    assert lf.count_parameters(tree) == lf.algebra.ParameterCounts(trainable=total)
    assert lf.count_parameters(lf.NonTrainable(tree)).frozen == total
    assert lf.count_parameters(lf.non_trainable(tree)).frozen == total


@FAST
@given(lt.wrapped_trees())
def test_count_parameters_counts_every_raw_float_element_once(tree: Any) -> None:
    total = sum(int(np.size(x)) for x in _float_leaves(tree))
    assert lf.count_parameters(tree).total == total


# ---------------------------------------------------------------------------- simplify


def test_simplify_merges_nested_non_trainables() -> None:
    x = jnp.ones(2)
    assert _tree.tree_equal(lf.simplify(lf.NonTrainable(lf.NonTrainable(x))), lf.NonTrainable(x))
    deep = lf.NonTrainable({"a": [lf.NonTrainable(x)], "b": lf.NonTrainable(lf.NonTrainable(x))})
    assert _tree.tree_equal(lf.simplify(deep), lf.NonTrainable({"a": [x], "b": x}))


def test_simplify_drops_non_trainable_of_arrayless_trees() -> None:
    assert lf.simplify(lf.NonTrainable((1.0, "s", None))) == (1.0, "s", None)
    kept = lf.NonTrainable(np.ones(2))
    assert lf.simplify(kept) is kept


def test_simplify_drops_identity_parameterize() -> None:
    x = jnp.ones(2)
    assert lf.simplify(lf.Parameterize(lf.identity, x)) is x
    other_identity = lf.Parameterize(lambda v: v, x)
    assert lf.simplify(other_identity) is other_identity


def test_simplify_composes_single_argument_parameterizes() -> None:
    x = jnp.ones(2)
    chain = lf.Parameterize(jnp.exp, lf.Parameterize(jnp.tanh, lf.Parameterize(jnp.sin, x)))
    simple = lf.simplify(chain)
    assert _tree.tree_equal(simple, lf.Parameterize(lf.compose(jnp.exp, jnp.tanh, jnp.sin), x))
    assert simple.fn == Composed(jnp.exp, Composed(jnp.tanh, jnp.sin))


def test_simplify_leaves_multi_argument_and_keyword_parameterizes_alone() -> None:
    x = jnp.ones(2)
    with_kwargs = lf.Parameterize(
        jnp.exp, lf.Parameterize(jax.nn.leaky_relu, x, negative_slope=0.1)
    )
    two_args = lf.Parameterize(jnp.exp, lf.Parameterize(jnp.multiply, x, 2.0))
    assert lf.simplify(with_kwargs) is with_kwargs
    assert lf.simplify(two_args) is two_args


def test_simplify_merges_what_removing_an_inner_non_trainable_exposes() -> None:
    x = jnp.ones(2)
    tree = lf.NonTrainable(lf.Parameterize(jnp.exp, lf.NonTrainable(lf.Parameterize(jnp.tanh, x))))
    expected = lf.NonTrainable(lf.Parameterize(lf.compose(jnp.exp, jnp.tanh), x))
    assert _tree.tree_equal(lf.simplify(tree), expected)


def test_simplified_composition_caches_under_jit() -> None:
    traces: list[int] = []

    @jax.jit
    def run(tree: Any) -> Any:
        traces.append(1)
        return lf.unwrap(tree)

    for value in (1.0, 2.0, 3.0):
        x = jnp.full(2, value)
        run(lf.simplify(lf.Parameterize(jnp.exp, lf.Parameterize(jnp.tanh, x))))
    assert len(traces) == 1


def test_compose_flattens_and_drops_identity() -> None:
    assert lf.compose() is lf.identity
    assert lf.compose(jnp.exp) is jnp.exp
    assert lf.compose(jnp.exp, lf.identity) is jnp.exp
    nested = lf.compose(lf.compose(jnp.exp, jnp.tanh), jnp.sin)
    assert nested == lf.compose(jnp.exp, lf.compose(jnp.tanh, jnp.sin))
    assert hash(nested) == hash(lf.compose(jnp.exp, jnp.tanh, jnp.sin))
    assert repr(nested) == "Composed(exp ∘ tanh ∘ sin)"


@FAST
@given(lt.wrapped_trees())
def test_simplify_preserves_the_value(tree: Any) -> None:
    assert lt.trees_close(lf.unwrap(lf.simplify(tree)), lf.unwrap(tree))


@FAST
@given(lt.wrapped_trees())
def test_simplify_keeps_the_raw_parameters(tree: Any) -> None:
    before = jax.tree_util.tree_leaves(tree)
    after = jax.tree_util.tree_leaves(lf.simplify(tree))
    assert len(before) == len(after)
    assert all(a is b for a, b in zip(before, after, strict=True))


@FAST
@given(lt.wrapped_trees())
def test_simplify_preserves_the_gradient(tree: Any) -> None:
    before, after = lt.probe_gradients(tree), lt.probe_gradients(lf.simplify(tree))
    assert lt.trees_close(after, before)


@FAST
@given(lt.wrapped_trees())
def test_simplify_is_idempotent(tree: Any) -> None:
    once = lf.simplify(tree)
    assert _tree.tree_equal(lf.simplify(once), once)


@FAST
@given(lt.float_arrays(), ELEMENTWISE, ELEMENTWISE)
def test_simplify_composition_law_value_and_gradient(
    x: jax.Array, f: Callable[[Any], Any], g: Callable[[Any], Any]
) -> None:
    tree = lf.Parameterize(f, lf.Parameterize(g, x))
    simple = lf.simplify(tree)
    assert not isinstance(simple, lf.Parameterize) or not isinstance(
        simple.args[0], lf.Parameterize
    )
    assert lt.trees_close(lf.unwrap(simple), lf.unwrap(tree))
    assert lt.trees_close(lt.probe_gradients(simple), lt.probe_gradients(tree))


@FAST
@given(lt.pytrees())
def test_simplify_non_trainable_law_value_and_gradient(tree: Any) -> None:
    nested = lf.NonTrainable(lf.NonTrainable(tree))
    simple = lf.simplify(nested)
    assert lt.trees_close(lf.unwrap(simple), lf.unwrap(nested))
    assert lt.trees_close(lt.probe_gradients(simple), lt.probe_gradients(nested))


# ------------------------------------------------------------------ laws of the wrappers


@FAST
@given(lt.float_arrays(), ELEMENTWISE)
def test_non_trainable_commutes_with_parameterize(x: jax.Array, f: Callable[[Any], Any]) -> None:
    outside = lf.NonTrainable(lf.Parameterize(f, x))
    inside = lf.Parameterize(f, lf.NonTrainable(x))
    assert lt.trees_close(lf.unwrap(outside), lf.unwrap(inside))
    for tree in (outside, inside):
        assert all(not np.any(np.asarray(g)) for g in lt.probe_gradients(tree))


@FAST
@given(lt.weight_normalizations())
def test_weight_normalization_row_norms_equal_the_scale(wrapper: lf.WeightNormalization) -> None:
    value = lf.unwrap(wrapper)
    norms = jnp.linalg.norm(value, axis=-1, keepdims=True)
    assert lt.trees_close(norms, lf.unwrap(wrapper.scale), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("factory", [lf.NonTrainable, lf.non_trainable])
def test_wrap_law_for_value_preserving_factories(factory: Callable[[Any], Any]) -> None:
    @FAST
    @given(st.data())
    def check(data: st.DataObject) -> None:
        tree = data.draw(lt.pytrees(), label="tree")
        optic = data.draw(lt.optics_for(tree), label="optic")
        assert lt.trees_close(lf.unwrap(optic.wrap(tree, factory)), tree)

    check()


def test_count_parameters_counts_bfloat16_leaves() -> None:
    tree = {
        "w": jnp.ones((2, 3), jnp.bfloat16),
        "frozen": lf.NonTrainable(jnp.ones(4, jnp.bfloat16)),
    }
    assert lf.count_parameters(tree) == lf.algebra.ParameterCounts(trainable=6, frozen=4)


def test_describe_prng_key_arrays() -> None:
    tree = {"key": jax.random.key(0), "keys": jax.random.split(jax.random.key(1), 3)}
    lines = str(lf.describe(tree)).splitlines()
    assert lines == ["['key']: key<fry>[]", "['keys']: key<fry>[3]"]


def test_count_parameters_skips_prng_keys() -> None:
    assert lf.count_parameters({"key": jax.random.key(0)}) == ParameterCounts()


def test_simplify_keeps_non_trainable_around_abstract_leaves() -> None:
    abstract = jax.ShapeDtypeStruct((2, 3), jnp.float32)
    tree = lf.NonTrainable(abstract)
    assert lf.simplify(tree) == tree
    nested = lf.NonTrainable(lf.NonTrainable(abstract))
    assert lf.simplify(nested) == tree


def test_count_parameters_of_an_abstract_model() -> None:
    model = {
        "w": jax.ShapeDtypeStruct((2, 3), jnp.float32),
        "b": lf.NonTrainable(jax.ShapeDtypeStruct((3,), jnp.float16)),
        "steps": jax.ShapeDtypeStruct((), jnp.int32),
    }
    assert lf.count_parameters(model) == ParameterCounts(trainable=6, frozen=3)


def test_describe_an_abstract_model() -> None:
    model = {"w": jax.ShapeDtypeStruct((2, 3), jnp.float32), "n": jax.ShapeDtypeStruct((), "int8")}
    assert str(lf.describe(model)).splitlines() == ["['n']: i8[]", "['w']: f32[2,3]"]


def test_describe_a_wrapper_as_fn() -> None:
    tree = lf.Parameterize(lf.NonTrainable(jnp.tanh), jnp.ones(2))
    assert str(lf.describe(tree)) == "<root>: Parameterize(fn=NonTrainable)"
