"""Reading a path written as code (``layers[0].weight``) into the steps it names."""

from __future__ import annotations

import ast
import re
from typing import Any

from lensify.optics._steps import Attr, Item

__all__ = ["parse"]

_NAME = re.compile(r"\s*(?P<dot>\.)?(?P<name>[A-Za-z_][A-Za-z_0-9]*)")
_FLAT_INDEX = re.compile(r"\s*<flat index (?P<index>\d+)>\s*")
_NON_FINITE = {"inf": float("inf"), "nan": float("nan")}


class _NonFinite(ast.NodeTransformer):
    """``inf`` and ``nan``, as ``repr`` writes those floats, read as the floats."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in _NON_FINITE:
            return ast.copy_location(ast.Constant(_NON_FINITE[node.id]), node)
        return node


def _literal(text: str) -> Any:
    return ast.literal_eval(_NonFinite().visit(ast.parse(text, mode="eval")))


def parse(text: str) -> list[Any]:
    """The steps written in ``text``; ``jax.tree_util.keystr`` output included."""
    if not isinstance(text, str):
        raise TypeError(f".parse needs a str, got {type(text).__name__} {text!r}.")
    steps: list[Any] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        match = _NAME.match(text, pos)
        if match is not None and (match.group("dot") or not steps):
            steps.append(Attr(match.group("name")))
            pos = match.end()
            continue
        item = _parse_item(text, pos)
        if item is None:
            raise ValueError(
                f"cannot parse the path {text!r} at position {pos}:\n  {text}\n  "
                f"{' ' * pos}^\nwrite attributes as .name and items as [0] or ['key']."
            )
        key, pos = item
        steps.append(Item(key))
    return steps


def _parse_item(text: str, pos: int) -> tuple[Any, int] | None:
    """The key written in brackets at ``pos`` and the position after them; None if none.

    A key is a Python literal (``0``, ``'a'``, ``1.5``, ``(1, 'b')``, ``None``), a
    non-finite float as ``keystr`` writes it, or ``<flat index 0>``. A ``]`` may be
    part of the key (inside a string), so each ``]`` is tried in turn until the text
    before it reads as a key.
    """
    start = len(text) - len(text[pos:].lstrip())
    if not text.startswith("[", start):
        return None
    close = text.find("]", start)
    while close != -1:
        inside = text[start + 1 : close]
        flat = _FLAT_INDEX.fullmatch(inside)
        if flat is not None:
            return int(flat.group("index")), close + 1
        try:
            key = _literal(inside.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
        else:
            try:
                hash(key)
            except TypeError:
                return None
            return key, close + 1
        close = text.find("]", close + 1)
    return None
