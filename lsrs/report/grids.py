"""Figures 1, 4, 8 and 9: the pipeline's fixed-seed sample grids (PNGs under <runs>/figures), with
column titles from their JSON descriptions (else from ablations.grids) and class names as row labels.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lsrs.report.plotting import _not_measured
from lsrs.report.results import Results, _var_label

# A copy of lsrs/data/fashion_mnist.py FASHION_CLASSES: lsrs.data imports torch, the report must not.
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


def _grid_meta(res: Results, name: str) -> dict | None:
    path = res.figures_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _class_names(res: Results, rows: list[int] | None) -> list[str] | None:
    if rows is None:
        return None
    if res.spec.dataset == "fashion-mnist":
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
    meta, g = _grid_meta(res, name), res.spec.ablations.grids
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
    nrow = max(len(rows or []) for _, rows, _ in specs) or res.spec.ablations.grids.images
    width = sum(len(t) for t, _, _ in specs) * 1.1 + 1.6 * len(specs)
    fig = Figure(figsize=(width, 0.95 * nrow + 1.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name, (titles, rows, sub) in zip(axes, names, specs):
        _show_grid(ax, res.figures_dir / f"{name}.png", titles, rows, sub)
    fig.suptitle(suptitle)
    return fig


def figure01(res: Results, colors: dict) -> Figure:
    k = res.spec.num_scales
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
