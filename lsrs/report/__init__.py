"""Reports: the paper's Tables 1-10 and Figures 1, 3-9, and a "paper vs this run" scorecard.

Every number in a report comes from the pipeline's result files, never from a hand-typed value, so
the tables, figures and scorecard are all computed from one loaded `Results` (results.py):

* ``metrics/main.json`` (the main run), ``metrics/sweeps/<family>.csv`` (the ablation families,
  each with its plain-VAR baseline rows and the paired-bootstrap interval of FID - FID(baseline)),
  ``metrics/scorer_analysis.json`` (per-scale scorer accuracy, loss and score histograms),
  ``metrics/cost.csv`` (time and memory vs M), ``<runs>/figures/*.png`` (the sample grids);
* ``lsrs/report/literature_table1.csv``: the only typed numbers, the paper's own Table 1, labelled
  as reported values with their source.

The run's configuration comes in as a `ReportSpec` of plain values (spec.py), never as the
pipeline's params: the report imports neither the pipeline nor torch, so it runs (and is tested)
anywhere pandas and matplotlib do. A missing input never stops a report: the tables and figures it
feeds say "not measured" and the README lists what was missing, so a partial pipeline still gives
a readable report. Reading a few small files and drawing a dozen figures takes seconds, so the
report stage is cheap to rerun.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from lsrs.report.claims import CLAIMS, Claim, claim_flexvar, scorecard
from lsrs.report.figures import FIGURE_INFO, FIGURES, write_figures
from lsrs.report.formatting import CI, Table, to_latex, to_markdown
from lsrs.report.power_table import Z95, power
from lsrs.report.readme import write_readme
from lsrs.report.results import Results, load_results
from lsrs.report.spec import ReportSpec
from lsrs.report.table1 import LITERATURE
from lsrs.report.tables import TABLE_INFO, TABLES, build_tables, write_tables

__all__ = ["CI", "CLAIMS", "FIGURES", "FIGURE_INFO", "LITERATURE", "TABLES", "TABLE_INFO", "Z95", "Claim",
           "ReportSpec", "Results", "Table", "build_tables", "claim_flexvar", "load_results", "make_report", "power",
           "scorecard", "to_latex", "to_markdown", "write_figures", "write_readme", "write_tables"]


def make_report(spec: ReportSpec, metrics_dir: str | Path = "metrics", runs_dir: str | Path = "runs/mini",
                out_dir: str | Path = "reports", tables: bool = True, figures: bool = True,
                log: Callable[[str], None] = print) -> list[Path]:
    """Load the results once, write the requested tables and/or figures and always the README."""
    res = load_results(spec, metrics_dir, runs_dir)
    for m in res.missing:
        log(f"report: missing {m}")
    written = []
    if tables:
        written += write_tables(res, out_dir, log)
    if figures:
        written += write_figures(res, out_dir, log)
    written.append(write_readme(res, out_dir))
    log(f"report: wrote {len(written)} files under {out_dir}")
    return written
