"""Values through wrappers: ``rewrap``, ``with_value`` and ``register_inverse``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lensify as lf
import lensify.testing as lt

FAST = settings(max_examples=25, deadline=None)


def _same_structure(a: Any, b: Any) -> bool:
    return jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)


class Square(lf.AbstractUnwrappable):
    """Invertible on non-negative values; its with_value is the square root."""

    x: Any

    def unwrap(self) -> Any:
        return self.x**2

    def with_value(self, value: Any) -> Square:
        return Square(jnp.sqrt(value))


class Opaque(lf.AbstractUnwrappable):
    x: Any

    def unwrap(self) -> Any:
        return self.x


class Strict(lf.AbstractUnwrappable):
    """Rejects every value as a constraint would."""

    x: Any

    def unwrap(self) -> Any:
        return self.x

    def with_value(self, value: Any) -> Strict:
        raise lf.ConstraintError("Strict got a value outside its support", constraint="Strict")


class Wrong(lf.AbstractUnwrappable):
    x: Any

    def unwrap(self) -> Any:
        return self.x

    def with_value(self, value: Any) -> Any:
        return Opaque(value)


# --- the contract, one edge case each -------------------------------------------------


def test_not_invertible_error_is_a_type_error() -> None:
    assert issubclass(lf.NotInvertibleError, TypeError)


def test_with_value_default_names_the_class_and_the_fix() -> None:
    with pytest.raises(lf.NotInvertibleError, match="Opaque") as info:
        Opaque(jnp.ones(2)).with_value(jnp.zeros(2))
    assert "with_value(self, value)" in str(info.value)


def test_rewrap_replaces_a_leaf_outside_any_wrapper() -> None:
    out = lf.rewrap({"a": jnp.ones(2), "b": (1, "s")}, {"a": jnp.zeros(2), "b": (2, "t")})
    np.testing.assert_array_equal(out["a"], jnp.zeros(2))
    assert out["b"] == (2, "t")


def test_rewrap_of_a_user_wrapper_through_its_with_value() -> None:
    out = lf.rewrap([Square(jnp.array(1.0))], [jnp.array(9.0)])
    assert type(out[0]) is Square
    np.testing.assert_allclose(out[0].x, 3.0)


def test_rewrap_keeps_the_stack_and_the_function() -> None:
    tree = {"w": lf.WeightNormalization(lf.Parameterize(jnp.exp, jnp.zeros((2, 3))))}
    value = jnp.array([[1.0, 2.0, 3.0], [0.5, 0.5, 4.0]])
    out = lf.rewrap(tree, {"w": value})
    assert _same_structure(out, tree)
    assert out["w"].weight.fn is jnp.exp
    np.testing.assert_allclose(lf.unwrap(out)["w"], value, rtol=1e-5)


def test_rewrap_keeps_a_non_trainable_inside_a_parameterize() -> None:
    tree = lf.Parameterize(jax.nn.softplus, lf.NonTrainable(jnp.zeros(2)))
    out = lf.rewrap(tree, jnp.array([0.5, 3.0]))
    assert type(out.args[0]) is lf.NonTrainable
    np.testing.assert_allclose(lf.unwrap(out), [0.5, 3.0], rtol=1e-5)


def test_rewrap_keeps_static_fields() -> None:
    knots = lf.RealToIncreasingOnInterval(
        jnp.zeros(3), (0.0, 2.0), min_width=0.1, include_endpoints="neither"
    )
    out = lf.rewrap(knots, jnp.array([0.5, 1.0]))
    assert (out.interval, out.min_width, out.include_endpoints) == ((0.0, 2.0), 0.1, "neither")
    np.testing.assert_allclose(lf.unwrap(out), [0.5, 1.0], rtol=1e-5)


def test_rewrap_parameterize_keeps_its_other_arguments() -> None:
    def shifted_exp(x: Any, shift: Any, *, scale: Any) -> Any:
        return scale * jnp.exp(x) + shift

    lf.register_inverse(shifted_exp, jnp.log)
    tree = lf.Parameterize(shifted_exp, jnp.zeros(2), 0.0, scale=1.0)
    out = lf.rewrap(tree, jnp.array([2.0, 3.0]))
    assert out.args[1:] == (0.0,) and out.kwargs == {"scale": 1.0}
    np.testing.assert_allclose(lf.unwrap(out), [2.0, 3.0], rtol=1e-6)


def _shifted_exp(x: Any, shift: Any, *, scale: Any) -> Any:
    # Its other arguments are read but leave the value exp(x), so that log is its
    # inverse: rewrap checks that the value comes back through fn.
    return jnp.exp(x) + 0.0 * (scale * shift)


lf.register_inverse(_shifted_exp, jnp.log)


def test_rewrap_keeps_wrapped_other_arguments_exactly() -> None:
    # Only the first argument is inverted: the others are kept as the very same
    # objects, not unwrapped and set again (which would round their raw arrays).
    shift, scale = lf.positive(jnp.array(0.3)), lf.NonTrainable(jnp.array(1.0))
    tree = lf.Parameterize(_shifted_exp, jnp.zeros(2), shift, scale=scale)
    out = lf.rewrap(tree, jnp.array([2.0, 3.0]))
    assert out.args[1] is shift and out.kwargs["scale"] is scale


def test_with_value_keeps_the_other_arguments_as_they_are() -> None:
    # What rewrap keeps, with_value keeps: rewrap asks nothing else.
    shift = lf.positive(jnp.array(0.5))
    tree = lf.Parameterize(_shifted_exp, jnp.zeros(2), shift, scale=1.0)
    out = tree.with_value(jnp.array([2.0, 3.0]))
    assert out.args[1] is shift
    np.testing.assert_allclose(lf.unwrap(out.args[1]), 0.5, rtol=1e-6)
    np.testing.assert_allclose(out.args[0], np.log([2.0, 3.0]), rtol=1e-6)
    assert out.kwargs == {"scale": 1.0}


class Scaled(lf.AbstractConstraint):
    """``scale * softplus(raw)``: a constraint with a parameter child."""

    scale: Any
    support = "x > 0"

    def forward(self, raw: Any) -> Any:
        return jnp.asarray(lf.unwrap(self.scale)) * jax.nn.softplus(raw)

    def inverse(self, value: Any) -> Any:
        return lf.inv_softplus(value / jnp.asarray(lf.unwrap(self.scale)))

    def in_support(self, value: Any) -> Any:
        return value > 0


def test_rewrap_keeps_a_constraint_parameter_exactly() -> None:
    scale = lf.positive(jnp.array(2.0))
    tree = Scaled(jnp.array([1.0, 4.0]), scale)
    out = lf.rewrap(tree, jnp.array([3.0, 5.0]))
    assert out.scale is scale
    np.testing.assert_allclose(lf.unwrap(out), [3.0, 5.0], rtol=1e-5)


def test_rewrap_calls_a_subclass_with_value_that_overrides_a_built_in() -> None:
    calls = []

    class Logged(lf.Parameterize):
        def with_value(self, value: Any) -> Any:
            calls.append(value)
            return super().with_value(value)

    out = lf.rewrap(Logged(jnp.exp, jnp.zeros(2)), jnp.array([1.0, 2.0]))
    assert len(calls) == 1 and type(out) is Logged
    np.testing.assert_allclose(out.args[0], np.log([1.0, 2.0]), atol=1e-6)


class _HalvedOnSet(lf.NonTrainable):
    """Overrides with_value only: rewrap must run it, nothing of NonTrainable's."""

    def with_value(self, value: Any) -> Any:
        return _HalvedOnSet(value / 2)


