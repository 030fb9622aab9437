"""Traversal steps: any number of foci, found and rebuilt in one pass over a node.

Like the lens steps of :mod:`lensify.optics._steps`, each offers ``values``,
``items`` and ``modify`` on one node. ``.leaves()`` and ``.instances_of(...)``
compile to a :class:`LeafScan`, into which the ``.where(...)`` steps that follow
fuse. A :class:`Union` only holds the chains of steps it joins; the executor runs
them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from lensify import _tree
from lensify._functions import callable_name
from lensify.optics._failures import StepError, StepLookupError, predicate_failure
from lensify.optics._steps import chain_code

__all__ = ["Each", "InstancesOf", "LeafScan", "Leaves", "Slice", "Union", "Where"]

Path = tuple[Any, ...]
Continuation = Callable[[Any], Any]


@attrs.frozen
class Slice:
    """Focus on the items of a list or tuple selected by a slice."""

    start: int | None
    stop: int | None
    step: int | None

    def code(self, method_names: frozenset[str]) -> str:
        parts = ["" if v is None else str(v) for v in (self.start, self.stop)]
        text = ":".join(parts)
        return f"[{text}:{self.step}]" if self.step is not None else f"[{text}]"

    def _indices(self, node: Any) -> range:
        if not isinstance(node, list | tuple):
            failure = StepLookupError(f"slice {self.code(frozenset())}", node, [], "")
            failure.hint = "Only a list or a tuple can be sliced."
            raise failure
        return range(len(node))[slice(self.start, self.stop, self.step)]

    def values(self, node: Any) -> list[Any]:
        return [node[i] for i in self._indices(node)]

    def items(self, node: Any) -> list[tuple[Path, Any]]:
        pairs = _tree.children(node) or []
        return [((pairs[i][0],), pairs[i][1]) for i in self._indices(node)]

    def modify(self, node: Any, k: Continuation) -> Any:
        indices = self._indices(node)
        if _tree.is_namedtuple(node):
            fields = type(node)._fields
            return node._replace(**{fields[i]: k(node[i]) for i in indices})
        new = list(node)
        for i in indices:
            new[i] = k(node[i])
        return new if type(node) is list else tuple(new)


@attrs.frozen
class Each:
    """Focus on every immediate child of a node, as the registry lists them."""

    def code(self, method_names: frozenset[str]) -> str:
        return ".each()"

    def values(self, node: Any) -> list[Any]:
        cls = type(node)
        if cls is list or cls is tuple:
            return list(node)
        return [c for _, c in _tree.children(node) or ()]

    def items(self, node: Any) -> list[tuple[Path, Any]]:
        return [((key,), child) for key, child in _tree.children(node) or ()]

    def modify(self, node: Any, k: Continuation) -> Any:
        cls = type(node)
        if cls is list:
            return [k(c) for c in node]
        if cls is tuple:
            return tuple(k(c) for c in node)
        pairs = _tree.children(node)
        if not pairs:
            return node
        return _tree.rebuild(node, [k(c) for _, c in pairs])


@attrs.frozen
class Leaves:
    """Focus on every leaf below a node (a leaf is its own single leaf)."""

    def code(self, method_names: frozenset[str]) -> str:
        return ".leaves()"

    def scan(self) -> LeafScan:
        return LeafScan(is_leaf=None, types=None, preds=())


def _type_code(cls: type) -> str:
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    if module == "numpy" or module.startswith("numpy."):
        return f"np.{cls.__qualname__}"
    if module == "jax" or module.startswith("jax."):
        return f"jax.{cls.__qualname__.rpartition('.')[2]}"
    return cls.__qualname__


@attrs.frozen
class InstancesOf:
    """Focus on the outermost subtrees that are instances of any of ``types``."""

    types: tuple[type, ...]

    def code(self, method_names: frozenset[str]) -> str:
        return f".instances_of({', '.join(_type_code(t) for t in self.types)})"

    def scan(self) -> LeafScan:
        types = self.types
        if all(issubclass(t, _tree.LEAF_BASES) for t in types):
            # No pytree node is an instance: the registry's own leaves are enough.
            return LeafScan(is_leaf=None, types=types, preds=())

        def is_leaf(x: Any) -> bool:
            return isinstance(x, types)

        return LeafScan(is_leaf=is_leaf, types=types, preds=())


@attrs.frozen
class Where:
    """Keep the foci for which ``pred(focus)`` is true."""

    pred: Callable[[Any], Any]

    def code(self, method_names: frozenset[str]) -> str:
        return f".where({callable_name(self.pred)})"

    def _keep(self, node: Any) -> bool:
        try:
            return bool(self.pred(node))
        except StepError:
            raise
        except Exception as error:
            # A concretization traceback would only distract from the fix; any
            # other error goes back to the user with the key path of the focus.
            raise predicate_failure(self.pred, error) from None

    def values(self, node: Any) -> list[Any]:
        return [node] if self._keep(node) else []

    def items(self, node: Any) -> list[tuple[Path, Any]]:
        return [((), node)] if self._keep(node) else []

    def modify(self, node: Any, k: Continuation) -> Any:
        return k(node) if self._keep(node) else node


@attrs.frozen(eq=False)
class LeafScan:
    """A one-pass traversal of the leaves of a node, optionally filtered.

    Not a user-visible step: ``.leaves()`` and ``.instances_of(...)`` compile to
    one, and the ``.where(...)`` steps that follow them fuse into its filter, so
    selecting 10% of a tree's leaves costs one flatten, one comprehension and one
    unflatten.
    """

    is_leaf: Callable[[Any], bool] | None
    types: tuple[type, ...] | None
    preds: tuple[Callable[[Any], Any], ...]

    def with_pred(self, pred: Callable[[Any], Any]) -> LeafScan:
        return LeafScan(self.is_leaf, self.types, (*self.preds, pred))

    def _flags(self, leaves: list[Any]) -> list[bool] | None:
        """Which leaves are foci; None when all of them are."""
        types, preds = self.types, self.preds
        if not preds:
            if types is None:
                return None
            return [isinstance(x, types) for x in leaves]
        pred = preds[0]
        try:
            if len(preds) == 1:
                if types is None:
                    return [bool(pred(x)) for x in leaves]
                return [isinstance(x, types) and bool(pred(x)) for x in leaves]
            return [
                (types is None or isinstance(x, types)) and all(p(x) for p in preds) for x in leaves
            ]
        except Exception as error:
            raise self._failure(leaves) or predicate_failure(pred, error) from None

    def _failure(self, leaves: list[Any], paths: Sequence[Path] | None = None) -> StepError | None:
        """The first predicate to raise, asked in the filter's order.

        Its path is that of the leaf, when ``paths`` are given; None if no
        predicate raises (the error came from elsewhere).
        """
        types = self.types
        for i, x in enumerate(leaves):
            if types is not None and not isinstance(x, types):
                continue
            for pred in self.preds:
                try:
                    if not pred(x):
                        break
                except Exception as error:
                    return predicate_failure(pred, error, paths[i] if paths else ())
        return None

    def values(self, node: Any) -> list[Any]:
        leaves = _tree.flatten(node, is_leaf=self.is_leaf)[0]
        if self.types is None and not self.preds:
            return leaves
        flags = self._flags(leaves)
        assert flags is not None
        return [x for x, f in zip(leaves, flags, strict=True) if f]

    def items(self, node: Any) -> list[tuple[Path, Any]]:
        pairs = _tree.flatten_with_path(node, is_leaf=self.is_leaf)[0]
        leaves = [x for _, x in pairs]
        try:
            flags = self._flags(leaves)
        except StepError as failure:
            located = self._failure(leaves, [tuple(p) for p, _ in pairs])
            raise located or failure from None
        if flags is None:
            return [(tuple(p), x) for p, x in pairs]
        return [(tuple(p), x) for (p, x), f in zip(pairs, flags, strict=True) if f]

    def modify(self, node: Any, k: Continuation) -> Any:
        leaves, treedef = _tree.flatten(node, is_leaf=self.is_leaf)
        types = self.types
        if not self.preds:
            if types is None:
                return _tree.unflatten(treedef, [k(x) for x in leaves])
            return _tree.unflatten(treedef, _select_map(leaves, types, k))
        if len(self.preds) == 1:
            return _tree.unflatten(treedef, self._filter_map(leaves, k))
        flags = self._flags(leaves)
        assert flags is not None
        new = [k(x) if f else x for x, f in zip(leaves, flags, strict=True)]
        return _tree.unflatten(treedef, new)

    def _filter_map(self, leaves: list[Any], k: Continuation) -> list[Any]:
        # The common case (one predicate) in a single comprehension: no list of
        # flags, no zip. An error may come from the predicate or from k, so the
        # predicate is asked again, alone, to tell which.
        pred, types = self.preds[0], self.types
        try:
            if types is None:
                return [k(x) if pred(x) else x for x in leaves]
            return [k(x) if isinstance(x, types) and pred(x) else x for x in leaves]
        except StepError:
            raise
        except Exception:
            failure = self._failure(leaves)
            if failure is not None:
                raise failure from None
            raise


def _select_map(leaves: list[Any], types: tuple[type, ...], k: Continuation) -> list[Any]:
    """``k`` applied to the leaves that are instances of ``types``, in one pass."""
    # isinstance against jax.Array costs as much as the whole flatten does per leaf,
    # so decide once per distinct leaf type. Only subclasses are trusted: a tracer
    # is an instance of jax.Array without being a subclass, and is asked directly.
    distinct = set(map(type, leaves))
    sure = {t for t in distinct if issubclass(t, types)}
    if len(sure) == len(distinct):
        return [k(x) for x in leaves]
    return [k(x) if type(x) in sure or isinstance(x, types) else x for x in leaves]


@attrs.frozen
class Union:
    """Focus on the foci of every member chain, in JAX's flatten order.

    Only data: each member is a chain of steps, which the executor runs; the
    foci of the members may not overlap.
    """

    members: tuple[tuple[Any, ...], ...]

    def code(self, method_names: frozenset[str]) -> str:
        return "(" + " | ".join(chain_code(m, method_names) for m in self.members) + ")"
