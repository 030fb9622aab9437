"""Strategies for leaves: small float arrays, scalars, and the unusual leaves users bring."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

SearchStrategy = st.SearchStrategy

#: Array shapes drawn by default: scalars, vectors and small matrices.
SMALL_SHAPES: tuple[tuple[int, ...], ...] = ((), (1,), (2,), (3,), (2, 2), (2, 3))

#: Float dtypes :func:`float_arrays` can draw besides float32: the half-precision
#: types a mixed-precision model holds.
LOW_PRECISION: tuple[Any, ...] = (jnp.float16, jnp.bfloat16)


def _floats(*, nonzero: bool) -> SearchStrategy[float]:
    if not nonzero:
        return st.floats(-2.0, 2.0, width=32, allow_subnormal=False)
    positive = st.floats(0.25, 2.0, width=32)
    return st.one_of(positive, positive.map(lambda v: -v))


Shapes = Sequence[tuple[int, ...]] | SearchStrategy[tuple[int, ...]]


def _shape_strategy(shapes: Shapes) -> SearchStrategy[tuple[int, ...]]:
    # A strategy of shapes as it is; a sequence of shapes sampled from.
    if isinstance(shapes, SearchStrategy):
        return shapes
    if isinstance(shapes, tuple) and all(isinstance(d, int) for d in shapes):
        raise TypeError(
            f"shapes takes a sequence of shapes or a strategy of shapes, got the shape "
            f"{shapes!r}; pass [{shapes!r}] for that one shape."
        )
    chosen = tuple(shapes)
    if not chosen or not all(
        isinstance(s, tuple) and all(isinstance(d, int) and d >= 0 for d in s) for s in chosen
    ):
        raise TypeError(
            "shapes takes a non-empty sequence of shapes (tuples of non-negative ints, "
            f"e.g. [(), (3,), (2, 3)]) or a hypothesis strategy of shapes, got {shapes!r}."
        )
    return st.sampled_from(chosen)


def numpy_arrays(
    shapes: Shapes = SMALL_SHAPES, *, nonzero: bool = False
) -> SearchStrategy[np.ndarray]:
    """Small float32 numpy arrays with finite values in ``[-2, 2]``.

    ``shapes`` is a sequence of shapes to draw from, or a strategy of shapes (as
    :func:`float_arrays` takes).
    """
    return hnp.arrays(np.float32, _shape_strategy(shapes), elements=_floats(nonzero=nonzero))


def _as_jax(dtype: Any) -> Any:
    def convert(x: np.ndarray) -> jax.Array:
        return jnp.asarray(x, dtype=dtype)

    return convert


def float_arrays(
    shapes: Shapes = SMALL_SHAPES,
    *,
    nonzero: bool = False,
    dtypes: Sequence[Any] = (jnp.float32,),
) -> SearchStrategy[jax.Array]:
    """Small float jax arrays with finite values in ``[-2, 2]``.

    Args:
        shapes: The shapes to draw from: a sequence of shapes (tuples of ints, such
            as ``[(), (3,), (2, 3)]``), or a hypothesis strategy of shapes, such as
            ``hypothesis.extra.numpy.array_shapes(max_dims=2, max_side=4)``. One
            shape is written ``[(2, 3)]``: a bare ``(2, 3)`` is a ``TypeError``.
        nonzero: If True every element has magnitude at least 0.25 (so no row is
            zero, as :class:`~lensify.WeightNormalization` needs).
        dtypes: The float dtypes to draw from; float32 only by default. Pass
            ``(jnp.float32, *LOW_PRECISION)`` for half-precision arrays too. Every
            value drawn is exactly representable in float16 and bfloat16 only up to
            their precision; it is rounded to the dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from hypothesis import given, settings
        >>> from lensify.testing import LOW_PRECISION, float_arrays
        >>> @settings(max_examples=10, deadline=None)
        ... @given(float_arrays([(2, 3)], nonzero=True, dtypes=LOW_PRECISION))
        ... def test_shape(x):
        ...     assert x.shape == (2, 3) and x.dtype in (jnp.float16, jnp.bfloat16)
        >>> test_shape()
        >>> from hypothesis.extra.numpy import array_shapes
        >>> @settings(max_examples=10, deadline=None)
        ... @given(float_arrays(array_shapes(min_dims=1, max_dims=2, max_side=3)))
        ... def test_any_shape(x):
        ...     assert 1 <= x.ndim <= 2 and max(x.shape) <= 3
        >>> test_any_shape()
    """
    arrays = numpy_arrays(shapes, nonzero=nonzero)
    return st.sampled_from(tuple(dtypes)).flatmap(lambda dtype: arrays.map(_as_jax(dtype)))


def _scalars() -> SearchStrategy[Any]:
    return st.one_of(
        st.integers(-3, 3), st.floats(-2.0, 2.0, allow_nan=False, allow_subnormal=False)
    )


@functools.cache
def default_leaves() -> SearchStrategy[Any]:
    """The leaves :func:`~lensify.testing.pytrees` draws unless told otherwise.

    ``None``, Python ints and floats, and small float32 jax and numpy arrays.
    """
    return st.one_of(st.none(), _scalars(), float_arrays(), numpy_arrays())


def _complex(x: np.ndarray) -> jax.Array:
    return jnp.asarray(x * (1.0 - 0.5j), dtype=jnp.complex64)


def _key(seed: int) -> jax.Array:
    return jax.random.key(seed)


def _abstract(x: np.ndarray) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(x.shape, x.dtype)


@functools.cache
def unusual_leaves() -> SearchStrategy[Any]:
    """Leaves that real models hold beside float32 arrays.

    Half-precision arrays (float16 and bfloat16), complex64 arrays, new-style PRNG key
    arrays (``jax.random.key``), and ``jax.ShapeDtypeStruct`` leaves (an abstract model,
    as ``jax.eval_shape`` returns it).

    Example:
        >>> import jax
        >>> from hypothesis import find
        >>> from lensify.testing import unusual_leaves
        >>> is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        >>> find(unusual_leaves(), is_key).shape
        ()
    """
    small = numpy_arrays()
    return st.one_of(
        float_arrays(dtypes=LOW_PRECISION),
        small.map(_complex),
        st.integers(0, 2**16).map(_key),
        small.map(_abstract),
    )


@functools.cache
def all_leaves() -> SearchStrategy[Any]:
    """:func:`default_leaves` and :func:`unusual_leaves`: every leaf kind lensify tests on.

    Example:
        >>> from hypothesis import given, settings
        >>> import lensify.testing as lt
        >>> @settings(max_examples=20, deadline=None)
        ... @given(lt.pytrees(nodes=lt.ALL_NODES, leaves=lt.all_leaves()))
        ... def test_flattens(tree):
        ...     import jax
        ...     jax.tree_util.tree_leaves(tree)
        >>> test_flattens()
    """
    return st.one_of(default_leaves(), unusual_leaves())
