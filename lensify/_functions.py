"""Plain functions inside records: kept in the tree structure, pickled by name.

A function (``jnp.exp``, a lambda, a jitted function) is not a parameter. Held by
a record, directly or in a tuple, list or dict field (a ``Parameterize``'s args and
kwargs), it travels in the tree structure, so plain ``jax.jit``, ``jax.grad`` and
``jax.vmap`` see through the record.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

import jax
import jax.numpy

from lensify import _tree

__all__ = [
    "CONTAINER_TYPES",
    "FUNCTION_TYPES",
    "by_name_if_jitted",
    "callable_name",
    "hoist",
    "is_function",
    "put",
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


def put(container: Any, key: Any, value: Any) -> Any:
    """A copy of a tuple, list or dict with ``value`` at ``key`` (a dict's key may be new)."""
    if type(container) is dict:
        entries = dict(container)
        entries[key] = value
        return entries
    items = list(container)
    items[key] = value
    return items if type(container) is list else tuple(items)


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
