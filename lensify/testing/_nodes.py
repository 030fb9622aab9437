"""Node kinds for the tree strategies: containers, records, and nodes registered as users do.

A :data:`NodeFactory` turns a strategy of children into a strategy of nodes holding
them. :data:`CONTAINERS` are the kinds :func:`~lensify.testing.pytrees` draws by
default; :data:`USER_NODES` are the kinds users bring from elsewhere (classes
registered with ``jax.tree_util.register_pytree_node`` or
``register_pytree_node_class``, whose children JAX names by flat index;
``jax.tree_util.Partial``; ``OrderedDict``; ``defaultdict``; equinox Modules with a
static field, when equinox is installed).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, NamedTuple

from hypothesis import strategies as st
from jax.tree_util import Partial

import lensify as lf
from lensify import pytree

SearchStrategy = st.SearchStrategy

#: A function from a strategy of children and a width (at most that many children)
#: to a strategy of nodes holding them: how the tree strategies learn a node kind.
NodeFactory = Callable[[SearchStrategy[Any], int], SearchStrategy[Any]]

_KEYS = ("a", "b", "w", "bias", "scale")


class TreePair(NamedTuple):
    """A namedtuple node, as :func:`~lensify.testing.pytrees` draws them.

    Example:
        >>> import jax
        >>> from lensify.testing import TreePair
        >>> jax.tree_util.tree_leaves(TreePair(1.0, {"a": 2.0}))
        [1.0, 2.0]
    """

    left: Any
    right: Any


class TreeRecord(pytree.Record):
    """An attrs record node with two children and a static label (see ``pytrees``).

    Example:
        >>> import jax
        >>> from lensify.testing import TreeRecord
        >>> jax.tree_util.tree_leaves(TreeRecord(1.0, [2.0], label="x"))
        [1.0, 2.0]
    """

    left: Any
    right: Any
    label: str = lf.field(static=True, default="node")


class FlatNode:
    """A node registered with ``register_pytree_node``, no keys: a layer as users write one.

    Its two children are the attributes ``w`` and ``b``; JAX names them by flat index
    (``FlattenedIndexKey(0)`` and ``(1)``), not by attribute.

    Example:
        >>> import jax
        >>> from lensify.testing import FlatNode
        >>> pairs = jax.tree_util.tree_flatten_with_path(FlatNode(1.0, 2.0))[0]
        >>> [jax.tree_util.keystr(path) for path, _ in pairs]
        ['[<flat index 0>]', '[<flat index 1>]']
    """

    def __init__(self, w: Any, b: Any) -> None:
        self.w = w
        self.b = b

    def __repr__(self) -> str:
        return f"FlatNode(w={self.w!r}, b={self.b!r})"


def _flat_node_flatten(node: FlatNode) -> tuple[tuple[Any, Any], None]:
    return (node.w, node.b), None


def _flat_node_unflatten(_: None, children: Any) -> FlatNode:
    return FlatNode(*children)


pytree.register_keyless_node(FlatNode, _flat_node_flatten, _flat_node_unflatten)


class ClassNode:
    """A node with ``tree_flatten``/``tree_unflatten`` methods, as ``register_pytree_node_class``
    registers one: any number of children, by flat index, and a static label.

    Example:
        >>> import jax
        >>> from lensify.testing import ClassNode
        >>> jax.tree_util.tree_leaves(ClassNode((1.0, 2.0), label="x"))
        [1.0, 2.0]
    """

    def __init__(self, parts: tuple[Any, ...], label: str = "node") -> None:
        self.parts = tuple(parts)
        self.label = label

    def tree_flatten(self) -> tuple[tuple[Any, ...], str]:
        return self.parts, self.label

    @classmethod
    def tree_unflatten(cls, label: str, children: Any) -> ClassNode:
        return cls(tuple(children), label)

    def __repr__(self) -> str:
        return f"ClassNode({self.parts!r}, label={self.label!r})"


pytree.register_keyless_node(ClassNode, ClassNode.tree_flatten, ClassNode.tree_unflatten)


def partial_target(*args: Any, **kwargs: Any) -> Any:
    """The function every drawn ``jax.tree_util.Partial`` holds (module level: it pickles)."""
    return args, kwargs


def has_rigid_children(node: Any) -> bool:
    """True for a node whose direct children cannot be replaced by arbitrary values.

    ``jax.tree_util.Partial`` rebuilds itself as ``Partial(func, *args, **keywords)``,
    so its children must stay a sequence and a mapping: a law that sets arbitrary
    values leaves them alone (and sets values inside them).
    """
    return isinstance(node, Partial)


def _lists(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    return st.lists(children, max_size=width)


def _tuples(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    return st.lists(children, max_size=width).map(tuple)


def _dicts(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    return st.dictionaries(st.sampled_from(_KEYS), children, max_size=width)


def _pairs(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    return st.builds(TreePair, children, children)


def _records_of(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    return st.builds(TreeRecord, children, children, label=st.sampled_from(("p", "q")))


def _flat_nodes(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    return st.builds(FlatNode, children, children)


def _class_nodes(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    return st.builds(ClassNode, _tuples(children, width), st.sampled_from(("p", "q")))


def _partials(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    def build(args: list[Any], kwargs: dict[str, Any]) -> Partial:
        return Partial(partial_target, *args, **kwargs)

    half = max(width // 2, 1)
    return st.builds(build, _lists(children, half), _dicts(children, half))


def _ordered_dicts(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    # Keys in drawn order: an OrderedDict flattens in insertion order, not sorted.
    keys = st.lists(st.sampled_from(_KEYS), unique=True, max_size=width)
    return keys.flatmap(
        lambda ks: st.lists(children, min_size=len(ks), max_size=len(ks)).map(
            lambda vs: collections.OrderedDict(zip(ks, vs, strict=True))
        )
    )


def _default_dicts(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    return _dicts(children, width).map(lambda d: collections.defaultdict(list, d))


#: The node kinds :func:`~lensify.testing.pytrees` draws by default: lists, tuples,
#: dicts with string keys, namedtuples (:class:`TreePair`) and attrs records
#: (:class:`TreeRecord`).
CONTAINERS: tuple[NodeFactory, ...] = (_lists, _tuples, _dicts, _pairs, _records_of)

_user_nodes: list[NodeFactory] = [
    _flat_nodes,
    _class_nodes,
    _partials,
    _ordered_dicts,
    _default_dicts,
]

try:
    import equinox as eqx
except ImportError:  # equinox is optional: its Modules are drawn only when installed
    pass
else:

    class EqxNode(eqx.Module):
        """An equinox Module with two children and a static field (when equinox is installed)."""

        left: Any
        right: Any
        label: str = eqx.field(static=True, default="node")

    def _eqx_nodes(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
        return st.builds(EqxNode, children, children, label=st.sampled_from(("p", "q")))

    _user_nodes.append(_eqx_nodes)

#: Node kinds users bring from elsewhere: :class:`FlatNode` (``register_pytree_node``),
#: :class:`ClassNode` (``register_pytree_node_class``), ``jax.tree_util.Partial``,
#: ``OrderedDict``, ``defaultdict(list)``, and an equinox Module with a static field
#: when equinox is installed.
USER_NODES: tuple[NodeFactory, ...] = tuple(_user_nodes)

#: Every node kind: :data:`CONTAINERS` and :data:`USER_NODES`.
ALL_NODES: tuple[NodeFactory, ...] = CONTAINERS + USER_NODES
