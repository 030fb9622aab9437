"""How records look in treescope: as the constructor call, with their fields.

treescope calls a record's ``__treescope_repr__`` (defined on the record base class,
which imports this module by name the first time and hands over to :func:`render`),
so lensify never imports treescope itself: this module imports it only when
treescope is already rendering something.

A wrapper also shows a comment with its unwrapped value, in the notation of
:func:`lensify.describe` (``f32[2]``), followed by the values of a small array.
"""

from __future__ import annotations

from typing import Any

import attrs
import jax
import numpy as np

from lensify import _records, _tree
from lensify.algebra import describe
from lensify.wrappers import Parameterize, is_unwrappable, unwrap

__all__ = ["render", "unwrapped_summary"]

# Arrays with at most this many entries show their values in the summary.
SMALL = 8


def render(record: Any, path: str | None, subtree_renderer: Any) -> Any:
    """The treescope rendering of ``record``: ``Name(field=..., ...)``."""
    from treescope import rendering_parts as parts

    cls = type(record)
    arguments = _arguments(record, path)
    if arguments is None:
        return NotImplemented  # rebuilt from foreign children: treescope's own view
    lines = []
    for i, (label, value, child_path) in enumerate(arguments):
        last = i == len(arguments) - 1
        comma = (
            parts.fold_condition(expanded=parts.text(","))
            if last
            else parts.siblings(",", parts.fold_condition(collapsed=parts.text(" ")))
        )
        rendered = subtree_renderer(value, path=child_path)
        if label is not None:
            rendered = parts.siblings_with_annotations(f"{label}=", rendered)
        lines.append(parts.build_full_line_with_annotations(rendered, comma))
    summary = unwrapped_summary(record) if is_unwrappable(record) else None
    roundtrippable = _init_takes_fields(cls) or isinstance(record, Parameterize)
    prefix = parts.siblings(parts.maybe_qualified_type_name(cls), "(")
    suffix = parts.text(")")
    if not roundtrippable:  # marked <...> in treescope's round-trip mode
        prefix = parts.siblings(parts.roundtrip_condition(roundtrip=parts.text("<")), prefix)
        suffix = parts.siblings(suffix, parts.roundtrip_condition(roundtrip=parts.text(">")))
    if summary is None:
        return parts.build_foldable_tree_node_from_children(
            prefix=prefix, children=lines, suffix=suffix, path=path
        )
    # Expanded, so that the comment (shown on an expanded node only) is seen.
    annotation = parts.roundtrip_condition(
        not_roundtrip=parts.floating_annotation_with_separate_focus(
            parts.comment_color(parts.text(f"  # unwraps to {summary}"))
        )
    )
    return parts.build_foldable_tree_node_from_children(
        prefix=prefix,
        children=lines,
        suffix=suffix,
        path=path,
        first_line_annotation=annotation,
        expand_state=parts.ExpandState.EXPANDED,
    )


def _arguments(record: Any, path: str | None) -> list[tuple[str | None, Any, str | None]] | None:
    """(keyword or None for positional, value, path) of each constructor argument."""

    def at(suffix: str) -> str | None:
        return None if path is None else f"{path}{suffix}"

    if isinstance(record, Parameterize):
        # Parameterize(fn, *args, **kwargs) is its own constructor call.
        if type(record.args) is not tuple or type(record.kwargs) is not dict:
            return None
        arguments: list[tuple[str | None, Any, str | None]] = [(None, record.fn, at(".fn"))]
        arguments += [(None, a, at(f".args[{i}]")) for i, a in enumerate(record.args)]
        arguments += [(k, v, at(f".kwargs[{k!r}]")) for k, v in record.kwargs.items()]
        return arguments
    children = {key.name for key, _ in _tree.children(record) or ()}
    fields = _records.record_fields(type(record))
    return [
        (f.name, _static(value) if f.name not in children else value, at(f".{f.name}"))
        for f in fields
        if f.repr
        for value in [getattr(record, f.name)]
    ]


class _Shown:
    """A static field's value, shown by its repr (treescope knows nothing of it)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __treescope_repr__(self, path: str | None, subtree_renderer: Any) -> Any:
        from treescope import rendering_parts as parts

        return parts.text(self.text)


_PLAIN = (bool, int, float, complex, str, type(None), tuple, list, dict)


def _static(value: Any) -> Any:
    # Functions and plain values treescope renders well; other static values
    # (lensify's hashable array bounds, say) by their own repr.
    if isinstance(value, _PLAIN) or callable(value):
        return value
    return _Shown(repr(value))


def _init_takes_fields(cls: type) -> bool:
    # attrs adds __attrs_init__ to a class that writes its own __init__: only a
    # generated __init__ takes exactly the fields.
    return not hasattr(cls, "__attrs_init__") and attrs.has(cls)


def unwrapped_summary(wrapper: Any) -> str | None:
    """``f32[2] [0.5, 1.5]``: the unwrapped value as :func:`lensify.describe` names it.

    The values are shown for a concrete array of at most ``SMALL`` entries, the range
    of a larger real one; only the dtype and shape of an abstract or traced one.
    ``None`` if the wrapper does not unwrap to an array (or cannot be unwrapped: a
    record rebuilt with placeholder leaves).

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify._treescope import unwrapped_summary
        >>> unwrapped_summary(lf.positive(jnp.array([0.5, 2.0])))
        'f32[2] [0.5, 2. ]'
    """
    try:
        value = unwrap(wrapper)
    except Exception:
        try:  # abstract leaves (jax.ShapeDtypeStruct) unwrap under eval_shape
            value = jax.eval_shape(unwrap, wrapper)
        except Exception:
            return None
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        return None
    entries = describe(value).entries
    if len(entries) != 1:
        return None
    summary = entries[0].summary
    if isinstance(value, jax.core.Tracer) or not hasattr(value, "__array__"):
        return summary
    array = np.asarray(value)
    if array.size > SMALL:
        if array.dtype.kind not in "fiu":
            return summary
        return f"{summary} in [{np.nanmin(array):.4g}, {np.nanmax(array):.4g}]"
    shown = np.array2string(array, separator=", ", precision=4, max_line_width=10_000)
    return f"{summary} {' '.join(shown.split())}"
