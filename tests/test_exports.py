"""Every exception a public function can raise is a public name of lensify."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import lensify
import lensify.checkpoint
import lensify.numerics

# Raised inside the optic steps and turned into an OpticError before a user sees it.
_INTERNAL = {
    "StepError",
    "StepLookupError",
    "StepTracedError",
    "StepPredicateError",
    "StepValueError",
    # The base of lensify's located errors: never raised itself, caught by its subclasses.
    "LocatedError",
}
_PUBLIC_SUBMODULES = {
    "lensify.checkpoint": lensify.checkpoint,
    "lensify.numerics": lensify.numerics,  # ValueCheckError, raised by its checks
}


def _defined_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(lensify.__path__, "lensify."):
        if info.name.startswith("lensify.testing"):
            continue  # hypothesis is an optional extra; its checkers raise AssertionError
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__.startswith("lensify")
                and value.__name__ not in _INTERNAL
            ):
                found[value.__qualname__] = value
    return sorted(found.values(), key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", _defined_exceptions(), ids=lambda cls: cls.__name__)
def test_every_exception_is_public_under_the_module_it_names(cls: type) -> None:
    home = _PUBLIC_SUBMODULES.get(cls.__module__, lensify if cls.__module__ == "lensify" else None)
    assert home is not None, f"{cls.__name__}.__module__ is {cls.__module__!r}"
    assert getattr(home, cls.__name__) is cls
    assert cls.__name__ in home.__all__


def test_structure_mismatch_error_is_exported() -> None:
    with pytest.raises(lensify.StructureMismatchError, match=r"at \['b'\]"):
        lensify.rewrap({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": [2.0]})


def test_importing_lensify_starts_no_jax_backend() -> None:
    # jax.distributed.initialize must come before anything starts JAX's backend, and
    # a multi-host program imports lensify first.
    code = (
        "import jax._src.xla_bridge as xb\n"
        "def started(*a, **k):\n"
        "    raise SystemExit('importing lensify started a JAX backend')\n"
        "xb.backends = started\n"
        "import lensify, lensify.numerics, lensify.pytree, lensify.checkpoint\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
