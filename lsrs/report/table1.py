"""Tables 1 and 4: the paper's model comparison next to this run's plain and LSRS rows at every depth.

Table 1 holds the report's only typed numbers, the paper's own rows, read from the
literature_table1.csv beside this module and labelled "paper, Table 1 (reported)"; every other row
is measured, with Time relative to the plain model of the same depth and sweep. Table 4 is the same
rows without the paper's and the main run's.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lsrs.report.formatting import CI, DASH, REPS, SOURCE, Table, _num
from lsrs.report.measured import _common_notes, _measured_row, _table
from lsrs.report.results import (FLEX, Results, _at, _base, _depth_scorers, _flex_family, _main_series, _rows, _val,
                                 _var_label, sweep_of)

LITERATURE = Path(__file__).with_name("literature_table1.csv")
PAPER_TABLE1_M = (4, 128)  # Tables 1 and 4's LSRS rows when the depth family names no M
FLEX_TABLE1_M = (2, 4)  # Table 1's FlexVAR + LSRS rows
TABLE1_METRICS = (("FID↓", "fid", 3), ("IS↑", "is", 3), ("Pre↑", "precision", 3), ("Rec↑", "recall", 3))


def _table1_ms(res: Results) -> tuple[int, ...]:
    sweep = res.spec.ablations.sweeps.get(sweep_of(res, "depth"))
    return tuple(sweep.M) if sweep else PAPER_TABLE1_M


def _depth_rows(res: Results, var: str, with_main_run: bool) -> tuple[list[tuple[dict, dict]], list[str]]:
    """Tables 1/4's measured rows of one depth: VAR, then + LSRS at Table 1's M values (m_st2 for
    var.main, the depth family otherwise), Time relative to that depth's plain VAR."""
    rows, notes = [], []
    steps = res.spec.num_scales

    def add(label: str, r, base) -> None:
        rel = None
        if base is not None and _val(r, "seconds_per_image") and _val(base, "seconds_per_image"):
            rel = float(r["seconds_per_image"]) / float(base["seconds_per_image"])
        rows.append(_measured_row(res, {"Model": label}, r, TABLE1_METRICS, {
            "Param": (None, DASH), "Step": (steps, str(steps)), "Time": (rel, _num(rel, 2))}))

    if with_main_run and res.main is not None and res.main.get("var") == var:
        base = _main_series(res.main, "baseline")
        add(f"{_var_label(var)} (main run)", base, base)
        add(f"+ LSRS M={res.main['M']}, ST={res.main['ST']} (main run)", _main_series(res.main, "lsrs"), base)
    family = sweep_of(res, "m_curve" if var == res.main_var else "depth")
    scorer = _depth_scorers(res).get(var)
    base, lsrs = _base(res, family, var), _rows(res, family, var=var, scorer=scorer)
    if base is None:
        notes.append(f"{_var_label(var)}: no plain-VAR row in sweep family {family} (not measured).")
        return rows, notes
    add(f"{_var_label(var)} ({family} sweep)", base, base)
    for m in _table1_ms(res):
        r = _at(lsrs, "M", m)
        if r is None:
            notes.append(f"{_var_label(var)} + LSRS M={m}: not measured (family {family}).")
        else:
            add(f"+ LSRS M={m}, ST={int(r['ST'])}", r, base)
    return rows, notes


def _flex_rows(res: Results) -> tuple[list[tuple[dict, dict]], list[str]]:
    """Table 1's FlexVAR rows: the plain FlexVAR and + LSRS at M = 2 and 4 from the FlexVAR M sweep."""
    family = _flex_family(res, "M")
    if family is None:
        return [], ["FlexVAR: not measured (flexvar.enabled is false or no flexvar sweep varies M)."]
    base, lsrs = _base(res, family, FLEX), _rows(res, family, var=FLEX, scorer=FLEX)
    if base is None:
        return [], [f"FlexVAR: no plain-FlexVAR row in {family} (not measured)."]
    steps = res.spec.flexvar.num_scales
    rows, notes = [], []

    def add(label: str, r) -> None:
        rel = None
        if _val(r, "seconds_per_image") and _val(base, "seconds_per_image"):
            rel = float(r["seconds_per_image"]) / float(base["seconds_per_image"])
        rows.append(_measured_row(res, {"Model": label}, r, TABLE1_METRICS, {
            "Param": (None, DASH), "Step": (steps, str(steps)), "Time": (rel, _num(rel, 2))}))

    add(f"FlexVAR-d{res.spec.flexvar.depth} ({family} sweep)", base)
    for m in FLEX_TABLE1_M:
        r = _at(lsrs, "M", m)
        if r is None:
            notes.append(f"FlexVAR + LSRS M={m}: not measured (family {family}).")
        else:
            add(f"+ LSRS M={m}, ST={int(r['ST'])} (r_k scorer)", r)
    return rows, notes


TABLE1_COLUMNS = ["Model", *(h for h, _, _ in TABLE1_METRICS), "Param", "Step", "Time", CI, REPS, SOURCE]


def table01(res: Results) -> Table:
    """The paper's Table 1 rows (typed from the paper, cited) followed by this run's rows per depth."""
    lit = pd.read_csv(LITERATURE)
    text = pd.read_csv(LITERATURE, dtype=str, keep_default_na=False)  # shown exactly as the paper prints them
    rows = []
    for (_, r), (_, t) in zip(lit.iterrows(), text.iterrows()):
        data = {"Model": r["model"], **{h: _val(r, k) for h, k, _ in TABLE1_METRICS},
                "Param": r["params"], "Step": _val(r, "steps"), "Time": _val(r, "time"),
                "ΔFID": None, "ΔFID low": None, "ΔFID high": None, "profile": None, "images": None,
                SOURCE: r["source"]}
        disp = {"Model": t["model"], **{h: t[k] or DASH for h, k, _ in TABLE1_METRICS},
                "Param": t["params"], "Step": t["steps"] or DASH, "Time": t["time"] or DASH,
                CI: DASH, SOURCE: "paper, Table 1 (reported)"}
        rows.append((data, disp))
    notes = [f"Rows marked \"paper\" are the LSRS paper's reported ImageNet 256×256 values ({LITERATURE.name}); "
             "they are not comparable in absolute terms with this run's profile."]
    depths = sorted(_depth_scorers(res) or [res.main_var], key=lambda v: v != res.main_var)  # main depth first
    for var in (v for v in depths if v):
        more, why = _depth_rows(res, var, with_main_run=True)
        rows += more
        notes += why
    more, why = _flex_rows(res)
    rows += more
    notes += why
    notes += ["Measured rows: Step = number of scales (one VAR forward pass each); Time = seconds per image "
              "relative to the plain VAR (or FlexVAR) of the same depth and sweep; Param is not recorded by the "
              "pipeline."]
    return _table("table01", "Table 1: Generative model comparison (paper's reported rows and this run's rows)",
                  rows, TABLE1_COLUMNS, notes + _common_notes(res))


def table04(res: Results) -> Table:
    """Table 4 ("more experiments on VAR"): VAR and VAR + LSRS at every depth of this run."""
    rows, notes = [], []
    for var in _depth_scorers(res):
        more, why = _depth_rows(res, var, with_main_run=False)
        rows += more
        notes += why
    if not rows:
        notes.append("Not measured: no depth has sweep rows.")
    return _table("table04", "Table 4: VAR and VAR + LSRS at every depth", rows, TABLE1_COLUMNS,
                  notes + ["Time is relative to the plain VAR of the same depth."] + _common_notes(res))
