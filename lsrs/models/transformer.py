"""The VAR next-scale transformer: AdaLN blocks, l2-normalised attention, block-causal mask.

Parameter names and buffers follow the official checkpoints (`var_d16.pth` ... `var_d30.pth`) so
they load with ``strict=True``; numerics follow ARCHITECTURE.md section 2. The KV cache is an
explicit object passed to `step`, not module state, so the same model can serve several
generations at once and teacher forcing never sees a stale cache.

Token layout: position 0 is the class (sos) token; scale k occupies positions
begin[k]..begin[k] + pn_k^2 and is predicted from the inputs of scale k, which were built from
the tokens of scales < k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    """Shape of a VAR transformer. `width` defaults to 64 * depth, heads to depth (head dim 64)."""

    depth: int = 16
    width: int | None = None
    num_heads: int | None = None
    num_classes: int = 1000
    vocab_size: int = 4096
    z_channels: int = 32
    patch_nums: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    cond_drop_rate: float = 0.1
    drop_path_rate: float | None = None  # default: 0.1 * depth / 24, as build_vae_var

    def __post_init__(self):
        object.__setattr__(self, "patch_nums", tuple(self.patch_nums))
        if self.depth < 1:
            raise ValueError(f"var.depth must be >= 1, got {self.depth}")
        if self.embed_dim % self.heads:
            raise ValueError(f"var.width {self.embed_dim} is not divisible by num_heads {self.heads}")
        if not 0 <= self.cond_drop_rate < 1:
            raise ValueError("var.cond_drop_rate must be in [0, 1)")

    @property
    def embed_dim(self) -> int:
        return self.width if self.width is not None else 64 * self.depth

    @property
    def heads(self) -> int:
        return self.num_heads if self.num_heads is not None else self.depth

    @property
    def drop_path(self) -> float:
        return self.drop_path_rate if self.drop_path_rate is not None else 0.1 * self.depth / 24

    @property
    def seq_len(self) -> int:
        return sum(pn * pn for pn in self.patch_nums)

    @property
    def begin_ends(self) -> list[tuple[int, int]]:
        out, cur = [], 0
        for pn in self.patch_nums:
            out.append((cur, cur + pn * pn))
            cur += pn * pn
        return out


_LN100 = math.log(100)


class KVCache:
    """Per-block keys and values of the tokens seen so far, for scale-by-scale generation.

    It also keeps each block's adaLN modulation ``ada_lin(cond)``: cond is fixed for a whole
    generation, so it is computed at the first scale only (a 6C x C matrix-vector product per block
    and scale, memory-bound on CPU). It is recomputed if a different cond tensor comes in.
    """

    def __init__(self, depth: int):
        self.k: list[torch.Tensor | None] = [None] * depth
        self.v: list[torch.Tensor | None] = [None] * depth
        self._cond: torch.Tensor | None = None
        self._ada: list[torch.Tensor | None] = [None] * depth

    def modulation(self, i: int, cond: torch.Tensor, ada_lin: nn.Module) -> torch.Tensor:
        """ada_lin(cond) of block i, computed once per cond."""
        if cond is not self._cond:
            self._cond, self._ada = cond, [None] * len(self._ada)
        if self._ada[i] is None:
            self._ada[i] = ada_lin(cond)
        return self._ada[i]

    def extend(self, i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[i] is not None:
            k, v = torch.cat((self.k[i], k), dim=2), torch.cat((self.v[i], v), dim=2)
        self.k[i], self.v[i] = k, v
        return k, v


class SelfAttention(nn.Module):
    """Multi-head attention on l2-normalised q, k with a learned per-head scale and softmax scale 1."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        c, self.heads = cfg.embed_dim, cfg.heads
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, self.heads, 1, 1), 4.0).log())
        self.mat_qkv = nn.Linear(c, 3 * c, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(c))
        self.v_bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("zero_k_bias", torch.zeros(c))
        self.proj = nn.Linear(c, c)

    def forward(self, x, attn_bias=None, cache: KVCache | None = None, layer: int = 0):
        b, l, c = x.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        q, k, v = F.linear(x, self.mat_qkv.weight, bias).view(b, l, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q = F.normalize(q, dim=-1).mul(self.scale_mul_1H11.clamp_max(_LN100).exp())
        k = F.normalize(k, dim=-1)
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, scale=1.0)
        return self.proj(out.transpose(1, 2).reshape(b, l, c))


