"""The built-in wrappers, ``unwrap``, ``contains_unwrappables`` and ``inv_softplus``."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import paramax
import pytest
from hypothesis import given, settings

import lensify as lf
import lensify.testing as lt

Pair = collections.namedtuple("Pair", ["first", "second"])


class Counted(lf.AbstractUnwrappable):
    """Counts its unwrap calls in a shared list."""

    x: Any
    calls: list[str] = lf.field(static=True)

    def unwrap(self) -> Any:
        self.calls.append("unwrap")
        return self.x


class Returns(lf.AbstractUnwrappable):
    """Unwraps to whatever ``make`` builds from ``x``: used for the totality of unwrap."""

    x: Any
    make: Callable[[Any], Any] = lf.field(static=True)

    def unwrap(self) -> Any:
        return self.make(self.x)


class Fails(lf.AbstractUnwrappable):
    x: Any

    def unwrap(self) -> Any:
        raise ValueError("Fails always fails")


def _assert_tree_close(a: Any, b: Any) -> None:
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-6)


# --- unwrap ---------------------------------------------------------------------------


def test_unwrap_innermost_first() -> None:
    order: list[str] = []

    def tag(name: str) -> Callable[[Any], Any]:
        def fn(x: Any) -> Any:
            order.append(name)
            return x

        return fn

    tree = lf.Parameterize(
        tag("outer"), lf.Parameterize(tag("middle"), lf.Parameterize(tag("inner"), 1.0))
    )
    assert lf.unwrap(tree) == 1.0
    assert order == ["inner", "middle", "outer"]


def test_unwrap_calls_each_wrapper_once() -> None:
    calls: list[str] = []
    inner = Counted(jnp.ones(2), calls)
    tree = {"a": Counted(inner, calls), "b": [Counted(1.0, calls), inner], "c": inner}
    lf.unwrap(tree)
    assert len(calls) == 5  # every occurrence of a wrapper node, each exactly once


def test_unwrap_is_total() -> None:
    tree = Returns(jnp.zeros(2), lambda x: {"w": lf.Parameterize(jnp.exp, x)})
    out = lf.unwrap(tree)
    assert not lf.contains_unwrappables(out)
    np.testing.assert_allclose(out["w"], np.ones(2))


def test_unwrap_total_when_a_wrapper_returns_a_wrapper() -> None:
    tree = Returns(2.0, lambda x: lf.Parameterize(jnp.square, lf.Parameterize(jnp.square, x)))
    assert lf.unwrap(tree) == 16.0


def test_unwrap_of_wrapper_free_tree_is_the_same_object() -> None:
    leaves = [jnp.ones(2), np.ones(3), 1.0, "s", None]
    tree = {"a": leaves, "b": (leaves[0], {"c": leaves[1]}), "d": Pair(1, leaves[0])}
    out = lf.unwrap(tree)
    assert out is tree
    assert all(
        x is y
        for x, y in zip(
            jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(tree), strict=True
        )
    )


def test_unwrap_keeps_untouched_leaves() -> None:
    x = jnp.ones(2)
    out = lf.unwrap({"x": x, "w": lf.Parameterize(jnp.exp, jnp.zeros(2))})
    assert out["x"] is x


@pytest.mark.parametrize("leaf", [None, 1, 2.5, "abc", jnp.ones(2), np.ones(2), ()])
def test_unwrap_of_a_leaf_or_empty_node(leaf: Any) -> None:
    assert lf.unwrap(leaf) is leaf


def test_unwrap_keeps_container_types() -> None:
    w = lf.Parameterize(jnp.exp, jnp.zeros(1))
    tree = Pair(
        first=collections.OrderedDict([("z", w), ("a", 1)]),
        second=(w, [w, None], {"k": w}),
    )
    out = lf.unwrap(tree)
    assert type(out) is Pair
    assert type(out.first) is collections.OrderedDict
    assert list(out.first) == ["z", "a"]
    assert type(out.second) is tuple
    assert type(out.second[1]) is list
    assert out.second[1][1] is None
    assert type(out.second[2]) is dict


def test_unwrap_none_passes_through() -> None:
    tree = {"a": None, "b": lf.Parameterize(lambda: None), "c": lf.NonTrainable(None)}
    assert lf.unwrap(tree) == {"a": None, "b": None, "c": None}


def test_unwrap_never_mutates_its_input() -> None:
    tree = {
        "a": [lf.Parameterize(jnp.exp, jnp.zeros(2)), 1.0],
        "b": lf.NonTrainable({"c": jnp.ones(1)}),
    }
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    inner, outer = tree["a"], tree["a"][0]
    lf.unwrap(tree)
    assert tree["a"] is inner and tree["a"][0] is outer and len(inner) == 2
    assert jax.tree_util.tree_structure(tree) == treedef
    assert all(x is y for x, y in zip(jax.tree_util.tree_leaves(tree), leaves, strict=True))


def test_unwrap_under_jit() -> None:
    tree = {"w": lf.Parameterize(jnp.exp, jnp.zeros(2)), "n": lf.NonTrainable(jnp.ones(2))}
    _assert_tree_close(jax.jit(lf.unwrap)(tree), lf.unwrap(tree))


def test_unwrap_under_grad() -> None:
    def loss(x: jax.Array) -> jax.Array:
        return lf.unwrap(lf.Parameterize(jnp.exp, x)).sum()

    np.testing.assert_allclose(jax.grad(loss)(jnp.zeros(3)), np.ones(3))


def test_unwrap_under_vmap() -> None:
    out = jax.vmap(lambda x: lf.unwrap(lf.Parameterize(jnp.square, x)))(jnp.arange(3.0))
    np.testing.assert_allclose(out, [0.0, 1.0, 4.0])


def test_unwrap_under_hessian() -> None:
    def f(x: jax.Array) -> jax.Array:
        return lf.unwrap(lf.Parameterize(jnp.exp, x)).sum()

    np.testing.assert_allclose(jax.hessian(f)(jnp.zeros(2)), np.eye(2))


def test_unwrap_error_names_the_key_path() -> None:
    with pytest.raises(ValueError, match="always fails") as info:
        lf.unwrap({"a": [1.0, {"b": Fails(1.0)}]})
    assert info.value.__notes__ == ["at ['a'][1]['b']: raised while unwrapping Fails"]


def test_unwrap_error_inside_a_wrapper_field() -> None:
    with pytest.raises(ValueError) as info:
        lf.unwrap(Pair(0, lf.Parameterize(jnp.exp, Fails(1.0))))
    assert info.value.__notes__ == ["at .second.args[0]: raised while unwrapping Fails"]


def test_unwrap_error_at_the_root() -> None:
    with pytest.raises(ValueError) as info:
        lf.unwrap(Fails(1.0))
    assert info.value.__notes__ == ["at <root>: raised while unwrapping Fails"]


def test_unwrap_error_notes_once_when_raised_again() -> None:
    tree = {"a": Fails(1.0)}
    for _ in range(2):
        with pytest.raises(ValueError) as info:
            lf.unwrap(tree)
        assert len(info.value.__notes__) == 1


def test_contains_unwrappables() -> None:
    assert lf.contains_unwrappables([1.0, {"a": lf.NonTrainable(1.0)}])
    assert lf.contains_unwrappables(lf.Parameterize(jnp.exp, 1.0))
    assert not lf.contains_unwrappables({"a": jnp.ones(2), "b": None})
    assert not lf.contains_unwrappables(None)


def test_is_unwrappable() -> None:
    assert lf.is_unwrappable(lf.NonTrainable(1.0))
    assert not lf.is_unwrappable(1.0)
    assert not lf.is_unwrappable(lf.Parameterize)


# --- Parameterize ---------------------------------------------------------------------


def test_parameterize_fields() -> None:
    p = lf.Parameterize(jnp.clip, jnp.ones(2), min=0.0)
    assert p.fn is jnp.clip
    assert type(p.args) is tuple and len(p.args) == 1
    assert p.kwargs == {"min": 0.0}


def test_parameterize_args_and_kwargs() -> None:
    p = lf.Parameterize(jnp.clip, jnp.array([-1.0, 0.5, 2.0]), min=0.0, max=1.0)
    np.testing.assert_allclose(lf.unwrap(p), [0.0, 0.5, 1.0])


def test_parameterize_plain_function_is_in_the_structure() -> None:
    p = lf.Parameterize(jnp.exp, jnp.zeros(2))
    assert len(jax.tree_util.tree_leaves(p)) == 1
    np.testing.assert_allclose(jax.jit(lf.unwrap)(p), np.ones(2))


def test_parameterize_plain_jax_grad() -> None:
    p = lf.Parameterize(jnp.exp, jnp.zeros(2))
    grads = jax.grad(lambda t: lf.unwrap(t).sum())(p)
    assert type(grads) is lf.Parameterize
    np.testing.assert_allclose(grads.args[0], np.ones(2))


def test_parameterize_with_lambda_and_jit_function() -> None:
    for fn in (lambda x: x + 1, jax.jit(lambda x: x + 1)):
        np.testing.assert_allclose(
            jax.jit(lf.unwrap)(lf.Parameterize(fn, jnp.zeros(2))), np.ones(2)
        )


def test_parameterize_with_module_as_fn() -> None:
    linear = eqx.nn.Linear(2, 3, key=jax.random.key(0))
    p = lf.Parameterize(linear, jnp.ones(2))
    assert len(jax.tree_util.tree_leaves(p)) == 3  # weight, bias, input

    grads = jax.grad(lambda t: lf.unwrap(t).sum())(p)
    assert type(grads.fn) is eqx.nn.Linear
    np.testing.assert_allclose(grads.fn.weight, np.ones((3, 2)))
    np.testing.assert_allclose(grads.fn.bias, np.ones(3))


def test_parameterize_with_partial_as_fn() -> None:
    fn = jax.tree_util.Partial(jnp.multiply, jnp.array(3.0))
    p = lf.Parameterize(fn, jnp.ones(2))
    grads = jax.grad(lambda t: lf.unwrap(t).sum())(p)
    np.testing.assert_allclose(grads.fn.args[0], 2.0)


def test_parameterize_non_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="callable"):
        lf.Parameterize(jnp.ones(2))  # type: ignore[arg-type]


def test_parameterize_repr_names_the_function() -> None:
    assert repr(lf.Parameterize(jnp.exp, 1.0)) == "Parameterize(exp, 1.0)"


# --- NonTrainable and non_trainable ---------------------------------------------------


def test_non_trainable_stops_gradient_on_every_array_leaf() -> None:
    def loss(params: dict[str, Any]) -> jax.Array:
        frozen = lf.unwrap(lf.NonTrainable(params))
        return sum(jnp.sum(v) for v in jax.tree_util.tree_leaves(frozen))

    params = {"a": jnp.ones(2), "b": lf.Parameterize(jnp.exp, jnp.zeros(2))}
    grads = jax.grad(loss)(params)
    np.testing.assert_array_equal(grads["a"], np.zeros(2))
    np.testing.assert_array_equal(grads["b"].args[0], np.zeros(2))


def test_non_trainable_unwraps_nested_wrappers_first() -> None:
    out = lf.unwrap(lf.NonTrainable({"w": lf.Parameterize(jnp.exp, jnp.zeros(2))}))
    np.testing.assert_allclose(out["w"], np.ones(2))


def test_non_trainable_numpy_leaves() -> None:
    out = lf.unwrap(lf.NonTrainable({"n": np.ones(2), "s": np.float32(2.0)}))
    assert isinstance(out["n"], jax.Array)
    np.testing.assert_array_equal(out["n"], np.ones(2))
    assert out["s"] == 2.0


def test_non_trainable_leaves_python_values_alone() -> None:
    marker = object()
    tree = {"f": 1.5, "i": 3, "s": "text", "n": None, "o": marker}
    out = lf.unwrap(lf.NonTrainable(tree))
    assert out == tree
    assert out["o"] is marker


@settings(max_examples=15, deadline=None)
@given(lt.float_arrays([(2,), (3,)], nonzero=True))
def test_non_trainable_first_and_second_derivatives_are_zero(x: jax.Array) -> None:
    def f(x: jax.Array) -> jax.Array:
        return jnp.sum(lf.unwrap(lf.NonTrainable(x)) ** 3)

    np.testing.assert_array_equal(jax.grad(f)(x), np.zeros(x.shape))
    np.testing.assert_array_equal(jax.hessian(f)(x), np.zeros(x.shape * 2))


def test_non_trainable_of_non_trainable_is_non_trainable() -> None:
    def f(x: jax.Array, wrap: Callable[[Any], Any]) -> jax.Array:
        return jnp.sum(lf.unwrap(wrap(x)) ** 2) + jnp.sum(x)

    once = jax.grad(lambda x: f(x, lf.NonTrainable))(jnp.ones(2))
    twice = jax.grad(lambda x: f(x, lambda v: lf.NonTrainable(lf.NonTrainable(v))))(jnp.ones(2))
    np.testing.assert_array_equal(once, twice)


def test_non_trainable_function_wraps_inexact_array_leaves() -> None:
    tree = {
        "f32": jnp.ones(2),
        "c64": jnp.ones(2, jnp.complex64),
        "np": np.ones(2),
        "np_scalar": np.float32(1.0),
        "int": jnp.arange(2),
        "np_int": np.arange(2),
        "bool": jnp.ones(2, bool),
        "py_float": 1.0,
        "py_int": 1,
    }
    frozen = lf.non_trainable(tree)
    wrapped = {k for k, v in frozen.items() if type(v) is lf.NonTrainable}
    assert wrapped == {"f32", "c64", "np", "np_scalar"}
    assert frozen["f32"].tree is tree["f32"]


def test_non_trainable_function_never_wraps_twice() -> None:
    once = lf.non_trainable({"a": jnp.ones(2), "b": lf.NonTrainable(jnp.ones(2))})
    assert type(once["b"].tree) is not lf.NonTrainable
    twice = lf.non_trainable(once)
    assert twice == once


def test_non_trainable_function_reaches_into_wrappers() -> None:
    frozen = lf.non_trainable({"p": lf.Parameterize(jnp.exp, jnp.zeros(2))})
    assert type(frozen["p"]) is lf.Parameterize
    assert type(frozen["p"].args[0]) is lf.NonTrainable
    grads = jax.grad(lambda t: lf.unwrap(t)["p"].sum())(frozen)
    np.testing.assert_array_equal(grads["p"].args[0].tree, np.zeros(2))


# --- WeightNormalization --------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(lt.float_arrays([(3,), (1, 2), (4, 3), (2, 3, 2)], nonzero=True))
def test_weight_normalization_is_the_identity_at_construction(w: jax.Array) -> None:
    np.testing.assert_allclose(lf.unwrap(lf.WeightNormalization(w)), w, rtol=1e-5, atol=1e-6)


def test_weight_normalization_row_norms_equal_scale() -> None:
    w = jax.random.normal(jax.random.key(1), (4, 3))
    wn = lf.WeightNormalization(w)
    wn = jax.tree_util.tree_map(lambda x: x + 0.5, wn)  # move away from the initial scale
    out = lf.unwrap(wn)
    np.testing.assert_allclose(
        jnp.linalg.norm(out, axis=-1, keepdims=True), lf.unwrap(wn.scale), rtol=1e-5
    )


@pytest.mark.parametrize("shape", [(3,), (4, 3), (2, 4, 3)])
def test_weight_normalization_scale_shape(shape: tuple[int, ...]) -> None:
    wn = lf.WeightNormalization(jnp.ones(shape))
    assert lf.unwrap(wn.scale).shape == (*shape[:-1], 1)
    assert type(wn.scale) is lf.Parameterize


def test_weight_normalization_zero_row_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="row of zeros"):
        lf.WeightNormalization(jnp.array([[1.0, 2.0], [0.0, 0.0]]))


def test_weight_normalization_zero_d_weight_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="at least one axis"):
        lf.WeightNormalization(jnp.array(1.0))


def test_weight_normalization_of_a_wrapped_weight() -> None:
    raw = jnp.array([[0.0, 1.0], [1.0, 0.5]])
    wn = lf.WeightNormalization(lf.Parameterize(jnp.exp, raw))
    np.testing.assert_allclose(lf.unwrap(wn), jnp.exp(raw), rtol=1e-5)
    grads = jax.grad(lambda t: lf.unwrap(t).sum())(wn)
    assert type(grads.weight) is lf.Parameterize


# --- RealToIncreasingOnInterval -------------------------------------------------------

_CONFIGS = [
    ((0.0, 1.0), 0.1, "both", (4,)),
    ((-2.0, 3.0), 0.5, "neither", (5,)),
    ((1.0, 2.0), 0.01, "lower", (3, 6)),
    ((-1.0, 1.0), 0.2, "upper", (2, 3, 4)),
    ((0, 10), 1, "both", (10,)),
]


@pytest.mark.parametrize(("interval", "min_width", "endpoints", "shape"), _CONFIGS)
def test_real_to_increasing_matches_paramax(
    interval: tuple[float, float], min_width: float, endpoints: Any, shape: tuple[int, ...]
) -> None:
    arr = jax.random.normal(jax.random.key(2), shape)
    ours = lf.unwrap(
        lf.RealToIncreasingOnInterval(
            arr, interval, min_width=min_width, include_endpoints=endpoints
        )
    )
    theirs = paramax.unwrap(
        paramax.RealToIncreasingOnInterval(
            arr, interval, min_width=min_width, include_endpoints=endpoints
        )
    )
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert bool(jnp.all(jnp.diff(ours, axis=-1) >= min_width * (1 - 1e-5)))


def test_real_to_increasing_reversed_interval() -> None:
    with pytest.raises(ValueError, match="lower < upper"):
        lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (1.0, 0.0), min_width=0.1, include_endpoints="both"
        )


def test_real_to_increasing_unsatisfiable_width() -> None:
    with pytest.raises(ValueError, match="cannot be satisfied"):
        lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (0.0, 1.0), min_width=0.5, include_endpoints="both"
        )


@pytest.mark.parametrize("min_width", [0.0, -0.1])
def test_real_to_increasing_non_positive_width(min_width: float) -> None:
    with pytest.raises(ValueError, match="min_width must be positive"):
        lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (0.0, 1.0), min_width=min_width, include_endpoints="both"
        )


def test_real_to_increasing_unknown_endpoint() -> None:
    with pytest.raises(ValueError, match="include_endpoints"):
        lf.RealToIncreasingOnInterval(
            jnp.zeros(3),
            (0.0, 1.0),
            min_width=0.1,
            include_endpoints="left",  # type: ignore[arg-type]
        )


def test_real_to_increasing_settings_are_static() -> None:
    knots = lf.RealToIncreasingOnInterval(
        jnp.zeros(3), (0, 1), min_width=0.1, include_endpoints="both"
    )
    assert jax.tree_util.tree_leaves(knots) == [knots.arr]


# --- inv_softplus ---------------------------------------------------------------------


def test_inv_softplus_inverts_softplus() -> None:
    x = jnp.array([1e-3, 0.5, 1.0, 20.0, 100.0])
    np.testing.assert_allclose(jax.nn.softplus(lf.inv_softplus(x)), x, rtol=1e-5)


def test_inv_softplus_of_zero_is_minus_inf() -> None:
    assert lf.inv_softplus(0.0) == -jnp.inf
    assert lf.inv_softplus(jnp.zeros(2)).tolist() == [-np.inf, -np.inf]


def test_inv_softplus_of_int_input_is_float() -> None:
    assert jnp.issubdtype(lf.inv_softplus(1).dtype, jnp.floating)


@pytest.mark.parametrize("x", [-1.0, np.array([1.0, -2.0]), jnp.array([-0.5])])
def test_inv_softplus_negative_is_a_value_error(x: Any) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        lf.inv_softplus(x)


def test_inv_softplus_negative_under_jit() -> None:
    with pytest.raises(jax.errors.JaxRuntimeError, match="inv_softplus expects non-negative"):
        jax.jit(lf.inv_softplus)(jnp.array(-1.0)).block_until_ready()


def test_inv_softplus_negative_under_vmap() -> None:
    with pytest.raises(jax.errors.JaxRuntimeError, match="inv_softplus expects non-negative"):
        jax.vmap(lf.inv_softplus)(jnp.array([1.0, -1.0])).block_until_ready()


def test_inv_softplus_valid_under_jit_and_vmap() -> None:
    x = jnp.array([0.5, 2.0])
    np.testing.assert_allclose(jax.jit(lf.inv_softplus)(x), lf.inv_softplus(x), rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(lf.inv_softplus)(x), lf.inv_softplus(x), rtol=1e-6)


def test_inv_softplus_is_differentiable() -> None:
    x = jnp.array(1.0)
    expected = 1 / jax.nn.sigmoid(lf.inv_softplus(x))  # inverse function theorem
    np.testing.assert_allclose(jax.grad(lf.inv_softplus)(x), expected, rtol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.grad(lf.inv_softplus))(x), expected, rtol=1e-5)


# --- construction under vmap ----------------------------------------------------------

_FACTORIES: dict[str, Callable[[jax.Array], Any]] = {
    "Parameterize": lambda x: lf.Parameterize(jnp.exp, x),
    "Parameterize(diag)": lambda x: lf.Parameterize(jnp.diag, x),
    "NonTrainable": lambda x: lf.NonTrainable({"x": x, "s": 1.0}),
    "WeightNormalization": lambda x: lf.WeightNormalization(jnp.stack([x + 1.0, x - 2.0])),
    "RealToIncreasingOnInterval": lambda x: lf.RealToIncreasingOnInterval(
        x, (0.0, 1.0), min_width=0.05, include_endpoints="both"
    ),
}


@pytest.mark.parametrize("batch", [(), (2,), (5, 2, 4)], ids=str)
@pytest.mark.parametrize("name", list(_FACTORIES))
def test_construction_under_vmap(name: str, batch: tuple[int, ...]) -> None:
    factory = _FACTORIES[name]
    x = jax.random.normal(jax.random.key(3), (*batch, 3))
    build: Callable[[jax.Array], Any] = factory
    unwrap_batched: Callable[[Any], Any] = lf.unwrap
    for _ in batch:
        build = jax.vmap(build)
        unwrap_batched = jax.vmap(unwrap_batched)
    batched = unwrap_batched(build(x))
    first = (0,) * len(batch)
    at_first = jax.tree_util.tree_map(lambda v: v[first] if np.ndim(v) else v, batched)
    _assert_tree_close(at_first, lf.unwrap(factory(x[first])))


def test_non_trainable_freezes_bfloat16_and_float8_leaves() -> None:
    tree = {"bf16": jnp.ones(2, jnp.bfloat16), "f8": jnp.ones(2, jnp.float8_e4m3fn)}
    frozen = lf.non_trainable(tree)
    assert type(frozen["bf16"]) is lf.NonTrainable
    assert type(frozen["f8"]) is lf.NonTrainable


# --- wrappers as functions, odd leaves and user subclasses ---------------------------


def test_parameterize_accepts_a_wrapper_as_fn() -> None:
    linear = eqx.nn.Linear(2, 3, key=jax.random.key(0))
    x = jnp.array([1.0, -2.0])
    wrapper = lf.Parameterize(lf.NonTrainable(linear), x)
    np.testing.assert_allclose(lf.unwrap(wrapper), linear(x), rtol=1e-6)
    theirs = paramax.unwrap(paramax.Parameterize(paramax.NonTrainable(linear), x))
    np.testing.assert_allclose(lf.unwrap(wrapper), theirs, rtol=1e-6)


def test_wrapped_fn_is_unwrapped_first() -> None:
    linear = eqx.nn.Linear(2, 3, key=jax.random.key(0))
    x = jnp.array([1.0, -2.0])
    grads = jax.grad(lambda t: lf.unwrap(t).sum())(lf.Parameterize(lf.NonTrainable(linear), x))
    assert not np.any(np.asarray(grads.fn.tree.weight))
    np.testing.assert_allclose(grads.args[0], linear.weight.sum(axis=0), rtol=1e-6)


def test_non_callable_fn_error_does_not_suggest_a_wrapper_as_argument() -> None:
    with pytest.raises(TypeError, match="callable") as info:
        lf.Parameterize(3.0, jnp.ones(2))  # type: ignore[arg-type]
    assert "wrapper" in str(info.value)


def test_real_to_increasing_with_traced_bounds() -> None:
    @eqx.filter_jit
    def knots(lower: jax.Array, upper: jax.Array) -> jax.Array:
        wrapper = lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (lower, upper), min_width=0.1, include_endpoints="both"
        )
        return lf.unwrap(wrapper)

    out = knots(jnp.array(0.0), jnp.array(3.0))
    np.testing.assert_allclose(out, [0.0, 1.0, 2.0, 3.0], rtol=1e-6, atol=1e-6)


def test_real_to_increasing_traced_bounds_are_checked_at_run_time() -> None:
    @jax.jit
    def knots(lower: jax.Array, upper: jax.Array) -> jax.Array:
        wrapper = lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (lower, upper), min_width=0.1, include_endpoints="both"
        )
        return lf.unwrap(wrapper)

    with pytest.raises(Exception, match="lower < upper"):
        jax.block_until_ready(knots(jnp.array(1.0), jnp.array(0.0)))


def test_weight_normalization_float16_row_norm_overflow() -> None:
    w = jnp.full((1, 1024), 8.0, jnp.float16)
    out = lf.unwrap(lf.WeightNormalization(w))
    assert out.dtype == jnp.float16
    assert bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_allclose(np.asarray(out, np.float32), 8.0, rtol=1e-2)


def _tril_below_diagonal() -> lf.Parameterize[jax.Array]:
    return lf.Parameterize(jnp.tril, jnp.ones((3, 3)), k=-1)


def test_parameterize_keyword_int_is_structure_not_a_leaf() -> None:
    p = _tril_below_diagonal()
    assert jax.tree_util.tree_leaves(p) == [p.args[0]]
    assert jax.tree_util.tree_structure(p) != jax.tree_util.tree_structure(
        lf.Parameterize(jnp.tril, jnp.ones((3, 3)), k=0)
    )


def test_parameterize_keyword_int_works_under_plain_jit_and_grad() -> None:
    p = _tril_below_diagonal()
    expected = jnp.tril(jnp.ones((3, 3)), k=-1)
    assert jnp.array_equal(jax.jit(lf.unwrap)(p), expected)
    grad = jax.grad(lambda t: lf.unwrap(t).sum())(p)
    assert jnp.array_equal(grad.args[0], expected)
    assert grad.kwargs == {"k": -1}


def test_parameterize_keyword_int_survives_an_sgd_step_and_eval_shape() -> None:
    p = _tril_below_diagonal()
    grad = jax.grad(lambda t: lf.unwrap(t).sum())(p)
    stepped = jax.tree_util.tree_map(lambda w, g: w - 0.1 * g, p, grad)
    assert stepped.kwargs == {"k": -1}
    assert jnp.allclose(lf.unwrap(stepped), 0.9 * jnp.tril(jnp.ones((3, 3)), k=-1))
    abstract = jax.eval_shape(lambda: p)
    assert abstract.kwargs == {"k": -1}
    assert abstract.args[0].shape == (3, 3)


def test_parameterize_positional_config_after_the_first_is_structure() -> None:
    p = lf.Parameterize(jnp.sum, jnp.ones((2, 3)), 1)
    assert jax.tree_util.tree_leaves(p) == [p.args[0]]
    assert jnp.array_equal(jax.jit(lf.unwrap)(p), jnp.full(2, 3.0))


def test_parameterize_first_argument_and_float_arguments_stay_leaves() -> None:
    p = lf.Parameterize(jnp.clip, jnp.ones(3), 0.0, 1.0)
    assert len(jax.tree_util.tree_leaves(p)) == 3
    assert jax.tree_util.tree_leaves(lf.Parameterize(jnp.negative, 3)) == [3]


def test_parameterize_mask_tree_keeps_the_structure_of_its_config() -> None:
    # A bool where a float leaf was is a mask entry, not configuration.
    p = lf.Parameterize(jnp.clip, jnp.ones(3), 0.0, 1.0, dtype=None)
    mask = jax.tree_util.tree_map(lambda _: True, p)
    assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(p)
    q = _tril_below_diagonal()
    mask = lf.at.mask(q)
    assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(q)


def test_replace_decides_parameterize_config_from_the_new_values() -> None:
    p = lf.replace(_tril_below_diagonal(), kwargs={"k": 0})
    assert jax.tree_util.tree_leaves(p) == [p.args[0]]
    assert jnp.array_equal(jax.jit(lf.unwrap)(p), jnp.tril(jnp.ones((3, 3))))
