"""Flatten and unflatten of lensify's records against a hand-written pytree node.

Two kinds of group, each timed side by side in one process:

- ``jax.tree_util.tree_flatten`` and ``tree_unflatten`` of a list of N nodes of one
  kind, reported per node (the time divided by N), so that flat rows mean a cost
  linear in the number of nodes. The floor is the cheapest node JAX can have: a
  class registered with ``jax.tree_util.register_pytree_node`` whose flatten returns
  ``((x,), None)`` and whose unflatten is ``cls.__new__`` and one attribute set.
  Hand-written nodes shaped as a ``Parameterize`` (children: a tuple and a dict)
  and as a ``WeightNormalization`` (a weight and a Parameterize-shaped scale) show
  what the structure alone costs; paramax's wrappers (equinox Modules) are beside
  them for comparison;
- a jitted ``optax.adam`` step (``jax.grad`` of a sum over ``lf.unwrap(params)``,
  the optax update and ``optax.apply_updates``, all in one ``jax.jit``) over 1000
  wrapped parameters, against the same step over a plain dict of the same arrays,
  with and without the wrappers' maps (softplus, exp) applied in the loss, and
  against hand-written nodes of the same shapes (a floor node, a node holding the
  function in its structure beside an args tuple and a kwargs dict).
  Besides XLA's execution over 3000 small arrays, each step flattens its arguments
  (parameters and both adam moments) and unflattens its results; it waits for one
  result only (``jax.block_until_ready`` of all of them would flatten them again).

Every node holds its own float32 array of shape ``(3,)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import paramax

import lensify as lf
from benchmarks._harness import Row, best_time
from lensify.testing import CATALOGUE

FLOOR = "floor node"
PLAIN = "plain dict"


class FloorNode:
    """The cheapest pytree node: one child, no structure."""

    def __init__(self, x: Any) -> None:
        self.x = x


def _floor_flatten(node: FloorNode) -> tuple[tuple[Any, ...], None]:
    return (node.x,), None


def _floor_unflatten(aux: None, children: Any) -> FloorNode:
    node = FloorNode.__new__(FloorNode)
    node.x = children[0]
    return node


jax.tree_util.register_pytree_node(FloorNode, _floor_flatten, _floor_unflatten)


class ShapedNode:
    """A hand-written node shaped as a ``Parameterize``: children ``(args, kwargs)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def _shaped_flatten(node: ShapedNode) -> tuple[tuple[Any, ...], None]:
    return (node.args, node.kwargs), None


def _shaped_unflatten(aux: None, children: Any) -> ShapedNode:
    node = ShapedNode.__new__(ShapedNode)
    node.args, node.kwargs = children
    return node


jax.tree_util.register_pytree_node(ShapedNode, _shaped_flatten, _shaped_unflatten)


class FunctionNode:
    """A hand-written node shaped as a ``Parameterize`` of a plain function: the
    function in the structure, children ``(args, kwargs)``."""

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs


def _function_flatten(node: FunctionNode) -> tuple[tuple[Any, ...], Any]:
    return (node.args, node.kwargs), node.fn


def _function_unflatten(fn: Any, children: Any) -> FunctionNode:
    node = FunctionNode.__new__(FunctionNode)
    node.fn = fn
    node.args, node.kwargs = children
    return node


jax.tree_util.register_pytree_node(FunctionNode, _function_flatten, _function_unflatten)


class PairNode:
    """A hand-written node of two children (a ``WeightNormalization``'s weight and scale)."""

    def __init__(self, x: Any, y: Any) -> None:
        self.x, self.y = x, y


def _pair_flatten(node: PairNode) -> tuple[tuple[Any, ...], None]:
    return (node.x, node.y), None


def _pair_unflatten(aux: None, children: Any) -> PairNode:
    node = PairNode.__new__(PairNode)
    node.x, node.y = children
    return node


jax.tree_util.register_pytree_node(PairNode, _pair_flatten, _pair_unflatten)


def _positive(x: jax.Array) -> Any:
    return lf.positive(jnp.abs(x) + 1.0)


def _interval(x: jax.Array) -> Any:
    return lf.interval(jnp.tanh(x) * 0.5, -1.0, 1.0)


def _weight_norm(x: jax.Array) -> Any:
    return lf.WeightNormalization(x.reshape(1, 3) + 1.0)


def _catalogued(entry: Any) -> Any:
    # A catalogued constraint of one event of size 3 (a 3x3 matrix for the matrix ones).
    return lambda x: entry.build(entry.example(entry.event_shape(3)))


def _softplus_of_sum(a: jax.Array, b: jax.Array) -> jax.Array:
    return jax.nn.softplus(a + b)


def _numpyro_ordered(x: jax.Array) -> Any:
    from numpyro.distributions import constraints

    return lf.constrain(jnp.cumsum(jnp.abs(x) + 1.0), constraints.ordered_vector)


