"""What turns plain sampling into LSRS for one batch: a plan (score function, schedule, selection
rule) and the per-scale selector it makes, on the per-sample or the official RNG."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lsrs.sampling.rejection import LSRSSelector, ScoreFn, SelectionConfig
from lsrs.sampling.sampler import OfficialRNG, PerSampleRNG, TokenSampler


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


def replicate_of(n: int, num_classes: int, replicates: int) -> torch.Tensor:
    """The scorer replicate of each of n evaluation images: image i (class i % C, the j = i // C-th
    image of its class) uses replicate j % R, so every replicate sees every class equally often."""
    return (torch.arange(n) // num_classes) % replicates
