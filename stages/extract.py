"""Stage `extract` (and `flex_extract` with --family flexvar): the family tokenizer's token maps of the
real training images (tokens.real_per_class per class), as a token store."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline.scorers import extract

    _stage.run(extract, params, root, family)


if __name__ == "__main__":
    app()
