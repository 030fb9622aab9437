"""Constraints on vectors along an axis: the simplex and unit vectors."""

from __future__ import annotations

import operator
from typing import Any

import jax
import jax.numpy as jnp

from lensify import _records
from lensify.constraints._protocol import (
    AbstractConstraint,
    Tolerance,
    log_range,
    standard_normal_log_density,
    sum_tolerance,
    tiny,
    wide_raw,
)
from lensify.wrappers import unwrap

__all__ = ["Simplex", "UnitVector", "simplex", "unit_vector"]


class _AlongAxis(AbstractConstraint):
    """A constraint on the vectors along ``axis``; other axes are batch axes."""

    # Stored negative, so that leading (batch) axes added by vmap are never counted.
    axis: int = _records.field(static=True, default=-1)

    def __init__(self, value: Any, axis: int = -1) -> None:
        axis = operator.index(axis)
        shape = jnp.shape(unwrap(value))
        if not -len(shape) <= axis < len(shape) or shape[axis] < 1:
            raise self._error(
                f"needs a value with a non-empty axis {axis}, got shape {shape}. Pass an "
                f"axis from {-len(shape)} to {len(shape) - 1} along which the value has "
                "entries."
            )
        self.axis = axis - len(shape) if axis >= 0 else axis
        self._set_raw(value)

    def _size(self) -> int:
        # Entries along the axis, read from the stored (possibly wrapped) value.
        return int(jnp.shape(unwrap(self))[self.axis])

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if not -len(shape) <= self.axis < 0 or shape[self.axis] < 1:
            raise self._error(
                f"needs a value with a non-empty axis {self.axis} (counted from the end), "
                f"got shape {shape}."
            )


class Simplex(_AlongAxis):
    """Positive entries summing to 1 along ``axis``: a softmax with one fewer freedom.

    The raw parameter has ``n - 1`` entries along the axis: ``forward`` appends a 0
    and takes the softmax, and the inverse is ``log(x[:-1] / x[-1])``, exact on the
    open simplex. Construction needs positive entries summing to 1 (to a few ulps
    per entry). Any raw value unwraps to entries in ``[0, 1]`` summing to 1 to float
    tolerance; entries underflow to exactly 0 when their raw value is about 87
    below the largest (float32).

    Args:
        value: The value to start from, on the simplex along ``axis``.
        axis: The axis along which entries sum to 1; stored counted from the end.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> w = lf.Simplex(jnp.array([0.2, 0.3, 0.5]))
        >>> w.raw.shape, lf.unwrap(w).round(6)
        ((2,), Array([0.2, 0.3, 0.5], dtype=float32))
    """

    support = "entries > 0 summing to 1 along the axis"
    _compiled_inverse = True
    _compiled_forward = True
    _compiled_log_det = True

    def forward(self, raw: jax.Array) -> jax.Array:
        pad = [(0, 0)] * raw.ndim
        pad[self.axis] = (0, 1)
        return jax.nn.softmax(jnp.pad(raw, pad), axis=self.axis)

    def log_det(self) -> jax.Array:
        # The density of the first n - 1 entries: the Jacobian of softmax with a
        # zero appended has determinant prod(value), over all n entries.
        raw = wide_raw(self.raw)
        pad = [(0, 0)] * raw.ndim
        pad[self.axis] = (0, 1)
        return jnp.sum(jax.nn.log_softmax(jnp.pad(raw, pad), axis=self.axis))

    def inverse(self, value: jax.Array) -> jax.Array:
        logs = jnp.log(jnp.maximum(value, tiny(value)))
        n = value.shape[self.axis]
        head = jax.lax.slice_in_dim(logs, 0, n - 1, axis=self.axis)
        last = jax.lax.slice_in_dim(logs, n - 1, n, axis=self.axis)
        return head - last

    def tolerance(self, dtype: Any) -> Tolerance:
        """``rtol = (16 n + 8 + 2 log(1 / tiny)) * eps`` and ``atol = 4 * tiny``.

        Two raw logarithms per entry (``n`` entries along the axis), plus the
        renormalisation of a value whose sum construction accepted within
        ``16 n eps`` of 1.
        """
        info = jnp.finfo(dtype)
        n = self._size()
        rtol = (16 * n + 2 * log_range(dtype)) * float(info.eps)
        return Tolerance(rtol=rtol, atol=4 * float(info.tiny))

    def _sums_to_one(self, value: jax.Array) -> jax.Array:
        n = value.shape[self.axis]
        total = jnp.sum(value, axis=self.axis, keepdims=True)
        return jnp.abs(total - 1) <= sum_tolerance(n, value.dtype)

    def in_support(self, value: jax.Array) -> jax.Array:
        return (value > 0) & self._sums_to_one(value)

    def in_closure(self, value: jax.Array) -> jax.Array:
        return (value >= 0) & (value <= 1) & self._sums_to_one(value)


