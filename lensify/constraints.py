"""Constraint wrappers: an unconstrained raw parameter that unwraps into a support.

Each constraint stores a raw array that an optimiser may move anywhere and unwraps to
``forward(raw)``, a value in its support (positive numbers, an interval, the simplex,
...). Constructing one from a value is *value-preserving*: the raw parameter is
``inverse(value)``, so ``unwrap(positive(x))`` is ``x`` and wrapping part of a model never
changes what it computes. A value outside the support is a :class:`ConstraintError` at
construction.

The catalogue (:data:`CATALOGUE`) lists every built-in constraint with what the law
tests need to exercise it; a constraint added to it is checked by every law.
"""

from __future__ import annotations

import abc
import operator
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, TypeVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lensify import _records, _tree
from lensify.numerics import check_where, wide_dtype
from lensify.wrappers import AbstractUnwrappable, NonTrainable, contains_unwrappables, unwrap

__all__ = [
    "CATALOGUE",
    "AbstractConstraint",
    "Catalogued",
    "CholeskyFactor",
    "ConstraintError",
    "Interval",
    "Positive",
    "Preimage",
    "Simplex",
    "Symmetric",
    "Tolerance",
    "UnitVector",
    "cholesky_factor",
    "interval",
    "positive",
    "simplex",
    "symmetric",
    "unit_vector",
]

C = TypeVar("C", bound="AbstractConstraint")


class Tolerance(NamedTuple):
    """A round-trip tolerance, in the terms of ``numpy.allclose``.

    ``got`` is close to ``want`` when ``|got - want| <= atol + rtol * |want|``
    elementwise. See :meth:`AbstractConstraint.tolerance`.
    """

    rtol: float
    atol: float


