"""Hypothesis strategies and law checkers for code built on lensify.

Install with the ``lensify[testing]`` extra; this is the only lensify module that
imports hypothesis. Importing it also registers hypothesis type strategies for the
built-in wrappers, so ``st.from_type(lf.Parameterize)`` and friends work.

lensify's own test suite draws its trees from these same strategies.

Example:
    >>> import lensify as lf
    >>> import lensify.testing as lt
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None)
    ... @given(lt.wrapped_trees())
    ... def test_unwrap_is_idempotent(tree):
    ...     once = lf.unwrap(tree)
    ...     assert lt.trees_close(lf.unwrap(once), once)
    >>> test_unwrap_is_idempotent()
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lensify import _records, _tree
from lensify.algebra import identity
from lensify.wrappers import (
    NonTrainable,
    Parameterize,
    RealToIncreasingOnInterval,
    WeightNormalization,
    contains_unwrappables,
    is_unwrappable,
    unwrap,
)

__all__ = [
    "BUILTIN_WRAPPERS",
    "DEFAULT_UPDATES",
    "SMALL_SHAPES",
    "TreePair",
    "TreeRecord",
    "WrapperFactory",
    "assert_lens_laws",
    "assert_traversal_laws",
    "assert_vmap_construction",
    "assert_wrapper_laws",
    "check_lens_laws",
    "check_traversal_laws",
    "check_wrapper_laws",
    "float_arrays",
    "increasing_on_intervals",
    "is_container",
    "is_float_array",
    "is_matrix",
    "lenses_for",
    "non_trainables",
    "optics_for",
    "parameterizations",
    "probe_gradients",
    "pytrees",
    "traversals_for",
    "trees_close",
    "weight_normalizations",
    "wrapped_arrays",
    "wrapped_trees",
]

SearchStrategy = st.SearchStrategy

#: A function from a strategy of (possibly wrapped) float arrays to a strategy of
#: wrappers built around them: how :func:`wrapped_trees` learns about a wrapper.
WrapperFactory = Callable[[SearchStrategy[Any]], SearchStrategy[Any]]

#: Array shapes drawn by default: scalars, vectors and small matrices.
SMALL_SHAPES: tuple[tuple[int, ...], ...] = ((), (1,), (2,), (3,), (2, 2), (2, 3))

_KEYS = ("a", "b", "w", "bias", "scale")

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


# --------------------------------------------------------------------------- containers


class TreePair(NamedTuple):
    """A namedtuple node, as :func:`pytrees` draws them.

    Example:
        >>> import jax
        >>> from lensify.testing import TreePair
        >>> jax.tree_util.tree_leaves(TreePair(1.0, {"a": 2.0}))
        [1.0, 2.0]
    """

    left: Any
    right: Any


class TreeRecord(_records.Record):
    """An attrs record node with two children and a static label (see :func:`pytrees`).

    Example:
        >>> import jax
        >>> from lensify.testing import TreeRecord
        >>> jax.tree_util.tree_leaves(TreeRecord(1.0, [2.0], label="x"))
        [1.0, 2.0]
    """

    left: Any
    right: Any
    label: str = _records.field(static=True, default="node")


# ------------------------------------------------------------------------------ leaves


def _floats(*, nonzero: bool) -> SearchStrategy[float]:
    if not nonzero:
        return st.floats(-2.0, 2.0, width=32, allow_subnormal=False)
    positive = st.floats(0.25, 2.0, width=32)
    return st.one_of(positive, positive.map(lambda v: -v))


def _numpy_arrays(
    shapes: Sequence[tuple[int, ...]] = SMALL_SHAPES, *, nonzero: bool = False
) -> SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float32, st.sampled_from(tuple(shapes)), elements=_floats(nonzero=nonzero))


def float_arrays(
    shapes: Sequence[tuple[int, ...]] = SMALL_SHAPES, *, nonzero: bool = False
) -> SearchStrategy[jax.Array]:
    """Small float32 jax arrays with finite values in ``[-2, 2]``.

    Args:
        shapes: The shapes to draw from.
        nonzero: If True every element has magnitude at least 0.25 (so no row is
            zero, as :class:`~lensify.WeightNormalization` needs).

    Example:
        >>> from hypothesis import given, settings
        >>> from lensify.testing import float_arrays
        >>> @settings(max_examples=10, deadline=None)
        ... @given(float_arrays([(2, 3)], nonzero=True))
        ... def test_shape(x):
        ...     assert x.shape == (2, 3) and bool((abs(x) >= 0.25).all())
        >>> test_shape()
    """
    return _numpy_arrays(shapes, nonzero=nonzero).map(jnp.asarray)


def _scalars() -> SearchStrategy[Any]:
    return st.one_of(
        st.integers(-3, 3), st.floats(-2.0, 2.0, allow_nan=False, allow_subnormal=False)
    )


@functools.cache
def _default_leaves() -> SearchStrategy[Any]:
    return st.one_of(st.none(), _scalars(), float_arrays(), _numpy_arrays())


# ------------------------------------------------------------------------------- trees


class _Nesting(NamedTuple):
    """How one public tree strategy nests: its leaves, width and wrapper of subtrees.

    Its repr is that public call, so the strategies built from it print short.
    """

    call: str
    leaves: SearchStrategy[Any]
    width: int
    wrap: Callable[[SearchStrategy[Any]], SearchStrategy[Any]] | None = None

    def __repr__(self) -> str:
        return self.call


def _containers(children: SearchStrategy[Any], width: int) -> SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=width),
        st.lists(children, max_size=width).map(tuple),
        st.dictionaries(st.sampled_from(_KEYS), children, max_size=width),
        st.builds(TreePair, children, children),
        st.builds(TreeRecord, children, children, label=st.sampled_from(("p", "q"))),
    )


@functools.lru_cache(maxsize=256)
def _level(nesting: _Nesting, depth: int) -> SearchStrategy[Any]:
    """Leaves, or containers (and wrappers) of subtrees at most ``depth`` deep."""
    if depth <= 0:
        return nesting.leaves
    children = _subtrees(nesting, depth - 1)
    options = [nesting.leaves, _containers(children, nesting.width)]
    if nesting.wrap is not None:
        options.append(nesting.wrap(children))
    return st.one_of(*options)


# Each level is drawn through a composite, which prints as its call
# (``_subtrees(nesting=pytrees(...), depth=2)``). Nested plainly, every level would print the whole
# level below it once per container kind: a repr exponential in the depth, which
# hypothesis builds (and warns about) while shrinking.
@st.composite
def _subtrees(draw: st.DrawFn, nesting: _Nesting, depth: int) -> Any:
    return draw(_level(nesting, depth))


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_shown, value)) + "]"
    return getattr(value, "__name__", None) or repr(value)


def _call(name: str, **arguments: Any) -> str:
    shown = ", ".join(f"{key}={_shown(value)}" for key, value in arguments.items())
    return f"{name}({shown})"


@functools.lru_cache(maxsize=64)
def _pytrees(
    max_depth: int, max_children: int, leaves: SearchStrategy[Any] | None
) -> SearchStrategy[Any]:
    call = _call("pytrees", max_depth=max_depth, max_children=max_children, leaves=leaves)
    leaf = _default_leaves() if leaves is None else leaves
    return _level(_Nesting(call, leaf, max_children), max_depth)


# A composite, so the strategy's repr is the call that built it, not the whole
# (large) nest of strategies it draws from.
@st.composite
def pytrees(
    draw: st.DrawFn,
    *,
    max_depth: int = 3,
    max_children: int = 4,
    leaves: SearchStrategy[Any] | None = None,
) -> Any:
    """Pytrees of dicts, lists, tuples, namedtuples, attrs records and ``None``.

    Leaves are small float32 jax and numpy arrays, Python ints and floats (or what
    ``leaves`` draws). Dict keys are strings, so every tree flattens; records use
    module-level classes (:class:`TreePair`, :class:`TreeRecord`), so two draws of
    the same tree compare equal under :func:`lensify._tree.tree_equal`.

    Args:
        max_depth: Containers nest at most this deep.
        max_children: A container has at most this many children.
        leaves: The strategy for leaves; small arrays, scalars and ``None`` if omitted.

    Example:
        >>> import jax
        >>> from hypothesis import given, settings
        >>> from lensify.testing import pytrees
        >>> @settings(max_examples=10, deadline=None)
        ... @given(pytrees(max_depth=2, max_children=2))
        ... def test_bounded(tree):
        ...     assert len(jax.tree_util.tree_leaves(tree)) <= 4
        >>> test_bounded()
    """
    return draw(_pytrees(max_depth, max_children, leaves))


# ---------------------------------------------------------------------------- wrappers

# Module-level functions only: two draws of the same tree then compare equal,
# jax.jit caches on them, and the trees pickle (a record pickles jax's own jitted
# functions, such as jnp.tanh, by name).
_ELEMENTWISE: tuple[Callable[[Any], Any], ...] = (jnp.tanh, jax.nn.softplus, identity)


def _times(x: Any, factor: float) -> Any:
    return x * factor


def _scaled(x: Any, factor: float) -> Parameterize[Any]:
    # _times, not jnp.multiply: a jnp ufunc does not pickle, and drawn trees must.
    return Parameterize(_times, x, factor)


def _leaky(x: Any) -> Parameterize[Any]:
    return Parameterize(jax.nn.leaky_relu, x, negative_slope=0.1)


def _exp(x: Any) -> Parameterize[Any]:
    return Parameterize(jnp.exp, x)


def parameterizations(inner: SearchStrategy[Any]) -> SearchStrategy[Parameterize[Any]]:
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
        st.builds(Parameterize, st.sampled_from(_ELEMENTWISE), inner),
        st.builds(_scaled, inner, st.sampled_from((0.5, 2.0))),
        st.builds(_leaky, inner),
        st.builds(_exp, float_arrays()),
    )


def non_trainables(inner: SearchStrategy[Any]) -> SearchStrategy[NonTrainable[Any]]:
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
    return st.builds(NonTrainable, inner)


def _nonzero_matrices() -> SearchStrategy[Any]:
    raw = float_arrays(((1, 2), (2, 2), (2, 3), (3, 2)), nonzero=True)
    return st.one_of(
        raw,
        st.builds(Parameterize, st.sampled_from(_ELEMENTWISE), raw),
        st.builds(NonTrainable, raw),
    )


def weight_normalizations(
    inner: SearchStrategy[Any] | None = None,
) -> SearchStrategy[WeightNormalization]:
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
    return st.builds(WeightNormalization, _nonzero_matrices())


def increasing_on_intervals(
    inner: SearchStrategy[Any] | None = None,
) -> SearchStrategy[RealToIncreasingOnInterval]:
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
        RealToIncreasingOnInterval,
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
def _wrapped_arrays(factories: tuple[WrapperFactory, ...], depth: int) -> SearchStrategy[Any]:
    base = float_arrays()
    if depth <= 0 or not factories:
        return base
    inner = wrapped_arrays(wrappers=factories, max_depth=depth - 1)
    return st.one_of(base, *(factory(inner) for factory in factories))


@st.composite
def wrapped_arrays(
    draw: st.DrawFn,
    *,
    wrappers: Sequence[WrapperFactory] | None = None,
    max_depth: int = 2,
) -> Any:
    """Float arrays, or wrappers nested up to ``max_depth`` deep around them.

    This is the strategy a :data:`WrapperFactory` is given as its ``inner``.

    Args:
        wrappers: :data:`WrapperFactory` functions; :data:`BUILTIN_WRAPPERS` if omitted.
        max_depth: How deep wrappers nest.

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
    return draw(_wrapped_arrays(factories, max_depth))


