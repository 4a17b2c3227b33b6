"""Training the LSRS scorer on (real, generated) token-map pairs (paper section 3.3, appendix A).

Data. Two collections of whole multi-scale token maps, real (the tokenizer's maps of training
images) and generated (the VAR model's samples), each as tokens (N, L) with L = sum(pn^2), scales
concatenated in order, and class labels (N,). `token_arrays` is the thin adapter for other holders
(a (tokens, labels) tuple, a mapping or an object with `.tokens`/`.labels`, e.g. the token store).

Validation split. Per class and per collection, `val_fraction` of the maps (at least one when the
class has two or more) is held out, chosen by a permutation seeded by (seed, class): the split does
not depend on the order of other classes or on the other collection.

Pairs and scales (our reading of the paper and the authors' description, see the report):
* a pair is (real map i, generated map j) of the same class, so the ranking in Eq. (3) is always
  within a class, as the class is an input of S;
* each pair is used at every trained scale at once: for a pair, the scorer sees the K (or K-1
  without the first scale) inputs e_k^real and e_k^gen with their scale index k, and the pair's loss
  is the mean over those scales of the per-scale loss. This is the paper's "(c, e_k^real, e_k^gen,
  k)" tuple of Eq. (4) taken for all k of the same two images, as the authors' code scores every
  stage jointly with its stage label; real and generated inputs are always compared at the same k.
  A batch of `batch_size` pairs is therefore 2 * batch_size * (#scales) scorer evaluations;
* which pairs (the authors' `train_score.py` by default): every same-class (real, generated) pair of
  the training split is a candidate, and a fixed random `pair_fraction` of them (1%) is drawn once,
  per class (round(pair_fraction * n_real_c * n_gen_c) distinct pairs of class c; the authors draw 1%
  of all classes' pairs together, so their per-class counts vary binomially around ours); every epoch
  walks the same pairs in a fresh order seeded by (seed, epoch). The validation pairs are a fixed
  `val_pair_fraction` (10%) of the held-out maps' same-class pairs. On the mini profile (900 x 900
  training maps per class, 10 classes) that is 81,000 pairs, 633 steps per epoch at batch 128; on the
  paper profile (900 generated x ~1,170 real training maps per class, 1000 classes) about 10.5 M
  pairs, 82,000 steps per epoch.
* alternatively (`pairs_per_class` set) pairs are re-drawn every epoch from (seed, epoch): within class
  c the real and the generated maps are each walked in a fresh random order (cycled when one side is
  shorter) to form `pairs_per_class` pairs; all classes' pairs are then shuffled together. An epoch
  stays linear in the number of maps (`val_pairs_per_class` likewise for the validation pairs).

Losses, per (pair, scale): ``pairwise`` -log sigmoid(s_real - s_gen) (Eq. 4); ``pointwise`` the
binary cross-entropy with real = 1 and generated = 0 averaged over the pair's two points,
(softplus(-s_real) + softplus(s_gen)) / 2 (Eq. 5 as a mean over data points). Accuracy is always the
pairwise one, the fraction of pairs with s_real > s_gen (a tie counts one half).

Recipe (appendix A): Adam, lr 3e-4, batch 128, 4 epochs, linear warm-up over the first epoch, then
cosine decay to `min_lr_ratio` * lr. After every epoch the scorer is evaluated on the validation
pairs at every scale (also the first one when it is not trained; the CSV marks which are); the model
with the lowest validation loss (mean over the trained scales) is kept as `scorer.pth` (plain state
dict) + `scorer.json` (its ScorerConfig).

Outputs in out_dir: scorer.pth/.json (best), scorer_val.csv (epoch, scale, loss, acc, trained),
scorer_loss.csv/.png (per step), scorer_val.png, scorer_metrics.json, and the resume snapshot
scorer.train.pth (model, optimiser, step, RNG, validation history; written every `checkpoint_every`
steps and after every epoch's validation). A rerun with the same data and configs resumes from it
at the exact step; a snapshot made with other data or configs is refused.

The scorer inputs e_k of every scale of every map are computed once before training (incrementally,
`VarInput.all_scales`) when they fit in `precompute_max_gb`, else per batch.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lsrs.core.checkpoint import atomic_write_text, read_state_dict
from lsrs.core.runtime import CPU, Runtime
from lsrs.models.tokenizer import VQVAE
from lsrs.models.scorer import Scorer, ScorerConfig, ScorerInput, check_compatible, make_input, num_params
from lsrs.training.pairs import gen_for, make_pairs, sample_all_pairs, shuffled, split_per_class
from lsrs.training.trainers import OptimConfig, _Trainer, plot_history, save_model, split_scales, write_json

LOSSES = ("pairwise", "pointwise")


@dataclass(frozen=True)
class ScorerTrainConfig:
    """How the scorer is trained. Defaults follow appendix A."""

    loss: str = "pairwise"
    lr: float = 3e-4
    batch_size: int = 128  # pairs per step, each at every trained scale
    epochs: int = 4
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    weight_decay: float = 0.0  # Adam's L2 term (appendix A: none stated)
    grad_clip: float = 0.0  # max grad norm; 0 disables
    val_fraction: float = 0.1  # per class and per collection
    pair_fraction: float = 0.01  # the authors': a fixed 1% of all same-class training pairs
    val_pair_fraction: float = 0.1  # and 10% of the validation pairs
    pairs_per_class: int | None = None  # instead: this many pairs per class, re-drawn every epoch
    val_pairs_per_class: int | None = None  # instead: this many validation pairs per class
    without_first_scale: bool = False  # appendix H: do not train on scale 0 (still evaluated and reported)
    seed: int = 0
    checkpoint_every: int = 200  # steps between resume snapshots (also after every epoch)
    eval_batch_size: int = 256  # pairs per validation batch
    precompute_max_gb: float = 2.0  # precompute all e_k when they fit, else build them per batch

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("batch_size", "epochs", "checkpoint_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pairs_per_class", "val_pairs_per_class"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {getattr(self, name)}")
        for name in ("pair_fraction", "val_pair_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("lr must be > 0 and min_lr_ratio in [0, 1]")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.precompute_max_gb < 0:
            raise ValueError("weight_decay, grad_clip and precompute_max_gb must be >= 0")


# --------------------------------------------------------------------------- losses
def pair_loss(s_real: torch.Tensor, s_gen: torch.Tensor, kind: str = "pairwise") -> torch.Tensor:
    """Elementwise loss of paired scores (no reduction). See the module docstring for the formulas."""
    if kind == "pairwise":
        return F.softplus(s_gen - s_real)  # = -log sigmoid(s_real - s_gen), stable
    if kind == "pointwise":
        return 0.5 * (F.softplus(-s_real) + F.softplus(s_gen))  # BCE(real, 1) and BCE(gen, 0), mean of both
    raise ValueError(f"unknown loss {kind!r} (known: {LOSSES})")


def pair_accuracy(s_real: torch.Tensor, s_gen: torch.Tensor) -> torch.Tensor:
    """Elementwise pairwise accuracy: 1 if s_real > s_gen, 0.5 on a tie, else 0.

    Ties are common at the first scale, where a real and a generated map of the same class often hold
    the same single token; counting them as failures would push the accuracy below chance.
    """
    return (s_real > s_gen).float() + 0.5 * (s_real == s_gen).float()


def cosine_lr(step: int, total: int, warmup: int, lr: float, min_ratio: float = 0.0) -> float:
    """Linear warm-up over `warmup` steps (lr * (step + 1) / warmup), then cosine down to min_ratio * lr."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(total - warmup, 1)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


