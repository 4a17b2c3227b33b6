"""The `lsrs` command line: the pipeline's own steps, run by hand, on either model family.

Every model command works in a run root (`--root`, default runs/cli: outside DVC's outputs, so it
never touches the pipeline's runs/<profile>) with the same folders, the same step functions and the
same error rule as the DVC stages (lsrs.frontend): `lsrs train-tokenizer && lsrs train-var --name d4
&& lsrs sample` is `dvc repro var@d4` by hand. Sweeps, cost, grids and the scorer analysis are
pipeline-only (`dvc repro sweep@<name>`, ...).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from lsrs.frontend import echo, guarded, run_step

app = typer.Typer(help="LSRS (Latent Scale Rejection Sampling for VAR): train, sample, check and reproduce.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameter file (validated before any work).")
ROOT = typer.Option(Path("runs/cli"), "--root", help="Run root: tokenizer/, var/<name>/, tokens/, scorers/, eval/.")
FAMILY = typer.Option("var", "--family", help="Model family: var or flexvar (folders under <root>/flexvar).")
NAME = typer.Option(None, "--name", help="A model of the family: a var.depths name (default var.main), or flexvar.")
SCORER = typer.Option(None, "--scorer", help="A scorer run (scorer.runs name, or flexvar): sample with LSRS.")
M_OPT = typer.Option(None, "--M", help="LSRS candidates per scale (default: params M).")
ST_OPT = typer.Option(None, "--ST", help="First LSRS scale, 1-based (default: params ST).")


def _model_name(ctx, name: str | None) -> str:
    if name is not None:
        return name
    return ctx.params.var.main if ctx.family.name == "var" else ctx.family.name


def _plan(ctx, scorer: str | None, m: int | None, st: int | None, selection=None):
    """The LSRS plans of a scorer run's replicates at M/ST, or None (plain sampling)."""
    from lsrs.pipeline.scorers import lsrs_plans

    if scorer is None:
        if m is not None or st is not None or selection is not None:
            raise ValueError("--M, --ST and the selection options need --scorer")
        return None, None
    fs = ctx.family
    fs.scorer(scorer)
    vae = fs.family.load_tokenizer(fs.layout.tokenizer)
    sched = ctx.params.schedule(m, st) if fs.name == "var" else _flex_schedule(ctx, m, st)
    return vae, lsrs_plans(fs.layout.scorer(scorer), vae, sched, selection or ctx.params.lsrs.selection,
                           patch_nums=fs.family.schedule)


def _flex_schedule(ctx, m: int | None, st: int | None) -> tuple[int, ...]:
    from lsrs.sampling.rejection import schedule_from

    return schedule_from(m or ctx.params.M, st or ctx.params.ST, len(ctx.family.family.schedule))


@app.command("train-tokenizer")
def train_tokenizer(params: Path = PARAMS, root: Path = ROOT, family: str = FAMILY):
    """Train the family's tokenizer on the profile's images (or link its official checkpoint); resumes."""
    from lsrs.pipeline.models import make_tokenizer

    run_step(make_tokenizer, params, root, family)


@app.command("train-var")
def train_var(name: Optional[str] = NAME, params: Path = PARAMS, root: Path = ROOT, family: str = FAMILY):
    """Train a next-scale model of the family on the tokenizer's maps (or link its checkpoint); resumes."""
    from lsrs.pipeline.models import make_model

    run_step(lambda ctx: make_model(ctx, _model_name(ctx, name)), params, root, family)


