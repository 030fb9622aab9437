"""Constraint wrappers: the laws over the whole catalogue, then one test per edge case."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import attrs
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lensify as lf
import lensify.testing as lt
from lensify.constraints import AbstractConstraint, Preimage
from lensify.testing import CATALOGUE, Catalogued
from tests.user_constraint import USER_DEFINED, Negative

LAWS = settings(max_examples=10, deadline=None, derandomize=True)


ENTRIES = [pytest.param(entry, id=entry.name) for entry in (*CATALOGUE, USER_DEFINED)]


def _close(a: Any, b: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


# A few shapes only: eager JAX compiles every operation once per shape, and a fresh
# shape in each example would spend the whole time budget compiling.
BATCH_SHAPES = st.sampled_from([(), (2,)])
EVENT_SIZES = st.sampled_from([1, 3])

# Transformed functions made once, so that their compilations are cached across
# examples (a fresh jax.jit(f) per example would compile every time).
JIT_BUILD = {entry.name: jax.jit(entry.build) for entry in (*CATALOGUE, USER_DEFINED)}
JIT_VMAP_BUILD = {
    entry.name: jax.jit(jax.vmap(entry.build)) for entry in (*CATALOGUE, USER_DEFINED)
}
jit_unwrap = jax.jit(lf.unwrap)


@jax.jit
@jax.grad
def grad_of_weighted_sum(tree: Any, weights: jax.Array) -> jax.Array:
    return jnp.sum(lf.unwrap(tree) * weights)


@jax.jit
@jax.grad
def grad_of_forward(raw: jax.Array, constraint: AbstractConstraint, weights: jax.Array) -> Any:
    return jnp.sum(constraint.forward(raw) * weights)


@st.composite
def value_shapes(draw: st.DrawFn, entry: Catalogued) -> tuple[int, ...]:
    return draw(BATCH_SHAPES) + entry.event_shape(draw(EVENT_SIZES))


MODERATE = st.floats(-8.0, 8.0, width=32)
ANY_FINITE = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def raws(
    draw: st.DrawFn, entry: Catalogued, elements: st.SearchStrategy[float] = MODERATE
) -> tuple[AbstractConstraint, np.ndarray]:
    """A constraint (built from an example value) and a raw array that fits it."""
    template = entry.build(entry.example(draw(value_shapes(entry))))
    raw_shape = np.shape(template.raw)
    raw = draw(hnp.arrays(np.float32, raw_shape, elements=elements))
    return template, raw


@st.composite
def values(draw: st.DrawFn, entry: Catalogued) -> jax.Array:
    """A value in the support: the forward map of a raw array of moderate size."""
    template, raw = draw(raws(entry))
    return lf.unwrap(template.with_raw(jnp.asarray(raw)))


# ---------------------------------------------------------------------------
# The laws, for every constraint of the catalogue.


@pytest.mark.parametrize("entry", ENTRIES)
@LAWS
@given(data=st.data())
def test_law_round_trip_at_construction(entry: Catalogued, data: st.DataObject) -> None:
    x = data.draw(values(entry))
    constrained = entry.build(x)
    assert isinstance(constrained, AbstractConstraint)
    assert _close(lf.unwrap(constrained), x)


@pytest.mark.parametrize("entry", ENTRIES)
@LAWS
@given(data=st.data())
def test_law_any_raw_value_unwraps_into_the_support(entry: Catalogued, data: st.DataObject) -> None:
    template, raw = data.draw(raws(entry, ANY_FINITE))
    value = lf.unwrap(template.with_raw(jnp.asarray(raw)))
    assert value.shape == np.shape(entry.example(value.shape))
    assert bool(jnp.all(template.in_closure(value))), (raw, value)


@pytest.mark.parametrize("entry", ENTRIES)
@LAWS
@given(data=st.data())
def test_law_jit_equals_eager(entry: Catalogued, data: st.DataObject) -> None:
    x = data.draw(values(entry))
    eager = entry.build(x)
    assert _close(lf.unwrap(JIT_BUILD[entry.name](x)), lf.unwrap(eager))
    assert _close(jit_unwrap(eager), lf.unwrap(eager))


@pytest.mark.parametrize("entry", ENTRIES)
@LAWS
@given(data=st.data())
def test_law_vmap_construction_is_invariant(entry: Catalogued, data: st.DataObject) -> None:
    size = 2
    shape = data.draw(value_shapes(entry))
    template = entry.build(entry.example(shape))
    raw_shape = (size, *np.shape(template.raw))
    raw = data.draw(hnp.arrays(np.float32, raw_shape, elements=MODERATE))
    xs = jnp.stack([lf.unwrap(template.with_raw(jnp.asarray(r))) for r in raw])
    batched = jit_unwrap(JIT_VMAP_BUILD[entry.name](xs))
    for i in range(size):
        assert _close(batched[i], lf.unwrap(entry.build(xs[i])))


@pytest.mark.parametrize("entry", ENTRIES)
@LAWS
@given(data=st.data())
def test_law_non_trainable_either_order(entry: Catalogued, data: st.DataObject) -> None:
    x = data.draw(values(entry))
    weights = jnp.arange(x.size, dtype=x.dtype).reshape(x.shape) - 1.5
    for tree in (lf.NonTrainable(entry.build(x)), entry.build(lf.NonTrainable(x))):
        assert _close(lf.unwrap(tree), x)
        grads = grad_of_weighted_sum(tree, weights)
        assert all(bool(jnp.all(g == 0)) for g in jax.tree_util.tree_leaves(grads))
    # Without NonTrainable the gradient lands on the raw parameter, and only there.
    constrained = entry.build(x)
    grads = grad_of_weighted_sum(constrained, weights)
    assert type(grads) is type(constrained)
    assert _close(grads.raw, grad_of_forward(constrained.raw, constrained, weights))


# ---------------------------------------------------------------------------
# Construction errors.


def test_positive_rejects_a_negative_value_naming_it() -> None:
    with pytest.raises(lf.ConstraintError, match=r"Positive got -2\.0 at index \(1,\)") as info:
        lf.positive(jnp.array([1.0, -2.0, 3.0]))
    assert isinstance(info.value, ValueError)
    assert (info.value.constraint, info.value.value, info.value.count) == ("Positive", -2.0, 1)


@pytest.mark.parametrize("bad", [0.0, np.nan, np.inf])
def test_positive_rejects_zero_and_non_finite_values(bad: float) -> None:
    with pytest.raises(lf.ConstraintError, match="outside its support x > 0"):
        lf.positive(jnp.array([1.0, bad]))


def test_interval_rejects_its_bounds() -> None:
    with pytest.raises(lf.ConstraintError, match=r"Interval got 1\.0"):
        lf.interval(jnp.array([0.5, 1.0]), 0.0, 1.0)


@pytest.mark.parametrize(("lower", "upper"), [(1.0, 0.0), (0.0, 0.0), (-np.inf, 0.0)])
def test_interval_rejects_bad_bounds(lower: float, upper: float) -> None:
    with pytest.raises(lf.ConstraintError, match="lower < upper"):
        lf.interval(0.5, lower, upper)


def test_interval_rejects_array_bounds_that_do_not_broadcast_to_the_value() -> None:
    with pytest.raises(lf.ConstraintError, match="must broadcast"):
        lf.interval(jnp.zeros(2), -np.ones(3), 1.0)


def test_interval_rejects_traced_bounds() -> None:
    with pytest.raises(lf.ConstraintError, match="concrete lower bound"):
        jax.jit(lambda lo: lf.interval(0.5, lo, 1.0))(0.0)


def test_simplex_rejects_entries_not_summing_to_one() -> None:
    with pytest.raises(lf.ConstraintError, match="summing to 1"):
        lf.simplex(jnp.array([0.2, 0.3, 0.6]))


def test_simplex_rejects_a_zero_entry() -> None:
    with pytest.raises(lf.ConstraintError, match=r"got 0\.0 at index \(1,\)"):
        lf.simplex(jnp.array([0.5, 0.0, 0.5]))


def test_simplex_rejects_an_axis_out_of_range() -> None:
    with pytest.raises(lf.ConstraintError, match="axis"):
        lf.simplex(jnp.array([0.5, 0.5]), axis=1)


def test_cholesky_factor_rejects_an_upper_entry_and_a_non_square_value() -> None:
    with pytest.raises(lf.ConstraintError, match=r"at index \(0, 1\)"):
        lf.cholesky_factor(jnp.array([[1.0, 0.1], [0.0, 1.0]]))
    with pytest.raises(lf.ConstraintError, match="square"):
        lf.cholesky_factor(jnp.ones((2, 3)))
    with pytest.raises(lf.ConstraintError, match=r"got -1\.0 at index \(1, 1\)"):
        lf.cholesky_factor(jnp.array([[1.0, 0.0], [0.0, -1.0]]))


def test_symmetric_rejects_an_asymmetric_value() -> None:
    with pytest.raises(lf.ConstraintError, match="symmetric"):
        lf.symmetric(jnp.array([[1.0, 2.0], [3.0, 4.0]]))


def test_symmetric_accepts_rounding_asymmetry_and_keeps_the_lower_triangle() -> None:
    a = np.array([[1.0, 2.0], [np.nextafter(np.float32(2.0), np.float32(3.0)), 4.0]], np.float32)
    value = lf.unwrap(lf.symmetric(a))
    assert value[0, 1] == value[1, 0] == a[1, 0]


def test_unit_vector_rejects_a_vector_of_another_norm() -> None:
    with pytest.raises(lf.ConstraintError, match="norm 1"):
        lf.unit_vector(jnp.array([1.0, 1.0]))


def test_vmap_construction_without_jit() -> None:
    xs = jnp.array([[0.2, 0.8], [0.5, 0.5]])
    assert _close(lf.unwrap(jax.vmap(lf.simplex)(xs)), xs)
    assert _close(lf.unwrap(jax.vmap(lf.positive)(xs)), xs)


def test_errors_are_raised_under_jit_and_vmap() -> None:
    with pytest.raises(Exception, match=r"Positive got -1\.0"):
        jax.block_until_ready(lf.unwrap(jax.jit(lf.positive)(jnp.array([-1.0]))))
    with pytest.raises(Exception, match="Simplex got"):
        jax.block_until_ready(lf.unwrap(jax.vmap(lf.simplex)(jnp.array([[0.5, 0.6]]))))


def _negated(x: jax.Array) -> jax.Array:
    return -x


def test_a_wrapped_value_outside_the_support_is_an_error_under_jit() -> None:
    # Nothing computed from the checked value is stored on this path, so the
    # check must not be pruned from the compiled computation.
    bad = jnp.array([1.0, -2.0])
    for build in (
        lambda x: lf.positive(lf.Parameterize(_negated, x)),
        lambda x: lf.positive(lf.NonTrainable(lf.Parameterize(_negated, x))),
        lambda x: lf.positive(lf.WeightNormalization(-x[None])),
        lambda x: lf.unwrap(lf.positive(lf.Parameterize(_negated, x))),
    ):
        with pytest.raises(jax.errors.JaxRuntimeError, match=r"Positive got -1\.0"):
            jax.block_until_ready(jax.jit(build)(bad))


def test_a_wrapped_value_outside_the_support_is_an_error_under_vmap() -> None:
    build = jax.vmap(lambda x: lf.positive(lf.Parameterize(_negated, x)))
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"Positive got -2\.0"):
        jax.block_until_ready(jax.jit(build)(jnp.array([[-1.0], [2.0]])))
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"Positive got -2\.0"):
        jax.block_until_ready(build(jnp.array([[-1.0], [2.0]])))


def test_a_wrapped_value_inside_the_support_under_jit_keeps_its_value_and_gradient() -> None:
    x = jnp.array([-0.5, -3.0])
    constrained = jax.jit(lambda v: lf.positive(lf.Parameterize(_negated, v)))(x)
    assert type(constrained.raw) is Preimage
    assert _close(lf.unwrap(constrained), -x)
    grads = jax.grad(lambda v: lf.unwrap(lf.positive(lf.Parameterize(_negated, v))).sum())(x)
    assert _close(grads, -jnp.ones(2))


def test_a_value_with_an_empty_raw_parameter_is_still_checked_under_jit_and_vmap() -> None:
    # A simplex of one entry stores nothing: the check has no stored result to feed.
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"Simplex got 0\.5"):
        jax.block_until_ready(jax.jit(lf.simplex)(jnp.array([0.5])))
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"Simplex got 0\.5"):
        jax.block_until_ready(jax.jit(jax.vmap(lf.simplex))(jnp.array([[1.0], [0.5]])))
    assert lf.unwrap(jax.jit(lf.simplex)(jnp.array([1.0]))).tolist() == [1.0]


def test_with_path_prefixes_the_message_and_keeps_the_details() -> None:
    with pytest.raises(lf.ConstraintError) as info:
        lf.positive(-1.0)
    error = info.value.with_path("['layers'][0].scale")
    assert str(error).startswith("at ['layers'][0].scale: Positive got -1.0")
    assert (error.path, error.constraint, error.value) == ("['layers'][0].scale", "Positive", -1.0)


# ---------------------------------------------------------------------------
# Edge behaviour at the float limits.


def test_positive_underflows_to_zero_for_very_negative_raw_values() -> None:
    value = lf.unwrap(lf.positive(1.0).with_raw(jnp.array([-87.0, -88.0, -3e38])))
    assert value[0] > 0
    assert (value[1:] == 0).all()


def test_positive_counts_a_subnormal_value_as_zero() -> None:
    # XLA flushes subnormal numbers to zero, comparisons included.
    with pytest.raises(lf.ConstraintError, match="Positive got 1e-40"):
        lf.positive(np.array([1e-40], np.float32))
    # Just above the smallest normal number, softplus's exp flushes to zero too.
    tiny = float(np.finfo(np.float32).tiny)
    constrained = lf.positive(np.array([tiny, 1e-37, 1e-30], np.float32))
    assert bool(jnp.isfinite(constrained.raw).all())
    assert _close(lf.unwrap(constrained), [tiny, 1e-37, 1e-30], rtol=1e-5, atol=tiny)


def test_positive_keeps_large_values() -> None:
    x = jnp.array([1e30, 3e38])
    assert _close(lf.unwrap(lf.positive(x)), x)


def test_interval_saturates_to_its_bounds() -> None:
    constrained = lf.interval(0.5, -1.0, 2.0).with_raw(jnp.array([-30.0, 30.0, -3e38, 3e38]))
    assert lf.unwrap(constrained).tolist() == [-1.0, 2.0, -1.0, 2.0]


def test_interval_is_precise_near_either_bound() -> None:
    x = jnp.array([1e-6, 1.0 - 1e-6], jnp.float32)
    assert _close(lf.unwrap(lf.interval(x, 0.0, 1.0)), x, rtol=1e-4, atol=0)


def test_interval_with_array_bounds_has_no_leaves_but_the_raw_parameter() -> None:
    constrained = lf.interval(jnp.array([0.5, 5.0]), np.array([0.0, 4.0]), np.array([1.0, 6.0]))
    assert len(jax.tree_util.tree_leaves(constrained)) == 1
    assert _close(lf.unwrap(constrained), [0.5, 5.0])
    same = lf.interval(jnp.array([0.5, 5.0]), np.array([0.0, 4.0]), 7.0)
    assert same.lower == constrained.lower
    assert hash(same.lower) == hash(constrained.lower)


def test_simplex_entries_underflow_to_zero_but_still_sum_to_one() -> None:
    value = lf.unwrap(lf.simplex(jnp.full(3, 1 / 3)).with_raw(jnp.array([-200.0, 0.0])))
    assert value[0] == 0
    assert _close(value.sum(), 1.0)


def test_simplex_of_one_entry_has_an_empty_raw_parameter() -> None:
    constrained = lf.simplex(jnp.ones(1))
    assert constrained.raw.shape == (0,)
    assert lf.unwrap(constrained).tolist() == [1.0]


def test_simplex_along_a_leading_axis_under_vmap() -> None:
    x = jnp.array([[0.2, 0.5], [0.8, 0.5]])
    constrained = lf.simplex(x, axis=0)
    assert constrained.axis == -2
    assert _close(lf.unwrap(constrained), x)
    batched = jax.vmap(lambda v: lf.simplex(v, axis=0))(jnp.stack([x, x[:, ::-1]]))
    assert _close(lf.unwrap(batched), jnp.stack([x, x[:, ::-1]]))


def test_cholesky_factor_diagonal_underflows_to_zero() -> None:
    value = lf.unwrap(lf.cholesky_factor(jnp.eye(2)).with_raw(jnp.full((2, 2), -100.0)))
    assert value.tolist() == [[0.0, 0.0], [-100.0, 0.0]]


def test_cholesky_factor_upper_triangle_gets_no_gradient() -> None:
    constrained = lf.cholesky_factor(jnp.eye(3))
    grads = jax.grad(lambda t: lf.unwrap(t).sum())(constrained)
    assert (jnp.triu(grads.raw, 1) == 0).all()
    assert (grads.raw[np.tril_indices(3)] != 0).all()


def test_unit_vector_of_the_zero_raw_vector_is_the_first_basis_vector() -> None:
    constrained = lf.unit_vector(jnp.array([0.0, 1.0]))
    value = lf.unwrap(constrained.with_raw(jnp.zeros(3)))
    assert value.tolist() == [1.0, 0.0, 0.0]
    grads = jax.grad(lambda r: lf.unwrap(constrained.with_raw(r)).sum())(jnp.zeros(3))
    assert bool(jnp.isfinite(grads).all())


def test_unit_vector_neither_overflows_nor_underflows() -> None:
    constrained = lf.unit_vector(jnp.array([1.0, 0.0]))
    for raw in ([3e38, 3e38], [1e-37, -1e-37]):
        value = lf.unwrap(constrained.with_raw(jnp.array(raw)))
        assert _close(jnp.linalg.norm(value), 1.0)


def test_python_numbers_give_a_strongly_typed_float_raw_parameter() -> None:
    constrained = lf.positive(1)
    assert constrained.raw.dtype == jnp.float32
    assert not constrained.raw.weak_type


# ---------------------------------------------------------------------------
# Composition with the other wrappers, and the fold laws.


def test_positive_of_non_trainable_keeps_the_wrapper_on_the_raw_parameter() -> None:
    constrained = lf.positive(lf.NonTrainable(jnp.array([2.0])))
    assert type(constrained.raw) is lf.NonTrainable
    assert _close(lf.unwrap(constrained), [2.0])


def test_nested_non_trainable_is_kept_whole() -> None:
    constrained = lf.positive(lf.NonTrainable(lf.NonTrainable(jnp.array([2.0]))))
    assert type(constrained.raw.tree) is lf.NonTrainable
    assert _close(lf.unwrap(constrained), [2.0])


def test_constraint_of_weight_normalization_keeps_it_and_its_parameters_train() -> None:
    w = jnp.array([[1.0, 2.0], [3.0, 0.5]])
    constrained = lf.positive(lf.WeightNormalization(w))
    assert type(constrained.raw) is Preimage
    assert type(constrained.raw.value) is lf.WeightNormalization
    assert _close(lf.unwrap(constrained), w)
    assert _close(jax.jit(lf.unwrap)(constrained), w)
    grads = jax.grad(lambda t: lf.unwrap(t).sum())(constrained)
    assert float(jnp.abs(grads.raw.value.scale.args[0]).sum()) > 0


def test_weight_normalization_of_a_constraint() -> None:
    w = jnp.array([[1.0, 2.0], [3.0, 0.5]])
    normalised = lf.WeightNormalization(lf.positive(w))
    assert _close(lf.unwrap(normalised), w)
    grads = jax.grad(lambda t: lf.unwrap(t).sum())(normalised)
    assert type(grads.weight) is lf.Positive


def test_interval_of_a_parameterize_unwraps_to_its_value() -> None:
    inner = lf.Parameterize(jnp.tanh, jnp.array([0.3, -0.2]))
    constrained = lf.interval(inner, -1.0, 1.0)
    assert _close(lf.unwrap(constrained), jnp.tanh(jnp.array([0.3, -0.2])))


@pytest.mark.parametrize("entry", ENTRIES)
def test_fold_laws_hold_for_constraints_in_a_tree(entry: Catalogued) -> None:
    x = entry.example((2, *entry.event_shape(2)))
    tree = {
        "plain": entry.build(x),
        "frozen": lf.NonTrainable(entry.build(x)),
        "inner": entry.build(lf.NonTrainable(x)),
    }
    once = lf.unwrap(tree)
    assert not lf.contains_unwrappables(once)
    assert lf.unwrap(once) is once
    for value in once.values():
        assert _close(value, x)
    # The fold's defining equation: children unwrapped first, then .unwrap().
    node = tree["inner"]
    rebuilt = node.with_raw(lf.unwrap(node.raw))
    assert _close(rebuilt.unwrap(), once["inner"])


def test_constraints_survive_placeholder_rebuilds() -> None:
    constrained = lf.interval(jnp.array([0.5]), 0.0, 1.0)
    placeholders = jax.tree_util.tree_map(lambda _: None, constrained)
    assert type(placeholders) is lf.Interval
    assert placeholders.raw is None


def test_an_optic_wraps_leaves_in_a_constraint() -> None:
    model = {"scale": jnp.array([0.5, 2.0]), "weights": jnp.array([0.3, 0.7])}
    wrapped = lf.at["weights"].wrap(lf.at["scale"].wrap(model, lf.positive), lf.simplex)
    assert type(wrapped["scale"]) is lf.Positive
    assert _close(lf.unwrap(wrapped)["scale"], model["scale"])
    assert _close(lf.unwrap(wrapped)["weights"], model["weights"])
    with pytest.raises(lf.ConstraintError):
        lf.at["scale"].wrap({"scale": jnp.array([-1.0])}, lf.positive)


def test_an_optic_names_the_key_path_of_a_value_outside_the_support() -> None:
    with pytest.raises(ValueError, match=r"\['scale'\]"):
        lf.at["scale"].wrap({"scale": jnp.array([-1.0])}, lf.positive)


# ---------------------------------------------------------------------------
# User-defined constraints.


@attrs.frozen
class Above(AbstractConstraint):
    floor: float = lf.field(static=True, default=0.0)
    support = "x > floor"

    def forward(self, raw: jax.Array) -> jax.Array:
        return self.floor + jnp.exp(raw)

    def inverse(self, value: jax.Array) -> jax.Array:
        return jnp.log(value - self.floor)

    def in_support(self, value: jax.Array) -> jax.Array:
        return value > self.floor


def test_a_user_defined_constraint_is_value_preserving() -> None:
    x = jnp.array([-0.5, -3.0])
    constrained = Negative(x)
    assert _close(lf.unwrap(constrained), x)
    assert _close(jax.jit(lf.unwrap)(jax.jit(Negative)(x)), x)
    with pytest.raises(lf.ConstraintError, match=r"Negative got 1\.0, outside its support x < 0"):
        Negative(1.0)


def test_a_decorated_user_constraint_takes_its_parameters_after_the_value() -> None:
    assert _close(lf.unwrap(Above(jnp.array([3.0]), 2.0)), [3.0])
    assert _close(lf.unwrap(Above(jnp.array([3.0]), floor=2.5)), [3.0])
    assert Above(jnp.array([3.0])).floor == 0.0
    with pytest.raises(lf.ConstraintError, match=r"Above got 1\.0"):
        Above(1.0, floor=2.0)
    with pytest.raises(TypeError, match="unexpected argument 'ceiling'"):
        Above(1.0, ceiling=2.0)
    with pytest.raises(TypeError, match="at most 1 more"):
        Above(1.0, 0.0, 2.0)


def test_a_subclass_of_a_built_in_constraint_inherits_its_constructor() -> None:
    class Weights(lf.Simplex):
        pass

    x = jnp.array([[0.25, 0.5], [0.75, 0.5]])
    constrained = Weights(x, axis=0)
    assert constrained.axis == -2
    assert _close(lf.unwrap(constrained), x)


def test_a_user_constraint_joins_the_laws_through_a_catalogue_entry() -> None:
    entry = Catalogued("negative", Negative, lambda n: (), lambda s: -jnp.ones(s))
    x = jnp.array([-0.25, -4.0])
    assert _close(lf.unwrap(entry.build(x)), x)
    template = entry.build(entry.example((3,)))
    assert bool(
        template.in_closure(lf.unwrap(template.with_raw(jnp.array([-5.0, 0.0, 5.0])))).all()
    )


def test_one_line_through_a_predicate_optic() -> None:
    model = {
        "layers": [
            {"w": jnp.array([[1.0, -2.0]]), "scale": jnp.array([0.5, 2.0])},
            {"w": jnp.array([[3.0, 0.5]]), "scale": jnp.array([1.5, 0.1])},
        ]
    }

    def is_scale(x: jax.Array) -> bool:
        return x.ndim == 1

    wrapped = lf.at.leaves().where(is_scale).wrap(model, lf.positive)
    assert [type(layer["scale"]) for layer in wrapped["layers"]] == [lf.Positive, lf.Positive]
    assert all(isinstance(layer["w"], jax.Array) for layer in wrapped["layers"])
    unwrapped = lf.unwrap(wrapped)
    for got, want in zip(unwrapped["layers"], model["layers"], strict=True):
        assert got["w"] is want["w"]
        np.testing.assert_allclose(got["scale"], want["scale"], rtol=1e-6)


# ---------------------------------------------------------------------------
# Defects found by trying lensify as a user would (one test each).


def test_interval_keeps_a_float16_value_whose_width_overflows() -> None:
    x = jnp.array([0.5, 100.0], jnp.float16)
    constrained = lf.interval(x, -4e4, 4e4)
    value = lf.unwrap(constrained)
    assert value.dtype == constrained.raw.dtype == jnp.float16
    # The raw parameter is float16 too: its rounding sets the documented tolerance.
    tolerance = constrained.tolerance(jnp.float16)
    assert _close(value, x, rtol=tolerance.rtol, atol=tolerance.atol)
    assert _close(value, x, rtol=1e-2, atol=0)


def test_interval_rejects_bounds_the_dtype_cannot_hold() -> None:
    with pytest.raises(lf.ConstraintError, match="float32"):
        lf.interval(jnp.array([0.5]), -1e39, 1e39)
    with pytest.raises(lf.ConstraintError, match="float16"):
        lf.interval(jnp.array([0.5], jnp.float16), -1e5, 1.0)


def test_interval_rejects_bounds_equal_in_the_dtype() -> None:
    with pytest.raises(lf.ConstraintError, match="float16"):
        lf.interval(jnp.array([1.0], jnp.float16), 1.0, 1.0001)


def test_interval_is_precise_near_zero_when_it_straddles_zero() -> None:
    assert float(lf.unwrap(lf.interval(1e-6, -1.0, 1.0))) == np.float32(1e-6)
    x = jnp.array([0.01, -1e-5, 3e-30])
    assert lt.trees_close(lf.unwrap(lf.interval(x, -100.0, 100.0)), x)


def test_interval_keeps_values_near_the_float32_limit() -> None:
    x = jnp.array([-3e38, -1.0, 0.0, 1e30, 3e38])
    value = lf.unwrap(lf.interval(x, -3.4e38, 3.4e38))
    assert bool(jnp.isfinite(value).all())
    tolerance = lf.interval(x, -3.4e38, 3.4e38).tolerance(jnp.float32)
    assert _close(value, x, rtol=tolerance.rtol, atol=tolerance.atol)
    assert float(value[2]) == 0.0


@pytest.mark.parametrize("bound", [3.4e38, 1.0e38, 1.0])
def test_interval_near_the_float32_limit_under_jit_and_grad(bound: float) -> None:
    # Compiled, XLA once folded half * 2 * sigmoid(raw) into (half * 2) / (1 +
    # exp(-raw)): inf, and values of the wrong sign, for bounds beyond half the
    # float maximum. The gradient, half * 2 s (1 - s), is finite for every width.
    x = jnp.array([-0.5, -1e-3, 0.0, 0.25, 0.99], jnp.float32) * bound
    constrained = lf.interval(x, -bound, bound)
    eager = lf.unwrap(constrained)
    np.testing.assert_array_equal(jax.jit(lf.unwrap)(constrained), eager)
    s = 1 / (1 + np.exp(-np.asarray(constrained.raw, np.float64)))
    slope = 2 * bound * s * (1 - s)  # d value / d raw, in float64
    for grad in (jax.grad, lambda f: jax.jit(jax.grad(f))):
        got = grad(lambda c: lf.unwrap(c).sum())(constrained).raw
        assert bool(jnp.isfinite(got).all())
        np.testing.assert_allclose(got, slope, rtol=1e-5)


def test_an_empty_raw_parameter_under_grad_of_checkpoint() -> None:
    def loss(x: jax.Array) -> jax.Array:
        return lf.unwrap(lf.simplex(x)).sum() + x.sum()

    assert jax.grad(jax.checkpoint(loss))(jnp.ones(1)).tolist() == [1.0]
    assert jax.jit(jax.grad(jax.checkpoint(loss)))(jnp.ones(1)).tolist() == [1.0]
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"Simplex got 0\.5"):
        jax.block_until_ready(jax.jit(jax.grad(jax.checkpoint(loss)))(jnp.full(1, 0.5)))


def test_a_constraint_under_grad_of_checkpoint_keeps_its_gradient() -> None:
    def loss(x: jax.Array) -> jax.Array:
        return lf.unwrap(lf.positive(lf.Parameterize(_negated, x))).sum()

    assert _close(jax.grad(jax.checkpoint(loss))(jnp.array([-1.0, -2.0])), [-1.0, -1.0])


def test_the_axis_error_names_the_axis_given() -> None:
    with pytest.raises(lf.ConstraintError, match=r"axis 1, got shape \(2,\)"):
        lf.simplex(jnp.array([0.5, 0.5]), axis=1)
    with pytest.raises(lf.ConstraintError, match=r"axis -3, got shape \(2, 2\)"):
        lf.unit_vector(jnp.eye(2), axis=-3)


@pytest.mark.parametrize("entry", ENTRIES)
def test_complex_input_is_rejected(entry: Catalogued) -> None:
    x = entry.example((*entry.event_shape(2),)).astype(jnp.complex64)
    with pytest.raises(lf.ConstraintError, match=r"real values, got complex64"):
        entry.build(x)


def test_complex_input_is_rejected_under_jit() -> None:
    with pytest.raises(lf.ConstraintError, match="complex64"):
        jax.jit(lf.positive)(jnp.ones(2, jnp.complex64))


SHARDED_CONSTRUCTION = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
import lensify as lf
mesh = jax.make_mesh((8,), ("data",))
rows = NamedSharding(mesh, P("data"))
x = jax.device_put(jnp.linspace(0.1, 0.9, 16).reshape(8, 2), rows)
for name, build in [
    ("positive", lf.positive),
    ("interval", lambda v: lf.interval(v, 0.0, 1.0)),
    ("simplex", lambda v: lf.simplex(v / v.sum(axis=-1, keepdims=True))),
    ("unit_vector", lambda v: lf.unit_vector(v / jnp.linalg.norm(v, axis=-1, keepdims=True))),
]:
    constrained = jax.jit(build)(x)
    assert constrained.raw.sharding.is_equivalent_to(rows, 2), (name, constrained.raw.sharding)
    value = jax.jit(lf.unwrap)(constrained)
    assert value.sharding.is_equivalent_to(rows, 2), (name, value.sharding)
print("ok")
"""