def test_rewrap_of_a_subclass_is_exactly_its_own_with_value() -> None:
    tree = _HalvedOnSet(jnp.ones(2))
    value = jnp.array([2.0, 6.0])
    out = lf.rewrap({"w": tree}, {"w": value})["w"]
    assert type(out) is _HalvedOnSet
    np.testing.assert_array_equal(out.tree, tree.with_value(value).tree)
    np.testing.assert_array_equal(out.tree, [1.0, 3.0])


def test_a_child_values_method_is_not_a_second_protocol() -> None:
    # A method of the old private protocol is ignored: with_value alone decides.
    class Odd(lf.NonTrainable):
        def _child_values(self, children: Any, aux: Any, value: Any) -> Any:
            return (value * 0,)

    value = jnp.array([2.0, 6.0])
    out = lf.rewrap(Odd(jnp.ones(2)), value)
    np.testing.assert_array_equal(out.tree, Odd(jnp.ones(2)).with_value(value).tree)
    np.testing.assert_array_equal(out.tree, value)


class _Offset(lf.AbstractUnwrappable):
    """``x + shift``; its with_value keeps the shift child as it is."""

    x: Any
    shift: Any

    def unwrap(self) -> Any:
        return self.x + self.shift

    def with_value(self, value: Any) -> _Offset:
        return lf.replace(self, x=value - lf.unwrap(self.shift))


def test_a_child_with_value_keeps_stays_the_very_same_object() -> None:
    shift = lf.positive(jnp.array(0.5))
    out = lf.rewrap(_Offset(jnp.zeros(2), shift), jnp.array([1.5, 2.5]))
    assert out.shift is shift
    np.testing.assert_allclose(lf.unwrap(out), [1.5, 2.5], rtol=1e-6)


def test_a_value_with_value_gives_a_wrapped_child_is_pushed_into_it() -> None:
    frozen = lf.NonTrainable(jnp.zeros(2))
    out = lf.rewrap(_Offset(frozen, 1.0), jnp.array([1.5, 2.5]))
    assert type(out.x) is lf.NonTrainable
    np.testing.assert_allclose(out.x.tree, [0.5, 1.5])


