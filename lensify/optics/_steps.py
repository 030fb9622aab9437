"""Optic steps: each one knows how to focus inside a node and how to rebuild it.

A step is a small frozen value. It offers three operations on one node:
``values`` (the foci, in JAX's flatten order), ``items`` (the foci with the key
paths that lead to them from the node) and ``modify`` (the node rebuilt with
every focus passed through a continuation ``k``). Lens steps (one attribute or
one item) also offer ``get`` and ``replace``, which the optic uses to walk a path
down and rebuild only its spine on the way back up.

Steps never see a wrapper as anything but a pytree node: the registry, through
:mod:`lensify._tree`, says what a node's children are and how to rebuild it.
"""

from __future__ import annotations

import dataclasses
import difflib
import keyword
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import jax
import numpy as np

from lensify import _tree

if TYPE_CHECKING:
    from lensify.optics._optic import Optic

__all__ = [
    "Attr",
    "Each",
    "InstancesOf",
    "Item",
    "LeafScan",
    "Leaves",
    "Slice",
    "StepError",
    "StepLookupError",
    "StepPredicateError",
    "StepTracedError",
    "Union",
    "Where",
    "callable_name",
    "step_for_key",
]

Path = tuple[Any, ...]
Continuation = Callable[[Any], Any]

# Types no pytree node can be an instance of: selecting them needs no is_leaf.
_LEAF_BASES: tuple[type, ...] = (
    jax.Array,
    np.ndarray,
    np.generic,
    int,
    float,
    complex,
    str,
    bytes,
)

_TRACER_ERRORS: tuple[type[BaseException], ...] = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
)


class StepError(Exception):
    """A step could not run on a node; the optic adds the key path and explains.

    Internal: a failure never leaves lensify. A step only knows the path from the
    node it was given, so ``path`` starts there; the optic, which knows where that
    node is, prefixes the rest and raises the matching public error.
    """

    path: Path = ()


class StepLookupError(StepError):
    """A lens step found nothing to focus on: a :class:`~lensify.MissingStepError`."""

    def __init__(self, missing: str, node: Any, available: Sequence[str], target: str) -> None:
        super().__init__(missing)
        self.missing = missing
        self.node = node
        self.available = list(available)
        self.target = target
        self.hint = ""


class StepTracedError(StepError):
    """A ``where`` predicate needed a traced value: a :class:`~lensify.TracedPredicateError`."""

    def __init__(self, pred: Callable[[Any], Any], path: Path = ()) -> None:
        self.pred_name = callable_name(pred)
        super().__init__(self.pred_name)
        self.path = path


class StepPredicateError(StepError):
    """A ``where`` predicate raised: the optic re-raises that error, located."""

    def __init__(self, pred: Callable[[Any], Any], error: Exception, path: Path = ()) -> None:
        self.pred_name = callable_name(pred)
        super().__init__(self.pred_name)
        self.error = error
        self.path = path


def _predicate_failure(pred: Callable[[Any], Any], error: Exception, path: Path = ()) -> StepError:
    if isinstance(error, _TRACER_ERRORS):
        return StepTracedError(pred, path)
    return StepPredicateError(pred, error, path)


def closest_first(target: str, available: Sequence[str]) -> list[str]:
    """``available`` sorted by similarity to ``target``, the closest first."""
    if not available:
        return []
    ranked = difflib.get_close_matches(target, available, n=len(available), cutoff=0.0)
    return ranked + [a for a in available if a not in ranked]


def describe_node(node: Any) -> str:
    """A short name for a node's kind, for error messages: ``dict``, ``MLP``, ...

    Every JAX array is a ``jax.Array``, so a message reads the same under ``jax.jit``
    (where the array is a tracer) as outside it.
    """
    if node is None:
        return "None"
    if isinstance(node, jax.Array):
        return "jax.Array"
    return type(node).__name__


NONE_HINT = (
    "JAX treats None as an empty node: it has no children, no attributes and no "
    "items. To replace the None itself, stop the optic at the step that reaches it "
    "and use set()."
)


