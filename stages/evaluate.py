"""Stage `evaluate`: LSRS at the top-level M and ST against the baseline; writes the summary metrics."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(summary: Path = typer.Option(Path("metrics/main.json"), help="Summary metrics (dvc exp show)."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.pipeline.evaluate import evaluate_main

    _stage.run(lambda ctx: evaluate_main(ctx, summary), params, root)


if __name__ == "__main__":
    app()
