"""The flatten and rebuild generated per record class agree with the general code.

Each record class gets its flatten, unflatten, record_flatten and record_rebuild
written from its fields (``_fields.generate_codec``); they decide the common cases
themselves and must give exactly what the general code in ``_records`` gives, for
every kind of child: arrays, scalars, None, functions, containers with and without
functions, configuration entries, nested records, callable pytrees, tracers.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import attrs
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lensify as lf
from lensify import _fields, _records
from tests.builtin_wrappers import WRAPPERS


class Holder(lf.AbstractUnwrappable):
    a: Any
    b: Any = None
    label: str = lf.field(static=True, default="h")

    def unwrap(self) -> Any:
        return self.a


@attrs.frozen
class SlottedHolder(lf.AbstractUnwrappable):
    a: Any
    tag: int = lf.field(static=True, default=0)

    def unwrap(self) -> Any:
        return self.a


class NoChildren(lf.AbstractUnwrappable):
    tag: str = lf.field(static=True, default="none")

    def unwrap(self) -> Any:
        return self.tag


class CallableModule(eqx.Module):
    w: jax.Array

    def __call__(self, x: Any) -> Any:
        return self.w * x


Pair = namedtuple("Pair", "left right")


def _square(x: Any) -> Any:
    return x**2


def _children_kinds() -> dict[str, Any]:
    x = jnp.ones(3)
    return {
        "array": x,
        "numpy": np.ones(2),
        "float": 1.5,
        "int": 3,
        "none": None,
        "function": _square,
        "jitted": jnp.exp,
        "lambda": lambda v: v,
        "ufunc": jnp.add,
        "builtin": abs,
        "partial": functools.partial(_square),
        "tree_partial": jax.tree_util.Partial(_square),
        "callable_module": CallableModule(x),
        "class": float,
        "empty_tuple": (),
        "tuple": (x, 2.0),
        "tuple_one": (x,),
        "tuple_function": (x, _square),
        "list": [x, None],
        "list_function": [jnp.exp],
        "empty_dict": {},
        "dict": {"k": x},
        "dict_function": {"f": jnp.sin, "k": x},
        "namedtuple": Pair(x, 1.0),
        "record": lf.positive(x),
        "parameterize": lf.Parameterize(jnp.exp, x),
    }


def _records_to_check() -> dict[str, Any]:
    kinds = _children_kinds()
    found: dict[str, Any] = {name: build() for name, build in WRAPPERS.items()}
    found = {k: v for k, v in found.items() if isinstance(v, _records.Record)}
    for name, child in kinds.items():
        found[f"holder_{name}"] = Holder(child)
        found[f"holder_{name}_and_function"] = Holder(child, jnp.tanh, label=name)
        found[f"holder_function_and_{name}"] = Holder(jnp.tanh, child)
        found[f"slotted_{name}"] = SlottedHolder(child, tag=1)
        found[f"parameterize_fn_{name}"] = lf.Parameterize(_square, child)
        found[f"parameterize_args_{name}"] = lf.Parameterize(_square, jnp.ones(2), child)
        found[f"parameterize_kwargs_{name}"] = lf.Parameterize(_square, k=child)
        if callable(child):
            found[f"parameterize_callable_{name}"] = lf.Parameterize(child, jnp.ones(2))
    found["no_children"] = NoChildren()
    found["parameterize_config"] = lf.Parameterize(jnp.clip, jnp.ones(3), 0, k=-1, mode="x")
    found["parameterize_no_args"] = lf.Parameterize(jnp.zeros)
    found["parameterize_two_functions"] = lf.Parameterize(_square, jnp.exp)
    found["parameterize_wrapped_fn"] = lf.Parameterize(lf.NonTrainable(_square), jnp.ones(2))
    return found


RECORDS = _records_to_check()


def _same(a: Any, b: Any) -> bool:
    """Children are the same objects, or equal containers of the same objects."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) in (tuple, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return False


def _fields_of(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in attrs.fields(type(obj))}


def _check_rebuilt(new: Any, old: Any) -> None:
    assert type(new) is type(old)
    assert _same(list(_fields_of(new).values()), list(_fields_of(old).values()))
    assert getattr(new, "__dict__", {}).get("_lf_config") == getattr(old, "__dict__", {}).get(
        "_lf_config"
    )


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_generated_flatten_and_rebuild_equal_the_general_code(name: str) -> None:
    obj = RECORDS[name]
    cls = type(obj)
    codec = cls._lf_codec
    for fast, general in (
        (codec.record_flatten, _records._flatten_general),
        (codec.flatten, _records._registry_flatten_general),
    ):
        children, aux = fast(obj)
        expected_children, expected_aux = general(obj)
        assert type(children) is tuple
        assert _same(children, expected_children)
        assert aux == expected_aux and hash(aux) == hash(expected_aux)
    children, aux = codec.record_flatten(obj)
    fast = codec.record_rebuild(aux, children)
    _check_rebuilt(fast, _records._rebuild_general(cls, aux, children))
    _check_rebuilt(fast, obj)
    children, aux = codec.flatten(obj)
    fast = codec.unflatten(aux, children)
    _check_rebuilt(fast, _records._registry_unflatten_general(cls, aux, children))
    _check_rebuilt(fast, obj)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_round_trips_through_jax_keep_structure_and_keys(name: str) -> None:
    obj = RECORDS[name]
    leaves, treedef = jax.tree_util.tree_flatten(obj)
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert jax.tree_util.tree_structure(again) == treedef
    assert lf.tree_equal(again, obj)
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(obj)[0]]
    assert len(paths) == len(leaves)


