"""The algebra of wrappers: the general fold, and what is built on it.

:func:`fold` walks a pytree bottom-up and hands every wrapper, its children already
folded, to an *algebra*: a function from such a wrapper to a value. :func:`unwrap` is
the fold with the algebra "call ``.unwrap()``"; :func:`describe`,
:func:`count_parameters` and :func:`simplify` are three more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from lensify import _records, _tree, _walker
from lensify._functions import callable_name
from lensify.wrappers import (
    NonTrainable,
    Parameterize,
    is_non_trainable,
    is_parameterize,
    is_unwrappable,
    register_inverse,
    unwrap_algebra,
)

__all__ = [
    "Composed",
    "LeafDescription",
    "ParameterCounts",
    "TreeDescription",
    "WrapperStack",
    "compose",
    "count_parameters",
    "describe",
    "fold",
    "identity",
    "simplify",
    "unwrap_algebra",
]

T = TypeVar("T")


def identity(x: T) -> T:
    """Return ``x`` unchanged: the recognisable identity for ``Parameterize``.

    :func:`simplify` removes ``Parameterize(identity, x)``, leaving ``x``.

    Example:
        >>> import lensify as lf
        >>> lf.identity(3.0)
        3.0
    """
    return x


register_inverse(identity, identity, log_det=lambda x: 0.0)


class Composed(_records.Record):
    """The composition ``outer ∘ inner`` as a hashable pytree record.

    Plain functions travel in the tree structure, so a ``Parameterize`` holding a
    ``Composed`` of plain functions jits and caches like one holding a single
    function; a callable that is a pytree (an equinox Module) stays a child and its
    parameters train. Build one with :func:`compose`.

    Example:
        >>> import jax.numpy as jnp
        >>> from lensify.algebra import Composed
        >>> f = Composed(jnp.exp, jnp.tanh)
        >>> f
        Composed(exp ∘ tanh)
        >>> f == Composed(jnp.exp, jnp.tanh), hash(f) == hash(Composed(jnp.exp, jnp.tanh))
        (True, True)
    """

    outer: Callable[[Any], Any]
    inner: Callable[[Any], Any]

    def __call__(self, x: Any) -> Any:
        return self.outer(self.inner(x))

    @property
    def __name__(self) -> str:
        # Read by reprs of Parameterize and by describe: "exp ∘ tanh".
        return f"{callable_name(self.outer)} ∘ {callable_name(self.inner)}"

    def __repr__(self) -> str:
        return f"Composed({self.__name__})"


def _chain(fn: Any) -> list[Any]:
    if isinstance(fn, Composed):
        return [*_chain(fn.outer), *_chain(fn.inner)]
    return [fn]


def compose(*fns: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``compose(f, g, h)(x) == f(g(h(x)))``, as a hashable :class:`Composed` record.

    Nested compositions are flattened into one right-nested chain and
    :func:`identity` is dropped, so equal chains give equal (and equally hashed)
    records; ``compose()`` is :func:`identity`, and a single function comes back as
    itself.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> f = lf.compose(jnp.exp, lf.identity, jnp.tanh)
        >>> f
        Composed(exp ∘ tanh)
        >>> float(f(0.0))
        1.0
    """
    kept = [f for fn in fns for f in _chain(fn) if f is not identity]
    if not kept:
        return identity
    result = kept[-1]
    for fn in reversed(kept[:-1]):
        result = Composed(fn, result)
    return result


# -------------------------------------------------------------------------------- fold


