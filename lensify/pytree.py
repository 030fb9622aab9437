"""Pytrees as lensify sees them: the documented internal surface for its extras.

:mod:`lensify.testing` (and code that extends lensify) reads trees through this
module, never through the private registry boundary behind it. It holds JAX's flatten
and unflatten under the names lensify uses, the one-level view of a node that every
lensify traversal shares (:func:`children` and :func:`rebuild`, records included),
the read-only walk over every node with its key path built on it (:func:`walk`),
key paths rendered as code, the array tests lensify's checks use, and the record base
class (equality of trees is public: :func:`lensify.tree_equal`). These names are not
re-exported by ``import lensify``: they may change with lensify's internals, while
``lf.*`` keeps its contract.

Example:
    >>> import jax.numpy as jnp
    >>> from lensify import pytree
    >>> node = {"b": [1.0], "a": jnp.ones(2)}
    >>> [pytree.keystr([key]) for key, _ in pytree.children(node)]
    ["['a']", "['b']"]
    >>> pytree.rebuild(node, [jnp.zeros(2), [2.0]])["b"]
    [2.0]
    >>> pytree.keystr(()), pytree.is_inexact_array(jnp.ones(2)), pytree.children(1.0)
    ('<root>', True, None)
"""

from lensify._records import Record as Record
from lensify._tree import FlattenedIndexKey as FlattenedIndexKey
from lensify._tree import GetAttrKey as GetAttrKey
from lensify._tree import children as children
from lensify._tree import flatten as flatten
from lensify._tree import flatten_with_path as flatten_with_path
from lensify._tree import is_array as is_array
from lensify._tree import is_inexact_array as is_inexact_array
from lensify._tree import is_key_array as is_key_array
from lensify._tree import keystr as keystr
from lensify._tree import rebuild as rebuild
from lensify._tree import register_keyless_node as register_keyless_node
from lensify._tree import structure as structure
from lensify._tree import tree_map as tree_map
from lensify._tree import unflatten as unflatten
from lensify._tree import walk as walk

__all__ = [
    "FlattenedIndexKey",
    "GetAttrKey",
    "Record",
    "children",
    "flatten",
    "flatten_with_path",
    "is_array",
    "is_inexact_array",
    "is_key_array",
    "keystr",
    "rebuild",
    "register_keyless_node",
    "structure",
    "tree_map",
    "unflatten",
    "walk",
]
