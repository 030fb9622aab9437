"""lensify.testing: the strategies draw what they promise, and the checkers catch bugs."""

from __future__ import annotations

import collections
import copy
import itertools
import pickle
import subprocess
import sys
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

import lensify as lf
import lensify.testing as lt
from lensify import _tree
from lensify.testing._trees import tree_strategy
from lensify.testing._wrappers import wrapped_tree_strategy

FAST = settings(max_examples=40, deadline=None)
# Finding an example is the test; shrinking it would only cost time.
FOUND = settings(phases=[Phase.generate], database=None, max_examples=2000)


def _depth(tree: Any) -> int:
    pairs = _tree.children(tree)
    if pairs is None:
        return 0
    return 1 + max((_depth(child) for _, child in pairs), default=0)


# ------------------------------------------------------------------------- strategies


def test_pytrees_are_valid_and_compare_equal_after_a_round_trip():
    @FAST
    @given(lt.pytrees())
    def check(tree: Any) -> None:
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        assert lf.tree_equal(jax.tree_util.tree_unflatten(treedef, leaves), tree)
        # A copy, not the tree itself: equal trees that share no node compare equal.
        assert lf.tree_equal(copy.deepcopy(tree), tree)

    check()


@FAST
@given(lt.pytrees(max_depth=2, max_children=2))
def test_pytrees_respect_depth_and_width(tree: Any) -> None:
    # None is an empty node, so it counts as one level.
    assert _depth(tree) <= 3
    assert len(jax.tree_util.tree_leaves(tree)) <= 4


def test_pytrees_draw_every_container_kind():
    kinds = (dict, list, tuple, lt.TreePair, lt.TreeRecord, type(None))
    for kind in kinds:
        find(lt.pytrees(), lambda t, k=kind: type(t) is k)


def test_pytrees_draw_jax_and_numpy_arrays_and_scalars():
    def leaf_types(tree: Any) -> set[type]:
        return {type(x) for x in jax.tree_util.tree_leaves(tree)}

    find(lt.pytrees(), lambda t: any(issubclass(k, jax.Array) for k in leaf_types(t)))
    find(lt.pytrees(), lambda t: np.ndarray in leaf_types(t))
    find(lt.pytrees(), lambda t: int in leaf_types(t))
    find(lt.pytrees(), lambda t: float in leaf_types(t))


WIDE = lt.pytrees(nodes=lt.ALL_NODES, leaves=lt.all_leaves())


@pytest.mark.parametrize(
    "kind",
    [
        lt.FlatNode,
        lt.ClassNode,
        jax.tree_util.Partial,
        collections.OrderedDict,
        collections.defaultdict,
        eqx.Module,
    ],
    ids=lambda k: k.__name__,
)
def test_pytrees_draw_every_user_node_kind(kind: type) -> None:
    find(WIDE, lambda t: isinstance(t, kind), settings=FOUND)


def test_user_nodes_name_their_children_as_jax_does():
    flat = find(WIDE, lambda t: isinstance(t, lt.FlatNode))
    keys = [path[0] for path, _ in jax.tree_util.tree_flatten_with_path(flat)[0]]
    assert all(isinstance(k, jax.tree_util.FlattenedIndexKey) for k in keys)
    module = find(WIDE, lambda t: isinstance(t, eqx.Module))
    assert module.label in ("p", "q")  # a static field: tree structure, not a leaf
    assert module.label not in jax.tree_util.tree_leaves(module)


def _is_dtype(dtype: Any) -> Any:
    return lambda x: isinstance(x, jax.Array) and x.dtype == dtype


@pytest.mark.parametrize(
    "is_kind",
    [
        _is_dtype(jnp.float16),
        _is_dtype(jnp.bfloat16),
        _is_dtype(jnp.complex64),
        lambda x: isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key),
        lambda x: isinstance(x, jax.ShapeDtypeStruct),
    ],
    ids=["float16", "bfloat16", "complex64", "prng_key", "ShapeDtypeStruct"],
)
def test_all_leaves_draw_every_unusual_kind(is_kind: Any) -> None:
    find(lt.all_leaves(), is_kind, settings=FOUND)


