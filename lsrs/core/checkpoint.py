"""Checkpoint files: strict loading with a useful error, atomic saving, and model configs beside them.

A finished model is stored as a plain state dict in the official layout (``name.pth``), so our
files and the official ones are interchangeable, plus a small JSON sidecar (``name.json``) with the
config that built it. Training snapshots (``*.train.pth``) hold model, optimiser and progress for
resuming.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model; the message says why."""


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_text(text: str, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_state_dict(path: str | Path, what: str = "checkpoint", hint: str = "",
                    mmap: bool = False) -> dict[str, torch.Tensor]:
    """Load a state dict from `path` (a plain dict, or a dict holding one under 'model'/'state_dict').
    `mmap` maps the tensors instead of reading them (cheap key and shape checks of big files)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}. {hint}".strip())
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises several types for corrupt or truncated files
        raise CheckpointError(f"{what} {path} could not be read ({type(exc).__name__}: {exc}); "
                              f"the file is corrupt or not a PyTorch checkpoint") from exc
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{what} {path} does not hold a state dict of tensors")
    return obj


def state_dict_mismatch(model: nn.Module, state: dict[str, torch.Tensor],
                        tolerate: tuple[str, ...] = ()) -> list[str]:
    """Human-readable problems between a model's state dict and `state`: missing, unexpected, shape."""
    own = model.state_dict()
    problems = [f"missing key {k} {tuple(v.shape)}" for k, v in own.items() if k not in state]
    problems += [f"unexpected key {k} {tuple(v.shape)}" for k, v in state.items() if k not in own]
    problems += [f"wrong shape for {k}: checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)}"
                 for k, v in own.items() if k in state and state[k].shape != v.shape and k not in tolerate]
    return problems


def load_into(model: nn.Module, path: str | Path, what: str = "checkpoint", hint: str = "",
              tolerate: tuple[str, ...] = ("quantize.ema_vocab_hit_SV",)) -> nn.Module:
    """Strictly load the state dict at `path` into `model`, listing every mismatch on failure.

    `tolerate` names keys whose shape may differ (the VQ-VAE's unused hit-count buffer, whose row
    count depends on the number of scales it was trained with).
    """
    state = read_state_dict(path, what, hint)
    check_fits(model, state, path, what, tolerate)
    model.load_state_dict(state, strict=True)
    return model


def check_fits(model: nn.Module, state: dict, path: Path, what: str, tolerate: tuple[str, ...]) -> None:
    problems = state_dict_mismatch(model, state, tolerate)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CheckpointError(f"{what} {path} does not fit the model ({len(problems)} problems):\n  {shown}")


# --------------------------------------------------------------------------- checkpoints used in place
SOURCE_SUFFIX = ".source.json"


def link_checkpoint(model: nn.Module, cfg, path: str | Path, sha256: str | None, out_dir: str | Path, name: str,
                    what: str, hint: str = "", tolerate: tuple[str, ...] = ("quantize.ema_vocab_hit_SV",),
                    read: Callable = read_state_dict) -> dict:
    """Check a checkpoint that is loaded instead of trained, then make `out_dir` point at it.

    Checks, in order: the file exists, its sha256 equals `sha256` (the params pin the file, so a
    replaced or damaged checkpoint is noticed; without a pin the error prints the file's hash to
    put there), its keys and shapes fit `model` (build it on the meta device: nothing is loaded;
    `read(path, what, mmap=True)` unwraps the file's state dict).
    Writes `name.json` (the config) and `name.source.json` (path, sha256, size): the run folder
    refers to the file instead of copying gigabytes into DVC's cache.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}. {hint}".strip())
    digest = sha256_file(path)
    if sha256 is None:
        raise CheckpointError(f"{what} {path}: its sha256 is not in the params. This file's sha256 is {digest}; "
                              f"put it there once you trust the file (it pins the file for every later run)")
    if digest != sha256.lower():
        raise CheckpointError(f"{what} {path} has sha256 {digest}, the params expect {sha256}: "
                              f"a different or damaged file")
    check_fits(model, read(path, what, mmap=True), path, what, tolerate)
    out_dir = Path(out_dir)
    atomic_write_text(config_to_json(cfg), out_dir / f"{name}.json")
    source = {"path": str(path.resolve()), "sha256": digest, "bytes": path.stat().st_size}
    atomic_write_text(json.dumps(source, indent=1) + "\n", out_dir / f"{name}{SOURCE_SUFFIX}")
    return source


def linked_checkpoint(folder: str | Path, name: str) -> Path | None:
    """The checkpoint file a run folder points at (see link_checkpoint), its size checked; None if no link."""
    link = Path(folder) / f"{name}{SOURCE_SUFFIX}"
    if not link.is_file():
        return None
    source = json.loads(link.read_text())
    path = Path(source["path"])
    if not path.is_file():
        raise CheckpointError(f"{link} points at {path}, which is missing; put the file back or rerun the stage "
                              f"that checks it")
    if path.stat().st_size != source["bytes"]:
        raise CheckpointError(f"{path} changed since it was checked ({source['bytes']} bytes then, "
                              f"{path.stat().st_size} now); restore it, or update its sha256 in the params and rerun")
    return path


def resolve_checkpoint(path: str | Path, name: str) -> tuple[Path, Path]:
    """(checkpoint, config sidecar) for a run folder (trained here, or linking an official file) or a .pth."""
    path = Path(path)
    if not path.is_dir():
        return path, path.with_suffix(".json")
    ckpt = path / f"{name}.pth"
    if not ckpt.is_file():
        ckpt = linked_checkpoint(path, name) or ckpt
    return ckpt, path / f"{name}.json"


def config_to_json(cfg) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True)


def config_from_json(cls, path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model config {path} not found (it is written next to the checkpoint)")
    data = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise CheckpointError(f"{path}: unknown config keys {sorted(unknown)}")
    return cls(**data)
