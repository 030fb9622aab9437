"""Checkpoints with orbax: the standard checkpointer, and lensify.checkpoint on top of it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from builtin_wrappers import WRAPPERS

import lensify as lf

ocp = pytest.importorskip("orbax.checkpoint")


def abstract(tree: Any) -> Any:
    """The tree with each array leaf replaced by its shape and dtype."""
    return jax.eval_shape(lambda t: t, tree)


def assert_same_tree(restored: Any, tree: Any) -> None:
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(tree)
    pairs = zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(tree), strict=True)
    for got, want in pairs:
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_hoisted_function_leaves_no_empty_child() -> None:
    # orbax names every leaf and every empty node (None included) by its key path:
    # a function kept in the structure must not leave a None child behind.
    tree = lf.Parameterize(jnp.exp, jnp.ones(2))
    leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: x is None)
    assert [jax.tree_util.keystr(path) for path, _ in leaves] == [".args[0]"]


def test_hoisted_function_survives_a_map_over_empty_nodes() -> None:
    tree = lf.Parameterize(jnp.exp, jnp.ones(2), scale=None)
    names = jax.tree_util.tree_map_with_path(
        lambda path, _: jax.tree_util.keystr(path), tree, is_leaf=lambda x: x is None
    )
    assert names.fn is jnp.exp
    assert names.args == (".args[0]",)
    assert names.kwargs == {"scale": ".kwargs['scale']"}


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_orbax_standard_checkpointer_round_trip(name: str, tmp_path: Path) -> None:
    tree = WRAPPERS[name]()
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "ckpt", tree)
        checkpointer.wait_until_finished()
        restored = checkpointer.restore(tmp_path / "ckpt", abstract(tree))
    assert_same_tree(restored, tree)
    assert_same_tree(lf.unwrap(restored), lf.unwrap(tree))


# ------------------------------------------------------------------ lensify.checkpoint

checkpoint = pytest.importorskip("lensify.checkpoint")


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_checkpoint_round_trip(name: str, tmp_path: Path) -> None:
    tree = WRAPPERS[name]()
    checkpoint.save(tmp_path / "ckpt", tree).wait_until_finished()
    restored = checkpoint.restore(tmp_path / "ckpt", abstract(tree))
    assert_same_tree(restored, tree)


def test_checkpoint_restores_into_the_concrete_model(tmp_path: Path) -> None:
    tree = WRAPPERS["stack_model"]()
    checkpoint.save(tmp_path / "ckpt", tree).wait_until_finished()
    assert_same_tree(checkpoint.restore(tmp_path / "ckpt", tree), tree)


def test_checkpoint_save_is_asynchronous(tmp_path: Path) -> None:
    checkpointer = checkpoint.save(tmp_path / "ckpt", {"w": jnp.ones(3)})
    assert isinstance(checkpointer, ocp.AsyncCheckpointer)
    checkpointer.wait_until_finished()
    checkpointer.close()
    assert (tmp_path / "ckpt").is_dir()


def test_checkpoint_save_reuses_a_checkpointer(tmp_path: Path) -> None:
    first = checkpoint.save(tmp_path / "a", {"w": lf.positive(jnp.ones(2))})
    second = checkpoint.save(
        tmp_path / "b", {"w": lf.positive(2 * jnp.ones(2))}, checkpointer=first
    )
    assert second is first
    first.wait_until_finished()
    restored = checkpoint.restore(tmp_path / "b", {"w": lf.positive(jnp.ones(2))})
    np.testing.assert_allclose(lf.unwrap(restored)["w"], [2.0, 2.0], rtol=1e-6)


def test_checkpoint_save_refuses_an_existing_path_unless_forced(tmp_path: Path) -> None:
    checkpoint.save(tmp_path / "ckpt", {"w": jnp.ones(2)}).wait_until_finished()
    with pytest.raises(ValueError, match="exists"):
        checkpoint.save(tmp_path / "ckpt", {"w": jnp.zeros(2)}).wait_until_finished()
    checkpoint.save(tmp_path / "ckpt", {"w": jnp.zeros(2)}, force=True).wait_until_finished()
    np.testing.assert_array_equal(checkpoint.restore(tmp_path / "ckpt", {"w": jnp.ones(2)})["w"], 0)


def _saved(tmp_path: Path, tree: Any) -> Path:
    checkpoint.save(tmp_path / "ckpt", tree).wait_until_finished()
    return tmp_path / "ckpt"


def test_checkpoint_positive_into_interval_is_refused(tmp_path: Path) -> None:
    x = jnp.array([0.5, 0.8])
    path = _saved(tmp_path, {"layer": {"scale": lf.positive(x)}})
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"\['layer'\]\['scale'\]"):
        checkpoint.restore(path, {"layer": {"scale": lf.interval(x, 0.0, 1.0)}})


def test_checkpoint_other_interval_bounds_are_refused(tmp_path: Path) -> None:
    x = jnp.array([0.5, 0.8])
    path = _saved(tmp_path, [lf.interval(x, 0.0, 1.0)])
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"\[0\].*upper=2.0"):
        checkpoint.restore(path, [lf.interval(x, 0.0, 2.0)])


def test_checkpoint_other_array_bounds_are_refused(tmp_path: Path) -> None:
    x = jnp.array([0.5, 0.8])
    path = _saved(tmp_path, lf.interval(x, jnp.zeros(2), jnp.ones(2)))
    with pytest.raises(checkpoint.CheckpointMismatchError, match="<root>"):
        checkpoint.restore(path, lf.interval(x, jnp.zeros(2), jnp.array([1.0, 2.0])))


def test_checkpoint_other_parameterize_function_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path, {"p": lf.Parameterize(jnp.exp, jnp.zeros(2))})
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"\['p'\].*softplus"):
        checkpoint.restore(path, {"p": lf.Parameterize(jax.nn.softplus, jnp.zeros(2))})


def test_checkpoint_wrapper_around_a_plain_array_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path, {"w": jnp.ones((2, 2))})
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"\['w'\].*no wrapper"):
        checkpoint.restore(path, {"w": lf.WeightNormalization(jnp.ones((2, 2)))})


def test_checkpoint_other_simplex_axis_is_refused(tmp_path: Path) -> None:
    x = jnp.full((2, 2), 0.5)
    path = _saved(tmp_path, lf.simplex(x, axis=-1))
    with pytest.raises(checkpoint.CheckpointMismatchError, match="axis=-2"):
        checkpoint.restore(path, lf.simplex(x, axis=0))


def test_checkpoint_missing_leaf_in_target_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path, {"a": jnp.ones(2), "b": jnp.ones(2)})
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"\['b'\].*target does not"):
        checkpoint.restore(path, {"a": jnp.ones(2)})


def test_checkpoint_extra_leaf_in_target_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path, {"a": jnp.ones(2)})
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"\['c'\].*checkpoint does not"):
        checkpoint.restore(path, {"a": jnp.ones(2), "c": jnp.ones(2)})


def test_checkpoint_other_shape_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path, {"w": lf.positive(jnp.ones(3))})
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"\['w'\]\.raw.*\(3,\).*\(4,\)"):
        checkpoint.restore(path, {"w": lf.positive(jnp.ones(4))})


def test_checkpoint_plain_orbax_checkpoint_is_refused_with_a_hint(tmp_path: Path) -> None:
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "plain", {"w": jnp.ones(2)})
    with pytest.raises(checkpoint.CheckpointMismatchError, match="StandardCheckpointer"):
        checkpoint.restore(tmp_path / "plain", {"w": jnp.ones(2)})


def test_checkpoint_records_public_names_and_static_configuration() -> None:
    tree = {
        "knots": lf.RealToIncreasingOnInterval(
            jnp.zeros(3), (0.0, 1.0), min_width=0.1, include_endpoints="both"
        ),
        "p": lf.Parameterize(jnp.exp, jnp.zeros(2)),
    }
    assert checkpoint.wrapper_types(tree) == {
        "['knots']": {
            "type": "lensify.RealToIncreasingOnInterval",
            "static": {"interval": [0.0, 1.0], "min_width": 0.1, "include_endpoints": "both"},
        },
        "['p']": {"type": "lensify.Parameterize", "static": {"fn": "jax.numpy.exp"}},
    }


# ----------------------------------------------------------------------- sharded models

SHARDED = Path(__file__).with_name("checkpoint_sharding_check.py")


@pytest.fixture(scope="module")
def sharded_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, "--xla_force_host_platform_device_count=8"])
    env["JAX_PLATFORMS"] = "cpu"
    directory = tmp_path_factory.mktemp("sharded")
    done = subprocess.run(
        [sys.executable, str(SHARDED), str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=SHARDED.parent,
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not results:
        pytest.fail(f"{SHARDED.name} reported nothing:\n{done.stdout}\n{done.stderr}")
    return {r["check"]: r for r in results}


@pytest.mark.parametrize("check", ["orbax_standard_checkpointer", "lensify_checkpoint"])
def test_checkpoint_sharded_model(check: str, sharded_results: dict[str, dict[str, Any]]) -> None:
    assert check in sharded_results, f"{check} did not run"
    assert sharded_results[check]["ok"], sharded_results[check]["error"]


def test_checkpoint_missing_directory_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoint.restore(tmp_path / "nothing", {"w": jnp.ones(2)})


def test_checkpoint_restore_logs_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _saved(tmp_path, {"w": lf.positive(jnp.ones(2))})
    with caplog.at_level(logging.WARNING):
        checkpoint.restore(path, {"w": lf.positive(jnp.ones(2))})
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ------------------------------------------------ what a checkpoint records exactly

import functools  # noqa: E402
import shutil  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lensify.checkpoint as lc  # noqa: E402


def _save_at(path: Path, tree: Any) -> str:
    lc.save(str(path), tree).wait_until_finished()
    return str(path)


def test_restore_refuses_a_large_bound_that_differs_in_one_entry(tmp_path: Path) -> None:
    x = jnp.full(1001, 0.5)
    lo, hi = np.zeros(1001), np.ones(1001)
    hi2 = hi.copy()
    hi2[500] = 100.0
    path = _save_at(tmp_path / "i", {"p": lf.interval(x, lo, hi)})
    with pytest.raises(lc.CheckpointMismatchError, match=r"\['p'\]"):
        lc.restore(path, {"p": lf.interval(x, lo, hi2)})
    restored = lc.restore(path, {"p": lf.interval(x, lo, hi)})
    np.testing.assert_allclose(lf.unwrap(restored)["p"], 0.5, rtol=1e-6)


def test_restore_does_not_depend_on_print_options(tmp_path: Path) -> None:
    x = jnp.full(3, 0.5)
    lo, hi = np.zeros(3), np.array([1.0, 1.000000001, 2.0])
    path = _save_at(tmp_path / "p", {"p": lf.interval(x, lo, hi)})
    with np.printoptions(precision=4):
        restored = lc.restore(path, {"p": lf.interval(x, lo, hi)})
    assert type(restored["p"]) is lf.Interval


def test_array_record_tells_apart_values_past_the_eighth_digit() -> None:
    a = lf.interval(jnp.full(2, 0.5), 0.0, np.array([1.0, 1.0]))
    b = lf.interval(jnp.full(2, 0.5), 0.0, np.array([1.0, 1.000000001]))
    assert lc.wrapper_types(a) != lc.wrapper_types(b)


def test_restore_refuses_a_partial_of_another_function(tmp_path: Path) -> None:
    x = jnp.zeros(2)
    path = _save_at(tmp_path / "f", {"p": lf.Parameterize(functools.partial(jnp.exp), x)})
    with pytest.raises(lc.CheckpointMismatchError, match=r"\['p'\]"):
        lc.restore(path, {"p": lf.Parameterize(functools.partial(jax.nn.softplus), x)})


def test_function_records_tell_apart_lambdas_that_differ_in_a_constant() -> None:
    def record(fn: Any) -> Any:
        return lc.wrapper_types(lf.Parameterize(fn, jnp.zeros(2)))

    assert record(lambda v: v * 2.0) != record(lambda v: v * 3.0)
    assert record(lambda v: v * 2.0) == record(lambda v: v * 2.0)
    assert record(functools.partial(jnp.clip, min=0.0)) != record(
        functools.partial(jnp.clip, min=1.0)
    )

    def scaled(c: float) -> Any:
        return lambda v: v * c

    assert record(scaled(2.0)) != record(scaled(3.0))


def test_save_warns_of_a_function_it_cannot_identify(tmp_path: Path) -> None:
    class Opaque:
        pass

    thing = Opaque()
    with pytest.warns(UserWarning, match=r"\['p'\]"):
        _save_at(tmp_path / "w", {"p": lf.Parameterize(lambda v: (thing, v)[1], jnp.zeros(2))})


def test_restore_refuses_a_dtype_change(tmp_path: Path) -> None:
    path = _save_at(tmp_path / "d", {"a": jnp.array([1.7, 2.9])})
    with pytest.raises(lc.CheckpointMismatchError, match=r"\['a'\].*float32.*int32"):
        lc.restore(path, {"a": jnp.zeros(2, jnp.int32)})


def test_restore_of_a_checkpoint_missing_its_lensify_item_says_incomplete(
    tmp_path: Path,
) -> None:
    path = _save_at(tmp_path / "c", {"a": jnp.ones(2)})
    shutil.rmtree(os.path.join(path, lc.TYPES_ITEM))
    with pytest.raises(lc.CheckpointMismatchError, match="incomplete"):
        lc.restore(path, {"a": jnp.ones(2)})


def test_restore_right_after_an_unfinished_save_waits_for_it(tmp_path: Path) -> None:
    tree = {"a": jnp.arange(3.0), "p": lf.positive(jnp.ones(2))}
    lc.save(str(tmp_path / "u"), tree)  # no wait_until_finished
    restored = lc.restore(str(tmp_path / "u"), tree)
    np.testing.assert_array_equal(restored["a"], tree["a"])


@settings(max_examples=20)
@given(
    size=st.sampled_from([3, 64, 65, 2000]),
    index=st.integers(min_value=0),
    delta=st.sampled_from([1e-9, 1e-3, 1.0]),
)
def test_law_array_configuration_differing_anywhere_records_differently(
    size: int, index: int, delta: float
) -> None:
    lo = np.zeros(size)
    hi = np.ones(size)
    other = hi.copy()
    other[index % size] += delta
    x = jnp.full(size, 0.5)
    assert lc.wrapper_types(lf.interval(x, lo, hi)) != lc.wrapper_types(lf.interval(x, lo, other))
    assert lc.wrapper_types(lf.interval(x, lo, hi)) == lc.wrapper_types(
        lf.interval(x, lo, hi.copy())
    )


def _function_with_constant(kind: str, c: float) -> Any:
    if kind == "lambda":
        return eval(f"lambda v: v * {c!r}")  # a constant in the code itself
    if kind == "partial":
        return functools.partial(jnp.clip, min=c)

    def scaled(v: Any) -> Any:
        return v * c

    return scaled  # a closure over c


@settings(max_examples=30)
@given(
    kind=st.sampled_from(["lambda", "partial", "closure"]),
    a=st.floats(-1e6, 1e6, allow_nan=False),
    b=st.floats(-1e6, 1e6, allow_nan=False),
)
def test_law_functions_differing_only_in_a_constant_record_differently(
    kind: str, a: float, b: float
) -> None:
    def record(c: float) -> Any:
        return lc.wrapper_types(lf.Parameterize(_function_with_constant(kind, c), jnp.zeros(2)))

    assert (record(a) == record(b)) == (a == b and str(a) == str(b))


def test_restore_refuses_a_checkpoint_of_the_earlier_format(tmp_path: Path) -> None:
    tree = {"p": lf.positive(jnp.ones(2))}
    old = {**lc._summary(tree), "format": 1}
    checkpointer = ocp.Checkpointer(lc._handler())
    args = ocp.args.Composite(
        **{lc.TREE_ITEM: ocp.args.StandardSave(tree), lc.TYPES_ITEM: ocp.args.JsonSave(old)}
    )
    checkpointer.save(str(tmp_path / "old"), args=args)
    checkpointer.close()
    with pytest.raises(lc.CheckpointMismatchError, match=r"format 1.*save that model again"):
        lc.restore(str(tmp_path / "old"), tree)


def test_summary_names_leaves_by_jax_key_paths_from_one_walk(monkeypatch: Any) -> None:
    # The records and the leaves a save records come from one walk of the tree, and
    # the leaves' paths are JAX's (as orbax's are), in flatten order.
    tree = {
        "b": [lf.positive(jnp.ones(2)), None, (1.0, jnp.zeros(3))],
        "a": lf.Parameterize(jnp.exp, jnp.zeros(1)),
    }
    walks = []
    walk = lc._tree.walk
    monkeypatch.setattr(lc._tree, "walk", lambda t: walks.append(t) or walk(t))
    summary = lc._summary(tree)
    expected = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    assert list(summary["leaves"]) == expected
    assert list(summary["records"]) == ["['a']", "['b'][0]"]
    assert walks == [tree]