@FAST
@given(lt.pytrees())
def test_default_pytrees_draw_only_the_plain_kinds(tree: Any) -> None:
    # Existing calls keep drawing what they drew: the wider kinds are asked for.
    plain = (dict, list, tuple, lt.TreePair, lt.TreeRecord, type(None))
    nodes = lf.at.instances_of(*plain).get_all(tree)
    assert all(type(node) in plain for node in nodes)
    for leaf in jax.tree_util.tree_leaves(tree):
        assert type(leaf) in (int, float, np.ndarray) or leaf.dtype == jnp.float32


def test_wrapped_trees_draw_half_precision_inside_wrappers():
    strategy = lt.wrapped_trees(dtypes=lt.LOW_PRECISION)
    for dtype in lt.LOW_PRECISION:
        find(
            strategy,
            lambda t, d=dtype: lf.is_unwrappable(t) and getattr(lf.unwrap(t), "dtype", None) == d,
        )


def test_importing_without_hypothesis_says_to_install_the_extra():
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "try:\n"
        "    import lensify.testing\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert "pip install 'lensify[testing]'" in out.stdout
    assert "hypothesis" in out.stdout


def test_pytrees_custom_leaves():
    @FAST
    @given(lt.pytrees(leaves=st.just(7)))
    def check(tree: Any) -> None:
        assert all(x == 7 for x in jax.tree_util.tree_leaves(tree))

    check()


def test_wrapped_trees_nest_wrappers():
    def nested(tree: Any) -> bool:
        return any(
            lf.contains_unwrappables(_tree.children(w))
            for w in lf.at.instances_of(lf.AbstractUnwrappable).get_all(tree)
        )

    find(lt.wrapped_trees(), nested)
    for cls in (lf.Parameterize, lf.NonTrainable, lf.WeightNormalization):
        find(lt.wrapped_trees(), lambda t, c=cls: bool(lf.at.instances_of(c).get_all(t)))


class Square(lf.AbstractUnwrappable):
    x: jax.Array

    def unwrap(self) -> jax.Array:
        return self.x**2


def squares(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Square]:
    return st.builds(Square, inner)


def test_wrapped_trees_take_user_wrappers_and_nest_builtins_inside():
    strategy = lt.wrapped_trees(wrappers=[*lt.BUILTIN_WRAPPERS, squares])

    def square_around_builtin(tree: Any) -> bool:
        return any(lf.contains_unwrappables(s.x) for s in lf.at.instances_of(Square).get_all(tree))

    find(strategy, square_around_builtin)


@FAST
@given(lt.wrapped_trees())
def test_wrapped_trees_unwrap_to_finite_values(tree: Any) -> None:
    for leaf in jax.tree_util.tree_leaves(lf.unwrap(tree)):
        if _tree.is_array(leaf):
            assert np.isfinite(np.asarray(leaf)).all()


@FAST
@given(st.one_of(lt.wrapped_trees(), lt.pytrees(), st.from_type(lf.AbstractUnwrappable)))
def test_drawn_trees_round_trip_through_pickle(tree: Any) -> None:
    # Users checkpoint their trees; jax's own functions in them (jnp.tanh) included.
    assert lf.tree_equal(pickle.loads(pickle.dumps(tree)), tree)


@pytest.mark.parametrize("depth", [1, 3, 6])
def test_tree_strategies_print_short_however_deep(depth: int) -> None:
    # hypothesis prints the strategies a composite draws from while it shrinks;
    # nested plainly, that repr grew exponentially with the depth (117 kB at 3).
    assert len(repr(wrapped_tree_strategy(lt.BUILTIN_WRAPPERS, depth, 4, lt.ALL_NODES))) < 10_000
    assert len(repr(tree_strategy(depth, 4, None, lt.ALL_NODES))) < 10_000


def test_tree_strategies_are_built_once_per_argument_set():
    # Private builders: no public name shows whether a strategy was built again.
    assert wrapped_tree_strategy(lt.BUILTIN_WRAPPERS, 3, 3) is wrapped_tree_strategy(
        lt.BUILTIN_WRAPPERS, 3, 3
    )
    assert tree_strategy(3, 4, None, lt.ALL_NODES) is tree_strategy(3, 4, None, lt.ALL_NODES)


