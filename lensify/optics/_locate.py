"""Errors with key paths: a failed step, or an error of the user's function, located.

The executor's fast paths do not track key paths. When something fails, the
functions here walk again, with paths, to say where: the missing key and the node
that lacks it, the focus a predicate or an update function raised on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lensify import _notes, _tree
from lensify.optics import _run
from lensify.optics._errors import FocusCountError, MissingStepError, TracedPredicateError
from lensify.optics._failures import (
    StepError,
    StepLookupError,
    StepPredicateError,
    StepTracedError,
    StepValueError,
    callable_name,
    closest_first,
    describe_node,
)

__all__ = ["count_error", "explain", "locate", "public_error"]

Path = tuple[Any, ...]
_SHOWN_PATHS = 5  # how many focus paths an error message lists
_SHOWN_KEYS = 10  # how many existing keys an error message lists


def explain(optic: object, plan: _run.Plan, tree: Any, failure: StepError) -> Exception:
    """The user-facing error for a failed step, with the path it failed on."""
    # The fast paths do not track key paths; walking again with them finds
    # the same failure, located.
    try:
        _run.items(plan, tree)
    except StepError as located:
        failure = located
    else:
        if isinstance(failure, StepLookupError | StepValueError):
            # Every focus is there, so a rebuild failed (setting a computed
            # attribute, or rewrapping a value, say) on a node that is one of
            # the foci on the way.
            failure.path = _run.path_to(plan, tree, failure.node) + failure.path
    return public_error(optic, failure)


def locate(
    optic: object,
    plan: _run.Plan,
    error: Exception,
    tree: Any,
    fn: Callable[[Any], Any],
    origin: Any,
) -> Exception:
    """``error``, raised while modifying ``tree``, naming the focus ``fn`` raised it on.

    The fast paths do not track which focus ``fn`` is working on, so after an
    error ``fn`` is asked again, focus by focus in order, until it raises the
    same kind of error. An error that does not come back that way (raised by a
    step, or by an ``fn`` that changed its mind) is returned as it is.
    """
    path = _focus_that_raises(plan, tree, fn, type(error))
    if path is None:
        return error
    if callable(getattr(error, "with_path", None)):
        return _error_with_path(error, path)
    note = (
        f"lensify: raised by {callable_name(origin)} at {_tree.keystr(path)}, a focus of {optic!r}"
    )
    _notes.add_note(error, note)
    return error


def _focus_that_raises(
    plan: _run.Plan, tree: Any, fn: Callable[[Any], Any], kind: type[Exception]
) -> Path | None:
    try:
        foci = _run.items(plan, tree)
    except Exception:
        return None
    for path, focus in foci:
        try:
            fn(focus)
        except kind:
            return path
        except Exception:
            return None
    return None


def count_error(optic: object, plan: _run.Plan, tree: Any, count: int) -> FocusCountError:
    """``get`` found ``count`` foci, not one."""
    if count == 0:
        return FocusCountError(
            f"{optic!r}.get needs exactly one focus, found none. Check the steps "
            "against the tree, or use get_all() when none is a valid answer."
        )
    paths = [_tree.keystr(p) for p, _ in _run.items(plan, tree)[:_SHOWN_PATHS]]
    more = ", ..." if count > _SHOWN_PATHS else ""
    return FocusCountError(
        f"{optic!r}.get needs exactly one focus, found {count}: "
        f"{', '.join(paths)}{more}. Use get_all() to read every focus."
    )


def public_error(optic: object, failure: StepError) -> Exception:
    """The public error a step failure becomes."""
    if isinstance(failure, StepLookupError):
        return _missing_error(optic, failure)
    if isinstance(failure, StepPredicateError):
        # The predicate's own error, of its own type, told where it happened.
        _notes.add_note(
            failure.error,
            f"lensify: raised by the predicate of .where({failure.pred_name}) on the focus "
            f"at {_tree.keystr(failure.path)} (while applying {optic!r})",
        )
        return failure.error
    if isinstance(failure, StepValueError):
        return _value_error(optic, failure)
    assert isinstance(failure, StepTracedError)
    return _traced_error(optic, failure)


def _value_error(optic: object, failure: StepValueError) -> Exception:
    """The error of unwrap or rewrap, its key path starting at the tree's root."""
    error: Any = failure.error
    if callable(getattr(error, "with_path", None)):
        # The path rewrap found inside the focus (if any) follows the focus's own.
        below = getattr(error, "path", None)
        below = "" if below in (None, _tree.keystr(())) else below
        pathless = error
        for inner in (error.__cause__, error.__context__):
            if type(inner) is type(error) and getattr(inner, "path", None) is None:
                pathless = inner
        if pathless is not error or not below:
            return pathless.with_path(_tree.keystr(failure.path) + below)
    _notes.add_note(
        error,
        f"lensify: raised while {failure.action} the focus at {_tree.keystr(failure.path)} "
        f"(while applying {optic!r})",
    )
    return error


def _traced_error(optic: object, failure: StepTracedError) -> TracedPredicateError:
    return TracedPredicateError(
        f"the predicate of .where({failure.pred_name}) needs the value of a traced "
        f"array in the focus at {_tree.keystr(failure.path)}: inside jax.jit, jax.grad "
        "or jax.vmap an array has a shape and a dtype but no value. Select on shape, "
        "dtype or type instead, for example .where(lambda x: x.ndim == 2), or apply "
        f"the optic outside the transform. (while applying {optic!r})"
    )


def _error_with_path(error: Any, path: Path) -> Exception:
    """``error`` with its message starting with ``path``, the key path of its value.

    Errors that can name where they happened (a ``lf.ConstraintError``) have a
    ``with_path(keystr)`` method and a ``path`` attribute; optics ask for no more.
    """
    inner = error.__cause__
    if getattr(error, "path", None) is None or type(inner) is not type(error):
        return error.with_path(_tree.keystr(path))
    # An optic applied by fn has named the path below this focus already.
    if not path:
        return error
    below = "" if error.path == _tree.keystr(()) else error.path
    return inner.with_path(_tree.keystr(path) + below)


def _missing_error(optic: object, failure: StepLookupError) -> MissingStepError:
    where = _tree.keystr(failure.path)
    kind = describe_node(failure.node)
    existing = closest_first(failure.target, failure.available)
    message = f"no {failure.missing} in the {kind} at {where}"
    if existing:
        shown = ", ".join(existing[:_SHOWN_KEYS])
        more = ", ..." if len(existing) > _SHOWN_KEYS else ""
        noun = "attributes" if failure.missing.startswith(("attribute", "settable")) else "keys"
        message += f"; it has {noun} {shown}{more}"
    elif failure.node is not None and not failure.hint:
        message += "; it has none"
    message += "."
    if failure.hint:
        message += f" {failure.hint}"
    message += f" (while applying {optic!r})"
    return MissingStepError(message)