def test_rewrap_of_a_built_in_subclass_runs_its_own_support_test() -> None:
    # A subclass is never compiled with the built-in's maps: its in_support may
    # read values in numpy, and must still run.
    class AboveOne(lf.Positive):
        support = "x > 1"

        def in_support(self, value: Any) -> Any:
            return np.asarray(value) > 1

    tree = AboveOne(jnp.array([2.0, 3.0]))
    np.testing.assert_allclose(lf.unwrap(lf.rewrap(tree, jnp.array([4.0, 5.0]))), [4.0, 5.0])
    with pytest.raises(lf.ConstraintError, match=r"AboveOne got 0\.5"):
        lf.rewrap(tree, jnp.array([0.5, 5.0]))


@pytest.mark.parametrize(
    ("constraint", "value", "message"),
    [
        (lf.positive(jnp.ones(3)), [1.0, -2.0, 3.0], "Positive got -2.0 at index (1,)"),
        (lf.positive(jnp.ones(2)), [1e-40, 1.0], "Positive got 1e-40 at index (0,)"),
        (lf.positive(jnp.ones(2)), [1.0, np.inf], "Positive got inf at index (1,)"),
        (lf.interval(jnp.full(2, 0.5), 0.0, 1.0), [0.5, 1.0], "Interval got 1.0 at index (1,)"),
        (lf.simplex(jnp.array([0.5, 0.5])), [0.7, 0.7], "Simplex got 0.7"),
    ],
)
def test_rewrap_of_a_concrete_value_outside_the_support_names_the_entry(
    constraint: Any, value: list[float], message: str
) -> None:
    # A concrete value takes one compiled call; the error is the construction's,
    # subnormal numbers count as 0 as XLA compares them, and NaN never comes back.
    with pytest.raises(lf.ConstraintError, match=re.escape(message)):
        lf.rewrap(constraint, jnp.asarray(value, jnp.float32))


@pytest.mark.parametrize("entry", [*lt.CATALOGUE, *lt.EDGES], ids=lambda entry: entry.name)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_compiled_maps_agree_with_the_eager_maps(entry: Any, data: st.DataObject) -> None:
    # Given concrete arrays, a built-in's maps run compiled: rewrap (and
    # construction) the support test and inverse map together, unwrap the forward
    # map. Their results are the eager maps' own.
    shape = (2, *entry.event_shape(3))
    template = entry.build(jnp.asarray(entry.example(shape), dtype=entry.dtype))
    draw = lt.forward_values(entry.build) if entry.values is None else entry.values
    value = data.draw(draw(template), label="value")
    put = lf.rewrap(template, value)
    for compiled, eager in [
        (put.raw, template.inverse(template._checked(value))),
        (lf.unwrap(put), put.forward(put.raw)),
    ]:
        assert compiled.dtype == eager.dtype and compiled.shape == eager.shape
        eps = float(jnp.finfo(eager.dtype).eps)
        scale = max(1.0, float(jnp.max(jnp.abs(eager.astype(jnp.float32)), initial=0.0)))
        np.testing.assert_allclose(compiled, eager, rtol=4 * eps, atol=4 * eps * scale)


def test_inv_softplus_of_nan_is_nan_and_of_a_negative_an_error() -> None:
    out = lf.inv_softplus(jnp.array([1.0, jnp.nan]))
    assert np.isnan(out[1]) and not np.isnan(out[0])
    with pytest.raises(ValueError, match=r"non-negative input \(got -1.0 at 1 position"):
        lf.inv_softplus(jnp.array([jnp.nan, -1.0]))


def test_rewrap_unregistered_function_says_how_to_register_or_use_an_optic() -> None:
    with pytest.raises(lf.NotInvertibleError) as info:
        lf.rewrap({"a": [lf.Parameterize(jnp.tanh, jnp.zeros(2))]}, {"a": [jnp.zeros(2)]})
    message = str(info.value)
    assert "lf.register_inverse(tanh" in message and "lf.at.args[0].set" in message
    assert str(info.value).startswith("at ['a'][0]: Parameterize")


def test_rewrap_error_note_names_the_key_path() -> None:
    with pytest.raises(lf.NotInvertibleError) as info:
        lf.rewrap({"a": (1.0, Opaque(2.0))}, {"a": (1.0, 3.0)})
    assert str(info.value).startswith("at ['a'][1]: Opaque cannot be set")


def test_rewrap_constraint_error_starts_with_the_key_path() -> None:
    with pytest.raises(lf.ConstraintError) as info:
        lf.rewrap({"s": [Strict(1.0)]}, {"s": [2.0]})
    assert str(info.value).startswith("at ['s'][0]: Strict got a value outside")


def test_rewrap_with_value_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must return a Wrong"):
        lf.rewrap(Wrong(1.0), 2.0)


