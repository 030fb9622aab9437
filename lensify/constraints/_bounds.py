"""Static bounds: concrete numbers or arrays held in a record's tree structure."""

from __future__ import annotations

from typing import Any

import numpy as np
from jax.typing import ArrayLike

from lensify.constraints._protocol import ConstraintError
from lensify.numerics import is_concrete

__all__ = ["StaticArray", "static_bound", "static_value"]


class StaticArray:
    """A concrete array held in a record's structure: hashable, compared by value."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        array = np.array(array)
        array.setflags(write=False)
        self.array = array

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is StaticArray
            and self.array.shape == other.array.shape
            and self.array.dtype == other.array.dtype
            and bool(np.array_equal(self.array, other.array))
        )

    def __hash__(self) -> int:
        return hash((self.array.shape, self.array.dtype.str, self.array.tobytes()))

    def __repr__(self) -> str:
        return repr(self.array)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        # What it holds, for numpy (and for a checkpoint, which records it exactly).
        return self.array if dtype is None else self.array.astype(dtype)


def static_bound(b: ArrayLike, which: str, constraint: str) -> float | StaticArray:
    """A bound as a Python float or a :class:`StaticArray`; a traced bound is an error."""
    if not is_concrete(b):
        raise ConstraintError(
            f"{constraint} needs a concrete {which} bound, got a traced array: bounds are "
            "static (part of the tree structure, never trained). Build the interval "
            "outside jax.jit, or close over the bounds instead of passing them in.",
            constraint=constraint,
        )
    array = np.asarray(b, dtype=float)
    return float(array) if array.ndim == 0 else StaticArray(array)


def static_value(b: float | StaticArray) -> Any:
    """The number or numpy array a bound holds."""
    return b.array if isinstance(b, StaticArray) else b
