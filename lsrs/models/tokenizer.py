"""The multi-scale VQ-VAE of VAR: a conv encoder/decoder and a residual multi-scale quantizer.

The module layout and parameter names follow the official checkpoint `vae_ch160v4096z32.pth`, so
that its state dict loads with ``strict=True``. The numerics follow the official code (see
``shared/reference/var/ARCHITECTURE.md`` section 1): PyTorch bicubic up, area down, Phi applied
after upsampling, plain L2 nearest code. The same classes, with a small config, are the mini
tokenizer trained on Fashion-MNIST.

Shapes: images (B, in_ch, H, W) in [-1, 1]; latents f / f_hat (B, Cvae, h, w) with h = w =
patch_nums[-1]; token maps are a list of (B, pn*pn) int64 tensors, row-major.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

# Which of the four shared Phi convs each scale uses, from the official float64 tick rule. Scales 2
# and 7 of the 10-scale schedule are exact ties that float64 rounding decides (ARCHITECTURE 1.5), so
# the official tables are hard-coded here; other scale counts use the same rule (np.linspace ticks,
# first index wins), computed in float64.
_PHI_INDEX = {
    10: (0, 0, 1, 1, 1, 2, 2, 3, 3, 3),
    14: (0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3),
}


def phi_index_per_scale(num_scales: int, num_phi: int) -> list[int]:
    """Index of the Phi conv used at each scale (PhiPartiallyShared's nearest-tick rule)."""
    if num_phi == 4 and num_scales in _PHI_INDEX:
        return list(_PHI_INDEX[num_scales])
    import numpy as np

    k = num_phi
    ticks = np.linspace(1 / 3 / k, 1 - 1 / 3 / k, k) if k == 4 else np.linspace(1 / 2 / k, 1 - 1 / 2 / k, k)
    return [int(np.argmin(np.abs(ticks - si / (num_scales - 1)))) if num_scales > 1 else 0
            for si in range(num_scales)]


@dataclass(frozen=True)
class TokenizerConfig:
    """Shape of a multi-scale VQ-VAE. Defaults are the official `vae_ch160v4096z32` config."""

    vocab_size: int = 4096
    z_channels: int = 32
    ch: int = 160
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    in_channels: int = 3
    patch_nums: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
    num_phi: int = 4
    quant_resi: float = 0.5
    beta: float = 0.25
    use_attn: bool = True  # attention at the lowest resolution and in the middle block
    norm_groups: int = 32

    def __post_init__(self):
        object.__setattr__(self, "ch_mult", tuple(self.ch_mult))
        object.__setattr__(self, "patch_nums", tuple(self.patch_nums))
        if self.vocab_size < 2 or self.z_channels < 1 or self.ch < 1:
            raise ValueError("tokenizer: vocab_size >= 2, z_channels >= 1 and ch >= 1 are required")
        if list(self.patch_nums) != sorted(set(self.patch_nums)) or self.patch_nums[0] < 1:
            raise ValueError(f"tokenizer.patch_nums must be strictly increasing positive ints, got {self.patch_nums}")
        if self.num_phi < 1:
            raise ValueError("tokenizer.num_phi must be >= 1")
        for c in (self.ch * m for m in self.ch_mult):
            if c % self.norm_groups:
                raise ValueError(f"tokenizer: channel width {c} is not divisible by norm_groups={self.norm_groups}")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def latent_size(self) -> int:
        return self.patch_nums[-1]

    @property
    def image_size(self) -> int:
        return self.latent_size * self.downsample


def _norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        # In-place SiLU and residual add (as the official code) save two full-size allocations per
        # block; autograd is unaffected (neither GroupNorm nor conv saves its output).
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        h = self.conv2(F.silu(self.norm2(h), inplace=True))
        return h.add_(self.nin_shortcut(x))


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with one fused 1x1 qkv conv, scale C^-0.5."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = _norm(c, groups)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: res blocks, optional attention after each, optional resampler."""

    def __init__(self, blocks: list[nn.Module], attn: list[nn.Module], resample: nn.Module | None, name: str):
        super().__init__()
        self.block, self.attn = nn.ModuleList(blocks), nn.ModuleList(attn)
        if resample is not None:
            self.add_module(name, resample)
        self._resample_name = name if resample is not None else None

    def forward(self, x):
        for i, blk in enumerate(self.block):
            x = blk(x)
            if len(self.attn):
                x = self.attn[i](x)
        return getattr(self, self._resample_name)(x) if self._resample_name else x


class _Mid(nn.Module):
    def __init__(self, c: int, groups: int, use_attn: bool):
        super().__init__()
        self.block_1 = ResnetBlock(c, c, groups)
        self.attn_1 = AttnBlock(c, groups) if use_attn else nn.Identity()
        self.block_2 = ResnetBlock(c, c, groups)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        g, widths = cfg.norm_groups, [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, 1, 1)
        levels, cin = [], cfg.ch
        for i, cout in enumerate(widths):
            last = i == len(widths) - 1
            blocks = [ResnetBlock(cin if j == 0 else cout, cout, g) for j in range(cfg.num_res_blocks)]
            attn = [AttnBlock(cout, g) for _ in blocks] if (last and cfg.use_attn) else []
            levels.append(_Level(blocks, attn, None if last else Downsample(cout), "downsample"))
            cin = cout
        self.down = nn.ModuleList(levels)
        self.mid = _Mid(cin, g, cfg.use_attn)
        self.norm_out = _norm(cin, g)
        self.conv_out = nn.Conv2d(cin, cfg.z_channels, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        g, widths = cfg.norm_groups, [cfg.ch * m for m in cfg.ch_mult]
        cin = widths[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, cin, 3, 1, 1)
        self.mid = _Mid(cin, g, cfg.use_attn)
        levels: list[nn.Module] = [None] * len(widths)  # type: ignore[list-item]
        for i in reversed(range(len(widths))):
            cout, top = widths[i], i == len(widths) - 1
            blocks = [ResnetBlock(cin if j == 0 else cout, cout, g) for j in range(cfg.num_res_blocks + 1)]
            attn = [AttnBlock(cout, g) for _ in blocks] if (top and cfg.use_attn) else []
            levels[i] = _Level(blocks, attn, Upsample(cout) if i > 0 else None, "upsample")
            cin = cout
        self.up = nn.ModuleList(levels)  # indexed by level, run from the top level down
        self.norm_out = _norm(cin, g)
        self.conv_out = nn.Conv2d(cin, cfg.in_channels, 3, 1, 1)

    def forward(self, z):
        # channels_last lets the CPU (oneDNN) convs skip their layout reorders: ~15% faster decoding,
        # outputs equal to NCHW up to float rounding (~1e-7).
        h = self.mid(self.conv_in(z.contiguous(memory_format=torch.channels_last)))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True)).contiguous()


