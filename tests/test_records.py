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


# ------------------------------------------------- every built-in wrapper and constraint


def _built_in_calls(s: float) -> dict[str, tuple[type, tuple[Any, ...], dict[str, Any]]]:
    """Each built-in class with the arguments of one instance; ``s`` varies the values."""
    x = s * jnp.array([0.5, 0.25])
    return {
        "Parameterize": (lf.Parameterize, (jnp.exp, x), {}),
        "NonTrainable": (lf.NonTrainable, ({"a": x, "n": 1},), {}),
        "WeightNormalization": (lf.WeightNormalization, (jnp.outer(x, x + 1.0),), {}),
        "RealToIncreasingOnInterval": (
            lf.RealToIncreasingOnInterval,
            (x, (0.0, 1.0)),
            {"min_width": 0.1, "include_endpoints": "both"},
        ),
        "Positive": (lf.Positive, (x,), {}),
        "Interval": (lf.Interval, (x, -1.0, 1.0), {}),
        "Simplex": (lf.Simplex, (jnp.array([s, 1.0, 2.0]) / (3.0 + s),), {}),
        "CholeskyFactor": (lf.CholeskyFactor, (jnp.array([[1.0, 0.0], [s, 2.0]]),), {}),
        "Symmetric": (lf.Symmetric, (jnp.array([[1.0, s], [s, 2.0]]),), {}),
        "UnitVector": (lf.UnitVector, (jnp.array([s, 1.0]) / jnp.hypot(s, 1.0),), {}),
    }


BUILT_INS = sorted(_built_in_calls(1.0))


def _build(name: str, s: float = 1.0) -> Any:
    cls, args, kwargs = _built_in_calls(s)[name]
    return cls(*args, **kwargs)


def _fields(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in attrs.fields(type(record))}


def test_built_ins_cover_every_public_wrapper_and_constraint() -> None:
    public = {
        name
        for name in lf.__all__
        if isinstance(getattr(lf, name), type)
        and issubclass(getattr(lf, name), lf.AbstractUnwrappable)
        and not getattr(getattr(lf, name), "__abstractmethods__", None)
    }
    # lf.Constrained needs the optional numpyro: tests/test_constraints_numpyro.py.
    assert public - {"Constrained"} == set(BUILT_INS)


# ------------------------------------- __check_init__, evolve and replace on records


class Checked(lf.AbstractUnwrappable):
    x: Any

    def __check_init__(self) -> None:
        if not np.all(np.asarray(self.x) > 0):
            raise ValueError("Checked needs positive x")

    def unwrap(self) -> Any:
        return self.x


def test_check_init_runs_at_construction() -> None:
    assert lf.unwrap(Checked(jnp.ones(2))).shape == (2,)
    with pytest.raises(ValueError, match="Checked needs positive x"):
        Checked(-jnp.ones(2))


def test_check_init_runs_for_every_class_in_the_mro() -> None:
    calls: list[str] = []

    class Base(lf.AbstractUnwrappable):
        x: Any

        def __check_init__(self) -> None:
            calls.append("Base")

        def unwrap(self) -> Any:
            return self.x

    class Child(Base):
        def __init__(self, x: Any) -> None:
            self.x = 2 * x

        def __check_init__(self) -> None:
            calls.append(f"Child sees {self.x}")

    Child(1.0)
    assert calls == ["Child sees 2.0", "Base"]


def test_check_init_runs_after_init_on_a_frozen_record() -> None:
    class Assigning(lf.AbstractUnwrappable):
        x: Any

        def __check_init__(self) -> None:
            self.x = 0.0  # validation must not change the record

        def unwrap(self) -> Any:
            return self.x

    with pytest.raises(lf.FrozenRecordError):
        Assigning(1.0)


def test_check_init_never_runs_at_unflatten() -> None:
    record = Checked(jnp.ones(2))
    negated = jax.tree_util.tree_map(lambda v: -v, record)
    assert type(negated) is Checked
    assert jax.tree_util.tree_map(lambda _: None, record).x is None
    assert type(pickle.loads(pickle.dumps(Checked(np.ones(2))))) is Checked


def test_evolve_changes_parameterize_fn_only() -> None:
    x = jnp.array([0.5, 1.0])
    changed = attrs.evolve(lf.Parameterize(jnp.tanh, x), fn=jnp.exp)
    assert changed.args[0] is x
    assert changed.kwargs == {}
    assert jnp.allclose(lf.unwrap(changed), jnp.exp(x))


