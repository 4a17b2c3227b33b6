"""The LSRS scoring model S(c, e_k, k) and its pluggable inputs (paper section 3.3, appendix A).

Architecture (appendix A; shapes as in the authors' `RewardNet` state dict, our own code): the scorer
input x (N, C, S, S) goes through stride-2 stages of residual blocks, each block

    conv3x3 - LN(C,H,W) - LReLU - conv3x3 - LN - LReLU - conv1x1 - LN  (+ shortcut)  - LReLU

where the shortcut is conv1x1 + LN when the block changes width or resolution (the first block of
every stage) and the identity otherwise; the stride 2 sits in the first block's first conv and its
shortcut. Dropout follows every stage. The flattened feature is concatenated with a class and a
scale embedding (Embedding -> Linear, emb_dim each) and an MLP maps it to one score: LeakyReLU after
every hidden Linear but the last (the authors' `fuser` ends in a bare Linear(256, 128)), then `out_proj`.
Convs have no bias (each is followed by a LayerNorm). The `paper` preset (32x16x16 input, widths
32->64->128->256 ending at 256x2x2, MLP 1280->512->256->128->1) has exactly 4,007,425 parameters,
and its state-dict keys and shapes equal the authors' manifest.

Inputs are pluggable (`ScorerInput`): for VAR the input at scale k is e_k, the cumulative f_hat
after scale k (`VarInput`); FlexVAR would score the embedding of the candidate's own r_k instead
(appendix A, "LSRS for FlexVAR") and only needs another `ScorerInput`. Every input implements two
paths that must agree: `all_scales` (training: every scale of whole token maps, computed
incrementally) and `candidates` (inference: one scale's candidates given the e_k that
`lsrs.sampling.rejection.LSRSSelector` already built).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from lsrs.core.checkpoint import config_from_json, load_into
from lsrs.models.tokenizer import VQVAE

INPUT_KINDS = ("var", "flexvar")


@dataclass(frozen=True)
class ScorerConfig:
    """Shape of the scoring network. Defaults are the paper's (VAR, ImageNet, 10 scales)."""

    in_channels: int = 32  # Cvae of the tokenizer
    input_size: int = 16  # S: the scorer sees (in_channels, S, S); inputs of another size are resized
    widths: tuple[int, ...] = (64, 128, 256)  # output width of each stride-2 stage
    blocks_per_stage: int = 2
    num_classes: int = 1000
    num_scales: int = 10
    emb_dim: int = 128
    mlp_dims: tuple[int, ...] = (512, 256, 128)  # hidden widths of the fusion MLP; a Linear(.., 1) follows
    dropout: float = 0.05  # after every conv stage
    leaky_slope: float = 0.2
    input_kind: str = "var"  # which ScorerInput builds x (see INPUT_KINDS)

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "mlp_dims", tuple(self.mlp_dims))
        positive = ("in_channels", "input_size", "blocks_per_stage", "num_classes", "num_scales", "emb_dim")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"scorer.{name} must be >= 1, got {getattr(self, name)}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"scorer.widths must be a non-empty list of positive ints, got {self.widths}")
        if any(d < 1 for d in self.mlp_dims):
            raise ValueError(f"scorer.mlp_dims must be positive ints, got {self.mlp_dims}")
        if self.input_size % self.downsample:
            raise ValueError(f"scorer.input_size={self.input_size} must be divisible by 2**len(widths)="
                             f"{self.downsample} (one stride-2 stage per width)")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"scorer.dropout must be in [0, 1), got {self.dropout}")
        if self.leaky_slope < 0:
            raise ValueError(f"scorer.leaky_slope must be >= 0, got {self.leaky_slope}")
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"scorer.input_kind must be one of {INPUT_KINDS}, got {self.input_kind!r}")

    @property
    def downsample(self) -> int:
        return 2 ** len(self.widths)

    @property
    def feature_size(self) -> int:
        """Spatial size after the last stage (2 for both presets)."""
        return self.input_size // self.downsample

    @property
    def feature_dim(self) -> int:
        return self.widths[-1] * self.feature_size ** 2

    @classmethod
    def preset(cls, name: str, **changes) -> "ScorerConfig":
        if name not in SCORER_PRESETS:
            raise ValueError(f"unknown scorer preset {name!r} (known: {sorted(SCORER_PRESETS)})")
        return cls(**{**SCORER_PRESETS[name], **changes})


