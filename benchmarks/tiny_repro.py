"""The tiny pipeline of tests/test_pipeline.py, kept: a git + DVC copy of SRC with params.yaml overlaid
by tests/data/tiny_params.yaml, after a full `dvc repro` (about 4 minutes on 2 cores).

    python benchmarks/tiny_repro.py SRC DEST [--overlay tests/data/tiny_params.yaml]

SRC is a checkout (e.g. an old commit: `git worktree add --detach /tmp/old <rev>`); its own lsrs/
runs the stages (PYTHONPATH=DEST), this venv's dvc runs the pipeline. Compare two such trees with
benchmarks/compare_runs.py.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from lsrs.pipeline.params import overlay

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--overlay", type=Path, default=REPO / "tests" / "data" / "tiny_params.yaml")
    a = ap.parse_args()
    if a.dest.exists():
        sys.exit(f"{a.dest} exists; choose a new folder")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "tmp", "cache")
    for name in ("lsrs", "stages", ".dvc"):
        shutil.copytree(a.src / name, a.dest / name, ignore=skip)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(a.src / name, a.dest / name)
    params = overlay(yaml.safe_load((a.src / "params.yaml").read_text()), yaml.safe_load(a.overlay.read_text()))
    (a.dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(a.dest),
           "DVC_NO_ANALYTICS": "1"}
    git = ["git", "-c", "user.name=tiny", "-c", "user.email=tiny@localhost"]
    for args in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "tiny"], [str(bin_dir / "dvc"), "repro"]):
        subprocess.run(args, cwd=a.dest, env=env, check=True)
    print(f"{a.dest}: tiny pipeline reproduced")


if __name__ == "__main__":
    main()
