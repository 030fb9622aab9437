"""Sampling over raw parameters with lf.unwrap_with_log_det reproduces closed-form
posteriors (blackjax NUTS with window adaptation); leaving the log-det out does not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy import stats

import lensify as lf

blackjax = pytest.importorskip("blackjax")

WARMUP = 300
SAMPLES = 1500


def _nuts(log_density: Callable[[Any], jax.Array], start: Any, seed: int) -> Any:
    """Samples of a pytree (the wrapped model itself: its raw leaves are the position)."""

    @jax.jit
    def run(key: jax.Array) -> Any:
        warm_key, sample_key = jax.random.split(key)
        warmup = blackjax.window_adaptation(blackjax.nuts, log_density)
        (state, parameters), _ = warmup.run(warm_key, start, num_steps=WARMUP)
        step = blackjax.nuts(log_density, **parameters).step

        def one(state: Any, key: jax.Array) -> tuple[Any, Any]:
            state, _ = step(key, state)
            return state, state.position

        _, positions = jax.lax.scan(one, state, jax.random.split(sample_key, SAMPLES))
        return positions

    return jax.vmap(lf.unwrap)(run(jax.random.key(seed)))


def _targets(log_p: Callable[[Any], jax.Array]) -> dict[str, Callable[[Any], jax.Array]]:
    def with_log_det(tree: Any) -> jax.Array:
        values, log_det = lf.unwrap_with_log_det(tree)
        return log_p(values) + log_det

    def without(tree: Any) -> jax.Array:
        return log_p(lf.unwrap(tree))

    return {"with": with_log_det, "without": without}


def _within_monte_carlo_error(samples: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> bool:
    # NUTS draws are correlated: an effective sample size of a fifth of the draws is
    # a conservative guess for these one-to-three-dimensional targets.
    error = sd / np.sqrt(SAMPLES / 5)
    return bool(np.all(np.abs(samples.mean(axis=0) - mean) <= 4 * error))


def _assert_the_log_det_is_needed(
    log_p: Callable[[Any], jax.Array], start: Any, name: str, mean: Any, sd: Any, seed: int
) -> None:
    # Sampled with the log-det, the posterior mean is right; without it, it is not.
    targets = _targets(log_p)
    right = np.asarray(_nuts(targets["with"], start, seed)[name])
    wrong = np.asarray(_nuts(targets["without"], start, seed)[name])
    assert _within_monte_carlo_error(right, mean, sd)
    assert not _within_monte_carlo_error(wrong, mean, sd)


def test_gamma_poisson_with_a_positive_rate() -> None:
    a, b, counts = 2.0, 1.0, jnp.array([0.0])  # little data: the prior matters

    def log_p(values: Any) -> jax.Array:
        rate = values["rate"]
        prior = stats.gamma.logpdf(rate, a, scale=1 / b)
        return prior + jnp.sum(stats.poisson.logpmf(counts, rate))

    start = {"rate": lf.positive(1.0)}
    shape, scale = a + float(counts.sum()), 1 / (b + counts.size)
    mean, sd = shape * scale, np.sqrt(shape) * scale
    _assert_the_log_det_is_needed(log_p, start, "rate", mean, sd, seed=0)


def test_beta_binomial_with_an_interval_probability() -> None:
    a, b, k, n = 1.0, 1.0, 3.0, 4.0

    def log_p(values: Any) -> jax.Array:
        p = values["p"]
        return stats.beta.logpdf(p, a, b) + k * jnp.log(p) + (n - k) * jnp.log1p(-p)

    start = {"p": lf.interval(0.5, 0.0, 1.0)}
    post_a, post_b = a + k, b + n - k
    mean = post_a / (post_a + post_b)
    sd = np.sqrt(post_a * post_b / ((post_a + post_b) ** 2 * (post_a + post_b + 1)))
    _assert_the_log_det_is_needed(log_p, start, "p", mean, sd, seed=1)


def test_dirichlet_multinomial_with_a_simplex() -> None:
    alpha, counts = jnp.ones(3), jnp.array([2.0, 0.0, 1.0])

    def log_p(values: Any) -> jax.Array:
        w = values["w"]
        return stats.dirichlet.logpdf(w, alpha) + jnp.sum(counts * jnp.log(w))

    start = {"w": lf.simplex(jnp.full(3, 1 / 3))}
    post = np.asarray(alpha + counts)
    total = post.sum()
    mean = post / total
    sd = np.sqrt(post * (total - post) / (total**2 * (total + 1)))
    _assert_the_log_det_is_needed(log_p, start, "w", mean, sd, seed=2)
