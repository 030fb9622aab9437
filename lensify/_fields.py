"""Fields of records, and the hooks that build a record from them.

``lf.field`` declares a field; equinox's ``eqx.field`` declarations are translated
to it. The construction hooks follow dataclasses and equinox: a hand-written
``__init__`` is inherited by subclasses, fields it leaves unset take their defaults,
and an array in a static field warns.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import warnings
from typing import Any, cast

import attrs
import jax
import numpy as np

from lensify import _tree

__all__ = [
    "STATIC",
    "field",
    "fields_init_cannot_take",
    "fill_defaults",
    "from_fields",
    "has_custom_init",
    "keep_inherited_init",
    "translate_dataclass_fields",
    "warn_post_init_with_custom_init",
    "warn_static_arrays",
]

STATIC = "lensify.static"


def field(*, static: bool = False, **kwargs: Any) -> Any:
    """An attrs field with pytree metadata.

    Args:
        static: If True the field is part of the tree structure (JAX's "aux data")
            rather than a child: it is never traced, differentiated or batched, and
            its value must be hashable.
        **kwargs: Passed on to :func:`attrs.field` (``default``, ``converter``,
            ``validator``, ``kw_only``, ...).

    Example:
        >>> import jax, attrs
        >>> import lensify as lf
        >>> class Scaled(lf.AbstractUnwrappable):
        ...     x: jax.Array
        ...     factor: float = lf.field(static=True, default=2.0)
        ...     def unwrap(self):
        ...         return self.x * self.factor
        >>> jax.tree_util.tree_leaves(Scaled(1.0))
        [1.0]
    """
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata[STATIC] = static
    return attrs.field(metadata=metadata, **kwargs)


def _is_generated_init(init: Any) -> bool:
    code = getattr(init, "__code__", None)
    return code is not None and code.co_filename.startswith("<attrs generated")


def has_custom_init(cls: type) -> bool:
    init = cast(Any, cls).__init__
    return init is not object.__init__ and not _is_generated_init(init)


def fields_init_cannot_take(
    cls: type, fields: tuple[attrs.Attribute, ...]
) -> dict[str, str] | None:
    """``{init name: field name}`` if ``cls.__init__`` does not take its fields by name.

    attrs.evolve calls ``cls(**fields)``: such a class cannot be rebuilt through its
    ``__init__`` (``Parameterize(fn, *args, **kwargs)``, a constraint taking a value),
    so that call is understood as a rebuild from the fields. None if ``__init__``
    names every field, as an attrs-generated one does.
    """
    aliases = {f.alias or f.name: f.name for f in fields if f.init}
    try:
        parameters = inspect.signature(cast(Any, cls).__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin __init__
        return None
    named = {
        p.name for p in parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    return aliases if aliases and not aliases.keys() <= named else None


def translate_dataclass_fields(cls: type) -> None:
    # Wrappers written for paramax declare fields with eqx.field(static=True),
    # which is a dataclasses.Field: attrs would take it for a default value.
    for name, value in list(cls.__dict__.items()):
        if not isinstance(value, dataclasses.Field):
            continue
        metadata = dict(value.metadata)
        kwargs: dict[str, Any] = {"init": value.init, "repr": value.repr}
        if value.default is not dataclasses.MISSING:
            kwargs["default"] = value.default
        elif value.default_factory is not dataclasses.MISSING:
            kwargs["factory"] = value.default_factory
        if "converter" in metadata:
            kwargs["converter"] = metadata.pop("converter")
        if value.kw_only is True:
            kwargs["kw_only"] = True
        static = bool(metadata.pop("static", False))
        type.__setattr__(cls, name, field(static=static, metadata=metadata, **kwargs))


def keep_inherited_init(cls: type) -> None:
    # attrs generates an __init__ taking the fields for a class without one of its
    # own, which would replace a hand-written __init__ inherited from a base
    # (``class MyParam(lf.Parameterize): pass``). Python's and equinox's rule is
    # that a subclass inherits its base's __init__; making it the class's own
    # keeps it, under attrs.define here and under a later @attrs.frozen alike.
    if "__init__" not in cls.__dict__ and has_custom_init(cls):
        type.__setattr__(cls, "__init__", cast(Any, cls).__init__)


def warn_post_init_with_custom_init(cls: type) -> None:
    if hasattr(cls, "__post_init__") and has_custom_init(cls):
        warnings.warn(
            f"{cls.__qualname__} has both an __init__ and a __post_init__, so its "
            "__post_init__ is never run: as with dataclasses and equinox, only a "
            "generated __init__ calls it. Call it at the end of __init__, or move "
            "checks into __check_init__, which runs after any __init__.",
            stacklevel=3,
        )


def _is_set(obj: Any, name: str) -> bool:
    """Whether ``obj`` holds its own value for field ``name`` (in __dict__ or a slot)."""
    values = getattr(obj, "__dict__", None)
    if values is not None and name in values:
        return True
    for klass in type(obj).__mro__:
        slot = klass.__dict__.get(name)
        if isinstance(slot, types.MemberDescriptorType):
            try:
                slot.__get__(obj, klass)
            except AttributeError:
                return False
            return True
    return False


def fill_defaults(obj: Any, defaults: tuple[tuple[str, Any], ...]) -> None:
    # A hand-written __init__ sets the fields it wants; attrs only fills defaults
    # in the __init__ it generates, so the rest are filled here.
    missing = []
    for name, default in defaults:
        if _is_set(obj, name):
            continue
        if default is attrs.NOTHING:
            missing.append(name)
            continue
        if isinstance(default, cast(type, attrs.Factory)):
            factory = cast(Any, default)
            default = factory.factory(obj) if factory.takes_self else factory.factory()
        object.__setattr__(obj, name, default)
    if missing:
        cls = type(obj)
        raise TypeError(
            f"{cls.__name__}.__init__ did not set the field(s) {', '.join(map(repr, missing))}. "
            "Set each field in __init__, or give it a default "
            "(lf.field(default=...))."
        )


def _holds_array(value: Any) -> bool:
    if isinstance(value, (jax.Array, np.ndarray)):
        return True
    if type(value) in _tree.PLAIN_TYPES:
        return False
    leaves, _ = _tree.flatten(value)
    return any(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves)


def warn_static_arrays(obj: Any, static_names: tuple[str, ...]) -> None:
    names = [n for n in static_names if _holds_array(getattr(obj, n))]
    if names:
        warnings.warn(
            f"{type(obj).__name__}: the static field(s) {', '.join(map(repr, names))} "
            "hold a JAX or numpy array. A static field is part of the tree structure, "
            "so it is never traced, differentiated or batched, and an array there "
            "breaks jax.jit's caching. Make it a child field (drop static=True), or "
            "store a hashable value (a float, a tuple).",
            stacklevel=3,
        )


def from_fields(cls: type, values: dict[str, Any]) -> Any:
    obj: Any = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj
