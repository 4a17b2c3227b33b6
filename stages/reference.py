"""Stage `reference`: reference statistics of the real training images for FID, sFID, precision/recall."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.pipeline.runs import build_reference

    _stage.run(lambda p, layout: build_reference(p, layout.evaluator, layout.reference, log=_stage.echo),
               params, root)


if __name__ == "__main__":
    app()
