"""Which (real, generated) token-map pairs the scorer trains and validates on (see lsrs.training.scorer).

Validation split: per class and per collection, `fraction` of the maps (at least one when the class
has two or more) is held out, by a permutation seeded by (seed, class), so the split does not depend
on the order of other classes or on the other collection. Pairs are always of one class; either a
fixed random fraction of all same-class pairs (the authors' recipe, `sample_all_pairs`) or
`per_class` pairs re-drawn every epoch (`make_pairs`).
"""
from __future__ import annotations

import numpy as np
import torch


def gen_for(*words: int) -> torch.Generator:
    seed = int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


def split_per_class(labels: torch.Tensor, fraction: float, seed: int, stream: int = 0) -> tuple[dict, dict]:
    """{class: train indices}, {class: validation indices}; round(fraction * n_c) held out, >= 1 if n_c >= 2."""
    train, val = {}, {}
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen_for(seed, stream, c))]
        n_val = min(max(round(fraction * len(idx)), 1), len(idx) - 1) if len(idx) >= 2 else 0
        val[c], train[c] = idx[:n_val], idx[n_val:]
    return train, val


def _cycled(idx: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    reps = -(-n // len(idx))
    return torch.cat([idx[torch.randperm(len(idx), generator=g)] for _ in range(reps)])[:n]


def make_pairs(real_by_class: dict, gen_by_class: dict, per_class: int | None, g: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(real indices, generated indices) of same-class pairs, all classes shuffled together."""
    ri, gi = [], []
    for c in sorted(set(real_by_class) & set(gen_by_class)):
        r, q = real_by_class[c], gen_by_class[c]
        if len(r) == 0 or len(q) == 0:
            continue
        n = per_class or max(len(r), len(q))
        ri.append(_cycled(r, n, g))
        gi.append(_cycled(q, n, g))
    if not ri:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    ri, gi = torch.cat(ri), torch.cat(gi)
    perm = torch.randperm(len(ri), generator=g)
    return ri[perm], gi[perm]


def sample_all_pairs(real_by_class: dict, gen_by_class: dict, fraction: float, g: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random `fraction` of every class's n_real x n_gen same-class pairs, drawn without
    replacement per class (at least one pair per class that has both), all classes shuffled together."""
    ri, gi = [], []
    for c in sorted(set(real_by_class) & set(gen_by_class)):
        r, q = real_by_class[c], gen_by_class[c]
        total = len(r) * len(q)
        if total == 0:
            continue
        k = max(1, round(fraction * total))
        flat = distinct(total, k, g)
        ri.append(r[flat // len(q)])
        gi.append(q[flat % len(q)])
    if not ri:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    ri, gi = torch.cat(ri), torch.cat(gi)
    perm = torch.randperm(len(ri), generator=g)
    return ri[perm], gi[perm]


def distinct(total: int, k: int, g: torch.Generator) -> torch.Tensor:
    """k distinct integers in [0, total), uniformly: a permutation prefix, or for huge totals random
    draws with duplicates dropped and topped up (a permutation of 10^9 would not fit in memory)."""
    if total <= 50_000_000:
        return torch.randperm(total, generator=g)[:k]
    picked = torch.zeros(0, dtype=torch.long)
    while len(picked) < k:
        draw = torch.randint(total, (2 * (k - len(picked)),), generator=g)
        picked = torch.cat([picked, draw]).unique(sorted=False)  # order is reshuffled by the caller
    return picked[:k]


def shuffled(pairs: tuple[torch.Tensor, torch.Tensor], g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(len(pairs[0]), generator=g)
    return pairs[0][perm], pairs[1][perm]
