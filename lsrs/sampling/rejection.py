"""LSRS inference: draw M candidate token maps per scale, score them, keep the best (Algorithm 1).

`LSRSSelector` is a selector for `lsrs.sampling.sampler.generate`: at scale k it draws m_k candidate token
maps from the same post-CFG logits (the plain sampler's filter and RNG stream, so candidate 0 is
exactly the token map plain VAR would have drawn), builds each candidate's cumulative latent
e_k = f_hat_{k-1} + Phi(up(embed(r_k))) in one batched call, scores all B x m_k of them with the
scorer in one call, and returns the chosen token map together with its e_k, which the loop reuses
as the next f_hat (no recomputation).

Schedules: `schedule_from(M, ST, K)` gives the paper's shorthand m_k = M for k >= ST (1-based), 1
before. A scale with m_k = 1 is delegated to the plain sampler, so M = 1 reproduces plain VAR
samples exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from lsrs.sampling.sampler import Choice, PerSampleRNG, ScaleStep, TokenSampler

SELECTIONS = ("greedy", "topk")


def schedule_from(M: int, ST: int, num_scales: int) -> tuple[int, ...]:
    """{m_1..m_K} from the shorthand: M candidates at scales ST..K (1-based), one before."""
    if M < 1:
        raise ValueError(f"M must be >= 1, got {M}")
    if not 1 <= ST <= num_scales:
        raise ValueError(f"ST must be in 1..{num_scales} (the number of scales), got {ST}")
    return tuple(M if k >= ST else 1 for k in range(1, num_scales + 1))


@dataclass(frozen=True)
class SelectionConfig:
    """How a winner is chosen among the scored candidates."""

    method: str = "greedy"  # 'greedy': argmax; 'topk': softmax over the k best scores
    k: int = 4
    temperature: float = 1.0

    def __post_init__(self):
        if self.method not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.method!r}")
        if self.k < 1 or self.temperature <= 0:
            raise ValueError("selection k must be >= 1 and temperature > 0")


class ScoreFn(Protocol):
    def __call__(self, e_k: torch.Tensor, idx: torch.Tensor, labels: torch.Tensor, si: int) -> torch.Tensor:
        """Scores (N,) of N candidates: their e_k (N, C, h, w), token maps (N, l), labels (N,)."""


def select(scores: torch.Tensor, cfg: SelectionConfig, uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """Index (B,) of the chosen candidate per row of scores (B, m).

    greedy: the argmax (first on ties). topk: sample from softmax(score / T) restricted to the k best
    scores, by inverse CDF with one uniform per row (from the image's own RNG stream).
    """
    if cfg.method == "greedy" or scores.shape[1] == 1:
        return scores.argmax(dim=1)
    k = min(cfg.k, scores.shape[1])
    top = scores.topk(k, dim=1)
    probs = (top.values / cfg.temperature).softmax(dim=1)
    if uniforms is None:
        raise ValueError("top-k selection needs uniforms from the per-sample RNG")
    cdf = probs.cumsum(dim=1)
    pos = torch.searchsorted(cdf, (uniforms.to(cdf.device) * cdf[:, -1]).unsqueeze(1), right=True).clamp_max(k - 1)
    return top.indices.gather(1, pos).squeeze(1)


@dataclass
class LSRSSelector:
    """Latent scale rejection sampling as a per-scale hook of `generate`."""

    sampler: TokenSampler
    score_fn: ScoreFn | Callable
    schedule: tuple[int, ...]
    selection: SelectionConfig = SelectionConfig()
    keep_scores: bool = False

    def __post_init__(self):
        if not isinstance(self.sampler.rng, PerSampleRNG):
            raise ValueError("LSRS needs the per-sample RNG mode (candidates come from each image's own stream)")
        if self.sampler.more_smooth:
            raise ValueError("LSRS scores hard token maps; more_smooth is not supported")
        self.scores: list[torch.Tensor | None] = []  # with keep_scores: per scale the (B, m) scores, None if m = 1
        self.picks: list[torch.Tensor | None] = []  # ... and the (B,) chosen candidates

    def __call__(self, step: ScaleStep) -> Choice:
        if step.si >= len(self.schedule):
            raise ValueError(f"the LSRS schedule has {len(self.schedule)} scales, the model more")
        m = self.schedule[step.si]
        if m == 1:
            if self.keep_scores:
                self.scores.append(None)
                self.picks.append(None)
            return self.sampler(step)
        b, l, _ = step.logits.shape
        cands = self.sampler.draw(step, m)  # (B, m, l)
        flat = cands.reshape(b * m, l)
        e_k = step.candidate_state(flat, m)  # VAR: the candidates' cumulative f_hat; FlexVAR: None
        scores = self.score_fn(e_k, flat, step.labels.repeat_interleave(m), step.si).view(b, m).float()
        u = self.sampler.rng.selection_uniforms(step.si) if self.selection.method == "topk" else None
        pick = select(scores, self.selection, u)
        rows = torch.arange(b, device=pick.device)
        if self.keep_scores:
            self.scores.append(scores.cpu())
            self.picks.append(pick.cpu())
        f_hat = None if e_k is None else e_k.view(b, m, *e_k.shape[1:])[rows, pick]
        return Choice(idx=cands[rows, pick], f_hat=f_hat)


@dataclass
class RandomScale:
    """Plain sampling, except that scale `scale` (0-based) gets uniformly random tokens (Figure 1)."""

    sampler: TokenSampler
    scale: int

    def __call__(self, step: ScaleStep) -> Choice:
        if step.si != self.scale:
            return self.sampler(step)
        b, l, v = step.logits.shape
        rng = self.sampler.rng
        if not isinstance(rng, PerSampleRNG):
            raise ValueError("random replacement needs the per-sample RNG mode")
        return Choice(idx=rng.random_tokens(step.si, l, v).to(step.logits.device))
