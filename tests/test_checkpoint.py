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
