"""Bad input: each mistake raises a documented exception that names the problem and where."""

from __future__ import annotations

import re
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lensify as lf
from lensify._records import FrozenRecordError


class Explode(lf.AbstractUnwrappable[jax.Array]):
    x: jax.Array

    def unwrap(self) -> jax.Array:
        raise ArithmeticError(f"cannot unwrap a value of shape {jnp.shape(self.x)}")


# ---------------------------------------------------------------- user wrappers


def test_user_unwrap_error_gains_a_note_with_the_key_path() -> None:
    tree = {"model": [jnp.ones(2), {"head": Explode(jnp.ones(3))}]}
    with pytest.raises(ArithmeticError, match=r"shape \(3,\)") as info:
        lf.unwrap(tree)
    notes = info.value.__notes__
    assert len(notes) == 1
    assert "Explode" in notes[0]
    assert "['model'][1]['head']" in notes[0]


def test_user_unwrap_error_inside_another_wrapper_names_the_full_path() -> None:
    tree = {"frozen": lf.NonTrainable({"inner": [Explode(1.0)]})}
    with pytest.raises(ArithmeticError) as info:
        lf.unwrap(tree)
    (note,) = info.value.__notes__
    assert "Explode" in note
    assert "['frozen'].tree['inner'][0]" in note


def test_user_unwrap_error_at_the_root() -> None:
    with pytest.raises(ArithmeticError) as info:
        lf.unwrap(Explode(1.0))
    (note,) = info.value.__notes__
    assert "Explode" in note
    assert "<root>" in note


def test_user_unwrap_error_under_jit_keeps_the_note() -> None:
    tree = {"a": Explode(jnp.ones(2))}
    with pytest.raises(ArithmeticError) as info:
        jax.jit(lf.unwrap)(tree)
    assert any("Explode" in n and "['a']" in n for n in info.value.__notes__)


def test_user_unwrap_error_is_noted_once_when_raised_again() -> None:
    tree = [Explode(1.0)]
    for _ in range(2):
        with pytest.raises(ArithmeticError) as info:
            lf.unwrap(tree)
        assert len(info.value.__notes__) == 1


def test_subclass_without_unwrap_cannot_be_built() -> None:
    class NoUnwrap(lf.AbstractUnwrappable[jax.Array]):
        x: jax.Array

    with pytest.raises(TypeError, match=r"NoUnwrap.*unwrap"):
        NoUnwrap(jnp.ones(2))


def test_decorated_subclass_without_unwrap_cannot_be_built() -> None:
    @attrs.frozen
    class NoUnwrap(lf.AbstractUnwrappable[jax.Array]):
        x: jax.Array

    with pytest.raises(TypeError, match=r"NoUnwrap.*unwrap"):
        NoUnwrap(jnp.ones(2))


# ---------------------------------------------------------------- frozen records


def test_setting_a_field_of_a_wrapper_names_the_field_and_the_fix() -> None:
    wrapper = lf.NonTrainable(jnp.ones(2))
    with pytest.raises(FrozenRecordError, match=r"'tree'.*NonTrainable") as info:
        wrapper.tree = jnp.zeros(2)  # type: ignore[misc]
    assert "lf.at.tree.set" in str(info.value)
    assert isinstance(info.value, attrs.exceptions.FrozenInstanceError)
    assert isinstance(info.value, AttributeError)
    assert np.array_equal(wrapper.tree, jnp.ones(2))


def test_deleting_a_field_of_a_wrapper() -> None:
    wrapper = lf.Parameterize(jnp.exp, jnp.ones(2))
    with pytest.raises(FrozenRecordError, match=r"'args'.*Parameterize"):
        del wrapper.args


def test_setting_a_new_attribute_of_a_wrapper() -> None:
    wrapper = lf.WeightNormalization(jnp.ones((2, 2)))
    with pytest.raises(AttributeError, match="cache"):
        wrapper.cache = 1  # type: ignore[attr-defined]


def test_setting_a_field_of_an_undecorated_user_record() -> None:
    class Scaled(lf.AbstractUnwrappable[jax.Array]):
        x: jax.Array

        def unwrap(self) -> jax.Array:
            return 2 * self.x

    with pytest.raises(FrozenRecordError, match=r"'x'.*Scaled"):
        Scaled(jnp.ones(2)).x = jnp.zeros(2)  # type: ignore[misc]


