"""Training loops for the mini profile: the multi-scale VQ-VAE and the VAR transformer.

Both loops share one skeleton (`_Trainer`): a step-indexed data order derived from the seed (so a
resumed run sees exactly the batches an uninterrupted one would), a warm-up + decay learning-rate
schedule, gradient clipping, a tqdm bar, periodic atomic snapshots, and a loss log written as CSV
and PNG. The final model is saved as a plain state dict in the official layout with a JSON config
beside it.

The VAR recipe follows the official one where it applies (AdamW betas (0.9, 0.95), weight decay
0.05 without decay on biases/gains/positions/scale_mul, linear warm-up from 0.005*peak, hold the
peak 5% of the rest then linear decay to `end_lr_ratio`*peak, grad clip 2, condition dropout 0.1).
The VQ-VAE recipe is ours (the official VAE training code is not public): pixel MSE plus the VQ
commitment/codebook loss, with restarts of codes unused for a while. The mini FlexVAE uses the same
recipe on its L2-normalised codes, with the VQ loss taken at every scale of its schedule (each scale
is quantised on its own at inference, so each must land near the codebook).
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lsrs.core.checkpoint import atomic_save, atomic_write_text, config_to_json
from lsrs.data.fashion_mnist import ImageSet
from lsrs.models import VAR, VQVAE, FlexVAE, TokenizerConfig, TransformerConfig


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule settings shared by both loops."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3  # peak learning rate (official VAR: 1e-4 * global_batch / 256)
    warmup_steps: int = 50
    end_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 2.0
    checkpoint_every: int = 200
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.end_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ValueError("lr must be > 0, end_lr_ratio in [0, 1], warmup_steps >= 0")


def lr_at(step: int, cfg: OptimConfig) -> float:
    """Official `lin0` shape: linear warm-up from 0.005*peak, hold 5% of the rest, linear decay."""
    peak = cfg.lr
    if step < cfg.warmup_steps:
        return peak * (0.005 + 0.995 * step / cfg.warmup_steps)
    rest = max(cfg.steps - cfg.warmup_steps, 1)
    frac = (step - cfg.warmup_steps) / rest
    if frac < 0.05:
        return peak
    return peak * (1 - (1 - cfg.end_lr_ratio) * (frac - 0.05) / 0.95)


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """Indices of the batch at `step`: epoch-wise permutations drawn from (seed, epoch) only."""
    per_epoch = max(n // batch_size, 1)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return perm[pos * batch_size:(pos + 1) * batch_size]


def _no_decay(name: str, p: torch.Tensor) -> bool:
    keys = ("pos_start", "pos_1LC", "lvl_embed", "scale_mul", "gamma", "beta")
    return p.ndim <= 1 or name.endswith("bias") or any(k in name for k in keys)


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if _no_decay(name, p) else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


class _Trainer:
    """The shared loop. Subclasses give `loss(step) -> (loss, logs)` and the final artefacts."""

    name = "model"

    def __init__(self, model: nn.Module, optim_cfg: OptimConfig, out_dir: Path, log: Callable[[str], None]):
        self.model, self.cfg, self.out_dir, self.log = model, optim_cfg, Path(out_dir), log
        self.opt = make_optimizer(model, optim_cfg)
        self.history: list[dict] = []
        self.step = 0

    @property
    def snapshot_path(self) -> Path:
        return self.out_dir / f"{self.name}.train.pth"

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def snapshot_extra(self) -> dict:
        return {}

    def restore_extra(self, extra: dict) -> None:
        pass

    def save_snapshot(self) -> None:
        atomic_save({"model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                     "history": self.history, "rng": torch.get_rng_state(), "extra": self.snapshot_extra()},
                    self.snapshot_path)
        self.write_history()

    def try_resume(self) -> bool:
        if not self.snapshot_path.is_file():
            return False
        snap = torch.load(self.snapshot_path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(snap["model"])
        self.opt.load_state_dict(snap["opt"])
        self.step, self.history = snap["step"], snap["history"]
        torch.set_rng_state(snap["rng"])
        self.restore_extra(snap["extra"])
        self.log(f"resuming {self.name} training from step {self.step}/{self.cfg.steps}")
        return True

    def write_history(self) -> None:
        if not self.history:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.history[0]))
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(buf.getvalue(), self.out_dir / f"{self.name}_loss.csv")

    def fit(self) -> None:
        self.model.train()
        self.try_resume()
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc=f"train {self.name}", unit="step")
        while self.step < self.cfg.steps:
            lr = lr_at(self.step, self.cfg)
            for group in self.opt.param_groups:
                group["lr"] = lr
            loss, logs = self.loss(self.step)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.opt.step()
            self.after_step(self.step)
            self.step += 1
            row = {"step": self.step, "lr": lr, "loss": loss.item(), "grad_norm": float(grad_norm), **logs}
            self.history.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if self.step % self.cfg.checkpoint_every == 0 or self.step == self.cfg.steps:
                self.save_snapshot()
        bar.close()
        self.model.eval()

    def after_step(self, step: int) -> None:
        pass


# --------------------------------------------------------------------------- tokenizer
@dataclass(frozen=True)
class TokenizerTrainConfig:
    optim: OptimConfig = OptimConfig()
    restart_every: int = 100  # re-initialise codes not used in this many steps (0: never)


class TokenizerTrainer(_Trainer):
    name = "tokenizer"

    def __init__(self, vae: VQVAE, data: ImageSet, cfg: TokenizerTrainConfig, out_dir: Path, log=print):
        super().__init__(vae, cfg.optim, out_dir, log)
        self.vae, self.data, self.tcfg = vae, data, cfg
        self.window_hits = torch.zeros(vae.quantize.embedding.num_embeddings)
        self._last_f: torch.Tensor | None = None

    def loss(self, step):
        idx = batch_indices(step, len(self.data), self.cfg.batch_size, self.cfg.seed)
        x = self.data.as_float(idx)
        f = self.vae.encode(x)
        f_hat, vq_loss, hits = self.vae.quantize.training_forward(f)
        rec = self.vae.decode_raw(f_hat)
        rec_loss = F.mse_loss(rec, x)
        with torch.no_grad():
            q = self.vae.quantize
            q.ema_vocab_hit_SV.mul_(0.99).add_(hits * 0.01)
            self.window_hits += hits.sum(0)
            self._last_f = f.detach()
        used = int((hits.sum(0) > 0).sum())
        return rec_loss + vq_loss, {"rec_mse": rec_loss.item(), "vq_loss": vq_loss.item(), "codes_used": used}

    @torch.no_grad()
    def after_step(self, step):
        every = self.tcfg.restart_every
        if every and (step + 1) % every == 0:
            dead = (self.window_hits == 0).nonzero().flatten()
            if len(dead) and self._last_f is not None:
                pool = self._last_f.permute(0, 2, 3, 1).reshape(-1, self._last_f.shape[1])
                pick = torch.randint(len(pool), (len(dead),))
                self.vae.quantize.embedding.weight[dead] = pool[pick] + 0.01 * torch.randn(len(dead), pool.shape[1])
            self.window_hits.zero_()

    def snapshot_extra(self):
        return {"window_hits": self.window_hits}

    def restore_extra(self, extra):
        self.window_hits = extra["window_hits"]


@dataclass(frozen=True)
class FlexVAETrainConfig:
    optim: OptimConfig = OptimConfig()
    restart_every: int = 100  # re-initialise codes not used in this many steps (0: never)
    commit_weight: float = 0.25  # beta of the commitment term (LlamaGen's)


class FlexVAETrainer(TokenizerTrainer):
    """The mini FlexVAE: decode the straight-through codes of the last scale; VQ loss at every scale."""

    name = "flexvae"

    def __init__(self, vae: FlexVAE, data: ImageSet, cfg: FlexVAETrainConfig, patch_nums: tuple[int, ...],
                 out_dir: Path, log=print):
        super().__init__(vae, data, cfg, out_dir, log)
        self.patch_nums = tuple(patch_nums)

    def loss(self, step):
        idx = batch_indices(step, len(self.data), self.cfg.batch_size, self.cfg.seed)
        x = self.data.as_float(idx)
        h = self.vae.encode(x)
        vq_loss, hits = h.new_zeros(()), torch.zeros_like(self.window_hits)
        for pn in self.patch_nums:
            z = F.normalize(self.vae.downsample(h, pn), dim=1)
            with torch.no_grad():
                ids = self.vae.quantize_map(z)
            codes = self.vae.codes(ids, pn)  # unit-norm: gradients reach the codebook through the norm
            vq_loss = vq_loss + F.mse_loss(codes, z.detach()) + self.tcfg.commit_weight * F.mse_loss(z, codes.detach())
            hits += torch.bincount(ids.flatten(), minlength=len(hits)).float()
        rec = self.vae.decode(z + (codes - z).detach())  # the last scale, straight-through
        rec_loss = F.mse_loss(rec, x)
        with torch.no_grad():
            self.window_hits += hits
            self._last_f = h.detach()
        vq_loss = vq_loss / len(self.patch_nums)
        return rec_loss + vq_loss, {"rec_mse": rec_loss.item(), "vq_loss": vq_loss.item(),
                                    "codes_used": int((hits > 0).sum())}


@torch.no_grad()
def tokenizer_quality(vae: VQVAE | FlexVAE, data: ImageSet, batch_size: int = 500,
                      patch_nums: tuple[int, ...] | None = None) -> dict:
    """Reconstruction MSE (pixels in [-1, 1] and in [0, 1]) and codebook usage per scale on `data`;
    a FlexVAE is read over the schedule `patch_nums` and decodes from its last scale."""
    vae.eval()
    scales = patch_nums or vae.cfg.patch_nums
    vocab = vae.quantize.embedding.num_embeddings
    sq, n = 0.0, 0
    used = torch.zeros(len(scales), vocab, dtype=torch.bool)
    for start in tqdm(range(0, len(data), batch_size), desc="tokenizer quality", unit="batch", leave=False):
        x = data.as_float(slice(start, start + batch_size))
        if patch_nums is None:
            idx, fhats = vae.quantize.quantize(vae.encode(x))
            rec = vae.fhat_to_img(fhats[-1])
        else:
            idx = vae.img_to_idx(x, patch_nums)
            rec = vae.decode_idx(idx[-1], patch_nums[-1])
        sq += float(F.mse_loss(rec, x, reduction="sum"))
        n += x.numel()
        for si, t in enumerate(idx):
            used[si, t.flatten()] = True
    mse = sq / n
    return {"images": len(data), "mse_pm1": mse, "mse_01": mse / 4, "psnr_db_01": 10 * math.log10(4 / mse),
            "codes_used_total": int(used.any(0).sum()), "vocab_size": vocab, "codes_used_per_scale": used.sum(1).tolist()}


# --------------------------------------------------------------------------- VAR
@dataclass(frozen=True)
class VarTrainConfig:
    optim: OptimConfig = OptimConfig(batch_size=128, lr=1e-3, weight_decay=0.05)
    gamma_init: float = 1e-3  # official alng for d16/d20


@torch.no_grad()
def encode_tokens(vae: VQVAE | FlexVAE, data: ImageSet, batch_size: int = 500, desc: str = "encode tokens",
                  patch_nums: tuple[int, ...] | None = None) -> torch.Tensor:
    """All images to their concatenated multi-scale token maps (N, L) int16/int32 (a FlexVAE over `patch_nums`)."""
    vae.eval()
    out = []
    for start in tqdm(range(0, len(data), batch_size), desc=desc, unit="batch", leave=False):
        x = data.as_float(slice(start, start + batch_size))
        out.append(torch.cat(vae.img_to_idx(x) if patch_nums is None else vae.img_to_idx(x, patch_nums), 1))
    return torch.cat(out).to(torch.int16 if vae.quantize.embedding.num_embeddings <= 32767 else torch.int32)


def split_scales(tokens: torch.Tensor, patch_nums: tuple[int, ...]) -> list[torch.Tensor]:
    return list(tokens.long().split([pn * pn for pn in patch_nums], dim=1))


def teacher_forcing(vae: VQVAE | FlexVAE, idx_list: list[torch.Tensor], patch_nums: tuple[int, ...]) -> torch.Tensor:
    """The transformer inputs of scales 2..K from ground-truth maps: VAR's residual f_hat path, or
    FlexVAE's upsampled codes of the previous scale."""
    if isinstance(vae, FlexVAE):
        return vae.teacher_forcing_input(idx_list, patch_nums)
    return vae.quantize.teacher_forcing_input(idx_list)


