"""``optic.unwrapped()``: reading and writing values through the wrappers that hold them.

The wrappers here invert their own ``unwrap`` with ``with_value``, so every case
stands on its own: ``Scaled`` multiplies (each leaf) by a static factor, ``Exp`` exponentiates
(and refuses a value outside its support, as a constraint does).
"""

from __future__ import annotations

import pickle
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lensify as lf
from lensify import tree_equal


class Scaled(lf.AbstractUnwrappable):
    x: Any
    k: float = lf.field(static=True, default=2.0)

    def unwrap(self) -> Any:
        return jax.tree_util.tree_map(lambda v: v * self.k, self.x)

    def with_value(self, value: Any) -> Scaled:
        return Scaled(jax.tree_util.tree_map(lambda v: v / self.k, value), self.k)


WITH_VALUE_CALLS: list[str] = []


class Exp(lf.AbstractUnwrappable):
    raw: Any

    def unwrap(self) -> Any:
        return jnp.exp(self.raw)

    def with_value(self, value: Any) -> Exp:
        WITH_VALUE_CALLS.append("Exp")
        concrete = not isinstance(value, jax.core.Tracer)
        if concrete and np.any(np.asarray(value) <= 0):
            raise ValueError(f"Exp needs a positive value, got {value}")
        return Exp(jnp.log(value))


class Fixed(lf.AbstractUnwrappable):
    """A wrapper that cannot be inverted."""

    x: Any

    def unwrap(self) -> Any:
        return self.x + 1

    def with_value(self, value: Any) -> Fixed:
        raise TypeError("Fixed cannot be inverted")


def _model() -> dict[str, Any]:
    return {
        "enc": {"w": Scaled(Exp(jnp.zeros(2)), 3.0), "b": jnp.ones(2)},
        "layers": [{"w": Exp(jnp.zeros(3)), "b": jnp.zeros(3)} for _ in range(2)],
        "scale": Exp(jnp.array(0.0)),
    }


