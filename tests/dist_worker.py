"""One rank of the distributed test (tests/test_distributed.py): run with `torchrun --nproc_per_node N`
or as a plain script (one process). Writes, under OUT: token stores of real and generated maps,
the evaluation images of a small LSRS run (rank 0) and a scorer trained with DDP."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from lsrs.sampling.sampler import SamplingConfig
from lsrs.data.fashion_mnist import ImageSet
from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig
from lsrs.sampling.rejection import schedule_from
from lsrs.sampling.images import sample_images
from lsrs.sampling.plan import LSRSPlan
from lsrs.core.runtime import Runtime, RuntimeConfig
from lsrs.models.scorer import ScorerConfig, ScorerScoreFn, Scorer, make_input
from lsrs.training.scorer import ScorerTrainConfig, train_scorer
from lsrs.tokens.store import TokenStore
from lsrs.tokens.writers import extract_real, sample_generated

TOK = TokenizerConfig(vocab_size=64, z_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, in_channels=1,
                      patch_nums=(1, 2, 3, 4), norm_groups=4, use_attn=False)
TR = TransformerConfig(depth=2, width=64, num_heads=2, num_classes=3, vocab_size=64, z_channels=4,
                       patch_nums=(1, 2, 3, 4), cond_drop_rate=0.0)
SCORER = ScorerConfig(in_channels=4, input_size=4, widths=(16, 32), blocks_per_stage=1, num_classes=3,
                      num_scales=4, emb_dim=8, mlp_dims=(16,), dropout=0.0)  # dropout masks depend on the split
SAMPLING = SamplingConfig(cfg=1.5, top_k=20, top_p=0.9, seed=5, batch_size=4)


def main(out: Path) -> None:
    rt = Runtime.start(RuntimeConfig(device="cpu"))
    torch.manual_seed(0)
    vae, var = VQVAE(TOK).eval().requires_grad_(False), VAR(TR).eval().requires_grad_(False)
    quiet = lambda msg: None  # noqa: E731
    g = torch.Generator().manual_seed(1)
    images = ImageSet(torch.randint(0, 256, (30, 1, 8, 8), dtype=torch.uint8, generator=g),
                      torch.arange(30) % 3, num_classes=3)
    real = extract_real(vae, images, out / "real", {"source": "random"}, shard_size=4, batch_size=3,
                        log=quiet, runtime=rt)
    gen = sample_generated(var, vae, out / "generated", 10, SAMPLING, {"var": "tiny"}, shard_size=4,
                           log=quiet, runtime=rt)
    scorer = Scorer(SCORER).eval()
    plan = LSRSPlan(ScorerScoreFn(scorer, make_input("var", vae, 4)), schedule_from(3, 2, 4))
    labels = torch.arange(10) % 3
    lsrs_images = sample_images(var, vae, labels, SAMPLING, seed=0, plan=plan, progress=False, runtime=rt)
    if rt.is_main:
        np.save(out / "eval_images.npy", lsrs_images.numpy())
    as_int = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
    real, gen = TokenStore.open(out / "real"), TokenStore.open(out / "generated")
    train_scorer(as_int(real.tokens), as_int(real.labels), as_int(gen.tokens), as_int(gen.labels), vae, SCORER,
                 ScorerTrainConfig(batch_size=8, epochs=2, val_fraction=0.2), out / "scorer", log=quiet, runtime=rt)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
