"""Plain functions inside records: kept in the tree structure, pickled by name.

A function (``jnp.exp``, a lambda, a jitted function) is not a parameter. Held by
a record, directly or in a tuple, list or dict field (a ``Parameterize``'s args and
kwargs), it travels in the tree structure, so plain ``jax.jit``, ``jax.grad`` and
``jax.vmap`` see through the record. So do the Python values that configure it
(:func:`config_keys`), in a record that says so.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy

from lensify import _tree

__all__ = [
    "CONTAINER_TYPES",
    "FUNCTION_TYPES",
    "by_name_if_jitted",
    "callable_name",
    "CONFIG_ATTRIBUTE",
    "config_keys",
    "config_of",
    "hoist",
    "hoisted_whole",
    "is_function",
    "may_configure",
    "put",
    "registry_children",
    "set_config",
]

# Function types that are never pytree nodes: checked before asking the registry.
FUNCTION_TYPES = frozenset(
    {types.FunctionType, types.BuiltinFunctionType, types.MethodType, type(jax.jit(abs))}
)


# Plain containers, searched for functions inside a record's children.
CONTAINER_TYPES = frozenset({tuple, list, dict})


def is_function(value: Any) -> bool:
    # A callable that JAX treats as a leaf (a function, a jitted function, a
    # class) is not a parameter: it belongs in the structure, so that plain
    # jax.jit/grad/vmap see through the record. A callable pytree node (an
    # equinox Module, jax.tree_util.Partial) stays a child and its leaves train.
    if type(value) in FUNCTION_TYPES:
        return True
    return callable(value) and not _tree.is_array(value) and not _tree.is_node(value)


def hoist(container: Any, i: int, found: list[Any], keys: Any = None) -> Any:
    """``container`` with each function directly in it as None, the functions in ``found``.

    So are the entries at ``keys`` (a record's configuration), whatever they hold.
    """
    before = len(found)
    keys = keys or ()
    if type(container) is dict:
        entries = dict(container)
        for key, value in container.items():
            if key in keys or (callable(value) and is_function(value)):
                found.append(((i, key), value))
                entries[key] = None
        return container if len(found) == before else entries
    items = list(container)
    for j, value in enumerate(container):
        if j in keys or (callable(value) and is_function(value)):
            found.append(((i, j), value))
            items[j] = None
    if len(found) == before:
        return container
    return items if type(container) is list else tuple(items)


# The types of the entries that configure a function (see config_keys).
_CONFIG_TYPES = frozenset({int, bool, str})


def may_configure(value: Any) -> bool:
    """Whether a field holding ``value`` can hold configuration (see :func:`config_keys`)."""
    t = type(value)
    return (t is dict and bool(value)) or ((t is tuple or t is list) and len(value) > 1)


def config_keys(fields: Iterable[tuple[str, Any]]) -> frozenset[tuple[str, Any]]:
    """The entries of a record's ``(name, value)`` fields that configure its function,
    as ``(field name, key)``.

    A Python int, bool or string directly in a dict field, or in a tuple or list
    field after its first entry (a Parameterize's variable is its first argument),
    is configuration (``k=-1``, an axis, a mode): it travels in the structure, so
    ``jax.jit`` sees a Python value and an optimiser step leaves it alone. It is
    decided when the record is built, not at each flatten: a mask or a filter tree
    that puts a bool where an array was must keep the same structure.
    """
    found: set[tuple[str, Any]] = set()
    for name, value in fields:
        if not may_configure(value):
            continue
        if type(value) is dict:
            found.update((name, k) for k, v in value.items() if type(v) in _CONFIG_TYPES)
        else:
            found.update((name, j) for j, v in enumerate(value) if j and type(v) in _CONFIG_TYPES)
    return frozenset(found)


# The instance attribute (not a field) naming a record's configuration entries.
CONFIG_ATTRIBUTE = "_lf_config"


def set_config(obj: Any, keys: frozenset[tuple[str, Any]]) -> None:
    """Record on ``obj`` which of its entries travel in the structure as configuration
    (see :func:`config_keys`)."""
    if keys:
        obj.__dict__[CONFIG_ATTRIBUTE] = keys
    else:
        obj.__dict__.pop(CONFIG_ATTRIBUTE, None)


def config_of(obj: Any, name: str | None = None) -> frozenset[Any] | None:
    """The configuration entries of ``obj`` (of its field ``name``, if given), or None."""
    keys = getattr(obj, "__dict__", {}).get(CONFIG_ATTRIBUTE)
    if not keys or name is None:
        return keys or None
    return frozenset(k for n, k in keys if n == name) or None


def put(container: Any, key: Any, value: Any) -> Any:
    """A copy of a tuple, list or dict with ``value`` at ``key`` (a dict's key may be new)."""
    if type(container) is dict:
        entries = dict(container)
        entries[key] = value
        return entries
    items = list(container)
    items[key] = value
    return items if type(container) is list else tuple(items)


# The registries see no slot at all for a function kept in the structure, not a
# None child: a None child is an empty node that tools such as orbax map to a
# name, and the name would be lost on the way back, as the function fills that
# slot again. The same holds for a function in a dict child (a Parameterize's
# kwargs). In a tuple or list (its args) the None stays, so that the entries
# after it keep their index, as optics and masks see them.
def registry_children(
    children: Sequence[Any], hoisted: Iterable[tuple[tuple[Any, ...], Any]]
) -> tuple[Any, ...]:
    """A record's ``children`` as the registries see them, ``hoisted`` being what
    :func:`hoist` moved out of them (a path and its value each)."""
    kept = list(children)
    for path, _ in hoisted:
        if len(path) == 1:
            kept[path[0]] = _GONE
        elif type(kept[path[0]]) is dict:
            kept[path[0]] = {k: v for k, v in kept[path[0]].items() if k != path[1]}
    return tuple(c for c in kept if c is not _GONE)


def hoisted_whole(hoisted: Iterable[tuple[tuple[Any, ...], Any]]) -> set[int]:
    """The places of the children moved out whole: those the registries see no slot for."""
    return {path[0] for path, _ in hoisted if len(path) == 1}


_GONE = object()
_JAX_FUNCTION_TYPES = frozenset({type(jax.jit(abs)), jax.numpy.ufunc})


class _FunctionByName:
    """Pickles as the import of a module-level jitted function (``jnp.exp``)."""

    __slots__ = ("module", "qualname")

    def __init__(self, module: str, qualname: str) -> None:
        self.module, self.qualname = module, qualname

    def __reduce__(self) -> tuple[Any, ...]:
        return _import_function, (self.module, self.qualname)


def _import_function(module: str, qualname: str) -> Any:
    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def by_name_if_jitted(value: Any) -> Any:
    # jax's own functions (jnp.exp, jax.nn.softplus, the jnp ufuncs) are objects
    # that pickle refuses, although they are importable by name: store the name.
    t = type(value)
    if t is tuple or t is list:
        return t(map(by_name_if_jitted, value))
    if t is dict:
        return {k: by_name_if_jitted(v) for k, v in value.items()}
    if t not in _JAX_FUNCTION_TYPES:
        return value
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not module or not qualname or "<" in qualname:
        return value
    try:
        found = _import_function(module, qualname)
    except (ImportError, AttributeError):
        return value
    return _FunctionByName(module, qualname) if found is value else value


def callable_name(fn: Any) -> str:
    """A short name for a callable, for reprs and messages: ``exp``, ``partial(f)``, ``MLP``.

    Example:
        >>> import functools
        >>> import jax.numpy as jnp
        >>> from lensify._functions import callable_name
        >>> callable_name(jnp.exp), callable_name(lambda x: x)
        ('exp', '<lambda>')
        >>> callable_name(functools.partial(jnp.clip, min=0.0))
        'partial(clip)'
    """
    name = getattr(fn, "__name__", None)
    if isinstance(name, str) and name:
        return name
    func = getattr(fn, "func", None)  # functools.partial, jax.tree_util.Partial
    if func is not None and callable(func):
        return f"partial({callable_name(func)})"
    return type(fn).__name__
