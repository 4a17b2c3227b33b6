"""Steps that score sample sets: the feature extractor (mini classifier or Inception), the reference
statistics, and the evaluation of a model (plain or LSRS) on the paired "eval" images, with the
paired-bootstrap interval of an FID difference. One code path for both families (`EvalSetup`).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lsrs.core.runtime import CPU, Runtime
from lsrs.data import ImageSet
from lsrs.evaluation.features import Extractor
from lsrs.evaluation.reference import ReferenceStats, load_reference
from lsrs.pipeline.context import StageContext
from lsrs.pipeline.models import load_data
from lsrs.pipeline.params import Params
from lsrs.sampling.images import sample_images
from lsrs.sampling.plan import LSRSPlan, replicate_of
from lsrs.sampling.sampler import SamplingConfig
from lsrs.training import trainers as T


def make_evaluator(ctx: StageContext) -> dict:
    """Stage `evaluator`: the mini profile trains its classifier; the paper profile (evaluation.extractor
    inception) checks that the local Inception weights load."""
    if ctx.params.evaluation.extractor == "inception":
        return check_inception(ctx.params, ctx.layout.evaluator, ctx.log)
    return train_evaluator(ctx.params, ctx.layout.evaluator, ctx.log)


def train_evaluator(params: Params, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """The mini feature extractor: a classifier trained on the profile's training images."""
    from lsrs.training.evaluator import train_evaluator as fit

    if params.data.dataset != "fashion-mnist":
        raise ValueError("train-evaluator is for the mini profile; the paper profile uses Inception weights")
    return fit(load_data(params, "train"), load_data(params, "test"), params.evaluation.evaluator, out_dir, log=log)


