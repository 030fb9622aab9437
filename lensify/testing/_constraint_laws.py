"""The laws of a constraint: value-preserving construction, support, jit, vmap and gradients."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lensify as lf
from lensify import pytree
from lensify.testing._compare import law_settings, trees_close, violated

SearchStrategy = st.SearchStrategy

#: Builds a constraint from a value (fixing any bounds or axis), value-preserving.
Build = Callable[[Any], Any]
#: A value in the support of a given shape.
Example = Callable[[tuple[int, ...]], Any]
#: The shape of one event for a size ``n``: ``()``, ``(n,)`` or ``(n, n)``.
EventShape = Callable[[int], tuple[int, ...]]
#: A strategy of values inside the support, for a constraint built as the template.
Values = Callable[[Any], SearchStrategy[Any]]


def _scalar_events(n: int) -> tuple[int, ...]:
    return ()


def tolerance(constraint: Any, dtype: Any) -> tuple[float, float]:
    """``(rtol, atol)`` of a round trip through ``constraint`` for values of ``dtype``.

    The constraint's own documented tolerance (``constraint.tolerance(dtype)``) when
    it has one, else :func:`trees_close`'s defaults (at least four machine epsilons
    for half precision).

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import tolerance
        >>> rtol, atol = tolerance(lf.positive(1.0), jnp.float32)
        >>> rtol < 1e-4
        True
    """
    documented = getattr(constraint, "tolerance", None)
    if documented is None:
        floor = 4 * float(jnp.finfo(dtype).eps) if jnp.dtype(dtype).itemsize < 4 else 0.0
        return max(1e-5, floor), max(1e-6, floor)
    found = documented(dtype)
    return float(found[0]), float(found[1])


def _close(got: Any, want: Any, rtol: float, atol: float) -> bool:
    a, b = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


@functools.lru_cache(maxsize=64)
def _jitted(build: Build) -> Callable[[Any], Any]:
    # Once per build function: a fresh jax.jit per example would compile every time.
    return jax.jit(build)


@functools.lru_cache(maxsize=64)
def _jitted_batch(build: Build) -> Callable[[Any], Any]:
    return jax.jit(jax.vmap(build))


_jit_unwrap = jax.jit(lf.unwrap)


@jax.jit
@jax.grad
def _grad_of_weighted_sum(tree: Any, weights: jax.Array) -> Any:
    return jnp.sum(lf.unwrap(tree) * weights)


@jax.jit
@jax.grad
def _grad_of_forward(raw: jax.Array, constraint: Any, weights: jax.Array) -> Any:
    return jnp.sum(constraint.forward(raw) * weights)


def _all_zero(tree: Any) -> bool:
    return all(not np.any(np.asarray(leaf)) for leaf in pytree.flatten(tree)[0])


def assert_constraint_laws(build: Build, value: Any) -> None:
    """Assert the laws of a constraint for one value in its support.

    - value-preserving: ``unwrap(build(x))`` is ``x`` within the constraint's
      documented tolerance (:func:`tolerance`), and ``x`` is in its support;
    - jit equals eager: ``jax.jit(build)(x)`` and ``jax.jit(unwrap)`` agree with the
      eager result, within the same tolerance;
    - gradients: through ``NonTrainable``, in either order (``NonTrainable(build(x))``
      and ``build(NonTrainable(x))``), the value is kept and every gradient is zero;
      without it, the gradient of ``sum(w * unwrap(c))`` lands on the raw parameter
      and equals that of ``sum(w * c.forward(raw))``.

    For use inside your own ``@given`` tests; :func:`check_constraint_laws` draws the
    values for you and checks the support and vmap laws as well.

    Args:
        build: A function from a value to the constraint around it.
        value: A value in the support.

    Raises:
        AssertionError: naming the first law that fails.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import assert_constraint_laws
        >>> assert_constraint_laws(lf.simplex, jnp.array([0.25, 0.75]))
    """
    x = jnp.asarray(value)
    constrained = build(x)
    rtol, atol = tolerance(constrained, x.dtype)
    shown = {"constraint": type(constrained).__name__, "value": x, "rtol": rtol, "atol": atol}
    unwrapped = lf.unwrap(constrained)
    if not _close(unwrapped, x, rtol, atol):
        raise violated("value-preserving: unwrap(build(x)) == x", unwrapped=unwrapped, **shown)
    if not bool(jnp.all(constrained.in_support(x))):
        raise violated("the value is in the support: in_support(x)", **shown)
    jitted = lf.unwrap(_jitted(build)(x))
    if not _close(jitted, unwrapped, rtol, atol):
        raise violated("jit equals eager: jax.jit(build)(x)", jitted=jitted, **shown)
    if not _close(_jit_unwrap(constrained), unwrapped, rtol, atol):
        raise violated("jit equals eager: jax.jit(unwrap)(c)", **shown)
    weights = (jnp.arange(x.size, dtype=x.dtype).reshape(x.shape) - 1.5).astype(x.dtype)
    for tree in (lf.NonTrainable(build(x)), build(lf.NonTrainable(x))):
        if not _close(lf.unwrap(tree), x, rtol, atol):
            raise violated("NonTrainable either order keeps the value", tree=tree, **shown)
        if not _all_zero(_grad_of_weighted_sum(tree, weights)):
            raise violated("NonTrainable either order: every gradient is zero", **shown)
    grads = _grad_of_weighted_sum(constrained, weights)
    direct = _grad_of_forward(jnp.asarray(constrained.raw), constrained, weights)
    if type(grads) is not type(constrained) or not trees_close(grads.raw, direct):
        raise violated(
            "the gradient lands on the raw parameter: grad of sum(w * unwrap(c)) == "
            "grad of sum(w * c.forward(raw))",
            gradient=grads,
            expected=direct,
            **shown,
        )


def forward_values(
    build: Build, raws: SearchStrategy[float] | None = None
) -> Callable[[Any], SearchStrategy[Any]]:
    """Values in the support: ``forward(raw)`` of raw arrays drawn elementwise from ``raws``.

    This is how :func:`check_constraint_laws` draws values unless told otherwise; the
    default raw entries lie in ``[-8, 8]``, away from saturation.

    Args:
        build: The constraint's build function.
        raws: The strategy of raw entries.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from hypothesis import find
        >>> from lensify.testing import forward_values
        >>> template = lf.positive(jnp.ones(3))
        >>> bool((find(forward_values(lf.positive)(template), lambda x: True) > 0).all())
        True
    """
    elements = st.floats(-8.0, 8.0, width=32) if raws is None else raws

    def values(template: Any) -> SearchStrategy[Any]:
        raw = jnp.asarray(template.raw)
        strategy = hnp.arrays(np.float32, raw.shape, elements=elements)
        return strategy.map(lambda r: lf.unwrap(template.with_raw(jnp.asarray(r, dtype=raw.dtype))))

    return values


# Numbers where supports end: 0 and 1 (unit interval, nonnegative, a simplex's
# entries), plus and minus pi (circular), and magnitudes at the float edges.
_EDGES = (0.0, 1.0, -1.0, 0.5, -0.5, np.pi, -np.pi, 2 * np.pi, 1e-30, -1e-30, 1e30, -1e30)
# Raw entries far enough out that forward saturates onto its boundary in float32.
_FAR_RAWS = (-1e4, -200.0, -100.0, -30.0, 30.0, 100.0, 200.0, 1e4)


def _parameters(template: Any, depth: int = 2) -> tuple[float, ...]:
    """The finite numbers among a constraint's parameters (its bounds): up to 16 of
    each field, looking one level into non-array fields (a numpyro constraint's
    ``lower_bound``)."""
    found: list[float] = []

    def add(value: Any, level: int) -> None:
        if isinstance(value, (bool, str)) or value is None or level > depth:
            return
        if isinstance(value, (int, float)) or hasattr(value, "__array__"):
            try:
                numbers = np.asarray(value, dtype=np.float64).ravel()[:16]
            except (TypeError, ValueError):
                return
            found.extend(float(v) for v in numbers if np.isfinite(v))
        elif attrs.has(type(value)):
            for f in attrs.fields(type(value)):
                add(getattr(value, f.name), level + 1)
        elif hasattr(value, "__dict__") and not callable(value):
            for item in vars(value).values():
                add(item, level + 1)

    for f in attrs.fields(type(template)):
        if f.name != "raw":
            add(getattr(template, f.name), 1)
    return tuple(found)


def boundary_values(template: Any, dtype: Any = None) -> SearchStrategy[Any]:
    """Finite values of a constraint's value shape, inside, on and outside its support.

    Three kinds are drawn: arrays of edge numbers (0, 1, -1, pi, the constraint's own
    bounds, tiny and huge magnitudes) mixed with any float; ``forward`` of raw arrays
    with far-out entries, which saturate onto the boundary of a closed support (an
    exact 0 in a simplex, a singular matrix); and values in the support with some
    entries replaced by edge numbers. :func:`check_constraint_laws` checks that each
    is refused with a ``ConstraintError`` or kept exactly.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from hypothesis import find
        >>> from lensify.testing import boundary_values
        >>> found = find(boundary_values(lf.simplex(jnp.full(3, 1 / 3))), lambda v: (v == 0).any())
        >>> found.shape
        (3,)
    """
    value = lf.unwrap(template)
    shape = np.shape(value)
    dtype = jnp.result_type(value) if dtype is None else dtype
    largest = float(jnp.finfo(dtype).max)
    edge = st.sampled_from(_EDGES + _parameters(template))
    anywhere = st.floats(-1e6, 1e6, width=32)

    def cast(array: Any) -> jax.Array:
        return jnp.asarray(np.clip(np.asarray(array, np.float64), -largest, largest), dtype)

    drawn = hnp.arrays(np.float64, shape, elements=st.one_of(edge, anywhere)).map(cast)
    raw = jnp.asarray(template.raw)
    far = st.one_of(st.sampled_from(_FAR_RAWS), st.floats(-8.0, 8.0, width=32))
    saturated = hnp.arrays(np.float32, raw.shape, elements=far).map(
        lambda r: cast(lf.unwrap(template.with_raw(jnp.asarray(r, dtype=raw.dtype))))
    )

    def replace_some(inside: Any, where: np.ndarray, number: float) -> jax.Array:
        return cast(np.where(where, number, np.asarray(inside, np.float64)))

    mixed = st.builds(
        replace_some,
        forward_values(type(template))(template),
        hnp.arrays(np.bool_, shape),
        edge,
    )
    return st.one_of(drawn, saturated, mixed)


def assert_refused_or_preserved(build: Build, value: Any, template: Any = None) -> None:
    """Assert that a constraint refuses ``value`` with a ``ConstraintError`` or keeps it.

    For any finite ``value`` (inside the support, on its boundary or outside it):

    - construction raises :class:`~lensify.ConstraintError`, eagerly, and under
      ``jax.jit`` when the computation runs; or it succeeds with every raw entry
      finite and ``unwrap(build(x))`` equal to ``x`` within the documented
      tolerance. Never a NaN or an infinity stored, never another exception;
    - the support test accepts only values ``forward`` can return: where
      ``in_support`` holds, so does ``in_closure``.

    Args:
        build: A function from a value to the constraint around it.
        value: Any finite value of the constraint's value shape.
        template: A constraint built by ``build`` (its ``in_support`` and
            ``in_closure`` are read); ``build`` of ``value`` if it accepts it.

    Raises:
        AssertionError: naming the law that fails.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import assert_refused_or_preserved
        >>> assert_refused_or_preserved(lf.positive, jnp.array([0.0, 2.0]))
    """
    x = jnp.asarray(value)
    shown: dict[str, Any] = {"value": x}
    try:
        constrained = build(x)
    except lf.ConstraintError:
        constrained = None
    except Exception as error:
        raise violated(
            "a value is refused with a ConstraintError, not another exception",
            error=error,
            **shown,
        ) from error
    template = constrained if template is None else template
    if template is not None:
        shown["constraint"] = type(template).__name__
        inside = np.broadcast_to(np.asarray(template.in_support(x)), x.shape)
        closure = np.broadcast_to(np.asarray(template.in_closure(x)), x.shape)
        if (inside & ~closure).any():
            raise violated(
                "the support test accepts only what forward can return: in_support(x) "
                "implies in_closure(x)",
                accepted_outside=np.asarray(x)[inside & ~closure],
                **shown,
            )
    if constrained is None:
        try:
            jax.block_until_ready(_jitted(build)(x))
        except Exception:
            return
        raise violated("a value refused eagerly is refused under jax.jit too", **shown)
    raws = [np.asarray(leaf) for leaf in pytree.flatten(constrained.raw)[0]]
    if not all(np.isfinite(r).all() for r in raws if r.dtype.kind in "fc"):
        raise violated(
            "an accepted value stores a finite raw parameter", raw=constrained.raw, **shown
        )
    rtol, atol = tolerance(constrained, x.dtype)
    unwrapped = lf.unwrap(constrained)
    if not _close(unwrapped, x, rtol, atol):
        raise violated(
            "an accepted value is kept: unwrap(build(x)) == x (a value outside the support "
            "must raise ConstraintError)",
            unwrapped=unwrapped,
            rtol=rtol,
            atol=atol,
            **shown,
        )


def check_constraint_laws(
    build: Build,
    *,
    example: Example,
    event_shape: EventShape = _scalar_events,
    values: Values | None = None,
    dtype: Any = jnp.float32,
    max_examples: int = 10,
) -> None:
    """Check the laws of a constraint (yours, or a built-in one) over drawn values.

    For values ``x`` of two shapes (one event of size 3, and a batch of two events of
    size 1), in ``dtype``:

    - everything :func:`assert_constraint_laws` checks for one value
      (value-preserving within the documented tolerance, jit equals eager, the
      gradient laws);
    - support: any finite raw parameter unwraps into ``in_closure`` (what ``forward``
      can return in floats), with the value's shape;
    - a non-finite value is refused with a :class:`~lensify.ConstraintError`;
    - refused or kept: a finite value inside, on or outside the support (drawn by
      :func:`boundary_values`: edge numbers, the constraint's bounds, forward of
      saturating raw arrays) is refused with a :class:`~lensify.ConstraintError`,
      eagerly and under ``jax.jit``, or kept within tolerance with a finite raw
      parameter; and ``in_support`` accepts only what ``in_closure`` does (see
      :func:`assert_refused_or_preserved`);
    - vmap-construction invariance: ``jax.vmap(build)`` of two values unwraps, at each
      index, to what ``build`` of that value does.

    Args:
        build: A function from a value to the constraint around it, e.g. the class
            itself or ``lambda x: lf.interval(x, 0.0, 2.0)``.
        example: A value in the support of a given shape (the template the values
            are drawn for).
        event_shape: The shape of one event for a size ``n``: ``()`` (the default)
            for an elementwise constraint, ``(n,)`` for vectors, ``(n, n)`` for
            matrices.
        values: A function from a template constraint to a strategy of values in its
            support; :func:`forward_values` of raw entries in ``[-8, 8]`` if omitted.
            Pass your own to reach a constraint's edges (tiny or huge values, say).
        dtype: The dtype of the values.
        max_examples: Examples tried for each property.

    Raises:
        AssertionError: naming the law that failed, with the shrunk counter-example.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf
        >>> from lensify.testing import check_constraint_laws
        >>> import jax
        >>> class SoftplusPositive(lf.AbstractConstraint):
        ...     support = "x > 0"
        ...     def forward(self, raw):
        ...         return jax.nn.softplus(raw)
        ...     def inverse(self, value):
        ...         return lf.inv_softplus(value)
        ...     def in_support(self, value):
        ...         return value > 0
        ...     def in_closure(self, value):
        ...         return value >= 0  # softplus underflows to 0
        >>> check_constraint_laws(SoftplusPositive, example=jnp.ones, max_examples=3)

        (With ``exp`` and ``log`` the laws fail, rightly: ``log`` of the largest
        float32 is a finite raw value whose ``exp`` overflows to infinity.)
    """
    draw_values = forward_values(build) if values is None else values
    # Two shapes only: every new shape compiles each transformed function again.
    shapes = st.sampled_from([event_shape(3), (2, *event_shape(1))])

    def template_for(shape: tuple[int, ...]) -> Any:
        return build(jnp.asarray(example(shape), dtype=dtype))

    @law_settings(max_examples)
    @given(st.data())
    def one_value_laws(data: st.DataObject) -> None:
        template = template_for(data.draw(shapes, label="shape"))
        value = data.draw(draw_values(template), label="value")
        assert_constraint_laws(build, value)

    @law_settings(max_examples)
    @given(st.data())
    def support_law(data: st.DataObject) -> None:
        template = template_for(data.draw(shapes, label="shape"))
        raw = jnp.asarray(template.raw)
        finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
        drawn = data.draw(hnp.arrays(np.float32, raw.shape, elements=finite), label="raw")
        # Finite in the raw parameter's own dtype (float16 ends at 65504).
        largest = float(jnp.finfo(raw.dtype).max)
        drawn = np.clip(drawn, -largest, largest)
        value = lf.unwrap(template.with_raw(jnp.asarray(drawn, dtype=raw.dtype)))
        want = np.shape(lf.unwrap(template))
        if value.shape != want or not bool(jnp.all(template.in_closure(value))):
            raise violated(
                "any finite raw value unwraps into the support (in_closure)",
                constraint=template,
                raw=drawn,
                value=value,
            )
        try:
            build(jnp.full(want, jnp.nan, dtype=dtype))
        except lf.ConstraintError:
            pass
        else:
            raise violated("a non-finite value is refused with a ConstraintError", shape=want)

    @law_settings(max_examples)
    @given(st.data())
    def vmap_law(data: st.DataObject) -> None:
        template = template_for(data.draw(shapes, label="shape"))
        strategy = draw_values(template)
        xs = jnp.stack([data.draw(strategy, label="value") for _ in range(2)])
        batched = _jit_unwrap(_jitted_batch(build)(xs))
        for i in range(2):
            one = lf.unwrap(build(xs[i]))
            rtol, atol = tolerance(template, xs.dtype)
            if not _close(batched[i], one, rtol, atol):
                raise violated(
                    "vmap-construction invariance: vmap(build)(xs)[i] unwraps to "
                    "unwrap(build(xs[i]))",
                    xs=xs,
                    index=i,
                    batched=batched[i],
                    unbatched=one,
                )

    @law_settings(2 * max_examples)
    @given(st.data())
    def refusal_law(data: st.DataObject) -> None:
        template = template_for(data.draw(shapes, label="shape"))
        value = data.draw(boundary_values(template, dtype), label="value")
        assert_refused_or_preserved(build, value, template)

    one_value_laws()
    support_law()
    refusal_law()
    vmap_law()