def fold(tree: Any, algebra: Callable[[Any], Any]) -> Any:
    """The bottom-up fold over wrappers: ``unwrap`` is one instance of it.

    Every wrapper in ``tree``, innermost first, is rebuilt with its children already
    folded and handed to ``algebra``, whose result takes the wrapper's place. Nodes
    that are not wrappers (containers, records, Modules) are rebuilt around their
    folded children; a subtree holding no wrapper comes back as the same object. The
    algebra's result is not folded again: an algebra that may return wrappers folds
    them itself (as :func:`unwrap_algebra` does).

    Args:
        tree: Any pytree.
        algebra: A function from a wrapper, whose children are already folded, to
            the value that replaces it.

    Returns:
        ``tree`` with every wrapper replaced by what ``algebra`` makes of it.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> tree = {"w": lf.NonTrainable(lf.Parameterize(abs, -2.0)), "b": 1.0}
        >>> lf.fold(tree, lambda w: type(w).__name__)
        {'w': 'NonTrainable', 'b': 1.0}
        >>> lf.fold(tree, lf.algebra.unwrap_algebra)
        {'w': 2.0, 'b': 1.0}
    """
    return _walker.fold(tree, algebra)


# ---------------------------------------------------------------------------- describe


@attrs.frozen
class WrapperStack:
    """One wrapper and the wrappers inside its fields, as :func:`describe` shows them.

    Attributes:
        wrapper: The wrapper's class name.
        label: What distinguishes it, if anything (the function of a
            ``Parameterize``), else ``None``.
        inner: ``(where, stack)`` for each wrapper inside a field, ``where`` being the
            field and the path below it (``"scale"``, ``"tree['w']"``).

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> stack = lf.describe(lf.WeightNormalization(jnp.ones((2, 2)))).entries[0].stack
        >>> stack.wrapper, stack.inner[0][0], str(stack.inner[0][1])
        ('WeightNormalization', 'scale', 'Parameterize(softplus)')
    """

    wrapper: str
    label: str | None = None
    inner: tuple[tuple[str, WrapperStack], ...] = ()

    def __str__(self) -> str:
        parts = [] if self.label is None else [self.label]
        parts += [_render_inner(self.wrapper, where, stack) for where, stack in self.inner]
        return f"{self.wrapper}({', '.join(parts)})" if parts else self.wrapper


def _render_inner(wrapper: str, where: str, stack: WrapperStack) -> str:
    # Parameterize's arguments read best as a call: positional, then keyword.
    if wrapper == "Parameterize" and where.startswith("args["):
        return str(stack)
    if wrapper == "Parameterize" and where.startswith("kwargs['"):
        return f"{where[len('kwargs[') + 1 : -2]}={stack}"
    return f"{where}={stack}"


def _is_stack(x: Any) -> bool:
    return isinstance(x, WrapperStack)


def _describe_algebra(wrapper: Any) -> WrapperStack:
    label = None
    if is_parameterize(wrapper) and not _is_stack(wrapper.fn):
        label = callable_name(wrapper.fn)
    pairs, _ = _tree.flatten_with_path(wrapper, is_leaf=_is_stack)
    inner = tuple((_tree.keystr(path).lstrip("."), leaf) for path, leaf in pairs if _is_stack(leaf))
    return WrapperStack(type(wrapper).__name__, label, inner)


def _summary(leaf: Any) -> str:
    if _tree.is_array_like(leaf):
        dims = ",".join(map(str, leaf.shape))
        return f"{_dtype_name(leaf.dtype)}[{dims}]"
    return type(leaf).__name__


def _dtype_name(dtype: Any) -> str:
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return str(dtype)  # key<fry>: numpy has no such dtype
    dtype = np.dtype(dtype)
    short = {"f": "f", "i": "i", "u": "u", "c": "c", "b": "bool"}.get(dtype.kind)
    if short is None or dtype.kind == "b":
        return short or str(dtype)
    return f"{short}{dtype.itemsize * 8}"


@attrs.frozen
class LeafDescription:
    """One line of a :class:`TreeDescription`: a key path and what sits there.

    Attributes:
        path: The JAX key path of the leaf or outermost wrapper.
        stack: The wrapper stack there, or ``None`` for a plain leaf.
        summary: ``str(stack)``, or the leaf's dtype and shape (``f32[2,3]``) or type.
    """

    path: tuple[Any, ...]
    stack: WrapperStack | None
    summary: str

    def __str__(self) -> str:
        return f"{_tree.keystr(self.path)}: {self.summary}"