def check_inception(params: Params, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """The paper profile's `evaluator` stage: nothing to train; build Inception from the local weights
    file (a missing or foreign file fails here, before any sampling) and record which file it was."""
    extractor = make_extractor(params, None)
    extractor.create("cpu")  # loads the weights: a wrong file fails now, not after hours of sampling
    info = {"extractor": "inception", "weights": str(Path(extractor.weights_path).resolve()), "name": extractor.name}
    T.write_json(info, Path(out_dir) / "extractor.json")
    log(f"evaluator: Inception weights {info['weights']} load -> {out_dir / 'extractor.json'}")
    return info


def make_extractor(params: Params, evaluator_dir: Path | None):
    """The profile's feature extractor: the mini classifier in `evaluator_dir`, or Inception from the
    local weights file evaluation.inception_weights (a clear error names the file when it is missing)."""
    from lsrs.evaluation.features import inception_extractor, mini_extractor

    ev = params.evaluation
    if ev.extractor == "inception":
        return inception_extractor(ev.inception_weights)
    if evaluator_dir is None:
        raise ValueError("the mini extractor needs the evaluator folder (lsrs train-evaluator)")
    return mini_extractor(evaluator_dir)


def build_reference(ctx: StageContext) -> dict:
    """Reference statistics: from the ADM reference batch evaluation.reference_batch when given (its
    stored mu/sigma, P/R features from its images), else from the real training images
    (evaluation.reference_count of them, or all; an ImageNet tree is read lazily, batch by batch)."""
    from lsrs.evaluation.reference import build_reference as build, load_reference, save_reference

    params, rt, log, out_npz = ctx.params, ctx.runtime, ctx.log, ctx.layout.reference
    ev = params.evaluation
    if not rt.is_main:  # one pass over the reference images; nothing to split
        return None
    extractor = make_extractor(params, ctx.layout.evaluator)
    if ev.reference_batch:
        ref = load_reference(ev.reference_batch, extractor, batch_size=ev.feature_batch_size, device=rt.device)
    else:
        data = load_data(params, "train")
        n = min(ev.reference_count or len(data), len(data))
        if isinstance(data, ImageSet):
            images = data.images[:n]
        else:  # FolderImages: shuffled order so that the P/R subset covers all classes
            order = torch.randperm(len(data), generator=torch.Generator().manual_seed(ev.seed))[:n]
            bs = ev.feature_batch_size
            images = (data.as_uint8(order[s:s + bs]) for s in range(0, n, bs))
        ref = build(images, extractor, pr_count=ev.pr_count, batch_size=ev.feature_batch_size, device=rt.device,
                    source=f"{params.data.dataset} train, {n} images")
    save_reference(ref, out_npz)
    log(f"reference: {ref.source} -> {out_npz}")
    return {"source": ref.source, "extractor": extractor.name}


@dataclass(frozen=True)
class EvalSetup:
    """What every evaluation of a profile shares: the tokenizer, the feature extractor and the reference."""

    params: Params
    vae: object  # the family's tokenizer, on runtime.device
    extractor: Extractor
    reference: ReferenceStats
    runtime: Runtime = CPU
    sampling: SamplingConfig = SamplingConfig()  # the family's sampling settings

    @classmethod
    def load(cls, ctx: StageContext) -> "EvalSetup":
        """The stage family's tokenizer, the profile's extractor and reference (a reference of another
        extractor fails here, before any sampling)."""
        params, fs, rt = ctx.params, ctx.family, ctx.runtime
        extractor = make_extractor(params, fs.layout.evaluator)
        ref = load_reference(fs.layout.reference, extractor)
        vae = fs.family.load_tokenizer(fs.layout.tokenizer)
        return cls(params, vae.to(rt.device), extractor, ref, rt, fs.sampling)


def evaluate_model(setup: EvalSetup, var, out_dir: Path, plan: LSRSPlan | list[LSRSPlan] | None = None,
                   per_class: int | None = None, save_samples: bool = True, log: Callable[[str], None] = print):
    """Generate the evaluation set (stream 'eval', image i = sample id i, class i % C), score it, and
    write metrics.json, features.pt (per-image features, for paired comparisons) and samples.npz.

    `plan` may be a list, one per scorer replicate: image i then uses replicate `replicate_of` (the
    list is in metrics.json as `replicates`, and the returned features carry `.replicate`, (N,)).
    Returns (metrics, features). Image i is the same draw in every run with the same seed, so runs
    with other `per_class` share their first images and any two runs are paired. With several ranks
    the sampling is split (see `sample_images`), rank 0 scores and writes, the others return (None, None).
    """
    import resource

    from lsrs.evaluation.reference import evaluate_features
    from lsrs.evaluation.features import compute_features, save_features
    from lsrs.core.npz import write_samples

    ev, rt = setup.params.evaluation, setup.runtime
    var = var.to(rt.device)
    n = (per_class or ev.per_class) * var.cfg.num_classes
    labels = torch.arange(n) % var.cfg.num_classes
    plans = plan if isinstance(plan, list) else [plan]
    groups = replicate_of(n, var.cfg.num_classes, len(plans))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    first = plans[0]
    schedule = list(first.schedule) if first else [1] * len(var.cfg.patch_nums)
    log(f"evaluate: {n} images, schedule {schedule}" + (f", {len(plans)} scorer replicates" if len(plans) > 1 else "")
        + f" ({rt.describe()})")
    rt.reset_peak_memory()
    t0 = time.perf_counter()
    parts = {}
    for r, p in enumerate(plans):
        ids = torch.nonzero(groups == r).flatten()
        if len(ids) == 0:  # fewer images per class than replicates
            continue
        parts[r] = sample_images(var, setup.vae, labels[ids], setup.sampling, ev.seed, plan=p, runtime=rt,
                                 ids=ids)
    gen_seconds = time.perf_counter() - t0
    peak_gpu = rt.peak_memory_mib()
    if any(x is None for x in parts.values()):
        return None, None
    images = torch.empty((n, *parts[0].shape[1:]), dtype=parts[0].dtype)
    for r, x in parts.items():
        images[groups == r] = x
    if save_samples:
        write_samples(out_dir / "samples.npz", images, labels)
    feats = compute_features(images, setup.extractor, batch_size=ev.feature_batch_size, device=rt.device)
    feats = dataclasses.replace(feats, replicate=groups if len(plans) > 1 else None)
    save_features(feats, out_dir / "features.pt")
    metrics = evaluate_features(feats, setup.reference, device=rt.device)
    metrics.update(schedule=schedule, selection=dataclasses.asdict(first.selection) if first and not first.is_plain
                   else None, seed=ev.seed, stream="eval", sample_ids=[0, n], replicates=len(plans),
                   replicate_rule="image i uses replicate (i // num_classes) % replicates" if len(plans) > 1 else None,
                   generation_seconds=gen_seconds,
                   seconds_per_image=gen_seconds / n, device=str(rt.device), autocast=rt.precision,
                   processes=rt.world, peak_gpu_mib=peak_gpu,
                   peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    T.write_json(metrics, out_dir / "metrics.json")
    log(f"FID {metrics['fid']:.3f}  IS {metrics['is']:.3f}  precision {metrics['precision']:.3f}  "
        f"recall {metrics['recall']:.3f}  sFID {metrics['sfid']:.3f}  ({gen_seconds / n * 1000:.1f} ms/image)")
    return metrics, feats


def paired_fid_diff(baseline, candidate, setup: EvalSetup, seed: int = 0) -> dict:
    """FID(candidate) - FID(baseline) with its paired-bootstrap 95% interval (see evaluation.compare_runs);
    over images and the candidate's scorer replicates when its features carry them (`.replicate`)."""
    from lsrs.evaluation.reference import compare_runs

    ev = setup.params.evaluation
    return compare_runs(baseline, candidate, setup.reference, seed=seed, device=setup.runtime.device,
                        n_boot=ev.n_boot, groups=getattr(candidate, "replicate", None), mcse_target=ev.mcse_target,
                        n_boot_max=ev.n_boot_max)


def evaluate_baseline(ctx: StageContext):
    """Stage `baseline`: the plain model var.main on the evaluation set (evaluation.per_class per class)."""
    params, fs = ctx.params, ctx.family
    setup = EvalSetup.load(ctx)
    var = fs.family.load_model(fs.layout.var(params.var.main), setup.vae)
    return evaluate_model(setup, var, fs.layout.baseline(params.var.main), log=ctx.log)[0]


def evaluate_main(ctx: StageContext, summary_json: Path) -> dict:
    """The main run: LSRS at the top-level M/ST with lsrs.scorer, against the plain VAR of var.main
    (evaluated by the baseline stage on the same paired images). Writes the LSRS run's folder and a
    summary with both runs' metrics and the paired-bootstrap interval of the FID difference."""
    from lsrs.evaluation.features import load_features
    from lsrs.pipeline.scorers import lsrs_plans

    params, fs, log = ctx.params, ctx.family, ctx.log
    layout = fs.layout
    setup = EvalSetup.load(ctx)
    var = fs.family.load_model(layout.var(params.var.main), setup.vae)
    plans = lsrs_plans(layout.scorer(params.lsrs.scorer), setup.vae, params.schedule(), params.lsrs.selection,
                       patch_nums=fs.family.schedule)
    lsrs_metrics, feats = evaluate_model(setup, var, layout.main_eval, plans, log=log)
    if feats is None:  # a torchrun rank other than 0: its part is in rank 0's results
        return None
    base_dir = layout.baseline(params.var.main)
    base_metrics = json.loads((base_dir / "metrics.json").read_text())
    diff = paired_fid_diff(load_features(base_dir / "features.pt"), feats, setup)
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
    T.write_json(summary, summary_json)
    d = summary["fid_diff"]
    log(f"main: FID {base_metrics['fid']:.3f} (VAR) -> {lsrs_metrics['fid']:.3f} (LSRS M={params.M} ST={params.ST}); "
        f"difference {d['delta']:+.3f}, 95% paired interval [{d['low']:+.3f}, {d['high']:+.3f}]")
    return summary
