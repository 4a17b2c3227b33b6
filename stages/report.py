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
    from lsrs.pipeline.report_spec import report_spec
    from lsrs.report import ReportSpec, make_report

    _stage.run(lambda ctx: make_report(ReportSpec.from_dict(report_spec(ctx.params)), metrics, ctx.layout.root, out,
                                       log=ctx.log), params, root)


if __name__ == "__main__":
    app()
