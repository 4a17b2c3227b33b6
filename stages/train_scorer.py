"""Stage `scorer@<name>`: train the scorer run scorer.runs.<name> (real vs its VAR's generated maps),
scorer.replicates times (replicate r with seed scorer.train.seed + r, in <out>/r<r>), or link its
checkpoint; with --family flexvar (stage flex_scorer, no --name) the flexvar.scorer on r_k."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(None, help="A scorer.runs name, e.g. d4-pairwise (family var)."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline import flex
    from lsrs.pipeline.runs import link_scorer, train_scorer

    def step(p, layout):
        layout = _stage.family_layout(family, layout)
        if family == "flexvar":
            out = layout.scorer(flex.FAMILY)
            flex.train_scorer(p, layout.tokenizer, layout.real_tokens, layout.generated_tokens(flex.FAMILY), out,
                              log=_stage.echo)
        else:
            run = p.scorer.runs[name]
            out = layout.scorer(name)
            if run.checkpoint:
                link_scorer(p, name, out, log=_stage.echo)
                return

            train_scorer(p, layout.tokenizer, layout.real_tokens, layout.generated_tokens(run.var), out,
                         log=_stage.echo, replicates=p.scorer.replicates, loss=run.loss,
                         without_first_scale=run.without_first_scale)
        for folder in out.glob("r*"):
            _stage.drop_scratch(folder)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
