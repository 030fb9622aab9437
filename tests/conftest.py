"""Test-session settings shared by every module."""

from hypothesis import HealthCheck, settings

# JAX compiles on first use, so one example can take far longer than the next: a
# per-example deadline would only make the suite flaky on a busy machine.
settings.register_profile(
    "lensify",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("lensify")


# ------------------------------------------------------------------- the slow marker

import pytest  # noqa: E402

# The tests that take seconds each (compiling, sampling, running examples and other
# processes), by file, and within a file by name: `pytest -m "not slow"` leaves them
# out for a quick run; `make test` runs everything.
_SLOW_FILES = {
    "test_docs.py",
    "test_sampling.py",
    "test_clients.py",
    "test_sharding.py",
    "test_multihost.py",
    "test_fuzz.py",
    "test_constraint_laws.py",
    "test_concurrency.py",
}
_SLOW_TESTS = {
    "test_law_non_trainable_either_order",
    "test_law_vmap_construction_is_invariant",
    "test_construction_under_jit_keeps_the_input_sharding",
    "test_interval_round_trip_within_its_tolerance",
    "test_checkpoint_sharded_model",
    "test_law_array_configuration_differing_anywhere_records_differently",
    "test_constraint_laws",
    "test_one_value_laws_of_constraints_that_saturate",
    "test_a_value_on_or_outside_a_closed_support_is_refused_or_kept",
    "test_law_log_det_of_every_constraint_equals_autodiff",
    "test_law_the_chain_rule_holds_for_drawn_stacks",
    "test_a_user_wrapper_defines_log_det_and_a_wrong_one_fails_the_laws",
    "test_wrapper_laws_hold_for_weight_normalization",
    "test_wrapper_laws_hold_for_real_to_increasing_on_interval",
    "test_wrapper_law_failure_names_vmap_construction_invariance",
    "test_wrapper_law_failure_names_the_gradient_law",
    "test_value_law_failure_names_put_get",
    "test_simplify_preserves_the_gradient",
    "test_vmap_construction_invariance",
    "test_construction_under_vmap",
    "test_real_to_increasing_matches_paramax",
    "test_log_det_is_finite_where_the_constraint_saturates",
    "test_simplify_composition_law_value_and_gradient",
    "test_equinox_filter_grad",
    "test_counter_example_is_shrunk",
    "test_compiled_maps_agree_with_the_eager_maps",
    "test_linen_params_wrap_freeze_and_train",
    "test_value_preserving_under_jit_and_with_value",
    # each starts a Python process of its own
    "test_importing_lensify_does_not_import_numpyro",
    "test_import_lensify_imports_no_optional_package",
    "test_importing_without_hypothesis_says_to_install_the_extra",
    "test_lensify_never_imports_paramax_or_its_clients",
    "test_interval_near_the_float32_limit_under_jit_and_grad",
    "test_optax_update_keeps_wrapper_types",
    "test_optax_update_keeps_every_wrapper",
}


# The tests that start processes with many CPU devices (or several processes): on two
# cores they must not share the machine with other tests, or XLA's collectives time
# out. `make test` runs the others two at a time (pytest-xdist), then these alone.
_SERIAL_FILES = {"test_sharding.py", "test_multihost.py"}
_SERIAL_TESTS = {
    "test_checkpoint_sharded_model",
    "test_construction_under_jit_keeps_the_input_sharding",
    "test_example_runs_small[sharding.py]",
    "test_example_runs_small[multihost.py]",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes seconds; left out by -m 'not slow'")
    config.addinivalue_line("markers", "serial: runs alone (many CPU devices or processes)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = getattr(item, "originalname", None) or item.name
        if item.path.name in _SLOW_FILES or name in _SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if item.path.name in _SERIAL_FILES or {name, item.name} & _SERIAL_TESTS:
            item.add_marker(pytest.mark.serial)
