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
import importlib
import sys
import threading
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar, cast

import attrs
from attrs.exceptions import FrozenInstanceError

from lensify import _fields, _functions, _tree
from lensify._fields import field as field

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover
    from typing_extensions import dataclass_transform

__all__ = [
    "FrozenRecordError",
    "Record",
    "Split",
    "Structure",
    "configure",
    "evolve",
    "field",
    "join",
    "record_fields",
    "record_keys",
    "replace",
    "split",
]

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


class _Layout:
    """How one record class splits into children and structure, and how it is built.

    Computed once per class, before its first instance.
    """

    __slots__ = (
        "by_fields",
        "check_inits",
        "child_index",
        "child_names",
        "config",
        "custom_init",
        "defaults",
        "field_names",
        "get_children",
        "get_fields",
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
        self.field_names = _field_names(cls)
        self.child_names, self.static_names, self.config = self.field_names
        self.keys = tuple(_tree.GetAttrKey(n) for n in self.child_names)
        self.child_index = {n: i for i, n in enumerate(self.child_names)}
        self.get_fields = _fields.tuple_getter(self.names)
        self.get_children = _fields.tuple_getter(self.child_names)
        self.get_static = _fields.tuple_getter(self.static_names)
        self.custom_init = _fields.has_custom_init(cls)
        # With a hand-written __init__, the fields it leaves unset take their defaults.
        self.defaults = tuple((f.name, f.default) for f in fields) if self.custom_init else ()
        # A dataclass-style __post_init__ runs after the generated __init__ only, as
        # in dataclasses and equinox.
        self.post_init = not self.custom_init and hasattr(cls, "__post_init__")
        # equinox's validation hook: every class in the MRO that defines one.
        self.check_inits = tuple(
            k.__dict__["__check_init__"] for k in cls.__mro__ if "__check_init__" in k.__dict__
        )
        self.by_fields = _fields.fields_init_cannot_take(cls, fields) if self.custom_init else None


def _field_names(cls: type) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """A record class's child field names, static field names and config flag."""
    fields = attrs.fields(cls)
    children = tuple(f.name for f in fields if not f.metadata.get(_fields.STATIC))
    statics = tuple(f.name for f in fields if f.metadata.get(_fields.STATIC))
    # A class that says so (Parameterize) keeps the Python ints, bools and strings
    # given in its tuple, list and dict fields in the structure (see configure).
    return children, statics, bool(getattr(cls, "_lf_config_in_structure", False))


def _finalise(cls: type) -> None:
    """Apply attrs to an undecorated record class, in place."""
    with _finalise_lock:
        if "__attrs_attrs__" in cls.__dict__:
            return
        for base in cls.__mro__[1:]:
            if isinstance(base, RecordMeta) and "__attrs_attrs__" not in base.__dict__:
                _finalise(base)
        _fields.translate_dataclass_fields(cls)
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


# ------------------------------------------------------------------- construction


def _check_constructed(obj: Any, layout: _Layout) -> None:
    if layout.static_names:
        _fields.warn_static_arrays(obj, layout.static_names)
    for check in layout.check_inits:
        check(obj)


def evolve(record: R, /, **changes: Any) -> R:
    """``record`` with the fields in ``changes`` set, built without ``__init__`` or checks.

    The one way a record is rebuilt with some fields changed (:func:`replace` adds
    its checks): the other fields keep their very objects and their configuration
    (see :func:`configure`), which is decided again for the changed ones, as on
    building. When only children change and nothing moved into the structure sits
    at their places, this is the split's :func:`join`, as JAX rebuilds a record.
    """
    cls = type(record)
    layout = cls.__dict__.get("_lf_layout") or _layout(cls)
    if not layout.names_set.issuperset(changes):
        unknown = next(name for name in changes if name not in layout.names_set)
        raise TypeError(
            f"{cls.__name__} has no field {unknown!r}; its fields are {', '.join(layout.names)}."
        )
    index = layout.child_index
    configures = layout.config and any(map(_functions.may_configure, changes.values()))
    if index.keys() >= changes.keys() and not configures:
        # The usual case: the split's join with the new children, unless a changed
        # child had something moved into the structure (a function, configuration).
        children, structure = split(record)
        changed = [index[name] for name in changes]
        _, hoisted = structure
        if not hoisted or not any(path[0] in changed for path, _ in hoisted):
            new_children = list(children)
            for i, value in zip(changed, changes.values(), strict=True):
                new_children[i] = value
            return cast(R, join(cls, structure, new_children))
    values = dict(zip(layout.names, layout.get_fields(record), strict=True))
    values.update(changes)
    config = _functions.config_of(record) if layout.config else None
    new: R = _fields.from_fields(cls, values, config)
    if configures or any(n in changes for n, _ in config or ()):
        configure(new, record, changes)
    return new


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
    if not isinstance(record, Record):
        raise TypeError(
            f"lf.replace takes a lensify record (a wrapper or constraint), got "
            f"{type(record).__name__}. Use dataclasses.replace, attrs.evolve or an optic's set."
        )
    new = evolve(record, **changes)
    _check_constructed(new, _layout(type(record)))
    return new


# ------------------------------------------------------------- the record's view

# A record's split is (children, structure): its child fields' values (None where
# a function moved out), and (static, hoisted), its static fields' values and the
# (path, value) pairs moved out of the children, a path being (i,) or (i, key) in
# child i. Plain tuples, unpacked by name: one is made per record per flatten.
Hoisted = tuple[tuple[tuple[Any, ...], Any], ...]
Structure = tuple[tuple[Any, ...], Hoisted]
Split = tuple[tuple[Any, ...], Structure]

# Bound here: split runs once per record per flatten.
_CONTAINER_TYPES = _functions.CONTAINER_TYPES
_FUNCTION_TYPES = _functions.FUNCTION_TYPES
_NO_HOISTED: Hoisted = ()


def split(record: Any) -> Split:
    """The children and structure of a record, lensify's view of it (see :data:`Split`).

    Functions among the children, and directly in a child that is a list, tuple
    or dict (a Parameterize's args and kwargs), travel in the structure: their
    places among the children hold None (the registries' flatten leaves those
    places out). So do the entries :func:`configure` named when a class that
    sets ``_lf_config_in_structure`` was built.
    """
    result: Split = type(record)._lf_codec.record_flatten(record)
    return result


def _flatten_general(obj: Any) -> Split:
    # split for every case; the generated one decides the common ones.
    cls = type(obj)
    layout = cls.__dict__.get("_lf_layout") or _layout(cls)
    children = layout.get_children(obj)
    _fields.learn_plain_types(children)
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
            keys = _functions.config_of(obj, layout.child_names[i]) if layout.config else None
            if value and (keys or any(map(callable, value.values() if t is dict else value))):
                kept[i] = _functions.hoist(value, i, found, keys)
        elif callable(value) and _functions.is_function(value):
            found.append(((i,), value))
            kept[i] = None
    if not found:
        return children, (layout.get_static(obj), _NO_HOISTED)
    return tuple(kept), (layout.get_static(obj), tuple(found))


def configure(record: Any, old: Any = None, changed: Any = ()) -> None:
    """Decide which entries of the children of ``record``, of a class that keeps its
    configuration in the structure, travel there (see ``_functions.config_keys``):
    given the record ``old`` it was built from, only those of the ``changed`` fields."""
    names = _layout(type(record)).child_names
    keys = _functions.config_keys(
        (n, getattr(record, n)) for n in names if old is None or n in changed
    )
    if old is not None and (kept := _functions.config_of(old)):
        keys |= {key for key in kept if key[0] not in changed}
    _functions.set_config(record, keys)


def record_keys(cls: type) -> tuple[Any, ...]:
    """The JAX keys of a record class's children, in flatten order."""
    return _layout(cls).keys


def join(cls: type, structure: Structure, children: Sequence[Any]) -> Any:
    """The record of class ``cls`` that :func:`split` gave ``(children, structure)``
    for, built without ``__init__`` or checks: each hoisted value goes back to its path."""
    return cast(Any, cls)._lf_codec.record_rebuild(structure, children)


def _rebuild_general(cls: type, aux: Structure, children: Sequence[Any]) -> Any:
    layout = _layout(cls)
    static, hoisted = aux
    if hoisted:
        children = list(children)
        for path, fn in hoisted:
            i = path[0]
            children[i] = fn if len(path) == 1 else _functions.put(children[i], path[1], fn)
    obj: Any = object.__new__(cls)
    setter = object.__setattr__
    for name, value in zip(layout.child_names, children, strict=True):
        setter(obj, name, value)
    for name, value in zip(layout.static_names, static, strict=True):
        setter(obj, name, value)
    if layout.config and hoisted:
        names = layout.child_names
        _functions.set_config(
            obj,
            frozenset((names[p[0]], p[1]) for p, v in hoisted if len(p) == 2 and not callable(v)),
        )
    return obj


def _registry_flatten_general(obj: Any) -> Split:
    # The registries see fewer slots (see _functions.registry_children).
    children, structure = _flatten_general(obj)
    _, hoisted = structure
    return (_functions.registry_children(children, hoisted) if hoisted else children), structure


def _registry_unflatten_general(cls: type, structure: Structure, children: Sequence[Any]) -> Any:
    _, hoisted = structure
    if not hoisted:
        return _rebuild_general(cls, structure, children)
    whole = _functions.hoisted_whole(hoisted)
    given = iter(children)
    slots = [None if i in whole else next(given) for i in range(len(_layout(cls).child_names))]
    # _rebuild_general puts each function back at its path, a dict's key included.
    return _rebuild_general(cls, structure, slots)


def _registry_keys(obj: Any, structure: Structure) -> tuple[Any, ...]:
    keys = _layout(type(obj)).keys
    _, hoisted = structure
    if not hoisted:
        return keys
    whole = _functions.hoisted_whole(hoisted)
    return tuple(key for i, key in enumerate(keys) if i not in whole)


def _flatten_with_keys(obj: Any) -> tuple[tuple[tuple[Any, Any], ...], Structure]:
    children, structure = type(obj)._lf_codec.flatten(obj)
    return tuple(zip(_registry_keys(obj, structure), children, strict=True)), structure


def _optree_flatten(obj: Any) -> tuple[tuple[Any, ...], Structure, tuple[str, ...]]:
    children, structure = type(obj)._lf_codec.flatten(obj)
    names = tuple(key.name for key in _registry_keys(obj, structure))
    return children, structure, names


def _one_level_children(obj: Any) -> list[tuple[Any, Any]]:
    # The children an optic steps into: the pytree children less the functions
    # that flatten moves into the structure. Functions inside a child's
    # containers stay where they are: the optic sees the container as it is.
    layout = _layout(type(obj))
    pairs = zip(layout.keys, layout.get_children(obj), strict=True)
    return [(key, child) for key, child in pairs if not _functions.is_function(child)]


def _one_level_rebuild(obj: Any, new_children: Any) -> Any:
    cls = type(obj)
    layout = _layout(cls)
    replacements = iter(new_children)
    values = [
        child if _functions.is_function(child) else next(replacements, _END)
        for child in layout.get_children(obj)
    ]
    if any(v is _END for v in values) or next(replacements, _END) is not _END:
        raise ValueError(f"wrong number of children to rebuild a {cls.__name__}")
    fields = dict(zip(layout.child_names, values, strict=True))
    fields.update(zip(layout.static_names, layout.get_static(obj), strict=True))
    return _unpickle(cls, tuple(fields), tuple(fields.values()), _functions.config_of(obj))


_END = object()


def _register(cls: type) -> None:
    # The class's flatten and rebuild are generated from its fields now, so that
    # the registries get them; the layout stays lazy, computed on their first call.
    names = _field_names(cls)
    general = _fields.General(
        prepare=lambda: names == _layout(cls).field_names,
        flatten=_registry_flatten_general,
        unflatten=lambda aux, children: _registry_unflatten_general(cls, aux, children),
        record_flatten=_flatten_general,
        rebuild=lambda aux, children: _rebuild_general(cls, aux, children),
    )
    codec = _fields.generate_codec(cls, *names, general)
    type.__setattr__(cls, "_lf_codec", codec)
    _tree.register_node(
        cls,
        flatten_with_keys=_flatten_with_keys,
        flatten=codec.flatten,
        unflatten=codec.unflatten,
        children=_one_level_children,
        rebuild=_one_level_rebuild,
        optree_flatten=_optree_flatten,
    )


# ---------------------------------------------------------------------- pickling


def _unpickle(
    cls: type, names: tuple[str, ...], values: tuple[Any, ...], config: Any = None
) -> Any:
    # A copy keeps the configuration of what it copies, as JAX's rebuild does.
    return _fields.from_fields(cls, dict(zip(names, values, strict=True)), config)


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
            _fields.keep_inherited_init(cls)
            _fields.warn_post_init_with_custom_init(cls)
            _finalise(cls)
        _register(cls)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        layout = cls.__dict__.get("_lf_layout") or _layout(cls)
        by_fields = layout.by_fields
        if by_fields is not None and not args and kwargs.keys() == by_fields.keys():
            # Every field by name, to a class whose __init__ takes other arguments:
            # what attrs.evolve passes. Rebuilt from the fields, as lf.replace does.
            obj = _fields.from_fields(cls, {by_fields[alias]: v for alias, v in kwargs.items()})
        else:
            obj = cast(Any, cls).__new__(cls)
            ids = _initialising.__dict__.setdefault("ids", set())
            ids.add(id(obj))
            try:
                obj.__init__(*args, **kwargs)
                if layout.custom_init:
                    values = getattr(obj, "__dict__", None)
                    if values is None or not layout.names_set <= values.keys():
                        _fields.fill_defaults(obj, layout.defaults)
                elif layout.post_init:
                    obj.__post_init__()
            finally:
                ids.discard(id(obj))
        if layout.static_names or layout.check_inits:
            _check_constructed(obj, layout)
        return obj


# The module that renders records in treescope, imported the first time treescope
# asks (treescope calls __treescope_repr__): lensify never imports treescope itself.
TREESCOPE_RENDERER = "lensify._treescope"


@dataclass_transform(field_specifiers=(field, attrs.field))
class Record(metaclass=RecordMeta):
    """Base of lensify's immutable pytree records."""

    __slots__ = ()
    _lf_layout: ClassVar[_Layout]
    _lf_codec: ClassVar[_fields.Codec]

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
        # treescope's protocol: the renderer is found by name on first use.
        render = importlib.import_module(TREESCOPE_RENDERER).render
        return render(self, path, subtree_renderer)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled field by field and rebuilt without __init__, like unflatten.
        names = _layout(type(self)).names
        values = tuple(_functions.by_name_if_jitted(getattr(self, name)) for name in names)
        return _unpickle, (type(self), names, values, _functions.config_of(self))

    def __copy__(self) -> Any:
        names = _layout(type(self)).names
        values = tuple(getattr(self, name) for name in names)
        return _unpickle(type(self), names, values, _functions.config_of(self))

    def __replace__(self, **changes: Any) -> Any:
        return replace(self, **changes)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return _tree.tree_equal(self, other)

    def __hash__(self) -> int:
        return hash((type(self), split(self)))
