"""The FlexVAR family as pipeline steps: FlexVAE, FlexVAR, their token stores, the r_k scorer and sweeps.

The paper applies LSRS to FlexVAR-d24 as to VAR (Table 1). Everything of the family lives
under runs/<profile>/flexvar/ (`Layout.family`), configured by the `flexvar` section of params.yaml,
and runs through the same stage CLIs as VAR's with `--family flexvar`. What differs from VAR is only
what the models need: FlexVAE quantises each scale of a chosen schedule on its own
(flexvar.patch_nums), generation uses `generate_flex` (its CFG ramp, greedy scales, bicubic next
inputs) and the scorer reads the candidate's own code map r_k (scorer input kind 'flexvar').

Mini profile: a small FlexVAE and FlexVAR trained here on Fashion-MNIST, always on the one schedule
flexvar.patch_nums (the official trainer draws a random schedule per step; one schedule is what
LSRS samples with, and it keeps the mini run inside its time budget). Paper profile: the official
FlexVAE.pth and FlexVARd24-epo349.pth, checked (sha256, keys, shapes) and linked.
With `flexvar.enabled: false` every step writes `skipped.json` and returns, so a profile without
FlexVAR files still runs end to end.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from lsrs.pipeline import runs as R
from lsrs.training import trainers as T
from lsrs.core.checkpoint import CheckpointError, atomic_write_text, check_fits, config_from_json, load_into
from lsrs.pipeline.params import Params
from lsrs.models import FlexVAE, FlexVAEConfig, FlexVAR, FlexVARConfig
from lsrs.core.runtime import Runtime

FAMILY = "flexvar"  # the family's folder under the run root, its model's and its scorer's name
FLEX_FILES = "the official files are on the Hugging Face Hub, jiaosiyu1999/FlexVAR"


def skipped(params: Params, out_dir: Path, log: Callable[[str], None] = print) -> bool:
    """True (after writing out_dir/skipped.json) when flexvar.enabled is false: the stage has nothing to do."""
    if params.flexvar.enabled:
        return False
    atomic_write_text(json.dumps({"skipped": "flexvar.enabled is false"}) + "\n", Path(out_dir) / "skipped.json")
    log(f"flexvar.enabled is false: nothing to do ({out_dir / 'skipped.json'})")
    return True


# --------------------------------------------------------------------------- models
def load_tokenizer(path: str | Path) -> FlexVAE:
    """A FlexVAE from a run folder (trained here, or linking FlexVAE.pth) or a .pth (official config)."""
    ckpt, side = R.resolve_checkpoint(path, "flexvae")
    cfg = config_from_json(FlexVAEConfig, side) if side.is_file() else FlexVAEConfig()
    return load_into(FlexVAE(cfg), ckpt, "FlexVAE checkpoint", tolerate=()).eval().requires_grad_(False)


def load_model(path: str | Path, vae: FlexVAE, patch_nums: tuple[int, ...]) -> FlexVAR:
    """A FlexVAR from its run folder (trained here, or linking the official file) set to the schedule
    `patch_nums`; its vocabulary and code width are checked against `vae`."""
    from lsrs.models.flexvar import MASK_KEY, read_flexvar_state

    ckpt, side = R.resolve_checkpoint(path, "flexvar")
    cfg = dataclasses.replace(config_from_json(FlexVARConfig, side), patch_nums=tuple(patch_nums))
    t = vae.cfg
    if (cfg.vocab_size, cfg.z_channels) != (t.codebook_size, t.codebook_embed_dim):
        raise CheckpointError(f"FlexVAR {ckpt} (V={cfg.vocab_size}, Cvae={cfg.z_channels}) does not match the "
                              f"FlexVAE (V={t.codebook_size}, Cvae={t.codebook_embed_dim})")
    var, state = FlexVAR(cfg), read_flexvar_state(ckpt)
    check_fits(var, state, ckpt, "FlexVAR checkpoint", tolerate=(MASK_KEY,))  # every mismatch listed
    var.load_state_dict(state, strict=True)
    return var.eval().requires_grad_(False)


def _link(model, cfg, checkpoint: str, sha256: str | None, out_dir: Path, name: str, what: str, file: str,
          log: Callable[[str], None], **kw) -> dict:
    from lsrs.core.checkpoint import link_checkpoint

    source = link_checkpoint(model, cfg, checkpoint, sha256, out_dir, name, what,
                             f"Put {file} there or set its checkpoint param ({FLEX_FILES}).", **kw)
    log(f"{what}: {source['path']} checked (sha256 {source['sha256'][:12]}..., keys and shapes) -> {out_dir}")
    return source


def train_tokenizer(params: Params, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """Stage flex_tokenizer: train the mini FlexVAE, or check and link flexvar.tokenizer.checkpoint."""
    out_dir, fx = Path(out_dir), params.flexvar
    if skipped(params, out_dir, log):
        return {}
    cfg = fx.tokenizer.model
    if fx.tokenizer.checkpoint:
        with torch.device("meta"):
            model = FlexVAE(cfg)
        return _link(model, cfg, fx.tokenizer.checkpoint, fx.tokenizer.sha256, out_dir, "flexvae",
                     "FlexVAE checkpoint", "FlexVAE.pth", log, tolerate=())
    train_set, test_set = R.load_data(params, "train"), R.load_data(params, "test")
    torch.manual_seed(fx.tokenizer.train.optim.seed)
    vae = FlexVAE(cfg)
    log(f"FlexVAE: {sum(p.numel() for p in vae.parameters()):,} parameters, schedule {fx.patch_nums}, "
        f"{len(train_set)} training images")
    t0 = time.time()
    T.FlexVAETrainer(vae, train_set, fx.tokenizer.train, fx.patch_nums, out_dir, log).fit()
    quality = T.tokenizer_quality(vae, test_set, patch_nums=fx.patch_nums)
    quality["train_seconds_this_run"] = time.time() - t0
    T.save_model(vae, cfg, out_dir, "flexvae")
    T.write_json(quality, out_dir / "flexvae_metrics.json")
    T.plot_history(out_dir / "flexvae_loss.csv", out_dir / "flexvae_loss.png",
                   ("loss", "rec_mse", "vq_loss", "codes_used"), "mini FlexVAE training")
    log(f"FlexVAE: test MSE {quality['mse_pm1']:.4f} (pixels in [-1,1]), "
        f"{quality['codes_used_total']}/{cfg.codebook_size} codes used")
    return quality


def train_model(params: Params, tokenizer_dir: Path, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """Stage flex_var: train the mini FlexVAR on the FlexVAE's maps, or check and link the official one."""
    from lsrs.models.flexvar import MASK_KEY, read_flexvar_state

    out_dir, fx = Path(out_dir), params.flexvar
    if skipped(params, out_dir, log):
        return {}
    cfg = fx.model_config()
    if fx.var.checkpoint:
        with torch.device("meta"):
            model = FlexVAR(cfg)
        return _link(model, cfg, fx.var.checkpoint, fx.var.sha256, out_dir, "flexvar", "FlexVAR checkpoint",
                     f"FlexVARd{cfg.depth}-epoNNN.pth", log, tolerate=(MASK_KEY,), read=read_flexvar_state)
    vae = load_tokenizer(tokenizer_dir)
    train_set, test_set = R.load_data(params, "train"), R.load_data(params, "test")
    if cfg.num_classes != train_set.num_classes:
        raise ValueError(f"flexvar.var.model.num_classes is {cfg.num_classes}, the data has "
                         f"{train_set.num_classes} classes")
    train = (T.encode_tokens(vae, train_set, desc="encode training tokens", patch_nums=fx.patch_nums), train_set.labels)
    test = (T.encode_tokens(vae, test_set, desc="encode test tokens", patch_nums=fx.patch_nums), test_set.labels)
    torch.manual_seed(fx.var.train.optim.seed)
    var = FlexVAR(cfg)
    var.init_weights(gamma_scale=fx.var.train.gamma_init)
    return T.fit_next_scale(var, vae, train, test, fx.var.train, out_dir, "flexvar", log)