def test_construction_under_jit_keeps_the_input_sharding() -> None:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    done = subprocess.run(
        [sys.executable, "-c", SHARDED_CONSTRUCTION],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


# ---------------------------------------------------------------------------
# Round trips at the documented edges, within each constraint's documented tolerance.

EDGE_DTYPES = [jnp.float16, jnp.bfloat16, jnp.float32]


def _within_tolerance(constrained: AbstractConstraint, x: jax.Array) -> bool:
    tolerance = constrained.tolerance(x.dtype)
    got = np.asarray(lf.unwrap(constrained), np.float64)
    want = np.asarray(x, np.float64)
    return got.shape == want.shape and bool(
        np.all(np.abs(got - want) <= tolerance.atol + tolerance.rtol * np.abs(want))
    )


@st.composite
def interval_cases(draw: st.DrawFn) -> tuple[jax.Array, float, float]:
    """Bounds of every scale (up to the dtype's largest number) and values inside."""
    dtype = draw(st.sampled_from(EDGE_DTYPES))
    largest = float(jnp.finfo(dtype).max)
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3, largest / 2]))
    lower = draw(st.floats(-scale, scale / 2))
    upper = draw(st.floats(lower + scale / 4, scale))
    fractions = draw(hnp.arrays(np.float64, (6,), elements=st.floats(0.0, 1.0)))
    near_zero = [0.0, 1e-6, -1e-6] if lower < 0 < upper else []
    x = np.concatenate([lower + (upper - lower) * fractions, near_zero])
    x = np.asarray(np.asarray(x, np.float32), dtype)
    bounds = (np.asarray(np.float32(b)).astype(dtype) for b in (lower, upper))
    low, high = bounds
    return jnp.asarray(x[(x > low) & (x < high)]), lower, upper


