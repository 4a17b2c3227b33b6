"""Stage `baseline`: the plain VAR var.main on the evaluation set (evaluation.per_class per class)."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.pipeline import runs as R

    def step(p, layout):
        setup = R.EvalSetup.load(p, layout.tokenizer, layout.evaluator, layout.reference)
        var = R.load_var(layout.var(p.var.main), setup.vae)
        R.evaluate_model(setup, var, layout.baseline(p.var.main), log=_stage.echo)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
