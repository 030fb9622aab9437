"""Constraints on square matrices: Cholesky factors and symmetric matrices."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lensify.constraints._protocol import (
    AbstractConstraint,
    Tolerance,
    standard_normal_log_density,
    tiny,
    wide_raw,
)
from lensify.numerics import inv_softplus_unchecked

__all__ = ["CholeskyFactor", "Symmetric", "cholesky_factor", "symmetric"]


class _SquareMatrices(AbstractConstraint):
    """A constraint on the square matrices in the last two axes; others are batch axes."""

    def __init__(self, value: Any) -> None:
        self._set_raw(value)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) < 2 or shape[-1] != shape[-2]:
            raise self._error(
                f"needs square matrices in the last two axes, got shape {shape}. Leading "
                "axes are batch axes."
            )


def _diagonal_mask(x: jax.Array) -> jax.Array:
    n = x.shape[-1]
    return jnp.eye(n, dtype=bool)


def _lower_mask(x: jax.Array) -> jax.Array:
    n = x.shape[-1]
    return jnp.tril(jnp.ones((n, n), dtype=bool))


class CholeskyFactor(_SquareMatrices):
    """A lower-triangular matrix with a positive diagonal (a Cholesky factor).

    The raw parameter is a square matrix: its strictly lower triangle is taken as
    is, its diagonal through ``softplus``, and its upper triangle is unused (zero
    at construction, never any gradient). Leading axes are batch axes.
    Construction needs an exactly zero upper triangle and a positive diagonal. Any
    raw value unwraps to a lower-triangular matrix with a diagonal ``>= 0``: like
    :class:`Positive`, a diagonal raw entry below about ``-87.3`` (float32) gives
    exactly 0, a singular factor.

    Args:
        value: The factor to start from, of shape ``(..., n, n)``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> L = jnp.array([[2.0, 0.0], [-1.0, 0.5]])
        >>> lf.unwrap(lf.CholeskyFactor(L))
        Array([[ 2. ,  0. ],
               [-1. ,  0.5]], dtype=float32)
    """

    support = "lower-triangular with a diagonal > 0"
    _compiled_inverse = True
    _compiled_forward = True
    _compiled_log_det = True

    def forward(self, raw: jax.Array) -> jax.Array:
        return jnp.where(_diagonal_mask(raw), jax.nn.softplus(raw), jnp.tril(raw, -1))

    def log_det(self) -> jax.Array:
        # The diagonal through softplus (log sigmoid), the strict lower triangle as
        # it is (0), the unused upper triangle a standard normal density.
        raw = wide_raw(self.raw)
        diagonal = -jax.nn.softplus(-raw)
        upper = standard_normal_log_density(raw)
        terms = jnp.where(_diagonal_mask(raw), diagonal, jnp.where(_lower_mask(raw), 0.0, upper))
        return jnp.sum(terms)

    def inverse(self, value: jax.Array) -> jax.Array:
        diagonal = _diagonal_mask(value)
        # No NaN, even in the unused branch; a subnormal diagonal as in Positive.
        safe = jnp.where(diagonal, jnp.maximum(value, tiny(value)), 1.0)
        return jnp.where(diagonal, inv_softplus_unchecked(safe), jnp.tril(value, -1))

    def _inside(self, value: jax.Array, diagonal_ok: jax.Array) -> jax.Array:
        return jnp.where(_diagonal_mask(value), diagonal_ok, _lower_mask(value) | (value == 0))

    def in_support(self, value: jax.Array) -> jax.Array:
        return self._inside(value, value > 0)

    def in_closure(self, value: jax.Array) -> jax.Array:
        return self._inside(value, value >= 0)


def cholesky_factor(x: Any) -> CholeskyFactor:
    """Constrain ``x`` to lower-triangular matrices with a positive diagonal.

    Args:
        x: A lower-triangular array of shape ``(..., n, n)`` with a positive
            diagonal, such as ``jnp.linalg.cholesky`` of a covariance.

    Returns:
        A :class:`CholeskyFactor` with ``unwrap(cholesky_factor(x)) == x``.

    Raises:
        ConstraintError: for a non-square ``x``, an entry above the diagonal that
            is not 0, or a diagonal entry that is not positive.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> L = jnp.linalg.cholesky(jnp.array([[4.0, 2.0], [2.0, 2.0]]))
        >>> bool(jnp.allclose(lf.unwrap(lf.cholesky_factor(L)), L))
        True
    """
    return CholeskyFactor(x)


class Symmetric(_SquareMatrices):
    """A symmetric matrix: the lower triangle of the raw parameter, mirrored.

    The raw parameter is a square matrix whose upper triangle is unused (zero at
    construction, never any gradient); no arithmetic is done, so the round trip is
    exact. Construction accepts a matrix symmetric to a relative tolerance of
    ``32 * eps`` (products such as ``A @ A.T`` may differ from their transpose by
    rounding) and keeps its lower triangle. Any raw value unwraps to an exactly
    symmetric matrix.

    Args:
        value: The matrix to start from, of shape ``(..., n, n)``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.unwrap(lf.Symmetric(jnp.array([[1.0, 2.0], [2.0, 3.0]])))
        Array([[1., 2.],
               [2., 3.]], dtype=float32)
    """

    support = "symmetric matrices"
    _compiled_inverse = True
    _compiled_forward = True
    _compiled_log_det = True

    def forward(self, raw: jax.Array) -> jax.Array:
        return jnp.where(_lower_mask(raw), raw, jnp.swapaxes(raw, -1, -2))

    def inverse(self, value: jax.Array) -> jax.Array:
        return jnp.tril(value)

    def log_det(self) -> jax.Array:
        # The lower triangle as it is (0); the unused upper one a standard normal.
        raw = wide_raw(self.raw)
        upper = ~_lower_mask(raw) & ~_diagonal_mask(raw)
        return jnp.sum(jnp.where(upper, standard_normal_log_density(raw), 0.0))

    def tolerance(self, dtype: Any) -> Tolerance:
        """``rtol = 32 * eps``: the asymmetry construction accepts; otherwise exact."""
        return Tolerance(rtol=32 * float(jnp.finfo(dtype).eps), atol=0.0)

    def in_support(self, value: jax.Array) -> jax.Array:
        mirror = jnp.swapaxes(value, -1, -2)
        scale = jnp.maximum(jnp.abs(value), jnp.abs(mirror))
        return jnp.abs(value - mirror) <= 32 * jnp.finfo(value.dtype).eps * scale

    def in_closure(self, value: jax.Array) -> jax.Array:
        return value == jnp.swapaxes(value, -1, -2)


def symmetric(x: Any) -> Symmetric:
    """Constrain ``x`` to symmetric matrices, starting at ``x``.

    Args:
        x: A symmetric array of shape ``(..., n, n)``.

    Returns:
        A :class:`Symmetric` with ``unwrap(symmetric(x)) == x``.

    Raises:
        ConstraintError: for a non-square or non-symmetric ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> a = jnp.array([[1.0, 2.0], [3.0, 4.0]])
        >>> s = a + a.T
        >>> bool((lf.unwrap(lf.symmetric(s)) == s).all())
        True
    """
    return Symmetric(x)
