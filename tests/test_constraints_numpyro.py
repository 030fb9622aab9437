"""lf.constrain: any numpyro constraint with a biject_to transform, as a lensify constraint."""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lensify as lf
import lensify.testing as lt

numpyro_constraints = pytest.importorskip("numpyro.distributions.constraints")


def _events(shape: tuple[int, ...], event: jax.Array) -> jax.Array:
    return jnp.broadcast_to(event, shape).astype(jnp.float32)


def _ordered(shape: tuple[int, ...]) -> jax.Array:
    return _events(shape, jnp.arange(shape[-1]) - 1.0)


def _identity(shape: tuple[int, ...]) -> jax.Array:
    return _events(shape, jnp.eye(shape[-1]))


# (constraint, example of a shape, event shape for a size n)
CASES: dict[str, tuple[Any, Any, Any]] = {
    "ordered_vector": (numpyro_constraints.ordered_vector, _ordered, lambda n: (n,)),
    "circular": (numpyro_constraints.circular, jnp.zeros, lambda n: ()),
    "corr_cholesky": (numpyro_constraints.corr_cholesky, _identity, lambda n: (n, n)),
    "positive_definite": (numpyro_constraints.positive_definite, _identity, lambda n: (n, n)),
    "greater_than": (
        numpyro_constraints.greater_than(2.0),
        lambda s: jnp.full(s, 3.0),
        lambda n: (),
    ),
}

# Raw values far out (|raw| beyond about 88 in float32) overflow numpyro's exp to inf,
# or land exactly on the boundary (2 + exp(-100) == 2), outside the support: the
# law "any finite raw value unwraps into the support" fails there. lensify's own
# constraints hold it for every finite raw value (see docs/constraints.md).
SATURATE_AT_THE_EDGES = {"greater_than", "ordered_vector", "positive_definite"}


def _build(constraint: Any) -> Any:
    return lambda x: lf.constrain(x, constraint)


@pytest.mark.parametrize("name", sorted(set(CASES) - SATURATE_AT_THE_EDGES))
def test_constraint_laws(name: str) -> None:
    constraint, example, event_shape = CASES[name]
    lt.check_constraint_laws(
        _build(constraint), example=example, event_shape=event_shape, max_examples=4
    )


@pytest.mark.parametrize("name", sorted(SATURATE_AT_THE_EDGES))
def test_one_value_laws_of_constraints_that_saturate(name: str) -> None:
    constraint, example, event_shape = CASES[name]
    build = _build(constraint)
    for shape in [event_shape(3), (2, *event_shape(1))]:
        lt.assert_constraint_laws(build, example(shape))


def test_greater_than_saturates_onto_its_bound_for_a_far_raw_value() -> None:
    constrained = lf.constrain(jnp.array([3.0]), numpyro_constraints.greater_than(2.0))
    value = lf.unwrap(constrained.with_raw(jnp.array([-100.0])))
    assert value.tolist() == [2.0]  # on the boundary: numpyro's own edge


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_preserving_under_jit_and_with_value(name: str) -> None:
    constraint, example, event_shape = CASES[name]
    x = example(event_shape(3))
    constrained = lf.constrain(x, constraint)
    tolerance = constrained.tolerance(x.dtype)
    close = {"rtol": tolerance.rtol, "atol": tolerance.atol}
    assert np.allclose(lf.unwrap(constrained), x, **close)
    assert np.allclose(jax.jit(lf.unwrap)(constrained), x, **close)
    put = constrained.with_value(x)
    assert type(put) is lf.Constrained and put.constraint == constrained.constraint
    assert np.allclose(lf.unwrap(put), x, **close)


def test_a_value_outside_the_support_is_a_constraint_error() -> None:
    with pytest.raises(lf.ConstraintError, match=r"Constrained got .*OrderedVector"):
        lf.constrain(jnp.array([2.0, 1.0]), numpyro_constraints.ordered_vector)
    with pytest.raises(lf.ConstraintError, match="events of 1 axes"):
        lf.constrain(jnp.array(2.0), numpyro_constraints.ordered_vector)


def test_a_value_outside_the_support_is_a_runtime_error_under_jit() -> None:
    build = jax.jit(_build(numpyro_constraints.ordered_vector))
    assert np.allclose(lf.unwrap(build(jnp.array([1.0, 2.0]))), [1.0, 2.0])
    with pytest.raises(jax.errors.JaxRuntimeError, match="Constrained got"):
        jax.block_until_ready(build(jnp.array([2.0, 1.0])))


def test_a_constraint_without_a_transform_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="no bijective transform"):
        lf.constrain(jnp.array([1.0]), numpyro_constraints.boolean)
    with pytest.raises(TypeError, match="needs a numpyro constraint"):
        lf.constrain(jnp.array([1.0]), lf.positive)


def test_the_constraint_is_static_hashable_and_pickles() -> None:
    a = lf.constrain(jnp.array([0.5]), numpyro_constraints.interval(0.0, 1.0))
    b = lf.constrain(jnp.array([0.25]), numpyro_constraints.interval(0.0, 1.0))
    c = lf.constrain(jnp.array([0.25]), numpyro_constraints.interval(0.0, 2.0))
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    assert jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(c)
    assert len(jax.tree_util.tree_leaves(a)) == 1
    again = pickle.loads(pickle.dumps(a))
    assert again.constraint == a.constraint
    assert np.allclose(lf.unwrap(again), [0.5])


