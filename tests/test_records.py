"""Records: abstract bases, immutability, the two class forms, unflatten without __init__."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import attrs
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lensify as lf
from lensify import _records, _tree


class Square(lf.AbstractUnwrappable):
    x: Any

    def unwrap(self) -> Any:
        return self.x**2


@attrs.frozen
class FrozenSquare(lf.AbstractUnwrappable):
    x: Any

    def unwrap(self) -> Any:
        return self.x**2


class Positive(lf.AbstractUnwrappable):
    """Validates at construction: unflatten must never re-run this."""

    x: Any

    def __init__(self, x: Any) -> None:
        if not np.all(np.asarray(x) > 0):
            raise ValueError("Positive needs positive input")
        self.x = x

    def unwrap(self) -> Any:
        return self.x


def double(x: Any) -> Any:
    return 2 * x


def scaled(x: Any, *, scale: Any) -> Any:
    return x * scale


def _built_ins() -> list[lf.AbstractUnwrappable[Any]]:
    return [
        lf.Parameterize(scaled, jnp.ones(3), scale=jnp.ones(())),
        lf.NonTrainable({"a": jnp.ones(2), "b": 1.0}),
        lf.WeightNormalization(jnp.ones((2, 3))),
        lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (0.0, 1.0), min_width=0.1, include_endpoints="both"
        ),
    ]


def test_abstract_base_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError, match="abstract"):
        lf.AbstractUnwrappable()  # type: ignore[abstract]


def test_subclass_without_unwrap_cannot_be_instantiated() -> None:
    class NoUnwrap(lf.AbstractUnwrappable):
        x: Any

    with pytest.raises(TypeError, match="unwrap"):
        NoUnwrap(1)  # type: ignore[abstract]


def test_generic_subscription() -> None:
    alias = lf.AbstractUnwrappable[jax.Array]
    assert alias.__origin__ is lf.AbstractUnwrappable  # type: ignore[attr-defined]

    class Typed(lf.AbstractUnwrappable[jax.Array]):
        x: jax.Array

        def unwrap(self) -> jax.Array:
            return self.x

    assert lf.unwrap(Typed(jnp.ones(1))).shape == (1,)


@pytest.mark.parametrize("cls", [Square, FrozenSquare])
def test_setting_a_field_raises_helpful_error(cls: type) -> None:
    record = cls(jnp.ones(2))
    with pytest.raises(AttributeError, match=r"cannot assign to field 'x'.*immutable"):
        record.x = 3.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.x = 3.0


@pytest.mark.parametrize("cls", [Square, FrozenSquare])
def test_deleting_a_field_raises_helpful_error(cls: type) -> None:
    record = cls(jnp.ones(2))
    with pytest.raises(AttributeError, match=r"cannot delete field 'x'.*immutable"):
        del record.x


@pytest.mark.parametrize("cls", [Square, FrozenSquare])
def test_setting_a_new_attribute_raises(cls: type) -> None:
    with pytest.raises(AttributeError):
        cls(1.0).y = 2.0


def test_undecorated_and_frozen_forms_are_equivalent() -> None:
    x = jnp.arange(3.0)
    a, b = Square(x), FrozenSquare(x)
    assert attrs.has(Square) and attrs.has(FrozenSquare)
    assert [f.name for f in attrs.fields(Square)] == [f.name for f in attrs.fields(FrozenSquare)]
    assert jax.tree_util.tree_leaves(a)[0] is jax.tree_util.tree_leaves(b)[0] is x
    assert str(jax.tree_util.tree_structure(a)).replace("Square", "FrozenSquare") == str(
        jax.tree_util.tree_structure(b)
    )
    assert _tree.tree_equal(lf.unwrap(a), lf.unwrap(b))
    assert repr(a).removeprefix("Square") == repr(b).removeprefix("FrozenSquare")
    assert attrs.evolve(a, x=2.0).x == attrs.evolve(b, x=2.0).x == 2.0


def test_frozen_form_with_slots_false() -> None:
    @attrs.frozen(slots=False)
    class Unslotted(lf.AbstractUnwrappable):
        x: Any

        def unwrap(self) -> Any:
            return self.x

    record = Unslotted(1.0)
    with pytest.raises(AttributeError, match="cannot assign to field 'x'"):
        record.x = 2.0
    assert lf.unwrap([record]) == [1.0]


def test_records_compare_by_value() -> None:
    assert Square(jnp.ones(2)) == Square(jnp.ones(2))
    assert Square(jnp.ones(2)) != Square(jnp.zeros(2))
    assert Square(jnp.ones(2)) != FrozenSquare(jnp.ones(2))


def test_static_field_is_part_of_the_structure() -> None:
    class Scaled(lf.AbstractUnwrappable):
        x: Any
        factor: float = lf.field(static=True, default=2.0)

        def unwrap(self) -> Any:
            return self.x * self.factor

    a, b = Scaled(jnp.ones(2)), Scaled(jnp.ones(2), factor=3.0)
    assert jax.tree_util.tree_leaves(a) == [a.x]
    assert jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b)
    doubled = jax.tree_util.tree_map(lambda v: v * 2, b)
    assert doubled.factor == 3.0


def test_field_passes_attrs_options_through() -> None:
    class WithDefault(lf.AbstractUnwrappable):
        x: Any = lf.field(default=1.0, converter=float)

        def unwrap(self) -> Any:
            return self.x

    assert WithDefault().x == 1.0
    assert WithDefault(3).x == 3.0


def test_keys_name_the_fields() -> None:
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(Square(1.0))]
    assert paths == [".x"]


@pytest.mark.parametrize("wrapper", _built_ins(), ids=lambda w: type(w).__name__)
def test_tree_map_to_none_never_runs_init(wrapper: Any) -> None:
    nones = jax.tree_util.tree_map(lambda _: None, wrapper)
    assert type(nones) is type(wrapper)
    assert all(v is None for v in jax.tree_util.tree_leaves(nones, is_leaf=lambda v: v is None))


@pytest.mark.parametrize("wrapper", _built_ins(), ids=lambda w: type(w).__name__)
def test_partition_and_combine_round_trip(wrapper: Any) -> None:
    params, static = eqx.partition(wrapper, eqx.is_array)
    assert type(params) is type(wrapper)
    assert _tree.tree_equal(lf.unwrap(eqx.combine(params, static)), lf.unwrap(wrapper))


def test_unflatten_skips_validation() -> None:
    record = Positive(jnp.ones(2))
    negated = jax.tree_util.tree_map(lambda v: -v, record)
    assert type(negated) is Positive
    assert jnp.all(negated.x == -1)
    with pytest.raises(ValueError, match="positive"):
        Positive(-jnp.ones(2))


def test_custom_init_assigning_fields() -> None:
    class Affine(lf.AbstractUnwrappable):
        weight: Any
        bias: Any
        n: int = lf.field(static=True)

        def __init__(self, n: int) -> None:
            self.weight = jnp.ones((n, n))
            self.bias = jnp.zeros(n)
            self.n = n

        def unwrap(self) -> Any:
            return self.weight + self.bias

    record = Affine(3)
    assert len(jax.tree_util.tree_leaves(record)) == 2
    assert lf.unwrap(record).shape == (3, 3)
    with pytest.raises(AttributeError):
        record.n = 4


def test_subclass_of_a_subclass_inherits_fields() -> None:
    class Cube(Square):
        y: Any = 1.0

        def unwrap(self) -> Any:
            return self.x**3 * self.y

    assert [f.name for f in _records.record_fields(Cube)] == ["x", "y"]
    assert lf.unwrap(Cube(2.0, y=2.0)) == 16.0
    assert [f.name for f in attrs.fields(Cube)] == ["x", "y"]


def test_classes_defined_in_threads_register_once(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[type] = []
    real = _tree.register_node

    def counting(cls: type, **kwargs: Any) -> None:
        registered.append(cls)
        real(cls, **kwargs)

    monkeypatch.setattr(_tree, "register_node", counting)
    made: list[type] = []
    barrier = threading.Barrier(8)

    def define() -> None:
        barrier.wait()

        class Local(lf.AbstractUnwrappable):
            x: Any

            def unwrap(self) -> Any:
                return self.x + 1

        made.append(Local)

    threads = [threading.Thread(target=define) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 8
    assert sorted(map(id, registered)) == sorted(map(id, made))
    assert all(lf.unwrap(cls(1.0)) == 2.0 for cls in made)


def test_first_instances_built_in_threads() -> None:
    class Fresh(lf.AbstractUnwrappable):
        x: Any
        y: Any = 2.0

        def unwrap(self) -> Any:
            return self.x * self.y

    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def build() -> None:
        barrier.wait()
        try:
            results.append(lf.unwrap(Fresh(3.0)))
        except BaseException as error:  # collected and reported below
            errors.append(error)

    threads = [threading.Thread(target=build) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [6.0] * 8


def test_pickle_parameterize_with_module_level_function() -> None:
    record = lf.Parameterize(double, np.arange(3.0))
    restored = pickle.loads(pickle.dumps(record))
    assert restored.fn is double
    np.testing.assert_array_equal(lf.unwrap(restored), 2 * np.arange(3.0))


@pytest.mark.parametrize("cls", [Square, FrozenSquare])
def test_pickle_user_records(cls: type) -> None:
    restored = pickle.loads(pickle.dumps(cls(np.arange(3.0))))
    assert type(restored) is cls
    np.testing.assert_array_equal(lf.unwrap(restored), np.arange(3.0) ** 2)
    with pytest.raises(AttributeError):
        restored.x = 1.0


def test_pickle_built_in_wrappers() -> None:
    tree = {
        "nt": lf.NonTrainable(np.ones(2)),
        "wn": lf.WeightNormalization(np.ones((2, 3))),
        "knots": lf.RealToIncreasingOnInterval(
            np.zeros(3), (0.0, 1.0), min_width=0.1, include_endpoints="lower"
        ),
    }
    restored = pickle.loads(pickle.dumps(tree))
    assert _tree.tree_equal(lf.unwrap(restored), lf.unwrap(tree))


def test_record_fields_applies_attrs_first() -> None:
    class Late(lf.AbstractUnwrappable):
        a: Any
        b: Any = lf.field(static=True, default=0)

        def unwrap(self) -> Any:
            return self.a

    assert [f.name for f in _records.record_fields(Late)] == ["a", "b"]


def test_attrs_sees_an_undecorated_record_before_any_instance() -> None:
    class Fresh(lf.AbstractUnwrappable):
        x: Any
        k: int = lf.field(static=True, default=3)

        def unwrap(self) -> Any:
            return self.x

    assert attrs.has(Fresh)
    assert [f.name for f in attrs.fields(Fresh)] == ["x", "k"]
    assert attrs.fields(Fresh).k.metadata["lensify.static"] is True


def test_decorated_record_keeps_static_field_and_default() -> None:
    @attrs.frozen
    class Decorated(lf.AbstractUnwrappable):
        x: Any
        k: int = lf.field(static=True, default=3)

        def unwrap(self) -> Any:
            return self.x * self.k

    record = Decorated(jnp.ones(2))
    assert record.k == 3
    assert jax.tree_util.tree_leaves(record) == [record.x]
    assert attrs.fields(Decorated).k.default == 3


@pytest.mark.parametrize("fn", [jnp.exp, jnp.tanh, jnp.multiply, jax.nn.softplus, jax.nn.sigmoid])
def test_pickle_parameterize_with_jax_function(fn: Any) -> None:
    args = (jnp.linspace(-1.0, 1.0, 3),) * (2 if fn is jnp.multiply else 1)
    record = lf.Parameterize(fn, *args)
    restored = pickle.loads(pickle.dumps(record))
    assert restored.fn is fn
    assert _tree.tree_equal(lf.unwrap(restored), lf.unwrap(record))


def test_pickle_does_not_run_init() -> None:
    calls = []

    class Counted(lf.AbstractUnwrappable):
        x: Any

        def __attrs_post_init__(self) -> None:
            calls.append(1)

        def unwrap(self) -> Any:
            return self.x

    globals()["Counted"] = Counted  # pickle finds classes by module and name
    Counted.__qualname__ = "Counted"
    record = Counted(1.0)
    pickle.loads(pickle.dumps(record))
    assert calls == [1]


def test_equinox_field_declarations_are_understood() -> None:
    # A wrapper written for paramax, with only the import changed.
    class Scaled(lf.AbstractUnwrappable):
        x: Any
        factor: float = eqx.field(static=True, default=2.0)
        offset: Any = eqx.field(converter=jnp.asarray, default=0.0)

        def unwrap(self) -> Any:
            return self.x * self.factor + self.offset

    record = Scaled(jnp.ones(2))
    assert jax.tree_util.tree_leaves(record) == [record.x, record.offset]
    assert isinstance(record.offset, jax.Array)
    assert attrs.fields(Scaled).factor.metadata["lensify.static"] is True
    assert jnp.allclose(lf.unwrap(record), 2.0)
