"""params.yaml -> typed, validated configs, once, before any long work starts.

Every section is a frozen dataclass; `from_dict` builds it recursively and names the offending key
on any error (unknown key, wrong type, a value the dataclass' own validation rejects), e.g.
``params.yaml: var.train.optim.lr: must be > 0``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lsrs.core import typed

from lsrs.pipeline.sweep_config import AblationsConfig, SweepConfig, check_ablations, check_roles, check_sweep
from lsrs.training.evaluator import EvaluatorTrainConfig
from lsrs.models import FlexVAEConfig, FlexVARConfig, TokenizerConfig, TransformerConfig
from lsrs.models.flexvar import check_schedule
from lsrs.sampling.rejection import SelectionConfig, schedule_from
from lsrs.core.runtime import RuntimeConfig
from lsrs.data import DataConfig
from lsrs.sampling.sampler import SamplingConfig
from lsrs.models.scorer import ScorerConfig
from lsrs.training.scorer import LOSSES, ScorerTrainConfig
from lsrs.training.trainers import FlexVAETrainConfig, TokenizerTrainConfig, VarTrainConfig


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key."""


def _check_sha256(value: str | None) -> None:
    if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower())):
        raise ValueError(f"sha256 must be 64 hex digits (or null), got {value!r}")


@dataclass(frozen=True)
class TokenizerSection:
    """`model` and `train` for a tokenizer the pipeline trains (mini); `checkpoint` (+ its sha256)
    for one it loads instead (paper: the official vae_ch160v4096z32.pth)."""

    model: TokenizerConfig = TokenizerConfig()
    train: TokenizerTrainConfig = TokenizerTrainConfig()
    checkpoint: str | None = None
    sha256: str | None = None

    def __post_init__(self):
        _check_sha256(self.sha256)


@dataclass(frozen=True)
class VarShape:
    """One VAR of the depth family (Table 4): its depth and, for mini models, width and heads."""

    depth: int
    width: int | None = None  # None: 64 * depth (the official rule)
    num_heads: int | None = None  # None: depth (head dim 64)
    checkpoint: str | None = None  # paper: the official var_dNN.pth, loaded instead of trained
    sha256: str | None = None

    def __post_init__(self):
        _check_sha256(self.sha256)


@dataclass(frozen=True)
class VarSection:
    """`model` holds what every depth shares; `depths` names the VARs the pipeline trains (or loads),
    `main` the one of the main run and of most ablations."""

    model: TransformerConfig = TransformerConfig()
    train: VarTrainConfig = VarTrainConfig()
    depths: dict[str, VarShape] = field(default_factory=dict)
    main: str | None = None


@dataclass(frozen=True)
class TokensConfig:
    """The scorer's data: real token maps of training images and generated maps of the VAR."""

    real_per_class: int | None = None  # real maps per class (the first ones of the training split); None: all
    generated_per_class: int = 1000  # the authors' protocol: 1000 per class
    shard_size: int = 4096  # maps per shard file (the unit of resume)
    encode_batch_size: int = 256  # images per tokenizer encoder call in extraction
    seed: int = 0  # seed of the generated maps' stream ("scorer-data", disjoint from evaluation draws)

    def __post_init__(self):
        if self.real_per_class is not None and self.real_per_class < 1:
            raise ValueError(f"real_per_class must be >= 1 or null, got {self.real_per_class}")
        if self.generated_per_class < 1 or self.shard_size < 1 or self.encode_batch_size < 1:
            raise ValueError("generated_per_class, shard_size and encode_batch_size must be >= 1")


@dataclass(frozen=True)
class ScorerRun:
    """One scorer the pipeline trains: on which VAR's samples, with which loss, with the first scale or not.
    With `checkpoint` (+ its sha256) the run loads those weights (e.g. the authors' RewardNet state dict,
    strict) instead of training, and has one replicate."""

    var: str
    loss: str = "pairwise"
    without_first_scale: bool = False
    checkpoint: str | None = None
    sha256: str | None = None

    def __post_init__(self):
        _check_sha256(self.sha256)


def _check_replicates(value: int) -> None:
    if not 1 <= value <= 32:
        raise ValueError(f"replicates must be in 1..32, got {value}")


@dataclass(frozen=True)
class ScorerSection:
    """`replicates`: every scorer run is trained R times, replicate r with seed train.seed + r (its
    own split, pairs, init and dropout), and every LSRS evaluation spreads its images over them."""

    model: ScorerConfig = ScorerConfig()
    train: ScorerTrainConfig = ScorerTrainConfig()
    replicates: int = 1
    runs: dict[str, ScorerRun] = field(default_factory=dict)  # name -> run (the DVC stages scorer@name)

    def __post_init__(self):
        _check_replicates(self.replicates)