@LAWS
@given(interval_cases())
def test_interval_round_trip_within_its_tolerance(case: tuple[jax.Array, float, float]) -> None:
    x, lower, upper = case
    assert _within_tolerance(lf.interval(x, lower, upper), x)


@pytest.mark.parametrize("dtype", EDGE_DTYPES)
def test_positive_round_trip_from_the_smallest_to_the_largest_number(dtype: Any) -> None:
    info = jnp.finfo(dtype)
    exponents = np.linspace(np.log10(float(info.tiny)), np.log10(float(info.max)) - 0.01, 200)
    x = jnp.asarray(np.asarray(10.0**exponents, np.float32), dtype)
    assert _within_tolerance(lf.positive(x), x)


def test_positive_keeps_float16_subnormal_values() -> None:
    x = jnp.array([1e-7, 3e-5, 6e4], jnp.float16)
    assert lf.unwrap(lf.positive(x)).tolist() == x.tolist()


@pytest.mark.parametrize("dtype", EDGE_DTYPES)
def test_simplex_round_trip_with_tiny_entries(dtype: Any) -> None:
    tiny = float(jnp.finfo(dtype).tiny)
    x = jnp.asarray(np.array([[0.5, 0.25, 0.25], [8 * tiny, 0.5, 0.5]], np.float32), dtype)
    assert _within_tolerance(lf.simplex(x), x)


