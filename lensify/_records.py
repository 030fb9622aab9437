"""Immutable attrs records that are pytree nodes.

A record class is an attrs class whose fields are pytree children unless marked
static. Subclasses of :class:`Record` are registered with JAX's and optree's pytree
registries as soon as they are defined, and attrs is applied to them in place at
once, so the undecorated paramax/equinox form is an attrs class from the start. A
user's ``@attrs.frozen`` on top rebuilds the class as attrs always does.

Rebuilding a record from its children (unflatten) never runs ``__init__``:
optimisers, ``eqx.partition`` and ``tree_map(lambda _: None, t)`` rebuild records
with placeholder leaves that no validator would accept.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import inspect
import operator
import sys
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

import attrs
import jax
import jax.numpy
import numpy as np
import optree
from attrs.exceptions import FrozenInstanceError

from lensify import _tree

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover
    from typing_extensions import dataclass_transform

__all__ = [
    "FrozenRecordError",
    "Record",
    "field",
    "record_fields",
    "record_flatten",
    "record_keys",
    "record_rebuild",
    "replace",
]

_STATIC = "lensify.static"
R = TypeVar("R")


class FrozenRecordError(FrozenInstanceError):
    """Raised on an attempt to set or delete a field of an immutable record.

    A subclass of attrs' ``FrozenInstanceError`` (an ``AttributeError``). Build a
    changed copy instead, with :func:`lensify.replace` or an optic's ``set``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> scale = lf.Parameterize(jnp.exp, jnp.zeros(2))
        >>> try:
        ...     scale.fn = jnp.cosh
        ... except lf.FrozenRecordError as error:
        ...     print(error)
        cannot assign to field 'fn' of Parameterize: records are immutable. ...
        >>> lf.unwrap(lf.replace(scale, fn=jnp.cosh))
        Array([1., 1.], dtype=float32)
    """

    def __init__(self, message: str) -> None:
        AttributeError.__init__(self, message)
        self.msg = message


# Records whose __init__ is running in this thread, by id: only they may set fields.
_initialising = threading.local()
# attrs processes a class in place once; several threads may race to be first.
_finalise_lock = threading.RLock()


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
    metadata[_STATIC] = static
    return attrs.field(metadata=metadata, **kwargs)


class _Layout:
    """How one record class splits into children and structure, and how it is built.

    Computed once per class, before its first instance.
    """

    __slots__ = (
        "by_fields",
        "check_inits",
        "child_names",
        "custom_init",
        "defaults",
        "get_children",
        "get_static",
        "keys",
        "names",
        "names_set",
        "post_init",
        "static_names",
    )

    def __init__(self, cls: type) -> None:
        fields = attrs.fields(cls)
        self.names = tuple(f.name for f in fields)
        self.names_set = frozenset(self.names)
        self.child_names = tuple(f.name for f in fields if not f.metadata.get(_STATIC))
        self.static_names = tuple(f.name for f in fields if f.metadata.get(_STATIC))
        self.keys = tuple(_tree.GetAttrKey(n) for n in self.child_names)
        self.get_children = _tuple_getter(self.child_names)
        self.get_static = _tuple_getter(self.static_names)
        self.custom_init = _has_custom_init(cls)
        # With a hand-written __init__, the fields it leaves unset take their defaults.
        self.defaults = tuple((f.name, f.default) for f in fields) if self.custom_init else ()
        # A dataclass-style __post_init__ runs after the generated __init__ only, as
        # in dataclasses and equinox.
        self.post_init = not self.custom_init and hasattr(cls, "__post_init__")
        # equinox's validation hook: every class in the MRO that defines one.
        self.check_inits = tuple(
            k.__dict__["__check_init__"] for k in cls.__mro__ if "__check_init__" in k.__dict__
        )
        self.by_fields = _fields_init_cannot_take(cls, fields) if self.custom_init else None


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``obj -> tuple(getattr(obj, n) for n in names)``, done in C where possible."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get_one = operator.attrgetter(names[0])
        return lambda obj: (get_one(obj),)
    return operator.attrgetter(*names)


def _is_generated_init(init: Any) -> bool:
    code = getattr(init, "__code__", None)
    return code is not None and code.co_filename.startswith("<attrs generated")


def _has_custom_init(cls: type) -> bool:
    init = cast(Any, cls).__init__
    return init is not object.__init__ and not _is_generated_init(init)


def _fields_init_cannot_take(
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


def _translate_dataclass_fields(cls: type) -> None:
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


def _finalise(cls: type) -> None:
    """Apply attrs to an undecorated record class, in place."""
    with _finalise_lock:
        if "__attrs_attrs__" in cls.__dict__:
            return
        for base in cls.__mro__[1:]:
            if isinstance(base, RecordMeta) and "__attrs_attrs__" not in base.__dict__:
                _finalise(base)
        _translate_dataclass_fields(cls)
        body = dict(cls.__dict__)
        attrs.define(
            cls,
            slots=False,
            frozen=False,  # frozen by Record.__setattr__, which lets __init__ assign
            eq=False,
            on_setattr=attrs.setters.NO_OP,
            auto_detect=True,
            auto_attribs=True,
        )
        # attrs removes the field definitions (lf.field(...)) from the class. Put
        # them back, so that an @attrs.frozen applied after this reads the same
        # fields, defaults and metadata. Instances keep their values in __dict__,
        # which takes precedence over these class attributes.
        for name, value in body.items():
            if name not in cls.__dict__:
                type.__setattr__(cls, name, value)


def _keep_inherited_init(cls: type) -> None:
    # attrs generates an __init__ taking the fields for a class without one of its
    # own, which would replace a hand-written __init__ inherited from a base
    # (``class MyParam(lf.Parameterize): pass``). Python's and equinox's rule is
    # that a subclass inherits its base's __init__; making it the class's own
    # keeps it, under attrs.define here and under a later @attrs.frozen alike.
    if "__init__" not in cls.__dict__ and _has_custom_init(cls):
        type.__setattr__(cls, "__init__", cast(Any, cls).__init__)


def _warn_post_init_with_custom_init(cls: type) -> None:
    if hasattr(cls, "__post_init__") and _has_custom_init(cls):
        warnings.warn(
            f"{cls.__qualname__} has both an __init__ and a __post_init__, so its "
            "__post_init__ is never run: as with dataclasses and equinox, only a "
            "generated __init__ calls it. Call it at the end of __init__, or move "
            "checks into __check_init__, which runs after any __init__.",
            stacklevel=3,
        )


def _adopt_frozen_hooks(cls: type) -> None:
    # ``@attrs.frozen`` installs its own __setattr__/__delattr__, whose message
    # ("can't set attribute") names neither the field nor the fix. Records of
    # both forms should fail the same helpful way.
    for name in ("__setattr__", "__delattr__"):
        hook = cls.__dict__.get(name)
        if hook is None or getattr(hook, "__module__", None) != "attr._make":
            continue
        if hook.__name__.startswith("_frozen_"):
            type.__setattr__(cls, name, getattr(Record, name))


def _layout(cls: type) -> _Layout:
    layout = cls.__dict__.get("_lf_layout")
    if layout is None:
        with _finalise_lock:
            layout = cls.__dict__.get("_lf_layout")
            if layout is None:
                _finalise(cls)
                _adopt_frozen_hooks(cls)
                layout = _Layout(cls)
                # Set last: its presence tells other threads the class is ready.
                type.__setattr__(cls, "_lf_layout", layout)
    return layout


def record_fields(cls: type) -> tuple[attrs.Attribute, ...]:
    """The attrs fields of a record class, applying attrs first if needed."""
    _layout(cls)
    return tuple(attrs.fields(cls))


# ------------------------------------------------------------------- construction


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


def _fill_defaults(obj: Any, layout: _Layout) -> None:
    # A hand-written __init__ sets the fields it wants; attrs only fills defaults
    # in the __init__ it generates, so the rest are filled here.
    missing = []
    for name, default in layout.defaults:
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


def _warn_static_arrays(obj: Any, layout: _Layout) -> None:
    names = [n for n in layout.static_names if _holds_array(getattr(obj, n))]
    if names:
        warnings.warn(
            f"{type(obj).__name__}: the static field(s) {', '.join(map(repr, names))} "
            "hold a JAX or numpy array. A static field is part of the tree structure, "
            "so it is never traced, differentiated or batched, and an array there "
            "breaks jax.jit's caching. Make it a child field (drop static=True), or "
            "store a hashable value (a float, a tuple).",
            stacklevel=3,
        )


def _check_constructed(obj: Any, layout: _Layout) -> None:
    if layout.static_names:
        _warn_static_arrays(obj, layout)
    for check in layout.check_inits:
        check(obj)


def _from_fields(cls: type, values: dict[str, Any]) -> Any:
    obj: Any = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def replace(record: R, /, **changes: Any) -> R:
    """A copy of ``record`` with some fields changed, without running ``__init__``.

    The record is rebuilt from its fields, as JAX rebuilds it from its leaves, so no
    argument conversion in ``__init__`` runs again on values that are already
    fields (a constraint's raw parameter stays raw). The class's
    ``__check_init__`` checks, if any, do run. Any field may change: children,
    static fields and functions alike. ``copy.replace`` (Python 3.13) does the same.

    Args:
        record: Any lensify record (a wrapper, a constraint, ...).
        **changes: New values, by field name.

    Raises:
        TypeError: if a name is not a field of the record.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> scale = lf.Parameterize(jnp.exp, jnp.zeros(2))
        >>> lf.unwrap(lf.replace(scale, fn=jnp.cosh))
        Array([1., 1.], dtype=float32)
        >>> raw = lf.replace(lf.positive(1.0), raw=jnp.zeros(()))
        >>> lf.unwrap(raw)
        Array(0.6931472, dtype=float32)
    """
    cls = type(record)
    if not isinstance(record, Record):
        raise TypeError(
            f"lf.replace takes a lensify record (a wrapper or constraint), got "
            f"{cls.__name__}. Use dataclasses.replace, attrs.evolve or an optic's set."
        )
    layout = _layout(cls)
    unknown = [name for name in changes if name not in layout.names]
    if unknown:
        raise TypeError(
            f"{cls.__name__} has no field {unknown[0]!r}; its fields are {', '.join(layout.names)}."
        )
    values = {n: changes[n] if n in changes else getattr(record, n) for n in layout.names}
    new: R = _from_fields(cls, values)
    _check_constructed(new, layout)
    return new


# ------------------------------------------------------------ flatten and rebuild

# Function types that are never pytree nodes: checked before asking the registry.
_FUNCTION_TYPES = frozenset(
    {types.FunctionType, types.BuiltinFunctionType, types.MethodType, type(jax.jit(abs))}
)
# Plain containers, searched for functions inside a record's children.
_CONTAINER_TYPES = frozenset({tuple, list, dict})


def _is_function(value: Any) -> bool:
    # A callable that JAX treats as a leaf (a function, a jitted function, a
    # class) is not a parameter: it belongs in the structure, so that plain
    # jax.jit/grad/vmap see through the record. A callable pytree node (an
    # equinox Module, jax.tree_util.Partial) stays a child and its leaves train.
    if type(value) in _FUNCTION_TYPES:
        return True
    return callable(value) and not _tree.is_array(value) and not _tree.is_node(value)


def _hoist(container: Any, i: int, found: list[Any]) -> Any:
    """``container`` with each function directly in it as None, the functions in ``found``."""
    before = len(found)
    if type(container) is dict:
        entries = dict(container)
        for key, value in container.items():
            if callable(value) and _is_function(value):
                found.append(((i, key), value))
                entries[key] = None
        return container if len(found) == before else entries
    items = list(container)
    for j, value in enumerate(container):
        if callable(value) and _is_function(value):
            found.append(((i, j), value))
            items[j] = None
    if len(found) == before:
        return container
    return items if type(container) is list else tuple(items)


def _put(container: Any, key: Any, value: Any) -> Any:
    """A copy of a tuple, list or dict with ``value`` at ``key`` (a dict's key may be new)."""
    if type(container) is dict:
        entries = dict(container)
        entries[key] = value
        return entries
    items = list(container)
    items[key] = value
    return items if type(container) is list else tuple(items)


_NO_HOISTED: tuple[tuple[tuple[Any, ...], Any], ...] = ()


def record_flatten(obj: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The children and structure of a record, as its pytree flatten gives them.

    Functions among the children, and directly in a child that is a list, tuple
    or dict (a Parameterize's args and kwargs), travel in the structure: their
    places among the children hold None.
    """
    cls = type(obj)
    layout = cls.__dict__.get("_lf_layout") or _layout(cls)
    children = layout.get_children(obj)
    if not any(map(callable, children)) and _CONTAINER_TYPES.isdisjoint(map(type, children)):
        return children, (layout.get_static(obj), _NO_HOISTED)
    found: list[tuple[tuple[Any, ...], Any]] = []
    kept = list(children)
    i = -1
    for value in children:
        i += 1
        t = type(value)
        if t in _FUNCTION_TYPES:
            found.append(((i,), value))
            kept[i] = None
        elif t in _CONTAINER_TYPES:
            # A Parameterize's args and kwargs. Only their own entries are looked
            # at: below them is the user's tree, whose functions are leaves as JAX
            # says (and a deep search would cost every flatten of a large tree).
            if value and any(map(callable, value.values() if t is dict else value)):
                kept[i] = _hoist(value, i, found)
        elif callable(value) and _is_function(value):
            found.append(((i,), value))
            kept[i] = None
    if not found:
        return children, (layout.get_static(obj), _NO_HOISTED)
    return tuple(kept), (layout.get_static(obj), tuple(found))


def record_keys(cls: type) -> tuple[Any, ...]:
    """The JAX keys of a record class's children, in flatten order."""
    return _layout(cls).keys


def record_rebuild(cls: type, aux: Any, children: Any) -> Any:
    """A record of class ``cls`` from its structure and children, without ``__init__``."""
    layout = _layout(cls)
    static, hoisted = aux
    if hoisted:
        children = list(children)
        for path, fn in hoisted:
            i = path[0]
            children[i] = fn if len(path) == 1 else _put(children[i], path[1], fn)
    obj: Any = object.__new__(cls)
    setter = object.__setattr__
    for name, value in zip(layout.child_names, children, strict=True):
        setter(obj, name, value)
    for name, value in zip(layout.static_names, static, strict=True):
        setter(obj, name, value)
    return obj


# The registries see no slot at all for a function kept in the structure, not a
# None child: a None child is an empty node that tools such as orbax map to a
# name, and the name would be lost on the way back, as the function fills that
# slot again. The same holds for a function in a dict child (a Parameterize's
# kwargs). In a tuple or list (its args) the None stays, so that the entries
# after it keep their index, as optics and masks see them.
def _registry_flatten(obj: Any) -> tuple[tuple[Any, ...], Any]:
    children, aux = record_flatten(obj)
    hoisted = aux[1]
    if not hoisted:
        return children, aux
    kept = list(children)
    for path, _ in hoisted:
        if len(path) == 1:
            kept[path[0]] = _END
        elif type(kept[path[0]]) is dict:
            kept[path[0]] = {k: v for k, v in kept[path[0]].items() if k != path[1]}
    return tuple(c for c in kept if c is not _END), aux


def _registry_unflatten(cls: type, aux: Any, children: Any) -> Any:
    hoisted = aux[1]
    if not hoisted:
        return record_rebuild(cls, aux, children)
    top = {path[0] for path, _ in hoisted if len(path) == 1}
    given = iter(children)
    slots = [None if i in top else next(given) for i in range(len(_layout(cls).child_names))]
    # record_rebuild puts each function back at its path, a dict's key included.
    return record_rebuild(cls, aux, slots)


def _registry_keys(obj: Any, aux: Any) -> tuple[Any, ...]:
    keys = _layout(type(obj)).keys
    if not aux[1]:
        return keys
    top = {path[0] for path, _ in aux[1] if len(path) == 1}
    return tuple(key for i, key in enumerate(keys) if i not in top)


def _flatten_with_keys(obj: Any) -> tuple[tuple[tuple[Any, Any], ...], Any]:
    children, aux = _registry_flatten(obj)
    return tuple(zip(_registry_keys(obj, aux), children, strict=True)), aux


def _optree_flatten(obj: Any) -> tuple[tuple[Any, ...], Any, tuple[str, ...]]:
    children, aux = _registry_flatten(obj)
    names = tuple(key.name for key in _registry_keys(obj, aux))
    return children, aux, names


def _one_level_children(obj: Any) -> list[tuple[Any, Any]]:
    # The children an optic steps into: the pytree children less the functions
    # that flatten moves into the structure. Functions inside a child's
    # containers stay where they are: the optic sees the container as it is.
    layout = _layout(type(obj))
    pairs = zip(layout.keys, layout.get_children(obj), strict=True)
    return [(key, child) for key, child in pairs if not _is_function(child)]


def _one_level_rebuild(obj: Any, new_children: Any) -> Any:
    cls = type(obj)
    layout = _layout(cls)
    replacements = iter(new_children)
    values = [
        child if _is_function(child) else next(replacements, _END)
        for child in layout.get_children(obj)
    ]
    if any(v is _END for v in values) or next(replacements, _END) is not _END:
        raise ValueError(f"wrong number of children to rebuild a {cls.__name__}")
    fields = dict(zip(layout.child_names, values, strict=True))
    fields.update(zip(layout.static_names, layout.get_static(obj), strict=True))
    return _from_fields(cls, fields)


_END = object()


def _register(cls: type) -> None:
    _tree.register_node(
        cls,
        flatten_with_keys=_flatten_with_keys,
        flatten=_registry_flatten,
        unflatten=lambda aux, children: _registry_unflatten(cls, aux, children),
        children=_one_level_children,
        rebuild=_one_level_rebuild,
    )
    optree.register_pytree_node(
        cls,
        _optree_flatten,
        lambda aux, children: _registry_unflatten(cls, aux, children),
        path_entry_type=optree.GetAttrEntry,
        namespace="lensify",
    )


# ---------------------------------------------------------------------- pickling

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


def _by_name_if_jitted(value: Any) -> Any:
    # jax's own functions (jnp.exp, jax.nn.softplus, the jnp ufuncs) are objects
    # that pickle refuses, although they are importable by name: store the name.
    t = type(value)
    if t is tuple or t is list:
        return t(map(_by_name_if_jitted, value))
    if t is dict:
        return {k: _by_name_if_jitted(v) for k, v in value.items()}
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


def _unpickle(cls: type, names: tuple[str, ...], values: tuple[Any, ...]) -> Any:
    return _from_fields(cls, dict(zip(names, values, strict=True)))


class RecordMeta(abc.ABCMeta):
    """Registers every record class and applies attrs before the first instance."""

    def __init__(cls, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any):
        super().__init__(name, bases, ns, **kw)
        if not bases:
            return  # Record itself
        # attrs would otherwise generate a field-tuple __eq__ that breaks on arrays.
        # Made an own attribute so that a later @attrs.frozen keeps it too.
        if "__eq__" not in ns:
            type.__setattr__(cls, "__eq__", Record.__eq__)
        if "__hash__" not in ns:
            type.__setattr__(cls, "__hash__", Record.__hash__)
        # attrs is applied at once, so attrs.fields() works before any instance
        # exists. A class that @attrs.frozen will rebuild is processed here too:
        # attrs then keeps the methods made here (they are the class's own) and the
        # rebuilt class, whose namespace already holds __attrs_attrs__, is left as is.
        if "__attrs_attrs__" not in ns:
            _keep_inherited_init(cls)
            _warn_post_init_with_custom_init(cls)
            _finalise(cls)
        _register(cls)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        layout = cls.__dict__.get("_lf_layout") or _layout(cls)
        by_fields = layout.by_fields
        if by_fields is not None and not args and kwargs.keys() == by_fields.keys():
            # Every field by name, to a class whose __init__ takes other arguments:
            # what attrs.evolve passes. Rebuilt from the fields, as lf.replace does.
            obj = _from_fields(cls, {by_fields[alias]: v for alias, v in kwargs.items()})
        else:
            obj = cast(Any, cls).__new__(cls)
            ids = _initialising.__dict__.setdefault("ids", set())
            ids.add(id(obj))
            try:
                obj.__init__(*args, **kwargs)
                if layout.custom_init:
                    values = getattr(obj, "__dict__", None)
                    if values is None or not layout.names_set <= values.keys():
                        _fill_defaults(obj, layout)
                elif layout.post_init:
                    obj.__post_init__()
            finally:
                ids.discard(id(obj))
        if layout.static_names or layout.check_inits:
            _check_constructed(obj, layout)
        return obj


# How treescope renders a record: set by lensify._treescope.
_treescope_renderer: Callable[[Any, str | None, Any], Any] | None = None


@dataclass_transform(field_specifiers=(field, attrs.field))
class Record(metaclass=RecordMeta):
    """Base of lensify's immutable pytree records."""

    __slots__ = ()
    _lf_layout: ClassVar[_Layout]

    def __setattr__(self, name: str, value: Any) -> None:
        if id(self) in getattr(_initialising, "ids", ()):
            object.__setattr__(self, name, value)
            return
        raise FrozenRecordError(
            f"cannot assign to field {name!r} of {type(self).__name__}: records are "
            f"immutable. Build a changed copy with lf.replace(record, {name}=value), "
            f"or lf.at.{name}.set(record, value) for a child field."
        )

    def __delattr__(self, name: str) -> None:
        raise FrozenRecordError(
            f"cannot delete field {name!r} of {type(self).__name__}: records are immutable."
        )

    def __treescope_repr__(self, path: str | None, subtree_renderer: Any) -> Any:
        # treescope's protocol; lensify._treescope installs the renderer, so that
        # treescope is imported only by treescope itself.
        render = _treescope_renderer
        return NotImplemented if render is None else render(self, path, subtree_renderer)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled field by field and rebuilt without __init__, like unflatten.
        names = _layout(type(self)).names
        values = tuple(_by_name_if_jitted(getattr(self, name)) for name in names)
        return _unpickle, (type(self), names, values)

    def __copy__(self) -> Any:
        names = _layout(type(self)).names
        return _unpickle(type(self), names, tuple(getattr(self, name) for name in names))

    def __replace__(self, **changes: Any) -> Any:
        return replace(self, **changes)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return _tree.tree_equal(self, other)

    def __hash__(self) -> int:
        return hash((type(self), record_flatten(self)))
