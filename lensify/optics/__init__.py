"""Optics: reusable, composable selectors of subtrees in any pytree.

Start from :data:`at`, the identity optic, and chain steps: attributes
(``lf.at.layers``), items (``lf.at["k"]``, ``lf.at[0]``), traversals
(``.each()``, ``.leaves()``, ``.instances_of(...)``), filters (``.where(...)``),
unions (``a | b``) and values through wrappers (``.unwrapped()``). Then apply
the optic to any number of trees with ``get``, ``get_all``, ``paths``, ``set``,
``modify``, ``wrap``, ``mask``, ``unwrap`` and ``partition``.

Example:
    >>> import jax.numpy as jnp
    >>> import lensify as lf
    >>> model = {"layers": [{"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}] * 3}
    >>> biases = lf.at["layers"].each()["b"]
    >>> frozen = lf.non_trainable(model, where=biases)
    >>> [type(layer["b"]).__name__ for layer in frozen["layers"]]
    ['NonTrainable', 'NonTrainable', 'NonTrainable']
"""

from lensify.optics._errors import FocusCountError as FocusCountError
from lensify.optics._errors import MissingStepError as MissingStepError
from lensify.optics._errors import OpticError as OpticError
from lensify.optics._errors import OverlapError as OverlapError
from lensify.optics._errors import TracedPredicateError as TracedPredicateError
from lensify.optics._optic import Optic as Optic
from lensify.optics._optic import at as at
from lensify.optics._optic import combine as combine

__all__ = [
    "FocusCountError",
    "MissingStepError",
    "Optic",
    "OpticError",
    "OverlapError",
    "TracedPredicateError",
    "at",
    "combine",
]
