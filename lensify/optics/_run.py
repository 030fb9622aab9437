"""The executor: the one place that runs a chain of steps, for every operation.

An optic's chain is compiled once into a :class:`Plan`: leaf traversals fused with
the filters that follow them, unions compiled into :class:`Branches`, and, for a
lens (a chain of single-focus steps), one composed function that rebuilds only the
nodes on the path. Every operation of an optic is one of the functions below, so
they all agree on what the optic focuses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lensify import _tree
from lensify._located import located
from lensify.optics._errors import OverlapError
from lensify.optics._failures import StepError
from lensify.optics._steps import LensStep, Unwrapped, apply_focus, put_focus, step_for_key
from lensify.optics._traversals import InstancesOf, LeafScan, Leaves, Union, Where

__all__ = [
    "Branches",
    "Calls",
    "Plan",
    "compile_chain",
    "first_overlap",
    "get",
    "items",
    "leaf_flags",
    "path_to",
    "values",
]

Path = tuple[Any, ...]
Continuation = Callable[[Any], Any]

_LENS_STEPS: tuple[type, ...] = (LensStep,)


class Plan:
    """A chain of steps as it runs, and whether it is a lens (exactly one focus).

    ``set(tree, value)`` and ``modify(tree, fn)`` are the executor's entry points
    for those operations. For a lens each is one composed function, built once,
    that walks down the path and rebuilds only its spine; a traversal runs its
    steps as continuations.
    """

    __slots__ = ("is_lens", "modify", "set", "steps", "unwraps")

    set: Callable[[Any, Any], Any]
    modify: Callable[[Any, Continuation], Any]
    unwraps: bool  # whether a focus may be an unwrapped value, not a stored subtree

    def __init__(self, steps: tuple[Any, ...]) -> None:
        self.steps = steps
        self.is_lens = all(isinstance(s, _LENS_STEPS) for s in steps)
        self.unwraps = any(map(_unwraps, steps))
        if self.is_lens:
            self.set = _compose(steps, put_focus)
            self.modify = _compose(steps, apply_focus)
        else:
            self.set = self._set_every
            self.modify = self._modify_every

    def _modify_every(self, tree: Any, fn: Continuation) -> Any:
        k = fn
        for step in reversed(self.steps):
            k = _lift(step, k)
        return k(tree)

    def _set_every(self, tree: Any, value: Any) -> Any:
        def constant(_: Any) -> Any:
            return value

        return self._modify_every(tree, constant)


def _unwraps(step: Any) -> bool:
    """Whether the foci of ``step`` may be unwrapped values."""
    if type(step) is Branches:
        return any(plan.unwraps for plan in step.plans)
    return type(step) is Unwrapped


def _compose(steps: tuple[Any, ...], last: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    update = last
    for step in reversed(steps):
        update = step.updater(update)
    return update


class Branches:
    """A compiled union: the plans of its members, and its code for errors."""

    __slots__ = ("code", "plans")

    def __init__(self, plans: tuple[Plan, ...], code: str) -> None:
        self.plans = plans
        self.code = code


def compile_chain(chain: Sequence[Any], method_names: frozenset[str]) -> Plan:
    """The steps as they run: leaf traversals fused with the filters that follow."""
    steps: list[Any] = []
    for step in chain:
        if isinstance(step, Leaves | InstancesOf):
            steps.append(step.scan())
        elif isinstance(step, Where) and steps and isinstance(steps[-1], LeafScan):
            steps[-1] = steps[-1].with_pred(step.pred)
        elif isinstance(step, Union):
            plans = tuple(compile_chain(m, method_names) for m in step.members)
            steps.append(Branches(plans, step.code(method_names)))
        else:
            steps.append(step)
    return Plan(tuple(steps))


# ---------------------------------------------------------------------------------
# The operations.


def items(plan: Plan, tree: Any) -> list[tuple[Path, Any]]:
    """Every focus with its key path; a failing step learns the path it was on."""
    found: list[tuple[Path, Any]] = [((), tree)]
    # Inside an unwrapped value, a focus is computed from the stored subtree that
    # value comes from, and has its key path: the steps that follow add no key.
    in_value = False
    for step in plan.steps:
        found_next: list[tuple[Path, Any]] = []
        for path, node in found:
            try:
                pairs = _step_items(step, node)
            except StepError as failure:
                failure.path = path if in_value else path + failure.path
                raise
            if in_value:
                found_next += [(path, child) for _, child in pairs]
            else:
                found_next += [(path + sub, child) for sub, child in pairs]
        found = found_next
        in_value = (
            in_value
            or type(step) is Unwrapped
            or (type(step) is Branches and any(p.unwraps for p in step.plans))
        )
    return found


class Calls:
    """The user's function as a traversal's :meth:`Plan.modify` calls it.

    ``counted`` is what the executor calls. If ``fn`` raises, :attr:`failed` is set
    and :attr:`focus` is the focus it raised on: so that focus is located without
    calling ``fn`` again. (A lens has one focus: it calls ``fn`` as it is.)
    """

    __slots__ = ("counted", "failed", "focus")

    def __init__(self, fn: Continuation) -> None:
        self.failed = False
        self.focus: Any = None

        def counted(focus: Any) -> Any:
            try:
                return fn(focus)
            except Exception:
                self.failed, self.focus = True, focus
                raise

        self.counted = counted


def values(plan: Plan, tree: Any) -> list[Any]:
    """Every focus, without the key paths."""
    nodes = [tree]
    for step in plan.steps:
        if len(nodes) == 1:
            nodes = _step_values(step, nodes[0])
        else:
            nodes = [v for node in nodes for v in _step_values(step, node)]
    return list(nodes)


def get(plan: Plan, tree: Any) -> Any:
    """The focus of a lens."""
    node = tree
    for step in plan.steps:
        node = step.get(node)
    return node


def path_to(plan: Plan, tree: Any, node: Any) -> Path:
    """The key path of ``node`` if it is the tree or a focus of a prefix of the plan."""
    found: list[tuple[Path, Any]] = [((), tree)]
    for step in plan.steps:
        for path, candidate in found:
            if candidate is node:
                return path
        found = [(path + sub, child) for path, n in found for sub, child in _step_items(step, n)]
    return ()


def leaf_flags(plan: Plan, tree: Any) -> tuple[list[tuple[Path, Any]], list[bool], Any]:
    """The leaves of ``tree`` with their paths, which of them lie in a focus, the treedef."""
    focus_paths = {path for path, _ in items(plan, tree)}
    pairs, treedef = _tree.flatten_with_path(tree)
    depths = sorted({len(p) for p in focus_paths})
    flags = [_prefix_in(tuple(p), focus_paths, depths, len(p)) is not None for p, _ in pairs]
    return pairs, flags, treedef


def first_overlap(paths: Sequence[Path]) -> Path | None:
    """The first path that is repeated or that holds another path; None if none does."""
    seen: set[Path] = set()
    for path in paths:
        if path in seen:
            return path
        seen.add(path)
    depths = sorted({len(p) for p in seen})
    for path in paths:
        found = _prefix_in(path, seen, depths, len(path) - 1)
        if found is not None:
            return found
    return None


def _prefix_in(path: Path, paths: set[Path], depths: list[int], longest: int) -> Path | None:
    """The shortest prefix of ``path``, at most ``longest`` keys long, that is in ``paths``."""
    for depth in depths:
        if depth > longest:
            break
        if path[:depth] in paths:
            return path[:depth]
    return None


# ---------------------------------------------------------------------------------
# One step on one node: unions are run here, every other step runs itself.


def _step_items(step: Any, node: Any) -> list[tuple[Path, Any]]:
    if type(step) is Branches:
        return _branch_items(step, node)
    result: list[tuple[Path, Any]] = step.items(node)
    return result


def _step_values(step: Any, node: Any) -> list[Any]:
    if type(step) is Branches:
        return [v for _, v in _branch_items(step, node)]
    result: list[Any] = step.values(node)
    return result


def _lift(step: Any, k: Continuation) -> Continuation:
    if type(step) is Branches:
        return lambda node: _branch_modify(step, node, k)
    return lambda node: step.modify(node, k)


_FOCUS = object()  # marks a trie node that is itself a focus


def _checked_items(branch: Branches, node: Any) -> list[tuple[Path, Any]]:
    found: list[tuple[Path, Any]] = []
    for plan in branch.plans:
        found += items(plan, node)
    overlap = first_overlap([p for p, _ in found])
    if overlap is not None:
        error = OverlapError(
            f"the foci of {branch.code} overlap: optics joined by | may not focus on "
            "the same node, nor on one node inside another. Narrow one of them, for "
            "example with .where(...)."
        )
        raise located(error, _tree.keystr(overlap), "")
    return found


def _branch_items(branch: Branches, node: Any) -> list[tuple[Path, Any]]:
    found = _checked_items(branch, node)
    if len(found) < 2:
        return found
    ordered: list[tuple[Path, Any]] = []
    _walk_in_order(node, _trie([p for p, _ in found]), (), dict(found), ordered)
    return ordered


def _branch_modify(branch: Branches, node: Any, k: Continuation) -> Any:
    found = _checked_items(branch, node)
    if not found:
        return node
    if any(plan.unwraps for plan in branch.plans):
        # A focus that is an unwrapped value is written back by its own member
        # (through rewrap), not found by its path. The foci do not overlap, so
        # the members can write one after the other.
        for plan in branch.plans:
            node = plan.modify(node, k)
        return node
    return _modify_at(node, _trie([p for p, _ in found]), k)


def _trie(paths: list[Path]) -> dict[Any, Any]:
    root: dict[Any, Any] = {}
    for path in paths:
        level = root
        for key in path:
            level = level.setdefault(key, {})
        level[_FOCUS] = True
    return root


def _split(node: Any, trie: dict[Any, Any]) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """The registry children of ``node`` and the trie's keys that are not among them."""
    pairs = _tree.children(node) or []
    known = {key for key, _ in pairs}
    return pairs, [key for key in trie if key not in known]


def _walk_in_order(
    node: Any,
    trie: dict[Any, Any],
    path: Path,
    by_path: dict[Path, Any],
    out: list[tuple[Path, Any]],
) -> None:
    if _FOCUS in trie:
        out.append((path, by_path[path]))
        return
    pairs, others = _split(node, trie)
    for key, child in pairs:
        if key in trie:
            _walk_in_order(child, trie[key], (*path, key), by_path, out)
    for key in others:
        child = step_for_key(key).get(node)
        _walk_in_order(child, trie[key], (*path, key), by_path, out)


def _modify_at(node: Any, trie: dict[Any, Any], k: Continuation) -> Any:
    if _FOCUS in trie:
        return k(node)
    pairs, others = _split(node, trie)
    if any(key in trie for key, _ in pairs):
        node = _tree.rebuild(
            node,
            [_modify_at(c, trie[key], k) if key in trie else c for key, c in pairs],
        )
    for key in others:
        step = step_for_key(key)
        node = step.replace(node, _modify_at(step.get(node), trie[key], k))
    return node
