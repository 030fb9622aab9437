"""Small numerical helpers, under the module name paramax users import them from.

``import lensify as paramax`` keeps ``paramax.utils.inv_softplus`` working, and
``from lensify.utils import inv_softplus`` is the same function as
:func:`lensify.inv_softplus`.

Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import lensify as paramax
    >>> raw = paramax.utils.inv_softplus(jnp.array([0.5, 2.0]))
    >>> jax.nn.softplus(raw).round(4).tolist()
    [0.5, 2.0]
"""

from lensify.numerics import inv_softplus as inv_softplus

__all__ = ["inv_softplus"]