@functools.lru_cache(maxsize=64)
def _wrapped_trees(
    wrappers: tuple[WrapperFactory, ...], max_depth: int, max_children: int
) -> SearchStrategy[Any]:
    call = _call("wrapped_trees", wrappers=wrappers, max_depth=max_depth, max_children=max_children)
    leaves = st.one_of(_default_leaves(), _wrapped_arrays(wrappers, max_depth))
    return _level(_Nesting(call, leaves, max_children, non_trainables), max_depth)


@st.composite
def wrapped_trees(
    draw: st.DrawFn,
    *,
    wrappers: Sequence[WrapperFactory] | None = None,
    max_depth: int = 3,
    max_children: int = 3,
) -> Any:
    """Pytrees (as :func:`pytrees` draws them) holding wrappers, nested.

    Wrappers appear where leaves do, nested up to ``max_depth`` deep around float
    arrays (``Parameterize(tanh, NonTrainable(WeightNormalization(w)))``, say), and
    ``NonTrainable`` also wraps whole subtrees. The built-in wrappers hold only
    functions that pickle, so every tree drawn pickles (if your own wrappers do).

    Call it wherever a test needs it, ``@given(wrapped_trees())`` included: each set
    of arguments builds its strategy once, and later calls reuse it.

    Args:
        wrappers: :data:`WrapperFactory` functions, each turning a strategy of
            (possibly wrapped) float arrays into a strategy of its wrapper around
            them; :data:`BUILTIN_WRAPPERS` if omitted. Pass
            ``[*BUILTIN_WRAPPERS, mine]`` to mix a wrapper of your own with lensify's.
        max_depth: Bound on both container nesting and wrapper nesting.
        max_children: A container has at most this many children.

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
    return draw(_wrapped_trees(factories, max_depth, max_children))


def _constant(strategy: SearchStrategy[Any]) -> Callable[[type], SearchStrategy[Any]]:
    def for_type(_: type) -> SearchStrategy[Any]:
        return strategy

    return for_type


def _register_type_strategies() -> None:
    by_type: dict[type, SearchStrategy[Any]] = {
        Parameterize: parameterizations(wrapped_arrays(max_depth=1)),
        NonTrainable: non_trainables(pytrees(max_depth=2)),
        WeightNormalization: weight_normalizations(),
        RealToIncreasingOnInterval: increasing_on_intervals(),
    }
    for cls, strategy in by_type.items():
        # A function, not a bare strategy: the classes are generic, and hypothesis
        # asks for a function so it could look at the type arguments.
        st.register_type_strategy(cls, _constant(strategy))


_register_type_strategies()


# ------------------------------------------------------------------------- comparison


def _is_number(x: Any) -> bool:
    return _tree.is_array(x) or (isinstance(x, (int, float, complex)) and not isinstance(x, str))


def _leaves_close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if _is_number(a) and _is_number(b):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape != b_arr.shape:
            return False
        if a_arr.dtype.kind not in "biufc" or b_arr.dtype.kind not in "biufc":
            return _tree.tree_equal(a, b)
        return bool(np.allclose(a_arr, b_arr, rtol=rtol, atol=atol, equal_nan=True))
    return _tree.tree_equal(a, b)


def trees_close(a: Any, b: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Same structure, numeric leaves close (shapes equal, dtypes ignored), others equal.

    The comparison the law checkers use: ``jax.jit`` returns Python scalars as arrays
    and may reorder floating-point operations, so exact equality is too strict there.

    Example:
        >>> import jax.numpy as jnp
        >>> from lensify.testing import trees_close
        >>> trees_close({"a": 1.0, "b": None}, {"a": jnp.array(1.0 + 1e-7), "b": None})
        True
        >>> trees_close([1.0], (1.0,))
        False
    """
    a_leaves, a_def = _tree.flatten(a)
    b_leaves, b_def = _tree.flatten(b)
    if cast(Any, a_def) != b_def:
        return False
    return all(_leaves_close(x, y, rtol, atol) for x, y in zip(a_leaves, b_leaves, strict=True))


