"""Stage `extract`: token maps of the real training images (tokens.real_per_class per class); with
--family flexvar (stage flex_extract) the FlexVAE maps of the same images."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline import flex
    from lsrs.pipeline.runs import extract_real_tokens

    def step(p, layout):
        layout = _stage.family_layout(family, layout)
        extract = flex.extract_real_tokens if family == "flexvar" else extract_real_tokens
        extract(p, layout.tokenizer, layout.real_tokens, log=_stage.echo)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
