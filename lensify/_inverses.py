"""Inverses: how a value goes back to the raw parameters a wrapper holds.

The registry of inverses that ``Parameterize.with_value`` looks its function up in
(see :func:`register_inverse`; an inverse may be in any positional argument, as
``jnp.where``'s is in its second), the range check every such inverse goes through,
the inverse of ``RealToIncreasingOnInterval``, and the inverses of functions made
afresh for every layer (flowjax's block masks), recognised by module and name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np

from lensify import _tree
from lensify._functions import callable_name
from lensify._kinds import is_wrapper
from lensify.numerics import (
    Found,
    ValueCheckError,
    check_where,
    host_values,
    inv_softplus,
    inv_softplus_unchecked,
    is_concrete,
    wide_dtype,
)

__all__ = [
    "check_in_range",
    "closure_inverse",
    "increasing_points_to_raw",
    "inverse_of",
    "log_det_of",
    "not_invertible_message",
    "register_inverse",
]

# fn -> (its inverse, whether check_in_range must check the inverse's results by a
# round trip through fn (if not, a finite result is enough), the argument it inverts:
# None for the first, called as inverse(value); k for argument k, called as
# inverse(value, *args, **kwargs) with fn's current arguments), for
# Parameterize.with_value.
Inverse = tuple[Callable[..., Any], bool, "int | None"]
_INVERSES: dict[Any, Inverse] = {}
# fn -> the log absolute Jacobian determinant of its map in the raw argument, called
# as fn is, for Parameterize.log_det and so lf.unwrap_with_log_det.
_LOG_DETS: dict[Any, Callable[..., Any]] = {}


def register_inverse(
    fn: Callable[..., Any],
    inverse: Callable[..., Any],
    argnum: int | None = None,
    *,
    log_det: Callable[..., Any] | None = None,
) -> None:
    """Tell ``Parameterize(fn, *args, **kwargs)`` how to find its raw argument from its value.

    Without ``argnum`` the first positional argument is the raw one, and
    ``inverse(value)`` gives it: ``inverse(fn(x)) == x`` for ``x`` in fn's domain;
    the other arguments of the ``Parameterize`` are kept as they are.

    With ``argnum=k`` the ``k``-th positional argument (from 0) is the raw one, and
    the inverse is called as ``inverse(value, *args, **kwargs)`` with the
    ``Parameterize``'s current arguments, unwrapped (the old raw argument among
    them): an argument after the first is rarely found from the value alone. The
    mask of ``jnp.where(mask, w, 0)`` says which entries of ``w`` the value shows;
    the others (hidden by the mask) are kept from the old ``w``. ``argnum=0``
    inverts the first argument this way.

    With it, :func:`rewrap` and ``optic.unwrapped()`` set such a ``Parameterize``
    by value. The raw argument must be finite and give the value back through
    ``fn``: a value outside the range of ``fn`` (one for which ``inverse`` gives
    NaN, or one that does not come back) is a ``ValueError``. Registered already:
    ``jnp.exp``/``jnp.log``, ``jax.nn.softplus``/:func:`inv_softplus`,
    ``jax.nn.sigmoid``/``jax.scipy.special.logit`` (each both ways),
    :func:`~lensify.identity`, and ``jnp.where`` in its second argument (flowjax's
    masked weights, ``Parameterize(jnp.where, mask, w, 0)``).

    Args:
        fn: The function, as passed to ``Parameterize``; it must be hashable.
        inverse: Its inverse in the raw argument.
        argnum: Which positional argument is the raw one; the first if omitted.
        log_det: Optionally, the change of variables of ``fn`` in its raw argument,
            for :func:`~lensify.unwrap_with_log_det`: called as ``fn`` is
            (``log_det(*args, **kwargs)``), it returns ``log |det J|`` of the map
            from the raw argument to the value, or for an elementwise ``fn`` the
            elementwise ``log |fn'(x)|``, which is summed. The built-in pairs have
            theirs.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> def cube(x):
        ...     return x**3
        >>> lf.register_inverse(cube, jnp.cbrt)
        >>> new = lf.rewrap(lf.Parameterize(cube, jnp.ones(2)), jnp.array([8.0, 27.0]))
        >>> new.fn is cube, new.args[0].tolist()
        (True, [2.0, 3.0])
        >>> def scaled(scale, x):
        ...     return scale * x
        >>> lf.register_inverse(scaled, lambda value, scale, x: value / scale, argnum=1)
        >>> lf.rewrap(lf.Parameterize(scaled, 2.0, jnp.ones(2)), jnp.array([4.0, 6.0])).args
        (2.0, Array([2., 3.], dtype=float32))
    """
    try:
        hash(fn)
    except TypeError:
        raise TypeError(
            f"register_inverse needs a hashable fn, got {type(fn).__name__}: it is looked "
            "up by the function a Parameterize holds."
        ) from None
    if argnum is not None and (type(argnum) is not int or argnum < 0):
        raise TypeError(
            f"register_inverse: argnum must be a non-negative int (the position of the raw "
            f"argument among fn's positional arguments), got {argnum!r}."
        )
    _INVERSES[fn] = (inverse, True, argnum)
    if log_det is not None:
        _LOG_DETS[fn] = log_det


def log_det_of(fn: Any) -> Callable[..., Any] | None:
    """The log-det registered for ``fn`` (see :func:`register_inverse`), or None."""
    try:
        return _LOG_DETS.get(fn)
    except TypeError:  # an unhashable callable
        return None


def inverse_of(fn: Any) -> Inverse | None:
    """The inverse registered for ``fn``: ``(inverse, round_trip, argnum)``.

    ``round_trip`` says whether :func:`check_in_range` must check its results by a
    round trip (else their being finite is enough); ``argnum`` is None for the first
    argument, inverted as ``inverse(value)``, else the argument inverted as
    ``inverse(value, *args, **kwargs)``. A function made afresh for every layer, which
    cannot be registered, is recognised by its module and name
    (:func:`closure_inverse`).
    """
    try:
        found = _INVERSES.get(fn)
    except TypeError:  # an unhashable callable (a Module holding arrays)
        return None
    return found if found is not None else closure_inverse(fn)


def check_in_range(
    raw: Any,
    value: Any,
    fn: Callable[[Any], Any],
    name: str,
    *,
    round_trip: bool = True,
    owner: str = "Parameterize",
) -> Any:
    """``raw``, checked to be finite and to give ``value`` back through ``fn``.

    An inverse gives NaN or an infinity for a value outside its function's range
    (``logit(1.0)``, ``log(0.0)``), and a value past what the dtype can reach comes
    back as another value (``logit(sigmoid(20.0))`` is ``inf`` in float32): either
    would store a raw value that does not unwrap to ``value``. The round trip must
    agree within ``ROUND_TRIP_RTOL`` times the dtype's epsilon, relative to the
    value (and as much absolute error near zero). ``owner`` names the wrapper class
    in the message.
    """
    message = f"{owner}: a value is outside the range of {name}"

    def error(found: Found) -> ValueError:
        return ValueCheckError(
            f"{message} ({found.count} position(s), the first at {found.index})."
        )

    if not isinstance(raw, jax.Array):
        raw = jnp.asarray(raw)
    if raw.dtype.kind not in "fc" and not jnp.issubdtype(raw.dtype, jnp.inexact):
        return raw
    if not round_trip:
        # A pair whose inverse is finite exactly on fn's range (log of exp, logit of
        # sigmoid, inv_softplus of softplus): a finite raw value is enough.
        if is_concrete(raw):
            on_host = host_values(raw)
            finite = (
                np.isfinite(on_host).all()
                if on_host is not None
                else not np.asarray(_nonfinite(raw))
            )
            if finite:
                return raw  # the usual case eagerly: one read (of the array, or a flag)
        return check_where(raw, ~jnp.isfinite(raw), error)
    wide = wide_dtype(raw.dtype)
    target = jnp.asarray(value, wide)
    back = jnp.asarray(fn(raw), wide)
    tol = ROUND_TRIP_RTOL * jnp.finfo(raw.dtype).eps
    close = jnp.abs(back - target) <= tol * jnp.maximum(jnp.abs(target), 1.0)
    if close.shape != raw.shape:
        # A map that changes the shape (a flat vector to a triangular matrix): the
        # positions named are the value's.
        check_where(close, ~close | ~jnp.all(jnp.isfinite(raw)), error)
        return raw
    bad = ~jnp.isfinite(raw) | ~close
    return check_where(raw, bad, error)


@jax.jit
def _nonfinite(raw: jax.Array) -> jax.Array:
    return ~jnp.all(jnp.isfinite(raw))


# How far fn(inverse(value)) may be from value, in epsilons of the raw dtype,
# relative to max(|value|, 1).
ROUND_TRIP_RTOL = 64


# The built-in pairs, both ways. inv_softplus checks its input itself, and exp,
# softplus and sigmoid are defined everywhere: their results need no NaN check.
def _softplus_inverse(value: Any) -> jax.Array:
    # inv_softplus without its own check: a negative value gives NaN, which the
    # finite check of check_in_range refuses (one read of the result, not two).
    if not isinstance(value, jax.Array):
        value = jnp.asarray(value)  # (of a jax array it costs a dispatch)
    if value.dtype.kind not in "fc" and not jnp.issubdtype(value.dtype, jnp.inexact):
        value = value.astype(jnp.result_type(float))
    return inv_softplus_unchecked(value)


_PAIRS: list[tuple[Callable[[Any], Any], Callable[[Any], Any]]] = [
    (jnp.exp, jnp.log),
    (jax.nn.softplus, inv_softplus),
    (jax.nn.sigmoid, jax.scipy.special.logit),
]
_UNCHECKED: dict[Any, Callable[[Any], Any]] = {jax.nn.softplus: _softplus_inverse}
for _fn, _inverse in _PAIRS:
    _INVERSES[_fn] = (_UNCHECKED.get(_fn, _inverse), False, None)
    # The other way, only exp's inverse is finite exactly on log's range: softplus
    # of -200 is 0 in float32, and sigmoid of 20 is 1, which do not come back.
    _INVERSES[_inverse] = (_fn, _fn is not jnp.exp, None)
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


@jax.jit
def _where_inverse(value: Any, condition: Any, x: Any, y: Any) -> jax.Array:
    # jnp.where(condition, x, y) set to value, in x: the entries condition shows take
    # the value; the hidden ones keep x's old raw entries where the value equals the
    # fill y there, and become NaN (refused by the finite check) where it does not,
    # since no x gives that value. One compiled call, so that setting a masked weight
    # costs about what computing it does.
    value = jnp.asarray(value)
    x = jnp.asarray(x)
    hidden = jnp.where(value == y, x, jnp.nan)
    return jnp.where(condition, value, hidden).astype(jnp.result_type(x, value))


# flowjax's masked autoregressive layers: Parameterize(jnp.where, mask, weight, 0).
_INVERSES[jnp.where] = (_where_inverse, False, 1)


def increasing_points_to_raw(
    value: Any,
    bounds: tuple[Any, Any],
    min_width: float,
    include_endpoints: str,
    n_widths: int,
) -> jax.Array:
    """The raw array from which ``RealToIncreasingOnInterval`` unwraps to ``value``.

    The widths between consecutive points, less ``min_width``, are the softmax of
    the raw array up to a constant; the raw array returned has mean zero.
    """
    lower, upper = bounds
    points = jnp.asarray(value)
    if not jnp.issubdtype(points.dtype, jnp.inexact):
        points = points.astype(jnp.result_type(float))
    has_lower = include_endpoints in ("lower", "both")
    has_upper = include_endpoints in ("upper", "both")
    expected = n_widths - 1 + has_lower + has_upper
    if points.ndim == 0 or points.shape[-1] != expected:
        raise ValueError(
            f"RealToIncreasingOnInterval with {n_widths} widths and include_endpoints="
            f"{include_endpoints!r} unwraps to {expected} points along the last "
            f"axis, got a value of shape {points.shape}."
        )
    batch = points.shape[:-1]
    low = jnp.broadcast_to(jnp.asarray(lower, points.dtype), (*batch, 1))
    high = jnp.broadcast_to(jnp.asarray(upper, points.dtype), (*batch, 1))
    inner = points[..., int(has_lower) : expected - int(has_upper)]
    widths = jnp.diff(jnp.concatenate([low, inner, high], axis=-1), axis=-1)
    narrow = widths <= min_width
    no = jnp.zeros((*batch, 1), bool)
    # A width too narrow marks both of its points; an endpoint must equal its bound.
    bad = jnp.concatenate([narrow, no], axis=-1) | jnp.concatenate([no, narrow], axis=-1)
    tol = 16 * jnp.finfo(points.dtype).eps * (jnp.abs(lower) + jnp.abs(upper))
    ends = [jnp.abs(points[..., :1] - low) > tol] if has_lower else [no]
    ends += [jnp.abs(points[..., -1:] - high) > tol] if has_upper else [no]
    bad = bad | jnp.concatenate([ends[0], jnp.zeros_like(narrow[..., 1:]), ends[1]], axis=-1)
    bad = bad[..., int(not has_lower) : int(not has_lower) + expected]

    def error(found: Found) -> ValueError:
        count, where = found.count, found.index
        return ValueCheckError(
            "RealToIncreasingOnInterval: a value must increase by more than min_width="
            f"{min_width} from the lower to the upper bound, with each included "
            f"endpoint equal to its bound ({count} position(s), the first at "
            f"{where})."
        )

    points = check_where(points, bad, error)
    inner = points[..., int(has_lower) : expected - int(has_upper)]
    widths = jnp.diff(jnp.concatenate([low, inner, high], axis=-1), axis=-1)
    raw = jnp.log(widths - min_width)
    return raw - jnp.mean(raw, axis=-1, keepdims=True)


# --------------------------------------------- functions made afresh for every layer

_BNAF_MODULE = "flowjax.bijections.block_autoregressive_network"
_BNAF_MASK = "block_autoregressive_linear.<locals>.apply_mask"


def _closure_value(fn: Any, name: str) -> Any:
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None) or ()
    names = code.co_freevars if code is not None else ()
    for var, cell in zip(names, cells, strict=False):
        if var == name:
            return cell.cell_contents
    return None


@jax.jit
def _bnaf_inverse(value: Any, weight: Any, tril: Any, diag: Any) -> jax.Array:
    # apply_mask(w) = where(diag, softplus(w'), w') with w' = where(tril, w, 0). Set to
    # value: a diagonal-block entry is inv_softplus of its value (NaN or -inf, so
    # refused, for a value <= 0), an entry below the diagonal blocks is its value,
    # and an entry above them keeps the old raw weight if its value is 0 (it has no
    # other), else NaN: no weight gives it.
    value = jnp.asarray(value, weight.dtype)
    positive = jnp.where(value > 0, value, jnp.nan)
    shown = jnp.where(diag, inv_softplus_unchecked(positive), value)
    hidden = jnp.where(value == 0, weight, jnp.nan)
    return jnp.where(tril, shown, hidden)


def closure_inverse(fn: Any) -> Inverse | None:
    """The inverse of ``fn`` if it is one lensify knows by its module and name, else None.

    flowjax's block neural autoregressive flow (BNAF) stores each weight as
    ``WeightNormalization(Parameterize(apply_mask, w))``, with ``apply_mask`` a
    closure over the layer's block masks: a value sets the entries the masks show
    and keeps the hidden ones.
    """
    if getattr(fn, "__qualname__", None) != _BNAF_MASK or fn.__module__ != _BNAF_MODULE:
        return None
    tril = _closure_value(fn, "block_tril_mask")
    diag = _closure_value(fn, "block_diag_mask")
    if tril is None or diag is None:
        return None
    inverse: Callable[..., Any] = functools.partial(_bnaf_masked_inverse, tril=tril, diag=diag)
    return (inverse, False, 0)


def _bnaf_masked_inverse(value: Any, weight: Any, *, tril: Any, diag: Any) -> jax.Array:
    return _bnaf_inverse(value, weight, tril, diag)


def not_invertible_message(wrapper: Any, argnum: int | None = None) -> str:
    name = callable_name(wrapper.fn)
    if not wrapper.args:
        return f"Parameterize({name}) cannot be set by its value: it has no argument to invert."
    if argnum is not None:
        return (
            f"Parameterize({name}, ...) cannot be set by its value: the inverse registered "
            f"for {name} is in argument {argnum}, but it has {len(wrapper.args)} positional "
            "argument(s)."
        )
    # The hint names the argument that holds the parameter: a float array (or a
    # wrapper), never a mask or an integer that configures fn.
    candidates = [i for i, a in enumerate(wrapper.args) if _may_be_variable(a)]
    head = (
        f"Parameterize({name}, ...) cannot be set by its value: {name} has no registered inverse. "
    )
    if candidates == [0]:
        return head + (
            f"Register one with lf.register_inverse({name}, inverse), or set the raw "
            "argument with an ordinary optic, e.g. lf.at.args[0].set(wrapper, raw)."
        )
    if len(candidates) == 1:
        k = candidates[0]
        return head + (
            f"Its raw argument looks like args[{k}]: register an inverse for it with "
            f"lf.register_inverse({name}, inverse, argnum={k}) (called as "
            f"inverse(value, *args, **kwargs)), or set it with an ordinary optic, e.g. "
            f"lf.at.args[{k}].set(wrapper, raw)."
        )
    return head + (
        f"Register one for the argument that holds the parameter with "
        f"lf.register_inverse({name}, inverse, argnum=k) (k its position), or set that "
        "argument with an ordinary optic, lf.at.args[k].set(wrapper, raw)."
    )


def _may_be_variable(arg: Any) -> bool:
    # A float or complex array (a raw parameter), or a wrapper (one stands for one).
    return is_wrapper(arg) or _tree.is_inexact_array(arg) or type(arg) in (float, complex)
