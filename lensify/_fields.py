"""Fields of records, and the hooks that build a record from them.

``lf.field`` declares a field; equinox's ``eqx.field`` declarations are translated
to it. The construction hooks follow dataclasses and equinox: a hand-written
``__init__`` is inherited by subclasses, fields it leaves unset take their defaults,
and an array in a static field warns.

attrs writes a class's ``__init__`` from its fields; the four functions that take a
record apart and put it back together are written the same way, once per class
(:func:`generate_codec`), specialised on its child and static field names, so that
a record costs about what a hand-written pytree node does:

- ``flatten`` and ``unflatten``, given to the pytree registries;
- ``record_flatten`` and ``record_rebuild``, lensify's own view, in which a
  function moved into the structure leaves a None among the children.

They decide two common cases themselves: no child is callable or a container (one
set lookup per child, the set learning child types on first sight), and exactly
one child is a plain function while the others are plain or containers with no
callable entries (a ``Parameterize``). Anything else goes to the general code in
``_records``, whose results they must equal exactly. In the second case the
structure of a class with no static field depends on the function alone, so one
tuple per function is kept and shared (a bounded cache, for plain functions and
jitted functions, which are equal only to themselves).
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
import types
import warnings
from collections.abc import Callable
from typing import Any, cast

import attrs
import jax
import numpy as np

from lensify import _functions, _tree

__all__ = [
    "STATIC",
    "Codec",
    "General",
    "field",
    "fields_init_cannot_take",
    "fill_defaults",
    "from_fields",
    "generate_codec",
    "has_custom_init",
    "keep_inherited_init",
    "learn_plain_types",
    "translate_dataclass_fields",
    "tuple_getter",
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


def tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``obj -> tuple(getattr(obj, n) for n in names)``, done in C where possible."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get_one = operator.attrgetter(names[0])
        return lambda obj: (get_one(obj),)
    return operator.attrgetter(*names)


def from_fields(cls: type, values: dict[str, Any], config: Any = None) -> Any:
    """A record of class ``cls`` holding ``values``, built without ``__init__``, with
    the configuration entries ``config`` (see :func:`set_config`), if any."""
    obj: Any = object.__new__(cls)
    in_dict = _IN_DICT.get(cls)
    if in_dict is None:
        in_dict = _IN_DICT[cls] = all(_stored_in_dict(cls, f.name) for f in attrs.fields(cls))
    if in_dict:
        obj.__dict__.update(values)
    else:
        for name, value in values.items():
            object.__setattr__(obj, name, value)
    if config:
        _functions.set_config(obj, config)
    return obj


# Per record class: whether every field lives in the instance's __dict__ (no slot).
_IN_DICT: dict[type, bool] = {}


# ------------------------------------------------- generated flatten and rebuild

# Types whose instances are neither callable nor a tuple, list or dict: a child of
# such a type is kept as it is, whatever record holds it. Only types that stay
# alive anyway join (JAX's leaves and arrays, registered node types), so that a
# user's passing leaf class is not kept alive by this set.
_PLAIN: set[type] = {float, int, bool, complex, str, type(None), np.ndarray}
_CONTAINERS = _functions.CONTAINER_TYPES
_ARRAYS = (jax.Array, np.ndarray, np.generic, jax.core.Tracer)


def learn_plain_types(children: Any) -> None:
    """Add the types of ``children``, and of the entries of those that are containers,
    that are plain (see ``_PLAIN``) to the fast set."""
    for child in children:
        t = type(child)
        if t in _CONTAINERS:
            for entry in child.values() if t is dict else child:
                _learn(entry)
        else:
            _learn(child)


def _learn(value: Any) -> None:
    t = type(value)
    if t in _PLAIN or t in _CONTAINERS or callable(value):
        return
    if issubclass(t, _ARRAYS) or _tree.is_node(value):
        _PLAIN.add(t)


class General:
    """The general code the generated functions fall back on, for one class."""

    __slots__ = ("flatten", "prepare", "rebuild", "record_flatten", "unflatten")

    def __init__(
        self,
        *,
        prepare: Callable[[], bool],
        flatten: Callable[[Any], Any],
        unflatten: Callable[[Any, Any], Any],
        record_flatten: Callable[[Any], Any],
        rebuild: Callable[[Any, Any], Any],
    ) -> None:
        # prepare: computes the class's layout; False if it disagrees with the
        # fields the functions were generated for, which then always fall back.
        self.prepare = prepare
        self.flatten = flatten
        self.unflatten = unflatten
        self.record_flatten = record_flatten
        self.rebuild = rebuild


class Codec:
    """The generated functions of one record class."""

    __slots__ = ("flatten", "names", "record_flatten", "record_rebuild", "unflatten")

    def __init__(self, namespace: dict[str, Any], names: tuple[Any, ...]) -> None:
        self.flatten: Callable[[Any], Any] = namespace["flatten"]
        self.unflatten: Callable[[Any, Any], Any] = namespace["unflatten"]
        self.record_flatten: Callable[[Any], Any] = namespace["record_flatten"]
        self.record_rebuild: Callable[[Any, Any], Any] = namespace["record_rebuild"]
        # (child names, static names, config): what they were generated for.
        self.names = names


def _stored_in_dict(cls: type, name: str) -> bool:
    """Whether instances keep field ``name`` in their ``__dict__`` (not a slot)."""
    if not getattr(cls, "__dictoffset__", 0):
        return False
    for klass in cls.__mro__:
        if name in klass.__dict__:
            attr = type(klass.__dict__[name])
            return not (hasattr(attr, "__set__") or hasattr(attr, "__delete__"))
    return True


def _kept(i: int) -> str:
    """Source: child ``c{i}`` is kept as it is, being plain or a container with no
    callable entry (the tuple and dict of a Parameterize's args and kwargs first)."""
    c = f"c{i}"
    return (
        f"((t := type({c})) is tuple"
        f" and (len({c}) == 1 and type({c}[0]) in _PLAIN or _entries_kept({c}))"
        f" or t is dict and (not {c} or _PLAIN.issuperset(map(type, {c}.values()))"
        f" or _entries_kept({c}.values()))"
        f" or t in _PLAIN or t is list and _entries_kept({c}))"
    )


def _tight(i: int) -> str:
    """Source: child ``c{i}`` is plain, a 1-tuple of a plain entry or an empty dict:
    the shape of a Parameterize's args and kwargs, in which no entry can be
    configuration (see ``_functions.config_keys``)."""
    c = f"c{i}"
    return (
        f"((t := type({c})) is tuple and len({c}) == 1 and type({c}[0]) in _PLAIN"
        f" or t is dict and not {c} or t in _PLAIN)"
    )


def _entries_kept(entries: Any) -> bool:
    """No entry of a container child is callable, the entries' types learned."""
    if _PLAIN.issuperset(map(type, entries)):
        return True
    for entry in entries:
        _learn(entry)
    return not any(map(callable, entries))


def _flatten_source(
    fname: str, children: tuple[str, ...], statics: tuple[str, ...], config: bool, registry: bool
) -> list[str]:
    k = range(len(children))
    every = "".join(f"c{i}, " for i in k)
    static = "(" + "".join(f"obj.{s}, " for s in statics) + ")" if statics else "()"
    aux = f"({static}, ())" if statics else "_AUX"
    general = f"_general_{fname}(obj)"
    lines = [
        f"def {fname}(obj):",
        "    if _ready is not True:",
        f"        return _slow_{fname}(obj)",
        *[f"    c{i} = obj.{name}" for i, name in enumerate(children)],
    ]
    if not children:
        return [*lines, f"    return (), {aux}"]
    if not config:
        # Every child plain: the usual case, one set lookup per child.
        plain = " and ".join(f"type(c{i}) in _PLAIN" for i in k)
        lines += [f"    if {plain}:", f"        return ({every}), {aux}"]
    # One child a plain function, moved into the structure (a Parameterize's fn);
    # the others kept as they are. A class configuring a function (Parameterize)
    # reads the instance's configuration entries only past its usual shape (one
    # argument, no keywords), which can hold none.
    read_config = ["        if _CONFIG in obj.__dict__:", f"            return {general}"]
    for i in k:
        others = [j for j in k if j != i]
        kept = "".join("None, " if j == i else f"c{j}, " for j in k if j != i or not registry)
        shared = ["    " + line for line in _shared_structure(i, kept, static, statics)]
        lines.append(f"    {'if' if i == 0 and config else 'elif'} type(c{i}) in _FUNCTIONS:")
        if config:
            tight = " and ".join(_tight(j) for j in others) or "True"
            lines += [f"        if {tight}:", *shared, *read_config]
        lines += [f"        if {' and '.join(_kept(j) for j in others) or 'True'}:", *shared]
    # No function: containers with no callable entry are kept as they are.
    if config:
        lines += ["    elif _CONFIG in obj.__dict__:", f"        return {general}"]
    every_kept = " and ".join(_kept(i) for i in k)
    return [
        *lines,
        f"    elif {every_kept}:",
        f"        return ({every}), {aux}",
        f"    return {general}",
    ]


def _shared_structure(i: int, kept: str, static: str, statics: tuple[str, ...]) -> list[str]:
    """Source, indented for an ``if``: return the children ``kept`` and the structure
    of child ``i``, a function, moved into it."""
    if statics:
        return [f"        return ({kept}), ({static}, ((({i},), c{i}),))"]
    # With no static field the structure depends on the function alone: one per
    # function, shared by every flatten (and compared by identity in jit's cache).
    return [
        f"        aux = _HOISTED_{i}.get(c{i})",
        "        if aux is None:",
        f"            aux = _hoisted(_HOISTED_{i}, {i}, c{i})",
        f"        return ({kept}), aux",
    ]


# How many structures each class keeps per child position, one per function:
# past that many functions (a new lambda per record) the cache starts again.
_HOISTED_LIMIT = 256


def _hoisted(cache: dict[Any, Any], i: int, fn: Any) -> Any:
    """The structure of a record with no static field whose child ``i`` is ``fn``,
    moved into it; kept in ``cache`` when ``fn`` is equal only to itself."""
    aux = ((), (((i,), fn),))
    if type(fn) in _IDENTITY_EQUAL:
        if len(cache) >= _HOISTED_LIMIT:
            cache.clear()
        cache[fn] = aux
    return aux


# Function types compared and hashed by identity: a bound method equals another
# bound method of the same function and object, and must not take its place.
_IDENTITY_EQUAL = frozenset(
    t
    for t in _functions.FUNCTION_TYPES
    if t.__eq__ is object.__eq__ and t.__hash__ is object.__hash__
)


def _store_source(cls: type, names: tuple[str, ...], values: list[str]) -> list[str]:
    lines = ["    obj = _new(_cls)"]
    in_dict = [_stored_in_dict(cls, n) for n in names]
    if any(in_dict):
        lines.append("    d = obj.__dict__")
    for name, value, direct in zip(names, values, in_dict, strict=True):
        lines.append(
            f"    d[{name!r}] = {value}" if direct else f"    _set(obj, {name!r}, {value})"
        )
    return lines


def _rebuild_source(
    fname: str, cls: type, children: tuple[str, ...], statics: tuple[str, ...], registry: bool
) -> list[str]:
    k = range(len(children))
    lines = [
        f"def {fname}(aux, children):",
        "    if _ready is not True:",
        f"        return _slow_{fname}(aux, children)",
    ]
    if not children:
        lines += [
            "    static, hoisted = aux",
            "    if hoisted or children:",
            f"        return _general_{fname}(aux, children)",
        ]
    elif statics:
        lines += ["    static, hoisted = aux", *_unpack_source(fname, children, registry)]
    else:
        # The usual structure of a class with no static field, nothing moved into it,
        # is one shared object.
        lines += [
            "    if aux is _AUX:",
            "        " + "".join(f"c{i}, " for i in k) + "= children",
            "    else:",
            "        static, hoisted = aux",
            *("    " + line for line in _unpack_source(fname, children, registry)),
        ]
    if statics:
        lines.append("    " + ", ".join(f"s{i}" for i in range(len(statics))) + ", = static")
    values = [f"c{i}" for i in k] + [f"s{i}" for i in range(len(statics))]
    return [*lines, *_store_source(cls, (*children, *statics), values), "    return obj"]


def _unpack_source(fname: str, children: tuple[str, ...], registry: bool) -> list[str]:
    # A function moved into the structure at the top level of one child (a
    # Parameterize's fn) is put back here; any other hoisting goes the general way.
    k = range(len(children))
    general = f"_general_{fname}(aux, children)"
    lines = [
        "    if hoisted:",
        "        try:",
        "            ((at,), fn), = hoisted",
        "        except (TypeError, ValueError):",
        f"            return {general}",
    ]
    if not registry and children:
        lines.append("        " + ", ".join(f"c{i}" for i in k) + ", = children")
    for i in k:
        lines.append(f"        {'if' if i == 0 else 'elif'} at == {i}:")
        if registry:
            rest = [f"c{j}" for j in k if j != i]
            if rest:
                lines.append("            " + ", ".join(rest) + ", = children")
            else:
                lines += ["            if children:", f"                return {general}"]
        lines.append(f"            c{i} = fn")
    return [
        *lines,
        "        else:",
        f"            return {general}",
        "    else:",
        "        " + ", ".join(f"c{i}" for i in k) + ", = children",
    ]


def generate_codec(
    cls: type,
    children: tuple[str, ...],
    statics: tuple[str, ...],
    config: bool,
    general: General,
) -> Codec:
    """The flatten and rebuild functions of record class ``cls``, as exec'd source."""
    source = [
        *_flatten_source("flatten", children, statics, config, registry=True),
        *_flatten_source("record_flatten", children, statics, config, registry=False),
        *_rebuild_source("unflatten", cls, children, statics, registry=True),
        *_rebuild_source("record_rebuild", cls, children, statics, registry=False),
    ]
    namespace: dict[str, Any] = {
        "_ready": None,
        "_cls": cls,
        "_new": object.__new__,
        "_set": object.__setattr__,
        "_PLAIN": _PLAIN,
        "_entries_kept": _entries_kept,
        "_FUNCTIONS": _functions.FUNCTION_TYPES,
        "_CONFIG": _functions.CONFIG_ATTRIBUTE,
        "_AUX": ((), ()),
        "_hoisted": _hoisted,
        **{f"_HOISTED_{i}": {} for i in range(len(children))},
        "_general_flatten": general.flatten,
        "_general_record_flatten": general.record_flatten,
        "_general_unflatten": general.unflatten,
        "_general_record_rebuild": general.rebuild,
    }

    def ready() -> bool:
        # The first call of any of them: the class's layout is computed (as the
        # general code would), and must agree with the fields read here.
        if namespace["_ready"] is None:
            namespace["_ready"] = general.prepare()
        return namespace["_ready"] is True

    def slow(name: str, fallback: Callable[..., Any]) -> Callable[..., Any]:
        def first(*args: Any) -> Any:
            ready()
            return namespace[name](*args) if namespace["_ready"] is True else fallback(*args)

        return first

    namespace["_slow_flatten"] = slow("flatten", general.flatten)
    namespace["_slow_record_flatten"] = slow("record_flatten", general.record_flatten)
    namespace["_slow_unflatten"] = slow("unflatten", general.unflatten)
    namespace["_slow_record_rebuild"] = slow("record_rebuild", general.rebuild)
    code = compile("\n".join(source), f"<lensify generated flatten of {cls.__qualname__}>", "exec")
    exec(code, namespace)
    return Codec(namespace, (children, statics, config))
