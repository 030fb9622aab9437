"""Optics: building them, the steps, the traversals, the operations and the errors.

Selections are checked the penzai way where it helps: wrap the foci in a marker
(``Sel``) and compare with the expected tree, so what was selected shows at a glance.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import pickle
from typing import Any

import attrs
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lensify as lf
from lensify import tree_equal

Pair = collections.namedtuple("Pair", ["first", "second"])


@dataclasses.dataclass(frozen=True)
class Sel:
    """Marks a focus: ``optic.wrap(tree, Sel)`` shows what the optic selected."""

    value: Any


class Linear(eqx.Module):
    weight: jax.Array
    bias: jax.Array
    name: str = eqx.field(static=True, default="linear")


class MLP(eqx.Module):
    layers: list[Linear]
    activation: str = eqx.field(static=True, default="relu")


def _mlp() -> MLP:
    return MLP([Linear(jnp.ones((2, 3)), jnp.zeros(2)), Linear(jnp.ones((1, 2)), jnp.zeros(1))])


@dataclasses.dataclass(frozen=True)
class Point:
    x: Any
    tag: str


jax.tree_util.register_dataclass(Point, data_fields=["x"], meta_fields=["tag"])


class Opaque:
    """A node registered without keys: its children are flattened indices."""

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b


jax.tree_util.register_pytree_node(
    Opaque, lambda o: ((o.a, o.b), None), lambda _, children: Opaque(*children)
)


class Record(lf.AbstractUnwrappable):
    x: Any
    label: str = lf.field(static=True, default="r")

    def unwrap(self) -> Any:
        return self.x


@attrs.frozen
class Slotted(lf.AbstractUnwrappable):
    x: Any
    label: str = lf.field(static=True, default="s")

    def unwrap(self) -> Any:
        return self.x


# ------------------------------------------------------------------ optics are values


def test_repr_reads_like_code() -> None:
    assert repr(lf.at) == "lf.at"
    assert repr(lf.at.layers.each().weight) == "lf.at.layers.each().weight"
    assert repr(lf.at["k"][0][-1]) == "lf.at['k'][0][-1]"
    assert repr(lf.at.attr("get").item("set")) == "lf.at.attr('get')['set']"
    assert repr(lf.at.attr("_w")) == "lf.at.attr('_w')"
    assert repr(lf.at.leaves().instances_of(jax.Array, np.ndarray, int)) == (
        "lf.at.leaves().instances_of(jax.Array, np.ndarray, int)"
    )
    assert repr(lf.at[1:3]) == "lf.at[1:3]"
    assert repr(lf.at[::2]) == "lf.at[::2]"


def test_repr_of_where_names_the_predicate() -> None:
    def is_matrix(x: Any) -> bool:
        return x.ndim == 2

    assert repr(lf.at.leaves().where(is_matrix)).endswith(".leaves().where(is_matrix)")


def test_repr_of_union() -> None:
    union = lf.at.a | lf.at.b | lf.at.c
    assert repr(union) == "(lf.at.a | lf.at.b | lf.at.c)"
    assert repr(union.each()) == "(lf.at.a | lf.at.b | lf.at.c).each()"
    assert repr(lf.at.x.then(lf.at.a | lf.at.b)) == "lf.at.x.then(lf.at.a | lf.at.b)"


def test_equal_and_hashable_when_built_the_same_way() -> None:
    a = lf.at.layers.each()["w"].leaves().instances_of(jax.Array)
    b = lf.at.layers.each()["w"].leaves().instances_of(jax.Array)
    assert a == b and hash(a) == hash(b)
    assert a != lf.at.layers.each()["b"].leaves().instances_of(jax.Array)
    assert lf.at.a | lf.at.b == lf.at.a | lf.at.b
    assert lf.at.a | lf.at.b != lf.at.b | lf.at.a
    assert len({lf.at.a, lf.at.a, lf.at.b}) == 2
    assert lf.at[0] != lf.at.attr("0")


def test_then_equals_the_chain() -> None:
    assert lf.at.layers.each().then(lf.at.weight) == lf.at.layers.each().weight


def test_optic_is_immutable() -> None:
    optic = lf.at.a
    with pytest.raises(AttributeError):
        optic.b = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del optic._chain
    assert optic == lf.at.a


def test_optic_is_reusable_across_trees() -> None:
    optic = lf.at["w"]
    assert optic.get({"w": 1}) == 1
    assert optic.get({"w": 2, "b": 0}) == 2


def test_optic_pickles_and_copies() -> None:
    optic = lf.at.layers[0]["w"].each() | lf.at.head
    assert pickle.loads(pickle.dumps(optic)) == optic
    assert copy.copy(optic) is optic
    assert copy.deepcopy(optic) is optic


def test_at_is_a_value_not_a_tree() -> None:
    # No leaves: an optic is structure, like a static field.
    assert jax.tree_util.tree_leaves([lf.at.a]) == []
    assert jax.tree_util.tree_structure([lf.at.a]) == jax.tree_util.tree_structure([lf.at.a])
    assert jax.tree_util.tree_structure([lf.at.a]) != jax.tree_util.tree_structure([lf.at.b])
    assert not isinstance(lf.at, lf.AbstractUnwrappable)


def test_plain_jit_takes_an_optic_argument() -> None:
    traces = []

    @jax.jit
    def scaled(optic: lf.Optic, tree: Any) -> Any:
        traces.append(optic)
        return optic.modify(tree, lambda x: 2 * x)

    tree = {"a": jnp.ones(2), "b": jnp.ones(2)}
    assert jnp.allclose(scaled(lf.at["a"], tree)["a"], 2.0)
    assert jnp.allclose(scaled(lf.at["a"], tree)["b"], 1.0)
    assert jnp.allclose(scaled(lf.at["b"], tree)["b"], 2.0)
    assert len(traces) == 2  # one trace per distinct optic, reused when equal


def test_optic_is_not_iterable() -> None:
    with pytest.raises(TypeError, match="not iterable"):
        list(lf.at.a)
    with pytest.raises(TypeError):
        0 in lf.at  # noqa: B015


def test_underscore_names_need_attr() -> None:
    with pytest.raises(AttributeError, match="attr"):
        lf.at._private
    hidden = Opaque(1, 2)
    hidden._private = 3  # type: ignore[attr-defined]
    assert lf.at.attr("_private").get(hidden) == 3
    assert lf.at.attr("_private").set(hidden, 4)._private == 4


def test_bad_arguments_fail_when_building() -> None:
    with pytest.raises(TypeError, match="hashable"):
        lf.at[["a"]]  # type: ignore[index]
    with pytest.raises(TypeError, match="callable"):
        lf.at.where(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="types"):
        lf.at.instances_of()
    with pytest.raises(TypeError, match="types"):
        lf.at.instances_of(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="optic"):
        lf.at.then("a")  # type: ignore[arg-type]


def test_union_with_a_non_optic_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        lf.at.a | 3  # type: ignore[operator]


# --------------------------------------------------------------- from_path and parse


def test_parse() -> None:
    assert lf.at.parse("layers[0].weight") == lf.at.layers[0].weight
    assert lf.at.parse("['a'][-1].b") == lf.at["a"][-1].b
    assert lf.at.parse('["a b"]') == lf.at["a b"]
    assert lf.at.parse("") == lf.at
    assert lf.at.x.parse(".y") == lf.at.x.y


def test_parse_reads_keystr() -> None:
    tree = {"layers": [Pair(1.0, {"w": 2.0})]}
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        assert lf.at.parse(jax.tree_util.keystr(path)) == lf.at.from_path(path)


@pytest.mark.parametrize("text", ["a b", "a[", "a[x]", "a..b", "[0]x", "a.0"])
def test_parse_errors_point_at_the_position(text: str) -> None:
    with pytest.raises(ValueError, match="cannot parse"):
        lf.at.parse(text)


def test_from_path_reaches_every_leaf() -> None:
    tree = {
        "mlp": _mlp(),
        "pair": Pair(1.0, [2.0, None, 3.0]),
        "point": Point(jnp.ones(2), "p"),
        "opaque": Opaque(4.0, (5.0,)),
        "wrapped": lf.NonTrainable({"x": 6.0}),
    }
    pairs = jax.tree_util.tree_flatten_with_path(tree)[0]
    assert len(pairs) == 11
    for path, leaf in pairs:
        optic = lf.at.from_path(path)
        assert optic.get(tree) is leaf
        assert optic.paths(tree) == [path]
        assert tree_equal(optic.set(tree, leaf), tree)


def test_from_path_rejects_unknown_keys() -> None:
    with pytest.raises(TypeError, match="key path"):
        lf.at.from_path([1.5])


# ------------------------------------------------------------------------ path steps


def test_dict_item_set_copies_only_the_spine() -> None:
    left, right = {"w": jnp.ones(2)}, {"w": jnp.ones(2)}
    tree = {"a": left, "b": right, "c": [1, 2]}
    new = lf.at["a"]["w"].set(tree, 0)
    assert new == {"a": {"w": 0}, "b": right, "c": [1, 2]}
    assert new["b"] is right and new["c"] is tree["c"]
    assert tree["a"] is left and left["w"] is not 0  # noqa: F632


def test_list_and_tuple_indices_negative_included() -> None:
    assert lf.at[-1].get([1, 2, 3]) == 3
    assert lf.at[-1].set([1, 2, 3], 0) == [1, 2, 0]
    assert lf.at[0].set((1, 2), 0) == (0, 2)
    assert lf.at[1].paths((1, 2)) == [(jax.tree_util.SequenceKey(1),)]
    assert lf.at[-1].paths([1, 2]) == [(jax.tree_util.SequenceKey(1),)]


def test_numpy_integer_index() -> None:
    assert lf.at[np.int64(1)].get([1, 2]) == 2


def test_namedtuple_by_attribute_and_by_index() -> None:
    pair = Pair(1, 2)
    assert lf.at.second.set(pair, 5) == Pair(1, 5)
    assert lf.at[1].set(pair, 5) == Pair(1, 5)
    assert type(lf.at[0].set(pair, 5)) is Pair
    assert (
        lf.at[1].paths(pair) == lf.at.second.paths(pair) == [(jax.tree_util.GetAttrKey("second"),)]
    )


def test_ordered_dict_keeps_its_type_and_order() -> None:
    tree = collections.OrderedDict(b=1, a=2)
    new = lf.at["a"].set(tree, 5)
    assert type(new) is collections.OrderedDict and list(new) == ["b", "a"] and new["a"] == 5


def test_none_child_can_be_focused_and_replaced() -> None:
    tree = {"a": None, "b": 1}
    assert lf.at["a"].get(tree) is None
    assert lf.at["a"].set(tree, jnp.ones(2))["a"].shape == (2,)
    assert lf.at["b"].set(tree, None) == {"a": None, "b": None}
    assert lf.at.each().get_all(tree) == [None, 1]
    assert lf.at.leaves().get_all(tree) == [1]
    assert lf.at["a"].each().get_all(tree) == []


def test_registered_dataclass_data_and_meta_fields() -> None:
    point = Point(jnp.ones(2), "p")
    moved = lf.at.x.set(point, 3.0)
    assert moved == Point(3.0, "p")
    retagged = lf.at.tag.set(point, "q")
    assert retagged.tag == "q" and retagged.x is point.x
    assert jax.tree_util.tree_structure(retagged) != jax.tree_util.tree_structure(point)


def test_keyless_registered_node_by_flattened_index() -> None:
    node = Opaque(1.0, 2.0)
    assert lf.at[1].get(node) == 2.0
    assert lf.at[1].set(node, 5.0).b == 5.0
    assert lf.at[1].paths(node) == [(jax.tree_util.FlattenedIndexKey(1),)]


def test_attrs_record_child_and_static_field() -> None:
    record = Record({"a": 1.0}, label="old")
    assert lf.at.x["a"].set(record, 2.0).x == {"a": 2.0}
    relabelled = lf.at.label.set(record, "new")
    assert relabelled.label == "new" and relabelled.x is record.x
    assert type(relabelled) is Record
    assert lf.at.label.get(record) == "old"  # the original is untouched


def test_slotted_attrs_record() -> None:
    record = Slotted(1.0, label="a")
    assert not hasattr(record, "__dict__")
    assert lf.at.x.set(record, 2.0) == Slotted(2.0, label="a")
    assert lf.at.label.set(record, "b").label == "b"


def test_equinox_module_fields() -> None:
    mlp = _mlp()
    new = lf.at.layers[0].weight.set(mlp, jnp.zeros((2, 3)))
    assert float(new.layers[0].weight.sum()) == 0.0
    assert new.layers[1] is mlp.layers[1]
    assert isinstance(new, MLP)


def test_equinox_static_fields_can_be_set() -> None:
    mlp = _mlp()
    # eqx.tree_at refuses static fields; an optic sets them without running __init__.
    with pytest.raises((TypeError, ValueError)):
        eqx.tree_at(lambda m: m.activation, mlp, "gelu")
    new = lf.at.activation.set(mlp, "gelu")
    assert new.activation == "gelu" and mlp.activation == "relu"
    names = lf.at.layers.each().name.set(mlp, "dense")
    assert [layer.name for layer in names.layers] == ["dense", "dense"]
    assert lf.at.layers.each().name.get_all(names) == ["dense", "dense"]


def test_inside_wrappers() -> None:
    params = lf.Parameterize(jnp.exp, jnp.zeros(2), scale=jnp.ones(2))
    assert lf.at.args[0].get(params) is params.args[0]
    moved = lf.at.args[0].set(params, jnp.ones(2))
    assert isinstance(moved, lf.Parameterize) and moved.fn is jnp.exp
    assert float(lf.at.kwargs["scale"].set(params, jnp.zeros(2)).kwargs["scale"].sum()) == 0.0
    frozen = lf.NonTrainable({"w": 1.0, "b": 2.0})
    assert lf.at.tree["b"].set(frozen, 3.0) == lf.NonTrainable({"w": 1.0, "b": 3.0})


def test_attribute_named_like_a_method() -> None:
    Box = collections.namedtuple("Box", ["get", "each"])
    box = Box(1, 2)
    assert lf.at.attr("get").get(box) == 1
    assert lf.at.attr("each").set(box, 5) == Box(1, 5)
    assert lf.at.item("get").get({"get": 3}) == 3


def test_slice_of_a_list() -> None:
    assert lf.at[1:3].get_all([0, 1, 2, 3]) == [1, 2]
    assert lf.at[::2].set([0, 1, 2, 3], 9) == [9, 1, 9, 3]
    assert lf.at[-1:].set((0, 1), 9) == (0, 9)
    assert lf.at[1:].paths([0, 1]) == [(jax.tree_util.SequenceKey(1),)]


def test_identity_optic() -> None:
    tree = {"a": 1}
    assert lf.at.get(tree) is tree
    assert lf.at.set(tree, 5) == 5
    assert lf.at.paths(tree) == [()]


# ------------------------------------------------------------------------ traversals


def test_each_selects_immediate_children() -> None:
    tree = {"a": [1, 2], "b": 3}
    assert lf.at.each().wrap(tree, Sel) == {"a": Sel([1, 2]), "b": Sel(3)}
    assert lf.at["a"].each().wrap(tree, Sel) == {"a": [Sel(1), Sel(2)], "b": 3}
    assert lf.at["b"].each().get_all(tree) == []
    assert lf.at.each().modify((1, 2), lambda x: x + 1) == (2, 3)


def test_each_on_records_and_modules() -> None:
    mlp = _mlp()
    assert lf.at.layers.each().paths(mlp)[1] == (
        jax.tree_util.GetAttrKey("layers"),
        jax.tree_util.SequenceKey(1),
    )
    assert lf.at.each().get_all(Record(1.0)) == [1.0]


def test_leaves_in_jax_order_with_jax_paths() -> None:
    tree = {"b": [1, None, Pair(2, 3)], "a": Point(4, "t"), "c": _mlp()}
    pairs = jax.tree_util.tree_flatten_with_path(tree)[0]
    assert lf.at.leaves().get_all(tree) == [leaf for _, leaf in pairs]
    assert lf.at.leaves().paths(tree) == [path for path, _ in pairs]


def test_leaves_of_a_leaf_is_itself() -> None:
    assert lf.at.leaves().get_all(5) == [5]
    assert lf.at.leaves().modify(5, lambda x: x + 1) == 6


def test_where_filters_foci() -> None:
    tree = {"a": 1, "b": 20, "c": [3, 40]}
    assert lf.at.leaves().where(lambda x: x > 10).wrap(tree, Sel) == {
        "a": 1,
        "b": Sel(20),
        "c": [3, Sel(40)],
    }
    assert lf.at.each().where(lambda x: isinstance(x, list)).get_all(tree) == [[3, 40]]
    assert lf.at.where(lambda t: "a" in t).get_all(tree) == [tree]
    assert lf.at.where(lambda t: "z" in t).get_all(tree) == []


def test_several_wheres_all_apply() -> None:
    optic = lf.at.leaves().where(lambda x: x > 1).where(lambda x: x < 4)
    assert optic.get_all([1, 2, 3, 4]) == [2, 3]
    assert optic.set([1, 2, 3, 4], 0) == [1, 0, 0, 4]


def test_where_nothing_selected_leaves_the_tree_equal() -> None:
    tree = {"a": [1, 2]}
    assert lf.at.leaves().where(lambda x: x > 5).modify(tree, lambda x: 0) == tree


def test_tracer_error_from_the_update_is_not_blamed_on_the_predicate() -> None:
    def branchy(x: jax.Array) -> jax.Array:
        return x if x.sum() > 0 else -x

    vectors = lf.at.leaves().where(lambda x: x.ndim == 1)
    with pytest.raises(jax.errors.ConcretizationTypeError) as info:
        jax.jit(lambda t: vectors.modify(t, branchy))({"a": jnp.ones(2)})
    assert not isinstance(info.value, lf.TracedPredicateError)


def test_instances_of_leaf_types() -> None:
    tree = {"j": jnp.ones(2), "n": np.ones(2), "i": 3, "f": 2.5, "s": "text"}
    assert lf.at.instances_of(jax.Array).get_all(tree) == [tree["j"]]
    assert lf.at.instances_of(np.ndarray).get_all(tree) == [tree["n"]]
    assert lf.at.instances_of(int, str).get_all(tree) == [3, "text"]


def test_instances_of_none_and_object() -> None:
    tree = {"a": None, "b": [1, None]}
    assert lf.at.instances_of(type(None)).set(tree, 0) == {"a": 0, "b": [1, 0]}
    assert lf.at.instances_of(object).get_all(tree) == [tree]


def test_instances_of_takes_outermost_matches_only() -> None:
    inner = lf.NonTrainable(1.0)
    tree = {"a": lf.NonTrainable([inner]), "b": [inner], "c": 2.0}
    selected = lf.at.instances_of(lf.NonTrainable).wrap(tree, Sel)
    assert selected == {"a": Sel(tree["a"]), "b": [Sel(inner)], "c": 2.0}


def test_instances_of_the_root() -> None:
    mlp = _mlp()
    assert lf.at.instances_of(MLP).get_all(mlp) == [mlp]
    assert len(lf.at.instances_of(Linear).get_all(mlp)) == 2


def test_instances_of_abstract_base() -> None:
    tree = [lf.WeightNormalization(jnp.ones((2, 2))), lf.NonTrainable(1.0), 3.0]
    found = lf.at.instances_of(lf.AbstractUnwrappable).get_all(tree)
    assert [type(x) for x in found] == [lf.WeightNormalization, lf.NonTrainable]


def test_steps_after_a_traversal() -> None:
    mlp = _mlp()
    weights = lf.at.layers.each().weight
    assert [w.shape for w in weights.get_all(mlp)] == [(2, 3), (1, 2)]
    doubled = weights.modify(mlp, lambda w: 2 * w)
    assert [float(w.sum()) for w in weights.get_all(doubled)] == [12.0, 4.0]
    biases = lf.at.instances_of(Linear).bias
    assert len(biases.paths(mlp)) == 2


def test_union_in_flatten_order() -> None:
    tree = {"a": 1, "b": 2, "c": 3}
    union = lf.at["c"] | lf.at["a"]
    assert union.get_all(tree) == [1, 3]
    assert union.wrap(tree, Sel) == {"a": Sel(1), "b": 2, "c": Sel(3)}
    assert union.paths(tree) == [(jax.tree_util.DictKey("a"),), (jax.tree_util.DictKey("c"),)]


def test_union_of_traversals_and_chaining() -> None:
    tree = {"x": [1, 2], "y": [3], "z": [4]}
    union = lf.at["x"] | lf.at["z"]
    assert union.each().set(tree, 0) == {"x": [0, 0], "y": [3], "z": [0]}
    evens = lf.at.leaves().where(lambda v: v % 2 == 0)
    odds = lf.at.leaves().where(lambda v: v % 2 == 1)
    assert (odds | evens).get_all(tree) == [1, 2, 3, 4]
    assert (odds | evens).modify(tree, lambda v: -v) == {"x": [-1, -2], "y": [-3], "z": [-4]}


def test_union_inside_a_path() -> None:
    tree = {"m": {"a": 1, "b": 2, "c": 3}}
    optic = lf.at["m"].then(lf.at["a"] | lf.at["c"])
    assert optic.set(tree, 0) == {"m": {"a": 0, "b": 2, "c": 0}}


def test_union_reaches_static_fields() -> None:
    mlp = _mlp()
    union = lf.at.activation | lf.at.layers[0].name
    assert union.get_all(mlp) == ["linear", "relu"]
    new = union.set(mlp, "x")
    assert new.activation == "x" and new.layers[0].name == "x" and new.layers[1].name == "linear"


@pytest.mark.parametrize(
    "union",
    [
        lf.at["a"] | lf.at["a"],
        lf.at["a"] | lf.at["a"][0],
        lf.at.leaves() | lf.at["b"],
        lf.at.each() | lf.at.leaves(),
    ],
)
def test_union_overlap_is_an_error(union: lf.Optic) -> None:
    tree = {"a": [1, 2], "b": 3}
    for operation in (union.get_all, union.paths, lambda t: union.set(t, 0), union.mask):
        with pytest.raises(lf.OverlapError, match="overlap"):
            operation(tree)


def test_union_overlap_names_the_path() -> None:
    with pytest.raises(lf.OverlapError, match=r"\['a'\]"):
        (lf.at["a"] | lf.at["a"][0]).get_all({"a": [1]})


# ------------------------------------------------------------------------ operations


def test_get_needs_exactly_one_focus() -> None:
    tree = {f"k{i}": i for i in range(8)}
    with pytest.raises(lf.FocusCountError, match="found 8") as info:
        lf.at.each().get(tree)
    message = str(info.value)
    assert "['k0'], ['k1'], ['k2'], ['k3'], ['k4'], ..." in message
    assert "get_all" in message
    with pytest.raises(lf.FocusCountError, match="found none"):
        lf.at.each().where(lambda x: x > 100).get(tree)
    assert lf.at.each().where(lambda x: x == 3).get(tree) == 3


def test_set_and_modify_and_wrap() -> None:
    tree = {"a": 1, "b": [2, 3]}
    assert lf.at["b"][0].set(tree, 9) == {"a": 1, "b": [9, 3]}
    assert lf.at.leaves().modify(tree, lambda x: x * 2) == {"a": 2, "b": [4, 6]}

    def scaled(x: Any, factor: int, *, shift: int = 0) -> Any:
        return x * factor + shift

    assert lf.at["a"].wrap(tree, scaled, 10, shift=1) == {"a": 11, "b": [2, 3]}
    assert tree == {"a": 1, "b": [2, 3]}


def test_wrap_with_wrappers_then_unwrap() -> None:
    params = {"w": jnp.array([[3.0, 4.0]]), "b": jnp.zeros(1)}
    wrapped = lf.at.leaves().where(lambda x: x.ndim == 2).wrap(params, lf.WeightNormalization)
    assert isinstance(wrapped["w"], lf.WeightNormalization)
    assert bool(jnp.allclose(lf.unwrap(wrapped)["w"], params["w"]))


def test_unwrap_the_foci_only() -> None:
    tree = {"a": lf.NonTrainable(lf.Parameterize(jnp.exp, 0.0)), "b": lf.NonTrainable(1.0)}
    out = lf.at["a"].unwrap(tree)
    assert float(out["a"]) == 1.0
    assert out["b"] is tree["b"]
    everything = lf.at.instances_of(lf.NonTrainable).unwrap(tree)
    assert not lf.contains_unwrappables(everything)


def test_mask_has_the_structure_of_the_tree() -> None:
    tree = {"enc": {"w": jnp.ones(2), "b": None}, "dec": [1.0, Pair(2.0, 3.0)], "m": _mlp()}
    mask = lf.at["enc"].mask(tree)
    assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(tree)
    # Leaves in JAX order: dec (3), enc (1: None is no leaf), m (4).
    assert jax.tree_util.tree_leaves(mask) == [False] * 3 + [True] + [False] * 4
    weights = lf.at["m"].layers.each().weight.mask(tree)
    assert sum(jax.tree_util.tree_leaves(weights)) == 2


def test_mask_of_static_focus_marks_nothing() -> None:
    mlp = _mlp()
    mask = lf.at.activation.mask(mlp)
    assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(mlp)
    assert not any(jax.tree_util.tree_leaves(mask))


def test_mask_with_optax_masked() -> None:
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    optimiser = optax.masked(optax.sgd(1.0), lf.at["w"].mask(params))
    state = optimiser.init(params)
    grads = {"w": jnp.ones(2), "b": jnp.ones(2)}
    updates, _ = optimiser.update(grads, state, params)
    assert float(updates["w"].sum()) == -2.0
    assert float(updates["b"].sum()) == 2.0  # unmasked leaves pass through


def test_mask_as_multi_transform_labels() -> None:
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    frozen = lf.at["b"].mask(params)
    labels = jax.tree_util.tree_map(lambda m: "frozen" if m else "train", frozen)
    optimiser = optax.multi_transform(
        {"train": optax.sgd(1.0), "frozen": optax.set_to_zero()}, labels
    )
    state = optimiser.init(params)
    updates, _ = optimiser.update({"w": jnp.ones(2), "b": jnp.ones(2)}, state, params)
    assert float(updates["w"].sum()) == -2.0 and float(updates["b"].sum()) == 0.0


def test_partition_and_combine_match_equinox() -> None:
    tree = {"a": [1.0, None, jnp.ones(2)], "b": _mlp(), "c": Pair(np.ones(1), 3)}
    optic = lf.at["a"] | lf.at["b"].layers[0].weight
    inside, outside = optic.partition(tree)
    eqx_inside, eqx_outside = eqx.partition(tree, optic.mask(tree))
    assert tree_equal(inside, eqx_inside) and tree_equal(outside, eqx_outside)
    assert tree_equal(lf.combine(inside, outside), tree)
    assert tree_equal(eqx.combine(inside, outside), lf.combine(inside, outside))
    assert tree_equal(lf.combine(outside, inside), tree)


def test_combine_needs_a_tree() -> None:
    with pytest.raises(TypeError):
        lf.combine()


def test_non_trainable_where() -> None:
    model = {"layers": [{"w": jnp.ones(2), "b": jnp.ones(2)}] * 2}
    frozen = lf.non_trainable(model, where=lf.at["layers"].each()["b"])
    assert [type(layer["b"]) for layer in frozen["layers"]] == [lf.NonTrainable] * 2
    assert all(layer["w"] is model["layers"][0]["w"] for layer in frozen["layers"])

    def loss(m: Any) -> jax.Array:
        m = lf.unwrap(m)
        return sum(layer["w"].sum() + layer["b"].sum() for layer in m["layers"])

    grads = jax.grad(loss)(frozen)
    assert float(grads["layers"][0]["w"].sum()) == 2.0
    assert float(lf.unwrap(grads["layers"][0]["b"]).sum()) == 0.0


def test_wrap_and_freeze_in_two_lines() -> None:
    model = _mlp()
    model = lf.at.instances_of(Linear).weight.wrap(model, lf.WeightNormalization)
    model = lf.non_trainable(model, where=lf.at.instances_of(Linear).bias)
    assert all(isinstance(layer.weight, lf.WeightNormalization) for layer in model.layers)
    assert all(isinstance(layer.bias, lf.NonTrainable) for layer in model.layers)
    assert tree_equal(lf.unwrap(model).layers[1].bias, _mlp().layers[1].bias)


# ---------------------------------------------------------------------------- errors


def test_missing_key_names_path_and_closest_keys_first() -> None:
    tree = {"model": {"weight": 1, "bias": 2, "wait": 3, "zeta": 4}}
    with pytest.raises(lf.MissingStepError) as info:
        lf.at["model"]["wieght"].get(tree)
    message = str(info.value)
    assert "'wieght'" in message and "['model']" in message
    assert message.index("'weight'") < message.index("'bias'")
    assert message.index("'weight'") < message.index("'zeta'")
    assert "lf.at['model']['wieght']" in message


def test_missing_step_error_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        lf.at["x"].get({})
    with pytest.raises(ValueError):
        lf.at["x"].get({})
    assert issubclass(lf.MissingStepError, lf.OpticError)


def test_missing_attribute_lists_fields() -> None:
    with pytest.raises(lf.MissingStepError, match=r"^at \.layers\[0\]: .*'wieght'.*weight"):
        lf.at.layers[0].wieght.get(_mlp())
    with pytest.raises(lf.MissingStepError, match=r"\.layers\[0\]"):
        lf.at.layers[0].wieght.set(_mlp(), 0)


def test_attribute_on_a_dict_suggests_an_item() -> None:
    with pytest.raises(lf.MissingStepError, match=r"use \['layers'\]"):
        lf.at.layers.get({"layers": []})


def test_item_on_a_record_suggests_the_attribute() -> None:
    with pytest.raises(lf.MissingStepError, match=r"use \.weight"):
        lf.at["weight"].get(_mlp().layers[0])


def test_index_out_of_range() -> None:
    with pytest.raises(lf.MissingStepError, match=r"index 3.*length 2"):
        lf.at["a"][3].get({"a": [1, 2]})
    with pytest.raises(lf.MissingStepError, match="empty"):
        lf.at[0].set([], 1)
    with pytest.raises(lf.MissingStepError, match="index"):
        lf.at["k"].get([1, 2])


def test_item_of_a_leaf() -> None:
    with pytest.raises(lf.MissingStepError, match="leaf"):
        lf.at["a"][0].get({"a": 1.0})


def test_missing_step_under_a_traversal_names_the_focus_path() -> None:
    tree = {"layers": [{"w": 1}, {"v": 2}]}
    with pytest.raises(lf.MissingStepError, match=r"\['layers'\]\[1\]"):
        lf.at["layers"].each()["w"].modify(tree, lambda x: x)
    with pytest.raises(lf.MissingStepError, match=r"\['layers'\]\[1\]"):
        lf.at["layers"].each()["w"].get_all(tree)


def test_setting_a_computed_attribute_is_an_error() -> None:
    class Shape(eqx.Module):
        x: jax.Array

        @property
        def double(self) -> jax.Array:
            return 2 * self.x

    shape = Shape(jnp.ones(1))
    assert float(lf.at.double.get(shape)[0]) == 2.0
    with pytest.raises(lf.MissingStepError, match="computed"):
        lf.at.double.set(shape, 1.0)


def test_errors_raised_by_the_update_function_pass_through() -> None:
    def fails(_: Any) -> Any:
        raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        lf.at["a"].modify({"a": 1}, fails)
    with pytest.raises(KeyError, match="mine"):
        lf.at.leaves().modify({"a": 1}, fails)


class UnluckyError(Exception):
    """Raised by ``_fails_on_three``; the tests check it comes back as itself."""


def _fails_on_three(x: Any) -> Any:
    if x == 3:
        raise UnluckyError(f"cannot take {x}")
    return x


def _note_of(error: BaseException) -> str:
    notes = [n for n in getattr(error, "__notes__", []) if n.startswith("at ")]
    assert len(notes) == 1, notes
    return notes[0]


def test_wrap_with_a_constraint_names_the_key_path_of_a_bad_value() -> None:
    params = {"layers": [{"scale": jnp.ones(2)}, {"scale": jnp.array([1.0, -1.0])}]}
    with pytest.raises(lf.ConstraintError, match=r"^at \['layers'\]\[1\]\['scale'\]: ") as info:
        lf.at["layers"].each()["scale"].wrap(params, lf.positive)
    assert info.value.path == "['layers'][1]['scale']"
    assert info.value.index == (1,) and info.value.value == -1.0
    assert isinstance(info.value.__cause__, lf.ConstraintError)  # the error as raised


def test_wrap_with_a_constraint_on_a_path_optic() -> None:
    with pytest.raises(lf.ConstraintError, match=r"^at \['scale'\]: Positive got -1\.0"):
        lf.at["scale"].wrap({"scale": jnp.array([-1.0])}, lf.positive)


def test_constraint_error_from_an_optic_inside_fn_names_the_whole_path() -> None:
    tree = {"enc": {"w": -jnp.ones(2)}}
    with pytest.raises(lf.ConstraintError, match=r"^at \['enc'\]\['w'\]: Positive") as info:
        lf.at["enc"].modify(tree, lambda sub: lf.at["w"].wrap(sub, lf.positive))
    assert info.value.path == "['enc']['w']"


def test_modify_error_inside_a_traversal_is_the_same_error_with_a_note() -> None:
    raised = []

    def fn(x: Any) -> Any:
        try:
            return _fails_on_three(x)
        except UnluckyError as error:
            raised.append(error)
            raise

    with pytest.raises(UnluckyError, match="cannot take 3") as info:
        lf.at.leaves().modify({"a": [1, 2], "b": {"c": 3, "d": 4}}, fn)
    assert info.value is raised[0]
    assert _note_of(info.value) == (
        "at ['b']['c']: raised while applying fn to a focus of lf.at.leaves()"
    )


def test_modify_error_after_where_and_each_names_the_focus() -> None:
    optic = lf.at.each().where(lambda x: x > 1)
    with pytest.raises(UnluckyError) as info:
        optic.modify([1, 2, 3, 4], _fails_on_three)
    assert _note_of(info.value).startswith("at [2]: ")


def test_modify_error_in_a_union_names_the_focus() -> None:
    optic = lf.at["b"] | lf.at["a"][1]
    with pytest.raises(UnluckyError) as info:
        optic.modify({"a": [0, 3], "b": 2}, _fails_on_three)
    assert _note_of(info.value).startswith("at ['a'][1]: ")


def test_modify_error_on_a_path_optic_names_the_path() -> None:
    with pytest.raises(UnluckyError) as info:
        lf.at["layers"][-1]["w"].modify({"layers": [{"w": 1}, {"w": 3}]}, _fails_on_three)
    assert _note_of(info.value) == (
        "at ['layers'][1]['w']: raised while applying _fails_on_three to a focus of "
        "lf.at['layers'][-1]['w']"
    )


def test_modify_error_on_a_focus_inside_wrappers_names_the_full_path() -> None:
    tree = {"frozen": lf.NonTrainable({"w": 3}), "fn": lf.Parameterize(jnp.exp, 3)}
    with pytest.raises(UnluckyError) as info:
        lf.at["frozen"].tree["w"].modify(tree, _fails_on_three)
    assert _note_of(info.value).startswith("at ['frozen'].tree['w']: ")
    with pytest.raises(UnluckyError) as info:
        lf.at.leaves().modify(tree, _fails_on_three)
    assert _note_of(info.value).startswith("at ['fn'].args[0]: ")


def test_wrap_error_names_the_factory_and_the_focus() -> None:
    params = {"layers": [{"w": jnp.ones((2, 2))}, {"w": jnp.zeros((2, 2))}]}
    with pytest.raises(ValueError, match="row of zeros") as info:
        lf.at["layers"].each()["w"].wrap(params, lf.WeightNormalization)
    assert str(info.value).startswith("at ['layers'][1]['w']: WeightNormalization cannot")


def test_unwrap_of_the_foci_names_the_focus_and_the_wrapper() -> None:
    class Explode(lf.AbstractUnwrappable):
        x: Any

        def unwrap(self) -> Any:
            raise UnluckyError("no")

    with pytest.raises(UnluckyError) as info:
        lf.at["a"].unwrap({"a": [Explode(1.0)], "b": Explode(2.0)})
    notes = info.value.__notes__
    assert "at [0]: raised while unwrapping Explode" in notes  # from unwrap, below the focus
    assert any(n.startswith("at ['a']: raised while applying unwrap") for n in notes)


def test_error_from_a_predicate_is_blamed_on_the_predicate_not_fn() -> None:
    def pred(x: Any) -> bool:
        raise KeyError("user bug")

    with pytest.raises(KeyError, match="user bug") as info:
        lf.at.leaves().where(pred).modify({"a": 1}, lambda x: x)
    (note,) = info.value.__notes__
    assert "predicate of .where(pred)" in note and "['a']" in note


@pytest.mark.parametrize(
    "optic",
    [
        lf.at.leaves(),
        lf.at.each().each(),
        lf.at["b"] | lf.at["a"],
        lf.at.each().where(lambda x: isinstance(x, list)).each(),
        lf.at.instances_of(list) | lf.at["c"],
    ],
    ids=repr,
)
def test_modify_calls_fn_on_the_foci_in_get_all_order(optic: lf.Optic) -> None:
    # An error in fn is located by asking fn again focus by focus, in this order.
    tree = {"a": [object(), object()], "b": [object()], "c": object()}
    seen: list[Any] = []
    optic.modify(tree, lambda x: seen.append(x) or x)
    assert [id(x) for x in seen] == [id(x) for x in optic.get_all(tree)]


# ---------------------------------------------------------------------- transforms


def test_inside_jit() -> None:
    tree = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    matrices = lf.at.leaves().where(lambda x: x.ndim == 2)

    @jax.jit
    def step(t: Any) -> Any:
        return matrices.modify(lf.at["b"].set(t, t["b"] * 3), lambda w: w * 2)

    out = step(tree)
    assert float(out["w"].sum()) == 8.0 and float(out["b"].sum()) == 6.0


def test_instances_of_array_sees_tracers() -> None:
    arrays = lf.at.instances_of(jax.Array)
    out = jax.jit(lambda t: arrays.modify(t, lambda x: x * 2))({"a": jnp.ones(2), "b": None})
    assert float(out["a"].sum()) == 4.0
    mixed = {"a": jnp.ones(2), "n": np.ones(2), "f": 1.0}
    assert arrays.get_all(mixed) == [mixed["a"]]
    assert arrays.modify(mixed, lambda x: 0)["n"] is mixed["n"]


def test_optic_as_a_static_argument_of_jit() -> None:
    double = jax.jit(lambda t, optic: optic.modify(t, lambda x: 2 * x), static_argnums=1)
    tree = {"a": jnp.ones(2), "b": jnp.ones(2)}
    assert float(double(tree, lf.at["a"])["a"].sum()) == 4.0
    assert float(double(tree, lf.at["a"])["b"].sum()) == 2.0  # an equal optic: cache hit


def test_inside_grad() -> None:
    def loss(w: jax.Array) -> jax.Array:
        tree = lf.at["w"].wrap({"w": w, "v": w}, lf.NonTrainable)
        tree = lf.unwrap(tree)
        return (tree["w"] + tree["v"]).sum()

    assert jax.grad(loss)(jnp.ones(2)).tolist() == [1.0, 1.0]


def test_inside_vmap() -> None:
    tree = {"a": jnp.ones((3, 2)), "b": jnp.ones(3)}
    vectors = lf.at.leaves().where(lambda x: x.ndim == 1)
    out = jax.vmap(lambda t: vectors.modify(t, lambda x: x * 2))(tree)
    assert out["a"].sum() == 12.0 and out["b"].sum() == 3.0


def _caused_by_a_tracer_error(error: BaseException) -> bool:
    # The concretization traceback is hidden: no tracer error as cause or context.
    cause = error.__cause__
    if type(cause).__name__ == "SimplifiedTraceback":
        return False  # jax < 0.7 hangs its filtered traceback here; it shows no tracer error
    seen = cause or (None if error.__suppress_context__ else error.__context__)
    tracer_errors = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError)
    return isinstance(seen, tracer_errors)


@pytest.mark.parametrize(
    "pred",
    [
        lambda x: x.sum() > 0,
        lambda x: bool(x[0] > 0),
        lambda x: int(x[0]) == 1,
        lambda x: np.asarray(x).sum() > 0,
    ],
)
def test_traced_predicate_gives_a_clear_error(pred: Any) -> None:
    for optic in (lf.at.leaves().where(pred), lf.at["a"].where(pred), lf.at.each().where(pred)):
        with pytest.raises(lf.TracedPredicateError, match="shape, dtype or type") as info:
            jax.jit(lambda t, optic=optic: optic.set(t, 0.0))({"a": jnp.ones(2)})
        assert not _caused_by_a_tracer_error(info.value)
        assert isinstance(info.value, TypeError)


def test_traced_predicate_error_under_vmap() -> None:
    positive = lf.at.leaves().where(lambda x: x > 0)
    with pytest.raises(lf.TracedPredicateError, match=r"^at \['a'\]: "):
        jax.vmap(lambda t: positive.get_all(t))({"a": jnp.ones(3)})


@pytest.mark.parametrize("operation", ["get", "get_all", "paths", "set", "modify", "mask"])
def test_traced_predicate_error_names_the_focus_path(operation: str) -> None:
    tree = {"a": [jnp.ones((2, 2)), jnp.ones(2)], "b": jnp.ones(3)}
    optics = [
        lf.at.leaves().where(lambda x: x.ndim == 1).where(lambda x: x.sum() > 0),
        lf.at["a"].each().where(lambda x: x.ndim == 1).where(lambda x: x.sum() > 0),
        lf.at["b"] | lf.at["a"].each().where(lambda x: x.ndim == 1 and x.sum() > 0),
    ]
    for optic in optics:
        apply = getattr(optic, operation)
        args = (0.0,) if operation == "set" else (jnp.abs,) if operation == "modify" else ()
        with pytest.raises(lf.TracedPredicateError, match=r"^at \['a'\]\[1\]: ") as info:
            jax.jit(lambda t, apply=apply, args=args: apply(t, *args))(tree)
        assert not _caused_by_a_tracer_error(info.value)


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        (lambda t: lf.at.each().get(t), lf.FocusCountError),
        (lambda t: lf.at.each().where(lambda x: False).get(t), lf.FocusCountError),
        (lambda t: lf.at["c"].set(t, 0.0), lf.MissingStepError),
        (lambda t: lf.at["a"].shape.set(t, 0.0), lf.MissingStepError),
        (lambda t: lf.at.each()["w"].get_all(t), lf.MissingStepError),
        (lambda t: (lf.at["a"] | lf.at.leaves()).modify(t, jnp.abs), lf.OverlapError),
    ],
)
def test_errors_under_jit_are_the_same_errors_with_the_same_messages(
    operation: Any, error: type[Exception]
) -> None:
    tree = {"a": jnp.ones(2), "b": jnp.ones(2)}
    with pytest.raises(error) as eager:
        operation(tree)
    with pytest.raises(error) as jitted:
        jax.jit(operation)(tree)
    assert str(jitted.value) == str(eager.value)


def test_error_from_fn_under_jit_names_the_focus() -> None:
    def branchy(x: jax.Array) -> jax.Array:
        return x if x.sum() > 0 else -x

    with pytest.raises(jax.errors.ConcretizationTypeError) as info:
        jax.jit(lambda t: lf.at.leaves().modify(t, branchy))({"a": [jnp.ones(2)]})
    assert _note_of(info.value).startswith("at ['a'][0]: raised while applying branchy")


def test_non_trainable_where_never_wraps_twice() -> None:
    model = {"w": lf.NonTrainable(jnp.ones(2)), "b": jnp.ones(2)}
    frozen = lf.non_trainable(model, where=lf.at.leaves())
    assert frozen["w"] is model["w"]
    assert type(frozen["b"]) is lf.NonTrainable


def test_a_raising_predicate_keeps_its_error_and_names_the_focus() -> None:
    tree = {"a": [1.0, "s"], "b": jnp.ones(2)}
    optic = lf.at["a"].each().where(lambda x: x > 0)
    for call in (optic.get_all, optic.paths, optic.mask, lambda t: optic.modify(t, abs)):
        with pytest.raises(TypeError, match="not supported") as info:
            call(tree)
        assert any("['a'][1]" in note and ".where(" in note for note in info.value.__notes__)


def test_a_raising_predicate_in_a_leaf_scan_names_the_leaf() -> None:
    model = eqx.nn.MLP(2, 2, 4, 1, key=jax.random.key(0))
    optic = lf.at.leaves().where(lambda x: x.ndim == 2)
    with pytest.raises(AttributeError) as info:
        optic.modify(model, lambda x: x)
    assert any(".activation" in note for note in info.value.__notes__)


def test_an_error_of_the_update_is_not_blamed_on_the_predicate() -> None:
    tree = {"a": [1.0, "s"]}
    with pytest.raises(TypeError, match="concatenate") as info:
        lf.at.leaves().where(lambda x: True).modify(tree, lambda x: x + 1)
    notes = info.value.__notes__
    assert len(notes) == 1 and "predicate" not in notes[0] and "['a'][1]" in notes[0]


# ------------------------------------------------------------- optics that must agree


@jax.tree_util.register_pytree_node_class
class Dense:
    """A node registered by position: JAX names its children by flat index."""

    def __init__(self, w: Any, b: Any) -> None:
        self.w, self.b = w, b

    def tree_flatten(self) -> tuple[tuple[Any, Any], None]:
        return (self.w, self.b), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: Any) -> Dense:
        return cls(*children)


def test_attribute_of_a_positional_node_is_its_flat_index() -> None:
    model = {"layer": Dense(jnp.ones(2), jnp.zeros(2))}
    optic = lf.at["layer"].w
    assert optic.paths(model) == [
        (jax.tree_util.DictKey("layer"), jax.tree_util.FlattenedIndexKey(0))
    ]
    assert optic.mask(model)["layer"].w is True
    assert optic.mask(model)["layer"].b is False


def test_partition_of_an_attribute_of_a_positional_node() -> None:
    model = {"layer": Dense(jnp.ones(2), jnp.zeros(2))}
    inside, outside = lf.at["layer"].b.partition(model)
    assert inside["layer"].w is None and inside["layer"].b is model["layer"].b
    assert outside["layer"].b is None and outside["layer"].w is model["layer"].w


def test_non_trainable_where_an_attribute_of_a_positional_node() -> None:
    model = {"layer": Dense(jnp.ones(2), jnp.zeros(2))}
    frozen = lf.non_trainable(model, where=lf.at["layer"].w)
    assert isinstance(frozen["layer"].w, lf.NonTrainable)
    assert not isinstance(frozen["layer"].b, lf.NonTrainable)


def test_children_that_are_one_object_are_told_apart() -> None:
    shared = jnp.ones(2)
    for model in (Dense(shared, shared), Dense(0, 0)):
        assert lf.at.b.paths(model) == [(jax.tree_util.FlattenedIndexKey(1),)]
        assert lf.at.b.mask(model).w is False
        assert lf.at.b.mask(model).b is True


def test_attribute_of_a_partial() -> None:
    partial = jax.tree_util.Partial(jnp.add, jnp.ones(2))
    leaf_path = jax.tree_util.tree_flatten_with_path(partial)[0][0][0]
    assert lf.at.args[0].paths(partial) == [leaf_path]
    assert jax.tree_util.tree_leaves(lf.at.args.mask(partial)) == [True]


def test_attribute_that_is_no_child_is_an_error_not_an_empty_selection() -> None:
    partial = jax.tree_util.Partial(jnp.add, jnp.ones(2))
    with pytest.raises(lf.MissingStepError, match=r"^at <root>: .*'func'.*Partial"):
        lf.at.func.mask(partial)
    model = {"layer": Dense(jnp.ones(2), jnp.zeros(2))}
    model["layer"].note = "not flattened"
    with pytest.raises(lf.MissingStepError, match=r"^at \['layer'\]: .*'note' in the Dense"):
        lf.at["layer"].note.paths(model)
    assert lf.at["layer"].note.get(model) == "not flattened"


def test_parse_reads_the_keys_paths_returns() -> None:
    model = {"layer": Dense(1.0, 2.0)}
    for optic in (lf.at["layer"][1], lf.at["layer"].b):
        (path,) = optic.paths(model)
        assert lf.at.parse(jax.tree_util.keystr(path)).get(model) == 2.0


_SCALAR_KEYS = (
    st.integers(-(10**6), 10**6)
    | st.text(max_size=6)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
)
_DICT_KEYS = st.recursive(_SCALAR_KEYS, lambda inner: st.tuples(inner, inner), max_leaves=4)
_PATH_KEYS = (
    _DICT_KEYS.map(jax.tree_util.DictKey)
    | st.integers(0, 100).map(jax.tree_util.SequenceKey)
    | st.integers(0, 100).map(jax.tree_util.FlattenedIndexKey)
    | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True).map(jax.tree_util.GetAttrKey)
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_PATH_KEYS, max_size=4))
def test_keystr_parses_back_to_the_same_steps(path: list[Any]) -> None:
    text = jax.tree_util.keystr(tuple(path))
    assert lf.at.parse(text) == lf.at.from_path(path)


@pytest.mark.parametrize("key", [1.5, -0.0, (1, "a"), ("x", (2, None)), None, True, "a]b", "'"])
def test_parse_reads_float_tuple_and_none_keys(key: Any) -> None:
    path = (jax.tree_util.DictKey(key),)
    assert lf.at.parse(jax.tree_util.keystr(path)) == lf.at[key]


def test_keys_of_different_types_are_different_optics() -> None:
    assert lf.at[1] != lf.at[1.0]
    assert lf.at[1] != lf.at[True]
    assert lf.at[(1,)] != lf.at[(True,)]
    assert len({lf.at[1], lf.at[1.0], lf.at[True]}) == 3
    assert lf.at[1] == lf.at[1] and hash(lf.at[(1, "a")]) == hash(lf.at[(1, "a")])


def test_jit_does_not_reuse_the_result_of_an_equal_valued_key() -> None:
    tree = [jnp.zeros(1), jnp.ones(1)]
    get = jax.jit(lambda optic, t: optic.get_all(t), static_argnums=0)
    assert float(get(lf.at[1], tree)[0][0]) == 1.0
    with pytest.raises(lf.MissingStepError):
        get(lf.at[True], tree)


def test_an_optic_is_not_an_array() -> None:
    with pytest.raises(TypeError, match="is an optic, not an array"):
        jnp.asarray(lf.at.x)
    with pytest.raises(TypeError, match="is an optic, not an array"):
        np.asarray(lf.at["w"])
    with pytest.raises(TypeError, match="is an optic, not an array"):
        jnp.ones(2) + lf.at.x  # type: ignore[operator]


# ------------------------------------------------------------------- module layout


def _optics_imports() -> dict[str, set[str]]:
    """Which modules of lensify.optics each module of lensify.optics imports."""
    import ast
    import pathlib

    package = pathlib.Path(lf.optics.__file__).parent
    graph: dict[str, set[str]] = {}
    for source in package.glob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                imported |= {n.rpartition(".")[2] for n in names if n.startswith("lensify.optics.")}
        graph[source.stem] = imported - {source.stem}
    return graph


def test_steps_know_nothing_of_the_optic_and_no_optics_modules_import_in_a_loop() -> None:
    graph = _optics_imports()
    assert "_optic" not in graph["_steps"] and "_optic" not in graph["_traversals"]

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for module in graph.get(start, set()) - seen:
            if module == target or reaches(module, target, seen | {module}):
                return True
        return False

    assert [m for m in graph if reaches(m, m, set())] == []
