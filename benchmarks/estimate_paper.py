"""GPU-hours of every DVC stage of the paper profile at paper scale, from FLOP counts and measured costs.

    python benchmarks/estimate_paper.py [--params params-imagenet.yaml] [--gpu-name A100-80GB]
        [--peak-tflops 312] [--mfu-matmul 0.7] [--mfu-sampling X] [--mfu-conv 0.4] [--mfu-train 0.15]
        [--lsrs-overhead 0.15] [--skip-measure]

Why: the paper profile cannot be run on the development machine, and its size is set by a few
numbers of the params file (images per class, VAR depths, sweep families). This script turns those
numbers into work (FLOPs) and the work into time, with every assumption printed above the table, so
that a reader can see which number drives the total and rerun it with their own GPU figures.

What is counted (per stage of dvc.yaml):
* FLOPs come from `torch.utils.flop_counter.FlopCounterMode` over our own modules built on the meta
  device (no weights, no memory): one KV-cached generation of `lsrs.sampling.sampler.generate` with CFG
  (batch 1 -> 2 rows) per VAR depth; VQ-VAE encode + multi-scale quantization at 256 px; VQ-VAE
  decode; the LSRS scorer (paper preset) on one 32x16x16 map; one Phi contribution; the scorer input
  e_k of one whole map; torch-fidelity's Inception-v3 on one image (resized to 299 inside).
  Only matmuls, convolutions and attention are counted: top-k/top-p filtering, sorting, RNG and
  elementwise ops add time but no counted FLOPs; the efficiencies below absorb them.
* Time = FLOPs / (peak x efficiency). Efficiencies per kind of work:
  - sampling (VAR transformer with KV cache): `--mfu-matmul` x the ratio measured on this CPU between
    the FLOP/s of a KV-cached generation (depth 2, official width 1024 = VAR-d16's, vocabulary 4096,
    10 scales, batch 2, CFG, top-k/top-p) and a plain matmul of the size of its largest FFN matmul;
    or `--mfu-sampling` when given;
  - conv (VQ-VAE encoder/decoder, Inception): `--mfu-conv`, assumed;
  - train (scorer training and validation, incl. building e_k): `--mfu-train`, assumed;
  - lsrs (M candidates per scale: e_k and scorer): calibrated on the paper's own measurement, Table 1
    (VAR-d30, ST = 2: M = 128 takes 1.15x the time of plain VAR-d30), because candidate drawing and
    scoring are far more expensive in time than in counted FLOPs.
Nothing else is counted (see the "Not counted" lines of the output).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

IMAGENET_TRAIN_IMAGES = 1_281_167  # ILSVRC2012 train split, 1000 classes
ADM_REFERENCE_IMAGES = 10_000  # VIRTUAL_imagenet256_labeled.npz: its images are featurized (P/R), mu/sigma stored
# Paper Table 4 / Table 1: inference time relative to plain VAR-d30 (ST = 2); a cross-check of the model.
PAPER_RELATIVE_TIME = {16: (0.20, 0.21, 0.30), 20: (0.30, 0.31, 0.41), 24: (0.50, 0.51, 0.62),
                       30: (1.00, 1.01, 1.15)}  # depth: (plain, M = 4, M = 128)


# --------------------------------------------------------------------------- what the params ask for
@dataclass(frozen=True)
class EvalRun:
    """One set of generated images: which VAR, the LSRS schedule m_1..m_K (all ones: plain VAR)."""

    var: str
    schedule: tuple[int, ...]
    images: int


@dataclass(frozen=True)
class Plan:
    """The numbers of a params file that decide the amount of work, nothing else."""

    source: str
    num_classes: int
    depths: dict  # var name -> depth
    real_images: int
    generated_per_class: int
    scorer_runs: dict  # name -> (var name, without_first_scale)
    scorer_train: dict  # epochs, batch_size, val_fraction, pairs_per_class, val_pairs_per_class, precompute_max_gb
    reference_images: int
    reference_note: str
    baseline: EvalRun
    main: EvalRun
    sweeps: dict  # family -> list[EvalRun]
    small: dict  # stage -> list[EvalRun] (cost, grids: no Inception)


def pick(raw: dict, key: str, default):
    """raw["a"]["b"]... for key "a.b...", or default when any level is missing or null."""
    cur = raw
    for part in key.split("."):
        if not isinstance(cur, dict) or cur.get(part) is None:
            return default
        cur = cur[part]
    return cur


def load_raw(path: Path) -> tuple[dict, str]:
    """(params as a plain dict, where it came from), validated by lsrs.pipeline.params like every stage does."""
    from lsrs.pipeline.params import load_params

    return dataclasses.asdict(load_params(path)), f"{path} (validated by lsrs.pipeline.params.load_params)"


def sweep_configs(raw: dict) -> dict:
    """ablations.sweeps as lsrs SweepConfigs, ignoring keys SweepConfig does not know."""
    from lsrs.pipeline.sweep_config import SweepConfig

    known = {f.name for f in dataclasses.fields(SweepConfig)}
    out = {}
    for name, sw in (pick(raw, "ablations.sweeps", {}) or {}).items():
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in sw.items() if k in known and v is not None}
        out[name] = SweepConfig(**fields)
    return out


def build_plan(raw: dict, source: str, num_scales: int) -> Plan:
    """The work a params dict implies, with the pipeline's own rules (lsrs.pipeline.sweep_config.sweep_runs)."""
    from lsrs.pipeline.sweep_config import sweep_runs
    from lsrs.sampling.rejection import schedule_from

    classes = int(pick(raw, "var.model.num_classes", 1000))
    depths = {name: int(shape["depth"]) for name, shape in pick(raw, "var.depths", {}).items()}
    main = pick(raw, "var.main", None) or list(depths)[-1]
    per_class_real = pick(raw, "tokens.real_per_class", None)
    avg_real = IMAGENET_TRAIN_IMAGES / 1000
    real = round(classes * (min(per_class_real, avg_real) if per_class_real else avg_real))
    runs = {name: (r["var"], bool(r.get("without_first_scale", False)))
            for name, r in pick(raw, "scorer.runs", {}).items()}
    main_scorer = pick(raw, "lsrs.scorer", None) or next(iter(runs))
    train = {k: pick(raw, f"scorer.train.{k}", v) for k, v in
             dict(epochs=4, batch_size=128, val_fraction=0.1, pairs_per_class=None, val_pairs_per_class=None,
                  precompute_max_gb=2.0).items()}
    plain = (1,) * num_scales
    n_eval = classes * int(pick(raw, "evaluation.per_class", 50))
    explicit = pick(raw, "lsrs.schedule", None)
    main_sched = tuple(explicit) if explicit else schedule_from(int(pick(raw, "M", 32)), int(pick(raw, "ST", 2)),
                                                                num_scales)
    ref_batch = pick(raw, "evaluation.reference_batch", None)
    if ref_batch:
        ref_images, ref_note = ADM_REFERENCE_IMAGES, f"ADM reference batch {Path(ref_batch).name} (stored mu/sigma)"
    else:
        count = pick(raw, "evaluation.reference_count", None)
        ref_images = min(count, IMAGENET_TRAIN_IMAGES) if count else IMAGENET_TRAIN_IMAGES
        ref_note = "real ImageNet train images"
    n_sweep = classes * int(pick(raw, "ablations.per_class", 50))
    sweeps = {}
    for name, sw in sweep_configs(raw).items():
        planned = sweep_runs(sw, main_scorer, lambda s: runs[s][0])
        sweeps[name] = [EvalRun(r.var, r.schedule(num_scales), n_sweep) for r in planned]
    dataset = pick(raw, "data.dataset", "imagenet")
    if dataset != "imagenet":
        source += f" - WARNING: data.dataset is {dataset}; the counts assume ImageNet and the official models"
    return Plan(source=source, num_classes=classes, depths=depths, real_images=real,
                generated_per_class=int(pick(raw, "tokens.generated_per_class", 1000)), scorer_runs=runs,
                scorer_train=train, reference_images=ref_images, reference_note=ref_note,
                baseline=EvalRun(main, plain, n_eval), main=EvalRun(main, main_sched, n_eval), sweeps=sweeps,
                small=small_runs(raw, main, num_scales))


