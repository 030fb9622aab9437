"""The constraint protocol: AbstractConstraint, its errors and its round-trip tolerance.

A constraint stores a raw array that an optimiser may move anywhere and unwraps to
``forward(raw)``, a value in its support. Constructing one from a value is
value-preserving: the raw parameter is ``inverse(value)``, checked against the support
first (through :mod:`lensify.numerics`, so the check also runs under ``jax.jit``).
"""

from __future__ import annotations

import abc
import functools
import operator
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, TypeVar, cast

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from lensify import _records, _tree
from lensify.constraints._compiled import (
    forward_in_one_call,
    inverse_if_inside,
    keyed,
    log_det_from,
    not_finite,
    outside,
    raw_not_finite,
    runs_compiled,
)
from lensify.constraints._errors import ConstraintError as ConstraintError
from lensify.constraints._errors import boundary_error, support_error
from lensify.numerics import (
    CONCRETE_ARRAY,
    check_all,
    check_where,
    found,
    wide_dtype,
)
from lensify.wrappers import (
    AbstractUnwrappable,
    NonTrainable,
    contains_unwrappables,
    unwrap,
)

__all__ = [
    "AbstractConstraint",
    "ConstraintError",
    "Preimage",
    "Tolerance",
    "log_det_from",
    "log_range",
    "standard_normal_log_density",
    "sum_tolerance",
    "tiny",
    "wide_raw",
]

C = TypeVar("C", bound="AbstractConstraint")


class Tolerance(NamedTuple):
    """A round-trip tolerance, in the terms of ``numpy.allclose``.

    ``got`` is close to ``want`` when ``|got - want| <= atol + rtol * |want|``
    elementwise. See :meth:`AbstractConstraint.tolerance`.
    """

    rtol: float
    atol: float


def _is_concrete_array(x: Any) -> bool:
    return isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)


def _as_float_array(x: Any) -> jax.Array:
    if _is_concrete_array(x) and x.dtype.kind == "f" and not x.weak_type:
        return x  # the usual case; jnp.asarray would cost as much as a computation
    array = jnp.asarray(x)
    dtype = array.dtype if jnp.issubdtype(array.dtype, jnp.inexact) else jnp.result_type(float)
    # An explicit dtype also drops the weak type a Python number would give.
    return jnp.asarray(array, dtype=dtype)


_PLAIN = _tree.PLAIN_TYPES
# The type of a concrete jax array (not a tracer): an exact-type test is cheapest.
_CONCRETE_ARRAY = CONCRETE_ARRAY
_WIDE = frozenset({np.dtype(np.float32), np.dtype(np.float64)})


