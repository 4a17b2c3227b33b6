"""Reports: the paper's Tables 1-10 and Figures 1, 3-9, and a "paper vs this run" scorecard.

Every number in a report comes from the pipeline's result files, never from a hand-typed value, so
the tables, figures and scorecard are all computed here from one loaded `Results`:

* ``metrics/main.json`` (the main run), ``metrics/sweeps/<family>.csv`` (the ablation families,
  each with its plain-VAR baseline rows and the paired-bootstrap interval of FID - FID(baseline)),
  ``metrics/scorer_analysis.json`` (per-scale scorer accuracy, loss and score histograms),
  ``metrics/cost.csv`` (time and memory vs M), ``<runs>/figures/*.png`` (the sample grids);
* ``lsrs/literature_table1.csv``: the only typed numbers, the paper's own Table 1, labelled as
  reported values with their source.

A missing input never stops a report: the tables and figures it feeds say "not measured" and the
README lists what was missing, so a partial pipeline still gives a readable report. Reading a few
small files and drawing a dozen figures takes seconds, so the report stage is cheap to rerun.
Figures are drawn on `matplotlib.figure.Figure` objects (the Agg canvas, no pyplot state), styled
by seaborn.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lsrs.pipeline.params import Params

LITERATURE = Path(__file__).with_name("literature_table1.csv")
FAMILIES = {  # the sweep families the paper's tables read, and what each feeds
    "m_st2": "Tables 1, 2, 5, 7, 8, 9 and Figure 3 (left)",
    "st_m32": "Table 6 and Figure 3 (right)",
    "m_st1": "Table 3",
    "loss": "Table 2 (pointwise column)",
    "topk": "Tables 8 and 9",
    "first_scale": "Table 10 (FID companion)",
    "depth": "Tables 1 and 4 (the other depths)",
}
SWEEP_COLUMNS = ("family", "run", "var", "scorer", "M", "ST", "k", "fid", "is", "sfid", "count",
                 "fid_diff", "fid_diff_low", "fid_diff_high")
PAPER_TABLE1_M = (4, 128)  # Tables 1 and 4's LSRS rows when the depth family names no M
FLEX = "flexvar"  # the FlexVAR family's model and scorer name in sweep rows (lsrs.pipeline.flex.FAMILY)
FLEX_TABLE1_M = (2, 4)  # Table 1's FlexVAR + LSRS rows
NEAR_CHANCE = 0.1  # "accuracy near 0.5 at scale 1": within 0.5 +- this
FIRST_SCALE_PP = 0.5  # "removing the first scale changes accuracy by under 0.5 points"
DASH, MINUS = "—", "−"
CI = "ΔFID vs VAR [95% CI]"
REPS = "ΔFID per replicate"
MAIN_TARGET_PCT = 2.0  # half-width limits of the ΔFID interval, % of the plain FID (main run)
SWEEP_TARGET_PCT = 4.0  # ... of every m_st2 row with M <= 128 and every st_m32 row
EQUIVALENCE_PCT = 2.0  # "no difference" claims: equivalent when the difference's interval is within +- this % of FID
Z95 = 1.959964
SOURCE = "source"
FID_IS_SFID = (("FID↓", "fid", 3), ("IS↑", "is", 3), ("sFID↓", "sfid", 3))
TABLE1_METRICS = (("FID↓", "fid", 3), ("IS↑", "is", 3), ("Pre↑", "precision", 3), ("Rec↑", "recall", 3))
VAR_COLOR, REAL_COLOR, GENERATED_COLOR = "0.35", "#d62728", "#1f77b4"  # paper: red real, blue generated


# --------------------------------------------------------------------------- loading
@dataclass
class Results:
    """Everything a report reads; `missing` names each absent input and what it would have fed."""

    params: Params
    main: dict | None = None
    sweeps: dict[str, pd.DataFrame] = field(default_factory=dict)
    analysis: list[dict] = field(default_factory=list)
    cost: pd.DataFrame | None = None
    figures_dir: Path = Path("runs/mini/figures")
    missing: list[str] = field(default_factory=list)

    @property
    def profile(self) -> str:
        return self.params.profile

    @property
    def main_var(self) -> str | None:
        return self.params.var.main

    @property
    def main_scorer(self) -> str | None:
        return self.params.lsrs.scorer


def load_results(params: Params, metrics_dir: str | Path, runs_dir: str | Path) -> Results:
    """Read every input that exists; a malformed file is an error naming it, a missing one a note."""
    metrics_dir = Path(metrics_dir)
    res = Results(params=params, figures_dir=Path(runs_dir) / "figures")
    main = metrics_dir / "main.json"
    if main.is_file():
        res.main = json.loads(main.read_text())
    else:
        res.missing.append(f"`{main}`: the main run (Table 1's main-run rows, the first scorecard claim)")
    for path in sorted((metrics_dir / "sweeps").glob("*.csv")):
        res.sweeps[path.stem] = _read_sweep(path)
    for family, feeds in FAMILIES.items():
        if family not in res.sweeps:
            res.missing.append(f"`{metrics_dir / 'sweeps' / (family + '.csv')}`: sweep family {family} ({feeds})")
    if params.flexvar.enabled:
        for name, sw in params.flexvar.sweeps.items():
            if f"{FLEX}_{name}" not in res.sweeps:
                res.missing.append(f"`{metrics_dir / 'sweeps' / (FLEX + '_' + name + '.csv')}`: FlexVAR sweep {name} "
                                   f"({sw.feeds or 'FlexVAR rows'})")
    analysis = metrics_dir / "scorer_analysis.json"
    if analysis.is_file():
        res.analysis = json.loads(analysis.read_text())
    else:
        res.missing.append(f"`{analysis}`: scorer analysis (Table 10, Figures 5 and 7)")
    cost = metrics_dir / "cost.csv"
    if cost.is_file():
        res.cost = pd.read_csv(cost)
    else:
        res.missing.append(f"`{cost}`: cost vs M (Figure 6)")
    for name in ("grid_M.png", "grid_ST.png", "random_scales.png"):
        if not (res.figures_dir / name).is_file():
            res.missing.append(f"`{res.figures_dir / name}`: sample grid (Figures 1, 4, 8, 9)")
    return res


def _read_sweep(path: Path) -> pd.DataFrame:
    """One family's CSV, with a boolean `baseline` column (plain-VAR rows have no scorer)."""
    df = pd.read_csv(path)
    lacking = [c for c in SWEEP_COLUMNS if c not in df.columns]
    if lacking:
        raise ValueError(f"{path}: missing columns {', '.join(lacking)}")
    df["baseline"] = df["scorer"].isna() | (df["scorer"].astype(str).str.strip() == "")
    return df


def _missing(x) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and math.isnan(x))


def _val(row, key):
    """A value of a row (Series or dict) or None when absent or NaN."""
    if row is None:
        return None
    v = row.get(key)
    return None if _missing(v) else v


def _rows(res: Results, family: str, var: str | None = None, scorer: str | None = None,
          k: int | None = 1, **equal) -> pd.DataFrame:
    """LSRS rows (baselines excluded) of a family matching the filters, sorted by M, ST, k."""
    df = res.sweeps.get(family)
    if df is None:
        return pd.DataFrame(columns=[*SWEEP_COLUMNS, "baseline"])
    keep = ~df["baseline"]
    for col, value in (("var", var), ("scorer", scorer), ("k", k), *equal.items()):
        if value is not None:
            keep &= df[col] == value
    return df[keep].sort_values(["M", "ST", "k"])


def _base(res: Results, family: str, var: str | None) -> pd.Series | None:
    """The plain-VAR row of `var` in a family (every family evaluates it on the same paired images)."""
    df = res.sweeps.get(family)
    if df is None:
        return None
    rows = df[df["baseline"] & ((df["var"] == var) if var else True)]
    return None if rows.empty else rows.iloc[0]


def _at(rows: pd.DataFrame, col: str, value) -> pd.Series | None:
    hit = rows[rows[col] == value]
    return None if hit.empty else hit.iloc[0]


def _depth_scorers(res: Results) -> dict[str, str]:
    """var -> the scorer that stands for that depth (pairwise, trained with scale 1; lsrs.scorer for
    var.main), ordered by depth: these are Tables 1/4's LSRS rows and Figure 5's curves."""
    out: dict[str, str] = {}
    for name, run in res.params.scorer.runs.items():
        if run.loss == "pairwise" and not run.without_first_scale:
            out.setdefault(run.var, name)
    if res.main_var and res.main_scorer:
        out[res.main_var] = res.main_scorer
    depth = {n: s.depth for n, s in res.params.var.depths.items()}
    return dict(sorted(out.items(), key=lambda kv: depth.get(kv[0], 0)))


def _flex_family(res: Results, x: str) -> str | None:
    """The FlexVAR sweep (its metrics name, flexvar_<name>) that varies `x` (M or ST) at one value of
    the other; None when flexvar is disabled or no family does."""
    if not res.params.flexvar.enabled:
        return None
    for name, sw in res.params.flexvar.sweeps.items():
        varied, fixed = (sw.M, sw.ST) if x == "M" else (sw.ST, sw.M)
        if len(varied) > 1 and len(fixed) == 1:
            return f"{FLEX}_{name}"
    return None


def _analysis(res: Results) -> dict[str, dict]:
    return {entry["scorer"]: entry for entry in res.analysis}


# --------------------------------------------------------------------------- formatting
def _num(x, digits: int = 3) -> str:
    if _missing(x):
        return DASH
    x = float(x) if round(float(x), digits) != 0 else 0.0  # no "−0.000"
    return f"{x:.{digits}f}".replace("-", MINUS)


def _signed(x, digits: int = 3) -> str:
    if _missing(x):
        return DASH
    x = float(x) if round(float(x), digits) != 0 else 0.0  # no "−0.000"
    return f"{x:+.{digits}f}".replace("-", MINUS)


