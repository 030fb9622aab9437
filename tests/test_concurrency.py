"""Wrapper classes defined, and trees unwrapped and focused, from several threads at once."""

from __future__ import annotations

import collections
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optree
import pytest

import lensify as lf
from lensify import _tree

N_THREADS = 8


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    # Switch threads as often as the interpreter allows, so races show up.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def run_together(fn: Callable[[int], Any], n: int = N_THREADS) -> list[Any]:
    """Run ``fn(i)`` for ``i < n`` on ``n`` threads released at the same moment."""
    barrier = threading.Barrier(n)

    def task(i: int) -> Any:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(task, range(n)))


@pytest.fixture
def registrations(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[type]:
    """Count the registrations of each class with JAX's and optree's registries."""
    counts: collections.Counter[type] = collections.Counter()
    lock = threading.Lock()
    register_node, register_optree = _tree.register_node, optree.register_pytree_node

    def counting_register_node(cls: type, **kwargs: Any) -> None:
        with lock:
            counts[cls] += 1
        register_node(cls, **kwargs)

    def counting_register_optree(cls: type, *args: Any, **kwargs: Any) -> Any:
        with lock:
            counts[cls] += 1
        return register_optree(cls, *args, **kwargs)

    monkeypatch.setattr(_tree, "register_node", counting_register_node)
    monkeypatch.setattr(optree, "register_pytree_node", counting_register_optree)
    return counts


def define_wrappers(i: int) -> list[type]:
    """Define a few wrapper classes, undecorated and decorated, with unique names."""

    class Shift(lf.AbstractUnwrappable[jax.Array]):
        x: jax.Array
        by: float = lf.field(static=True, default=float(i))

        def unwrap(self) -> jax.Array:
            return self.x + self.by

    @attrs.frozen
    class Scale(lf.AbstractUnwrappable[jax.Array]):
        x: jax.Array
        factor: jax.Array

        def unwrap(self) -> jax.Array:
            return self.x * self.factor

    class ShiftTwice(Shift):
        def unwrap(self) -> jax.Array:
            return self.x + 2 * self.by

    classes: list[type] = [Shift, Scale, ShiftTwice]
    for cls in classes:
        cls.__qualname__ = f"{cls.__name__}_{i}"
    return classes


def use_wrappers(classes: list[type], i: int) -> None:
    """Instantiate, flatten (both registries), unwrap and jit-unwrap each class."""
    shift, scale, shift_twice = classes
    tree = {
        "a": shift(jnp.ones(2)),
        "b": scale(jnp.ones(2), jnp.full(2, 3.0)),
        "c": shift_twice(jnp.zeros(2)),
    }
    assert len(jax.tree_util.tree_leaves(tree)) == 4
    assert len(optree.tree_leaves(tree, namespace="lensify")) == 4
    assert jax.tree_util.tree_structure(tree).num_leaves == 4
    out = lf.unwrap(tree)
    assert np.allclose(out["a"], 1.0 + i)
    assert np.allclose(out["b"], 3.0)
    assert np.allclose(out["c"], 2.0 * i)
    jitted = jax.jit(lf.unwrap)(tree)
    assert np.allclose(jitted["c"], out["c"])


def test_wrapper_classes_defined_from_many_threads_register_exactly_once(
    registrations: collections.Counter[type],
) -> None:
    def define_and_use(i: int) -> list[type]:
        classes = define_wrappers(i)
        use_wrappers(classes, i)
        return classes

    defined = [cls for classes in run_together(define_and_use) for cls in classes]
    assert len(set(defined)) == 3 * N_THREADS
    # Once with JAX and once with optree, no more.
    assert {cls: registrations[cls] for cls in defined} == {cls: 2 for cls in defined}
    for cls in defined:
        assert lf.is_unwrappable(object.__new__(cls))


def test_first_use_of_an_undecorated_class_from_many_threads() -> None:
    # attrs is applied to an undecorated record on its first instantiation; all
    # threads instantiate the class for the first time together.
    class Offset(lf.AbstractUnwrappable[jax.Array]):
        x: jax.Array
        offset: float = 1.0

        def unwrap(self) -> jax.Array:
            return self.x + self.offset

    class Doubled(Offset):
        def unwrap(self) -> jax.Array:
            return 2 * super().unwrap()

    def first_use(i: int) -> tuple[Any, Any]:
        cls = Doubled if i % 2 else Offset
        w = cls(jnp.full(2, float(i)), offset=0.5)
        assert w.offset == 0.5
        return cls, lf.unwrap(w)

    for i, (cls, out) in enumerate(run_together(first_use)):
        expected = (i + 0.5) * (2 if cls is Doubled else 1)
        assert np.allclose(out, expected)
    assert [f.name for f in attrs.fields(Doubled)] == ["x", "offset"]


def shared_tree() -> dict[str, Any]:
    key = jax.random.key(0)
    k1, k2 = jax.random.split(key)
    return {
        "encoder": {
            "weight": lf.WeightNormalization(jax.random.normal(k1, (4, 3))),
            "bias": lf.Parameterize(jax.nn.softplus, jnp.zeros(4)),
        },
        "decoder": lf.NonTrainable({"weight": jax.random.normal(k2, (3, 4)), "n": 2}),
        "knots": lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (0.0, 1.0), min_width=0.1, include_endpoints="both"
        ),
        "steps": [lf.Parameterize(jnp.exp, jnp.full(2, float(i))) for i in range(4)],
    }