@pytest.mark.parametrize(
    "cls",
    [lf.Parameterize, lf.NonTrainable, lf.WeightNormalization, lf.RealToIncreasingOnInterval],
)
def test_from_type_draws_each_builtin_wrapper(cls: type) -> None:
    @settings(max_examples=10, deadline=None)
    @given(st.from_type(cls))
    def check(wrapper: Any) -> None:
        assert isinstance(wrapper, cls)
        assert not lf.contains_unwrappables(lf.unwrap(wrapper))

    check()


def test_from_type_of_the_base_class_draws_builtin_wrappers():
    find(st.from_type(lf.AbstractUnwrappable), lambda w: isinstance(w, lf.WeightNormalization))


def test_optics_for_draws_optics_that_apply():
    @FAST
    @given(st.data())
    def check(data: st.DataObject) -> None:
        tree = data.draw(st.one_of(lt.pytrees(), lt.wrapped_trees()), label="tree")
        optic = data.draw(lt.optics_for(tree), label="optic")
        assert len(optic.paths(tree)) == len(optic.get_all(tree))

    check()


def test_lenses_for_draws_single_focus_paths():
    @FAST
    @given(st.data())
    def check(data: st.DataObject) -> None:
        tree = data.draw(lt.pytrees(), label="tree")
        optic = data.draw(lt.lenses_for(tree), label="optic")
        assert len(optic.get_all(tree)) == 1

    check()


def test_traversals_for_draws_every_kind():
    tree = {"a": [jnp.ones((2, 2)), 1.0], "b": lt.TreePair(None, np.zeros(2))}
    reprs = [
        repr(find(lt.traversals_for(tree), lambda o, w=w: w in repr(o)))
        for w in (
            ".each()",
            ".leaves()",
            ".where(",
            ".instances_of(",
            " | ",
        )
    ]
    assert len(reprs) == 5


# ---------------------------------------------------------------------- trees_close


def test_trees_close_ignores_dtype_but_not_structure():
    assert lt.trees_close({"a": 1}, {"a": jnp.array(1.0)})
    assert not lt.trees_close({"a": 1.0}, {"a": 1.1})
    assert not lt.trees_close([1.0, None], [1.0])
    assert not lt.trees_close(jnp.ones(2), jnp.ones(3))


def test_trees_close_allows_a_few_steps_of_half_precision():
    assert lt.trees_close(jnp.array(1.0, jnp.bfloat16), jnp.array(1.0078125))
    assert lt.trees_close(jnp.array(1.0, jnp.float16), jnp.array(1.001))
    assert not lt.trees_close(jnp.array(1.0, jnp.float16), jnp.array(1.01))
    assert not lt.trees_close(jnp.array(1.0, jnp.float32), jnp.array(1.001))


def test_trees_close_compares_prng_keys_by_their_data():
    assert lt.trees_close({"k": jax.random.key(0)}, {"k": jax.random.key(0)})
    assert not lt.trees_close(jax.random.key(0), jax.random.key(1))
    assert not lt.trees_close(jax.random.key(0), jax.random.key_data(jax.random.key(0)))


def test_trees_close_compares_complex_values():
    assert lt.trees_close(jnp.array(1 + 2j), jnp.array(1 + 2j, jnp.complex64))
    assert not lt.trees_close(jnp.array(1 + 2j), jnp.array(1 - 2j))


# ----------------------------------------------------------------- wrapper law checker


def test_wrapper_laws_hold_for_parameterize():
    lt.check_wrapper_laws(lt.parameterizations(lt.float_arrays()), max_examples=15)


def test_wrapper_laws_hold_for_non_trainable_with_zero_gradient():
    lt.check_wrapper_laws(
        lt.non_trainables(lt.float_arrays()),
        gradient="zero",
        construct=lf.NonTrainable,
        arrays=lt.float_arrays(),
        max_examples=10,
    )


def test_wrapper_laws_hold_for_weight_normalization():
    lt.check_wrapper_laws(
        lt.weight_normalizations(),
        construct=lf.WeightNormalization,
        arrays=lt.float_arrays([(2, 3), (3, 2)], nonzero=True),
        max_examples=10,
    )


