"""`lsrs refcheck`: recompute an official-code reference set with our models and compare.

A reference folder (layout of ``shared/reference/var/refset``) holds official state dicts, inputs,
and the official outputs, possibly reduced (logits only at some positions, summaries elsewhere,
derived tensors left out). `compute_outputs` loads the state dicts into our models and recomputes
every stored quantity from the *saved inputs* of each stage, so a difference in one stage cannot
spill into the next. `lsrs.verify.refcompare.compare_outputs` applies the reference README's tolerances, and
`run_refcheck` does both and prints the per-quantity table.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig
from lsrs.verify.refcompare import compare_outputs, has_problems
from lsrs.verify.render import render_table
from lsrs.sampling.sampler import OfficialRNG, TokenSampler, filter_top_k_top_p, generate

FILES = ("ref_vqvae.pth", "ref_next_ar_inputs.pth", "ref_var_teacher_forced.pth", "ref_inference.pth",
         "ref_units.pth")
REQUIRED_FILES = ("vae_state_dict.pth", "ref_vqvae.pth")   # plus the var_d*_state_dict.pth
IMAGE_KEYS = ("decoded_raw", "decoded_img", "img_01")   # a run stores its image under one of these
UNIT_SAMPLER_SEED = 1234     # ref_units.pth: each sampler setting draws from a CPU Generator seeded with this


@dataclass
class RefSet:
    root: Path
    meta: dict

    @classmethod
    def open(cls, root: str | Path) -> "RefSet":
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"reference folder {root} does not exist")
        if not (root / "meta.json").is_file():
            raise FileNotFoundError(f"{root} is not a reference set: meta.json is missing")
        return cls(root, json.loads((root / "meta.json").read_text()))

    def load(self, name: str):
        path = self.root / name
        if not path.is_file():
            raise FileNotFoundError(f"reference file {path} is missing")
        return torch.load(path, map_location="cpu", weights_only=False)

    def check_files(self) -> None:
        """Fail early (before minutes of compute) if a file is missing or differs from meta.json's record."""
        missing = [n for n in REQUIRED_FILES if not self.has(n)]
        problems = []
        for name, rec in self.meta.get("files", {}).items():
            path = self.root / name
            if not path.is_file():
                missing.append(name)
            elif "bytes" in rec and path.stat().st_size != rec["bytes"]:
                problems.append(f"{name}: {path.stat().st_size} bytes, meta.json records {rec['bytes']}")
            elif "sha256" in rec and _sha256(path) != rec["sha256"]:
                problems.append(f"{name}: sha256 differs from meta.json")
        if missing:
            raise FileNotFoundError(f"reference set {self.root} is incomplete, missing: {', '.join(sorted(set(missing)))}")
        if problems:
            raise ValueError(f"reference set {self.root} is damaged or modified: " + "; ".join(problems))
        self.var_state_path()

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()

    def tokenizer_config(self) -> TokenizerConfig:
        v = self.meta.get("vae_config", {})
        return TokenizerConfig(vocab_size=v.get("vocab_size", 4096), z_channels=v.get("z_channels", 32),
                               ch=v.get("ch", 160), ch_mult=tuple(v.get("ch_mult", (1, 1, 2, 2, 4))),
                               num_res_blocks=v.get("num_res_blocks", 2), in_channels=v.get("in_channels", 3),
                               patch_nums=tuple(self.meta.get("patch_nums", TokenizerConfig.patch_nums)),
                               num_phi=v.get("share_quant_resi", 4), quant_resi=v.get("quant_resi", 0.5),
                               beta=v.get("beta", 0.25), use_attn=v.get("using_sa", True))

    def transformer_config(self) -> TransformerConfig:
        v, t = self.meta.get("var_config", {}), self.tokenizer_config()
        return TransformerConfig(depth=v.get("depth", self.meta["depth"]), width=v.get("embed_dim"),
                                 num_heads=v.get("num_heads"), num_classes=v.get("num_classes", 1000),
                                 vocab_size=t.vocab_size, z_channels=t.z_channels, patch_nums=t.patch_nums,
                                 mlp_ratio=v.get("mlp_ratio", 4.0), norm_eps=v.get("norm_eps", 1e-6),
                                 cond_drop_rate=0.0)

    def var_state_path(self) -> Path:
        named = self.root / f"var_d{self.meta['depth']}_state_dict.pth"
        if named.is_file():
            return named
        found = sorted(self.root.glob("var_d*_state_dict.pth"))
        if not found:
            raise FileNotFoundError(f"no var_d*_state_dict.pth in {self.root}")
        return found[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_models(ref: RefSet) -> tuple[VQVAE, VAR]:
    vae, var = VQVAE(ref.tokenizer_config()), VAR(ref.transformer_config())
    vae.load_state_dict(ref.load("vae_state_dict.pth"), strict=True)
    var.load_state_dict(torch.load(ref.var_state_path(), map_location="cpu"), strict=True)
    return vae.eval().requires_grad_(False), var.eval().requires_grad_(False)


@torch.inference_mode()
def vqvae_outputs(vae: VQVAE, ref_in: dict) -> dict:
    images = ref_in["images"].float()
    enc = vae.encoder(images)
    f = vae.quant_conv(enc)
    idx, _ = vae.quantize.quantize(f)
    gap, best = vq_distance_diagnostics(vae.quantize, f)
    fhats = vae.quantize.idx_to_fhats([i for i in ref_in["idx_Bl"]])
    raw = vae.decode_raw(fhats[-1])
    return {"encoder_out": enc, "f": f, "idx_Bl": idx, "idx_BL": torch.cat(idx, 1), "nn_dist_gap": gap,
            "nn_dist_min": best, "fhat_per_scale": torch.stack(fhats), "decoded_raw": raw,
            "decoded_img": raw.clamp(-1, 1)}


@torch.inference_mode()
def vq_distance_diagnostics(q, f: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per token and scale, the best squared codebook distance and the gap to the second best.

    A small gap means float noise may legitimately pick the other code; the comparison only reports these
    (the tolerance rule uses the reference's own gaps). Replays the residual loop of `quantize` with the
    same expanded distance form (|z|^2 + |e|^2 - 2 z.e) as `nearest_code`."""
    b, c = f.shape[:2]
    e = q.embedding.weight
    f_rest, gaps, best = f.clone(), [], []
    for si, pn in enumerate(q.patch_nums):
        z = q.downsample(f_rest, pn).permute(0, 2, 3, 1).reshape(-1, c)
        d = z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1)
        d.addmm_(z, e.T, alpha=-2, beta=1)
        two = d.topk(2, dim=1, largest=False).values
        best.append(two[:, 0].view(b, pn * pn))
        gaps.append((two[:, 1] - two[:, 0]).view(b, pn * pn))
        idx = d.argmin(1)
        f_rest = f_rest - q.scale_contribution(si, q.embedding(idx).view(b, pn, pn, c).permute(0, 3, 1, 2))
    return gaps, best


@torch.inference_mode()
def next_input_outputs(vae: VQVAE, ref_in: dict) -> dict:
    idx = list(ref_in["idx_Bl"])
    q, b = vae.quantize, idx[0].shape[0]
    size = vae.cfg.latent_size
    f_hat = torch.zeros(b, vae.cfg.z_channels, size, size)
    nexts, fhats = [], []
    for si, pn in enumerate(q.patch_nums):
        f_hat, nxt = q.next_input(si, f_hat, q.codes_to_map(idx[si], pn))
        fhats.append(f_hat.clone())
        if si < len(q.patch_nums) - 1:
            nexts.append(nxt)
    return {"idx_Bl": idx, "x_BLCv_wo_first_l": q.teacher_forcing_input(idx), "next_inputs": nexts,
            "fhat_after_step": torch.stack(fhats)}


@torch.inference_mode()
def teacher_forced_outputs(var: VAR, ref_tf: dict, x_wo_first: torch.Tensor, idx_BL: torch.Tensor) -> dict:
    logits, hidden = var(ref_tf["labels"], x_wo_first, drop_labels=False, return_hidden=True)
    ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), idx_BL.reshape(-1))
    return {"labels": ref_tf["labels"], "logits": logits, "ce_mean": ce, "hidden": hidden}


@torch.inference_mode()
def inference_outputs(vae: VQVAE, var: VAR, ref_inf: dict) -> dict:
    labels, runs = ref_inf["labels"], {}
    for name, run in ref_inf["runs"].items():
        kw = dict(run["kwargs"])
        g_seed = kw.get("g_seed")
        if g_seed is None:
            raise ValueError(f"run {name}: g_seed=None uses the global RNG and cannot be reproduced")
        sampler = TokenSampler(OfficialRNG(g_seed), top_k=int(kw.get("top_k", 0)), top_p=float(kw.get("top_p", 0.0)),
                               more_smooth=bool(kw.get("more_smooth", False)))
        gen = generate(var, vae, labels, sampler, cfg=float(kw.get("cfg", 1.5)), decode=False, record=True)
        runs[name] = {"kwargs": run["kwargs"], "idx_Bl": gen.idx, "f_hat_final": gen.f_hat,
                      "cfg_logits": torch.cat(gen.cfg_logits, 1), "uncond_logits": torch.cat(gen.uncond_logits, 1),
                      "n_kept": torch.cat(gen.n_kept, 1).to(torch.int16)}
        if any(key in run for key in IMAGE_KEYS):   # decoding costs more than sampling: only where stored
            raw = vae.decode_raw(gen.f_hat)
            runs[name].update(decoded_raw=raw, img_01=raw.clamp(-1, 1).add(1).mul(0.5))
    return {"labels": labels, "runs": runs}


def unit_outputs(vae: VQVAE, ref_u: dict) -> dict:
    size = vae.cfg.latent_size
    out = {"phi_index_per_scale": list(vae.quantize.phi_index),
           "bicubic_up_out": [F.interpolate(x, size=(size, size), mode="bicubic") for x in ref_u["bicubic_up_in"]],
           "area_down_out": [F.interpolate(ref_u["area_down_in"], size=(pn, pn), mode="area")
                             for pn in vae.cfg.patch_nums],
           "sampler": {}}
    if "phi_ticks" in ref_u:
        out["phi_ticks"] = ref_u["phi_ticks"]
    logits = ref_u["sampler_logits"]
    for setting in ref_u.get("sampler", {}):
        k_str, p_str = setting.split("_")
        top_k, top_p = int(k_str[1:]), float(p_str[1:])
        kept = torch.isfinite(filter_top_k_top_p(logits.clone(), top_k, top_p))
        masked = filter_top_k_top_p(logits.clone(), top_k, top_p)
        gen = torch.Generator("cpu").manual_seed(UNIT_SAMPLER_SEED)
        samples = torch.multinomial(masked.softmax(-1).view(-1, logits.shape[-1]), 1, True, generator=gen)
        out["sampler"][setting] = {"kept": kept, "samples": samples.view(logits.shape[:2])}
    return out


def compute_outputs(ref: RefSet, progress=lambda msg: None) -> dict[str, dict]:
    """All five output files in the full layout, each stage fed with the reference's saved inputs."""
    vae, var = load_models(ref)
    out = {}
    ref_vq = ref.load("ref_vqvae.pth")
    progress("VQ-VAE: encode, quantize, decode")
    out["ref_vqvae.pth"] = vqvae_outputs(vae, ref_vq)
    ref_next = ref.load("ref_next_ar_inputs.pth") if ref.has("ref_next_ar_inputs.pth") else ref_vq
    progress("quantizer: next-scale inputs")
    out["ref_next_ar_inputs.pth"] = next_input_outputs(vae, ref_next)
    if ref.has("ref_var_teacher_forced.pth"):
        progress("VAR: teacher forcing")
        tf = ref.load("ref_var_teacher_forced.pth")
        x = tf.get("x_BLCv_wo_first_l", ref_next.get("x_BLCv_wo_first_l"))
        if x is None:
            x = out["ref_next_ar_inputs.pth"]["x_BLCv_wo_first_l"]
        out["ref_var_teacher_forced.pth"] = teacher_forced_outputs(var, tf, x, ref_vq["idx_BL"])
    if ref.has("ref_inference.pth"):
        progress("VAR: sampling runs")
        out["ref_inference.pth"] = inference_outputs(vae, var, ref.load("ref_inference.pth"))
    if ref.has("ref_units.pth"):
        progress("unit vectors")
        out["ref_units.pth"] = unit_outputs(vae, ref.load("ref_units.pth"))
    return out


def write_outputs(outputs: dict[str, dict], out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, obj in outputs.items():
        tmp = out_dir / (name + ".tmp")
        torch.save(obj, tmp)
        tmp.replace(out_dir / name)


def run_refcheck(ref_dir: str | Path, out_dir: str | Path | None = None, echo: Callable[[str], object] = print) -> int:
    """Recompute a reference set with our models, optionally write our outputs, compare and print a table.

    Returns 0 when no quantity FAILs or is MISSING, else 1. Raises FileNotFoundError / ValueError when the
    set is incomplete or damaged, before any compute is spent."""
    ref = RefSet.open(ref_dir)
    ref.check_files()
    runs = list(ref.meta.get("runs", {}))
    echo(f"reference set {ref.root}: VAR depth {ref.meta.get('depth')}, {ref.meta.get('n_images', '?')} images, "
         f"runs {', '.join(runs) or '(none)'}")
    start = time.perf_counter()

    def progress(msg: str) -> None:
        echo(f"[{time.perf_counter() - start:6.1f}s] {msg}")

    outputs = compute_outputs(ref, progress)
    progress("computed all outputs")
    if out_dir is not None:
        write_outputs(outputs, out_dir)
        progress(f"wrote {len(outputs)} output files to {out_dir}")
    rows = compare_outputs(ref.root, outputs)
    echo(render_table(rows))
    return 1 if has_problems(rows) else 0
