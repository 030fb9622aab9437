"""Change of variables: ``unwrap_with_log_det``, the fold that also sums log-dets.

A sampler over a model's raw parameters needs, beside the values, the log absolute
Jacobian determinant of the map from the raw parameters to the values. For a tree of
nested wrappers that is a sum, bottom-up, of each wrapper's own ``log_det`` at its
unwrapped children (the chain rule): the same fold as ``unwrap``, with an algebra
that keeps a running list of terms.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lensify import _tree, _walker, numerics
from lensify._inverses import log_det_of
from lensify.algebra import identity, unwrap_algebra
from lensify.constraints import AbstractConstraint
from lensify.constraints._compiled import log_det_from
from lensify.wrappers import Parameterize, is_non_trainable

__all__ = ["unwrap_with_log_det"]

_PLAIN = _tree.PLAIN_TYPES
# The type of a concrete jax array (not a tracer).
_CONCRETE_ARRAY = numerics.CONCRETE_ARRAY


def _frozen(wrapper: Any) -> bool:
    """Whether a wrapper's variable is frozen: it is a constant, not sampled."""
    if type(wrapper) is Parameterize:  # the usual cases first: a plain variable
        args = wrapper.args
        if type(args) is not tuple or not args or type(args[0]) in _PLAIN:
            return False
        return is_non_trainable(args[0])
    if isinstance(wrapper, AbstractConstraint):
        raw = wrapper.raw
        return type(raw) not in _PLAIN and is_non_trainable(raw)
    if is_non_trainable(wrapper):
        return True
    if isinstance(wrapper, Parameterize):
        args = wrapper.args
        return type(args) is tuple and bool(args) and is_non_trainable(args[0])
    return False


class _LogDetAlgebra(_walker.Scoped):
    """unwrap's algebra, also collecting every wrapper's own log-det."""

    __slots__ = ("terms",)

    def __init__(self) -> None:
        self.terms: list[Any] = []

    def scope(self, wrapper: Any) -> Any:
        # A frozen subtree is folded by plain unwrap: it contributes nothing.
        return unwrap_algebra if _frozen(wrapper) else self

    def __call__(self, wrapper: Any) -> Any:
        if type(wrapper) is Parameterize:
            value, term = _parameterize(wrapper)
        elif isinstance(wrapper, AbstractConstraint):
            later = wrapper.log_det_later()
            value = wrapper.unwrap()
            term = _Later(("constraint", *later[0]), later[1]) if later else wrapper.log_det()
        else:
            value, term = wrapper.unwrap(), wrapper.log_det()
        self.terms.append(term)
        if type(value) in _PLAIN:
            return value
        return _walker.fold(value, self)  # unwrap is total


class _Later(NamedTuple):
    """A log-det computed in the one compiled sum at the end, from ``key`` (static:
    what to compute) and ``array`` (its input): eagerly, one dispatch for all of
    them rather than one per wrapper."""

    key: Any
    array: Any  # an array, or (raw, bounds) for a constraint


def _parameterize(wrapper: Parameterize[Any]) -> tuple[Any, Any]:
    args = wrapper.args
    if type(args) is tuple and len(args) == 1 and not wrapper.kwargs:
        (x,) = args
        if wrapper.fn is identity:
            return x, 0.0  # nothing to compute (simplify removes these)
        log_det = log_det_of(wrapper.fn)
        if log_det is not None and type(x) is _CONCRETE_ARRAY:
            return wrapper.unwrap(), _Later(("function", log_det), x)
    return wrapper.unwrap(), wrapper.log_det()


def _evaluate(key: Any, array: jax.Array) -> jax.Array:
    if key[0] == "function":
        return jnp.sum(key[1](array))
    return log_det_from(key[1:], array)


@functools.partial(jax.jit, static_argnums=0)
def _total(keys: tuple[Any, ...], later: list[Any], terms: list[Any], numbers: Any) -> jax.Array:
    # One compiled sum (per structure), not one dispatch per wrapper or per addition.
    computed = [_evaluate(key, array) for key, array in zip(keys, later, strict=True)]
    wide = jnp.result_type(float, *terms, *computed)
    total = jnp.asarray(numbers, wide)
    for term in (*terms, *computed):
        total = total + jnp.asarray(term, wide)
    return total


def _sum(terms: list[Any]) -> jax.Array:
    # Python numbers (an identity's 0.0) are added here: each one given to a
    # compiled function would cost a transfer of its own.
    numbers = 0.0
    arrays = []
    keys = []
    later = []
    for term in terms:
        t = type(term)
        if t is _Later:
            keys.append(term.key)
            later.append(term.array)
        elif t in (int, float):
            numbers += term
        else:
            arrays.append(term)
    if not arrays and not later:
        return _constant(numbers, jnp.result_type(float))
    return _total(tuple(keys), later, arrays, numbers)


@functools.lru_cache(maxsize=16)
def _constant(number: float, dtype: Any) -> jax.Array:
    return jnp.asarray(number, dtype)  # the usual 0.0 of a tree with nothing to sample


def unwrap_with_log_det(tree: Any) -> tuple[Any, jax.Array]:
    """``unwrap(tree)``, and the log absolute Jacobian determinant of the map from the
    tree's trainable raw parameters to its values.

    The change of variables a sampler over raw parameters needs: with a prior or
    likelihood ``log_p`` over the values, the density of the raw parameters is
    ``log_p(values) + log_det``. One walk, bottom-up: each wrapper's
    :meth:`~lensify.AbstractUnwrappable.log_det`, called on it with its children
    unwrapped, is added, so nested wrappers compose by the chain rule. Works under
    ``jax.jit``, ``jax.grad`` and ``jax.vmap``.

    - Frozen parameters contribute nothing: a ``NonTrainable`` and all it holds, a
      constraint whose raw parameter is a ``NonTrainable``, a ``Parameterize`` whose
      first argument is.
    - Built-ins: the constraints (``positive``, ``interval``, ``simplex``: the
      density of the first ``n - 1`` entries, ``cholesky_factor``: of the lower
      triangle, ``lf.constrain``: numpyro's own), and ``Parameterize`` of a function
      registered with a log-det (``exp``, ``log``, ``softplus``, ``inv_softplus``,
      ``sigmoid``, ``logit``, ``identity``), in its first argument.
    - Raw entries the value ignores (a unit vector's radius, the upper triangle of
      a Cholesky factor's or a symmetric matrix's raw array) get a standard normal
      log density, so the raw parameters have a proper distribution; the
      distribution of the values is unchanged.

    Args:
        tree: Any pytree.

    Returns:
        ``(values, log_det)``: ``values`` is ``unwrap(tree)``; ``log_det`` a scalar
        (0.0 for a tree with nothing to sample), in at least float32.

    Raises:
        NoLogDetError: for a trainable wrapper with no change of variables
            (``WeightNormalization``, ``Parameterize`` of a function without a
            registered log-det, a wrapper of yours without ``log_det``); the
            message starts with its key path.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> tree = {"scale": lf.Parameterize(jnp.exp, jnp.array([0.0, 1.0])), "n": 3}
        >>> values, log_det = lf.unwrap_with_log_det(tree)
        >>> values["scale"], log_det
        (Array([1.       , 2.7182817], dtype=float32), Array(1., dtype=float32))
        >>> lf.unwrap_with_log_det(lf.NonTrainable(tree))[1]
        Array(0., dtype=float32)
    """
    algebra = _LogDetAlgebra()
    values = _walker.fold(tree, algebra)
    return values, _sum(algebra.terms)
