"""The model-level steps behind the CLI: train the tokenizer, train a VAR, sample an image grid.

Each function takes validated params and folders, does one step end to end (with progress and
logs), and writes its artefacts atomically; the Typer commands in lsrs.cli only parse and call.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from lsrs.core.checkpoint import CheckpointError, config_from_json, load_into, read_state_dict
from lsrs.pipeline.params import Params
from lsrs.data.fashion_mnist import ImageSet, load_fashion_mnist
from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig
from lsrs.core.npz import to_uint8
from lsrs.sampling.rejection import LSRSSelector, ScoreFn, SelectionConfig
from lsrs.core.runtime import CPU, Runtime
from lsrs.sampling.sampler import OfficialRNG, PerSampleRNG, TokenSampler, generate, generate_model
from lsrs.training import trainers as T


def load_data(params: Params, split: str = "train"):
    """The profile's images: an in-memory ImageSet (Fashion-MNIST) or a lazy FolderImages (ImageNet tree)."""
    d = params.data
    if d.dataset == "imagenet":
        from lsrs.data.imagefolder import FolderImages

        if split != "train":
            raise ValueError("the imagenet dataset reads one class-folder tree (data.root); only split 'train' exists")
        return FolderImages.open(d.root, size=d.image_size, crop=d.crop, seed=d.crop_seed)
    limit = d.train_limit if split == "train" else d.test_limit
    return load_fashion_mnist(d.root, split, pad_to=d.image_size, limit=limit)


def resolve_checkpoint(path: str | Path, name: str) -> tuple[Path, Path]:
    """(checkpoint, config sidecar) for a run folder (trained here, or linking an official file) or a .pth."""
    from lsrs.core.checkpoint import linked_checkpoint

    path = Path(path)
    if not path.is_dir():
        return path, path.with_suffix(".json")
    ckpt = path / f"{name}.pth"
    if not ckpt.is_file():
        ckpt = linked_checkpoint(path, name) or ckpt
    return ckpt, path / f"{name}.json"


def load_tokenizer(path: str | Path) -> VQVAE:
    """A VQ-VAE from a run folder or a .pth; without a JSON sidecar the official config is assumed."""
    ckpt, side = resolve_checkpoint(path, "tokenizer")
    cfg = config_from_json(TokenizerConfig, side) if side.is_file() else TokenizerConfig()
    hint = "" if side.is_file() else "(no JSON config beside it, so the official vae_ch160v4096z32 config was assumed)"
    vae = load_into(VQVAE(cfg), ckpt, "tokenizer checkpoint", hint)
    return vae.eval().requires_grad_(False)


def load_var(path: str | Path, tokenizer: VQVAE | None = None) -> VAR:
    """A VAR from a run folder or a .pth; an official var_dNN.pth gets its depth from its keys."""
    ckpt, side = resolve_checkpoint(path, "var")
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


OFFICIAL_FILES = "the official files are on the Hugging Face Hub, FoundationVision/var"


