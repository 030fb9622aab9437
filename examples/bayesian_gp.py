"""Bayesian GP regression: sample constrained hyperparameters with blackjax NUTS.

A Gaussian process with an RBF kernel explains noisy observations of a sine. Its
three hyperparameters (lengthscale, signal variance, noise variance) must be
positive, so the model holds them as ``lf.positive`` constraints and the sampler
moves their raw parameters, which range over the whole real line. The posterior
over the raw parameters is the posterior over the values times the Jacobian of the
map between them: ``lf.unwrap_with_log_det`` gives both in one walk.

The same model is then sampled with numpyro's NUTS, which applies its own
transforms; the two posterior means agree within Monte Carlo error.

Needs blackjax and numpyro (``pip install -e '.[sampling,numpyro]'``). Set
``LENSIFY_EXAMPLE_SMALL=1`` for a quick run.
"""

from __future__ import annotations

import os
from typing import Any

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy import stats
from numpyro.infer import MCMC, NUTS

import lensify as lf

SMALL = os.environ.get("LENSIFY_EXAMPLE_SMALL") == "1"
WARMUP = 300 if SMALL else 1000
SAMPLES = 600 if SMALL else 4000
NAMES = ("lengthscale", "variance", "noise")
# Gamma(concentration, rate) priors on each hyperparameter.
PRIORS = {"lengthscale": (2.0, 2.0), "variance": (2.0, 1.0), "noise": (2.0, 10.0)}


def make_data(key: jax.Array, n: int = 12) -> tuple[jax.Array, jax.Array]:
    kx, kn = jax.random.split(key)
    x = jnp.sort(jax.random.uniform(kx, (n,), minval=0.0, maxval=5.0))
    return x, jnp.sin(x) + 0.2 * jax.random.normal(kn, (n,))


def marginal_log_likelihood(hyper: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> Any:
    distance = (x[:, None] - x[None, :]) / hyper["lengthscale"]
    kernel = hyper["variance"] * jnp.exp(-0.5 * distance**2)
    covariance = kernel + (hyper["noise"] + 1e-6) * jnp.eye(x.shape[0])
    return stats.multivariate_normal.logpdf(y, jnp.zeros_like(y), covariance)


def log_prior(hyper: dict[str, jax.Array]) -> Any:
    return sum(
        stats.gamma.logpdf(hyper[name], a, scale=1 / rate) for name, (a, rate) in PRIORS.items()
    )


def sample_with_lensify(x: jax.Array, y: jax.Array, key: jax.Array) -> dict[str, np.ndarray]:
    # The model: constrained hyperparameters, started at plausible values.
    model = {
        "lengthscale": lf.positive(1.0),
        "variance": lf.positive(1.0),
        "noise": lf.positive(0.1),
    }

    def log_density(tree: Any) -> Any:
        hyper, log_det = lf.unwrap_with_log_det(tree)
        return log_prior(hyper) + marginal_log_likelihood(hyper, x, y) + log_det

    @jax.jit
    def run(key: jax.Array) -> Any:
        warm_key, sample_key = jax.random.split(key)
        warmup = blackjax.window_adaptation(blackjax.nuts, log_density)
        (state, parameters), _ = warmup.run(warm_key, model, num_steps=WARMUP)
        step = blackjax.nuts(log_density, **parameters).step

        def one(state: Any, key: jax.Array) -> tuple[Any, Any]:
            state, _ = step(key, state)
            return state, state.position

        return jax.lax.scan(one, state, jax.random.split(sample_key, SAMPLES))[1]

    # The samples are wrapped models: unwrap each to its hyperparameters.
    values = jax.vmap(lf.unwrap)(run(key))
    return {name: np.asarray(values[name]) for name in NAMES}


def sample_with_numpyro(x: jax.Array, y: jax.Array, key: jax.Array) -> dict[str, np.ndarray]:
    def model() -> None:
        hyper = {
            name: numpyro.sample(name, dist.Gamma(a, rate)) for name, (a, rate) in PRIORS.items()
        }
        numpyro.factor("likelihood", marginal_log_likelihood(hyper, x, y))

    mcmc = MCMC(NUTS(model), num_warmup=WARMUP, num_samples=SAMPLES, progress_bar=False)
    mcmc.run(key)
    samples = mcmc.get_samples()
    return {name: np.asarray(samples[name]) for name in NAMES}


def main() -> None:
    x, y = make_data(jax.random.key(0))
    ours = sample_with_lensify(x, y, jax.random.key(1))
    theirs = sample_with_numpyro(x, y, jax.random.key(2))
    print(f"{'':12} {'lensify + blackjax':>20} {'numpyro':>10} {'4 MC errors':>12}")
    for name in NAMES:
        a, b = ours[name], theirs[name]
        # Correlated draws: a fifth of the draws as the effective sample size.
        error = np.sqrt(a.var() / (a.size / 5) + b.var() / (b.size / 5))
        print(f"{name:12} {a.mean():20.4f} {b.mean():10.4f} {4 * error:12.4f}")
        assert abs(a.mean() - b.mean()) <= 4 * error, f"{name}: the posterior means differ"
    print("The posterior means agree within Monte Carlo error.")


if __name__ == "__main__":
    main()
