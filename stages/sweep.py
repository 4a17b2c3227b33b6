"""Stage `sweep@<family>`: one ablation family of ablations.sweeps (every M/ST/scorer/k combination);
with --family flexvar (stage flex_sweep@<name>) a family of flexvar.sweeps on the FlexVAR."""
import shutil
from pathlib import Path

import typer

import _stage

app = _stage.app(__doc__)


@app.command()
def main(name: str = typer.Option(..., help="An ablations.sweeps (or flexvar.sweeps) name, e.g. m_st2."),
         csv: Path = typer.Option(None, help="Also copy the results table here (DVC plots)."),
         params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline import flex
    from lsrs.pipeline.sweeps import run_sweep

    def step(p, layout):
        layout = _stage.family_layout(family, layout)
        sweeps, run = (p.flexvar.sweeps, flex.run_sweep) if family == "flexvar" else (p.ablations.sweeps, run_sweep)
        if name not in sweeps:
            raise ValueError(f"{family}: no sweep {name!r} (known: {', '.join(sweeps)})")
        rows = run(p, name, layout, layout.sweep(name), log=_stage.echo)
        disabled = family == "flexvar" and not p.flexvar.enabled  # an empty table: "not measured" in reports
        if csv is not None and (rows or disabled):  # rows: [] on torchrun ranks other than 0
            csv.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(layout.sweep(name) / "results.csv", csv)

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
