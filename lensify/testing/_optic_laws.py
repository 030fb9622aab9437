"""The laws of optics: lens, traversal, and the agreement of every operation on the foci."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import lensify as lf
from lensify import pytree
from lensify.testing._compare import law_settings, trees_close, violated
from lensify.testing._trees import pytrees

SearchStrategy = st.SearchStrategy


def _equality(rtol: float | None, atol: float | None) -> Callable[[Any, Any], bool]:
    # Exact (lf.tree_equal) unless a tolerance is given: then trees_close with it (the
    # other tolerance 0), for optics through wrappers, whose values round.
    if rtol is None and atol is None:
        return lf.tree_equal
    r, a = rtol or 0.0, atol or 0.0
    return lambda x, y: trees_close(x, y, rtol=r, atol=a)


def assert_lens_laws(
    optic: Any,
    tree: Any,
    v: Any,
    w: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Assert the three lens laws for one tree and two values (see :func:`check_lens_laws`).

    Example:
        >>> import lensify as lf
        >>> from lensify.testing import assert_lens_laws
        >>> assert_lens_laws(lf.at["a"][0], {"a": [1.0, 2.0]}, None, (3, 4))
    """
    equal = _equality(rtol, atol)
    restored = optic.set(tree, optic.get(tree))
    if not equal(restored, tree):
        raise violated("get-set: set(t, get(t)) == t", optic=optic, tree=tree, result=restored)
    got = optic.get(optic.set(tree, v))
    if not equal(got, v):
        raise violated("set-get: get(set(t, v)) == v", optic=optic, tree=tree, value=v, got=got)
    twice = optic.set(optic.set(tree, v), w)
    once = optic.set(tree, w)
    if not equal(twice, once):
        raise violated(
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
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Check that ``optic`` is a lawful lens on every tree ``trees`` draws.

    - get-set: ``optic.set(t, optic.get(t)) == t``;
    - set-get: ``optic.get(optic.set(t, v)) == v``;
    - set-set: ``optic.set(optic.set(t, v), w) == optic.set(t, w)``.

    Equality is :func:`lensify.tree_equal` (structure, dtypes and values), unless a
    tolerance is given: then :func:`~lensify.testing.trees_close` with ``rtol`` and
    ``atol`` (0 for the one not given). An ``.unwrapped()`` optic needs one: a value
    set through a wrapper comes back rounded (``0.1`` as ``0.09999998`` through
    ``softplus``), and so does a raw parameter set from its own value.

    Args:
        optic: An optic with exactly one focus in each tree, e.g. ``lf.at.w``.
        trees: A strategy of trees the optic focuses on.
        values: A strategy of values to set; small pytrees if omitted.
        max_examples: Examples tried.
        rtol: Relative tolerance of the comparisons; exact if neither is given.
        atol: Absolute tolerance of the comparisons.

    Raises:
        AssertionError: naming the law that failed, with the shrunk counter-example.

    Example:
        >>> import lensify as lf
        >>> from hypothesis import strategies as st
        >>> from lensify.testing import check_lens_laws, pytrees
        >>> trees = st.fixed_dictionaries({"w": pytrees(), "b": pytrees()})
        >>> check_lens_laws(lf.at["w"], trees, max_examples=20)

        Through a wrapper, with a tolerance:

        >>> import jax, jax.numpy as jnp
        >>> scale = st.floats(0.1, 10.0).map(lambda x: lf.Parameterize(jax.nn.softplus,
        ...     lf.inv_softplus(jnp.float32(x))))
        >>> check_lens_laws(
        ...     lf.at["s"].unwrapped(),
        ...     st.fixed_dictionaries({"s": scale}),
        ...     values=st.floats(0.1, 10.0).map(jnp.float32),
        ...     rtol=1e-5,
        ...     atol=1e-6,
        ...     max_examples=10,
        ... )
    """
    value_strategy = pytrees(max_depth=2, max_children=2) if values is None else values

    @law_settings(max_examples)
    @given(trees, value_strategy, value_strategy)
    def lens_laws(tree: Any, v: Any, w: Any) -> None:
        assert_lens_laws(optic, tree, v, w, rtol=rtol, atol=atol)

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
        if type(leaf) is float or pytree.is_inexact_array(leaf):
            return _same_kind(leaf, fn(leaf))
        return leaf

    return pytree.tree_map(one, x)


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
    lf.identity,
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
    return len(a) == len(b) and all(lf.tree_equal(x, y) for x, y in zip(a, b, strict=True))


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
    same = optic.modify(tree, lf.identity)
    if not lf.tree_equal(same, tree):
        raise violated("identity: modify(t, id) == t", optic=optic, tree=tree, result=same)
    twice = optic.modify(optic.modify(tree, f), g)
    composed = optic.modify(tree, lambda x: g(f(x)))
    if not lf.tree_equal(twice, composed):
        raise violated(
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
        raise violated(
            "modify-get: get_all(modify(t, f)) == [f(x) for x in get_all(t)]",
            optic=optic,
            tree=tree,
            f=f,
            got=mapped,
        )
    paths = [tuple(p) for p in optic.paths(tree)]
    if len(paths) != len(foci):
        raise violated(
            "one path per focus: len(paths(t)) == len(get_all(t))",
            optic=optic,
            tree=tree,
            paths=[pytree.keystr(p) for p in paths],
            foci=foci,
        )
    overlap = _overlapping(paths)
    if overlap is not None:
        raise violated(
            "disjointness: no focus lies inside another",
            optic=optic,
            tree=tree,
            paths=[pytree.keystr(p) for p in overlap],
        )
    assert_agreement_laws(optic, tree)
    if not foci:
        return
    value = foci[value_index % len(foci)]
    got = optic.get_all(optic.set(tree, value))
    if not _trees_equal_list(got, [value] * len(foci)):
        raise violated(
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
      current foci;
    - agreement: ``get_all``, ``paths``, ``mask``, ``partition`` and ``set`` agree on
      the foci (:func:`assert_agreement_laws`).

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

    @law_settings(max_examples)
    @given(trees, update_strategy, update_strategy, st.integers(0, 15))
    def traversal_laws(tree: Any, f: Any, g: Any, value_index: int) -> None:
        assert_traversal_laws(optic, tree, f, g, value_index=value_index)

    traversal_laws()


class _Marker:
    """A leaf no tree holds: what the agreement law sets, to see where it lands."""

    def __repr__(self) -> str:
        return "<marker>"


def _covered(leaf_path: tuple[Any, ...], foci: Sequence[tuple[Any, ...]]) -> bool:
    return any(_is_prefix(p, leaf_path) for p in foci)


def assert_agreement_laws(optic: Any, tree: Any) -> None:
    """Assert that every operation of ``optic`` agrees on its foci in ``tree``.

    With ``P = optic.paths(tree)`` and ``F = optic.get_all(tree)``, and a leaf of
    ``tree`` *inside a focus* when some path of ``P`` is a prefix of its key path:

    - one path per focus: ``len(P) == len(F)``, and ``lf.at.from_path(p).get(t)`` is
      the focus at ``p``;
    - get_all agrees with the tree: the leaves of ``tree`` under ``p`` are the leaves
      of the focus at ``p``, the same objects in the same order;
    - mask: ``mask(t)`` has the structure of ``t`` and is True exactly on the leaves
      inside a focus;
    - partition: ``partition(t)`` puts exactly those leaves in its first half and the
      others in its second;
    - set: ``set(t, v)`` puts ``v`` at exactly the paths ``P``, in order.

    These are JAX's key paths: an attribute optic on a class registered with
    ``register_pytree_node`` must report ``FlattenedIndexKey`` paths, or ``mask`` and
    ``partition`` would select nothing.

    Example:
        >>> import lensify as lf
        >>> from lensify.testing import assert_agreement_laws
        >>> assert_agreement_laws(lf.at["a"].each(), {"a": [1.0, {"b": 2.0}], "c": 3.0})
    """
    paths = [tuple(p) for p in optic.paths(tree)]
    foci = optic.get_all(tree)
    if len(paths) != len(foci):
        raise violated("one path per focus", optic=optic, tree=tree, paths=paths, foci=foci)
    pairs, treedef = pytree.flatten_with_path(tree)
    leaf_paths = [tuple(p) for p, _ in pairs]
    for path, focus in zip(paths, foci, strict=True):
        at_path = lf.at.from_path(path).get(tree)
        if not lf.tree_equal(at_path, focus):
            raise violated("paths lead to the foci", optic=optic, tree=tree, path=path)
        under = [leaf for p, leaf in pairs if _is_prefix(path, tuple(p))]
        own = pytree.flatten(focus)[0]
        if len(under) != len(own) or any(a is not b for a, b in zip(under, own, strict=True)):
            raise violated(
                "get_all agrees with the tree: the leaves under each path are the focus's",
                optic=optic,
                tree=tree,
                path=pytree.keystr(path),
                leaves_under_path=under,
                leaves_of_focus=own,
            )
    expected = [_covered(p, paths) for p in leaf_paths]
    mask = optic.mask(tree)
    if cast(Any, pytree.structure(mask)) != treedef or pytree.flatten(mask)[0] != expected:
        raise violated(
            "mask is True exactly on the leaves inside a focus",
            optic=optic,
            tree=tree,
            paths=[pytree.keystr(p) for p in paths],
            mask=mask,
        )
    flagged = list(zip([leaf for _, leaf in pairs], expected, strict=True))
    inside, outside = optic.partition(tree)
    want_in = pytree.unflatten(treedef, [x if f else None for x, f in flagged])
    want_out = pytree.unflatten(treedef, [None if f else x for x, f in flagged])
    if not (lf.tree_equal(inside, want_in) and lf.tree_equal(outside, want_out)):
        raise violated(
            "partition splits off exactly the leaves inside a focus",
            optic=optic,
            tree=tree,
            paths=[pytree.keystr(p) for p in paths],
            inside=inside,
        )
    marker = _Marker()
    marked = pytree.flatten_with_path(optic.set(tree, marker))[0]
    landed = [tuple(p) for p, leaf in marked if leaf is marker]
    if landed != paths:
        raise violated(
            "set puts the value at exactly the paths of the foci",
            optic=optic,
            tree=tree,
            paths=[pytree.keystr(p) for p in paths],
            set_at=[pytree.keystr(p) for p in landed],
        )


def check_agreement_laws(optic: Any, trees: SearchStrategy[Any], *, max_examples: int = 50) -> None:
    """Check that every operation of ``optic`` agrees on its foci in every tree drawn.

    See :func:`assert_agreement_laws` for the laws.

    Args:
        optic: Any optic.
        trees: A strategy of trees to apply it to.
        max_examples: Examples tried.

    Raises:
        AssertionError: naming the law that failed, with the shrunk counter-example.

    Example:
        >>> import lensify as lf
        >>> from lensify.testing import ALL_NODES, check_agreement_laws, pytrees
        >>> check_agreement_laws(lf.at.leaves(), pytrees(nodes=ALL_NODES), max_examples=20)
    """

    @law_settings(max_examples)
    @given(trees)
    def agreement_laws(tree: Any) -> None:
        assert_agreement_laws(optic, tree)

    agreement_laws()