def _knots(x: jax.Array) -> lf.RealToIncreasingOnInterval:
    return lf.RealToIncreasingOnInterval(x, (0.0, 1.0), min_width=0.05, include_endpoints="both")


def test_wrapper_laws_hold_for_real_to_increasing_on_interval():
    lt.check_wrapper_laws(
        lt.increasing_on_intervals(),
        construct=_knots,
        arrays=lt.float_arrays([(3,), (2, 4)]),
        max_examples=10,
    )


def test_wrapper_laws_hold_for_a_user_wrapper_nested_among_builtins():
    lt.check_wrapper_laws(
        lt.wrapped_trees(wrappers=[*lt.BUILTIN_WRAPPERS, squares], max_depth=2),
        gradient=None,
        max_examples=15,
    )


class TracerSensitive(lf.AbstractUnwrappable):
    """Gives a different value under jax.jit: the bug 'jit equals eager' catches."""

    x: jax.Array

    def unwrap(self) -> jax.Array:
        return self.x + (1.0 if isinstance(self.x, jax.core.Tracer) else 0.0)


def test_wrapper_law_failure_names_jit_equals_eager_and_shows_the_tree():
    with pytest.raises(AssertionError, match="jit equals eager") as info:
        lt.check_wrapper_laws(st.builds(TracerSensitive, lt.float_arrays()), max_examples=5)
    assert "TracerSensitive(" in str(info.value)


_calls = itertools.count()


class Impure(lf.AbstractUnwrappable):
    """Gives a new value on every call: the defining equation catches it."""

    x: jax.Array

    def unwrap(self) -> jax.Array:
        return self.x + float(next(_calls))


def test_wrapper_law_failure_names_the_defining_equation():
    with pytest.raises(AssertionError, match="defining equation"):
        lt.check_wrapper_laws(st.builds(Impure, lt.float_arrays()), max_examples=5)


def test_wrapper_law_failure_names_the_gradient_law():
    with pytest.raises(AssertionError, match="gradient is zero"):
        lt.check_wrapper_laws(
            lt.parameterizations(lt.float_arrays()), gradient="zero", max_examples=5
        )
    with pytest.raises(AssertionError, match="gradient flows"):
        lt.check_wrapper_laws(
            lt.non_trainables(lt.float_arrays()), gradient="flows", max_examples=5
        )


def _batch_sensitive(x: jax.Array) -> lf.Parameterize[Any]:
    shift = 1.0 if isinstance(x, jax.core.Tracer) else 0.0
    return lf.Parameterize(jnp.add, x, shift)


def test_wrapper_law_failure_names_vmap_construction_invariance():
    with pytest.raises(AssertionError, match="vmap-construction invariance"):
        lt.check_wrapper_laws(
            st.builds(_batch_sensitive, lt.float_arrays()),
            construct=_batch_sensitive,
            arrays=lt.float_arrays(),
            max_examples=5,
        )


def test_wrapper_law_checker_needs_construct_and_arrays_together():
    with pytest.raises(ValueError, match="both construct and arrays"):
        lt.check_wrapper_laws(lt.weight_normalizations(), construct=lf.WeightNormalization)


def test_counter_example_is_shrunk():
    # The smallest tree that breaks the law is a lone wrapper of a 0-d array.
    with pytest.raises(AssertionError) as info:
        lt.check_wrapper_laws(
            lt.wrapped_trees(wrappers=[lambda inner: st.builds(TracerSensitive, inner)]),
            gradient=None,
            max_examples=50,
        )
    assert "tree: TracerSensitive(x=Array(0., dtype=float32))" in str(info.value)


# ------------------------------------------------------------------- optic law checkers


def test_lens_laws_hold_for_item_and_attribute_paths():
    dicts = st.fixed_dictionaries({"w": lt.pytrees(), "b": lt.pytrees()})
    lt.check_lens_laws(lf.at["w"], dicts, max_examples=20)
    pairs = st.builds(lt.TreePair, lt.pytrees(max_depth=1), st.lists(lt.pytrees(), min_size=1))
    lt.check_lens_laws(lf.at.right[0], pairs, max_examples=20)