def link_tokenizer(params: Params, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """The paper profile's tokenizer: tokenizer.checkpoint (e.g. vae_ch160v4096z32.pth), checked
    against tokenizer.sha256 and tokenizer.model, linked from `out_dir` (see checkpoint.link_checkpoint)."""
    from lsrs.core.checkpoint import link_checkpoint

    t = params.tokenizer
    with torch.device("meta"):
        model = VQVAE(t.model)
    source = link_checkpoint(model, t.model, t.checkpoint, t.sha256, out_dir, "tokenizer", "tokenizer checkpoint",
                             f"Put vae_ch160v4096z32.pth there or set tokenizer.checkpoint ({OFFICIAL_FILES}).")
    log(f"tokenizer: {source['path']} checked (sha256 {source['sha256'][:12]}..., keys and shapes) -> {out_dir}")
    return source


def link_var(params: Params, name: str, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """The paper profile's VAR var.depths.<name>: its checkpoint (var_dNN.pth) checked and linked."""
    from lsrs.core.checkpoint import link_checkpoint

    shape, cfg = params.var.depths[name], params.var_model(name)
    with torch.device("meta"):
        model = VAR(cfg)
    source = link_checkpoint(model, cfg, shape.checkpoint, shape.sha256, out_dir, "var", f"VAR checkpoint ({name})",
                             f"Put var_d{shape.depth}.pth there or set var.depths.{name}.checkpoint ({OFFICIAL_FILES}).")
    log(f"VAR {name}: {source['path']} checked (sha256 {source['sha256'][:12]}..., keys and shapes) -> {out_dir}")
    return source


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
    _cached_tokens(vae.eval(), train_set, out_dir / TRAIN_TOKENS, out_dir)  # for every VAR depth
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
    shared = resolve_checkpoint(tokenizer_dir, "tokenizer")[0].parent / TRAIN_TOKENS  # written by train_tokenizer
    tokens = _cached_tokens(vae, train_set, shared if shared.is_file() else out_dir / TRAIN_TOKENS, tokenizer_dir)
    torch.manual_seed(params.var.train.optim.seed)
    var = VAR(cfg)
    var.init_weights(gamma_scale=params.var.train.gamma_init)
    test = (T.encode_tokens(vae, test_set, desc="encode test tokens"), test_set.labels)
    return T.fit_next_scale(var, vae, (tokens, train_set.labels), test, params.var.train, out_dir, "var", log)


TRAIN_TOKENS = "train_tokens.pt"


def _cached_tokens(vae: VQVAE, data: ImageSet, path: Path, tokenizer_dir: Path) -> torch.Tensor:
    """Token maps of the training images, cached beside the tokenizer (by train_tokenizer, so every VAR
    depth reuses them) or next to the VAR run; keyed by the tokenizer's content and the image count."""
    from lsrs.core.checkpoint import sha256_file

    ckpt, _ = resolve_checkpoint(tokenizer_dir, "tokenizer")
    key = (sha256_file(ckpt), len(data))
    if path.is_file():
        cached = torch.load(path, weights_only=False)
        if cached.get("key") == key:
            return cached["tokens"]
    tokens = T.encode_tokens(vae, data, desc="encode training tokens")
    from lsrs.core.checkpoint import atomic_save

    atomic_save({"key": key, "tokens": tokens}, path)
    return tokens


@dataclass(frozen=True)
class LSRSPlan:
    """What turns plain sampling into LSRS: a score function, a schedule {m_1..m_K} and a selection rule."""

    score_fn: ScoreFn
    schedule: tuple[int, ...]
    selection: SelectionConfig = SelectionConfig()

    @property
    def is_plain(self) -> bool:
        return all(m == 1 for m in self.schedule)


def make_selector(sampling, sample_ids: torch.Tensor, seed: int, plan: LSRSPlan | None = None,
                  stream: str = "eval") -> TokenSampler | LSRSSelector:
    """The per-scale selector of one batch: plain sampling, or LSRS when a non-trivial plan is given."""
    rng = PerSampleRNG(seed, sample_ids, stream) if sampling.rng == "per-sample" else OfficialRNG(seed)
    plain = TokenSampler(rng, top_k=sampling.top_k, top_p=sampling.top_p)
    if plan is None or plan.is_plain:
        return plain
    return LSRSSelector(plain, plan.score_fn, plan.schedule, plan.selection)


def lsrs_plan(scorer_path: str | Path, vae: VQVAE, schedule: tuple[int, ...],
              selection: SelectionConfig = SelectionConfig(), patch_nums: tuple[int, ...] | None = None) -> LSRSPlan:
    """Load a trained scorer (folder or .pth) and wrap it for `make_selector`; checks it fits the tokenizer
    (a FlexVAE with the sampling schedule `patch_nums`)."""
    from lsrs.models.scorer import ScorerScoreFn, check_compatible, make_input

    path = scorer_replicates(scorer_path)[0]  # a folder of replicates: the first
    scorer = load_scorer_from(path).to(next(vae.parameters()).device)
    check_compatible(scorer.cfg, vae, patch_nums)
    scales = len(patch_nums or vae.cfg.patch_nums)
    if len(schedule) != scales:
        raise ValueError(f"the LSRS schedule has {len(schedule)} scales, the tokenizer {scales}")
    score_fn = ScorerScoreFn(scorer, make_input(scorer.cfg.input_kind, vae, scorer.cfg.input_size, patch_nums))
    return LSRSPlan(score_fn, tuple(schedule), selection)


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
    from lsrs.core.checkpoint import linked_checkpoint

    return (folder / "scorer.pth").is_file() or linked_checkpoint(folder, "scorer") is not None


def load_scorer_from(path: str | Path):
    """A scorer from a run folder (trained here or linking a checkpoint) or a .pth with its .json beside it."""
    from lsrs.models.scorer import Scorer, ScorerConfig

    ckpt, side = resolve_checkpoint(path, "scorer")
    model = load_into(Scorer(config_from_json(ScorerConfig, side)), ckpt, "scorer checkpoint",
                      "train it with `lsrs train-scorer` or `dvc repro scorer@<name>`")
    return model.eval()


def lsrs_plans(scorer_folder: str | Path, vae: VQVAE, schedule: tuple[int, ...],
               selection: SelectionConfig = SelectionConfig(), patch_nums: tuple[int, ...] | None = None
               ) -> list[LSRSPlan]:
    """One plan per scorer replicate of `scorer_folder` (see `scorer_replicates`)."""
    return [lsrs_plan(p, vae, schedule, selection, patch_nums) for p in scorer_replicates(scorer_folder)]


def replicate_of(n: int, num_classes: int, replicates: int) -> torch.Tensor:
    """The scorer replicate of each of n evaluation images: image i (class i % C, the j = i // C-th
    image of its class) uses replicate j % R, so every replicate sees every class equally often."""
    return (torch.arange(n) // num_classes) % replicates


def sample_images(var: VAR, vae: VQVAE, labels: torch.Tensor, sampling, seed: int,
                  batch_size: int | None = None, first_id: int = 0, progress: bool = True,
                  plan: LSRSPlan | None = None, runtime: Runtime = CPU,
                  ids: torch.Tensor | None = None) -> torch.Tensor | None:
    """uint8 images (N, C, H, W) for `labels`; image i uses sample id first_id + i (or ids[i] when given).

    With the per-sample RNG the tokens do not depend on batch_size, and image i sees the same
    draws whatever the LSRS plan (candidate 0 of every scale is the plain sampler's draw). With the
    official RNG each batch reseeds the generator with seed + batch number (the official g_seed
    semantics); LSRS needs the per-sample RNG. Models must be on runtime.device.

    With several ranks, rank r generates the batches r, r + world, ... and rank 0 returns every
    image in order (the other ranks None); the batches are those of one process, so the images are too.
    """
    bs = batch_size or sampling.batch_size
    starts = range(0, len(labels), bs)
    ids = torch.arange(first_id, first_id + len(labels)) if ids is None else torch.as_tensor(ids)
    mine = {}
    for n in tqdm(runtime.mine(len(starts)), desc="sample", unit="batch", disable=not progress):
        start = starts[n]
        lab = labels[start:start + bs]
        sel = make_selector(sampling, ids[start:start + bs], seed if sampling.rng == "per-sample" else seed + n, plan)
        with runtime.autocast():
            mine[n] = to_uint8(generate_model(var, vae, lab, sel, cfg=sampling.cfg).images).cpu()
    parts = runtime.gather(mine)
    if parts is None:
        return None
    batches = {n: x for part in parts for n, x in part.items()}
    return torch.cat([batches[n] for n in range(len(starts))])


def sample_grid(var: VAR, vae: VQVAE, sampling, out_png: Path, per_class: int = 8, seed: int = 0,
                batch_size: int | None = None, plan: LSRSPlan | None = None) -> torch.Tensor:
    """A grid with one row per class and `per_class` samples in each row."""
    from torchvision.utils import save_image

    labels = torch.arange(var.cfg.num_classes).repeat_interleave(per_class)
    images = sample_images(var, vae, labels, sampling, seed, batch_size, plan=plan).float() / 255
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    save_image(images, out_png, nrow=per_class, padding=1)
    return images


def random_scale_grid(var: VAR, vae: VQVAE, sampling, out_png: Path, classes: list[int], seed: int = 0
                      ) -> torch.Tensor:
    """The paper's Figure 1: per row one class; column 0 is the plain sample, column k (1-based) the same
    sample with scale k's token map replaced by uniformly random tokens while generation goes on.

    Every column uses the same per-sample streams, so columns differ only through the replacement.
    """
    from torchvision.utils import save_image

    from lsrs.sampling.rejection import RandomScale

    if sampling.rng != "per-sample":
        raise ValueError("random scale replacement needs sampling.rng = per-sample")
    labels = torch.tensor(classes, dtype=torch.long)
    ids = torch.arange(len(labels))
    columns = []
    for scale in tqdm([None, *range(len(vae.cfg.patch_nums))], desc="random scales", unit="column"):
        plain = make_selector(sampling, ids, seed, stream="preview")
        sel = plain if scale is None else RandomScale(plain, scale)
        columns.append(generate(var, vae, labels, sel, cfg=sampling.cfg).images.float().cpu())
    grid = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: class, column
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, out_png, nrow=len(columns), padding=1)
    return grid


# --------------------------------------------------------------------------- LSRS data and scorer
def model_id(folder: Path, name: str) -> dict:
    """What identifies a model in a store's meta: its file and content hash (for a linked official
    file the hash its stage checked, so gigabytes are not hashed again)."""
    from lsrs.core.checkpoint import SOURCE_SUFFIX, sha256_file

    ckpt = resolve_checkpoint(folder, name)[0]
    link = Path(folder) / f"{name}{SOURCE_SUFFIX}"
    sha = json.loads(link.read_text())["sha256"] if link.is_file() else sha256_file(ckpt)
    return {"path": str(ckpt), "sha256": sha}


def extract_real_tokens(params: Params, tokenizer_dir: Path, out_dir: Path, log: Callable[[str], None] = print):
    """Token maps of the first `tokens.real_per_class` training images of every class, as a token store."""
    from lsrs.tokens.writers import extract_real

    rt = Runtime.start(params.runtime)
    vae = load_tokenizer(tokenizer_dir).to(rt.device)
    if vae.cfg.image_size != params.data.image_size:
        raise ValueError(f"the tokenizer makes {vae.cfg.image_size}px images, data.image_size is {params.data.image_size}")
    data, index = load_data(params, "train").first_per_class(params.tokens.real_per_class)
    meta = {"source": f"{params.data.dataset} train", "real_per_class": params.tokens.real_per_class,
            "image_size": params.data.image_size, "tokenizer": model_id(tokenizer_dir, "tokenizer")}
    if params.data.dataset == "imagenet":
        meta.update(crop=params.data.crop, crop_seed=params.data.crop_seed)
    log(f"extract: {len(data)} real images -> token maps in {out_dir}")
    return extract_real(vae, data, out_dir, meta, ids=index, shard_size=params.tokens.shard_size,
                        batch_size=params.tokens.encode_batch_size, log=log, runtime=rt)


def sample_generated_tokens(params: Params, tokenizer_dir: Path, var_dir: Path, out_dir: Path,
                            log: Callable[[str], None] = print):
    """`tokens.generated_per_class` VAR samples per class (stream 'scorer-data'), as a token store."""
    from lsrs.tokens.writers import sample_generated

    rt = Runtime.start(params.runtime)
    vae = load_tokenizer(tokenizer_dir).to(rt.device)
    var = load_var(var_dir, vae).to(rt.device)
    sampling = dataclasses.replace(params.sampling, seed=params.tokens.seed)
    meta = {"var": model_id(var_dir, "var"), "tokenizer": model_id(tokenizer_dir, "tokenizer")}
    log(f"sample-tokens: {params.tokens.generated_per_class} maps per class x {var.cfg.num_classes} classes "
        f"-> {out_dir}")
    return sample_generated(var, vae, out_dir, params.tokens.generated_per_class, sampling, meta,
                            shard_size=params.tokens.shard_size, log=log, runtime=rt)


def train_scorer(params: Params, tokenizer_dir: Path, real_dir: Path, generated_dir: Path, out_dir: Path,
                 log: Callable[[str], None] = print, replicates: int | None = None, **train_overrides):
    """Train the scorer on two token stores (real vs generated); overrides replace scorer.train fields.

    One scorer into out_dir (its metrics dict), or with `replicates` R of them into out_dir/r<r>, seeds
    seed + r (see `train_replicates`; a list of metrics dicts); the data is loaded once for all."""
    from lsrs.training.scorer import train_scorer as fit
    from lsrs.tokens.store import TokenStore

    vae = load_tokenizer(tokenizer_dir)
    real, gen = TokenStore.open(real_dir), TokenStore.open(generated_dir)
    for name, store in (("real", real), ("generated", gen)):
        if tuple(store.patch_nums) != tuple(vae.cfg.patch_nums) or store.vocab_size != vae.cfg.vocab_size:
            raise ValueError(f"the {name} token store {store.path} was made with another tokenizer "
                             f"(scales {tuple(store.patch_nums)}, V={store.vocab_size})")
    train_cfg = dataclasses.replace(params.scorer.train, **{k: v for k, v in train_overrides.items() if v is not None})
    as_int = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731 (uint16 on disk)
    data = (as_int(real.tokens), as_int(real.labels), as_int(gen.tokens), as_int(gen.labels))
    rt = Runtime.start(params.runtime)

    def fit_one(folder: Path, seed: int) -> dict:
        return fit(*data, vae, params.scorer.model, dataclasses.replace(train_cfg, seed=seed), folder, log=log,
                   device=rt.device, runtime=rt)

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


def link_scorer(params: Params, name: str, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """scorer.runs.<name>.checkpoint (e.g. the authors' RewardNet state dict) checked against its sha256
    and scorer.model (keys and shapes, strictly) and linked as the run's one replicate, out_dir/r0."""
    from lsrs.core.checkpoint import link_checkpoint
    from lsrs.models.scorer import Scorer

    run, cfg = params.scorer.runs[name], params.scorer.model
    with torch.device("meta"):
        model = Scorer(cfg)
    source = link_checkpoint(model, cfg, run.checkpoint, run.sha256, Path(out_dir) / "r0", "scorer",
                             f"scorer checkpoint ({name})",
                             f"Put the scorer's state dict there or set scorer.runs.{name}.checkpoint "
                             "(a plain state dict with the authors' RewardNet keys).")
    log(f"scorer {name}: {source['path']} checked (sha256 {source['sha256'][:12]}..., keys and shapes) -> {out_dir}/r0")
    return source


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


def build_reference(params: Params, evaluator_dir: Path | None, out_npz: Path,
                    log: Callable[[str], None] = print) -> dict:
    """Reference statistics: from the ADM reference batch evaluation.reference_batch when given (its
    stored mu/sigma, P/R features from its images), else from the real training images
    (evaluation.reference_count of them, or all; an ImageNet tree is read lazily, batch by batch)."""
    from lsrs.evaluation.reference import build_reference as build, load_reference, save_reference

    ev, rt = params.evaluation, Runtime.start(params.runtime)
    if not rt.is_main:  # one pass over the reference images; nothing to split
        return {}
    extractor = make_extractor(params, evaluator_dir)
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
    vae: VQVAE  # on runtime.device
    extractor: object  # lsrs.evaluation.features.Extractor
    reference: object  # lsrs.evaluation.reference.ReferenceStats
    runtime: Runtime = CPU

    @classmethod
    def load(cls, params: Params, tokenizer_dir: Path, evaluator_dir: Path | None, reference: Path,
             tokenizer_loader: Callable = None) -> "EvalSetup":
        """`tokenizer_loader(dir)` reads the tokenizer (default: VAR's VQ-VAE; lsrs.pipeline.flex passes its FlexVAE's)."""
        from lsrs.evaluation.reference import load_reference

        rt = Runtime.start(params.runtime)
        extractor = make_extractor(params, evaluator_dir)
        ref = load_reference(reference, extractor)  # fails fast on a reference of another extractor
        vae = (tokenizer_loader or load_tokenizer)(tokenizer_dir)
        return cls(params, vae.to(rt.device), extractor, ref, rt)


def evaluate_model(setup: EvalSetup, var: VAR, out_dir: Path, plan: LSRSPlan | list[LSRSPlan] | None = None,
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
        parts[r] = sample_images(var, setup.vae, labels[ids], setup.params.sampling, ev.seed, plan=p, runtime=rt,
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


def evaluate(params: Params, tokenizer_dir: Path, var_dir: Path, evaluator_dir: Path, reference: Path,
             out_dir: Path, plan: LSRSPlan | None = None, log: Callable[[str], None] = print) -> dict:
    """`lsrs evaluate`: one model and LSRS plan scored against `reference` (see `evaluate_model`)."""
    setup = EvalSetup.load(params, tokenizer_dir, evaluator_dir, reference)
    return evaluate_model(setup, load_var(var_dir, setup.vae), out_dir, plan, log=log)[0]


def paired_fid_diff(baseline, candidate, setup: EvalSetup, seed: int = 0) -> dict:
    """FID(candidate) - FID(baseline) with its paired-bootstrap 95% interval (see evaluation.compare_runs);
    over images and the candidate's scorer replicates when its features carry them (`.replicate`)."""
    from lsrs.evaluation.reference import compare_runs

    ev = setup.params.evaluation
    return compare_runs(baseline, candidate, setup.reference, seed=seed, device=setup.runtime.device,
                        n_boot=ev.n_boot, groups=getattr(candidate, "replicate", None), mcse_target=ev.mcse_target,
                        n_boot_max=ev.n_boot_max)
