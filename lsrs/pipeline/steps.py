"""The DVC pipeline's own steps (the others are lsrs.pipeline.runs, lsrs.pipeline.sweeps and lsrs.pipeline.analysis):
checking params and data before anything long starts, the main evaluation with its summary, and
the fixed-seed sample grids.

`prepare` is the first stage and every other stage depends on its output, so a bad value
(`dvc exp run -S M=0`) stops the pipeline there, before DVC removes any stage's outputs. Its output
changes only when the data does, so changing a param never reruns stages that do not use it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch

from lsrs.pipeline.params import Params
from lsrs.pipeline.layout import Layout
from lsrs.training.trainers import write_json


def data_manifest(params: Params) -> dict:
    """What identifies the profile's data: counts per split and class, and a content digest."""
    from lsrs.pipeline.runs import load_data

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


def prepare(params: Params, layout: Layout, log: Callable[[str], None] = print) -> dict:
    """Check every input file the params name and what the params need from the data, then write the
    data manifest (only when it changed, so downstream stages see an unchanged file)."""
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


def evaluate_main(params: Params, layout: Layout, summary_json: Path, log: Callable[[str], None] = print) -> dict:
    """The main run: LSRS at the top-level M/ST with lsrs.scorer, against the plain VAR of var.main
    (evaluated by the baseline stage on the same paired images). Writes the LSRS run's folder and a
    summary with both runs' metrics and the paired-bootstrap interval of the FID difference."""
    from lsrs.pipeline import runs as R
    from lsrs.evaluation.features import load_features

    setup = R.EvalSetup.load(params, layout.tokenizer, layout.evaluator, layout.reference)
    var = R.load_var(layout.var(params.var.main), setup.vae)
    plans = R.lsrs_plans(layout.scorer(params.lsrs.scorer), setup.vae, params.schedule(), params.lsrs.selection)
    lsrs_metrics, feats = R.evaluate_model(setup, var, layout.main_eval, plans, log=log)
    if feats is None:  # a torchrun rank other than 0: its part is in rank 0's results
        return {}
    base_dir = layout.baseline(params.var.main)
    base_metrics = json.loads((base_dir / "metrics.json").read_text())
    diff = R.paired_fid_diff(load_features(base_dir / "features.pt"), feats, setup)
    keys = ("fid", "is", "precision", "recall", "sfid", "fid_mean_diff2", "fid_trace_term", "seconds_per_image")
    summary = {"M": params.M, "ST": params.ST, "schedule": list(plans[0].schedule), "var": params.var.main,
               "scorer": params.lsrs.scorer, "images": lsrs_metrics["count"], "replicates": len(plans),
               "replicate_rule": lsrs_metrics["replicate_rule"],
               "baseline": {k: base_metrics[k] for k in keys}, "lsrs": {k: lsrs_metrics[k] for k in keys},
               "fid_diff": {k: diff.get(k) for k in ("delta", "low", "high", "se", "endpoint_mcse", "share_not_better",
                                                     "n_boot", "method", "replicates", "replicate_deltas",
                                                     "replicate_var", "var_images", "tau2", "se_model")},
               "half_width": (diff["high"] - diff["low"]) / 2,
               "half_width_pct": 50 * (diff["high"] - diff["low"]) / base_metrics["fid"]}
    write_json(summary, summary_json)
    d = summary["fid_diff"]
    log(f"main: FID {base_metrics['fid']:.3f} (VAR) -> {lsrs_metrics['fid']:.3f} (LSRS M={params.M} ST={params.ST}); "
        f"difference {d['delta']:+.3f}, 95% paired interval [{d['low']:+.3f}, {d['high']:+.3f}]")
    return summary


def sample_grids(params: Params, layout: Layout, out_dir: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Figures 4, 8, 9 and 1: grids over M (at ST_fixed) and over ST (at M_fixed) with the same
    per-image seeds in every column, and the random scale replacement grid."""
    from torchvision.utils import save_image

    from lsrs.pipeline import runs as R

    from lsrs.core.runtime import Runtime

    g, rt = params.ablations.grids, Runtime.start(params.runtime)
    if not rt.is_main:  # a few images: one process draws them
        return []
    vae = R.load_tokenizer(layout.tokenizer).to(rt.device)
    var = R.load_var(layout.var(params.var.main), vae).to(rt.device)
    labels = torch.arange(g.images) % var.cfg.num_classes
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, settings in (("grid_M", [(m, g.ST_fixed) for m in g.M]), ("grid_ST", [(g.M_fixed, st) for st in g.ST])):
        columns = []
        for m, st in settings:
            plan = None if m == 1 else R.lsrs_plan(layout.scorer(params.lsrs.scorer), vae, params.schedule(m, st),
                                                   params.lsrs.selection)
            with rt.autocast():
                columns.append(_preview(var, vae, labels, params.sampling, g.seed, plan))
        grid = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: image, setting
        save_image(grid, out_dir / f"{name}.png", nrow=len(columns), padding=1)
        (out_dir / f"{name}.json").write_text(json.dumps({"rows": labels.tolist(), "columns": [
            {"M": m, "ST": st} for m, st in settings], "seed": g.seed, "stream": "preview"}, indent=1))
        written.append(out_dir / f"{name}.png")
        log(f"grids: wrote {written[-1]} ({len(labels)} images x {len(columns)} settings)")
    R.random_scale_grid(var, vae, params.sampling, out_dir / "random_scales.png", labels.tolist(), seed=g.seed)
    written.append(out_dir / "random_scales.png")
    return written


def _preview(var, vae, labels: torch.Tensor, sampling, seed: int, plan) -> torch.Tensor:
    """Images of `labels` on the 'preview' stream (never the evaluation draws), LSRS when `plan` is given."""
    from lsrs.pipeline.runs import make_selector
    from lsrs.sampling.sampler import generate

    sel = make_selector(sampling, torch.arange(len(labels)), seed, plan, stream="preview")
    return generate(var, vae, labels, sel, cfg=sampling.cfg).images.float().cpu()
