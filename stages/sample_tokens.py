"""Stage `sample_tokens@<name>`: generated token maps of the VAR var.depths.<name> (the scorer's
negatives); with --family flexvar (stage flex_sample_tokens, no --name) those of the FlexVAR."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(None, help="A var.depths name, e.g. d4 (family var)."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline import flex
    from lsrs.pipeline.runs import sample_generated_tokens

    def step(p, layout):
        layout = _stage.family_layout(family, layout)
        if family == "flexvar":
            flex.sample_generated_tokens(p, layout.tokenizer, layout.var(flex.FAMILY),
                                         layout.generated_tokens(flex.FAMILY), log=_stage.echo)
        else:
            sample_generated_tokens(p, layout.tokenizer, layout.var(name), layout.generated_tokens(name),
                                    log=_stage.echo)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