def test_setting_a_field_of_a_decorated_user_record() -> None:
    @attrs.frozen
    class Scaled(lf.AbstractUnwrappable[jax.Array]):
        x: jax.Array

        def unwrap(self) -> jax.Array:
            return 2 * self.x

    with pytest.raises(attrs.exceptions.FrozenInstanceError) as info:
        Scaled(jnp.ones(2)).x = jnp.zeros(2)  # type: ignore[misc]
    assert "'x'" in str(info.value)
    assert "Scaled" in str(info.value)


def test_evolve_is_the_way_to_change_a_field() -> None:
    wrapper = lf.NonTrainable(jnp.ones(2))
    changed = attrs.evolve(wrapper, tree=jnp.zeros(2))
    assert np.array_equal(changed.tree, jnp.zeros(2))
    assert np.array_equal(wrapper.tree, jnp.ones(2))


# ---------------------------------------------------------------- built-in wrappers


def test_weight_normalization_of_a_0d_weight() -> None:
    with pytest.raises(ValueError, match=r"WeightNormalization.*at least one axis.*0-d"):
        lf.WeightNormalization(jnp.array(2.0))


def test_weight_normalization_with_a_zero_row() -> None:
    w = jnp.array([[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]])
    with pytest.raises(ValueError, match=r"WeightNormalization.*row of zeros"):
        lf.WeightNormalization(w)


def test_weight_normalization_of_a_wrapped_weight_with_a_zero_row() -> None:
    w = lf.Parameterize(jnp.abs, jnp.array([[1.0, 2.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="row of zeros"):
        lf.WeightNormalization(w)


def test_weight_normalization_with_a_zero_row_under_jit() -> None:
    w = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    build = jax.jit(lambda w: lf.unwrap(lf.WeightNormalization(w)))
    with pytest.raises(jax.errors.JaxRuntimeError, match="row of zeros"):
        jax.block_until_ready(build(w))


def test_inv_softplus_of_negatives() -> None:
    with pytest.raises(ValueError, match=r"inv_softplus.*non-negative.*-2\.0.*1 position"):
        lf.inv_softplus(jnp.array([1.0, -2.0, 0.5]))


def test_inv_softplus_of_a_negative_python_scalar() -> None:
    with pytest.raises(ValueError, match=r"inv_softplus.*non-negative"):
        lf.inv_softplus(-1)


def test_inv_softplus_of_negatives_under_jit() -> None:
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"inv_softplus.*non-negative"):
        jax.block_until_ready(jax.jit(lf.inv_softplus)(jnp.array([1.0, -2.0])))


def test_inv_softplus_of_negatives_under_vmap() -> None:
    x = jnp.array([[1.0, 2.0], [-1.0, 3.0]])
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"inv_softplus.*non-negative"):
        jax.block_until_ready(jax.vmap(lf.inv_softplus)(x))


def test_inv_softplus_of_non_negatives_under_jit_is_fine() -> None:
    x = jnp.array([0.5, 1.0, 3.0])
    assert np.allclose(jax.nn.softplus(jax.jit(lf.inv_softplus)(x)), x)


def test_parameterize_with_a_non_callable_fn() -> None:
    x = jnp.ones(3)
    with pytest.raises(TypeError, match=r"Parameterize.*callable.*Parameterize\(fn,"):
        lf.Parameterize(x)  # type: ignore[arg-type]


def test_parameterize_with_a_string_fn() -> None:
    with pytest.raises(TypeError, match=re.escape("got str 'exp'")):
        lf.Parameterize("exp", jnp.ones(2))  # type: ignore[arg-type]


def test_real_to_increasing_with_an_empty_interval() -> None:
    with pytest.raises(ValueError, match=r"lower < upper"):
        lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (1.0, 1.0), min_width=0.1, include_endpoints="both"
        )


def test_real_to_increasing_with_an_unknown_endpoint_option() -> None:
    with pytest.raises(ValueError, match=r"include_endpoints.*'all'"):
        lf.RealToIncreasingOnInterval(
            jnp.zeros(3),
            (0.0, 1.0),
            min_width=0.1,
            include_endpoints="all",  # type: ignore[arg-type]
        )


