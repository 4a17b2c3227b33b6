"""Stage `var@<name>`: train the VAR var.depths.<name> on the tokenizer's token maps."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(..., help="A var.depths name, e.g. d4."), params: Path = _stage.PARAMS,
         root: Path = _stage.ROOT):
    from lsrs.runs import train_var

    def step(p, layout):
        if name not in p.var.depths:
            raise ValueError(f"var.depths has no {name!r} (known: {', '.join(p.var.depths)})")
        train_var(p, layout.tokenizer, layout.var(name), depth=name, log=_stage.echo)
        _stage.drop_scratch(layout.var(name))

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
