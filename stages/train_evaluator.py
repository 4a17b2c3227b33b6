"""Stage `evaluator`: the mini profile's feature extractor, a Fashion-MNIST classifier."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.runs import train_evaluator

    def step(p, layout):
        train_evaluator(p, layout.evaluator, log=_stage.echo)
        _stage.drop_scratch(layout.evaluator)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
