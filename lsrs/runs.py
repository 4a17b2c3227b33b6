"""The model-level steps behind the CLI: train the tokenizer, train a VAR, sample an image grid.

Each function takes validated params and folders, does one step end to end (with progress and
logs), and writes its artefacts atomically; the Typer commands in lsrs.cli only parse and call.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from lsrs.checkpoint import CheckpointError, config_from_json, load_into, read_state_dict
from lsrs.config import Params
from lsrs.data import ImageSet, load_fashion_mnist
from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig
from lsrs.sampler import OfficialRNG, PerSampleRNG, TokenSampler, generate
from lsrs import train as T


def load_data(params: Params, split: str = "train") -> ImageSet:
    limit = params.data.train_limit if split == "train" else None
    return load_fashion_mnist(params.data.root, split, pad_to=params.data.image_size, limit=limit)


def _resolve(path: str | Path, name: str) -> tuple[Path, Path]:
    """(checkpoint, config sidecar) for a run folder or a .pth path."""
    path = Path(path)
    ckpt = path / f"{name}.pth" if path.is_dir() else path
    return ckpt, ckpt.with_suffix(".json")


def load_tokenizer(path: str | Path) -> VQVAE:
    """A VQ-VAE from a run folder or a .pth; without a JSON sidecar the official config is assumed."""
    ckpt, side = _resolve(path, "tokenizer")
    cfg = config_from_json(TokenizerConfig, side) if side.is_file() else TokenizerConfig()
    hint = "" if side.is_file() else "(no JSON config beside it, so the official vae_ch160v4096z32 config was assumed)"
    vae = load_into(VQVAE(cfg), ckpt, "tokenizer checkpoint", hint)
    return vae.eval().requires_grad_(False)


def load_var(path: str | Path, tokenizer: VQVAE | None = None) -> VAR:
    """A VAR from a run folder or a .pth; an official var_dNN.pth gets its depth from its keys."""
    ckpt, side = _resolve(path, "var")
    if side.is_file():
        cfg = config_from_json(TransformerConfig, side)
    else:
        state = read_state_dict(ckpt, "VAR checkpoint")
        depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        cfg = TransformerConfig(depth=depth)
    var = load_into(VAR(cfg), ckpt, "VAR checkpoint")
    if tokenizer is not None:
        t = tokenizer.cfg
        if (t.vocab_size, t.z_channels, t.patch_nums) != (cfg.vocab_size, cfg.z_channels, cfg.patch_nums):
            raise CheckpointError(f"VAR {ckpt} (V={cfg.vocab_size}, Cvae={cfg.z_channels}, scales={cfg.patch_nums}) "
                                  f"does not match the tokenizer (V={t.vocab_size}, Cvae={t.z_channels}, "
                                  f"scales={t.patch_nums})")
    return var.eval().requires_grad_(False)


def train_tokenizer(params: Params, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    out_dir = Path(out_dir)
    train_set, test_set = load_data(params, "train"), load_data(params, "test")
    cfg = params.tokenizer.model
    if cfg.image_size != params.data.image_size or cfg.in_channels != train_set.images.shape[1]:
        raise ValueError(f"tokenizer.model makes {cfg.image_size}px x {cfg.in_channels} channel images, the data "
                         f"is {params.data.image_size}px x {train_set.images.shape[1]}")
    torch.manual_seed(params.tokenizer.train.optim.seed)
    vae = VQVAE(cfg)
    log(f"tokenizer: {sum(p.numel() for p in vae.parameters()):,} parameters, {len(train_set)} training images")
    t0 = time.time()
    trainer = T.TokenizerTrainer(vae, train_set, params.tokenizer.train, out_dir, log)
    trainer.fit()
    quality = T.tokenizer_quality(vae, test_set)
    quality["train_seconds_this_run"] = time.time() - t0
    T.save_model(vae, cfg, out_dir, "tokenizer")
    T.write_json(quality, out_dir / "tokenizer_metrics.json")
    T.plot_history(out_dir / "tokenizer_loss.csv", out_dir / "tokenizer_loss.png",
                   ("loss", "rec_mse", "vq_loss", "codes_used"), "mini VQ-VAE training")
    save_reconstructions(vae, test_set, out_dir / "tokenizer_recon.png")
    log(f"tokenizer: test MSE {quality['mse_pm1']:.4f} (pixels in [-1,1]), "
        f"{quality['codes_used_total']}/{cfg.vocab_size} codes used")
    return quality


@torch.no_grad()
def save_reconstructions(vae: VQVAE, data: ImageSet, path: Path, n: int = 16) -> None:
    """Originals (top row) and reconstructions (bottom row) of the first n images."""
    from torchvision.utils import save_image

    x = data.as_float(slice(0, n))
    rec = vae.idx_to_img(vae.img_to_idx(x))
    save_image(torch.cat([x, rec]).add(1).div(2), path, nrow=n, padding=1)


def train_var(params: Params, tokenizer_dir: Path, out_dir: Path, depth: int | None = None,
              width: int | None = None, log: Callable[[str], None] = print) -> dict:
    out_dir = Path(out_dir)
    vae = load_tokenizer(tokenizer_dir)
    cfg = params.var_model(depth, width)
    if (cfg.vocab_size, cfg.z_channels, cfg.patch_nums) != (vae.cfg.vocab_size, vae.cfg.z_channels, vae.cfg.patch_nums):
        raise ValueError("the tokenizer in the folder was trained with other tokenizer.model params; retrain it")
    train_set, test_set = load_data(params, "train"), load_data(params, "test")
    if cfg.num_classes != train_set.num_classes:
        raise ValueError(f"var.model.num_classes is {cfg.num_classes}, the data has {train_set.num_classes} classes")
    tokens = _cached_tokens(vae, train_set, out_dir / "train_tokens.pt", tokenizer_dir)
    torch.manual_seed(params.var.train.optim.seed)
    var = VAR(cfg)
    var.init_weights(gamma_scale=params.var.train.gamma_init)
    log(f"VAR depth {cfg.depth} width {cfg.embed_dim}: {sum(p.numel() for p in var.parameters()):,} parameters")
    t0 = time.time()
    T.VarTrainer(var, vae, tokens, train_set.labels, params.var.train, out_dir, log).fit()
    metrics = T.var_validation(var, vae, T.encode_tokens(vae, test_set, desc="encode test tokens"), test_set.labels)
    metrics["train_seconds_this_run"] = time.time() - t0
    T.save_model(var, cfg, out_dir, "var")
    T.write_json(metrics, out_dir / "var_metrics.json")
    T.plot_history(out_dir / "var_loss.csv", out_dir / "var_loss.png", ("loss", "grad_norm"),
                   f"mini VAR d{cfg.depth} training")
    log(f"VAR: test cross-entropy {metrics['ce_mean']:.4f}")
    return metrics


def _cached_tokens(vae: VQVAE, data: ImageSet, path: Path, tokenizer_dir: Path) -> torch.Tensor:
    """Token maps of the training images, cached next to the VAR run (keyed by the tokenizer file)."""
    ckpt, _ = _resolve(tokenizer_dir, "tokenizer")
    key = (str(ckpt.resolve()), ckpt.stat().st_mtime_ns, len(data))
    if path.is_file():
        cached = torch.load(path, weights_only=False)
        if cached.get("key") == key:
            return cached["tokens"]
    tokens = T.encode_tokens(vae, data, desc="encode training tokens")
    from lsrs.checkpoint import atomic_save

    atomic_save({"key": key, "tokens": tokens}, path)
    return tokens


def make_selector(sampling, sample_ids: torch.Tensor, seed: int) -> TokenSampler:
    rng = PerSampleRNG(seed, sample_ids) if sampling.rng == "per-sample" else OfficialRNG(seed)
    return TokenSampler(rng, top_k=sampling.top_k, top_p=sampling.top_p)


def sample_images(var: VAR, vae: VQVAE, labels: torch.Tensor, sampling, seed: int,
                  batch_size: int | None = None, first_id: int = 0, progress: bool = True) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] for `labels`; image i uses sample id first_id + i.

    With the per-sample RNG the result does not depend on batch_size. With the official RNG each
    batch reseeds the generator with seed + batch number (the official g_seed semantics).
    """
    bs = batch_size or sampling.batch_size
    out = []
    starts = range(0, len(labels), bs)
    for n, start in enumerate(tqdm(starts, desc="sample", unit="batch", disable=not progress)):
        lab = labels[start:start + bs]
        ids = torch.arange(first_id + start, first_id + start + len(lab))
        sel = make_selector(sampling, ids, seed if sampling.rng == "per-sample" else seed + n)
        out.append(generate(var, vae, lab, sel, cfg=sampling.cfg).images.cpu())
    return torch.cat(out)


def sample_grid(var: VAR, vae: VQVAE, sampling, out_png: Path, per_class: int = 8, seed: int = 0,
                batch_size: int | None = None) -> torch.Tensor:
    """A grid with one row per class and `per_class` samples in each row."""
    from torchvision.utils import save_image

    labels = torch.arange(var.cfg.num_classes).repeat_interleave(per_class)
    images = sample_images(var, vae, labels, sampling, seed, batch_size)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    save_image(images, out_png, nrow=per_class, padding=1)
    return images
