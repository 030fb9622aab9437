"""The one walk over wrapper trees: ``unwrap``, ``fold`` and ``rewrap`` all run on it.

Both walk children one way (:func:`_walk_children`): a node is copied only when a
child changed (a subtree holding no wrapper comes back as the very same object), and
each child is told its *site*, ``(its parent's site, the parent, its key)``, None at
the root. An error is located where it happens (:func:`lensify._located.located`),
its key path read from the site chain: no path is kept while nothing fails.

- :func:`fold` goes bottom-up: every wrapper, its children already folded, is handed
  to an *algebra* whose result takes its place.
- :func:`rewrap` zips a tree with a tree of values (shaped like its unwrapped
  value). At a wrapper ``t`` it asks ``with_value(t, v)`` (see :func:`_with_value_of`)
  for a wrapper ``n`` of the same class, then zips the children of ``n`` with those
  of ``t``: a child of ``n`` that is the very object ``t`` holds there is kept, and
  any other is a value, pushed down into the matching child of ``t``.

Dicts, lists and tuples are walked here, in Python: cheaper than a registry flatten
with a Python ``is_leaf`` callback per node. Others go through :mod:`lensify._tree`.

Which types are wrappers, lensify's and paramax's, is :mod:`lensify._kinds`'s
to say: this module imports no wrapper.
"""

from __future__ import annotations

import importlib
import operator
from collections.abc import Callable
from types import FunctionType
from typing import Any, NamedTuple, NoReturn

import jax
import jax.numpy as jnp
import numpy as np

from lensify import _records, _tree, numerics
from lensify._kinds import (
    FOREIGN_TYPES,
    NOT_WRAPPER_TYPES,
    WRAPPER_TYPES,
    is_wrapper,
    is_wrapper_type,
    join,
    split,
)
from lensify._located import (
    NoLogDetError,
    NotInvertibleError,
    StructureMismatchError,
    located,
)

__all__ = [
    "FOREIGN_TYPES",
    "NoLogDetError",
    "SHIPPED_WITH_VALUES",
    "WRAPPER_TYPES",
    "NotInvertibleError",
    "Scoped",
    "StructureMismatchError",
    "fold",
    "is_wrapper",
    "is_wrapper_type",
    "join",
    "path_of",
    "register_with_value",
    "rewrap",
    "split",
]

# Exact types that hold nothing to walk (leaves and None): the very set object the
# registry boundary keeps, so the array types it learns count at once.
_PLAIN = _tree.PLAIN_TYPES
_TRACED_CHECKS = numerics.TRACED_CHECKS

Algebra = Callable[[Any], Any]
# A step walks one child: (child, its site, its value or the algebra) -> the new child.
_Step = Callable[[Any, Any, Any], Any]


def path_of(site: Any) -> str:
    """The key path of a site of a walk, ``(parent's site, parent, key)`` or None
    at the root, as code (``['layers'][0].weight``; ``<root>``)."""
    keys: list[Any] = []
    while site is not None:
        site, node, key = site
        if type(key) is _Flat:  # an equinox Module's, say: its path is looked up now
            keys += reversed(_tree.flatten_with_path(node, is_leaf=_is_wrapper)[0][key][0])
        else:
            keys.append(_key_at(node, key))
    return _tree.keystr(tuple(reversed(keys)))


def _located_at(site: Any, error: BaseException, action: str) -> BaseException:
    """``error``, found at ``site`` while ``action``, located: itself with a note, or
    its located copy (see :func:`lensify._located.located`)."""
    return located(error, path_of(site), action)


def _raise_located(site: Any, error: BaseException, action: str) -> NoReturn:
    """Raise ``error``, caught at ``site`` while ``action``, located. Raised again with
    a note, it keeps its own cause and context; a located copy carries its traceback
    and hides it (it says nothing more)."""
    out = _located_at(site, error, action)
    if out is error:
        raise error
    raise out.with_traceback(error.__traceback__) from None


class _Flat(int):
    """The index of a wrapper among the flattened leaves of another node."""


def _key_at(node: Any, key: Any) -> Any:
    """The JAX key of ``node``'s child at ``key`` (only asked for when reporting errors)."""
    t = type(node)
    if t is dict:
        return _tree.DictKey(key)
    if t is list or t is tuple:
        return _tree.SequenceKey(key)
    if t in WRAPPER_TYPES and t not in FOREIGN_TYPES:
        return _records.record_keys(t)[key]
    return (_tree.children(node) or [])[key][0]