# ------------------------------------------------------------------------ law checkers


def _settings(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, suppress_health_check=_HEALTH)


def _violated(law: str, **shown: Any) -> AssertionError:
    lines = [f"law violated: {law}"]
    lines += [f"  {name}: {value!r}" for name, value in shown.items()]
    return AssertionError("\n".join(lines))


def _is_traceable(x: Any) -> bool:
    return _tree.is_array(x) or type(x) in (int, float, complex, bool)


# Output structure of each traced unwrap, by input spec: recorded while tracing, so
# a cached compilation can rebuild its output without tracing again.
_JIT_OUTPUTS: dict[Any, tuple[Any, list[int], dict[int, Any]]] = {}


def _is_output(x: Any) -> bool:
    return isinstance(x, jax.Array) or type(x) in (int, float, complex, bool)


class _ById:
    """A static argument hashed by identity, for a spec that does not hash."""

    __slots__ = ("spec",)

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def __hash__(self) -> int:
        return id(self)


@functools.partial(jax.jit, static_argnums=0)
def _jitted_unwrap(key: Any, values: list[Any]) -> list[Any]:
    treedef, static = key.spec if isinstance(key, _ById) else key
    merged: list[Any] = [None] * treedef.num_leaves
    fixed = dict(static)
    dynamic = iter(values)
    for i in range(len(merged)):
        merged[i] = fixed[i] if i in fixed else next(dynamic)
    out_leaves, out_def = _tree.flatten(unwrap(_tree.unflatten(treedef, merged)))
    kept = [i for i, x in enumerate(out_leaves) if _is_output(x)]
    others = {i: x for i, x in enumerate(out_leaves) if not _is_output(x)}
    _JIT_OUTPUTS[key] = (out_def, kept, others)
    return [out_leaves[i] for i in kept]


