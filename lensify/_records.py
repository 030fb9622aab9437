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
import operator
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, ClassVar, cast

import attrs
import jax
import jax.numpy
import optree
from attrs.exceptions import FrozenInstanceError

from lensify import _tree

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover
    from typing_extensions import dataclass_transform

__all__ = ["FrozenRecordError", "Record", "field", "record_fields"]

_STATIC = "lensify.static"


class FrozenRecordError(FrozenInstanceError):
    """Raised on an attempt to set or delete a field of an immutable record."""

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
    """How one record class splits into children and structure; computed once."""

    __slots__ = (
        "child_names",
        "entries",
        "get_children",
        "get_static",
        "keys",
        "names",
        "static_names",
    )

    def __init__(self, cls: type) -> None:
        fields = attrs.fields(cls)
        self.names = tuple(f.name for f in fields)
        self.child_names = tuple(f.name for f in fields if not f.metadata.get(_STATIC))
        self.static_names = tuple(f.name for f in fields if f.metadata.get(_STATIC))
        self.keys = tuple(_tree.GetAttrKey(n) for n in self.child_names)
        self.entries = self.child_names
        self.get_children = _tuple_getter(self.child_names)
        self.get_static = _tuple_getter(self.static_names)


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``obj -> tuple(getattr(obj, n) for n in names)``, done in C where possible."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get_one = operator.attrgetter(names[0])
        return lambda obj: (get_one(obj),)
    return operator.attrgetter(*names)


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


# Function types that are never pytree nodes: checked before asking the registry.
_FUNCTION_TYPES = frozenset(
    {types.FunctionType, types.BuiltinFunctionType, types.MethodType, type(jax.jit(abs))}
)


def _is_function(value: Any) -> bool:
    # A callable that JAX treats as a leaf (a function, a jitted function, a
    # class) is not a parameter: it belongs in the structure, so that plain
    # jax.jit/grad/vmap see through the record. A callable pytree node (an
    # equinox Module, jax.tree_util.Partial) stays a child and its leaves train.
    if type(value) in _FUNCTION_TYPES:
        return True
    return callable(value) and not _tree.is_array(value) and not _tree.is_node(value)


_NO_HOISTED: tuple[tuple[str, Any], ...] = ()


def _flatten(obj: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    cls = type(obj)
    layout = cls.__dict__.get("_lf_layout") or _layout(cls)
    children = layout.get_children(obj)
    # callable() is a cheap builtin that arrays and containers fail, so records
    # without functions skip the loop below.
    if not any(map(callable, children)):
        return children, (layout.get_static(obj), _NO_HOISTED)
    hoisted = _NO_HOISTED
    kept = list(children)
    for i, value in enumerate(children):
        if callable(value) and _is_function(value):
            hoisted += ((layout.child_names[i], value),)
            kept[i] = None
    return tuple(kept), (layout.get_static(obj), hoisted)


# The registries see no slot at all for a hoisted function, not a None child:
# a None child is an empty node that tools such as orbax map to a name, and the
# name would be lost on the way back, as the function fills that slot again.
def _registry_flatten(obj: Any) -> tuple[tuple[Any, ...], Any]:
    children, aux = _flatten(obj)
    if not aux[1]:
        return children, aux
    names = {name for name, _ in aux[1]}
    slots = _layout(type(obj)).child_names
    return tuple(c for n, c in zip(slots, children, strict=True) if n not in names), aux


def _registry_unflatten(cls: type, aux: Any, children: Any) -> Any:
    if not aux[1]:
        return _rebuild(cls, aux, children)
    names = {name for name, _ in aux[1]}
    given = iter(children)
    slots = _layout(cls).child_names
    return _rebuild(cls, aux, [None if n in names else next(given) for n in slots])


def _flatten_with_keys(obj: Any) -> tuple[tuple[tuple[Any, Any], ...], Any]:
    children, aux = _flatten(obj)
    layout = _layout(type(obj))
    names = {name for name, _ in aux[1]}
    pairs = zip(layout.keys, layout.child_names, children, strict=True)
    return tuple((key, child) for key, name, child in pairs if name not in names), aux


def _rebuild(cls: type, aux: tuple[Any, ...], children: Any) -> Any:
    layout = _layout(cls)
    static, hoisted = aux
    obj: Any = object.__new__(cls)
    setter = object.__setattr__
    for name, value in zip(layout.child_names, children, strict=True):
        setter(obj, name, value)
    for name, value in zip(layout.static_names, static, strict=True):
        setter(obj, name, value)
    for name, value in hoisted:
        setter(obj, name, value)
    return obj


record_flatten = _flatten
"""The children and structure of a record, as its pytree flatten gives them."""


def record_keys(cls: type) -> tuple[Any, ...]:
    """The JAX keys of a record class's children, in flatten order."""
    return _layout(cls).keys


def record_rebuild(cls: type, aux: Any, children: Any) -> Any:
    """A record of class ``cls`` from its structure and children, without ``__init__``."""
    return _rebuild(cls, aux, children)


def _optree_flatten(obj: Any) -> tuple[tuple[Any, ...], Any, tuple[str, ...]]:
    children, aux = _registry_flatten(obj)
    names = {name for name, _ in aux[1]}
    return children, aux, tuple(n for n in _layout(type(obj)).entries if n not in names)


def _one_level_children(obj: Any) -> list[tuple[Any, Any]]:
    # The children an optic steps into: the pytree children less the functions
    # that flatten moves into the structure (their slots hold a None placeholder).
    children, (_, hoisted) = _flatten(obj)
    pairs = zip(_layout(type(obj)).keys, children, strict=True)
    if not hoisted:
        return list(pairs)
    names = {name for name, _ in hoisted}
    return [(key, child) for key, child in pairs if key.name not in names]


def _one_level_rebuild(obj: Any, new_children: Any) -> Any:
    cls = type(obj)
    children, aux = _flatten(obj)
    names = {name for name, _ in aux[1]}
    replacements = iter(new_children)
    merged = [
        child if key.name in names else next(replacements)
        for key, child in zip(_layout(cls).keys, children, strict=True)
    ]
    if next(replacements, _END) is not _END:
        raise ValueError(f"too many children to rebuild a {cls.__name__}")
    return _rebuild(cls, aux, merged)


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
    if type(value) not in _JAX_FUNCTION_TYPES:
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
    obj: Any = object.__new__(cls)
    for name, value in zip(names, values, strict=True):
        object.__setattr__(obj, name, value)
    return obj


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
            _finalise(cls)
        _register(cls)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if "_lf_layout" not in cls.__dict__:
            _layout(cls)
        obj: Any = cast(Any, cls).__new__(cls)
        ids = _initialising.__dict__.setdefault("ids", set())
        ids.add(id(obj))
        try:
            obj.__init__(*args, **kwargs)
        finally:
            ids.discard(id(obj))
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
            "immutable. Build a new one, e.g. with lf.at."
            f"{name}.set(record, value) or attrs.evolve(record, {name}=value)."
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

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return _tree.tree_equal(self, other)

    def __hash__(self) -> int:
        values = _flatten(self)
        return hash((type(self), values))
