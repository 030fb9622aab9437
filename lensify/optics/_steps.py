"""Lens steps: each focuses on exactly one part of a node and can put it back.

A step is a small frozen value. It offers, on one node: ``get`` (the focus),
``replace`` (the node rebuilt around a new focus), ``values`` and ``items`` (the
foci, the latter with the key paths that lead to them from the node) and
``modify`` (the node rebuilt with its focus passed through a continuation ``k``).
``updater`` builds the function the executor composes to rebuild only the spine of
a path, with fast paths for dicts and lists.

Steps never see a wrapper as anything but a pytree node: the registry, through
:mod:`lensify._tree`, says what a node's children are and how to rebuild it. They
know nothing of the optic that holds them; :func:`chain_code` writes a chain of
steps back as code.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import attrs
import numpy as np

from lensify import _tree
from lensify.optics._failures import NONE_HINT, StepLookupError, StepValueError, describe_node

__all__ = [
    "Attr",
    "Item",
    "LensStep",
    "Unwrapped",
    "apply_focus",
    "chain_code",
    "put_focus",
    "step_for_key",
]

Path = tuple[Any, ...]
Continuation = Callable[[Any], Any]
# descend(focus, arg): the new focus. The updater of the last step of a path
# puts ``arg`` there (set) or applies it (modify); the others descend further.
Descend = Callable[[Any, Any], Any]
Updater = Callable[[Any, Any], Any]


def put_focus(focus: Any, value: Any) -> Any:
    """The last ``descend`` of a path for ``set``: the value replaces the focus."""
    return value


def apply_focus(focus: Any, fn: Continuation) -> Any:
    """The last ``descend`` of a path for ``modify``: ``fn`` maps the focus."""
    return fn(focus)


def chain_code(chain: Sequence[Any], method_names: frozenset[str]) -> str:
    """A chain of steps written as the code that builds it: ``lf.at.layers[0]``."""
    text = "lf.at"
    for i, step in enumerate(chain):
        code = step.code(method_names)
        if code.startswith("("):  # a union
            text = code if i == 0 else f"{text}.then{code}"
        else:
            text += code
    return text


def _key_payload(key: Any) -> Any:
    """What a JAX key names: the dict key, the index or the attribute name."""
    if isinstance(key, _tree.DictKey | _tree.FlattenedIndexKey):
        return key.key
    if isinstance(key, _tree.SequenceKey):
        return key.idx
    if isinstance(key, _tree.GetAttrKey):
        return key.name
    return key


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
    if _tree.is_namedtuple(node):
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


class LensStep:
    """What every lens step offers, from its own ``get``, ``replace`` and ``items``."""

    def get(self, node: Any) -> Any:
        raise NotImplementedError

    def replace(self, node: Any, value: Any) -> Any:
        raise NotImplementedError

    def values(self, node: Any) -> list[Any]:
        return [self.get(node)]

    def modify(self, node: Any, k: Continuation) -> Any:
        return self.replace(node, k(self.get(node)))

    def updater(self, descend: Descend) -> Updater:
        """Rebuild a node around ``descend(focus, arg)``, through ``get`` and ``replace``."""
        get, replace = self.get, self.replace

        def update(node: Any, arg: Any) -> Any:
            return replace(node, descend(get(node), arg))

        return update


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
class Attr(LensStep):
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
        if _tree.is_namedtuple(node):
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

    def items(self, node: Any) -> list[tuple[Path, Any]]:
        value = self.get(node)
        return [((self.key(node),), value)]


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
class Item(LensStep):
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
        if cls is list or cls is tuple or _tree.is_namedtuple(node):
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
        if cls is list or cls is tuple or _tree.is_namedtuple(node):
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

    def items(self, node: Any) -> list[tuple[Path, Any]]:
        key, child = self._locate(node)
        return [((key,), child)]

    def updater(self, descend: Descend) -> Updater:
        """A copy of a dict or a list with one item replaced, in one call per level.

        Anything else (a tuple, a namedtuple, another node, or a key that is not
        there, which then fails with a located error) goes the general way.
        """
        key = self.key
        general = super().updater(descend)
        index = type(key) is int
        # At the end of a path, set puts the value and modify applies the function
        # here, one call fewer than through ``descend``.
        put, apply = descend is put_focus, descend is apply_focus

        def update(node: Any, arg: Any) -> Any:
            cls = type(node)
            if cls is dict:
                if key in node:
                    new = node.copy()
                    old = node[key]
                    new[key] = arg if put else arg(old) if apply else descend(old, arg)
                    return new
            elif cls is list and index and -len(node) <= key < len(node):  # type: ignore[operator]
                new_list = node.copy()
                old = node[key]
                new_list[key] = arg if put else arg(old) if apply else descend(old, arg)
                return new_list
            return general(node, arg)

        return update


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
# The value a wrapper stack stands for.


@attrs.frozen
class Unwrapped(LensStep):
    """Focus on the unwrapped value of a node: ``unwrap`` to read, ``rewrap`` to write.

    Writing a value rebuilds the node's own wrapper stack around it (each wrapper's
    ``with_value``), so the node keeps its structure: the same wrappers, nested the
    same way, with the same static fields. The focus has the key path of the node
    it is the value of; so have the foci of the steps that follow, which lie inside
    the value, not in the tree.
    """

    def code(self, method_names: frozenset[str]) -> str:
        return ".unwrapped()"

    def get(self, node: Any) -> Any:
        from lensify.wrappers import unwrap

        try:
            return unwrap(node)
        except Exception as error:
            raise StepValueError("unwrapping", error, node) from error

    def replace(self, node: Any, value: Any) -> Any:
        from lensify._walker import rewrap

        try:
            # Its key paths would start at the focus, not at the tree's root: a
            # check traced under jit is left to say what failed, not where.
            return rewrap(node, value, locate_traced=False)
        except Exception as error:
            raise StepValueError("rewrapping", error, node) from error

    def items(self, node: Any) -> list[tuple[Path, Any]]:
        return [((), self.get(node))]

    def updater(self, descend: Descend) -> Updater:
        if descend is put_focus:
            # set needs no unwrapped value: rewrap straight away.
            return self.replace
        return super().updater(descend)