def _jit_unwrap(tree: Any) -> Any:
    """``jax.jit(unwrap)(tree)``, with non-array leaves (strings, say) held static.

    Compilations are cached by tree structure, so checking many trees of a few
    structures compiles a few times only.
    """
    leaves, treedef = _tree.flatten(tree)
    static = tuple((i, x) for i, x in enumerate(leaves) if not _is_traceable(x))
    key: Any = (treedef, static)
    try:
        hash(key)
    except TypeError:
        key = _ById(key)
    results = _jitted_unwrap(key, [x for x in leaves if _is_traceable(x)])
    out_def, kept, others = _JIT_OUTPUTS.pop(key) if isinstance(key, _ById) else _JIT_OUTPUTS[key]
    out_leaves = [others.get(i) for i in range(len(kept) + len(others))]
    for i, value in zip(kept, results, strict=True):
        out_leaves[i] = value
    return _tree.unflatten(out_def, out_leaves)


def _probe_loss(tree: Any) -> jax.Array:
    # A fixed, position-dependent weighting, so no symmetry of the wrapper hides a
    # gradient that flows.
    total = jnp.zeros(())
    for leaf in jax.tree_util.tree_leaves(tree):
        if _tree.is_inexact_array(leaf):
            flat = jnp.ravel(leaf)
            weights = 1.0 + 0.5 * jnp.sin(jnp.arange(flat.size) + 1.0)
            total = total + jnp.sum(weights * flat)
    return total


def probe_gradients(tree: Any) -> list[jax.Array]:
    """The gradient of a fixed probe of ``unwrap(tree)`` for each float array leaf of ``tree``.

    The probe is a weighted sum of every float array in the unwrapped tree, with
    weights that differ by position, so no symmetry of a wrapper hides a gradient.
    Two trees that unwrap to the same function of the same raw leaves have equal
    probe gradients: compare them to check that a rewrite keeps the gradient.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import probe_gradients
        >>> [g.tolist() for g in probe_gradients(lf.NonTrainable(jnp.ones(2)))]
        [[0.0, 0.0]]
        >>> len(probe_gradients({"w": lf.Parameterize(jnp.exp, jnp.zeros(3))}))
        1
    """
    leaves, treedef = _tree.flatten(tree)
    positions = [i for i, x in enumerate(leaves) if _tree.is_inexact_array(x)]

    def loss(params: list[jax.Array]) -> jax.Array:
        merged = list(leaves)
        for i, p in zip(positions, params, strict=True):
            merged[i] = p
        return _probe_loss(unwrap(_tree.unflatten(treedef, merged)))

    return list(jax.grad(loss)([jnp.asarray(leaves[i]) for i in positions]))


def _outermost_wrappers(tree: Any) -> list[Any]:
    return [x for x in jax.tree_util.tree_leaves(tree, is_leaf=is_unwrappable) if is_unwrappable(x)]


def _check_gradient(tree: Any, gradient: Literal["flows", "zero"]) -> None:
    grads = probe_gradients(tree)
    if gradient == "zero":
        if any(bool(jnp.any(g != 0)) for g in grads):
            raise _violated("gradient is zero through the wrapper", tree=tree, gradient=grads)
        return
    finite = all(bool(jnp.isfinite(g).all()) for g in grads)
    if not grads:
        return  # no float array in the tree: nothing for a gradient to flow to
    if not finite or not any(bool(jnp.any(g != 0)) for g in grads):
        raise _violated(
            "gradient flows through the wrapper (finite and not all zero)",
            tree=tree,
            gradient=grads,
        )


