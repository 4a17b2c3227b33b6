"""Stage `evaluator`: the feature extractor of the metrics. Mini: train the Fashion-MNIST classifier;
paper (evaluation.extractor = inception): check that the local Inception weights load."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.pipeline.runs import check_inception, train_evaluator

    def step(p, layout):
        if p.evaluation.extractor == "inception":
            check_inception(p, layout.evaluator, log=_stage.echo)
            return
        train_evaluator(p, layout.evaluator, log=_stage.echo)
        _stage.drop_scratch(layout.evaluator)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