def small_runs(raw: dict, main: str, num_scales: int) -> dict:
    """Images of the `cost` (Figure 6: batch x M values x repeats, + one warm-up) and `grids` stages."""
    from lsrs.sampling.rejection import schedule_from

    cost, grids = pick(raw, "ablations.cost", {}), pick(raw, "ablations.grids", {})
    batch, repeats, st = cost.get("batch_size", 24), cost.get("repeats", 3), cost.get("ST", 2)
    cost_runs = [EvalRun(main, schedule_from(m, st, num_scales), batch * (repeats + 1))
                 for m in cost.get("M", (1, 4, 16, 64, 256, 1024))]
    n = grids.get("images", 10)
    st_fixed, m_fixed = grids.get("ST_fixed", 2), grids.get("M_fixed", 32)
    grid_runs = [EvalRun(main, schedule_from(m, st_fixed, num_scales), n) for m in grids.get("M", (1, 4, 32, 256))]
    grid_runs += [EvalRun(main, schedule_from(m_fixed, min(s, num_scales), num_scales), n)
                  for s in grids.get("ST", (1, 2, 4, 7))]
    return {"cost": cost_runs, "grids": grid_runs}


# --------------------------------------------------------------------------- FLOP counts (meta device)
def counted(fn) -> float:
    """FLOPs that FlopCounterMode sees while fn() runs (matmul, conv, attention)."""
    fc = FlopCounterMode(display=False)
    with fc:
        fn()
    return float(fc.get_total_flops())