def simplex(x: Any, axis: int = -1) -> Simplex:
    """Constrain ``x`` to the probability simplex along ``axis``, starting at ``x``.

    Args:
        x: An array of positive entries summing to 1 along ``axis``.
        axis: The axis of the simplex; other axes are batch axes.

    Returns:
        A :class:`Simplex` with ``unwrap(simplex(x)) == x``.

    Raises:
        ConstraintError: if an entry is not positive, or the entries along
            ``axis`` do not sum to 1.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> weights = lf.simplex(jnp.array([[0.5, 0.5], [0.9, 0.1]]))
        >>> lf.unwrap(weights).round(6)
        Array([[0.5, 0.5],
               [0.9, 0.1]], dtype=float32)
    """
    return Simplex(x, axis=axis)


class UnitVector(_AlongAxis):
    """A vector of Euclidean norm 1 along ``axis``: ``raw / ‖raw‖``.

    The raw parameter is the vector itself (the inverse is the identity); the norm
    is computed after scaling by a power of two near the largest entry (exactly),
    so it neither overflows nor underflows for any finite raw value. The zero
    vector has no direction and unwraps to the first basis vector along the axis.
    Construction needs a norm of 1 to a few ulps per entry; any raw value unwraps
    to a norm of 1 to float tolerance.

    Args:
        value: The unit vector to start from.
        axis: The axis of the vector; stored counted from the end.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.unwrap(lf.UnitVector(jnp.array([0.6, 0.8])))
        Array([0.6, 0.8], dtype=float32)
    """

    support = "norm 1 along the axis"
    _compiled_inverse = True
    _compiled_forward = True
    _compiled_log_det = True

    def log_det(self) -> jax.Array:
        # The direction ignores the radius: the raw vector gets a standard normal
        # density, under which the direction is uniform on the sphere.
        return jnp.sum(standard_normal_log_density(wide_raw(self.raw)))

    def forward(self, raw: jax.Array) -> jax.Array:
        nonzero = jnp.any(raw != 0, axis=self.axis, keepdims=True)
        # Zero vectors are replaced before any division, so that no branch of the
        # where below has a NaN value or gradient.
        safe = jnp.where(nonzero, raw, 1)
        # Scaled by a power of two near the largest entry: exact, and the norm can
        # neither overflow nor underflow. (Dividing by the largest entry itself
        # would flush to zero for entries near the float maximum.)
        _, exponent = jnp.frexp(jnp.max(jnp.abs(safe), axis=self.axis, keepdims=True))
        scaled = jnp.ldexp(safe, -exponent)
        unit = scaled / jnp.linalg.norm(scaled, axis=self.axis, keepdims=True)
        first = jax.lax.broadcasted_iota(jnp.int32, raw.shape, raw.ndim + self.axis) == 0
        return jnp.where(nonzero, unit, first.astype(raw.dtype))

    def inverse(self, value: jax.Array) -> jax.Array:
        return value

    def tolerance(self, dtype: Any) -> Tolerance:
        """``rtol = (16 n + 4) * eps``: renormalising a norm accepted within ``16 n eps``."""
        info = jnp.finfo(dtype)
        return Tolerance(rtol=(16 * self._size() + 4) * float(info.eps), atol=4 * float(info.tiny))

    def in_support(self, value: jax.Array) -> jax.Array:
        n = value.shape[self.axis]
        norm = jnp.linalg.norm(value, axis=self.axis, keepdims=True)
        return jnp.abs(norm - 1) <= sum_tolerance(n, value.dtype)


def unit_vector(x: Any, axis: int = -1) -> UnitVector:
    """Constrain ``x`` to unit vectors along ``axis``, starting at ``x``.

    Args:
        x: An array of Euclidean norm 1 along ``axis``.
        axis: The axis of the vectors; other axes are batch axes.

    Returns:
        A :class:`UnitVector` with ``unwrap(unit_vector(x)) == x``.

    Raises:
        ConstraintError: if a vector's norm is not 1.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> direction = lf.unit_vector(jnp.array([0.0, 1.0]))
        >>> lf.unwrap(direction)
        Array([0., 1.], dtype=float32)
    """
    return UnitVector(x, axis=axis)
