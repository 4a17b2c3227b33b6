"""Figures 5 and 7: the scorer analysis (per-scale validation loss and accuracy per depth, the scores
of LSRS's selected candidates, and the real vs generated score histograms per scale).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lsrs.report.formatting import _num
from lsrs.report.plotting import GENERATED_COLOR, REAL_COLOR, _not_measured
from lsrs.report.results import Results, _analysis, _depth_scorers, _scorer_entries, _var_label


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
