"""The tree strategy: node kinds nested over leaves, with a short repr however deep."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from hypothesis import strategies as st

from lensify.testing._leaves import default_leaves
from lensify.testing._nodes import CONTAINERS, NodeFactory

SearchStrategy = st.SearchStrategy


class Nesting(NamedTuple):
    """How one public tree strategy nests: its leaves, node kinds, width and wrapper.

    Its repr is that public call, so the strategies built from it print short.
    """

    call: str
    leaves: SearchStrategy[Any]
    nodes: tuple[NodeFactory, ...]
    width: int
    wrap: Callable[[SearchStrategy[Any]], SearchStrategy[Any]] | None = None

    def __repr__(self) -> str:
        return self.call


@functools.lru_cache(maxsize=256)
def level(nesting: Nesting, depth: int) -> SearchStrategy[Any]:
    """Leaves, or nodes (and wrappers) of subtrees at most ``depth`` deep."""
    if depth <= 0:
        return nesting.leaves
    children = _subtrees(nesting, depth - 1)
    kinds = [kind(children, nesting.width) for kind in nesting.nodes]
    options = [nesting.leaves, st.one_of(*kinds)]
    if nesting.wrap is not None:
        options.append(nesting.wrap(children))
    return st.one_of(*options)


# Each level is drawn through a composite, which prints as its call
# (``_subtrees(nesting=pytrees(...), depth=2)``). Nested plainly, every level would print the whole
# level below it once per node kind: a repr exponential in the depth, which
# hypothesis builds (and warns about) while shrinking.
@st.composite
def _subtrees(draw: st.DrawFn, nesting: Nesting, depth: int) -> Any:
    return draw(level(nesting, depth))


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_shown, value)) + "]"
    return getattr(value, "__name__", None) or repr(value)


def call(name: str, **arguments: Any) -> str:
    """``name(key=value, ...)`` as code, functions by name: a strategy's repr."""
    shown = ", ".join(f"{key}={_shown(value)}" for key, value in arguments.items())
    return f"{name}({shown})"


@functools.lru_cache(maxsize=64)
def tree_strategy(
    max_depth: int,
    max_children: int,
    leaves: SearchStrategy[Any] | None,
    nodes: tuple[NodeFactory, ...],
) -> SearchStrategy[Any]:
    """The strategy behind :func:`pytrees`, built once per argument set."""
    shown = call(
        "pytrees", max_depth=max_depth, max_children=max_children, leaves=leaves, nodes=nodes
    )
    leaf = default_leaves() if leaves is None else leaves
    return level(Nesting(shown, leaf, nodes, max_children), max_depth)


# A composite, so the strategy's repr is the call that built it, not the whole
# (large) nest of strategies it draws from.
@st.composite
def pytrees(
    draw: st.DrawFn,
    *,
    max_depth: int = 3,
    max_children: int = 4,
    leaves: SearchStrategy[Any] | None = None,
    nodes: Sequence[NodeFactory] | None = None,
) -> Any:
    """Pytrees of dicts, lists, tuples, namedtuples, attrs records and ``None``.

    Leaves are small float32 jax and numpy arrays, Python ints and floats (or what
    ``leaves`` draws). Dict keys are strings, so every tree flattens; nodes use
    module-level classes (:class:`TreePair`, :class:`TreeRecord`, ...), so two draws of
    the same tree compare equal under :func:`lensify.tree_equal`.

    The defaults draw the plain kinds. The trees users bring hold more: pass
    ``nodes=ALL_NODES`` for classes registered with ``register_pytree_node`` (keys are
    flat indices), ``Partial``, ``OrderedDict``, ``defaultdict`` and equinox Modules,
    and ``leaves=all_leaves()`` for half-precision and complex arrays, PRNG key arrays
    and ``jax.ShapeDtypeStruct`` leaves. lensify's own law tests draw both.

    Args:
        max_depth: Nodes nest at most this deep.
        max_children: A node has at most this many children.
        leaves: The strategy for leaves; :func:`default_leaves` if omitted.
        nodes: The node kinds (:data:`NodeFactory` functions); :data:`CONTAINERS`
            if omitted.

    Example:
        >>> import jax
        >>> from hypothesis import given, settings
        >>> from lensify.testing import pytrees
        >>> @settings(max_examples=10, deadline=None)
        ... @given(pytrees(max_depth=2, max_children=2))
        ... def test_bounded(tree):
        ...     assert len(jax.tree_util.tree_leaves(tree)) <= 4
        >>> test_bounded()
    """
    kinds = CONTAINERS if nodes is None else tuple(nodes)
    return draw(tree_strategy(max_depth, max_children, leaves, kinds))
