"""Inverses: how a value goes back to the raw parameters a wrapper holds.

The registry of inverses that ``Parameterize.with_value`` looks its function up in
(see :func:`register_inverse`), the range check every such inverse goes through,
and the inverse of ``RealToIncreasingOnInterval``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np

from lensify.numerics import check_where, inv_softplus, wide_dtype

__all__ = [
    "check_in_range",
    "inverse_of",
    "log_det_of",
    "register_inverse",
]

# fn -> (the inverse of fn in its first positional argument, whether its result must
# be checked by a round trip through fn; if not, a finite result is enough), for
# Parameterize.with_value.
_INVERSES: dict[Any, tuple[Callable[[Any], Any], bool]] = {}
# fn -> the log absolute Jacobian determinant of x -> fn(x, *args, **kwargs), for
# Parameterize.log_det and so lf.unwrap_with_log_det.
_LOG_DETS: dict[Any, Callable[..., Any]] = {}


def register_inverse(
    fn: Callable[..., Any],
    inverse: Callable[[Any], Any],
    *,
    log_det: Callable[..., Any] | None = None,
) -> None:
    """Tell ``Parameterize(fn, x, ...)`` how to find ``x`` from its value.

    ``inverse(fn(x)) == x`` for ``x`` in fn's domain; the other arguments of the
    ``Parameterize`` are kept as they are. With it, :func:`rewrap` and
    ``optic.unwrapped()`` set such a ``Parameterize`` by value. A value outside
    the range of ``fn`` (one for which ``inverse`` gives NaN) is a ``ValueError``.
    Registered already: ``jnp.exp``/``jnp.log``, ``jax.nn.softplus``/
    :func:`inv_softplus`, ``jax.nn.sigmoid``/``jax.scipy.special.logit`` (each
    both ways) and :func:`~lensify.identity`.

    Args:
        fn: The function, as passed to ``Parameterize``; it must be hashable.
        inverse: Its inverse in its first argument.
        log_det: Optionally, the change of variables of ``fn`` in its first argument,
            for :func:`~lensify.unwrap_with_log_det`: called as ``fn`` is
            (``log_det(x, *args, **kwargs)``), it returns ``log |det J|`` of
            ``x -> fn(x, ...)``, or for an elementwise ``fn`` the elementwise
            ``log |fn'(x)|``, which is summed. The built-in pairs have theirs.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> def cube(x):
        ...     return x**3
        >>> lf.register_inverse(cube, jnp.cbrt)
        >>> new = lf.rewrap(lf.Parameterize(cube, jnp.ones(2)), jnp.array([8.0, 27.0]))
        >>> new.fn is cube, new.args[0].tolist()
        (True, [2.0, 3.0])
    """
    try:
        hash(fn)
    except TypeError:
        raise TypeError(
            f"register_inverse needs a hashable fn, got {type(fn).__name__}: it is looked "
            "up by the function a Parameterize holds."
        ) from None
    _INVERSES[fn] = (inverse, True)
    if log_det is not None:
        _LOG_DETS[fn] = log_det


def log_det_of(fn: Any) -> Callable[..., Any] | None:
    """The log-det registered for ``fn`` (see :func:`register_inverse`), or None."""
    try:
        return _LOG_DETS.get(fn)
    except TypeError:  # an unhashable callable
        return None


def inverse_of(fn: Any) -> tuple[Callable[[Any], Any], bool] | None:
    """The inverse registered for ``fn``, and whether :func:`check_in_range` must check
    its results by a round trip (else their being finite is enough)."""
    try:
        return _INVERSES.get(fn)
    except TypeError:  # an unhashable callable (a Module holding arrays)
        return None


def check_in_range(
    raw: Any, value: Any, fn: Callable[[Any], Any], name: str, *, round_trip: bool = True
) -> Any:
    """``raw``, checked to be finite and to give ``value`` back through ``fn``.

    An inverse gives NaN or an infinity for a value outside its function's range
    (``logit(1.0)``, ``log(0.0)``), and a value past what the dtype can reach comes
    back as another value (``logit(sigmoid(20.0))`` is ``inf`` in float32): either
    would store a raw value that does not unwrap to ``value``. The round trip must
    agree within ``ROUND_TRIP_RTOL`` times the dtype's epsilon, relative to the
    value (and as much absolute error near zero).
    """
    message = f"Parameterize: a value is outside the range of {name}"

    def error(_raw: np.ndarray, bad: np.ndarray) -> ValueError:
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        return ValueError(f"{message} ({int(bad.sum())} position(s), the first at {where}).")

    if not isinstance(raw, jax.Array):
        raw = jnp.asarray(raw)
    if raw.dtype.kind not in "fc" and not jnp.issubdtype(raw.dtype, jnp.inexact):
        return raw
    if not round_trip:
        # A pair whose inverse is finite exactly on fn's range (log of exp, logit of
        # sigmoid, inv_softplus of softplus): a finite raw value is enough.
        if isinstance(raw, jax.core.Tracer):
            return check_where(raw, ~jnp.isfinite(raw), error)
        finite = np.isfinite(np.asarray(raw))
        if not finite.all():
            raise error(np.asarray(raw), ~finite)
        return raw
    wide = wide_dtype(raw.dtype)
    target = jnp.asarray(value, wide)
    back = jnp.asarray(fn(raw), wide)
    tol = ROUND_TRIP_RTOL * jnp.finfo(raw.dtype).eps
    close = jnp.abs(back - target) <= tol * jnp.maximum(jnp.abs(target), 1.0)
    bad = ~jnp.isfinite(raw) | ~close
    return check_where(raw, bad, error)


# How far fn(inverse(value)) may be from value, in epsilons of the raw dtype,
# relative to max(|value|, 1).
ROUND_TRIP_RTOL = 64


# The built-in pairs, both ways. inv_softplus checks its input itself, and exp,
# softplus and sigmoid are defined everywhere: their results need no NaN check.
_PAIRS: list[tuple[Callable[[Any], Any], Callable[[Any], Any]]] = [
    (jnp.exp, jnp.log),
    (jax.nn.softplus, inv_softplus),
    (jax.nn.sigmoid, jax.scipy.special.logit),
]
for _fn, _inverse in _PAIRS:
    _INVERSES[_fn] = (_inverse, False)
    # The other way, only exp's inverse is finite exactly on log's range: softplus
    # of -200 is 0 in float32, and sigmoid of 20 is 1, which do not come back.
    _INVERSES[_inverse] = (_fn, _fn is not jnp.exp)
del _fn, _inverse


def _log_sigmoid(x: Any) -> Any:
    return -jax.nn.softplus(-x)


# log |f'(x)| of the built-in pairs, elementwise, written so that no term overflows
# or takes log(0) where f' is merely small (saturated sigmoid, softplus far left).
_LOG_DETS.update(
    {
        jnp.exp: lambda x: jnp.asarray(x),
        jnp.log: lambda x: -jnp.log(x),
        jax.nn.softplus: _log_sigmoid,
        inv_softplus: lambda x: -jnp.log(-jnp.expm1(-x)),
        jax.nn.sigmoid: lambda x: _log_sigmoid(x) + _log_sigmoid(-x),
        jax.scipy.special.logit: lambda x: -jnp.log(x) - jnp.log1p(-x),
    }
)
