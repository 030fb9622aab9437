"""Wrappers: placeholder records in a pytree, and the ``unwrap`` fold that evaluates them."""

from __future__ import annotations

import abc
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import jax
import jax.numpy as jnp

from lensify import _records, _tree, _walker
from lensify._functions import callable_name
from lensify._inverses import (
    check_in_range,
    inverse_of,
    log_det_of,
    not_invertible_message,
    register_inverse,
)
from lensify._walker import NoLogDetError, NotInvertibleError
from lensify.numerics import checked_row_norms, inv_softplus, row_norms

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

__all__ = [
    "AbstractUnwrappable",
    "NoLogDetError",
    "NonTrainable",
    "NotInvertibleError",
    "Parameterize",
    "WeightNormalization",
    "contains_unwrappables",
    "is_non_trainable",
    "is_parameterize",
    "is_unwrappable",
    "non_trainable",
    "register_inverse",
    "register_with_value",
    "rewrap",
    "unwrap",
    "unwrap_algebra",
]

T = TypeVar("T")


class AbstractUnwrappable(_records.Record, Generic[T]):
    """A placeholder in a pytree whose value is computed by :meth:`unwrap`.

    Subclasses are immutable attrs records and pytree nodes (for JAX and, in the
    ``"lensify"`` namespace, optree). Write them undecorated, as in paramax and
    equinox, or decorated with ``@attrs.frozen``: both give the same record.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> class Square(lf.AbstractUnwrappable):
        ...     x: jax.Array
        ...     def unwrap(self):
        ...         return self.x**2
        >>> lf.unwrap({"a": Square(jnp.array([3.0]))})
        {'a': Array([9.], dtype=float32)}
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _walker.WRAPPER_TYPES.add(cls)

    @abc.abstractmethod
    def unwrap(self) -> T:
        """The value this wrapper stands for, given that its fields hold no wrappers."""

    def with_value(self, value: T) -> Self:
        """The one-level inverse of :meth:`unwrap`: a wrapper that unwraps to ``value``.

        Returns a wrapper of the same type (and, unless it says otherwise, the same
        static configuration) each of whose children is either the very object
        ``self`` holds there, kept as it is, or the plain value that :meth:`unwrap`
        would turn, with the others, into ``value``, as if that child were already
        unwrapped. This is the only way :func:`rewrap` sets a wrapper by value: it
        keeps the children left as they were and pushes each plain value down into
        the matching child's own stack (a frozen raw parameter stays frozen).
        ``self``'s own children are still wrapped, as they are in the tree: call
        :func:`unwrap` on one to read its value. The default raises
        :class:`NotInvertibleError`: override it to make a wrapper settable by
        value (or, for a class you do not own, see :func:`register_with_value`).

        Example:
            >>> import jax, jax.numpy as jnp
            >>> import lensify as lf
            >>> class Square(lf.AbstractUnwrappable):
            ...     x: jax.Array
            ...     def unwrap(self):
            ...         return self.x**2
            ...     def with_value(self, value):
            ...         return Square(jnp.sqrt(value))
            >>> lf.rewrap({"a": Square(jnp.ones(2))}, {"a": jnp.array([9.0, 4.0])})["a"].x
            Array([3., 2.], dtype=float32)
        """
        name = type(self).__name__
        raise NotInvertibleError(
            f"{name} cannot be set by its value: it defines no with_value. Give {name} "
            f"a method with_value(self, value) returning a {name} whose fields hold the "
            "values that unwrap to value, or set its raw fields with an optic "
            f"(lf.at...<field>.set(tree, raw))."
        )

    def log_det(self) -> Any:
        """``log |det J|`` of this wrapper's own map, from its variable to its value.

        Called like :meth:`unwrap`, with the children already unwrapped, by
        :func:`~lensify.unwrap_with_log_det`, which sums these over the tree (the
        chain rule). The default raises :class:`NoLogDetError`.
        """
        name = type(self).__name__
        raise NoLogDetError(
            f"{name} defines no change of variables (log_det), so the density of its "
            f"raw parameters is unknown. Freeze it (lf.non_trainable(tree, where=...)), "
            f"or give {name} a method log_det(self) returning log |det J| of its map."
        )


_walker.WRAPPER_TYPES.add(AbstractUnwrappable)


def is_unwrappable(x: Any) -> bool:
    """True if ``x`` is a wrapper: an :class:`AbstractUnwrappable`, or (when paramax is
    loaded) a ``paramax.AbstractUnwrappable``, such as flowjax's and GPJax's."""
    return _walker.is_wrapper(x)


def _paramax_class(name: str) -> Any:
    # paramax's wrapper class of that name if paramax is loaded (never importing it).
    return getattr(sys.modules.get("paramax.wrappers"), name, None)


def is_non_trainable(x: Any) -> bool:
    """True for a :class:`NonTrainable`, or a ``paramax.NonTrainable`` if paramax is loaded."""
    if isinstance(x, NonTrainable):
        return True
    cls = _paramax_class("NonTrainable")
    return cls is not None and isinstance(x, cls)


def is_parameterize(x: Any) -> bool:
    """True for a :class:`Parameterize`, or a ``paramax.Parameterize`` if paramax is loaded."""
    if isinstance(x, Parameterize):
        return True
    cls = _paramax_class("Parameterize")
    return cls is not None and isinstance(x, cls)


def register_with_value(cls: type, fn: Callable[[Any, Any], Any]) -> None:
    """Give a wrapper class you do not own a ``with_value``: ``fn(wrapper, value)``.

    ``fn`` is used where ``wrapper.with_value(value)`` would be, by :func:`rewrap`
    and ``optic.unwrapped()``, for ``cls`` and its subclasses (the nearest class of
    the MRO with a registration or a ``with_value`` method decides). It returns a
    wrapper of the same class whose children are kept as the wrapper holds them
    (the very same objects) or hold the values that unwrap to ``value``, as if they
    were already unwrapped; ``fn`` itself sees the wrapper's children still
    wrapped, as they are in the tree. Its result goes through the
    checks the built-ins' do: each raw array keeps its shape and dtype (a value of
    another shape is a ``StructureMismatchError``), and a NaN or infinite raw value
    is refused as a value outside the class's range, naming the key path. The class
    may be a lensify wrapper or a ``paramax.AbstractUnwrappable``; lensify already
    knows paramax's built-ins and GPJax's parameters (``PositiveReal``,
    ``NonNegativeReal``, ``Real``, ``SigmoidBounded``, ``LowerTriangular``).

    Args:
        cls: The wrapper class.
        fn: ``fn(wrapper, value) -> wrapper`` of the same class.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> class Doubled(lf.AbstractUnwrappable):
        ...     x: jax.Array
        ...     def unwrap(self):
        ...         return 2 * self.x
        >>> lf.register_with_value(Doubled, lambda w, value: Doubled(value / 2))
        >>> lf.rewrap({"d": Doubled(jnp.ones(2))}, {"d": jnp.array([4.0, 6.0])})["d"].x
        Array([2., 3.], dtype=float32)
    """
    _walker.register_with_value(cls, fn)


def unwrap_algebra(wrapper: AbstractUnwrappable[Any]) -> Any:
    """The algebra of :func:`unwrap`: ``fold(t, unwrap_algebra) == unwrap(t)``.

    Calls the wrapper's ``unwrap()`` and walks whatever wrappers that returns, which
    is what makes ``unwrap`` total.

    Example:
        >>> import lensify as lf
        >>> from lensify.algebra import unwrap_algebra
        >>> lf.fold([lf.Parameterize(abs, -2.0)], unwrap_algebra)
        [2.0]
    """
    value = wrapper.unwrap()
    # unwrap is total: a wrapper may unwrap to something holding wrappers.
    if type(value) in _tree.PLAIN_TYPES:
        return value
    return _walker.fold(value, unwrap_algebra)


def unwrap(tree: Any) -> Any:
    """Replace every wrapper in ``tree`` by its value, innermost first.

    One bottom-up pass: each wrapper's fields are unwrapped, then its
    :meth:`~AbstractUnwrappable.unwrap` is called once. If that returns something
    holding wrappers, those are unwrapped too, so the result never holds a wrapper.
    A tree without wrappers comes back as the very same object. The input is never
    mutated. Works under ``jax.jit``, ``jax.grad`` and ``jax.vmap``.

    Args:
        tree: Any pytree.

    Returns:
        The tree with every wrapper replaced by its value.

    Raises:
        Exception: whatever a wrapper's ``unwrap`` raises, with the note ``at <key
            path>: raised while unwrapping <class>``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> params = lf.Parameterize(jnp.exp, jnp.zeros(3))
        >>> lf.unwrap(("abc", 1, params))
        ('abc', 1, Array([1., 1., 1.], dtype=float32))
    """
    return _walker.fold(tree, unwrap_algebra)


def rewrap(tree: Any, values: Any) -> Any:
    """The inverse of :func:`unwrap`, guided by ``tree``: set a tree by its values.

    ``values`` has the structure of ``unwrap(tree)``. The result has exactly the tree
    structure of ``tree`` (the same wrappers, nested the same way, with the same
    static fields) and unwraps to ``values``. Each wrapper is asked its
    :meth:`~AbstractUnwrappable.with_value` (or the one given by
    :func:`register_with_value`), and nothing else: the children it keeps stay as
    they are, and the values it gives are pushed down into the children's own
    stacks: a ``NonTrainable`` inside a ``positive`` stays inside, and a
    ``Parameterize`` keeps its function. A leaf outside any wrapper is simply
    replaced. Works under ``jax.jit``, ``jax.grad`` and ``jax.vmap``.

    Args:
        tree: Any pytree, with or without wrappers.
        values: A pytree shaped like ``unwrap(tree)``.

    Returns:
        ``tree`` with its raw leaves set so that it unwraps to ``values``.

    Raises:
        NotInvertibleError: for a wrapper that cannot be set by value.
        ValueError: for ``values`` not shaped like ``unwrap(tree)``, or a value
            outside a wrapper's range.

        Each of these reads ``at <key path>: <what>. <fix>``, eagerly and under
        ``jax.jit``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> model = {"scale": lf.Parameterize(jax.nn.softplus, jnp.zeros(2)), "n": 3}
        >>> new = lf.rewrap(model, {"scale": jnp.array([0.5, 2.0]), "n": 4})
        >>> lf.unwrap(new)["scale"].round(4), new["n"]
        (Array([0.5, 2. ], dtype=float32), 4)
        >>> type(new["scale"]).__name__
        'Parameterize'
    """
    return _walker.rewrap(tree, values)


def contains_unwrappables(tree: Any) -> bool:
    """True if any node of ``tree`` is a wrapper.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> lf.contains_unwrappables([1.0, lf.NonTrainable(jnp.ones(2))])
        True
        >>> lf.contains_unwrappables({"a": jnp.ones(2)})
        False
    """
    leaves, _ = _tree.flatten(tree, is_leaf=is_unwrappable)
    return any(map(is_unwrappable, leaves))


class Parameterize(AbstractUnwrappable[T]):
    """Unwraps to ``fn(*args, **kwargs)``.

    ``fn``, ``args`` and ``kwargs`` may all hold parameters, and ``fn`` may itself be
    a wrapper (``NonTrainable(module)``): it is unwrapped first. A plain function (one
    with no array leaves: ``jnp.exp``, a ``lambda``, a jitted function) is kept in
    the tree structure rather than as a leaf, so ``jax.jit``, ``jax.grad`` and
    ``jax.vmap`` work on trees holding it with no filtering. A callable that is a
    pytree (an equinox Module, a ``jax.tree_util.Partial``) stays a child and its
    parameters train.

    Args:
        fn: The callable applied on unwrapping.
        *args: Positional arguments for ``fn``.
        **kwargs: Keyword arguments for ``fn``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> positive = lf.Parameterize(jnp.exp, jnp.zeros(3))
        >>> jax.jit(lf.unwrap)(positive)
        Array([1., 1., 1.], dtype=float32)
    """

    fn: Callable[..., T]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    # Python ints, bools and strings in args (after the first) and kwargs configure
    # fn: they travel in the tree structure, as fn does (see _records.configure).
    _lf_config_in_structure = True

    def __init__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> None:
        # A wrapper as fn (paramax allows it) is a child: unwrap evaluates it first.
        if not callable(fn) and not is_unwrappable(fn):
            raise TypeError(
                "Parameterize needs as its first argument a callable fn, or a wrapper "
                f"that unwraps to one, got {type(fn).__name__} {fn!r}. Did you mean "
                f"Parameterize(fn, {fn!r})?"
            )
        self.fn = fn
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        _records.configure(self)

    def unwrap(self) -> T:
        return self.fn(*self.args, **self.kwargs)

    def with_value(self, value: T) -> Parameterize[T]:
        """Invert ``fn`` in its raw argument (see :func:`register_inverse`); ``fn``
        and the other arguments are kept as they are.

        Raises:
            NotInvertibleError: if ``fn`` has no registered inverse, or there is
                no positional argument to invert.
        """
        k, raw = parameterize_raw(self, value)
        # The split's join, as JAX rebuilds it: fn and the configuration stay in the
        # structure (a cheaper evolve, which would decide them again).
        (fn, args, *rest), structure = _records.split(self)
        new = (fn, (*args[:k], raw, *args[k + 1 :]), *rest)
        return cast("Parameterize[T]", _records.join(type(self), structure, new))

    def log_det(self) -> Any:
        # Called as fn is; the variable is the raw argument, the others configure fn.
        found = log_det_of(self.fn)
        if found is None or not self.args:
            name = callable_name(self.fn)
            raise NoLogDetError(
                f"Parameterize({name}, ...) has no registered log-det. Register one with "
                f"lf.register_inverse({name}, inverse, log_det=...), or freeze it "
                "(lf.non_trainable(tree, where=...))."
            )
        term = found(*self.args, **self.kwargs)
        return term if type(term) in (int, float) else jnp.sum(term)

    def __repr__(self) -> str:
        if type(self.args) is not tuple or type(self.kwargs) is not dict:
            # Rebuilt from arbitrary children (an optic's set, say): a repr must not
            # fail, because error messages and debuggers call it.
            return (
                f"Parameterize(fn={callable_name(self.fn)}, args={self.args!r}, "
                f"kwargs={self.kwargs!r})"
            )
        parts = [callable_name(self.fn), *map(repr, self.args)]
        parts += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"Parameterize({', '.join(parts)})"


def parameterize_raw(wrapper: Any, value: Any) -> tuple[int, Any]:
    """``(k, raw)`` for a ``Parameterize`` (lensify's or paramax's) to unwrap to
    ``value``: its positional argument ``k`` takes ``raw``, the inverse registered
    for ``fn``, checked; ``fn`` and the other arguments are kept."""
    fn, args, kwargs = wrapper.fn, wrapper.args, wrapper.kwargs
    found = inverse_of(fn)
    if found is None:
        raise NotInvertibleError(not_invertible_message(wrapper))
    inverse, round_trip, argnum = found
    k = 0 if argnum is None else argnum
    if k >= len(args):
        raise NotInvertibleError(not_invertible_message(wrapper, argnum=k))
    if argnum is None:
        rest, kw = unwrap((args[1:], kwargs)) if round_trip else ((), {})
        raw = inverse(value)

        def forward(x: Any) -> Any:
            return fn(x, *rest, **kw)
    else:
        plain_args, kw = unwrap((args, kwargs))
        raw = inverse(value, *plain_args, **kw)

        def forward(x: Any) -> Any:
            return fn(*plain_args[:k], x, *plain_args[k + 1 :], **kw)

    return k, check_in_range(raw, value, forward, callable_name(fn), round_trip=round_trip)


class NonTrainable(AbstractUnwrappable[T]):
    """Stops gradients through every array leaf of ``tree``.

    Nested wrappers are unwrapped first, then ``jax.lax.stop_gradient`` is applied
    to every jax or numpy array leaf; Python scalars, strings and ``None`` come
    back as they went in. First and higher derivatives through it are zero.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> loss = lambda w: lf.unwrap(lf.NonTrainable(w)).sum() + w.sum()
        >>> jax.grad(loss)(jnp.ones(2))
        Array([1., 1.], dtype=float32)
    """

    tree: T

    def unwrap(self) -> T:
        return _tree.tree_map(_stop_gradient, self.tree)

    def with_value(self, value: T) -> NonTrainable[T]:
        """``NonTrainable`` of ``value``: freezing does not change a value."""
        return self if value is self.tree else _records.evolve(self, tree=value)


def _stop_gradient(x: Any) -> Any:
    if isinstance(x, jax.Array):
        return jax.lax.stop_gradient(x)
    if _tree.is_array(x):
        # A numpy array becomes a jax array, as it would inside any traced function.
        return jax.lax.stop_gradient(jnp.asarray(x))
    return x


def non_trainable(tree: T, *, where: Any = None) -> T:
    """Wrap every inexact (float or complex) array leaf in :class:`NonTrainable`.

    Integer and boolean arrays and Python scalars are left alone, leaves that are
    already inside a ``NonTrainable`` are never wrapped twice, and leaves inside
    other wrappers' fields are reached too.

    Args:
        tree: Any pytree.
        where: An optic (for example ``lf.at.encoder``) choosing the subtrees to
            freeze; the whole tree if omitted.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> frozen = lf.non_trainable({"w": jnp.ones(2), "n": jnp.arange(2)})
        >>> type(frozen["w"]).__name__, type(frozen["n"]).__name__
        ('NonTrainable', 'ArrayImpl')
    """
    freeze = _freezer(tree)
    if where is None:
        return _tree.tree_map(freeze, tree, is_leaf=_is_non_trainable)
    # Anything with an optic's mask will do: wrappers know nothing of optics.
    if not callable(getattr(where, "mask", None)):
        raise TypeError(
            f"non_trainable(tree, where=...) takes an optic, such as lf.at.encoder or "
            f"lf.at.leaves().where(pred), got {where!r}. The "
            "equinox-style selector lambda m: m.encoder is written lf.at.encoder."
        )
    # Freezing by mask, not by modifying each focus, so that a focus inside a
    # NonTrainable (a leaf reached by .leaves(), say) is not wrapped twice.
    return _tree.tree_map(freeze, tree, where.mask(tree), is_leaf=_is_non_trainable)


def _is_non_trainable(x: Any) -> bool:
    return type(x) is NonTrainable or is_non_trainable(x)


def _freezer(tree: Any) -> Callable[..., Any]:
    # In a tree holding paramax's wrappers (a flowjax flow, a GPJax model), freeze
    # with paramax.NonTrainable: those libraries' own training loops unwrap with
    # paramax.unwrap and partition on paramax.NonTrainable, which see no lensify
    # wrapper. lensify treats the two alike.
    frozen: Callable[[Any], Any] = NonTrainable
    paramax_frozen = _paramax_class("NonTrainable")
    if paramax_frozen is not None:
        leaves, _ = _tree.flatten(tree, is_leaf=_is_foreign)
        if any(map(_is_foreign, leaves)):
            frozen = paramax_frozen

    def freeze(x: Any, selected: Any = True) -> Any:
        # Under a NonTrainable, ``selected`` is the mask's subtree there, never True.
        return frozen(x) if selected is True and _tree.is_inexact_array(x) else x

    return freeze


def _is_foreign(x: Any) -> bool:
    return _walker.is_wrapper(x) and type(x) in _walker.FOREIGN_TYPES


class WeightNormalization(AbstractUnwrappable[jax.Array]):
    """Weight normalisation (Salimans & Kingma, 2016): ``scale * w / ‖w‖`` by row.

    The scale starts at the row norms of the weight, so wrapping a weight never
    changes the model: ``unwrap(WeightNormalization(w)) == w``. (paramax starts the
    scale at ``1/‖w‖``, which changes the model.) The scale is kept positive as
    ``Parameterize(softplus, raw)``, of shape ``weight.shape[:-1] + (1,)``.

    Args:
        weight: The weight, possibly itself wrapped; rows along the last axis.

    Raises:
        ValueError: for a 0-d weight or a row of zeros (a zero row has no direction).

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> w = jnp.array([[3.0, 4.0], [1.0, 0.0]])
        >>> bool(jnp.allclose(lf.unwrap(lf.WeightNormalization(w)), w))
        True
    """

    weight: jax.Array | AbstractUnwrappable[jax.Array]
    scale: jax.Array | AbstractUnwrappable[jax.Array]

    def __init__(self, weight: jax.Array | AbstractUnwrappable[jax.Array]) -> None:
        norms = checked_row_norms(unwrap(weight))
        self.weight = weight
        self.scale = Parameterize(jax.nn.softplus, inv_softplus(norms))

    def unwrap(self) -> jax.Array:
        weight, scale = jnp.asarray(self.weight), jnp.asarray(self.scale)
        return scale * weight / row_norms(weight)

    def with_value(self, value: jax.Array) -> WeightNormalization:
        """Weight ``value`` and scale its row norms (a zero row is a ``ValueError``)."""
        value = jnp.asarray(value)
        return _records.evolve(self, weight=value, scale=checked_row_norms(value))
