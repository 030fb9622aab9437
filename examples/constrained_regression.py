"""Constrained regression with optax: a positive scale, simplex weights, optic masks.

The model explains ``y`` as a mixture of ``K`` learned tanh features:

    y ~ Normal(amplitude * tanh(x @ W) @ mixture + bias, noise)

* ``amplitude`` and ``noise`` must be positive: ``lf.positive``;
* ``mixture`` must lie on the simplex (non-negative, summing to one): ``lf.simplex``;
* only the feature matrix ``W`` gets weight decay: the mask comes from an optic;
* the constrained parameters learn ten times faster than the features: the
  ``optax.multi_transform`` labels come from another optic.

Each constraint starts exactly at the value it is given, and holds after every step
whatever the optimiser does, because the optimiser only ever sees the raw parameters.

Set ``LENSIFY_EXAMPLE_SMALL=1`` for a quick run.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import optax

import lensify as lf

SMALL = os.environ.get("LENSIFY_EXAMPLE_SMALL") == "1"
STEPS = 60 if SMALL else 1500
N_FEATURES = 4

# Where the constraints are, and where weight decay applies. Optics are values: they
# are defined once and used on the model, its gradients and the optimiser's masks.
CONSTRAINED = lf.at.instances_of(lf.AbstractConstraint)
FEATURES = lf.at["features"]


def make_data(key: jax.Array, n: int = 512) -> tuple[jax.Array, jax.Array]:
    kx, kw, kn = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, 2))
    true_w = jax.random.normal(kw, (2, N_FEATURES))
    true_mixture = jnp.array([0.6, 0.3, 0.1, 0.0])
    mean = 1.5 * jnp.tanh(x @ true_w) @ true_mixture + 0.2
    return x, mean + 0.1 * jax.random.normal(kn, (n,))


def init_model(key: jax.Array) -> dict[str, object]:
    return {
        "features": jax.random.normal(key, (2, N_FEATURES)),
        "mixture": lf.simplex(jnp.full(N_FEATURES, 1.0 / N_FEATURES)),
        "amplitude": lf.positive(jnp.array(1.0)),
        "noise": lf.positive(jnp.array(1.0)),
        "bias": jnp.zeros(()),
    }


def negative_log_likelihood(model: dict[str, object], x: jax.Array, y: jax.Array) -> jax.Array:
    p = lf.unwrap(model)
    mean = p["amplitude"] * jnp.tanh(x @ p["features"]) @ p["mixture"] + p["bias"]
    return jnp.mean(0.5 * ((y - mean) / p["noise"]) ** 2 + jnp.log(p["noise"]))


def make_optimiser(model: dict[str, object]) -> optax.GradientTransformation:
    labels = jax.tree_util.tree_map(
        lambda constrained: "constrained" if constrained else "free", CONSTRAINED.mask(model)
    )
    return optax.chain(
        optax.masked(optax.add_decayed_weights(1e-3), FEATURES.mask(model)),
        optax.multi_transform({"constrained": optax.adam(3e-2), "free": optax.adam(3e-3)}, labels),
    )


def main() -> None:
    key_data, key_model = jax.random.split(jax.random.key(0))
    x, y = make_data(key_data)
    model = init_model(key_model)
    assert jnp.allclose(lf.unwrap(model)["mixture"], 0.25)  # value-preserving constraints

    optimiser = make_optimiser(model)
    state = optimiser.init(model)

    @jax.jit
    def step(model: dict[str, object], state: optax.OptState) -> tuple[object, object, jax.Array]:
        loss, grads = jax.value_and_grad(negative_log_likelihood)(model, x, y)
        updates, state = optimiser.update(grads, state, model)
        return optax.apply_updates(model, updates), state, loss

    for i in range(STEPS + 1):
        model, state, loss = step(model, state)
        if i % max(1, STEPS // 6) == 0:
            print(f"step {i:5d}  negative log-likelihood {float(loss):8.4f}")

    fitted = lf.unwrap(model)
    mixture = fitted["mixture"]
    print(f"mixture   = {jnp.round(mixture, 3)} (sum {float(mixture.sum()):.6f}; the data's")
    print("            weights are 0.6, 0.3, 0.1 and 0, in some order of the features)")
    print(f"amplitude = {float(fitted['amplitude']):.3f}")
    print(f"noise     = {float(fitted['noise']):.3f} (data generated with 0.1)")
    print(f"constrained: {', '.join(jax.tree_util.keystr(p) for p in CONSTRAINED.paths(model))}")

    assert jnp.all(mixture >= 0) and jnp.allclose(mixture.sum(), 1.0, atol=1e-5)
    assert fitted["amplitude"] > 0 and fitted["noise"] > 0
    if not SMALL:
        assert abs(float(fitted["noise"]) - 0.1) < 0.03


if __name__ == "__main__":
    main()
