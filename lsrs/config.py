"""params.yaml -> typed, validated configs, once, before any long work starts.

Every section is a frozen dataclass; `from_dict` builds it recursively and names the offending key
on any error (unknown key, wrong type, a value the dataclass' own validation rejects), e.g.
``params.yaml: var.train.optim.lr: must be > 0``.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lsrs.models import TokenizerConfig, TransformerConfig
from lsrs.sampler import RNG_MODES
from lsrs.train import OptimConfig, TokenizerTrainConfig, VarTrainConfig


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key."""


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "fashion-mnist"
    root: str = "/usr/share/datasets/fashion-mnist"
    image_size: int = 32
    train_limit: int | None = None  # use only the first N training images (tests, smoke runs)

    def __post_init__(self):
        if self.dataset not in ("fashion-mnist",):
            raise ValueError(f"unknown dataset {self.dataset!r} (known: fashion-mnist)")


@dataclass(frozen=True)
class TokenizerSection:
    model: TokenizerConfig = TokenizerConfig()
    train: TokenizerTrainConfig = TokenizerTrainConfig()


@dataclass(frozen=True)
class VarSection:
    model: TransformerConfig = TransformerConfig()
    train: VarTrainConfig = VarTrainConfig()


@dataclass(frozen=True)
class SamplingConfig:
    cfg: float = 1.5
    top_k: int = 900
    top_p: float = 0.96
    rng: str = "per-sample"
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self):
        if self.rng not in RNG_MODES:
            raise ValueError(f"must be one of {RNG_MODES}, got {self.rng!r}")
        if self.top_k < 0 or not 0 <= self.top_p <= 1 or self.cfg < 0 or self.batch_size < 1:
            raise ValueError("top_k >= 0, 0 <= top_p <= 1, cfg >= 0 and batch_size >= 1 are required")


@dataclass(frozen=True)
class Params:
    profile: str = "mini"
    data: DataConfig = DataConfig()
    tokenizer: TokenizerSection = TokenizerSection()
    var: VarSection = VarSection()
    sampling: SamplingConfig = SamplingConfig()
    extra: dict = field(default_factory=dict)  # sections owned by later stages, kept verbatim

    def var_model(self, depth: int | None = None, width: int | None = None) -> TransformerConfig:
        """The transformer config with vocabulary, latent channels and scales taken from the tokenizer."""
        tok, cfg = self.tokenizer.model, self.var.model
        changes = dict(vocab_size=tok.vocab_size, z_channels=tok.z_channels, patch_nums=tok.patch_nums)
        if depth is not None:
            changes.update(depth=depth, width=width)
        return dataclasses.replace(cfg, **changes)


def _convert(tp, value, key: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        return tuple(_convert(typing.get_args(tp)[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise ParamsError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a (nested) dict, naming the key of any problem."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ParamsError(f"{prefix + '.' if prefix else ''}{unknown[0]}: unknown key (known: {sorted(names)})")
    kwargs = {k: _convert(hints[k], v, f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ParamsError:
        raise
    except (ValueError, TypeError) as exc:
        raise ParamsError(f"{prefix or cls.__name__}: {exc}") from exc


KNOWN_SECTIONS = {"profile", "data", "tokenizer", "var", "sampling"}


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} not found")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: the top level must be a mapping")
    known = {k: v for k, v in raw.items() if k in KNOWN_SECTIONS}
    extra = {k: v for k, v in raw.items() if k not in KNOWN_SECTIONS}
    try:
        params = from_dict(Params, known)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    return dataclasses.replace(params, extra=extra)
