"""Records in treescope: constructor calls with their fields, wrappers with their value."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import pytest
from builtin_wrappers import WRAPPERS

import lensify as lf
from lensify._treescope import unwrapped_summary

treescope = pytest.importorskip("treescope")


def render(tree: Any) -> str:
    return str(treescope.render_to_text(tree))


def wrapper_names(stack: Any) -> list[str]:
    """Every wrapper name in a describe stack, outermost first."""
    return [stack.wrapper, *(n for _, inner in stack.inner for n in wrapper_names(inner))]


def test_import_lensify_imports_no_optional_package() -> None:
    optional = ["treescope", "orbax", "flax", "numpyro", "equinox", "hypothesis", "penzai"]
    code = f"import sys, lensify\nprint([m for m in {optional!r} if m in sys.modules])\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_every_record_renders_as_a_constructor_call(name: str) -> None:
    tree = WRAPPERS[name]()
    text = render(tree)
    assert "object at 0x" not in text
    assert "PyTree children" not in text
    for leaf in jax.tree_util.tree_leaves(tree, is_leaf=lf.is_unwrappable):
        if lf.is_unwrappable(leaf):
            assert f"{type(leaf).__name__}(" in text


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_describe_and_treescope_agree(name: str) -> None:
    tree = WRAPPERS[name]()
    text = render(tree)
    for entry in lf.describe(tree).wrapped:
        for wrapper in wrapper_names(entry.stack):
            assert f"{wrapper}(" in text
    for wrapper in jax.tree_util.tree_leaves(tree, is_leaf=lf.is_unwrappable):
        if lf.is_unwrappable(wrapper):
            value_summary = lf.describe(lf.unwrap(wrapper)).entries[0].summary
            assert f"# unwraps to {value_summary}" in text


def test_constraint_shows_its_unwrapped_values() -> None:
    text = render({"scale": lf.positive(jnp.array([0.5, 1.5]))})
    assert "'scale': Positive(  # unwraps to f32[2] [0.5, 1.5]" in text
    assert "raw=" in text


def test_interval_shows_its_static_bounds() -> None:
    text = render(lf.interval(jnp.array([0.5]), 0.0, 2.0))
    assert "lower=0.0," in text
    assert "upper=2.0," in text


def scaled_softplus(x: jax.Array, scale: jax.Array) -> jax.Array:
    return scale * jax.nn.softplus(x)


def test_parameterize_renders_as_its_call() -> None:
    text = render(lf.Parameterize(scaled_softplus, jnp.zeros(2), scale=jnp.array(2.0)))
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "Parameterize(  # unwraps to f32[2] [1.3863, 1.3863]"
    assert lines[1] == "scaled_softplus,"
    assert lines[3].startswith("scale=")


def test_static_array_bounds_render_as_arrays() -> None:
    text = render(lf.interval(jnp.array([0.5, 0.5]), jnp.zeros(2), jnp.array([1.0, 2.0])))
    assert "lower=array([0., 0.])," in text
    assert "upper=array([1., 2.])," in text


def test_weight_normalization_shows_its_scale_as_a_nested_call() -> None:
    text = render(lf.WeightNormalization(jnp.array([[3.0, 4.0]])))
    assert "WeightNormalization(  # unwraps to f32[1,2] [[3., 4.]]" in text
    assert "scale=Parameterize(  # unwraps to f32[1,1] [[5.]]" in text


def test_large_value_summary_shows_its_range() -> None:
    assert unwrapped_summary(lf.positive(jnp.linspace(1.0, 2.0, 50))) == "f32[50] in [1, 2]"


def test_abstract_wrapper_summary_shows_dtype_and_shape() -> None:
    abstract = jax.eval_shape(lambda: lf.positive(jnp.ones(3)))
    assert unwrapped_summary(abstract) == "f32[3]"
    assert "# unwraps to f32[3]\n" in render(abstract)


def test_traced_wrapper_summary_shows_dtype_and_shape() -> None:
    seen = []

    @jax.jit
    def f(x: jax.Array) -> jax.Array:
        seen.append(unwrapped_summary(lf.Parameterize(jnp.exp, x)))
        return x

    f(jnp.ones(2))
    assert seen == ["f32[2]"]


def test_placeholder_record_renders_without_a_summary() -> None:
    placeholders = jax.tree_util.tree_map(lambda _: None, lf.positive(jnp.ones(2)))
    assert render(placeholders) == "Positive(raw=None)"


def test_round_trip_mode_marks_a_record_whose_init_takes_other_arguments() -> None:
    text = str(treescope.render_to_text(lf.positive(jnp.ones(1)), roundtrip_mode=True))
    assert text.startswith("<lensify.")
    assert text.rstrip().endswith(")>")
    assert "unwraps to" not in text


def test_round_trip_mode_names_a_record_built_from_its_fields() -> None:
    text = str(treescope.render_to_text(lf.NonTrainable(jnp.ones(1)), roundtrip_mode=True))
    assert text.startswith("lensify.")
    assert "NonTrainable(" in text
    assert not text.rstrip().endswith(">")


@attrs.frozen
class Shifted(lf.AbstractUnwrappable):
    x: jax.Array
    shift: float = lf.field(static=True, default=1.0)

    def unwrap(self) -> jax.Array:
        return self.x + self.shift


def test_user_wrapper_renders_with_its_fields() -> None:
    text = render(Shifted(jnp.array([1.0, 2.0]), shift=0.5))
    assert text.splitlines()[0] == "Shifted(  # unwraps to f32[2] [1.5, 2.5]"
    assert "shift=0.5," in text


def test_html_rendering_names_the_wrappers() -> None:
    tree = {"w": lf.WeightNormalization(jnp.ones((2, 2)))}
    html = treescope.render_to_html(tree, compressed=False)
    assert "WeightNormalization" in html
    assert "unwraps to f32[2,2]" in html
