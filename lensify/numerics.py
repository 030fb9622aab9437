"""Numerical helpers: inverse maps and value checks that work eagerly and under jit.

The value checks (:func:`check_values`, :func:`check_where`) are the one place where
lensify checks values at trace time. With concrete inputs a check runs at once. Under
``jax.jit``, ``jax.vmap`` or ``jax.grad`` it is a host callback run for its effect when
the computation runs: it is never pruned, even when nothing uses its result; it is
allowed inside ``jax.checkpoint``; and it only reads the values, so the checked array
keeps its sharding and its gradient. Under a transformation, and eagerly for a sharded
array, a multi-host global array or one of more than :data:`HOST_READ_ENTRIES` entries,
the mask is reduced on the devices to a flag and, only when it is set, a count, the
first bad index and the value there (:func:`summary`); only those scalars reach the
host. So a sharded array is never gathered, and in a multi-host run every process
reads the same replicated scalars and raises the same error. A small array on one
device is read on the host whole, which costs less than a dispatch.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lensify._located import LocatedError, located

__all__ = [
    "Found",
    "ValueCheckError",
    "check_all",
    "nonfinite",
    "check_values",
    "checked_row_norms",
    "check_where",
    "host_readable",
    "host_values",
    "inv_softplus",
    "inv_softplus_unchecked",
    "is_concrete",
    "row_norms",
    "wide_dtype",
]


# The type of a concrete jax array (not a tracer): an exact-type test is cheapest.
# Named without making an array, so that importing lensify does not start JAX's
# backend (jax.distributed.initialize must come first in a multi-host program).
try:
    from jax._src.array import ArrayImpl as _ArrayImpl
except ImportError:  # pragma: no cover - a JAX that moved it

    class _ArrayImpl:  # type: ignore[no-redef]
        """Never matched: the exact-type fast paths give way to the general ones."""


CONCRETE_ARRAY: Any = _ArrayImpl


# Arrays up to this many entries held by one device are read on the host whole (one
# transfer, which JAX keeps with the array for later reads): a dispatch and a
# flag's transfer would cost more. Larger or sharded arrays, and every global array
# of a multi-host run, are reduced on their devices.
HOST_READ_ENTRIES = 1 << 14


def host_readable(x: Any) -> bool:
    """Whether ``x`` is a concrete jax array of at most :data:`HOST_READ_ENTRIES`
    entries on a single device, which a check reads on the host whole."""
    return (
        type(x) is CONCRETE_ARRAY
        and x.size <= HOST_READ_ENTRIES
        and isinstance(x.sharding, jax.sharding.SingleDeviceSharding)
    )


def host_values(x: Any) -> np.ndarray | None:
    """``x`` as a numpy array if it is :func:`host_readable` (a numpy array as it
    is), else None: then a check reduces it on its devices."""
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x) if host_readable(x) else None


def is_concrete(x: Any) -> bool:
    """Whether ``x`` holds values now (it is not a tracer of a transformation)."""
    return not isinstance(x, jax.core.Tracer)


def _as_array(x: ArrayLike) -> jax.Array:
    # jnp.asarray of what is already a jax array costs as much as a small computation.
    return x if isinstance(x, jax.Array) else jnp.asarray(x)


def wide_dtype(dtype: Any) -> Any:
    """The dtype to compute a map of ``dtype`` values in: at least float32.

    float16 and bfloat16 overflow at 65504 and 3e38 with a few bits of precision;
    evaluating a map in float32 and rounding once at the end keeps it as exact as the
    narrow dtype can hold.

    Example:
        >>> import jax.numpy as jnp
        >>> from lensify.numerics import wide_dtype
        >>> wide_dtype(jnp.float16), wide_dtype(jnp.float32)
        (dtype('float32'), dtype('float32'))
    """
    return jnp.promote_types(dtype, jnp.float32)


class ValueCheckError(LocatedError, ValueError):
    """A value check of lensify's failed: a value outside a function's range, a
    weight with a row of zeros, a negative input to ``inv_softplus``.

    A :class:`ValueError`; raised by a walk (``lf.rewrap``) its message starts with
    the key path, ``at <path>: <what>``, eagerly and under ``jax.jit`` alike.
    """


class CheckLabel:
    """Where a traced check was made: the wrapper it was made for and that wrapper's
    key path, both given by the walk once the wrapper's ``with_value`` has returned."""

    __slots__ = ("owner", "path")

    def __init__(self, owner: Any = None) -> None:
        self.owner = owner
        self.path: str | None = None

    def located(self, error: Exception) -> BaseException:
        """``error`` saying where, as the walk says it eagerly."""
        assert self.path is not None
        return located(error, self.path, f"rewrapping {type(self.owner).__name__}")