def _walk_children(node: Any, children: Any, values: Any, step: _Step, site: Any) -> Any:
    """Walk the ``children`` (a dict, or a sequence) of ``node``; None if none changed,
    else a copy of ``children`` with the new children in it.

    The zipped walk (``rewrap``) gives each child its value from ``values``, indexed
    like ``children``: a leaf taking itself is kept, a leaf taking a leaf is fitted
    here, and ``step(child, (site, node, key), value)`` walks the rest. The fold gives
    every child the same value, an :class:`_Each` holding its algebra, as ``values``:
    plain leaves hold no wrapper and are skipped.
    """
    new: Any = None
    plain = _PLAIN
    items = children.items() if type(children) is dict else enumerate(children)
    if type(values) is _Each:
        for key, child in items:
            if type(child) in plain:
                continue  # the usual case: an array, a scalar, a hoisted function's None
            out = step(child, (site, node, key), values)
            if out is not child:
                new = _put(new, children, key, out)
        return new
    for key, child in items:
        out = values[key]
        if out is child and type(child) in plain:
            continue  # a leaf (or None) taking itself: nothing to do
        # A leaf taking a leaf's value, or None taking None, needs no step.
        if child is None or out is None or type(child) not in plain or type(out) not in plain:
            out = step(child, (site, node, key), out)
        else:
            out = _leaf_at((site, node, key), child, out, fit_leaf)
        if out is not child:
            new = _put(new, children, key, out)
    return new


def _put(new: Any, children: Any, key: Any, child: Any) -> Any:
    # Copy on write: the first changed child copies children.
    if new is None:
        new = dict(children) if type(children) is dict else list(children)
    new[key] = child
    return new


class _Each(NamedTuple):
    """The values of the fold's children: its algebra, for each of them."""

    algebra: Algebra


# ------------------------------------------------------------------------------ fold


class Scoped:
    """An algebra that chooses, wrapper by wrapper, the algebra folding that wrapper.

    ``scope(wrapper)`` is asked before the wrapper's children are folded, and the
    algebra it returns folds the wrapper and everything below it: so an algebra can
    treat a whole subtree differently (``unwrap_with_log_det`` folds what a
    ``NonTrainable`` holds with plain ``unwrap``, since frozen parameters are not
    variables).
    """

    __slots__ = ()

    def scope(self, wrapper: Any) -> Algebra:
        return self

    def __call__(self, wrapper: Any) -> Any:
        raise NotImplementedError


def _fold_wrapper(wrapper: Any, site: Any, each: _Each) -> Any:
    cls = type(wrapper)
    algebra = each.algebra
    if isinstance(algebra, Scoped):
        scoped = algebra.scope(wrapper)
        if scoped is not algebra:
            algebra, each = scoped, _Each(scoped)
    children, structure = split(wrapper)
    new = _walk_children(wrapper, children, each, _fold, site)
    if new is not None:
        wrapper = join(cls, structure, new)
    try:
        return algebra(wrapper)
    except Exception as error:
        _raise_located(site, error, f"unwrapping {cls.__name__}")


def _fold(tree: Any, site: Any, each: _Each) -> Any:
    t = type(tree)
    if t in WRAPPER_TYPES:
        return _fold_wrapper(tree, site, each)
    if t in _PLAIN:
        return tree
    if t is list or t is tuple or t is dict:
        new = _walk_children(tree, tree, each, _fold, site)
        if new is None:
            return tree
        return tuple(new) if t is tuple else new
    if t not in NOT_WRAPPER_TYPES and is_wrapper_type(t):
        return _fold_wrapper(tree, site, each)
    if not _tree.is_node(tree):
        return tree
    return _fold_node(tree, site, each)


_is_wrapper = is_wrapper


def _fold_node(tree: Any, site: Any, each: _Each) -> Any:
    # Any other node (an equinox Module, a namedtuple): one flatten down to the
    # outermost wrappers, in C, then one unflatten if any was found.
    leaves, treedef = _tree.flatten(tree, is_leaf=_is_wrapper)
    if not any(map(_is_wrapper, leaves)):
        return tree  # nothing to rebuild: the same object comes back
    out = [
        _fold_wrapper(x, (site, tree, _Flat(i)), each) if type(x) in WRAPPER_TYPES else x
        for i, x in enumerate(leaves)
    ]
    return _tree.unflatten(treedef, out)


