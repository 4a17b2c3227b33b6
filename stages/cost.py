"""Stage `cost`: Figure 6, time and peak memory of one batch with CFG as M grows."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(csv: Path = typer.Option(Path("metrics/cost.csv"), help="One row per M."),
         device: str = typer.Option(None, help="cpu or cuda[:i] (default: runtime.device of the params)."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    import pandas as pd

    from lsrs.pipeline.analysis import measure_cost

    def step(ctx):
        rows = measure_cost(ctx, device=device)
        if not rows:  # a torchrun rank other than 0
            return
        csv.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(csv, index=False)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
