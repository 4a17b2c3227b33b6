"""Stage `prepare`: check params and data before anything long starts.

`prepare` is the first stage and every other stage depends on its output, so a bad value
(`dvc exp run -S M=0`) stops the pipeline there, before DVC removes any stage's outputs. Its output
changes only when the data does, so changing a param never reruns stages that do not use it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from lsrs.pipeline.params import Params
from lsrs.pipeline.context import StageContext
from lsrs.pipeline.models import load_data
from lsrs.training.trainers import write_json


def data_manifest(params: Params) -> dict:
    """What identifies the profile's data: counts per split and class, and a content digest."""
    d = params.data
    out = {"dataset": d.dataset, "root": d.root, "image_size": d.image_size, "splits": {}}
    for split in ("train", "test") if d.dataset == "fashion-mnist" else ("train",):
        data = load_data(params, split)
        if hasattr(data, "fingerprint"):
            digest = data.fingerprint()
        else:
            h = hashlib.sha256(data.images.numpy().tobytes())
            h.update(data.labels.numpy().tobytes())
            digest = h.hexdigest()
        counts = torch.bincount(torch.as_tensor(data.labels), minlength=data.num_classes).tolist()
        out["splits"][split] = {"images": len(data), "per_class": counts, "sha256": digest}
    return out


def required_files(params: Params) -> list[tuple[str, str, str]]:
    """(param key, path, what belongs there) of every file the profile reads but never makes."""
    out = []
    if params.tokenizer.checkpoint:
        out.append(("tokenizer.checkpoint", params.tokenizer.checkpoint, "the official VQ-VAE vae_ch160v4096z32.pth"))
    for name, shape in params.var.depths.items():
        if shape.checkpoint:
            out.append((f"var.depths.{name}.checkpoint", shape.checkpoint, f"the official var_d{shape.depth}.pth"))
    fx = params.flexvar
    if fx.enabled and fx.tokenizer.checkpoint:
        out.append(("flexvar.tokenizer.checkpoint", fx.tokenizer.checkpoint, "the official FlexVAE.pth"))
    if fx.enabled and fx.var.checkpoint:
        out.append(("flexvar.var.checkpoint", fx.var.checkpoint,
                    f"the official FlexVARd{fx.var.model.depth}-epoNNN.pth"))
    ev = params.evaluation
    if ev.extractor == "inception":
        out.append(("evaluation.inception_weights", ev.inception_weights,
                    "torch-fidelity's Inception weights weights-inception-2015-12-05-6726825d.pth (release v0.2.0)"))
    if ev.reference_batch:
        out.append(("evaluation.reference_batch", ev.reference_batch,
                    "ADM's reference batch, e.g. VIRTUAL_imagenet256_labeled.npz (openai/guided-diffusion evaluations)"))
    return out


def check_files(params: Params) -> None:
    """Fail with one message naming every missing file, the param that names it and what belongs there."""
    missing = [(key, path, what) for key, path, what in required_files(params) if not Path(path).is_file()]
    if not Path(params.data.root).is_dir():
        missing.insert(0, ("data.root", params.data.root, "the training images (Fashion-MNIST: apt-get install "
                                                            "dataset-fashion-mnist; ImageNet: the train/ class-folder tree)"))
    if missing:
        raise FileNotFoundError("missing input files (nothing is downloaded; put them there or change the params):\n  "
                                + "\n  ".join(f"{key} = {path}: {what}" for key, path, what in missing))


def prepare(ctx: StageContext) -> dict:
    """Check every input file the params name and what the params need from the data, then write the
    data manifest (only when it changed, so downstream stages see an unchanged file)."""
    params, layout, log = ctx.params, ctx.layout, ctx.log
    check_files(params)
    manifest = data_manifest(params)
    train = manifest["splits"]["train"]
    need = params.tokens.real_per_class
    if need is not None and min(train["per_class"]) < need:
        raise ValueError(f"tokens.real_per_class: {need} real maps per class asked for, the smallest training "
                         f"class has {min(train['per_class'])} images")
    if params.var.model.num_classes != len(train["per_class"]):
        raise ValueError(f"var.model.num_classes: {params.var.model.num_classes}, the data has "
                         f"{len(train['per_class'])} classes")
    path = layout.data_manifest
    if not path.is_file() or json.loads(path.read_text()) != manifest:
        write_json(manifest, path)
    log(f"prepare: params valid; {train['images']} training images in {len(train['per_class'])} classes "
        f"({params.data.dataset}, {params.data.root}) -> {path}")
    return manifest
