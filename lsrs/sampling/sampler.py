"""Next-scale generation with classifier-free guidance, top-k/top-p and a per-scale selection hook.

The loop is VAR's `autoregressive_infer_cfg` (../shared/reference/var/ARCHITECTURE.md, section 3) written once, with one
hook: at every scale a *selector* receives the post-CFG logits and the current f_hat and returns
the chosen token map. The default selector, `TokenSampler`, draws one token map exactly as the
official code does; LSRS (lsrs.sampling.rejection) plugs in a selector that draws M candidates and keeps the
best-scored one, without copying the loop.

Two RNG modes:
* ``official``: one CPU ``torch.Generator`` seeded with ``g_seed`` and consumed exactly like the
  official sampler (one multinomial per scale over the whole batch), so our tokens equal the
  official ones for the same seed on CPU. Samples depend on batch composition.
* ``per-sample`` (default): every random draw of image i comes from generators seeded by
  (seed, sample index i, scale), so an image does not change with batch size, batch position or
  the number of workers. Candidate j of image i at a scale is the j-th uniform vector of that
  stream, so the first candidate is the same whatever the number of candidates drawn.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from lsrs.models.tokenizer import VQVAE
from lsrs.models.transformer import VAR

RNG_MODES = ("per-sample", "official")


@dataclass(frozen=True)
class SamplingConfig:
    cfg: float = 1.5
    top_k: int = 900
    top_p: float = 0.96
    rng: str = "per-sample"
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self):
        if self.rng not in RNG_MODES:
            raise ValueError(f"must be one of {RNG_MODES}, got {self.rng!r}")
        if self.top_k < 0 or not 0 <= self.top_p <= 1 or self.cfg < 0 or self.batch_size < 1:
            raise ValueError("top_k >= 0, 0 <= top_p <= 1, cfg >= 0 and batch_size >= 1 are required")


def filter_top_k_top_p(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Mask (set to -inf) the logits that the official top-k then top-p rule removes. In place.

    top-k keeps every logit >= the k-th largest (ties at the threshold survive); top-p then removes
    the ascending-sorted tokens whose cumulative probability is <= 1 - p, always keeping the largest.
    """
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        kth = logits.topk(top_k, dim=-1, largest=True, sorted=False).values.amin(dim=-1, keepdim=True)
        logits.masked_fill_(logits < kth, -torch.inf)
    if top_p > 0:
        sorted_logits, sorted_idx = logits.sort(dim=-1, descending=False)
        remove = sorted_logits.softmax(dim=-1).cumsum_(dim=-1) <= (1 - top_p)
        remove[..., -1:] = False
        logits.masked_fill_(remove.scatter(-1, sorted_idx, remove), -torch.inf)
    return logits


def _seed_for(*words: int) -> int:
    """A well-mixed 63-bit seed from integers (numpy's SeedSequence), stable across platforms."""
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)[0] >> 1)


class OfficialRNG:
    """One CPU generator consumed in the official order (``g_seed`` semantics)."""

    mode = "official"

    def __init__(self, seed: int):
        self.generator = torch.Generator("cpu").manual_seed(int(seed))


# Namespaces of per-sample streams. Evaluation samples and the generated maps the scorer learns
# from hash different words, so their draws are disjoint by construction whatever seeds and sample
# ids a user picks.
STREAMS = {"eval": 0, "scorer-data": 1, "preview": 2}


