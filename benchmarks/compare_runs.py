"""Compare two pipeline run trees file by file: are they the same run, up to measured times?

    python benchmarks/compare_runs.py OLD_REPO NEW_REPO [--dirs runs metrics reports]

For every file under the given folders of both trees: byte-identical, or (JSON and CSV) equal once
the measured-time and memory fields are dropped (keys or columns containing seconds, time, peak,
rss, mib), or different; files in only one tree are listed. Used to show that a refactor changes no
number: run the tiny pipeline (`python benchmarks/tiny_repro.py`) on the old and the new code on
one machine and compare (training repeats bit for bit on one kind of CPU, not across CPUs).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

TIMING = ("seconds", "time", "peak", "rss", "mib")


def is_timing(key: str) -> bool:
    return any(t in key.lower() for t in TIMING)


def without_timing(obj):
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if not is_timing(k)}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


def same_but_timing(a: Path, b: Path) -> bool:
    if a.suffix == ".json":
        return without_timing(json.loads(a.read_text())) == without_timing(json.loads(b.read_text()))
    if a.suffix == ".csv":
        x, y = pd.read_csv(a), pd.read_csv(b)
        keep = [c for c in x.columns if not is_timing(c)]
        return list(x.columns) == list(y.columns) and x[keep].equals(y[keep])
    return False


def files(root: Path, dirs: list[str]) -> set[str]:
    return {str(p.relative_to(root)) for d in dirs for p in (root / d).rglob("*") if p.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--dirs", nargs="+", default=["runs", "metrics", "reports"])
    a = ap.parse_args()
    old, new = files(a.old, a.dirs), files(a.new, a.dirs)
    same, timing, differ = [], [], []
    for f in sorted(old & new):
        x, y = a.old / f, a.new / f
        (same if x.read_bytes() == y.read_bytes() else timing if same_but_timing(x, y) else differ).append(f)
    tensors = [f for f in same if f.endswith((".pth", ".pt", ".npy", ".npz"))]
    print(f"byte-identical: {len(same)} (of them {len(tensors)} .pth/.pt/.npy/.npz); equal but for measured "
          f"times: {len(timing)}; different: {len(differ)}")
    for title, names in (("different", differ), ("only in old", sorted(old - new)), ("only in new", sorted(new - old))):
        if names:
            print(f"{title}:\n  " + "\n  ".join(names))


if __name__ == "__main__":
    main()
