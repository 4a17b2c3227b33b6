"""Stage `sweep@<name>` (and `flex_sweep@<name>` with --family flexvar): every run of the family's sweep
<name> (ablations.sweeps, or flexvar.sweeps), each M/ST/scorer/k combination against the plain model."""
import shutil
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(..., help="An ablations.sweeps (or flexvar.sweeps) name, e.g. m_st2."),
         csv: Path = typer.Option(None, help="Also copy the results table here (DVC plots)."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline.sweeps import run_sweep

    def step(ctx):
        rows = run_sweep(ctx, name)
        table = ctx.family.layout.sweep(name) / "results.csv"
        if csv is not None and ctx.runtime.is_main and table.is_file():  # a disabled family: an empty table
            csv.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(table, csv)
        return rows

    _stage.run(step, params, root, family)


if __name__ == "__main__":
    app()
