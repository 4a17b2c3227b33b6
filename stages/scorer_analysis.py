"""Stage `scorer_analysis`: per-scale accuracy, score distributions, gap and KL of every scorer run."""
import json
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(out: Path = typer.Option(Path("metrics/scorer_analysis.json"), help="All scorers' analysis."),
         csv: Path = typer.Option(Path("metrics/scorer_analysis.csv"), help="Per scorer and scale (DVC plots)."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    import pandas as pd

    from lsrs.pipeline.analysis import analyse_scorer

    def step(ctx):
        results = [analyse_scorer(ctx, name) for name in ctx.family.scorers]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
        rows = [{"scorer": r["scorer"], "var": r["var"], "loss": r["loss"],
                 "without_first_scale": r["without_first_scale"],
                 **{k: v for k, v in s.items() if not k.startswith(("bin_", "hist_"))}}
                for r in results for s in r["per_scale"]]
        pd.DataFrame(rows).to_csv(csv, index=False)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