def fold(tree: Any, algebra: Algebra) -> Any:
    """Replace every wrapper, innermost first, by ``algebra`` of it (children folded).

    An error raised by ``algebra`` is located (:func:`lensify._located.located`): one
    of lensify's starts its message with the wrapper's key path, any other gets the
    note ``at <key path>: raised while unwrapping <class>``. An algebra may fold
    what it returns (unwrap is total): an error located by that inner fold is located
    again by the wrapper whose algebra ran it.
    """
    return _fold(tree, None, _Each(algebra))


# ---------------------------------------------------------------------------- rewrap


def _mismatch(what: str) -> StructureMismatchError:
    return StructureMismatchError(f"{what}. rewrap needs values shaped like lf.unwrap(tree)")


def _leaf_at(site: Any, old: Any, value: Any, check: Callable[[Any, Any], Any]) -> Any:
    # A leaf's value, checked by _leaf_value (or, leaf for leaf, fit_leaf), located.
    try:
        return check(old, value)
    except StructureMismatchError as error:
        _raise_located(site, error, "rewrapping")


def _leaf_value(old: Any, value: Any) -> Any:
    # A leaf of the tree takes its value, which must be a leaf too (None for None).
    if old is None:
        if value is not None:
            raise _mismatch(f"expected None, got {_kind(value)}")
        return None
    if is_wrapper(value):
        raise StructureMismatchError(_wrapped_value_message(value))
    if value is None or (type(value) not in _PLAIN and _tree.is_node(value)):
        raise _mismatch(f"expected a leaf, got {_kind(value)}")
    return fit_leaf(old, value)


def _wrapped_value_message(value: Any) -> str:
    return (
        f"expected a plain value, got a {type(value).__name__} wrapper. Values must be "
        "plain, unwrapped values: to load a wrapped model's values, pass "
        "lf.unwrap(pretrained)."
    )


def fit_leaf(old: Any, new: Any) -> Any:
    """``new`` in the place of the array leaf ``old``: its shape kept, its dtype cast.

    A raw parameter keeps its shape and dtype through ``rewrap``: a value of another
    shape is a :class:`StructureMismatchError` unless it broadcasts to the stored
    shape (a scalar for a vector), and a value of another dtype is cast to the stored
    one (bfloat16 values do not turn a float32 parameter into bfloat16). A leaf with
    no shape (a Python number) takes the value as it is.
    """
    if type(new) is _ARRAY and type(old) is _ARRAY:
        # The usual case, decided on the avals (each array property reads it again).
        a, b = old.aval, new.aval
        if a.shape == b.shape and a.dtype == b.dtype and not b.weak_type:
            return new
    shape = getattr(old, "shape", None)
    if shape is None or type(old) in _SCALARS:
        return new
    new_shape = getattr(new, "shape", None)
    if new_shape is None:
        new_shape = np.shape(new)
    if new_shape != shape:
        if len(new_shape) > len(shape) or _broadcast(new_shape, shape) != shape:
            raise StructureMismatchError(
                f"expected a value of shape {shape} (the stored parameter's shape), got "
                f"shape {new_shape}. rewrap keeps every raw parameter's shape."
            )
        new = jnp.broadcast_to(new, shape)
    dtype = getattr(old, "dtype", None)
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC:
        return new  # a PRNG key or another extended dtype: JAX checks it
    if getattr(new, "dtype", None) != dtype or getattr(new, "weak_type", False):
        if isinstance(old, np.ndarray) and not isinstance(new, jax.core.Tracer):
            return np.asarray(new, dtype)
        return jnp.asarray(new, dtype)
    return new


_NUMERIC = frozenset("biufc")
_ARRAY = numerics.CONCRETE_ARRAY  # named, not made: importing starts no backend


_SCALARS = frozenset({int, float, complex, bool})


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


def _kind(value: Any) -> str:
    if value is None or type(value) in (dict, list, tuple):
        return repr(value) if len(repr(value)) <= 60 else type(value).__name__
    return type(value).__name__


def _rewrap_wrapper(wrapper: Any, value: Any, site: Any) -> Any:
    cls = type(wrapper)
    if type(value) not in _PLAIN and is_wrapper(value):
        error = StructureMismatchError(_wrapped_value_message(value))
        raise _located_at(site, error, f"rewrapping {cls.__name__}")
    with_value = _WITH_VALUE.get(cls) or _with_value_of(cls)
    checks = _TRACED_CHECKS.get()
    start = len(checks.labels) if checks is not None else 0
    try:
        target = with_value(wrapper, value)
        if type(target) is not cls:
            raise _wrong_type(cls, target)
        if target is wrapper:
            return wrapper  # with_value changed nothing
        (children, structure), (values, target_structure) = split(wrapper), split(target)
        if cls in _REGISTERED_FOR:
            target, values = _finite_raw_values(cls, target, target_structure, values, children)
    except Exception as error:
        _raise_located(site, error, f"rewrapping {cls.__name__}")
    finally:
        if checks is not None and len(checks.labels) > start:
            # Checks traced by this with_value run later: they are this wrapper's.
            checks.claim(start, wrapper, path_of(site))
    new = _walk_children(wrapper, children, values, _push, site)
    if new is None:  # every child kept: the wrapper, unless its static fields changed
        if target_structure is structure or _same(target_structure, structure):
            return wrapper
        return target
    # What with_value returns is respected whole, static fields too: rebuilt only if
    # a value was not taken as it gave it.
    return target if all(map(_is, new, values)) else join(cls, target_structure, new)


