"""FlexVAR: VAR's AdaLN transformer with a resizable positional grid instead of per-scale tables.

The blocks, head and KV cache are VAR's (imported from lsrs.models.transformer). What differs
(FLEXVAR.md section 3): there is no level embedding; the position of a token at scale pn is the
learnable grid `pos_1LC` (1, C, 32, 32) area-interpolated to pn x pn, so any schedule with
pn <= 32 runs; the block-causal mask `attn_bias_for_masking` is rebuilt for each schedule; the
inputs are FlexVAE's unit-norm codes of the previous scale, bicubic-upsampled (lsrs.models.flexvae);
the logits are not cast to float32 (fp16 under autocast, as official).

Parameter names follow the official checkpoints (`FlexVARd16-epo179.pth` ...), which load with
``strict=True`` once their schedule-dependent `attn_bias_for_masking` is replaced by ours, as the
official loaders do.

The guidance and greedy-scale rules of the official inference loop are the small functions
`cfg_strength` and `is_greedy_scale`, so that a generation loop (and LSRS) can apply them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lsrs.core.checkpoint import CheckpointError
from lsrs.models.transformer import AdaLNBlock, AdaLNHead, NextScaleModel, TransformerConfig

MASK_KEY = "attn_bias_for_masking"
# Official inference samples with top-k/top-p only at these sizes; every other size is greedy.
SAMPLED_PNS = frozenset({1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 23, 24, 32})


def check_schedule(patch_nums) -> tuple[int, ...]:
    """A schedule as a tuple; it must be strictly increasing positive ints (each scale refines the last)."""
    pns = tuple(int(p) for p in patch_nums)
    if not pns or pns[0] < 1 or any(b <= a for a, b in zip(pns, pns[1:])):
        raise ValueError(f"a patch schedule must be strictly increasing positive ints, got {tuple(patch_nums)}")
    return pns


def block_causal_bias(patch_nums, device=None) -> torch.Tensor:
    """(1, 1, L, L) additive mask: 0 where the key's scale <= the query's scale, -inf after it."""
    lvl = torch.cat([torch.full((pn * pn,), i, device=device) for i, pn in enumerate(patch_nums)])
    return torch.where(lvl.view(-1, 1) >= lvl.view(1, -1), 0.0, -torch.inf).view(1, 1, len(lvl), len(lvl))


def sincos_grid(size: int, c: int) -> torch.Tensor:
    """(1, C, size, size) initial position grid: sin(y * w_i) in even channels, cos(x * w_i) in odd ones.

    Only the initialisation: the trained grid comes from the checkpoint.
    """
    w = torch.exp(torch.arange(0, c, 2, dtype=torch.float32) * -(math.log(10000.0) / c))
    coord = torch.arange(size, dtype=torch.float32)
    grid = torch.empty(size, size, c)
    grid[:, :, 0::2] = torch.sin(coord.view(size, 1, 1) * w).expand(size, size, -1)
    grid[:, :, 1::2] = torch.cos(coord.view(1, size, 1) * w).expand(size, size, -1)
    return grid.permute(2, 0, 1).unsqueeze(0).contiguous()


def cfg_strength(cfg: float, si: int, num_scales: int, pn: int, max_pn: int = 16) -> float:
    """Official VAR-style guidance t at scale si: cfg * si / min(K - 1, 9), or cfg when pn > max_pn.

    With 10 scales this is VAR's ramp 0 -> cfg; with more it exceeds cfg (13 scales end at
    cfg * 12 / 9). A single-scale schedule (a ZeroDivisionError officially) gets t = 0.
    """
    if pn > max_pn:
        return float(cfg)
    return cfg * si / min(num_scales - 1, 9) if num_scales > 1 else 0.0


def guided_logits(logits2: torch.Tensor, t: float) -> torch.Tensor:
    """(1 + t) * cond - t * uncond from the [cond; uncond] batch (B2, l, V)."""
    b = logits2.shape[0] // 2
    return (1 + t) * logits2[:b] - t * logits2[b:]


def is_greedy_scale(pn: int, max_pn: int = 16) -> bool:
    """The official loop samples scale pn greedily (top_k = 1) when pn > max_pn or pn not in SAMPLED_PNS.

    E.g. the 9-step schedule 1_2_3_4_5_7_10_13_16 is greedy at 7. LSRS candidates at such a
    scale would all be equal.
    """
    return pn > max_pn or pn not in SAMPLED_PNS


@dataclass(frozen=True)
class FlexVARConfig(TransformerConfig):
    """Shape of a FlexVAR: a TransformerConfig (width 64 * depth, heads = depth, drop path
    0.1 * depth / 24) with FlexVAE's vocabulary and a pos_grid x pos_grid position grid.
    `patch_nums` is only the initial schedule (the mask buffer's shape); `set_schedule` changes it."""

    vocab_size: int = 8912
    pos_grid: int = 32

    def __post_init__(self):
        super().__post_init__()
        check_schedule(self.patch_nums)
        if self.pos_grid < 1:
            raise ValueError(f"flexvar.pos_grid must be >= 1, got {self.pos_grid}")
        if self.embed_dim % 2:
            raise ValueError(f"flexvar width {self.embed_dim} must be even (sin/cos position grid)")


class FlexVAR(NextScaleModel):
    def __init__(self, cfg: FlexVARConfig = FlexVARConfig()):
        super().__init__()
        self.cfg = cfg
        c = cfg.embed_dim
        init_std = math.sqrt(1 / c / 3)
        self.pos_start = nn.Parameter(torch.empty(1, 1, c))
        nn.init.trunc_normal_(self.pos_start, mean=0, std=init_std)
        self.pos_1LC = nn.Parameter(sincos_grid(cfg.pos_grid, c))
        self.patch_nums = check_schedule(cfg.patch_nums)
        self.register_buffer(MASK_KEY, block_causal_bias(self.patch_nums))
        self.word_embed = nn.Linear(cfg.z_channels, c)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, c)  # row num_classes is the null class
        nn.init.trunc_normal_(self.class_emb.weight, mean=0, std=init_std)
        dpr = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(AdaLNBlock(cfg, dpr[i]) for i in range(cfg.depth))
        self.head_nm = AdaLNHead(cfg)
        self.head = nn.Linear(c, cfg.vocab_size)

    @property
    def null_class(self) -> int:
        return self.cfg.num_classes

    # --- schedule ------------------------------------------------------------------------------
    def set_schedule(self, patch_nums) -> None:
        """Use `patch_nums` for teacher forcing: rebuild the block-causal mask (official
        update_patch_related, without the xformers padding). The KV-cached `step` needs no schedule."""
        pns = check_schedule(patch_nums)
        if pns != self.patch_nums:
            self.patch_nums = pns
            old = self.attn_bias_for_masking
            self.attn_bias_for_masking = block_causal_bias(pns, device=old.device).to(old.dtype)

    # --- embeddings ----------------------------------------------------------------------------
    def pos(self, pn: int) -> torch.Tensor:
        """(1, pn^2, C): the position grid area-interpolated to pn x pn (1 x 1 is the grid's mean)."""
        return F.interpolate(self.pos_1LC, size=(pn, pn), mode="area").flatten(2).transpose(1, 2)

    def lvl_pos(self, patch_nums=None) -> torch.Tensor:
        """(1, L, C): positions of every token of a schedule (no level embedding in FlexVAR)."""
        return torch.cat([self.pos(pn) for pn in (patch_nums or self.patch_nums)], dim=1)

    def sos(self, cond: torch.Tensor, pn: int = 1) -> torch.Tensor:
        """(B, pn^2, C) first-scale input from the class embedding cond (B, C)."""
        return cond.unsqueeze(1).expand(-1, pn * pn, -1) + self.pos_start + self.pos(pn)

    def embed_scale(self, h: torch.Tensor) -> torch.Tensor:
        """(B, pn^2, C) input of a later scale from its (B, Cvae, pn, pn) map (FlexVAE.next_input)."""
        return self.word_embed(h.flatten(2).transpose(1, 2)) + self.pos(h.shape[-1])

    def logits(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Head logits in the compute dtype: FlexVAR does not cast to float32 (unlike VAR)."""
        return self.head(self.head_nm(h, cond))

    # --- teacher forcing -----------------------------------------------------------------------
    def forward(self, labels: torch.Tensor, x_inputs: torch.Tensor, patch_nums=None,
                drop_labels: bool = True) -> torch.Tensor:
        """Logits (B, L, V) for all positions of the schedule `patch_nums` (default: the current one).

        x_inputs (B, L - pn_0^2, Cvae) are FlexVAE.teacher_forcing_input. Labels are replaced by
        the null class with probability cond_drop_rate when `drop_labels` (the official forward
        does this in eval mode too; evaluation passes drop_labels=False).
        """
        if patch_nums is not None:
            self.set_schedule(patch_nums)
        pns = self.patch_nums
        first_l = pns[0] ** 2
        if x_inputs.shape[1] != sum(pn * pn for pn in pns) - first_l:
            raise ValueError(f"x_inputs has {x_inputs.shape[1]} tokens; the schedule {pns} needs "
                             f"{sum(pn * pn for pn in pns) - first_l}")
        if drop_labels and self.cfg.cond_drop_rate > 0:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.cfg.cond_drop_rate
            labels = torch.where(drop, self.null_class, labels)
        cond = self.class_emb(labels)
        first = cond.unsqueeze(1).expand(-1, first_l, -1) + self.pos_start
        x = torch.cat((first, self.word_embed(x_inputs.to(first.dtype))), dim=1) + self.lvl_pos(pns)
        for blk in self.blocks:
            x = blk(x, cond, self.attn_bias_for_masking)
        return self.logits(x, cond)

    # --- checkpoints (step, new_cache and init_weights come from NextScaleModel) ----------------

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Strict load with the checkpoint's `attn_bias_for_masking` replaced by our own buffer.

        That buffer depends on the schedule of the last training step (and xformers padding), not
        on learned weights; the official loaders overwrite it the same way.
        """
        state_dict = dict(state_dict)
        state_dict[MASK_KEY] = self.attn_bias_for_masking.detach().clone()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)



def unwrap_state(obj, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside an official checkpoint: obj['trainer']['var_wo_ddp'], obj['model'],
    obj['state_dict'] or obj itself."""
    if isinstance(obj, dict) and isinstance(obj.get("trainer"), dict) and "var_wo_ddp" in obj["trainer"]:
        obj = obj["trainer"]["var_wo_ddp"]
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{what} does not hold a state dict of tensors (bare, ['trainer']['var_wo_ddp'] "
                              f"or ['model'])")
    return dict(obj)


def read_flexvar_state(path: str | Path, what: str = "FlexVAR checkpoint", mmap: bool = False
                       ) -> dict[str, torch.Tensor]:
    """Load and unwrap a FlexVAR checkpoint file (weights_only: no code from the file runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises several types for corrupt, truncated or non-weights files
        raise CheckpointError(f"{what} {path} could not be read with weights_only=True "
                              f"({type(exc).__name__}: {exc})") from exc
    return unwrap_state(obj, f"{what} {path}")