def test_generated_functions_see_tracers_as_children() -> None:
    tree = [lf.positive(jnp.ones(2)), lf.Parameterize(jnp.exp, jnp.zeros(2)), Holder(1.0)]

    def through(t: Any) -> Any:
        leaves, treedef = jax.tree_util.tree_flatten(t)
        for record in t:
            aux = type(record)._lf_codec.flatten(record)[1]
            assert aux == _records._registry_flatten_general(record)[1]
        return jax.tree_util.tree_unflatten(treedef, [leaf * 2 for leaf in leaves])

    out = jax.jit(lambda t: lf.unwrap(through(t)))(tree)
    assert jnp.allclose(out[1], jnp.ones(2))
    assert jax.grad(lambda t: lf.unwrap(through(t))[0].sum())(tree)[0].raw.shape == (2,)


def test_a_record_rebuilt_with_other_children_keeps_the_general_code_s_config() -> None:
    wrapper = lf.Parameterize(jnp.clip, jnp.ones(3), 0, k=-1)
    children, aux = _records.split(wrapper)
    rebuilt = _records.join(type(wrapper), aux, children)
    assert rebuilt.__dict__["_lf_config"] == wrapper.__dict__["_lf_config"]


def test_plain_types_are_learned_only_for_types_kept_alive_anyway() -> None:
    class Passing:
        pass

    _records.split(Holder(Passing()))
    assert Passing not in _fields._PLAIN
    assert type(jnp.ones(1)) in _fields._PLAIN


@pytest.mark.parametrize(
    "build",
    [
        lambda: lf.NonTrainable(jnp.ones(2)),
        lambda: lf.positive(jnp.ones(2)),
        lambda: lf.interval(0.5, 0.0, 1.0),
        lambda: lf.Parameterize(jnp.exp, jnp.ones(2)),
        lambda: lf.Parameterize(jnp.exp, jnp.ones(2), 2.0, k=jnp.ones(())),
        lambda: lf.WeightNormalization(jnp.ones((2, 3))),
    ],
)
def test_the_common_cases_never_reach_the_general_code(
    build: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = [build(), build()]
    leaves, treedef = jax.tree_util.tree_flatten(tree)  # types seen once

    def refuse(*_: Any) -> Any:
        raise AssertionError("the general code ran")

    for record in [*tree, tree[0].__dict__.get("scale")]:
        if record is None:
            continue
        namespace = type(record)._lf_codec.flatten.__globals__
        for name in list(namespace):
            if name.startswith("_general_"):
                monkeypatch.setitem(namespace, name, refuse)
    assert jax.tree_util.tree_flatten(tree) == (leaves, treedef)
    assert lf.tree_equal(jax.tree_util.tree_unflatten(treedef, leaves), tree)
    children, aux = _records.split(tree[0])
    assert lf.tree_equal(_records.join(type(tree[0]), aux, children), tree[0])


def test_records_of_one_function_share_one_structure() -> None:
    first, second = lf.Parameterize(jnp.exp, jnp.ones(2)), lf.Parameterize(jnp.exp, jnp.zeros(3))
    assert type(first)._lf_codec.flatten(first)[1] is type(second)._lf_codec.flatten(second)[1]
    assert _records.split(first)[1] is _records.split(second)[1]


def test_a_bound_method_is_never_replaced_by_an_equal_one() -> None:
    class Scale:
        def times(self, x: Any) -> Any:
            return 2 * x

    scale = Scale()
    first, second = scale.times, scale.times
    assert first == second and first is not second
    for method in (first, second):
        record = lf.Parameterize(method, jnp.ones(2))
        leaves, treedef = jax.tree_util.tree_flatten(record)
        assert jax.tree_util.tree_unflatten(treedef, leaves).fn is method


def test_the_shared_structures_are_bounded() -> None:
    functions = [eval("lambda x: x") for _ in range(2 * _fields._HOISTED_LIMIT)]
    for fn in functions:
        record = lf.Parameterize(fn, jnp.ones(2))
        leaves, treedef = jax.tree_util.tree_flatten(record)
        assert jax.tree_util.tree_unflatten(treedef, leaves).fn is fn
    namespace = lf.Parameterize._lf_codec.flatten.__globals__
    assert len(namespace["_HOISTED_0"]) <= _fields._HOISTED_LIMIT


def test_a_function_put_in_kwargs_in_place_is_seen_by_the_next_flatten() -> None:
    record = lf.Parameterize(jnp.exp, jnp.ones(2))
    before = jax.tree_util.tree_structure(record)
    record.kwargs["k"] = jnp.sin
    after = jax.tree_util.tree_structure(record)
    assert after != before
    expected = _records._registry_flatten_general(record)[1]
    assert type(record)._lf_codec.flatten(record)[1] == expected
    del record.kwargs["k"]
    assert jax.tree_util.tree_structure(record) == before
