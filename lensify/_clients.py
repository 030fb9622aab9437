"""Setting by value the wrappers of libraries lensify does not own: paramax's built-ins
and GPJax's parameter classes.

Nothing here imports paramax or GPJax: their classes are found in ``sys.modules``
when the walk first meets one of them (so they have been imported already), and
:func:`shipped_child_values` is asked only for a class that has no ``with_value``
of its own and none registered with :func:`lensify.register_with_value`.

A shipped inverse applies to a subclass only if the subclass keeps the base class's
``unwrap``: one that computes something else is not inverted by the base's inverse.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lensify import _walker
from lensify._inverses import ROUND_TRIP_RTOL, check_in_range, increasing_points_to_raw
from lensify.numerics import Found, check_where, checked_row_norms, wide_dtype
from lensify.wrappers import parameterize_child_values, unwrap

__all__ = ["shipped_child_values"]

ChildValues = Callable[[Any, Any, Any, Any], Any]
KEEP = _walker.KEEP


def _parameterize(wrapper: Any, children: Any, aux: Any, value: Any) -> Any:
    return parameterize_child_values(wrapper, children, value)


def _non_trainable(wrapper: Any, children: Any, aux: Any, value: Any) -> Any:
    return [value]


def _weight_normalization(wrapper: Any, children: Any, aux: Any, value: Any) -> Any:
    # paramax's unwrap is scale * weight / ‖weight‖ by row, as lensify's: the weight
    # takes the value and the scale its row norms (pushed into its own Parameterize).
    value = jnp.asarray(value)
    return [value, checked_row_norms(value)]


def _increasing(wrapper: Any, children: Any, aux: Any, value: Any) -> Any:
    old = jnp.asarray(unwrap(wrapper.arr))
    lower, upper = wrapper.interval
    raw = increasing_points_to_raw(
        value, (lower, upper), wrapper.min_width, wrapper.include_endpoints, old.shape[-1]
    )
    # The softmax forgets a constant: keep the old one, as lensify's wrapper does.
    return [raw + jnp.mean(old, axis=-1, keepdims=True), *[KEEP] * (len(children) - 1)]


_PARAMAX: dict[str, ChildValues] = {
    "Parameterize": _parameterize,
    "NonTrainable": _non_trainable,
    "WeightNormalization": _weight_normalization,
    "RealToIncreasingOnInterval": _increasing,
}


def _bijected(field: str) -> ChildValues:
    # A GPJax parameter whose unwrap is its bijector applied to its one child `field`:
    # the child takes the bijector's inverse, checked to be finite and to give the
    # value back (within ROUND_TRIP_RTOL epsilons), in one compiled call.
    def child_values(wrapper: Any, children: Any, aux: Any, value: Any) -> Any:
        cls = type(wrapper)
        key = (cls, getattr(wrapper, "low", None), getattr(wrapper, "high", None))
        old = getattr(wrapper, field)
        value = jnp.asarray(value, getattr(old, "dtype", None))
        raw, bad = _invert(key, value)

        def error(found: Found) -> ValueError:
            first = found.index
            return ValueError(
                f"{cls.__name__}: a value is outside the range of its bijector "
                f"{type(_bijection(key)).__name__.lstrip('_')} ({found.count} "
                f"position(s), the first at {first})."
            )

        check_where(bad, bad, error)  # an effect under jit: kept though unused
        return [raw]

    return child_values


@functools.cache
def _bijection(key: tuple[type, Any, Any]) -> Any:
    cls, low, high = key
    module = sys.modules["gpjax.parameters"]
    if issubclass(cls, module.LowerTriangular):
        return module._dtype_preserving_lower_cholesky
    if low is not None and high is not None:
        return module.biject_to(module.constraints.interval(low, high))
    return module.biject_to(cls._constraint)  # type: ignore[attr-defined]


@functools.partial(jax.jit, static_argnums=0)
def _invert(key: tuple[type, Any, Any], value: jax.Array) -> tuple[jax.Array, jax.Array]:
    bijection = _bijection(key)
    raw = bijection.inv(value)
    wide = wide_dtype(raw.dtype)
    target = value.astype(wide)
    back = jnp.asarray(bijection(raw), wide)
    tol = ROUND_TRIP_RTOL * jnp.finfo(raw.dtype).eps
    bad = jnp.abs(back - target) > tol * jnp.maximum(jnp.abs(target), 1.0)
    if raw.shape == bad.shape:
        return raw, bad | ~jnp.isfinite(raw)
    return raw, bad | ~jnp.all(jnp.isfinite(raw))  # the flat raw of a matrix value


def _real(wrapper: Any, children: Any, aux: Any, value: Any) -> Any:
    value = jnp.asarray(value)
    return [
        check_in_range(value, value, _identity, "Real", round_trip=False, owner="Real"),
    ]


def _identity(x: Any) -> Any:
    return x


_GPJAX: dict[str, ChildValues] = {
    "PositiveReal": _bijected("_unconstrained"),
    "NonNegativeReal": _bijected("_unconstrained"),
    "SigmoidBounded": _bijected("_unconstrained"),
    "LowerTriangular": _bijected("_flat"),
    "Real": _real,
}


def _match(cls: type, module: Any, table: dict[str, ChildValues]) -> ChildValues | None:
    if module is None:
        return None
    for name, child_values in table.items():
        base = getattr(module, name, None)
        if isinstance(base, type) and issubclass(cls, base):
            return child_values if cls.unwrap is base.unwrap else None  # type: ignore[attr-defined]
    return None


def shipped_child_values(cls: type) -> ChildValues | None:
    """How to set a wrapper of class ``cls`` by value, if it is (or derives from) one
    of paramax's built-ins or GPJax's parameters, else None."""
    found = _match(cls, sys.modules.get("gpjax.parameters"), _GPJAX)
    if found is None:
        found = _match(cls, sys.modules.get("paramax.wrappers"), _PARAMAX)
    return found