class ForgetfulLens:
    """set ignores its value: the set-get law catches it."""

    def get(self, tree: Any) -> Any:
        return tree["w"]

    def set(self, tree: Any, value: Any) -> Any:
        return tree

    def __repr__(self) -> str:
        return "ForgetfulLens()"


def test_lens_law_failure_names_set_get():
    trees = st.fixed_dictionaries({"w": st.just(1.0)})
    with pytest.raises(AssertionError, match=r"set-get: get\(set\(t, v\)\) == v"):
        lt.check_lens_laws(ForgetfulLens(), trees, values=st.just(2.0), max_examples=5)


@pytest.mark.parametrize(
    "optic",
    [
        lf.at.leaves(),
        lf.at.each(),
        lf.at.instances_of(jax.Array, np.ndarray),
        lf.at.leaves().where(lt.is_float_array),
    ],
    ids=repr,
)
def test_traversal_laws_hold_for_structural_traversals(optic: Any) -> None:
    lt.check_traversal_laws(optic, lt.pytrees(), max_examples=20)


_LEAF_KINDS = [
    np.array(1.5, np.float32),
    np.ones((2, 3), np.float16),
    np.float32(1.5),
    np.float64(1.5),
    jnp.array(1.5),
    jnp.ones(2, jnp.float16),
    jnp.ones(2, jnp.bfloat16),
    1.5,
    3,
    None,
    "label",
]


@pytest.mark.parametrize("update", lt.DEFAULT_UPDATES, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "leaf", _LEAF_KINDS, ids=lambda x: f"{type(x).__name__}-{getattr(x, 'dtype', '')}"
)
def test_default_updates_keep_each_leafs_type_dtype_and_shape(leaf: Any, update: Any) -> None:
    new = update({"x": leaf})["x"]
    assert type(new) is type(leaf)
    assert np.shape(new) == np.shape(leaf)
    assert getattr(new, "dtype", None) == getattr(leaf, "dtype", None)


def test_default_updates_change_float_values():
    double, negate, shift = lt.DEFAULT_UPDATES[:3]
    assert double(1.5) == 3.0
    assert negate(np.array(1.5, np.float32)) == -1.5
    assert float(shift(jnp.ones(()))) == 2.0
    assert double(3) == 3  # ints are not floats: an int leaf stays as it is


@FAST
@given(st.one_of(lt.pytrees(), lt.wrapped_trees()), st.sampled_from(lt.DEFAULT_UPDATES))
def test_default_updates_keep_what_structural_optics_select(tree: Any, update: Any) -> None:
    updated = update(tree)
    for optic in (
        lf.at.instances_of(np.ndarray),
        lf.at.instances_of(jax.Array),
        lf.at.instances_of(float),
        lf.at.leaves().where(lt.is_float_array),
    ):
        assert optic.paths(updated) == optic.paths(tree)


class OverlappingTraversal:
    """Focuses on the root and on every leaf: disjointness catches it."""

    def get_all(self, tree: Any) -> list[Any]:
        return [tree, *lf.at.leaves().get_all(tree)]

    def paths(self, tree: Any) -> list[Any]:
        return [(), *lf.at.leaves().paths(tree)]

    def modify(self, tree: Any, fn: Any) -> Any:
        return lf.at.leaves().modify(tree, fn)

    def set(self, tree: Any, value: Any) -> Any:
        return lf.at.leaves().set(tree, value)


def test_traversal_law_failure_names_disjointness():
    trees = st.lists(st.just(1.0), min_size=1, max_size=2)
    with pytest.raises(AssertionError, match="disjointness"):
        lt.check_traversal_laws(OverlappingTraversal(), trees, max_examples=5)


class SlightlyOff(lf.AbstractConstraint):
    """Its inverse is off by one part in a thousand: value preservation catches it."""

    support = "x > 0"

    def forward(self, raw: jax.Array) -> jax.Array:
        return jnp.exp(raw)

    def inverse(self, value: jax.Array) -> jax.Array:
        return jnp.log(value * 1.001)

    def in_support(self, value: jax.Array) -> jax.Array:
        return value > 0

    def in_closure(self, value: jax.Array) -> jax.Array:
        return value >= 0  # exp underflows to 0


