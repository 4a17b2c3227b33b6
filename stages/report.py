"""Stage `report`: Tables 1-10, Figures 1 and 3-9 and the paper-vs-run scorecard (reports/README.md),
from metrics/ and the run's figures/; the same function as `lsrs report all`."""
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(metrics: Path = typer.Option(Path("metrics"), help="main.json, sweeps/, scorer_analysis.json, cost.csv."),
         out: Path = typer.Option(Path("reports"), help="Output folder of the tables, figures and README.md."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.report import make_report

    _stage.run(lambda p, layout: make_report(p, metrics, layout.root, out, log=_stage.echo), params, root)


if __name__ == "__main__":
    app()