@attrs.frozen
class TreeDescription:
    """What :func:`describe` returns: one :class:`LeafDescription` per leaf, in order.

    ``str()`` gives one ``path: description`` line per entry.

    Attributes:
        entries: The descriptions, in JAX's flatten order.
    """

    entries: tuple[LeafDescription, ...]

    @property
    def wrapped(self) -> tuple[LeafDescription, ...]:
        """Only the entries that hold a wrapper."""
        return tuple(e for e in self.entries if e.stack is not None)

    def __str__(self) -> str:
        return "\n".join(map(str, self.entries))

    def __repr__(self) -> str:
        return f"TreeDescription(\n{self}\n)" if self.entries else "TreeDescription()"


def describe(tree: Any) -> TreeDescription:
    """Describe each leaf's wrapper stack by key path, for a whole model at once.

    A fold: each wrapper becomes a :class:`WrapperStack` naming it, the function of a
    ``Parameterize``, and the wrappers found inside its fields. Plain leaves are
    described by dtype and shape (``f32[2,3]``) or by type.

    Args:
        tree: Any pytree.

    Returns:
        A :class:`TreeDescription`; print it for one line per leaf.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> model = [
        ...     {"weight": lf.WeightNormalization(jnp.ones((3, 2))), "bias": jnp.zeros(3)},
        ...     {"scale": lf.Parameterize(jax.nn.softplus, lf.NonTrainable(jnp.ones(2)))},
        ... ]
        >>> print(lf.describe(model))
        [0]['bias']: f32[3]
        [0]['weight']: WeightNormalization(scale=Parameterize(softplus))
        [1]['scale']: Parameterize(softplus, NonTrainable)
    """
    folded = fold(tree, _describe_algebra)
    pairs, _ = _tree.flatten_with_path(folded, is_leaf=_is_stack)
    entries = tuple(
        LeafDescription(tuple(path), leaf, str(leaf))
        if _is_stack(leaf)
        else LeafDescription(tuple(path), None, _summary(leaf))
        for path, leaf in pairs
    )
    return TreeDescription(entries)


# ---------------------------------------------------------------------- parameter counts


@attrs.frozen
class ParameterCounts:
    """Numbers of scalar parameters that train and that are frozen.

    Attributes:
        trainable: Elements of float and complex arrays outside any ``NonTrainable``.
        frozen: Elements of float and complex arrays inside a ``NonTrainable``.
    """

    trainable: int = 0
    frozen: int = 0

    @property
    def total(self) -> int:
        """``trainable + frozen``."""
        return self.trainable + self.frozen

    def __add__(self, other: ParameterCounts) -> ParameterCounts:
        return ParameterCounts(self.trainable + other.trainable, self.frozen + other.frozen)


def _is_parameter(x: Any) -> bool:
    return _tree.is_array_like(x) and jnp.issubdtype(x.dtype, jnp.inexact)


def _is_counts(x: Any) -> bool:
    return isinstance(x, ParameterCounts)


def _tally(tree: Any) -> ParameterCounts:
    total = ParameterCounts()
    for leaf in _tree.flatten(tree, is_leaf=_is_counts)[0]:
        if _is_counts(leaf):
            total = total + leaf
        elif _is_parameter(leaf):
            total = total + ParameterCounts(trainable=int(np.size(leaf)))
    return total


def _count_algebra(wrapper: Any) -> ParameterCounts:
    counts = _tally(wrapper)
    if is_non_trainable(wrapper):
        return ParameterCounts(frozen=counts.total)
    return counts