@pytest.mark.parametrize("dtype", EDGE_DTYPES)
def test_cholesky_factor_round_trip_with_tiny_and_huge_diagonals(dtype: Any) -> None:
    info = jnp.finfo(dtype)
    big = float(info.max) / 4
    x = jnp.asarray(np.array([[8 * float(info.tiny), 0.0], [-big, big]], np.float32), dtype)
    assert _within_tolerance(lf.cholesky_factor(x), x)


@pytest.mark.parametrize("dtype", EDGE_DTYPES)
def test_symmetric_and_unit_vector_round_trip_at_the_float_limits(dtype: Any) -> None:
    big = float(jnp.finfo(dtype).max) / 2
    s = jnp.asarray(np.array([[big, -big], [-big, 1e-3]], np.float32), dtype)
    assert _within_tolerance(lf.symmetric(s), s)
    v = jnp.asarray(np.array([0.6, 0.8, 0.0], np.float32), dtype)
    assert _within_tolerance(lf.unit_vector(v), v)


# ---------------------------------------------------------------------------
# Values through constraints: with_value, the one-level inverse of unwrap. Values
# are drawn inside the support (the forward map of moderate raw values, |raw| <= 8),
# and compared within each constraint's documented tolerance.


def _same_node(a: Any, b: Any) -> bool:
    return type(a) is type(b) and jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)


