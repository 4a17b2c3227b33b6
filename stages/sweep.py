"""Stage `sweep@<family>`: one ablation family of ablations.sweeps (every M/ST/scorer/k combination)."""
import shutil
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(..., help="An ablations.sweeps name, e.g. m_st2."),
         csv: Path = typer.Option(None, help="Also copy the results table here (DVC plots)."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.ablations import run_sweep

    def step(p, layout):
        if name not in p.ablations.sweeps:
            raise ValueError(f"ablations.sweeps has no {name!r} (known: {', '.join(p.ablations.sweeps)})")
        rows = run_sweep(p, name, layout, layout.sweep(name), log=_stage.echo)
        if csv is not None and rows:  # rows: [] on torchrun ranks other than 0
            csv.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(layout.sweep(name) / "results.csv", csv)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