def _ci(delta, low, high, digits: int = 3) -> str:
    """"−0.410 [−0.620, −0.200]", with "(within noise)" when the interval contains 0."""
    if _missing(delta):
        return DASH
    text = f"{_signed(delta, digits)} [{_signed(low, digits)}, {_signed(high, digits)}]"
    return text + (" (within noise)" if _contains_zero(low, high) else "")


def _contains_zero(low, high) -> bool:
    return not _missing(low) and not _missing(high) and low <= 0 <= high


def _count(x) -> str:
    return DASH if _missing(x) else f"{int(x)}"


def _pct(x, digits: int = 1) -> str:
    return DASH if _missing(x) else f"{100 * float(x):.{digits}f}%"


def _var_label(var: str | None) -> str:
    return f"VAR-{var}" if var else "VAR"


# --------------------------------------------------------------------------- tables
@dataclass
class Table:
    """One paper table: `display` (strings in the paper's layout) feeds Markdown and LaTeX, `data`
    (numbers, one row per measured configuration) feeds the CSV."""

    key: str  # file stem: table01 ... table10, table10b
    title: str
    display: pd.DataFrame
    data: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _measured_row(res: Results, lead: dict, r, cols, extra: dict | None = None) -> tuple[dict, dict]:
    """(CSV row, display row) of one measured configuration: the lead cells, the metric columns,
    `extra` cells (header -> (value, text)), the paired ΔFID interval (none for a baseline) and
    where it was measured (profile, number of images)."""
    data, disp = dict(lead), {k: str(v) for k, v in lead.items()}
    for header, key, digits in cols:
        data[header] = _val(r, key)
        disp[header] = _num(data[header], digits)
    for header, (value, text) in (extra or {}).items():
        data[header], disp[header] = value, text
    baseline = _missing(_val(r, "scorer"))
    for header, key in (("ΔFID", "fid_diff"), ("ΔFID low", "fid_diff_low"), ("ΔFID high", "fid_diff_high")):
        data[header] = None if baseline else _val(r, key)
    disp[CI] = DASH if baseline else _ci(data["ΔFID"], data["ΔFID low"], data["ΔFID high"])
    reps = [] if baseline else _replicate_deltas(r)
    data[REPS] = " ".join(f"{d:.3f}" for d in reps) or None
    disp[REPS] = ", ".join(_signed(d, 2) for d in reps) or DASH
    n = _val(r, "count")
    data.update(profile=res.profile, images=n)
    data[SOURCE] = disp[SOURCE] = f"this run ({res.profile}, {_count(n)} images)"
    return data, disp


def _replicate_deltas(r) -> list[float]:
    """The per-replicate ΔFIDs of a row (each on its own 1/R of the images), [] without replicates."""
    v = _val(r, "replicate_deltas")
    if isinstance(v, (list, tuple)):
        return [float(x) for x in v]
    return [float(x) for x in str(v).split()] if v else []


def _table(key: str, title: str, rows: list[tuple[dict, dict]], columns: list[str], notes: list[str]) -> Table:
    data = pd.DataFrame([d for d, _ in rows])
    display = pd.DataFrame([s for _, s in rows], columns=columns)
    if not rows:
        data = pd.DataFrame(columns=columns)
    return Table(key, title, display, data, notes)


def _common_notes(res: Results) -> list[str]:
    r = res.params.scorer.replicates
    return [f"Profile {res.profile}; every measured row gives its number of evaluation images. "
            "ΔFID = FID − FID(plain VAR of the same depth on the same paired images), with its 95% interval: "
            f"a percentile bootstrap (at least {res.params.evaluation.n_boot} draws, more until both endpoints' "
            f"Monte-Carlo error is below {res.params.evaluation.mcse_target}) that resamples the images within "
            f"each of the {r} scorer replicates (image i uses replicate (i // C) mod {r}) and adds the "
            "between-replicate term N(0, τ²/R), so it covers scorer training and image sampling; "
            "\"within noise\": the interval contains 0. "
            f"{REPS}: each replicate's ΔFID on its own 1/{r} of the images (noisier than the pooled ΔFID)."]


def _main_series(main: dict, which: str) -> pd.Series:
    """main.json's baseline or LSRS run as a sweep-like row (scorer, count, fid_diff*)."""
    row = dict(main[which], count=main.get("images"), scorer=None)
    if which == "lsrs":
        d = main.get("fid_diff", {})
        row.update(scorer=main.get("scorer"), fid_diff=d.get("delta"), fid_diff_low=d.get("low"),
                   fid_diff_high=d.get("high"), fid_diff_se=d.get("se"), replicate_deltas=d.get("replicate_deltas"),
                   var_images=d.get("var_images"), tau2=d.get("tau2"), replicates=d.get("replicates"),
                   M=main.get("M"), ST=main.get("ST"))
    return pd.Series(row, dtype=object)


def _table1_ms(res: Results) -> tuple[int, ...]:
    sweep = res.params.ablations.sweeps.get("depth")
    return tuple(sweep.M) if sweep else PAPER_TABLE1_M


def _depth_rows(res: Results, var: str, with_main_run: bool) -> tuple[list[tuple[dict, dict]], list[str]]:
    """Tables 1/4's measured rows of one depth: VAR, then + LSRS at Table 1's M values (m_st2 for
    var.main, the depth family otherwise), Time relative to that depth's plain VAR."""
    rows, notes = [], []
    steps = res.params.num_scales

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
    family = "m_st2" if var == res.main_var else "depth"
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
    steps = len(res.params.flexvar.patch_nums)
    rows, notes = [], []

    def add(label: str, r) -> None:
        rel = None
        if _val(r, "seconds_per_image") and _val(base, "seconds_per_image"):
            rel = float(r["seconds_per_image"]) / float(base["seconds_per_image"])
        rows.append(_measured_row(res, {"Model": label}, r, TABLE1_METRICS, {
            "Param": (None, DASH), "Step": (steps, str(steps)), "Time": (rel, _num(rel, 2))}))

    add(f"FlexVAR-d{res.params.flexvar.var.model.depth} ({family} sweep)", base)
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


def _sweep_table(res: Results, key: str, title: str, family: str, label: str, lsrs: pd.DataFrame,
                 cols=FID_IS_SFID, baseline_label: str = DASH) -> Table:
    """A table of one family: the plain-VAR row labelled `baseline_label`, then one row per LSRS run."""
    base = _base(res, family, res.main_var)
    notes = []
    rows = [] if base is None else [_measured_row(res, {label: baseline_label}, base, cols)]
    for _, r in lsrs.iterrows():
        rows.append(_measured_row(res, {label: int(r[label])}, r, cols))
    if base is None or lsrs.empty:
        notes.append(f"Not measured: sweep family {family} has no {'baseline' if base is None else 'LSRS'} rows.")
    columns = [label, *(h for h, _, _ in cols), CI, REPS, SOURCE]
    return _table(key, title, rows, columns, notes + _common_notes(res))


def _values(rows: pd.DataFrame, col: str, res: Results | None = None, family: str | None = None) -> str:
    """The distinct values of `col` in `rows`, else those params.yaml asks of the family (titles of
    tables whose sweep is missing still say what they would show)."""
    vals = sorted({int(v) for v in rows[col]}) if not rows.empty else []
    sweep = res.params.ablations.sweeps.get(family) if res is not None and family else None
    if not vals and sweep is not None:
        vals = list(getattr(sweep, col, ()))
    return ", ".join(map(str, vals)) or "?"


def table05(res: Results) -> Table:
    lsrs = _rows(res, "m_st2", var=res.main_var, scorer=res.main_scorer)
    title = (f"Table 5: Metrics across M values with ST = {_values(lsrs, 'ST', res, 'm_st2')} "
             f"({_var_label(res.main_var)})")
    return _sweep_table(res, "table05", title, "m_st2", "M", lsrs)


def table06(res: Results) -> Table:
    lsrs = _rows(res, "st_m32", var=res.main_var, scorer=res.main_scorer)
    title = (f"Table 6: Metrics across ST values with M = {_values(lsrs, 'M', res, 'st_m32')} "
             f"({_var_label(res.main_var)})")
    return _sweep_table(res, "table06", title, "st_m32", "ST", lsrs)


TABLE7_COLS = (("FID", "fid", 3), ("mean_diff²", "fid_mean_diff2", 3), ("trace_term", "fid_trace_term", 3),
               ("Tr(Σg)", "fid_tr_sigma_gen", 3), ("2Tr((ΣrΣg)^1/2)", "fid_tr_sqrt_x2", 3))


def table07(res: Results) -> Table:
    """FID = mean_diff² + trace_term across M; the plain VAR is the paper's M = 1 row."""
    lsrs = _rows(res, "m_st2", var=res.main_var, scorer=res.main_scorer)
    t = _sweep_table(res, "table07", "Table 7: Variation of FID and its components with M (ST = "
                     f"{_values(lsrs, 'ST', res, 'm_st2')})", "m_st2", "M", lsrs, cols=TABLE7_COLS, baseline_label="1")
    df = res.sweeps.get("m_st2")
    if df is not None and "fid_tr_sigma_ref" in df:
        refs = sorted({round(float(v), 6) for v in df["fid_tr_sigma_ref"].dropna()})
        t.notes.insert(0, f"For all M, Tr(Σr) = {_num(refs[0])}." if len(refs) == 1 else
                       f"Tr(Σr) varies: {', '.join(_num(v) for v in refs)}.")
    return t