def _is_namedtuple(node: Any) -> bool:
    return isinstance(node, tuple) and hasattr(type(node), "_fields")


def _key_payload(key: Any) -> Any:
    """What a JAX key names: the dict key, the index or the attribute name."""
    if isinstance(key, _tree.DictKey | _tree.FlattenedIndexKey):
        return key.key
    if isinstance(key, _tree.SequenceKey):
        return key.idx
    if isinstance(key, _tree.GetAttrKey):
        return key.name
    return key


def callable_name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or repr(fn)


# ---------------------------------------------------------------------------------
# Copying an object with one attribute replaced, without running __init__.


_SLOTS: dict[type, tuple[str, ...]] = {}


def _slot_names(cls: type) -> tuple[str, ...]:
    cached = _SLOTS.get(cls)
    if cached is not None:
        return cached
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    _SLOTS[cls] = tuple(names)
    return _SLOTS[cls]


def _shallow_copy(node: Any) -> Any:
    cls = type(node)
    try:
        new = object.__new__(cls)
    except TypeError:  # a subclass of a builtin with its own __new__
        import copy

        return copy.copy(node)
    state = getattr(node, "__dict__", None)
    if state:
        new.__dict__.update(state)
    for name in _slot_names(cls):
        try:
            value = object.__getattribute__(node, name)
        except AttributeError:
            continue
        object.__setattr__(new, name, value)
    return new


def _attribute_names(node: Any) -> list[str]:
    """The attribute names worth suggesting for ``node``: fields first."""
    names: list[str] = []
    cls = type(node)
    if _is_namedtuple(node):
        names += list(cls._fields)
    if attrs.has(cls):
        names += [f.name for f in attrs.fields(cls)]
    if dataclasses.is_dataclass(cls):
        names += [f.name for f in dataclasses.fields(cls)]
    for key, _ in _tree.children(node) or ():
        if isinstance(key, _tree.GetAttrKey):
            names.append(key.name)
    names += [n for n in getattr(node, "__dict__", {}) if not n.startswith("_")]
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------------
# Lens steps: exactly one focus.


class _Probe:
    """A fresh object no child can already be: shows where an attribute flattens to."""


def _positional_key(node: Any, name: str, pairs: list[tuple[Any, Any]]) -> Any:
    """The key of the child of ``node`` that is its attribute ``name``; None if none is.

    The attribute is replaced by a probe in a shallow copy and the copy flattened:
    the child that comes out as the probe is the attribute. Two children may be the
    same object (small ints and numpy scalars are shared), so identity alone cannot
    tell them apart. When the copy cannot be made or flattened, identity decides,
    and only if exactly one child is the attribute's value.
    """
    probe = _Probe()
    try:
        probed = _tree.children(Attr(name).replace(node, probe))
    except Exception:
        probed = None
    if probed is not None and len(probed) == len(pairs):
        hits = [k for k, c in probed if c is probe]
    else:
        value = getattr(node, name)
        hits = [k for k, c in pairs if c is value]
    return hits[0] if len(hits) == 1 else None