def loss(tree: Any) -> jax.Array:
    params = lf.unwrap(tree)
    leaves = [x for x in jax.tree_util.tree_leaves(params) if isinstance(x, jax.Array)]
    return sum(jnp.sum(x**2) for x in leaves)  # type: ignore[return-value]


def test_unwrap_from_many_threads_on_a_shared_tree() -> None:
    tree = shared_tree()
    expected = lf.unwrap(tree)
    expected_grad = eqx.filter_grad(loss)(tree)

    def work(i: int) -> tuple[Any, Any, Any]:
        results = []
        for _ in range(5):
            results.append(lf.unwrap(tree))
        return results[-1], eqx.filter_grad(loss)(tree), lf.contains_unwrappables(results[0])

    for out, grad, contains in run_together(work):
        assert _tree.tree_equal(out, expected)
        assert _tree.tree_equal(grad, expected_grad)
        assert not contains


def test_jitted_unwrap_from_many_threads_on_a_shared_tree() -> None:
    tree = shared_tree()
    del tree["decoder"]  # holds an int leaf, which jit would trace
    unwrap = jax.jit(lf.unwrap)
    expected = lf.unwrap(tree)
    for out in run_together(lambda i: unwrap(tree)):
        assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(expected)
        for a, b in zip(
            jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(expected), strict=True
        ):
            assert np.allclose(a, b)


def test_building_wrappers_from_many_threads() -> None:
    weight = jax.random.normal(jax.random.key(1), (5, 3))
    expected = lf.WeightNormalization(weight)

    def build(i: int) -> Any:
        return [lf.WeightNormalization(weight) for _ in range(3)]

    for built in run_together(build):
        for w in built:
            assert _tree.tree_equal(w, expected)


def shared_optics() -> list[lf.Optic]:
    # Fresh optics, so their first application (which prepares a plan) races too.
    return [
        lf.at["encoder"]["weight"],
        lf.at["steps"].each(),
        lf.at["steps"][1:3],
        lf.at.leaves().where(lambda x: jnp.ndim(x) == 2),
        lf.at.instances_of(lf.Parameterize),
        lf.at["encoder"]["bias"] | lf.at["decoder"].tree["weight"],
    ]


def apply_all(optics: list[lf.Optic], tree: Any) -> list[Any]:
    results = []
    for optic in optics:
        results += [
            optic.get_all(tree),
            optic.paths(tree),
            optic.set(tree, 0.0),
            optic.modify(tree, lambda x: jax.tree_util.tree_map(lambda v: 2 * v, x)),
            optic.mask(tree),
            optic.wrap(tree, lf.NonTrainable),
            optic.unwrap(tree),
        ]
    return results


def test_optics_from_many_threads_on_a_shared_tree() -> None:
    tree = shared_tree()
    expected = apply_all(shared_optics(), tree)
    optics = shared_optics()
    for results in run_together(lambda i: [apply_all(optics, tree) for _ in range(3)][-1]):
        assert len(results) == len(expected)
        for got, want in zip(results, expected, strict=True):
            assert _tree.tree_equal(got, want)
    # Nothing was mutated: the tree still unwraps as before.
    assert _tree.tree_equal(lf.unwrap(tree), lf.unwrap(shared_tree()))


def test_jitted_optics_from_many_threads() -> None:
    tree = shared_tree()
    del tree["decoder"]
    matrices = lf.at.leaves().where(lambda x: jnp.ndim(x) == 2)
    scale = jax.jit(lambda t: lf.unwrap(matrices.modify(t, lambda w: 3 * w)))
    expected = lf.unwrap(matrices.modify(tree, lambda w: 3 * w))
    for out in run_together(lambda i: scale(tree)):
        for a, b in zip(
            jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(expected), strict=True
        ):
            assert np.allclose(a, b, atol=1e-5)