class FFN(nn.Module):
    def __init__(self, c: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c, hidden), nn.Linear(hidden, c)

    def forward(self, x):
        h = self.fc1(x)
        # Without autograd, GELU in place on the fresh fc1 output saves its largest allocation.
        h = torch.ops.aten.gelu_(h, approximate="tanh") if not torch.is_grad_enabled() else F.gelu(h, approximate="tanh")
        return self.fc2(h)


def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch per sample during training."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(1 - p)
    return x * keep / (1 - p)


class AdaLNBlock(nn.Module):
    """x += g1 * Attn(LN(x)(1+s1)+b1); x += g2 * FFN(LN(x)(1+s2)+b2), with (g, s, b) from the class."""

    def __init__(self, cfg: TransformerConfig, drop_path: float):
        super().__init__()
        c = cfg.embed_dim
        self.attn = SelfAttention(cfg)
        self.ffn = FFN(c, round(c * cfg.mlp_ratio))
        self.ln_wo_grad = nn.LayerNorm(c, eps=cfg.norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(c, 6 * c))
        self.drop_path = drop_path

    def forward(self, x, cond, attn_bias=None, cache: KVCache | None = None, layer: int = 0):
        # official split order: gamma1, gamma2, scale1, scale2, shift1, shift2
        ada = self.ada_lin(cond) if cache is None else cache.modulation(layer, cond, self.ada_lin)
        g1, g2, s1, s2, b1, b2 = ada.view(-1, 1, 6, x.shape[-1]).unbind(2)
        h = self.attn(self.ln_wo_grad(x).mul(s1.add(1)).add_(b1), attn_bias, cache, layer)
        x = x + _drop_path(h.mul_(g1), self.drop_path, self.training)
        h = self.ffn(self.ln_wo_grad(x).mul(s2.add(1)).add_(b2))
        return x + _drop_path(h.mul(g2), self.drop_path, self.training)