def table03(res: Results) -> Table:
    """The paper's transposed layout: one column per M, FID with its change from the baseline."""
    base = _base(res, "m_st1", res.main_var)
    lsrs = _rows(res, "m_st1", var=res.main_var, scorer=res.main_scorer)
    records = ([] if base is None else [("—", base)]) + [(str(int(r["M"])), r) for _, r in lsrs.iterrows()]
    data = pd.DataFrame([_measured_row(res, {"M": m}, r, (("FID", "fid", 3),))[0] for m, r in records])
    display = pd.DataFrame({"M": ["FID", "ΔFID 95% CI", SOURCE]})
    for m, r in records:
        is_base = m == "—"
        fid = _num(_val(r, "fid")) + ("" if is_base else f" ({_signed(_val(r, 'fid_diff'))})")
        low, high = _val(r, "fid_diff_low"), _val(r, "fid_diff_high")
        ci = DASH if is_base else f"[{_signed(low)}, {_signed(high)}]" + (" (within noise)" * _contains_zero(low, high))
        display[m] = [fid, ci, f"{res.profile}, {_count(_val(r, 'count'))} images"]
    notes = []
    if base is None or lsrs.empty:
        notes.append("Not measured: sweep family m_st1 missing or without baseline or LSRS rows.")
        display = pd.DataFrame(columns=["M", DASH])
    if data.empty:
        data = pd.DataFrame(columns=["M", "FID", "ΔFID", "ΔFID low", "ΔFID high", "profile", "images"])
    return Table("table03", f"Table 3: FID across M values under ST = {_values(lsrs, 'ST', res, 'm_st1')}, "
                 "the first scale with only one token", display, data,
                 notes + ["The CSV has one row per M (numbers); this layout is the paper's."] + _common_notes(res))


def table02(res: Results) -> Table:
    """Pointwise (loss family) vs pairwise (m_st2) scorer at the loss family's M values."""
    point = _rows(res, "loss", var=res.main_var)
    pair = _rows(res, "m_st2", var=res.main_var, scorer=res.main_scorer)
    point_name = str(point["scorer"].iloc[0]) if not point.empty else None
    groups = (("Pointwise", point, "loss", point_name), ("Pairwise", pair, "m_st2", res.main_scorer))
    columns = ["Inference Model", *(f"{g} {h}" for g, *_ in groups for h, _, _ in FID_IS_SFID),
               *(f"{g} {CI}" for g, *_ in groups), SOURCE]
    rows = []
    for m in [None, *sorted({int(v) for v in point["M"]})]:
        data, disp = {"Inference Model": _var_label(res.main_var) if m is None else f"+ LSRS M={m}"}, {}
        disp.update(data)
        for g, lsrs, family, scorer in groups:
            r = _base(res, family, res.main_var) if m is None else _at(lsrs[lsrs["scorer"] == scorer], "M", m)
            d, s = _measured_row(res, {}, r, [(f"{g} {h}", k, dg) for h, k, dg in FID_IS_SFID])
            data.update({(f"{g} {k}" if k.startswith("ΔFID") else k): v for k, v in d.items()})
            disp.update({(f"{g} {k}" if k == CI else k): v for k, v in s.items()})
        rows.append((data, disp))
    notes = [f"Pointwise: scorer {point_name} (sweep family loss); pairwise: scorer {res.main_scorer} "
             "(family m_st2); both at ST = 2 on the same paired images."]
    if point.empty:
        notes.append("Not measured: sweep family loss missing or empty.")
        rows = rows[:0]
    return _table("table02", "Table 2: FID, IS and sFID for different M under the pointwise and the "
                  "pairwise loss", rows, columns, notes + _common_notes(res))


def _topk_table(res: Results, key: str, number: int, index: int) -> Table:
    """Tables 8/9: top-k selection (family topk) at its index-th M value; k = 1 (greedy) from m_st2."""
    topk = _rows(res, "topk", var=res.main_var, k=None)
    ms = sorted({int(v) for v in topk["M"]})
    columns = ["k", "FID", "IS", CI, SOURCE]
    if index >= len(ms):
        return _table(key, f"Table {number}: Performance of top-k sampling in LSRS (not measured)", [], columns,
                      [f"Not measured: the topk sweep has {len(ms)} M value(s); this table shows the "
                       f"{'first' if index == 0 else 'second'} one."])
    m = ms[index]
    at_m = topk[topk["M"] == m]
    greedy = _at(_rows(res, "m_st2", var=res.main_var, scorer=res.main_scorer), "M", m)
    cols = (("FID", "fid", 3), ("IS", "is", 3))
    rows = [] if greedy is None else [_measured_row(res, {"k": 1}, greedy, cols)]
    rows += [_measured_row(res, {"k": int(r["k"])}, r, cols) for _, r in at_m.sort_values("k").iterrows()]
    notes = ["k = 1 is greedy selection (family m_st2); k > 1 samples from the k best by a softmax of the "
             "scores (family topk)."]
    if greedy is None:
        notes.append(f"k = 1 not measured: family m_st2 has no M = {m} row.")
    st = _values(at_m, "ST")
    return _table(key, f"Table {number}: Performance of top-k sampling in LSRS with M = {m} "
                  f"({_var_label(res.main_var)}, ST = {st})", rows, columns, notes + _common_notes(res))


def table08(res: Results) -> Table:
    return _topk_table(res, "table08", 8, 0)


def table09(res: Results) -> Table:
    return _topk_table(res, "table09", 9, 1)


def _first_scale_pair(res: Results) -> tuple[dict | None, dict | None]:
    """(the main scorer's analysis, the analysis of the scorer trained without scale 1 on the same VAR)."""
    by_name = _analysis(res)
    with_first = by_name.get(res.main_scorer)
    without = next((e for e in res.analysis if e.get("without_first_scale")
                    and (with_first is None or e.get("var") == with_first.get("var"))), None)
    return with_first, without


def table10(res: Results) -> Table:
    """Per-scale validation accuracy with and without scale 1 in the scorer's training."""
    with_first, without = _first_scale_pair(res)
    columns = ["scale", "w first scale", "w/o first scale", "change"]
    if with_first is None or without is None:
        return _table("table10", "Table 10: Performance comparison w and w/o the first scale (not measured)", [],
                      columns, ["Not measured: scorer_analysis.json lacks the main scorer or a scorer trained "
                                "without the first scale."])
    acc_without = {p["scale"]: p["val_acc"] for p in without["per_scale"]}
    rows = []
    for p in with_first["per_scale"]:
        s = p["scale"]
        w = p["val_acc"]
        wo = None if s == 1 else acc_without.get(s)  # scale 1 was left out of that scorer's training
        change = None if wo is None else 100 * (wo - w)
        rows.append(({"scale": s, "w first scale": w, "w/o first scale": wo, "change (points)": change},
                     {"scale": str(s), "w first scale": _pct(w), "w/o first scale": _pct(wo),
                      "change": DASH if change is None else f"{_signed(change, 1)}%"}))
    notes = [f"Validation accuracy of ranking a real above a generated map, per scale: {with_first['scorer']} "
             f"vs {without['scorer']} (both on {_var_label(with_first.get('var'))}); held-out maps: "
             f"{with_first.get('real_maps')} real, {with_first.get('generated_maps')} generated; profile "
             f"{res.profile}. Change in percentage points."]
    return _table("table10", "Table 10: Performance comparison w and w/o the first scale", rows, columns, notes)


def table10b(res: Results) -> Table:
    """Table 10's companion: does leaving scale 1 out of the scorer change LSRS's FID?"""
    without = _rows(res, "first_scale", var=res.main_var)
    with_first = _rows(res, "m_st2", var=res.main_var, scorer=res.main_scorer)
    cols = [("FID↓ w first scale", "w"), ("FID↓ w/o first scale", "wo")]
    columns = ["M", *(h for h, _ in cols), f"w {CI}", f"w/o {CI}", SOURCE]
    rows = []
    for m in sorted({int(v) for v in without["M"]}):
        data, disp = {"M": m}, {"M": str(m)}
        for (header, tag), r in zip(cols, (_at(with_first, "M", m), _at(without, "M", m))):
            d, s = _measured_row(res, {}, r, [(header, "fid", 3)])
            prefix = "w" if tag == "w" else "w/o"
            data.update({(f"{prefix} {k}" if k.startswith("ΔFID") else k): v for k, v in d.items()})
            disp.update({(f"{prefix} {k}" if k == CI else k): v for k, v in s.items()})
        rows.append((data, disp))
    notes = ["Scorer trained with scale 1 (family m_st2) vs without it (family first_scale), same paired images."]
    if without.empty:
        notes.append("Not measured: sweep family first_scale missing or empty.")
    return _table("table10b", "Table 10 (companion): FID with the scorer trained w and w/o the first scale",
                  rows, columns, notes + _common_notes(res))


# --------------------------------------------------------------------------- power and attribution
def _target_pct(family: str | None, r) -> float | None:
    """The half-width limit a row must meet (% of the plain FID), None where the budget decides."""
    if family is None:
        return MAIN_TARGET_PCT
    if family == "m_st2" and int(r["M"]) <= 128:
        return SWEEP_TARGET_PCT
    if family == "st_m32":
        return SWEEP_TARGET_PCT
    return None


def power(n: float, r: int, var_images: float, tau2: float, half_target: float) -> dict:
    """What N and R a half-width `half_target` needs, from the variance model
    Var(ΔFID) = a / N + τ² / R (a = var_images * N: image sampling; τ²: between scorer replicates)."""
    a = var_images * n
    room = (half_target / Z95) ** 2 - tau2 / r
    room5 = (half_target / Z95) ** 2 - tau2 / max(r, 5)
    return {"n_needed": math.ceil(a / room) if room > 0 else None,
            "n_needed_r5": math.ceil(a / room5) if room5 > 0 else None,
            "r_needed": math.ceil(tau2 / (half_target / Z95) ** 2) if tau2 > 0 else 1}