SCORER_PRESETS: dict[str, dict] = {
    # appendix A / authors' RewardNet: 32x16x16 -> 64x8x8 -> 128x4x4 -> 256x2x2, 4,007,425 parameters
    "paper": dict(in_channels=32, input_size=16, widths=(64, 128, 256), blocks_per_stage=2, num_classes=1000,
                  num_scales=10, emb_dim=128, mlp_dims=(512, 256, 128), dropout=0.05),
    # mini tokenizer (z_channels=16, 8x8 latent, 7 scales, 10 classes): 16x8x8 -> 4x4x4 -> 8x2x2, 7,145
    # parameters, 57 kFLOP per candidate: the paper preset's cost relative to its VAR (55 MFLOP per
    # candidate = 9.2e-5 of a VAR-d16 image) applied to the mini VAR-d4 (0.60 GFLOP per image)
    "mini": dict(in_channels=16, input_size=8, widths=(4, 8), blocks_per_stage=2, num_classes=10,
                 num_scales=7, emb_dim=8, mlp_dims=(32, 16, 8), dropout=0.05),
}


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, size: int, stride: int, slope: float):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.ln1 = nn.LayerNorm([cout, size, size])
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.ln2 = nn.LayerNorm([cout, size, size])
        self.conv3 = nn.Conv2d(cout, cout, 1, bias=False)
        self.ln3 = nn.LayerNorm([cout, size, size])
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.LayerNorm([cout, size, size]))
                         if stride != 1 or cin != cout else nn.Identity())
        self.slope = slope

    def forward(self, x):
        act = lambda t: F.leaky_relu(t, self.slope)  # noqa: E731
        h = act(self.ln1(self.conv1(x)))
        h = act(self.ln2(self.conv2(h)))
        h = self.ln3(self.conv3(h))
        return act(h + self.shortcut(x))