@dataclass(frozen=True)
class LSRSSection:
    """How LSRS picks among the candidates; M and ST are top-level params (`dvc exp run -S M=256`)."""

    selection: SelectionConfig = SelectionConfig()
    schedule: tuple[int, ...] | None = None  # explicit m_1..m_K; overrides M/ST when given
    scorer: str | None = None  # the scorer run (scorer.runs) of the main evaluation


@dataclass(frozen=True)
class EvaluationConfig:
    """How sample sets are scored (mini: our classifier's features; paper: Inception)."""

    evaluator: EvaluatorTrainConfig = EvaluatorTrainConfig()
    extractor: str = "mini"  # 'mini' (our classifier, trained by the pipeline) | 'inception' (paper, local weights)
    inception_weights: str | None = None  # extractor 'inception': torch-fidelity's pt_inception-2015-12-05 file
    reference_batch: str | None = None  # an ADM reference batch .npz (e.g. VIRTUAL_imagenet256_labeled.npz)
    per_class: int = 1000  # evaluation images per class (the paper: 50 per ImageNet class)
    seed: int = 0  # seed of the "eval" stream; image i of every run uses sample id i, so runs are paired
    reference_count: int | None = None  # real training images in the reference statistics (None: all)
    pr_count: int = 10000  # reference images kept for precision/recall (ADM: 10k)
    feature_batch_size: int = 200
    n_boot: int = 2000  # bootstrap draws of every FID-difference interval (percentile, at least; see paired_bootstrap_fid)
    mcse_target: float = 0.1  # more draws (1000 at a time) until both endpoints' Monte-Carlo error is below this
    n_boot_max: int = 10000

    def __post_init__(self):
        if self.extractor not in ("mini", "inception"):
            raise ValueError(f"extractor must be 'mini' or 'inception', got {self.extractor!r}")
        if self.extractor == "inception" and not self.inception_weights:
            raise ValueError("extractor 'inception' needs inception_weights: the path of a local "
                             "pt_inception-2015-12-05 weights file (it is never downloaded)")
        if self.per_class < 1 or self.pr_count < 1 or self.feature_batch_size < 1:
            raise ValueError("per_class, pr_count and feature_batch_size must be >= 1")
        if self.n_boot < 100:
            raise ValueError(f"n_boot must be >= 100 (percentile endpoints need draws), got {self.n_boot}")
        if self.n_boot_max < self.n_boot or self.mcse_target <= 0:
            raise ValueError("n_boot_max must be >= n_boot and mcse_target > 0")
        if self.reference_count is not None and self.reference_count < 1:
            raise ValueError("reference_count must be >= 1 or null")


@dataclass(frozen=True)
class FlexTokenizerSection:
    """FlexVAE: `model` + `train` for the mini one the pipeline trains, or `checkpoint` (+ sha256) for
    the official FlexVAE.pth (paper)."""

    model: FlexVAEConfig = FlexVAEConfig()
    train: FlexVAETrainConfig = FlexVAETrainConfig()
    checkpoint: str | None = None
    sha256: str | None = None

    def __post_init__(self):
        _check_sha256(self.sha256)


@dataclass(frozen=True)
class FlexModelSection:
    """FlexVAR: `model` (depth, width, heads, classes, position grid; vocabulary, code width and
    schedule come from the FlexVAE and flexvar.patch_nums) + `train`, or the official checkpoint."""

    model: FlexVARConfig = FlexVARConfig()
    train: VarTrainConfig = VarTrainConfig()
    checkpoint: str | None = None  # paper: FlexVARd24-epo349.pth
    sha256: str | None = None

    def __post_init__(self):
        _check_sha256(self.sha256)


@dataclass(frozen=True)
class FlexScorerSection:
    model: ScorerConfig = ScorerConfig(input_kind="flexvar")
    train: ScorerTrainConfig = ScorerTrainConfig()
    replicates: int = 1  # as scorer.replicates

    def __post_init__(self):
        _check_replicates(self.replicates)