@attrs.frozen
class Attr:
    """Focus on the attribute ``name``: a field, static or not, of any object."""

    name: str

    def code(self, method_names: frozenset[str]) -> str:
        name = self.name
        plain = name.isidentifier() and not keyword.iskeyword(name)
        if plain and not name.startswith("_") and name not in method_names:
            return f".{name}"
        return f".attr({name!r})"

    def key(self, node: Any) -> Any:
        """The JAX key of this attribute among the children of ``node``.

        A node flattened by name (a record, a dataclass, a namedtuple) names its
        children with ``GetAttrKey``; so does a static field of such a node, which
        holds no leaves. A node flattened by position (``register_pytree_node``,
        ``Partial``) names them with ``FlattenedIndexKey``: the attribute is
        matched with the child it is, or refused if it is none of them.
        """
        wanted = _tree.GetAttrKey(self.name)
        pairs = _tree.children(node)
        if not pairs or any(isinstance(k, _tree.GetAttrKey) for k, _ in pairs):
            return wanted
        key = _positional_key(node, self.name, pairs)
        if key is None:
            raise self._not_a_child(node, pairs)
        return key

    def _not_a_child(self, node: Any, pairs: list[tuple[Any, Any]]) -> StepLookupError:
        failure = StepLookupError(
            f"pytree child for the attribute {self.name!r}", node, [], self.name
        )
        keys = ", ".join(_tree.keystr((k,)) for k, _ in pairs)
        failure.hint = (
            f"JAX flattens a {describe_node(node)} by position into {keys}, and "
            f"its attribute {self.name!r} is not one of those children, so no key path "
            "names it: paths(), mask() and partition() cannot select it. Focus on the "
            "child by its index instead, for example [0]."
        )
        return failure

    def get(self, node: Any) -> Any:
        if type(node) in (dict, list, tuple) or node is None:
            raise self._missing(node)
        try:
            return getattr(node, self.name)
        except AttributeError:
            raise self._missing(node) from None

    def _missing(self, node: Any) -> StepLookupError:
        failure = StepLookupError(
            f"attribute {self.name!r}", node, _attribute_names(node), self.name
        )
        if isinstance(node, dict) and self.name in node:
            failure.hint = f"It is a dict: use [{self.name!r}] to focus on that key."
        elif node is None:
            failure.hint = NONE_HINT
        elif type(node) in (dict, list, tuple):
            failure.hint = "A dict, list or tuple is focused with [key] or [index]."
        return failure

    def replace(self, node: Any, value: Any) -> Any:
        name = self.name
        if _is_namedtuple(node):
            return node._replace(**{name: value})
        state = getattr(node, "__dict__", None)
        if state is not None and name in state:
            new = _shallow_copy(node)
            new.__dict__[name] = value
            return new
        if name in _slot_names(type(node)):
            new = _shallow_copy(node)
            object.__setattr__(new, name, value)
            return new
        pairs = _tree.children(node) or []
        keys = [k for k, _ in pairs]
        wanted = _tree.GetAttrKey(name)
        if wanted in keys:
            new_children = [value if k == wanted else c for k, c in pairs]
            return _tree.rebuild(node, new_children)
        names = _attribute_names(node)
        failure = StepLookupError(f"settable attribute {name!r}", node, names, name)
        failure.hint = (
            f"{name!r} is computed (a property or method), not stored, so it cannot be set."
        )
        raise failure

    def values(self, node: Any) -> list[Any]:
        return [self.get(node)]

    def items(self, node: Any) -> list[tuple[Path, Any]]:
        value = self.get(node)
        return [((self.key(node),), value)]

    def modify(self, node: Any, k: Continuation) -> Any:
        return self.replace(node, k(self.get(node)))


def _sequence_index(node: Sequence[Any], index: Any) -> int | None:
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        return None
    n = len(node)
    i = int(index)
    if i < 0:
        i += n
    return i if 0 <= i < n else None


def _typed_key(key: Any) -> Any:
    """``key`` with the type of every part beside it, for equality and hashing."""
    if type(key) is tuple:
        return (tuple, tuple(_typed_key(k) for k in key))
    return (type(key), key)