# --------------------------------------------------------------------------- LSRS data and scorer
def extract_real_tokens(params: Params, tokenizer_dir: Path, out_dir: Path, log: Callable[[str], None] = print):
    """Stage flex_extract: FlexVAE maps (every scale of flexvar.patch_nums) of the same real images as VAR's."""
    from lsrs.tokens.writers import extract_real

    if skipped(params, out_dir, log):
        return None
    rt = Runtime.start(params.runtime)
    vae = load_tokenizer(tokenizer_dir).to(rt.device)
    data, index = R.load_data(params, "train").first_per_class(params.tokens.real_per_class)
    meta = {"source": f"{params.data.dataset} train", "real_per_class": params.tokens.real_per_class,
            "image_size": params.data.image_size, "tokenizer": R.model_id(tokenizer_dir, "flexvae")}
    log(f"flex extract: {len(data)} real images -> FlexVAE maps {params.flexvar.patch_nums} in {out_dir}")
    return extract_real(vae, data, out_dir, meta, ids=index, shard_size=params.tokens.shard_size,
                        batch_size=params.tokens.encode_batch_size, log=log, runtime=rt,
                        patch_nums=params.flexvar.patch_nums)


def sample_generated_tokens(params: Params, tokenizer_dir: Path, var_dir: Path, out_dir: Path,
                            log: Callable[[str], None] = print):
    """Stage flex_sample_tokens: `tokens.generated_per_class` FlexVAR samples per class, every scale kept."""
    from lsrs.tokens.writers import sample_generated

    if skipped(params, out_dir, log):
        return None
    fx, rt = params.flexvar, Runtime.start(params.runtime)
    vae = load_tokenizer(tokenizer_dir).to(rt.device)
    var = load_model(var_dir, vae, fx.patch_nums).to(rt.device)
    sampling = dataclasses.replace(fx.sampling, seed=params.tokens.seed)
    meta = {"var": R.model_id(var_dir, "flexvar"), "tokenizer": R.model_id(tokenizer_dir, "flexvae")}
    log(f"flex sample-tokens: {params.tokens.generated_per_class} maps per class x {var.cfg.num_classes} classes "
        f"-> {out_dir}")
    return sample_generated(var, vae, out_dir, params.tokens.generated_per_class, sampling, meta,
                            shard_size=params.tokens.shard_size, log=log, runtime=rt, patch_nums=fx.patch_nums)


