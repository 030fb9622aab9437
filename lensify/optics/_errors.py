"""The errors an optic raises, each saying what went wrong and what to do next."""

from __future__ import annotations

from lensify._located import LocatedError

__all__ = [
    "FocusCountError",
    "MissingStepError",
    "OpticError",
    "OverlapError",
    "TracedPredicateError",
]


class OpticError(LocatedError, ValueError):
    """Base class of every error raised while applying an optic to a tree.

    Example:
        >>> import lensify as lf
        >>> try:
        ...     lf.at["b"].get({"a": 1})
        ... except lf.OpticError as error:
        ...     print(type(error).__name__)
        MissingStepError
    """


class MissingStepError(OpticError, LookupError):
    """A key, attribute or index an optic asks for is not in the tree.

    The message names the missing step, the key path walked to reach the node that
    lacks it, and the keys that node does have, the closest to the missing one first.
    Also a :class:`LookupError`, so ``except LookupError`` catches it.

    Example:
        >>> import lensify as lf
        >>> lf.at["layers"][0]["wieght"].get({"layers": [{"weight": 1.0, "bias": 0.0}]})
        Traceback (most recent call last):
        ...
        lensify.MissingStepError: at ['layers'][0]: no key 'wieght' in
        the dict; it has keys 'weight', 'bias'...
    """


class FocusCountError(OpticError):
    """``get`` found no focus or several, where it needs exactly one.

    Example:
        >>> import lensify as lf
        >>> lf.at.each().get({"a": 1, "b": 2})
        Traceback (most recent call last):
        ...
        lensify.FocusCountError: lf.at.each().get needs exactly one
        focus, found 2: ['a'], ['b']. Use get_all() to read every focus.
    """


class OverlapError(OpticError):
    """The optics joined by ``|`` focus on the same node, or one inside another.

    Example:
        >>> import lensify as lf
        >>> (lf.at["a"] | lf.at.leaves()).get_all({"a": 1, "b": 2})
        Traceback (most recent call last):
        ...
        lensify.OverlapError: at ['a']: the foci of (lf.at['a'] |
        lf.at.leaves()) overlap...
    """


class TracedPredicateError(OpticError, TypeError):
    """A ``where`` predicate asked for the value of an array that JAX is tracing.

    Inside ``jax.jit``, ``jax.grad`` or ``jax.vmap`` an array has a shape and a
    dtype but no value, so a selection has to be made on those (or on types and
    key paths), or outside the transform. Also a :class:`TypeError`, like JAX's own
    concretization errors.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> positive = lf.at.leaves().where(lambda x: x.sum() > 0)
        >>> jax.jit(lambda t: positive.set(t, 0.0))([jnp.ones(2)])
        Traceback (most recent call last):
        ...
        lensify.TracedPredicateError: at [0]: the predicate of
        .where(<lambda>) needs the value of a traced array...
    """
