"""Setting by value the wrappers of libraries lensify does not own: paramax's built-ins
and GPJax's parameter classes.

Nothing here imports paramax or GPJax: their classes are found in ``sys.modules``
when the walk first meets one of them (so they have been imported already), and
:func:`shipped_with_value` is asked only for a class that has no ``with_value``
of its own and none registered with :func:`lensify.register_with_value`. What it
ships is a ``with_value`` function, ``fn(wrapper, value) -> wrapper``, as a user
would register: the returned wrapper keeps the children it does not set (the very
same objects), and rewrap pushes the values it gives into the wrapper's children.

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

from lensify._inverses import ROUND_TRIP_RTOL, check_in_range, increasing_points_to_raw
from lensify._walker import join, split
from lensify.numerics import Found, check_where, checked_row_norms, wide_dtype
from lensify.wrappers import parameterize_raw, unwrap

__all__ = ["shipped_with_value"]

WithValue = Callable[[Any, Any], Any]


def _with(wrapper: Any, start: int, *values: Any) -> Any:
    # The wrapper with its children from start on replaced by values, the others kept.
    children, aux = split(wrapper)
    end = start + len(values)
    return join(type(wrapper), aux, [*children[:start], *values, *children[end:]])


def _parameterize(wrapper: Any, value: Any) -> Any:
    # Its children are (fn, args, kwargs), as the fields are declared.
    k, raw = parameterize_raw(wrapper, value)
    args = wrapper.args
    return _with(wrapper, 1, (*args[:k], raw, *args[k + 1 :]))


def _non_trainable(wrapper: Any, value: Any) -> Any:
    return _with(wrapper, 0, value)


def _weight_normalization(wrapper: Any, value: Any) -> Any:
    # paramax's unwrap is scale * weight / ‖weight‖ by row, as lensify's: the weight
    # takes the value and the scale its row norms (pushed into its own Parameterize).
    value = jnp.asarray(value)
    return _with(wrapper, 0, value, checked_row_norms(value))


def _increasing(wrapper: Any, value: Any) -> Any:
    old = jnp.asarray(unwrap(wrapper.arr))
    lower, upper = wrapper.interval
    raw = increasing_points_to_raw(
        value, (lower, upper), wrapper.min_width, wrapper.include_endpoints, old.shape[-1]
    )
    # The softmax forgets a constant: keep the old one, as lensify's wrapper does.
    return _with(wrapper, 0, raw + jnp.mean(old, axis=-1, keepdims=True))


_PARAMAX: dict[str, WithValue] = {
    "Parameterize": _parameterize,
    "NonTrainable": _non_trainable,
    "WeightNormalization": _weight_normalization,
    "RealToIncreasingOnInterval": _increasing,
}


def _bijected(field: str) -> WithValue:
    # A GPJax parameter whose unwrap is its bijector applied to its one child `field`:
    # the child takes the bijector's inverse, checked to be finite and to give the
    # value back (within ROUND_TRIP_RTOL epsilons), in one compiled call.
    def with_value(wrapper: Any, value: Any) -> Any:
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
        return _with(wrapper, 0, raw)

    return with_value


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


def _real(wrapper: Any, value: Any) -> Any:
    value = jnp.asarray(value)
    return _with(
        wrapper, 0, check_in_range(value, value, _identity, "Real", round_trip=False, owner="Real")
    )


def _identity(x: Any) -> Any:
    return x


_GPJAX: dict[str, WithValue] = {
    "PositiveReal": _bijected("_unconstrained"),
    "NonNegativeReal": _bijected("_unconstrained"),
    "SigmoidBounded": _bijected("_unconstrained"),
    "LowerTriangular": _bijected("_flat"),
    "Real": _real,
}


def _match(cls: type, module: Any, table: dict[str, WithValue]) -> WithValue | None:
    if module is None:
        return None
    for name, with_value in table.items():
        base = getattr(module, name, None)
        if isinstance(base, type) and issubclass(cls, base):
            return with_value if cls.unwrap is base.unwrap else None  # type: ignore[attr-defined]
    return None


def shipped_with_value(cls: type) -> WithValue | None:
    """How to set a wrapper of class ``cls`` by value, if it is (or derives from) one
    of paramax's built-ins or GPJax's parameters, else None."""
    found = _match(cls, sys.modules.get("gpjax.parameters"), _GPJAX)
    if found is None:
        found = _match(cls, sys.modules.get("paramax.wrappers"), _PARAMAX)
    return found