class ConstraintError(ValueError):
    """A value given to a constraint lies outside its support, or has the wrong shape.

    Attributes:
        constraint: The name of the constraint class.
        value: The first offending entry (None for a shape error).
        index: Its index in the value (None for a shape error).
        count: How many entries are outside the support.
        path: The key path of the value in a larger tree, once known (see
            :meth:`with_path`), else None.

    Example:
        >>> import lensify as lf
        >>> try:
        ...     lf.positive([1.0, -2.0])
        ... except lf.ConstraintError as error:
        ...     print(error.constraint, error.value, error.index)
        Positive -2.0 (1,)
    """

    def __init__(
        self,
        message: str,
        *,
        constraint: str,
        value: Any = None,
        index: tuple[int, ...] | None = None,
        count: int = 0,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.constraint = constraint
        self.value = value
        self.index = index
        self.count = count
        self.path = path

    def with_path(self, path: str) -> ConstraintError:
        """The same error, its message starting with the key path of the value.

        Meant for code that constructs constraints across a tree (an optic's
        ``wrap``): catch the error, then ``raise error.with_path(keystr) from error``.

        Example:
            >>> import lensify as lf
            >>> try:
            ...     lf.positive(-1.0)
            ... except lf.ConstraintError as error:
            ...     print(error.with_path("['scale']"))
            at ['scale']: Positive got -1.0, outside its support x > 0 ...
        """
        return ConstraintError(
            f"at {path}: {self.message}",
            constraint=self.constraint,
            value=self.value,
            index=self.index,
            count=self.count,
            path=path,
        )


def _as_float_array(x: Any) -> jax.Array:
    array = jnp.asarray(x)
    dtype = array.dtype if jnp.issubdtype(array.dtype, jnp.inexact) else jnp.result_type(float)
    # An explicit dtype also drops the weak type a Python number would give.
    return jnp.asarray(array, dtype=dtype)


def _support_error(name: str, support: str) -> Callable[[np.ndarray, np.ndarray], Exception]:
    def make(value: np.ndarray, bad: np.ndarray) -> ConstraintError:
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        offending = value[index].item()
        count = int(bad.sum())
        where = f" at index {index}" if index else ""
        message = (
            f"{name} got {value[index]!s}{where}, outside its support {support} "
            f"({count} of {value.size} entries are outside). Pass a value inside the "
            "support, or choose a constraint whose support holds it."
        )
        return ConstraintError(message, constraint=name, value=offending, index=index, count=count)

    return make


class AbstractConstraint(AbstractUnwrappable[jax.Array]):
    """Base class of constraints: ``forward(raw)`` of an unconstrained ``raw`` parameter.

    A subclass defines :meth:`forward` (any raw array to a value in the support),
    :meth:`inverse` (a value in the support back to a raw array, so that
    ``forward(inverse(x)) == x``) and :meth:`in_support` (an elementwise mask of the
    values :meth:`inverse` accepts). Its fields other than ``raw`` are parameters of
    the map (bounds, an axis), usually static. Calling the class on a value is
    value-preserving: ``unwrap(C(x)) == x``. A subclass that defines no
    ``__init__`` gets one taking the value and then the other fields, in order
    (a subclass of another constraint inherits that constraint's ``__init__``).

    Construction from a wrapped value keeps the wrapper: ``C(NonTrainable(x))``
    stores ``NonTrainable(inverse(x))`` as its raw parameter (frozen, as asked), and
    any other wrapper ``w`` is kept whole as ``Preimage(C, w)``, whose parameters
    keep training.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> class Negative(lf.AbstractConstraint):
        ...     support = "x < 0"
        ...     def forward(self, raw):
        ...         return -jax.nn.softplus(raw)
        ...     def inverse(self, value):
        ...         return lf.inv_softplus(-value)
        ...     def in_support(self, value):
        ...         return value < 0
        >>> lf.unwrap(Negative(jnp.array([-1.0, -3.0])))
        Array([-1., -3.], dtype=float32)
        >>> Negative(1.0)
        Traceback (most recent call last):
        ...
        lensify.constraints.ConstraintError: Negative got 1.0, outside its support x < 0 ...
    """

    raw: Any

    # A few words describing the support, for error messages.
    support: ClassVar[str] = "(see the class's in_support)"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # attrs gives a class without an __init__ of its own one that takes the raw
        # parameter, which would make ``C(x)`` silently store x as raw. Making the
        # inherited, value-taking __init__ the class's own keeps ``C(x)``
        # value-preserving.
        if "__init__" not in cls.__dict__:
            type.__setattr__(cls, "__init__", cls.__init__)

    def __init__(self, value: Any, *args: Any, **kwargs: Any) -> None:
        names = [f.name for f in _records.record_fields(type(self)) if f.name != "raw"]
        if len(args) > len(names):
            raise TypeError(
                f"{type(self).__name__} takes a value and at most {len(names)} more "
                f"arguments ({', '.join(names)}), got {1 + len(args)}."
            )
        given = dict(zip(names, args, strict=False))
        for name, arg in kwargs.items():
            if name not in names or name in given:
                raise TypeError(f"{type(self).__name__} got an unexpected argument {name!r}.")
            given[name] = arg
        for f in _records.record_fields(type(self)):
            if f.name == "raw":
                continue
            if f.name in given:
                object.__setattr__(self, f.name, given[f.name])
            elif f.default is not attrs.NOTHING:
                default: Any = f.default
                if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                    default = default.factory()
                object.__setattr__(self, f.name, default)
            else:
                raise TypeError(f"{type(self).__name__} is missing the argument {f.name!r}.")
        self._set_raw(value)

    @abc.abstractmethod
    def forward(self, raw: jax.Array) -> jax.Array:
        """Map any raw array to a value in the support."""

    @abc.abstractmethod
    def inverse(self, value: jax.Array) -> jax.Array:
        """Map a value in the support to a raw array ``r`` with ``forward(r) == value``."""

    @abc.abstractmethod
    def in_support(self, value: jax.Array) -> jax.Array:
        """Boolean mask, broadcastable to ``value``: where ``inverse`` accepts it."""

    def in_closure(self, value: jax.Array) -> jax.Array:
        """Boolean mask: where ``value`` lies in what ``forward`` can return in floats.

        Rounding at the float edge can land ``forward`` on the boundary of the
        support (softplus of a very negative raw is exactly 0). This is the set the
        law "any raw value unwraps into the support" checks; by default the support.
        """
        return self.in_support(value)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise :class:`ConstraintError` if a value of this shape cannot be constrained."""

    def check_dtype(self, dtype: Any) -> None:
        """Raise :class:`ConstraintError` if values of this dtype cannot be constrained.

        By default only complex dtypes are refused: supports are sets of real numbers.
        """
        if jnp.issubdtype(dtype, jnp.complexfloating):
            raise self._error(
                f"needs real values, got {jnp.dtype(dtype).name}. Constrain the real "
                "and imaginary parts as two real arrays (jnp.real(x), jnp.imag(x)) "
                "and combine them after unwrapping."
            )

    def tolerance(self, dtype: Any) -> Tolerance:
        """How closely ``unwrap`` gives back a value this constraint was built from.

        For a value ``x`` in the support, ``|unwrap(C(x)) - x| <= atol + rtol * |x|``
        elementwise (the test of ``numpy.allclose``), for ``dtype`` values. The
        default suits a map like ``softplus`` whose raw parameter is a logarithm:
        rounding the raw array (held in ``dtype``) moves the value by up to
        ``eps * |raw|`` relative, and ``|raw|`` reaches ``log(1 / tiny)`` (87.3 in
        float32) at the smallest normal number ``tiny``. So
        ``rtol = (4 + log(1 / tiny)) * eps`` and ``atol = 4 * tiny``. A
        constraint whose round trip is better or worse says so by overriding this.

        Example:
            >>> import jax.numpy as jnp
            >>> import lensify as lf
            >>> lf.positive(1.0).tolerance(jnp.float32)
            Tolerance(rtol=1.08...e-05, atol=4.70...e-38)
        """
        info = jnp.finfo(dtype)
        return Tolerance(rtol=_log_range(dtype) * float(info.eps), atol=4 * float(info.tiny))

    def unwrap(self) -> jax.Array:
        raw = jnp.asarray(self.raw)
        if not jnp.issubdtype(raw.dtype, jnp.floating):
            return self.forward(raw)
        return self.forward(raw.astype(wide_dtype(raw.dtype))).astype(raw.dtype)

    def with_raw(self: C, raw: Any) -> C:
        """This constraint, with ``raw`` as its raw parameter (no inverse map, no check).

        Example:
            >>> import jax.numpy as jnp
            >>> import lensify as lf
            >>> lf.unwrap(lf.positive(1.0).with_raw(jnp.array([-200.0, 0.0])))
            Array([0.       , 0.6931472], dtype=float32)
        """
        pairs = _tree.children(self) or []
        children = [raw if key.name == "raw" else child for key, child in pairs]
        new: C = _tree.rebuild(self, children)
        return new

    def _evaluated(self: C) -> C:
        # The fold's view of this node: every parameter field unwrapped.
        pairs = _tree.children(self) or []
        new: C = _tree.rebuild(self, [unwrap(child) for _, child in pairs])
        return new

    def _error(self, message: str) -> ConstraintError:
        name = type(self).__name__
        return ConstraintError(f"{name}: {message}", constraint=name)

    def _set_raw(self, value: Any) -> None:
        object.__setattr__(self, "raw", None)
        template = self._evaluated()
        plain = template._checked(unwrap(value))
        object.__setattr__(self, "raw", self._preimage(template, value, plain))

    def _checked(self, value: Any) -> jax.Array:
        # ``value`` as a float array in the support: at once when it is concrete,
        # else when the computation runs (never pruned, see lensify.numerics).
        plain = _as_float_array(value)
        self.check_dtype(plain.dtype)
        self.check_shape(plain.shape)
        inside = jnp.broadcast_to(self.in_support(plain), plain.shape)
        bad = ~(inside & jnp.isfinite(plain))
        return check_where(plain, bad, _support_error(type(self).__name__, self.support))

    def _inverse(self, value: jax.Array) -> jax.Array:
        # inverse() in at least float32, rounded once to the value's dtype.
        return self.inverse(value.astype(wide_dtype(value.dtype))).astype(value.dtype)

    def _preimage(self, template: AbstractConstraint, value: Any, checked: jax.Array) -> Any:
        if type(value) is NonTrainable:
            return NonTrainable(self._preimage(template, value.tree, checked))
        if contains_unwrappables(value):
            return Preimage(self, value)
        return template._inverse(checked)


class Preimage(AbstractUnwrappable[jax.Array]):
    """A constraint's inverse map applied to a wrapped value; keeps that wrapper whole.

    What a constraint stores as its raw parameter when constructed from a value
    held in a wrapper other than :class:`~lensify.NonTrainable`, such as
    ``positive(WeightNormalization(w))``: the inner wrapper and its parameters stay,
    and the constraint unwraps to ``forward(inverse(inner))``, the inner value. It
    stays in the support only while the inner value does; to constrain a
    weight-normalised matrix for good, put the constraint inside,
    ``WeightNormalization(positive(w))``.

    The value is checked against the support as usual: at once when it is
    concrete, and under ``jax.jit`` or ``jax.vmap`` when the computation runs
    (the check is an effect, never pruned), as a ``jax.errors.JaxRuntimeError``
    naming the constraint.

    Args:
        constraint: The constraint whose inverse map is applied (its ``raw`` is
            not used).
        value: The wrapped value.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> w = jnp.array([[1.0, 2.0]])
        >>> c = lf.positive(lf.WeightNormalization(w))
        >>> type(c.raw).__name__, bool(jnp.allclose(lf.unwrap(c), w))
        ('Preimage', True)
    """

    structure: Any = _records.field(static=True)
    params: list[Any]
    value: Any

    def __init__(self, constraint: AbstractConstraint, value: Any) -> None:
        # The constraint's own node, with its raw slot emptied, split into a
        # (static) structure and its parameter children: the fold must not unwrap
        # the constraint itself, only its parameters.
        pairs = _tree.children(constraint) or []
        params = [None if key.name == "raw" else child for key, child in pairs]
        self.structure = _tree.structure(constraint, is_leaf=lambda x: x is not constraint)
        self.params = params
        self.value = value

    def unwrap(self) -> jax.Array:
        template: AbstractConstraint = _tree.unflatten(self.structure, self.params)
        return template._inverse(_as_float_array(self.value))


def _tiny(x: jax.Array) -> Any:
    # The smallest normal number: XLA flushes subnormals to zero, so a log or a
    # division of anything smaller would give -inf or inf.
    return jnp.finfo(x.dtype).tiny


def _softplus(raw: jax.Array) -> jax.Array:
    return jax.nn.softplus(raw)


def _inv_softplus(value: jax.Array) -> jax.Array:
    # Unchecked: callers check the support themselves, once.
    value = jnp.maximum(value, _tiny(value))
    return value + jnp.log(-jnp.expm1(-value))


def _log_range(dtype: Any) -> float:
    # 4 + log(1 / tiny): how many eps of relative error rounding a raw logarithm costs.
    return 4.0 - float(np.log(float(jnp.finfo(dtype).tiny)))


def _sum_tolerance(n: int, dtype: Any) -> float:
    # Summing n terms, each with a relative error of about eps, as softmax does.
    return 16.0 * max(n, 1) * float(jnp.finfo(dtype).eps)


class Positive(AbstractConstraint):
    """A positive value, ``softplus(raw)``.

    Construction needs ``x > 0``. XLA flushes subnormal numbers (below about
    ``1.2e-38`` in float32) to zero, comparisons included, so they count as 0 and
    are rejected; a value within a few ulps of that edge comes back as 0. Any raw
    value unwraps to ``x >= 0``: softplus underflows to exactly 0 for
    ``raw < -87.3`` in float32 (about ``-708`` in float64).

    Args:
        value: The value to start from, positive (possibly a wrapper).

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.unwrap(lf.Positive(jnp.array([0.5, 2.0])))
        Array([0.5, 2. ], dtype=float32)
    """

    support = "x > 0"

    def __init__(self, value: Any) -> None:
        self._set_raw(value)

    def forward(self, raw: jax.Array) -> jax.Array:
        return _softplus(raw)

    def inverse(self, value: jax.Array) -> jax.Array:
        return _inv_softplus(value)

    def in_support(self, value: jax.Array) -> jax.Array:
        return value > 0

    def in_closure(self, value: jax.Array) -> jax.Array:
        return value >= 0


def positive(x: Any) -> Positive:
    """Constrain ``x`` to be positive: ``softplus`` of a raw parameter, starting at ``x``.

    Args:
        x: A positive array (or a wrapper of one).

    Returns:
        A :class:`Positive` with ``unwrap(positive(x)) == x``.

    Raises:
        ConstraintError: if an entry of ``x`` is not positive and finite.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> scale = lf.positive(jnp.array([0.1, 3.0]))
        >>> lf.unwrap(scale)
        Array([0.1, 3. ], dtype=float32)
    """
    return Positive(x)


class _StaticArray:
    """A concrete array held in a record's structure: hashable, compared by value."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        array = np.array(array)
        array.setflags(write=False)
        self.array = array

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is _StaticArray
            and self.array.shape == other.array.shape
            and self.array.dtype == other.array.dtype
            and bool(np.array_equal(self.array, other.array))
        )

    def __hash__(self) -> int:
        return hash((self.array.shape, self.array.dtype.str, self.array.tobytes()))

    def __repr__(self) -> str:
        return repr(self.array)