def assert_wrapper_laws(tree: Any, *, gradient: Literal["flows", "zero"] | None = None) -> None:
    """Assert the fold laws for one tree holding wrappers (see :func:`check_wrapper_laws`).

    For use inside your own ``@given`` tests; :func:`check_wrapper_laws` runs it over a
    strategy for you.

    Args:
        tree: A pytree holding wrappers.
        gradient: ``"flows"``, ``"zero"``, or ``None`` to skip the gradient law.

    Raises:
        AssertionError: naming the first law that fails, with the tree.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import assert_wrapper_laws
        >>> assert_wrapper_laws({"w": lf.NonTrainable(jnp.ones(2))}, gradient="zero")
    """
    value = unwrap(tree)
    if contains_unwrappables(value):
        raise _violated("no wrappers left: unwrap(t) holds no wrapper", tree=tree, unwrapped=value)
    again = unwrap(value)
    if not _tree.tree_equal(again, value):
        raise _violated("idempotence: unwrap(unwrap(t)) == unwrap(t)", tree=tree, once=value)
    for wrapper in _outermost_wrappers(tree):
        children = _tree.children(wrapper) or []
        rebuilt = _tree.rebuild(wrapper, [unwrap(child) for _, child in children])
        expected = unwrap(rebuilt.unwrap())
        if not trees_close(unwrap(wrapper), expected):
            raise _violated(
                "defining equation: unwrap(w) == unwrap(w rebuilt with unwrapped children"
                ".unwrap())",
                wrapper=wrapper,
                unwrap=unwrap(wrapper),
                equation=expected,
            )
    jitted = _jit_unwrap(tree)
    if not trees_close(jitted, value):
        raise _violated(
            "jit equals eager: jax.jit(unwrap)(t) == unwrap(t)",
            tree=tree,
            eager=value,
            jitted=jitted,
        )
    if gradient is not None:
        _check_gradient(tree, gradient)


def _batched(x: Any, factors: np.ndarray) -> jax.Array:
    x = jnp.asarray(x)
    return jnp.asarray(factors).reshape(factors.shape + (1,) * x.ndim) * x


def assert_vmap_construction(
    construct: Callable[[jax.Array], Any], xs: Any, batch_ndim: int = 1
) -> None:
    """Assert that building under ``jax.vmap`` commutes with indexing.

    ``construct`` is mapped over the leading ``batch_ndim`` axes of ``xs`` (with
    nested ``jax.vmap``) and the result unwrapped under the same vmaps; at every batch
    index that must be close to ``unwrap(construct(xs[index]))``.

    Args:
        construct: A function from an array to a tree holding wrappers.
        xs: A batch of inputs for ``construct``.
        batch_ndim: How many leading axes of ``xs`` are batch axes.

    Raises:
        AssertionError: naming the law and the index where it fails.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import assert_vmap_construction
        >>> assert_vmap_construction(lf.WeightNormalization, jnp.ones((3, 2, 2)))
    """
    xs = jnp.asarray(xs)
    build, run = construct, unwrap
    for _ in range(batch_ndim):
        build, run = jax.vmap(build), jax.vmap(run)
    batched = run(build(xs))
    for index in np.ndindex(*xs.shape[:batch_ndim]):
        one = unwrap(construct(xs[index]))
        picked = jax.tree_util.tree_map(lambda leaf, i=index: leaf[i], batched)
        if not trees_close(picked, one):
            raise _violated(
                "vmap-construction invariance: vmap(construct)(xs)[i] unwraps to "
                "unwrap(construct(xs[i]))",
                xs=xs,
                index=index,
                batched=picked,
                unbatched=one,
            )


def check_wrapper_laws(
    wrappers: SearchStrategy[Any],
    *,
    gradient: Literal["flows", "zero"] | None = "flows",
    construct: Callable[[jax.Array], Any] | None = None,
    arrays: SearchStrategy[Any] | None = None,
    max_examples: int = 25,
) -> None:
    """Check the fold laws (and the gradient and vmap laws) for a wrapper.

    For every tree ``t`` drawn from ``wrappers``:

    - no wrappers left: ``contains_unwrappables(unwrap(t))`` is False;
    - idempotence: ``unwrap(unwrap(t)) == unwrap(t)``;
    - the defining equation: for each outermost wrapper ``w``, ``unwrap(w)`` equals
      ``w`` rebuilt with every child unwrapped, then ``.unwrap()`` (and unwrapped);
    - jit equals eager: ``jax.jit(unwrap)(t)`` is close to ``unwrap(t)``;
    - gradient, as the wrapper declares: with ``"flows"`` the gradient of a fixed
      linear probe of ``unwrap(t)`` with respect to the float array leaves of ``t`` is
      finite and not all zero; with ``"zero"`` it is exactly zero; ``None`` skips this.

    Given ``construct`` (an array to a wrapper) and ``arrays`` (inputs it accepts),
    also vmap-construction invariance (:func:`assert_vmap_construction`) for batch
    shapes ``(1,)``, ``(3,)`` and ``(2, 2)``, the batch being scaled copies of a drawn
    array.

    Call it from a plain test function, not from inside another ``@given`` test
    (there, use :func:`assert_wrapper_laws`).

    Args:
        wrappers: A strategy of trees holding the wrapper under test.
        gradient: What the wrapper declares of gradients through it.
        construct: A function from an array to the wrapper, for the vmap law.
        arrays: A strategy of arrays ``construct`` accepts, for the vmap law.
        max_examples: Examples tried for each property.

    Raises:
        AssertionError: naming the law that failed, with the shrunk counter-example.
        ValueError: if only one of ``construct`` and ``arrays`` is given.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> from hypothesis import strategies as st
        >>> from lensify.testing import check_wrapper_laws, float_arrays
        >>> class Square(lf.AbstractUnwrappable):
        ...     x: jax.Array
        ...     def unwrap(self):
        ...         return self.x**2
        >>> check_wrapper_laws(
        ...     st.builds(Square, float_arrays(nonzero=True)),
        ...     construct=Square,
        ...     arrays=float_arrays(),
        ...     max_examples=10,
        ... )
    """
    if (construct is None) != (arrays is None):
        raise ValueError(
            "check_wrapper_laws needs both construct and arrays for the vmap law, e.g. "
            "check_wrapper_laws(s, construct=MyWrapper, arrays=lensify.testing.float_arrays())."
        )

    @_settings(max_examples)
    @given(wrappers)
    def fold_laws(tree: Any) -> None:
        assert_wrapper_laws(tree, gradient=gradient)

    fold_laws()
    if construct is None or arrays is None:
        return
    build = construct

    batch_factors = st.sampled_from(((1,), (3,), (2, 2))).flatmap(
        lambda shape: hnp.arrays(np.float32, shape, elements=st.sampled_from((0.5, 1.0, 2.0)))
    )

    @_settings(max_examples)
    @given(arrays, batch_factors)
    def vmap_law(x: Any, factors: np.ndarray) -> None:
        assert_vmap_construction(build, _batched(x, factors), factors.ndim)

    vmap_law()


