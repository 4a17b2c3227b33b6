"""Stage `sample_tokens@<name>`: generated token maps of the VAR var.depths.<name> (the scorer's negatives)."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(..., help="A var.depths name, e.g. d4."), params: Path = _stage.PARAMS,
         root: Path = _stage.ROOT):
    from lsrs.runs import sample_generated_tokens

    _stage.run(lambda p, layout: sample_generated_tokens(p, layout.tokenizer, layout.var(name),
                                                         layout.generated_tokens(name), log=_stage.echo),
               params, root)


if __name__ == "__main__":
    app()