def _bound(b: ArrayLike, which: str) -> float | _StaticArray:
    if isinstance(b, jax.core.Tracer):
        raise ConstraintError(
            f"Interval needs a concrete {which} bound, got a traced array: bounds are "
            "static (part of the tree structure, never trained). Build the interval "
            "outside jax.jit, or close over the bounds instead of passing them in.",
            constraint="Interval",
        )
    array = np.asarray(b, dtype=float)
    return float(array) if array.ndim == 0 else _StaticArray(array)


# Below this |raw| (above it, |2x - lower - upper| > 0.46 (upper - lower)), the
# interval map is evaluated around the midpoint, where tanh keeps its relative
# precision; beyond it, from the nearer bound, where the sigmoid keeps it.
_MIDDLE = 1.0


class Interval(AbstractConstraint):
    """A value in ``(lower, upper)``: ``lower + (upper - lower) * sigmoid(raw)``.

    The bounds are static: Python numbers, or concrete arrays that broadcast to
    the value's shape (held by value in the tree structure), so they are never
    leaves, never trained and never batched. Construction needs
    ``lower < x < upper``, with bounds that are finite and distinct in the value's
    dtype (a ``ConstraintError`` otherwise).

    The map is evaluated in the form that keeps the most precision: around the
    midpoint ``m`` as ``m + h * tanh(raw / 2)`` (``h`` the half-width) for
    ``|raw| <= 1``, and from the nearer bound beyond that. Every quantity is a half
    (``upper / 2 - lower / 2``), so a width beyond the dtype's largest number
    works, and float16 and bfloat16 are computed in float32 and rounded once.
    The round trip ``unwrap(interval(x, lower, upper))`` is within
    ``atol = 2 * eps * (upper - lower)`` plus ``rtol = 2 * eps`` relative (see
    :meth:`tolerance`; ``eps`` of the value's dtype; the largest error measured
    over float16, bfloat16 and float32 is ``0.7 * eps * (|x| + upper - lower)``):
    the raw parameter, held in that dtype, cannot pin the value more finely. It is
    exact to a few ulps relative near either bound and, when the interval is
    centred on 0, near 0.

    Any raw value unwraps into the closed interval ``[lower, upper]``: in float32
    the sigmoid saturates and the value equals a nonzero bound once ``|raw|``
    exceeds about ``17 + log(width / |bound|)`` (less for a narrow interval far
    from 0), and a bound of 0 only once the sigmoid underflows, near
    ``|raw| = 87.5``.

    Args:
        value: The value to start from, inside the interval.
        lower: The lower bound, finite.
        upper: The upper bound, finite, above ``lower``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.unwrap(lf.Interval(jnp.array([0.25, 0.9]), 0.0, 1.0))
        Array([0.25, 0.9 ], dtype=float32)
        >>> float(lf.unwrap(lf.interval(1e-6, -1.0, 1.0)))
        1e-06
    """

    lower: float | _StaticArray = _records.field(static=True)
    upper: float | _StaticArray = _records.field(static=True)

    support = "lower < x < upper"

    def __init__(self, value: Any, lower: ArrayLike, upper: ArrayLike) -> None:
        self.lower = _bound(lower, "lower")
        self.upper = _bound(upper, "upper")
        low, high = (np.asarray(_static_value(b)) for b in (self.lower, self.upper))
        if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
            raise self._error(
                f"needs finite bounds with lower < upper, got lower={self.lower!r}, "
                f"upper={self.upper!r}. For a half-open support use lf.positive, "
                "shifted or negated."
            )
        self._set_raw(value)

    def _bounds(self, dtype: Any) -> tuple[jax.Array, jax.Array]:
        # Rounded to the dtype the map is computed in, then to ``dtype``: the
        # bounds that forward's result, clipped in the wide dtype, rounds to.
        wide = wide_dtype(dtype)
        return tuple(  # type: ignore[return-value]
            jnp.asarray(np.asarray(_static_value(b), dtype=wide).astype(dtype))
            for b in (self.lower, self.upper)
        )

    def _halves(self, dtype: Any) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        lower, upper = self._bounds(dtype)
        return lower, upper, lower / 2 + upper / 2, upper / 2 - lower / 2

    def check_dtype(self, dtype: Any) -> None:
        super().check_dtype(dtype)
        given = [np.asarray(_static_value(b)) for b in (self.lower, self.upper)]
        with np.errstate(over="ignore"):
            lower, upper = (np.asarray(b, dtype=wide_dtype(dtype)).astype(dtype) for b in given)
        name = jnp.dtype(dtype).name
        if not (np.isfinite(lower).all() and np.isfinite(upper).all()):
            raise self._error(
                f"bounds lower={self.lower!r}, upper={self.upper!r} overflow {name}, the "
                f"value's dtype (largest {float(jnp.finfo(dtype).max):.4g}). Use bounds "
                "the dtype can hold, or a wider dtype for the value."
            )
        half = upper.astype(wide_dtype(dtype)) / 2 - lower.astype(wide_dtype(dtype)) / 2
        if not (lower < upper).all() or (half < jnp.finfo(wide_dtype(dtype)).tiny).any():
            raise self._error(
                f"bounds lower={self.lower!r}, upper={self.upper!r} are too close to tell "
                f"apart in {name}, the value's dtype. Use a wider dtype for the value, "
                "or wider bounds."
            )

    def check_shape(self, shape: tuple[int, ...]) -> None:
        lower, upper = (np.shape(_static_value(b)) for b in (self.lower, self.upper))
        try:
            broadcast = np.broadcast_shapes(lower, upper, shape)
        except ValueError:
            broadcast = None
        if broadcast != shape:
            raise self._error(
                f"bounds of shapes {lower} and {upper} must broadcast to the value's shape {shape}."
            )

    def tolerance(self, dtype: Any) -> Tolerance:
        """``rtol = 2 * eps`` and ``atol = 2 * eps * (upper - lower)`` (largest width).

        Example:
            >>> import jax.numpy as jnp
            >>> import lensify as lf
            >>> lf.interval(0.5, 0.0, 2.0).tolerance(jnp.float16)
            Tolerance(rtol=0.001953125, atol=0.00390625)
        """
        eps = float(jnp.finfo(dtype).eps)
        low, high = (np.asarray(_static_value(b), np.float64) for b in (self.lower, self.upper))
        return Tolerance(rtol=2 * eps, atol=2 * eps * float(np.max(high - low)))

    def forward(self, raw: jax.Array) -> jax.Array:
        lower, upper, mid, half = self._halves(raw.dtype)
        middle = mid + half * jnp.tanh(raw / 2)
        near_lower = lower + half * (2 * jax.nn.sigmoid(raw))
        near_upper = upper - half * (2 * jax.nn.sigmoid(-raw))
        value = jnp.where(
            jnp.abs(raw) <= _MIDDLE, middle, jnp.where(raw < 0, near_lower, near_upper)
        )
        return jnp.clip(value, lower, upper)  # rounding must not leave the interval

    def inverse(self, value: jax.Array) -> jax.Array:
        lower, upper, mid, half = self._halves(value.dtype)
        # Both scaled by a power of two first: XLA divides by multiplying with the
        # reciprocal, which flushes to zero for a half-width near the float maximum.
        _, exponent = jnp.frexp(half)
        centred = jnp.ldexp(value - mid, -exponent) / jnp.ldexp(half, -exponent)
        in_middle = jnp.abs(centred) <= np.tanh(_MIDDLE / 2)
        # Each branch made finite where it is not used, so no NaN reaches a gradient.
        middle = 2 * jnp.arctanh(jnp.where(in_middle, centred, 0))
        tiny = _tiny(value)
        above_lower = jnp.maximum(value / 2 - lower / 2, tiny)
        below_upper = jnp.maximum(upper / 2 - value / 2, tiny)
        return jnp.where(in_middle, middle, _log_ratio(above_lower, below_upper))

    def in_support(self, value: jax.Array) -> jax.Array:
        lower, upper = self._bounds(value.dtype)
        return (lower < value) & (value < upper)

    def in_closure(self, value: jax.Array) -> jax.Array:
        lower, upper = self._bounds(value.dtype)
        return (lower <= value) & (value <= upper)