@app.command()
def sample(
    name: Optional[str] = NAME,
    out: Optional[Path] = typer.Option(None, help="Output PNG grid, one row per class (default <root>/samples.png)."),
    per_class: int = typer.Option(8, min=1, help="Images per class (columns)."),
    seed: int = typer.Option(0, help="Sampling seed."),
    cfg: Optional[float] = typer.Option(None, help="Classifier-free guidance scale (default: sampling.cfg)."),
    top_k: Optional[int] = typer.Option(None, help="Top-k, ties kept; 0 disables (default: sampling.top_k)."),
    top_p: Optional[float] = typer.Option(None, help="Top-p after top-k; 0 disables (default: sampling.top_p)."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Images per forward pass (default: sampling.batch_size)."),
    scorer: Optional[str] = SCORER, m: Optional[int] = M_OPT, st: Optional[int] = ST_OPT,
    selection: Optional[str] = typer.Option(None, help="'greedy' (argmax) or 'topk' (default: lsrs.selection.method)."),
    selection_k: Optional[int] = typer.Option(None, help="k of top-k selection (default: lsrs.selection.k)."),
    params: Path = PARAMS, root: Path = ROOT, family: str = FAMILY,
):
    """Sample a class-by-class image grid; with --scorer, by LSRS (M, ST from params unless given)."""
    from lsrs.sampling.images import sample_grid

    def step(ctx):
        fs = ctx.family
        sel = None
        if selection is not None or selection_k is not None:
            sel = dataclasses.replace(ctx.params.lsrs.selection, **{k: v for k, v in dict(
                method=selection, k=selection_k).items() if v is not None})
        vae, plans = _plan(ctx, scorer, m, st, sel)
        vae = vae or fs.family.load_tokenizer(fs.layout.tokenizer)
        model = fs.family.load_model(fs.layout.var(_model_name(ctx, name)), vae)
        sampling = dataclasses.replace(fs.sampling, **{k: v for k, v in dict(cfg=cfg, top_k=top_k, top_p=top_p).items()
                                                       if v is not None})
        if plans:
            echo(f"LSRS: schedule {list(plans[0].schedule)}, selection {plans[0].selection.method}")
        path = out or ctx.layout.root / "samples.png"
        sample_grid(model, vae, sampling, path, per_class=per_class, seed=seed, batch_size=batch_size,
                    plan=plans[0] if plans else None)
        echo(f"wrote {path}")

    run_step(step, params, root, family)


@app.command("random-scales")
def random_scales(
    name: Optional[str] = NAME,
    out: Optional[Path] = typer.Option(None, help="Output PNG, one row per class (default <root>/random_scales.png)."),
    classes: str = typer.Option("0,1,2,3,4,5,6,7,8,9", help="Comma-separated class ids, one row each."),
    seed: int = typer.Option(0, help="Sampling seed."),
    params: Path = PARAMS, root: Path = ROOT,
):
    """Figure 1: the plain sample, then the same sample with one scale's tokens replaced by random ones (VAR)."""
    from lsrs.sampling.images import random_scale_grid

    def step(ctx):
        fs = ctx.family
        vae = fs.family.load_tokenizer(fs.layout.tokenizer)
        model = fs.family.load_model(fs.layout.var(_model_name(ctx, name)), vae)
        ids = [int(c) for c in classes.split(",") if c.strip()]
        if not ids or min(ids) < 0 or max(ids) >= model.cfg.num_classes:
            raise ValueError(f"--classes must be ids in [0, {model.cfg.num_classes})")
        path = out or ctx.layout.root / "random_scales.png"
        random_scale_grid(model, vae, fs.sampling, path, ids, seed)
        echo(f"wrote {path} (columns: plain, then scale 1..{len(vae.cfg.patch_nums)} replaced)")

    run_step(step, params, root)


@app.command()
def extract(params: Path = PARAMS, root: Path = ROOT, family: str = FAMILY):
    """Real images -> the family's multi-scale token maps (a sharded token store, resumable)."""
    from lsrs.pipeline.scorers import extract as step

    store = run_step(step, params, root, family)
    echo(f"wrote {len(store)} real token maps")


@app.command("sample-tokens")
def sample_tokens(name: Optional[str] = NAME, params: Path = PARAMS, root: Path = ROOT, family: str = FAMILY):
    """Generated token maps for the scorer: tokens.generated_per_class per class, on the 'scorer-data' stream
    (disjoint from every evaluation draw by construction, whatever seeds are chosen)."""
    from lsrs.pipeline.scorers import sample_tokens as step

    store = run_step(lambda ctx: step(ctx, _model_name(ctx, name)), params, root, family)
    echo(f"wrote {len(store)} generated token maps")


@app.command("train-scorer")
def train_scorer(name: str = typer.Option(..., "--name", help="A scorer run (scorer.runs name, or flexvar)."),
                 params: Path = PARAMS, root: Path = ROOT, family: str = FAMILY):
    """Train the scorer run's replicates to rank real above generated token maps (or link its checkpoint)."""
    from lsrs.pipeline.scorers import make_scorer

    for r, metrics in enumerate(run_step(lambda ctx: make_scorer(ctx, name), params, root, family) or []):
        if "val_acc_per_scale" in metrics:
            echo(f"replicate {r}: validation accuracy per scale " +
                 " ".join(f"{a:.3f}" for a in metrics["val_acc_per_scale"]))


@app.command("train-evaluator")
def train_evaluator(params: Path = PARAMS, root: Path = ROOT):
    """The metrics' feature extractor: train the mini classifier, or check the Inception weights (paper)."""
    from lsrs.pipeline.evaluate import make_evaluator

    m = run_step(make_evaluator, params, root)
    if "test_accuracy" in m:
        echo(f"evaluator test accuracy {m['test_accuracy']:.4f}")


@app.command()
def reference(params: Path = PARAMS, root: Path = ROOT):
    """Reference statistics of the real training images under the evaluator's features."""
    from lsrs.pipeline.evaluate import build_reference

    run_step(build_reference, params, root)


@app.command()
def evaluate(
    name: Optional[str] = NAME, scorer: Optional[str] = SCORER, m: Optional[int] = M_OPT, st: Optional[int] = ST_OPT,
    out: Optional[Path] = typer.Option(None, help="Folder for samples.npz, features.pt, metrics.json "
                                                  "(default <root>/eval/<model>[_<scorer>])."),
    params: Path = PARAMS, root: Path = ROOT, family: str = FAMILY,
):
    """Generate the evaluation set (evaluation.per_class per class, paired seeds) and compute every metric."""
    from lsrs.pipeline.evaluate import EvalSetup, evaluate_model

    def step(ctx):
        model_name = _model_name(ctx, name)
        setup = EvalSetup.load(ctx)
        plans = _plan(ctx, scorer, m, st)[1]
        model = ctx.family.family.load_model(ctx.family.layout.var(model_name), setup.vae)
        folder = out or ctx.family.layout.root / "eval" / (model_name + (f"_{scorer}" if scorer else ""))
        return evaluate_model(setup, model, folder, plans, log=echo)[0]

    run_step(step, params, root, family)


@app.command()
def compare(
    baseline: Path = typer.Argument(..., help="Run folder of the baseline (from lsrs evaluate / the pipeline)."),
    candidate: Path = typer.Argument(..., help="Run folder of the candidate, paired with the baseline."),
    n_boot: Optional[int] = typer.Option(None, min=100, help="Bootstrap draws (default: evaluation.n_boot)."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    params: Path = PARAMS, root: Path = ROOT,
):
    """Paired-bootstrap 95% interval of FID(candidate) - FID(baseline) for two runs on the same paired
    images (both folders hold features.pt), against the reference of the run root; an interval entirely
    below 0 means the candidate is better beyond resampling noise (over images and scorer replicates)."""
    import json

    from lsrs.evaluation.features import load_features
    from lsrs.evaluation.reference import compare_runs, load_reference
    from lsrs.pipeline.evaluate import make_extractor

    def step(ctx):
        ref = load_reference(ctx.layout.reference, make_extractor(ctx.params, ctx.layout.evaluator))
        feats = []
        for folder in (baseline, candidate):
            if not (folder / "features.pt").is_file():
                raise FileNotFoundError(f"{folder / 'features.pt'} not found: evaluate the run with this version first")
            feats.append(load_features(folder / "features.pt"))
        d = compare_runs(*feats, ref, n_boot=n_boot or ctx.params.evaluation.n_boot, seed=seed,
                         groups=feats[1].replicate)
        echo(json.dumps(d, indent=1))
        echo(f"FID {d['fid_baseline']:.3f} -> {d['fid_candidate']:.3f}: difference {d['delta']:+.3f}, "
             f"95% paired interval [{d['low']:+.3f}, {d['high']:+.3f}]")

    run_step(step, params, root)


@app.command()
def refcheck(
    refset_dir: Path = typer.Argument(..., help="Reference folder (meta.json, state dicts, ref_*.pth)."),
    out: Optional[Path] = typer.Option(None, help="Also write our outputs here, in the full layout."),
):
    """Prove that our port matches the official VAR code: recompute a reference set and compare."""
    from lsrs.verify.refcheck import run_refcheck

    raise typer.Exit(guarded(run_refcheck, refset_dir, out, echo=echo))


report_app = typer.Typer(help="The paper's tables and figures and a paper-vs-run scorecard, from metrics/ "
                              "(seconds; missing inputs become 'not measured').", no_args_is_help=True)
app.add_typer(report_app, name="report")
METRICS = typer.Option(Path("metrics"), "--metrics",
                       help="Folder of main.json, sweeps/*.csv, scorer_analysis.json, cost.csv.")
RUNS = typer.Option(Path("runs/mini"), "--runs", help="Run root of the pipeline; its figures/ holds the sample grids.")
REPORT_OUT = typer.Option(Path("reports"), "--out", help="Output folder (tables, figures, README.md).")


def _report(metrics: Path, runs: Path, out: Path, params: Path, tables: bool, figures: bool) -> None:
    from lsrs.pipeline.params import load_params
    from lsrs.pipeline.report_spec import report_spec
    from lsrs.report import ReportSpec, make_report

    guarded(lambda: make_report(ReportSpec.from_dict(report_spec(load_params(params))), metrics, runs, out,
                                tables=tables, figures=figures, log=echo))


@report_app.command("tables")
def report_tables(metrics: Path = METRICS, runs: Path = RUNS, out: Path = REPORT_OUT, params: Path = PARAMS):
    """Tables 1-10 as Markdown, CSV and LaTeX, and reports/README.md with the scorecard."""
    _report(metrics, runs, out, params, tables=True, figures=False)


@report_app.command("figures")
def report_figures(metrics: Path = METRICS, runs: Path = RUNS, out: Path = REPORT_OUT, params: Path = PARAMS):
    """Figures 1 and 3-9 as PNG and PDF, and reports/README.md with the scorecard."""
    _report(metrics, runs, out, params, tables=False, figures=True)


@report_app.command("all")
def report_all(metrics: Path = METRICS, runs: Path = RUNS, out: Path = REPORT_OUT, params: Path = PARAMS):
    """Tables, figures and README.md in one go."""
    _report(metrics, runs, out, params, tables=True, figures=True)


if __name__ == "__main__":
    app()