@pytest.mark.parametrize("entry", ENTRIES)
@LAWS
@given(data=st.data())
def test_law_with_value_put_get(entry: Catalogued, data: st.DataObject) -> None:
    constrained = entry.build(data.draw(values(entry)))
    v = data.draw(values(entry).filter(lambda v: v.shape == lf.unwrap(constrained).shape))
    put = constrained.with_value(v)
    assert _same_node(put, constrained)
    assert _within_tolerance(put, v)


@pytest.mark.parametrize("entry", ENTRIES)
@LAWS
@given(data=st.data())
def test_law_with_value_get_put(entry: Catalogued, data: st.DataObject) -> None:
    constrained = entry.build(data.draw(values(entry)))
    again = constrained.with_value(lf.unwrap(constrained))
    assert _same_node(again, constrained)
    # In raw space: moderate raw values come back within 1e-4 (|raw| <= 8 here).
    assert _close(again.raw, constrained.raw, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("entry", ENTRIES)
@LAWS
@given(data=st.data())
def test_law_with_value_put_put(entry: Catalogued, data: st.DataObject) -> None:
    x = data.draw(values(entry))
    constrained = entry.build(x)
    v, w = x * 1, lf.unwrap(entry.build(x))
    twice = constrained.with_value(v).with_value(w)
    assert _same_node(twice, constrained)
    assert np.array_equal(twice.raw, constrained.with_value(w).raw)


def test_with_value_keeps_the_static_configuration() -> None:
    constrained = lf.interval(jnp.array([0.5, 5.0]), np.array([0.0, 4.0]), 7.0)
    put = constrained.with_value(jnp.array([0.25, 6.5]))
    assert (put.lower, put.upper) == (constrained.lower, constrained.upper)
    assert _close(lf.unwrap(put), [0.25, 6.5])
    along = lf.simplex(jnp.array([[0.2, 0.5], [0.8, 0.5]]), axis=0)
    assert along.with_value(jnp.array([[0.5, 0.1], [0.5, 0.9]])).axis == -2


def test_with_value_outside_the_support_is_the_construction_error() -> None:
    with pytest.raises(lf.ConstraintError, match=r"Positive got -2\.0 at index \(1,\)") as put:
        lf.positive(jnp.ones(2)).with_value(jnp.array([1.0, -2.0]))
    with pytest.raises(lf.ConstraintError) as built:
        lf.positive(jnp.array([1.0, -2.0]))
    assert str(put.value) == str(built.value)
    with pytest.raises(lf.ConstraintError, match="needs real values"):
        lf.positive(jnp.ones(2)).with_value(jnp.ones(2, jnp.complex64))


def test_with_value_outside_the_support_is_a_runtime_error_under_jit() -> None:
    put = jax.jit(lambda c, v: lf.unwrap(c.with_value(v)))
    assert _close(put(lf.interval(0.5, 0.0, 1.0), 0.25), 0.25)
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"Interval got 1\.5"):
        jax.block_until_ready(put(lf.interval(0.5, 0.0, 1.0), 1.5))


