"""lensify with equinox, paramax's documented examples, user attrs wrappers and optax."""

from __future__ import annotations

from typing import Any

import attrs
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lensify as lf
import lensify as paramax  # the documented switch: change the import, keep the code


@attrs.frozen
class Square(lf.AbstractUnwrappable):
    x: Any

    def unwrap(self) -> Any:
        return self.x**2


class Model(eqx.Module):
    weight: Any
    bias: Any
    scale: Any

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.scale * (self.weight @ x + self.bias)


def _model() -> Model:
    key = jax.random.key(0)
    return Model(
        weight=lf.WeightNormalization(jax.random.normal(key, (3, 2))),
        bias=lf.NonTrainable(jnp.ones(3)),
        scale=lf.Parameterize(jax.nn.softplus, lf.inv_softplus(jnp.array(2.0))),
    )


# --- paramax's documentation examples, with lensify imported as paramax ----------------


def test_paramax_readme_tuple_example() -> None:
    scale = paramax.Parameterize(jnp.exp, jnp.log(jnp.ones(3)))  # enforce positivity
    out = paramax.unwrap(("abc", 1, scale))
    assert out[:2] == ("abc", 1)
    np.testing.assert_allclose(out[2], np.ones(3))


def test_paramax_docs_exp_example() -> None:
    positive = paramax.Parameterize(jnp.exp, jnp.zeros(3))
    np.testing.assert_allclose(paramax.unwrap(positive), np.ones(3))


def test_paramax_docs_diag_example() -> None:
    diag = paramax.Parameterize(jnp.diag, jnp.ones(3))
    np.testing.assert_allclose(paramax.unwrap(diag), np.eye(3))


def test_paramax_docs_tril_example() -> None:
    # A full matrix in, so the result shows that jnp.tril was applied.
    tril = paramax.Parameterize(jnp.tril, jnp.ones((3, 3)))
    np.testing.assert_allclose(paramax.unwrap(tril), np.tril(np.ones((3, 3))))


def test_paramax_docs_nested_square_example() -> None:
    param = paramax.Parameterize(
        jnp.square, paramax.Parameterize(jnp.square, paramax.Parameterize(jnp.square, 2))
    )
    assert paramax.unwrap(param) == jnp.square(jnp.square(jnp.square(2)))


def test_paramax_docs_non_trainable_example() -> None:
    model = paramax.non_trainable((jnp.ones(3), 1))

    def loss(model: Any) -> jax.Array:
        return paramax.unwrap(model)[0].sum()

    grad = eqx.filter_grad(loss)(model)[0].tree
    assert grad.shape == (3,)
    np.testing.assert_array_equal(grad, np.zeros(3))


# --- equinox ---------------------------------------------------------------------------


def test_equinox_module_as_container() -> None:
    model = _model()
    plain = lf.unwrap(model)
    assert type(plain) is Model
    assert not lf.contains_unwrappables(plain)
    np.testing.assert_allclose(plain.scale, 2.0, rtol=1e-6)
    assert plain(jnp.ones(2)).shape == (3,)


def test_equinox_partition_and_combine() -> None:
    model = _model()
    params, static = eqx.partition(model, eqx.is_inexact_array)
    assert type(params.weight) is lf.WeightNormalization
    rebuilt = eqx.combine(params, static)
    assert eqx.tree_equal(lf.unwrap(rebuilt), lf.unwrap(model))


def test_equinox_filter_grad() -> None:
    model = _model()

    @eqx.filter_grad
    def grads_of(model: Model) -> jax.Array:
        return lf.unwrap(model)(jnp.ones(2)).sum()

    grads = grads_of(model)
    assert type(grads.weight) is lf.WeightNormalization
    np.testing.assert_array_equal(grads.bias.tree, np.zeros(3))
    assert bool(jnp.any(grads.weight.weight != 0))


def test_equinox_filter_jit() -> None:
    model = _model()
    out = eqx.filter_jit(lambda m, x: lf.unwrap(m)(x))(model, jnp.ones(2))
    np.testing.assert_allclose(out, lf.unwrap(model)(jnp.ones(2)), rtol=1e-5)


