"""The fold laws of a wrapper, jit, gradient and vmap included: one tree, or over a strategy."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lensify as lf
from lensify import pytree, unwrap
from lensify.testing._compare import law_settings, trees_close, violated

SearchStrategy = st.SearchStrategy


# Python numbers: jax.jit takes them as arguments and may return them unchanged.
_NUMBERS = (int, float, complex, bool)


def _is_traceable(x: Any) -> bool:
    return pytree.is_array(x) or type(x) in _NUMBERS


def _is_output(x: Any) -> bool:
    return isinstance(x, jax.Array) or type(x) in _NUMBERS


class _Compiled:
    """``jax.jit`` of unwrap for one input structure, and the output structure it traced.

    The output structure is recorded while tracing, so a cached compilation can
    rebuild its output without tracing again.
    """

    def __init__(self, treedef: Any, static: tuple[tuple[int, Any], ...]) -> None:
        self.treedef = treedef
        self.static = dict(static)
        self.output: tuple[Any, list[int], dict[int, Any]] | None = None
        self.run = jax.jit(self._unwrap)

    def _unwrap(self, values: list[Any]) -> list[Any]:
        merged: list[Any] = []
        dynamic = iter(values)
        for i in range(self.treedef.num_leaves):
            merged.append(self.static[i] if i in self.static else next(dynamic))
        out_leaves, out_def = pytree.flatten(unwrap(pytree.unflatten(self.treedef, merged)))
        kept = [i for i, x in enumerate(out_leaves) if _is_output(x)]
        others = {i: x for i, x in enumerate(out_leaves) if not _is_output(x)}
        self.output = (out_def, kept, others)
        return [out_leaves[i] for i in kept]


# A bounded cache, not a module-level dict: checking many trees of many structures
# would otherwise keep every structure (and the static leaves it holds, which may be
# large or user objects) alive for the life of the process. Each entry keeps its
# recorded output structure together with the compiled function that records it,
# so an evicted structure can never be read back for another compilation.
@functools.lru_cache(maxsize=128)
def _compiled(treedef: Any, static: tuple[tuple[int, Any], ...]) -> _Compiled:
    return _Compiled(treedef, static)


def _jit_unwrap(tree: Any) -> Any:
    """``jax.jit(unwrap)(tree)``, with non-array leaves (strings, say) held static.

    Compilations are cached by tree structure, so checking many trees of a few
    structures compiles a few times only.
    """
    leaves, treedef = pytree.flatten(tree)
    static = tuple((i, x) for i, x in enumerate(leaves) if not _is_traceable(x))
    try:
        compiled = _compiled(treedef, static)
    except TypeError:  # a static leaf that does not hash: compile for this call only
        compiled = _Compiled(treedef, static)
    results = compiled.run([x for x in leaves if _is_traceable(x)])
    assert compiled.output is not None  # recorded by the trace that compiled it
    out_def, kept, others = compiled.output
    out_leaves = [others.get(i) for i in range(len(kept) + len(others))]
    for i, value in zip(kept, results, strict=True):
        out_leaves[i] = value
    return pytree.unflatten(out_def, out_leaves)


def _probe_loss(tree: Any) -> jax.Array:
    # A fixed, position-dependent weighting, so no symmetry of the wrapper hides a
    # gradient that flows. Complex leaves count by their real part: a loss is real.
    total = jnp.zeros(())
    for leaf in pytree.flatten(tree)[0]:
        if pytree.is_inexact_array(leaf):
            flat = jnp.real(jnp.ravel(leaf)).astype(jnp.float32)
            weights = 1.0 + 0.5 * jnp.sin(jnp.arange(flat.size) + 1.0)
            total = total + jnp.sum(weights * flat)
    return total


def probe_gradients(tree: Any) -> list[jax.Array]:
    """The gradient of a fixed probe of ``unwrap(tree)`` for each float array leaf of ``tree``.

    The probe is a weighted sum of every float array in the unwrapped tree, with
    weights that differ by position, so no symmetry of a wrapper hides a gradient.
    Two trees that unwrap to the same function of the same raw leaves have equal
    probe gradients: compare them to check that a rewrite keeps the gradient.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import probe_gradients
        >>> [g.tolist() for g in probe_gradients(lf.NonTrainable(jnp.ones(2)))]
        [[0.0, 0.0]]
        >>> len(probe_gradients({"w": lf.Parameterize(jnp.exp, jnp.zeros(3))}))
        1
    """
    leaves, treedef = pytree.flatten(tree)
    positions = [i for i, x in enumerate(leaves) if pytree.is_inexact_array(x)]

    def loss(params: list[jax.Array]) -> jax.Array:
        merged = list(leaves)
        for i, p in zip(positions, params, strict=True):
            merged[i] = p
        return _probe_loss(unwrap(pytree.unflatten(treedef, merged)))

    return list(jax.grad(loss)([jnp.asarray(leaves[i]) for i in positions]))


def _outermost_wrappers(tree: Any) -> list[Any]:
    wrappers = pytree.flatten(tree, is_leaf=lf.is_unwrappable)[0]
    return [x for x in wrappers if lf.is_unwrappable(x)]


def _check_gradient(tree: Any, gradient: Literal["flows", "zero"]) -> None:
    grads = probe_gradients(tree)
    if gradient == "zero":
        if any(bool(jnp.any(g != 0)) for g in grads):
            raise violated("gradient is zero through the wrapper", tree=tree, gradient=grads)
        return
    finite = all(bool(jnp.isfinite(g).all()) for g in grads)
    if not grads:
        return  # no float array in the tree: nothing for a gradient to flow to
    if not finite or not any(bool(jnp.any(g != 0)) for g in grads):
        raise violated(
            "gradient flows through the wrapper (finite and not all zero)",
            tree=tree,
            gradient=grads,
        )
    frozen = pytree.flatten(lf.at.instances_of(lf.NonTrainable).mask(tree))[0]
    leaves = pytree.flatten(tree)[0]
    inexact = [i for i, x in enumerate(leaves) if pytree.is_inexact_array(x)]
    paths = [path for path, _ in pytree.flatten_with_path(tree)[0]]
    for i, g in zip(inexact, grads, strict=True):
        if not frozen[i] and not bool(jnp.any(g != 0)):
            raise violated(
                "gradient flows to every trainable leaf (one outside every NonTrainable)",
                tree=tree,
                leaf=pytree.keystr(paths[i]),
                gradient=grads,
            )


def assert_wrapper_laws(tree: Any, *, gradient: Literal["flows", "zero"] | None = None) -> None:
    """Assert the fold laws for one tree holding wrappers (see :func:`check_wrapper_laws`).

    For use inside your own ``@given`` tests; :func:`check_wrapper_laws` runs it over a
    strategy for you.

    Args:
        tree: A pytree holding wrappers.
        gradient: ``"flows"``, ``"zero"``, or ``None`` to skip the gradient law.

    Raises:
        AssertionError: naming the first law that fails, with the tree.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import assert_wrapper_laws
        >>> assert_wrapper_laws({"w": lf.NonTrainable(jnp.ones(2))}, gradient="zero")
    """
    value = unwrap(tree)
    if lf.contains_unwrappables(value):
        raise violated("no wrappers left: unwrap(t) holds no wrapper", tree=tree, unwrapped=value)
    again = unwrap(value)
    if not lf.tree_equal(again, value):
        raise violated("idempotence: unwrap(unwrap(t)) == unwrap(t)", tree=tree, once=value)
    for wrapper in _outermost_wrappers(tree):
        children = pytree.children(wrapper) or []
        rebuilt = pytree.rebuild(wrapper, [unwrap(child) for _, child in children])
        expected = unwrap(rebuilt.unwrap())
        if not trees_close(unwrap(wrapper), expected):
            raise violated(
                "defining equation: unwrap(w) == unwrap(w rebuilt with unwrapped children"
                ".unwrap())",
                wrapper=wrapper,
                unwrap=unwrap(wrapper),
                equation=expected,
            )
    jitted = _jit_unwrap(tree)
    if not trees_close(jitted, value):
        raise violated(
            "jit equals eager: jax.jit(unwrap)(t) == unwrap(t)",
            tree=tree,
            eager=value,
            jitted=jitted,
        )
    if gradient is not None:
        _check_gradient(tree, gradient)


def _batched(x: Any, factors: np.ndarray) -> jax.Array:
    x = jnp.asarray(x)
    return jnp.asarray(factors).reshape(factors.shape + (1,) * x.ndim) * x


def assert_vmap_construction(
    construct: Callable[[jax.Array], Any], xs: Any, batch_ndim: int = 1
) -> None:
    """Assert that building under ``jax.vmap`` commutes with indexing.

    ``construct`` is mapped over the leading ``batch_ndim`` axes of ``xs`` (with
    nested ``jax.vmap``) and the result unwrapped under the same vmaps; at every batch
    index that must be close to ``unwrap(construct(xs[index]))``.

    Args:
        construct: A function from an array to a tree holding wrappers.
        xs: A batch of inputs for ``construct``.
        batch_ndim: How many leading axes of ``xs`` are batch axes.

    Raises:
        AssertionError: naming the law and the index where it fails.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import assert_vmap_construction
        >>> assert_vmap_construction(lf.WeightNormalization, jnp.ones((3, 2, 2)))
    """
    xs = jnp.asarray(xs)
    build, run = construct, unwrap
    for _ in range(batch_ndim):
        build, run = jax.vmap(build), jax.vmap(run)
    batched = run(build(xs))
    for index in np.ndindex(*xs.shape[:batch_ndim]):
        one = unwrap(construct(xs[index]))
        picked = pytree.tree_map(lambda leaf, i=index: leaf[i], batched)
        if not trees_close(picked, one):
            raise violated(
                "vmap-construction invariance: vmap(construct)(xs)[i] unwraps to "
                "unwrap(construct(xs[i]))",
                xs=xs,
                index=index,
                batched=picked,
                unbatched=one,
            )


def check_wrapper_laws(
    wrappers: SearchStrategy[Any],
    *,
    gradient: Literal["flows", "zero"] | None = "flows",
    construct: Callable[[jax.Array], Any] | None = None,
    arrays: SearchStrategy[Any] | None = None,
    max_examples: int = 25,
) -> None:
    """Check the fold laws (and the gradient and vmap laws) for a wrapper.

    For every tree ``t`` drawn from ``wrappers``:

    - no wrappers left: ``contains_unwrappables(unwrap(t))`` is False;
    - idempotence: ``unwrap(unwrap(t)) == unwrap(t)``;
    - the defining equation: for each outermost wrapper ``w``, ``unwrap(w)`` equals
      ``w`` rebuilt with every child unwrapped, then ``.unwrap()`` (and unwrapped);
    - jit equals eager: ``jax.jit(unwrap)(t)`` is close to ``unwrap(t)``;
    - gradient, as the wrapper declares: with ``"flows"`` the gradient of a fixed
      linear probe of ``unwrap(t)`` with respect to the float array leaves of ``t`` is
      finite, and reaches every trainable leaf (one outside every ``NonTrainable``):
      a leaf whose gradient is zero everywhere, such as a field behind a
      ``stop_gradient``, fails; with ``"zero"`` it is exactly zero; ``None`` skips this.

    Given ``construct`` (an array to a wrapper) and ``arrays`` (inputs it accepts),
    also vmap-construction invariance (:func:`assert_vmap_construction`) for batch
    shapes ``(1,)``, ``(3,)`` and ``(2, 2)``, the batch being scaled copies of a drawn
    array.

    Call it from a plain test function, not from inside another ``@given`` test
    (there, use :func:`assert_wrapper_laws`).

    Args:
        wrappers: A strategy of trees holding the wrapper under test.
        gradient: What the wrapper declares of gradients through it.
        construct: A function from an array to the wrapper, for the vmap law.
        arrays: A strategy of arrays ``construct`` accepts, for the vmap law.
        max_examples: Examples tried for each property.

    Raises:
        AssertionError: naming the law that failed, with the shrunk counter-example.
        ValueError: if only one of ``construct`` and ``arrays`` is given.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lensify as lf
        >>> from hypothesis import strategies as st
        >>> from lensify.testing import check_wrapper_laws, float_arrays
        >>> class Square(lf.AbstractUnwrappable):
        ...     x: jax.Array
        ...     def unwrap(self):
        ...         return self.x**2
        >>> check_wrapper_laws(
        ...     st.builds(Square, float_arrays(nonzero=True)),
        ...     construct=Square,
        ...     arrays=float_arrays(),
        ...     max_examples=10,
        ... )
    """
    if (construct is None) != (arrays is None):
        raise ValueError(
            "check_wrapper_laws needs both construct and arrays for the vmap law, e.g. "
            "check_wrapper_laws(s, construct=MyWrapper, arrays=lensify.testing.float_arrays())."
        )

    @law_settings(max_examples)
    @given(wrappers)
    def fold_laws(tree: Any) -> None:
        assert_wrapper_laws(tree, gradient=gradient)

    fold_laws()
    if construct is None or arrays is None:
        return
    build = construct

    batch_factors = st.sampled_from(((1,), (3,), (2, 2))).flatmap(
        lambda shape: hnp.arrays(np.float32, shape, elements=st.sampled_from((0.5, 1.0, 2.0)))
    )

    @law_settings(max_examples)
    @given(arrays, batch_factors)
    def vmap_law(x: Any, factors: np.ndarray) -> None:
        assert_vmap_construction(build, _batched(x, factors), factors.ndim)

    vmap_law()
