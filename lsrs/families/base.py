"""The `Family` interface: what a next-scale model family must say so that one pipeline serves it.

A family is a tokenizer (images <-> multi-scale token maps) and a next-scale transformer over those
maps. What the rest of the code needs from it is small: build, load and link both models, train the
tokenizer, and the schedule its maps use. `schedule` is None when the tokenizer fixes its own scales
(VAR's VQ-VAE); a FlexVAE quantises whatever schedule it is given, so FlexVAR names one, and the
lower layers (token stores, scorer inputs, generation) take it as their `patch_nums` argument.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import nn

from lsrs.core.checkpoint import link_checkpoint, resolve_checkpoint, sha256_file


@dataclass(frozen=True)
class ModelFiles:
    """How one model of a family is stored: its file stem in a run folder (`stem`.pth/.json), what the
    error messages call it, and where the official checkpoint comes from."""

    stem: str
    what: str
    official: str  # e.g. "the official files are on the Hugging Face Hub, FoundationVision/var"
    tolerate: tuple[str, ...] = ()  # buffer keys an official file may carry that we rebuild
    title: str = ""  # the model's name in plots (e.g. VQ-VAE)


class Family(Protocol):
    name: str  # "var" | "flexvar"
    tokenizer_files: ModelFiles
    model_files: ModelFiles
    schedule: tuple[int, ...] | None  # the token maps' scales when the tokenizer does not fix them

    def new_tokenizer(self, cfg) -> nn.Module: ...
    def new_model(self, cfg) -> nn.Module: ...
    def load_tokenizer(self, path: str | Path) -> nn.Module: ...
    def load_model(self, path: str | Path, tokenizer: nn.Module) -> nn.Module: ...
    def read_model_state(self, path: Path, what: str, mmap: bool = False) -> dict[str, torch.Tensor]: ...
    def check_images(self, cfg, image_size: int, channels: int) -> None: ...
    def check_model(self, cfg, tokenizer: nn.Module) -> None: ...
    def tokenizer_trainer(self, vae: nn.Module, data, cfg, out_dir: Path, log: Callable[[str], None]): ...
    def reconstruct(self, vae: nn.Module, x: torch.Tensor) -> torch.Tensor: ...


def link_model(model: nn.Module, cfg, files: ModelFiles, checkpoint: str, sha256: str | None, out_dir: Path,
               param_key: str, file: str, log: Callable[[str], None], read=None) -> dict:
    """Check an official checkpoint (sha256, keys, shapes) against `model` (built on the meta device)
    and link it from `out_dir` (see core.checkpoint.link_checkpoint)."""
    kw = {} if read is None else {"read": read}
    source = link_checkpoint(model, cfg, checkpoint, sha256, out_dir, files.stem, files.what,
                             f"Put {file} there or set {param_key}.checkpoint ({files.official}).",
                             tolerate=files.tolerate, **kw)
    log(f"{files.what}: {source['path']} checked (sha256 {source['sha256'][:12]}..., keys and shapes) -> {out_dir}")
    return source


def model_id(folder: Path, stem: str) -> dict:
    """What identifies a model in a token store's meta: its file and content hash (for a linked
    official file the hash its stage checked, so gigabytes are not hashed again)."""
    import json

    from lsrs.core.checkpoint import SOURCE_SUFFIX

    ckpt = resolve_checkpoint(folder, stem)[0]
    link = Path(folder) / f"{stem}{SOURCE_SUFFIX}"
    sha = json.loads(link.read_text())["sha256"] if link.is_file() else sha256_file(ckpt)
    return {"path": str(ckpt), "sha256": sha}
