"""The optic value: an immutable record of steps, and the operations that apply it."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Hashable, Iterable
from typing import Any, NoReturn

from lensify import _notes, _tree, wrappers
from lensify.optics import _steps
from lensify.optics._errors import (
    FocusCountError,
    MissingStepError,
    TracedPredicateError,
)

__all__ = ["Optic", "at", "combine"]

Path = tuple[Any, ...]
_SHOWN_PATHS = 5  # how many focus paths an error message lists
_SHOWN_KEYS = 10  # how many existing keys an error message lists


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
    _plan: tuple[Any, ...] | None

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
        return self._then(_steps.Attr(name))

    def __getitem__(self, key: Hashable | slice) -> Optic:
        if isinstance(key, slice):
            return self._then(_steps.Slice(key.start, key.stop, key.step))
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
        return self._then(_steps.Attr(name))

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
        return self._then(_steps.Item(key))

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
        return self._then(_steps.Each())

    def leaves(self) -> Optic:
        """Focus on every leaf below each focus, in JAX's flatten order.

        Example:
            >>> import lensify as lf
            >>> lf.at.leaves().get_all({"a": 1, "b": (2, None, 3)})
            [1, 2, 3]
        """
        return self._then(_steps.Leaves())

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
        return self._then(_steps.Where(pred))

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
        return self._then(_steps.InstancesOf(tuple(types)))

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
        return self._then(*(_steps.step_for_key(key) for key in path))

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
        members: list[Optic] = []
        for optic in (self, other):
            steps = optic._chain
            if len(steps) == 1 and isinstance(steps[0], _steps.Union):
                members += steps[0].members
            else:
                members.append(optic)
        return Optic((_steps.Union(tuple(members)),))

    # -- value semantics ----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Optic):
            return NotImplemented
        return self._chain == other._chain

    def __hash__(self) -> int:
        return hash((Optic, self._chain))

    def __repr__(self) -> str:
        text = "lf.at"
        for i, step in enumerate(self._chain):
            if isinstance(step, _steps.Union):
                union = step.code(_METHOD_NAMES)
                text = union if i == 0 else f"{text}.then{union}"
            else:
                text += step.code(_METHOD_NAMES)
        return text

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

    def _compiled(self) -> tuple[Any, ...]:
        plan = self._plan
        if plan is None:
            plan = _compile(self._chain)
            object.__setattr__(self, "_plan", plan)
        return plan

    def _is_lens(self) -> bool:
        return all(isinstance(s, _steps.Attr | _steps.Item) for s in self._compiled())

    def _items(self, tree: Any) -> list[tuple[Path, Any]]:
        """Every focus with its key path; a failing step learns the path it was on."""
        found: list[tuple[Path, Any]] = [((), tree)]
        for step in self._compiled():
            nxt: list[tuple[Path, Any]] = []
            for path, node in found:
                try:
                    pairs = step.items(node)
                except _steps.StepError as failure:
                    failure.path = path + failure.path
                    raise
                nxt += [(path + sub, child) for sub, child in pairs]
            found = nxt
        return found

    def _explain(self, tree: Any, failure: _steps.StepError) -> Exception:
        """The user-facing error for a failed step, with the path it failed on."""
        # The fast paths do not track key paths; walking again with them finds
        # the same failure, located.
        try:
            self._items(tree)
        except _steps.StepError as located:
            failure = located
        else:
            if isinstance(failure, _steps.StepLookupError):
                # Every focus is there, so a rebuild failed (setting a computed
                # attribute, say) on a node that is one of the foci on the way.
                failure.path = self._path_to(tree, failure.node) + failure.path
        return _public_error(self, failure)

    def _path_to(self, tree: Any, node: Any) -> Path:
        found: list[tuple[Path, Any]] = [((), tree)]
        for step in self._compiled():
            for path, candidate in found:
                if candidate is node:
                    return path
            found = [(path + sub, child) for path, n in found for sub, child in step.items(n)]
        return ()

    def _locate(
        self, error: Exception, tree: Any, fn: Callable[[Any], Any], origin: Any
    ) -> Exception:
        """``error``, raised while modifying ``tree``, naming the focus ``fn`` raised it on.

        The fast paths do not track which focus ``fn`` is working on, so after an
        error ``fn`` is asked again, focus by focus in order, until it raises the
        same kind of error. An error that does not come back that way (raised by a
        step, or by an ``fn`` that changed its mind) is returned as it is.
        """
        path = self._focus_that_raises(tree, fn, type(error))
        if path is None:
            return error
        if callable(getattr(error, "with_path", None)):
            return _error_with_path(error, path)
        note = (
            f"lensify: raised by {_steps.callable_name(origin)} at {_tree.keystr(path)}, "
            f"a focus of {self!r}"
        )
        _notes.add_note(error, note)
        return error

    def _focus_that_raises(
        self, tree: Any, fn: Callable[[Any], Any], kind: type[Exception]
    ) -> Path | None:
        try:
            foci = self._items(tree)
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

    def get_all(self, tree: Any) -> list[Any]:
        """Every focus, in JAX's flatten order.

        Example:
            >>> import lensify as lf
            >>> lf.at.each().where(lambda x: x > 1).get_all([1, 2, 3])
            [2, 3]
        """
        try:
            nodes = [tree]
            for step in self._compiled():
                if len(nodes) == 1:
                    nodes = step.values(nodes[0])
                else:
                    nodes = [v for node in nodes for v in step.values(node)]
            return list(nodes)
        except _steps.StepError as failure:
            raise self._explain(tree, failure) from None

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
            return [path for path, _ in self._items(tree)]
        except _steps.StepError as failure:
            raise _public_error(self, failure) from None

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
        try:
            if self._is_lens():
                node = tree
                for step in self._compiled():
                    node = step.get(node)
                return node
        except _steps.StepError as failure:
            raise self._explain(tree, failure) from None
        foci = self.get_all(tree)
        if len(foci) != 1:
            raise self._count_error(tree, len(foci))
        return foci[0]

    def _count_error(self, tree: Any, count: int) -> FocusCountError:
        if count == 0:
            return FocusCountError(
                f"{self!r}.get needs exactly one focus, found none. Check the steps "
                "against the tree, or use get_all() when none is a valid answer."
            )
        paths = [_tree.keystr(p) for p in self.paths(tree)[:_SHOWN_PATHS]]
        more = ", ..." if count > _SHOWN_PATHS else ""
        return FocusCountError(
            f"{self!r}.get needs exactly one focus, found {count}: "
            f"{', '.join(paths)}{more}. Use get_all() to read every focus."
        )

    def modify(self, tree: Any, fn: Callable[[Any], Any]) -> Any:
        """``tree`` with every focus replaced by ``fn(focus)``.

        Only the nodes on the way to a focus are rebuilt; everything else is shared
        with ``tree``, which is never mutated.

        Raises:
            MissingStepError: if a key, attribute or index is not in the tree.
            TracedPredicateError: if a ``where`` predicate needs a traced value.
            Exception: whatever ``fn`` raises, the same exception with a note naming
                the key path of the focus; a :class:`~lensify.ConstraintError`
                becomes one whose message starts with that path. To find the focus,
                ``fn`` is called again after the error, on the foci up to that one.

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
            ["lensify: raised by <lambda> at ['a'][1], a focus of lf.at['a'].each()"]
        """
        return self._modify(tree, fn, fn)

    def _modify(self, tree: Any, fn: Callable[[Any], Any], origin: Any) -> Any:
        # ``origin`` is what the user passed (fn, or wrap's factory), named in errors.
        plan = self._compiled()
        try:
            if self._is_lens():
                return _modify_path(plan, tree, fn)
            k = fn
            for step in reversed(plan):
                k = _lift(step, k)
            return k(tree)
        except _steps.StepError as failure:
            raise self._explain(tree, failure) from None
        except Exception as error:
            located = self._locate(error, tree, fn, origin)
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

        def constant(_: Any) -> Any:
            return value

        return self._modify(tree, constant, constant)

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
        return self._modify(tree, lambda focus: factory(focus, *args, **kwargs), factory)

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
        flags, treedef = self._leaf_flags(tree)
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
        flags, treedef = self._leaf_flags(tree)
        leaves = _tree.flatten(tree)[0]
        pairs = list(zip(leaves, flags, strict=True))
        inside = _tree.unflatten(treedef, [x if f else None for x, f in pairs])
        outside = _tree.unflatten(treedef, [None if f else x for x, f in pairs])
        return inside, outside

    def _leaf_flags(self, tree: Any) -> tuple[list[bool], Any]:
        focus_paths = set(self.paths(tree))
        pairs, treedef = _tree.flatten_with_path(tree)
        if () in focus_paths:
            return [True] * len(pairs), treedef
        depths = sorted({len(p) for p in focus_paths})
        flags = [any(tuple(p[:d]) in focus_paths for d in depths) for p, _ in pairs]
        return flags, treedef


_METHOD_NAMES = frozenset(name for name in dir(Optic) if not name.startswith("_"))


def _compile(steps: tuple[Any, ...]) -> tuple[Any, ...]:
    """The steps as they run: leaf traversals fused with the filters that follow."""
    plan: list[Any] = []
    for step in steps:
        if isinstance(step, _steps.Leaves | _steps.InstancesOf):
            plan.append(step.scan())
        elif isinstance(step, _steps.Where) and plan and isinstance(plan[-1], _steps.LeafScan):
            plan[-1] = plan[-1].with_pred(step.pred)
        else:
            plan.append(step)
    return tuple(plan)


def _lift(step: Any, k: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda node: step.modify(node, k)


def _modify_path(plan: tuple[Any, ...], tree: Any, fn: Callable[[Any], Any]) -> Any:
    # Walk down once, then rebuild only the nodes on the path, bottom up.
    spine = []
    node = tree
    for step in plan:
        spine.append(node)
        node = step.get(node)
    value = fn(node)
    for step, parent in zip(reversed(plan), reversed(spine), strict=True):
        value = step.replace(parent, value)
    return value


def _not_an_array(optic: Optic) -> TypeError:
    return TypeError(
        f"{optic!r} is an optic, not an array: it selects parts of a tree. Apply it "
        f"to the tree to read them, e.g. {optic!r}.get(tree)."
    )


def _public_error(optic: Optic, failure: _steps.StepError) -> Exception:
    if isinstance(failure, _steps.StepLookupError):
        return _missing_error(optic, failure)
    if isinstance(failure, _steps.StepPredicateError):
        # The predicate's own error, of its own type, told where it happened.
        _notes.add_note(
            failure.error,
            f"lensify: raised by the predicate of .where({failure.pred_name}) on the focus "
            f"at {_tree.keystr(failure.path)} (while applying {optic!r})",
        )
        return failure.error
    assert isinstance(failure, _steps.StepTracedError)
    return _traced_error(optic, failure)


def _traced_error(optic: Optic, failure: _steps.StepTracedError) -> TracedPredicateError:
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


def _missing_error(optic: Optic, failure: _steps.StepLookupError) -> MissingStepError:
    where = _tree.keystr(failure.path)
    kind = _steps.describe_node(failure.node)
    existing = _steps.closest_first(failure.target, failure.available)
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


def _parse(text: str) -> list[Any]:
    if not isinstance(text, str):
        raise TypeError(f".parse needs a str, got {type(text).__name__} {text!r}.")
    steps: list[Any] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        match = _NAME.match(text, pos)
        if match is not None and (match.group("dot") or not steps):
            steps.append(_steps.Attr(match.group("name")))
            pos = match.end()
            continue
        item = _parse_item(text, pos)
        if item is None:
            raise ValueError(
                f"cannot parse the path {text!r} at position {pos}:\n  {text}\n  "
                f"{' ' * pos}^\nwrite attributes as .name and items as [0] or ['key']."
            )
        key, pos = item
        steps.append(_steps.Item(key))
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
