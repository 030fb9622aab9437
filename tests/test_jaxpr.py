"""``unwrap`` adds nothing to the traced computation: its jaxpr is the hand-written one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core as jex_core

import lensify as lf


def _primitives(jaxpr: Any) -> list[str]:
    """The primitive names of every equation, sub-jaxprs included, in order."""
    names: list[str] = []
    for eqn in jaxpr.eqns:
        names.append(eqn.primitive.name)
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                if isinstance(sub, jex_core.ClosedJaxpr):
                    names += _primitives(sub.jaxpr)
                elif isinstance(sub, jex_core.Jaxpr):
                    names += _primitives(sub)
    return names


def _same_equations(fn: Callable[..., Any], reference: Callable[..., Any], *args: Any) -> None:
    ours = _primitives(jax.make_jaxpr(fn)(*args).jaxpr)
    theirs = _primitives(jax.make_jaxpr(reference)(*args).jaxpr)
    assert ours == theirs
    assert Counter(ours) == Counter(theirs)


def test_parameterize_exp_jaxpr() -> None:
    x = jnp.ones((2, 3))
    _same_equations(lambda x: lf.unwrap(lf.Parameterize(jnp.exp, x)), jnp.exp, x)
    assert _primitives(
        jax.make_jaxpr(lambda x: lf.unwrap(lf.Parameterize(jnp.exp, x)))(x).jaxpr
    ) == ["exp"]


def test_parameterize_as_input_jaxpr() -> None:
    wrapper = lf.Parameterize(jnp.exp, jnp.ones(3))
    _same_equations(lf.unwrap, lambda p: jnp.exp(p.args[0]), wrapper)


def test_non_trainable_jaxpr() -> None:
    x = jnp.ones(3)
    _same_equations(lambda x: lf.unwrap(lf.NonTrainable(x)), jax.lax.stop_gradient, x)
    assert _primitives(jax.make_jaxpr(lambda x: lf.unwrap(lf.NonTrainable(x)))(x).jaxpr) == [
        "stop_gradient"
    ]


def test_weight_normalization_jaxpr() -> None:
    wrapper = lf.WeightNormalization(jnp.arange(6.0).reshape(2, 3) + 1.0)

    def by_hand(wn: Any) -> jax.Array:
        weight, raw = wn.weight, wn.scale.args[0]
        scale = jax.nn.softplus(raw)
        return scale * weight / jnp.linalg.norm(weight, axis=-1, keepdims=True)

    _same_equations(lf.unwrap, by_hand, wrapper)