@pytest.mark.parametrize("name", BUILT_INS)
def test_evolve_works_on_every_built_in(name: str) -> None:
    # attrs.evolve with every field of another instance gives that instance:
    # no __init__ re-reads a field as an argument.
    before, after = _build(name, 1.0), _build(name, 0.5)
    changed = attrs.evolve(before, **_fields(after))
    assert type(changed) is type(after)
    assert lf.tree_equal(changed, after)
    assert lf.tree_equal(lf.unwrap(changed), lf.unwrap(after))


@pytest.mark.parametrize("name", BUILT_INS)
def test_replace_works_on_every_built_in(name: str) -> None:
    before, after = _build(name, 1.0), _build(name, 0.5)
    for field_name, value in _fields(after).items():
        one = lf.replace(before, **{field_name: value})
        assert getattr(one, field_name) is value
        others = {k: v for k, v in _fields(before).items() if k != field_name}
        assert all(getattr(one, k) is v for k, v in others.items())
    assert lf.tree_equal(lf.replace(before, **_fields(after)), after)


@pytest.mark.parametrize("name", BUILT_INS)
def test_frozen_error_recommends_what_works(name: str) -> None:
    record = _build(name)
    field_name = attrs.fields(type(record))[0].name
    with pytest.raises(lf.FrozenRecordError) as info:
        setattr(record, field_name, None)
    assert f"lf.replace(record, {field_name}=value)" in str(info.value)
    assert "attrs.evolve" not in str(info.value)
    assert getattr(lf.replace(record, **{field_name: None}), field_name) is None


def test_replace_names_an_unknown_field() -> None:
    with pytest.raises(TypeError, match=r"Positive has no field 'value'; its fields are raw"):
        lf.replace(lf.positive(1.0), value=2.0)


def test_replace_runs_check_init_and_not_init() -> None:
    class Logged(lf.AbstractUnwrappable):
        x: Any

        def __init__(self, x: Any) -> None:
            self.x = jnp.log(x)

        def __check_init__(self) -> None:
            if self.x is None:
                raise ValueError("x is None")

        def unwrap(self) -> Any:
            return jnp.exp(self.x)

    record = lf.replace(Logged(1.0), x=jnp.array(2.0))
    assert record.x == 2.0
    with pytest.raises(ValueError, match="x is None"):
        lf.replace(record, x=None)


def test_evolve_changes_fields_without_init_or_checks() -> None:
    class Checked(lf.AbstractUnwrappable):
        x: Any
        y: Any = lf.field(static=True, default=0)

        def __check_init__(self) -> None:
            if self.x is None:
                raise ValueError("x is None")

        def unwrap(self) -> Any:
            return self.x

    record = Checked(jnp.ones(2))
    changed = _records.evolve(record, x=None)
    assert changed.x is None and changed.y is record.y
    assert _records.evolve(record, y=3).x is record.x
    with pytest.raises(TypeError, match=r"Checked has no field 'z'; its fields are x, y"):
        _records.evolve(record, z=1)


def test_evolve_decides_parameterize_config_and_keeps_its_function() -> None:
    p = lf.Parameterize(jnp.roll, jnp.arange(3.0), 1)
    q = _records.evolve(p, args=(jnp.zeros(3), 1))
    assert q.fn is p.fn
    assert jax.tree_util.tree_structure(q) == jax.tree_util.tree_structure(p)
    assert jax.tree_util.tree_leaves(q) == [q.args[0]]


def test_evolve_keeps_the_configuration_of_the_fields_it_does_not_change() -> None:
    p = lf.Parameterize(jnp.roll, jnp.arange(3.0), 1, axis=0)
    q = _records.evolve(p, kwargs={"axis": 0})
    assert jax.tree_util.tree_structure(q) == jax.tree_util.tree_structure(p)
    r = _records.evolve(p, args=(jnp.zeros(3), jnp.ones(())))
    assert jax.tree_util.tree_leaves(r) == [r.args[0], r.args[1]]


def _roll_by_one() -> Any:
    # A configuration entry: the shift 1 travels in the tree structure, not as a leaf.
    return lf.Parameterize(jnp.roll, jnp.arange(3.0), 1)


@pytest.mark.parametrize(
    "copy_of",
    [
        lambda p: pickle.loads(pickle.dumps(p)),
        lambda p: __import__("copy").copy(p),
        lambda p: __import__("copy").deepcopy(p),
        lambda p: lf.at.each().modify(p, lambda child: child),
    ],
    ids=["pickle", "copy", "deepcopy", "each_modify"],
)
def test_a_copy_keeps_the_configuration_in_the_structure(copy_of: Any) -> None:
    p = _roll_by_one()
    copied = copy_of(p)
    assert jax.tree_util.tree_structure(copied) == jax.tree_util.tree_structure(p)
    assert len(jax.tree_util.tree_leaves(copied)) == 1
    assert jnp.array_equal(lf.unwrap(copied), lf.unwrap(p))


