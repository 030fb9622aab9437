"""The compiled maps of the built-in constraints, and the tests they run in one call.

A built-in constraint given a concrete array runs its forward map, its inverse map
with the support test, or its value and log-det, as one compiled computation:
eagerly, each jnp operation would be a dispatch of its own. Each is keyed on the
class, its structure without its data fields (bounds), and the shape and dtype of
its arguments: the bound values are traced arguments, so a new bound compiles
nothing (jit's own caches, bounded, hold the computations).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lensify import _records
from lensify.numerics import nonfinite, summary, wide_dtype

__all__ = [
    "child_names",
    "forward_in_one_call",
    "inverse_if_inside",
    "keyed",
    "log_det_from",
    "not_finite",
    "outside",
    "raw_not_finite",
    "runs_compiled",
]


class _Slot:
    """Where a data field (a bound) was, in the structure a compiled map is keyed on:
    its shape only. The value is passed to the map as a traced argument."""

    __slots__ = ("shape",)

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __eq__(self, other: object) -> bool:
        return type(other) is _Slot and other.shape == self.shape

    def __hash__(self) -> int:
        return hash((_Slot, self.shape))


def keyed(
    constraint: Any, structure: _records.Structure | None = None
) -> tuple[_records.Structure, tuple[np.ndarray, ...]]:
    """``(key, data)``: the structure of ``constraint`` (of one child, raw; given, if
    its split is at hand) with each of its data fields (bounds) replaced by its
    shape, and their values as float64 arrays.

    A compiled map is keyed on its class, its ``key``, and the shape and dtype of
    its arguments, ``data`` among them: a new bound value costs no compilation."""
    names = type(constraint)._data_fields
    if not names:
        return structure or _records.split(constraint)[1], ()
    data = tuple(np.asarray(getattr(constraint, name), dtype=np.float64) for name in names)
    slots = {name: _Slot(value.shape) for name, value in zip(names, data, strict=True)}
    return _records.split(_records.evolve(constraint, raw=None, **slots))[1], data


def _rebuilt(cls: Any, key: _records.Structure, data: tuple[jax.Array, ...], raw: Any) -> Any:
    # The constraint a compiled map runs: its data fields hold the traced values.
    constraint = _records.join(cls, key, (raw,))
    return _records.evolve(constraint, **dict(zip(cls._data_fields, data, strict=True)))


@functools.partial(jax.jit, static_argnums=(0, 1))
def forward_in_one_call(cls: type, key: Any, data: Any, raw: jax.Array) -> jax.Array:
    """A built-in constraint's forward map as one compiled computation, for an eager
    ``unwrap``: each jnp operation would otherwise be a dispatch (and, for each new
    shape, a compilation) of its own. Rebuilt from its class, structure and data
    (see :func:`keyed`), as :func:`inverse_if_inside` is."""
    return _rebuilt(cls, key, data, None).forward(raw)


@functools.partial(jax.jit, static_argnums=(0, 1))
def inverse_if_inside(
    cls: type, key: Any, data: Any, value: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """A built-in constraint's inverse map, and one flag reduced on the devices:
    whether every entry of ``value`` is finite and in the support and the raw
    array is finite and not empty. One compiled computation: eagerly, each jnp
    operation (and the support test) would be a dispatch of its own, and only the
    flag reaches the host. For classes whose only child is ``raw``, which neither
    map reads: the constraint is rebuilt from its class, structure and data (see
    :func:`keyed`); jit's own cache keeps one computation per class, structure
    without data, shape and dtype."""
    constraint = _rebuilt(cls, key, data, None)
    # The support test reads subnormal numbers as zero, as XLA's eager comparisons
    # do; made explicit, because inside one fused computation XLA may read them as
    # they are in one operation and as zero in the next. The inverse map gets the
    # value as it is (a symmetric matrix keeps its subnormal entries).
    smallest = jnp.finfo(wide_dtype(value.dtype)).tiny
    flushed = jnp.where(jnp.abs(value) < smallest, jnp.zeros_like(value), value)
    inside = jnp.all(constraint.in_support(flushed) & jnp.isfinite(value))
    raw = constraint.inverse(value)
    # The raw array's shape may differ from the value's (a simplex's has one entry
    # fewer): the test is one flag. An empty raw array cannot say: the eager maps do.
    return raw, inside & jnp.all(jnp.isfinite(raw)) & (raw.size > 0)


def log_det_from(key: Any, arrays: Any) -> jax.Array:
    """The log-det of a built-in constraint from its static ``key`` (class and
    structure without bounds) and traced ``arrays`` (raw, and the bounds, see
    :func:`keyed`): computed inside ``unwrap_with_log_det``'s one compiled sum, so a
    new bound value compiles nothing."""
    cls, structure = key
    raw, data = arrays
    return jnp.asarray(_rebuilt(cls, structure, data, raw).log_det())


def not_finite(x: jax.Array) -> jax.Array:
    return ~jnp.isfinite(x)


def raw_not_finite(arrays: list[jax.Array]) -> jax.Array:
    return nonfinite(arrays[1])


@jax.jit
def outside(value: jax.Array, inside: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    # The support test's summary, reduced on the devices (see numerics.summary).
    bad = ~(jnp.broadcast_to(inside, value.shape) & jnp.isfinite(value))
    return summary(value, bad)


_COMPILED_MAPS = {
    "_compiled_forward": ("forward",),
    "_compiled_inverse": ("inverse", "in_support"),
    "_compiled_log_det": ("forward", "log_det"),
}


@functools.cache
def runs_compiled(cls: type, flag: str) -> bool:
    """Whether ``cls`` runs the maps ``flag`` names compiled: the class that set the
    flag did, and ``cls`` has its maps and its one child, raw. A subclass that
    writes its own map (which may read values in numpy) runs it as written."""
    owner = next((k for k in cls.__mro__ if flag in k.__dict__), None)
    if owner is None or not owner.__dict__[flag] or child_names(cls) != ("raw",):
        return False
    return all(getattr(cls, name) is getattr(owner, name) for name in _COMPILED_MAPS[flag])


@functools.cache
def child_names(cls: type) -> tuple[str, ...]:
    return tuple(key.name for key in _records.record_keys(cls))