@attrs.frozen
class Item:
    """Focus on the item ``key``: a dict key, a sequence index or a registry child."""

    # Keys compare by type and value: 1, 1.0 and True are three different items.
    key: Hashable = attrs.field(eq=lambda k: _typed_key(k))

    def code(self, method_names: frozenset[str]) -> str:
        return f"[{self.key!r}]"

    def _locate(self, node: Any) -> tuple[Any, Any]:
        """The JAX key of the focus, and the focus."""
        cls = type(node)
        if cls is dict:
            try:
                return _tree.DictKey(self.key), node[self.key]
            except (KeyError, TypeError):
                raise self._missing(node, [repr(k) for k in node], "key") from None
        if cls is list or cls is tuple or _is_namedtuple(node):
            i = _sequence_index(node, self.key)
            if i is None:
                raise self._missing_index(node)
            if cls is list or cls is tuple:
                return _tree.SequenceKey(i), node[i]
            return _tree.GetAttrKey(cls._fields[i]), node[i]
        if node is None:
            failure = self._missing(node, [], "key")
            failure.hint = NONE_HINT
            raise failure
        pairs = _tree.children(node)
        if pairs is None:
            failure = StepLookupError(f"item {self.key!r}", node, [], repr(self.key))
            failure.hint = "It is a leaf, which has no items."
            raise failure
        for key, child in pairs:
            if _key_payload(key) == self.key and not isinstance(key, _tree.GetAttrKey):
                return key, child
        attr_names = [k.name for k, _ in pairs if isinstance(k, _tree.GetAttrKey)]
        item_keys = [k for k, _ in pairs if not isinstance(k, _tree.GetAttrKey)]
        failure = self._missing(node, [repr(_key_payload(k)) for k in item_keys], "key")
        if self.key in attr_names:
            failure.hint = f"It has an attribute {self.key!r}: use .{self.key} to focus on it."
        elif attr_names:
            shown = ", ".join(f".{name}" for name in attr_names)
            failure.hint = f"Its children are attributes: {shown}."
        raise failure

    def _missing(self, node: Any, available: list[str], noun: str) -> StepLookupError:
        return StepLookupError(f"{noun} {self.key!r}", node, available, repr(self.key))

    def _missing_index(self, node: Sequence[Any]) -> StepLookupError:
        n = len(node)
        span = f"indices 0..{n - 1} (or -{n}..-1)" if n else "no indices: it is empty"
        failure = StepLookupError(f"index {self.key!r}", node, [], repr(self.key))
        failure.hint = f"It has length {n}, so {span}."
        if self.key in getattr(type(node), "_fields", ()):
            failure.hint += f" Use .{self.key} for the field {self.key!r}."
        return failure

    def get(self, node: Any) -> Any:
        return self._locate(node)[1]

    def replace(self, node: Any, value: Any) -> Any:
        cls = type(node)
        if cls is dict:
            if self.key not in node:
                raise self._missing(node, [repr(k) for k in node], "key")
            new = dict(node)
            new[self.key] = value
            return new
        if cls is list or cls is tuple or _is_namedtuple(node):
            i = _sequence_index(node, self.key)
            if i is None:
                raise self._missing_index(node)
            if cls is list:
                new_list = list(node)
                new_list[i] = value
                return new_list
            if cls is tuple:
                return (*node[:i], value, *node[i + 1 :])
            return node._replace(**{cls._fields[i]: value})
        key, _ = self._locate(node)
        pairs = _tree.children(node) or []
        return _tree.rebuild(node, [value if k == key else c for k, c in pairs])

    def values(self, node: Any) -> list[Any]:
        return [self._locate(node)[1]]

    def items(self, node: Any) -> list[tuple[Path, Any]]:
        key, child = self._locate(node)
        return [((key,), child)]

    def modify(self, node: Any, k: Continuation) -> Any:
        return self.replace(node, k(self.get(node)))


def step_for_key(key: Any) -> Attr | Item:
    """The lens step that follows one JAX key (as in a key path)."""
    if isinstance(key, _tree.GetAttrKey):
        return Attr(key.name)
    if isinstance(key, _tree.DictKey | _tree.FlattenedIndexKey):
        return Item(key.key)
    if isinstance(key, _tree.SequenceKey):
        return Item(key.idx)
    if isinstance(key, str | int):
        return Item(key)
    raise TypeError(
        f"cannot follow the key {key!r} of type {type(key).__name__}: a key path holds "
        "jax.tree_util DictKey, SequenceKey, GetAttrKey or FlattenedIndexKey entries."
    )


