"""Stage `extract`: token maps of the real training images (tokens.real_per_class per class)."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.runs import extract_real_tokens

    _stage.run(lambda p, layout: extract_real_tokens(p, layout.tokenizer, layout.real_tokens, log=_stage.echo),
               params, root)


if __name__ == "__main__":
    app()
