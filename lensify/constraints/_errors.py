"""The error a constraint raises for a value outside its support, and its messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lensify._located import LocatedError, located
from lensify.numerics import Found

__all__ = ["ConstraintError", "boundary_error", "support_error"]


class ConstraintError(LocatedError, ValueError):
    """A value given to a constraint lies outside its support, or has the wrong shape.

    Attributes:
        constraint: The name of the constraint class.
        value: The first offending entry (None for a shape error).
        index: Its index in the value (None for a shape error).
        count: How many entries are outside the support.
        path: The key path of the value in a larger tree, once known, else None:
            ``lf.rewrap`` and an optic's ``wrap`` start the message with it,
            ``at <path>: <what>``.

    Example:
        >>> import lensify as lf
        >>> try:
        ...     lf.positive([1.0, -2.0])
        ... except lf.ConstraintError as error:
        ...     print(error.constraint, error.value, error.index)
        Positive -2.0 (1,)
    """

    def __init__(
        self,
        message: str,
        *,
        constraint: str,
        value: Any = None,
        index: tuple[int, ...] | None = None,
        count: int = 0,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.constraint = constraint
        self.value = value
        self.index = index
        self.count = count
        self.path = path

    @property
    def message(self) -> str:
        """The message without the key path (the same as :attr:`what`)."""
        return self.what

    def with_path(self, path: str) -> ConstraintError:
        """The same error, its message starting with the key path of the value.

        Meant for code that constructs constraints across a tree: catch the error,
        then ``raise error.with_path(keystr) from error``. Optics and ``lf.rewrap``
        do this for you.

        Example:
            >>> import lensify as lf
            >>> try:
            ...     lf.positive(-1.0)
            ... except lf.ConstraintError as error:
            ...     print(error.with_path("['scale']"))
            at ['scale']: Positive got -1.0, outside its support x > 0 ...
        """
        return located(self, path, "")


def support_error(name: str, support: str) -> Callable[[Found], Exception]:
    def make(found: Found) -> ConstraintError:
        index, count = found.index, found.count
        offending = found.value.item()
        where = f" at index {index}" if index else ""
        message = (
            f"{name} got {found.value!s}{where}, outside its support {support} "
            f"({count} of {found.size} entries are outside). Pass a value inside the "
            "support, or choose a constraint whose support holds it."
        )
        return ConstraintError(message, constraint=name, value=offending, index=index, count=count)

    return make


def boundary_error(name: str, support: str) -> Callable[[Found], Exception]:
    def make(found: Found) -> ConstraintError:
        index, count = found.index, found.count
        message = (
            f"{name} cannot store this value: it lies on the boundary of the support "
            f"{support}, where the raw parameter would be {found.value!s} ({count} raw "
            f"entries, the first at index {index}). Pass a value strictly inside the "
            "support (no 0 or 1 of a closed interval, no zero in a simplex, no singular "
            "matrix)."
        )
        return ConstraintError(message, constraint=name, index=index, count=count)

    return make
