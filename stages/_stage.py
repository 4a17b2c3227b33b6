"""What every DVC stage CLI shares: the --params/--root/--family options and `run`.

A stage is `python stages/<name>.py [options]`: it validates params.yaml, makes the stage context
(lsrs.pipeline.context: params, the folders under the run root runs/<profile>, the model family,
the runtime), calls one lsrs step with it and writes. A bad value or a missing input is one red
`error:` line and exit code 2, never a traceback (lsrs.frontend, shared with the `lsrs` CLI).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import typer

from lsrs.frontend import echo, run_step

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameter file (validated before any work).")
ROOT = typer.Option(Path("runs/mini"), "--root", help="Run root of the profile: runs/<profile>.")
FAMILY = typer.Option("var", "--family", help="Model family: var, or flexvar (params section flexvar, "
                      "folders under runs/<profile>/flexvar).")

__all__ = ["PARAMS", "ROOT", "FAMILY", "app", "run", "echo", "drop_scratch"]


def app(doc: str) -> typer.Typer:
    return typer.Typer(help=doc, add_completion=False, pretty_exceptions_enable=False)


def run(step: Callable, params: Path, root: Path, family: str = "var"):
    """`step(ctx)` under lsrs.frontend.run_step, then the stage's wall time in the log."""
    t0 = time.perf_counter()
    result = run_step(step, params, root, family)
    echo(f"{Path(sys.argv[0]).stem} {' '.join(sys.argv[1:])}: done in {time.perf_counter() - t0:.1f} s")
    return result


def drop_scratch(folder: Path, patterns: tuple[str, ...] = ("*.train.pth", "train_tokens.pt")) -> None:
    """Remove a finished training run's resume snapshot and token cache: DVC keeps the results, and
    these would only grow its cache (the run-cache restores finished stages; nothing resumes them)."""
    for pattern in patterns:
        for f in Path(folder).glob(pattern):
            f.unlink(missing_ok=True)  # torchrun ranks may race here
