"""What both front-ends share (the `lsrs` CLI and the DVC stage scripts in stages/): one error rule
and one way to run a step. A bad value or a missing input is one red `error:` line and exit code 2,
never a traceback; the step gets a `StageContext` made once from the params file and the run root.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import typer

ERRORS = (ValueError, FileNotFoundError, RuntimeError, KeyError, EOFError)


def echo(msg: str) -> None:
    typer.echo(msg)
    sys.stdout.flush()


def fail(exc: BaseException):
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def guarded(fn: Callable, *args, **kwargs):
    """`fn(*args, **kwargs)` with the error rule applied."""
    try:
        return fn(*args, **kwargs)
    except ERRORS as exc:
        fail(exc)


def run_step(step: Callable, params: Path, root: Path, family: str = "var"):
    """Load and validate `params`, make the stage context for `root` and `family`, then `step(ctx)`."""
    from lsrs.pipeline.context import StageContext

    return guarded(lambda: step(StageContext.load(params, root, family, log=echo)))