@dataclass(frozen=True)
class FlexSection:
    """The second model family of the paper (Table 1's FlexVAR rows): its own tokenizer, model,
    sampling settings, scorer (on r_k) and sweep families. `enabled: false` turns every flex_* stage
    into a no-op that records why, so a profile without FlexVAR files still runs."""

    enabled: bool = False
    patch_nums: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)  # the official 10-step schedule
    tokenizer: FlexTokenizerSection = FlexTokenizerSection()
    var: FlexModelSection = FlexModelSection()
    sampling: SamplingConfig = SamplingConfig(cfg=2.5, top_k=900, top_p=0.95)
    scorer: FlexScorerSection = FlexScorerSection()
    per_class: int = 50  # evaluation images per class of every flex sweep run (the paired "eval" set)
    sweeps: dict[str, SweepConfig] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "patch_nums", check_schedule(self.patch_nums))
        if self.per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {self.per_class}")

    def model_config(self) -> FlexVARConfig:
        """The FlexVAR config with vocabulary, code width and schedule taken from the FlexVAE and patch_nums."""
        tok = self.tokenizer.model
        return dataclasses.replace(self.var.model, vocab_size=tok.codebook_size, z_channels=tok.codebook_embed_dim,
                                   patch_nums=self.patch_nums)


@dataclass(frozen=True)
class Params:
    profile: str = "mini"
    M: int = 32  # LSRS candidates per scale of the main run
    ST: int = 2  # first LSRS scale (1-based) of the main run
    data: DataConfig = DataConfig()
    tokenizer: TokenizerSection = TokenizerSection()
    var: VarSection = VarSection()
    sampling: SamplingConfig = SamplingConfig()
    tokens: TokensConfig = TokensConfig()
    scorer: ScorerSection = ScorerSection()
    lsrs: LSRSSection = LSRSSection()
    evaluation: EvaluationConfig = EvaluationConfig()
    ablations: AblationsConfig = AblationsConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    flexvar: FlexSection = FlexSection()

    @property
    def num_scales(self) -> int:
        return len(self.tokenizer.model.patch_nums)

    def schedule(self, M: int | None = None, ST: int | None = None) -> tuple[int, ...]:
        """{m_1..m_K}: lsrs.schedule if given, else from M/ST (the top-level ones unless overridden)."""
        if self.lsrs.schedule is not None and M is None and ST is None:
            return self.lsrs.schedule
        return schedule_from(self.M if M is None else M, self.ST if ST is None else ST, self.num_scales)

    def var_model(self, depth: int | str | None = None, width: int | None = None) -> TransformerConfig:
        """The transformer config with vocabulary, latent channels and scales taken from the tokenizer.

        `depth` is a name of var.depths (its depth, width and heads replace var.model's), a plain depth
        (with `width`, or 64 * depth), or None: var.main when var.depths is given, else var.model."""
        tok, cfg = self.tokenizer.model, self.var.model
        changes = dict(vocab_size=tok.vocab_size, z_channels=tok.z_channels, patch_nums=tok.patch_nums)
        name = self.var.main if depth is None else depth
        if isinstance(name, str):
            shape = self.var.depths[name]
            changes.update(depth=shape.depth, width=shape.width, num_heads=shape.num_heads)
        elif depth is not None:
            changes.update(depth=depth, width=width)
        return dataclasses.replace(cfg, **changes)

    def scorer_var(self, scorer: str) -> str:
        """The VAR (a var.depths name) whose samples the scorer run `scorer` was trained on."""
        return self.scorer.runs[scorer].var


def from_dict(cls, data: dict, prefix: str = ""):
    """Build the params dataclass `cls` from a (nested) dict, naming the key of any problem (ParamsError)."""
    return typed.from_dict(cls, data, prefix, error=ParamsError)


def check_consistency(params: Params) -> None:
    """Rules that span sections (each section validated itself already); raises ParamsError naming the key."""
    k = params.num_scales
    if params.M < 1:
        raise ParamsError(f"M: must be >= 1, got {params.M}")
    if not 1 <= params.ST <= k:
        raise ParamsError(f"ST: must be in 1..{k} (the tokenizer has {k} scales), got {params.ST}")
    sched = params.lsrs.schedule
    if sched is not None and (len(sched) != k or min(sched) < 1):
        raise ParamsError(f"lsrs.schedule: needs {k} entries >= 1 (one per scale), got {list(sched)}")
    tok, sc = params.tokenizer.model, params.scorer.model
    if sc.in_channels != tok.z_channels:
        raise ParamsError(f"scorer.model.in_channels: must equal tokenizer.model.z_channels={tok.z_channels}")
    if sc.num_scales != k:
        raise ParamsError(f"scorer.model.num_scales: must equal the number of scales ({k})")
    if sc.num_classes != params.var.model.num_classes:
        raise ParamsError(f"scorer.model.num_classes: must equal var.model.num_classes={params.var.model.num_classes}")
    _check_names(params)
    _check_flexvar(params)
    try:
        check_ablations(params.ablations, k, scorers=set(params.scorer.runs), default_scorer=params.lsrs.scorer)
    except ValueError as exc:
        raise ParamsError(str(exc)) from None


