"""Doctests of a module whose optional dependency is missing are not collected."""

import importlib.util


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False


collect_ignore = [] if _installed("orbax") else ["lensify/checkpoint.py"]
