"""Loading the pipeline's result files into one `Results`, and the row look-ups every part reads.

A missing input is a note in `Results.missing` (what it would have fed), never an error, so a
partial pipeline still gives a readable report; a malformed file is an error naming it. The
look-ups (`_rows`, `_base`, `_at`, ...) are the one place that knows how sweep rows are filtered
and paired with their plain-model baseline, so tables, figures and claims cannot disagree.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lsrs.report.formatting import _missing, _var_label
from lsrs.report.spec import ReportSpec

ROLES = {  # a sweep's role (params: ablations.sweeps.<name>.role) -> the tables and figures it feeds
    "m_curve": "Tables 1, 2, 5, 7, 8, 9 and Figure 3 (left)",
    "st_curve": "Table 6 and Figure 3 (right)",
    "m_at_st1": "Table 3",
    "loss": "Table 2 (pointwise column)",
    "topk": "Tables 8 and 9",
    "first_scale": "Table 10 (FID companion)",
    "depth": "Tables 1 and 4 (the other depths)",
    "attribution": "Table 11 and Figure 11",
}
REQUIRED_ROLES = ("m_curve", "st_curve", "m_at_st1", "loss", "topk", "first_scale", "depth")  # missing: a note
SWEEP_COLUMNS = ("family", "run", "var", "scorer", "M", "ST", "k", "fid", "is", "sfid", "count",
                 "fid_diff", "fid_diff_low", "fid_diff_high")
FLEX = "flexvar"  # the FlexVAR family's model and scorer name in sweep rows (lsrs/families/flexvar.py)


@dataclass
class Results:
    """Everything a report reads; `missing` names each absent input and what it would have fed."""

    spec: ReportSpec
    main: dict | None = None
    sweeps: dict[str, pd.DataFrame] = field(default_factory=dict)
    analysis: list[dict] = field(default_factory=list)
    cost: pd.DataFrame | None = None
    figures_dir: Path = Path("runs/mini/figures")
    missing: list[str] = field(default_factory=list)

    @property
    def profile(self) -> str:
        return self.spec.profile

    @property
    def main_var(self) -> str | None:
        return self.spec.var.main

    @property
    def main_scorer(self) -> str | None:
        return self.spec.scorer.main


def load_results(spec: ReportSpec, metrics_dir: str | Path, runs_dir: str | Path) -> Results:
    """Read every input that exists; a malformed file is an error naming it, a missing one a note."""
    metrics_dir = Path(metrics_dir)
    res = Results(spec=spec, figures_dir=Path(runs_dir) / "figures")
    main = metrics_dir / "main.json"
    if main.is_file():
        res.main = json.loads(main.read_text())
    else:
        res.missing.append(f"`{main}`: the main run (Table 1's main-run rows, the first scorecard claim)")
    for path in sorted((metrics_dir / "sweeps").glob("*.csv")):
        res.sweeps[path.stem] = _read_sweep(path)
    for role in REQUIRED_ROLES:
        family, feeds = sweep_of(res, role), ROLES[role]
        if family == role and not any(sw.role == role for sw in spec.ablations.sweeps.values()):
            res.missing.append(f"no sweep in ablations.sweeps has role {role} ({feeds})")
        elif family not in res.sweeps:
            res.missing.append(f"`{metrics_dir / 'sweeps' / (family + '.csv')}`: sweep family {family} ({feeds})")
    if spec.flexvar.enabled:
        for name, sw in spec.flexvar.sweeps.items():
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


def _values(rows: pd.DataFrame, col: str, res: Results | None = None, family: str | None = None) -> str:
    """The distinct values of `col` in `rows`, else those params.yaml asks of the family (titles of
    tables whose sweep is missing still say what they would show)."""
    vals = sorted({int(v) for v in rows[col]}) if not rows.empty else []
    sweep = res.spec.ablations.sweeps.get(family) if res is not None and family else None
    if not vals and sweep is not None:
        vals = list(getattr(sweep, col, ()))
    return ", ".join(map(str, vals)) or "?"


def _depth_scorers(res: Results) -> dict[str, str]:
    """var -> the scorer that stands for that depth (pairwise, trained with scale 1; lsrs.scorer for
    var.main), ordered by depth: these are Tables 1/4's LSRS rows and Figure 5's curves."""
    out: dict[str, str] = {}
    for name, run in res.spec.scorer.runs.items():
        if run.loss == "pairwise" and not run.without_first_scale:
            out.setdefault(run.var, name)
    if res.main_var and res.main_scorer:
        out[res.main_var] = res.main_scorer
    depth = res.spec.var.depths
    return dict(sorted(out.items(), key=lambda kv: depth.get(kv[0], 0)))


def sweep_of(res: Results, role: str) -> str:
    """The name of the VAR sweep with `role` (ablations.sweeps.<name>.role); the report finds every
    family this way, never by a name. Without one: the role itself, which no results file has, so
    what it feeds reads "not measured"."""
    return next((name for name, sw in res.spec.ablations.sweeps.items() if sw.role == role), role)


def _flex_family(res: Results, x: str) -> str | None:
    """The FlexVAR sweep (its metrics name, flexvar_<name>) of the M curve (x = "M") or the ST curve
    (x = "ST"); None when flexvar is disabled or no sweep has that role."""
    if not res.spec.flexvar.enabled:
        return None
    role = "m_curve" if x == "M" else "st_curve"
    return next((f"{FLEX}_{name}" for name, sw in res.spec.flexvar.sweeps.items() if sw.role == role), None)


def _attribution_families(res: Results) -> list[tuple[str, str, str]]:
    """(metrics name, model label, var) of the single-scale (attribution role) sweep of each family."""
    out = [(name, _var_label(res.main_var), res.main_var)
           for name, sw in res.spec.ablations.sweeps.items() if sw.role == "attribution"]
    if res.spec.flexvar.enabled:
        out += [(f"{FLEX}_{name}", f"FlexVAR-d{res.spec.flexvar.depth}", FLEX)
                for name, sw in res.spec.flexvar.sweeps.items() if sw.role == "attribution"]
    return out


def _analysis(res: Results) -> dict[str, dict]:
    return {entry["scorer"]: entry for entry in res.analysis}


def _scorer_entries(res: Results, main: bool) -> list[tuple[str, dict]]:
    """(label, analysis) of each depth's scorer: the main depth's (main=True) or the others'."""
    by_name = _analysis(res)
    return [(f"{_var_label(var)} ({name})", by_name[name]) for var, name in _depth_scorers(res).items()
            if name in by_name and (var == res.main_var) == main]


def _first_scale_pair(res: Results) -> tuple[dict | None, dict | None]:
    """(the main scorer's analysis, the analysis of the scorer trained without scale 1 on the same VAR)."""
    by_name = _analysis(res)
    with_first = by_name.get(res.main_scorer)
    without = next((e for e in res.analysis if e.get("without_first_scale")
                    and (with_first is None or e.get("var") == with_first.get("var"))), None)
    return with_first, without