class TracedChecks:
    """The checks traced while a walk runs, collected so that the walk can label them.

    Under ``jax.jit`` a check fails when the computation runs, long after the walk
    that made it has returned, so the walk's usual way of naming the key path (as
    an error travels out of it) cannot. ``lf.rewrap`` instead keeps one of these in
    :data:`TRACED_CHECKS` while it walks: a check traced meanwhile adds its label,
    and the walk, which alone knows key paths, gives the labels added during each
    wrapper's ``with_value`` that wrapper and its path (:meth:`claim`). Only the
    collection travels in the context variable; no path or place does.
    """

    __slots__ = ("labels",)

    def __init__(self) -> None:
        self.labels: list[CheckLabel] = []

    def label(self) -> CheckLabel:
        label = CheckLabel()
        self.labels.append(label)
        return label

    def claim(self, start: int, owner: Any, path: str) -> None:
        """Label the checks traced since ``len(labels)`` was ``start`` that no inner
        walk has labelled: they were made for ``owner``, at ``path``."""
        for label in self.labels[start:]:
            if label.owner is None:
                label.owner, label.path = owner, path


TRACED_CHECKS: contextvars.ContextVar[TracedChecks | None] = contextvars.ContextVar(
    "lensify_traced_checks", default=None
)


@dataclasses.dataclass(frozen=True)
class Found:
    """What a failed check found, reduced on the devices: all that reaches the host.

    Attributes:
        count: How many entries are bad.
        index: The index of the first bad entry (in row-major order), a tuple of ints.
        value: The checked array's entry there, a numpy scalar of its dtype.
        shape: The shape checked (the value's and the mask's, broadcast together).
    """

    count: int
    index: tuple[int, ...]
    value: Any
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """How many entries were checked."""
        return int(np.prod(self.shape, dtype=np.int64))


