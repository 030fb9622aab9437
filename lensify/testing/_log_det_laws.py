"""The laws of a change of variables: ``lf.unwrap_with_log_det`` against autodiff."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import lensify as lf
from lensify import pytree
from lensify.testing._compare import law_settings, trees_close, violated
from lensify.testing._leaves import float_arrays

SearchStrategy = st.SearchStrategy

#: ``coordinates(tree, values) -> (vector, extra)``: the value's intrinsic
#: coordinates as one flat vector with as many entries as the tree has trainable raw
#: entries, and the log density ``extra`` the wrappers give raw entries the value
#: ignores (0 if none).
Coordinates = Callable[[Any, Any], tuple[jax.Array, Any]]


def _is_frozen(x: Any) -> bool:
    return isinstance(x, lf.NonTrainable)


def _trainable(x: Any) -> bool:
    return not _is_frozen(x) and pytree.is_inexact_array(x)


def flat_values(tree: Any, values: Any) -> tuple[jax.Array, Any]:
    """The default :data:`Coordinates`: every float leaf of the values, flattened.

    Right for maps whose value has as many free entries as the raw parameters
    (elementwise maps and stacks of them).
    """
    leaves = [jnp.ravel(x) for x in pytree.flatten(values)[0] if pytree.is_inexact_array(x)]
    return jnp.concatenate(leaves) if leaves else jnp.zeros(0), 0.0


def simplex_coordinates(tree: Any, values: Any) -> tuple[jax.Array, Any]:
    """A simplex (along the last axis) has the first ``n - 1`` entries as coordinates."""
    return jnp.ravel(jnp.asarray(values)[..., :-1]), 0.0


def _upper(raw: jax.Array) -> jax.Array:
    n = raw.shape[-1]
    return jnp.triu(jnp.ones((n, n), bool), 1)


def triangle_coordinates(tree: Any, values: Any) -> tuple[jax.Array, Any]:
    """A Cholesky factor or symmetric matrix: its lower triangle, then the unused upper
    triangle of its raw array, which has a standard normal density."""
    raw = jnp.asarray(tree.raw)
    upper = _upper(raw)
    value = jnp.asarray(values)
    lower = value[..., ~upper]
    ignored = raw[..., upper]
    extra = jnp.sum(-0.5 * ignored**2 - 0.5 * np.log(2 * np.pi))
    return jnp.concatenate([jnp.ravel(lower), jnp.ravel(ignored)]), extra


def unit_vector_coordinates(tree: Any, values: Any) -> tuple[jax.Array, Any]:
    """A unit vector ignores its raw vector's radius: the raw vector itself, with a
    standard normal density."""
    raw = jnp.asarray(tree.raw)
    return jnp.ravel(raw), jnp.sum(-0.5 * raw**2 - 0.5 * np.log(2 * np.pi))


def _split(tree: Any) -> tuple[list[Any], Callable[[jax.Array], Any], int]:
    # The trainable raw entries as one vector, and the tree rebuilt from such a vector.
    leaves, treedef = pytree.flatten(tree, is_leaf=_is_frozen)
    where = [i for i, x in enumerate(leaves) if _trainable(x)]
    shapes = [(jnp.shape(leaves[i]), jnp.asarray(leaves[i]).dtype) for i in where]
    sizes = [int(np.prod(s)) for s, _ in shapes]

    def rebuild(theta: jax.Array) -> Any:
        new = list(leaves)
        start = 0
        for i, (shape, dtype), size in zip(where, shapes, sizes, strict=True):
            new[i] = theta[start : start + size].reshape(shape).astype(dtype)
            start += size
        return pytree.unflatten(treedef, new)

    return [leaves[i] for i in where], rebuild, sum(sizes)


def autodiff_log_det(tree: Any, coordinates: Coordinates = flat_values) -> jax.Array:
    """``log |det J|`` of the map from the trainable raw entries of ``tree`` to the
    value's intrinsic coordinates, by autodiff, plus the coordinates' ``extra``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import autodiff_log_det
        >>> float(autodiff_log_det(lf.Parameterize(jnp.exp, jnp.array([0.5, 1.0]))))
        1.5
    """
    raws, rebuild, _ = _split(tree)
    theta = jnp.concatenate([jnp.ravel(jnp.asarray(r, jnp.float32)) for r in raws])

    def coords(t: jax.Array) -> jax.Array:
        rebuilt = rebuild(t)
        return coordinates(rebuilt, lf.unwrap(rebuilt))[0].astype(jnp.float32)

    jacobian = jax.jacfwd(coords)(theta)
    if jacobian.shape[0] != jacobian.shape[1]:
        raise violated(
            "the coordinates have as many entries as the trainable raw parameters",
            coordinates=jacobian.shape[0],
            raw_entries=jacobian.shape[1],
        )
    extra = coordinates(tree, lf.unwrap(tree))[1]
    return jnp.linalg.slogdet(jacobian)[1] + extra


_jit_with_log_det = jax.jit(lf.unwrap_with_log_det)


def _tolerance(n: int) -> tuple[float, float]:
    # float32 Jacobians of n entries: the log-det sums n logarithms.
    return 1e-4, 2e-4 * max(n, 1)


def assert_log_det_laws(tree: Any, coordinates: Coordinates = flat_values) -> None:
    """Assert the laws of ``lf.unwrap_with_log_det`` on one tree.

    - the values are ``lf.unwrap(tree)``;
    - the log-det is finite, and equals ``log |det J|`` of the map from the trainable
      raw entries to the value's intrinsic ``coordinates``, by autodiff (see
      :func:`autodiff_log_det`); so a stack obeys the chain rule;
    - ``jax.jit`` agrees with eager;
    - frozen, it contributes nothing: ``NonTrainable(tree)`` has log-det 0.

    Args:
        tree: A wrapper, or any pytree holding wrappers.
        coordinates: The value's intrinsic coordinates (:func:`flat_values` by
            default; :func:`simplex_coordinates`, :func:`triangle_coordinates` and
            :func:`unit_vector_coordinates` for the built-ins that need them).

    Raises:
        AssertionError: naming the law that fails.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import assert_log_det_laws
        >>> assert_log_det_laws(lf.positive(jnp.array([0.5, 2.0])))
    """
    values, log_det = lf.unwrap_with_log_det(tree)
    shown = {"tree": tree, "log_det": log_det}
    if not trees_close(values, lf.unwrap(tree)):
        raise violated("the values are lf.unwrap(tree)", values=values, **shown)
    if not all(bool(jnp.all(jnp.isfinite(x))) for x in pytree.flatten(values)[0] if _trainable(x)):
        raise violated("the values are finite (draw raw arrays the map can take)", **shown)
    if jnp.shape(log_det) != () or not bool(jnp.isfinite(log_det)):
        raise violated("the log-det is a finite scalar", **shown)
    n = _split(tree)[2]
    rtol, atol = _tolerance(n)
    want = autodiff_log_det(tree, coordinates)
    if not np.isclose(float(log_det), float(want), rtol=rtol, atol=atol):
        raise violated(
            "log_det equals log |det J| by autodiff (slogdet of the Jacobian from the "
            "raw parameters to the value's coordinates)",
            autodiff=want,
            **shown,
        )
    jitted_values, jitted = _jit_with_log_det(tree)
    close = np.isclose(float(jitted), float(log_det), rtol=rtol, atol=atol)
    if not close or not trees_close(jitted_values, values, rtol=rtol, atol=atol):
        raise violated("jax.jit equals eager", jitted=jitted, **shown)
    frozen = lf.unwrap_with_log_det(lf.NonTrainable(tree))[1]
    if float(frozen) != 0.0:
        raise violated("frozen parts contribute nothing: NonTrainable(tree)", frozen=frozen)


@functools.lru_cache(maxsize=8)
def _default_arrays() -> SearchStrategy[jax.Array]:
    return float_arrays(((2,), (3,)))


def check_log_det_laws(
    factory: Callable[[jax.Array], Any],
    *,
    arrays: SearchStrategy[Any] | None = None,
    coordinates: Coordinates = flat_values,
    max_examples: int = 10,
) -> None:
    """Check :func:`assert_log_det_laws` on trees ``factory(x)`` for drawn arrays ``x``.

    For your own wrapper with a ``log_det``, or a stack of built-ins: a wrong
    ``log_det`` fails it, naming the law and the drawn input.

    Args:
        factory: From a drawn array to a tree holding wrappers (often a wrapper
            around a raw array: ``lambda r: lf.positive(1.0).with_raw(r)``).
        arrays: The strategy of arrays; float32 vectors of 2 or 3 entries in
            ``[-2, 2]`` by default.
        coordinates: The value's intrinsic coordinates (see
            :func:`assert_log_det_laws`).
        max_examples: Examples to try.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import check_log_det_laws
        >>> class Doubled(lf.AbstractUnwrappable):
        ...     x: jax.Array
        ...     def unwrap(self):
        ...         return 2 * self.x
        ...     def log_det(self):
        ...         return jnp.size(self.x) * jnp.log(2.0)
        >>> check_log_det_laws(Doubled, max_examples=3)
    """
    strategy = _default_arrays() if arrays is None else arrays

    @law_settings(max_examples)
    @given(strategy)
    def laws(x: Any) -> None:
        assert_log_det_laws(factory(x), coordinates)

    laws()
