"""Numerical helpers: inverse maps and value checks that work eagerly and under jit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = ["check_values", "check_where", "inv_softplus"]


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _as_array(x: ArrayLike) -> jax.Array:
    # jnp.asarray of what is already a jax array costs as much as a small computation.
    return x if isinstance(x, jax.Array) else jnp.asarray(x)


def check_values(x: ArrayLike, bad: Callable[[np.ndarray], np.ndarray], message: str) -> jax.Array:
    """Return ``x`` unchanged, raising ``ValueError(message)`` where ``bad(x)`` is True.

    With a concrete ``x`` the check runs at once. Under ``jax.jit``/``jax.vmap`` it
    runs when the computation does, through a host callback, and the error surfaces
    as a ``jax.errors.JaxRuntimeError`` carrying the same message. The check is the
    identity for differentiation.

    Example:
        >>> import jax.numpy as jnp
        >>> from lensify.numerics import check_values
        >>> check_values(jnp.ones(2), lambda v: v < 0, "negative")
        Array([1., 1.], dtype=float32)
    """
    x = _as_array(x)
    if _is_concrete(x):
        _raise_if(np.asarray(x), bad, message)
        return x
    return _checked(bad, message, x)


def _raise_if(x: np.ndarray, bad: Callable[[np.ndarray], np.ndarray], message: str) -> None:
    mask = np.asarray(bad(x))
    if np.count_nonzero(mask):  # cheaper than mask.any() on small arrays
        first = np.asarray(x)[mask].ravel()[0].item()
        raise ValueError(f"{message} (got {first!r} at {int(mask.sum())} position(s)).")


def _checked(bad: Callable[[np.ndarray], np.ndarray], message: str, x: jax.Array) -> jax.Array:
    def host(value: np.ndarray) -> np.ndarray:
        _raise_if(np.asarray(value), bad, message)
        return np.asarray(value)

    @jax.custom_jvp
    def checked(value: jax.Array) -> jax.Array:
        shape = jax.ShapeDtypeStruct(value.shape, value.dtype)
        return jax.pure_callback(host, shape, value, vmap_method="expand_dims")

    @checked.defjvp
    def _(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[jax.Array, jax.Array]:
        (value,), (tangent,) = primals, tangents
        return checked(value), tangent

    return checked(x)


def inv_softplus(x: ArrayLike) -> jax.Array:
    """The inverse of ``jax.nn.softplus``: ``log(expm1(x))``, computed stably.

    Defined for ``x >= 0`` (``-inf`` at 0). A negative input is a ``ValueError``
    when ``x`` is concrete, and a ``jax.errors.JaxRuntimeError`` with the same
    message under ``jax.jit`` or ``jax.vmap``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> x = jnp.array([0.5, 1.0, 20.0])
        >>> bool(jnp.allclose(jax.nn.softplus(lf.inv_softplus(x)), x))
        True
        >>> lf.inv_softplus(jnp.array(-1.0))
        Traceback (most recent call last):
        ...
        ValueError: inv_softplus expects non-negative input (got -1.0 at 1 position(s)).
    """
    x = check_values(x, lambda v: v < 0, "inv_softplus expects non-negative input")
    # The dtype kind settles float32/float64 at once; jnp.issubdtype the rest.
    if x.dtype.kind not in "fc" and not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return _inv_softplus_formula(x)


@jax.jit
def _inv_softplus_formula(x: jax.Array) -> jax.Array:
    # Compiled once per shape and dtype, so that an eager call (lf.rewrap through a
    # Parameterize(softplus), a WeightNormalization built) costs one dispatch, not five.
    return x + jnp.log(-jnp.expm1(-x))


def check_where(
    x: ArrayLike,
    bad: ArrayLike,
    error: Callable[[np.ndarray, np.ndarray], Exception],
) -> jax.Array:
    """Return ``x`` unchanged, raising ``error(x, bad)`` if any entry of ``bad`` is True.

    Like :func:`check_values`, but the mask ``bad`` is computed by the caller, in
    JAX (so it may be any traceable test: a row sum, a comparison with array
    bounds), and the exception is built by ``error`` from the values and the mask
    as numpy arrays, broadcast to one shape. With concrete inputs the check runs at
    once; under ``jax.jit`` or ``jax.vmap`` it runs when the computation does,
    through a host callback, and the exception surfaces as a
    ``jax.errors.JaxRuntimeError`` carrying its message. Use the returned array, not
    ``x``, so that the check is not pruned from a traced computation. The check is
    the identity for differentiation.

    Example:
        >>> import jax.numpy as jnp
        >>> from lensify.numerics import check_where
        >>> x = jnp.array([1.0, -2.0])
        >>> check_where(x, x < 0, lambda v, m: ValueError(f"negative: {v[m]}"))
        Traceback (most recent call last):
        ...
        ValueError: negative: [-2.]
    """
    x = _as_array(x)
    bad = jnp.asarray(bad, dtype=bool)
    if _is_concrete(x) and _is_concrete(bad):
        _raise_where(np.asarray(x), np.asarray(bad), error)
        return x
    return _checked_where(error, x, bad)


def _raise_where(
    x: np.ndarray, bad: np.ndarray, error: Callable[[np.ndarray, np.ndarray], Exception]
) -> None:
    if bad.any():
        value, mask = np.broadcast_arrays(x, bad)
        raise error(value, mask)


def _checked_where(
    error: Callable[[np.ndarray, np.ndarray], Exception], x: jax.Array, bad: jax.Array
) -> jax.Array:
    def host(value: np.ndarray, mask: np.ndarray) -> np.ndarray:
        _raise_where(np.asarray(value), np.asarray(mask), error)
        return np.asarray(value)

    @jax.custom_jvp
    def checked(value: jax.Array, mask: jax.Array) -> jax.Array:
        shape = jax.ShapeDtypeStruct(value.shape, value.dtype)
        return jax.pure_callback(host, shape, value, mask, vmap_method="expand_dims")

    @checked.defjvp
    def _(
        primals: tuple[jax.Array, jax.Array], tangents: tuple[jax.Array, jax.Array]
    ) -> tuple[jax.Array, jax.Array]:
        (value, mask), (tangent, _) = primals, tangents
        return checked(value, mask), tangent

    return checked(x, bad)
