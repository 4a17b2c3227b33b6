"""Stage `var@<name>` (and `flex_var` with --family flexvar --name flexvar): train the family's model
<name> on the tokenizer's token maps (mini), or check and link its official checkpoint (paper:
var_dNN.pth or FlexVARd24-epo349.pth, sha256 and keys)."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(..., help="A model of the family: a var.depths name (e.g. d4), or flexvar."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline.models import make_model

    def step(ctx):
        make_model(ctx, name)
        _stage.drop_scratch(ctx.family.layout.var(name))

    _stage.run(step, params, root, family)


if __name__ == "__main__":
    app()