@pytest.mark.parametrize(
    ("values", "path", "expected"),
    [
        ({"a": [1.0], "b": None}, "['a']", "a list of length 2"),
        ({"a": [1.0, 2.0], "c": 1.0}, "<root>", "keys ['a', 'b']"),
        ({"a": [1.0, {"x": 1.0}], "b": None}, "['a'][1].tree", "expected a leaf"),
        ({"a": [1.0, 2.0], "b": 1.0}, "['b']", "expected None"),
        ({"a": (1.0, 2.0), "b": None}, "['a']", "a list of length 2"),
    ],
)
def test_rewrap_structure_mismatch_names_the_key_path(
    values: Any, path: str, expected: str
) -> None:
    tree = {"a": [jnp.ones(()), lf.NonTrainable(jnp.ones(()))], "b": None}
    with pytest.raises(ValueError, match=r"shaped like lf\.unwrap") as info:
        lf.rewrap(tree, values)
    assert str(info.value).startswith(f"at {path}: ") and expected in str(info.value)


def test_rewrap_leaf_replaced_by_none_is_a_mismatch() -> None:
    with pytest.raises(ValueError, match=r"^at \['a'\]: expected a leaf, got None"):
        lf.rewrap({"a": jnp.ones(2)}, {"a": None})


def test_rewrap_value_outside_the_range_of_exp_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="outside the range of exp") as info:
        lf.rewrap({"k": lf.Parameterize(jnp.exp, jnp.zeros(2))}, {"k": jnp.array([1.0, -1.0])})
    assert str(info.value).startswith("at ['k']: Parameterize: a value is outside")


def test_rewrap_value_outside_the_range_is_a_runtime_error_under_jit() -> None:
    tree = lf.Parameterize(jax.nn.sigmoid, jnp.zeros(2))
    with pytest.raises(jax.errors.JaxRuntimeError, match="outside the range of sigmoid"):
        jax.block_until_ready(jax.jit(lf.rewrap)(tree, jnp.array([0.5, 1.5])))


@pytest.mark.parametrize(
    ("tree", "values", "expected"),
    [
        (
            {"a": [lf.positive(jnp.ones(2))]},
            {"a": [jnp.array([1.0, -1.0])]},
            "ConstraintError: at ['a'][0]: Positive got -1.0",
        ),
        (
            {"k": (1.0, lf.Parameterize(jax.nn.sigmoid, jnp.zeros(2)))},
            {"k": (1.0, jnp.array([0.5, 1.5]))},
            "ValueCheckError: at ['k'][1]: Parameterize: a value is outside the range of "
            "sigmoid (1 position(s), the first at (1,)).",
        ),
        (
            # The check of the inner stack, made while rewrapping the outer one.
            {"s": lf.NonTrainable(lf.Parameterize(jax.nn.softplus, jnp.zeros(2)))},
            {"s": jnp.array([0.5, -1.5])},
            "ValueCheckError: at ['s'].tree: Parameterize: a value is outside",
        ),
        (
            {"w": lf.WeightNormalization(jnp.ones((2, 2)))},
            {"w": jnp.zeros((2, 2))},
            "ValueCheckError: at ['w']: WeightNormalization cannot normalise a weight with "
            "a row of zeros (got 0.0 at 2 position(s)).",
        ),
    ],
)
def test_rewrap_error_under_jit_names_the_key_path(tree: Any, values: Any, expected: str) -> None:
    # The check runs when the computation does, after the walk has returned: the
    # walk labels it with its wrapper's key path while tracing.
    with pytest.raises(jax.errors.JaxRuntimeError, match=re.escape(expected)):
        jax.block_until_ready(jax.jit(lf.rewrap)(tree, values))


def test_rewrap_under_jit_reports_the_path_of_the_wrapper_that_failed() -> None:
    # Two constraints of one shape: the message names the one whose value is out.
    tree = {"a": lf.positive(jnp.ones(2)), "b": lf.positive(jnp.ones(2))}
    rewrap = jax.jit(lf.rewrap)
    jax.block_until_ready(rewrap(tree, {"a": jnp.ones(2), "b": jnp.ones(2)}))
    with pytest.raises(jax.errors.JaxRuntimeError, match=re.escape("at ['b']: Positive got")):
        jax.block_until_ready(rewrap(tree, {"a": jnp.ones(2), "b": -jnp.ones(2)}))


def test_a_traced_check_error_that_takes_other_arguments_gets_a_note() -> None:
    from lensify.numerics import CheckLabel

    class TwoArgumentsError(Exception):
        def __init__(self, what: str, count: int) -> None:
            super().__init__(f"{what} ({count})")

    label = CheckLabel(lf.NonTrainable(jnp.ones(2)))
    label.path = "['x']"
    error = label.located(TwoArgumentsError("bad", 2))
    assert type(error) is TwoArgumentsError
    assert error.__notes__ == ["at ['x']: raised while rewrapping NonTrainable"]


def test_rewrap_negative_value_through_softplus_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="outside the range of softplus"):
        lf.rewrap(lf.Parameterize(jax.nn.softplus, jnp.zeros(2)), jnp.array([1.0, -1.0]))


def test_rewrap_weight_normalization_zero_row_is_a_value_error() -> None:
    wn = lf.WeightNormalization(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="row of zeros"):
        lf.rewrap(wn, jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))