def _widened(method: Callable[[Any, jax.Array], jax.Array]) -> Any:
    @functools.wraps(method)
    def widened(self: Any, x: jax.Array) -> jax.Array:
        if isinstance(x, jax.Array) and x.dtype in _WIDE:
            return method(self, x)  # the usual case, without jnp.asarray's cost
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating) or wide_dtype(x.dtype) == x.dtype:
            return method(self, x)
        return jnp.asarray(method(self, x.astype(wide_dtype(x.dtype)))).astype(x.dtype)

    widened._widened = True  # type: ignore[attr-defined]
    return widened


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
        lensify.ConstraintError: Negative got 1.0, outside its support x < 0 ...
    """

    raw: Any

    # A few words describing the support, for error messages.
    support: ClassVar[str] = "(see the class's in_support)"
    # Set on the built-ins, whose maps and in_support are pure JAX and read no child
    # but raw. Given a concrete array, rewrap (and construction) run the support
    # test and the inverse map as one compiled call, and unwrap the forward map. A
    # subclass keeps them only while it keeps those maps (see runs_compiled).
    _compiled_inverse: ClassVar[bool] = False
    _compiled_forward: ClassVar[bool] = False
    _compiled_log_det: ClassVar[bool] = False
    # Static fields that hold array configuration (an interval's bounds): data, not
    # part of what a compiled map is keyed on, so a new value costs no compilation.
    # The maps must accept them as traced arrays.
    _data_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # attrs gives a class without an __init__ of its own one that takes the raw
        # parameter, which would make ``C(x)`` silently store x as raw. Making the
        # inherited, value-taking __init__ the class's own keeps ``C(x)``
        # value-preserving.
        if "__init__" not in cls.__dict__:
            type.__setattr__(cls, "__init__", cls.__init__)
        # float16 and bfloat16 overflow at small widths and lose the subnormals: every
        # forward and inverse map is computed in at least float32 and rounded once.
        for name in ("forward", "inverse"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_widened", False):
                type.__setattr__(cls, name, _widened(method))

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
        kind = getattr(dtype, "kind", None)  # a numpy dtype: the cheap test
        if kind == "c" or (kind is None and jnp.issubdtype(dtype, jnp.complexfloating)):
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
        return Tolerance(rtol=log_range(dtype) * float(info.eps), atol=4 * float(info.tiny))

    def unwrap(self) -> jax.Array:
        raw = self.raw
        cls = type(self)
        if type(raw) is _CONCRETE_ARRAY and runs_compiled(cls, "_compiled_forward"):
            return forward_in_one_call(cls, *keyed(self), raw)
        # jnp.asarray of a jax array gives it back, at the cost of a dispatch.
        return self.forward(raw if isinstance(raw, jax.Array) else jnp.asarray(raw))

    def log_det_later(self) -> tuple[Any, Any] | None:
        """``(key, arrays)`` from which :func:`log_det_from` gives this constraint's
        log-det inside one compiled computation, for a built-in holding a concrete raw
        array (``unwrap_with_log_det`` sums all of them in one call); else None. The
        key is static (class and structure); the arrays (raw, and the bounds, see
        :func:`_keyed`) are traced, so a new bound value compiles nothing."""
        raw = self.raw
        cls = type(self)
        if type(raw) is _CONCRETE_ARRAY and runs_compiled(cls, "_compiled_log_det"):
            structure, data = keyed(self)
            return (cls, structure), (raw, data)
        return None

    def with_value(self: C, value: Any) -> C:
        """This constraint with the raw parameter that unwraps to ``value``.

        The one-level inverse of :meth:`unwrap`: the same class and parameters (bounds,
        axis), the raw child holding the plain value ``inverse(value)`` and every
        other child kept as it is. ``lf.rewrap`` then puts the raw value back into
        that child's own wrappers, so a frozen raw parameter stays frozen. A value
        outside the support is the same :class:`ConstraintError` as at construction
        (under ``jax.jit`` a runtime error carrying its message, never a NaN).

        Example:
            >>> import jax.numpy as jnp
            >>> import lensify as lf
            >>> scale = lf.positive(jnp.array([1.0, 2.0])).with_value(jnp.array([0.5, 3.0]))
            >>> lf.unwrap(scale)
            Array([0.5, 3. ], dtype=float32)
            >>> lf.interval(0.5, 0.0, 1.0).with_value(2.0)
            Traceback (most recent call last):
            ...
            lensify.ConstraintError: Interval got 2.0, outside its support ...
        """
        children, structure = _records.split(self)
        if len(children) == 1:  # raw is the only child: the usual case
            raw = self._inverse_checked(value, structure)
            return cast(C, _records.join(type(self), structure, (raw,)))
        plain = all(type(child) in _PLAIN for child in children)
        template = self if plain else self._evaluated()
        raw = template._finite(template.inverse(template._checked(value)))
        return self.with_raw(raw)

    def with_raw(self: C, raw: Any) -> C:
        """This constraint, with ``raw`` as its raw parameter (no inverse map, no check).

        Example:
            >>> import jax.numpy as jnp
            >>> import lensify as lf
            >>> lf.unwrap(lf.positive(1.0).with_raw(jnp.array([-200.0, 0.0])))
            Array([0.       , 0.6931472], dtype=float32)
        """
        return _records.evolve(self, raw=raw)

    def _evaluated(self: C) -> C:
        # The fold's view of this node: every parameter field unwrapped.
        children, structure = _records.split(self)
        values = [unwrap(child) for child in children]
        if all(map(operator.is_, values, children)):
            return self  # no parameter held a wrapper (unwrap gave each back as it was)
        new: C = _records.join(type(self), structure, values)
        return new

    def _error(self, message: str) -> ConstraintError:
        name = type(self).__name__
        return ConstraintError(f"{name}: {message}", constraint=name)

    def _set_raw(self, value: Any) -> None:
        object.__setattr__(self, "raw", None)
        template = self._evaluated()
        children, _ = _records.split(template)
        if len(children) == 1 and not contains_unwrappables(value):
            # A plain value, as rewrap would set it: for a built-in, one compiled
            # call that rewrap then reuses.
            raw = template._inverse_checked(value)
        else:
            raw = self._preimage(template, value, template._checked(unwrap(value)))
        object.__setattr__(self, "raw", raw)

    def _inverse_checked(self, value: Any, structure: Any = None) -> jax.Array:
        # inverse(_checked(value)) for a constraint whose only child is raw (which
        # the maps do not read); for a built-in given a concrete value, in one
        # compiled call (see inverse_if_inside).
        cls = type(self)
        if runs_compiled(cls, "_compiled_inverse"):
            plain = _as_float_array(value)
            if type(plain) is _CONCRETE_ARRAY:
                self.check_dtype(plain.dtype)
                self.check_shape(plain.shape)
                raw, ok = inverse_if_inside(cls, *keyed(self, structure), plain)
                if np.asarray(ok):  # one replicated scalar, read alike by every process
                    return raw
                # A value outside the support, or on its boundary (or an empty raw
                # array, which cannot say): the eager maps below decide and say where.
            elif isinstance(plain, jax.core.Tracer):
                # Traced: the support and boundary checks as one, whose usual case
                # is one flag reduced on the devices.
                self.check_dtype(plain.dtype)
                self.check_shape(plain.shape)
                raw = jnp.asarray(self.inverse(plain))
                name, support = type(self).__name__, self._support()
                checks: list[Any] = [(plain, self._outside_mask, support_error(name, support))]
                if not jnp.issubdtype(raw.dtype, jnp.inexact):
                    check_all(checks)
                    return raw
                flag = None
                if raw.shape == plain.shape:
                    # A NaN in the raw array wherever the value is outside (refused
                    # before it is used): then one test of the raw array, its least
                    # and greatest entries, covers both checks.
                    raw = jnp.where(self._outside_mask(plain), jnp.nan, raw).astype(raw.dtype)
                    flag = raw_not_finite
                checks.append((raw, not_finite, boundary_error(name, support)))
                check_all(checks, flag)
                return raw
        return self._finite(self.inverse(self._checked(value)))

    def _outside_mask(self, value: jax.Array) -> jax.Array:
        return ~(jnp.broadcast_to(self.in_support(value), value.shape) & jnp.isfinite(value))

    def _finite(self, raw: Any) -> Any:
        # A value on the boundary of a closed support (0 for nonnegative, a zero in a
        # simplex, a singular matrix) passes the support test, but its raw parameter
        # is infinite or NaN: refuse it rather than store it.
        raw = jnp.asarray(raw)
        if not jnp.issubdtype(raw.dtype, jnp.inexact):
            return raw
        return check_where(
            raw, ~jnp.isfinite(raw), boundary_error(type(self).__name__, self._support())
        )

    def _checked(self, value: Any) -> jax.Array:
        # ``value`` as a float array in the support: at once when it is concrete,
        # else when the computation runs (never pruned, see lensify.numerics).
        plain = _as_float_array(value)
        self.check_dtype(plain.dtype)
        self.check_shape(plain.shape)
        inside = self.in_support(plain)
        error = support_error(type(self).__name__, self._support())
        if _is_concrete_array(plain) and not isinstance(inside, jax.core.Tracer):
            # Checked at once, reduced on the devices in one compiled call; the
            # support test itself stays in JAX (its comparisons flush subnormal
            # numbers as XLA does).
            count, first, entry = outside(plain, inside)
            if np.asarray(count):
                raise error(found(count, first, entry, plain.shape))
            return plain
        bad = ~(jnp.broadcast_to(inside, plain.shape) & jnp.isfinite(plain))
        return check_where(plain, bad, error)

    def _support(self) -> str:
        # The words for error messages; a class whose support depends on its
        # parameters may say more.
        return self.support

    def _preimage(self, template: AbstractConstraint, value: Any, checked: jax.Array) -> Any:
        if type(value) is NonTrainable:
            return NonTrainable(self._preimage(template, value.tree, checked))
        if contains_unwrappables(value):
            return Preimage(self, value)
        return template._finite(template.inverse(checked))


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
        return self._template().inverse(_as_float_array(self.value))

    def log_det(self) -> jax.Array:
        # The inverse of the constraint's map: minus its log-det at the raw value, so
        # that constraint(Preimage(w)) adds nothing to w's own.
        template = self._template()
        raw = template.inverse(_as_float_array(self.value))
        return -jnp.asarray(template.with_raw(raw).log_det())

    def with_value(self, value: Any) -> Preimage:
        """This preimage with the wrapped value that maps to the raw ``value``.

        The one-level inverse of :meth:`unwrap` is the constraint's forward map:
        the ``value`` child becomes ``forward(value)``, the parameters are kept.
        """
        return _records.evolve(self, value=self._template().forward(jnp.asarray(value)))

    def _template(self) -> AbstractConstraint:
        template: AbstractConstraint = _tree.unflatten(self.structure, self.params)
        return template


def wide_raw(raw: Any) -> jax.Array:
    """``raw`` as a float array of at least float32, for computing a log-det."""
    raw = jnp.asarray(raw)
    if not jnp.issubdtype(raw.dtype, jnp.inexact):
        return raw.astype(jnp.result_type(float))
    return raw.astype(wide_dtype(raw.dtype))


def standard_normal_log_density(x: jax.Array) -> jax.Array:
    """Elementwise log density of N(0, 1): the term ``log_det`` gives a raw entry the
    value ignores (a unit vector's radius, a triangle a matrix does not use), so that
    a sampler over raw parameters sees a proper distribution."""
    return -0.5 * jnp.square(x) - 0.5 * float(np.log(2 * np.pi))


def tiny(x: jax.Array) -> Any:
    # The smallest normal number: XLA flushes subnormals to zero, so a log or a
    # division of anything smaller would give -inf or inf.
    return jnp.finfo(x.dtype).tiny


def log_range(dtype: Any) -> float:
    # 4 + log(1 / tiny): how many eps of relative error rounding a raw logarithm costs.
    return 4.0 - float(np.log(float(jnp.finfo(dtype).tiny)))


def sum_tolerance(n: int, dtype: Any) -> float:
    # Summing n terms, each with a relative error of about eps, as softmax does.
    return 16.0 * max(n, 1) * float(jnp.finfo(dtype).eps)
