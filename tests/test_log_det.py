"""lf.unwrap_with_log_det: the change of variables of every built-in, by autodiff."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lensify as lf
import lensify.testing as lt

numpyro_constraints = pytest.importorskip("numpyro.distributions.constraints")


def _raw(shape: tuple[int, ...], low: float = -3.0, high: float = 3.0) -> st.SearchStrategy[Any]:
    elements = st.floats(low, high, width=32)
    return hnp.arrays(np.float32, shape, elements=elements).map(jnp.asarray)


def _with_raw(template: Any) -> Any:
    return lambda r: template.with_raw(r)


# (template, raw shape, coordinates): every built-in constraint, by its raw array.
CONSTRAINTS: dict[str, tuple[Any, tuple[int, ...], Any]] = {
    "positive": (lf.positive(jnp.ones(3)), (3,), lt.flat_values),
    "interval": (lf.interval(jnp.zeros(3), -2.0, 3.0), (3,), lt.flat_values),
    "interval_array_bounds": (
        lf.interval(jnp.zeros(3), -np.arange(1.0, 4.0), np.linspace(0.5, 3.0, 3)),
        (3,),
        lt.flat_values,
    ),
    "simplex": (lf.simplex(jnp.full(4, 0.25)), (3,), lt.simplex_coordinates),
    "cholesky_factor": (lf.cholesky_factor(jnp.eye(3)), (3, 3), lt.triangle_coordinates),
    "symmetric": (lf.symmetric(jnp.eye(3)), (3, 3), lt.triangle_coordinates),
    "unit_vector": (lf.unit_vector(jnp.array([0.6, 0.8])), (2,), lt.unit_vector_coordinates),
    "constrain_positive": (
        lf.constrain(jnp.ones(3), numpyro_constraints.positive),
        (3,),
        lt.flat_values,
    ),
    "constrain_unit_interval": (
        lf.constrain(jnp.full(3, 0.5), numpyro_constraints.unit_interval),
        (3,),
        lt.flat_values,
    ),
}


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_law_log_det_of_every_constraint_equals_autodiff(name: str) -> None:
    template, shape, coordinates = CONSTRAINTS[name]
    lt.check_log_det_laws(
        _with_raw(template), arrays=_raw(shape), coordinates=coordinates, max_examples=8
    )


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_log_det_is_finite_where_the_constraint_saturates(name: str) -> None:
    template, shape, _ = CONSTRAINTS[name]
    if name.startswith("constrain"):
        pytest.skip("numpyro's own maps overflow past |raw| ~ 88")
    for far in (-1e4, -200.0, 200.0, 1e4):
        log_det = lf.unwrap_with_log_det(template.with_raw(jnp.full(shape, far)))[1]
        assert bool(jnp.isfinite(log_det)), (name, far, log_det)
        grad = jax.grad(lambda r: lf.unwrap_with_log_det(template.with_raw(r))[1])(
            jnp.full(shape, far)
        )
        assert bool(jnp.all(jnp.isfinite(grad))), (name, far)


FUNCTIONS = {
    "exp": jnp.exp,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    "identity": lf.identity,
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_law_log_det_of_parameterize_of_a_registered_function(name: str) -> None:
    fn = FUNCTIONS[name]
    lt.check_log_det_laws(lambda r: lf.Parameterize(fn, r), max_examples=8)


def test_law_log_det_of_the_inverse_functions_on_their_domains() -> None:
    positive = _raw((3,), 0.125, 5.0)
    unit = _raw((3,), 0.0625, 0.9375)
    lt.check_log_det_laws(lambda x: lf.Parameterize(jnp.log, x), arrays=positive, max_examples=5)
    lt.check_log_det_laws(
        lambda x: lf.Parameterize(lf.inv_softplus, x), arrays=positive, max_examples=5
    )
    lt.check_log_det_laws(
        lambda x: lf.Parameterize(jax.scipy.special.logit, x), arrays=unit, max_examples=5
    )


_LAYERS = {
    "exp": lambda inner: lf.Parameterize(jnp.exp, inner),
    "softplus": lambda inner: lf.Parameterize(jax.nn.softplus, inner),
    "identity": lambda inner: lf.Parameterize(lf.identity, inner),
}


@settings(max_examples=15, deadline=None)
@given(
    layers=st.lists(st.sampled_from(sorted(_LAYERS)), min_size=1, max_size=2),
    inner=st.sampled_from(["positive", "interval", "raw"]),
    raw=_raw((3,), -2.0, 2.0),  # two exps of an interval(-2, 3) stay finite
)
def test_law_the_chain_rule_holds_for_drawn_stacks(layers: list[str], inner: str, raw: Any) -> None:
    if inner == "raw":
        tree: Any = raw
    else:
        tree = CONSTRAINTS[inner][0].with_raw(raw)
    for layer in layers:
        tree = _LAYERS[layer](tree)
    lt.assert_log_det_laws({"a": tree, "b": [jnp.ones(2), 3]})
    parts = lf.unwrap_with_log_det(tree)[1]
    both = lf.unwrap_with_log_det({"x": tree, "y": tree})[1]
    np.testing.assert_allclose(both, 2 * parts, rtol=1e-6)


def test_frozen_parameters_contribute_nothing() -> None:
    x = jnp.array([0.5, 2.0])
    tree = {
        "a": lf.NonTrainable(lf.positive(x)),
        "b": lf.positive(lf.NonTrainable(x)),
        "c": lf.Parameterize(jnp.exp, lf.NonTrainable(x)),
        "d": lf.NonTrainable(lf.WeightNormalization(jnp.ones((2, 2)))),
    }
    values, log_det = lf.unwrap_with_log_det(tree)
    assert float(log_det) == 0.0
    assert lt.trees_close(values, lf.unwrap(tree))
    frozen = lf.non_trainable(lf.positive(x))
    assert float(lf.unwrap_with_log_det(frozen)[1]) == 0.0


def test_a_tree_without_wrappers_has_log_det_zero_and_comes_back_as_is() -> None:
    tree = {"w": jnp.ones(3), "n": 2}
    values, log_det = lf.unwrap_with_log_det(tree)
    assert values is tree
    assert float(log_det) == 0.0


def test_a_preimage_adds_nothing_to_the_wrapper_it_holds() -> None:
    inner = lf.Parameterize(jnp.exp, jnp.array([0.1, 0.4]))
    alone = lf.unwrap_with_log_det(inner)[1]
    wrapped = lf.unwrap_with_log_det(lf.positive(inner))[1]
    np.testing.assert_allclose(wrapped, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("tree", "named"),
    [
        (
            {"w": [lf.WeightNormalization(jnp.ones((2, 2)))]},
            r"at \['w'\]\[0\]: WeightNormalization",
        ),
        ({"p": lf.Parameterize(jnp.cosh, jnp.ones(2))}, r"at \['p'\]: Parameterize\(cosh"),
    ],
)
def test_a_wrapper_without_a_change_of_variables_is_refused_naming_its_path(
    tree: Any, named: str
) -> None:
    with pytest.raises(lf.NoLogDetError, match=named):
        lf.unwrap_with_log_det(tree)
    with pytest.raises(lf.NoLogDetError, match="non_trainable"):
        jax.jit(lf.unwrap_with_log_det)(tree)


def test_a_user_wrapper_defines_log_det_and_a_wrong_one_fails_the_laws() -> None:
    class Tripled(lf.AbstractUnwrappable):
        x: jax.Array

        def unwrap(self) -> jax.Array:
            return 3 * self.x

        def log_det(self) -> jax.Array:
            return jnp.size(self.x) * jnp.log(3.0)

    class WrongTripled(Tripled):
        def log_det(self) -> jax.Array:
            return jnp.log(3.0)  # forgets the size

    lt.check_log_det_laws(Tripled, max_examples=3)
    with pytest.raises(AssertionError, match="autodiff"):
        lt.check_log_det_laws(WrongTripled, max_examples=3)


def test_register_inverse_takes_a_log_det() -> None:
    def cube(x: jax.Array) -> jax.Array:
        return x**3

    lf.register_inverse(cube, jnp.cbrt, log_det=lambda x: jnp.log(3.0) + 2 * jnp.log(jnp.abs(x)))
    lt.check_log_det_laws(lambda r: lf.Parameterize(cube, r), arrays=_raw((3,), 0.5, 2.0))


def test_works_under_grad_and_vmap() -> None:
    template = lf.positive(jnp.ones(3))

    def log_det(raw: jax.Array) -> jax.Array:
        return lf.unwrap_with_log_det(template.with_raw(raw))[1]

    raws = jnp.array([[0.0, 1.0, -1.0], [2.0, -2.0, 0.5]])
    batched = jax.vmap(log_det)(raws)
    np.testing.assert_allclose(batched, [log_det(r) for r in raws], rtol=1e-6)
    grad = jax.grad(log_det)(raws[0])
    np.testing.assert_allclose(grad, jax.nn.sigmoid(-raws[0]), rtol=1e-6)