def test_real_to_increasing_with_too_wide_a_min_width() -> None:
    with pytest.raises(ValueError, match=r"min_width.*exceeds"):
        lf.RealToIncreasingOnInterval(
            jnp.zeros(4), (0.0, 1.0), min_width=0.5, include_endpoints="both"
        )


# ---------------------------------------------------------------- optics

MODEL = {
    "layers": [
        {"weight": jnp.ones((2, 2)), "bias": jnp.zeros(2)},
        lf.NonTrainable({"weight": jnp.ones((2, 2)), "bias": jnp.zeros(2)}),
    ]
}


def test_step_into_a_missing_key_names_it_the_path_and_the_keys_there() -> None:
    optic = lf.at["layers"][0]["wieght"]
    with pytest.raises(lf.MissingStepError) as info:
        optic.get(MODEL)
    message = str(info.value)
    assert "'wieght'" in message
    assert "['layers'][0]" in message
    assert "'weight'" in message  # the closest key is suggested
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, lf.OpticError)


@pytest.mark.parametrize("operation", ["get_all", "paths", "set", "modify", "mask", "unwrap"])
def test_every_operation_reports_a_missing_key_the_same_way(operation: str) -> None:
    optic = lf.at["layers"][0]["wieght"]
    calls = {
        "get_all": lambda: optic.get_all(MODEL),
        "paths": lambda: optic.paths(MODEL),
        "set": lambda: optic.set(MODEL, 1.0),
        "modify": lambda: optic.modify(MODEL, lambda x: x),
        "mask": lambda: optic.mask(MODEL),
        "unwrap": lambda: optic.unwrap(MODEL),
    }
    with pytest.raises(lf.MissingStepError, match=re.escape("'wieght'")) as info:
        calls[operation]()
    assert "['layers'][0]" in str(info.value)


def test_step_into_a_missing_key_below_a_traversal_names_the_node_that_lacks_it() -> None:
    # The second layer is wrapped, so it has a field .tree, not a key 'weight'.
    with pytest.raises(lf.MissingStepError) as info:
        lf.at["layers"].each()["weight"].modify(MODEL, lambda w: 2 * w)
    message = str(info.value)
    assert "'weight'" in message
    assert "['layers'][1]" in message
    assert "NonTrainable" in message


def test_step_into_a_missing_attribute() -> None:
    with pytest.raises(lf.MissingStepError) as info:
        lf.at["layers"][1].tre.get(MODEL)
    message = str(info.value)
    assert "'tre'" in message
    assert "['layers'][1]" in message
    assert "tree" in message


def test_attribute_step_on_a_dict_suggests_the_item_step() -> None:
    with pytest.raises(lf.MissingStepError) as info:
        lf.at["layers"][0].weight.get(MODEL)
    message = str(info.value)
    assert "['layers'][0]" in message
    assert "['weight']" in message


@pytest.mark.parametrize("index", [2, -3])
def test_step_into_a_missing_index(index: int) -> None:
    with pytest.raises(lf.MissingStepError) as info:
        lf.at["layers"][index].get(MODEL)
    message = str(info.value)
    assert f"index {index}" in message
    assert "['layers']" in message
    assert "length 2" in message


def test_step_into_a_leaf() -> None:
    with pytest.raises(lf.MissingStepError) as info:
        lf.at["layers"][0]["bias"]["x"].get(MODEL)
    assert "['layers'][0]['bias']" in str(info.value)


def test_get_with_no_focus() -> None:
    optic = lf.at.leaves().where(lambda x: jnp.ndim(x) == 3)
    with pytest.raises(lf.FocusCountError, match=r"exactly one focus, found none") as info:
        optic.get(MODEL)
    assert "get_all" in str(info.value)


def test_get_with_several_foci_names_their_count_and_paths() -> None:
    with pytest.raises(lf.FocusCountError) as info:
        lf.at["layers"].each().get(MODEL)
    message = str(info.value)
    assert "found 2" in message
    assert "['layers'][0]" in message
    assert "['layers'][1]" in message
    assert "get_all" in message