def test_rewrap_weight_normalization_scale_is_the_row_norms() -> None:
    value = jnp.array([[3.0, 4.0], [0.0, 2.0]])
    out = lf.rewrap(lf.WeightNormalization(jnp.ones((2, 2))), value)
    np.testing.assert_allclose(lf.unwrap(out.scale), [[5.0], [2.0]], rtol=1e-6)
    np.testing.assert_array_equal(out.weight, value)


@pytest.mark.parametrize(
    "points",
    [[0.0, 0.05, 1.0, 2.0], [0.0, 1.5, 1.0, 2.0], [0.1, 0.5, 1.0, 2.0], [0.0, 0.5, 1.0, 2.5]],
    ids=["too-close", "decreasing", "lower-endpoint", "upper-endpoint"],
)
def test_rewrap_real_to_increasing_outside_its_constraints(points: list[float]) -> None:
    knots = lf.RealToIncreasingOnInterval(
        jnp.zeros(3), (0.0, 2.0), min_width=0.1, include_endpoints="both"
    )
    with pytest.raises(ValueError, match="increase by more than min_width"):
        lf.rewrap(knots, jnp.array(points))


def test_rewrap_real_to_increasing_wrong_number_of_points() -> None:
    knots = lf.RealToIncreasingOnInterval(
        jnp.zeros(3), (0.0, 2.0), min_width=0.1, include_endpoints="lower"
    )
    with pytest.raises(ValueError, match="unwraps to 3 points"):
        lf.rewrap(knots, jnp.array([0.0, 0.5, 1.0, 2.0]))


def test_rewrap_real_to_increasing_with_traced_bounds() -> None:
    @jax.jit
    def roundtrip(lower: jax.Array, value: jax.Array) -> jax.Array:
        knots = lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (lower, 2.0), min_width=0.1, include_endpoints="both"
        )
        return lf.unwrap(lf.rewrap(knots, value))

    value = jnp.array([0.0, 0.3, 1.0, 2.0])
    np.testing.assert_allclose(roundtrip(jnp.array(0.0), value), value, rtol=1e-5, atol=1e-6)


def test_rewrap_under_jit_grad_and_vmap() -> None:
    tree = {"s": lf.Parameterize(jax.nn.softplus, jnp.zeros(3)), "b": jnp.zeros(3)}
    values = {"s": jnp.array([0.5, 1.0, 2.0]), "b": jnp.ones(3)}
    jitted = jax.jit(lf.rewrap)(tree, values)
    assert _same_structure(jitted, tree)
    np.testing.assert_allclose(lf.unwrap(jitted)["s"], values["s"], rtol=1e-5)
    grad = jax.grad(lambda v: lf.unwrap(lf.rewrap(tree, v))["s"].sum())(values)
    np.testing.assert_allclose(grad["s"], jnp.ones(3), rtol=1e-5)
    batched = {"s": jnp.stack([values["s"], 2 * values["s"]]), "b": jnp.zeros((2, 3))}
    out = jax.vmap(lf.rewrap, in_axes=(None, 0))(tree, batched)
    np.testing.assert_allclose(lf.unwrap(out)["s"], batched["s"], rtol=1e-5)


def test_register_inverse_needs_a_hashable_function() -> None:
    with pytest.raises(TypeError, match="hashable"):
        lf.register_inverse(lf.NonTrainable(jnp.ones(2)), jnp.log)  # type: ignore[arg-type]


_PAIRS: list[tuple[Callable[[Any], Any], Any]] = [
    (jnp.exp, [0.5, 2.0]),
    (jnp.log, [-1.0, 2.0]),
    (jax.nn.softplus, [0.5, 2.0]),
    (lf.inv_softplus, [-1.0, 2.0]),
    (jax.nn.sigmoid, [0.25, 0.75]),
    (jax.scipy.special.logit, [-1.0, 2.0]),
    (lf.identity, [-1.0, 2.0]),
]


