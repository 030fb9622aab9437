"""How a step says it failed, and the small helpers error messages share.

A step raises a :class:`StepError` that knows only the path from the node it was
given; :mod:`lensify.optics._locate` prefixes the rest of the key path and turns it
into the public error of :mod:`lensify.optics._errors`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import jax

from lensify._functions import callable_name

__all__ = [
    "NONE_HINT",
    "StepError",
    "StepLookupError",
    "StepPredicateError",
    "StepTracedError",
    "StepValueError",
    "closest_first",
    "describe_node",
    "predicate_failure",
]

Path = tuple[Any, ...]

NONE_HINT = (
    "JAX treats None as an empty node: it has no children, no attributes and no "
    "items. To replace the None itself, stop the optic at the step that reaches it "
    "and use set()."
)

_TRACER_ERRORS: tuple[type[BaseException], ...] = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
)


class StepError(Exception):
    """A step could not run on a node; the optic adds the key path and explains.

    Internal: a failure never leaves lensify. A step only knows the path from the
    node it was given, so ``path`` starts there; the optic, which knows where that
    node is, prefixes the rest and raises the matching public error.
    """

    path: Path = ()


class StepLookupError(StepError):
    """A lens step found nothing to focus on: a :class:`~lensify.MissingStepError`."""

    def __init__(self, missing: str, node: Any, available: Sequence[str], target: str) -> None:
        super().__init__(missing)
        self.missing = missing
        self.node = node
        self.available = list(available)
        self.target = target
        self.hint = ""


class StepTracedError(StepError):
    """A ``where`` predicate needed a traced value: a :class:`~lensify.TracedPredicateError`."""

    def __init__(self, pred: Callable[[Any], Any], path: Path = ()) -> None:
        self.pred_name = callable_name(pred)
        super().__init__(self.pred_name)
        self.path = path


class StepPredicateError(StepError):
    """A ``where`` predicate raised: the optic re-raises that error, located."""

    def __init__(self, pred: Callable[[Any], Any], error: Exception, path: Path = ()) -> None:
        self.pred_name = callable_name(pred)
        super().__init__(self.pred_name)
        self.error = error
        self.path = path


class StepValueError(StepError):
    """Unwrapping or rewrapping a focus raised: the optic re-raises that error, located.

    ``action`` is ``"unwrapping"`` or ``"rewrapping"``; ``node`` is the stored
    subtree it was done to, so that its key path can be found.
    """

    def __init__(self, action: str, error: Exception, node: Any) -> None:
        super().__init__(action)
        self.action = action
        self.error = error
        self.node = node


def predicate_failure(pred: Callable[[Any], Any], error: Exception, path: Path = ()) -> StepError:
    """The step failure for ``error``, raised by ``pred`` on the focus at ``path``."""
    if isinstance(error, _TRACER_ERRORS):
        return StepTracedError(pred, path)
    return StepPredicateError(pred, error, path)


def closest_first(target: str, available: Sequence[str]) -> list[str]:
    """``available`` sorted by similarity to ``target``, the closest first."""
    if not available:
        return []
    ranked = difflib.get_close_matches(target, available, n=len(available), cutoff=0.0)
    return ranked + [a for a in available if a not in ranked]


def describe_node(node: Any) -> str:
    """A short name for a node's kind, for error messages: ``dict``, ``MLP``, ...

    Every JAX array is a ``jax.Array``, so a message reads the same under ``jax.jit``
    (where the array is a tracer) as outside it.
    """
    if node is None:
        return "None"
    if isinstance(node, jax.Array):
        return "jax.Array"
    return type(node).__name__