def test_get_with_many_foci_keeps_the_message_short() -> None:
    tree = {"xs": list(range(100))}
    with pytest.raises(lf.FocusCountError) as info:
        lf.at["xs"].each().get(tree)
    message = str(info.value)
    assert "found 100" in message
    assert len(message) < 1000


@pytest.mark.parametrize(
    "optic",
    [
        lf.at["layers"] | lf.at["layers"][0],
        lf.at["layers"][0] | lf.at["layers"][0],
        lf.at.leaves() | lf.at["layers"][0]["bias"],
    ],
    ids=["nested", "same", "leaf-inside"],
)
def test_overlapping_foci(optic: lf.Optic) -> None:
    for operation in (
        lambda: optic.get_all(MODEL),
        lambda: optic.set(MODEL, 0.0),
        lambda: optic.modify(MODEL, lambda x: x),
    ):
        with pytest.raises(lf.OverlapError, match="overlap") as info:
            operation()
        assert "['layers']" in str(info.value)


def test_disjoint_union_is_fine() -> None:
    optic = lf.at["layers"][0]["bias"] | lf.at["layers"][1].tree["bias"]
    assert len(optic.get_all(MODEL)) == 2


def test_predicate_that_needs_a_traced_value() -> None:
    positive = lf.at.leaves().where(lambda x: x.sum() > 0)
    with pytest.raises(lf.TracedPredicateError) as info:
        jax.jit(lambda t: positive.set(t, 0.0))(MODEL)
    message = str(info.value)
    assert ".where(" in message
    assert "traced" in message
    assert "['layers'][0]['bias']" in message  # the first focus whose predicate failed
    assert "ndim" in message  # the fix: select on shape, dtype or type
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    "pred",
    [lambda x: bool(x[0] > 0), lambda x: int(x.sum()), lambda x: np.asarray(x).any()],
    ids=["bool", "int", "numpy"],
)
def test_every_kind_of_concretisation_in_a_predicate(pred: object) -> None:
    optic = lf.at.leaves().where(pred)  # type: ignore[arg-type]
    with pytest.raises(lf.TracedPredicateError):
        jax.jit(lambda t: optic.get_all(t))(MODEL)


def test_predicate_on_shapes_is_fine_under_jit() -> None:
    matrices = lf.at.leaves().where(lambda x: x.ndim == 2)
    out = jax.jit(lambda t: matrices.set(t, jnp.zeros((2, 2))))(MODEL)
    assert float(out["layers"][0]["weight"].sum()) == 0.0
    assert float(out["layers"][1].tree["weight"].sum()) == 0.0


def test_predicate_that_raises_its_own_error_is_not_disguised() -> None:
    def pred(x: object) -> bool:
        raise KeyError("user bug")

    with pytest.raises(KeyError, match="user bug"):
        lf.at.leaves().where(pred).get_all(MODEL)


def test_optic_steps_are_not_assignable() -> None:
    optic = lf.at["layers"]
    with pytest.raises(AttributeError):
        optic.layers = 1  # type: ignore[misc]


def test_repr_of_a_wrapper_rebuilt_with_odd_children_does_not_fail() -> None:
    # Optics and optimisers rebuild records from arbitrary children; error messages
    # and debuggers then call repr on them.
    odd = lf.at.each().set(lf.Parameterize(jnp.exp, jnp.zeros(2)), 3.0)
    assert "Parameterize" in repr(odd)
    placeholders = jax.tree_util.tree_map(lambda _: None, lf.WeightNormalization(jnp.ones((2, 2))))
    assert "WeightNormalization" in repr(placeholders)


def test_non_trainable_where_takes_an_optic_not_a_lambda() -> None:
    model = {"encoder": jnp.ones(2)}
    with pytest.raises(TypeError, match=r"takes an optic.*lf\.at\.encoder"):
        lf.non_trainable(model, where=lambda m: m["encoder"])


def test_setting_a_computed_attribute_names_the_path_of_its_owner() -> None:
    tree = {"layers": [{"w": jnp.ones((2, 2))}]}
    where = re.escape("at ['layers'][0]['w']: no settable attribute 'T' in the jax.Array.")
    with pytest.raises(lf.MissingStepError, match=where):
        lf.at["layers"][0]["w"].T.set(tree, 1)
    with pytest.raises(lf.MissingStepError, match=where):
        lf.at["layers"].each()["w"].T.set(tree, 1)


