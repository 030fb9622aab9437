"""The registry boundary: the one module that knows how a pytree node flattens.

Everything else in lensify asks this module for a node's children (with their JAX
keys) and for a node rebuilt with new children. By default that is JAX's registry,
so equinox Modules, flax structs, registered dataclasses, namedtuples and ``None``
behave exactly as JAX says.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optree

__all__ = [
    "DictKey",
    "FlattenedIndexKey",
    "GetAttrKey",
    "LEAF_BASES",
    "PLAIN_TYPES",
    "SequenceKey",
    "child_list",
    "children",
    "flatten",
    "flatten_with_path",
    "is_array",
    "is_array_like",
    "is_inexact_array",
    "is_key_array",
    "is_namedtuple",
    "is_node",
    "keystr",
    "leaves",
    "rebuild",
    "register_keyless_node",
    "register_node",
    "register_static",
    "structure",
    "tree_map",
    "tree_equal",
    "unflatten",
    "walk",
]

DictKey = jtu.DictKey
SequenceKey = jtu.SequenceKey
GetAttrKey = jtu.GetAttrKey
FlattenedIndexKey = jtu.FlattenedIndexKey

flatten = jtu.tree_flatten
unflatten = jtu.tree_unflatten
structure = jtu.tree_structure
flatten_with_path = jtu.tree_flatten_with_path
leaves = jtu.tree_leaves
tree_map = jtu.tree_map

_ARRAY_TYPES: tuple[type, ...] = (jax.Array, np.ndarray, np.generic)

_SCALAR_TYPES: tuple[type, ...] = (int, float, complex, bool, str, bytes)
# Types no pytree node can be an instance of (nor of a subclass): JAX's leaves.
LEAF_BASES: tuple[type, ...] = (*_ARRAY_TYPES, *_SCALAR_TYPES)
# Exact types JAX always treats as leaves; checked before asking the registry.
# Array types (jax's concrete array, tracers) join on first sight: they are never
# nodes, and a set lookup is much cheaper than a registry query.
_LEAF_TYPES: set[type] = {*_SCALAR_TYPES, np.ndarray}
# The leaf types and None: values that hold nothing to traverse.
PLAIN_TYPES: set[type] = {*_LEAF_TYPES, type(None)}


def keystr(path: Sequence[Any]) -> str:
    """Render a key path as code, e.g. ``['layers'][0].weight``; ``<root>`` if empty."""
    return jtu.keystr(tuple(path)) if path else "<root>"


def is_array(x: Any) -> bool:
    """True for jax and numpy arrays and numpy scalars."""
    return isinstance(x, _ARRAY_TYPES)


def is_array_like(x: Any) -> bool:
    """True for arrays and for ``jax.ShapeDtypeStruct`` (an abstract model's leaves)."""
    return isinstance(x, (*_ARRAY_TYPES, jax.ShapeDtypeStruct))


def is_inexact_array(x: Any) -> bool:
    """True for float and complex arrays, bfloat16 and the float8 types included."""
    # numpy does not count JAX's extra float types (bfloat16, float8_*) as inexact.
    return isinstance(x, _ARRAY_TYPES) and jnp.issubdtype(cast(Any, x).dtype, jnp.inexact)


def is_key_array(x: Any) -> bool:
    """True for an array of new-style PRNG keys (``jax.random.key``)."""
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def is_namedtuple(x: Any) -> bool:
    """True for an instance of a namedtuple class."""
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _one_level_structure(x: Any) -> Any:
    return jtu.tree_structure(x, is_leaf=lambda y: y is not x)


if hasattr(jtu, "is_tree_node"):

    def _is_tree_node(x: Any) -> bool:
        return bool(jtu.is_tree_node(type(x)))

    def _flatten_one_level_with_keys(node: Any) -> list[tuple[Any, Any]]:
        return list(jtu.flatten_one_level_with_keys(node)[0])

    def _flatten_one_level(node: Any) -> list[Any]:
        return list(jtu.flatten_one_level(node)[0])

else:  # jax < 0.7 (the last releases for Python 3.10) lacks the one-level API.

    def _is_tree_node(x: Any) -> bool:
        return not jtu.treedef_is_leaf(_one_level_structure(x)) or x is None

    def _flatten_one_level_with_keys(node: Any) -> list[tuple[Any, Any]]:
        pairs = jtu.tree_flatten_with_path(node, is_leaf=lambda y: y is not node)[0]
        return [(path[0], child) for path, child in pairs]

    def _flatten_one_level(node: Any) -> list[Any]:
        return jtu.tree_flatten(node, is_leaf=lambda y: y is not node)[0]


def is_node(x: Any) -> bool:
    """True if JAX's registry flattens ``x`` (``None`` and empty containers included)."""
    t = type(x)
    if t in _LEAF_TYPES:
        return False
    if _is_tree_node(x):
        return True
    if issubclass(t, (jax.Array, jax.core.Tracer)):
        _LEAF_TYPES.add(t)
        PLAIN_TYPES.add(t)
    return False


# Node types that say for themselves what their children are, one level at a time.
# Records use it to keep functions held in their structure out of the children.
_Children = Callable[[Any], list[tuple[Any, Any]]]
_ONE_LEVEL: dict[type, tuple[_Children, Callable[[Any, Any], Any]]] = {}


def register_node(
    cls: type,
    *,
    flatten_with_keys: Callable[[Any], tuple[Any, Hashable]],
    flatten: Callable[[Any], tuple[Any, Hashable]],
    unflatten: Callable[[Any, Any], Any],
    children: _Children | None = None,
    rebuild: Callable[[Any, Any], Any] | None = None,
    optree_flatten: Callable[[Any], tuple[Any, Hashable, Any]] | None = None,
) -> None:
    """Register ``cls`` with JAX's registry, keys and all.

    ``children`` and ``rebuild``, given together, replace the one-level view of
    :func:`children` and :func:`rebuild` for instances of ``cls``. With
    ``optree_flatten`` (children, aux data and attribute names), ``cls`` is also
    registered with optree, in the ``"lensify"`` namespace.
    """
    jtu.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten_func=flatten)
    if children is not None and rebuild is not None:
        _ONE_LEVEL[cls] = (children, rebuild)
    if optree_flatten is not None:
        optree.register_pytree_node(
            cls,
            optree_flatten,
            unflatten,
            path_entry_type=optree.GetAttrEntry,
            namespace="lensify",
        )


