"""FlexVAE: FlexVAR's tokenizer, LlamaGen's VQ-16 with an L2-normalised codebook.

Unlike VAR's VQ-VAE there is no residual and no Phi: the encoder's latent h (after `quant_conv`)
is area-downsampled to each scale's size and quantised on its own, so every scale is a complete,
coarser copy of the same latent. An image is decoded from the last scale's indices alone.

The module layout and parameter names follow the official checkpoint `FlexVAE.pth` (state dict
under 'model'), so it loads with ``strict=True``; numerics follow the official code (FLEXVAR.md
sections 1-2): cosine nearest code (latent and codebook rows both normalised), 'area' down,
'bicubic' up with align_corners=False, decoder output not clamped.

Shapes: images (B, in_ch, H, W) in [-1, 1]; latents h (B, Cvae, H/16, W/16); token maps
(B, pn*pn) int64, row-major; code maps (B, Cvae, pn, pn) of unit-norm codebook vectors.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lsrs.models.tokenizer import Downsample, ResnetBlock, Upsample

USAGE_WINDOW = 65536  # length of the official `quantize.codebook_used` buffer (training statistics only)


@dataclass(frozen=True)
class FlexVAEConfig:
    """Shape of a FlexVAE. Defaults are the official VQ-16 with V = 8912, Cvae = 32 (`FlexVAE.pth`)."""

    codebook_size: int = 8912
    codebook_embed_dim: int = 32
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    in_channels: int = 3
    norm_groups: int = 32

    def __post_init__(self):
        object.__setattr__(self, "ch_mult", tuple(self.ch_mult))
        if self.codebook_size < 2 or self.codebook_embed_dim < 1:
            raise ValueError("flexvae: codebook_size >= 2 and codebook_embed_dim >= 1 are required")
        if self.ch < 1 or self.z_channels < 1 or self.in_channels < 1 or self.num_res_blocks < 1:
            raise ValueError("flexvae: ch, z_channels, in_channels and num_res_blocks must be >= 1")
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise ValueError(f"flexvae.ch_mult must be a non-empty tuple of positive ints, got {self.ch_mult}")
        for c in (self.ch * m for m in self.ch_mult):
            if c % self.norm_groups:
                raise ValueError(f"flexvae: channel width {c} is not divisible by norm_groups={self.norm_groups}")

    @property
    def downsample(self) -> int:
        """Image pixels per latent cell along each side (16 for VQ-16)."""
        return 2 ** (len(self.ch_mult) - 1)


def _group_norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, c, eps=1e-6, affine=True)


class AttnBlock(nn.Module):
    """LlamaGen's single-head spatial self-attention, scale C^-0.5.

    Separate 1x1 q, k, v convs (not VAR's fused qkv): those are the checkpoint's keys.
    """

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = _group_norm(c, groups)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (conv(n).reshape(b, c, h * w).transpose(1, 2) for conv in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(c)) v, as the official bmm
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class _Level(nn.Module):
    """One resolution level (`conv_blocks.N`): res blocks, attention after each (top level), resampler."""

    def __init__(self, res: list[nn.Module], attn: list[nn.Module], resample_name: str,
                 resample: nn.Module | None):
        super().__init__()
        self.res, self.attn = nn.ModuleList(res), nn.ModuleList(attn)
        self._resample_name = resample_name if resample is not None else None
        if resample is not None:
            self.add_module(resample_name, resample)

    def forward(self, x):
        for i, blk in enumerate(self.res):
            x = blk(x)
            if len(self.attn):
                x = self.attn[i](x)
        return getattr(self, self._resample_name)(x) if self._resample_name else x


def _mid(c: int, groups: int) -> nn.Sequential:
    return nn.Sequential(ResnetBlock(c, c, groups), AttnBlock(c, groups), ResnetBlock(c, c, groups))


class Encoder(nn.Module):
    def __init__(self, cfg: FlexVAEConfig):
        super().__init__()
        g, widths = cfg.norm_groups, [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, 1, 1)
        levels, cin = [], cfg.ch
        for i, cout in enumerate(widths):
            last = i == len(widths) - 1
            res = [ResnetBlock(cin if j == 0 else cout, cout, g) for j in range(cfg.num_res_blocks)]
            attn = [AttnBlock(cout, g) for _ in res] if last else []
            levels.append(_Level(res, attn, "downsample", None if last else Downsample(cout)))
            cin = cout
        self.conv_blocks = nn.ModuleList(levels)
        self.mid = _mid(cin, g)
        self.norm_out = _group_norm(cin, g)
        self.conv_out = nn.Conv2d(cin, cfg.z_channels, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.conv_blocks:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, cfg: FlexVAEConfig):
        super().__init__()
        g, widths = cfg.norm_groups, [cfg.ch * m for m in cfg.ch_mult]
        cin = widths[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, cin, 3, 1, 1)
        self.mid = _mid(cin, g)
        levels = []
        for i in reversed(range(len(widths))):  # conv_blocks.0 is the lowest resolution
            cout, top = widths[i], i == len(widths) - 1
            res = [ResnetBlock(cin if j == 0 else cout, cout, g) for j in range(cfg.num_res_blocks + 1)]
            attn = [AttnBlock(cout, g) for _ in res] if top else []
            levels.append(_Level(res, attn, "upsample", Upsample(cout) if i > 0 else None))
            cin = cout
        self.conv_blocks = nn.ModuleList(levels)
        self.norm_out = _group_norm(cin, g)
        self.conv_out = nn.Conv2d(cin, cfg.in_channels, 3, 1, 1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for level in self.conv_blocks:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class L2Quantizer(nn.Module):
    """Nearest code by cosine similarity: latent vectors and codebook rows are both L2-normalised."""

    def __init__(self, cfg: FlexVAEConfig):
        super().__init__()
        v = cfg.codebook_size
        self.embedding = nn.Embedding(v, cfg.codebook_embed_dim)
        with torch.no_grad():  # official init: uniform(-1/V, 1/V), then rows normalised
            self.embedding.weight.uniform_(-1.0 / v, 1.0 / v)
            self.embedding.weight.copy_(F.normalize(self.embedding.weight, p=2, dim=-1))
        self.register_buffer("codebook_used", torch.zeros(USAGE_WINDOW))

    def codebook(self) -> torch.Tensor:
        """(V, Cvae) unit-norm code vectors: what the tokens mean everywhere (inputs and decoding)."""
        return F.normalize(self.embedding.weight, p=2, dim=-1)

    def nearest(self, z: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """(N,) index of the nearest unit code to each normalised row of z (N, Cvae).

        Same expanded form as the official code, ||z||^2 + ||e||^2 - 2 z.e, for the same ties;
        rows are processed in chunks so the (N, V) distance matrix never gets large.
        """
        z = F.normalize(z, p=2, dim=-1)
        e = self.codebook()
        e2 = e.pow(2).sum(1)
        return torch.cat([(zc.pow(2).sum(1, keepdim=True) + e2 - 2 * (zc @ e.T)).argmin(1)
                          for zc in z.split(chunk)])


class FlexVAE(nn.Module):
    """Encoder -> quant_conv -> per-scale L2 quantiser; codes -> post_quant_conv -> decoder."""

    def __init__(self, cfg: FlexVAEConfig = FlexVAEConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = L2Quantizer(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.codebook_embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.codebook_embed_dim, cfg.z_channels, 1)

    # --- encoding ------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> continuous latent h (B, Cvae, H/16, W/16) (official encode_conti)."""
        return self.quant_conv(self.encoder(x))

    def quantize_map(self, h: torch.Tensor) -> torch.Tensor:
        """(B, Cvae, h, w) latent -> (B, h*w) nearest-code indices, row-major."""
        b, c = h.shape[:2]
        return self.quantize.nearest(h.permute(0, 2, 3, 1).reshape(-1, c)).view(b, -1)

    @staticmethod
    def downsample(h: torch.Tensor, pn: int) -> torch.Tensor:
        """The latent at scale pn: area interpolation (adaptive average pooling)."""
        return F.interpolate(h, size=(pn, pn), mode="area")

    def img_to_idx(self, x: torch.Tensor, patch_nums: tuple[int, ...] | list[int]) -> list[torch.Tensor]:
        """Token maps (B, pn*pn) for every scale: each scale is area(h, pn) quantised on its own.

        As the official trainer (`encode_var_wo_firstL`), the area step is applied after
        quant_conv. There is no residual between scales.
        """
        h = self.encode(x)
        return [self.quantize_map(self.downsample(h, pn)) for pn in patch_nums]

    # --- code maps -----------------------------------------------------------------------------
    def codes(self, idx: torch.Tensor, pn: int) -> torch.Tensor:
        """(B, pn*pn) indices -> (B, Cvae, pn, pn) unit-norm code vectors (the r_k that LSRS scores)."""
        # F.embedding rather than codebook()[idx]: the same values, but its CPU backward is deterministic
        # (indexing's backward accumulates with atomic adds across threads, so training would not repeat)
        return F.embedding(idx, self.quantize.codebook()).view(idx.shape[0], pn, pn, -1).permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def upsample(h: torch.Tensor, next_pn: int) -> torch.Tensor:
        """FlexVAR's inter-scale operator: bicubic, align_corners=False (the official default)."""
        return F.interpolate(h, size=(next_pn, next_pn), mode="bicubic")

    def next_input(self, idx: torch.Tensor, pn: int, next_pn: int) -> torch.Tensor:
        """(B, Cvae, next_pn, next_pn): the chosen codes of scale pn upsampled to the next scale.

        The transformer embeds this (word_embed + position) to predict the next scale's tokens,
        both in teacher forcing and at inference.
        """
        return self.upsample(self.codes(idx, pn), next_pn)

    def teacher_forcing_input(self, idx_list: list[torch.Tensor], patch_nums: tuple[int, ...] | list[int]
                              ) -> torch.Tensor:
        """(B, L - pn_0^2, Cvae): the transformer inputs of scales 1..K-1 from ground-truth tokens."""
        if len(idx_list) != len(patch_nums):
            raise ValueError(f"{len(idx_list)} token maps for a {len(patch_nums)}-scale schedule")
        pieces = [self.next_input(idx_list[k], patch_nums[k], patch_nums[k + 1]).flatten(2).transpose(1, 2)
                  for k in range(len(patch_nums) - 1)]
        if not pieces:
            b = idx_list[0].shape[0]
            return self.quant_conv.weight.new_zeros(b, 0, self.cfg.codebook_embed_dim)
        return torch.cat(pieces, dim=1)

    # --- decoding ------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, Cvae, h, w) code map -> image; not clamped (official `decode`)."""
        return self.decoder(self.post_quant_conv(z))

    def decode_idx(self, idx_last: torch.Tensor, pn: int) -> torch.Tensor:
        """Image from the last scale's indices only, nominally in [-1, 1] but not clamped (as official)."""
        return self.decode(self.codes(idx_last, pn))
