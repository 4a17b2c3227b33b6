"""What the report needs to know about the run's configuration, as plain frozen data.

The report reads results files and never imports the pipeline (nor torch, which every pipeline
module pulls in), so it does not take `lsrs.pipeline.params.Params`: the pipeline maps its params
to a plain dict (`lsrs.pipeline.report_spec.report_spec`) and `ReportSpec.from_dict` checks and
freezes that dict here. Every field is a value the tables, figures, scorecard or README print or
branch on; nothing else is carried.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lsrs.core.typed import from_dict


@dataclass(frozen=True)
class SweepSpec:
    """One sweep family (params ablations.sweeps.<name> or flexvar.sweeps.<name>): its axes."""

    M: tuple[int, ...]
    ST: tuple[int, ...]
    k: tuple[int, ...]
    only_scale: tuple[int, ...]  # single-scale schedules at these scales; (): the family varies M and ST
    feeds: str  # which paper tables / figures the family reproduces
    role: str | None  # what the report reads it as (lsrs.report.results.ROLES), None: not read


@dataclass(frozen=True)
class VarSpec:
    main: str | None  # var.main: the VAR of the main run and of most ablations
    depths: dict[str, int]  # var.depths: name -> depth


@dataclass(frozen=True)
class ScorerRunSpec:
    var: str  # the var.depths name whose samples the scorer was trained on
    loss: str  # pairwise | pointwise
    without_first_scale: bool


@dataclass(frozen=True)
class ScorerSpec:
    main: str | None  # lsrs.scorer: the scorer run of the main evaluation
    replicates: int  # scorer.replicates
    runs: dict[str, ScorerRunSpec]  # scorer.runs, in params order (it fixes the figures' colours)


@dataclass(frozen=True)
class EvaluationSpec:
    n_boot: int  # bootstrap draws of every ΔFID interval (at least)
    mcse_target: float  # Monte-Carlo error the interval endpoints are drawn down to


@dataclass(frozen=True)
class GridsSpec:
    """ablations.grids: the sample grids' layout, used when a grid has no JSON description."""

    images: int
    M: tuple[int, ...]
    ST: tuple[int, ...]
    M_fixed: int
    ST_fixed: int


@dataclass(frozen=True)
class AblationsSpec:
    per_class: int  # evaluation images per class of every sweep run
    sweeps: dict[str, SweepSpec]
    grids: GridsSpec


@dataclass(frozen=True)
class FlexSpec:
    enabled: bool  # flexvar.enabled
    depth: int  # flexvar.var.model.depth
    num_scales: int  # len(flexvar.patch_nums)
    sweeps: dict[str, SweepSpec]  # flexvar.sweeps


@dataclass(frozen=True)
class ReportSpec:
    profile: str
    dataset: str  # data.dataset (fashion-mnist rows are labelled with class names)
    num_scales: int  # the tokenizer's number of scales
    var: VarSpec
    scorer: ScorerSpec
    evaluation: EvaluationSpec
    ablations: AblationsSpec
    flexvar: FlexSpec

    @classmethod
    def from_dict(cls, data: Mapping) -> ReportSpec:
        """Build the spec from a plain (JSON-able) dict; ValueError naming the key of an unknown or
        missing key or a value of the wrong type."""
        return from_dict(cls, data, require_all=True)
