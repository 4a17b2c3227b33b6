"""Stage `baseline`: the plain VAR var.main on the evaluation set (evaluation.per_class per class)."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.pipeline.evaluate import evaluate_baseline

    _stage.run(evaluate_baseline, params, root)


if __name__ == "__main__":
    app()
