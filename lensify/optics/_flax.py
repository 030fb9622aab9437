"""What the optics know of flax's nnx variables, without importing flax.

An ``nnx.Variable`` (``nnx.Param``, ``nnx.BatchStat``, ...) is a pytree node whose one
child is the value it holds. Wrapping the variable itself would hide the parameter from
``nnx.state`` and ``nnx.Optimizer``, so :meth:`Optic.wrap` refuses it with a hint.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_flax_variable", "variable_hint"]

# Whether a type is flax's nnx.Variable (nnx.Param, nnx.BatchStat, ...), by type.
_FLAX_VARIABLE_TYPES: dict[type, bool] = {}


def is_flax_variable(x: Any) -> bool:
    """True for an instance of flax's nnx.Variable, known by the names of its classes."""
    cls = type(x)
    known = _FLAX_VARIABLE_TYPES.get(cls)
    if known is None:
        known = any(
            c.__name__ == "Variable" and c.__module__.startswith("flax.") for c in cls.__mro__
        )
        _FLAX_VARIABLE_TYPES[cls] = known
    return known


def variable_hint(optic: Any, variable: Any, factory: Any) -> str:
    """Why ``optic.wrap(model, factory)`` refuses ``variable``, and the call that works."""
    kind = type(variable).__name__
    name = getattr(factory, "__name__", None) or repr(factory)
    return (
        f"wrapping a flax nnx.{kind} replaces the variable with the wrapper, so the "
        f"parameter drops out of nnx.state(model, nnx.{kind}) and nnx.Optimizer. Wrap the "
        f"value it holds, its one child, instead: {optic!r}.each().wrap(model, {name})."
    )