def _log_ratio(a: jax.Array, b: jax.Array) -> jax.Array:
    # log(a / b) for positive a, b: as log(a) - log(b) it would lose up to
    # eps * |log(a)| absolutely (1e-5 near the float32 maximum), and a / b may
    # overflow. Mantissas and exponents apart, it is as precise as the ratio.
    mantissa_a, exponent_a = jnp.frexp(a)
    mantissa_b, exponent_b = jnp.frexp(b)
    shift = (exponent_a - exponent_b).astype(a.dtype) * np.log(2.0).astype(a.dtype)
    return jnp.log(mantissa_a / mantissa_b) + shift


def _static_value(b: float | _StaticArray) -> Any:
    return b.array if isinstance(b, _StaticArray) else b


def interval(x: Any, lower: ArrayLike, upper: ArrayLike) -> Interval:
    """Constrain ``x`` to the open interval ``(lower, upper)``, starting at ``x``.

    Args:
        x: An array inside the interval (or a wrapper of one).
        lower: The lower bound: a number or an array broadcastable against ``x``.
        upper: The upper bound, likewise.

    Returns:
        An :class:`Interval` with ``unwrap(interval(x, lower, upper)) == x``.

    Raises:
        ConstraintError: for bounds that are not finite with ``lower < upper``, or
            an entry of ``x`` outside ``(lower, upper)``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.unwrap(lf.interval(jnp.array([-0.5, 0.5]), -1.0, 1.0))
        Array([-0.5,  0.5], dtype=float32)
        >>> lf.interval(2.0, -1.0, 1.0)
        Traceback (most recent call last):
        ...
        lensify.constraints.ConstraintError: Interval got 2.0, outside its support ...
    """
    return Interval(x, lower, upper)