# ---------------------------------------------------------------------------------
# Traversal steps: any number of foci.


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
        if _is_namedtuple(node):
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
        if all(issubclass(t, _LEAF_BASES) for t in types):
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
            raise _predicate_failure(self.pred, error) from None

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
            raise self._failure(leaves) or _predicate_failure(pred, error) from None

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
                    return _predicate_failure(pred, error, paths[i] if paths else ())
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


# ---------------------------------------------------------------------------------
# Union: the foci of several optics, which must not overlap.


_FOCUS = object()  # marks a trie node that is itself a focus


def _is_prefix(a: Path, b: Path) -> bool:
    return len(a) <= len(b) and b[: len(a)] == a


@attrs.frozen
class Union:
    """Focus on the foci of every member optic, in JAX's flatten order."""

    members: tuple[Optic, ...]

    def code(self, method_names: frozenset[str]) -> str:
        return "(" + " | ".join(repr(m) for m in self.members) + ")"

    def _checked_items(self, node: Any) -> list[tuple[Path, Any]]:
        found: list[tuple[Path, Any]] = []
        for member in self.members:
            found += member._items(node)
        paths = {p for p, _ in found}
        if len(paths) < len(found):
            seen: set[Path] = set()
            for p, _ in found:
                if p in seen:
                    raise self._overlap(p)
                seen.add(p)
        for p, _ in found:
            for depth in range(len(p)):
                if p[:depth] in paths:
                    raise self._overlap(p[:depth])
        return found

    def _overlap(self, path: Path) -> Exception:
        from lensify.optics._errors import OverlapError

        return OverlapError(
            f"the foci of {self.code(frozenset())} overlap at {_tree.keystr(path)}: "
            "optics joined by | may not focus on the same node, nor on one node "
            "inside another. Narrow one of them, for example with .where(...)."
        )

    def items(self, node: Any) -> list[tuple[Path, Any]]:
        found = self._checked_items(node)
        if len(found) < 2:
            return found
        trie = _trie([p for p, _ in found])
        by_path = dict(found)
        ordered: list[tuple[Path, Any]] = []
        _walk_in_order(node, trie, (), by_path, ordered)
        return ordered

    def values(self, node: Any) -> list[Any]:
        return [v for _, v in self.items(node)]

    def modify(self, node: Any, k: Continuation) -> Any:
        found = self._checked_items(node)
        if not found:
            return node
        return _modify_at(node, _trie([p for p, _ in found]), k)


def _trie(paths: list[Path]) -> dict[Any, Any]:
    root: dict[Any, Any] = {}
    for path in paths:
        level = root
        for key in path:
            level = level.setdefault(key, {})
        level[_FOCUS] = True
    return root


def _split(node: Any, trie: dict[Any, Any]) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """The registry children of ``node`` and the trie's keys that are not among them."""
    pairs = _tree.children(node) or []
    known = {key for key, _ in pairs}
    return pairs, [key for key in trie if key not in known]


def _walk_in_order(
    node: Any,
    trie: dict[Any, Any],
    path: Path,
    by_path: dict[Path, Any],
    out: list[tuple[Path, Any]],
) -> None:
    if _FOCUS in trie:
        out.append((path, by_path[path]))
        return
    pairs, others = _split(node, trie)
    for key, child in pairs:
        if key in trie:
            _walk_in_order(child, trie[key], (*path, key), by_path, out)
    for key in others:
        child = step_for_key(key).get(node)
        _walk_in_order(child, trie[key], (*path, key), by_path, out)


def _modify_at(node: Any, trie: dict[Any, Any], k: Continuation) -> Any:
    if _FOCUS in trie:
        return k(node)
    pairs, others = _split(node, trie)
    if any(key in trie for key, _ in pairs):
        node = _tree.rebuild(
            node,
            [_modify_at(c, trie[key], k) if key in trie else c for key, c in pairs],
        )
    for key in others:
        step = step_for_key(key)
        node = step.replace(node, _modify_at(step.get(node), trie[key], k))
    return node