def test_constraint_law_failure_names_value_preservation():
    with pytest.raises(AssertionError, match="value-preserving"):
        lt.check_constraint_laws(SlightlyOff, example=jnp.ones, max_examples=5)


class Leaky(lf.AbstractConstraint):
    """Its forward map leaves the support for raw values below -1."""

    support = "x > 0"

    def forward(self, raw: jax.Array) -> jax.Array:
        return raw + 1.0

    def inverse(self, value: jax.Array) -> jax.Array:
        return value - 1.0

    def in_support(self, value: jax.Array) -> jax.Array:
        return value > 0


def test_constraint_law_failure_names_the_support():
    # Values drawn from raw entries in [-8, 8] may lie outside the support too; draw
    # them from inside.
    def inside(template: Any) -> Any:
        shape = np.shape(lf.unwrap(template))
        return st.floats(0.5, 4.0, width=32).map(lambda v: jnp.full(shape, v))

    with pytest.raises(AssertionError, match="unwraps into the support"):
        lt.check_constraint_laws(Leaky, example=jnp.ones, values=inside, max_examples=20)


class DocumentedOff(SlightlyOff):
    """The same map, documented as exact to 1%: within that tolerance it is lawful."""

    def tolerance(self, dtype: Any) -> tuple[float, float]:
        return (0.01, 0.0)


def test_constraint_laws_use_the_documented_tolerance():
    assert lt.tolerance(DocumentedOff(1.0), jnp.float32) == (0.01, 0.0)
    lt.check_constraint_laws(DocumentedOff, example=jnp.ones, max_examples=5)


class Doubling(lf.AbstractUnwrappable):
    """with_value forgets to halve the value: put-get catches it."""

    x: jax.Array

    def unwrap(self) -> jax.Array:
        return self.x * 2

    def with_value(self, value: jax.Array) -> Doubling:
        return Doubling(value)


def test_value_law_failure_names_put_get():
    with pytest.raises(AssertionError, match=r"put-get: unwrap\(rewrap\(t, v\)\) == v"):
        lt.check_value_laws(Doubling, max_examples=5)


def test_value_laws_hold_for_a_user_wrapper_among_builtins():
    def halved(x: jax.Array) -> Any:
        return {"a": lf.NonTrainable(Halved(x)), "b": lf.Parameterize(jnp.exp, x)}

    lt.check_value_laws(halved, max_examples=5)


class Halved(lf.AbstractUnwrappable):
    x: jax.Array

    def unwrap(self) -> jax.Array:
        return self.x / 2

    def with_value(self, value: jax.Array) -> Halved:
        return Halved(value * 2)


class MaskOfNothing:
    """An optic whose mask and partition select nothing: the agreement law catches it."""

    def paths(self, tree: Any) -> list[Any]:
        return lf.at["w"].paths(tree)

    def get_all(self, tree: Any) -> list[Any]:
        return lf.at["w"].get_all(tree)

    def mask(self, tree: Any) -> Any:
        return jax.tree_util.tree_map(lambda _: False, tree)

    def __repr__(self) -> str:
        return "MaskOfNothing()"


def test_agreement_law_failure_names_the_mask():
    trees = st.fixed_dictionaries({"w": st.just(1.0), "b": st.just(2.0)})
    with pytest.raises(AssertionError, match="mask is True exactly on the leaves inside a focus"):
        lt.check_agreement_laws(MaskOfNothing(), trees, max_examples=5)


def test_agreement_laws_hold_for_lensify_optics_on_user_nodes():
    layer = lt.FlatNode(jnp.ones(2), lt.ClassNode((jnp.zeros(2), 3.0), label="x"))
    tree = {"layer": layer, "p": jax.tree_util.Partial(jnp.add, 1.0, k=2.0)}
    for optic in (
        lf.at["layer"].w,
        lf.at["layer"].b,
        lf.at.leaves(),
        lf.at["p"].each().each(),
        lf.at.instances_of(lt.ClassNode),
    ):
        lt.assert_agreement_laws(optic, tree)


