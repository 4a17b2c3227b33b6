"""Stage `scorer@<name>` (and `flex_scorer` with --family flexvar --name flexvar): train the family's
scorer run <name> (real vs its model's generated maps) R times (replicate r with seed train.seed + r,
in <out>/r<r>), or link its checkpoint as the one replicate."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(..., help="A scorer run: a scorer.runs name (e.g. d4-pairwise), or flexvar."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline.scorers import make_scorer

    def step(ctx):
        make_scorer(ctx, name)
        for folder in ctx.family.layout.scorer(name).glob("r*"):
            _stage.drop_scratch(folder)

    _stage.run(step, params, root, family)


if __name__ == "__main__":
    app()
