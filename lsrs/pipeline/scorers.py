"""Steps that make the scorers' data and the scorers, one code path for VAR and FlexVAR:
real token maps (`extract`), generated maps of a model (`sample_tokens`), and a scorer run's R
replicates (`make_scorer`: trained, or an authors' checkpoint linked); then loading a trained
scorer as an LSRS plan for sampling.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lsrs.core.checkpoint import config_from_json, link_checkpoint, linked_checkpoint, load_into, resolve_checkpoint
from lsrs.families.base import model_id
from lsrs.models.scorer import Scorer, ScorerConfig, ScorerScoreFn, check_compatible, make_input
from lsrs.pipeline.context import StageContext
from lsrs.pipeline.family import FamilySetup
from lsrs.pipeline.models import load_data
from lsrs.sampling.plan import LSRSPlan
from lsrs.sampling.rejection import SelectionConfig
from lsrs.tokens.store import TokenStore
from lsrs.tokens.writers import extract_real, sample_generated, token_space
from lsrs.training import trainers as T
from lsrs.training.scorer import train_scorer as fit_scorer


def extract(ctx: StageContext):
    """Stage `extract` (and `flex_extract`): the tokenizer's maps of the first `tokens.real_per_class`
    training images of every class, as a token store."""
    params, fs, rt, log = ctx.params, ctx.family, ctx.runtime, ctx.log
    out_dir, fam = fs.layout.real_tokens, fs.family
    if fs.skipped(out_dir, log):
        return None
    vae = fam.load_tokenizer(fs.layout.tokenizer).to(rt.device)
    fam.check_images(vae.cfg, params.data.image_size, vae.cfg.in_channels)
    data, index = load_data(params, "train").first_per_class(params.tokens.real_per_class)
    meta = {"source": f"{params.data.dataset} train", "real_per_class": params.tokens.real_per_class,
            "image_size": params.data.image_size, "tokenizer": model_id(fs.layout.tokenizer, fam.tokenizer_files.stem)}
    if params.data.dataset == "imagenet":
        meta.update(crop=params.data.crop, crop_seed=params.data.crop_seed)
    log(f"extract: {len(data)} real images -> {fam.name} token maps in {out_dir}")
    return extract_real(vae, data, out_dir, meta, ids=index, shard_size=params.tokens.shard_size,
                        batch_size=params.tokens.encode_batch_size, log=log, runtime=rt, patch_nums=fam.schedule)


def sample_tokens(ctx: StageContext, name: str):
    """Stage `sample_tokens@<name>` (and `flex_sample_tokens`): `tokens.generated_per_class` samples
    per class of model `name` on the stream 'scorer-data', every scale kept, as a token store."""
    params, fs, rt, log = ctx.params, ctx.family, ctx.runtime, ctx.log
    fs.model(name)
    out_dir, fam = fs.layout.generated_tokens(name), fs.family
    if fs.skipped(out_dir, log):
        return None
    vae = fam.load_tokenizer(fs.layout.tokenizer).to(rt.device)
    var = fam.load_model(fs.layout.var(name), vae).to(rt.device)
    sampling = dataclasses.replace(fs.sampling, seed=params.tokens.seed)
    meta = {"var": model_id(fs.layout.var(name), fam.model_files.stem),
            "tokenizer": model_id(fs.layout.tokenizer, fam.tokenizer_files.stem)}
    log(f"sample-tokens: {params.tokens.generated_per_class} maps per class x {var.cfg.num_classes} classes "
        f"-> {out_dir}")
    return sample_generated(var, vae, out_dir, params.tokens.generated_per_class, sampling, meta,
                            shard_size=params.tokens.shard_size, log=log, runtime=rt, patch_nums=fam.schedule)


def make_scorer(ctx: StageContext, name: str):
    """Stage `scorer@<name>` (and `flex_scorer`): link the run's checkpoint as its one replicate, or
    train its `replicates` scorers (replicate r with seed train.seed + r, in <out>/r<r>)."""
    fs, log = ctx.family, ctx.log
    run, out_dir = fs.scorer(name), fs.layout.scorer(name)
    if fs.skipped(out_dir, log):
        return []
    if run.checkpoint:
        return [link_scorer(fs, name, log)]
    train_cfg = dataclasses.replace(fs.scorer_train, loss=run.loss, without_first_scale=run.without_first_scale)
    return train_scorer(ctx, fs.layout.generated_tokens(run.var), out_dir, train_cfg, fs.replicates)


def train_scorer(ctx: StageContext, generated_dir: Path, out_dir: Path, train_cfg, replicates: int | None = None):
    """Train scorers on the family's real maps vs the maps in `generated_dir`; the data is loaded once.

    One scorer into out_dir (its metrics dict), or with `replicates` R of them into out_dir/r<r>,
    seeds train_cfg.seed + r (see `train_replicates`; a list of metrics dicts)."""
    fs, rt, log = ctx.family, ctx.runtime, ctx.log
    fam = fs.family
    vae = fam.load_tokenizer(fs.layout.tokenizer)
    space = token_space(vae, fam.schedule)
    real, gen = TokenStore.open(fs.layout.real_tokens), TokenStore.open(generated_dir)
    for what, store in (("real", real), ("generated", gen)):
        if (tuple(store.patch_nums), store.vocab_size) != space:
            raise ValueError(f"the {what} token store {store.path} was made with another tokenizer or schedule "
                             f"(scales {tuple(store.patch_nums)}, V={store.vocab_size})")
    as_int = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731 (uint16 on disk)
    data = (as_int(real.tokens), as_int(real.labels), as_int(gen.tokens), as_int(gen.labels))
    input_fn = make_input(fs.scorer_model.input_kind, vae.to(rt.device), fs.scorer_model.input_size, fam.schedule)

    def fit_one(folder: Path, seed: int) -> dict:
        return fit_scorer(*data, vae, fs.scorer_model, dataclasses.replace(train_cfg, seed=seed), folder, log=log,
                          device=rt.device, input_fn=input_fn, runtime=rt)

    if replicates is None:
        return fit_one(out_dir, train_cfg.seed)
    return train_replicates(fit_one, out_dir, replicates, train_cfg.seed, log)


def train_replicates(fit_one: Callable[[Path, int], dict], out_dir: Path, replicates: int, seed: int,
                     log: Callable[[str], None] = print) -> list[dict]:
    """Train `replicates` scorers, replicate r into out_dir/r<r> with seed + r (`fit_one(folder, seed)`;
    each resumes on its own), and write out_dir/replicates.json with their validation results."""
    out_dir = Path(out_dir)
    results = []
    for r in range(replicates):
        log(f"scorer replicate {r + 1}/{replicates} (seed {seed + r}) -> {out_dir / f'r{r}'}")
        results.append(fit_one(out_dir / f"r{r}", seed + r))
    if results and all(results):  # torchrun ranks other than 0 return {}
        T.write_json({"replicates": replicates, "seeds": [seed + r for r in range(replicates)],
                      "best_val_acc": [m.get("best_val_acc") for m in results],
                      "val_acc_per_scale": [m.get("val_acc_per_scale") for m in results]}, out_dir / "replicates.json")
    return results


def link_scorer(fs: FamilySetup, name: str, log: Callable[[str], None] = print) -> dict:
    """The run's checkpoint (e.g. the authors' RewardNet state dict) checked against its sha256 and the
    scorer config (keys and shapes, strictly) and linked as the run's one replicate, <out>/r0."""
    run, cfg = fs.scorer(name), fs.scorer_model
    out_dir = fs.layout.scorer(name) / "r0"
    with torch.device("meta"):
        model = Scorer(cfg)
    key = "scorer.runs" if fs.name == "var" else f"{fs.name}.scorer.runs"
    source = link_checkpoint(model, cfg, run.checkpoint, run.sha256, out_dir, "scorer", f"scorer checkpoint ({name})",
                             f"Put the scorer's state dict there or set {key}.{name}.checkpoint "
                             "(a plain state dict with the authors' RewardNet keys).")
    log(f"scorer {name}: {source['path']} checked (sha256 {source['sha256'][:12]}..., keys and shapes) -> {out_dir}")
    return source