class _AlongAxis(AbstractConstraint):
    """A constraint on the vectors along ``axis``; other axes are batch axes."""

    # Stored negative, so that leading (batch) axes added by vmap are never counted.
    axis: int = _records.field(static=True, default=-1)

    def __init__(self, value: Any, axis: int = -1) -> None:
        axis = operator.index(axis)
        shape = jnp.shape(unwrap(value))
        if not -len(shape) <= axis < len(shape) or shape[axis] < 1:
            raise self._error(
                f"needs a value with a non-empty axis {axis}, got shape {shape}. Pass an "
                f"axis from {-len(shape)} to {len(shape) - 1} along which the value has "
                "entries."
            )
        self.axis = axis - len(shape) if axis >= 0 else axis
        self._set_raw(value)

    def _size(self) -> int:
        # Entries along the axis, read from the stored (possibly wrapped) value.
        return int(jnp.shape(unwrap(self))[self.axis])

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if not -len(shape) <= self.axis < 0 or shape[self.axis] < 1:
            raise self._error(
                f"needs a value with a non-empty axis {self.axis} (counted from the end), "
                f"got shape {shape}."
            )


class Simplex(_AlongAxis):
    """Positive entries summing to 1 along ``axis``: a softmax with one fewer freedom.

    The raw parameter has ``n - 1`` entries along the axis: ``forward`` appends a 0
    and takes the softmax, and the inverse is ``log(x[:-1] / x[-1])``, exact on the
    open simplex. Construction needs positive entries summing to 1 (to a few ulps
    per entry). Any raw value unwraps to entries in ``[0, 1]`` summing to 1 to float
    tolerance; entries underflow to exactly 0 when their raw value is about 87
    below the largest (float32).

    Args:
        value: The value to start from, on the simplex along ``axis``.
        axis: The axis along which entries sum to 1; stored counted from the end.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> w = lf.Simplex(jnp.array([0.2, 0.3, 0.5]))
        >>> w.raw.shape, lf.unwrap(w).round(6)
        ((2,), Array([0.2, 0.3, 0.5], dtype=float32))
    """

    support = "entries > 0 summing to 1 along the axis"

    def forward(self, raw: jax.Array) -> jax.Array:
        pad = [(0, 0)] * raw.ndim
        pad[self.axis] = (0, 1)
        return jax.nn.softmax(jnp.pad(raw, pad), axis=self.axis)

    def inverse(self, value: jax.Array) -> jax.Array:
        logs = jnp.log(jnp.maximum(value, _tiny(value)))
        n = value.shape[self.axis]
        head = jax.lax.slice_in_dim(logs, 0, n - 1, axis=self.axis)
        last = jax.lax.slice_in_dim(logs, n - 1, n, axis=self.axis)
        return head - last

    def tolerance(self, dtype: Any) -> Tolerance:
        """``rtol = (16 n + 8 + 2 log(1 / tiny)) * eps`` and ``atol = 4 * tiny``.

        Two raw logarithms per entry (``n`` entries along the axis), plus the
        renormalisation of a value whose sum construction accepted within
        ``16 n eps`` of 1.
        """
        info = jnp.finfo(dtype)
        n = self._size()
        rtol = (16 * n + 2 * _log_range(dtype)) * float(info.eps)
        return Tolerance(rtol=rtol, atol=4 * float(info.tiny))

    def _sums_to_one(self, value: jax.Array) -> jax.Array:
        n = value.shape[self.axis]
        total = jnp.sum(value, axis=self.axis, keepdims=True)
        return jnp.abs(total - 1) <= _sum_tolerance(n, value.dtype)

    def in_support(self, value: jax.Array) -> jax.Array:
        return (value > 0) & self._sums_to_one(value)

    def in_closure(self, value: jax.Array) -> jax.Array:
        return (value >= 0) & (value <= 1) & self._sums_to_one(value)