_is = operator.is_


def _push(tree: Any, site: Any, value: Any) -> Any:
    # A child of what with_value returned, into the wrapper's child there: the very
    # same object is kept; anything else is a value for it (through containers too).
    if value is tree:
        return tree
    t = type(tree)
    if t in WRAPPER_TYPES or t in _PLAIN or (t not in NOT_WRAPPER_TYPES and is_wrapper_type(t)):
        return _rewrap(tree, site, value)
    out = _rewrap_node(tree, site, value, _push)
    if (t is list or t is tuple) and out is not tree and all(map(_is, out, value)):
        return value  # every entry as with_value gave it: its own container, not a copy
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # static arrays compare elementwise: rebuild, to be safe
        return False


# Per wrapper class, its with_value as rewrap calls it (see _with_value_of).
_WITH_VALUE: dict[type, Callable[[Any, Any], Any]] = {}
# Classes given a with_value by register_with_value: class -> with_value(wrapper, value).
_REGISTERED: dict[type, Callable[[Any, Any], Any]] = {}
# The classes whose with_value is a registered one (their own or a base's). Never
# emptied: a registration only ever replaces a class's with_value by a registered one.
_REGISTERED_FOR: set[type] = set()
# The module of what lensify ships for classes it does not own (paramax's, GPJax's):
# shipped_with_value(cls) gives a with_value or None. Imported when first needed.
SHIPPED_WITH_VALUES = "lensify._clients"


def register_with_value(cls: type, fn: Callable[[Any, Any], Any]) -> None:
    """Set wrappers of class ``cls`` by value with ``fn``: see ``lf.register_with_value``."""
    if not isinstance(cls, type):
        raise TypeError(f"register_with_value needs a class, got {type(cls).__name__} {cls!r}.")
    if not callable(fn):
        raise TypeError(
            f"register_with_value needs a function fn(wrapper, value) -> wrapper, got "
            f"{type(fn).__name__} {fn!r}."
        )
    _REGISTERED[cls] = fn
    _WITH_VALUE.clear()  # a subclass may have cached its base's


def _with_value_of(cls: type) -> Callable[[Any, Any], Any]:
    """The one way rewrap sets a wrapper of class ``cls`` by value: ``fn(wrapper, value)``.

    The nearest class of the MRO with a ``with_value`` method or a function given by
    :func:`register_with_value` decides, so a subclass's override is what runs; a
    class with neither (paramax's, GPJax's) takes what lensify ships, if anything.
    """
    found: Callable[[Any, Any], Any] | None = None
    for owner in cls.__mro__:
        registered = _REGISTERED.get(owner)
        if registered is not None:
            found = registered
            _REGISTERED_FOR.add(cls)  # before found is cached: see _rewrap_wrapper
            break
        method = owner.__dict__.get("with_value")
        if method is not None:  # called as wrapper.with_value(value) would call it
            found = method if type(method) is FunctionType else lambda w, v: w.with_value(v)
            break
    if found is None:
        found = importlib.import_module(SHIPPED_WITH_VALUES).shipped_with_value(cls)
    if found is None:
        found = _missing
    _WITH_VALUE[cls] = found
    return found


def _missing(wrapper: Any, value: Any) -> Any:
    name = type(wrapper).__name__
    raise NotInvertibleError(
        f"{name} cannot be set by its value: it has no with_value, and none is "
        f"registered. Give it one with lf.register_with_value({name}, fn), fn("
        f"wrapper, value) returning a {name} whose children hold the values that "
        f"unwrap to value, or set its raw fields with an optic."
    )


def _wrong_type(cls: type, target: Any) -> TypeError:
    name = cls.__name__
    return TypeError(
        f"{name}.with_value returned a {type(target).__name__}; it must "
        f"return a {name} (the same type; its static fields may differ)."
    )


