"""Errors with key paths: a failed step, or an error of the user's function, located.

The executor's fast paths do not track key paths. When something fails, the
functions here find where, and :func:`lensify._located.located` says it: the
missing key and the node that lacks it, the focus a predicate raised on (found by
walking the steps again), the focus the user's function raised on (the executor
counted its calls, so the function is never called again to find it).
"""

from __future__ import annotations

from typing import Any

from lensify import _tree
from lensify._functions import callable_name
from lensify._located import located
from lensify.optics import _run
from lensify.optics._errors import FocusCountError, MissingStepError, TracedPredicateError
from lensify.optics._failures import (
    StepError,
    StepLookupError,
    StepPredicateError,
    StepTracedError,
    StepValueError,
    closest_first,
    describe_node,
)

__all__ = ["count_error", "explain", "locate", "public_error"]

Path = tuple[Any, ...]
_SHOWN_PATHS = 5  # how many focus paths an error message lists
_SHOWN_KEYS = 10  # how many existing keys an error message lists


def explain(optic: object, plan: _run.Plan, tree: Any, failure: StepError) -> BaseException:
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
    calls: _run.Calls | None,
    origin: Any,
) -> BaseException:
    """``error``, raised while modifying ``tree``, naming the focus ``fn`` raised it on.

    ``calls`` is ``fn`` as a traversal called it: it knows the focus ``fn`` raised
    on; a lens (``calls`` None) has one. An error a traversal's ``fn`` did not raise
    is returned as it is.
    """
    if calls is not None and not calls.failed:
        return error
    try:
        foci = _run.items(plan, tree)
    except Exception:
        return error
    path = _path_of_call(foci, calls)
    if path is None:
        return error
    action = f"applying {callable_name(origin)} to a focus of {optic!r}"
    return located(error, _tree.keystr(path), action)


def _path_of_call(foci: list[tuple[Path, Any]], calls: _run.Calls | None) -> Path | None:
    # The focus fn raised on is the very object items() finds (the first, if the
    # tree holds it twice: fn, given it twice, raises the first time). An unwrapped
    # value is computed afresh, so it is found only if it is the one focus.
    if calls is None or len(foci) == 1:
        return foci[0][0] if len(foci) == 1 else None
    for path, other in foci:
        if other is calls.focus:
            return path
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


def public_error(optic: object, failure: StepError) -> BaseException:
    """The public error a step failure becomes."""
    if isinstance(failure, StepLookupError):
        return _missing_error(optic, failure)
    if isinstance(failure, StepPredicateError):
        # The predicate's own error, of its own type, told where it happened.
        action = f"applying the predicate of .where({failure.pred_name}) in {optic!r}"
        return located(failure.error, _tree.keystr(failure.path), action)
    if isinstance(failure, StepValueError):
        return _value_error(optic, failure)
    assert isinstance(failure, StepTracedError)
    return _traced_error(optic, failure)


def _value_error(optic: object, failure: StepValueError) -> BaseException:
    """The error of unwrap or rewrap, its key path starting at the tree's root."""
    action = f"{failure.action} a focus of {optic!r}"
    return located(failure.error, _tree.keystr(failure.path), action)


def _traced_error(optic: object, failure: StepTracedError) -> BaseException:
    error = TracedPredicateError(
        f"the predicate of .where({failure.pred_name}) needs the value of a traced "
        "array in this focus: inside jax.jit, jax.grad or jax.vmap an array has a "
        "shape and a dtype but no value. Select on shape, dtype or type instead, for "
        "example .where(lambda x: x.ndim == 2), or apply the optic outside the "
        f"transform. (while applying {optic!r})"
    )
    return located(error, _tree.keystr(failure.path), "")


def _missing_error(optic: object, failure: StepLookupError) -> BaseException:
    kind = describe_node(failure.node)
    existing = closest_first(failure.target, failure.available)
    message = f"no {failure.missing} in the {kind}"
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
    return located(MissingStepError(message), _tree.keystr(failure.path), "")