def _close(a: Any, b: Any) -> bool:
    same = jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    return same and all(
        np.allclose(x, y, rtol=1e-5, atol=1e-6)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


# -------------------------------------------------------------------- get and set


def test_get_is_the_unwrapped_value_of_the_focus() -> None:
    model = _model()
    assert float(lf.at["scale"].unwrapped().get(model)) == 1.0
    assert np.allclose(lf.at["enc"]["w"].unwrapped().get(model), 3.0)
    assert tree_equal(lf.at["enc"].unwrapped().get(model), lf.unwrap(model["enc"]))


def test_set_keeps_the_wrapper_stack_and_its_static_fields() -> None:
    model = _model()
    new = lf.at["enc"]["w"].unwrapped().set(model, jnp.array([6.0, 0.3]))
    w = new["enc"]["w"]
    assert type(w) is Scaled and type(w.x) is Exp and w.k == 3.0
    assert np.allclose(w.x.raw, np.log([2.0, 0.1]))
    assert np.allclose(lf.unwrap(new)["enc"]["w"], [6.0, 0.3])


def test_set_on_a_whole_sub_model() -> None:
    model = _model()
    values = {"w": jnp.array([3.0, 6.0]), "b": jnp.zeros(2)}
    new = lf.at["enc"].unwrapped().set(model, values)
    assert type(new["enc"]["w"]) is Scaled
    assert tree_equal(lf.unwrap(new["enc"]), values) or _close(lf.unwrap(new["enc"]), values)
    assert new["layers"] is model["layers"]


def test_modify_after_each() -> None:
    model = _model()
    doubled = lf.at["layers"].each()["w"].unwrapped().modify(model, lambda v: 2 * v)
    for layer in doubled["layers"]:
        assert type(layer["w"]) is Exp
        assert np.allclose(lf.unwrap(layer["w"]), 2.0)


def test_get_all_after_each() -> None:
    values = lf.at["layers"].each()["w"].unwrapped().get_all(_model())
    assert len(values) == 2 and all(np.allclose(v, 1.0) for v in values)


def test_a_leaf_outside_any_wrapper_is_simply_replaced() -> None:
    model = _model()
    new = lf.at["enc"]["b"].unwrapped().set(model, jnp.full(2, 5.0))
    assert np.allclose(new["enc"]["b"], 5.0)


def test_set_touches_only_the_stack_of_the_focus() -> None:
    model = {"layers": [{"w": Exp(jnp.zeros(1))} for _ in range(50)]}
    WITH_VALUE_CALLS.clear()
    new = lf.at["layers"][7]["w"].unwrapped().set(model, jnp.array([2.0]))
    assert WITH_VALUE_CALLS == ["Exp"]
    kept = [i for i in range(50) if new["layers"][i] is model["layers"][i]]
    assert kept == [i for i in range(50) if i != 7]


def test_steps_after_unwrapped_act_on_the_value() -> None:
    model = {"pair": Scaled((jnp.array(1.0), jnp.array(2.0)), 2.0)}
    first = lf.at["pair"].unwrapped()[0]
    assert float(first.get(model)) == 2.0
    new = first.set(model, jnp.array(10.0))
    assert type(new["pair"]) is Scaled
    assert np.allclose(new["pair"].x[0], 5.0) and np.allclose(new["pair"].x[1], 2.0)


def test_under_jit() -> None:
    optic = lf.at["scale"].unwrapped()

    @jax.jit
    def reset(model: Any) -> Any:
        return optic.set(model, jnp.array(4.0))

    new = reset(_model())
    assert type(new["scale"]) is Exp
    assert np.allclose(new["scale"].raw, np.log(4.0))


def test_under_grad() -> None:
    def loss(value: jax.Array) -> jax.Array:
        model = lf.at["scale"].unwrapped().set(_model(), value)
        return lf.unwrap(model)["scale"] * 3.0

    assert np.allclose(jax.grad(loss)(jnp.array(2.0)), 3.0)


# ------------------------------------------------------------- a value, as a step


def test_repr_equality_and_pickle() -> None:
    optic = lf.at.layers.each().weight.unwrapped()
    assert repr(optic) == "lf.at.layers.each().weight.unwrapped()"
    assert optic == lf.at.layers.each().weight.unwrapped()
    assert hash(optic) == hash(lf.at.layers.each().weight.unwrapped())
    assert optic != lf.at.layers.each().weight
    assert pickle.loads(pickle.dumps(optic)) == optic
    assert repr(lf.at.unwrapped()["a"]) == "lf.at.unwrapped()['a']"


def test_paths_and_mask_name_the_stored_subtree() -> None:
    model = _model()
    optic = lf.at["enc"]["w"].unwrapped()
    assert optic.paths(model) == lf.at["enc"]["w"].paths(model)
    assert tree_equal(optic.mask(model), lf.at["enc"]["w"].mask(model))
    inside, _ = optic.partition(model)
    assert tree_equal(inside["enc"]["w"], model["enc"]["w"])


def test_foci_inside_a_value_have_the_path_of_the_stored_subtree() -> None:
    model = {"pair": Scaled((jnp.array(1.0), jnp.array(2.0)), 2.0), "b": jnp.ones(1)}
    optic = lf.at["pair"].unwrapped().each()
    assert optic.paths(model) == [(jax.tree_util.DictKey("pair"),)] * 2
    assert optic.mask(model) == {"b": False, "pair": Scaled((True, True), 2.0)}


def test_non_trainable_where_an_unwrapped_optic_freezes_the_raw_leaves_of_the_stack() -> None:
    model = _model()
    frozen = lf.non_trainable(model, where=lf.at["scale"].unwrapped())
    assert type(frozen["scale"]) is Exp and isinstance(frozen["scale"].raw, lf.NonTrainable)
    assert frozen["enc"] is model["enc"] or tree_equal(frozen["enc"], model["enc"])


def test_union_of_unwrapped_optics_writes_each_through_its_wrappers() -> None:
    model = _model()
    both = lf.at["scale"].unwrapped() | lf.at["layers"][0]["w"].unwrapped()
    assert [np.shape(v) for v in both.get_all(model)] == [(3,), ()]  # flatten order
    new = both.modify(model, lambda v: v * 2)
    assert type(new["scale"]) is Exp and np.allclose(lf.unwrap(new["scale"]), 2.0)
    assert np.allclose(lf.unwrap(new["layers"][0]["w"]), 2.0)
    assert new["layers"][1] is model["layers"][1]


def test_two_parts_of_one_value_overlap_in_a_union() -> None:
    model = {"pair": Scaled((jnp.array(1.0), jnp.array(2.0)), 2.0)}
    with pytest.raises(lf.OverlapError, match=r"\['pair'\]"):
        (lf.at["pair"].unwrapped()[0] | lf.at["pair"].unwrapped()[1]).set(model, 0.0)


# ------------------------------------------------------------------------ errors


def test_an_error_of_with_value_names_the_path_of_the_focus() -> None:
    with pytest.raises(ValueError, match="positive") as info:
        lf.at["layers"][1]["w"].unwrapped().set(_model(), jnp.array([1.0, -1.0, 1.0]))
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "['layers'][1]['w']" in notes


def test_an_error_inside_a_sub_model_names_the_focus_and_the_path_below() -> None:
    model = _model()
    values = {"w": jnp.array([3.0, -6.0]), "b": jnp.zeros(2)}
    with pytest.raises(ValueError, match="positive") as info:
        lf.at["enc"].unwrapped().set(model, values)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "['enc']" in notes and "['w']" in notes


def test_an_error_under_a_traversal_names_the_focus_it_came_from() -> None:
    with pytest.raises(ValueError) as info:
        lf.at["layers"].each()["w"].unwrapped().modify(_model(), lambda v: v - 1.0 - v)
    assert "['layers'][0]['w']" in " ".join(getattr(info.value, "__notes__", []))


def test_a_wrapper_that_cannot_be_inverted() -> None:
    model = {"a": Fixed(jnp.ones(1))}
    with pytest.raises(TypeError, match="cannot be inverted") as info:
        lf.at["a"].unwrapped().set(model, jnp.zeros(1))
    assert "['a']" in " ".join(getattr(info.value, "__notes__", []))
    assert np.allclose(lf.at["a"].unwrapped().get(model), 2.0)  # reading still works


def test_an_error_of_unwrap_names_the_path_of_the_focus() -> None:
    class Broken(lf.AbstractUnwrappable):
        x: Any

        def unwrap(self) -> Any:
            raise RuntimeError("cannot unwrap")

    with pytest.raises(RuntimeError, match="cannot unwrap") as info:
        lf.at["b"].unwrapped().get({"b": Broken(1.0)})
    assert "['b']" in " ".join(getattr(info.value, "__notes__", []))


def test_a_missing_step_before_unwrapped_is_a_missing_step() -> None:
    with pytest.raises(lf.MissingStepError, match="'nope'"):
        lf.at["nope"].unwrapped().get(_model())


# ---------------------------------------------------------------- built-in wrappers


def _builtin_model() -> dict[str, Any]:
    return {
        "w": lf.WeightNormalization(jnp.arange(1.0, 7.0).reshape(2, 3)),
        "scale": lf.Parameterize(jax.nn.softplus, lf.NonTrainable(jnp.array(0.5))),
        "b": lf.NonTrainable(jnp.zeros(2)),
    }


def test_a_non_trainable_inside_a_parameterize_stays_inside() -> None:
    new = lf.at["scale"].unwrapped().set(_builtin_model(), jnp.array(2.0))
    assert type(new["scale"]) is lf.Parameterize and new["scale"].fn is jax.nn.softplus
    assert type(new["scale"].args[0]) is lf.NonTrainable
    assert np.allclose(lf.unwrap(new)["scale"], 2.0)


def test_weight_normalization_set_by_its_weight() -> None:
    weight = jnp.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])
    new = lf.at["w"].unwrapped().set(_builtin_model(), weight)
    assert type(new["w"]) is lf.WeightNormalization
    assert np.allclose(lf.unwrap(new)["w"], weight, atol=1e-5)


