"""Plot the benchmark JSON (``python -m benchmarks --json PATH``) as one panel per group.

    python docs/scripts/plot_benchmarks.py docs/assets/benchmarks.json \
        --out docs/assets/benchmarks.png

Each panel shows the time per call of every case against the number of leaves N, on
log-log axes. Cases in one panel were timed side by side in one process, so their
ratios are what to read; absolute times depend on the machine. Runs offline.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt

# The case each group is read against (as in benchmarks/__main__.py).
BASELINES = ("tree_map identity", "floor node", "plain dict")


def _load(path: Path) -> tuple[str, list[dict]]:
    data = json.loads(path.read_text("utf8"))
    if isinstance(data, list):  # a bare list of rows
        return "", data
    return data.get("machine", ""), data["rows"]


def _by_group(rows: list[dict]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    groups: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[row["group"]][row["case"]].append((int(row["n"]), float(row["seconds"])))
    return groups


def plot(rows: list[dict], out: Path, machine: str = "") -> None:
    groups = _by_group(rows)
    columns = min(3, len(groups))
    lines = math.ceil(len(groups) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(5.2 * columns, 3.8 * lines), squeeze=False)
    for ax, (group, cases) in zip(axes.flat, groups.items(), strict=False):
        for case, points in sorted(cases.items(), key=lambda item: item[0] not in BASELINES):
            points.sort()
            ns = [n for n, _ in points]
            micros = [s * 1e6 for _, s in points]
            style = {"color": "black", "linestyle": "--"} if case in BASELINES else {}
            ax.plot(ns, micros, marker="o", label=case, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(group, fontsize=10)
        ax.set_xlabel("leaves in the tree (N)")
        ax.set_ylabel("µs per call")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    if machine:
        figure.suptitle(machine, fontsize=8, y=0.995)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="the output of python -m benchmarks --json")
    parser.add_argument("--out", type=Path, default=Path("docs/assets/benchmarks.png"))
    args = parser.parse_args()
    machine, rows = _load(args.json)
    plot(rows, args.out, machine)


if __name__ == "__main__":
    main()