# Each builds one node from an array of shape (3,).
NODES: dict[str, Any] = {
    FLOOR: FloorNode,
    "lf.NonTrainable": lf.NonTrainable,
    "lf.positive": _positive,
    "lf.interval": _interval,
    "lf.Parameterize(jnp.exp, x)": lambda x: lf.Parameterize(jnp.exp, x),
    "lf.WeightNormalization": _weight_norm,
    # The other built-ins: every catalogued constraint, a Parameterize with a keyword
    # argument, the increasing map and a numpyro constraint.
    **{f"lf.{e.name}": _catalogued(e) for e in CATALOGUE if e.name not in ("positive", "interval")},
    "lf.Parameterize(f, x, b=y)": lambda x: lf.Parameterize(_softplus_of_sum, x, b=x + 1.0),
    "lf.RealToIncreasingOnInterval": lambda x: lf.RealToIncreasingOnInterval(
        x, (0.0, 1.0), min_width=0.1, include_endpoints="both"
    ),
    "lf.constrain(x, ordered_vector)": _numpyro_ordered,
    # The structure alone: a Parameterize's tuple and dict, a WeightNormalization's
    # weight beside a Parameterize-shaped scale.
    "hand-written, Parameterize's shape": ShapedNode,
    "hand-written, WeightNormalization's shape": lambda x: PairNode(x, ShapedNode(x)),
    "paramax.NonTrainable": paramax.NonTrainable,
    "paramax.Parameterize(jnp.exp, x)": lambda x: paramax.Parameterize(jnp.exp, x),
}


def _arrays(n: int) -> list[jax.Array]:
    block = np.arange(3 * n, dtype=np.float32).reshape(n, 3) / n
    return [jnp.asarray(row) for row in block]


def _nodes(build: Any, n: int) -> list[Any]:
    """N distinct nodes: one is built, the rest are that one unflattened with new leaves."""
    one = build(jnp.ones(3))
    leaves, treedef = jax.tree_util.tree_flatten([one] * n)
    fresh = [np.full(np.shape(leaf), (i % 7 + 1) / 7, np.float32) for i, leaf in enumerate(leaves)]
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(x) for x in fresh])


def _take_turns(cases: dict[str, Any], rounds: int) -> dict[str, float]:
    # The cases take turns and each keeps its best round: a burst of load on the
    # shared CPU then spoils one round of one case, not the ratio.
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for case, fn in cases.items():
            best[case] = min(best[case], best_time(fn))
    return best


def _flatten_unflatten(n: int, rounds: int = 3) -> list[Row]:
    flatten, unflatten = {}, {}
    for case, build in NODES.items():
        tree = _nodes(build, n)
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        flatten[case] = lambda tree=tree: jax.tree_util.tree_flatten(tree)
        unflatten[case] = lambda t=treedef, v=leaves: jax.tree_util.tree_unflatten(t, v)
    rows = []
    for group, cases in (("flatten, per node", flatten), ("unflatten, per node", unflatten)):
        best = _take_turns(cases, rounds)
        rows += [Row(group=group, case=c, n=n, seconds=s / n) for c, s in best.items()]
    return rows


_OPTIMISER = optax.adam(1e-3)


def _adam_step_of(value: Any) -> Any:
    """A jitted adam step on the loss ``sum(value(x).sum() for x in leaves(unwrap(params)))``."""

    def loss(params: Any) -> jax.Array:
        return sum(jnp.sum(value(x)) for x in jax.tree_util.tree_leaves(lf.unwrap(params)))

    @jax.jit
    def step(params: Any, state: Any) -> Any:
        grads = jax.grad(loss)(params)
        updates, state = _OPTIMISER.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def _identity(x: Any) -> Any:
    return x


_adam_step = _adam_step_of(_identity)


def _adam(n: int = 1000, rounds: int = 9) -> list[Row]:
    arrays = _arrays(n)
    plain = {f"p{i}": x for i, x in enumerate(arrays)}
    template = lf.positive(jnp.ones(3))
    # The plain dicts with the wrappers' maps applied in the loss: the same
    # computation, so that what the wrappers add to the tree handling shows.
    trees = {
        PLAIN: (plain, _adam_step),
        "plain dict, loss of softplus(x)": (plain, _adam_step_of(jax.nn.softplus)),
        "plain dict, loss of exp(x)": (plain, _adam_step_of(jnp.exp)),
        "lf.positive": ({k: template.with_raw(x) for k, x in plain.items()}, _adam_step),
        "lf.Parameterize(jnp.exp, x)": (
            {k: lf.Parameterize(jnp.exp, x) for k, x in plain.items()},
            _adam_step,
        ),
        # Hand-written nodes of the same shapes, with the maps in the loss: what
        # the structure costs with the cheapest Python nodes.
        "floor nodes, loss of softplus(x)": (
            {k: FloorNode(x) for k, x in plain.items()},
            _adam_step_of(jax.nn.softplus),
        ),
        "hand-written Parameterize's shape, loss of exp(x)": (
            {k: FunctionNode(jnp.exp, x) for k, x in plain.items()},
            _adam_step_of(jnp.exp),
        ),
    }
    cases = {}
    for case, (params, adam_step) in trees.items():
        state = _OPTIMISER.init(params)

        def step(params: Any = params, state: Any = state, adam_step: Any = adam_step) -> Any:
            # One output waited for: they come from one computation, and
            # jax.block_until_ready of them all would flatten the results again.
            return adam_step(params, state)[1][0].count.block_until_ready()

        cases[case] = step
    best = _take_turns(cases, rounds)
    group = f"jitted optax.adam step, {n} parameters"
    return [Row(group=group, case=c, n=n, seconds=s) for c, s in best.items()]


def run(sizes: list[int]) -> list[Row]:
    """Time every group at every size; rows sharing group and size are comparable."""
    rows: list[Row] = []
    for n in sizes:
        rows += _flatten_unflatten(n)
    rows += _adam()
    return rows
