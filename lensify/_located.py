"""One located error: where in a tree an error happened, said one way.

Every error lensify reports about a place in a tree reads ``at <path>: <what>. <fix>``.
The walks (:mod:`lensify._walker`), the optics and the traced value checks know the
key path where something failed and hand it, with what they were doing, to
:func:`located`, the one place that attaches it:

- lensify's own errors (a :class:`LocatedError`: a constraint's, a value check's, a
  structure mismatch) come back as a copy whose message starts with the path, so a
  check raised under ``jax.jit`` reads exactly as it does eagerly;
- any other error (a user's own, from a wrapper's ``unwrap`` or an optic's
  function) comes back as itself, its type and message untouched, with the note
  ``at <path>: raised while <action>``.
"""

from __future__ import annotations

from typing import TypeVar

from lensify import _notes

__all__ = [
    "LocatedError",
    "NoLogDetError",
    "NotInvertibleError",
    "StructureMismatchError",
    "located",
    "message",
]

_ROOT = "<root>"

E = TypeVar("E", bound=BaseException)


class LocatedError(Exception):
    """An error of lensify's about a value somewhere in a tree.

    Its message is :attr:`what` (what went wrong, then what to do) until a walk or an
    optic locates it: then it is ``at <path>: <what>``, and :attr:`path` is the key
    path.

    Attributes:
        what: The message without the key path.
        path: The key path of the value in the tree, once known, else None.
    """

    path: str | None = None

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def message(path: str, what: str) -> str:
    """The one format: ``at <path>: <what>``."""
    return f"at {path}: {what}"


def located(error: E, path: str, action: str) -> E:
    """``error``, raised at the key path ``path`` while ``action`` (``"unwrapping
    Explode"``), said so.

    A :class:`LocatedError` comes back as a copy whose message starts with the path
    (a path it names already, found by a walk on a subtree, is taken as relative to
    ``path``) and whose ``__cause__`` is ``error`` as raised. Any other error comes
    back as itself, with the note ``at <path>: raised while <action>``.

    Example:
        >>> from lensify._located import LocatedError, located
        >>> print(located(LocatedError("bad value. Pass a good one."), "['a']", "x"))
        at ['a']: bad value. Pass a good one.
        >>> located(ValueError("bad"), "['a'][0]", "unwrapping Explode").__notes__
        ["at ['a'][0]: raised while unwrapping Explode"]
    """
    if isinstance(error, LocatedError):
        below = error.path
        if below is not None and below != _ROOT:
            path = below if path == _ROOT else path + below
        cls = type(error)
        copy = cls.__new__(cls)
        copy.__dict__.update(error.__dict__)
        copy.path = path
        copy.args = (message(path, error.what), *error.args[1:])
        copy.__cause__ = error
        return copy
    _notes.add_note(error, message(path, f"raised while {action}"))
    return error


class NotInvertibleError(LocatedError, TypeError):
    """A wrapper cannot be set by its value: it has no inverse for its ``unwrap``.

    Raised by :meth:`AbstractUnwrappable.with_value` (and so by :func:`rewrap` and
    ``optic.unwrapped().set``) for a wrapper that does not define one, and by a
    ``Parameterize`` whose function has no registered inverse.
    """


class NoLogDetError(LocatedError, TypeError):
    """A wrapper defines no change of variables, so ``lf.unwrap_with_log_det`` cannot
    give the density of its raw parameters: freeze it, or give it a ``log_det``."""


class StructureMismatchError(LocatedError, ValueError):
    """The values given to ``rewrap`` are not shaped like ``unwrap(tree)``."""