def summary(x: jax.Array, bad: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(count, first, value)``: how many entries of ``bad`` are True, the flat index
    of the first (row-major; ``x.size`` if none) and ``x``'s entry there.

    Traceable, and made of elementwise operations and full reductions only, so that
    on a sharded (or multi-host global) array each device reduces its own shard and
    only three scalars cross between devices: nothing is gathered.
    """
    shape = jnp.broadcast_shapes(jnp.shape(x), jnp.shape(bad))
    x = jnp.broadcast_to(x, shape)
    bad = jnp.broadcast_to(jnp.asarray(bad, bool), shape)
    size = int(np.prod(shape, dtype=np.int64))
    itype = jax.dtypes.canonicalize_dtype(jnp.int64) if size >= 2**31 else jnp.int32
    # The count, first index and its value only when there is a bad entry: in the
    # usual case a check costs one fused pass over the array.
    return jax.lax.cond(
        any_true(bad),
        lambda: (jnp.sum(bad, dtype=itype), *_first_bad(x, bad, itype)),
        lambda: (jnp.zeros((), itype), jnp.asarray(size, itype), jnp.zeros((), x.dtype)),
    )


def nonfinite(x: jax.Array) -> jax.Array:
    """Whether a float array may hold a NaN or an infinity: whether its sum is not
    finite. One reduction with nothing to compute first, which XLA runs at the speed
    of reading the array. A NaN or an infinity makes the sum NaN or infinite in any
    order of summation (unlike a minimum, which a collective across processes may
    take without propagating NaN); a sum that overflows says True for finite
    entries, so a caller treats True as "look closer", never as an error.
    """
    wide = x if x.dtype.itemsize >= 4 else x.astype(jnp.float32)
    return ~jnp.isfinite(jnp.sum(wide))


def any_true(mask: jax.Array) -> jax.Array:
    """Whether any entry of the boolean ``mask`` is True, as a float sum: XLA's CPU
    backend vectorises it, and runs a boolean ``any`` several times slower."""
    return jnp.sum(jnp.where(mask, jnp.float32(1), jnp.float32(0))) > 0


def _first_bad(x: jax.Array, bad: jax.Array, itype: Any) -> tuple[jax.Array, jax.Array]:
    shape = x.shape
    size = int(np.prod(shape, dtype=np.int64))
    flat = jnp.zeros(shape, itype)
    stride = 1
    for axis in reversed(range(len(shape))):
        flat = flat + jax.lax.broadcasted_iota(itype, shape, axis) * stride
        stride *= shape[axis]
    first = jnp.min(jnp.where(bad, flat, jnp.asarray(size, itype)), initial=size)
    # The entry at `first`, by masked reductions (a gather would move the array).
    if x.dtype == jnp.bool_:
        lowest: Any = False
    elif jnp.issubdtype(x.dtype, jnp.inexact):
        lowest = -jnp.inf
    else:
        lowest = jnp.iinfo(x.dtype).min
    alone = jnp.sum(jnp.where(flat == first, x, jnp.zeros((), x.dtype)))
    if not jnp.issubdtype(x.dtype, jnp.floating):  # no order, or no NaN
        return first, alone if x.dtype != jnp.bool_ else alone.astype(bool)
    # The sum of the one entry carries a NaN through any collective; the maximum
    # keeps the sign of -0.0.
    picked = jnp.max(jnp.where(flat == first, x, jnp.asarray(lowest, x.dtype)), initial=lowest)
    return first, jnp.where(jnp.isnan(alone), alone, picked)


_summary = jax.jit(summary)


def found(count: Any, first: Any, value: Any, shape: tuple[int, ...]) -> Found:
    """The :class:`Found` of a :func:`summary`, its scalars read on the host."""
    count, first, value = jax.device_get((count, first, value))
    index = tuple(int(i) for i in np.unravel_index(int(first), shape)) if shape else ()
    return Found(int(count), index, np.asarray(value)[()], tuple(shape))


def _host_check(x: jax.Array, bad: Mask, error: Callable[[Found], Exception]) -> None:
    # Concrete operands are reduced on their devices at once, and only the count
    # (then, if it is not 0, the first index and value) is read: a replicated
    # scalar that every process of a multi-host run can read, and reads alike, so
    # every process raises the same error at the same point. Traced ones are
    # reduced inside the computation (see check_all), and only scalars go to a
    # debug callback: an effect, so XLA keeps it even when nothing uses a result
    # (a constraint with an empty raw array stores nothing computed from its
    # value), and the one kind of effect jax.checkpoint accepts. It is
    # partitioned: each device runs it on its copy of the (replicated) scalars, so
    # under a multi-host jit every process raises, and no array is gathered onto
    # one device.
    mask = bad(x) if callable(bad) and is_concrete(x) else bad
    if is_concrete(x) and is_concrete(mask):
        shape = tuple(jnp.broadcast_shapes(jnp.shape(x), jnp.shape(mask)))
        values, bad_np = host_values(x), host_values(mask)
        if values is not None and bad_np is not None:  # small, on one device
            if np.count_nonzero(bad_np):
                values, bad_np = np.broadcast_arrays(values, bad_np)
                index = tuple(int(i) for i in np.argwhere(bad_np)[0])
                count = int(np.count_nonzero(bad_np))
                raise error(Found(count, index, values[index], shape))
            return
        count, first, value = _summary(x, mask)
        if np.asarray(count):
            raise error(found(count, first, value, shape))
        return
    check_all([(x, bad, error)])


Mask = Any  # a boolean array, or a traceable function of the checked array giving one


def check_all(
    checks: list[tuple[jax.Array, Mask, Callable[[Found], Exception]]],
    flag: Callable[[list[jax.Array]], jax.Array] | None = None,
) -> None:
    """Run several :func:`check_where` checks ``(x, bad, error)`` as one, in order: the
    first that finds a bad entry raises. ``bad`` is a boolean array, or a function
    of ``x`` giving one (computed where it is needed, so that XLA fuses it into the
    reductions rather than storing it).

    Traced, the usual case costs one flag reduced on the devices over every mask;
    the counts, first indices and values are computed only when the flag is set,
    and only those scalars go to the host callback, which runs only then. A caller
    that knows a cheaper test passes it as ``flag``: a function of the checked
    arrays giving a scalar that is True whenever a mask has a True entry
    (``nonfinite`` of an array that holds a NaN wherever a mask is True is two plain
    reductions).
    """
    if all(is_concrete(x) and (callable(bad) or is_concrete(bad)) for x, bad, _ in checks):
        for x, bad, error in checks:
            _host_check(x, bad, error)
        return
    shapes = [_mask_shape(x, bad) for x, bad, _ in checks]
    errors = [error for _, _, error in checks]
    functions = [bad if callable(bad) else None for _, bad, _ in checks]
    traced = TRACED_CHECKS.get()
    label = traced.label() if traced is not None else None

    def host(*scalars: Any) -> None:
        for i, (shape, error) in enumerate(zip(shapes, errors, strict=True)):
            count, first, value = scalars[3 * i : 3 * i + 3]
            if int(np.asarray(count)):
                try:
                    raise error(found(count, first, value, shape))
                except Exception as raised:
                    if label is None or label.path is None:
                        raise
                    raise label.located(raised) from None

    @jax.jit
    def effect(pairs: list[tuple[jax.Array, Any]]) -> None:
        def masks() -> list[jax.Array]:
            out = []
            for (x, b), fn, shape in zip(pairs, functions, shapes, strict=True):
                mask = fn(x) if fn is not None else b
                out.append(jnp.broadcast_to(jnp.asarray(mask, bool), shape))
            return out

        if flag is not None:
            found_any = flag([x for x, _ in pairs])
        elif len(set(shapes)) == 1:
            found_any = any_true(functools.reduce(jnp.logical_or, masks()))
        else:
            found_any = functools.reduce(jnp.logical_or, [any_true(m) for m in masks()])

        def report() -> None:
            found = zip(pairs, masks(), strict=True)
            details = [s for (x, _), mask in found for s in summary(x, mask)]
            jax.debug.callback(host, *details, partitioned=True)

        # The host is called only when the flag is set: a callback on every call
        # costs a trip to Python per device, about as much as the check itself.
        jax.lax.cond(found_any, report, lambda: None)

    stop = jax.lax.stop_gradient
    effect([(stop(x), None if callable(bad) else stop(bad)) for x, bad, _ in checks])


def _mask_shape(x: jax.Array, bad: Mask) -> tuple[int, ...]:
    mask_shape = jax.eval_shape(bad, x).shape if callable(bad) else jnp.shape(bad)
    return tuple(jnp.broadcast_shapes(jnp.shape(x), mask_shape))


def check_values(x: ArrayLike, bad: Callable[[jax.Array], jax.Array], message: str) -> jax.Array:
    """Return ``x`` unchanged, raising a :class:`ValueCheckError` (a ``ValueError``)
    with ``message`` where ``bad(x)`` is True.

    ``bad`` is called on ``x`` as a JAX array and must be traceable (``jnp``
    operations): the mask is reduced on the devices, and only the count and the
    first bad entry reach the host, so a sharded or multi-host global array is
    never gathered. With a concrete ``x`` the check runs at once. Under
    ``jax.jit``/``jax.vmap`` it runs when the computation does, through a host
    callback, and the error surfaces as a ``jax.errors.JaxRuntimeError`` carrying
    the same message. The check is the identity for differentiation and keeps the
    sharding of ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from lensify.numerics import check_values
        >>> check_values(jnp.ones(2), lambda v: v < 0, "negative")
        Array([1., 1.], dtype=float32)
        >>> check_values(jnp.array([1.0, -2.0]), lambda v: v < 0, "negative")
        Traceback (most recent call last):
        ...
        lensify.numerics.ValueCheckError: negative (got -2.0 at 1 position(s)).
    """
    x = _as_array(x)

    def error(what: Found) -> ValueError:
        return ValueCheckError(
            f"{message} (got {what.value.item()!r} at {what.count} position(s))."
        )

    _host_check(x, bad, error)
    return x


def inv_softplus(x: ArrayLike) -> jax.Array:
    """The inverse of ``jax.nn.softplus``: ``log(expm1(x))``, computed stably.

    Defined for ``x >= 0`` (``-inf`` at 0). float16 and bfloat16 inputs are
    computed in float32 and rounded once, so their subnormal numbers keep their
    value. A negative input is a ``ValueError`` when ``x`` is concrete, and a
    ``jax.errors.JaxRuntimeError`` with the same message under ``jax.jit`` or
    ``jax.vmap``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> x = jnp.array([0.5, 1.0, 20.0])
        >>> bool(jnp.allclose(jax.nn.softplus(lf.inv_softplus(x)), x))
        True
        >>> lf.inv_softplus(jnp.array(-1.0))
        Traceback (most recent call last):
        ...
        lensify.numerics.ValueCheckError: inv_softplus expects non-negative
        input (got -1.0 at 1 position(s)).
    """
    x = _as_array(x)
    concrete = not isinstance(x, jax.core.Tracer)
    if not concrete:
        x = check_values(x, _negative, _NEGATIVE)  # when the computation runs
    # The dtype kind settles float32/float64 at once; jnp.issubdtype the rest.
    if x.dtype.kind not in "fc" and not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    if not concrete:
        return inv_softplus_unchecked(x)
    # The formula gives NaN exactly for a negative (or NaN) input: a concrete input
    # is checked only then (a flag reduced on the devices says so), which spares
    # the check's cost in the usual case.
    if host_readable(x):  # small, on one device: read the result at once
        raw = inv_softplus_unchecked(x)
        if np.count_nonzero(np.isnan(np.asarray(raw))):
            check_values(x, _negative, _NEGATIVE)
        return raw
    raw, has_nan = _inv_softplus_and_nan(x)
    if np.asarray(has_nan):
        check_values(x, _negative, _NEGATIVE)
    return raw


_NEGATIVE = "inv_softplus expects non-negative input"


def _negative(v: jax.Array) -> jax.Array:
    return v < 0


@jax.jit
def _inv_softplus_and_nan(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    raw = inv_softplus_unchecked(x)
    return raw, jnp.any(jnp.isnan(raw))


@jax.jit
def inv_softplus_unchecked(x: jax.Array) -> jax.Array:
    """:func:`inv_softplus` of a floating ``x`` known to be ``>= 0``, with no check.

    For callers that clamp first (the positive constraints): inside a compiled
    function it adds no host callback. Compiled once per shape and dtype, so that
    an eager call costs one dispatch, not five.
    """
    wide = x.astype(wide_dtype(x.dtype))
    return (wide + jnp.log(-jnp.expm1(-wide))).astype(x.dtype)


def check_where(
    x: ArrayLike,
    bad: ArrayLike,
    error: Callable[[Found], Exception],
) -> jax.Array:
    """Return ``x`` unchanged, raising ``error(found)`` if any entry of ``bad`` is True.

    Like :func:`check_values`, but the mask ``bad`` is computed by the caller, in
    JAX (so it may be any traceable test: a row sum, a comparison with array
    bounds), and the exception is built by ``error`` from a :class:`Found`: the
    count of bad entries, the index of the first and ``x``'s value there (``x`` and
    ``bad`` broadcast to one shape). Those are reduced on the devices, and only
    they reach the host: a sharded or multi-host global array is never gathered.
    With concrete inputs the check runs at once; under ``jax.jit`` or ``jax.vmap``
    it runs when the computation does, through a host callback, and the exception
    surfaces as a ``jax.errors.JaxRuntimeError`` carrying its message. The traced
    check is an effect: it runs even if nothing uses the returned array, inside
    ``jax.checkpoint`` too. The check is the identity for differentiation and keeps
    the sharding of ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from lensify.numerics import check_where
        >>> x = jnp.array([1.0, -2.0])
        >>> check_where(x, x < 0, lambda f: ValueError(f"negative: {f.value} at {f.index}"))
        Traceback (most recent call last):
        ...
        ValueError: negative: -2.0 at (1,)
    """
    x = _as_array(x)
    _host_check(x, jnp.asarray(bad, dtype=bool), error)
    return x


def checked_row_norms(weight: Any) -> jax.Array:
    """The row norms of a weight for ``WeightNormalization``, checked: every row has
    entries, and none is all zeros or holds a NaN or an infinity."""
    value = jnp.asarray(weight)
    if value.ndim == 0:
        raise ValueError(
            "WeightNormalization needs a weight with at least one axis (rows along "
            f"the last axis), got a 0-d array {value!r}."
        )
    if value.shape[-1] == 0:
        raise ValueError(
            f"WeightNormalization cannot normalise a weight of shape {value.shape}: its "
            "rows (along the last axis) have no entries, so no row has a direction. "
            "Wrap a weight with at least one entry per row."
        )
    norms = check_values(
        row_norms(value),
        _not_finite,
        "WeightNormalization cannot normalise a weight with a NaN or infinite entry",
    )
    return check_values(
        norms, _zero, "WeightNormalization cannot normalise a weight with a row of zeros"
    )


def _not_finite(x: jax.Array) -> jax.Array:
    return ~jnp.isfinite(x)


def _zero(x: jax.Array) -> jax.Array:
    return x == 0


def row_norms(weight: jax.Array) -> jax.Array:
    """The norm of each row (along the last axis), kept as a trailing axis of size 1."""
    # Scaled by the row's largest magnitude, so that the sum of squares cannot
    # overflow (a float16 row of 1024 eights) nor underflow; the dtype is kept.
    # The norm is homogeneous, so the gradient is that of the plain norm.
    biggest = jnp.max(jnp.abs(weight), axis=-1, keepdims=True)
    safe = jnp.where(biggest == 0, jnp.ones_like(biggest), biggest)
    return biggest * jnp.linalg.norm(weight / safe, axis=-1, keepdims=True)