def simplex(x: Any, axis: int = -1) -> Simplex:
    """Constrain ``x`` to the probability simplex along ``axis``, starting at ``x``.

    Args:
        x: An array of positive entries summing to 1 along ``axis``.
        axis: The axis of the simplex; other axes are batch axes.

    Returns:
        A :class:`Simplex` with ``unwrap(simplex(x)) == x``.

    Raises:
        ConstraintError: if an entry is not positive, or the entries along
            ``axis`` do not sum to 1.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> weights = lf.simplex(jnp.array([[0.5, 0.5], [0.9, 0.1]]))
        >>> lf.unwrap(weights).round(6)
        Array([[0.5, 0.5],
               [0.9, 0.1]], dtype=float32)
    """
    return Simplex(x, axis=axis)


class _SquareMatrices(AbstractConstraint):
    """A constraint on the square matrices in the last two axes; others are batch axes."""

    def __init__(self, value: Any) -> None:
        self._set_raw(value)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) < 2 or shape[-1] != shape[-2]:
            raise self._error(
                f"needs square matrices in the last two axes, got shape {shape}. Leading "
                "axes are batch axes."
            )


def _diagonal_mask(x: jax.Array) -> jax.Array:
    n = x.shape[-1]
    return jnp.eye(n, dtype=bool)


