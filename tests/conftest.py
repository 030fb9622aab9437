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
