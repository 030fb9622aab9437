"""The catalogue of built-in constraints that lensify's law tests check, edges included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lensify as lf
from lensify.testing._constraint_laws import (
    Build,
    EventShape,
    Example,
    Values,
    check_constraint_laws,
)

SearchStrategy = st.SearchStrategy


@attrs.frozen
class Catalogued:
    """One constraint of the catalogue, as the law tests see it.

    Attributes:
        name: A short name for test ids.
        build: Constructs the constraint from a value (fixing any parameters, such
            as bounds), value-preserving.
        event_shape: The shape of one constrained event for a size ``n >= 1``.
        example: A value in the support of a given shape.
        values: Values to check it at (see :func:`check_constraint_laws`); moderate
            values, away from saturation, if None.
        dtype: The dtype of the values.

    Example:
        >>> from lensify.testing import CATALOGUE
        >>> entry = CATALOGUE[0]
        >>> entry.name, entry.event_shape(3)
        ('positive', ())
    """

    name: str
    build: Build
    event_shape: EventShape
    example: Example
    values: Values | None = None
    dtype: Any = jnp.float32

    def check(self, max_examples: int = 10) -> None:
        """Run :func:`check_constraint_laws` on this entry."""
        check_constraint_laws(
            self.build,
            example=self.example,
            event_shape=self.event_shape,
            values=self.values,
            dtype=self.dtype,
            max_examples=max_examples,
        )


def _scalar(n: int) -> tuple[int, ...]:
    return ()


def _vector(n: int) -> tuple[int, ...]:
    return (n,)


def _matrix(n: int) -> tuple[int, ...]:
    return (n, n)


def _uniform(shape: tuple[int, ...]) -> jax.Array:
    return jnp.full(shape, 1.0 / shape[-1])


def _unit(shape: tuple[int, ...]) -> jax.Array:
    return jnp.full(shape, 1.0 / np.sqrt(shape[-1]))


def _identities(shape: tuple[int, ...]) -> jax.Array:
    return jnp.eye(shape[-1]) * jnp.ones(shape)


def _halves(shape: tuple[int, ...]) -> jax.Array:
    return jnp.full(shape, 0.5)


def _interval(x: Any) -> lf.Interval:
    return lf.interval(x, -2.0, 3.0)


def _array_interval(x: Any) -> lf.Interval:
    # One pair of bounds per entry of the last axis.
    n = jnp.shape(lf.unwrap(x))[-1]
    return lf.interval(x, -np.arange(1.0, n + 1), np.linspace(0.5, 3.0, n))


def _magnitudes(low: float, high: float, *, signed: bool) -> Values:
    """Values whose magnitudes are spread over ``[low, high]`` on a log scale."""

    def values(template: Any) -> SearchStrategy[Any]:
        shape = np.shape(lf.unwrap(template))
        exponents = hnp.arrays(np.float64, shape, elements=st.floats(np.log10(low), np.log10(high)))
        signs = hnp.arrays(
            np.float64, shape, elements=st.sampled_from((-1.0, 1.0) if signed else (1.0,))
        )
        return st.builds(lambda e, s: jnp.asarray(s * 10.0**e, jnp.float32), exponents, signs)

    return values


def _wide_float16(x: Any) -> lf.Interval:
    # A width (1.2e5) beyond float16's largest number (65504).
    return lf.interval(x, -6.0e4, 6.0e4)


def _huge_bounds(x: Any) -> lf.Interval:
    return lf.interval(x, -1.0e38, 1.0e38)


def _unit_interval(x: Any) -> lf.Interval:
    return lf.interval(x, -1.0, 1.0)


def _narrow(x: Any) -> lf.Interval:
    return lf.interval(x, 1.0, 1.001)


def _zeros(shape: tuple[int, ...]) -> jax.Array:
    return jnp.zeros(shape)


def _ones(shape: tuple[int, ...]) -> jax.Array:
    return jnp.ones(shape)


def _scaled_ones(scale: float) -> Callable[[tuple[int, ...]], jax.Array]:
    def example(shape: tuple[int, ...]) -> jax.Array:
        return jnp.full(shape, scale)

    return example


#: Every built-in constraint at moderate values, in float32: the laws every
#: constraint must keep.
CATALOGUE: list[Catalogued] = [
    Catalogued("positive", lf.positive, _scalar, _ones),
    Catalogued("interval", _interval, _scalar, _halves),
    Catalogued("interval_array_bounds", _array_interval, _vector, _zeros),
    Catalogued("simplex", lf.simplex, _vector, _uniform),
    Catalogued("cholesky_factor", lf.cholesky_factor, _matrix, _identities),
    Catalogued("symmetric", lf.symmetric, _matrix, _zeros),
    Catalogued("unit_vector", lf.unit_vector, _vector, _unit),
]

#: The built-in constraints at their documented edges: tiny and huge values, widths
#: near the dtype's limit, and float16.
EDGES: list[Catalogued] = [
    Catalogued(
        "positive_tiny_to_huge", lf.positive, _scalar, _ones, _magnitudes(1e-30, 1e30, signed=False)
    ),
    Catalogued("positive_float16", lf.positive, _scalar, _ones, dtype=jnp.float16),
    Catalogued("interval_float16", _interval, _scalar, _halves, dtype=jnp.float16),
    Catalogued(
        "interval_near_zero", _unit_interval, _scalar, _zeros, _magnitudes(1e-30, 1e-2, signed=True)
    ),
    Catalogued("interval_width_beyond_float16", _wide_float16, _scalar, _zeros, dtype=jnp.float16),
    Catalogued("interval_huge_bounds", _huge_bounds, _scalar, _scaled_ones(1e37)),
    Catalogued("interval_narrow", _narrow, _scalar, _scaled_ones(1.0005)),
    Catalogued("simplex_float16", lf.simplex, _vector, _uniform, dtype=jnp.float16),
    Catalogued("unit_vector_float16", lf.unit_vector, _vector, _unit, dtype=jnp.float16),
    Catalogued("symmetric_float16", lf.symmetric, _matrix, _zeros, dtype=jnp.float16),
]