def test_with_value_holds_plain_values_in_its_children() -> None:
    frozen = lf.positive(lf.NonTrainable(jnp.array([2.0])))
    put = frozen.with_value(jnp.array([3.0]))
    assert isinstance(put.raw, jax.Array)
    assert _close(lf.unwrap(put), [3.0])


def test_with_value_of_a_preimage_is_the_forward_map() -> None:
    w = jnp.array([[1.0, 2.0], [3.0, 0.5]])
    constrained = lf.positive(lf.WeightNormalization(w))
    raw = lf.inv_softplus(jnp.array([[0.5, 1.0], [2.0, 4.0]]))
    put = constrained.raw.with_value(raw)
    assert type(put) is Preimage
    assert _close(put.value, [[0.5, 1.0], [2.0, 4.0]])
    assert _close(put.unwrap(), raw)


def test_with_path_message_starts_with_the_key_path() -> None:
    with pytest.raises(lf.ConstraintError) as info:
        lf.simplex(jnp.array([0.5, 0.5])).with_value(jnp.array([0.5, 0.6]))
    error = info.value.with_path("['model'].weights")
    assert str(error).startswith("at ['model'].weights: Simplex got")
    assert error.path == "['model'].weights"


def test_rewrap_keeps_a_frozen_raw_parameter_frozen() -> None:
    tree = {"scale": lf.positive(lf.NonTrainable(jnp.array([1.0, 2.0])))}
    put = lf.rewrap(tree, {"scale": jnp.array([3.0, 4.0])})
    assert type(put["scale"].raw) is lf.NonTrainable
    assert _close(lf.unwrap(put)["scale"], [3.0, 4.0])
    jitted = jax.jit(lf.rewrap)(tree, lf.unwrap(put))
    assert _close(jitted["scale"].raw.tree, put["scale"].raw.tree)


def test_rewrap_names_the_key_path_of_a_value_outside_the_support() -> None:
    tree = {"layers": [lf.interval(jnp.array(0.5), 0.0, 1.0)]}
    expected = r"^at \['layers'\]\[0\]: Interval got 1\.5"
    with pytest.raises(lf.ConstraintError, match=expected) as info:
        lf.rewrap(tree, {"layers": [jnp.array(1.5)]})
    assert info.value.path == "['layers'][0]"


def test_rewrap_through_a_preimage_sets_the_wrapper_inside() -> None:
    w = jnp.array([[1.0, 2.0], [3.0, 0.5]])
    new = jnp.array([[0.5, 1.0], [2.0, 4.0]])
    put = lf.rewrap(lf.positive(lf.WeightNormalization(w)), new)
    assert type(put.raw) is Preimage and type(put.raw.value) is lf.WeightNormalization
    assert _close(lf.unwrap(put), new)