def _finite_raw_values(
    cls: type, target: Any, structure: Any, values: Any, children: Any
) -> tuple[Any, Any]:
    # What a registered with_value returned, split (values, structure), with each child it
    # changed (a kept child is the wrapper's own) checked to hold finite raw values:
    # (target, values), rebuilt if a check gave another object.
    pairs = zip(values, children, strict=True)
    checked = [v if v is c else _checked_finite(v, cls.__name__) for v, c in pairs]
    if all(map(_is, checked, values)):
        return target, values
    return join(cls, structure, checked), checked


def _checked_finite(values: Any, name: str) -> Any:
    # A registered with_value's raw values, each float array checked to be finite: a
    # value outside the class's range must be refused, not stored as NaN.
    def check(leaf: Any) -> Any:
        if not _tree.is_inexact_array(leaf):
            return leaf

        def error(found: numerics.Found) -> ValueError:
            first = found.index
            return numerics.ValueCheckError(
                f"{name}: a value is outside its range: the registered with_value gives a "
                f"NaN or infinite raw value ({found.count} position(s), the first at "
                f"{first})."
            )

        return numerics.check_where(leaf, ~jnp.isfinite(leaf), error)

    return _tree.tree_map(check, values, is_leaf=is_wrapper)


def _check_same_node(site: Any, tree: Any, values: Any) -> None:
    # values must be a dict, list or tuple built like tree.
    t = type(tree)
    if type(values) is not t or len(values) != len(tree):
        what = f"expected {_describe_node(tree)}, got {_kind(values)}"
    elif t is dict and values.keys() != tree.keys():
        what = (
            f"expected a dict with keys {sorted(tree, key=repr)!r}, got one with keys "
            f"{sorted(values, key=repr)!r}"
        )
    else:
        return
    raise _located_at(site, _mismatch(what), "rewrapping")


def _describe_node(tree: Any) -> str:
    if type(tree) is dict:
        return f"a dict of {len(tree)} entries"
    return f"a {type(tree).__name__} of length {len(tree)}"


def _rewrap(tree: Any, site: Any, values: Any) -> Any:
    t = type(tree)
    if t in WRAPPER_TYPES:
        return _rewrap_wrapper(tree, values, site)
    if t in _PLAIN:
        return _leaf_at(site, tree, values, _leaf_value)
    if t not in NOT_WRAPPER_TYPES and t not in (list, tuple, dict) and is_wrapper_type(t):
        return _rewrap_wrapper(tree, values, site)
    return _rewrap_node(tree, site, values, _rewrap)


def _rewrap_node(tree: Any, site: Any, values: Any, step: _Step) -> Any:
    t = type(tree)  # a node that is not a wrapper: each child takes its value by step
    if t is list or t is tuple or t is dict:
        if type(values) is not t or len(values) != len(tree):
            _check_same_node(site, tree, values)
        if t is dict and values.keys() != tree.keys():
            _check_same_node(site, tree, values)
        new = _walk_children(tree, tree, values, step, site)
        if new is None:
            return tree
        return tuple(new) if t is tuple else new
    pairs = _tree.children(tree)
    if pairs is None:
        return _leaf_at(site, tree, values, _leaf_value)
    value_pairs = _tree.children(values) if type(values) is t else None
    keys = [key for key, _ in pairs]
    if value_pairs is None or [key for key, _ in value_pairs] != keys:
        what = f"expected a {t.__name__} with children {_tree.keystr(keys)}, got {_kind(values)}"
        raise _located_at(site, _mismatch(what), "rewrapping")
    children = [child for _, child in pairs]
    new = _walk_children(tree, children, [v for _, v in value_pairs], step, site)
    return tree if new is None else _tree.rebuild(tree, list(new))


def rewrap(tree: Any, values: Any, *, locate_traced: bool = True) -> Any:
    """``tree`` with its leaves and wrappers set so that it unwraps to ``values``.

    Errors are located (:func:`lensify._located.located`): lensify's own (a
    :class:`StructureMismatchError`, a constraint's, a value check's) start their
    message with the key path, ``at <path>: <what>``; any other error raised by a
    wrapper's ``with_value`` gets the note ``at <path>: raised while rewrapping
    <class>``. A check traced under ``jax.jit`` fails with the same message when the
    computation runs, unless ``locate_traced`` is False (for a caller whose ``tree``
    is not the user's root): then it names no path.
    """
    token = _TRACED_CHECKS.set(numerics.TracedChecks() if locate_traced else None)
    try:
        return _rewrap(tree, None, values)
    finally:
        _TRACED_CHECKS.reset(token)