# --------------------------------------------------------------------------- data
def token_arrays(obj) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (N, L) int tensor, labels (N,) int64) from a tuple, a mapping, or `.tokens`/`.labels`."""
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        tokens, labels = obj
    elif isinstance(obj, dict):
        tokens, labels = obj["tokens"], obj["labels"]
    elif hasattr(obj, "tokens") and hasattr(obj, "labels"):
        tokens, labels = obj.tokens, obj.labels
    else:
        raise TypeError(f"cannot read token maps from {type(obj).__name__}: give (tokens, labels), a mapping with "
                        "'tokens' and 'labels', or an object with .tokens and .labels")
    tokens = torch.as_tensor(np.asarray(tokens) if not isinstance(tokens, torch.Tensor) else tokens)
    labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).long()
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
        raise TypeError(f"token ids must be integers, got {tokens.dtype}")
    return tokens, labels


def _check_maps(name: str, tokens: torch.Tensor, labels: torch.Tensor, patch_nums, num_classes: int) -> None:
    length = sum(pn * pn for pn in patch_nums)
    if tokens.ndim != 2 or tokens.shape[1] != length:
        raise ValueError(f"{name} tokens must be (N, {length}) for scales {tuple(patch_nums)}, got {tuple(tokens.shape)}")
    if labels.shape != (tokens.shape[0],):
        raise ValueError(f"{name}: {tokens.shape[0]} token maps but labels of shape {tuple(labels.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{name} labels must be in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]")


class InputBank:
    """Scorer inputs of one token-map collection at all scales: a precomputed tensor or built per batch."""

    def __init__(self, tokens: torch.Tensor, input_fn: ScorerInput, patch_nums, precompute: bool,
                 device: torch.device, desc: str, chunk: int = 512):
        self.tokens, self.input_fn, self.patch_nums, self.device = tokens, input_fn, tuple(patch_nums), device
        self.cache: torch.Tensor | None = None
        if precompute:
            parts = []
            for start in tqdm(range(0, len(tokens), chunk), desc=f"e_k {desc}", unit="chunk", leave=False):
                parts.append(self._build(tokens[start:start + chunk]).cpu())
            self.cache = torch.cat(parts) if parts else None

    def _build(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.input_fn.all_scales(split_scales(tokens.to(self.device), self.patch_nums))

    def get(self, idx: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """(B, T, C, S, S) inputs of maps `idx` at scale indices `scales`, on the device."""
        if self.cache is not None:
            return self.cache[idx][:, scales].to(self.device)
        with torch.no_grad():
            return self._build(self.tokens[idx])[:, scales.to(self.device)]


def score_pairs(scorer: Scorer, real: InputBank, gen: InputBank, ri: torch.Tensor, gi: torch.Tensor,
                labels: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (B, T) of the real and of the generated maps of B pairs at T scales, in one scorer call."""
    b, t = len(ri), len(scales)
    x = torch.cat([real.get(ri, scales), gen.get(gi, scales)]).flatten(0, 1)
    dev = x.device
    lab = labels.to(dev).repeat_interleave(t).repeat(2)
    sc = scales.to(dev).repeat(2 * b)
    s = scorer(x, lab, sc).view(2, b, t)
    return s[0], s[1]


