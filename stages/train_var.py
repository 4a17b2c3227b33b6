"""Stage `var@<name>`: train the VAR var.depths.<name> on the tokenizer's token maps (mini), or check
and link its checkpoint (paper: the official var_dNN.pth, sha256 and keys). With --family flexvar
(stage flex_var) the same for the FlexVAR of the flexvar section (no --name)."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(None, help="A var.depths name, e.g. d4 (family var)."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline import flex
    from lsrs.pipeline.runs import link_var, train_var

    def step(p, layout):
        layout = _stage.family_layout(family, layout)
        if family == "flexvar":
            out = layout.var(flex.FAMILY)
            flex.train_model(p, layout.tokenizer, out, log=_stage.echo)
        elif name not in p.var.depths:
            raise ValueError(f"var.depths has no {name!r} (known: {', '.join(p.var.depths)})")
        elif p.var.depths[name].checkpoint:
            link_var(p, name, layout.var(name), log=_stage.echo)
            return
        else:
            out = layout.var(name)
            train_var(p, layout.tokenizer, out, depth=name, log=_stage.echo)
        _stage.drop_scratch(out)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
