"""Stage `scorer@<name>`: train the scorer run scorer.runs.<name> (real vs its VAR's generated maps);
with --family flexvar (stage flex_scorer, no --name) the flexvar.scorer on r_k (real vs FlexVAR maps)."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(None, help="A scorer.runs name, e.g. d4-pairwise (family var)."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs import flex
    from lsrs.runs import train_scorer

    def step(p, layout):
        layout = _stage.family_layout(family, layout)
        if family == "flexvar":
            out = layout.scorer(flex.FAMILY)
            flex.train_scorer(p, layout.tokenizer, layout.real_tokens, layout.generated_tokens(flex.FAMILY), out,
                              log=_stage.echo)
        else:
            run = p.scorer.runs[name]
            out = layout.scorer(name)
            train_scorer(p, layout.tokenizer, layout.real_tokens, layout.generated_tokens(run.var), out,
                         log=_stage.echo, loss=run.loss, without_first_scale=run.without_first_scale)
        _stage.drop_scratch(out)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
