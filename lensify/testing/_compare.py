"""Comparing trees, and what every law checker shares: its settings and its failure message."""

from __future__ import annotations

from typing import Any, cast

import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, settings

import lensify as lf
from lensify import pytree

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def law_settings(max_examples: int) -> settings:
    """The hypothesis settings of a checker: no deadline (JAX compiles on first use),
    and one failure reported, so that a checker raises the ``AssertionError`` it
    documents rather than an ``ExceptionGroup`` of every distinct failure found."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=_HEALTH,
        report_multiple_bugs=False,
    )


def violated(law: str, **shown: Any) -> AssertionError:
    """The error a checker raises: the law by name, then what it was checked on."""
    lines = [f"law violated: {law}"]
    lines += [f"  {name}: {value!r}" for name, value in shown.items()]
    return AssertionError("\n".join(lines))


def _is_number(x: Any) -> bool:
    return pytree.is_array(x) or (isinstance(x, (int, float, complex)) and not isinstance(x, str))


def _precision(*arrays: np.ndarray) -> float:
    """The machine epsilon of the most precise float dtype among ``arrays`` (0 if none).

    The most precise: a float32 leaf compared with a value rounded through bfloat16
    must fail, not pass at bfloat16's tolerance.
    """
    eps = [float(jnp.finfo(a.dtype).eps) for a in arrays if jnp.issubdtype(a.dtype, jnp.inexact)]
    return min(eps, default=0.0)


def _numeric(x: np.ndarray) -> bool:
    # numpy files bfloat16 under kind "V"; jax knows it is a float.
    return x.dtype.kind in "biufc" or bool(jnp.issubdtype(x.dtype, jnp.inexact))


def _leaves_close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if pytree.is_key_array(a) or pytree.is_key_array(b):
        return lf.tree_equal(a, b)  # keys compare by their key data, exactly
    if _is_number(a) and _is_number(b):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape != b_arr.shape:
            return False
        if not (_numeric(a_arr) and _numeric(b_arr)):
            return lf.tree_equal(a, b)
        # Half precision rounds far above float32's defaults: allow a few of its steps
        # when both leaves are that coarse.
        # A weakly typed array (made from a Python number) has no precision of its own.
        typed = [x for x, y in ((a, a_arr), (b, b_arr)) if not getattr(x, "weak_type", False)]
        floor = 4 * _precision(*[np.asarray(x) for x in typed] or [a_arr, b_arr])
        rtol, atol = max(rtol, floor), max(atol, floor)
        wide = np.complex128 if "c" in (a_arr.dtype.kind, b_arr.dtype.kind) else np.float64
        a_wide, b_wide = a_arr.astype(wide), b_arr.astype(wide)
        return bool(np.allclose(a_wide, b_wide, rtol=rtol, atol=atol, equal_nan=True))
    return lf.tree_equal(a, b)


def trees_close(a: Any, b: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Same structure, numeric leaves close (shapes equal, dtypes ignored), others equal.

    The comparison the law checkers use: ``jax.jit`` returns Python scalars as arrays
    and may reorder floating-point operations, so exact equality is too strict there.
    When both leaves are half precision (float16, bfloat16) both tolerances are at
    least four of its machine epsilons; a float32 leaf keeps float32's tolerance even
    against a half-precision one. PRNG key arrays compare by their key data, exactly.

    Example:
        >>> import jax.numpy as jnp
        >>> from lensify.testing import trees_close
        >>> trees_close({"a": 1.0, "b": None}, {"a": jnp.array(1.0 + 1e-7), "b": None})
        True
        >>> trees_close([1.0], (1.0,))
        False
        >>> trees_close(jnp.array(1.0, jnp.bfloat16), jnp.array(1.0078125, jnp.bfloat16))
        True
        >>> trees_close(jnp.array(1.0, jnp.float32), jnp.array(1.0078125, jnp.bfloat16))
        False
    """
    a_leaves, a_def = pytree.flatten(a)
    b_leaves, b_def = pytree.flatten(b)
    if cast(Any, a_def) != b_def:
        return False
    return all(_leaves_close(x, y, rtol, atol) for x, y in zip(a_leaves, b_leaves, strict=True))
