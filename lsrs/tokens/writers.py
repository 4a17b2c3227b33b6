"""The scorer's data: token stores of real images (tokenizer encodings) and of VAR samples.

Both writers hand `lsrs.tokens.store.write_store` a producer that depends only on its item range, so an
interrupted run resumes into byte-identical shards.

Generated maps are drawn on the per-sample RNG stream "scorer-data": every draw of item i hashes
(seed, stream, i, scale), and the evaluation samples use the stream "eval", so no generated map the
scorer learns from shares randomness with an evaluated image, whatever seeds and ids are chosen.
The official RNG has no streams (one generator for the whole batch), so it is refused here.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from lsrs.sampling.sampler import SamplingConfig
from lsrs.data.fashion_mnist import ImageSet
from lsrs.models import VAR, VQVAE
from lsrs.core.runtime import CPU, Runtime
from lsrs.sampling.sampler import PerSampleRNG, TokenSampler, generate, generate_flex
from lsrs.tokens.store import StoreSpec, TokenStore, write_store

SCORER_STREAM = "scorer-data"


def _batches(start: int, count: int, batch_size: int, desc: str) -> Iterable[tuple[int, int]]:
    """[a, b) batch bounds covering start..start+count, with a transient tqdm bar."""
    bounds = [(a, min(a + batch_size, start + count)) for a in range(start, start + count, batch_size)]
    return tqdm(bounds, desc=desc, unit="batch", leave=False, disable=len(bounds) < 2)


def _data_digest(images: ImageSet, ids: np.ndarray) -> str:
    """sha256 of the images (or a folder set's own fingerprint), labels and ids, so a store of other data
    is never resumed into."""
    h = hashlib.sha256()
    content = images.fingerprint().encode() if hasattr(images, "fingerprint") else images.images.numpy()
    for arr in (content, images.labels.numpy().astype(np.int64), ids):
        h.update(arr if isinstance(arr, bytes) else np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def token_space(vae, patch_nums: tuple[int, ...] | None = None) -> tuple[tuple[int, ...], int]:
    """(scales, vocabulary size) of a tokenizer's maps: VAR's VQ-VAE fixes its scales; a FlexVAE
    quantises any schedule, which the caller gives as `patch_nums`."""
    if patch_nums is None:
        return tuple(vae.cfg.patch_nums), vae.cfg.vocab_size
    return tuple(patch_nums), vae.cfg.codebook_size


def extract_real(vae: VQVAE, images: ImageSet, out_dir: str | Path, meta: dict,
                 ids: torch.Tensor | np.ndarray | None = None, shard_size: int = 4096, batch_size: int = 256,
                 log: Callable[[str], None] = print, runtime: Runtime = CPU,
                 patch_nums: tuple[int, ...] | None = None) -> TokenStore:
    """Encode `images` to multi-scale token maps; `ids` are their dataset indices (default 0..N-1).
    A FlexVAE (with its schedule `patch_nums`) quantises every scale on its own instead.

    The encoder always runs in fp32 (no autocast): the quantizer's nearest-code search is where a
    lower precision would flip tokens. With several ranks each writes its own shards (write_store).
    """
    n = len(images)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"ids must have one entry per image ({n}), got shape {ids.shape}")
    pns, vocab = token_space(vae, patch_nums)
    spec = StoreSpec(kind="real", meta={**meta, "data_sha256": _data_digest(images, ids)},
                     patch_nums=pns, vocab_size=vocab, total=n, shard_size=shard_size)
    vae.eval()
    device = runtime.device
    encode = vae.img_to_idx if patch_nums is None else (lambda x: vae.img_to_idx(x, pns))

    @torch.inference_mode()
    def produce(start: int, count: int):
        maps = [torch.cat(encode(images.as_float(slice(a, b)).to(device)), 1).cpu()
                for a, b in _batches(start, count, batch_size, f"encode {start}..")]
        return torch.cat(maps).numpy(), images.labels[start:start + count].numpy(), ids[start:start + count]

    return write_store(out_dir, spec, produce, log=log, runtime=runtime)


def generated_labels(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """Item i has class i % C: classes interleave, so every prefix of the store is class-balanced."""
    return np.asarray(ids, dtype=np.int64) % num_classes


def sample_generated(var: VAR, vae: VQVAE, out_dir: str | Path, per_class: int, sampling: SamplingConfig,
                     meta: dict, shard_size: int = 4096, log: Callable[[str], None] = print,
                     runtime: Runtime = CPU, patch_nums: tuple[int, ...] | None = None) -> TokenStore:
    """`per_class` VAR token maps per class on the "scorer-data" stream (sample id i = item i).
    With `patch_nums` the models are a FlexVAR and its FlexVAE, sampled over that schedule, every
    scale kept.

    Maps do not depend on `sampling.batch_size` (per-sample RNG), so it is not part of the spec and
    a run may resume with another batch size.
    """
    if sampling.rng != "per-sample":
        raise ValueError(f"generated token maps need the per-sample RNG (got rng={sampling.rng!r}): only its "
                         f"'{SCORER_STREAM}' stream keeps the scorer's data disjoint from evaluation draws")
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    pns, vocab = token_space(vae, patch_nums)
    if (patch_nums is None and tuple(var.cfg.patch_nums) != pns) or var.cfg.vocab_size != vocab:
        raise ValueError("the VAR and the tokenizer disagree on scales or vocabulary size")
    num_classes = var.cfg.num_classes
    meta = {**meta, "stream": SCORER_STREAM, "rng": sampling.rng, "seed": sampling.seed, "cfg": sampling.cfg,
            "top_k": sampling.top_k, "top_p": sampling.top_p, "per_class": per_class, "num_classes": num_classes}
    spec = StoreSpec(kind="generated", meta=meta, patch_nums=pns, vocab_size=vocab,
                     total=per_class * num_classes, shard_size=shard_size)
    var.eval(), vae.eval()

    def produce(start: int, count: int):
        maps = []
        for a, b in _batches(start, count, sampling.batch_size, f"sample {start}.."):
            ids = torch.arange(a, b)
            labels = torch.from_numpy(generated_labels(ids.numpy(), num_classes))
            selector = TokenSampler(PerSampleRNG(sampling.seed, ids, stream=SCORER_STREAM),
                                    sampling.top_k, sampling.top_p)
            with runtime.autocast():
                out = (generate(var, vae, labels, selector, cfg=sampling.cfg, decode=False) if patch_nums is None
                       else generate_flex(var, vae, labels, selector, pns, cfg=sampling.cfg, decode=False))
            maps.append(torch.cat(out.idx, 1).cpu())
        ids = np.arange(start, start + count, dtype=np.int64)
        return torch.cat(maps).numpy(), generated_labels(ids, num_classes), ids

    return write_store(out_dir, spec, produce, log=log, runtime=runtime)