def test_attribute_of_none_says_none_is_an_empty_node() -> None:
    with pytest.raises(lf.MissingStepError) as info:
        lf.at["a"].weight.get({"a": None})
    message = str(info.value)
    assert "treats None as an empty node" in message
    assert "dict, list or tuple" not in message
    assert "['a']" in message


def test_item_of_none_says_none_is_an_empty_node() -> None:
    with pytest.raises(lf.MissingStepError, match=r"treats None as an empty node.*\['a'\]\[0\]"):
        lf.at["a"][0].set({"a": None}, 1.0)


# ---------------------------------------------------------------- one located error


def test_modify_calls_fn_once_per_focus_even_when_it_raises() -> None:
    calls: list[Any] = []

    def fn(x: Any) -> Any:
        calls.append(x)
        if x == 3:
            raise ArithmeticError("three")
        return x

    tree = {"a": [1, 2], "b": {"c": 3, "d": 4}}
    with pytest.raises(ArithmeticError) as info:
        lf.at.leaves().modify(tree, fn)
    assert calls == [1, 2, 3]  # the foci up to the one that raised, each once
    assert info.value.__notes__ == [
        "at ['b']['c']: raised while applying fn to a focus of lf.at.leaves()"
    ]


def test_wrap_calls_the_factory_once_per_focus_even_when_it_raises() -> None:
    calls: list[Any] = []

    def factory(x: Any) -> Any:
        calls.append(x)
        return lf.positive(x)

    tree = {"a": jnp.ones(2), "b": -jnp.ones(2)}
    with pytest.raises(lf.ConstraintError, match=r"^at \['b'\]: Positive got -1\.0"):
        lf.at.each().wrap(tree, factory)
    assert len(calls) == 2


def _out_of_support(name: str) -> tuple[Any, Any]:
    # A stored constraint and a value outside its support.
    cases: dict[str, tuple[Any, Any]] = {
        "positive": (lf.positive(jnp.ones(2)), jnp.array([1.0, -1.0])),
        "interval": (lf.interval(jnp.full(2, 0.5), 0.0, 1.0), jnp.array([0.5, 2.0])),
        "simplex": (lf.simplex(jnp.full(3, 1 / 3)), jnp.array([0.5, 0.7, -0.2])),
        "unit_vector": (lf.unit_vector(jnp.array([0.6, 0.8])), jnp.array([3.0, 4.0])),
        "symmetric": (lf.symmetric(jnp.eye(2)), jnp.array([[1.0, 2.0], [0.0, 1.0]])),
        "cholesky_factor": (lf.cholesky_factor(jnp.eye(2)), jnp.array([[1.0, 1.0], [0.0, 1.0]])),
    }
    return cases[name]


@pytest.mark.parametrize(
    "name", ["positive", "interval", "simplex", "unit_vector", "symmetric", "cholesky_factor"]
)
def test_a_check_reads_the_same_eagerly_and_under_jit(name: str) -> None:
    stored, value = _out_of_support(name)
    tree = {"model": [jnp.zeros(1), {"p": stored}]}
    values = {"model": [jnp.zeros(1), {"p": value}]}
    with pytest.raises(lf.ConstraintError) as eager:
        lf.rewrap(tree, values)
    message = str(eager.value)
    assert message.startswith("at ['model'][1]['p']: ")
    with pytest.raises(jax.errors.JaxRuntimeError) as traced:
        jax.block_until_ready(jax.jit(lf.rewrap)(tree, values))
    assert f"ConstraintError: {message}" in str(traced.value)


def test_a_value_check_reads_the_same_eagerly_and_under_jit() -> None:
    tree = {"k": [lf.Parameterize(jax.nn.sigmoid, jnp.zeros(2))]}
    values = {"k": [jnp.array([0.5, 1.5])]}
    with pytest.raises(ValueError) as eager:
        lf.rewrap(tree, values)
    message = str(eager.value)
    assert message.startswith("at ['k'][0]: Parameterize: a value is outside")
    with pytest.raises(jax.errors.JaxRuntimeError) as traced:
        jax.block_until_ready(jax.jit(lf.rewrap)(tree, values))
    assert message in str(traced.value)
