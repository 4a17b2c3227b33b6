"""Every table of the report, and writing each as Markdown, CSV and LaTeX.

`TABLES` is the order they are built in and `TABLE_INFO` what the README says of each; the tables
themselves live by subject (table1, ablation_tables, power_table).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from lsrs.report.ablation_tables import (table02, table03, table05, table06, table07, table08, table09, table10,
                                         table10b, table11)
from lsrs.report.formatting import Table, to_latex, to_markdown
from lsrs.report.power_table import table_power
from lsrs.report.results import Results
from lsrs.report.table1 import table01, table04

TABLES: tuple[Callable[[Results], Table], ...] = (table01, table02, table03, table04, table05, table06, table07,
                                                   table08, table09, table10, table10b, table11, table_power)
TABLE_INFO = {
    "table01": "The paper's reported Table 1 (cited, typed from the paper) with this run's plain VAR and "
               "VAR + LSRS rows for every depth and the FlexVAR and FlexVAR + LSRS (r_k scorer) rows, time "
               "relative to the same model's plain run.",
    "table02": "Pointwise vs pairwise scorer loss: FID, IS, sFID as M grows at ST = 2.",
    "table03": "LSRS from the first scale (ST = 1): FID and its change from the plain VAR as M grows.",
    "table04": "VAR and VAR + LSRS at every depth trained by this run (the paper's appendix B).",
    "table05": "FID, IS, sFID across M at ST = 2 (the data of Figure 3, left).",
    "table06": "FID, IS, sFID across ST at fixed M (the data of Figure 3, right).",
    "table07": "FID split into mean_diff² and trace_term (and the trace terms) across M.",
    "table08": "Top-k selection vs greedy (k = 1) at the topk sweep's first M (paper: 128).",
    "table09": "Top-k selection vs greedy (k = 1) at the topk sweep's second M (paper: 256).",
    "table10": "Scorer validation accuracy per scale, trained with vs without the first scale.",
    "table10b": "FID of LSRS with the scorer trained with vs without the first scale (companion of Table 10).",
    "table11": "Beyond the paper: per-scale attribution, ΔFID with M candidates at one scale only (main VAR and "
               "FlexVAR).",
    "power": "Power table: per LSRS row N, replicates, the ΔFID half-width (absolute, % of FID) against its limit, "
             "the image and scorer-replicate variance components, and the N and R that would meet the limit.",
}


def build_tables(res: Results) -> list[Table]:
    return [make(res) for make in TABLES]


def write_tables(res: Results, out_dir: str | Path, log: Callable[[str], None] = print) -> list[Path]:
    """Every table as <key>.md, <key>.csv and <key>.tex under out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for t in build_tables(res):
        t.data.to_csv(out / f"{t.key}.csv", index=False)
        (out / f"{t.key}.md").write_text(to_markdown(t))
        (out / f"{t.key}.tex").write_text(to_latex(t))
        written += [out / f"{t.key}.{ext}" for ext in ("md", "csv", "tex")]
        log(f"report: {t.key} ({len(t.display)} rows)")
    return written