def register_keyless_node(
    cls: type, flatten: Callable[[Any], tuple[Any, Hashable]], unflatten: Callable[[Any, Any], Any]
) -> None:
    """Register ``cls`` as ``jax.tree_util.register_pytree_node`` does, without keys.

    JAX then names its children by flat index (``FlattenedIndexKey``), as it does for
    every class users register that way or with ``register_pytree_node_class``.
    """
    jtu.register_pytree_node(cls, flatten, unflatten)


def register_static(cls: type) -> None:
    """Register ``cls`` as a node with no children: its instances are tree structure.

    Instances must be hashable and compare equal when interchangeable; ``jax.jit``
    then takes them as (static) arguments like any tree, retracing only for a new value.
    """
    jtu.register_static(cls)


def children(node: Any) -> list[tuple[Any, Any]] | None:
    """The ``(key, child)`` pairs of a node, in JAX's order; None for a leaf."""
    t = type(node)
    if t is dict:
        return [(DictKey(k), node[k]) for k in sorted(node)]
    if t is list or t is tuple:
        return [(SequenceKey(i), c) for i, c in enumerate(node)]
    hook = _ONE_LEVEL.get(t)
    if hook is not None:
        return hook[0](node)
    if t in _LEAF_TYPES or not _is_tree_node(node):
        return None
    if is_namedtuple(node):
        # A namedtuple. JAX's one-level flatten with keys misnames the children
        # that follow a None child (jax 0.10), so the field names are used here.
        return [(GetAttrKey(name), c) for name, c in zip(t._fields, node, strict=True)]
    return _flatten_one_level_with_keys(node)


