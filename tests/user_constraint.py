"""A user-defined constraint, written as the docs show, and its catalogue entry: shared
by the constraint tests and the constraint law tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import lensify as lf
import lensify.testing as lt


class Negative(lf.AbstractConstraint):
    """A user-defined constraint, written as the docs show, in a few lines."""

    support = "x < 0"

    def forward(self, raw: jax.Array) -> jax.Array:
        return -jax.nn.softplus(raw)

    def inverse(self, value: jax.Array) -> jax.Array:
        return lf.inv_softplus(-value)

    def in_support(self, value: jax.Array) -> jax.Array:
        return value < 0

    def in_closure(self, value: jax.Array) -> jax.Array:
        return value <= 0  # softplus underflows to 0


def negative_ones(shape: tuple[int, ...]) -> jax.Array:
    return -jnp.ones(shape)


# Every law runs on a user-defined constraint too, through a catalogue entry.
USER_DEFINED = lt.Catalogued("user_negative", Negative, lambda n: (), negative_ones)