class PerSampleRNG:
    """Independent streams per (seed, stream, sample index, scale, purpose); batch-invariant by design."""

    mode = "per-sample"
    _CANDIDATES, _GUMBEL, _SELECT, _REPLACE = 0, 1, 2, 3

    def __init__(self, seed: int, sample_ids: torch.Tensor | list[int], stream: str = "eval"):
        if stream not in STREAMS:
            raise ValueError(f"unknown RNG stream {stream!r}; known: {sorted(STREAMS)}")
        self.seed, self.stream = int(seed), stream
        self.sample_ids = [int(i) for i in sample_ids]

    def _gen(self, sample_id: int, si: int, purpose: int) -> torch.Generator:
        words = (self.seed, STREAMS[self.stream], sample_id, si, purpose)
        return torch.Generator("cpu").manual_seed(_seed_for(*words))

    def uniforms(self, si: int, n: int, l: int) -> torch.Tensor:
        """(B, n, l) uniforms: candidate j of image i at scale si is row j of image i's stream."""
        return torch.stack([torch.rand(n, l, generator=self._gen(i, si, self._CANDIDATES))
                            for i in self.sample_ids])

    def selection_uniforms(self, si: int) -> torch.Tensor:
        """(B,) uniforms for a randomised choice among candidates at scale si."""
        return torch.stack([torch.rand(1, generator=self._gen(i, si, self._SELECT))[0] for i in self.sample_ids])

    def random_tokens(self, si: int, l: int, vocab_size: int) -> torch.Tensor:
        """(B, l) uniformly random token ids (the paper's Figure 1 replacement)."""
        return torch.stack([torch.randint(vocab_size, (l,), generator=self._gen(i, si, self._REPLACE))
                            for i in self.sample_ids])

    def exponentials(self, si: int, shape: tuple[int, ...]) -> torch.Tensor:
        """(B, *shape) Exp(1) draws for the more_smooth Gumbel noise."""
        return torch.stack([torch.empty(shape).exponential_(generator=self._gen(i, si, self._GUMBEL))
                            for i in self.sample_ids])


@dataclass
class ScaleStep:
    """What a selector sees at scale si: the guided logits and the state before this scale."""

    si: int
    pn: int
    ratio: float  # si / (K - 1), the CFG and more_smooth schedule position
    logits: torch.Tensor  # (B, pn*pn, V) post-CFG, unfiltered
    f_hat: torch.Tensor | None  # (B, Cvae, h, w) cumulative f_hat before this scale (None: FlexVAR)
    labels: torch.Tensor  # (B,)
    vae: VQVAE  # or a FlexVAE

    def candidate_state(self, flat: torch.Tensor, m: int) -> torch.Tensor | None:
        """VAR's e_k of m candidates per image (flat: (B*m, l) ids): f_hat plus each candidate's
        Phi contribution. FlexVAR keeps no cumulative map (its scorer reads r_k): None."""
        if self.f_hat is None:
            return None
        q = self.vae.quantize
        return self.f_hat.repeat_interleave(m, dim=0) + q.scale_contribution(self.si, q.codes_to_map(flat, self.pn))


@dataclass
class Choice:
    """A selector's answer: the token map, and optionally its code map or the updated f_hat."""

    idx: torch.Tensor  # (B, pn*pn) int64
    h: torch.Tensor | None = None  # (B, Cvae, pn, pn); default embedding(idx)
    f_hat: torch.Tensor | None = None  # f_hat after this scale, if the selector already has it
    n_kept: torch.Tensor | None = None  # (B, pn*pn) logits left by the filter (diagnostics)


class Selector(Protocol):
    def __call__(self, step: ScaleStep) -> Choice: ...


