"""What the paper measures besides sample quality: the scorer's behaviour (Figures 5 and 7, Table 10)
and the cost of LSRS as M grows (Figure 6).

Scorer analysis scores the held-out maps of the scorer's own validation split (the same per-class
split its training used), real and generated, at every scale: per-scale validation loss and
accuracy come from training, and here we add the score distributions themselves, the mean gap
(mean real score - mean generated score) and the KL divergence between the two histograms.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lsrs.pipeline.context import StageContext
from lsrs.models.scorer import make_input
from lsrs.pipeline.family import FamilySetup
from lsrs.pipeline.params import Params
from lsrs.pipeline.scorers import load_scorer_from, lsrs_plan, scorer_replicates
from lsrs.sampling.images import sample_images
from lsrs.sampling.plan import make_selector
from lsrs.sampling.rejection import schedule_from
from lsrs.sampling.sampler import generate
from lsrs.tokens.store import TokenStore
from lsrs.training.pairs import split_per_class


@torch.no_grad()
def map_scores(scorer, input_fn, tokens: torch.Tensor, labels: torch.Tensor, patch_nums, batch_size: int = 256
               ) -> torch.Tensor:
    """Scores (N, K) of N whole token maps at every scale."""
    from lsrs.training.trainers import split_scales

    k = len(patch_nums)
    out = []
    for start in tqdm(range(0, len(tokens), batch_size), desc="score maps", unit="batch", leave=False):
        x = input_fn.all_scales(split_scales(tokens[start:start + batch_size], patch_nums))  # (B, K, C, S, S)
        b = x.shape[0]
        lab = labels[start:start + batch_size].long().repeat_interleave(k)
        sc = torch.arange(k).repeat(b)
        out.append(scorer(x.flatten(0, 1), lab, sc).view(b, k))
    return torch.cat(out)


def histogram_kl(a: np.ndarray, b: np.ndarray, bins: int, eps: float = 1e-6) -> tuple[float, np.ndarray, np.ndarray,
                                                                                          np.ndarray]:
    """KL(P_a || P_b) between histograms of a and b on shared bins (eps-smoothed); also the bins and densities."""
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=bins)
    pa = np.histogram(a, edges)[0].astype(np.float64) + eps
    pb = np.histogram(b, edges)[0].astype(np.float64) + eps
    pa, pb = pa / pa.sum(), pb / pb.sum()
    return float(np.sum(pa * np.log(pa / pb))), edges, pa, pb


def analyse_scorer(ctx: StageContext, name: str) -> dict:
    """Per-scale accuracy/loss (from training) and score statistics of real vs generated held-out maps."""
    params, fs, log = ctx.params, ctx.family, ctx.log
    run, layout = fs.scorer(name), fs.layout
    vae = fs.family.load_tokenizer(layout.tokenizer)
    folders = scorer_replicates(layout.scorer(name))
    folder = folders[0]  # histograms and selection scores: replicate 0 (seed scorer.train.seed)
    scorer = load_scorer_from(folder)
    input_fn = make_input(scorer.cfg.input_kind, vae, scorer.cfg.input_size)
    cfg = fs.scorer_train
    scores = {}
    for stream, (kind, store_dir) in enumerate((("real", layout.real_tokens),
                                                ("generated", layout.generated_tokens(run.var)))):
        store = TokenStore.open(store_dir)
        labels = torch.from_numpy(np.asarray(store.labels, dtype=np.int64))
        _, val = split_per_class(labels, cfg.val_fraction, cfg.seed, stream=stream)
        idx = torch.cat([v for _, v in sorted(val.items())])
        tokens = torch.from_numpy(np.asarray(store.tokens[idx.numpy()], dtype=np.int64))
        scores[kind] = map_scores(scorer, input_fn, tokens, labels[idx], vae.cfg.patch_nums).numpy()
    accs = [_replicate_metrics(f) for f in folders]
    trained = accs[0]
    selected = selection_scores(params, fs, folder, vae, run.var) if name == params.lsrs.scorer else None
    per_scale = []
    for si in range(len(vae.cfg.patch_nums)):
        r, g = scores["real"][:, si], scores["generated"][:, si]
        kl, edges, pr, pg = histogram_kl(r, g, params.ablations.analysis_bins)
        rep_acc = [a["val_acc_per_scale"][si] for a in accs if a]
        per_scale.append({"scale": si + 1, "val_acc": trained["val_acc_per_scale"][si] if trained else None,
                          "val_loss": trained["val_loss_per_scale"][si] if trained else None,
                          "val_acc_replicates": rep_acc, "mean_real": float(r.mean()),
                          "mean_generated": float(g.mean()), "gap": float(r.mean() - g.mean()), "kl": kl,
                          "std_real": float(r.std()), "std_generated": float(g.std()),
                          "bin_edges": edges.tolist(), "hist_real": pr.tolist(), "hist_generated": pg.tolist()})
        if selected is not None and selected[si] is not None:
            sel, draw = selected[si]
            per_scale[-1].update(mean_selected=float(sel.mean()), std_selected=float(sel.std()),
                                 mean_plain_draw=float(draw.mean()), std_plain_draw=float(draw.std()),
                                 selected_above_real_median=float((sel > np.median(r)).mean()))
        log(f"scorer {name} scale {si + 1}: acc {per_scale[-1]['val_acc']:.3f} gap {per_scale[-1]['gap']:.3f} "
            f"KL {kl:.3f}")
    return {"scorer": name, "var": run.var, "loss": run.loss, "without_first_scale": run.without_first_scale,
            "real_maps": len(scores["real"]), "generated_maps": len(scores["generated"]), "per_scale": per_scale}


def _replicate_metrics(folder: Path) -> dict | None:
    path = Path(folder) / "scorer_metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


@torch.no_grad()
def selection_scores(params: Params, fs: FamilySetup, scorer_dir, vae, var_name: str) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per scale, the scores of the candidates LSRS selects and of the plain draw at the same prefix
    (candidate 0 is the plain sampler's draw), for `ablations.analysis_images` LSRS images at the main M/ST on the
    'preview' stream (never the evaluation draws); None at scales LSRS does not touch. Next to the
    real held-out maps' scores this shows whether selection pushes maps past the real ones
    (exploiting the scorer) or towards them."""
    var = fs.family.load_model(fs.layout.var(var_name), vae)
    schedule = params.schedule()
    plan = lsrs_plan(scorer_dir, vae, schedule, params.lsrs.selection)
    per_scale: list[list] = [[] for _ in schedule]
    bs, n_images = params.sampling.batch_size, params.ablations.analysis_images
    for start in tqdm(range(0, n_images, bs), desc="selection scores", unit="batch", leave=False):
        ids = torch.arange(start, min(start + bs, n_images))
        sel = make_selector(params.sampling, ids, params.ablations.grids.seed, plan, stream="preview")
        sel.keep_scores = True
        generate(var, vae, ids % var.cfg.num_classes, sel, cfg=params.sampling.cfg, decode=False)
        for si, (s, pick) in enumerate(zip(sel.scores, sel.picks)):  # one entry per scale, None where m = 1
            if s is not None:
                per_scale[si].append((s.gather(1, pick[:, None]).squeeze(1), s[:, 0]))
    return [None if not parts else (torch.cat([c for c, _ in parts]).numpy(), torch.cat([d for _, d in parts]).numpy())
            for parts in per_scale]


