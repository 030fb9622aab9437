"""``RealToIncreasingOnInterval``: increasing points on an interval, from a raw vector."""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp

from lensify import _records
from lensify._inverses import increasing_points_to_raw
from lensify.numerics import check_values, is_concrete
from lensify.wrappers import AbstractUnwrappable, unwrap

__all__ = ["RealToIncreasingOnInterval"]


_ENDPOINTS = ("both", "neither", "lower", "upper")


class RealToIncreasingOnInterval(AbstractUnwrappable[jax.Array]):
    """Map an unconstrained vector to increasing points on an interval.

    A softmax of ``arr`` (along its last axis) gives ``d`` positive widths that,
    after adding ``min_width`` to each, fill the interval; their cumulative sum
    gives the points. The result has ``d + 1`` points with both endpoints, ``d``
    with one, ``d - 1`` with neither. Leading axes of ``arr`` are batch axes.

    Args:
        arr: Unconstrained array whose last axis parameterises the widths.
        interval: ``(lower, upper)`` with ``lower < upper``.
        min_width: Minimum spacing between consecutive points, positive.
        include_endpoints: ``"both"``, ``"neither"``, ``"lower"`` or ``"upper"``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> knots = lf.RealToIncreasingOnInterval(
        ...     jnp.zeros(4), (0.0, 1.0), min_width=0.1, include_endpoints="both"
        ... )
        >>> lf.unwrap(knots)
        Array([0.  , 0.25, 0.5 , 0.75, 1.  ], dtype=float32)
    """

    arr: jax.Array
    interval: tuple[float, float] | None = _records.field(static=True)
    min_width: float = _records.field(static=True)
    include_endpoints: Literal["both", "neither", "lower", "upper"] = _records.field(static=True)
    # The bounds when they were traced at construction (built under jit from traced
    # hyperparameters), as a child array [lower, upper]; interval is then None.
    traced_bounds: jax.Array | None

    def __init__(
        self,
        arr: jax.Array,
        interval: tuple[Any, Any],
        *,
        min_width: float,
        include_endpoints: Literal["both", "neither", "lower", "upper"],
    ) -> None:
        if jnp.ndim(arr) == 0:
            raise ValueError("RealToIncreasingOnInterval needs arr with at least one axis.")
        n_widths = jnp.shape(arr)[-1]
        if not min_width > 0:
            raise ValueError(f"min_width must be positive, got {min_width!r}.")
        if include_endpoints not in _ENDPOINTS:
            raise ValueError(
                f"include_endpoints must be one of {_ENDPOINTS}, got {include_endpoints!r}."
            )
        self.arr = arr
        self.min_width = float(min_width)
        self.include_endpoints = include_endpoints
        if not all(is_concrete(b) for b in interval):
            self.interval = None
            self.traced_bounds = _checked_bounds(interval, self.min_width, n_widths)
            return
        lower, upper = (float(b) for b in interval)
        if not upper > lower:
            raise ValueError(f"interval must have lower < upper, got {interval!r}.")
        if min_width * n_widths > upper - lower:
            raise ValueError(
                f"min_width * n_widths = {min_width} * {n_widths} exceeds the interval "
                f"width {upper - lower}, so it cannot be satisfied."
            )
        self.interval = (lower, upper)
        self.traced_bounds = None

    def _bounds(self) -> tuple[Any, Any]:
        if self.interval is not None:
            return self.interval
        bounds = jnp.asarray(self.traced_bounds)
        return bounds[..., 0], bounds[..., 1]

    def with_value(self, value: jax.Array) -> RealToIncreasingOnInterval:
        """The raw array whose points are ``value``: increasing by more than
        ``min_width``, each included endpoint equal to its bound (else ``ValueError``).
        """
        old = jnp.asarray(unwrap(self.arr))
        raw = increasing_points_to_raw(
            value, self._bounds(), self.min_width, self.include_endpoints, old.shape[-1]
        )
        # The softmax forgets a constant: keep the old one, so that setting the
        # value the wrapper has gives back the same raw array.
        return _records.evolve(self, arr=raw + jnp.mean(old, axis=-1, keepdims=True))

    def tolerance(self, dtype: Any) -> tuple[float, float]:
        """``(rtol, atol)`` of the round trip through :meth:`with_value`, for ``dtype``.

        The points come back within a few ``eps`` of the interval's width. The raw
        array holds a softmax's logits, recovered as logarithms of the widths, so
        its error is the points' error divided by the smallest softmax weight ``p``:
        ``rtol = 16 * eps`` and ``atol = 16 * eps * (1 + width) / p``.
        """
        eps = float(jnp.finfo(dtype).eps)
        arr = unwrap(self.arr)
        lower, upper = self._bounds()
        try:
            p = float(jnp.min(jax.nn.softmax(jnp.asarray(arr, jnp.float32), axis=-1)))
            width = float(jnp.max(jnp.asarray(upper) - jnp.asarray(lower)))
        except jax.errors.ConcretizationTypeError:  # traced: no bound can be given
            return float("inf"), float("inf")
        return 16 * eps, 16 * eps * (1 + width) / max(p, float(jnp.finfo(dtype).tiny))

    def unwrap(self) -> jax.Array:
        lower, upper = self._bounds()
        arr = jnp.asarray(self.arr)
        n_widths = arr.shape[-1]
        free = (upper - lower) - self.min_width * n_widths
        widths = self.min_width + free * jax.nn.softmax(arr, axis=-1)
        inner = lower + jnp.cumsum(widths, axis=-1)[..., :-1]
        batch = arr.shape[:-1]
        pieces = []
        if self.include_endpoints in ("lower", "both"):
            pieces.append(jnp.broadcast_to(jnp.asarray(lower, inner.dtype), (*batch, 1)))
        pieces.append(inner)
        if self.include_endpoints in ("upper", "both"):
            pieces.append(jnp.broadcast_to(jnp.asarray(upper, inner.dtype), (*batch, 1)))
        return jnp.concatenate(pieces, axis=-1)


def _checked_bounds(interval: tuple[Any, Any], min_width: float, n_widths: int) -> jax.Array:
    # Traced bounds are checked when the computation runs, as numerics checks values.
    bounds = jnp.stack([jnp.asarray(b, float) for b in interval])
    bounds = check_values(
        bounds,
        lambda b: _at_lower(b[..., 1] <= b[..., 0]),
        "RealToIncreasingOnInterval: interval must have lower < upper",
    )
    return check_values(
        bounds,
        lambda b: _at_lower(min_width * n_widths > b[..., 1] - b[..., 0]),
        f"RealToIncreasingOnInterval: min_width * n_widths = {min_width} * {n_widths} "
        "exceeds the interval width, so it cannot be satisfied",
    )


def _at_lower(bad: jax.Array) -> jax.Array:
    # A mask of bad (lower, upper) pairs, marking each pair's lower bound: the
    # message names the first bad pair's lower bound and counts the pairs.
    return jnp.stack([bad, jnp.zeros_like(bad)], axis=-1)
