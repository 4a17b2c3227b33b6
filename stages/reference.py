"""Stage `reference`: reference statistics of the real training images for FID, sFID, precision/recall."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.pipeline.evaluate import build_reference

    _stage.run(build_reference, params, root)


if __name__ == "__main__":
    app()