def _zero_tokens(step):
    """A selector that draws nothing: token choice adds no counted FLOPs, so any token map will do."""
    from lsrs.sampling.sampler import Choice

    b, l, _ = step.logits.shape
    return Choice(idx=torch.zeros(b, l, dtype=torch.long, device=step.logits.device))


def generation_flops(var_cfg, vae) -> float:
    """One image (batch 1, CFG doubles it to 2 rows), all scales, KV cache, no decode."""
    from lsrs.models import VAR
    from lsrs.sampling.sampler import generate

    with torch.device("meta"):
        var = VAR(var_cfg)
    labels = torch.zeros(1, dtype=torch.long, device="meta")
    return counted(lambda: generate(var, vae, labels, _zero_tokens, cfg=1.5, decode=False))


def inception_flops() -> tuple[float, str]:
    """torch-fidelity's Inception-v3 (the paper extractor) on one 256 px image, without its weights file."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):  # the architecture is all we count
            return None

    try:
        with tempfile.TemporaryDirectory() as d:
            empty = os.path.join(d, "empty.pth")
            torch.save({}, empty)
            with torch.device("meta"):
                net = Unloaded("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=empty)
        img = torch.zeros(1, 3, 256, 256, dtype=torch.uint8, device="meta")
        return counted(lambda: net(img)), "counted (torch-fidelity Inception-v3, 299 px)"
    except Exception as exc:  # noqa: BLE001
        return 11.5e9, f"published figure ~5.7 GMAC x 2 (could not count: {exc})"


@dataclass(frozen=True)
class UnitFlops:
    """FLOPs of the units every stage is made of."""

    generation: dict  # depth -> FLOPs of one image's token maps (with CFG)
    encode: float  # one 256 px image -> 10 token maps
    decode: float  # f_hat -> 256 px image
    inception: float
    inception_note: str
    scorer: float  # one scorer forward on one map
    phi: float  # one candidate's Phi(up(embed(r_k))) at the latent size
    e_k_all: float  # the scorer inputs of one whole map at every scale (training)
    num_scales: int
    scorer_input_bytes: int  # float32 e_k of one map at every scale


def count_units(depths) -> UnitFlops:
    from lsrs.models import VQVAE, TokenizerConfig, TransformerConfig
    from lsrs.models.scorer import Scorer, ScorerConfig

    tok, sc_cfg = TokenizerConfig(), ScorerConfig()
    with torch.device("meta"):
        vae, scorer = VQVAE(tok), Scorer(sc_cfg).eval()
    meta = dict(device="meta")
    size, k = tok.latent_size, len(tok.patch_nums)
    img = torch.zeros(1, 3, 256, 256, **meta)
    f_hat = torch.zeros(1, tok.z_channels, size, size, **meta)
    one = torch.zeros(1, dtype=torch.long, **meta)
    maps = [torch.zeros(1, pn * pn, dtype=torch.long, **meta) for pn in tok.patch_nums]
    q = vae.quantize
    inc, note = inception_flops()
    return UnitFlops(
        generation={d: generation_flops(TransformerConfig(depth=d), vae) for d in sorted(set(depths))},
        encode=counted(lambda: vae.img_to_idx(img)),
        decode=counted(lambda: vae.fhat_to_img(f_hat)),
        inception=inc, inception_note=note,
        scorer=counted(lambda: scorer(torch.zeros(1, sc_cfg.in_channels, sc_cfg.input_size, sc_cfg.input_size,
                                                  **meta), one, one)),
        phi=counted(lambda: q.scale_contribution(1, q.codes_to_map(maps[1], tok.patch_nums[1]))),
        e_k_all=counted(lambda: q.idx_to_fhats(maps)),
        num_scales=k, scorer_input_bytes=k * sc_cfg.in_channels * sc_cfg.input_size ** 2 * 4)


def lsrs_flops(units: UnitFlops, schedule) -> float:
    """Extra FLOPs of LSRS per image: m_k candidates' e_k and scores at every scale with m_k > 1."""
    return sum(m * units.scorer + (m - 1) * units.phi for m in schedule if m > 1)


