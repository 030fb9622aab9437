"""lensify on flowjax flows and GPJax models, with the real paramax they are built on.

flowjax's masked autoregressive (MAF), block neural autoregressive (BNAF) and
coupling flows, and a GPJax conjugate posterior: unwrapped as paramax does,
described, set by value, a trained model's values loaded into a fresh one, and a
lensify freeze kept through the libraries' own training loops.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

flowjax = pytest.importorskip("flowjax")
gpx = pytest.importorskip("gpjax")
paramax = pytest.importorskip("paramax")

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flowjax.distributions import Normal  # noqa: E402
from flowjax.flows import (  # noqa: E402
    block_neural_autoregressive_flow,
    coupling_flow,
    masked_autoregressive_flow,
)
from flowjax.train import fit_to_data  # noqa: E402
from gpjax.parameters import (  # noqa: E402
    LowerTriangular,
    NonNegativeReal,
    PositiveReal,
    Real,
    SigmoidBounded,
)

import lensify as lf  # noqa: E402

DIM = 2
FLOWS: dict[str, Callable[[Any], Any]] = {
    "maf": lambda key: masked_autoregressive_flow(
        key, base_dist=Normal(jnp.zeros(DIM)), nn_width=4, nn_depth=1
    ),
    "bnaf": lambda key: block_neural_autoregressive_flow(
        key, base_dist=Normal(jnp.zeros(DIM)), nn_block_dim=2
    ),
    "coupling": lambda key: coupling_flow(
        key, base_dist=Normal(jnp.zeros(DIM)), nn_width=4, nn_depth=1
    ),
}
DATA = jr.normal(jr.key(7), (32, DIM))


def _leaves_equal(a: Any, b: Any, atol: float = 0.0) -> bool:
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if eqx.is_array(x):
            if not np.allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol):
                return False
        elif x is not y and x != y:
            return False
    return True


def _fit(flow: Any) -> Any:
    trained, _ = fit_to_data(jr.key(1), flow, DATA, max_epochs=2, show_progress=False)
    return trained


@pytest.fixture(scope="module", params=sorted(FLOWS))
def flow_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def trained_flow(flow_kind: str) -> Any:
    return _fit(FLOWS[flow_kind](jr.key(0)))


def test_lensify_never_imports_paramax_or_its_clients() -> None:
    code = (
        "import sys, lensify as lf, jax.numpy as jnp\n"
        "lf.rewrap(lf.Parameterize(jnp.exp, jnp.zeros(2)), jnp.ones(2))\n"
        "lf.describe({'a': lf.non_trainable(jnp.ones(2))})\n"
        "print(sorted(m for m in ('paramax', 'flowjax', 'gpjax') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- flowjax


def test_unwrap_of_a_flow_equals_paramax_unwrap(flow_kind: str) -> None:
    flow = FLOWS[flow_kind](jr.key(0))
    assert lf.contains_unwrappables(flow)
    ours = lf.unwrap(flow)
    assert _leaves_equal(ours, paramax.unwrap(flow))
    assert not lf.contains_unwrappables(ours)
    # flowjax's trees hold functions as leaves: equinox's filtered jit, as with paramax.
    assert _leaves_equal(eqx.filter_jit(lf.unwrap)(flow), ours, atol=1e-6)


def test_describe_and_count_a_flow(flow_kind: str) -> None:
    flow = FLOWS[flow_kind](jr.key(0))
    text = str(lf.describe(flow))
    assert ".base_dist.bijection.scale: Parameterize(softplus)" in text
    expected = {
        "maf": "Parameterize(where)",
        "bnaf": "WeightNormalization(weight=Parameterize(apply_mask), scale=Parameterize(",
        "coupling": "Parameterize(softplus)",
    }[flow_kind]
    assert expected in text
    n = sum(x.size for x in jax.tree.leaves(eqx.filter(flow, eqx.is_inexact_array)))
    counts = lf.count_parameters(flow)
    assert (counts.trainable, counts.frozen) == (n, 0)
    assert _leaves_equal(lf.unwrap(lf.simplify(flow)), lf.unwrap(flow))


def test_a_trained_flow_loads_into_a_fresh_one(flow_kind: str, trained_flow: Any) -> None:
    fresh = FLOWS[flow_kind](jr.key(3))
    loaded = lf.rewrap(fresh, paramax.unwrap(trained_flow))
    assert jax.tree.structure(loaded) == jax.tree.structure(fresh)
    np.testing.assert_allclose(
        loaded.log_prob(DATA), trained_flow.log_prob(DATA), rtol=1e-5, atol=1e-5
    )
    again = eqx.filter_jit(lf.rewrap)(fresh, lf.unwrap(trained_flow))
    np.testing.assert_allclose(again.log_prob(DATA), loaded.log_prob(DATA), rtol=1e-5, atol=1e-5)


def test_a_lensify_freeze_holds_through_fit_to_data(flow_kind: str) -> None:
    flow = FLOWS[flow_kind](jr.key(0))
    frozen = lf.non_trainable(flow, where=lf.at.bijection)
    # In a paramax tree the freeze is paramax's own, which fit_to_data partitions on.
    marks = lf.at.bijection.instances_of(paramax.NonTrainable).get_all(frozen)
    assert marks and all(type(m) is paramax.NonTrainable for m in marks)
    assert lf.count_parameters(frozen).frozen == lf.count_parameters(flow.bijection).trainable
    trained = _fit(frozen)
    assert _leaves_equal(trained.bijection, frozen.bijection)
    assert not _leaves_equal(trained.base_dist, frozen.base_dist)


def test_maf_masked_weights_are_set_by_value_keeping_their_hidden_raw_entries() -> None:
    flow = FLOWS["maf"](jr.key(0))
    weights = lf.at.instances_of(paramax.Parameterize).where(lambda p: p.fn is jnp.where)
    assert len(weights.get_all(flow)) == 2  # two masked layers, stacked over the flow layers
    new = weights.unwrapped().modify(flow, lambda v: 0.5 * v)
    for old, changed in zip(weights.get_all(flow), weights.get_all(new), strict=True):
        assert type(changed) is paramax.Parameterize and changed.fn is jnp.where
        mask, raw = old.args[0], old.args[1]
        assert changed.args[0] is mask
        np.testing.assert_allclose(changed.args[1], jnp.where(mask, 0.5 * raw, raw))
        np.testing.assert_allclose(paramax.unwrap(changed), 0.5 * paramax.unwrap(old))
    # A value where the mask hides the weight is refused, naming the key path.
    with pytest.raises(ValueError, match="outside the range of where") as info:
        weights.unwrapped().modify(flow, lambda v: v + 1.0)
    assert "masked_autoregressive_mlp" in str(info.value)  # the message starts with the path


def test_a_bnaf_weight_refuses_a_non_positive_diagonal_block() -> None:
    flow = FLOWS["bnaf"](jr.key(0))
    weights = lf.at.instances_of(paramax.WeightNormalization)
    value = lf.unwrap(weights.get_all(flow)[0])
    same = lf.rewrap(weights.get_all(flow)[0], value)
    assert _leaves_equal(lf.unwrap(same), value, atol=1e-5)
    with pytest.raises(ValueError, match="outside the range of apply_mask"):
        lf.rewrap(weights.get_all(flow)[0], -jnp.abs(value))


# ------------------------------------------------------------------------------ GPJax


def _dataset() -> Any:
    x = jnp.linspace(0.0, 1.0, 16)[:, None]
    y = jnp.sin(6.0 * x) + 0.1 * jr.normal(jr.key(2), x.shape)
    with pytest.warns(UserWarning, match="float64"):
        return gpx.Dataset(X=x, y=y)


def _posterior(lengthscale: float = 1.0) -> Any:
    kernel = gpx.kernels.RBF(lengthscale=lengthscale)
    prior = gpx.gps.Prior(mean_function=gpx.mean_functions.Constant(), kernel=kernel)
    return prior * gpx.likelihoods.Gaussian()


def _nmll(model: Any, data: Any) -> Any:
    return -gpx.objectives.conjugate_mll(model, data)


def _gp_fit(model: Any, data: Any) -> Any:
    fitted, _ = gpx.fit(
        model=model,
        objective=_nmll,
        train_data=data,
        optim=optax.adam(0.05),
        num_iters=20,
        verbose=False,
    )
    return fitted


def test_a_posterior_unwraps_as_paramax_and_is_described() -> None:
    post = _posterior()
    assert _leaves_equal(lf.unwrap(post), paramax.unwrap(post))
    text = str(lf.describe(post))
    assert ".prior.kernel.lengthscale: PositiveReal" in text
    assert ".likelihood.obs_stddev: NonNegativeReal" in text


def test_a_lengthscale_is_set_by_value_and_refused_out_of_range() -> None:
    post = _posterior()
    lengthscale = lf.at.prior.kernel.lengthscale.unwrapped()
    new = lengthscale.set(post, 0.5)
    assert type(new.prior.kernel.lengthscale) is PositiveReal
    np.testing.assert_allclose(lengthscale.get(new), 0.5, rtol=1e-6)
    for bad in (-1.0, 0.0, jnp.nan):
        with pytest.raises(ValueError, match="PositiveReal: a value is outside") as info:
            lengthscale.set(post, bad)
        assert any(".prior.kernel.lengthscale" in n for n in info.value.__notes__)


@pytest.mark.parametrize(
    ("param", "value", "bad"),
    [
        (PositiveReal(2.0), 3.0, -1.0),
        (NonNegativeReal(2.0), 0.25, -0.5),
        (SigmoidBounded(0.5, low=0.0, high=2.0), 1.5, 2.5),
        (Real(jnp.ones(2)), jnp.array([3.0, -1.0]), jnp.array([jnp.inf, 0.0])),
        (
            LowerTriangular(jnp.eye(2)),
            jnp.array([[2.0, 0.0], [0.5, 1.0]]),
            jnp.array([[2.0, 1.0], [0.5, 1.0]]),
        ),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, paramax.AbstractUnwrappable) else "",
)
def test_gpjax_parameters_are_set_by_their_bijector(param: Any, value: Any, bad: Any) -> None:
    new = lf.rewrap({"p": param}, {"p": value})
    assert type(new["p"]) is type(param)
    np.testing.assert_allclose(paramax.unwrap(new["p"]), value, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=f"{type(param).__name__}: a value is outside"):
        lf.rewrap({"p": param}, {"p": bad})


def test_a_fitted_posterior_loads_into_a_fresh_one_and_a_freeze_holds_through_fit() -> None:
    data = _dataset()
    post = _posterior()
    fitted = _gp_fit(post, data)
    fresh = _posterior(lengthscale=3.0)
    loaded = lf.rewrap(fresh, lf.unwrap(fitted))
    assert jax.tree.structure(loaded) == jax.tree.structure(fresh)
    x = jnp.linspace(0.0, 1.0, 5)[:, None]
    np.testing.assert_allclose(
        loaded.predict(x, data).mean, fitted.predict(x, data).mean, rtol=1e-5, atol=1e-5
    )
    frozen = lf.non_trainable(post, where=lf.at.prior.kernel)
    counts = lf.count_parameters(frozen)
    assert (counts.trainable, counts.frozen) == (2, 2)
    refitted = _gp_fit(frozen, data)
    assert _leaves_equal(lf.unwrap(refitted.prior.kernel), lf.unwrap(frozen.prior.kernel))
    assert not _leaves_equal(refitted.likelihood, frozen.likelihood)


# ------------------------------------------------------------------- paramax built-ins


def test_paramax_builtins_are_set_by_value() -> None:
    w = jnp.array([[3.0, 4.0], [1.0, 2.0]])
    tree = {
        "frozen": paramax.NonTrainable(jnp.ones(2)),
        "normed": paramax.WeightNormalization(w),
        "knots": paramax.RealToIncreasingOnInterval(
            jnp.zeros(3), (0.0, 1.0), min_width=0.1, include_endpoints="both"
        ),
    }
    values = {
        "frozen": jnp.array([2.0, 3.0]),
        "normed": jnp.array([[1.0, 0.0], [0.5, 0.5]]),
        "knots": jnp.array([0.0, 0.2, 0.5, 1.0]),
    }
    out = lf.rewrap(tree, values)
    assert {k: type(v) for k, v in out.items()} == {k: type(v) for k, v in tree.items()}
    assert _leaves_equal(paramax.unwrap(out), values, atol=1e-5)
    with pytest.raises(ValueError, match="row of zeros") as info:
        lf.rewrap(tree, {**values, "normed": jnp.zeros((2, 2))})
    assert str(info.value).startswith("at ['normed']: ")


def test_simplify_keeps_paramax_wrappers_paramax() -> None:
    x = jnp.ones(2)
    tree = paramax.NonTrainable(paramax.NonTrainable(paramax.Parameterize(jnp.exp, x)))
    simple = lf.simplify(tree)
    assert type(simple) is paramax.NonTrainable and type(simple.tree) is paramax.Parameterize
    stacked = paramax.Parameterize(jnp.exp, paramax.Parameterize(jnp.tanh, x))
    merged = lf.simplify(stacked)
    assert type(merged) is paramax.Parameterize and merged.args[0] is x
    np.testing.assert_allclose(paramax.unwrap(merged), paramax.unwrap(stacked))


def test_a_subclass_that_unwraps_otherwise_is_not_set_by_its_base_inverse() -> None:
    class Doubled(PositiveReal):
        def unwrap(self) -> Any:
            return 2 * super().unwrap()

    with pytest.raises(lf.NotInvertibleError, match=r"register_with_value\(Doubled"):
        lf.rewrap(Doubled(1.0), 3.0)

    def with_value(wrapper: Any, value: Any) -> Any:
        raw = jnp.log(jnp.expm1(jnp.asarray(value) / 2))  # NaN for a negative value
        return lf.at.attr("_unconstrained").set(wrapper, raw)

    lf.register_with_value(Doubled, with_value)
    np.testing.assert_allclose(paramax.unwrap(lf.rewrap(Doubled(1.0), 3.0)), 3.0, rtol=1e-6)
    with pytest.raises(ValueError, match="Doubled: a value is outside its range"):
        lf.rewrap(Doubled(1.0), -3.0)