def count_parameters(tree: Any) -> ParameterCounts:
    """Count the scalar parameters of ``tree`` that train and that are frozen.

    A parameter is an element of a float or complex array leaf (jax or numpy); those
    inside a ``NonTrainable`` are frozen. Integer and boolean arrays and Python
    scalars are not counted. The raw parameters are counted, not the unwrapped values:
    ``WeightNormalization(w)`` of a ``(3, 2)`` weight holds 6 + 3 of them.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> model = {
        ...     "w": lf.WeightNormalization(jnp.ones((3, 2))),
        ...     "emb": lf.non_trainable(jnp.ones((4, 2))),
        ...     "steps": jnp.arange(3),
        ... }
        >>> lf.count_parameters(model)
        ParameterCounts(trainable=9, frozen=8)
    """
    return _tally(fold(tree, _count_algebra))


# ---------------------------------------------------------------------------- simplify


def _strip_non_trainable(tree: Any) -> Any:
    return fold(tree, lambda w: w.tree if is_non_trainable(w) else w)


def _has_arrays_or_wrappers(tree: Any) -> bool:
    leaves, _ = _tree.flatten(tree, is_leaf=is_unwrappable)
    return any(is_unwrappable(x) or _tree.is_array_like(x) for x in leaves)


def _single_argument(wrapper: Any) -> bool:
    return is_parameterize(wrapper) and len(wrapper.args) == 1 and not wrapper.kwargs


def _exactly(wrapper: Any, test: Callable[[Any], bool], base: type) -> bool:
    # lensify's class or paramax's, not a subclass (which may unwrap otherwise).
    cls = type(wrapper)
    return test(wrapper) and (cls is base or cls.__module__ == "paramax.wrappers")


def _simplify_algebra(wrapper: Any) -> Any:
    # paramax's NonTrainable and Parameterize simplify as lensify's do, and stay
    # paramax's: flowjax and GPJax train them.
    if _exactly(wrapper, is_non_trainable, NonTrainable):
        inner = wrapper.tree
        stripped = _strip_non_trainable(inner)
        if stripped is not inner:
            # Removing an inner NonTrainable may expose a composition to merge.
            inner = simplify(stripped)
        if not _has_arrays_or_wrappers(inner):
            return inner
        return wrapper if inner is wrapper.tree else type(wrapper)(inner)
    if _exactly(wrapper, is_parameterize, Parameterize) and _single_argument(wrapper):
        (arg,) = wrapper.args
        if wrapper.fn is identity:
            return arg
        if _exactly(arg, is_parameterize, Parameterize) and _single_argument(arg):
            return type(wrapper)(compose(wrapper.fn, arg.fn), *arg.args)
    return wrapper


def simplify(tree: Any) -> Any:
    """Rewrite the wrappers of ``tree`` to a normal form with the same value and gradient.

    ``unwrap(simplify(t))`` equals ``unwrap(t)``, its gradient with respect to the
    raw parameters is the same, and the raw parameters (the array leaves) are the
    same objects in the same order. The rules, applied bottom-up:

    1. A ``NonTrainable`` inside a ``NonTrainable`` is removed: the outer one already
       stops every gradient (``NonTrainable(NonTrainable(x))`` becomes
       ``NonTrainable(x)``).
    2. ``NonTrainable(t)`` with no array and no wrapper in ``t`` (only Python
       scalars, strings, ``None``) becomes ``t``: there is nothing to stop.
    3. ``Parameterize(identity, x)`` becomes ``x`` (for :func:`identity` only).
    4. ``Parameterize(f, Parameterize(g, x))``, each with one positional argument and no
       keyword arguments, becomes ``Parameterize(compose(f, g), x)``; :func:`compose`
       gives a hashable record, so ``jax.jit`` caches on it.

    ``simplify`` is idempotent: a simplified tree is its own normal form.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> x = jnp.ones(2)
        >>> tree = lf.NonTrainable(
        ...     lf.NonTrainable(lf.Parameterize(jnp.exp, lf.Parameterize(jnp.tanh, x)))
        ... )
        >>> lf.simplify(tree)
        NonTrainable(tree=Parameterize(exp ∘ tanh, Array([1., 1.], dtype=float32)))
        >>> lf.simplify(lf.Parameterize(lf.identity, x)) is x
        True
    """
    return fold(tree, _simplify_algebra)