class VarTrainer(_Trainer):
    """Teacher-forced next-scale training of a VAR, or of a FlexVAR on its FlexVAE's maps (one schedule)."""

    name = "var"

    def __init__(self, var: VAR, vae: VQVAE | FlexVAE, tokens: torch.Tensor, labels: torch.Tensor,
                 cfg: VarTrainConfig, out_dir: Path, log=print):
        super().__init__(var, cfg.optim, out_dir, log)
        self.var, self.vae, self.tokens, self.labels = var, vae.eval(), tokens, labels

    def loss(self, step):
        idx = batch_indices(step, len(self.tokens), self.cfg.batch_size, self.cfg.seed)
        target = self.tokens[idx].long()
        pns = self.var.cfg.patch_nums
        with torch.no_grad():
            x = teacher_forcing(self.vae, split_scales(target, pns), pns)
        logits = self.var(self.labels[idx], x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        return loss, {}


@torch.no_grad()
def var_validation(var: VAR, vae: VQVAE, tokens: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> dict:
    """Teacher-forced cross-entropy and token accuracy per scale, labels kept (no dropout)."""
    var.eval()
    ce = torch.zeros(len(var.cfg.patch_nums))
    acc = torch.zeros(len(var.cfg.patch_nums))
    for start in range(0, len(tokens), batch_size):
        target = tokens[start:start + batch_size].long()
        x = teacher_forcing(vae, split_scales(target, var.cfg.patch_nums), var.cfg.patch_nums)
        logits = var(labels[start:start + batch_size], x, drop_labels=False)
        for si, (b, e) in enumerate(var.cfg.begin_ends):
            lg, tg = logits[:, b:e].reshape(-1, logits.shape[-1]), target[:, b:e].reshape(-1)
            ce[si] += F.cross_entropy(lg, tg, reduction="sum") / (e - b)
            acc[si] += (lg.argmax(-1) == tg).float().sum() / (e - b)
    n = len(tokens)
    weights = torch.tensor([pn * pn for pn in var.cfg.patch_nums], dtype=torch.float)
    return {"tokens": n, "ce_per_scale": (ce / n).tolist(), "acc_per_scale": (acc / n).tolist(),
            "ce_mean": float((ce / n * weights).sum() / weights.sum())}


def fit_next_scale(var: VAR, vae: VQVAE | FlexVAE, train: tuple[torch.Tensor, torch.Tensor],
                   test: tuple[torch.Tensor, torch.Tensor], cfg: VarTrainConfig, out_dir: Path, name: str,
                   log: Callable[[str], None] = print) -> dict:
    """Train a VAR or FlexVAR on (tokens, labels), validate it on the test maps and write `name`.pth/.json,
    `name`_metrics.json and the loss plot; returns the validation metrics."""
    kind = type(var).__name__
    log(f"{kind} depth {var.cfg.depth} width {var.cfg.embed_dim}: {sum(p.numel() for p in var.parameters()):,} "
        f"parameters")
    t0 = time.time()
    VarTrainer(var, vae, *train, cfg, out_dir, log).fit()
    metrics = var_validation(var, vae, *test)
    metrics["train_seconds_this_run"] = time.time() - t0
    save_model(var, var.cfg, out_dir, name)
    write_json(metrics, Path(out_dir) / f"{name}_metrics.json")
    plot_history(Path(out_dir) / "var_loss.csv", Path(out_dir) / f"{name}_loss.png", ("loss", "grad_norm"),
                 f"mini {kind} d{var.cfg.depth} training")
    log(f"{kind}: test cross-entropy {metrics['ce_mean']:.4f}")
    return metrics


def save_model(model: nn.Module, cfg, out_dir: Path, name: str) -> Path:
    """Final artefacts: `name.pth` (plain state dict, official layout) and `name.json` (its config)."""
    path = Path(out_dir) / f"{name}.pth"
    atomic_save(model.state_dict(), path)
    atomic_write_text(config_to_json(cfg), Path(out_dir) / f"{name}.json")
    return path


def plot_history(csv_path: Path, png_path: Path, columns: tuple[str, ...], title: str) -> None:
    """Loss curves as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(csv_path)
    cols = [c for c in columns if c in df]
    fig, axes = plt.subplots(1, len(cols), figsize=(4.5 * len(cols), 3.2), squeeze=False)
    for ax, col in zip(axes[0], cols):
        ax.plot(df["step"], df[col], lw=0.6, alpha=0.4, color="C0", label="per step")
        ax.plot(df["step"], df[col].rolling(25, min_periods=1).mean(), color="C0", label="moving mean (25)")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(col)
        ax.set_yscale("log" if (df[col] > 0).all() else "linear")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def write_json(obj: dict, path: Path) -> None:
    atomic_write_text(json.dumps(obj, indent=2), path)