def test_with_value_keeps_a_parameterize_s_structure() -> None:
    def exp_along(x: Any, axis: int = -1) -> Any:
        return jnp.exp(x)

    lf.register_inverse(exp_along, jnp.log)
    p = lf.Parameterize(exp_along, jnp.zeros(3), axis=-1)
    q = p.with_value(jnp.full(3, 2.0))
    assert jax.tree_util.tree_structure(q) == jax.tree_util.tree_structure(p)
    assert q.kwargs == {"axis": -1} and q.fn is exp_along
    assert jnp.allclose(lf.unwrap(q), 2.0)


@pytest.mark.parametrize("fn", [jnp.exp, jax.nn.softplus, jnp.multiply, double])
def test_copy_of_record_holding_a_function(fn: Any) -> None:
    import copy

    args = (jnp.linspace(-1.0, 1.0, 3),) * (2 if fn is jnp.multiply else 1)
    record = lf.Parameterize(fn, *args)
    for copied in (copy.copy(record), copy.deepcopy(record)):
        assert copied.fn is fn
        assert lf.tree_equal(lf.unwrap(copied), lf.unwrap(record))


@pytest.mark.parametrize("name", BUILT_INS)
def test_copy_of_every_built_in(name: str) -> None:
    import copy

    record = _build(name)
    for copied in (copy.copy(record), copy.deepcopy(record)):
        assert type(copied) is type(record)
        assert lf.tree_equal(copied, record)


@pytest.mark.parametrize("name", BUILT_INS)
def test_subclass_of_every_built_in(name: str) -> None:
    cls, args, kwargs = _built_in_calls(1.0)[name]
    sub = type(f"My{name}", (cls,), {})
    record = sub(*args, **kwargs)
    assert type(record) is sub
    assert lf.tree_equal(lf.unwrap(record), lf.unwrap(cls(*args, **kwargs)))
    rebuilt = jax.tree_util.tree_map(lambda v: v, record)
    assert type(rebuilt) is sub and lf.tree_equal(rebuilt, record)


@pytest.mark.parametrize("name", BUILT_INS)
def test_decorated_subclass_of_every_built_in(name: str) -> None:
    cls, args, kwargs = _built_in_calls(1.0)[name]
    sub = attrs.frozen(type(f"My{name}", (cls,), {}))
    assert lf.tree_equal(lf.unwrap(sub(*args, **kwargs)), lf.unwrap(cls(*args, **kwargs)))


def test_subclass_adding_a_field_with_a_default() -> None:
    class Tagged(lf.Parameterize):
        tag: str = lf.field(static=True, default="scale")

    record = Tagged(jnp.exp, jnp.zeros(2))
    assert record.tag == "scale"
    assert jnp.allclose(lf.unwrap(record), 1.0)


def test_subclass_adding_a_field_without_default_says_so() -> None:
    class Tagged(lf.Parameterize):
        tag: str = lf.field(static=True)

    with pytest.raises(TypeError, match=r"Tagged.__init__ did not set the field\(s\) 'tag'"):
        Tagged(jnp.exp, jnp.zeros(2))


def test_field_default_with_custom_init() -> None:
    class Scaled(lf.AbstractUnwrappable):
        x: jax.Array
        k: float = lf.field(static=True, default=2.0)

        def __init__(self, x: jax.Array) -> None:
            self.x = x

        def unwrap(self) -> jax.Array:
            return self.x * self.k

    assert Scaled(jnp.ones(1)).k == 2.0
    assert jnp.allclose(lf.unwrap(Scaled(jnp.ones(1))), 2.0)


def test_equinox_field_default_with_custom_init() -> None:
    class Scaled(lf.AbstractUnwrappable):
        x: jax.Array
        k: float = eqx.field(static=True, default=2.0)
        bias: Any = eqx.field(default_factory=lambda: jnp.zeros(1))

        def __init__(self, x: jax.Array) -> None:
            self.x = x

        def unwrap(self) -> jax.Array:
            return self.x * self.k + self.bias

    record = Scaled(jnp.ones(1))
    assert jax.tree_util.tree_leaves(record) == [record.x, record.bias]
    assert jnp.allclose(lf.unwrap(record), 2.0)


def test_post_init_runs_after_the_generated_init() -> None:
    class Tripled(lf.AbstractUnwrappable):
        x: jax.Array

        def __post_init__(self) -> None:
            self.x = 3 * self.x

        def unwrap(self) -> jax.Array:
            return self.x

    assert jnp.allclose(lf.unwrap(Tripled(jnp.ones(1))), 3.0)
    assert jnp.allclose(jax.tree_util.tree_map(lambda v: v, Tripled(jnp.ones(1))).x, 3.0)


