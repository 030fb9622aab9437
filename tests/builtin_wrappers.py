"""Every built-in wrapper, every catalogued constraint and some nested stacks.

A shared corpus for the interoperability tests (orbax, treescope): each entry builds
its tree from concrete values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import lensify as lf
from lensify.testing import CATALOGUE


def _x() -> jax.Array:
    return jnp.array([[0.5, 1.5, 0.25], [2.0, 0.75, 1.0]])


def _softplus_of_sum(a: jax.Array, b: jax.Array) -> jax.Array:
    return jax.nn.softplus(a + b)


WRAPPERS: dict[str, Callable[[], Any]] = {
    "non_trainable": lambda: lf.NonTrainable(_x()),
    "parameterize_function": lambda: lf.Parameterize(jnp.exp, _x()),
    "parameterize_kwargs": lambda: lf.Parameterize(_softplus_of_sum, _x(), b=jnp.ones(3)),
    "parameterize_lambda": lambda: lf.Parameterize(lambda a: a**2, _x()),
    "weight_normalization": lambda: lf.WeightNormalization(_x()),
    "increasing_on_interval": lambda: lf.RealToIncreasingOnInterval(
        jnp.zeros((2, 3)), (0.0, 1.0), min_width=0.1, include_endpoints="both"
    ),
    **{
        entry.name: (lambda entry=entry: entry.build(entry.example((2, *entry.event_shape(3)))))
        for entry in CATALOGUE
    },
    "stack_frozen_weight_norm_of_positive": lambda: lf.NonTrainable(
        lf.WeightNormalization(lf.positive(_x()))
    ),
    "stack_parameterize_of_interval": lambda: lf.Parameterize(
        jnp.tanh, lf.interval(_x(), 0.0, 3.0)
    ),
    "stack_model": lambda: {
        "layers": [
            {"w": lf.WeightNormalization(_x()), "b": lf.non_trainable(jnp.zeros(2))},
            {"w": lf.positive(_x()), "b": None},
        ],
        "scale": lf.Parameterize(jax.nn.softplus, jnp.array(0.5)),
    },
}