def _check_names(params: Params) -> None:
    """The names that tie sections together (var.main, scorer.runs.*.var, lsrs.scorer) must exist."""
    depths, runs = params.var.depths, params.scorer.runs
    if depths and params.var.main not in depths:
        raise ParamsError(f"var.main: must name one of var.depths ({', '.join(depths)}), got {params.var.main!r}")
    if not depths and params.var.main is not None:
        raise ParamsError("var.main: needs var.depths")
    for name, shape in depths.items():
        try:
            params.var_model(name)
        except ValueError as exc:
            raise ParamsError(f"var.depths.{name}: {exc}") from None
    for name, run in runs.items():
        if run.var not in depths:
            raise ParamsError(f"scorer.runs.{name}.var: must name one of var.depths ({', '.join(depths) or 'none'}), "
                              f"got {run.var!r}")
        if run.loss not in LOSSES:
            raise ParamsError(f"scorer.runs.{name}.loss: must be one of {LOSSES}, got {run.loss!r}")
    if runs and params.lsrs.scorer not in runs:
        raise ParamsError(f"lsrs.scorer: must name one of scorer.runs ({', '.join(runs)}), got {params.lsrs.scorer!r}")
    if runs and runs[params.lsrs.scorer].var != params.var.main:
        raise ParamsError(f"lsrs.scorer: the main scorer must be trained on var.main={params.var.main}, "
                          f"{params.lsrs.scorer} was trained on {runs[params.lsrs.scorer].var}")


def _check_flexvar(params: Params) -> None:
    """The FlexVAR family's cross-section rules: schedule vs latent size, scorer vs FlexVAE, sweeps."""
    fx = params.flexvar
    if not fx.enabled:
        return
    k, tok, sc = len(fx.patch_nums), fx.tokenizer.model, fx.scorer.model
    if not fx.tokenizer.checkpoint:
        latent = params.data.image_size // tok.downsample
        if params.data.image_size % tok.downsample or fx.patch_nums[-1] != latent:
            raise ParamsError(f"flexvar.patch_nums: the last scale must be the FlexVAE latent size {latent} "
                              f"(data.image_size {params.data.image_size} / {tok.downsample}), got {fx.patch_nums[-1]}")
        if tok.in_channels != params.tokenizer.model.in_channels:
            raise ParamsError(f"flexvar.tokenizer.model.in_channels: must equal the images' channels "
                              f"({params.tokenizer.model.in_channels})")
    if sc.input_kind != "flexvar":
        raise ParamsError("flexvar.scorer.model.input_kind: must be 'flexvar' (the scorer reads r_k)")
    if sc.in_channels != tok.codebook_embed_dim:
        raise ParamsError(f"flexvar.scorer.model.in_channels: must equal flexvar.tokenizer.model.codebook_embed_dim="
                          f"{tok.codebook_embed_dim}")
    if sc.num_scales != k:
        raise ParamsError(f"flexvar.scorer.model.num_scales: must equal the number of scales of flexvar.patch_nums ({k})")
    if sc.num_classes != fx.var.model.num_classes:
        raise ParamsError(f"flexvar.scorer.model.num_classes: must equal flexvar.var.model.num_classes="
                          f"{fx.var.model.num_classes}")
    if fx.scorer.train.loss not in LOSSES:
        raise ParamsError(f"flexvar.scorer.train.loss: must be one of {LOSSES}")
    try:
        fx.model_config()
        check_roles(fx.sweeps, "flexvar.sweeps")
        for name, sw in fx.sweeps.items():
            check_sweep(sw, f"flexvar.sweeps.{name}", k)
    except ValueError as exc:
        raise ParamsError(str(exc) if str(exc).startswith("flexvar.") else f"flexvar.var.model: {exc}") from None


def overlay(base: dict, over: dict) -> dict:
    """Deep-merge the params dict `over` into `base` (in place; returned): mappings merge, everything
    else (lists included) is replaced, and ablations.sweeps is replaced whole, so the overlay decides
    which sweep stages exist (tests/data/tiny_params.yaml on params.yaml)."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "sweeps":
            overlay(base[key], value)
        else:
            base[key] = value
    return base


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} not found")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: the top level must be a mapping")
    try:
        params = from_dict(Params, raw)
        check_consistency(params)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    return params
