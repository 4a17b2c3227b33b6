"""Stage `var@<name>`: train the VAR var.depths.<name> on the tokenizer's token maps (mini), or check
and link its checkpoint (paper: the official var_dNN.pth, sha256 and keys)."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(..., help="A var.depths name, e.g. d4."), params: Path = _stage.PARAMS,
         root: Path = _stage.ROOT):
    from lsrs.runs import link_var, train_var

    def step(p, layout):
        if name not in p.var.depths:
            raise ValueError(f"var.depths has no {name!r} (known: {', '.join(p.var.depths)})")
        if p.var.depths[name].checkpoint:
            link_var(p, name, layout.var(name), log=_stage.echo)
            return
        train_var(p, layout.tokenizer, layout.var(name), depth=name, log=_stage.echo)
        _stage.drop_scratch(layout.var(name))

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