@pytest.mark.parametrize(("fn", "value"), _PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_built_in_inverse_pairs(fn: Callable[[Any], Any], value: list[float]) -> None:
    out = lf.rewrap(lf.Parameterize(fn, jnp.ones(2)), jnp.array(value))
    np.testing.assert_allclose(lf.unwrap(out), value, rtol=1e-5)


# --- laws: put-get, get-put, put-put ---------------------------------------------------

_RAW = lt.float_arrays([(2, 3)], nonzero=True)


def _knots(x: Any) -> Any:
    return lf.RealToIncreasingOnInterval(x, (-1.0, 2.0), min_width=0.1, include_endpoints="both")


# Each factory builds a wrapper stack around a (2, 3) raw array; values are drawn as
# the unwrapped value of the same stack around another raw array, so they lie inside
# its support and away from saturation.
_FACTORIES: dict[str, Callable[[Any], Any]] = {
    "frozen": lf.NonTrainable,
    "exp": lambda x: lf.Parameterize(jnp.exp, x),
    "softplus_of_frozen": lambda x: lf.Parameterize(jax.nn.softplus, lf.NonTrainable(x)),
    "sigmoid": lambda x: lf.Parameterize(jax.nn.sigmoid, x),
    "identity": lambda x: lf.Parameterize(lf.identity, x),
    "weight_norm": lf.WeightNormalization,
    "weight_norm_of_exp": lambda x: lf.WeightNormalization(lf.Parameterize(jnp.exp, x)),
    "frozen_weight_norm": lambda x: lf.NonTrainable(lf.WeightNormalization(x)),
    "knots": _knots,
    "in_a_tree": lambda x: {"k": [_knots(x), x], "s": lf.Parameterize(jnp.exp, x), "n": None},
}
# Tolerances: the inverses are exact up to float32 rounding, amplified by the log of
# widths for knots and by exp/log for the exponential.
_TOL = {"rtol": 1e-4, "atol": 1e-5}
_FACTORY = st.sampled_from(sorted(_FACTORIES))


@FAST
@given(_FACTORY, _RAW, _RAW)
def test_put_get(name: str, raw: Any, other: Any) -> None:
    make = _FACTORIES[name]
    value = lf.unwrap(make(other))
    assert lt.trees_close(lf.unwrap(lf.rewrap(make(raw), value)), value, **_TOL)


@FAST
@given(_FACTORY, _RAW)
def test_get_put(name: str, raw: Any) -> None:
    tree = _FACTORIES[name](raw)
    out = lf.rewrap(tree, lf.unwrap(tree))
    assert _same_structure(out, tree)
    assert lt.trees_close(out, tree, **_TOL)


@FAST
@given(_FACTORY, _RAW, _RAW, _RAW)
def test_put_put(name: str, raw: Any, first: Any, second: Any) -> None:
    make = _FACTORIES[name]
    tree, v, w = make(raw), lf.unwrap(make(first)), lf.unwrap(make(second))
    twice, once = lf.rewrap(lf.rewrap(tree, v), w), lf.rewrap(tree, w)
    assert _same_structure(twice, once)
    assert lt.trees_close(twice, once, **_TOL)


# ------------------------------------------------- raw leaves keep shape and dtype


def test_unwrapped_set_of_a_scalar_keeps_the_stored_shape() -> None:
    model = {"s": lf.Parameterize(jnp.exp, jnp.zeros(2))}
    out = lf.at["s"].unwrapped().set(model, 3.0)
    assert out["s"].args[0].shape == (2,)
    np.testing.assert_allclose(lf.unwrap(out)["s"], [3.0, 3.0], rtol=1e-6)


def test_rewrap_refuses_a_transposed_weight_naming_the_path() -> None:
    tree = {"w": lf.WeightNormalization(jnp.ones((2, 3)))}
    with pytest.raises(lf.StructureMismatchError, match=r"at \['w'\]\.weight.*\(2, 3\)"):
        lf.rewrap(tree, {"w": jnp.ones((3, 2))})


def test_rewrap_refuses_a_plain_leaf_of_another_shape() -> None:
    with pytest.raises(lf.StructureMismatchError, match=r"at \['a'\].*shape \(2,\)"):
        lf.rewrap({"a": jnp.ones(2)}, {"a": jnp.ones(3)})


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.int32, jnp.float16])
def test_rewrap_casts_values_to_the_stored_dtype(dtype: Any) -> None:
    tree = lf.WeightNormalization(jnp.ones((2, 3)))
    out = lf.rewrap(tree, jnp.full((2, 3), 2, dtype))
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(out)} == {jnp.dtype(jnp.float32)}
    grad = jax.grad(lambda t: lf.unwrap(t).sum())(out)
    assert grad.weight.dtype == jnp.float32


def test_rewrap_keeps_a_numpy_leaf_numpy_and_its_dtype() -> None:
    out = lf.rewrap({"a": np.zeros(2, np.float64)}, {"a": jnp.ones(2, jnp.float32)})
    assert isinstance(out["a"], np.ndarray) and out["a"].dtype == np.float64


# ------------------------------------------------------- values outside the range


@pytest.mark.parametrize(
    ("fn", "value"),
    [
        (jax.nn.sigmoid, 1.0),
        (jax.nn.sigmoid, float("nan")),
        (jnp.exp, float("inf")),
        (jnp.exp, 0.0),
        (jax.nn.softplus, 0.0),
        (jnp.log, 100.0),
        (jax.scipy.special.logit, 20.0),
    ],
)
def test_rewrap_refuses_a_value_its_function_cannot_give_back(fn: Any, value: float) -> None:
    tree = {"p": lf.Parameterize(fn, jnp.full(2, 0.5))}
    with pytest.raises(ValueError, match=r"outside the range") as info:
        lf.rewrap(tree, {"p": jnp.array([0.5, value])})
    assert "['p']" in "".join(getattr(info.value, "__notes__", [])) + str(info.value)


