"""The optic value: an immutable record of steps, and the operations that apply it."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, NoReturn

from lensify import _tree, wrappers
from lensify.optics import _locate, _run
from lensify.optics._failures import StepError
from lensify.optics._flax import is_flax_variable, variable_hint
from lensify.optics._parse import parse as _parse
from lensify.optics._steps import Attr, Item, Unwrapped, chain_code, step_for_key
from lensify.optics._traversals import Each, InstancesOf, Leaves, Slice, Union, Where

__all__ = ["Optic", "at", "combine"]

Path = tuple[Any, ...]


class Optic:
    """A reusable selector of subtrees (foci) in any pytree.

    An optic is built without a tree, from :data:`at` by chaining steps, and is
    then applied to any number of trees. It is an immutable value: two optics
    built the same way are equal and hash alike, and the repr reads like the code
    that built it.

    Steps:
        - ``.name`` or ``.attr("name")``: an attribute, static fields included.
        - ``["key"]``, ``[0]``, ``[-1]`` or ``.item(key)``: a dict key, a sequence
          index, or a child of another registered node; ``[1:3]`` a slice of a list.
        - ``.each()``: every immediate child; ``.leaves()``: every leaf below.
        - ``.where(pred)``: keep the foci for which ``pred`` is true.
        - ``.instances_of(*types)``: the outermost subtrees of those types.
        - ``a | b``: the foci of both (they may not overlap).
        - ``.unwrapped()``: the unwrapped value, read with ``unwrap`` and written
          back through the focus's own wrappers with ``rewrap``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> model = {"layers": [{"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}] * 2}
        >>> weights = lf.at["layers"].each()["w"]
        >>> weights
        lf.at['layers'].each()['w']
        >>> new = weights.modify(model, lambda w: 2 * w)
        >>> [float(w.sum()) for w in weights.get_all(new)]
        [8.0, 8.0]
        >>> weights == lf.at["layers"].each()["w"]
        True
    """

    __slots__ = ("_chain", "_plan")

    _chain: tuple[Any, ...]
    _plan: _run.Plan | None

    def __init__(self, steps: Iterable[Any] = ()) -> None:
        object.__setattr__(self, "_chain", tuple(steps))
        object.__setattr__(self, "_plan", None)

    # -- building ---------------------------------------------------------------

    def _then(self, *steps: Any) -> Optic:
        return Optic((*self._chain, *steps))

    def __getattr__(self, name: str) -> Optic:
        if name.startswith("_"):
            raise AttributeError(
                f"Optic has no attribute {name!r}; to focus on an attribute whose name "
                f"starts with an underscore use .attr({name!r})."
            )
        return self._then(Attr(name))

    def __getitem__(self, key: Hashable | slice) -> Optic:
        if isinstance(key, slice):
            return self._then(Slice(key.start, key.stop, key.step))
        return self.item(key)

    def __iter__(self) -> NoReturn:
        # Without this, __getitem__ would make every optic an endless iterable.
        raise TypeError("an optic is not iterable: apply it to a tree, e.g. optic.get_all(tree).")

    def __array__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _not_an_array(self)

    def __jax_array__(self) -> NoReturn:
        raise _not_an_array(self)

    def attr(self, name: str) -> Optic:
        """Focus on the attribute ``name`` of each focus, static fields included.

        The same as ``optic.name``, but works for any name, including those of the
        optic's own methods (``get``, ``set``, ``each``, ...) and names that start
        with an underscore.

        Example:
            >>> import collections
            >>> import lensify as lf
            >>> Box = collections.namedtuple("Box", ["get", "put"])
            >>> lf.at.attr("get").get(Box(1, 2))
            1
            >>> lf.at.attr("get")
            lf.at.attr('get')
        """
        if not isinstance(name, str):
            raise TypeError(f"an attribute name is a str, got {type(name).__name__} {name!r}.")
        return self._then(Attr(name))

    def item(self, key: Hashable) -> Optic:
        """Focus on the item ``key`` of each focus: the same as ``optic[key]``.

        Dict keys, list and tuple indices (negative ones count from the end) and the
        keys of other registered nodes (an ``OrderedDict``, a custom node's flattened
        index) are all items.

        Example:
            >>> import lensify as lf
            >>> lf.at.item("b").set({"a": 1, "b": 2}, 0)
            {'a': 1, 'b': 0}
            >>> lf.at.item(-1).get([1, 2, 3])
            3
        """
        try:
            hash(key)
        except TypeError:
            raise TypeError(
                f"an item key must be hashable, got {type(key).__name__} {key!r}."
            ) from None
        return self._then(Item(key))

    def each(self) -> Optic:
        """Focus on every immediate child of each focus, in JAX's order.

        A leaf has no children, so it contributes no focus; ``None`` neither.

        Example:
            >>> import lensify as lf
            >>> lf.at.each().modify({"a": 1, "b": 2}, lambda x: x * 10)
            {'a': 10, 'b': 20}
            >>> lf.at.each().get_all((1, (2, 3)))
            [1, (2, 3)]
        """
        return self._then(Each())

    def leaves(self) -> Optic:
        """Focus on every leaf below each focus, in JAX's flatten order.

        Example:
            >>> import lensify as lf
            >>> lf.at.leaves().get_all({"a": 1, "b": (2, None, 3)})
            [1, 2, 3]
        """
        return self._then(Leaves())

    def where(self, pred: Callable[[Any], Any]) -> Optic:
        """Keep the foci for which ``pred(focus)`` is true.

        Under ``jax.jit``, ``jax.grad`` or ``jax.vmap`` a predicate may look at
        shapes, dtypes and types but not at array values; one that does raises
        :class:`~lensify.TracedPredicateError`.

        Example:
            >>> import jax.numpy as jnp
            >>> import lensify as lf
            >>> matrices = lf.at.leaves().where(lambda x: x.ndim == 2)
            >>> tree = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
            >>> [x.shape for x in matrices.get_all(tree)]
            [(2, 3)]
        """
        if not callable(pred):
            raise TypeError(
                f".where needs a callable predicate, got {type(pred).__name__} {pred!r}."
            )
        return self._then(Where(pred))

    def instances_of(self, *types: type) -> Optic:
        """Focus on the outermost subtrees at or below each focus of any of ``types``.

        A match is not searched inside: in a ``NonTrainable`` holding another
        ``NonTrainable``, only the outer one is a focus.

        Example:
            >>> import jax, jax.numpy as jnp
            >>> import lensify as lf
            >>> tree = {"a": jnp.ones(2), "n": 3, "b": lf.NonTrainable(jnp.zeros(2))}
            >>> len(lf.at.instances_of(jax.Array).get_all(tree))
            2
            >>> lf.at.instances_of(lf.NonTrainable).paths(tree)
            [(DictKey(key='b'),)]
        """
        if not types or not all(isinstance(t, type) for t in types):
            raise TypeError(f".instances_of needs one or more types, got {types!r}.")
        return self._then(InstancesOf(tuple(types)))

    def unwrapped(self) -> Optic:
        """Focus on the unwrapped value of each focus, read and written through its wrappers.

        ``get`` and ``get_all`` return ``lf.unwrap(focus)``; ``set`` and ``modify``
        write the new value back with ``lf.rewrap(focus, value)``, so the focus
        keeps its wrappers, nested the same way, with the same static fields. It
        works on a single wrapped leaf as on a whole sub-model, and composes like
        any step. ``paths``, ``mask`` and ``partition`` name the stored subtree
        each value comes from (also for the steps that follow, which lie inside
        the value).

        Example:
            >>> import jax.numpy as jnp
            >>> import lensify as lf
            >>> model = {"scale": lf.NonTrainable(jnp.array(2.0)), "bias": jnp.zeros(2)}
            >>> scale = lf.at["scale"].unwrapped()
            >>> scale
            lf.at['scale'].unwrapped()
            >>> float(scale.get(model))
            2.0
            >>> new = scale.set(model, jnp.array(0.5))
            >>> type(new["scale"]).__name__, float(lf.unwrap(new)["scale"])
            ('NonTrainable', 0.5)
            >>> scale.paths(model)
            [(DictKey(key='scale'),)]
        """
        return self._then(Unwrapped())

    def then(self, other: Optic) -> Optic:
        """This optic followed by ``other``, whose steps apply inside each focus.

        Example:
            >>> import lensify as lf
            >>> layer_weight = lf.at.weight
            >>> lf.at.layers.each().then(layer_weight)
            lf.at.layers.each().weight
        """
        if not isinstance(other, Optic):
            raise TypeError(f".then needs an optic, got {type(other).__name__} {other!r}.")
        return self._then(*other._chain)

    def from_path(self, path: Iterable[Any]) -> Optic:
        """This optic followed by the steps of a JAX key path.

        The key paths are those ``jax.tree_util.tree_flatten_with_path`` and
        :meth:`paths` return: ``DictKey`` and ``SequenceKey`` become item steps,
        ``GetAttrKey`` an attribute step, ``FlattenedIndexKey`` an item step on the
        node's flattened children.

        Example:
            >>> import jax
            >>> import lensify as lf
            >>> tree = {"layers": [{"w": 1.0}, {"w": 2.0}]}
            >>> path, leaf = jax.tree_util.tree_flatten_with_path(tree)[0][1]
            >>> lf.at.from_path(path)
            lf.at['layers'][1]['w']
            >>> lf.at.from_path(path).get(tree)
            2.0
        """
        return self._then(*(step_for_key(key) for key in path))

    def parse(self, text: str) -> Optic:
        """This optic followed by the steps written in ``text``.

        ``text`` is a path as it would be written in Python after the tree:
        attribute names (``layers``, ``.weight``) and items in brackets (``[0]``,
        ``[-1]``, ``['key']``). The output of ``jax.tree_util.keystr`` parses back.

        Example:
            >>> import lensify as lf
            >>> lf.at.parse("layers[0].weight")
            lf.at.layers[0].weight
            >>> lf.at.parse("['encoder'].blocks[-1]")
            lf.at['encoder'].blocks[-1]
        """
        return self._then(*_parse(text))

    def __or__(self, other: Optic) -> Optic:
        """The union: every focus of both optics, in JAX's flatten order.

        Applying a union whose foci overlap (the same node twice, or one focus
        inside another) raises :class:`~lensify.OverlapError`.

        Example:
            >>> import lensify as lf
            >>> ends = lf.at[-1] | lf.at[0]
            >>> ends.set([1, 2, 3], 0)
            [0, 2, 0]
            >>> ends
            (lf.at[-1] | lf.at[0])
        """
        if not isinstance(other, Optic):
            return NotImplemented
        members: list[tuple[Any, ...]] = []
        for steps in (self._chain, other._chain):
            if len(steps) == 1 and isinstance(steps[0], Union):
                members += steps[0].members
            else:
                members.append(steps)
        return Optic((Union(tuple(members)),))

    # -- value semantics ----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Optic):
            return NotImplemented
        return self._chain == other._chain

    def __hash__(self) -> int:
        return hash((Optic, self._chain))

    def __repr__(self) -> str:
        return chain_code(self._chain, _METHOD_NAMES)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("optics are immutable: every step builds a new optic.")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("optics are immutable: every step builds a new optic.")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Optic, (self._chain,))

    def __copy__(self) -> Optic:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Optic:
        return self

    # -- applying -----------------------------------------------------------------

    def _compiled(self) -> _run.Plan:
        plan = self._plan
        if plan is None:
            plan = _run.compile_chain(self._chain, _METHOD_NAMES)
            object.__setattr__(self, "_plan", plan)
        return plan

    def get_all(self, tree: Any) -> list[Any]:
        """Every focus, in JAX's flatten order.

        Example:
            >>> import lensify as lf
            >>> lf.at.each().where(lambda x: x > 1).get_all([1, 2, 3])
            [2, 3]
        """
        plan = self._compiled()
        try:
            return _run.values(plan, tree)
        except StepError as failure:
            raise _locate.explain(self, plan, tree, failure) from None

    def paths(self, tree: Any) -> list[Path]:
        """The JAX key path of every focus, in JAX's flatten order.

        For foci that are leaves these are the paths
        ``jax.tree_util.tree_flatten_with_path`` gives.

        Example:
            >>> import lensify as lf
            >>> lf.at["a"].each().paths({"a": [1, 2]})
            [(DictKey(key='a'), SequenceKey(idx=0)), (DictKey(key='a'), SequenceKey(idx=1))]
        """
        try:
            return [path for path, _ in _run.items(self._compiled(), tree)]
        except StepError as failure:
            raise _locate.public_error(self, failure) from None

    def get(self, tree: Any) -> Any:
        """The single focus; an error if there are none or several.

        Raises:
            FocusCountError: if the optic has no focus or several in ``tree``; the
                message gives the count and the first few paths.
            MissingStepError: if a key, attribute or index is not in the tree.
            TracedPredicateError: if a ``where`` predicate needs a traced value.

        Example:
            >>> import lensify as lf
            >>> lf.at["layers"][-1].get({"layers": [10, 20, 30]})
            30
        """
        plan = self._compiled()
        try:
            if plan.is_lens:
                return _run.get(plan, tree)
            foci = _run.values(plan, tree)
        except StepError as failure:
            raise _locate.explain(self, plan, tree, failure) from None
        if len(foci) != 1:
            raise _locate.count_error(self, plan, tree, len(foci))
        return foci[0]

    def modify(self, tree: Any, fn: Callable[[Any], Any]) -> Any:
        """``tree`` with every focus replaced by ``fn(focus)``.

        Only the nodes on the way to a focus are rebuilt; everything else is shared
        with ``tree``, which is never mutated.

        Raises:
            MissingStepError: if a key, attribute or index is not in the tree.
            TracedPredicateError: if a ``where`` predicate needs a traced value.
            Exception: whatever ``fn`` raises, the same exception with the note
                ``at <path>: raised while applying <fn> to a focus of <optic>``; one
                of lensify's own (a :class:`~lensify.ConstraintError`) becomes one
                whose message starts with that path. ``fn`` is called once per focus,
                never again to find the one it raised on.

        Example:
            >>> import lensify as lf
            >>> tree = {"a": [1, 2], "b": 3}
            >>> lf.at["a"][0].modify(tree, lambda x: x + 100)
            {'a': [101, 2], 'b': 3}
            >>> tree
            {'a': [1, 2], 'b': 3}
            >>> try:
            ...     lf.at["a"].each().modify(tree, lambda x: 1 / (x - 2))
            ... except ZeroDivisionError as error:
            ...     print(error.__notes__)
            ["at ['a'][1]: raised while applying <lambda> to a focus of lf.at['a'].each()"]
        """
        return self._modify(tree, fn, fn)

    def _modify(self, tree: Any, fn: Callable[[Any], Any], origin: Any) -> Any:
        # ``origin`` is what the user passed (fn, or wrap's factory), named in errors.
        plan = self._plan or self._compiled()
        calls = None if plan.is_lens else _run.Calls(fn)
        try:
            return plan.modify(tree, fn if calls is None else calls.counted)
        except StepError as failure:
            raise _locate.explain(self, plan, tree, failure) from None
        except Exception as error:
            located = _locate.locate(self, plan, error, tree, calls, origin)
            if located is error:
                raise
            raise located from error

    def set(self, tree: Any, value: Any) -> Any:
        """``tree`` with every focus replaced by ``value``.

        Example:
            >>> import lensify as lf
            >>> lf.at.leaves().set({"a": 1, "b": (2, 3)}, 0)
            {'a': 0, 'b': (0, 0)}
        """
        plan = self._plan or self._compiled()
        try:
            return plan.set(tree, value)
        except StepError as failure:
            raise _locate.explain(self, plan, tree, failure) from None

    def wrap(self, tree: Any, factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``tree`` with every focus replaced by ``factory(focus, *args, **kwargs)``.

        Raises:
            ConstraintError: if ``factory`` is a constraint and a focus lies outside
                its support; the message starts with the key path of the focus.
            Exception: whatever else ``factory`` raises, with a note naming the key
                path of the focus (see :meth:`modify`).

        Example:
            >>> import jax, jax.numpy as jnp
            >>> import lensify as lf
            >>> params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
            >>> wrapped = lf.at["w"].wrap(params, lf.WeightNormalization)
            >>> type(wrapped["w"]).__name__
            'WeightNormalization'
            >>> bool(jnp.allclose(lf.unwrap(wrapped)["w"], params["w"]))
            True
        """

        def build(focus: Any) -> Any:
            if is_flax_variable(focus):
                raise TypeError(variable_hint(self, focus, factory))
            return factory(focus, *args, **kwargs)

        return self._modify(tree, build, factory)

    def unwrap(self, tree: Any) -> Any:
        """``tree`` with the wrappers in each focus unwrapped, and no others.

        Example:
            >>> import jax.numpy as jnp
            >>> import lensify as lf
            >>> tree = {"a": lf.NonTrainable(1.0), "b": lf.NonTrainable(2.0)}
            >>> lf.at["a"].unwrap(tree)
            {'a': 1.0, 'b': NonTrainable(tree=2.0)}
        """
        return self._modify(tree, wrappers.unwrap, wrappers.unwrap)

    def mask(self, tree: Any) -> Any:
        """A bool pytree with the structure of ``tree``: True on leaves inside a focus.

        It can be passed as the mask of ``optax.masked``, or mapped to labels for
        ``optax.multi_transform``. A focus that is not a pytree child (a static
        field) holds no leaves and marks nothing.

        Example:
            >>> import lensify as lf
            >>> lf.at["enc"].mask({"enc": {"w": 1.0, "b": 2.0}, "dec": 3.0})
            {'dec': False, 'enc': {'b': True, 'w': True}}
        """
        _, flags, treedef = self._leaf_flags(tree)
        return _tree.unflatten(treedef, flags)

    def partition(self, tree: Any) -> tuple[Any, Any]:
        """Split ``tree`` into the leaves inside the foci and the rest.

        Both halves have the structure of ``tree``, with ``None`` in place of the
        leaves that went to the other half; :func:`combine` puts them back
        together. This is ``eqx.partition`` with an optic as the filter.

        Example:
            >>> import lensify as lf
            >>> inside, outside = lf.at["b"].partition({"a": 1.0, "b": 2.0})
            >>> inside, outside
            ({'a': None, 'b': 2.0}, {'a': 1.0, 'b': None})
            >>> lf.combine(inside, outside)
            {'a': 1.0, 'b': 2.0}
        """
        pairs, flags, treedef = self._leaf_flags(tree)
        split = [(x, f) for (_, x), f in zip(pairs, flags, strict=True)]
        inside = _tree.unflatten(treedef, [x if f else None for x, f in split])
        outside = _tree.unflatten(treedef, [None if f else x for x, f in split])
        return inside, outside

    def _leaf_flags(self, tree: Any) -> tuple[list[tuple[Path, Any]], list[bool], Any]:
        try:
            return _run.leaf_flags(self._compiled(), tree)
        except StepError as failure:
            raise _locate.public_error(self, failure) from None


