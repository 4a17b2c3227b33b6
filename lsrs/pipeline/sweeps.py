"""Running a sweep family (lsrs.pipeline.sweep_config): every run on the paired "eval" images, each
LSRS row with FID - FID(plain) and its paired-bootstrap interval; one code path for both families.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from lsrs.pipeline.evaluate import EvalSetup, evaluate_model, paired_fid_diff
from lsrs.pipeline.context import StageContext
from lsrs.pipeline.scorers import lsrs_plans
from lsrs.pipeline.sweep_config import SweepConfig, SweepRun, sweep_runs


def run_sweep(ctx: StageContext, name: str) -> list[dict]:
    """Stage `sweep@<name>` (and `flex_sweep@<name>`): evaluate every run of the family's sweep `name`
    on `per_class` paired images per class; a disabled family writes an empty table."""
    fs, log = ctx.family, ctx.log
    sw, out_dir = fs.sweep(name), fs.layout.sweep(name)
    if fs.skipped(out_dir, log):
        import pandas as pd

        pd.DataFrame(columns=ROW_COLUMNS).to_csv(out_dir / "results.csv", index=False)
        return []
    setup = EvalSetup.load(ctx)
    scales = len(fs.family.schedule or setup.vae.cfg.patch_nums)
    models = {}

    def model_for(var: str):
        if var not in models:
            models[var] = fs.family.load_model(fs.layout.var(var), setup.vae)
        return models[var]

    def plan_for(run: SweepRun):
        return lsrs_plans(fs.layout.scorer(run.scorer), setup.vae, run.schedule(scales), run.selection,
                          patch_nums=fs.family.schedule)

    runs = sweep_runs(sw, fs.default_scorer, lambda scorer: fs.scorer(scorer).var)
    return evaluate_sweep(setup, fs.sweep_prefix + name, sw, runs, model_for, plan_for, fs.per_class, out_dir, log)


def evaluate_sweep(setup, name: str, sw: SweepConfig, runs: list[SweepRun], model_for: Callable, plan_for: Callable,
                   per_class: int, out_dir: Path, log: Callable[[str], None] = print) -> list[dict]:
    """Evaluate `runs` (baselines first) on `per_class` paired images per class; shared by every family.

    Writes out_dir/<run>/metrics.json, out_dir/results.json (the rows) and out_dir/results.csv (for
    DVC plots and reports). Each row: the run's settings, every metric, and fid_diff / fid_diff_low /
    fid_diff_high against the plain model of the same `var`.
    """
    import pandas as pd

    per_class = sw.per_class or per_class
    log(f"sweep {name}: {len(runs)} runs x {per_class} images per class" + (f" ({sw.feeds})" if sw.feeds else ""))
    baselines, rows = {}, []
    for run in runs:
        plan = None if run.scorer is None else plan_for(run)
        log(f"[{name}] {run.name}")
        metrics, feats = evaluate_model(setup, model_for(run.var), out_dir / run.name, plan,
                                          per_class=per_class if run.scorer is None else
                                          sw.images_per_class(run.M, per_class), save_samples=False, log=log)
        if feats is None:  # a torchrun rank other than 0: rank 0 scores every run
            continue
        if run.scorer is None:
            baselines[run.var] = (feats, metrics["fid"])
            diff = {"delta": 0.0, "low": 0.0, "high": 0.0}
        else:
            diff = paired_fid_diff(first_images(baselines[run.var][0], feats.count), feats, setup)
        rows.append(_row(name, run, metrics, diff_summary(diff, baselines[run.var][1])))
    if not setup.runtime.is_main:
        return None
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