def _lower_mask(x: jax.Array) -> jax.Array:
    n = x.shape[-1]
    return jnp.tril(jnp.ones((n, n), dtype=bool))


class CholeskyFactor(_SquareMatrices):
    """A lower-triangular matrix with a positive diagonal (a Cholesky factor).

    The raw parameter is a square matrix: its strictly lower triangle is taken as
    is, its diagonal through ``softplus``, and its upper triangle is unused (zero
    at construction, never any gradient). Leading axes are batch axes.
    Construction needs an exactly zero upper triangle and a positive diagonal. Any
    raw value unwraps to a lower-triangular matrix with a diagonal ``>= 0``: like
    :class:`Positive`, a diagonal raw entry below about ``-87.3`` (float32) gives
    exactly 0, a singular factor.

    Args:
        value: The factor to start from, of shape ``(..., n, n)``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> L = jnp.array([[2.0, 0.0], [-1.0, 0.5]])
        >>> lf.unwrap(lf.CholeskyFactor(L))
        Array([[ 2. ,  0. ],
               [-1. ,  0.5]], dtype=float32)
    """

    support = "lower-triangular with a diagonal > 0"

    def forward(self, raw: jax.Array) -> jax.Array:
        return jnp.where(_diagonal_mask(raw), _softplus(raw), jnp.tril(raw, -1))

    def inverse(self, value: jax.Array) -> jax.Array:
        diagonal = _diagonal_mask(value)
        safe = jnp.where(diagonal, value, 1.0)  # no NaN, even in the unused branch
        return jnp.where(diagonal, _inv_softplus(safe), jnp.tril(value, -1))

    def _inside(self, value: jax.Array, diagonal_ok: jax.Array) -> jax.Array:
        return jnp.where(_diagonal_mask(value), diagonal_ok, _lower_mask(value) | (value == 0))

    def in_support(self, value: jax.Array) -> jax.Array:
        return self._inside(value, value > 0)

    def in_closure(self, value: jax.Array) -> jax.Array:
        return self._inside(value, value >= 0)


def cholesky_factor(x: Any) -> CholeskyFactor:
    """Constrain ``x`` to lower-triangular matrices with a positive diagonal.

    Args:
        x: A lower-triangular array of shape ``(..., n, n)`` with a positive
            diagonal, such as ``jnp.linalg.cholesky`` of a covariance.

    Returns:
        A :class:`CholeskyFactor` with ``unwrap(cholesky_factor(x)) == x``.

    Raises:
        ConstraintError: for a non-square ``x``, an entry above the diagonal that
            is not 0, or a diagonal entry that is not positive.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> L = jnp.linalg.cholesky(jnp.array([[4.0, 2.0], [2.0, 2.0]]))
        >>> bool(jnp.allclose(lf.unwrap(lf.cholesky_factor(L)), L))
        True
    """
    return CholeskyFactor(x)


class Symmetric(_SquareMatrices):
    """A symmetric matrix: the lower triangle of the raw parameter, mirrored.

    The raw parameter is a square matrix whose upper triangle is unused (zero at
    construction, never any gradient); no arithmetic is done, so the round trip is
    exact. Construction accepts a matrix symmetric to a relative tolerance of
    ``32 * eps`` (products such as ``A @ A.T`` may differ from their transpose by
    rounding) and keeps its lower triangle. Any raw value unwraps to an exactly
    symmetric matrix.

    Args:
        value: The matrix to start from, of shape ``(..., n, n)``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.unwrap(lf.Symmetric(jnp.array([[1.0, 2.0], [2.0, 3.0]])))
        Array([[1., 2.],
               [2., 3.]], dtype=float32)
    """

    support = "symmetric matrices"

    def forward(self, raw: jax.Array) -> jax.Array:
        return jnp.where(_lower_mask(raw), raw, jnp.swapaxes(raw, -1, -2))

    def inverse(self, value: jax.Array) -> jax.Array:
        return jnp.tril(value)

    def tolerance(self, dtype: Any) -> Tolerance:
        """``rtol = 32 * eps``: the asymmetry construction accepts; otherwise exact."""
        return Tolerance(rtol=32 * float(jnp.finfo(dtype).eps), atol=0.0)

    def in_support(self, value: jax.Array) -> jax.Array:
        mirror = jnp.swapaxes(value, -1, -2)
        scale = jnp.maximum(jnp.abs(value), jnp.abs(mirror))
        return jnp.abs(value - mirror) <= 32 * jnp.finfo(value.dtype).eps * scale

    def in_closure(self, value: jax.Array) -> jax.Array:
        return value == jnp.swapaxes(value, -1, -2)


def symmetric(x: Any) -> Symmetric:
    """Constrain ``x`` to symmetric matrices, starting at ``x``.

    Args:
        x: A symmetric array of shape ``(..., n, n)``.

    Returns:
        A :class:`Symmetric` with ``unwrap(symmetric(x)) == x``.

    Raises:
        ConstraintError: for a non-square or non-symmetric ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> a = jnp.array([[1.0, 2.0], [3.0, 4.0]])
        >>> s = a + a.T
        >>> bool((lf.unwrap(lf.symmetric(s)) == s).all())
        True
    """
    return Symmetric(x)


