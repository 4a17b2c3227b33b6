"""Steps that make a family's models: train (mini) or check and link (paper) its tokenizer and its
next-scale models, one code path for VAR and FlexVAR (`FamilySetup`).

Each step writes its artefacts atomically into the folder the layout names, and training resumes
from its snapshot after an interruption.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from lsrs.core.checkpoint import atomic_save, resolve_checkpoint, sha256_file
from lsrs.data import ImageSet, load_split
from lsrs.families.base import link_model
from lsrs.pipeline.context import StageContext
from lsrs.pipeline.family import FamilySetup, ModelSpec
from lsrs.pipeline.params import Params
from lsrs.training import trainers as T

TRAIN_TOKENS = "train_tokens.pt"  # the training images' token maps, cached beside the tokenizer


def load_data(params: Params, split: str = "train"):
    """The profile's images of `split`: an in-memory ImageSet (Fashion-MNIST) or a lazy FolderImages (ImageNet)."""
    return load_split(params.data, split)


def make_tokenizer(ctx: StageContext) -> dict:
    """Stage `tokenizer` (and `flex_tokenizer`): link the official checkpoint when the params name one,
    else train the tokenizer on the profile's images; writes into the family's tokenizer folder."""
    fs, log = ctx.family, ctx.log
    out_dir, spec, fam = fs.layout.tokenizer, fs.tokenizer, fs.family
    if fs.skipped(out_dir, log):
        return {}
    if spec.checkpoint:
        return _link(fam.new_tokenizer, spec, fam.tokenizer_files, out_dir, log)
    return train_tokenizer(ctx, out_dir)


def train_tokenizer(ctx: StageContext, out_dir: Path) -> dict:
    """Train the family's tokenizer; writes <stem>.pth/.json, its test quality, the loss plot, a
    reconstruction grid and the training images' token maps (read by every model of the family)."""
    params, fs, log = ctx.params, ctx.family, ctx.log
    out_dir, fam, cfg = Path(out_dir), fs.family, fs.tokenizer.config
    train_set, test_set = load_data(params, "train"), load_data(params, "test")
    fam.check_images(cfg, params.data.image_size, train_set.images.shape[1])
    torch.manual_seed(fs.tokenizer.train.optim.seed)
    vae = fam.new_tokenizer(cfg)
    log(f"{fam.name} tokenizer: {sum(p.numel() for p in vae.parameters()):,} parameters, {len(train_set)} training "
        f"images" + (f", schedule {fam.schedule}" if fam.schedule else ""))
    t0 = time.time()
    fam.tokenizer_trainer(vae, train_set, fs.tokenizer.train, out_dir, log).fit()
    quality = T.tokenizer_quality(vae, test_set, patch_nums=fam.schedule)
    quality["train_seconds_this_run"] = time.time() - t0
    stem = fam.tokenizer_files.stem
    T.save_model(vae, cfg, out_dir, stem)
    T.write_json(quality, out_dir / f"{stem}_metrics.json")
    cached_tokens(fs, vae.eval(), train_set, out_dir / TRAIN_TOKENS, out_dir)
    T.plot_history(out_dir / f"{stem}_loss.csv", out_dir / f"{stem}_loss.png",
                   ("loss", "rec_mse", "vq_loss", "codes_used"), f"mini {fam.tokenizer_files.title} training")
    save_reconstructions(fs, vae, test_set, out_dir / f"{stem}_recon.png")
    log(f"{fam.name} tokenizer: test MSE {quality['mse_pm1']:.4f} (pixels in [-1,1]), "
        f"{quality['codes_used_total']}/{quality['vocab_size']} codes used")
    return quality


@torch.no_grad()
def save_reconstructions(fs: FamilySetup, vae, data: ImageSet, path: Path, n: int = 16) -> None:
    """Originals (top row) and reconstructions (bottom row) of the first n images."""
    from torchvision.utils import save_image

    x = data.as_float(slice(0, n))
    save_image(torch.cat([x, fs.family.reconstruct(vae, x)]).add(1).div(2), path, nrow=n, padding=1)


def make_model(ctx: StageContext, name: str) -> dict:
    """Stage `var@<name>` (and `flex_var`): link the model's official checkpoint, or train it."""
    fs, log = ctx.family, ctx.log
    spec, fam = fs.model(name), fs.family
    out_dir = fs.layout.var(name)
    if fs.skipped(out_dir, log):
        return {}
    if spec.checkpoint:
        return _link(fam.new_model, spec, fam.model_files, out_dir, log, read=fam.read_model_state)
    return train_model(ctx, name, out_dir)


def _link(build: Callable, spec: ModelSpec, files, out_dir: Path, log: Callable[[str], None], read=None) -> dict:
    """Check the official checkpoint `spec` names against the model `build(spec.config)` makes (on the
    meta device: nothing is allocated) and link it from `out_dir`."""
    with torch.device("meta"):
        model = build(spec.config)
    return link_model(model, spec.config, files, spec.checkpoint, spec.sha256, out_dir, spec.param_key, spec.file,
                      log, read=read)


def train_model(ctx: StageContext, name: str, out_dir: Path) -> dict:
    """Teacher-forced next-scale training of model `name` on the tokenizer's maps of the training images."""
    params, fs, log = ctx.params, ctx.family, ctx.log
    out_dir, fam, spec = Path(out_dir), fs.family, fs.model(name)
    tokenizer_dir = fs.layout.tokenizer
    vae = fam.load_tokenizer(tokenizer_dir)
    fam.check_model(spec.config, vae)
    train_set, test_set = load_data(params, "train"), load_data(params, "test")
    if spec.config.num_classes != train_set.num_classes:
        raise ValueError(f"{spec.param_key}: the model has {spec.config.num_classes} classes, the data "
                         f"{train_set.num_classes}")
    shared = resolve_checkpoint(tokenizer_dir, fam.tokenizer_files.stem)[0].parent / TRAIN_TOKENS
    tokens = cached_tokens(fs, vae, train_set, shared if shared.is_file() else out_dir / TRAIN_TOKENS, tokenizer_dir)
    torch.manual_seed(spec.train.optim.seed)
    model = fam.new_model(spec.config)
    model.init_weights(gamma_scale=spec.train.gamma_init)
    test = (T.encode_tokens(vae, test_set, desc="encode test tokens", patch_nums=fam.schedule), test_set.labels)
    return T.fit_next_scale(model, vae, (tokens, train_set.labels), test, spec.train, out_dir,
                            fam.model_files.stem, log)


def cached_tokens(fs: FamilySetup, vae, data: ImageSet, path: Path, tokenizer_dir: Path) -> torch.Tensor:
    """Token maps of the training images, cached beside the tokenizer (by train_tokenizer, so every
    model of the family reuses them) or next to the model's run; keyed by the tokenizer's content
    and the image count."""
    ckpt, _ = resolve_checkpoint(tokenizer_dir, fs.family.tokenizer_files.stem)
    key = (sha256_file(ckpt), len(data))
    if path.is_file():
        cached = torch.load(path, weights_only=False)
        if cached.get("key") == key:
            return cached["tokens"]
    tokens = T.encode_tokens(vae, data, desc="encode training tokens", patch_nums=fs.family.schedule)
    atomic_save({"key": key, "tokens": tokens}, path)
    return tokens