def test_a_zero_row_names_the_focus() -> None:
    with pytest.raises(ValueError, match="zeros") as info:
        lf.at["w"].unwrapped().set(_builtin_model(), jnp.zeros((2, 3)))
    assert str(info.value).startswith("at ['w']: WeightNormalization")


def test_modify_every_built_in_wrapper_by_value() -> None:
    model = _builtin_model()
    doubled = lf.at.each().unwrapped().modify(model, lambda v: 2 * v)
    assert jax.tree_util.tree_structure(doubled) == jax.tree_util.tree_structure(model)
    assert _close(lf.unwrap(doubled), jax.tree_util.tree_map(lambda v: 2 * v, lf.unwrap(model)))


# ------------------------------------------------------------------------ the laws

LENSES = [
    lf.at["scale"],
    lf.at["enc"]["w"],
    lf.at["enc"],
    lf.at["layers"][1]["w"],
    lf.at["layers"][0],
    lf.at,
]


def _value_like(value: Any, factor: float) -> Any:
    """A value with the structure of ``value``, positive (inside every support here)."""
    return jax.tree_util.tree_map(lambda x: jnp.full(np.shape(x), factor, jnp.float32), value)


CASES = [(lens, _model) for lens in LENSES] + [
    (lens, _builtin_model) for lens in (lf.at["w"], lf.at["scale"], lf.at)
]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(CASES))
def test_law_get_set(case: Any) -> None:
    lens, build = case
    optic, model = lens.unwrapped(), build()
    again = optic.set(model, optic.get(model))
    assert jax.tree_util.tree_structure(again) == jax.tree_util.tree_structure(model)
    assert _close(again, model)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(CASES), st.floats(0.1, 10.0))
def test_law_set_get(case: Any, factor: float) -> None:
    lens, build = case
    optic, model = lens.unwrapped(), build()
    value = _value_like(optic.get(model), factor)
    assert _close(optic.get(optic.set(model, value)), value)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(CASES), st.floats(0.1, 10.0), st.floats(0.1, 10.0))
def test_law_set_set(case: Any, first: float, second: float) -> None:
    lens, build = case
    optic, model = lens.unwrapped(), build()
    v, w = (_value_like(optic.get(model), f) for f in (first, second))
    assert _close(optic.set(optic.set(model, v), w), optic.set(model, w))


def test_a_value_outside_a_constraint_starts_the_message_with_the_full_path() -> None:
    model = {"enc": {"pos": lf.positive(jnp.array([1.0, 2.0])), "b": jnp.ones(1)}}
    with pytest.raises(lf.ConstraintError, match=r"^at \['enc'\]\['pos'\]: Positive"):
        lf.at["enc"]["pos"].unwrapped().set(model, jnp.array([1.0, -2.0]))
    values = {"pos": jnp.array([1.0, -2.0]), "b": jnp.ones(1)}
    with pytest.raises(lf.ConstraintError, match=r"^at \['enc'\]\['pos'\]: Positive"):
        lf.at["enc"].unwrapped().set(model, values)