def _power_rows(res: Results) -> list[tuple[str, pd.Series, float]]:
    """(family or None for the main run, LSRS row, plain FID) of every measured LSRS row."""
    out = []
    if res.main is not None:
        out.append((None, _main_series(res.main, "lsrs"), float(res.main["baseline"]["fid"])))
    first = [f for f in ("m_st2", "st_m32") if f in res.sweeps]  # the rows with limits, then the rest
    for family in first + sorted(set(res.sweeps) - set(first)):
        df = res.sweeps[family]
        for _, r in df[~df["baseline"]].sort_values(["scorer", "M", "ST", "k"]).iterrows():
            base = _base(res, family, r["var"])
            if base is not None:
                out.append((family, r, float(base["fid"])))
    return out


def table_power(res: Results) -> Table:
    """Per LSRS row: images, replicates, half-width of the ΔFID interval (absolute and % of the plain
    FID), the limit it must meet, both variance components, and the N and R that would meet it."""
    rows = []
    for family, r, fid0 in _power_rows(res):
        n, reps = _val(r, "count"), int(_val(r, "replicates") or 1)
        half = (float(r["fid_diff_high"]) - float(r["fid_diff_low"])) / 2
        target = _target_pct(family, r)
        var_images, tau2 = _val(r, "var_images"), float(_val(r, "tau2") or 0.0)
        need = power(float(n), reps, float(var_images), tau2, (target or SWEEP_TARGET_PCT) * fid0 / 100) \
            if n and var_images is not None else {}
        label = "main" if family is None else family
        run = f"{r.get('scorer')} M={int(r['M'])} " + (f"only scale {int(r['only_scale'])}"
                                                        if not _missing(_val(r, "only_scale")) else f"ST={int(r['ST'])}")
        if not _missing(_val(r, "k")) and int(r["k"]) > 1:
            run += f" k={int(r['k'])}"
        data = {"family": label, "run": run, "N": n, "R": reps, "ΔFID": r["fid_diff"], "half-width": half,
                "half-width %": 100 * half / fid0, "limit %": target,
                "meets": None if target is None else bool(100 * half / fid0 <= target),
                "sd images (at N)": math.sqrt(var_images) if var_images is not None else None,
                "sd between replicates": math.sqrt(tau2), **need}
        disp = {"family": label, "run": run, "N": _count(n), "R": str(reps), "ΔFID": _signed(r["fid_diff"], 2),
                "half-width": _num(half, 2), "% of FID": f"{100 * half / fid0:.1f}%",
                "limit": DASH if target is None else f"{target:.0f}%",
                "meets": DASH if target is None else ("yes" if data["meets"] else "**no**"),
                "sd images": _num(data["sd images (at N)"], 2), "sd replicates": _num(data["sd between replicates"], 2),
                "N for limit (this R)": _need(need, "n_needed"), "N for limit (R=5)": _need(need, "n_needed_r5"),
                "R for limit (N→∞)": _count(need.get("r_needed"))}
        rows.append((data, disp))
    columns = ["family", "run", "N", "R", "ΔFID", "half-width", "% of FID", "limit", "meets", "sd images",
               "sd replicates", "N for limit (this R)", "N for limit (R=5)", "R for limit (N→∞)"]
    notes = [f"Half-width = half the 95% interval of ΔFID. Limits: {MAIN_TARGET_PCT:.0f}% of the plain FID for the "
             f"main run, {SWEEP_TARGET_PCT:.0f}% for every m_st2 row with M ≤ 128 and every st_m32 row; other rows "
             f"are sized by the budget (their 'N for limit' columns use the {SWEEP_TARGET_PCT:.0f}% limit).",
             "Variance model: Var(ΔFID) = a/N + τ²/R. sd images = sqrt(a/N), the spread of the pooled ΔFID over "
             "image resamples with the replicates fixed; sd replicates = τ, the DerSimonian-Laird between-replicate "
             "spread of one replicate's ΔFID (its replicates' images are disjoint, so independent). 'unreachable': "
             "τ²/R alone exceeds the limit at that R, whatever N."]
    return _table("power", "Power: ΔFID half-widths, variance components and the N and R each limit needs", rows,
                  columns, notes)


def _need(need: dict, key: str) -> str:
    """An N from `power`: the number, 'unreachable' (tau2 / R alone is over the limit), or — (no components)."""
    if not need:
        return DASH
    return _count(need[key]) if need.get(key) else "unreachable"


def _attribution_families(res: Results) -> list[tuple[str, str, str]]:
    """(metrics name, model label, var) of every sweep family with single-scale schedules."""
    out = [(name, _var_label(res.main_var), res.main_var)
           for name, sw in res.params.ablations.sweeps.items() if sw.only_scale]
    if res.params.flexvar.enabled:
        out += [(f"{FLEX}_{name}", f"FlexVAR-d{res.params.flexvar.var.model.depth}", FLEX)
                for name, sw in res.params.flexvar.sweeps.items() if sw.only_scale]
    return out


def table11(res: Results) -> Table:
    """Per-scale attribution: ΔFID when only scale k draws M candidates (m_k = M, 1 elsewhere)."""
    rows, notes = [], []
    for family, label, var in _attribution_families(res):
        lsrs = _rows(res, family, var=var).sort_values("only_scale") if family in res.sweeps else pd.DataFrame()
        if lsrs.empty:
            notes.append(f"{label}: not measured (sweep {family} missing).")
        for _, r in lsrs.iterrows():
            rows.append(_measured_row(res, {"model": label, "scale k": int(r["only_scale"]), "M": int(r["M"])}, r,
                                      [("FID↓", "fid", 3)]))
    if not _attribution_families(res):
        notes.append("Not measured: no sweep family sets only_scale.")
    return _table("table11", "Table 11: Where the gain comes from: ΔFID with M candidates at one scale only",
                  rows, ["model", "scale k", "M", "FID↓", CI, REPS, SOURCE], notes + _common_notes(res))


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


# --------------------------------------------------------------------------- table writers
def to_markdown(t: Table) -> str:
    """A GitHub pipe table with the title above and the notes below (no tabulate dependency)."""
    cols = list(t.display.columns)
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = [f"### {t.title}", "", "| " + " | ".join(map(esc, cols)) + " |",
             "|" + "|".join("---" if i == 0 or c == SOURCE else "---:" for i, c in enumerate(cols)) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in t.display.itertuples(index=False)]
    if t.display.empty:
        lines.append("| " + " | ".join(["not measured"] + [""] * (len(cols) - 1)) + " |")
    lines += [""] + [f"- {n}" for n in t.notes]
    return "\n".join(lines) + "\n"


_TEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}", "↓": r"$\downarrow$",
        "↑": r"$\uparrow$", "−": r"$-$", "—": "---", "Δ": r"$\Delta$", "Σ": r"$\Sigma$", "²": r"$^2$",
        "×": r"$\times$", "≤": r"$\le$", "±": r"$\pm$"}
_TEX_HEADERS = {"Tr(Σg)": r"$\mathrm{Tr}(\Sigma_g)$", "mean_diff²": r"mean\_diff$^2$",
                "2Tr((ΣrΣg)^1/2)": r"$2\,\mathrm{Tr}((\Sigma_r\Sigma_g)^{1/2})$"}


def _tex(s) -> str:
    return _TEX_HEADERS.get(str(s)) or "".join(_TEX.get(c, c) for c in str(s))


def to_latex(t: Table) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); first column left, the others right-aligned."""
    cols = list(t.display.columns)
    lines = ["% generated by lsrs.report; needs \\usepackage{booktabs}", r"\begin{table}[t]", r"\centering",
             r"\small", rf"\caption{{{_tex(t.title)}}}", rf"\label{{tab:{t.key}}}",
             r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", r"\toprule",
             " & ".join(_tex(c) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(v) for v in row) + r" \\" for row in t.display.itertuples(index=False)]
    if t.display.empty:
        lines.append(rf"\multicolumn{{{len(cols)}}}{{c}}{{not measured}} \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if t.notes:
        lines += [r"\par\smallskip\footnotesize " + " ".join(_tex(n) for n in t.notes)]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


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


# --------------------------------------------------------------------------- figures
FIGURE_INFO = {
    "fig01_random_scales": "Figure 1: each row one sample; the first column is the plain VAR sample, column k "
                           "the same sample with scale k's token map replaced by random tokens.",
    "fig03_ablation_M_ST": "Figure 3: FID and IS vs M at ST = 2 (log₂ axis) and vs ST at fixed M, for the main "
                           "VAR and (two more columns) the FlexVAR; the plain model as horizontal lines, shaded: "
                           "the paired 95% interval of FID.",
    "fig04_grids": "Figure 4: fixed-seed samples as ST varies (left) and as M varies (right).",
    "fig05_scorer_analysis": "Figure 5: scorer validation loss and accuracy per scale for every depth, the scores "
                             "of LSRS's selected candidates next to the plain draws and real maps, and the "
                             "main scorer's score histograms (real vs generated) per scale.",
    "fig06_cost": "Figure 6: wall time and peak memory of one CFG batch as M grows.",
    "fig07_score_distributions": "Figure 7: score histograms (real vs generated) per scale for the other depths' "
                                 "scorers.",
    "fig08_grid_M": "Figure 8: fixed-seed samples, one column per M at fixed ST.",
    "fig09_grid_ST": "Figure 9: fixed-seed samples, one column per ST at fixed M.",
    "fig11_attribution": "Figure 11 (beyond the paper): ΔFID with its interval when only scale k draws M "
                         "candidates, per k, for the main VAR and FlexVAR, against the zero line.",
}


@contextmanager
def _style():
    """Seaborn's look for the figures drawn inside, without leaving global rcParams changed."""
    import matplotlib as mpl
    import seaborn as sns

    with mpl.rc_context():
        sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
        yield


