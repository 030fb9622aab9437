"""``unwrap`` adds nothing to the traced computation: its jaxpr is the hand-written one.

The jaxprs are compared equation by equation: the same primitive, the same parameters
(sub-jaxprs compared the same way, recursively), the same operand avals and the same
wiring (each operand is the same input, literal or earlier result in both).
"""

from __future__ import annotations

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


def _assert_same_param(ours: Any, theirs: Any, where: str) -> None:
    if isinstance(ours, jex_core.ClosedJaxpr):
        assert isinstance(theirs, jex_core.ClosedJaxpr), where
        assert [str(c) for c in ours.consts] == [str(c) for c in theirs.consts], where
        _assert_same_jaxpr(ours.jaxpr, theirs.jaxpr, where)
    elif isinstance(ours, jex_core.Jaxpr):
        assert isinstance(theirs, jex_core.Jaxpr), where
        _assert_same_jaxpr(ours, theirs, where)
    elif isinstance(ours, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _assert_same_param(a, b, f"{where}[{i}]")
    elif callable(ours) and not isinstance(ours, type):
        # A custom rule (a jvp, say) is a fresh wrapper object on every trace.
        assert callable(theirs) and type(ours) is type(theirs), where
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def _assert_same_jaxpr(ours: Any, theirs: Any, where: str = "jaxpr") -> None:
    """Assert two jaxprs have the same equations, parameters and wiring."""
    assert len(ours.eqns) == len(theirs.eqns), (
        f"{where}: {[e.primitive.name for e in ours.eqns]} != "
        f"{[e.primitive.name for e in theirs.eqns]}"
    )
    # Each variable of ours, mapped to the variable of theirs in the same place.
    names: dict[Any, Any] = {}

    def bind(a: Any, b: Any, what: str) -> None:
        assert a.aval == b.aval, f"{what}: {a.aval} != {b.aval}"
        names[a] = b

    def same_operand(a: Any, b: Any, what: str) -> None:
        if isinstance(a, jex_core.Literal):
            assert isinstance(b, jex_core.Literal), what
            assert a.aval == b.aval and str(a) == str(b), f"{what}: {a} != {b}"
        else:
            assert not isinstance(b, jex_core.Literal), what
            assert names[a] is b, f"{what}: operand {a} is not wired like {b}"

    assert len(ours.constvars) == len(theirs.constvars), where
    assert len(ours.invars) == len(theirs.invars), where
    for i, (a, b) in enumerate(
        zip(ours.constvars + ours.invars, theirs.constvars + theirs.invars, strict=True)
    ):
        bind(a, b, f"{where} input {i}")
    for n, (ea, eb) in enumerate(zip(ours.eqns, theirs.eqns, strict=True)):
        at = f"{where} equation {n} ({ea.primitive.name})"
        assert ea.primitive == eb.primitive, f"{at}: {ea.primitive} != {eb.primitive}"
        assert sorted(ea.params) == sorted(eb.params), at
        for key in ea.params:
            _assert_same_param(ea.params[key], eb.params[key], f"{at} param {key}")
        assert len(ea.invars) == len(eb.invars), at
        for i, (a, b) in enumerate(zip(ea.invars, eb.invars, strict=True)):
            same_operand(a, b, f"{at} operand {i}")
        assert len(ea.outvars) == len(eb.outvars), at
        for i, (a, b) in enumerate(zip(ea.outvars, eb.outvars, strict=True)):
            bind(a, b, f"{at} result {i}")
    assert len(ours.outvars) == len(theirs.outvars), where
    for i, (a, b) in enumerate(zip(ours.outvars, theirs.outvars, strict=True)):
        same_operand(a, b, f"{where} output {i}")


def _same_equations(fn: Callable[..., Any], reference: Callable[..., Any], *args: Any) -> None:
    ours, theirs = jax.make_jaxpr(fn)(*args), jax.make_jaxpr(reference)(*args)
    _assert_same_jaxpr(ours.jaxpr, theirs.jaxpr)
    assert str(ours) == str(theirs)


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
        scaled = jax.nn.softplus(raw) * weight
        # The row norm scaled by the row's largest magnitude, so that it cannot overflow.
        biggest = jnp.max(jnp.abs(weight), axis=-1, keepdims=True)
        safe = jnp.where(biggest == 0, jnp.ones_like(biggest), biggest)
        return scaled / (biggest * jnp.linalg.norm(weight / safe, axis=-1, keepdims=True))

    _same_equations(lf.unwrap, by_hand, wrapper)