def test_rewrap_under_jit_refuses_a_value_its_function_cannot_give_back() -> None:
    tree = lf.Parameterize(jax.nn.sigmoid, jnp.zeros(2))
    with pytest.raises(jax.errors.JaxRuntimeError, match="outside the range of sigmoid"):
        jax.block_until_ready(jax.jit(lf.rewrap)(tree, jnp.array([0.5, 1.0])))


def test_rewrap_refuses_a_weight_normalization_row_with_a_nan() -> None:
    tree = lf.WeightNormalization(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        lf.rewrap(tree, jnp.array([[1.0, jnp.nan, 1.0], [1.0, 1.0, 1.0]]))


def test_weight_normalization_of_rows_without_entries_says_so() -> None:
    with pytest.raises(ValueError, match=r"shape \(3, 0\).*no row has a direction"):
        lf.WeightNormalization(jnp.ones((3, 0)))


# ------------------------------------------------------------ with_value respected


class _Scaled(lf.AbstractUnwrappable):
    x: Any
    scale: float = lf.field(static=True)

    def unwrap(self) -> Any:
        return self.x * self.scale

    def with_value(self, value: Any) -> _Scaled:
        return _Scaled(value, scale=1.0)


def test_rewrap_keeps_the_static_fields_with_value_returns() -> None:
    out = lf.rewrap(_Scaled(jnp.ones(2), scale=2.0), jnp.array([3.0, 4.0]))
    assert out.scale == 1.0
    np.testing.assert_allclose(lf.unwrap(out), [3.0, 4.0])


def test_rewrap_under_jit_names_the_path_of_a_shared_wrapper() -> None:
    p = lf.Parameterize(jax.nn.sigmoid, jnp.zeros(2))
    good = jnp.array([0.5, 0.5])
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"at \['a'\]"):
        jax.block_until_ready(
            jax.jit(lf.rewrap)(
                {"a": p, "b": p, "c": p}, {"a": jnp.array([0.5, 1.0]), "b": good, "c": good}
            )
        )


def test_rewrap_with_wrapped_values_says_to_unwrap_them() -> None:
    model = {"a": lf.Parameterize(jnp.exp, jnp.zeros(2))}
    with pytest.raises(lf.StructureMismatchError, match=r"at \['a'\].*lf\.unwrap\(pretrained\)"):
        lf.rewrap(model, model)


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


@settings(max_examples=25)
@given(
    shape=st.sampled_from([(), (2,), (3,), (2, 3)]),
    dtype=st.sampled_from([jnp.float32, jnp.bfloat16, jnp.int32, jnp.float16]),
)
def test_law_rewrap_keeps_every_raw_leaf_shape_and_dtype(shape: Any, dtype: Any) -> None:
    tree = {"p": lf.Parameterize(jax.nn.softplus, jnp.zeros((2, 3))), "w": jnp.zeros((2, 3))}
    values = {"p": jnp.ones(shape, dtype), "w": jnp.ones(shape, dtype)}
    try:
        out = lf.rewrap(tree, values)
    except lf.StructureMismatchError as error:
        assert not _broadcasts_to(shape, (2, 3))
        assert "shape (2, 3)" in str(error)
        return
    assert _broadcasts_to(shape, (2, 3))
    for leaf in jax.tree_util.tree_leaves(out):
        assert leaf.shape == (2, 3) and leaf.dtype == jnp.float32


# ------------------------------------------------------- inverses in another argument


def _scaled(scale: Any, x: Any) -> Any:
    return scale * x


lf.register_inverse(_scaled, lambda value, scale, x: value / scale, argnum=1)


def test_register_inverse_argnum_inverts_that_argument_and_keeps_the_others() -> None:
    p = lf.Parameterize(_scaled, jnp.array(2.0), jnp.ones(2))
    out = lf.rewrap(p, jnp.array([4.0, 6.0]))
    assert out.args[0] is p.args[0]
    np.testing.assert_allclose(out.args[1], [2.0, 3.0])


def test_register_inverse_argnum_must_be_a_non_negative_int() -> None:
    for bad in (-1, 1.0, True, "1"):
        with pytest.raises(TypeError, match="argnum must be a non-negative int"):
            lf.register_inverse(_scaled, jnp.log, argnum=bad)  # type: ignore[arg-type]


def test_argnum_past_the_arguments_is_not_invertible() -> None:
    with pytest.raises(lf.NotInvertibleError, match="in argument 1, but it has 1 positional"):
        lf.rewrap(lf.Parameterize(_scaled, jnp.ones(2)), jnp.ones(2))


def test_where_sets_the_shown_entries_and_keeps_the_hidden_raw_ones() -> None:
    mask = jnp.array([[True, False], [True, True]])
    w = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    model = {"w": lf.Parameterize(jnp.where, mask, w, 0)}
    value = jnp.array([[10.0, 0.0], [30.0, 40.0]])
    for out in (lf.rewrap(model, {"w": value}), jax.jit(lf.rewrap)(model, {"w": value})):
        np.testing.assert_array_equal(out["w"].args[1], [[10.0, 2.0], [30.0, 40.0]])
        assert out["w"].args[0] is mask or np.array_equal(out["w"].args[0], mask)
        np.testing.assert_array_equal(lf.unwrap(out)["w"], value)


