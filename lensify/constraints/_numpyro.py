"""Any numpyro constraint with a bijective transform, as a lensify constraint.

numpyro keeps a registry of constraints and the transforms that map the real line onto
them (``numpyro.distributions.transforms.biject_to``). :func:`constrain` wraps a value
in one of them. numpyro is an optional dependency, imported when :func:`constrain`
first runs, never when lensify is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lensify import _records, _tree
from lensify.constraints._protocol import AbstractConstraint, ConstraintError, Tolerance
from lensify.numerics import Found, check_where, is_concrete

__all__ = ["Constrained", "NumpyroConstraint", "constrain"]

_INSTALL = "pip install lensify[numpyro]"


def _transforms() -> Any:
    try:
        return importlib.import_module("numpyro.distributions.transforms")
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"lf.constrain needs numpyro, which is not installed. Install it with `{_INSTALL}`."
        ) from error


class NumpyroConstraint:
    """A numpyro constraint held in a tree's structure: hashable, compared by value.

    numpyro constraints are pytrees whose leaves are their parameters (bounds), and
    are not hashable. Held here, a constraint is static: ``jax.jit`` caches on it,
    it pickles, and equal constraints (same class, same parameters) compare equal.
    Its transform, ``biject_to(constraint)``, is made once and travels with it.

    Args:
        constraint: A numpyro constraint with concrete parameters.
    """

    __slots__ = ("_key", "_transform", "constraint")

    def __init__(self, constraint: Any) -> None:
        leaves, structure = _tree.flatten(constraint)
        if not all(is_concrete(leaf) for leaf in leaves):
            raise ConstraintError(
                f"lf.constrain needs a numpyro constraint with concrete parameters, got "
                f"{constraint!r} with traced ones: they are static (part of the tree "
                "structure, never trained). Build the constraint outside jax.jit.",
                constraint="Constrained",
            )
        arrays = tuple(np.asarray(leaf) for leaf in leaves)
        self.constraint = constraint
        self._key = (
            type(constraint),
            structure,
            tuple((a.shape, a.dtype.str, a.tobytes()) for a in arrays),
        )
        self._transform: Any = None

    @property
    def transform(self) -> Any:
        """``numpyro.distributions.transforms.biject_to(constraint)``."""
        if self._transform is None:
            self._transform = _transforms().biject_to(self.constraint)
        return self._transform

    def __eq__(self, other: object) -> bool:
        return type(other) is NumpyroConstraint and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return repr(self.constraint)

    def __getstate__(self) -> Any:
        return self.constraint

    def __setstate__(self, state: Any) -> None:
        self.__init__(state)  # type: ignore[misc]


class Constrained(AbstractConstraint):
    """A value in the support of a numpyro constraint, through its ``biject_to`` map.

    ``unwrap`` gives ``transform(raw)`` and construction stores
    ``raw = transform.inv(value)`` for ``transform = biject_to(constraint)``, after
    checking the value with ``constraint.check`` (per event of ``constraint.event_dim``
    axes) and for finiteness. The raw array may have another shape than the value
    (``n (n - 1) / 2`` entries for an ``n x n`` correlation Cholesky factor). Build
    it with :func:`constrain`.

    The round trip is numpyro's: float16 and bfloat16 values are computed in float32,
    as for every constraint (see :meth:`tolerance`). lensify's own constraints are
    more exact at the float edges (see the Constraints page); prefer them where one
    fits.
    """

    constraint: NumpyroConstraint = _records.field(static=True)

    support = "the numpyro constraint"

    def __init__(self, value: Any, constraint: Any) -> None:
        if not isinstance(constraint, NumpyroConstraint):
            constraint = _held(constraint)
        self.constraint = constraint
        self._set_raw(value)

    def _support(self) -> str:
        return f"{self.constraint!r} (numpyro)"

    def check_shape(self, shape: tuple[int, ...]) -> None:
        event_dim = int(self.constraint.constraint.event_dim)
        if len(shape) < event_dim:
            raise self._error(
                f"{self.constraint!r} constrains events of {event_dim} axes, got a value "
                f"of shape {shape}."
            )

    def tolerance(self, dtype: Any) -> Tolerance:
        """The default ``rtol`` and ``atol = 4 * sqrt(eps)`` (1.4e-3 in float32).

        One tolerance for every numpyro constraint, so it is the loosest one: the
        correlation Cholesky map takes ``sqrt(1 - x**2)``, which loses up to
        ``sqrt(eps)`` absolutely for a row near saturation (measured: 4.4e-6 at
        raw values of 5, float32). Most numpyro maps do much better.
        """
        default = super().tolerance(dtype)
        return Tolerance(rtol=default.rtol, atol=4 * float(np.sqrt(jnp.finfo(dtype).eps)))

    def forward(self, raw: jax.Array) -> jax.Array:
        return jnp.asarray(self.constraint.transform(raw))

    def inverse(self, value: jax.Array) -> jax.Array:
        return jnp.asarray(self.constraint.transform.inv(value))

    def log_det(self) -> jax.Array:
        # numpyro's own log |det J| of the transform, per batch entry: summed.
        raw = jnp.asarray(self.raw)
        transform = self.constraint.transform
        return jnp.sum(transform.log_abs_det_jacobian(raw, transform(raw)))

    def _finite(self, raw: Any) -> Any:
        # numpyro's maps overflow at the float edge: the raw parameter of a huge value
        # is finite (log(3e38 - 2) = 88.7), but its forward map is infinite. Refuse
        # it, as a value on the boundary is: never store what unwraps to infinity.
        raw = super()._finite(raw)
        back = self.forward(raw)
        if not jnp.issubdtype(back.dtype, jnp.inexact):
            return raw
        overflows = jnp.broadcast_to(~jnp.all(jnp.isfinite(back)), jnp.shape(raw))
        return check_where(raw, overflows, self._overflow_error)

    def _overflow_error(self, found: Found) -> ConstraintError:
        name = type(self).__name__
        return ConstraintError(
            f"{name} cannot store this value: {self.constraint!r}'s map of its raw "
            "parameter back to a value overflows to infinity (the value is too large "
            "for numpyro's transform in this dtype). Pass a smaller value, or use a "
            "wider dtype.",
            constraint=name,
        )

    def in_support(self, value: jax.Array) -> jax.Array:
        inside = jnp.asarray(self.constraint.constraint.check(value), dtype=bool)
        event_dim = int(self.constraint.constraint.event_dim)
        return jnp.expand_dims(inside, tuple(range(inside.ndim, inside.ndim + event_dim)))


def _held(constraint: Any) -> NumpyroConstraint:
    transforms = _transforms()
    constraints = importlib.import_module("numpyro.distributions.constraints")
    if not isinstance(constraint, constraints.Constraint):
        raise TypeError(
            f"lf.constrain needs a numpyro constraint (from numpyro.distributions."
            f"constraints), got {constraint!r}. For lensify's own constraints call them "
            "directly: lf.positive(x), lf.interval(x, lower, upper), ..."
        )
    try:
        transforms.biject_to(constraint)
    except NotImplementedError:
        raise TypeError(
            f"numpyro has no bijective transform (biject_to) for {constraint!r}, so "
            "lf.constrain cannot map the real line onto it. Pick a constraint that "
            "biject_to supports, or write an lf.AbstractConstraint."
        ) from None
    return NumpyroConstraint(constraint)


def constrain(x: Any, constraint: Any) -> Constrained:
    """Constrain ``x`` to a numpyro constraint's support, starting at ``x``.

    Any constraint of ``numpyro.distributions.constraints`` that ``biject_to``
    supports works: ordered vectors, correlation Cholesky factors, positive-definite
    matrices, lower-bounded and circular values, and more. Like every lensify
    constraint it is value-preserving, checked against the support (under
    ``jax.jit`` too), composes with the other wrappers and has ``with_value``.
    numpyro is imported on the first call (``pip install lensify[numpyro]``).

    Args:
        x: A value in the constraint's support (or a wrapper of one).
        constraint: A numpyro constraint, such as
            ``numpyro.distributions.constraints.ordered_vector``.

    Returns:
        A :class:`Constrained` with ``unwrap(constrain(x, constraint)) == x``.

    Raises:
        ConstraintError: if ``x`` is outside the support.
        TypeError: if ``constraint`` is not a numpyro constraint with a transform.
        ModuleNotFoundError: if numpyro is not installed.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from numpyro.distributions import constraints
        >>> cuts = lf.constrain(jnp.array([-1.0, 0.5, 2.0]), constraints.ordered_vector)
        >>> lf.unwrap(cuts)
        Array([-1. ,  0.5,  2. ], dtype=float32)
    """
    return Constrained(x, constraint)
