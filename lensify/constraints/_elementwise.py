"""Elementwise constraints: positive values and intervals."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lensify import _records
from lensify.constraints._bounds import StaticArray, static_bound, static_value
from lensify.constraints._protocol import AbstractConstraint, Tolerance, tiny, wide_raw
from lensify.numerics import inv_softplus_unchecked, wide_dtype

__all__ = ["Interval", "Positive", "interval", "positive"]


class Positive(AbstractConstraint):
    """A positive value, ``softplus(raw)``.

    Construction needs ``x > 0``. XLA flushes subnormal numbers (below about
    ``1.2e-38`` in float32) to zero, comparisons included, so they count as 0 and
    are rejected; a value within a few ulps of that edge comes back as 0. Any raw
    value unwraps to ``x >= 0``: softplus underflows to exactly 0 for
    ``raw < -87.3`` in float32 (about ``-708`` in float64).

    Args:
        value: The value to start from, positive (possibly a wrapper).

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.unwrap(lf.Positive(jnp.array([0.5, 2.0])))
        Array([0.5, 2. ], dtype=float32)
    """

    support = "x > 0"
    _compiled_inverse = True  # its forward map, softplus, is one compiled call already
    _compiled_log_det = True

    def __init__(self, value: Any) -> None:
        self._set_raw(value)

    def forward(self, raw: jax.Array) -> jax.Array:
        return jax.nn.softplus(raw)

    def inverse(self, value: jax.Array) -> jax.Array:
        # Clamped: a Preimage applies this to whatever its wrapper holds, and a
        # subnormal value (zero to XLA) must not become -inf.
        return inv_softplus_unchecked(jnp.maximum(value, tiny(value)))

    def log_det(self) -> jax.Array:
        # softplus' = sigmoid, and log sigmoid(r) = -softplus(-r): finite for any raw.
        return -jnp.sum(jax.nn.softplus(-wide_raw(self.raw)))

    def in_support(self, value: jax.Array) -> jax.Array:
        return value > 0

    def in_closure(self, value: jax.Array) -> jax.Array:
        return value >= 0


def positive(x: Any) -> Positive:
    """Constrain ``x`` to be positive: ``softplus`` of a raw parameter, starting at ``x``.

    Args:
        x: A positive array (or a wrapper of one).

    Returns:
        A :class:`Positive` with ``unwrap(positive(x)) == x``.

    Raises:
        ConstraintError: if an entry of ``x`` is not positive and finite.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> scale = lf.positive(jnp.array([0.1, 3.0]))
        >>> lf.unwrap(scale)
        Array([0.1, 3. ], dtype=float32)
    """
    return Positive(x)


# Below this |raw| (above it, |2x - lower - upper| > 0.46 (upper - lower)), the
# interval map is evaluated around the midpoint, where tanh keeps its relative
# precision; beyond it, from the nearer bound, where the sigmoid keeps it.
_MIDDLE = 1.0


class Interval(AbstractConstraint):
    """A value in ``(lower, upper)``: ``lower + (upper - lower) * sigmoid(raw)``.

    The bounds are static: Python numbers, or concrete arrays that broadcast to
    the value's shape (held by value in the tree structure), so they are never
    leaves, never trained and never batched. Construction needs
    ``lower < x < upper``, with bounds that are finite and distinct in the value's
    dtype (a ``ConstraintError`` otherwise).

    The map is evaluated in the form that keeps the most precision: around the
    midpoint ``m`` as ``m + h * tanh(raw / 2)`` (``h`` the half-width) for
    ``|raw| <= 1``, and from the nearer bound beyond that. Every quantity is a half
    (``upper / 2 - lower / 2``), so a width beyond the dtype's largest number
    works, and float16 and bfloat16 are computed in float32 and rounded once.
    The round trip ``unwrap(interval(x, lower, upper))`` is within
    ``atol = 2 * eps * (upper - lower)`` plus ``rtol = 2 * eps`` relative (see
    :meth:`tolerance`; ``eps`` of the value's dtype; the largest error measured
    over float16, bfloat16 and float32 is ``0.7 * eps * (|x| + upper - lower)``):
    the raw parameter, held in that dtype, cannot pin the value more finely. It is
    exact to a few ulps relative near either bound and, when the interval is
    centred on 0, near 0.

    Any raw value unwraps into the closed interval ``[lower, upper]``: in float32
    the sigmoid saturates and the value equals a nonzero bound once ``|raw|``
    exceeds about ``17 + log(width / |bound|)`` (less for a narrow interval far
    from 0), and a bound of 0 only once the sigmoid underflows, near
    ``|raw| = 87.5``.

    Args:
        value: The value to start from, inside the interval.
        lower: The lower bound, finite.
        upper: The upper bound, finite, above ``lower``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.unwrap(lf.Interval(jnp.array([0.25, 0.9]), 0.0, 1.0))
        Array([0.25, 0.9 ], dtype=float32)
        >>> float(lf.unwrap(lf.interval(1e-6, -1.0, 1.0)))
        1e-06
    """

    lower: float | StaticArray = _records.field(static=True)
    upper: float | StaticArray = _records.field(static=True)

    support = "lower < x < upper"
    _data_fields = ("lower", "upper")
    _compiled_inverse = True
    _compiled_forward = True
    _compiled_log_det = True

    def __init__(self, value: Any, lower: ArrayLike, upper: ArrayLike) -> None:
        self.lower = static_bound(lower, "lower", "Interval")
        self.upper = static_bound(upper, "upper", "Interval")
        low, high = (np.asarray(static_value(b)) for b in (self.lower, self.upper))
        if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
            raise self._error(
                f"needs finite bounds with lower < upper, got lower={self.lower!r}, "
                f"upper={self.upper!r}. For a half-open support use lf.positive, "
                "shifted or negated."
            )
        self._set_raw(value)

    def _bounds(self, dtype: Any) -> tuple[jax.Array, jax.Array]:
        # Rounded to the dtype the map is computed in, then to ``dtype``: the
        # bounds that forward's result, clipped in the wide dtype, rounds to.
        # In a compiled map the bounds are traced arrays (data, see _data_fields).
        wide = wide_dtype(dtype)
        return tuple(  # type: ignore[return-value]
            jnp.asarray(b, wide).astype(dtype)
            if isinstance(b, jax.Array)
            else jnp.asarray(np.asarray(static_value(b), dtype=wide).astype(dtype))
            for b in (self.lower, self.upper)
        )

    def _halves(self, dtype: Any) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        lower, upper = self._bounds(dtype)
        return lower, upper, lower / 2 + upper / 2, upper / 2 - lower / 2

    def check_dtype(self, dtype: Any) -> None:
        super().check_dtype(dtype)
        given = [np.asarray(static_value(b)) for b in (self.lower, self.upper)]
        with np.errstate(over="ignore"):
            lower, upper = (np.asarray(b, dtype=wide_dtype(dtype)).astype(dtype) for b in given)
        name = jnp.dtype(dtype).name
        if not (np.isfinite(lower).all() and np.isfinite(upper).all()):
            raise self._error(
                f"bounds lower={self.lower!r}, upper={self.upper!r} overflow {name}, the "
                f"value's dtype (largest {float(jnp.finfo(dtype).max):.4g}). Use bounds "
                "the dtype can hold, or a wider dtype for the value."
            )
        half = upper.astype(wide_dtype(dtype)) / 2 - lower.astype(wide_dtype(dtype)) / 2
        if not (lower < upper).all() or (half < jnp.finfo(wide_dtype(dtype)).tiny).any():
            raise self._error(
                f"bounds lower={self.lower!r}, upper={self.upper!r} are too close to tell "
                f"apart in {name}, the value's dtype. Use a wider dtype for the value, "
                "or wider bounds."
            )

    def check_shape(self, shape: tuple[int, ...]) -> None:
        lower, upper = (np.shape(static_value(b)) for b in (self.lower, self.upper))
        try:
            broadcast = np.broadcast_shapes(lower, upper, shape)
        except ValueError:
            broadcast = None
        if broadcast != shape:
            raise self._error(
                f"bounds of shapes {lower} and {upper} must broadcast to the value's shape {shape}."
            )

    def tolerance(self, dtype: Any) -> Tolerance:
        """``rtol = 2 * eps`` and ``atol = 2 * eps * (upper - lower)`` (largest width).

        Example:
            >>> import jax.numpy as jnp
            >>> import lensify as lf
            >>> lf.interval(0.5, 0.0, 2.0).tolerance(jnp.float16)
            Tolerance(rtol=0.001953125, atol=0.00390625)
        """
        eps = float(jnp.finfo(dtype).eps)
        low, high = (np.asarray(static_value(b), np.float64) for b in (self.lower, self.upper))
        return Tolerance(rtol=2 * eps, atol=2 * eps * float(np.max(high - low)))

    def forward(self, raw: jax.Array) -> jax.Array:
        lower, upper, mid, half = self._halves(raw.dtype)
        # Each term fenced off: XLA rewrites half * (2 * sigmoid(raw)), with sigmoid
        # expanded to 1 / (1 + exp(-raw)), as (half * 2) / (1 + exp(-raw)), which
        # overflows for a half-width above half the float maximum.
        shape, from_lower, from_upper = jax.lax.optimization_barrier(
            (_tanh_half(raw), _twice_sigmoid(raw), _twice_sigmoid(-raw))
        )
        middle = mid + half * shape
        near_lower = lower + half * from_lower
        near_upper = upper - half * from_upper
        value = jnp.where(
            jnp.abs(raw) <= _MIDDLE, middle, jnp.where(raw < 0, near_lower, near_upper)
        )
        return jnp.clip(value, lower, upper)  # rounding must not leave the interval

    def inverse(self, value: jax.Array) -> jax.Array:
        lower, upper, mid, half = self._halves(value.dtype)
        # Both scaled by a power of two first: XLA divides by multiplying with the
        # reciprocal, which flushes to zero for a half-width near the float maximum.
        _, exponent = jnp.frexp(half)
        centred = jnp.ldexp(value - mid, -exponent) / jnp.ldexp(half, -exponent)
        in_middle = jnp.abs(centred) <= np.tanh(_MIDDLE / 2)
        # Each branch made finite where it is not used, so no NaN reaches a gradient.
        middle = 2 * jnp.arctanh(jnp.where(in_middle, centred, 0))
        smallest = tiny(value)
        above_lower = jnp.maximum(value / 2 - lower / 2, smallest)
        below_upper = jnp.maximum(upper / 2 - value / 2, smallest)
        return jnp.where(in_middle, middle, _log_ratio(above_lower, below_upper))

    def log_det(self) -> jax.Array:
        # value = lower + (upper - lower) sigmoid(raw): the slope is
        # 2 half sigmoid(raw) sigmoid(-raw), each factor taken as a logarithm (no
        # overflow of the width, no log(0) where the sigmoid saturates).
        raw = wide_raw(self.raw)
        half = self._halves(raw.dtype)[3]
        logs = jnp.log(2.0) + jnp.log(half) - jax.nn.softplus(raw) - jax.nn.softplus(-raw)
        return jnp.sum(jnp.broadcast_to(logs, raw.shape))

    def in_support(self, value: jax.Array) -> jax.Array:
        lower, upper = self._bounds(value.dtype)
        return (lower < value) & (value < upper)

    def in_closure(self, value: jax.Array) -> jax.Array:
        lower, upper = self._bounds(value.dtype)
        return (lower <= value) & (value <= upper)


# The forward map's terms tanh(raw / 2) and 2 sigmoid(raw) share the slope
# 2 sigmoid(raw) sigmoid(-raw), at most 1/2. A gradient multiplies it with the
# half-width: taken as one factor, fenced off from XLA, the product stays finite for
# every width up to the float maximum (JAX's own tanh and sigmoid slopes pass
# through half-width * (1 + tanh) and half-width * 2, which overflow).


def _slope(x: jax.Array) -> jax.Array:
    return jax.lax.optimization_barrier(2 * jax.nn.sigmoid(x) * jax.nn.sigmoid(-x))


@jax.custom_jvp
def _tanh_half(x: jax.Array) -> jax.Array:
    return jnp.tanh(x / 2)


@_tanh_half.defjvp
def _tanh_half_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return _tanh_half(x), _slope(x) * t


@jax.custom_jvp
def _twice_sigmoid(x: jax.Array) -> jax.Array:
    return 2 * jax.nn.sigmoid(x)


@_twice_sigmoid.defjvp
def _twice_sigmoid_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return _twice_sigmoid(x), _slope(x) * t


def _log_ratio(a: jax.Array, b: jax.Array) -> jax.Array:
    # log(a / b) for positive a, b: as log(a) - log(b) it would lose up to
    # eps * |log(a)| absolutely (1e-5 near the float32 maximum), and a / b may
    # overflow. Mantissas and exponents apart, it is as precise as the ratio.
    mantissa_a, exponent_a = jnp.frexp(a)
    mantissa_b, exponent_b = jnp.frexp(b)
    shift = (exponent_a - exponent_b).astype(a.dtype) * np.log(2.0).astype(a.dtype)
    return jnp.log(mantissa_a / mantissa_b) + shift


def interval(x: Any, lower: ArrayLike, upper: ArrayLike) -> Interval:
    """Constrain ``x`` to the open interval ``(lower, upper)``, starting at ``x``.

    Args:
        x: An array inside the interval (or a wrapper of one).
        lower: The lower bound: a number or an array broadcastable against ``x``.
        upper: The upper bound, likewise.

    Returns:
        An :class:`Interval` with ``unwrap(interval(x, lower, upper)) == x``.

    Raises:
        ConstraintError: for bounds that are not finite with ``lower < upper``, or
            an entry of ``x`` outside ``(lower, upper)``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.unwrap(lf.interval(jnp.array([-0.5, 0.5]), -1.0, 1.0))
        Array([-0.5,  0.5], dtype=float32)
        >>> lf.interval(2.0, -1.0, 1.0)
        Traceback (most recent call last):
        ...
        lensify.ConstraintError: Interval got 2.0, outside its support ...
    """
    return Interval(x, lower, upper)
