"""Stage `sample_tokens@<name>` (and `flex_sample_tokens` with --family flexvar --name flexvar):
generated token maps of the family's model <name> (the scorer's negatives), as a token store."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(..., help="A model of the family: a var.depths name (e.g. d4), or flexvar."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline.scorers import sample_tokens

    _stage.run(lambda ctx: sample_tokens(ctx, name), params, root, family)


if __name__ == "__main__":
    app()
