"""The laws of values through wrappers: ``rewrap`` is a lens from raw trees to their values."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import lensify as lf
from lensify import pytree
from lensify.testing._compare import law_settings, trees_close, violated
from lensify.testing._leaves import float_arrays
from lensify.testing._wrappers import (
    WrapperFactory,
    increasing_on_intervals,
    non_trainables,
)

SearchStrategy = st.SearchStrategy

#: From a tree to a strategy of values it can be set to (with the structure of
#: ``lf.unwrap(tree)``, inside every wrapper's support).
ValueStrategy = Callable[[Any], SearchStrategy[Any]]


def value_tolerance(tree: Any) -> tuple[float, float]:
    """``(rtol, atol)`` for the value laws of ``tree``: the loosest any wrapper in it documents.

    A wrapper documents its round-trip tolerance with a ``tolerance(dtype)`` method
    returning ``(rtol, atol)`` (the constraints do); one without it gets the defaults
    of :func:`trees_close` (1e-5 relative, 1e-6 absolute, at least four machine
    epsilons of a half-precision leaf).

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import value_tolerance
        >>> value_tolerance({"w": lf.NonTrainable(jnp.ones(2))})
        (1e-05, 1e-06)
    """
    rtol, atol = 1e-5, 1e-6
    wrappers = [x for x in pytree.flatten(tree, is_leaf=lf.is_unwrappable)[0]]
    stack = [x for x in wrappers if lf.is_unwrappable(x)]
    while stack:
        wrapper = stack.pop()
        documented = getattr(wrapper, "tolerance", None)
        if callable(documented):
            dtype = jnp.result_type(lf.unwrap(wrapper))
            found = documented(dtype)
            rtol, atol = max(rtol, float(found[0])), max(atol, float(found[1]))
        for _, child in pytree.children(wrapper) or []:
            inner = pytree.flatten(child, is_leaf=lf.is_unwrappable)[0]
            stack += [x for x in inner if lf.is_unwrappable(x)]
    return rtol, atol


def _same_structure(a: Any, b: Any) -> bool:
    return bool(cast(Any, pytree.structure(a)) == pytree.structure(b))


def assert_value_laws(
    tree: Any, v: Any, w: Any, *, rtol: float | None = None, atol: float | None = None
) -> None:
    """Assert the three value laws of ``lf.rewrap`` for one tree and two values.

    - put-get: ``unwrap(rewrap(t, v)) ≈ v``;
    - get-put: ``rewrap(t, unwrap(t)) ≈ t``, with an identical tree structure;
    - put-put: ``rewrap(rewrap(t, v), w) ≈ rewrap(t, w)``, with identical structures.

    ``≈`` is :func:`trees_close` with ``rtol`` and ``atol``; by default the loosest
    tolerance a wrapper in ``tree`` documents (:func:`value_tolerance`).

    Args:
        tree: A tree holding wrappers that implement ``with_value``.
        v: A value for it, in every wrapper's support (the structure of
            ``lf.unwrap(tree)``).
        w: Another such value.
        rtol: Relative tolerance, if not the documented one.
        atol: Absolute tolerance, if not the documented one.

    Raises:
        AssertionError: naming the first law that fails, with the tree and values.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import assert_value_laws
        >>> tree = {"rate": lf.Parameterize(jnp.exp, jnp.array(0.0)), "b": 1.0}
        >>> v, w = {"rate": jnp.array(2.0), "b": 3.0}, {"rate": jnp.array(0.5), "b": 0.0}
        >>> assert_value_laws(tree, v, w)
    """
    documented = value_tolerance(tree)
    close = functools.partial(
        trees_close,
        rtol=documented[0] if rtol is None else rtol,
        atol=documented[1] if atol is None else atol,
    )
    put = lf.rewrap(tree, v)
    got = lf.unwrap(put)
    if not close(got, v):
        raise violated("put-get: unwrap(rewrap(t, v)) == v", tree=tree, v=v, got=got)
    same = lf.rewrap(tree, lf.unwrap(tree))
    if not _same_structure(same, tree) or not close(same, tree):
        raise violated("get-put: rewrap(t, unwrap(t)) == t", tree=tree, got=same)
    twice = lf.rewrap(put, w)
    once = lf.rewrap(tree, w)
    if not _same_structure(twice, once) or not close(twice, once):
        raise violated(
            "put-put: rewrap(rewrap(t, v), w) == rewrap(t, w)",
            tree=tree,
            v=v,
            w=w,
            twice=twice,
            once=once,
        )


def _nudge(leaf: Any, factor: float) -> Any:
    if not pytree.is_inexact_array(leaf) or jnp.iscomplexobj(leaf):
        return leaf
    nudged = leaf * factor + (factor - 1.0) * 0.25
    if isinstance(leaf, np.ndarray):  # keep a numpy leaf numpy
        return np.asarray(nudged, dtype=leaf.dtype)
    return jnp.asarray(nudged, dtype=leaf.dtype)


def nudged_values(tree: Any) -> SearchStrategy[Any]:
    """Values in the support of every wrapper of ``tree``: ``unwrap`` of its raw leaves nudged.

    Each float array leaf ``x`` of ``tree`` becomes ``x * f + (f - 1) / 4`` for a factor
    ``f`` drawn from ``[0.75, 1.25]``, and the nudged tree is unwrapped: a value every
    wrapper can reach, near the tree's own (away from saturation when the tree is).
    This is how :func:`check_value_laws` draws values unless told otherwise.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from hypothesis import find
        >>> from lensify.testing import nudged_values
        >>> tree = lf.Parameterize(jnp.exp, jnp.zeros(2))
        >>> bool((find(nudged_values(tree), lambda v: True) > 0).all())
        True
    """
    leaves, treedef = pytree.flatten(tree)
    factors = st.lists(st.floats(0.75, 1.25, width=32), min_size=len(leaves), max_size=len(leaves))

    def value(fs: list[float]) -> Any:
        nudged = [_nudge(x, f) for x, f in zip(leaves, fs, strict=True)]
        return lf.unwrap(pytree.unflatten(treedef, nudged))

    return factors.map(value)


def check_value_laws(
    factory: Callable[[Any], Any],
    *,
    arrays: SearchStrategy[Any] | None = None,
    values: ValueStrategy | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_examples: int = 20,
) -> None:
    """Check that ``lf.rewrap`` is lawful on the trees ``factory`` builds.

    The laws are those of :func:`assert_value_laws`.

    Trees are ``factory(x)`` for ``x`` drawn from ``arrays``; the values set, from
    ``values(tree)``: by default :func:`nudged_values`, inside every wrapper's support
    and away from saturation. Tolerances are those the wrappers document
    (:func:`value_tolerance`) unless given.

    Args:
        factory: From an array to a tree holding wrappers with ``with_value``.
        arrays: What ``factory`` is given; ``float_arrays(nonzero=True)`` if omitted.
        values: From a tree to a strategy of values for it.
        rtol: Relative tolerance, if not the documented one.
        atol: Absolute tolerance, if not the documented one.
        max_examples: Examples tried.

    Raises:
        AssertionError: naming the law that failed, with the shrunk counter-example.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import check_value_laws
        >>> check_value_laws(lambda x: lf.Parameterize(jnp.exp, x), max_examples=5)
    """
    inputs = float_arrays(nonzero=True) if arrays is None else arrays
    draw_values = nudged_values if values is None else values

    @law_settings(max_examples)
    @given(st.data())
    def value_laws(data: st.DataObject) -> None:
        tree = factory(data.draw(inputs, label="x"))
        strategy = draw_values(tree)
        v = data.draw(strategy, label="v")
        w = data.draw(strategy, label="w")
        assert_value_laws(tree, v, w, rtol=rtol, atol=atol)

    value_laws()


# --------------------------------------------------------------------------- strategies

# Functions with a registered inverse; module level, so drawn trees pickle. sigmoid
# only ever wraps a raw array: around a large value it saturates to 1 exactly.
_INVERTIBLE: tuple[Callable[[Any], Any], ...] = (jnp.exp, jax.nn.softplus, lf.identity)


def _sigmoid(x: Any) -> lf.Parameterize[Any]:
    return lf.Parameterize(jax.nn.sigmoid, x)


def invertible_parameterizations(inner: SearchStrategy[Any]) -> SearchStrategy[Any]:
    """``Parameterize(f, x)`` for ``f`` with a registered inverse, away from saturation.

    ``f`` is ``exp``, ``softplus`` or :func:`~lensify.identity` around ``inner``, or
    ``sigmoid`` around an ``inner`` that is a raw array.

    Example:
        >>> import lensify as lf
        >>> from hypothesis import find
        >>> from lensify.testing import float_arrays, invertible_parameterizations
        >>> p = find(invertible_parameterizations(float_arrays()), lambda p: True)
        >>> isinstance(p, lf.Parameterize)
        True
    """
    return st.one_of(
        st.builds(lf.Parameterize, st.sampled_from(_INVERTIBLE), inner),
        st.builds(_sigmoid, inner.filter(pytree.is_array)),
    )


def invertible_weight_normalizations(
    inner: SearchStrategy[Any] | None = None,
) -> SearchStrategy[Any]:
    """``WeightNormalization`` of small matrices with no zero row, raw, frozen or exp'd.

    Args:
        inner: Ignored, as by :func:`weight_normalizations`.

    Example:
        >>> import lensify as lf
        >>> from hypothesis import find
        >>> from lensify.testing import invertible_weight_normalizations
        >>> w = find(invertible_weight_normalizations(), lambda w: True)
        >>> isinstance(w, lf.WeightNormalization)
        True
    """
    del inner
    raw = float_arrays(((1, 2), (2, 2), (2, 3)), nonzero=True)
    weights = st.one_of(raw, st.builds(lf.NonTrainable, raw), invertible_parameterizations(raw))
    return st.builds(lf.WeightNormalization, weights)


def _positive_constraint(x: Any) -> Any:
    return lf.positive(jnp.abs(x) + 0.25)


def _interval_constraint(x: Any) -> Any:
    return lf.interval(x, -3.0, 3.0)


def _simplex_constraint(x: Any) -> Any:
    return lf.simplex(jax.nn.softmax(x))


def invertible_constraints(inner: SearchStrategy[Any] | None = None) -> SearchStrategy[Any]:
    """``positive``, ``interval`` and ``simplex`` built from values in their supports.

    Args:
        inner: Ignored (a constraint is built from a value in its support, which an
            arbitrary inner value need not be); accepted so this is a
            :data:`WrapperFactory`.

    Example:
        >>> import lensify as lf
        >>> from hypothesis import find
        >>> from lensify.testing import invertible_constraints
        >>> isinstance(find(invertible_constraints(), lambda c: True), lf.AbstractConstraint)
        True
    """
    del inner
    arrays = float_arrays(((1,), (2,), (3,), (2, 3)))
    return st.one_of(
        st.builds(_positive_constraint, arrays),
        st.builds(_interval_constraint, arrays),
        st.builds(_simplex_constraint, arrays),
    )


#: The built-in wrappers that can be set by value, as :data:`WrapperFactory`
#: functions: ``Parameterize`` of a function with a registered inverse,
#: ``NonTrainable``, ``WeightNormalization``, ``RealToIncreasingOnInterval`` and the
#: constraints (:func:`invertible_constraints`).
INVERTIBLE_WRAPPERS: tuple[WrapperFactory, ...] = (
    invertible_parameterizations,
    non_trainables,
    invertible_weight_normalizations,
    increasing_on_intervals,
    invertible_constraints,
)
