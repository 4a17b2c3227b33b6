"""Stage `evaluator`: the feature extractor of the metrics. Mini: train the Fashion-MNIST classifier;
paper (evaluation.extractor = inception): check that the local Inception weights load."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.pipeline.evaluate import make_evaluator

    def step(ctx):
        make_evaluator(ctx)
        _stage.drop_scratch(ctx.layout.evaluator)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
