"""Strategies for optics valid on a given tree: lenses, traversals, and the predicates they use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from lensify import pytree
from lensify.optics import Optic, at
from lensify.testing._nodes import has_rigid_children

SearchStrategy = st.SearchStrategy


def is_float_array(x: Any) -> bool:
    """True for a jax or numpy array of floats: a structural :meth:`where` predicate.

    Example:
        >>> import numpy as np
        >>> import lensify as lf
        >>> from lensify.testing import is_float_array
        >>> tree = {"w": np.ones(2), "n": np.arange(2), "s": 1.0}
        >>> lf.at.leaves().where(is_float_array).paths(tree) == lf.at["w"].paths(tree)
        True
    """
    return pytree.is_inexact_array(x)


def is_matrix(x: Any) -> bool:
    """True for an array with two axes: a structural :meth:`where` predicate.

    Example:
        >>> import jax.numpy as jnp
        >>> from lensify.testing import is_matrix
        >>> is_matrix(jnp.ones((2, 3))), is_matrix(jnp.ones(3)), is_matrix([[1.0]])
        (True, False, False)
    """
    return pytree.is_array(x) and np.ndim(x) == 2


def is_container(x: Any) -> bool:
    """True for a node with children: a structural :meth:`where` predicate.

    Example:
        >>> from lensify.testing import is_container
        >>> is_container([1.0]), is_container([]), is_container(None), is_container(1.0)
        (True, False, False, False)
    """
    return bool(pytree.children(x))


_PREDICATES: tuple[Callable[[Any], bool], ...] = (is_float_array, is_matrix, is_container)


class _Node:
    """A node of a tree as the optic strategies see it."""

    __slots__ = ("path", "rigid", "value")

    def __init__(self, path: tuple[Any, ...], value: Any, rigid: bool) -> None:
        self.path = path  # the JAX key path
        self.value = value
        self.rigid = rigid  # its parent rebuilds only from children of its own kind


def _nodes(tree: Any) -> list[_Node]:
    """Every node of ``tree`` (the root, containers, leaves) with its key path."""
    found: list[_Node] = []
    left_out: set[tuple[Any, ...]] = set()  # and everything below them
    rigid: set[tuple[Any, ...]] = set()  # nodes whose children are rigid
    for path, node, pairs in pytree.walk(tree):
        if path in left_out or path[:-1] in left_out:
            left_out.add(path)
            continue
        found.append(_Node(path, node, bool(path) and path[:-1] in rigid))
        if has_rigid_children(node):
            rigid.add(path)
        for key, child in pairs or ():
            # A record keeps a plain function out of its children (a placeholder takes
            # its place), so a lens on that field would see the function, not the child.
            if isinstance(key, pytree.GetAttrKey) and getattr(node, key.name, child) is not child:
                left_out.add((*path, key))
    return found


def _attribute_of(node: Any, child: Any, siblings: Sequence[Any]) -> str | None:
    """The one attribute of ``node`` that holds ``child`` (and no sibling), if any."""
    if sum(1 for other in siblings if other is child) != 1:
        return None
    names = [name for name, v in getattr(node, "__dict__", {}).items() if v is child]
    return names[0] if len(names) == 1 else None


def _attribute_routes(tree: Any) -> list[tuple[Any, ...]]:
    """Routes that reach a child named by flat index through its attribute instead.

    A class registered with ``register_pytree_node`` keeps its children in attributes,
    but JAX names them by flat index; ``lf.at.w`` must select the same child as
    ``lf.at[<flat index 0>]`` in every operation.
    """
    routes: list[tuple[Any, ...]] = []
    named: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # a child's path -> its route
    for path, node, pairs in pytree.walk(tree):
        route = named.pop(path, None)
        if route is not None:
            routes.append(route)
        if not pairs or has_rigid_children(node):
            continue
        siblings = [child for _, child in pairs]
        for key, child in pairs:
            if isinstance(key, pytree.FlattenedIndexKey):
                name = _attribute_of(node, child, siblings)
                if name is not None:
                    child_path = (*path, key)
                    named[child_path] = (*path, pytree.GetAttrKey(name))
    return routes


def _settable(tree: Any) -> list[tuple[Any, ...]]:
    return [node.path for node in _nodes(tree) if not node.rigid]


def _focuses_settable(tree: Any, rigid: set[tuple[Any, ...]]) -> Callable[[Optic], bool]:
    def check(optic: Optic) -> bool:
        return not rigid or not any(tuple(p) in rigid for p in optic.paths(tree))

    return check


def _is_prefix(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) <= len(b) and tuple(b[: len(a)]) == tuple(a)


def _disjoint_pairs(paths: Sequence[tuple[Any, ...]]) -> list[tuple[Any, Any]]:
    return [
        (a, b)
        for i, a in enumerate(paths)
        for b in paths[i + 1 :]
        if not _is_prefix(a, b) and not _is_prefix(b, a)
    ]


def _types_in(tree: Any) -> list[type]:
    types = {type(node.value) for node in _nodes(tree) if node.value is not None}
    return sorted(types, key=lambda t: (t.__module__, t.__qualname__))


def lenses_for(tree: Any) -> SearchStrategy[Any]:
    """Path optics (``lf.at[...]...``) to a node that exists in ``tree``, root included.

    Example:
        >>> from hypothesis import given, settings
        >>> from lensify.testing import lenses_for
        >>> tree = {"a": [1.0, 2.0], "b": None}
        >>> @settings(max_examples=10, deadline=None)
        ... @given(lenses_for(tree))
        ... def test_get_works(optic):
        ...     optic.get(tree)
        >>> test_get_works()
    """
    return st.sampled_from(_settable(tree)).map(at.from_path)


def traversals_for(tree: Any) -> SearchStrategy[Any]:
    """Traversals valid for ``tree``: ``each``, ``leaves``, ``where``, ``instances_of``, ``|``.

    Each starts from a path that exists in ``tree``; ``where`` predicates look only at
    types and shapes (:func:`is_float_array`, :func:`is_matrix`,
    :func:`is_container`), so the default updates of :func:`check_traversal_laws`
    keep the selection; unions join two paths that do not overlap.

    Example:
        >>> from hypothesis import given, settings
        >>> from lensify.testing import traversals_for
        >>> tree = {"a": [1.0, 2.0], "b": None}
        >>> @settings(max_examples=10, deadline=None)
        ... @given(traversals_for(tree))
        ... def test_get_all_works(optic):
        ...     optic.get_all(tree)
        >>> test_get_all_works()
    """
    paths = [node.path for node in _nodes(tree)]
    rigid = {node.path for node in _nodes(tree) if node.rigid}
    starts = st.sampled_from(paths).map(at.from_path)
    options = [
        starts.map(lambda o: o.each()),
        starts.map(lambda o: o.leaves()),
        starts.map(lambda o: o.each().each()),
        st.builds(lambda o, p: o.leaves().where(p), starts, st.sampled_from(_PREDICATES)),
        st.builds(lambda o, p: o.each().where(p), starts, st.sampled_from(_PREDICATES)),
    ]
    types = _types_in(tree)
    if types:
        chosen = st.lists(st.sampled_from(types), min_size=1, max_size=2, unique=True)
        options.append(st.builds(lambda o, ts: o.instances_of(*ts), starts, chosen))
    pairs = _disjoint_pairs(paths)
    if pairs:
        options.append(
            st.sampled_from(pairs).map(lambda ab: at.from_path(ab[0]) | at.from_path(ab[1]))
        )
    return st.one_of(*options).filter(_focuses_settable(tree, rigid))


def optics_for(tree: Any) -> SearchStrategy[Any]:
    """Optics valid for ``tree``: :func:`lenses_for` and :func:`traversals_for`.

    Every optic drawn can be applied to ``tree`` without a missing-step error.

    Example:
        >>> from hypothesis import given, settings
        >>> from lensify.testing import optics_for
        >>> tree = {"a": [1.0, 2.0], "b": None}
        >>> @settings(max_examples=10, deadline=None)
        ... @given(optics_for(tree))
        ... def test_paths_work(optic):
        ...     assert len(optic.paths(tree)) == len(optic.get_all(tree))
        >>> test_paths_work()
    """
    return st.one_of(lenses_for(tree), traversals_for(tree))


def attribute_lenses_for(tree: Any) -> SearchStrategy[Any]:
    """Lenses that reach a child of a custom node by its attribute, e.g. ``lf.at["layer"].w``.

    Classes registered with ``register_pytree_node`` or ``register_pytree_node_class``
    keep their children in attributes, but JAX names those children by flat index.
    An attribute lens must agree with JAX's key in every operation, ``mask`` and
    ``partition`` included. Nothing is drawn for a tree without such a node
    (hypothesis then rejects the example).

    Example:
        >>> import jax.numpy as jnp
        >>> from hypothesis import given, settings
        >>> from lensify.testing import FlatNode, attribute_lenses_for
        >>> tree = {"layer": FlatNode(jnp.ones(2), jnp.zeros(2))}
        >>> @settings(max_examples=5, deadline=None)
        ... @given(attribute_lenses_for(tree))
        ... def test_get_works(optic):
        ...     optic.get(tree)
        >>> test_get_works()
    """
    routes = _attribute_routes(tree)
    if not routes:
        return st.nothing()
    return st.sampled_from(routes).map(at.from_path)