@dataclass
class TokenSampler:
    """The default selector: filter the logits (top-k, top-p) and draw one token per position."""

    rng: OfficialRNG | PerSampleRNG
    top_k: int = 0
    top_p: float = 0.0
    more_smooth: bool = False

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return filter_top_k_top_p(logits.clone(), self.top_k, self.top_p).softmax(dim=-1)

    def draw(self, step: ScaleStep, n: int) -> torch.Tensor:
        """(B, n, l) candidate token maps from the filtered distribution (per-sample RNG only)."""
        if not isinstance(self.rng, PerSampleRNG):
            raise ValueError("drawing several candidates needs the per-sample RNG mode")
        return sample_inverse_cdf(self.probs(step.logits), self.rng.uniforms(step.si, n, step.logits.shape[1]))

    def __call__(self, step: ScaleStep) -> Choice:
        b, l, v = step.logits.shape
        masked = filter_top_k_top_p(step.logits.clone(), self.top_k, self.top_p)
        probs = masked.softmax(dim=-1)
        n_kept = torch.isfinite(masked).sum(-1)
        if isinstance(self.rng, OfficialRNG):
            idx = torch.multinomial(probs.view(-1, v).cpu(), 1, replacement=True, generator=self.rng.generator)
            idx = idx.view(b, l).to(step.logits.device)
        else:
            idx = sample_inverse_cdf(probs, self.rng.uniforms(step.si, 1, l))[:, 0]
        if not self.more_smooth:
            return Choice(idx=idx, n_kept=n_kept)
        return Choice(idx=idx, h=self._smooth_codes(step, masked), n_kept=n_kept)

    def _smooth_codes(self, step: ScaleStep, masked: torch.Tensor) -> torch.Tensor:
        """Official more_smooth: Gumbel-softmax-weighted code vectors (visualisation only)."""
        tau = max(0.27 * (1 - step.ratio * 0.95), 0.005)
        if isinstance(self.rng, OfficialRNG):
            e = torch.empty(masked.shape).exponential_(generator=self.rng.generator)
        else:
            e = self.rng.exponentials(step.si, masked.shape[1:])
        gumbel = -e.to(masked.device).log()
        soft = ((masked.mul(1 + step.ratio) + gumbel) / tau).softmax(-1)
        h = soft @ step.vae.quantize.embedding.weight.unsqueeze(0)  # (B, l, Cvae)
        return h.transpose(1, 2).reshape(h.shape[0], -1, step.pn, step.pn)


