"""VAR (Tian et al. 2024): the multi-scale residual VQ-VAE, whose scales are fixed by its config, and
the next-scale transformer. Official files: vae_ch160v4096z32.pth and var_d16..d30.pth."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lsrs.core.checkpoint import (CheckpointError, config_from_json, load_into, read_state_dict,
                                  resolve_checkpoint)
from lsrs.families.base import ModelFiles
from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig
from lsrs.training.trainers import TokenizerTrainer

OFFICIAL = "the official files are on the Hugging Face Hub, FoundationVision/var"


@dataclass(frozen=True)
class VarFamily:
    name: str = "var"
    tokenizer_files: ModelFiles = ModelFiles("tokenizer", "tokenizer checkpoint", OFFICIAL,
                                             tolerate=("quantize.ema_vocab_hit_SV",), title="VQ-VAE")
    model_files: ModelFiles = ModelFiles("var", "VAR checkpoint", OFFICIAL, tolerate=("quantize.ema_vocab_hit_SV",))
    schedule: tuple[int, ...] | None = None  # the VQ-VAE's own patch_nums

    def new_tokenizer(self, cfg: TokenizerConfig) -> VQVAE:
        return VQVAE(cfg)

    def new_model(self, cfg: TransformerConfig) -> VAR:
        return VAR(cfg)

    def load_tokenizer(self, path: str | Path) -> VQVAE:
        """A VQ-VAE from a run folder or a .pth; without a JSON sidecar the official config is assumed."""
        ckpt, side = resolve_checkpoint(path, self.tokenizer_files.stem)
        cfg = config_from_json(TokenizerConfig, side) if side.is_file() else TokenizerConfig()
        hint = "" if side.is_file() else ("(no JSON config beside it, so the official vae_ch160v4096z32 config "
                                          "was assumed)")
        return load_into(VQVAE(cfg), ckpt, self.tokenizer_files.what, hint).eval().requires_grad_(False)

    def load_model(self, path: str | Path, tokenizer: VQVAE | None = None) -> VAR:
        """A VAR from a run folder or a .pth; an official var_dNN.pth gets its depth from its keys."""
        ckpt, side = resolve_checkpoint(path, self.model_files.stem)
        if side.is_file():
            cfg = config_from_json(TransformerConfig, side)
        else:
            state = read_state_dict(ckpt, self.model_files.what)
            cfg = TransformerConfig(depth=len({k.split(".")[1] for k in state if k.startswith("blocks.")}))
        var = load_into(VAR(cfg), ckpt, self.model_files.what)
        if tokenizer is not None:
            t = tokenizer.cfg
            if (t.vocab_size, t.z_channels, t.patch_nums) != (cfg.vocab_size, cfg.z_channels, cfg.patch_nums):
                raise CheckpointError(f"VAR {ckpt} (V={cfg.vocab_size}, Cvae={cfg.z_channels}, scales="
                                      f"{cfg.patch_nums}) does not match the tokenizer (V={t.vocab_size}, "
                                      f"Cvae={t.z_channels}, scales={t.patch_nums})")
        return var.eval().requires_grad_(False)

    def read_model_state(self, path: Path, what: str, mmap: bool = False) -> dict:
        return read_state_dict(path, what, mmap=mmap)

    def check_images(self, cfg: TokenizerConfig, image_size: int, channels: int) -> None:
        if cfg.image_size != image_size or cfg.in_channels != channels:
            raise ValueError(f"tokenizer.model makes {cfg.image_size}px x {cfg.in_channels} channel images, the "
                             f"data is {image_size}px x {channels}")

    def check_model(self, cfg: TransformerConfig, vae: VQVAE) -> None:
        t = vae.cfg
        if (cfg.vocab_size, cfg.z_channels, cfg.patch_nums) != (t.vocab_size, t.z_channels, t.patch_nums):
            raise ValueError("the tokenizer in the folder was trained with other tokenizer.model params; retrain it")

    def tokenizer_trainer(self, vae: VQVAE, data, cfg, out_dir: Path, log: Callable[[str], None]):
        return TokenizerTrainer(vae, data, cfg, out_dir, log)

    @torch.no_grad()
    def reconstruct(self, vae: VQVAE, x: torch.Tensor) -> torch.Tensor:
        return vae.idx_to_img(vae.img_to_idx(x))