def assert_lens_laws(optic: Any, tree: Any, v: Any, w: Any) -> None:
    """Assert the three lens laws for one tree and two values (see :func:`check_lens_laws`).

    Example:
        >>> import lensify as lf
        >>> from lensify.testing import assert_lens_laws
        >>> assert_lens_laws(lf.at["a"][0], {"a": [1.0, 2.0]}, None, (3, 4))
    """
    restored = optic.set(tree, optic.get(tree))
    if not _tree.tree_equal(restored, tree):
        raise _violated("get-set: set(t, get(t)) == t", optic=optic, tree=tree, result=restored)
    got = optic.get(optic.set(tree, v))
    if not _tree.tree_equal(got, v):
        raise _violated("set-get: get(set(t, v)) == v", optic=optic, tree=tree, value=v, got=got)
    twice = optic.set(optic.set(tree, v), w)
    once = optic.set(tree, w)
    if not _tree.tree_equal(twice, once):
        raise _violated(
            "set-set: set(set(t, v), w) == set(t, w)",
            optic=optic,
            tree=tree,
            v=v,
            w=w,
            twice=twice,
            once=once,
        )


def check_lens_laws(
    optic: Any,
    trees: SearchStrategy[Any],
    *,
    values: SearchStrategy[Any] | None = None,
    max_examples: int = 50,
) -> None:
    """Check that ``optic`` is a lawful lens on every tree ``trees`` draws.

    - get-set: ``optic.set(t, optic.get(t)) == t``;
    - set-get: ``optic.get(optic.set(t, v)) == v``;
    - set-set: ``optic.set(optic.set(t, v), w) == optic.set(t, w)``.

    Equality is :func:`lensify._tree.tree_equal` (structure, dtypes and values).

    Args:
        optic: An optic with exactly one focus in each tree, e.g. ``lf.at.w``.
        trees: A strategy of trees the optic focuses on.
        values: A strategy of values to set; small pytrees if omitted.
        max_examples: Examples tried.

    Raises:
        AssertionError: naming the law that failed, with the shrunk counter-example.

    Example:
        >>> import lensify as lf
        >>> from hypothesis import strategies as st
        >>> from lensify.testing import check_lens_laws, pytrees
        >>> trees = st.fixed_dictionaries({"w": pytrees(), "b": pytrees()})
        >>> check_lens_laws(lf.at["w"], trees, max_examples=20)
    """
    value_strategy = pytrees(max_depth=2, max_children=2) if values is None else values

    @_settings(max_examples)
    @given(trees, value_strategy, value_strategy)
    def lens_laws(tree: Any, v: Any, w: Any) -> None:
        assert_lens_laws(optic, tree, v, w)

    lens_laws()


def _same_kind(leaf: Any, new: Any) -> Any:
    """``new`` as the kind of leaf ``leaf`` is: same type, and same dtype for arrays."""
    if isinstance(leaf, np.ndarray):
        # numpy turns 0-d results into numpy scalars, which instances_of(np.ndarray)
        # would no longer select.
        return np.asarray(new, dtype=leaf.dtype)
    if isinstance(leaf, np.generic):  # before float: np.float64 is a float too
        return leaf.dtype.type(new)
    if isinstance(leaf, float):
        return float(new)
    return jnp.asarray(new, dtype=leaf.dtype)


def _map_floats(x: Any, fn: Callable[[Any], Any]) -> Any:
    def one(leaf: Any) -> Any:
        if type(leaf) is float or _tree.is_inexact_array(leaf):
            return _same_kind(leaf, fn(leaf))
        return leaf

    return jax.tree_util.tree_map(one, x)


def _scale_floats(factor: float) -> Callable[[Any], Any]:
    def scale(x: Any) -> Any:
        return _map_floats(x, lambda leaf: leaf * factor)

    scale.__name__ = scale.__qualname__ = f"scale_floats_by_{factor:g}"
    return scale


def _shift_floats(x: Any) -> Any:
    return _map_floats(x, lambda leaf: leaf + 1.0)


#: Updates :func:`check_traversal_laws` tries by default. They change the values of
#: float leaves only (jax and numpy float arrays, numpy floats, Python floats) and
#: keep each leaf's type, dtype and shape, so they never change what a structural
#: optic selects.
DEFAULT_UPDATES: tuple[Callable[[Any], Any], ...] = (
    _scale_floats(2.0),
    _scale_floats(-1.0),
    _shift_floats,
    identity,
)


