"""Which objects are wrappers, and how a wrapper is taken apart and rebuilt.

lensify's wrappers are records: :data:`WRAPPER_TYPES` is filled by
``lensify.wrappers`` as their classes are defined. paramax's wrappers (and their
subclasses: GPJax's parameters, flowjax's) join it when a walk first meets one
(:func:`is_wrapper_type`), as :data:`FOREIGN_TYPES`: they are equinox Modules, not
records, and are taken apart and rebuilt through the registry boundary. paramax is
never imported here: it is read from ``sys.modules``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from lensify import _records, _tree

__all__ = [
    "FOREIGN_TYPES",
    "NOT_WRAPPER_TYPES",
    "WRAPPER_TYPES",
    "is_wrapper",
    "is_wrapper_type",
    "join",
    "split",
]

_PLAIN = _tree.PLAIN_TYPES

# Every wrapper class, abstract ones included. Exact-type membership is much cheaper
# than an ABC isinstance check, and the walks ask it once per node.
WRAPPER_TYPES: set[type] = set()
# The wrapper classes that are not lensify records: paramax's and their subclasses.
FOREIGN_TYPES: set[type] = set()
# Types found not to be wrappers. A type seen before paramax was imported cannot be a
# subclass of paramax's, so the answer never changes.
NOT_WRAPPER_TYPES: set[type] = set()


def is_wrapper_type(t: type) -> bool:
    """True if instances of ``t`` are wrappers: lensify's, or paramax's if it is loaded."""
    if t in WRAPPER_TYPES:
        return True
    if t in NOT_WRAPPER_TYPES or t in _PLAIN:
        return False
    paramax = sys.modules.get("paramax.wrappers")
    base = getattr(paramax, "AbstractUnwrappable", None)
    if isinstance(base, type) and base not in WRAPPER_TYPES and issubclass(t, base):
        FOREIGN_TYPES.add(t)
        WRAPPER_TYPES.add(t)
        return True
    NOT_WRAPPER_TYPES.add(t)
    return False


def is_wrapper(x: Any) -> bool:
    """True if ``x`` is a wrapper: lensify's, or paramax's if it is loaded."""
    t = type(x)
    return t in WRAPPER_TYPES or (t not in NOT_WRAPPER_TYPES and is_wrapper_type(t))


def split(wrapper: Any) -> tuple[Sequence[Any], Any]:
    """``(children, structure)`` of a wrapper: a record's split (see
    :data:`lensify._records.Split`), or a foreign one's children and itself."""
    if type(wrapper) in FOREIGN_TYPES:
        return _tree.child_list(wrapper) or [], wrapper
    return _records.split(wrapper)


def join(cls: type, structure: Any, children: Sequence[Any]) -> Any:
    """The wrapper of class ``cls`` that :func:`split` gave ``structure`` for, with
    ``children``: a record's join, or a foreign one rebuilt through the registry."""
    if cls in FOREIGN_TYPES:
        return _tree.rebuild(structure, list(children))
    return _records.join(cls, structure, children)