def test_where_refuses_a_value_the_mask_hides_naming_the_key_path() -> None:
    mask = jnp.array([True, False])
    model = {"w": lf.Parameterize(jnp.where, mask, jnp.ones(2), 0)}
    with pytest.raises(
        ValueError, match=r"outside the range of where \(1 position.*\(1,\)"
    ) as info:
        lf.rewrap(model, {"w": jnp.array([1.0, 5.0])})
    assert str(info.value).startswith("at ['w']: Parameterize: a value is outside")


def test_not_invertible_hint_never_points_at_a_mask() -> None:
    def masked_tanh(mask: Any, x: Any) -> Any:
        return jnp.where(mask, jnp.tanh(x), 0)

    p = lf.Parameterize(masked_tanh, jnp.array([True, False]), jnp.zeros(2))
    with pytest.raises(lf.NotInvertibleError) as info:
        lf.rewrap(p, jnp.zeros(2))
    message = str(info.value)
    assert "argnum=1" in message and "lf.at.args[1].set" in message
    assert "args[0]" not in message
    # Two float arguments: no position is guessed.
    two = lf.Parameterize(lambda a, b: a * b, jnp.ones(2), jnp.ones(2))
    with pytest.raises(lf.NotInvertibleError, match="argnum=k") as info:
        lf.rewrap(two, jnp.zeros(2))
    assert "args[0]" not in str(info.value) and "args[1]" not in str(info.value)


# ------------------------------------------------------------- register_with_value


class _Halved(lf.AbstractUnwrappable):
    x: jax.Array

    def unwrap(self) -> Any:
        return self.x / 2


class _Logged(lf.AbstractUnwrappable):
    x: jax.Array

    def unwrap(self) -> Any:
        return jnp.exp(self.x)


def test_a_class_without_with_value_is_not_invertible_until_registered() -> None:
    class Tripled(lf.AbstractUnwrappable):
        x: jax.Array

        def unwrap(self) -> Any:
            return 3 * self.x

    with pytest.raises(lf.NotInvertibleError, match="defines no with_value"):
        lf.rewrap(Tripled(jnp.ones(2)), jnp.ones(2))
    lf.register_with_value(Tripled, lambda w, value: type(w)(value / 3))
    out = lf.rewrap({"t": Tripled(jnp.ones(2))}, {"t": jnp.array([3.0, 6.0])})
    np.testing.assert_allclose(out["t"].x, [1.0, 2.0])

    class Sub(Tripled):
        pass

    np.testing.assert_allclose(lf.rewrap(Sub(jnp.ones(1)), jnp.array([9.0])).x, [3.0])


def test_register_with_value_keeps_shape_and_dtype_checks() -> None:
    lf.register_with_value(_Halved, lambda w, value: _Halved(2 * jnp.asarray(value)))
    model = {"h": _Halved(jnp.ones(2, jnp.float32))}
    out = lf.rewrap(model, {"h": np.array([1.0, 2.0], np.float64)})
    assert out["h"].x.dtype == jnp.float32
    with pytest.raises(lf.StructureMismatchError, match=r"^at \['h'\]\.x: .*shape \(2,\)"):
        lf.rewrap(model, {"h": jnp.ones(3)})


def test_register_with_value_refuses_a_non_finite_raw_value_naming_the_path() -> None:
    lf.register_with_value(_Logged, lambda w, value: _Logged(jnp.log(value)))
    model = {"a": [_Logged(jnp.zeros(2))]}
    out = lf.rewrap(model, {"a": [jnp.array([1.0, 2.0])]})
    np.testing.assert_allclose(out["a"][0].x, [0.0, np.log(2.0)], rtol=1e-6)
    with pytest.raises(ValueError, match=r"_Logged: a value is outside its range") as info:
        lf.rewrap(model, {"a": [jnp.array([1.0, -2.0])]})
    assert str(info.value).startswith("at ['a'][0]: _Logged: a value is outside its range")
    with pytest.raises(Exception, match=re.escape(str(info.value))):
        jax.block_until_ready(jax.jit(lf.rewrap)(model, {"a": [jnp.array([1.0, -2.0])]}))


def test_register_with_value_checks_its_arguments_and_the_returned_type() -> None:
    with pytest.raises(TypeError, match="needs a class"):
        lf.register_with_value(_Halved(jnp.ones(1)), lambda w, v: w)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a function"):
        lf.register_with_value(_Halved, 3)  # type: ignore[arg-type]

    class Odd(lf.AbstractUnwrappable):
        x: jax.Array

        def unwrap(self) -> Any:
            return self.x

    lf.register_with_value(Odd, lambda w, value: _Halved(value))
    with pytest.raises(TypeError, match="returned a _Halved; it must return a Odd"):
        lf.rewrap(Odd(jnp.ones(1)), jnp.ones(1))