class Phi(nn.Conv2d):
    """Phi(h) = (1 - r) * h + r * conv3x3(h): the residual refiner applied to each scale's codes."""

    def __init__(self, c: int, ratio: float):
        super().__init__(c, c, 3, 1, 1)
        self.ratio = ratio

    def forward(self, h):
        return h.mul(1 - self.ratio) + super().forward(h).mul_(self.ratio)


class _PhiSet(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.qresi_ls = nn.ModuleList(Phi(cfg.z_channels, cfg.quant_resi) for _ in range(cfg.num_phi))


class MultiScaleQuantizer(nn.Module):
    """Residual quantization over `patch_nums` scales with shared Phi convs (official VectorQuantizer2)."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_nums = cfg.patch_nums
        self.quant_resi = _PhiSet(cfg)  # registered first: the official state-dict key order
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.z_channels)
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(cfg.patch_nums), cfg.vocab_size))
        self.phi_index = phi_index_per_scale(len(cfg.patch_nums), cfg.num_phi)

    # --- the per-scale primitives every path shares -------------------------------------------
    def phi(self, si: int, h: torch.Tensor) -> torch.Tensor:
        return self.quant_resi.qresi_ls[self.phi_index[si]](h)

    def upsample(self, h: torch.Tensor) -> torch.Tensor:
        """Bicubic up to the latent size (identity at the last scale)."""
        size = self.patch_nums[-1]
        return h if h.shape[-1] == size else F.interpolate(h, size=(size, size), mode="bicubic")

    @staticmethod
    def downsample(f: torch.Tensor, pn: int) -> torch.Tensor:
        return f if f.shape[-1] == pn else F.interpolate(f, size=(pn, pn), mode="area")

    def codes_to_map(self, idx: torch.Tensor, pn: int) -> torch.Tensor:
        """(B, pn*pn) token ids -> (B, Cvae, pn, pn) code map, with the official memory layout."""
        return self.embedding(idx).transpose(1, 2).reshape(idx.shape[0], -1, pn, pn)

    def scale_contribution(self, si: int, h: torch.Tensor) -> torch.Tensor:
        """Phi(up(h)): what scale si adds to f_hat, given its (B, Cvae, pn, pn) code map."""
        return self.phi(si, self.upsample(h))

    def nearest_code(self, z: torch.Tensor) -> torch.Tensor:
        """argmin_v ||z - e_v||^2 over rows of z (N, C), in the official expanded fp32 form."""
        e = self.embedding.weight
        d = z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1)
        d.addmm_(z, e.T, alpha=-2, beta=1)
        return d.argmin(1)

    # --- encoding ------------------------------------------------------------------------------
    def quantize(self, f: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Residual multi-scale quantization of f. Returns (token maps, cumulative f_hat per scale)."""
        b, c = f.shape[:2]
        f_rest, f_hat = f.detach().clone(), torch.zeros_like(f)
        idx_list, fhats = [], []
        for si, pn in enumerate(self.patch_nums):
            z = self.downsample(f_rest, pn).permute(0, 2, 3, 1).reshape(-1, c)
            idx = self.nearest_code(z).view(b, pn * pn)
            h = self.scale_contribution(si, self.embedding(idx).view(b, pn, pn, c).permute(0, 3, 1, 2))
            f_hat = f_hat + h
            f_rest = f_rest - h
            idx_list.append(idx)
            fhats.append(f_hat.clone())
        return idx_list, fhats

    def training_forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """VQ training pass: (straight-through f_hat, VQ loss, per-scale code hit counts (S, V))."""
        b, c = f.shape[:2]
        f_rest, f_hat = f.detach().clone(), torch.zeros_like(f)
        loss, hits = f.new_zeros(()), f.new_zeros(len(self.patch_nums), self.cfg.vocab_size)
        for si, pn in enumerate(self.patch_nums):
            z = self.downsample(f_rest, pn).permute(0, 2, 3, 1).reshape(-1, c)
            with torch.no_grad():
                idx = self.nearest_code(z)
            hits[si] = torch.bincount(idx, minlength=self.cfg.vocab_size).float()
            h = self.scale_contribution(si, self.embedding(idx).view(b, pn, pn, c).permute(0, 3, 1, 2))
            f_hat = f_hat + h
            f_rest = f_rest - h.detach()
            loss = loss + self.cfg.beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f.detach())
        return (f_hat - f).detach() + f, loss / len(self.patch_nums), hits

    # --- decoding paths ------------------------------------------------------------------------
    def idx_to_fhats(self, idx_list: list[torch.Tensor]) -> list[torch.Tensor]:
        """Cumulative f_hat after each scale, from token maps (official embed_to_fhat)."""
        f_hat, out = None, []
        for si, (idx, pn) in enumerate(zip(idx_list, self.patch_nums)):
            h = self.scale_contribution(si, self.codes_to_map(idx, pn))
            f_hat = h if f_hat is None else f_hat + h
            out.append(f_hat)
        return out

    def next_input(self, si: int, f_hat: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add scale si's code map h (B, C, pn, pn) to f_hat; return (f_hat, next transformer input).

        The next input is the area-downsampled cumulative f_hat at the next scale's size (at the
        last scale, f_hat itself).
        """
        f_hat = f_hat + self.scale_contribution(si, h)
        if si == len(self.patch_nums) - 1:
            return f_hat, f_hat
        return f_hat, self.downsample(f_hat, self.patch_nums[si + 1])

    def teacher_forcing_input(self, idx_list: list[torch.Tensor]) -> torch.Tensor:
        """(B, L - 1, Cvae): the transformer inputs for scales 1..K-1 built from ground-truth tokens."""
        b = idx_list[0].shape[0]
        f_hat = torch.zeros(b, self.cfg.z_channels, self.patch_nums[-1], self.patch_nums[-1],
                            device=idx_list[0].device, dtype=self.embedding.weight.dtype)
        pieces = []
        for si in range(len(self.patch_nums) - 1):
            f_hat, nxt = self.next_input(si, f_hat, self.codes_to_map(idx_list[si], self.patch_nums[si]))
            pieces.append(nxt.flatten(2).transpose(1, 2))
        return torch.cat(pieces, dim=1)


class VQVAE(nn.Module):
    """Encoder -> quant_conv -> multi-scale quantizer -> post_quant_conv -> decoder."""

    def __init__(self, cfg: TokenizerConfig = TokenizerConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = MultiScaleQuantizer(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 3, 1, 1)
        self.post_quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 3, 1, 1)

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> continuous latents f (B, Cvae, h, w)."""
        return self.quant_conv(self.encoder(img))

    def img_to_idx(self, img: torch.Tensor) -> list[torch.Tensor]:
        return self.quantize.quantize(self.encode(img))[0]

    def decode_raw(self, f_hat: torch.Tensor) -> torch.Tensor:
        """f_hat -> decoder output, not clamped."""
        return self.decoder(self.post_quant_conv(f_hat))

    def fhat_to_img(self, f_hat: torch.Tensor) -> torch.Tensor:
        """f_hat -> image in [-1, 1]."""
        return self.decode_raw(f_hat).clamp_(-1, 1)

    def idx_to_img(self, idx_list: list[torch.Tensor]) -> torch.Tensor:
        return self.fhat_to_img(self.quantize.idx_to_fhats(idx_list)[-1])

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Strict load that tolerates a differently sized `ema_vocab_hit_SV`, as the official one does.

        The buffer only records training statistics, so a checkpoint made with another number of
        scales keeps our own zeros.
        """
        key = "quantize.ema_vocab_hit_SV"
        if key in state_dict and state_dict[key].shape != self.quantize.ema_vocab_hit_SV.shape:
            state_dict = dict(state_dict)
            state_dict[key] = self.quantize.ema_vocab_hit_SV.detach().clone()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
