"""Fuzzing: random optics on random wrapped trees, through every operation.

Every call either returns a tree that satisfies the laws of DESIGN.md or raises one
of lensify's documented optic errors (:class:`lensify.OpticError` and its
subclasses); any other exception is a bug. Optics come from
:func:`lensify.testing.optics_for` (valid for the tree) and from a strategy of
arbitrary steps that need not fit the tree at all.

The number of examples comes from ``LENSIFY_FUZZ_EXAMPLES`` (default 400, about
half a minute); ``make fuzz`` runs many more.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lensify as lf
import lensify.testing as lt

settings.register_profile(
    "lensify-fuzz",
    max_examples=int(os.environ.get("LENSIFY_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
    print_blob=True,
)
FUZZ = settings.get_profile("lensify-fuzz")

#: What an optic may raise on input it cannot handle: nothing else.
DOCUMENTED = (lf.OpticError,)

# ----------------------------------------------------------------------- arbitrary optics

KEYS = ("a", "b", "w", "bias", "scale", "missing")
INDICES = (0, 1, 2, -1, 7)
ATTRIBUTES = ("left", "right", "tree", "weight", "scale", "args", "arr", "missing")
TYPES = (lf.NonTrainable, lf.Parameterize, lf.WeightNormalization, dict, list, lt.TreePair)
PREDICATES = (lt.is_float_array, lt.is_matrix, lt.is_container)


def _step(optic: lf.Optic, choice: tuple[str, Any]) -> lf.Optic:
    kind, arg = choice
    if kind == "key" or kind == "index":
        return optic[arg]
    if kind == "attr":
        return optic.attr(arg)
    if kind == "slice":
        return optic[arg[0] : arg[1]]
    if kind == "each":
        return optic.each()
    if kind == "leaves":
        return optic.leaves()
    if kind == "where":
        return optic.where(arg)
    return optic.instances_of(*arg)


_PATH_STEPS = st.one_of(
    st.tuples(st.just("key"), st.sampled_from(KEYS)),
    st.tuples(st.just("index"), st.sampled_from(INDICES)),
    st.tuples(st.just("attr"), st.sampled_from(ATTRIBUTES)),
)
_TRAVERSAL_STEPS = st.one_of(
    st.tuples(
        st.just("slice"), st.tuples(st.sampled_from((None, 0, 1)), st.sampled_from((None, 2)))
    ),
    st.tuples(st.just("each"), st.none()),
    st.tuples(st.just("leaves"), st.none()),
    st.tuples(st.just("where"), st.sampled_from(PREDICATES)),
    st.tuples(
        st.just("instances_of"),
        st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True).map(tuple),
    ),
)


def _build(steps: list[tuple[str, Any]]) -> lf.Optic:
    optic = lf.at
    for step in steps:
        optic = _step(optic, step)
    return optic


def arbitrary_optics() -> st.SearchStrategy[tuple[str, lf.Optic]]:
    """``(kind, optic)``: a path ("lens") or any chain of steps, unions included."""
    lenses = st.lists(_PATH_STEPS, max_size=4).map(lambda s: ("lens", _build(s)))
    chains = st.lists(st.one_of(_PATH_STEPS, _TRAVERSAL_STEPS), max_size=4).map(
        lambda s: ("traversal", _build(s))
    )
    unions = st.tuples(chains, chains).map(lambda ab: ("traversal", ab[0][1] | ab[1][1]))
    return st.one_of(lenses, chains, unions)


def optics_and_kinds(tree: Any) -> st.SearchStrategy[tuple[str, lf.Optic]]:
    fitting = [
        lt.lenses_for(tree).map(lambda o: ("lens", o)),
        lt.traversals_for(tree).map(lambda o: ("traversal", o)),
    ]
    # A Partial rebuilds itself as Partial(func, *args, **keywords): setting its args
    # or keywords to an arbitrary value fails in its own constructor, which no optic
    # can prevent. The drawn optics leave them alone; arbitrary ones need not.
    if lf.at.instances_of(jax.tree_util.Partial).get_all(tree):
        return st.one_of(*fitting)
    return st.one_of(*fitting, arbitrary_optics())


# ---------------------------------------------------------------------------- updates


def _map_floats(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def one(v: Any) -> Any:
        if not lt.is_float_array(v):
            return v
        # numpy turns a 0-d array into a scalar under arithmetic; keep the type, so
        # that instances_of(np.ndarray) selects the same leaves afterwards.
        return np.asarray(fn(v), dtype=v.dtype) if isinstance(v, np.ndarray) else fn(v)

    def update(x: Any) -> Any:
        return jax.tree_util.tree_map(one, x)

    return update


# Structure-preserving: they never change what a structural optic selects.
UPDATES = (
    _map_floats(lambda v: v * np.float32(2.0)),
    _map_floats(lambda v: -v),
    _map_floats(lambda v: v + np.float32(1.0)),
)


# ------------------------------------------------------------------------------- laws


def _fail(law: str, **shown: Any) -> AssertionError:
    lines = [f"law violated: {law}"] + [f"  {k}: {v!r}" for k, v in shown.items()]
    return AssertionError("\n".join(lines))


def _is_prefix(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) <= len(b) and tuple(b[: len(a)]) == a


def _same_list(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(lf.tree_equal(x, y) for x, y in zip(a, b, strict=True))


def _attempt(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """Run ``call``; a documented error is returned, anything else propagates."""
    try:
        return call(), None
    except DOCUMENTED as error:
        assert str(error), f"{type(error).__name__} with an empty message"
        return None, error


def check_every_operation(tree: Any, kind: str, optic: lf.Optic, f: Any, g: Any) -> None:
    foci, error = _attempt(lambda: optic.get_all(tree))
    if error is not None:
        # A tree the optic does not fit is refused by every operation alike.
        for name, call in {
            "paths": lambda: optic.paths(tree),
            "get": lambda: optic.get(tree),
            "set": lambda: optic.set(tree, 0.0),
            "modify": lambda: optic.modify(tree, f),
            "wrap": lambda: optic.wrap(tree, lf.NonTrainable),
            "mask": lambda: optic.mask(tree),
            "unwrap": lambda: optic.unwrap(tree),
        }.items():
            _, again = _attempt(call)
            if again is None:
                raise _fail(f"{name} succeeds where get_all raised {error!r}", optic=optic)
        return

    paths = [tuple(p) for p in optic.paths(tree)]
    if len(paths) != len(foci):
        raise _fail("one path per focus", optic=optic, tree=tree, paths=paths)
    for i, a in enumerate(paths):
        for b in paths[i + 1 :]:
            if _is_prefix(a, b) or _is_prefix(b, a):
                raise _fail("foci never overlap", optic=optic, tree=tree, a=a, b=b)
    for path, focus in zip(paths, foci, strict=True):
        if not lf.tree_equal(lf.at.from_path(path).get(tree), focus):
            raise _fail("paths lead to the foci", optic=optic, tree=tree, path=path)

    single, error = _attempt(lambda: optic.get(tree))
    if len(foci) == 1:
        if error is not None or not lf.tree_equal(single, foci[0]):
            raise _fail("get returns the single focus", optic=optic, tree=tree, error=error)
    elif not isinstance(error, lf.FocusCountError):
        raise _fail("get with 0 or several foci raises FocusCountError", optic=optic, tree=tree)

    # Traversal laws.
    if not lf.tree_equal(optic.modify(tree, lambda x: x), tree):
        raise _fail("modify(t, id) == t", optic=optic, tree=tree)
    twice = optic.modify(optic.modify(tree, f), g)
    composed = optic.modify(tree, lambda x: g(f(x)))
    if not lf.tree_equal(twice, composed):
        raise _fail("modify(modify(t, f), g) == modify(t, g . f)", optic=optic, tree=tree)
    if not _same_list(optic.get_all(optic.modify(tree, f)), [f(x) for x in foci]):
        raise _fail("get_all(modify(t, f)) == map(f, get_all(t))", optic=optic, tree=tree)
    if foci:
        value = foci[-1]
        # A value may change what a union selects (None set to a leaf that another
        # member then also reaches): the optic must then refuse with an OverlapError.
        after, error = _attempt(lambda: optic.get_all(optic.set(tree, value)))
        if error is None and not _same_list(after, [value] * len(foci)):
            raise _fail("get_all(set(t, v)) == [v] * n", optic=optic, tree=tree, value=value)
        if error is not None and not isinstance(error, lf.OverlapError):
            raise _fail("set-get raises only an overlap", optic=optic, tree=tree, error=error)

    if kind == "lens" and len(foci) == 1:
        marker = "<set by the fuzzer>"
        if not lf.tree_equal(optic.set(tree, foci[0]), tree):
            raise _fail("set(t, get(t)) == t", optic=optic, tree=tree)
        if optic.get(optic.set(tree, marker)) != marker:
            raise _fail("get(set(t, v)) == v", optic=optic, tree=tree)
        if not lf.tree_equal(optic.set(optic.set(tree, marker), 1.0), optic.set(tree, 1.0)):
            raise _fail("set(set(t, v), w) == set(t, w)", optic=optic, tree=tree)

    # mask marks exactly the leaves inside the foci.
    mask = optic.mask(tree)
    if jax.tree_util.tree_structure(mask) != jax.tree_util.tree_structure(tree):
        raise _fail("mask has the structure of the tree", optic=optic, tree=tree)
    flags = jax.tree_util.tree_leaves(mask)
    if not all(type(flag) is bool for flag in flags):
        raise _fail("mask holds bools", optic=optic, tree=tree, mask=mask)
    inside = sum(len(jax.tree_util.tree_leaves(focus)) for focus in foci)
    if sum(flags) > inside or (kind != "lens" and sum(flags) != inside and _all_children(paths)):
        raise _fail("mask marks the leaves in the foci", optic=optic, tree=tree, mask=mask)

    # wrap with a value-preserving factory, and unwrap of the foci only.
    expected = lf.unwrap(tree)
    wrapped = optic.wrap(tree, lf.NonTrainable)
    if not lt.trees_close(lf.unwrap(wrapped), expected):
        raise _fail("unwrap(wrap(t, NonTrainable)) == unwrap(t)", optic=optic, tree=tree)
    partly = optic.unwrap(tree)
    if not lt.trees_close(lf.unwrap(partly), expected):
        raise _fail("unwrap(optic.unwrap(t)) == unwrap(t)", optic=optic, tree=tree)
    for path in paths:
        if lf.contains_unwrappables(lf.at.from_path(path).get(partly)):
            raise _fail("optic.unwrap leaves no wrapper in a focus", optic=optic, path=path)


def _all_children(paths: list[tuple[Any, ...]]) -> bool:
    # Foci reached only through pytree children; an attribute step may also reach a
    # static field, which holds no leaves of the tree and which mask never marks.
    return all(not isinstance(k, jax.tree_util.GetAttrKey) for p in paths for k in p)


# ------------------------------------------------------------------------------ tests

# Built once: a strategy's repr (hypothesis computes it) grows with its nesting.
WRAPPED_TREES = lt.wrapped_trees(
    nodes=lt.ALL_NODES, leaves=lt.all_leaves(), dtypes=(np.float32, *lt.LOW_PRECISION)
)
PLAIN_TREES = lt.pytrees(nodes=lt.ALL_NODES, leaves=lt.all_leaves())


@FUZZ
@given(st.data())
def test_fuzz_every_operation_obeys_the_laws_or_raises_a_documented_error(
    data: st.DataObject,
) -> None:
    tree = data.draw(WRAPPED_TREES, label="tree")
    kind, optic = data.draw(optics_and_kinds(tree), label="optic")
    f = data.draw(st.sampled_from(UPDATES), label="f")
    g = data.draw(st.sampled_from(UPDATES), label="g")
    check_every_operation(tree, kind, optic, f, g)


@FUZZ
@given(st.data())
def test_fuzz_optics_on_plain_trees(data: st.DataObject) -> None:
    tree = data.draw(PLAIN_TREES, label="tree")
    kind, optic = data.draw(optics_and_kinds(tree), label="optic")
    check_every_operation(tree, kind, optic, UPDATES[0], UPDATES[1])


@FUZZ
@given(WRAPPED_TREES)
def test_fuzz_unwrap_laws(tree: Any) -> None:
    value = lf.unwrap(tree)
    assert not lf.contains_unwrappables(value)
    assert lf.tree_equal(lf.unwrap(value), value)
    if not lf.contains_unwrappables(tree):
        assert lf.unwrap(tree) is tree