def _peak_memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM, the peak resident set size


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_cost(ctx: StageContext, device: str | None = None) -> list[dict]:
    """Figure 6: for each M of ablations.cost, the mean wall time (over `repeats`) and peak memory of
    generating one batch of `batch_size` images with CFG by LSRS (M = 1: plain VAR), on `device`
    (default: runtime.device, with runtime.precision). On the CPU the peak is the process's resident
    set (VmHWM, reset before each M), on CUDA the allocator's peak. One process measures (rank 0 of
    a torchrun job; the others return None)."""
    import dataclasses


    params, fs, rt, log = ctx.params, ctx.family, ctx.runtime, ctx.log
    c = params.ablations.cost
    if not rt.is_main:
        return None
    rt = dataclasses.replace(rt, rank=0, world=1, device=torch.device(device) if device else rt.device)
    dev = rt.device
    layout = fs.layout
    vae = fs.family.load_tokenizer(layout.tokenizer).to(dev)
    var = fs.family.load_model(layout.var(params.var.main), vae).to(dev)
    k = len(vae.cfg.patch_nums)
    labels = torch.arange(c.batch_size) % var.cfg.num_classes
    rows = []
    sample_images(var, vae, labels, params.sampling, 0, c.batch_size, progress=False, runtime=rt)  # warm-up
    for m in tqdm(c.M, desc="cost vs M", unit="M"):
        plan = None if m == 1 else lsrs_plan(layout.scorer(params.lsrs.scorer), vae,
                                               schedule_from(m, c.ST, k))
        _peak_memory_reset(dev)
        times = []
        for rep in range(c.repeats):
            t0 = time.perf_counter()
            sample_images(var, vae, labels, params.sampling, rep, c.batch_size, progress=False, plan=plan,
                            runtime=rt)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - t0)
        rows.append({"M": m, "ST": c.ST, "batch_size": c.batch_size, "seconds": float(np.mean(times)),
                     "seconds_std": float(np.std(times)), "peak_memory_mib": _peak_memory_mib(dev),
                     "device": str(dev), "autocast": rt.precision, "repeats": c.repeats})
        log(f"cost M={m}: {rows[-1]['seconds']:.2f} s per batch of {c.batch_size}, "
            f"peak {rows[-1]['peak_memory_mib']:.0f} MiB")
    base = rows[0]["seconds"] if rows and rows[0]["M"] == 1 else None
    for r in rows:
        r["relative_time"] = r["seconds"] / base if base else None
    return rows
