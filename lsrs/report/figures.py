"""Every figure of the report, and writing each as PNG and PDF; Figures 3, 6 and 11 are drawn here.

Figures are drawn on `matplotlib.figure.Figure` objects (the Agg canvas, no pyplot state), styled by
seaborn inside `_style`; `FIGURES` is the order they are written in and `FIGURE_INFO` what the
README says of each.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lsrs.report.formatting import _count, _missing
from lsrs.report.grids import figure01, figure04, figure08, figure09
from lsrs.report.plotting import VAR_COLOR, _colors, _log2_axis, _not_measured, _style
from lsrs.report.results import (FLEX, Results, _attribution_families, _base, _flex_family, _rows, _val, _values,
                                 _var_label, sweep_of)
from lsrs.report.scorer_figures import figure05, figure07

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
    flex = res.spec.flexvar.enabled
    fig = Figure(figsize=(22 if flex else 11, 7), layout="constrained")
    axes = fig.subplots(2, 4 if flex else 2, sharex="col")
    _sweep_panels(res, axes[0, 0], axes[1, 0], sweep_of(res, "m_curve"), "M", colors)
    _sweep_panels(res, axes[0, 1], axes[1, 1], sweep_of(res, "st_curve"), "ST", colors)
    title = f"Figure 3: ablation of M and ST ({_var_label(res.main_var)}"
    if flex:
        colors = {**colors, FLEX: colors.get(FLEX, "C2")}
        for col, x in ((2, "M"), (3, "ST")):
            _sweep_panels(res, axes[0, col], axes[1, col], _flex_family(res, x), x, colors, var=FLEX, scorer=FLEX,
                          model=f"FlexVAR-d{res.spec.flexvar.depth}")
        title += f"; FlexVAR-d{res.spec.flexvar.depth} with the r_k scorer"
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