def _colors(res: Results) -> dict[str, str]:
    """One colour per configuration, the same in every figure: plain VAR grey, each scorer run its own."""
    import seaborn as sns

    names = list(res.params.scorer.runs) or sorted({e["scorer"] for e in res.analysis})
    palette = sns.color_palette("colorblind", max(len(names), 1)).as_hex()
    return {"VAR": VAR_COLOR, **{n: palette[i % len(palette)] for i, n in enumerate(names)}}


def _not_measured(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"not measured\n({what})", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_axis_off()


def _log2_axis(ax, xs: Iterable) -> None:
    from matplotlib.ticker import NullLocator

    xs = sorted({int(x) for x in xs})
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_locator(NullLocator())


def _sweep_panels(res: Results, ax_fid, ax_is, family: str | None, x: str, colors: dict,
                  var: str | None = None, scorer: str | None = None, model: str = "VAR") -> None:
    """FID (with the paired interval band) and IS vs `x` for a scorer (default: the main one on
    var.main); the plain `model` as lines."""
    var, scorer = var or res.main_var, scorer or res.main_scorer
    base = None if family is None else _base(res, family, var)
    rows = _rows(res, family, var=var, scorer=scorer) if family else pd.DataFrame()
    if base is None or rows.empty:
        _not_measured(ax_fid, f"sweep family {family or model + ' ' + x}")
        _not_measured(ax_is, f"sweep family {family or model + ' ' + x}")
        return
    c = colors.get(scorer, "C0")
    xs = rows[x].astype(float)
    lsrs_label = f"{model} + LSRS ({scorer})"
    ax_fid.fill_between(xs, base["fid"] + rows["fid_diff_low"], base["fid"] + rows["fid_diff_high"], color=c,
                        alpha=0.2, lw=0, label="95% paired interval")
    ax_fid.plot(xs, rows["fid"], "o-", color=c, label=lsrs_label)
    ax_fid.axhline(base["fid"], color=VAR_COLOR, ls="--", label=f"FID BL (plain {model})")
    if x == "M":  # the plain VAR is M = 1
        ax_fid.plot([1], [base["fid"]], "o", color=VAR_COLOR)
        ax_is.plot([1], [base["is"]], "s", color=VAR_COLOR)
    ax_is.plot(xs, rows["is"], "s-", color=c, label=lsrs_label)
    ax_is.axhline(base["is"], color=VAR_COLOR, ls="--", label=f"IS BL (plain {model})")
    fixed = "ST" if x == "M" else "M"
    n = _count(_val(base, "count"))
    for ax, metric in ((ax_fid, "FID (lower is better)"), (ax_is, "IS (higher is better)")):
        ax.set_ylabel(metric)
        ax.legend(fontsize="small")
        if x == "M":
            _log2_axis(ax, [1, *xs])
        else:
            ax.set_xticks(sorted({int(v) for v in xs}))
    ax_fid.set_title(f"{model}: {fixed} = {_values(rows, fixed)}, {x} varies ({res.profile}, {n} images per run)")
    ax_is.set_xlabel("M (candidate token maps per scale, log₂ axis)" if x == "M" else "ST (first LSRS scale)")


def figure03(res: Results, colors: dict) -> Figure:
    """M and ST ablations of the main VAR (and, with flexvar enabled, of the FlexVAR: two more columns)."""
    flex = res.params.flexvar.enabled
    fig = Figure(figsize=(22 if flex else 11, 7), layout="constrained")
    axes = fig.subplots(2, 4 if flex else 2, sharex="col")
    _sweep_panels(res, axes[0, 0], axes[1, 0], "m_st2", "M", colors)
    _sweep_panels(res, axes[0, 1], axes[1, 1], "st_m32", "ST", colors)
    title = f"Figure 3: ablation of M and ST ({_var_label(res.main_var)}"
    if flex:
        colors = {**colors, FLEX: colors.get(FLEX, "C2")}
        for col, x in ((2, "M"), (3, "ST")):
            _sweep_panels(res, axes[0, col], axes[1, col], _flex_family(res, x), x, colors, var=FLEX, scorer=FLEX,
                          model=f"FlexVAR-d{res.params.flexvar.var.model.depth}")
        title += f"; FlexVAR-d{res.params.flexvar.var.model.depth} with the r_k scorer"
    fig.suptitle(title + ")")
    return fig


def figure06(res: Results, colors: dict) -> Figure:
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_t, ax_m = fig.subplots(1, 2)
    c = res.cost
    if c is None or c.empty:
        _not_measured(ax_t, "metrics/cost.csv")
        _not_measured(ax_m, "metrics/cost.csv")
        return fig
    c = c.sort_values("M")
    color = colors.get(res.main_scorer, "C0")
    ax_t.errorbar(c["M"], c["seconds"], yerr=c.get("seconds_std"), fmt="o-", color=color, capsize=3,
                  label=f"VAR + LSRS ({res.main_scorer}); M = 1 is the plain VAR")
    if "relative_time" in c:
        for m, s, rel in zip(c["M"], c["seconds"], c["relative_time"]):
            if not _missing(rel):
                ax_t.annotate(f"×{rel:.2f}", (m, s), textcoords="offset points", xytext=(0, 6), ha="center",
                              fontsize="x-small")
    ax_t.margins(y=0.15)
    ax_m.plot(c["M"], c["peak_memory_mib"], "o-", color=color)
    device = ", ".join(sorted({str(d) for d in c.get("device", pd.Series(["?"]))}))
    batch, reps = _count(c["batch_size"].iloc[0]), _count(c["repeats"].iloc[0])
    ax_t.set_ylabel(f"seconds per batch of {batch} images (CFG)")
    ax_m.set_ylabel("peak GPU memory (MiB)" if "cuda" in device else "peak resident memory (MiB)")
    for ax in (ax_t, ax_m):
        _log2_axis(ax, c["M"])
        ax.set_xlabel("M (candidate token maps per scale, log₂ axis)")
    ax_t.legend(fontsize="small")
    fig.suptitle(f"Figure 6: cost of LSRS vs M (ST = {_values(c, 'ST')}, {device}, mean of {reps} run(s))")
    return fig


def _hist_row(axes, entry: dict, label: str) -> None:
    """One scorer's per-scale score histograms: real (red) vs generated (blue) held-out maps."""
    for ax, p in zip(axes, entry["per_scale"]):
        edges = np.asarray(p["bin_edges"])
        ax.stairs(p["hist_real"], edges, fill=True, alpha=0.45, color=REAL_COLOR, label="real")
        ax.stairs(p["hist_generated"], edges, fill=True, alpha=0.45, color=GENERATED_COLOR, label="generated")
        ax.set_title(f"scale {p['scale']}\ngap {_num(p['gap'], 2)}, KL {_num(p['kl'], 2)}", fontsize="small")
        ax.set_xlabel("score")
        ax.tick_params(labelsize="x-small")
    axes[0].set_ylabel(f"{label}\nshare of maps")
    axes[0].legend(fontsize="x-small")


def _score_grid(fig_or_sub, entries: list[tuple[str, dict]]) -> None:
    if not entries:
        _not_measured(fig_or_sub.subplots(), "no scorer analysis for these depths")
        return
    ncol = max(len(e["per_scale"]) for _, e in entries)
    axes = np.atleast_2d(fig_or_sub.subplots(len(entries), ncol, squeeze=False))
    for row, (label, entry) in zip(axes, entries):
        _hist_row(row, entry, label)
        for ax in row[len(entry["per_scale"]):]:
            ax.set_axis_off()


def _scorer_entries(res: Results, main: bool) -> list[tuple[str, dict]]:
    by_name = _analysis(res)
    return [(f"{_var_label(var)} ({name})", by_name[name]) for var, name in _depth_scorers(res).items()
            if name in by_name and (var == res.main_var) == main]


def figure05(res: Results, colors: dict) -> Figure:
    import seaborn as sns

    fig = Figure(figsize=(13, 8.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.1])
    ax_loss, ax_acc, ax_sel = top.subplots(1, 3)
    by_name = _analysis(res)
    depth = {v: n for v, n in _depth_scorers(res).items() if n in by_name}
    long = pd.DataFrame([{"scale": p["scale"], "val_loss": p["val_loss"], "val_acc": p["val_acc"],
                          "scorer": f"{_var_label(var)} ({name})"}
                         for var, name in depth.items() for p in by_name[name]["per_scale"]])
    if long.empty:
        _not_measured(ax_loss, "metrics/scorer_analysis.json")
        _not_measured(ax_acc, "metrics/scorer_analysis.json")
    else:
        palette = {f"{_var_label(v)} ({n})": colors.get(n, "C0") for v, n in depth.items()}
        sns.lineplot(data=long, x="scale", y="val_loss", hue="scorer", palette=palette, marker="o", ax=ax_loss)
        sns.lineplot(data=long, x="scale", y="val_acc", hue="scorer", palette=palette, marker="o", ax=ax_acc)
        ax_loss.axhline(math.log(2), color="0.5", ls=":", label="tie: −log σ(0) = ln 2")
        ax_acc.axhline(0.5, color="0.5", ls=":", label="chance (0.5)")
        for ax, ylabel in ((ax_loss, "validation loss (pairwise log-sigmoid)"), (ax_acc, "validation accuracy")):
            ax.set_xlabel("scale")
            ax.set_ylabel(ylabel)
            ax.set_xticks(sorted(long["scale"].unique()))
            ax.legend(fontsize="small")
    _selection_panel(ax_sel, by_name.get(res.main_scorer))
    top.suptitle(f"Figure 5: scorer analysis ({res.profile}); top: per-scale validation loss and accuracy, and "
                 "the scores of LSRS's selected candidates")
    _score_grid(bottom, _scorer_entries(res, main=True))
    bottom.suptitle("score distributions of held-out maps, main depth (red: real, blue: generated)")
    return fig


def _selection_panel(ax, entry: dict | None) -> None:
    """Mean score (± sd) per scale of real held-out maps, plain VAR maps, the plain draw at LSRS's
    prefix and the selected candidate: selected above real means selection exploits the scorer."""
    rows = [p for p in (entry or {}).get("per_scale", []) if p.get("mean_selected") is not None]
    if not rows:
        _not_measured(ax, "selection scores of the main scorer")
        return
    every = (entry or {})["per_scale"]
    series = (("real held-out", "mean_real", "std_real", REAL_COLOR, every),
              ("plain VAR maps", "mean_generated", "std_generated", GENERATED_COLOR, every),
              ("plain draw at the LSRS prefix", "mean_plain_draw", "std_plain_draw", "0.5", rows),
              ("selected by LSRS", "mean_selected", "std_selected", "#2ca02c", rows))
    for i, (label, mean, sd, color, part) in enumerate(series):
        x = np.array([p["scale"] for p in part]) + (i - 1.5) * 0.08
        ax.errorbar(x, [p[mean] for p in part], yerr=[p.get(sd) or 0 for p in part], fmt="o-", ms=3, capsize=2,
                    color=color, label=label)
    ax.set_xlabel("scale")
    ax.set_ylabel(f"score of {entry['scorer']} (mean ± sd)")
    ax.set_xticks([p["scale"] for p in every])
    ax.legend(fontsize="x-small")


def figure07(res: Results, colors: dict) -> Figure:
    entries = _scorer_entries(res, main=False)
    ncol = max([len(e["per_scale"]) for _, e in entries] or [1])
    fig = Figure(figsize=(1.9 * ncol + 1, 2.6 * max(len(entries), 1) + 0.6), layout="constrained")
    _score_grid(fig, entries)
    fig.suptitle(f"Figure 7: score distributions of the other depths ({res.profile}; red: real, blue: generated)")
    return fig


def _grid_meta(res: Results, name: str) -> dict | None:
    path = res.figures_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _class_names(res: Results, rows: list[int] | None) -> list[str] | None:
    if rows is None:
        return None
    if res.params.data.dataset == "fashion-mnist":
        from lsrs.data.fashion_mnist import FASHION_CLASSES

        return [FASHION_CLASSES[c] if 0 <= c < len(FASHION_CLASSES) else f"class {c}" for c in rows]
    return [f"class {c}" for c in rows]


def _show_grid(ax, png: Path, col_titles: list[str], row_labels: list[str] | None, title: str) -> None:
    """A torchvision grid PNG (1 px padding around every tile) with one title per column."""
    from matplotlib.image import imread

    if not png.is_file():
        _not_measured(ax, f"{png.parent.name}/{png.name} missing")
        return
    img = imread(png)
    h, w = img.shape[:2]
    ncol = len(col_titles)
    cell = (w - 1) / ncol
    nrow = len(row_labels) if row_labels else max(1, round((h - 1) / cell))
    cell_h = (h - 1) / nrow
    ax.imshow(img, interpolation="nearest", cmap="gray")
    ax.set_xticks([1 + cell * i + (cell - 1) / 2 for i in range(ncol)], col_titles, fontsize="small")
    ax.xaxis.tick_top()
    ax.set_yticks([1 + cell_h * i + (cell_h - 1) / 2 for i in range(nrow)], row_labels or [""] * nrow,
                  fontsize="small")
    ax.tick_params(length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize="medium")


def _grid_columns(res: Results, name: str) -> tuple[list[str], list[str] | None, str]:
    """Column titles, row labels and a subtitle of grid_M / grid_ST (from its JSON, else params)."""
    meta, g = _grid_meta(res, name), res.params.ablations.grids
    cols = (meta or {}).get("columns") or ([{"M": m, "ST": g.ST_fixed} for m in g.M] if name == "grid_M"
                                           else [{"M": g.M_fixed, "ST": s} for s in g.ST])
    rows = _class_names(res, (meta or {}).get("rows"))
    if name == "grid_M":
        titles = ["M=1 (VAR)" if c["M"] == 1 else f"M={c['M']}" for c in cols]
        sub = f"ST = {cols[0]['ST']}, M varies"
    else:
        titles = [f"ST={c['ST']}" for c in cols]
        sub = f"M = {cols[0]['M']}, ST varies"
    return titles, rows, sub


def _grid_figure(res: Results, names: list[str], suptitle: str) -> Figure:
    specs = [_grid_columns(res, n) for n in names]
    nrow = max(len(rows or []) for _, rows, _ in specs) or res.params.ablations.grids.images
    width = sum(len(t) for t, _, _ in specs) * 1.1 + 1.6 * len(specs)
    fig = Figure(figsize=(width, 0.95 * nrow + 1.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name, (titles, rows, sub) in zip(axes, names, specs):
        _show_grid(ax, res.figures_dir / f"{name}.png", titles, rows, sub)
    fig.suptitle(suptitle)
    return fig


def figure01(res: Results, colors: dict) -> Figure:
    k = res.params.num_scales
    rows = _class_names(res, (_grid_meta(res, "grid_M") or {}).get("rows"))
    titles = ["VAR", *(f"scale {s}" for s in range(1, k + 1))]
    fig = Figure(figsize=(1.0 * len(titles) + 1.6, 0.95 * (len(rows) if rows else 4) + 1.4), layout="constrained")
    _show_grid(fig.subplots(), res.figures_dir / "random_scales.png", titles, rows,
               "one scale's token map replaced by random tokens")
    fig.suptitle(f"Figure 1: random scale replacement ({_var_label(res.main_var)}, {res.profile})")
    return fig


def figure04(res: Results, colors: dict) -> Figure:
    return _grid_figure(res, ["grid_ST", "grid_M"], f"Figure 4: LSRS samples ({_var_label(res.main_var)}, "
                        f"fixed seeds per row, {res.profile})")


def figure08(res: Results, colors: dict) -> Figure:
    return _grid_figure(res, ["grid_M"], f"Figure 8: samples as M varies ({_var_label(res.main_var)})")


def figure09(res: Results, colors: dict) -> Figure:
    return _grid_figure(res, ["grid_ST"], f"Figure 9: samples as ST varies ({_var_label(res.main_var)})")


def figure11(res: Results, colors: dict) -> Figure:
    """ΔFID with its interval per single LSRS scale, against the zero line, one panel per model."""
    fams = _attribution_families(res) or [("attribution", _var_label(res.main_var), res.main_var)]
    fig = Figure(figsize=(4.2 * len(fams), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(fams)))
    for ax, (family, label, var) in zip(axes, fams):
        lsrs = _rows(res, family, var=var) if family in res.sweeps else pd.DataFrame()
        if lsrs.empty:
            _not_measured(ax, f"sweep {family}")
            continue
        lsrs = lsrs.sort_values("only_scale")
        k, d = lsrs["only_scale"].astype(int), lsrs["fid_diff"].astype(float)
        err = [d - lsrs["fid_diff_low"].astype(float), lsrs["fid_diff_high"].astype(float) - d]
        ax.axhline(0, color=VAR_COLOR, lw=1)
        ax.errorbar(k, d, yerr=err, fmt="o", capsize=3, color=colors.get(_val(lsrs.iloc[0], "scorer"), "C0"))
        ax.set_xticks(list(k))
        ax.set_xlabel("the one scale k with M candidates")
        ax.set_ylabel("ΔFID vs plain (95% interval)")
        ax.set_title(f"{label}, M = {_values(lsrs, 'M')}, {_count(lsrs['count'].iloc[0])} images", fontsize="medium")
    fig.suptitle("Figure 11: per-scale attribution of the LSRS gain (below 0: better than plain)")
    return fig


FIGURES = {"fig01_random_scales": figure01, "fig03_ablation_M_ST": figure03, "fig04_grids": figure04,
           "fig05_scorer_analysis": figure05, "fig06_cost": figure06, "fig07_score_distributions": figure07,
           "fig08_grid_M": figure08, "fig09_grid_ST": figure09, "fig11_attribution": figure11}


def write_figures(res: Results, out_dir: str | Path, log: Callable[[str], None] = print) -> list[Path]:
    """Every figure as <stem>.png (150 dpi) and <stem>.pdf under out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with _style():
        colors = _colors(res)
        for stem, make in FIGURES.items():
            fig = make(res, colors)
            for ext in ("png", "pdf"):
                fig.savefig(out / f"{stem}.{ext}", dpi=150)
                written.append(out / f"{stem}.{ext}")
            log(f"report: {stem}.png/.pdf")
    return written


# --------------------------------------------------------------------------- scorecard
@dataclass(frozen=True)
class Claim:
    claim: str
    paper: str  # where the paper says it (and its reported numbers)
    evidence: str  # this run's numbers, all from the input files
    verdict: str  # agrees | disagrees | undecided (the interval holds both readings) | not measured


def _vs_zero(r, want_negative: bool = True) -> str:
    """Verdict of one paired ΔFID interval: beyond noise in the claimed direction, against it, or neither."""
    low, high = _val(r, "fid_diff_low"), _val(r, "fid_diff_high")
    if r is None or _missing(low) or _missing(high):
        return "not measured"
    if _contains_zero(low, high):
        return "undecided"
    return "agrees" if (high < 0) == want_negative else "disagrees"


def _combine(verdicts: list[str]) -> str:
    """Of the measured parts: any disagrees -> disagrees; all agree -> agrees; else within noise."""
    measured = [v for v in verdicts if v != "not measured"]
    if not measured:
        return "not measured"
    if "disagrees" in measured:
        return "disagrees"
    return "agrees" if all(v == "agrees" for v in measured) else "undecided"


def _interval(r) -> tuple[float, float]:
    """A row's paired interval of FID − FID(VAR); the plain VAR itself is [0, 0]."""
    if _missing(_val(r, "scorer")):
        return 0.0, 0.0
    return float(r["fid_diff_low"]), float(r["fid_diff_high"])


def _separated(a, b) -> bool:
    """True when two configurations' paired intervals (against the same baseline) do not overlap: a
    conservative reading that their FID differs beyond resampling noise."""
    (a_lo, a_hi), (b_lo, b_hi) = _interval(a), _interval(b)
    return a_hi < b_lo or b_hi < a_lo


def _fid_text(r, label: str) -> str:
    ci = "" if _missing(_val(r, "scorer")) else f", ΔFID {_ci(r['fid_diff'], r['fid_diff_low'], r['fid_diff_high'])}"
    return f"{label}: FID {_num(r['fid'])}{ci}"


def claim_main(res: Results) -> Claim:
    paper = "Table 1: VAR-d30 FID 1.95 → 1.78 (M=4), 1.66 (M=128)"
    claim = "LSRS improves FID over the plain VAR (main run, params M and ST)"
    if res.main is None:
        return Claim(claim, paper, "metrics/main.json missing", "not measured")
    d, m = res.main["fid_diff"], res.main
    r = {"scorer": m.get("scorer"), "fid_diff_low": d["low"], "fid_diff_high": d["high"]}
    ev = (f"M={m['M']}, ST={m['ST']}, {m['images']} images, {d.get('replicates') or 1} scorer replicates: FID "
          f"{_num(m['baseline']['fid'])} → {_num(m['lsrs']['fid'])}, ΔFID {_ci(d['delta'], d['low'], d['high'])} "
          f"(half-width {_pct(m.get('half_width_pct', 0) / 100)} of FID); share of bootstrap draws not better: "
          f"{_num(d.get('share_not_better'), 2)}")
    reps = d.get("replicate_deltas") or []
    if reps:
        ev += "; per replicate " + ", ".join(_signed(x, 2) for x in reps)
    verdict = _vs_zero(r)
    if verdict == "undecided" and d.get("var_images") is not None:
        fid0 = float(m["baseline"]["fid"])
        need = power(float(m["images"]), int(d.get("replicates") or 1), float(d["var_images"]),
                     float(d.get("tau2") or 0.0), MAIN_TARGET_PCT * fid0 / 100)
        ev += (f"; sd images {_num(math.sqrt(d['var_images']), 2)}, sd between replicates "
               f"{_num(math.sqrt(d.get('tau2') or 0.0), 2)}: a {MAIN_TARGET_PCT:.0f}% half-width needs N = "
               f"{_count(need['n_needed']) if need['n_needed'] else 'unreachable'} at this R, "
               f"R ≥ {need['r_needed']} for any N (power table)")
    return Claim(claim, paper, ev, verdict)


def claim_small_m(res: Results) -> Claim:
    claim = "LSRS improves FID already at small M (2 ≤ M ≤ 8, ST = 2)"
    paper = "Table 5: FID 1.95 → 1.87 / 1.78 / 1.73 at M = 2 / 4 / 8"
    rows = _rows(res, "m_st2", var=res.main_var, scorer=res.main_scorer)
    rows = rows[(rows["M"] >= 2) & (rows["M"] <= 8)]
    if rows.empty:
        return Claim(claim, paper, "no m_st2 rows with 2 ≤ M ≤ 8", "not measured")
    ev = "; ".join(_fid_text(r, f"M={int(r['M'])}") for _, r in rows.iterrows())
    return Claim(claim, paper, ev, _combine([_vs_zero(r) for _, r in rows.iterrows()]))


def _m_curve(res: Results) -> pd.DataFrame:
    """m_st2 with the plain VAR as M = 1 (the paper's Table 7), sorted by M."""
    base = _base(res, "m_st2", res.main_var)
    rows = _rows(res, "m_st2", var=res.main_var, scorer=res.main_scorer)
    if base is None:
        return rows
    base = base.copy()
    base["M"] = 1
    return pd.concat([base.to_frame().T, rows[rows["M"] != 1]]).sort_values("M")


def claim_m_shape(res: Results) -> Claim:
    claim = "FID falls as M grows up to about M = 128, then rises"
    paper = "Table 5 / Figure 3: lowest FID 1.66 at M = 128, 1.70-1.78 for M ≥ 256"
    curve = _m_curve(res)
    if len(curve) < 3:
        return Claim(claim, paper, f"{len(curve)} M value(s) in m_st2 (needs ≥ 3)", "not measured")
    fids = curve["fid"].astype(float).to_numpy()
    i = int(np.argmin(fids))
    best, first, last = curve.iloc[i], curve.iloc[0], curve.iloc[-1]
    ev = f"lowest FID at {_fid_text(best, 'M=' + str(int(best['M'])))}"
    if i < len(curve) - 1:
        ev += f"; at the largest {_fid_text(last, 'M=' + str(int(last['M'])))}"
    if 0 < i < len(curve) - 1:
        verdict = "agrees" if _separated(best, first) and _separated(best, last) else "undecided"
    else:
        other = curve.iloc[1] if i == 0 else curve.iloc[-2]
        verdict = "disagrees" if _separated(best, other) else "undecided"
        ev += "; the lowest FID is at the " + ("smallest" if i == 0 else "largest") + " M"
    return Claim(claim, paper, ev + ("" if verdict != "undecided" else "; the intervals overlap"), verdict)


def claim_st(res: Results) -> Claim:
    claim = "ST = 1 hurts FID and ST = 2 is the best start scale"
    paper = "Table 6: FID 2.30 at ST = 1 (VAR 1.95), lowest 1.68 at ST = 2"
    rows = _rows(res, "st_m32", var=res.main_var, scorer=res.main_scorer)
    if rows.empty:
        return Claim(claim, paper, "sweep family st_m32 missing", "not measured")
    st1, st2 = _at(rows, "ST", 1), _at(rows, "ST", 2)
    hurts = _vs_zero(st1, want_negative=False)
    order = rows.sort_values("fid")
    best = order.iloc[0]
    if st2 is None:
        best_v = "not measured"
    elif int(best["ST"]) == 2:
        best_v = "agrees" if len(order) == 1 or _separated(best, order.iloc[1]) else "undecided"
    else:
        best_v = "disagrees" if _separated(best, st2) else "undecided"
    parts = [f"ST={st}: not measured" if r is None else _fid_text(r, f"ST={st}") for st, r in ((1, st1), (2, st2))]
    ev = "; ".join(parts) + f"; lowest FID at ST={int(best['ST'])}"
    return Claim(claim, paper, ev, _combine([hurts, best_v]))


def claim_loss(res: Results) -> Claim:
    claim = "The pairwise loss gives slightly better FID than the pointwise loss"
    paper = "Table 2: pairwise 1.78/1.73/1.71/1.68 vs pointwise 1.79/1.76/1.73/1.73 (M = 4..32)"
    point = _rows(res, "loss", var=res.main_var)
    pair = _rows(res, "m_st2", var=res.main_var, scorer=res.main_scorer)
    pairs = [(int(r["M"]), r, _at(pair, "M", r["M"])) for _, r in point.iterrows()]
    pairs = [(m, p, q) for m, p, q in pairs if q is not None]
    if not pairs:
        return Claim(claim, paper, "no common M in the loss and m_st2 families", "not measured")
    wins = sum(q["fid"] < p["fid"] for _, p, q in pairs)
    ev = "; ".join(f"M={m}: pairwise {_num(q['fid'])} vs pointwise {_num(p['fid'])}" for m, p, q in pairs)
    ev += f"; pairwise lower at {wins} of {len(pairs)} M"
    if not any(_separated(p, q) for _, p, q in pairs):
        return Claim(claim, paper, ev + "; the intervals overlap at every M", "undecided")
    return Claim(claim, paper, ev, "agrees" if wins > len(pairs) / 2 else "disagrees")


def _mean_later(entry: dict) -> float:
    return float(np.mean([p["val_acc"] for p in entry["per_scale"] if p["scale"] > 1]))


def claim_scale1(res: Results) -> Claim:
    claim = f"Scorer accuracy is near 0.5 at scale 1 (within ±{NEAR_CHANCE}) and higher at later scales"
    paper = "Figure 5, appendix H: 52.2% at scale 1, 76-92% at scales 2-10"
    entries = _scorer_entries(res, main=True) + _scorer_entries(res, main=False)
    if not entries:
        return Claim(claim, paper, "metrics/scorer_analysis.json missing", "not measured")
    verdicts, parts = [], []
    for label, e in entries:
        acc1, later = e["per_scale"][0]["val_acc"], _mean_later(e)
        verdicts.append("agrees" if abs(acc1 - 0.5) <= NEAR_CHANCE and later > acc1 else "disagrees")
        parts.append(f"{label}: scale 1 {_num(acc1)}, mean of later scales {_num(later)}")
    return Claim(claim, paper, "; ".join(parts), _combine(verdicts))


def claim_first_scale(res: Results) -> Claim:
    claim = f"Training without the first scale changes per-scale accuracy by under {FIRST_SCALE_PP} points"
    paper = "Table 10: changes of −0.1 to +0.1 points at scales 2-10"
    with_first, without = _first_scale_pair(res)
    if with_first is None or without is None:
        return Claim(claim, paper, "scorer analysis lacks the pair of scorers", "not measured")
    acc = {p["scale"]: p["val_acc"] for p in without["per_scale"]}
    diffs = [100 * (acc[p["scale"]] - p["val_acc"]) for p in with_first["per_scale"] if p["scale"] > 1
             and p["scale"] in acc]
    if not diffs:
        return Claim(claim, paper, "no common scale > 1", "not measured")
    worst = max(diffs, key=abs)
    n = without.get("generated_maps")
    ev = (f"{with_first['scorer']} vs {without['scorer']}: largest change {_signed(worst, 2)} points, "
          f"mean absolute change {_num(np.mean(np.abs(diffs)), 2)} points over scales "
          f"2-{len(with_first['per_scale'])}")
    if n:
        ev += f" ({n} generated held-out maps)"
    return Claim(claim, paper, ev, "agrees" if abs(worst) < FIRST_SCALE_PP else "disagrees")


def _compare(a, b, fid0: float) -> str:
    """a vs b (two LSRS rows on the same paired images): 'better' / 'worse' when the interval of
    ΔFID_a − ΔFID_b excludes 0, 'equivalent' when it lies within ±EQUIVALENCE_PCT % of the plain FID,
    else 'undecided'. The interval is ± 1.96 sqrt(se_a² + se_b²), conservative for positively
    correlated rows (shared images)."""
    se_a, se_b = _val(a, "fid_diff_se"), _val(b, "fid_diff_se")
    if se_a is None or se_b is None:
        return "undecided"
    diff, half = float(a["fid_diff"]) - float(b["fid_diff"]), Z95 * math.hypot(float(se_a), float(se_b))
    margin = EQUIVALENCE_PCT * fid0 / 100
    if diff + half < 0:
        return "better"
    if diff - half > 0:
        return "worse"
    return "equivalent" if -margin <= diff - half and diff + half <= margin else "undecided"


def claim_topk(res: Results) -> Claim:
    claim = f"Top-k selection is no better than greedy selection (k = 1); equivalence margin ±{EQUIVALENCE_PCT:.0f}% of FID"
    paper = "Tables 8, 9: k = 2..16 within 1.63-1.71 vs greedy 1.66 (M=128) and 1.70 (M=256)"
    topk = _rows(res, "topk", var=res.main_var, k=None)
    greedy = _rows(res, "m_st2", var=res.main_var, scorer=res.main_scorer)
    base = _base(res, "m_st2", res.main_var)
    parts, outcomes = [], []
    for _, r in topk.sort_values(["M", "k"]).iterrows():
        g = _at(greedy, "M", r["M"])
        if g is None or base is None:
            continue
        outcome = _compare(r, g, float(base["fid"]))
        parts.append(f"M={int(r['M'])} k={int(r['k'])}: {_num(r['fid'])} vs greedy {_num(g['fid'])} ({outcome})")
        outcomes.append(outcome)
    if not parts:
        return Claim(claim, paper, "no topk row with a greedy row at the same M", "not measured")
    ev = "; ".join(parts)
    if "better" in outcomes:
        return Claim(claim, paper, ev, "disagrees")
    return Claim(claim, paper, ev, "agrees" if all(o in ("equivalent", "worse") for o in outcomes) else "undecided")


def claim_depth(res: Results) -> Claim:
    claim = "Larger VARs make the scorer less accurate (real and generated maps are closer)"
    paper = "Figure 5: accuracy lower for deeper VARs; mean score gap 2.22 (d30) < 2.96 (d24)"
    by_name, depth = _analysis(res), res.params.var.depths
    entries = [(var, by_name[n]) for var, n in _depth_scorers(res).items() if n in by_name]
    if len(entries) < 2:
        return Claim(claim, paper, f"{len(entries)} depth(s) with a scorer analysis (needs ≥ 2)", "not measured")
    accs = [_mean_later(e) for _, e in entries]
    gaps = [float(np.mean([p["gap"] for p in e["per_scale"] if p["scale"] > 1])) for _, e in entries]
    ev = "; ".join(f"{_var_label(v)} (depth {depth[v].depth if v in depth else '?'}): mean accuracy scales ≥ 2 "
                   f"{_num(a)}, mean score gap {_num(g, 2)}" for (v, _), a, g in zip(entries, accs, gaps))
    decreasing = all(b < a for a, b in zip(accs, accs[1:]))
    return Claim(claim, paper, ev, "agrees" if decreasing else "disagrees")


def claim_fid_terms(res: Results) -> Claim:
    claim = "mean_diff² and trace_term both fall from M = 1 up to the best M"
    paper = "Table 7: mean_diff² 0.229 → 0.201 and trace_term 1.725 → 1.462 from M = 1 to M = 128"
    curve = _m_curve(res)
    if len(curve) < 2 or "fid_mean_diff2" not in curve:
        return Claim(claim, paper, "m_st2 missing", "not measured")
    best, first = curve.iloc[int(np.argmin(curve["fid"].astype(float)))], curve.iloc[0]
    ev = (f"M=1 → best M={int(best['M'])}: mean_diff² {_num(first['fid_mean_diff2'])} → "
          f"{_num(best['fid_mean_diff2'])}, trace_term {_num(first['fid_trace_term'])} → "
          f"{_num(best['fid_trace_term'])}")
    if int(best["M"]) == 1:
        return Claim(claim, paper, ev + " (the plain VAR has the lowest FID)", "disagrees")
    falls = best["fid_mean_diff2"] < first["fid_mean_diff2"] and best["fid_trace_term"] < first["fid_trace_term"]
    return Claim(claim, paper, ev, "agrees" if falls else "disagrees")


def claim_flexvar(res: Results) -> Claim:
    claim = "LSRS (scorer on r_k) improves FlexVAR's FID at M = 2 and M = 4"
    paper = "Table 1: FlexVAR-d24 FID 2.23 → 2.13 (M=2), 2.09 (M=4)"
    family = _flex_family(res, "M")
    rows = _rows(res, family, var=FLEX, scorer=FLEX) if family else pd.DataFrame()
    picked = [r for r in (_at(rows, "M", m) for m in FLEX_TABLE1_M) if r is not None] if not rows.empty else []
    if not picked:
        return Claim(claim, paper, "no FlexVAR LSRS rows at M = 2 or 4 (flexvar disabled or not run)", "not measured")
    base = _base(res, family, FLEX)
    ev = "; ".join([f"plain FlexVAR FID {_num(_val(base, 'fid'))}"] + [_fid_text(r, f"M={int(r['M'])}") for r in picked])
    return Claim(claim, paper, ev, _combine([_vs_zero(r) for r in picked]))


CLAIMS = (claim_main, claim_small_m, claim_m_shape, claim_st, claim_loss, claim_scale1, claim_first_scale,
          claim_topk, claim_depth, claim_fid_terms, claim_flexvar)


def scorecard(res: Results) -> list[Claim]:
    return [c(res) for c in CLAIMS]


# --------------------------------------------------------------------------- README and entry point
def write_readme(res: Results, out_dir: str | Path) -> Path:
    """reports/README.md: scorecard, then an index of every table and figure (marking what is not built yet)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = res.params
    lines = [f"# LSRS reproduction report — profile `{p.profile}`", "",
             "Generated by `lsrs report` (stage `report`) from `metrics/` and the run's `figures/`; do not edit. "
             "Every measured number comes from those files; the only typed numbers are the paper's own, "
             f"labelled as such (`lsrs/{LITERATURE.name}` and the \"paper\" column below).", ""]
    if res.main is not None:
        m = res.main
        lines += [f"Main run: {_var_label(m.get('var'))} with scorer `{m.get('scorer')}`, M = {m.get('M')}, "
                  f"ST = {m.get('ST')}, {m.get('images')} evaluation images. Ablations: "
                  f"{p.ablations.per_class} images per class per run.", ""]
    lines += ["## Paper vs this run", "",
              "ΔFID = FID − FID(plain VAR, same depth, same paired images) with its 95% interval, a percentile "
              f"bootstrap over the images within each of the {p.scorer.replicates} scorer replicates plus the "
              "between-replicate variance τ²/R (at least "
              f"{p.evaluation.n_boot} draws; `power` table: half-widths and both variance components). *undecided*: the "
              "interval holds both readings (it contains 0 or, when two configurations are compared, their "
              "intervals overlap); the power table says which N and R would decide it. \"No difference\" "
              f"claims use an equivalence margin of ±{EQUIVALENCE_PCT:.0f}% of the plain FID.", "",
              "| # | claim of the paper | paper | this run | verdict |", "|---|---|---|---|---|"]
    for i, c in enumerate(scorecard(res), 1):
        cells = (str(i), c.claim, c.paper, c.evidence, f"**{c.verdict}**")
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    lines += ["", "## Tables", "", "| table | what it shows | files |", "|---|---|---|"]
    for key, info in TABLE_INFO.items():
        lines.append(f"| {key} | {info} | {_links(out, key, ('md', 'csv', 'tex'), 'lsrs report tables')} |")
    lines += ["", "## Figures", "", "| figure | what it shows | files |", "|---|---|---|"]
    for stem, info in FIGURE_INFO.items():
        lines.append(f"| {stem} | {info} | {_links(out, stem, ('png', 'pdf'), 'lsrs report figures')} |")
    lines += ["", "Figure 2 of the paper is the method diagram (no data)."]
    if res.missing:
        lines += ["", "## Missing inputs", ""] + [f"- {m}" for m in res.missing]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return out / "README.md"


def _links(out: Path, stem: str, exts: tuple[str, ...], how: str) -> str:
    have = [e for e in exts if (out / f"{stem}.{e}").is_file()]
    return " · ".join(f"[{e}]({stem}.{e})" for e in have) if have else f"not built yet (`{how}`)"


def make_report(params: Params, metrics_dir: str | Path = "metrics", runs_dir: str | Path = "runs/mini",
                out_dir: str | Path = "reports", tables: bool = True, figures: bool = True,
                log: Callable[[str], None] = print) -> list[Path]:
    """Load the results once, write the requested tables and/or figures and always the README."""
    res = load_results(params, metrics_dir, runs_dir)
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