def test_laws_hold_for_drawn_optics_on_drawn_trees():
    """lensify's optics are lawful on the trees and optics lensify.testing draws."""

    @FAST
    @given(st.data())
    def check(data: st.DataObject) -> None:
        wide = lt.wrapped_trees(max_depth=2, nodes=lt.ALL_NODES, leaves=lt.all_leaves())
        tree = data.draw(st.one_of(WIDE, wide), label="tree")
        lens = data.draw(lt.lenses_for(tree), label="lens")
        values = lt.pytrees(max_depth=1)
        lt.assert_lens_laws(lens, tree, data.draw(values), data.draw(values))
        traversal = data.draw(lt.traversals_for(tree), label="traversal")
        f = data.draw(st.sampled_from(lt.DEFAULT_UPDATES), label="f")
        g = data.draw(st.sampled_from(lt.DEFAULT_UPDATES), label="g")
        lt.assert_traversal_laws(traversal, tree, f, g)

    check()


def test_trees_close_keeps_float32_tolerance_against_half_precision():
    assert not lt.trees_close(jnp.array(1.0, jnp.float32), jnp.array(1.0078125, jnp.bfloat16))
    assert not lt.trees_close(jnp.ones(2), jnp.ones(2).astype(jnp.bfloat16) * 1.0078125)


class _RoundsThroughBfloat16(lf.AbstractUnwrappable):
    x: jax.Array

    def unwrap(self):
        return self.x

    def with_value(self, value):
        return _RoundsThroughBfloat16(jnp.asarray(value).astype(jnp.bfloat16))


def test_check_value_laws_fails_a_with_value_that_rounds_through_bfloat16():
    tree = _RoundsThroughBfloat16(jnp.array([0.1, 1.1, 3.3]))
    with pytest.raises(AssertionError, match="law violated"):
        lt.assert_value_laws(tree, jnp.array([0.3, 1.7, 2.9]), jnp.array([0.7, 1.3, 5.1]))


class _HalfFrozen(lf.AbstractUnwrappable):
    a: jax.Array
    b: jax.Array

    def unwrap(self):
        return self.a * jax.lax.stop_gradient(self.b)


def test_wrapper_laws_fail_a_wrapper_whose_field_never_trains():
    tree = _HalfFrozen(jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0]))
    with pytest.raises(AssertionError, match=r"every trainable leaf[\s\S]*\.b"):
        lt.assert_wrapper_laws(tree, gradient="flows")


def test_wrapper_laws_let_a_non_trainable_part_have_no_gradient():
    tree = lf.Parameterize(jnp.multiply, jnp.array([1.0, 2.0]), lf.NonTrainable(jnp.ones(2)))
    lt.assert_wrapper_laws(tree, gradient="flows")


def test_float_arrays_takes_a_strategy_of_shapes_and_refuses_a_bare_shape() -> None:
    from hypothesis.extra.numpy import array_shapes

    @settings(max_examples=10, deadline=None)
    @given(lt.float_arrays(array_shapes(min_dims=2, max_dims=2, max_side=3)))
    def drawn(x: Any) -> None:
        assert x.ndim == 2 and max(x.shape) <= 3

    drawn()
    with pytest.raises(TypeError, match=r"pass \[\(2, 3\)\] for that one shape"):
        lt.float_arrays((2, 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of shapes"):
        lt.float_arrays(["a"])  # type: ignore[list-item]


def test_check_lens_laws_through_a_wrapper_needs_a_tolerance() -> None:
    scales = st.floats(0.1, 10.0).map(
        lambda x: lf.Parameterize(jax.nn.softplus, lf.inv_softplus(jnp.float32(x)))
    )
    trees = st.fixed_dictionaries({"s": scales})
    values = st.floats(0.1, 10.0).map(jnp.float32)
    optic = lf.at["s"].unwrapped()
    lt.check_lens_laws(optic, trees, values=values, rtol=1e-5, atol=1e-6, max_examples=20)
    # Exactly, the raw value set from its own value rounds.
    tree = {"s": lf.Parameterize(jax.nn.softplus, lf.inv_softplus(jnp.float32(0.3)))}
    with pytest.raises(AssertionError, match="get-set"):
        lt.assert_lens_laws(optic, tree, jnp.float32(0.1), jnp.float32(0.5))
    lt.assert_lens_laws(optic, tree, jnp.float32(0.1), jnp.float32(0.5), rtol=1e-5, atol=1e-6)
