"""Stage `grids`: Figures 4, 8, 9 and 1, sample grids on the 'preview' stream (never the evaluation draws)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from lsrs.pipeline.context import StageContext
from lsrs.pipeline.scorers import lsrs_plan
from lsrs.sampling.images import random_scale_grid
from lsrs.sampling.plan import make_selector
from lsrs.sampling.sampler import generate


def sample_grids(ctx: StageContext, out_dir: Path) -> list[Path]:
    """Figures 4, 8, 9 and 1: grids over M (at ST_fixed) and over ST (at M_fixed) with the same
    per-image seeds in every column, and the random scale replacement grid."""
    from torchvision.utils import save_image

    params, fs, rt, log = ctx.params, ctx.family, ctx.runtime, ctx.log
    g = params.ablations.grids
    if not rt.is_main:  # a few images: one process draws them
        return None
    layout, fam = fs.layout, fs.family
    vae = fam.load_tokenizer(layout.tokenizer).to(rt.device)
    var = fam.load_model(layout.var(params.var.main), vae).to(rt.device)
    labels = torch.arange(g.images) % var.cfg.num_classes
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, settings in (("grid_M", [(m, g.ST_fixed) for m in g.M]), ("grid_ST", [(g.M_fixed, st) for st in g.ST])):
        columns = []
        for m, st in settings:
            plan = None if m == 1 else lsrs_plan(layout.scorer(params.lsrs.scorer), vae, params.schedule(m, st),
                                                params.lsrs.selection)
            with rt.autocast():
                columns.append(_preview(var, vae, labels, params.sampling, g.seed, plan))
        grid = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: image, setting
        save_image(grid, out_dir / f"{name}.png", nrow=len(columns), padding=1)
        (out_dir / f"{name}.json").write_text(json.dumps({"rows": labels.tolist(), "columns": [
            {"M": m, "ST": st} for m, st in settings], "seed": g.seed, "stream": "preview"}, indent=1))
        written.append(out_dir / f"{name}.png")
        log(f"grids: wrote {written[-1]} ({len(labels)} images x {len(columns)} settings)")
    random_scale_grid(var, vae, params.sampling, out_dir / "random_scales.png", labels.tolist(), seed=g.seed)
    written.append(out_dir / "random_scales.png")
    return written


def _preview(var, vae, labels: torch.Tensor, sampling, seed: int, plan) -> torch.Tensor:
    """Images of `labels` on the 'preview' stream (never the evaluation draws), LSRS when `plan` is given."""
    sel = make_selector(sampling, torch.arange(len(labels)), seed, plan, stream="preview")
    return generate(var, vae, labels, sel, cfg=sampling.cfg).images.float().cpu()
