"""Checkpoints of a sharded model over 8 simulated CPU devices, run in a subprocess.

Run by tests/test_checkpoint.py with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
(JAX fixes its device count when it starts). Usage: ``python checkpoint_sharding_check.py
DIRECTORY``; prints one JSON line per check (its name, whether it passed, and the
traceback if not).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from sharding_check import N_DEVICES, mesh, same_sharding, sharded_model

import lensify as lf
import lensify.checkpoint


def abstract(tree: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), tree
    )


def assert_restored(restored: Any, model: Any) -> None:
    assert jax.device_count() == N_DEVICES, jax.devices()
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(model)
    pairs = zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(model), strict=True)
    for got, want in pairs:
        assert same_sharding(got, want), (got.sharding, want.sharding)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    # Rows of the weight-normalised matrix are spread over the model axis: 4 shards.
    weight = restored["layers"][0]["weight"].weight
    assert len({str(s.index) for s in weight.addressable_shards}) == 4


def orbax_standard_checkpointer(directory: str) -> None:
    model = sharded_model(mesh())
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.join(directory, "standard"), model)
        checkpointer.wait_until_finished()
        restored = checkpointer.restore(os.path.join(directory, "standard"), abstract(model))
    assert_restored(restored, model)


def lensify_checkpoint(directory: str) -> None:
    model = sharded_model(mesh())
    path = os.path.join(directory, "lensify")
    lensify.checkpoint.save(path, model).wait_until_finished()
    assert_restored(lensify.checkpoint.restore(path, abstract(model)), model)
    assert lf.describe(model)  # the model is still usable after the save


CHECKS = [orbax_standard_checkpointer, lensify_checkpoint]


def main() -> int:
    directory = sys.argv[1]
    ok = True
    for fn in CHECKS:
        try:
            fn(directory)
        except Exception:
            ok = False
            print(json.dumps({"check": fn.__name__, "ok": False, "error": traceback.format_exc()}))
        else:
            print(json.dumps({"check": fn.__name__, "ok": True, "error": ""}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
