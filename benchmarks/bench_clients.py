"""``rewrap`` beside ``unwrap`` on models as flowjax and GPJax build them.

Three models, each built with the real paramax, flowjax and GPJax (skipped if they are
not installed): a masked autoregressive flow (MAF), a coupling flow, and a GPJax
conjugate posterior. Setting a whole model by its values (``lf.rewrap``) should cost
no more than about twice evaluating it (``lf.unwrap``). ``n`` is the model's number of
leaves; the sizes asked for do not apply, so each model is timed once.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr

import lensify as lf
from benchmarks._harness import Row, best_time, identity_tree_map

BASELINE = "tree_map identity"


def _models() -> dict[str, Callable[[], Any]]:
    from flowjax.distributions import Normal
    from flowjax.flows import coupling_flow, masked_autoregressive_flow

    def maf() -> Any:
        return masked_autoregressive_flow(
            jr.key(0), base_dist=Normal(jnp.zeros(4)), nn_width=16, nn_depth=1
        )

    def coupling() -> Any:
        return coupling_flow(jr.key(0), base_dist=Normal(jnp.zeros(4)), nn_width=16, nn_depth=1)

    def posterior() -> Any:
        import gpjax as gpx

        kernel = gpx.kernels.RBF(lengthscale=jnp.ones(2))
        prior = gpx.gps.Prior(mean_function=gpx.mean_functions.Constant(), kernel=kernel)
        return prior * gpx.likelihoods.Gaussian()

    return {
        "flowjax masked autoregressive flow": maf,
        "flowjax coupling flow": coupling,
        "GPJax conjugate posterior": posterior,
    }


def _row_group(name: str, model: Any, rounds: int = 5) -> list[Row]:
    import paramax

    values = lf.unwrap(model)
    group = f"rewrap beside unwrap, {name}"
    cases = {
        BASELINE: lambda: identity_tree_map(model),
        "paramax unwrap": lambda: paramax.unwrap(model),
        "lensify unwrap": lambda: lf.unwrap(model),
        "lensify rewrap": lambda: lf.rewrap(model, values),
    }
    # The cases take turns, and each keeps its best round (see bench_unwrap).
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for case, fn in cases.items():
            best[case] = min(best[case], best_time(lambda fn=fn: jax.block_until_ready(fn())))
    n = len(jax.tree_util.tree_leaves(model))
    return [Row(group=group, case=case, n=n, seconds=seconds) for case, seconds in best.items()]


def run(sizes: list[int]) -> list[Row]:
    """Time each model once (``sizes`` do not apply); no rows without flowjax and GPJax."""
    del sizes
    if any(importlib.util.find_spec(m) is None for m in ("paramax", "flowjax", "gpjax")):
        return []
    rows: list[Row] = []
    for name, make in _models().items():
        rows += _row_group(name, make())
    return rows
