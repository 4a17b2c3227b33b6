"""Stage `scorer@<name>`: train the scorer run scorer.runs.<name> (real vs its VAR's generated maps)."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(..., help="A scorer.runs name, e.g. d4-pairwise."), params: Path = _stage.PARAMS,
         root: Path = _stage.ROOT):
    from lsrs.runs import train_scorer

    def step(p, layout):
        run = p.scorer.runs[name]
        out = layout.scorer(name)
        train_scorer(p, layout.tokenizer, layout.real_tokens, layout.generated_tokens(run.var), out,
                     log=_stage.echo, loss=run.loss, without_first_scale=run.without_first_scale)
        _stage.drop_scratch(out)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
