"""Images from a model: evaluation sets split over ranks, class grids, and Figure 1's random scale
replacement; one call (`generate_model`) for both model families."""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from lsrs.core.npz import to_uint8
from lsrs.models import VAR, VQVAE
from lsrs.core.runtime import CPU, Runtime
from lsrs.sampling.plan import LSRSPlan, make_selector
from lsrs.sampling.sampler import generate, generate_model


def sample_images(var: VAR, vae: VQVAE, labels: torch.Tensor, sampling, seed: int,
                  batch_size: int | None = None, first_id: int = 0, progress: bool = True,
                  plan: LSRSPlan | None = None, runtime: Runtime = CPU,
                  ids: torch.Tensor | None = None) -> torch.Tensor | None:
    """uint8 images (N, C, H, W) for `labels`; image i uses sample id first_id + i (or ids[i] when given).

    With the per-sample RNG the tokens do not depend on batch_size, and image i sees the same
    draws whatever the LSRS plan (candidate 0 of every scale is the plain sampler's draw). With the
    official RNG each batch reseeds the generator with seed + batch number (the official g_seed
    semantics); LSRS needs the per-sample RNG. Models must be on runtime.device.

    With several ranks, rank r generates the batches r, r + world, ... and rank 0 returns every
    image in order (the other ranks None); the batches are those of one process, so the images are too.
    """
    bs = batch_size or sampling.batch_size
    starts = range(0, len(labels), bs)
    ids = torch.arange(first_id, first_id + len(labels)) if ids is None else torch.as_tensor(ids)
    mine = {}
    for n in tqdm(runtime.mine(len(starts)), desc="sample", unit="batch", disable=not progress):
        start = starts[n]
        lab = labels[start:start + bs]
        sel = make_selector(sampling, ids[start:start + bs], seed if sampling.rng == "per-sample" else seed + n, plan)
        with runtime.autocast():
            mine[n] = to_uint8(generate_model(var, vae, lab, sel, cfg=sampling.cfg).images).cpu()
    parts = runtime.gather(mine)
    if parts is None:
        return None
    batches = {n: x for part in parts for n, x in part.items()}
    return torch.cat([batches[n] for n in range(len(starts))])


def sample_grid(var: VAR, vae: VQVAE, sampling, out_png: Path, per_class: int = 8, seed: int = 0,
                batch_size: int | None = None, plan: LSRSPlan | None = None) -> torch.Tensor:
    """A grid with one row per class and `per_class` samples in each row."""
    from torchvision.utils import save_image

    labels = torch.arange(var.cfg.num_classes).repeat_interleave(per_class)
    images = sample_images(var, vae, labels, sampling, seed, batch_size, plan=plan).float() / 255
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    save_image(images, out_png, nrow=per_class, padding=1)
    return images


def random_scale_grid(var: VAR, vae: VQVAE, sampling, out_png: Path, classes: list[int], seed: int = 0
                      ) -> torch.Tensor:
    """The paper's Figure 1: per row one class; column 0 is the plain sample, column k (1-based) the same
    sample with scale k's token map replaced by uniformly random tokens while generation goes on.

    Every column uses the same per-sample streams, so columns differ only through the replacement.
    """
    from torchvision.utils import save_image

    from lsrs.sampling.rejection import RandomScale

    if sampling.rng != "per-sample":
        raise ValueError("random scale replacement needs sampling.rng = per-sample")
    labels = torch.tensor(classes, dtype=torch.long)
    ids = torch.arange(len(labels))
    columns = []
    for scale in tqdm([None, *range(len(vae.cfg.patch_nums))], desc="random scales", unit="column"):
        plain = make_selector(sampling, ids, seed, stream="preview")
        sel = plain if scale is None else RandomScale(plain, scale)
        columns.append(generate(var, vae, labels, sel, cfg=sampling.cfg).images.float().cpu())
    grid = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: class, column
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, out_png, nrow=len(columns), padding=1)
    return grid
