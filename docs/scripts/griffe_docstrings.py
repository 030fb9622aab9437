"""A griffe extension so lensify's docstrings render well in the API reference.

lensify's docstrings are written for both ``pytest --doctest-modules`` and the site:

* an ``Example:`` section is read as griffe's ``Examples:`` section, so its ``>>>``
  lines render as code rather than as a Markdown block quote;
* Sphinx roles (``:class:`NonTrainable```, ``:meth:`~Optic.get```) render as code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:class|meth|func|data|attr|exc|mod|obj):`(~?)([^`]+)`")


def _role_as_code(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


class LensifyDocstrings(griffe.Extension):
    """Rewrite each docstring before griffe parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
        obj.docstring.value = _ROLE.sub(_role_as_code, text)