# --------------------------------------------------------------------------- CPU measurement
@dataclass(frozen=True)
class Probe:
    width: int
    batch: int
    gen_gflops: float
    gen_seconds: float
    mm_shape: tuple
    mm_gflops_per_s: float

    @property
    def ratio(self) -> float:
        return (self.gen_gflops / self.gen_seconds) / self.mm_gflops_per_s


def measure_sampling(width: int, batch: int, reps: int) -> Probe:
    """CPU FLOP/s of a real KV-cached generation vs a plain matmul of its largest FFN shape.

    Why: the sampling loop runs many small, shape-changing steps (10 scales, 1..256 tokens) plus
    vocabulary filtering and sampling that no FLOP counter sees; the ratio says what share of dense
    matmul speed such a loop keeps. Depth 2 keeps it within seconds; the width is VAR-d16's so that
    the matmuls have the paper models' shapes. Random N(0, 0.02) weights, as the other benchmarks.
    """
    from lsrs.models import TokenizerConfig, TransformerConfig, VAR
    from lsrs.models.tokenizer import MultiScaleQuantizer
    from lsrs.sampling.sampler import PerSampleRNG, TokenSampler, generate

    tok = TokenizerConfig()
    cfg = TransformerConfig(depth=2, width=width, num_heads=max(1, width // 64))
    vae = types.SimpleNamespace(cfg=tok, quantize=MultiScaleQuantizer(tok))  # generate needs only these
    var = VAR(cfg)
    C.normal_init_(var, vae.quantize)
    labels = torch.arange(batch)

    def run():
        sampler = TokenSampler(PerSampleRNG(0, list(range(batch))), top_k=900, top_p=0.96)
        generate(var, vae, labels, sampler, cfg=1.5, decode=False)

    run()  # warm-up
    seconds = min(C.timed(run) for _ in range(reps))
    with torch.device("meta"):
        meta_var = VAR(cfg)
        meta_vae = types.SimpleNamespace(cfg=tok, quantize=MultiScaleQuantizer(tok))
    gen_flops = counted(lambda: generate(meta_var, meta_vae, labels.to("meta"), _zero_tokens, cfg=1.5,
                                         decode=False))
    rows = 2 * batch * tok.patch_nums[-1] ** 2
    a, b = torch.randn(rows, width), torch.randn(width, 4 * width)
    torch.mm(a, b)
    mm_seconds = min(C.timed(lambda: torch.mm(a, b)) for _ in range(max(reps, 5)))
    return Probe(width, batch, gen_flops / 1e9, seconds, (rows, width, 4 * width),
                 2 * rows * width * 4 * width / mm_seconds / 1e9)


# --------------------------------------------------------------------------- time model
@dataclass(frozen=True)
class Efficiency:
    """Achieved fraction of the GPU peak per kind of work, and where each number comes from."""

    peak: float  # FLOP/s
    sampling: float
    conv: float
    train: float
    lsrs: float
    notes: dict

    def seconds(self, work: list[tuple[float, str]]) -> float:
        return sum(flops / (self.peak * getattr(self, kind)) for flops, kind in work)


def calibrate_lsrs(units: UnitFlops, eff_sampling: float, eff_conv: float, overhead: float, m: int,
                   num_scales: int) -> float:
    """Efficiency of the LSRS FLOPs such that VAR-d30 with M = m, ST = 2 takes (1 + overhead) x plain.

    Why: the paper measured this (Table 1: M = 128 -> 1.15x); the counted FLOPs of M scorer calls
    are ~1 % of a d30 image, the time is 15 %: candidate drawing and many small scorer calls dominate.
    Plain time = d30 generation + decode (the paper's 'inference time' of an image).
    """
    from lsrs.sampling.rejection import schedule_from

    plain = units.generation[30] / eff_sampling + units.decode / eff_conv  # in units of 1 / peak
    return lsrs_flops(units, schedule_from(m, 2, num_scales)) / (overhead * plain)


def image_work(units: UnitFlops, run: EvalRun, depths: dict, inception: bool = True) -> list[tuple[float, str]]:
    """(FLOPs, kind) of one evaluation image: tokens (+ LSRS), decode, and Inception features."""
    work = [(units.generation[depths[run.var]], "sampling"), (lsrs_flops(units, run.schedule), "lsrs"),
            (units.decode, "conv")]
    return work + ([(units.inception, "conv")] if inception else [])


def scorer_work(units: UnitFlops, plan: Plan, without_first: bool) -> tuple[int, list[tuple[float, str]], dict]:
    """(training steps, (FLOPs, kind) of the whole run, details), following lsrs.training.scorer.

    Per epoch: pairs_per_class (default max(#real, #generated) training maps of the class) pairs per
    class; each pair scores its real and its generated map at every trained scale (2 x T forwards,
    training ~ 3x forward); then every validation pair at all scales (forward only). e_k of a map
    is precomputed once when all fit in precompute_max_gb, else rebuilt for every use.
    """
    t = plan.scorer_train
    classes = plan.num_classes
    n_real, n_gen = plan.real_images / classes, plan.generated_per_class
    held = [min(max(round(t["val_fraction"] * n), 1), n - 1) if n >= 2 else 0 for n in (n_real, n_gen)]
    train_real, train_gen = n_real - held[0], n_gen - held[1]
    pairs = classes * (t["pairs_per_class"] or max(train_real, train_gen))
    val_pairs = classes * (t["val_pairs_per_class"] or max(held))
    steps = t["epochs"] * math.ceil(pairs / t["batch_size"])
    trained = units.num_scales - (1 if without_first else 0)
    maps = plan.real_images + plan.generated_per_class * classes
    cached = maps * units.scorer_input_bytes <= t["precompute_max_gb"] * 2 ** 30
    ek_builds = maps if cached else t["epochs"] * 2 * (pairs + val_pairs)
    work = [(t["epochs"] * pairs * 2 * trained * 3 * units.scorer, "train"),
            (t["epochs"] * val_pairs * 2 * units.num_scales * units.scorer, "train"),
            (ek_builds * units.e_k_all, "train")]
    return steps, work, {"pairs_per_epoch": pairs, "val_pairs": val_pairs, "e_k_cached": cached}


# --------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    stage: str
    count: int
    unit: str
    work: list  # (FLOPs, kind)

    def flops(self) -> float:
        return sum(f for f, _ in self.work)


def stage_rows(plan: Plan, units: UnitFlops) -> list[Row]:
    depths = plan.depths
    rows = [Row("extract", plan.real_images, "images", [(plan.real_images * units.encode, "conv")])]
    n_gen = plan.generated_per_class * plan.num_classes
    for name, d in depths.items():
        rows.append(Row(f"sample_tokens@{name}", n_gen, "images", [(n_gen * units.generation[d], "sampling")]))
    for name, (_, without_first) in plan.scorer_runs.items():
        steps, work, _ = scorer_work(units, plan, without_first)
        rows.append(Row(f"scorer@{name}", steps, "steps", work))
    rows.append(Row("reference", plan.reference_images, "images", [(plan.reference_images * units.inception, "conv")]))
    for stage, runs in (("baseline", [plan.baseline]), ("evaluate", [plan.main]),
                        *((f"sweep@{n}", r) for n, r in plan.sweeps.items())):
        rows.append(eval_row(stage, runs, units, depths, inception=True))
    for stage, runs in plan.small.items():
        rows.append(eval_row(stage, runs, units, depths, inception=False))
    return rows


def eval_row(stage: str, runs: list[EvalRun], units: UnitFlops, depths: dict, inception: bool) -> Row:
    work = [(r.images * f, kind) for r in runs for f, kind in image_work(units, r, depths, inception)]
    return Row(stage, sum(r.images for r in runs), "images", work)


# --------------------------------------------------------------------------- output
def fmt_count(n: int) -> str:
    return f"{n:,}"


def fmt_num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def markdown(rows: list[Row], eff: Efficiency, gpu: str) -> str:
    header = ["stage", "images or steps", "TFLOP per image/step", "total PFLOP", "efficiency",
              f"GPU-hours (1x {gpu})"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    total_flops = total_s = 0.0
    for r in rows:
        flops, seconds = r.flops(), eff.seconds(r.work)
        total_flops, total_s = total_flops + flops, total_s + seconds
        cells = [r.stage, f"{fmt_count(r.count)} {r.unit}", fmt_num(flops / r.count / 1e12), fmt_num(flops / 1e15),
                 f"{100 * flops / (eff.peak * seconds):.1f} %", fmt_num(seconds / 3600)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| " + " | ".join(["**total**", "", "", f"**{fmt_num(total_flops / 1e15)}**",
                                    f"{100 * total_flops / (eff.peak * total_s):.1f} %",
                                    f"**{fmt_num(total_s / 3600)}**"]) + " |")
    return "\n".join(lines)


def print_assumptions(plan: Plan, units: UnitFlops, eff: Efficiency, probe: Probe | None, args) -> None:
    g = units.generation
    print(f"Params: {plan.source}")
    print(f"Work: {plan.num_classes} classes; VARs {', '.join(f'{n}=d{d}' for n, d in plan.depths.items())}, "
          f"main {plan.main.var}; real maps {fmt_count(plan.real_images)}; generated "
          f"{plan.generated_per_class}/class; reference: {fmt_count(plan.reference_images)} images "
          f"({plan.reference_note}); main run schedule {list(plan.main.schedule)}; eval "
          f"{fmt_count(plan.main.images)} images/run; sweeps: "
          + (", ".join(f"{n} {len(r)} runs" for n, r in plan.sweeps.items()) or "none"))
    print("FLOPs per unit (FlopCounterMode on meta-device models; matmul/conv/attention only):")
    for d, f in g.items():
        print(f"  VAR-d{d} tokens of one image, CFG (2 rows), KV cache, 10 scales: {f / 1e12:.3f} TFLOP")
    print(f"  VQ-VAE encode + quantize, 256 px: {units.encode / 1e9:.1f} GFLOP | decode: {units.decode / 1e9:.1f} GFLOP"
          f" | Inception-v3: {units.inception / 1e9:.2f} GFLOP ({units.inception_note})")
    print(f"  scorer forward, one 32x16x16 map: {units.scorer / 1e6:.1f} MFLOP | Phi of one candidate: "
          f"{units.phi / 1e6:.2f} MFLOP | e_k of one map at all scales: {units.e_k_all / 1e6:.1f} MFLOP")
    print(f"GPU: {args.gpu_name}, peak {args.peak_tflops:g} TFLOP/s (dense bf16/fp16); time = FLOPs / (peak x "
          "efficiency):")
    for kind in ("sampling", "conv", "train", "lsrs"):
        print(f"  {kind:8s} {100 * getattr(eff, kind):6.2f} %  {eff.notes[kind]}")
    if probe:
        print(f"CPU probe ({C.cpu_model()}, {torch.get_num_threads()} thread(s)): KV-cached generation, depth 2, "
              f"width {probe.width}, batch {probe.batch} (+CFG), vocab 4096, 10 scales, top-k 900/top-p 0.96: "
              f"{probe.gen_gflops:.1f} GFLOP in {probe.gen_seconds:.3f} s = {probe.gen_gflops / probe.gen_seconds:.1f} "
              f"GFLOP/s; plain matmul {probe.mm_shape[0]}x{probe.mm_shape[1]} @ {probe.mm_shape[1]}x"
              f"{probe.mm_shape[2]}: {probe.mm_gflops_per_s:.1f} GFLOP/s; ratio {probe.ratio:.3f}")
    print("Cross-check, inference time relative to plain VAR-d30 (this model vs paper Table 1/4; tokens + decode):")
    from lsrs.sampling.rejection import schedule_from

    base = eff.seconds([(g[30], "sampling"), (units.decode, "conv")])
    for d, paper in PAPER_RELATIVE_TIME.items():
        if d not in g:
            continue
        ours = [eff.seconds(image_work(units, EvalRun("x", schedule_from(m, 2, units.num_scales), 1), {"x": d},
                                       inception=False)) / base for m in (1, 4, 128)]
        print(f"  d{d}: plain / M=4 / M=128 = {' / '.join(f'{x:.2f}' for x in ours)} "
              f"(paper {' / '.join(f'{x:.2f}' for x in paper)}); {base * ours[0]:.3f} s per image at these "
              "assumptions")
    print("Not counted: data loading and JPEG decoding, writing PNG/npz, FID/IS/P-R statistics (CPU), "
          "tokenizer/VAR training (the paper profile uses the official checkpoints), the mini-only evaluator, "
          "scorer_analysis and report (validation-sized passes, minutes), multi-GPU communication.")
    print()


def efficiencies(args, units: UnitFlops, probe: Probe | None) -> Efficiency:
    notes = {}
    if args.mfu_sampling is not None:
        sampling, notes["sampling"] = args.mfu_sampling, "--mfu-sampling (given)"
    elif probe is not None:
        sampling = min(probe.ratio, 1.0) * args.mfu_matmul
        notes["sampling"] = (f"measured CPU ratio {probe.ratio:.3f} (KV-cached sampling vs plain matmul FLOP/s) "
                             f"x --mfu-matmul {args.mfu_matmul:g} (assumed dense-GEMM efficiency)")
    else:
        sampling, notes["sampling"] = 0.3, "assumed 0.3 (--skip-measure without --mfu-sampling)"
    notes["conv"] = f"--mfu-conv {args.mfu_conv:g}, assumed (VQ-VAE encoder/decoder, Inception-v3; large batches)"
    notes["train"] = f"--mfu-train {args.mfu_train:g}, assumed (4M-parameter CNN + e_k building; small kernels)"
    lsrs = calibrate_lsrs(units, sampling, args.mfu_conv, args.lsrs_overhead, args.lsrs_overhead_m, units.num_scales)
    notes["lsrs"] = (f"calibrated: VAR-d30 M={args.lsrs_overhead_m} ST=2 takes {1 + args.lsrs_overhead:g}x plain "
                     "(paper Table 1; --lsrs-overhead)")
    return Efficiency(args.peak_tflops * 1e12, sampling, args.mfu_conv, args.mfu_train, lsrs, notes)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=C.REPO / "params-imagenet.yaml",
                    help="paper-profile params (default: %(default)s)")
    ap.add_argument("--gpu-name", default="A100-80GB", help="only a label for the table")
    ap.add_argument("--peak-tflops", type=float, default=312.0, help="dense bf16/fp16 peak of one GPU (A100: 312)")
    ap.add_argument("--mfu-matmul", type=float, default=0.7,
                    help="share of the peak a large dense GEMM reaches; scales the measured sampling ratio")
    ap.add_argument("--mfu-sampling", type=float, default=None,
                    help="efficiency of KV-cached VAR sampling (default: measured CPU ratio x --mfu-matmul)")
    ap.add_argument("--mfu-conv", type=float, default=0.4, help="efficiency of VQ-VAE and Inception convolutions")
    ap.add_argument("--mfu-train", type=float, default=0.15, help="efficiency of scorer training and validation")
    ap.add_argument("--lsrs-overhead", type=float, default=0.15,
                    help="measured extra time of LSRS at --lsrs-overhead-m, VAR-d30, ST=2 (paper Table 1: 0.15)")
    ap.add_argument("--lsrs-overhead-m", type=int, default=128, help="the M of --lsrs-overhead")
    ap.add_argument("--probe-width", type=int, default=1024, help="width of the CPU sampling probe (d16's: 1024)")
    ap.add_argument("--probe-batch", type=int, default=2, help="batch of the CPU sampling probe")
    ap.add_argument("--reps", type=int, default=3, help="timed probe runs after one warm-up (the fastest is used)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the CPU probe")
    ap.add_argument("--skip-measure", action="store_true", help="no CPU probe (then --mfu-sampling or 0.3)")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    C.print_header("GPU-hours of the paper profile (estimate)", C.system_info(C.setup_threads(args.threads)))
    from lsrs.models import TokenizerConfig

    num_scales = len(TokenizerConfig().patch_nums)
    raw, source = load_raw(args.params)
    plan = build_plan(raw, source, num_scales)
    t0 = time.perf_counter()
    units = count_units(set(plan.depths.values()) | {30})  # d30 always: the LSRS calibration is on VAR-d30
    probe = None
    if not args.skip_measure and args.mfu_sampling is None:
        probe = measure_sampling(args.probe_width, args.probe_batch, args.reps)
    eff = efficiencies(args, units, probe)
    print_assumptions(plan, units, eff, probe, args)
    print(markdown(stage_rows(plan, units), eff, args.gpu_name))
    print(f"\n(counting and measuring took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
