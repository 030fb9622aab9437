"""Doctests of a module whose optional dependency is missing are not collected."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("orbax") else ["lensify/checkpoint.py"]
