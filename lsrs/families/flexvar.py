"""FlexVAR (Jiao et al. 2025): a FlexVAE that quantises each scale of any schedule on its own, and a
transformer that takes the previous scale's codes, upsampled, as its next input. The pipeline samples
and trains on one schedule (flexvar.patch_nums). Official files: FlexVAE.pth, FlexVARd24-epo349.pth."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lsrs.core.checkpoint import CheckpointError, check_fits, config_from_json, load_into, resolve_checkpoint
from lsrs.families.base import ModelFiles
from lsrs.models import FlexVAE, FlexVAEConfig, FlexVAR, FlexVARConfig
from lsrs.models.flexvar import MASK_KEY, read_flexvar_state
from lsrs.training.trainers import FlexVAETrainer

OFFICIAL = "the official files are on the Hugging Face Hub, jiaosiyu1999/FlexVAR"


@dataclass(frozen=True)
class FlexFamily:
    schedule: tuple[int, ...]  # the scales every map, sample and scorer input uses
    name: str = "flexvar"
    tokenizer_files: ModelFiles = ModelFiles("flexvae", "FlexVAE checkpoint", OFFICIAL, title="FlexVAE")
    model_files: ModelFiles = ModelFiles("flexvar", "FlexVAR checkpoint", OFFICIAL, tolerate=(MASK_KEY,))

    def new_tokenizer(self, cfg: FlexVAEConfig) -> FlexVAE:
        return FlexVAE(cfg)

    def new_model(self, cfg: FlexVARConfig) -> FlexVAR:
        return FlexVAR(cfg)

    def load_tokenizer(self, path: str | Path) -> FlexVAE:
        """A FlexVAE from a run folder (trained here, or linking FlexVAE.pth) or a .pth (official config)."""
        ckpt, side = resolve_checkpoint(path, self.tokenizer_files.stem)
        cfg = config_from_json(FlexVAEConfig, side) if side.is_file() else FlexVAEConfig()
        return load_into(FlexVAE(cfg), ckpt, self.tokenizer_files.what, tolerate=()).eval().requires_grad_(False)

    def load_model(self, path: str | Path, tokenizer: FlexVAE) -> FlexVAR:
        """A FlexVAR set to the family's schedule; its vocabulary and code width checked against the FlexVAE."""
        ckpt, side = resolve_checkpoint(path, self.model_files.stem)
        cfg = dataclasses.replace(config_from_json(FlexVARConfig, side), patch_nums=self.schedule)
        t = tokenizer.cfg
        if (cfg.vocab_size, cfg.z_channels) != (t.codebook_size, t.codebook_embed_dim):
            raise CheckpointError(f"FlexVAR {ckpt} (V={cfg.vocab_size}, Cvae={cfg.z_channels}) does not match the "
                                  f"FlexVAE (V={t.codebook_size}, Cvae={t.codebook_embed_dim})")
        var, state = FlexVAR(cfg), read_flexvar_state(ckpt)
        check_fits(var, state, ckpt, self.model_files.what, tolerate=self.model_files.tolerate)  # every mismatch
        var.load_state_dict(state, strict=True)
        return var.eval().requires_grad_(False)

    def read_model_state(self, path: Path, what: str, mmap: bool = False) -> dict:
        return read_flexvar_state(path, what, mmap=mmap)

    def check_images(self, cfg: FlexVAEConfig, image_size: int, channels: int) -> None:
        if cfg.in_channels != channels:
            raise ValueError(f"flexvar.tokenizer.model reads {cfg.in_channels} channel images, the data has {channels}")

    def check_model(self, cfg: FlexVARConfig, vae: FlexVAE) -> None:
        t = vae.cfg
        if (cfg.vocab_size, cfg.z_channels) != (t.codebook_size, t.codebook_embed_dim):
            raise ValueError("the FlexVAE in the folder was trained with other flexvar.tokenizer.model params; "
                             "retrain it")

    def tokenizer_trainer(self, vae: FlexVAE, data, cfg, out_dir: Path, log: Callable[[str], None]):
        return FlexVAETrainer(vae, data, cfg, self.schedule, out_dir, log)

    @torch.no_grad()
    def reconstruct(self, vae: FlexVAE, x: torch.Tensor) -> torch.Tensor:
        return vae.decode_idx(vae.img_to_idx(x, self.schedule)[-1], self.schedule[-1])