def test_post_init_beside_a_custom_init_warns() -> None:
    with pytest.warns(UserWarning, match=r"both an __init__ and a __post_init__.*never run"):

        class Both(lf.AbstractUnwrappable):
            x: jax.Array

            def __init__(self, x: jax.Array) -> None:
                self.x = x

            def __post_init__(self) -> None:
                raise AssertionError("not run")

            def unwrap(self) -> jax.Array:
                return self.x

    assert lf.unwrap(Both(jnp.ones(1))).shape == (1,)


def test_custom_init_leaving_a_field_unset_says_which() -> None:
    class Half(lf.AbstractUnwrappable):
        x: jax.Array
        y: jax.Array

        def __init__(self, x: jax.Array) -> None:
            self.x = x

        def unwrap(self) -> jax.Array:
            return self.x

    with pytest.raises(TypeError, match=r"Half.__init__ did not set the field\(s\) 'y'"):
        Half(jnp.ones(1))


def _apply(x: jax.Array, act: Any) -> jax.Array:
    return act(x)


def test_function_in_kwargs_travels_in_the_structure() -> None:
    record = lf.Parameterize(lambda x, act: act(x), jnp.array([-1.0, 2.0]), act=jax.nn.relu)
    assert jax.tree_util.tree_leaves(record) == [record.args[0]]
    assert jnp.allclose(jax.jit(lf.unwrap)(record), jnp.array([0.0, 2.0]))
    assert jnp.allclose(jax.grad(lambda r: lf.unwrap(r).sum())(record).args[0], jnp.array([0, 1]))


def test_function_in_args_travels_in_the_structure() -> None:
    record = lf.Parameterize(_apply, jnp.array([-1.0, 2.0]), jnp.tanh)
    assert len(jax.tree_util.tree_leaves(record)) == 1
    assert jnp.allclose(jax.jit(lf.unwrap)(record), jnp.tanh(jnp.array([-1.0, 2.0])))
    rebuilt = jax.tree_util.tree_map(lambda v: 2 * v, record)
    assert rebuilt.args[1] is jnp.tanh


def test_functions_in_arguments_pickle_and_copy() -> None:
    import copy

    record = lf.Parameterize(_apply, np.array([-1.0, 2.0]), act=jnp.tanh)
    for restored in (
        pickle.loads(pickle.dumps(record)),
        copy.copy(record),
        copy.deepcopy(record),
    ):
        assert restored.kwargs["act"] is jnp.tanh
        assert lf.tree_equal(lf.unwrap(restored), lf.unwrap(record))


def test_optics_see_the_function_in_its_place() -> None:
    record = lf.Parameterize(_apply, jnp.ones(2), act=jnp.tanh)
    assert lf.at.kwargs["act"].get(record) is jnp.tanh
    swapped = lf.at.kwargs["act"].set(record, jnp.sin)
    assert jnp.allclose(jax.jit(lf.unwrap)(swapped), jnp.sin(jnp.ones(2)))


def test_array_in_a_static_field_warns_once_naming_it() -> None:
    class Holder(lf.AbstractUnwrappable):
        x: Any
        table: Any = lf.field(static=True)

        def unwrap(self) -> Any:
            return self.x

    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = Holder(1.0, jnp.ones(2))
        jax.tree_util.tree_map(lambda v: v, record)
    assert len(caught) == 1
    assert "Holder" in str(caught[0].message)
    assert "'table'" in str(caught[0].message)


def test_hashable_static_fields_do_not_warn() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lf.RealToIncreasingOnInterval(
            jnp.zeros(2), (0.0, 1.0), min_width=0.1, include_endpoints="both"
        )
        lf.interval(jnp.array([0.5, 0.2]), jnp.zeros(2), jnp.ones(2))
        lf.simplex(jnp.array([0.5, 0.5]))


def test_registries_see_no_slot_for_a_function_in_kwargs() -> None:
    import optree

    record = lf.Parameterize(_apply, jnp.ones(2), act=jnp.tanh)
    pairs, treedef = jax.tree_util.tree_flatten_with_path(record)
    assert [jax.tree_util.keystr(path) for path, _ in pairs] == [".args[0]"]
    assert jax.tree_util.tree_unflatten(treedef, [v for _, v in pairs]).kwargs == {"act": jnp.tanh}
    leaves, spec = optree.tree_flatten(record, namespace="lensify")
    assert optree.tree_unflatten(spec, leaves).kwargs["act"] is jnp.tanh
