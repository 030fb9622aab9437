"""Shared timing helpers and tree builders for the benchmarks.

Every ``benchmarks/bench_*.py`` module exposes ``run(sizes) -> list[Row]``. Rows that
share a ``group`` and ``n`` are timed side by side in one process, so their ratios
are meaningful even on a noisy machine; absolute times are not.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any, TypedDict

import jax
import jax.numpy as jnp


class Row(TypedDict):
    group: str  # what is being measured, e.g. "unwrap, 10% Parameterize"
    case: str  # who does it, e.g. "lensify", "paramax", "tree_map identity"
    n: int  # number of leaves in the tree
    seconds: float  # best time per call


def best_time(fn: Callable[[], Any], *, repeat: int = 7, min_total: float = 0.05) -> float:
    """Best seconds per call of ``fn`` over ``repeat`` rounds of auto-sized loops."""
    fn()  # warm caches (and compile, if fn is jitted)
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_total / repeat or number >= 1 << 20:
            break
        number *= 2
    best = float("inf")
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best = min(best, (time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def make_tree(n_leaves: int, leaves_per_dict: int = 10) -> list[dict[str, jax.Array]]:
    """A list of dicts of small float arrays with ``n_leaves`` leaves in all."""
    tree = []
    for i in range(0, n_leaves, leaves_per_dict):
        width = min(leaves_per_dict, n_leaves - i)
        tree.append({f"p{j}": jnp.full((3,), float(i + j)) for j in range(width)})
    return tree


def identity_tree_map(tree: Any) -> Any:
    """The baseline every benchmark is compared with: ``tree_map`` of the identity."""
    return jax.tree_util.tree_map(lambda x: x, tree)
