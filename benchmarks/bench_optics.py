"""Optics against ``eqx.tree_at``, penzai's selectors and the ``tree_map`` identity.

Three groups, each timed side by side in one process on a list of dicts of small
arrays (``make_tree``):

- set one leaf through a path: a path optic rebuilds only the nodes on the path, so
  its cost does not grow with N (apart from copying the top-level list). The
  hand-written copy of that spine (a new list and a new dict) is the floor for an
  immutable edit;
- set the value of one wrapped leaf through ``unwrapped()``: it rewraps only that
  leaf's stack, so its cost does not grow with N either;
- modify the 10% of the leaves a predicate selects (here: the 2-D ones);
- ``instances_of(jax.Array)`` and modify every array.

The update function is the identity throughout, so what is timed is the cost of
selecting and rebuilding, not of the arithmetic.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from penzai import pz

import lensify as lf
from benchmarks._harness import Row, best_time, identity_tree_map, make_tree

BASELINE = "tree_map identity"


def _identity(x: Any) -> Any:
    return x


def _is_matrix(x: Any) -> bool:
    return x.ndim == 2


def _with_matrices(n: int) -> tuple[list[dict[str, jax.Array]], list[tuple[int, str]]]:
    """``make_tree(n)`` with one leaf in ten (in flatten order) a 2x2 matrix."""
    tree = make_tree(n)
    chosen = []
    i = 0
    for index, node in enumerate(tree):
        for key in sorted(node):
            if i % 10 == 0:
                node[key] = jnp.full((2, 2), float(i))
                chosen.append((index, key))
            i += 1
    return tree, chosen


def _spine_copy(tree: list[dict[str, Any]], index: int, key: str, value: Any) -> Any:
    """The hand-written immutable edit: copy the list and the one dict on the path."""
    new = list(tree)
    layer = dict(new[index])
    layer[key] = value
    new[index] = layer
    return new


def _set_one_leaf(n: int) -> list[Row]:
    tree = make_tree(n)
    index, key = len(tree) // 2, "p3"
    value = jnp.zeros(3)
    optic = lf.at[index][key]
    selection = pz.select(tree).at(lambda t: t[index][key])
    group = "set one leaf through a path"
    cases = {
        BASELINE: lambda: identity_tree_map(tree),
        "hand-written spine copy": lambda: _spine_copy(tree, index, key, value),
        "lensify set": lambda: optic.set(tree, value),
        "lensify modify": lambda: optic.modify(tree, _identity),
        "eqx.tree_at": lambda: eqx.tree_at(lambda t: t[index][key], tree, value),
        "penzai select.at.set": lambda: pz.select(tree).at(lambda t: t[index][key]).set(value),
        "penzai set (selection reused)": lambda: selection.set(value),
    }
    return [Row(group=group, case=c, n=n, seconds=best_time(f)) for c, f in cases.items()]


class _Exp(lf.AbstractUnwrappable):
    """A positive parameter stored as its logarithm, with its inverse."""

    raw: jax.Array

    def unwrap(self) -> jax.Array:
        return jnp.exp(self.raw)

    def with_value(self, value: jax.Array) -> _Exp:
        return _Exp(jnp.log(value))


def _set_one_value(n: int) -> list[Row]:
    tree: list[dict[str, Any]] = make_tree(n)
    for layer in tree:
        if "p3" in layer:
            layer["p3"] = _Exp(layer["p3"])
    index, key = len(tree) // 2, "p3"
    value = jnp.ones(3)
    through = lf.at[index][key].unwrapped()
    path = lf.at[index][key]
    group = "set the value of one wrapped leaf"
    cases = {
        BASELINE: lambda: identity_tree_map(tree),
        "hand-written spine copy, new wrapper": lambda: _spine_copy(
            tree, index, key, _Exp(jnp.log(value))
        ),
        "lensify set of a new wrapper": lambda: path.set(tree, _Exp(jnp.log(value))),
        "lensify unwrapped().set": lambda: through.set(tree, value),
    }
    return [Row(group=group, case=c, n=n, seconds=best_time(f)) for c, f in cases.items()]


def _modify_ten_percent(n: int) -> list[Row]:
    tree, chosen = _with_matrices(n)
    optic = lf.at.leaves().where(_is_matrix)

    def where(t: Any) -> list[Any]:
        return [t[i][k] for i, k in chosen]

    group = "modify 10% of leaves chosen by a predicate"
    cases = {
        BASELINE: lambda: identity_tree_map(tree),
        "lensify leaves().where(pred)": lambda: optic.modify(tree, _identity),
        "eqx.tree_at (where lists them)": lambda: eqx.tree_at(where, tree, replace_fn=_identity),
        "penzai at_instances_of.where": lambda: (
            pz.select(tree).at_instances_of(jax.Array).where(_is_matrix).apply(_identity)
        ),
    }
    return [Row(group=group, case=c, n=n, seconds=best_time(f)) for c, f in cases.items()]


def _modify_every_array(n: int) -> list[Row]:
    tree = make_tree(n)
    optic = lf.at.instances_of(jax.Array)
    group = "instances_of(jax.Array), modify every array"
    cases = {
        BASELINE: lambda: identity_tree_map(tree),
        "lensify instances_of": lambda: optic.modify(tree, _identity),
        "lensify leaves()": lambda: lf.at.leaves().modify(tree, _identity),
        "penzai at_instances_of": lambda: (
            pz.select(tree).at_instances_of(jax.Array).apply(_identity)
        ),
    }
    return [Row(group=group, case=c, n=n, seconds=best_time(f)) for c, f in cases.items()]


def run(sizes: list[int]) -> list[Row]:
    """Every group at every size."""
    rows: list[Row] = []
    for group in (_set_one_leaf, _set_one_value, _modify_ten_percent, _modify_every_array):
        for n in sizes:
            rows += group(n)
    return rows