class AdaLNHead(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        c = cfg.embed_dim
        self.ln_wo_grad = nn.LayerNorm(c, eps=cfg.norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(c, 2 * c))

    def forward(self, x, cond):
        scale, shift = self.ada_lin(cond).view(-1, 1, 2, x.shape[-1]).unbind(2)
        return self.ln_wo_grad(x).mul(scale.add(1)).add_(shift)


class NextScaleModel(nn.Module):
    """What VAR and FlexVAR share beyond their blocks: KV-cached generation steps and the official
    init. Subclasses have `cfg` (depth, embed_dim), `blocks`, `head`, `head_nm` and `logits(x, cond)`."""

    def step(self, x: torch.Tensor, cond: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Run the new tokens x (B, l, C) of one scale through all blocks with the KV cache; logits."""
        for i, blk in enumerate(self.blocks):
            x = blk(x, cond, None, cache, i)
        return self.logits(x, cond)

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.depth)

    def init_weights(self, head_scale: float = 0.02, ada_scale: float = 0.5, gamma_scale: float = 1e-5):
        """The official init (training from scratch): see init_var_weights."""
        init_var_weights(self, head_scale, ada_scale, gamma_scale)


class VAR(NextScaleModel):
    def __init__(self, cfg: TransformerConfig = TransformerConfig()):
        super().__init__()
        self.cfg = cfg
        c, L = cfg.embed_dim, cfg.seq_len
        init_std = math.sqrt(1 / c / 3)
        self.word_embed = nn.Linear(cfg.z_channels, c)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, c)  # row num_classes is the null class
        self.pos_start = nn.Parameter(torch.empty(1, 1, c))
        self.pos_1LC = nn.Parameter(torch.empty(1, L, c))
        self.lvl_embed = nn.Embedding(len(cfg.patch_nums), c)
        for p in (self.class_emb.weight, self.pos_start, self.pos_1LC, self.lvl_embed.weight):
            nn.init.trunc_normal_(p, mean=0, std=init_std)
        dpr = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(AdaLNBlock(cfg, dpr[i]) for i in range(cfg.depth))
        self.head_nm = AdaLNHead(cfg)
        self.head = nn.Linear(c, cfg.vocab_size)

        lvl = torch.cat([torch.full((pn * pn,), i) for i, pn in enumerate(cfg.patch_nums)]).view(1, L)
        self.register_buffer("lvl_1L", lvl)
        mask = torch.where(lvl.view(L, 1) >= lvl.view(1, L), 0.0, -torch.inf).view(1, 1, L, L)
        self.register_buffer("attn_bias_for_masking", mask.contiguous())

    @property
    def null_class(self) -> int:
        return self.cfg.num_classes

    # --- embeddings ----------------------------------------------------------------------------
    def lvl_pos(self) -> torch.Tensor:
        """(1, L, C): level embedding plus absolute position of every token."""
        return self.lvl_embed(self.lvl_1L) + self.pos_1LC

    def sos(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, 1, C) first-scale input from the class embedding cond (B, C)."""
        return cond.unsqueeze(1) + self.pos_start + self.lvl_pos()[:, :1]

    def embed_scale(self, x: torch.Tensor, si: int) -> torch.Tensor:
        """Transformer input of scale si >= 1 from its (B, pn^2, Cvae) features."""
        b, e = self.cfg.begin_ends[si]
        return self.word_embed(x) + self.lvl_pos()[:, b:e]

    def logits(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_nm(h.float(), cond)).float()

    # --- teacher forcing -----------------------------------------------------------------------
    def forward(self, labels: torch.Tensor, x_wo_first: torch.Tensor, drop_labels: bool = True,
                return_hidden: bool = False):
        """Logits (B, L, V) for all positions given the class labels and the (B, L-1, Cvae) inputs.

        Labels are replaced by the null class with probability cond_drop_rate when `drop_labels`
        (the official forward does this in eval mode too; evaluation passes drop_labels=False).
        """
        if drop_labels and self.cfg.cond_drop_rate > 0:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.cfg.cond_drop_rate
            labels = torch.where(drop, self.null_class, labels)
        cond = self.class_emb(labels)
        lvl_pos = self.lvl_pos()
        x = torch.cat((cond.unsqueeze(1) + self.pos_start, self.word_embed(x_wo_first.float())), dim=1) + lvl_pos
        hidden = {"block_in_0": x}
        for i, blk in enumerate(self.blocks):
            x = blk(x, cond, self.attn_bias_for_masking)
            hidden[f"block_out_{i}"] = x
        h = self.head_nm(x.float(), cond)
        hidden["head_nm_out"] = h
        logits = self.head(h).float()
        return (logits, hidden) if return_hidden else logits



def init_var_weights(model: nn.Module, head_scale: float = 0.02, ada_scale: float = 0.5, gamma_scale: float = 1e-5):
    """The official init of VAR-family transformers (VAR, FlexVAR): trunc-normal(std=sqrt(1/3C)) with
    absolute bounds, scaled residual outputs. Needs `cfg`, `head`, `head_nm` and `blocks` on the model."""
    std = math.sqrt(1 / model.cfg.embed_dim / 3)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
    with torch.no_grad():
        model.head.weight.mul_(head_scale)
        model.head.bias.zero_()
        model.head_nm.ada_lin[-1].weight.mul_(ada_scale)
        model.head_nm.ada_lin[-1].bias.zero_()
        c, depth = model.cfg.embed_dim, model.cfg.depth
        for blk in model.blocks:
            blk.attn.proj.weight.div_(math.sqrt(2 * depth))
            blk.ffn.fc2.weight.div_(math.sqrt(2 * depth))
            w = blk.ada_lin[-1].weight
            w[2 * c:].mul_(ada_scale)
            w[:2 * c].mul_(gamma_scale)
            blk.ada_lin[-1].bias.zero_()