class Scorer(nn.Module):
    """S(c, x, k) -> score. `forward(x, labels, scale)`: x (N, C, S, S), labels and scale (N,) int64."""

    def __init__(self, cfg: ScorerConfig = ScorerConfig()):
        super().__init__()
        self.cfg = cfg
        cin, size = cfg.in_channels, cfg.input_size
        for i, cout in enumerate(cfg.widths):
            size //= 2
            blocks = [ResidualBlock(cin if j == 0 else cout, cout, size, 2 if j == 0 else 1, cfg.leaky_slope)
                      for j in range(cfg.blocks_per_stage)]
            self.add_module(f"conv_stage_{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.dropout = nn.Dropout(cfg.dropout)
        self.class_label_embedding = nn.Embedding(cfg.num_classes, cfg.emb_dim)
        self.class_label_proj = nn.Linear(cfg.emb_dim, cfg.emb_dim)
        self.stage_label_embedding = nn.Embedding(cfg.num_scales, cfg.emb_dim)
        self.stage_label_proj = nn.Linear(cfg.emb_dim, cfg.emb_dim)
        # the authors' fuser: LeakyReLU after every hidden Linear but the last, which feeds out_proj directly
        layers, d = [], cfg.feature_dim + 2 * cfg.emb_dim
        for i, h in enumerate(cfg.mlp_dims):
            layers.append(nn.Linear(d, h))
            if i < len(cfg.mlp_dims) - 1:
                layers.append(nn.LeakyReLU(cfg.leaky_slope))
            d = h
        self.fuser = nn.Sequential(*layers)
        self.out_proj = nn.Linear(d, 1)
        self.reset_parameters()

    @property
    def stages(self) -> list[nn.Module]:
        return [getattr(self, f"conv_stage_{i + 1}") for i in range(len(self.cfg.widths))]

    def reset_parameters(self) -> None:
        """The authors' init: Kaiming-normal (fan_out, ReLU gain) convs, Xavier-uniform linears with zero
        bias, N(0, 0.02) embeddings truncated at +-2 (absolute, as torch's default: in effect untruncated)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=0.02)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = self.dropout(stage(x))
        return x.flatten(1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if x.shape[1:] != (cfg.in_channels, cfg.input_size, cfg.input_size):
            raise ValueError(f"scorer input must be (N, {cfg.in_channels}, {cfg.input_size}, {cfg.input_size}), "
                             f"got {tuple(x.shape)}")
        c = self.class_label_proj(self.class_label_embedding(labels))
        k = self.stage_label_proj(self.stage_label_embedding(scale))
        h = torch.cat([self.features(x), c, k], dim=1)
        return self.out_proj(self.fuser(h)).squeeze(1)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- inputs
def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Spatially resize (N, C, h, w) to size x size: area when shrinking, bicubic when growing."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    mode = "area" if x.shape[-1] > size else "bicubic"
    return F.interpolate(x, size=(size, size), mode=mode)


class ScorerInput(Protocol):
    """Builds the scorer input x from token maps. Both paths must give the same x for the same map."""

    kind: str
    num_scales: int

    def all_scales(self, idx_list: list[torch.Tensor]) -> torch.Tensor:
        """x for every scale of N whole token maps: (N, K, C, S, S), from per-scale (N, pn*pn) ids."""

    def candidates(self, e_k: torch.Tensor, idx: torch.Tensor, si: int) -> torch.Tensor:
        """x (N, C, S, S) for N candidates at scale si: their cumulative e_k (N, Cvae, h, w) and ids (N, l)."""


class VarInput:
    """VAR: x_k = e_k = f_hat after scale k = sum_{j<=k} Phi_j(up(embed(r_j))), resized to input_size.

    `all_scales` walks the scales once with `quantize.idx_to_fhats` (each scale's contribution is added
    to the running sum, never re-summing earlier scales).
    """

    kind = "var"

    def __init__(self, vae: VQVAE, input_size: int | None = None):
        self.vae = vae
        self.patch_nums = tuple(vae.cfg.patch_nums)
        self.num_scales = len(self.patch_nums)
        self.input_size = input_size or vae.cfg.latent_size

    @torch.no_grad()
    def all_scales(self, idx_list: list[torch.Tensor]) -> torch.Tensor:
        fhats = self.vae.quantize.idx_to_fhats([i.long() for i in idx_list])
        return torch.stack([resize_to(f, self.input_size) for f in fhats], dim=1)

    def candidates(self, e_k: torch.Tensor, idx: torch.Tensor, si: int) -> torch.Tensor:
        return resize_to(e_k, self.input_size)


class FlexInput:
    """FlexVAR: x_k = r_k itself, the candidate's unit-norm codes (Cvae, pn, pn) resized to input_size.

    FlexVAR keeps no cumulative map: each scale is a complete coarse latent, so the scorer reads the
    scale's own code map (FLEXVAR.md section 5). The resize is FlexVAR's inter-scale operator,
    bicubic (the paper does not name one; an assumption); a map already at input_size is used as is.
    """

    kind = "flexvar"

    def __init__(self, vae, patch_nums: tuple[int, ...], input_size: int):
        self.vae, self.patch_nums, self.input_size = vae, tuple(patch_nums), input_size
        self.num_scales = len(self.patch_nums)

    def _x(self, idx: torch.Tensor, pn: int) -> torch.Tensor:
        h = self.vae.codes(idx.long(), pn)
        return h if pn == self.input_size else self.vae.upsample(h, self.input_size)

    @torch.no_grad()
    def all_scales(self, idx_list: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([self._x(i, pn) for i, pn in zip(idx_list, self.patch_nums)], dim=1)

    def candidates(self, e_k: torch.Tensor | None, idx: torch.Tensor, si: int) -> torch.Tensor:
        return self._x(idx, self.patch_nums[si])


def make_input(kind: str, vae: VQVAE, input_size: int | None = None,
               patch_nums: tuple[int, ...] | None = None) -> ScorerInput:
    """The scorer input of `kind`: 'var' (e_k from VAR's VQ-VAE) or 'flexvar' (r_k from a FlexVAE,
    whose schedule `patch_nums` is chosen at sampling time and must be given)."""
    if kind == "var":
        return VarInput(vae, input_size)
    if kind == "flexvar":
        if patch_nums is None or input_size is None:
            raise ValueError("the flexvar scorer input needs the schedule patch_nums and input_size")
        return FlexInput(vae, patch_nums, input_size)
    raise ValueError(f"unknown scorer input kind {kind!r} (known: {INPUT_KINDS})")


def check_compatible(cfg: ScorerConfig, vae: VQVAE, patch_nums: tuple[int, ...] | None = None) -> None:
    """Raise ValueError when the scorer cannot read this tokenizer's maps (a FlexVAE's with the
    schedule `patch_nums`: its code vectors have codebook_embed_dim channels)."""
    channels = vae.cfg.z_channels if patch_nums is None else vae.cfg.codebook_embed_dim
    scales = len(vae.cfg.patch_nums if patch_nums is None else patch_nums)
    if cfg.in_channels != channels:
        raise ValueError(f"scorer in_channels={cfg.in_channels} but the tokenizer's maps have {channels} channels")
    if cfg.num_scales != scales:
        raise ValueError(f"scorer num_scales={cfg.num_scales} but the tokenizer has {scales} scales")


class ScorerScoreFn:
    """A trained scorer as the `score_fn` of `lsrs.sampling.rejection.LSRSSelector` (eval mode, no grad)."""

    def __init__(self, scorer: Scorer, input_fn: ScorerInput):
        self.scorer, self.input_fn = scorer.eval(), input_fn

    @torch.no_grad()
    def __call__(self, e_k: torch.Tensor, idx: torch.Tensor, labels: torch.Tensor, si: int) -> torch.Tensor:
        x = self.input_fn.candidates(e_k, idx, si)
        p = next(self.scorer.parameters())
        scale = torch.full((x.shape[0],), si, dtype=torch.long, device=p.device)
        return self.scorer(x.to(p.device, p.dtype), labels.long().to(p.device), scale)


def load_scorer(path: str | Path, map_location: str = "cpu") -> Scorer:
    """A scorer from `name.pth` and the `name.json` config beside it (strict load)."""
    path = Path(path)
    cfg = config_from_json(ScorerConfig, path.with_suffix(".json"))
    model = Scorer(cfg)
    load_into(model, path, what="scorer checkpoint", hint="train it with `lsrs train-scorer`")
    return model.to(map_location).eval()


__all__ = ["ScorerConfig", "SCORER_PRESETS", "Scorer", "ResidualBlock", "ScorerInput", "VarInput", "FlexInput", "make_input",
           "ScorerScoreFn", "load_scorer", "check_compatible", "num_params", "resize_to",
           "INPUT_KINDS"]