class UnitVector(_AlongAxis):
    """A vector of Euclidean norm 1 along ``axis``: ``raw / ‖raw‖``.

    The raw parameter is the vector itself (the inverse is the identity); the norm
    is computed after scaling by a power of two near the largest entry (exactly),
    so it neither overflows nor underflows for any finite raw value. The zero
    vector has no direction and unwraps to the first basis vector along the axis.
    Construction needs a norm of 1 to a few ulps per entry; any raw value unwraps
    to a norm of 1 to float tolerance.

    Args:
        value: The unit vector to start from.
        axis: The axis of the vector; stored counted from the end.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.unwrap(lf.UnitVector(jnp.array([0.6, 0.8])))
        Array([0.6, 0.8], dtype=float32)
    """

    support = "norm 1 along the axis"

    def forward(self, raw: jax.Array) -> jax.Array:
        nonzero = jnp.any(raw != 0, axis=self.axis, keepdims=True)
        # Zero vectors are replaced before any division, so that no branch of the
        # where below has a NaN value or gradient.
        safe = jnp.where(nonzero, raw, 1)
        # Scaled by a power of two near the largest entry: exact, and the norm can
        # neither overflow nor underflow. (Dividing by the largest entry itself
        # would flush to zero for entries near the float maximum.)
        _, exponent = jnp.frexp(jnp.max(jnp.abs(safe), axis=self.axis, keepdims=True))
        scaled = jnp.ldexp(safe, -exponent)
        unit = scaled / jnp.linalg.norm(scaled, axis=self.axis, keepdims=True)
        first = jax.lax.broadcasted_iota(jnp.int32, raw.shape, raw.ndim + self.axis) == 0
        return jnp.where(nonzero, unit, first.astype(raw.dtype))

    def inverse(self, value: jax.Array) -> jax.Array:
        return value

    def tolerance(self, dtype: Any) -> Tolerance:
        """``rtol = (16 n + 4) * eps``: renormalising a norm accepted within ``16 n eps``."""
        info = jnp.finfo(dtype)
        return Tolerance(rtol=(16 * self._size() + 4) * float(info.eps), atol=4 * float(info.tiny))

    def in_support(self, value: jax.Array) -> jax.Array:
        n = value.shape[self.axis]
        norm = jnp.linalg.norm(value, axis=self.axis, keepdims=True)
        return jnp.abs(norm - 1) <= _sum_tolerance(n, value.dtype)


def unit_vector(x: Any, axis: int = -1) -> UnitVector:
    """Constrain ``x`` to unit vectors along ``axis``, starting at ``x``.

    Args:
        x: An array of Euclidean norm 1 along ``axis``.
        axis: The axis of the vectors; other axes are batch axes.

    Returns:
        A :class:`UnitVector` with ``unwrap(unit_vector(x)) == x``.

    Raises:
        ConstraintError: if a vector's norm is not 1.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> direction = lf.unit_vector(jnp.array([0.0, 1.0]))
        >>> lf.unwrap(direction)
        Array([0., 1.], dtype=float32)
    """
    return UnitVector(x, axis=axis)


@attrs.frozen
class Catalogued:
    """One constraint of the catalogue, as the law tests see it.

    Attributes:
        name: A short name for test ids.
        build: Constructs the constraint from a value (fixing any parameters, such
            as bounds), value-preserving.
        event_shape: The shape of one constrained event for a size ``n >= 1``:
            ``()`` for elementwise constraints, ``(n,)`` for vectors, ``(n, n)``
            for matrices. Values have batch axes in front.
        example: A value in the support of a given shape.

    Example:
        >>> import lensify as lf
        >>> from lensify.constraints import CATALOGUE
        >>> entry = CATALOGUE[0]
        >>> entry.name, entry.event_shape(3)
        ('positive', ())
    """

    name: str
    build: Callable[[Any], AbstractConstraint]
    event_shape: Callable[[int], tuple[int, ...]]
    example: Callable[[tuple[int, ...]], jax.Array]


def _uniform(shape: tuple[int, ...]) -> jax.Array:
    return jnp.full(shape, 1.0 / shape[-1])


def _unit(shape: tuple[int, ...]) -> jax.Array:
    return jnp.full(shape, 1.0 / np.sqrt(shape[-1]))


def _array_interval(x: Any) -> Interval:
    # One pair of bounds per entry of the last axis.
    n = jnp.shape(unwrap(x))[-1]
    return Interval(x, -np.arange(1.0, n + 1), np.linspace(0.5, 3.0, n))


CATALOGUE: list[Catalogued] = [
    Catalogued("positive", positive, lambda n: (), jnp.ones),
    Catalogued(
        "interval", lambda x: interval(x, -2.0, 3.0), lambda n: (), lambda s: jnp.full(s, 0.5)
    ),
    Catalogued("interval_array_bounds", _array_interval, lambda n: (n,), jnp.zeros),
    Catalogued("simplex", simplex, lambda n: (n,), _uniform),
    Catalogued(
        "cholesky_factor", cholesky_factor, lambda n: (n, n), lambda s: jnp.eye(s[-1]) * jnp.ones(s)
    ),
    Catalogued("symmetric", symmetric, lambda n: (n, n), jnp.zeros),
    Catalogued("unit_vector", unit_vector, lambda n: (n,), _unit),
]
"""Every built-in constraint, with what the law tests need; add new ones here."""