def sample_inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Tokens (B, n, l) from probs (B, l, V) and uniforms u (B, n, l) by inverse-CDF lookup.

    One uniform per token and candidate (instead of V exponentials) keeps many-candidate draws
    cheap. Zero-probability tokens are never returned.
    """
    cdf = probs.cumsum(dim=-1)  # (B, l, V)
    b, l, v = cdf.shape
    target = (u.to(cdf.device) * cdf[..., -1].unsqueeze(1)).transpose(1, 2).contiguous()  # (B, l, n)
    idx = torch.searchsorted(cdf, target, right=True)
    last_nonzero = (probs > 0).long().mul(torch.arange(v, device=probs.device)).amax(-1, keepdim=True)
    return torch.minimum(idx, last_nonzero).transpose(1, 2)


@dataclass
class Generation:
    idx: list[torch.Tensor]  # per scale (B, pn*pn)
    f_hat: torch.Tensor  # (B, Cvae, h, w) final
    images: torch.Tensor | None  # (B, C, H, W) in [0, 1], or None when decode=False
    cfg_logits: list[torch.Tensor] = field(default_factory=list)  # per scale (B, l, V) if recorded
    uncond_logits: list[torch.Tensor] = field(default_factory=list)
    n_kept: list[torch.Tensor] = field(default_factory=list)


@torch.inference_mode()
def generate(var: VAR, vae: VQVAE, labels: torch.Tensor, selector: Selector | Callable[[ScaleStep], Choice],
             cfg: float = 1.5, decode: bool = True, record: bool = False,
             timer: Callable[[str], object] | None = None) -> Generation:
    """Generate B images scale by scale. `labels` (B,) are class ids (the null class is allowed).

    CFG: the batch is doubled to [cond; uncond]; at scale si the guided logits are
    (1 + t) * cond - t * uncond with t = cfg * si / (K - 1). `timer(name)`, when given, returns a
    context manager used to time the phases (benchmarks).
    """
    tc = var.cfg
    K, b = len(tc.patch_nums), labels.shape[0]
    section = timer or (lambda name: _NULL_CTX)
    labels = labels.to(var.pos_start.device)
    cond = var.class_emb(torch.cat((labels, torch.full_like(labels, var.null_class))))
    lvl_pos = var.lvl_pos()
    x = cond.unsqueeze(1) + var.pos_start + lvl_pos[:, :1]
    cache = var.new_cache()
    size = vae.cfg.latent_size
    f_hat = cond.new_zeros(b, vae.cfg.z_channels, size, size)
    out = Generation(idx=[], f_hat=f_hat, images=None)
    for si, pn in enumerate(tc.patch_nums):
        ratio = si / (K - 1) if K > 1 else 0.0
        with section("transformer"):
            logits2 = var.step(x, cond, cache)
        t = cfg * ratio
        logits = (1 + t) * logits2[:b] - t * logits2[b:]
        with section("sampling"):
            choice = selector(ScaleStep(si, pn, ratio, logits, f_hat, labels, vae))
        with section("f_hat update"):
            f_hat, nxt = _advance(vae, si, pn, f_hat, choice)
        out.idx.append(choice.idx)
        if record:
            out.cfg_logits.append(logits)
            out.uncond_logits.append(logits2[b:])
            if choice.n_kept is not None:
                out.n_kept.append(choice.n_kept)
        if si < K - 1:
            b0, e0 = tc.begin_ends[si + 1]
            x = (var.word_embed(nxt.view(b, vae.cfg.z_channels, -1).transpose(1, 2)) + lvl_pos[:, b0:e0]).repeat(2, 1, 1)
    out.f_hat = f_hat
    if decode:
        with section("decode"):
            out.images = vae.fhat_to_img(f_hat).add_(1).mul_(0.5)
    return out


def _advance(vae: VQVAE, si: int, pn: int, f_hat: torch.Tensor, choice: Choice):
    """f_hat after scale si and the next scale's input, from the selector's choice."""
    q = vae.quantize
    if choice.f_hat is not None:
        new = choice.f_hat
        nxt = new if si == len(q.patch_nums) - 1 else q.downsample(new, q.patch_nums[si + 1])
        return new, nxt
    h = choice.h if choice.h is not None else q.codes_to_map(choice.idx, pn)
    return q.next_input(si, f_hat, h)


class _NullCtx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL_CTX = _NullCtx()


@torch.inference_mode()
def generate_flex(var, vae, labels: torch.Tensor, selector: Selector | Callable[[ScaleStep], Choice],
                  patch_nums: tuple[int, ...], cfg: float = 2.5, max_pn: int = 16, decode: bool = True) -> Generation:
    """FlexVAR generation over the schedule `patch_nums` (the official autoregressive_infer_cfg).

    Differences from `generate`: guidance t = cfg * si / min(K - 1, 9); scales the official loop
    samples greedily (pn outside its sampled set, or pn > max_pn) take the argmax and skip the
    selector, so LSRS spends no candidates there; the next input is the chosen codes bicubic-
    upsampled (no cumulative f_hat); the image is decoded from the last scale alone. Images are
    returned in [0, 1] (the official [-1, 1] output, clamped as its saving step does).
    """
    from lsrs.models.flexvar import cfg_strength, guided_logits, is_greedy_scale

    k, b = len(patch_nums), labels.shape[0]
    labels = labels.to(var.pos_start.device)
    cond = var.class_emb(torch.cat((labels, torch.full_like(labels, var.null_class))))
    x = var.sos(cond, patch_nums[0])
    cache = var.new_cache()
    out = Generation(idx=[], f_hat=None, images=None)
    for si, pn in enumerate(patch_nums):
        logits = guided_logits(var.step(x, cond, cache), cfg_strength(cfg, si, k, pn, max_pn))
        if is_greedy_scale(pn, max_pn):
            choice = Choice(idx=logits.argmax(-1))
        else:
            choice = selector(ScaleStep(si, pn, si / max(k - 1, 1), logits, None, labels, vae))
        out.idx.append(choice.idx)
        if si < k - 1:
            x = var.embed_scale(vae.next_input(choice.idx, pn, patch_nums[si + 1])).repeat(2, 1, 1)
    if decode:
        out.images = vae.decode_idx(out.idx[-1], patch_nums[-1]).float().clamp(-1, 1).add(1).mul(0.5)
    return out


def generate_model(var, vae, labels: torch.Tensor, selector: Selector | Callable[[ScaleStep], Choice],
                   cfg: float, decode: bool = True) -> Generation:
    """`generate` for a VAR, `generate_flex` over the model's own schedule for a FlexVAR: the one call
    that evaluation, token sampling and grids make, whichever family the model is."""
    from lsrs.models.flexvar import FlexVAR

    if isinstance(var, FlexVAR):
        return generate_flex(var, vae, labels, selector, var.patch_nums, cfg=cfg, decode=decode)
    return generate(var, vae, labels, selector, cfg=cfg, decode=decode)
