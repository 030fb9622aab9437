"""The constraint laws (lensify.testing.check_constraint_laws) over every built-in
constraint, at moderate values and at each constraint's documented edges, and over a
user-defined constraint."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import lensify as lf
import lensify.testing as lt
from tests.user_constraint import USER_DEFINED, Negative, negative_ones


@pytest.mark.parametrize("entry", [*lt.CATALOGUE, USER_DEFINED], ids=lambda e: e.name)
def test_constraint_laws(entry: lt.Catalogued) -> None:
    entry.check(max_examples=8)


@pytest.mark.parametrize("entry", lt.EDGES, ids=lambda e: e.name)
def test_constraint_laws_at_the_edges(entry: lt.Catalogued) -> None:
    entry.check(max_examples=5)


class SupportTooWide(Negative):
    """Accepts x < 10 for the support x < 0: its inverse fails on 0 <= x < 10."""

    def in_support(self, value: jax.Array) -> jax.Array:
        return value < 10


class InverseWrongOutside(lf.AbstractConstraint):
    """Accepts x < 10 and stores a finite raw parameter that unwraps to -|x|."""

    support = "x < 0"

    def forward(self, raw: jax.Array) -> jax.Array:
        return -jax.nn.softplus(raw)

    def inverse(self, value: jax.Array) -> jax.Array:
        return lf.inv_softplus(jnp.abs(value))

    def in_support(self, value: jax.Array) -> jax.Array:
        return value < 10


@pytest.mark.parametrize("broken", [SupportTooWide, InverseWrongOutside])
def test_the_constraint_laws_fail_a_support_test_that_accepts_values_outside(
    broken: type,
) -> None:
    with pytest.raises(AssertionError, match="law violated"):
        # Enough draws that a value the support test wrongly accepts is met on any seed.
        lt.check_constraint_laws(broken, example=negative_ones, max_examples=40)


def test_a_value_outside_the_support_is_refused_or_kept_by_the_built_ins() -> None:
    lt.assert_refused_or_preserved(lf.simplex, jnp.array([0.0, 0.5, 0.5]))
    lt.assert_refused_or_preserved(lambda x: lf.interval(x, 0.0, 1.0), jnp.array([1.0, 2.0]))
    lt.assert_refused_or_preserved(lf.cholesky_factor, jnp.zeros((2, 2)))


def test_boundary_values_reach_the_boundary_of_a_simplex() -> None:
    from hypothesis import find

    found = find(
        lt.boundary_values(lf.simplex(jnp.full(3, 1 / 3))),
        lambda v: bool((v == 0).any() and abs(float(v.sum()) - 1) < 1e-6),
    )
    assert found.shape == (3,)
