"""What every DVC stage CLI shares: the --params/--root options, loading, and one error rule.

A stage is `python stages/<name>.py [options]`: it validates params.yaml, calls one lsrs function
and writes under the run root (runs/<profile>, see lsrs.pipeline.layout). A bad value or a missing input is
one red `error:` line and exit code 2, never a traceback.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import typer

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameter file (validated before any work).")
ROOT = typer.Option(Path("runs/mini"), "--root", help="Run root of the profile: runs/<profile>.")
FAMILY = typer.Option("var", "--family", help="Model family: var, or flexvar (params section flexvar, "
                     "folders under runs/<profile>/flexvar).")
ERRORS = (ValueError, FileNotFoundError, RuntimeError, KeyError)
FAMILIES = ("var", "flexvar")


def family_layout(family: str, layout):
    """The layout the family's stage reads and writes (FlexVAR: runs/<profile>/flexvar/...)."""
    if family not in FAMILIES:
        raise ValueError(f"--family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return layout if family == "var" else layout.family(family)


def app(doc: str) -> typer.Typer:
    return typer.Typer(help=doc, add_completion=False, pretty_exceptions_enable=False)


def run(step: Callable, params: Path, root: Path):
    """Load and validate params, then `step(params, layout)`; errors become one line and exit 2."""
    from lsrs.pipeline.params import load_params
    from lsrs.pipeline.layout import Layout

    t0 = time.perf_counter()
    try:
        result = step(load_params(params), Layout.at(root))
        echo(f"{Path(sys.argv[0]).stem} {' '.join(sys.argv[1:])}: done in {time.perf_counter() - t0:.1f} s")
        return result
    except ERRORS as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)


def echo(msg: str) -> None:
    typer.echo(msg)
    sys.stdout.flush()


def drop_scratch(folder: Path, patterns: tuple[str, ...] = ("*.train.pth", "train_tokens.pt")) -> None:
    """Remove a finished training run's resume snapshot and token cache: DVC keeps the results, and
    these would only grow its cache (the run-cache restores finished stages; nothing resumes them)."""
    for pattern in patterns:
        for f in Path(folder).glob(pattern):
            f.unlink(missing_ok=True)  # torchrun ranks may race here
