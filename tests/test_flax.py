"""flax: linen parameter dicts and NNX modules, wrapped, frozen and trained."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lensify as lf

nn = pytest.importorskip("flax.linen")
nnx = pytest.importorskip("flax.nnx")

X = jax.random.normal(jax.random.key(0), (16, 3))
Y = jnp.sin(X.sum(axis=1, keepdims=True))


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(1)(nn.relu(nn.Dense(4)(x)))


class NnxMLP(nnx.Module):
    def __init__(self, rngs: Any) -> None:
        self.hidden = nnx.Linear(3, 4, rngs=rngs)
        self.out = nnx.Linear(4, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.hidden(x)))


def wrapped_nnx() -> Any:
    model = lf.at.hidden.kernel.each().wrap(NnxMLP(nnx.Rngs(0)), lf.WeightNormalization)
    return lf.at.out.bias.each().wrap(model, lf.non_trainable)


def test_linen_params_wrap_freeze_and_train() -> None:
    model = LinenMLP()
    params = model.init(jax.random.key(1), X)
    params = lf.at["params"]["Dense_0"]["kernel"].wrap(params, lf.WeightNormalization)
    params = lf.non_trainable(params, where=lf.at["params"]["Dense_1"]["bias"])
    before = params

    def loss(params: Any) -> jax.Array:
        return jnp.mean((model.apply(lf.unwrap(params), X) - Y) ** 2)

    optimizer = optax.adam(1e-2)

    @jax.jit
    def step(params: Any, opt_state: Any) -> Any:
        updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = optimizer.init(params)
    for _ in range(20):
        params, opt_state = step(params, opt_state)
    assert loss(params) < loss(before)
    assert isinstance(params["params"]["Dense_0"]["kernel"], lf.WeightNormalization)
    np.testing.assert_array_equal(params["params"]["Dense_1"]["bias"].tree, 0.0)
    kernel, old_kernel = (
        params["params"]["Dense_0"]["kernel"],
        before["params"]["Dense_0"]["kernel"],
    )
    assert not np.allclose(kernel.scale.args[0], old_kernel.scale.args[0])


def test_linen_transposed_weight_normalization_normalises_output_units() -> None:
    kernel = jax.random.normal(jax.random.key(2), (3, 4))
    wrapped = lf.Parameterize(jnp.transpose, lf.WeightNormalization(kernel.T))
    np.testing.assert_allclose(lf.unwrap(wrapped), kernel, rtol=1e-5)
    assert wrapped.args[0].scale.args[0].shape == (4, 1)  # one scale per output unit


def test_nnx_wrapped_value_stays_a_param() -> None:
    model = wrapped_nnx()
    assert isinstance(model.hidden.kernel, nnx.Param)
    assert isinstance(model.hidden.kernel.get_value(), lf.WeightNormalization)
    assert isinstance(model.out.bias.get_value(), lf.NonTrainable)


def test_nnx_unwrapped_value_stays_a_param() -> None:
    model = wrapped_nnx()
    unwrapped = lf.unwrap(model)
    assert isinstance(unwrapped.hidden.kernel, nnx.Param)
    assert isinstance(unwrapped.hidden.kernel.get_value(), jax.Array)
    plain = NnxMLP(nnx.Rngs(0))
    np.testing.assert_allclose(
        unwrapped.hidden.kernel.get_value(), plain.hidden.kernel.get_value(), rtol=1e-5
    )
    np.testing.assert_allclose(unwrapped(X), plain(X), rtol=1e-5)


def test_nnx_state_filters_see_wrapped_params() -> None:
    model = wrapped_nnx()
    params = nnx.state(model, nnx.Param)
    assert set(params["hidden"]) == {"kernel", "bias"}
    assert isinstance(params["hidden"]["kernel"].get_value(), lf.WeightNormalization)
    assert set(nnx.state(lf.unwrap(model), nnx.Param)["hidden"]) == {"kernel", "bias"}


def test_nnx_optimizer_trains_the_raw_parameters() -> None:
    model = wrapped_nnx()

    def loss(model: Any) -> jax.Array:
        return jnp.mean((lf.unwrap(model)(X) - Y) ** 2)

    optimizer = nnx.Optimizer(model, optax.flatten(optax.adam(1e-2)), wrt=nnx.Param)

    @nnx.jit
    def step(model: Any, optimizer: Any) -> jax.Array:
        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    first = loss(model)
    raw_scale = model.hidden.kernel.get_value().scale.args[0]
    raw_weight = model.hidden.kernel.get_value().weight
    for _ in range(20):
        step(model, optimizer)
    assert loss(model) < first
    assert isinstance(model.hidden.kernel.get_value(), lf.WeightNormalization)
    assert not np.allclose(model.hidden.kernel.get_value().scale.args[0], raw_scale)
    assert not np.allclose(model.hidden.kernel.get_value().weight, raw_weight)
    np.testing.assert_array_equal(model.out.bias.get_value().tree, 0.0)


def test_nnx_wrapping_the_variable_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"lf\.at\.hidden\.kernel\.each\(\)\.wrap\(model, "):
        lf.at.hidden.kernel.wrap(NnxMLP(nnx.Rngs(0)), lf.WeightNormalization)


def test_nnx_wrapping_a_variable_by_traversal_is_refused() -> None:
    with pytest.raises(TypeError, match=r"nnx\.Param"):
        lf.at.hidden.each().wrap(NnxMLP(nnx.Rngs(0)), lf.non_trainable)


def test_nnx_model_shows_its_wrappers_in_treescope() -> None:
    treescope = pytest.importorskip("treescope")
    text = str(treescope.render_to_text(wrapped_nnx()))
    assert "kernel=Param(" in text
    assert "value=WeightNormalization(  # unwraps to f32[3,4]" in text