def test_composes_with_other_wrappers() -> None:
    x = jnp.array([-1.0, 0.5, 2.0])
    ordered = numpyro_constraints.ordered_vector
    frozen = lf.constrain(lf.NonTrainable(x), ordered)
    assert type(frozen.raw) is lf.NonTrainable
    grads = jax.grad(lambda t: lf.unwrap(t).sum())(frozen)
    assert all(bool((g == 0).all()) for g in jax.tree_util.tree_leaves(grads))
    model = lf.at["cuts"].wrap({"cuts": x}, lf.constrain, ordered)
    assert np.allclose(lf.unwrap(model)["cuts"], x)
    with pytest.raises(lf.ConstraintError, match=r"\['cuts'\]"):
        lf.at["cuts"].wrap({"cuts": x[::-1]}, lf.constrain, ordered)


def test_float16_values_are_computed_in_float32() -> None:
    x = jnp.array([-1.0, 0.5, 2.0], jnp.float16)
    constrained = lf.constrain(x, numpyro_constraints.ordered_vector)
    assert constrained.raw.dtype == jnp.float16
    assert lf.unwrap(constrained).tolist() == x.tolist()


def test_missing_numpyro_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("numpyro", "numpyro.distributions", "numpyro.distributions.transforms"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install lensify\[numpyro\]"):
        lf.constrain(jnp.array([1.0]), object())


def test_importing_lensify_does_not_import_numpyro() -> None:
    code = "import sys, lensify; assert 'numpyro' not in sys.modules, 'imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("unit_interval", [0.0, 0.5]),
        ("unit_interval", [1.0, 0.5]),
        ("nonnegative", [0.0, 0.5]),
        ("simplex", [0.0, 0.5, 0.5]),
        ("circular", [3.141592653589793]),
    ],
)
def test_constrain_refuses_a_value_on_the_boundary_of_a_closed_support(
    name: str, value: list[float]
) -> None:
    from numpyro.distributions import constraints

    with pytest.raises(lf.ConstraintError, match="boundary of the support"):
        lf.constrain(jnp.array(value), getattr(constraints, name))


def test_constrain_refuses_a_singular_positive_semidefinite_matrix() -> None:
    from numpyro.distributions import constraints

    with pytest.raises(lf.ConstraintError, match="boundary of the support"):
        lf.constrain(jnp.ones((2, 2)), constraints.positive_semidefinite)


def test_rewrap_of_a_constrained_value_on_the_boundary_names_the_path() -> None:
    from numpyro.distributions import constraints

    tree = {"a": lf.constrain(jnp.array([0.3, 0.5]), constraints.unit_interval)}
    with pytest.raises(lf.ConstraintError, match=r"^at \['a'\]: .*boundary"):
        lf.rewrap(tree, {"a": jnp.array([1.0, 0.5])})
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"at \['a'\]: .*boundary"):
        jax.block_until_ready(jax.jit(lf.rewrap)(tree, {"a": jnp.array([1.0, 0.5])}))


# Closed supports (and circular, whose raw parameter is infinite at pi): the refusal
# law draws their edges (0, 1, pi, the bound), forward of saturating raw arrays
# (exact zeros in a simplex, singular matrices) and values outside.
CLOSED: dict[str, tuple[Any, Any]] = {
    "unit_interval": (numpyro_constraints.unit_interval, lambda s: jnp.full(s, 0.5)),
    "interval": (numpyro_constraints.interval(-1.0, 2.0), jnp.zeros),
    "nonnegative": (numpyro_constraints.nonnegative, jnp.ones),
    "greater_than_eq": (numpyro_constraints.greater_than_eq(2.0), lambda s: jnp.full(s, 3.0)),
    "simplex": (numpyro_constraints.simplex, lambda s: jnp.full(s, 1.0 / s[-1])),
    "circular": (numpyro_constraints.circular, jnp.zeros),
    "positive_semidefinite": (numpyro_constraints.positive_semidefinite, _identity),
}


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_a_value_on_or_outside_a_closed_support_is_refused_or_kept(name: str) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    constraint, example = CLOSED[name]
    shape = (3, 3) if name == "positive_semidefinite" else (3,)
    build = _build(constraint)
    template = build(example(shape))

    @settings(max_examples=25, deadline=None)
    @given(st.data())
    def law(data: st.DataObject) -> None:
        value = data.draw(lt.boundary_values(template))
        lt.assert_refused_or_preserved(build, value, template)

    law()


def test_constrain_refuses_a_value_whose_raw_parameter_maps_back_to_infinity() -> None:
    # log(3.4e38 - 2) is finite, exp of it is not: the value would unwrap to inf.
    huge = jnp.full(2, jnp.finfo(jnp.float32).max)
    with pytest.raises(lf.ConstraintError, match="overflows to infinity"):
        lf.constrain(huge, numpyro_constraints.greater_than_eq(2.0))
