"""Strategies for the built-in wrappers, and for trees holding wrappers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

import lensify as lf
from lensify.testing._leaves import default_leaves, float_arrays
from lensify.testing._nodes import CONTAINERS, NodeFactory
from lensify.testing._trees import Nesting, call, level, pytrees

SearchStrategy = st.SearchStrategy

#: A function from a strategy of (possibly wrapped) float arrays to a strategy of
#: wrappers built around them: how :func:`wrapped_trees` learns about a wrapper.
WrapperFactory = Callable[[SearchStrategy[Any]], SearchStrategy[Any]]

# Module-level functions only: two draws of the same tree then compare equal,
# jax.jit caches on them, and the trees pickle (a record pickles jax's own jitted
# functions, such as jnp.tanh, by name).
_ELEMENTWISE: tuple[Callable[[Any], Any], ...] = (jnp.tanh, jax.nn.softplus, lf.identity)


def _times(x: Any, factor: float) -> Any:
    return x * factor


def _scaled(x: Any, factor: float) -> lf.Parameterize[Any]:
    # _times, not jnp.multiply: a jnp ufunc does not pickle, and drawn trees must.
    return lf.Parameterize(_times, x, factor)


def _leaky(x: Any) -> lf.Parameterize[Any]:
    return lf.Parameterize(jax.nn.leaky_relu, x, negative_slope=0.1)


def _exp(x: Any) -> lf.Parameterize[Any]:
    return lf.Parameterize(jnp.exp, x)


def parameterizations(inner: SearchStrategy[Any]) -> SearchStrategy[lf.Parameterize[Any]]:
    """``Parameterize`` wrappers around values drawn from ``inner``.

    Draws ``Parameterize(f, x)`` for ``f`` in ``tanh``, ``softplus`` and
    :func:`~lensify.identity`, ``Parameterize(times, x, c)``,
    ``Parameterize(leaky_relu, x, negative_slope=0.1)``, and ``Parameterize(exp, a)``
    of a raw array ``a`` (so nesting never overflows).

    Args:
        inner: A strategy of float arrays, possibly wrapped.

    Example:
        >>> import lensify as lf
        >>> from hypothesis import given, settings
        >>> from lensify.testing import float_arrays, parameterizations
        >>> @settings(max_examples=10, deadline=None)
        ... @given(parameterizations(float_arrays()))
        ... def test_is_parameterize(p):
        ...     assert isinstance(p, lf.Parameterize)
        >>> test_is_parameterize()
    """
    return st.one_of(
        st.builds(lf.Parameterize, st.sampled_from(_ELEMENTWISE), inner),
        st.builds(_scaled, inner, st.sampled_from((0.5, 2.0))),
        st.builds(_leaky, inner),
        st.builds(_exp, float_arrays()),
    )


def non_trainables(inner: SearchStrategy[Any]) -> SearchStrategy[lf.NonTrainable[Any]]:
    """``NonTrainable`` wrappers around values drawn from ``inner``.

    Example:
        >>> import lensify as lf
        >>> from hypothesis import given, settings
        >>> from lensify.testing import non_trainables, pytrees
        >>> @settings(max_examples=10, deadline=None)
        ... @given(non_trainables(pytrees()))
        ... def test_frozen(w):
        ...     assert isinstance(w, lf.NonTrainable)
        >>> test_frozen()
    """
    return st.builds(lf.NonTrainable, inner)


def _nonzero_matrices() -> SearchStrategy[Any]:
    raw = float_arrays(((1, 2), (2, 2), (2, 3), (3, 2)), nonzero=True)
    return st.one_of(
        raw,
        st.builds(lf.Parameterize, st.sampled_from(_ELEMENTWISE), raw),
        st.builds(lf.NonTrainable, raw),
    )


def weight_normalizations(
    inner: SearchStrategy[Any] | None = None,
) -> SearchStrategy[lf.WeightNormalization]:
    """``WeightNormalization`` of small matrices with no zero row, possibly wrapped.

    Args:
        inner: Ignored (a weight must be a matrix with no zero row, which an arbitrary
            inner value need not be); accepted so this is a :data:`WrapperFactory`.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from hypothesis import given, settings
        >>> from lensify.testing import weight_normalizations
        >>> @settings(max_examples=10, deadline=None)
        ... @given(weight_normalizations())
        ... def test_identity_at_construction(w):
        ...     assert bool(jnp.allclose(lf.unwrap(w), lf.unwrap(w.weight), atol=1e-5))
        >>> test_identity_at_construction()
    """
    del inner
    return st.builds(lf.WeightNormalization, _nonzero_matrices())


def increasing_on_intervals(
    inner: SearchStrategy[Any] | None = None,
) -> SearchStrategy[lf.RealToIncreasingOnInterval]:
    """``RealToIncreasingOnInterval`` of small raw arrays.

    Args:
        inner: Ignored (the wrapper's ``arr`` must be a raw array); accepted so this is
            a :data:`WrapperFactory`.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from hypothesis import given, settings
        >>> from lensify.testing import increasing_on_intervals
        >>> @settings(max_examples=10, deadline=None)
        ... @given(increasing_on_intervals())
        ... def test_increasing(w):
        ...     assert bool((jnp.diff(lf.unwrap(w)) > 0).all())
        >>> test_increasing()
    """
    del inner
    return st.builds(
        lf.RealToIncreasingOnInterval,
        float_arrays(((2,), (4,), (2, 3))),
        st.sampled_from(((0.0, 1.0), (-2.0, 3.0))),
        min_width=st.sampled_from((0.01, 0.1)),
        include_endpoints=st.sampled_from(("both", "neither", "lower", "upper")),
    )


#: The built-in wrappers as :data:`WrapperFactory` functions, for
#: ``wrapped_trees(wrappers=[*BUILTIN_WRAPPERS, my_factory])``.
BUILTIN_WRAPPERS: tuple[WrapperFactory, ...] = (
    parameterizations,
    non_trainables,
    weight_normalizations,
    increasing_on_intervals,
)


@functools.lru_cache(maxsize=64)
def wrapped_array_strategy(
    factories: tuple[WrapperFactory, ...], depth: int, dtypes: tuple[Any, ...] = (jnp.float32,)
) -> SearchStrategy[Any]:
    """The strategy behind :func:`wrapped_arrays`, built once per argument set."""
    base = float_arrays(dtypes=dtypes)
    if depth <= 0 or not factories:
        return base
    inner = wrapped_arrays(wrappers=factories, max_depth=depth - 1, dtypes=dtypes)
    return st.one_of(base, *(factory(inner) for factory in factories))


@st.composite
def wrapped_arrays(
    draw: st.DrawFn,
    *,
    wrappers: Sequence[WrapperFactory] | None = None,
    max_depth: int = 2,
    dtypes: Sequence[Any] = (jnp.float32,),
) -> Any:
    """Float arrays, or wrappers nested up to ``max_depth`` deep around them.

    This is the strategy a :data:`WrapperFactory` is given as its ``inner``.

    Args:
        wrappers: :data:`WrapperFactory` functions; :data:`BUILTIN_WRAPPERS` if omitted.
        max_depth: How deep wrappers nest.
        dtypes: The float dtypes of the innermost arrays (see :func:`float_arrays`).

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from hypothesis import given, settings
        >>> from lensify.testing import wrapped_arrays
        >>> @settings(max_examples=10, deadline=None)
        ... @given(wrapped_arrays())
        ... def test_unwraps_to_an_array(x):
        ...     assert isinstance(lf.unwrap(x), jnp.ndarray)
        >>> test_unwraps_to_an_array()
    """
    factories = BUILTIN_WRAPPERS if wrappers is None else tuple(wrappers)
    return draw(wrapped_array_strategy(factories, max_depth, tuple(dtypes)))


@functools.lru_cache(maxsize=64)
def wrapped_tree_strategy(
    wrappers: tuple[WrapperFactory, ...],
    max_depth: int,
    max_children: int,
    nodes: tuple[NodeFactory, ...] = CONTAINERS,
    leaves: SearchStrategy[Any] | None = None,
    dtypes: tuple[Any, ...] = (jnp.float32,),
) -> SearchStrategy[Any]:
    """The strategy behind :func:`wrapped_trees`, built once per argument set."""
    shown = call(
        "wrapped_trees",
        wrappers=wrappers,
        max_depth=max_depth,
        max_children=max_children,
        nodes=nodes,
        leaves=leaves,
        dtypes=tuple(np.dtype(d).name for d in dtypes),
    )
    plain = default_leaves() if leaves is None else leaves
    either = st.one_of(plain, wrapped_array_strategy(wrappers, max_depth, dtypes))
    return level(Nesting(shown, either, nodes, max_children, non_trainables), max_depth)


@st.composite
def wrapped_trees(
    draw: st.DrawFn,
    *,
    wrappers: Sequence[WrapperFactory] | None = None,
    max_depth: int = 3,
    max_children: int = 3,
    nodes: Sequence[NodeFactory] | None = None,
    leaves: SearchStrategy[Any] | None = None,
    dtypes: Sequence[Any] = (jnp.float32,),
) -> Any:
    """Pytrees (as :func:`pytrees` draws them) holding wrappers, nested.

    Wrappers appear where leaves do, nested up to ``max_depth`` deep around float
    arrays (``Parameterize(tanh, NonTrainable(WeightNormalization(w)))``, say), and
    ``NonTrainable`` also wraps whole subtrees. The built-in wrappers hold only
    functions that pickle, so every tree drawn pickles (if your own wrappers and
    leaves do).

    Call it wherever a test needs it, ``@given(wrapped_trees())`` included: each set
    of arguments builds its strategy once, and later calls reuse it.

    Args:
        wrappers: :data:`WrapperFactory` functions, each turning a strategy of
            (possibly wrapped) float arrays into a strategy of its wrapper around
            them; :data:`BUILTIN_WRAPPERS` if omitted. Pass
            ``[*BUILTIN_WRAPPERS, mine]`` to mix a wrapper of your own with lensify's.
        max_depth: Bound on both node nesting and wrapper nesting.
        max_children: A node has at most this many children.
        nodes: The node kinds between wrappers (see :func:`pytrees`); :data:`CONTAINERS`
            if omitted, :data:`ALL_NODES` for the kinds users bring.
        leaves: The leaves beside the wrapped arrays; :func:`default_leaves` if
            omitted, :func:`all_leaves` for the unusual ones too.
        dtypes: The float dtypes of the arrays inside wrappers; float32 only by
            default, ``(jnp.float32, *LOW_PRECISION)`` for half precision too.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> from hypothesis import given, settings, strategies as st
        >>> from lensify.testing import BUILTIN_WRAPPERS, wrapped_trees
        >>> class Square(lf.AbstractUnwrappable):
        ...     x: jax.Array
        ...     def unwrap(self):
        ...         return self.x**2
        >>> squares = lambda inner: st.builds(Square, inner)
        >>> @settings(max_examples=10, deadline=None)
        ... @given(wrapped_trees(wrappers=[*BUILTIN_WRAPPERS, squares]))
        ... def test_no_wrapper_left(tree):
        ...     assert not lf.contains_unwrappables(lf.unwrap(tree))
        >>> test_no_wrapper_left()
    """
    factories = BUILTIN_WRAPPERS if wrappers is None else tuple(wrappers)
    kinds = CONTAINERS if nodes is None else tuple(nodes)
    strategy = wrapped_tree_strategy(
        factories, max_depth, max_children, kinds, leaves, tuple(dtypes)
    )
    return draw(strategy)


def _constant(strategy: SearchStrategy[Any]) -> Callable[[type], SearchStrategy[Any]]:
    def for_type(_: type) -> SearchStrategy[Any]:
        return strategy

    return for_type


def register_type_strategies() -> None:
    """Let ``st.from_type`` draw each built-in wrapper (done when lensify.testing is imported)."""
    by_type: dict[type, SearchStrategy[Any]] = {
        lf.Parameterize: parameterizations(wrapped_arrays(max_depth=1)),
        lf.NonTrainable: non_trainables(pytrees(max_depth=2)),
        lf.WeightNormalization: weight_normalizations(),
        lf.RealToIncreasingOnInterval: increasing_on_intervals(),
    }
    for cls, strategy in by_type.items():
        # A function, not a bare strategy: the classes are generic, and hypothesis
        # asks for a function so it could look at the type arguments.
        st.register_type_strategy(cls, _constant(strategy))