@torch.no_grad()
def evaluate(scorer: Scorer, real: InputBank, gen: InputBank, ri: torch.Tensor, gi: torch.Tensor,
             labels: torch.Tensor, num_scales: int, loss: str, batch_size: int) -> tuple[list[float], list[float]]:
    """Mean loss and pairwise accuracy per scale (all scales) over the given pairs."""
    was_training = scorer.training
    scorer.eval()
    scales = torch.arange(num_scales)
    loss_sum, correct = torch.zeros(num_scales, dtype=torch.float64), torch.zeros(num_scales, dtype=torch.float64)
    for start in tqdm(range(0, len(ri), batch_size), desc="validate scorer", unit="batch", leave=False):
        sl = slice(start, start + batch_size)
        s_r, s_g = score_pairs(scorer, real, gen, ri[sl], gi[sl], labels[sl], scales)
        loss_sum += pair_loss(s_r, s_g, loss).double().sum(0).cpu()
        correct += pair_accuracy(s_r, s_g).double().sum(0).cpu()
    scorer.train(was_training)
    n = max(len(ri), 1)
    return (loss_sum / n).tolist(), (correct / n).tolist()


# --------------------------------------------------------------------------- trainer
class ScorerTrainer(_Trainer):
    """The shared skeleton with Adam, an epoch loop, per-epoch validation and a best checkpoint."""

    name = "scorer"

    def __init__(self, scorer: Scorer, real: InputBank, gen: InputBank, real_labels: torch.Tensor,
                 train_split: tuple[dict, dict], val_pairs: tuple[torch.Tensor, torch.Tensor],
                 cfg: ScorerTrainConfig, out_dir: Path, fingerprint: str, device: torch.device, log=print,
                 runtime: Runtime = CPU):
        self.tcfg, self.runtime = cfg, runtime
        # with several ranks every step splits its batch across them and DDP averages the gradients
        self.net = scorer if not runtime.distributed else nn.parallel.DistributedDataParallel(
            scorer, device_ids=[device.index] if device.type == "cuda" else None)
        self.real, self.gen, self.real_labels = real, gen, real_labels
        self.train_real, self.train_gen = train_split
        self.val_ri, self.val_gi = val_pairs
        self.val_labels = real_labels[self.val_ri]
        self.num_scales = scorer.cfg.num_scales
        first = 1 if cfg.without_first_scale else 0
        self.trained_scales = torch.arange(first, self.num_scales)
        n_pairs = len(self.epoch_pairs(0)[0])
        if n_pairs == 0:
            raise ValueError("no training pairs: no class has both real and generated training maps")
        self.steps_per_epoch = -(-n_pairs // cfg.batch_size)
        self.pairs_per_epoch = n_pairs
        total = self.steps_per_epoch * cfg.epochs
        optim = OptimConfig(steps=total, batch_size=cfg.batch_size, lr=cfg.lr,
                            warmup_steps=round(cfg.warmup_epochs * self.steps_per_epoch),
                            grad_clip=cfg.grad_clip, checkpoint_every=cfg.checkpoint_every, seed=cfg.seed)
        super().__init__(scorer, optim, out_dir, log)
        self.opt = torch.optim.Adam(scorer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.device, self.fingerprint = device, fingerprint
        self.val_rows: list[dict] = []
        self.best = {"epoch": 0, "val_loss": math.inf}
        self._pairs_cache: tuple[int, tuple] | None = None

    # pairs of an epoch are a function of (seed, epoch) only, so a resumed run sees the same batches
    def epoch_pairs(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if getattr(self, "_pairs_cache", None) is None or self._pairs_cache[0] != epoch:
            g = gen_for(self.tcfg.seed, 1, epoch)
            if self.tcfg.pairs_per_class is not None:
                pairs = make_pairs(self.train_real, self.train_gen, self.tcfg.pairs_per_class, g)
            else:
                if getattr(self, "_fixed_pairs", None) is None:
                    self._fixed_pairs = sample_all_pairs(self.train_real, self.train_gen, self.tcfg.pair_fraction,
                                                         gen_for(self.tcfg.seed, 3))
                pairs = shuffled(self._fixed_pairs, g)
            self._pairs_cache = (epoch, pairs)
        return self._pairs_cache[1]

    def snapshot_extra(self):
        return {"val_rows": self.val_rows, "best": self.best, "fingerprint": self.fingerprint}

    def save_snapshot(self) -> None:
        if self.runtime.is_main:  # every rank holds the same weights; one writes them
            super().save_snapshot()
        self.runtime.barrier()  # a resume must never see a snapshot older than its own step

    def restore_extra(self, extra):
        if extra.get("fingerprint") != self.fingerprint:
            raise RuntimeError(f"{self.snapshot_path} was made with other data or configs; delete it to start over")
        self.val_rows, self.best = extra["val_rows"], extra["best"]

    def try_resume(self) -> bool:
        if not self.snapshot_path.is_file():
            return False
        snap = torch.load(self.snapshot_path, map_location="cpu", weights_only=False)
        self.restore_extra(snap["extra"])  # refuses a foreign snapshot before touching the model
        self.model.load_state_dict(snap["model"])
        self.opt.load_state_dict(snap["opt"])
        self.step, self.history = snap["step"], snap["history"]
        torch.set_rng_state(snap["rng"])
        self.log(f"resuming scorer training from step {self.step}/{self.cfg.steps}")
        return True

    def train_step(self) -> dict:
        epoch, pos = divmod(self.step, self.steps_per_epoch)
        ri, gi = self.epoch_pairs(epoch)
        sl = slice(pos * self.cfg.batch_size, (pos + 1) * self.cfg.batch_size)
        n_batch, world = len(ri[sl]), self.runtime.world
        ri, gi = ri[sl][self.runtime.rank::world], gi[sl][self.runtime.rank::world]
        lr = cosine_lr(self.step, self.cfg.steps, self.cfg.warmup_steps, self.cfg.lr, self.tcfg.min_lr_ratio)
        for group in self.opt.param_groups:
            group["lr"] = lr
        s_r, s_g = score_pairs(self.net, self.real, self.gen, ri, gi, self.real_labels[ri], self.trained_scales)
        # the batch mean over all ranks: DDP averages the ranks' gradients, hence the factor world
        per_pair = pair_loss(s_r, s_g, self.tcfg.loss)
        loss = per_pair.sum() * (world / n_batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.tcfg.grad_clip > 0:
            grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.tcfg.grad_clip))
        else:
            grad_norm = float(torch.linalg.vector_norm(torch.stack(
                [p.grad.norm() for p in self.model.parameters() if p.grad is not None])))
        self.opt.step()
        self.step += 1
        return {"step": self.step, "epoch": epoch + 1, "lr": lr, "loss": per_pair.mean().item(),  # this rank's pairs
                "acc": pair_accuracy(s_r, s_g).float().mean().item(), "grad_norm": grad_norm}

    def validate(self, epoch: int) -> None:
        """Evaluate after `epoch` (1-based) epochs; keep the model if its validation loss is the best."""
        losses, accs = evaluate(self.model, self.real, self.gen, self.val_ri, self.val_gi, self.val_labels,
                                self.num_scales, self.tcfg.loss, self.tcfg.eval_batch_size)
        trained = set(self.trained_scales.tolist())
        for si in range(self.num_scales):
            self.val_rows.append({"epoch": epoch, "scale": si, "loss": losses[si], "acc": accs[si],
                                  "trained": si in trained})
        mean_loss = float(np.mean([losses[s] for s in sorted(trained)]))
        mean_acc = float(np.mean([accs[s] for s in sorted(trained)]))
        better = mean_loss < self.best["val_loss"]
        if better:
            self.best = {"epoch": epoch, "val_loss": mean_loss, "val_acc": mean_acc,
                         "loss_per_scale": losses, "acc_per_scale": accs}
            if self.runtime.is_main:
                save_model(self.model, self.model.cfg, self.out_dir, "scorer")
        if self.runtime.is_main:
            self.write_val_csv()
        self.log(f"scorer epoch {epoch}/{self.tcfg.epochs}: val loss {mean_loss:.4f} acc {mean_acc:.3f}"
                 f"{' (best)' if better else ''}; acc per scale " + " ".join(f"{a:.2f}" for a in accs))

    def write_val_csv(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["epoch", "scale", "loss", "acc", "trained"])
        writer.writeheader()
        writer.writerows(self.val_rows)
        atomic_write_text(buf.getvalue(), self.out_dir / "scorer_val.csv")

    def fit(self) -> None:
        self.model.train()
        self.try_resume()
        validated = max((r["epoch"] for r in self.val_rows), default=0)
        done_epochs = self.step // self.steps_per_epoch
        if done_epochs > validated:  # interrupted between an epoch's last step and its validation
            self.validate(done_epochs)
            self.save_snapshot()
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc="train scorer", unit="step")
        while self.step < self.cfg.steps:
            row = self.train_step()
            self.history.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", acc=f"{row['acc']:.2f}")
            if self.step % self.steps_per_epoch == 0:
                self.validate(self.step // self.steps_per_epoch)
                self.save_snapshot()
            elif self.step % self.cfg.checkpoint_every == 0:
                self.save_snapshot()
        bar.close()
        self.model.eval()


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            h.update(str((p.dtype, tuple(p.shape))).encode())
            h.update(p.contiguous().numpy().tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()


def plot_validation(csv_path: Path, png_path: Path, title: str = "scorer validation") -> None:
    """Validation loss and pairwise accuracy per scale against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(csv_path)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for si, part in df.groupby("scale"):
        style = "-" if bool(part["trained"].iloc[0]) else ":"
        for ax, col in zip(axes, ("loss", "acc")):
            ax.plot(part["epoch"], part[col], style, marker="o", ms=3, label=f"scale {si}")
    axes[0].axhline(math.log(2), color="grey", lw=0.6)
    axes[1].axhline(0.5, color="grey", lw=0.6)
    for ax, name in zip(axes, ("validation loss", "pairwise accuracy (s_real > s_gen)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def train_scorer(real_tokens, real_labels, gen_tokens, gen_labels, vae: VQVAE, scorer_cfg: ScorerConfig,
                 train_cfg: ScorerTrainConfig, out_dir: str | Path, log: Callable[[str], None] = print,
                 device: str | torch.device = "cpu", input_fn: ScorerInput | None = None,
                 runtime: Runtime = CPU) -> dict:
    """Train a scorer to rank real above generated token maps; return (and write) the final metrics.

    real/gen tokens: (N, L) integer token maps (scales concatenated), labels (N,). `vae` supplies the
    codebook and Phi convs that turn token maps into e_k. Resumes from out_dir/scorer.train.pth.
    With several torchrun ranks (`runtime`) training is data-parallel (DDP, each rank a slice of
    every batch; the result matches one process up to float summation order) and rank 0 writes.
    """
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    real_tokens, real_labels = token_arrays((real_tokens, real_labels))
    gen_tokens, gen_labels = token_arrays((gen_tokens, gen_labels))
    flex = input_fn is not None and input_fn.kind == "flexvar"  # FlexVAE maps: the schedule is the input's
    patch_nums = tuple(input_fn.patch_nums) if flex else vae.cfg.patch_nums
    vocab = vae.cfg.codebook_size if flex else vae.cfg.vocab_size
    check_compatible(scorer_cfg, vae, patch_nums if flex else None)
    for name, t, lab in (("real", real_tokens, real_labels), ("generated", gen_tokens, gen_labels)):
        _check_maps(name, t, lab, patch_nums, scorer_cfg.num_classes)
        if int(t.min()) < 0 or int(t.max()) >= vocab:
            raise ValueError(f"{name} token ids must be in [0, {vocab})")
    vae = vae.to(device).eval()
    input_fn = input_fn or make_input(scorer_cfg.input_kind, vae, scorer_cfg.input_size)

    real_train, real_val = split_per_class(real_labels, train_cfg.val_fraction, train_cfg.seed, stream=0)
    gen_train, gen_val = split_per_class(gen_labels, train_cfg.val_fraction, train_cfg.seed, stream=1)
    missing = sorted(set(real_labels.unique().tolist()) ^ set(gen_labels.unique().tolist()))
    if missing:
        log(f"warning: classes {missing} have maps in only one collection and are not used")
    val_pairs = (make_pairs(real_val, gen_val, train_cfg.val_pairs_per_class, gen_for(train_cfg.seed, 2))
                 if train_cfg.val_pairs_per_class is not None else
                 sample_all_pairs(real_val, gen_val, train_cfg.val_pair_fraction, gen_for(train_cfg.seed, 2)))
    if len(val_pairs[0]) == 0:
        raise ValueError("no validation pairs: every class needs >= 2 real and >= 2 generated maps")

    per_map = scorer_cfg.num_scales * scorer_cfg.in_channels * scorer_cfg.input_size ** 2 * 4
    need_gb = (len(real_tokens) + len(gen_tokens)) * per_map / 2 ** 30
    precompute = need_gb <= train_cfg.precompute_max_gb
    log(f"scorer data: {len(real_tokens)} real / {len(gen_tokens)} generated maps, "
        f"{len(val_pairs[0])} validation pairs; e_k {'precomputed' if precompute else 'built per batch'} "
        f"({need_gb:.2f} GiB for all)")
    real = InputBank(real_tokens, input_fn, patch_nums, precompute, device, "real")
    gen = InputBank(gen_tokens, input_fn, patch_nums, precompute, device, "generated")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_cfg.seed)
        scorer = Scorer(scorer_cfg)
    scorer.to(device)
    quant_state = [v.detach().cpu() for k, v in sorted(vae.quantize.state_dict().items()) if "ema_vocab" not in k]
    # what decides the trained model; bookkeeping fields may change between a run and its resume
    semantic = {k: v for k, v in asdict(train_cfg).items()
                if k not in ("checkpoint_every", "eval_batch_size", "precompute_max_gb")}
    fingerprint = _fingerprint(asdict(scorer_cfg), semantic, real_tokens, real_labels, gen_tokens,
                               gen_labels, *quant_state)
    trainer = ScorerTrainer(scorer, real, gen, real_labels, (real_train, gen_train), val_pairs, train_cfg, out_dir,
                            fingerprint, device, log, runtime)
    log(f"scorer: {num_params(scorer):,} parameters, {trainer.pairs_per_epoch} pairs per epoch x "
        f"{len(trainer.trained_scales)} scales, {trainer.steps_per_epoch} steps per epoch, {train_cfg.epochs} epochs")
    torch.manual_seed(train_cfg.seed + 1)  # dropout stream (a resume restores the saved RNG state instead)
    trainer.fit()
    if not runtime.is_main:
        return {}

    plot_history(trainer.out_dir / "scorer_loss.csv", out_dir / "scorer_loss.png", ("loss", "acc"),
                 "scorer training (per step)")
    plot_validation(out_dir / "scorer_val.csv", out_dir / "scorer_val.png")
    best = trainer.best
    scorer.load_state_dict(read_state_dict(out_dir / "scorer.pth", "scorer checkpoint"))
    metrics = {
        "checkpoint": str(out_dir / "scorer.pth"),
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "best_val_acc": best["val_acc"],
        "val_loss_per_scale": best["loss_per_scale"],
        "val_acc_per_scale": best["acc_per_scale"],
        "trained_scales": trainer.trained_scales.tolist(),
        "loss": train_cfg.loss,
        "num_params": num_params(scorer),
        "steps": trainer.step,
        "steps_per_epoch": trainer.steps_per_epoch,
        "train_pairs_per_epoch": trainer.pairs_per_epoch,
        "val_pairs": len(val_pairs[0]),
        "real_maps": {"train": sum(len(v) for v in real_train.values()),
                      "val": sum(len(v) for v in real_val.values())},
        "generated_maps": {"train": sum(len(v) for v in gen_train.values()),
                           "val": sum(len(v) for v in gen_val.values())},
        "e_k_precomputed": precompute,
        "seconds_this_run": round(time.time() - t0, 1),
        "scorer_config": asdict(scorer_cfg),
        "train_config": asdict(train_cfg),
    }
    write_json(metrics, out_dir / "scorer_metrics.json")
    log(f"scorer: best epoch {best['epoch']} val loss {best['val_loss']:.4f} acc {best['val_acc']:.3f} "
        f"-> {out_dir / 'scorer.pth'}")
    return metrics


__all__ = ["ScorerTrainConfig", "LOSSES", "pair_loss", "cosine_lr", "token_arrays", "split_per_class", "make_pairs",
           "sample_all_pairs",
           "InputBank", "score_pairs", "evaluate", "ScorerTrainer", "plot_validation", "train_scorer"]
