"""One model family as the pipeline sees it: params in one shape for VAR and FlexVAR.

params.yaml configures VAR through the top-level sections (tokenizer, var.depths, scorer.runs,
sampling, ablations.sweeps) and FlexVAR through `flexvar` (one model, one scorer, its own sampling
and sweeps). `family_setup` maps either onto `FamilySetup`, so every step (train or link the
tokenizer and models, extract and sample token maps, train scorers, run sweeps) is written once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lsrs.core.checkpoint import atomic_write_text
from lsrs.families import Family, FlexFamily, VarFamily
from lsrs.models.scorer import ScorerConfig
from lsrs.pipeline.layout import Layout
from lsrs.pipeline.params import Params, ScorerRun
from lsrs.pipeline.sweep_config import SweepConfig
from lsrs.sampling.sampler import SamplingConfig
from lsrs.training.scorer import ScorerTrainConfig

FAMILIES = ("var", "flexvar")


@dataclass(frozen=True)
class ModelSpec:
    """One model of a family: its config (vocabulary, channels and scales from the tokenizer), how
    to train it, or the official checkpoint that replaces training."""

    config: object
    train: object
    checkpoint: str | None
    sha256: str | None
    param_key: str  # where params.yaml sets it, for error messages (e.g. var.depths.d4)
    file: str  # the official file's name, for error messages (e.g. var_d16.pth)


@dataclass(frozen=True)
class FamilySetup:
    family: Family
    enabled: bool
    layout: Layout  # the family's folders (FlexVAR: runs/<profile>/flexvar/...)
    tokenizer: ModelSpec
    models: dict[str, ModelSpec]  # model name -> spec (VAR: the var.depths names; FlexVAR: "flexvar")
    scorer_model: ScorerConfig
    scorer_train: ScorerTrainConfig
    replicates: int
    scorers: dict[str, ScorerRun]  # scorer run name -> run (VAR: scorer.runs; FlexVAR: "flexvar")
    sampling: SamplingConfig
    sweeps: dict[str, SweepConfig]
    per_class: int  # evaluation images per class of a sweep run (unless the sweep sets its own)
    default_scorer: str | None  # the scorer of a sweep that names none
    sweep_prefix: str  # prefixed to a sweep's name in its rows' `family` column

    @property
    def name(self) -> str:
        return self.family.name

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise ValueError(f"{self.name}: no model {name!r} (known: {', '.join(self.models) or 'none'})")
        return self.models[name]

    def scorer(self, name: str) -> ScorerRun:
        if name not in self.scorers:
            raise ValueError(f"{self.name}: no scorer run {name!r} (known: {', '.join(self.scorers) or 'none'})")
        return self.scorers[name]

    def sweep(self, name: str) -> SweepConfig:
        if name not in self.sweeps:
            raise ValueError(f"{self.name}: no sweep {name!r} (known: {', '.join(self.sweeps)})")
        return self.sweeps[name]

    def skipped(self, out_dir: Path, log: Callable[[str], None] = print) -> bool:
        """True (after writing out_dir/skipped.json) when the family is disabled: the stage has nothing to do."""
        if self.enabled:
            return False
        atomic_write_text(json.dumps({"skipped": f"{self.name}.enabled is false"}) + "\n",
                          Path(out_dir) / "skipped.json")
        log(f"{self.name}.enabled is false: nothing to do ({Path(out_dir) / 'skipped.json'})")
        return True


def family_setup(params: Params, name: str, root: Layout) -> FamilySetup:
    """The family `name` ("var" or "flexvar") of `params`, with its folders under the run root `root`."""
    if name == "var":
        return _var_setup(params, root)
    if name == "flexvar":
        return _flex_setup(params, root)
    raise ValueError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})")


def _var_setup(params: Params, root: Layout) -> FamilySetup:
    t = params.tokenizer
    models = {name: ModelSpec(params.var_model(name), params.var.train, s.checkpoint, s.sha256,
                              f"var.depths.{name}", f"var_d{s.depth}.pth")
              for name, s in params.var.depths.items()}
    return FamilySetup(VarFamily(), True, root,
                       ModelSpec(t.model, t.train, t.checkpoint, t.sha256, "tokenizer", "vae_ch160v4096z32.pth"),
                       models, params.scorer.model, params.scorer.train, params.scorer.replicates, params.scorer.runs,
                       params.sampling, params.ablations.sweeps, params.ablations.per_class, params.lsrs.scorer, "")


def _flex_setup(params: Params, root: Layout) -> FamilySetup:
    fx = params.flexvar
    family = FlexFamily(fx.patch_nums)
    model = ModelSpec(fx.model_config(), fx.var.train, fx.var.checkpoint, fx.var.sha256, "flexvar.var",
                      f"FlexVARd{fx.var.model.depth}-epoNNN.pth")
    scorer = ScorerRun(var=family.name, loss=fx.scorer.train.loss, without_first_scale=fx.scorer.train.without_first_scale)
    return FamilySetup(family, fx.enabled, root.family(family.name),
                       ModelSpec(fx.tokenizer.model, fx.tokenizer.train, fx.tokenizer.checkpoint, fx.tokenizer.sha256,
                                 "flexvar.tokenizer", "FlexVAE.pth"),
                       {family.name: model}, fx.scorer.model, fx.scorer.train, fx.scorer.replicates,
                       {family.name: scorer}, fx.sampling, fx.sweeps, fx.per_class, family.name, f"{family.name}_")
