"""The constraint laws (lensify.testing.check_constraint_laws) over every built-in
constraint, at moderate values and at each constraint's documented edges, and over a
user-defined constraint."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

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


def _negative_ones(shape: tuple[int, ...]) -> jax.Array:
    return -jnp.ones(shape)


USER_DEFINED = lt.Catalogued("user_negative", Negative, lambda n: (), _negative_ones)


@pytest.mark.parametrize("entry", [*lt.CATALOGUE, USER_DEFINED], ids=lambda e: e.name)
def test_constraint_laws(entry: lt.Catalogued) -> None:
    entry.check(max_examples=8)


@pytest.mark.parametrize("entry", lt.EDGES, ids=lambda e: e.name)
def test_constraint_laws_at_the_edges(entry: lt.Catalogued) -> None:
    entry.check(max_examples=5)