def test_equinox_tree_at_replaces_a_wrapper_field() -> None:
    model = _model()
    new = eqx.tree_at(lambda m: m.bias.tree, model, jnp.zeros(3))
    np.testing.assert_array_equal(lf.unwrap(new).bias, np.zeros(3))


def test_wrappers_inside_paramax_unwrap_are_left_alone() -> None:
    import paramax as real_paramax

    tree = {"ours": lf.Parameterize(jnp.exp, jnp.zeros(2))}
    out = real_paramax.unwrap(tree)
    assert type(out["ours"]) is lf.Parameterize


# --- a user-defined attrs wrapper, inside and around the built-ins -------------------


def test_user_wrapper_inside_built_ins() -> None:
    tree = lf.Parameterize(jnp.exp, Square(jnp.ones(2)))
    np.testing.assert_allclose(lf.unwrap(tree), np.exp(np.ones(2)))
    nt = lf.NonTrainable({"s": Square(jnp.full(2, 3.0))})
    np.testing.assert_allclose(lf.unwrap(nt)["s"], np.full(2, 9.0))


def test_user_wrapper_around_built_ins() -> None:
    tree = Square(lf.Parameterize(jnp.exp, jnp.zeros(2)))
    np.testing.assert_allclose(lf.unwrap(tree), np.ones(2))
    wn = Square(lf.WeightNormalization(jnp.array([[3.0, 4.0]])))
    np.testing.assert_allclose(lf.unwrap(wn), [[9.0, 16.0]], rtol=1e-5)


def test_user_wrapper_sandwich_under_jit_and_grad() -> None:
    def loss(x: jax.Array) -> jax.Array:
        tree = Square(lf.Parameterize(jnp.exp, Square(x)))
        return lf.unwrap(tree).sum()

    x = jnp.array([0.5, -0.5])
    expected = 4 * x * jnp.exp(2 * x**2)  # d/dx exp(x^2)^2
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(x), expected, rtol=1e-5)


def test_non_trainable_function_reaches_user_wrappers() -> None:
    frozen = lf.non_trainable(Square(jnp.ones(2)))
    assert type(frozen) is Square
    assert type(frozen.x) is lf.NonTrainable


# --- optax ---------------------------------------------------------------------------


@pytest.mark.parametrize("optimiser", [optax.sgd(0.1), optax.adam(0.1)], ids=["sgd", "adam"])
def test_optax_update_keeps_wrapper_types(optimiser: Any) -> None:
    params = {"model": _model(), "extra": lf.Parameterize(jnp.exp, jnp.zeros(2))}
    state = optimiser.init(params)

    def loss(p: Any) -> jax.Array:
        plain = lf.unwrap(p)
        return plain["model"](jnp.ones(2)).sum() + plain["extra"].sum()

    for _ in range(2):
        grads = jax.grad(loss)(params)
        updates, state = optimiser.update(grads, state, params)
        params = optax.apply_updates(params, updates)

    assert type(params["model"].weight) is lf.WeightNormalization
    assert type(params["model"].weight.scale) is lf.Parameterize
    assert type(params["model"].bias) is lf.NonTrainable
    assert type(params["extra"]) is lf.Parameterize
    np.testing.assert_array_equal(params["model"].bias.tree, np.ones(3))  # frozen part
    assert bool(jnp.all(params["extra"].args[0] < 0))  # trained part moved


def test_optax_masked_on_non_trainable() -> None:
    params = {"frozen": lf.NonTrainable(jnp.ones(2)), "free": jnp.ones(2)}
    mask = {"frozen": lf.NonTrainable(False), "free": True}
    optimiser = optax.masked(optax.sgd(1.0), mask)
    state = optimiser.init(params)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates, _ = optimiser.update(grads, state, params)
    new = optax.apply_updates(params, updates)
    assert type(new["frozen"]) is lf.NonTrainable
    np.testing.assert_array_equal(new["free"], np.zeros(2))