def _is_prefix(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) <= len(b) and tuple(b[: len(a)]) == tuple(a)


def _overlapping(paths: Sequence[tuple[Any, ...]]) -> tuple[Any, Any] | None:
    for i, a in enumerate(paths):
        for b in paths[i + 1 :]:
            if _is_prefix(a, b) or _is_prefix(b, a):
                return a, b
    return None


def _trees_equal_list(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(_tree.tree_equal(x, y) for x, y in zip(a, b, strict=True))


def assert_traversal_laws(
    optic: Any,
    tree: Any,
    f: Callable[[Any], Any],
    g: Callable[[Any], Any],
    *,
    value_index: int = 0,
) -> None:
    """Assert the traversal laws for one tree and two updates (see :func:`check_traversal_laws`).

    Args:
        optic: Any optic.
        tree: A tree it applies to.
        f: An update that keeps what the optic selects.
        g: Another such update.
        value_index: Which current focus is the value for the set-get law (modulo the
            number of foci).

    Example:
        >>> import lensify as lf
        >>> from lensify.testing import DEFAULT_UPDATES, assert_traversal_laws
        >>> f, g = DEFAULT_UPDATES[:2]
        >>> assert_traversal_laws(lf.at.leaves(), {"a": [1.0, 2.0]}, f, g)
    """
    same = optic.modify(tree, identity)
    if not _tree.tree_equal(same, tree):
        raise _violated("identity: modify(t, id) == t", optic=optic, tree=tree, result=same)
    twice = optic.modify(optic.modify(tree, f), g)
    composed = optic.modify(tree, lambda x: g(f(x)))
    if not _tree.tree_equal(twice, composed):
        raise _violated(
            "composition: modify(modify(t, f), g) == modify(t, g . f)",
            optic=optic,
            tree=tree,
            f=f,
            g=g,
            twice=twice,
            composed=composed,
        )
    foci = optic.get_all(tree)
    mapped = optic.get_all(optic.modify(tree, f))
    if not _trees_equal_list(mapped, [f(x) for x in foci]):
        raise _violated(
            "modify-get: get_all(modify(t, f)) == [f(x) for x in get_all(t)]",
            optic=optic,
            tree=tree,
            f=f,
            got=mapped,
        )
    paths = [tuple(p) for p in optic.paths(tree)]
    if len(paths) != len(foci):
        raise _violated(
            "one path per focus: len(paths(t)) == len(get_all(t))",
            optic=optic,
            tree=tree,
            paths=[_tree.keystr(p) for p in paths],
            foci=foci,
        )
    overlap = _overlapping(paths)
    if overlap is not None:
        raise _violated(
            "disjointness: no focus lies inside another",
            optic=optic,
            tree=tree,
            paths=[_tree.keystr(p) for p in overlap],
        )
    if not foci:
        return
    value = foci[value_index % len(foci)]
    got = optic.get_all(optic.set(tree, value))
    if not _trees_equal_list(got, [value] * len(foci)):
        raise _violated(
            "set-get: get_all(set(t, v)) == [v] * len(get_all(t))",
            optic=optic,
            tree=tree,
            value=value,
            got=got,
        )


def check_traversal_laws(
    optic: Any,
    trees: SearchStrategy[Any],
    *,
    updates: SearchStrategy[Callable[[Any], Any]] | None = None,
    max_examples: int = 50,
) -> None:
    """Check that ``optic`` is a lawful traversal on every tree ``trees`` draws.

    - identity: ``optic.modify(t, lambda x: x) == t``;
    - composition: ``modify(modify(t, f), g) == modify(t, lambda x: g(f(x)))``;
    - modify-get: ``get_all(modify(t, f)) == [f(x) for x in get_all(t)]``;
    - one path per focus, and disjointness: no focus path is a prefix of another;
    - set-get: ``get_all(set(t, v)) == [v] * len(get_all(t))``, with ``v`` one of the
      current foci.

    The updates ``f`` and ``g`` must not change which parts of the tree the optic
    selects. The default updates (:data:`DEFAULT_UPDATES`) only scale or shift float
    leaves, keeping each leaf's type, dtype and shape, which suits structural optics
    (paths, ``each``, ``leaves``, ``instances_of``, and ``where`` with a predicate on
    types or shapes); pass your own for an optic whose predicate reads values.

    Args:
        optic: An optic (any number of foci, including none).
        trees: A strategy of trees to apply it to.
        updates: A strategy of functions from a focus to a new focus.
        max_examples: Examples tried.

    Raises:
        AssertionError: naming the law that failed, with the shrunk counter-example.

    Example:
        >>> import lensify as lf
        >>> from lensify.testing import check_traversal_laws, pytrees
        >>> check_traversal_laws(lf.at.leaves(), pytrees(), max_examples=20)
    """
    update_strategy = st.sampled_from(DEFAULT_UPDATES) if updates is None else updates

    @_settings(max_examples)
    @given(trees, update_strategy, update_strategy, st.integers(0, 15))
    def traversal_laws(tree: Any, f: Any, g: Any, value_index: int) -> None:
        assert_traversal_laws(optic, tree, f, g, value_index=value_index)

    traversal_laws()


# ------------------------------------------------------------------------------ optics


def is_float_array(x: Any) -> bool:
    """True for a jax or numpy array of floats: a structural :meth:`where` predicate.

    Example:
        >>> import numpy as np
        >>> import lensify as lf
        >>> from lensify.testing import is_float_array
        >>> tree = {"w": np.ones(2), "n": np.arange(2), "s": 1.0}
        >>> lf.at.leaves().where(is_float_array).paths(tree) == lf.at["w"].paths(tree)
        True
    """
    return _tree.is_inexact_array(x)


def is_matrix(x: Any) -> bool:
    """True for an array with two axes: a structural :meth:`where` predicate.

    Example:
        >>> import jax.numpy as jnp
        >>> from lensify.testing import is_matrix
        >>> is_matrix(jnp.ones((2, 3))), is_matrix(jnp.ones(3)), is_matrix([[1.0]])
        (True, False, False)
    """
    return _tree.is_array(x) and np.ndim(x) == 2


def is_container(x: Any) -> bool:
    """True for a node with children: a structural :meth:`where` predicate.

    Example:
        >>> from lensify.testing import is_container
        >>> is_container([1.0]), is_container([]), is_container(None), is_container(1.0)
        (True, False, False, False)
    """
    return bool(_tree.children(x))


_PREDICATES: tuple[Callable[[Any], bool], ...] = (is_float_array, is_matrix, is_container)


def _node_paths(tree: Any) -> list[tuple[tuple[Any, ...], Any]]:
    """Every node of ``tree`` (the root, containers, leaves) with its key path."""
    found: list[tuple[tuple[Any, ...], Any]] = [((), tree)]
    for key, child in _tree.children(tree) or []:
        # A record keeps a plain function out of its children (a placeholder takes its
        # place), so a lens on that field would see the function, not the child.
        if isinstance(key, _tree.GetAttrKey) and getattr(tree, key.name, child) is not child:
            continue
        found += [((key, *path), node) for path, node in _node_paths(child)]
    return found


def _disjoint_pairs(paths: Sequence[tuple[Any, ...]]) -> list[tuple[Any, Any]]:
    return [
        (a, b)
        for i, a in enumerate(paths)
        for b in paths[i + 1 :]
        if not _is_prefix(a, b) and not _is_prefix(b, a)
    ]


def _types_in(tree: Any) -> list[type]:
    types = {type(node) for _, node in _node_paths(tree) if node is not None}
    return sorted(types, key=lambda t: (t.__module__, t.__qualname__))


def lenses_for(tree: Any) -> SearchStrategy[Any]:
    """Path optics (``lf.at[...]...``) to a node that exists in ``tree``, root included.

    Example:
        >>> from hypothesis import given, settings
        >>> from lensify.testing import lenses_for
        >>> tree = {"a": [1.0, 2.0], "b": None}
        >>> @settings(max_examples=10, deadline=None)
        ... @given(lenses_for(tree))
        ... def test_get_works(optic):
        ...     optic.get(tree)
        >>> test_get_works()
    """
    from lensify.optics import at

    paths = [path for path, _ in _node_paths(tree)]
    return st.sampled_from(paths).map(at.from_path)


def traversals_for(tree: Any) -> SearchStrategy[Any]:
    """Traversals valid for ``tree``: ``each``, ``leaves``, ``where``, ``instances_of``, ``|``.

    Each starts from a path that exists in ``tree``; ``where`` predicates look only at
    types and shapes (:func:`is_float_array`, :func:`is_matrix`,
    :func:`is_container`), so the default updates of :func:`check_traversal_laws`
    keep the selection; unions join two paths that do not overlap.

    Example:
        >>> from hypothesis import given, settings
        >>> from lensify.testing import traversals_for
        >>> tree = {"a": [1.0, 2.0], "b": None}
        >>> @settings(max_examples=10, deadline=None)
        ... @given(traversals_for(tree))
        ... def test_get_all_works(optic):
        ...     optic.get_all(tree)
        >>> test_get_all_works()
    """
    from lensify.optics import at

    paths = [path for path, _ in _node_paths(tree)]
    starts = st.sampled_from(paths).map(at.from_path)
    options = [
        starts.map(lambda o: o.each()),
        starts.map(lambda o: o.leaves()),
        starts.map(lambda o: o.each().each()),
        st.builds(lambda o, p: o.leaves().where(p), starts, st.sampled_from(_PREDICATES)),
        st.builds(lambda o, p: o.each().where(p), starts, st.sampled_from(_PREDICATES)),
    ]
    types = _types_in(tree)
    if types:
        chosen = st.lists(st.sampled_from(types), min_size=1, max_size=2, unique=True)
        options.append(st.builds(lambda o, ts: o.instances_of(*ts), starts, chosen))
    pairs = _disjoint_pairs(paths)
    if pairs:
        options.append(
            st.sampled_from(pairs).map(lambda ab: at.from_path(ab[0]) | at.from_path(ab[1]))
        )
    return st.one_of(*options)


def optics_for(tree: Any) -> SearchStrategy[Any]:
    """Optics valid for ``tree``: :func:`lenses_for` and :func:`traversals_for`.

    Every optic drawn can be applied to ``tree`` without a missing-step error.

    Example:
        >>> from hypothesis import given, settings
        >>> from lensify.testing import optics_for
        >>> tree = {"a": [1.0, 2.0], "b": None}
        >>> @settings(max_examples=10, deadline=None)
        ... @given(optics_for(tree))
        ... def test_paths_work(optic):
        ...     assert len(optic.paths(tree)) == len(optic.get_all(tree))
        >>> test_paths_work()
    """
    return st.one_of(lenses_for(tree), traversals_for(tree))
