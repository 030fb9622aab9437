"""Code written for paramax runs on lensify, class bodies and hooks included.

Each test runs the same code against real paramax and against lensify (imported in
paramax's place) and compares what they do.
"""

from __future__ import annotations

import copy
from typing import Any

import attrs
import equinox as eqx
import jax
import jax.numpy as jnp
import paramax
import pytest

import lensify as lf

LIBRARIES = [pytest.param(paramax, id="paramax"), pytest.param(lf, id="lensify")]


def _checked(lib: Any) -> type:
    class Checked(lib.AbstractUnwrappable):
        x: jax.Array

        def __check_init__(self) -> None:
            if not jnp.all(self.x > 0):
                raise ValueError("Checked needs positive x")

        def unwrap(self) -> jax.Array:
            return self.x

    return Checked


@pytest.mark.parametrize("lib", LIBRARIES)
def test_check_init_rejects_at_construction(lib: Any) -> None:
    checked = _checked(lib)
    assert jnp.allclose(lib.unwrap(checked(jnp.ones(2))), 1.0)
    with pytest.raises(ValueError, match="Checked needs positive x"):
        checked(-jnp.ones(2))


@pytest.mark.parametrize("lib", LIBRARIES)
def test_check_init_skipped_at_unflatten(lib: Any) -> None:
    record = _checked(lib)(jnp.ones(2))
    negated = jax.tree_util.tree_map(lambda v: -v, record)
    assert jnp.allclose(negated.x, -1.0)


@pytest.mark.parametrize("lib", LIBRARIES)
def test_custom_init_with_equinox_field_default(lib: Any) -> None:
    class Scaled(lib.AbstractUnwrappable):
        x: jax.Array
        k: float = eqx.field(static=True, default=2.0)

        def __init__(self, x: jax.Array) -> None:
            self.x = x

        def unwrap(self) -> jax.Array:
            return self.x * self.k

    record = Scaled(jnp.ones(1))
    assert jnp.allclose(lib.unwrap(record), 2.0)
    assert jax.tree_util.tree_leaves(record) == [record.x]


@pytest.mark.parametrize("lib", LIBRARIES)
def test_post_init_after_generated_init(lib: Any) -> None:
    class Tripled(lib.AbstractUnwrappable):
        x: jax.Array

        def __post_init__(self) -> None:
            self.x = 3 * self.x

        def unwrap(self) -> jax.Array:
            return self.x

    assert jnp.allclose(lib.unwrap(Tripled(jnp.ones(1))), 3.0)


def _paramax_calls(lib: Any) -> dict[str, tuple[type, tuple[Any, ...], dict[str, Any]]]:
    x = jnp.array([0.5, 0.25])
    return {
        "Parameterize": (lib.Parameterize, (jnp.exp, x), {}),
        "NonTrainable": (lib.NonTrainable, ({"a": x},), {}),
        "WeightNormalization": (lib.WeightNormalization, (jnp.outer(x, x + 1.0),), {}),
        "RealToIncreasingOnInterval": (
            lib.RealToIncreasingOnInterval,
            (x, (0.0, 1.0)),
            {"min_width": 0.1, "include_endpoints": "both"},
        ),
    }


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize("name", sorted(_paramax_calls(lf)))
def test_subclass_of_every_built_in(lib: Any, name: str) -> None:
    cls, args, kwargs = _paramax_calls(lib)[name]
    sub = type(f"My{name}", (cls,), {})
    record = sub(*args, **kwargs)
    assert type(record) is sub
    assert lf.tree_equal(lib.unwrap(record), lib.unwrap(cls(*args, **kwargs)))


@pytest.mark.parametrize(
    "name", ["Parameterize", "NonTrainable", "RealToIncreasingOnInterval"]
)  # WeightNormalization starts from a different scale by design (migration page)
def test_subclasses_unwrap_as_paramax_does(name: str) -> None:
    results = []
    for lib in (paramax, lf):
        cls, args, kwargs = _paramax_calls(lib)[name]
        results.append(lib.unwrap(type(f"My{name}", (cls,), {})(*args, **kwargs)))
    close = jax.tree_util.tree_map(lambda a, b: bool(jnp.allclose(a, b)), *results)
    assert all(jax.tree_util.tree_leaves(close))


@pytest.mark.parametrize(
    "name",
    [
        "Positive",
        "Interval",
        "Simplex",
        "CholeskyFactor",
        "Symmetric",
        "UnitVector",
    ],
)
def test_subclass_of_every_built_in_constraint(name: str) -> None:
    cls = getattr(lf, name)
    value = {
        "Positive": jnp.array([0.5, 2.0]),
        "Interval": jnp.array([0.5, 0.25]),
        "Simplex": jnp.array([0.25, 0.75]),
        "CholeskyFactor": jnp.array([[1.0, 0.0], [0.5, 2.0]]),
        "Symmetric": jnp.array([[1.0, 0.5], [0.5, 2.0]]),
        "UnitVector": jnp.array([0.6, 0.8]),
    }[name]
    args = (0.0, 1.0) if name == "Interval" else ()
    record = type(f"My{name}", (cls,), {})(value, *args)
    assert jnp.allclose(lf.unwrap(record), value, atol=1e-6)


def test_changing_fn_as_paramax_users_do() -> None:
    x = jnp.array([0.5, 1.0])
    theirs = eqx.tree_at(lambda p: p.fn, paramax.Parameterize(jnp.tanh, x), jnp.exp)
    expected = paramax.unwrap(theirs)
    ours = lf.Parameterize(jnp.tanh, x)
    assert jnp.allclose(lf.unwrap(lf.replace(ours, fn=jnp.exp)), expected)
    assert jnp.allclose(lf.unwrap(attrs.evolve(ours, fn=jnp.exp)), expected)


def test_tree_at_on_a_function_kept_in_the_structure_says_so() -> None:
    # A plain fn is tree structure in lensify, not a leaf: the migration page says
    # to use lf.replace for it.
    with pytest.raises(TypeError, match="not a leaf"):
        eqx.tree_at(lambda p: p.fn, lf.Parameterize(jnp.tanh, jnp.ones(2)), jnp.exp)


def test_changing_the_weight_of_weight_normalization_keeps_the_scale() -> None:
    w = jnp.array([[3.0, 4.0]])
    wrapper = lf.WeightNormalization(w)
    for changed in (
        lf.replace(wrapper, weight=2 * w),
        attrs.evolve(wrapper, weight=2 * w),
        eqx.tree_at(lambda m: m.weight, wrapper, 2 * w),
    ):
        assert lf.tree_equal(changed.scale, wrapper.scale)
        assert jnp.allclose(lf.unwrap(changed), w)  # the direction is the same


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_copy_of_a_record_holding_a_jax_function(lib: Any, copier: Any) -> None:
    record = lib.Parameterize(jnp.exp, jnp.zeros(2))
    assert jnp.allclose(lib.unwrap(copier(record)), 1.0)


@pytest.mark.parametrize("lib", LIBRARIES)
def test_utils_inv_softplus_is_reachable_as_paramax_users_import_it(lib: Any) -> None:
    raw = lib.utils.inv_softplus(jnp.array([0.5, 2.0]))
    assert jnp.allclose(jax.nn.softplus(raw), jnp.array([0.5, 2.0]), rtol=1e-6)


def test_from_lensify_utils_import_inv_softplus_is_lf_inv_softplus() -> None:
    from lensify.utils import inv_softplus

    assert inv_softplus is lf.inv_softplus
