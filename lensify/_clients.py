"""What lensify knows of the libraries built on paramax: flowjax and GPJax.

Nothing here imports paramax, flowjax or GPJax: a class or function of theirs is
recognised by its module and name when lensify meets one (so it has been imported
already), and their modules are read from ``sys.modules``.

- :func:`closure_inverse`: the inverse of a function a ``Parameterize`` holds that
  cannot be registered by identity, because it is made afresh for every layer
  (flowjax's block neural autoregressive ``apply_mask``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lensify._inverses import Inverse
from lensify.numerics import inv_softplus_unchecked

__all__ = ["closure_inverse"]

_BNAF_MODULE = "flowjax.bijections.block_autoregressive_network"
_BNAF_MASK = "block_autoregressive_linear.<locals>.apply_mask"


def _closure_value(fn: Any, name: str) -> Any:
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None) or ()
    names = code.co_freevars if code is not None else ()
    for var, cell in zip(names, cells, strict=False):
        if var == name:
            return cell.cell_contents
    return None


@jax.jit
def _bnaf_inverse(value: Any, weight: Any, tril: Any, diag: Any) -> jax.Array:
    # apply_mask(w) = where(diag, softplus(w'), w') with w' = where(tril, w, 0). Set to
    # value: a diagonal-block entry is inv_softplus of its value (NaN or -inf, so
    # refused, for a value <= 0), an entry below the diagonal blocks is its value,
    # and an entry above them keeps the old raw weight if its value is 0 (it has no
    # other), else NaN: no weight gives it.
    value = jnp.asarray(value, weight.dtype)
    positive = jnp.where(value > 0, value, jnp.nan)
    shown = jnp.where(diag, inv_softplus_unchecked(positive), value)
    hidden = jnp.where(value == 0, weight, jnp.nan)
    return jnp.where(tril, shown, hidden)


def closure_inverse(fn: Any) -> Inverse | None:
    """The inverse of ``fn`` if it is one lensify knows by its module and name, else None.

    flowjax's block neural autoregressive flow (BNAF) stores each weight as
    ``WeightNormalization(Parameterize(apply_mask, w))``, with ``apply_mask`` a
    closure over the layer's block masks: a value sets the entries the masks show
    and keeps the hidden ones.
    """
    if getattr(fn, "__qualname__", None) != _BNAF_MASK or fn.__module__ != _BNAF_MODULE:
        return None
    tril = _closure_value(fn, "block_tril_mask")
    diag = _closure_value(fn, "block_diag_mask")
    if tril is None or diag is None:
        return None
    inverse: Callable[..., Any] = functools.partial(_bnaf_masked_inverse, tril=tril, diag=diag)
    return (inverse, False, 0)


def _bnaf_masked_inverse(value: Any, weight: Any, *, tril: Any, diag: Any) -> jax.Array:
    return _bnaf_inverse(value, weight, tril, diag)
