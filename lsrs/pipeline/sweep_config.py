"""The paper's ablations as data: sweep families, the runs each one expands to, grids and cost settings.

A sweep family is every combination of its scorers, M, ST and selection k (Tables 2, 3, 5-9, 4
and Figure 3 are all such families; params.yaml `ablations.sweeps` lists them and a user can add
more). Every family also evaluates the plain model of each depth it touches, on the same paired
images, so each row carries FID - FID(baseline) with a paired-bootstrap interval (see
lsrs.pipeline.sweeps, which runs them).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

from lsrs.sampling.rejection import SelectionConfig, schedule_from


ROLES = ("m_curve", "st_curve", "m_at_st1", "loss", "topk", "first_scale", "depth", "attribution")
# A sweep's `role` is what the report reads it as (lsrs.report.results.ROLES says which tables and
# figures each feeds): the M curve at one ST, the ST curve at one M, the M curve at ST = 1, the
# pointwise scorer, top-k selection, the scorer without scale 1, the other depths, single-scale LSRS.
# The report finds a sweep by its role, never by its name, so a sweep can be renamed freely.


@dataclass(frozen=True)
class SweepConfig:
    """One ablation family: the product of its lists. k = 1 is greedy selection, k > 1 top-k."""

    M: tuple[int, ...] = (32,)
    ST: tuple[int, ...] = (2,)
    scorers: tuple[str, ...] | None = None  # scorer runs (scorer.runs names); None: lsrs.scorer
    k: tuple[int, ...] = (1,)
    temperature: float = 1.0  # of top-k selection
    feeds: str = ""  # which paper tables / figures the family reproduces (documentation, shown in reports)
    role: str | None = None  # what the report reads it as (one of ROLES, at most one sweep each); None: unread
    only_scale: tuple[int, ...] | None = None  # single-scale schedules: m_k = M at scale k (1-based) only; ST unused
    per_class: int | None = None  # images per class of this family's runs (None: the section's per_class)
    per_class_at_M: dict[int, int] = field(default_factory=dict)  # fewer images for the costly large-M rows

    def images_per_class(self, M: int, default: int) -> int:
        """Images per class of a run at M (its baseline uses the family's count; a row with fewer
        images is paired with the baseline's first ones, image i being the same draw in both)."""
        return self.per_class_at_M.get(M, self.per_class or default)


@dataclass(frozen=True)
class CostConfig:
    """Figure 6: wall time and peak memory of one fixed batch (with CFG) as M grows."""

    batch_size: int = 24
    M: tuple[int, ...] = (1, 4, 16, 64, 256, 1024)
    ST: int = 2
    repeats: int = 3


@dataclass(frozen=True)
class GridsConfig:
    """Figures 1, 4, 8 and 9: fixed-seed sample grids (one row per image, one column per setting)."""

    images: int = 10  # rows; image i has class i % C and the same seed in every column
    M: tuple[int, ...] = (1, 4, 32, 256)  # columns of the M grid, at ST_fixed
    ST: tuple[int, ...] = (1, 2, 4, 7)  # columns of the ST grid, at M_fixed
    M_fixed: int = 32
    ST_fixed: int = 2
    seed: int = 0  # grids use the "preview" stream, never the evaluation draws


@dataclass(frozen=True)
class AblationsConfig:
    per_class: int = 50  # evaluation images per class of every sweep run (the first images of the main run's set)
    sweeps: dict[str, SweepConfig] = field(default_factory=dict)
    cost: CostConfig = CostConfig()
    grids: GridsConfig = GridsConfig()
    analysis_bins: int = 50  # histogram bins of the score distributions (Figures 5, 7)
    analysis_images: int = 500  # LSRS images whose selected candidates' scores Figure 5 shows


def check_ablations(cfg: AblationsConfig, num_scales: int, scorers: set[str], default_scorer: str | None) -> None:
    """Raise ValueError naming the key of any value no run could use (M < 1, ST out of range, ...)."""

    def bad(key: str, why: str):
        raise ValueError(f"ablations.{key}: {why}")

    def check_m_st(key: str, Ms, STs) -> None:
        for m in Ms:
            if m < 1:
                bad(f"{key}.M", f"every M must be >= 1, got {m}")
        for st in STs:
            if not 1 <= st <= num_scales:
                bad(f"{key}.ST", f"every ST must be in 1..{num_scales} (the number of scales), got {st}")

    if cfg.per_class < 1:
        bad("per_class", f"must be >= 1, got {cfg.per_class}")
    check_roles(cfg.sweeps, "ablations.sweeps")
    for name, sw in cfg.sweeps.items():
        key = f"sweeps.{name}"
        check_sweep(sw, f"ablations.{key}", num_scales)
        for s in sw.scorers or (default_scorer,):
            if scorers and s not in scorers:
                bad(f"{key}.scorers", f"{s!r} is not a scorer run (scorer.runs: {', '.join(sorted(scorers))})")
    c = cfg.cost
    if c.batch_size < 1 or c.repeats < 1:
        bad("cost", "batch_size and repeats must be >= 1")
    check_m_st("cost", c.M, (c.ST,))
    g = cfg.grids
    if g.images < 1:
        bad("grids.images", f"must be >= 1, got {g.images}")
    check_m_st("grids", (*g.M, g.M_fixed), (*g.ST, g.ST_fixed))
    if cfg.analysis_bins < 2:
        bad("analysis_bins", f"must be >= 2, got {cfg.analysis_bins}")
    if cfg.analysis_images < 1:
        bad("analysis_images", f"must be >= 1, got {cfg.analysis_images}")


def check_roles(sweeps: dict[str, SweepConfig], key: str) -> None:
    """Every role is known and names at most one sweep of the section."""
    seen: dict[str, str] = {}
    for name, sw in sweeps.items():
        if sw.role is None:
            continue
        if sw.role not in ROLES:
            raise ValueError(f"{key}.{name}.role: must be one of {', '.join(ROLES)}, got {sw.role!r}")
        if sw.role in seen:
            raise ValueError(f"{key}.{name}.role: {sw.role!r} is already the role of {key}.{seen[sw.role]}")
        seen[sw.role] = name


def check_sweep(sw: SweepConfig, key: str, num_scales: int) -> None:
    """Raise ValueError naming `key` when a sweep family has a value no run could use."""
    if not sw.M or not sw.ST or not sw.k:
        raise ValueError(f"{key}: M, ST and k need at least one value each")
    for m in sw.M:
        if m < 1:
            raise ValueError(f"{key}.M: every M must be >= 1, got {m}")
    for st in sw.ST:
        if not 1 <= st <= num_scales:
            raise ValueError(f"{key}.ST: every ST must be in 1..{num_scales} (the number of scales), got {st}")
    for k in sw.k:
        if not 1 <= k <= min(sw.M):
            raise ValueError(f"{key}.k: every k must be in 1..min(M)={min(sw.M)}, got {k}")
    for k in sw.only_scale or ():
        if not 1 <= k <= num_scales:
            raise ValueError(f"{key}.only_scale: every scale must be in 1..{num_scales}, got {k}")
    if sw.temperature <= 0:
        raise ValueError(f"{key}.temperature: must be > 0, got {sw.temperature}")
    if sw.per_class is not None and sw.per_class < 1:
        raise ValueError(f"{key}.per_class: must be >= 1, got {sw.per_class}")
    for m, n in sw.per_class_at_M.items():
        if m not in sw.M or not 1 <= n <= (sw.per_class or n):
            raise ValueError(f"{key}.per_class_at_M: {m}: {n} must be for an M of the family and at most its per_class")


@dataclass(frozen=True)
class SweepRun:
    """One evaluation of a family: a scorer (None: the plain VAR of `var`), M, ST and selection k."""

    var: str
    scorer: str | None
    M: int = 1
    ST: int = 1
    k: int = 1
    temperature: float = 1.0
    only_scale: int | None = None  # M candidates at this scale (1-based) only

    @property
    def name(self) -> str:
        if self.scorer is None:
            return f"{self.var}_baseline"
        where = f"only{self.only_scale}" if self.only_scale else f"ST{self.ST}"
        return f"{self.scorer}_M{self.M}_{where}" + (f"_k{self.k}" if self.k > 1 else "")

    @property
    def selection(self) -> SelectionConfig:
        return SelectionConfig("topk" if self.k > 1 else "greedy", self.k, self.temperature)

    def schedule(self, num_scales: int) -> tuple[int, ...]:
        if self.only_scale:
            return tuple(self.M if i == self.only_scale - 1 else 1 for i in range(num_scales))
        return schedule_from(self.M, self.ST, num_scales)


def sweep_runs(sw: SweepConfig, default_scorer: str, scorer_var: Callable[[str], str]) -> list[SweepRun]:
    """The baselines (one per VAR the family touches) first, then every LSRS combination; M = 1 is the
    baseline itself (LSRS with one candidate is plain sampling), so it is not run twice."""
    scorers = list(sw.scorers or (default_scorer,))
    baselines = {scorer_var(s): SweepRun(scorer_var(s), None) for s in scorers}
    if sw.only_scale:
        lsrs = [SweepRun(scorer_var(s), s, m, 1, k, sw.temperature, only)
                for s, m, only, k in itertools.product(scorers, sw.M, sw.only_scale, sw.k) if m > 1]
    else:
        lsrs = [SweepRun(scorer_var(s), s, m, st, k, sw.temperature)
                for s, m, st, k in itertools.product(scorers, sw.M, sw.ST, sw.k) if m > 1]
    return list(baselines.values()) + lsrs


