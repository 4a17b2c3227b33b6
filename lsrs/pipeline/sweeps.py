"""The paper's ablations as data: sweep families (each one DVC stage), their runs, and running them.

A sweep family is every combination of its scorers, M, ST and selection k (Tables 2, 3, 5-9, 4
and Figure 3 are all such families; params.yaml `ablations.sweeps` lists them and a user can add
more). Every family also evaluates the plain VAR of each depth it touches, on the same paired
images, so each row carries FID - FID(baseline) with a paired-bootstrap interval: a report can say
whether LSRS beat the baseline beyond resampling noise, not just print two numbers.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from lsrs.sampling.rejection import SelectionConfig, schedule_from


@dataclass(frozen=True)
class SweepConfig:
    """One ablation family: the product of its lists. k = 1 is greedy selection, k > 1 top-k."""

    M: tuple[int, ...] = (32,)
    ST: tuple[int, ...] = (2,)
    scorers: tuple[str, ...] | None = None  # scorer runs (scorer.runs names); None: lsrs.scorer
    k: tuple[int, ...] = (1,)
    temperature: float = 1.0  # of top-k selection
    feeds: str = ""  # which paper tables / figures the family reproduces (documentation, shown in reports)
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


def run_sweep(params, name: str, layout, out_dir: Path, log: Callable[[str], None] = print) -> list[dict]:
    """Evaluate every run of family `name` (ablations.sweeps) on `ablations.per_class` paired images per class."""
    from lsrs.pipeline import runs as R

    sw = params.ablations.sweeps[name]
    setup = R.EvalSetup.load(params, layout.tokenizer, layout.evaluator, layout.reference)
    k = len(setup.vae.cfg.patch_nums)
    models = {}

    def model_for(var: str):
        if var not in models:
            models[var] = R.load_var(layout.var(var), setup.vae)
        return models[var]

    def plan_for(run: SweepRun):
        return R.lsrs_plans(layout.scorer(run.scorer), setup.vae, run.schedule(k), run.selection)

    runs = sweep_runs(sw, params.lsrs.scorer, params.scorer_var)
    return evaluate_sweep(setup, name, sw, runs, model_for, plan_for, params.ablations.per_class, out_dir, log)


def evaluate_sweep(setup, name: str, sw: SweepConfig, runs: list[SweepRun], model_for: Callable, plan_for: Callable,
                   per_class: int, out_dir: Path, log: Callable[[str], None] = print) -> list[dict]:
    """Evaluate `runs` (baselines first) on `per_class` paired images per class; shared by every family.

    Writes out_dir/<run>/metrics.json, out_dir/results.json (the rows) and out_dir/results.csv (for
    DVC plots and reports). Each row: the run's settings, every metric, and fid_diff / fid_diff_low /
    fid_diff_high against the plain model of the same `var`.
    """
    import pandas as pd

    from lsrs.pipeline import runs as R

    per_class = sw.per_class or per_class
    log(f"sweep {name}: {len(runs)} runs x {per_class} images per class" + (f" ({sw.feeds})" if sw.feeds else ""))
    baselines, rows = {}, []
    for run in runs:
        plan = None if run.scorer is None else plan_for(run)
        log(f"[{name}] {run.name}")
        metrics, feats = R.evaluate_model(setup, model_for(run.var), out_dir / run.name, plan,
                                          per_class=per_class if run.scorer is None else
                                          sw.images_per_class(run.M, per_class), save_samples=False, log=log)
        if feats is None:  # a torchrun rank other than 0: rank 0 scores every run
            continue
        if run.scorer is None:
            baselines[run.var] = (feats, metrics["fid"])
            diff = {"delta": 0.0, "low": 0.0, "high": 0.0}
        else:
            diff = R.paired_fid_diff(first_images(baselines[run.var][0], feats.count), feats, setup)
        rows.append(_row(name, run, metrics, diff_summary(diff, baselines[run.var][1])))
    if not setup.runtime.is_main:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(rows, indent=1))
    pd.DataFrame(rows).to_csv(out_dir / "results.csv", index=False)
    return rows


def first_images(features, n: int):
    """The features of the first n images (image i is the same draw in every run, so a run on fewer
    images pairs with these)."""
    import dataclasses

    if features.count == n:
        return features
    rep = None if features.replicate is None else features.replicate[:n]
    return dataclasses.replace(features, count=n, pool=features.pool[:n], logits=features.logits[:n], replicate=rep)


METRIC_COLUMNS = ("fid", "is", "precision", "recall", "sfid", "fid_mean_diff2", "fid_trace_term",
                  "fid_tr_sigma_ref", "fid_tr_sigma_gen", "fid_tr_sqrt_x2", "seconds_per_image", "count")


DIFF_COLUMNS = ("fid_diff", "fid_diff_low", "fid_diff_high", "fid_diff_se", "fid_diff_mcse", "half_width",
                "half_width_pct", "replicates", "replicate_deltas", "var_images", "tau2", "n_boot")

ROW_COLUMNS = ["family", "run", "var", "scorer", "M", "ST", "k", "only_scale", "selection", "temperature",
               *METRIC_COLUMNS, *DIFF_COLUMNS]  # one results.csv row (see _row)


def diff_summary(diff: dict, baseline_fid: float) -> dict:
    """The FID-difference columns of a row (and of metrics/main.json) from a paired_bootstrap_fid result:
    the interval, its half-width (absolute and as % of the plain FID), the endpoints' Monte-Carlo error,
    and with replicates the per-replicate deltas and the variance components."""
    half, se = (diff["high"] - diff["low"]) / 2, diff.get("se")
    reps = diff.get("replicate_deltas")
    return {"fid_diff": diff["delta"], "fid_diff_low": diff["low"], "fid_diff_high": diff["high"],
            "fid_diff_se": se, "fid_diff_mcse": diff.get("endpoint_mcse"), "half_width": half,
            "half_width_pct": 100 * half / baseline_fid if baseline_fid else None,
            "replicates": diff.get("replicates", 1),
            "replicate_deltas": " ".join(f"{d:.4f}" for d in reps) if reps else "",
            "var_images": diff.get("var_images", None if se is None else se ** 2),  # one replicate: all images
            "tau2": diff.get("tau2", 0.0), "n_boot": diff.get("n_boot")}


def _row(family: str, run: SweepRun, metrics: dict, diff: dict) -> dict:
    row = {"family": family, "run": run.name, **{k: v for k, v in asdict(run).items() if k != "temperature"}}
    row.update(selection=run.selection.method if run.scorer else "none", temperature=run.temperature)
    row.update({c: metrics.get(c) for c in METRIC_COLUMNS})
    row.update(diff)
    return {c: row.get(c) for c in ROW_COLUMNS}
