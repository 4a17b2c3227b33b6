"""Pilot run for sizing an evaluation: the two variance components of ΔFID and the N and R they imply.

    python benchmarks/pilot_power.py [--params params.yaml] [--root runs/mini] [--replicates 6]
        [--per-class 600] [--out runs/mini/pilot] [--limit-pct 2]

Trains (or reuses) `--replicates` scorers of the main scorer run (lsrs.scorer; replicate r with
scorer.train.seed + r) in <out>/scorers, evaluates the plain VAR and LSRS at the top-level M/ST on
`--per-class` images per class (image i uses replicate (i // C) mod R, as the pipeline does), and
prints the ΔFID interval, the per-replicate ΔFIDs, var_images (a / N), tau2 and the N that a
half-width of `--limit-pct` % of the plain FID needs at R = --replicates, 3 and 5
(`lsrs.report.power`). Needs the trained tokenizer, VAR, token stores, evaluator and reference of
the profile (`dvc repro extract sample_tokens evaluator reference`). Nothing it writes is a DVC output.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import dataclasses

from lsrs.pipeline.context import StageContext
from lsrs.pipeline.evaluate import EvalSetup, evaluate_model, paired_fid_diff
from lsrs.pipeline.scorers import lsrs_plans, train_scorer
from lsrs.report import power


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--root", default="runs/mini")
    ap.add_argument("--replicates", type=int, default=6)
    ap.add_argument("--per-class", type=int, default=600)
    ap.add_argument("--out", default="runs/mini/pilot")
    ap.add_argument("--limit-pct", type=float, default=2.0)
    a = ap.parse_args()
    quiet = lambda m: None  # noqa: E731
    ctx, out = StageContext.load(a.params, a.root, log=quiet), Path(a.out)
    p, fs = ctx.params, ctx.family
    run = fs.scorer(p.lsrs.scorer)
    t0 = time.perf_counter()
    train_cfg = dataclasses.replace(fs.scorer_train, loss=run.loss, without_first_scale=run.without_first_scale)
    train_scorer(ctx, fs.layout.generated_tokens(run.var), out / "scorers", train_cfg, a.replicates)
    t1 = time.perf_counter()
    setup = EvalSetup.load(ctx)
    var = fs.family.load_model(fs.layout.var(run.var), setup.vae)
    plans = lsrs_plans(out / "scorers", setup.vae, p.schedule(), p.lsrs.selection)
    base_m, base = evaluate_model(setup, var, out / "plain", None, per_class=a.per_class, save_samples=False,
                                 log=quiet)
    _, feats = evaluate_model(setup, var, out / "lsrs", plans, per_class=a.per_class, save_samples=False, log=quiet)
    t2 = time.perf_counter()
    d = paired_fid_diff(base, feats, setup)
    t3 = time.perf_counter()
    n, fid0 = feats.count, base_m["fid"]
    half = a.limit_pct * fid0 / 100
    need = {r: power(n, r, d["var_images"], d["tau2"], half)["n_needed"] for r in sorted({a.replicates, 3, 5})}
    print(json.dumps({
        "M": p.M, "ST": p.ST, "images": n, "replicates": a.replicates, "plain_fid": fid0,
        "fid_diff": {k: d[k] for k in ("delta", "low", "high", "se", "endpoint_mcse", "n_boot", "replicate_deltas",
                                       "replicate_var", "var_images", "tau2", "se_model")},
        "half_width_pct": 50 * (d["high"] - d["low"]) / fid0, "limit_pct": a.limit_pct,
        "n_needed_by_R": need, "seconds": {"scorers": t1 - t0, "sampling": t2 - t1, "bootstrap": t3 - t2}}, indent=1))


if __name__ == "__main__":
    main()
