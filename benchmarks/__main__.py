"""Run every ``benchmarks/bench_*.py`` and print ratio tables; ``--json PATH`` saves rows."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys
from collections import defaultdict
from pathlib import Path

import jax

from benchmarks._harness import Row

# The case each group's ratios are taken against: the tree_map identity, or for
# bench_records the hand-written node and the step over plain dicts.
BASELINES = ("tree_map identity", "floor node", "plain dict")


def _baseline(times: dict[str, float]) -> float | None:
    return next((times[case] for case in BASELINES if case in times), None)


def _time(seconds: float) -> str:
    # Per-node times are a fraction of a microsecond.
    return f"{seconds * 1e9:.0f} ns" if seconds < 1e-6 else f"{seconds * 1e6:.1f} µs"


def _modules(only: list[str]) -> list[str]:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    return [n for n in names if not only or any(o in n for o in only)]


def _print_table(rows: list[Row]) -> None:
    groups: dict[tuple[str, int], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row["group"], row["n"])].append(row)
    for (group, n), members in groups.items():
        base = _baseline({r["case"]: r["seconds"] for r in members})
        print(f"\n{group}  (N = {n})")
        for r in members:
            ratio = f"{r['seconds'] / base:8.2f}x" if base else ""
            print(f"  {r['case']:<44} {_time(r['seconds']):>14} {ratio}")


def markdown_tables(rows: list[Row]) -> str:
    """One Markdown table per group: a row per case, a column per tree size."""
    groups: dict[str, dict[str, dict[int, float]]] = {}
    for row in rows:
        groups.setdefault(row["group"], {}).setdefault(row["case"], {})[row["n"]] = row["seconds"]
    out = []
    for group, cases in groups.items():
        sizes = sorted({n for times in cases.values() for n in times})
        base = next((cases[case] for case in BASELINES if case in cases), {})
        out.append(f"### {group}\n")
        out.append("| case | " + " | ".join(f"N = {n}" for n in sizes) + " |")
        out.append("|---|" + "---|" * len(sizes))
        for case, times in cases.items():
            cells = [
                f"{_time(times[n])} ({times[n] / base[n]:.2f}x)" if n in base else "-"
                for n in sizes
            ]
            out.append(f"| {case} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("only", nargs="*", help="run only modules whose name contains this")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"python {platform.python_version()}, jax {jax.__version__}, {platform.machine()}")
    rows: list[Row] = []
    for name in _modules(args.only):
        module = importlib.import_module(f"benchmarks.{name}")
        module_rows = module.run(sizes)
        _print_table(module_rows)
        rows.extend(module_rows)
    if args.markdown:
        print("\n" + markdown_tables(rows))
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