def scorer_replicates(folder: str | Path) -> list[Path]:
    """The scorers of a scorer folder: the folder itself when it holds one (scorer.pth, or a linked
    checkpoint; e.g. `lsrs train-scorer`), else its replicate folders r0, r1, ... (the pipeline's
    `scorer@<name>` stages); a .pth path is its own single scorer."""
    folder = Path(folder)
    if folder.suffix == ".pth" or _has_scorer(folder):
        return [folder]
    reps = sorted((p for p in folder.glob("r*") if p.name[1:].isdigit() and _has_scorer(p)),
                  key=lambda p: int(p.name[1:]))
    if not reps:
        raise FileNotFoundError(f"no trained scorer in {folder} (neither scorer.pth nor r<i>/scorer.pth); "
                                "train it with `dvc repro scorer@<name>` or `lsrs train-scorer`")
    return reps


def _has_scorer(folder: Path) -> bool:
    return (folder / "scorer.pth").is_file() or linked_checkpoint(folder, "scorer") is not None


def load_scorer_from(path: str | Path) -> Scorer:
    """A scorer from a run folder (trained here or linking a checkpoint) or a .pth with its .json beside it."""
    ckpt, side = resolve_checkpoint(path, "scorer")
    model = load_into(Scorer(config_from_json(ScorerConfig, side)), ckpt, "scorer checkpoint",
                      "train it with `lsrs train-scorer` or `dvc repro scorer@<name>`")
    return model.eval()


def lsrs_plan(scorer_path: str | Path, vae, schedule: tuple[int, ...],
              selection: SelectionConfig = SelectionConfig(), patch_nums: tuple[int, ...] | None = None) -> LSRSPlan:
    """Load a trained scorer (folder or .pth; a folder of replicates: the first) as an LSRS plan; checks
    it fits the tokenizer (a FlexVAE's maps over the sampling schedule `patch_nums`)."""
    path = scorer_replicates(scorer_path)[0]
    scorer = load_scorer_from(path).to(next(vae.parameters()).device)
    check_compatible(scorer.cfg, vae, patch_nums)
    scales = len(patch_nums or vae.cfg.patch_nums)
    if len(schedule) != scales:
        raise ValueError(f"the LSRS schedule has {len(schedule)} scales, the tokenizer {scales}")
    score_fn = ScorerScoreFn(scorer, make_input(scorer.cfg.input_kind, vae, scorer.cfg.input_size, patch_nums))
    return LSRSPlan(score_fn, tuple(schedule), selection)


def lsrs_plans(scorer_folder: str | Path, vae, schedule: tuple[int, ...],
               selection: SelectionConfig = SelectionConfig(), patch_nums: tuple[int, ...] | None = None
               ) -> list[LSRSPlan]:
    """One plan per scorer replicate of `scorer_folder` (see `scorer_replicates`)."""
    return [lsrs_plan(p, vae, schedule, selection, patch_nums) for p in scorer_replicates(scorer_folder)]
