"""The documentation runs: every Python block of docs/*.md and README.md, every example.

Markdown blocks are read with pytest-markdown-docs' own parser (superfences syntax), so
``pytest --markdown-docs --markdown-docs-syntax=superfences docs/*.md README.md`` runs
the same code. A block marked ``{.python continuation}`` continues the block before it;
``{.python notest}`` is shown but not run. Only the last block of each chain of
continuations is executed here: it holds the whole chain, so each line runs once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from pytest_markdown_docs.plugin import FenceSyntax, extract_fence_tests

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
# Packages some pages use that lensify does not need: a page skips without them.
OPTIONAL = {
    "flax",
    "orbax",
    "treescope",
    "equinox",
    "optax",
    "numpyro",
    "penzai",
    "paramax",
    "flowjax",
    "gpjax",
    "blackjax",
}


def _chains(page: Path) -> list[tuple[int, str]]:
    """(first line, code) of each chain of continued Python blocks on a page."""
    fences = extract_fence_tests(
        MarkdownIt(config="commonmark"),
        page.read_text("utf8"),
        start_line_offset=0,
        source_path=page,
        fence_syntax=FenceSyntax.superfences,
    )
    chains: list[tuple[int, str]] = []
    for fence in fences:
        if chains and fence.source.startswith(chains[-1][1]):
            chains[-1] = (chains[-1][0], fence.source)  # a continuation grows the chain
        else:
            chains.append((fence.start_line, fence.source))
    return chains


def _cases() -> list[pytest.param]:
    return [
        pytest.param(page, code, id=f"{page.relative_to(ROOT)}:{line}")
        for page in PAGES
        if page.exists()
        for line, code in _chains(page)
    ]


@pytest.mark.parametrize(("page", "code"), _cases())
def test_markdown_code_runs(page: Path, code: str) -> None:
    # The code is padded with blank lines, so tracebacks give the page's own line numbers.
    module = types.ModuleType(f"lensify_docs_{page.stem}")
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, str(page), "exec"), module.__dict__)
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in OPTIONAL:
            raise
        pytest.skip(f"{page.name} needs {error.name}, which is not installed")
    finally:
        del sys.modules[module.__name__]


def test_api_reference_lists_every_public_name() -> None:
    import lensify

    page = (ROOT / "docs" / "api.md").read_text("utf8")
    missing = [name for name in lensify.__all__ if f"::: lensify.{name}\n" not in page]
    assert not missing, f"add a '::: lensify.NAME' block to docs/api.md for each of {missing}"


def test_every_page_is_in_the_site() -> None:
    nav = (ROOT / "mkdocs.yml").read_text("utf8")
    missing = [p.name for p in PAGES if p.parent.name == "docs" and p.name not in nav]
    assert not missing, f"pages missing from the nav in mkdocs.yml: {missing}"


@pytest.mark.parametrize("script", EXAMPLES, ids=[s.name for s in EXAMPLES])
def test_example_runs_small(script: Path) -> None:
    env = {**os.environ, "LENSIFY_EXAMPLE_SMALL": "1", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"


def test_benchmark_plot_script_runs(tmp_path: Path) -> None:
    rows = [
        {"group": "unwrap", "case": case, "n": n, "seconds": seconds * n}
        for case, seconds in [("tree_map identity", 1e-7), ("lensify", 2e-7), ("paramax", 3e-6)]
        for n in (100, 1000)
    ]
    source = tmp_path / "bench.json"
    source.write_text(json.dumps({"machine": "test", "rows": rows}))
    out = tmp_path / "bench.png"
    script = ROOT / "docs" / "scripts" / "plot_benchmarks.py"
    result = subprocess.run(
        [sys.executable, str(script), str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"\x89PNG")