def train_scorer(params: Params, tokenizer_dir: Path, real_dir: Path, generated_dir: Path, out_dir: Path,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Stage flex_scorer: flexvar.scorer.replicates scorers on r_k (flexvar.scorer), real vs FlexVAR
    maps, in out_dir/r<i> (see runs.train_replicates)."""
    import numpy as np

    from lsrs.models.scorer import make_input
    from lsrs.training.scorer import train_scorer as fit
    from lsrs.tokens.store import TokenStore

    if skipped(params, out_dir, log):
        return {}
    fx = params.flexvar
    vae = load_tokenizer(tokenizer_dir)
    real, gen = TokenStore.open(real_dir), TokenStore.open(generated_dir)
    for name, store in (("real", real), ("generated", gen)):
        if tuple(store.patch_nums) != fx.patch_nums or store.vocab_size != vae.cfg.codebook_size:
            raise ValueError(f"the {name} token store {store.path} was made with another FlexVAE or schedule "
                             f"(scales {tuple(store.patch_nums)}, V={store.vocab_size})")
    as_int = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731 (uint16 on disk)
    rt = Runtime.start(params.runtime)
    input_fn = make_input("flexvar", vae.to(rt.device), fx.scorer.model.input_size, fx.patch_nums)
    data = (as_int(real.tokens), as_int(real.labels), as_int(gen.tokens), as_int(gen.labels))

    def fit_one(folder: Path, seed: int) -> dict:
        return fit(*data, vae, fx.scorer.model, dataclasses.replace(fx.scorer.train, seed=seed), folder, log=log,
                   device=rt.device, input_fn=input_fn, runtime=rt)

    return R.train_replicates(fit_one, out_dir, fx.scorer.replicates, fx.scorer.train.seed, log)


# --------------------------------------------------------------------------- evaluation
def run_sweep(params: Params, name: str, layout, out_dir: Path, log: Callable[[str], None] = print) -> list[dict]:
    """Stage flex_sweep@<name>: FlexVAR and FlexVAR + LSRS over flexvar.sweeps.<name>, on the paired
    "eval" images (flexvar.per_class per class) with flexvar.sampling; `layout` is the family's."""
    from lsrs.pipeline.sweeps import SweepRun, evaluate_sweep, sweep_runs

    if skipped(params, out_dir, log):
        from lsrs.pipeline.sweeps import ROW_COLUMNS

        pd.DataFrame(columns=ROW_COLUMNS).to_csv(Path(out_dir) / "results.csv", index=False)
        return []
    fx = params.flexvar
    sw = fx.sweeps[name]
    sampled = dataclasses.replace(params, sampling=fx.sampling)  # evaluate_model samples with params.sampling
    setup = R.EvalSetup.load(sampled, layout.tokenizer, layout.evaluator, layout.reference,
                             tokenizer_loader=load_tokenizer)
    model = load_model(layout.var(FAMILY), setup.vae, fx.patch_nums)

    def plan_for(run: SweepRun):
        return R.lsrs_plans(layout.scorer(FAMILY), setup.vae, run.schedule(len(fx.patch_nums)), run.selection,
                            patch_nums=fx.patch_nums)

    runs = sweep_runs(dataclasses.replace(sw, scorers=(FAMILY,)), FAMILY, lambda scorer: FAMILY)
    return evaluate_sweep(setup, f"{FAMILY}_{name}", sw, runs, lambda var: model, plan_for, fx.per_class, out_dir,
                          log)
