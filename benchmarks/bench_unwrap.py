"""``unwrap`` against paramax and the ``tree_map`` identity.

Three groups, each timed side by side in one process:

- no wrappers: nothing to rebuild, so ``unwrap`` should cost no more than the baseline;
- 10% of the leaves in an identity ``Parameterize`` (lensify and paramax);
- nesting depth 1, 2 and 3 on every tenth leaf, reported per wrapper node, so a cost
  linear in the number of wrapper nodes shows up as a flat per-node time;
- ``rewrap`` beside ``unwrap`` on one tree whose every tenth leaf is a
  ``Parameterize(softplus)``, and on one whose every tenth leaf is a positive
  constraint: setting the whole tree by its values should cost no more than about
  twice evaluating it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import paramax

import lensify as lf
from benchmarks._harness import Row, best_time, identity_tree_map, make_tree

BASELINE = "tree_map identity"


def _identity(x: Any) -> Any:
    return x


def _wrap_every(tree: list[dict[str, Any]], every: int, wrap: Any) -> list[dict[str, Any]]:
    """Wrap one leaf in ``every`` (in flattening order) with ``wrap``."""
    out = []
    i = 0
    for node in tree:
        new = {}
        for key in sorted(node):
            new[key] = wrap(node[key]) if i % every == 0 else node[key]
            i += 1
        out.append(new)
    return out


def _nested(factory: Any, depth: int) -> Any:
    def wrap(leaf: Any) -> Any:
        for _ in range(depth):
            leaf = factory(_identity, leaf)
        return leaf

    return wrap


def _no_wrappers(n: int) -> list[Row]:
    tree = make_tree(n)
    group = "unwrap, no wrappers"
    return [
        Row(group=group, case=BASELINE, n=n, seconds=best_time(lambda: identity_tree_map(tree))),
        Row(group=group, case="lensify", n=n, seconds=best_time(lambda: lf.unwrap(tree))),
        Row(group=group, case="paramax", n=n, seconds=best_time(lambda: paramax.unwrap(tree))),
    ]


def _ten_percent(n: int) -> list[Row]:
    plain = make_tree(n)
    ours = _wrap_every(plain, 10, _nested(lf.Parameterize, 1))
    theirs = _wrap_every(plain, 10, _nested(paramax.Parameterize, 1))
    group = "unwrap, 10% identity Parameterize"
    return [
        Row(group=group, case=BASELINE, n=n, seconds=best_time(lambda: identity_tree_map(plain))),
        Row(group=group, case="lensify", n=n, seconds=best_time(lambda: lf.unwrap(ours))),
        Row(group=group, case="paramax", n=n, seconds=best_time(lambda: paramax.unwrap(theirs))),
    ]


def _depths(n: int) -> list[Row]:
    plain = make_tree(n)
    group = "unwrap, 10% nested Parameterize, per wrapper node"
    n_wrapped = len(range(0, n, 10))
    base = best_time(lambda: identity_tree_map(plain))
    bare = best_time(lambda: lf.unwrap(plain))
    rows = [Row(group=group, case=BASELINE, n=n, seconds=base / n_wrapped)]
    for depth in (1, 2, 3):
        tree = _wrap_every(plain, 10, _nested(lf.Parameterize, depth))
        seconds = best_time(lambda tree=tree: lf.unwrap(tree))
        # The cost of the wrapper nodes alone: the walk over the rest of the tree is
        # what unwrap pays on the same tree without wrappers.
        per_node = max(seconds - bare, 0.0) / (n_wrapped * depth)
        rows.append(Row(group=group, case=f"lensify, depth {depth}", n=n, seconds=per_node))
    return rows


def _softplus(leaf: Any) -> Any:
    return lf.Parameterize(jax.nn.softplus, lf.inv_softplus(jnp.abs(leaf) + 1.0))


def _positive(leaf: Any) -> Any:
    return lf.positive(jnp.abs(leaf) + 1.0)


def _rewrap(n: int, name: str, wrap: Any, rounds: int = 5) -> list[Row]:
    plain = make_tree(n)
    tree = _wrap_every(plain, 10, wrap)
    values = lf.unwrap(tree)
    group = f"rewrap beside unwrap, 10% {name}"
    cases = {
        BASELINE: lambda: identity_tree_map(plain),
        "lensify unwrap": lambda: lf.unwrap(tree),
        "lensify rewrap": lambda: lf.rewrap(tree, values),
    }
    # The cases take turns, and each keeps its best round: a burst of load on this
    # shared CPU then spoils one round of one case, not the ratio.
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for case, fn in cases.items():
            best[case] = min(best[case], best_time(fn))
    return [Row(group=group, case=case, n=n, seconds=seconds) for case, seconds in best.items()]


def _exp(leaf: Any) -> Any:
    return lf.Parameterize(jnp.exp, leaf)


def _identity_with_log_det(leaf: Any) -> Any:
    return lf.Parameterize(lf.identity, leaf)  # lf.identity has a registered log-det


def _log_det(n: int, name: str, wrap: Any, rounds: int = 3) -> list[Row]:
    tree = _wrap_every(make_tree(n), 10, wrap)
    jit_unwrap = jax.jit(lf.unwrap)
    jit_log_det = jax.jit(lf.unwrap_with_log_det)
    group = f"unwrap_with_log_det beside unwrap, 10% {name}"
    cases = {
        "lensify unwrap": lambda: lf.unwrap(tree),
        "lensify unwrap_with_log_det": lambda: lf.unwrap_with_log_det(tree),
        "jit(unwrap)": lambda: jax.block_until_ready(jit_unwrap(tree)),
        "jit(unwrap_with_log_det)": lambda: jax.block_until_ready(jit_log_det(tree)),
    }
    for fn in cases.values():
        fn()  # compiled before it is timed
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for case, fn in cases.items():
            best[case] = min(best[case], best_time(fn))
    return [Row(group=group, case=case, n=n, seconds=seconds) for case, seconds in best.items()]


def run(sizes: list[int]) -> list[Row]:
    """Time every group at every size; rows sharing group and size are comparable."""
    rows: list[Row] = []
    for n in sizes:
        rows += _no_wrappers(n)
        rows += _ten_percent(n)
        rows += _depths(n)
        rows += _rewrap(n, "Parameterize(softplus)", _softplus)
        rows += _rewrap(n, "positive", _positive)
        rows += _log_det(n, "Parameterize(lf.identity)", _identity_with_log_det)
        rows += _log_det(n, "Parameterize(exp)", _exp)
        rows += _log_det(n, "positive", _positive)
    return rows