def child_list(node: Any) -> list[Any] | None:
    """The children of a node as :func:`children` gives them, without their keys
    (a cheaper flatten for a node registered with keys); None for a leaf."""
    t = type(node)
    if t is dict or t in _ONE_LEVEL:  # a namedtuple's flatten is right without keys
        pairs = children(node)
        return None if pairs is None else [child for _, child in pairs]
    if t in _LEAF_TYPES or not _is_tree_node(node):
        return None
    return _flatten_one_level(node)


def walk(tree: Any) -> Iterator[tuple[tuple[Any, ...], Any, list[tuple[Any, Any]] | None]]:
    """Every node of ``tree``, the root first, as ``(key path, node, its children)``.

    The children are :func:`children`'s ``(key, child)`` pairs, None for a leaf; a
    node comes before its children, which come in JAX's order, so the leaves come in
    flatten order and their key paths are JAX's. Nothing is copied or rebuilt.

    Example:
        >>> [keystr(path) for path, _, pairs in walk({"b": [1.0], "a": 2.0}) if pairs is None]
        ["['a']", "['b'][0]"]
    """
    stack: list[tuple[tuple[Any, ...], Any]] = [((), tree)]
    while stack:
        path, node = stack.pop()
        pairs = children(node)
        yield path, node, pairs
        if pairs:
            stack.extend(((*path, key), child) for key, child in reversed(pairs))


def rebuild(node: Any, new_children: Sequence[Any]) -> Any:
    """``node`` with its children (in the order :func:`children` gives) replaced."""
    t = type(node)
    if t is dict:
        return dict(zip(sorted(node), new_children, strict=True))
    if t is list:
        return list(new_children)
    if t is tuple:
        return tuple(new_children)
    hook = _ONE_LEVEL.get(t)
    if hook is not None:
        return hook[1](node, new_children)
    # One level of structure: everything below the node is treated as a leaf.
    return jtu.tree_unflatten(_one_level_structure(node), list(new_children))


def _leaf_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if is_array(a) or is_array(b):
        if isinstance(a, jax.core.Tracer) or isinstance(b, jax.core.Tracer):
            return False
        if is_key_array(a) or is_key_array(b):  # numpy cannot hold PRNG keys
            return (
                is_key_array(a)
                and is_key_array(b)
                and a.dtype == b.dtype
                and _leaf_equal(jax.random.key_data(a), jax.random.key_data(b))
            )
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        return (
            a_arr.shape == b_arr.shape
            and a_arr.dtype == b_arr.dtype
            and bool(np.array_equal(a_arr, b_arr, equal_nan=a_arr.dtype.kind in "fc"))
        )
    try:
        return bool(a == b)
    except Exception:  # incomparable leaves are simply unequal
        return False


def tree_equal(a: Any, b: Any) -> bool:
    """True if ``a`` and ``b`` have the same tree structure and equal leaves.

    Arrays (jax or numpy) are equal if they have the same shape, dtype and values,
    NaN equal to NaN; other leaves compare with ``==``. Wrappers compare this way
    too, static fields and functions included. Traced arrays are never equal.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.tree_equal({"w": jnp.ones(2)}, {"w": jnp.ones(2)})
        True
        >>> lf.tree_equal({"w": jnp.ones(2)}, {"w": jnp.ones(2, jnp.int32)})
        False
        >>> lf.tree_equal(lf.positive(1.0), lf.positive(1.0))
        True
    """
    a_leaves, a_def = jtu.tree_flatten(a)
    b_leaves, b_def = jtu.tree_flatten(b)
    if cast(Any, a_def) != b_def:  # jaxlib's stubs give PyTreeDef no __ne__
        return False
    return all(_leaf_equal(x, y) for x, y in zip(a_leaves, b_leaves, strict=True))
