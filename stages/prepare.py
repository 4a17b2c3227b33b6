"""Stage `prepare`: validate every param and the data before anything long starts; write data.json."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.pipeline.prepare import prepare

    _stage.run(prepare, params, root)


if __name__ == "__main__":
    app()