_METHOD_NAMES = frozenset(name for name in dir(Optic) if not name.startswith("_"))


def _not_an_array(optic: Optic) -> TypeError:
    return TypeError(
        f"{optic!r} is an optic, not an array: it selects parts of a tree. Apply it "
        f"to the tree to read them, e.g. {optic!r}.get(tree)."
    )


def combine(*trees: Any) -> Any:
    """Merge trees of the same structure, taking each leaf from the first non-None.

    The inverse of :meth:`Optic.partition` (and compatible with
    ``eqx.partition``/``eqx.combine``): ``combine(*optic.partition(t)) == t``.

    Example:
        >>> import lensify as lf
        >>> lf.combine({"a": None, "b": 2.0}, {"a": 1.0, "b": None})
        {'a': 1.0, 'b': 2.0}
    """
    if not trees:
        raise TypeError("combine needs at least one tree.")

    def first_present(*leaves: Any) -> Any:
        for leaf in leaves:
            if leaf is not None:
                return leaf
        return None

    return _tree.tree_map(first_present, *trees, is_leaf=_is_none)


def _is_none(x: Any) -> bool:
    return x is None


# An optic is configuration, not data: as a node with no children it is part of a
# tree's structure, so plain jax.jit accepts it as an argument or inside a model.
_tree.register_static(Optic)

at = Optic()
"""The identity optic: its single focus is the whole tree. Every optic starts here.

Example:
    >>> import lensify as lf
    >>> lf.at.get({"a": 1})
    {'a': 1}
    >>> lf.at.layers[0].weight
    lf.at.layers[0].weight
"""
