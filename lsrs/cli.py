"""The `lsrs` command line: thin Typer commands over lsrs.pipeline.runs and lsrs.verify.refcheck."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="LSRS (Latent Scale Rejection Sampling for VAR): train, sample, check and reproduce.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

ERRORS = (ValueError, FileNotFoundError, RuntimeError)
PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameter file (validated before any work).")


def _params(path: Path):
    from lsrs.pipeline.params import load_params

    return load_params(path)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command("train-tokenizer")
def train_tokenizer(
    out: Path = typer.Option(Path("runs/mini/tokenizer"), help="Folder for tokenizer.pth/.json, metrics, loss curves."),
    params: Path = PARAMS,
):
    """Train the multi-scale VQ-VAE on the profile's images; resumes from a snapshot in OUT."""
    from lsrs.pipeline import runs

    try:
        runs.train_tokenizer(_params(params), out, log=typer.echo)
    except ERRORS as exc:
        _fail(exc)


@app.command("train-var")
def train_var(
    tokenizer: Path = typer.Option(Path("runs/mini/tokenizer"), help="Tokenizer run folder or .pth."),
    out: Path = typer.Option(Path("runs/mini/var_d4"), help="Folder for var.pth/.json, metrics, loss curves."),
    depth: Optional[int] = typer.Option(None, help="Override var.model.depth (width then needs --width or 64*depth)."),
    width: Optional[int] = typer.Option(None, help="Override var.model.width (with --depth)."),
    params: Path = PARAMS,
):
    """Train a VAR transformer on the tokenizer's token maps; resumes from a snapshot in OUT."""
    from lsrs.pipeline import runs

    try:
        runs.train_var(_params(params), tokenizer, out, depth=depth, width=width, log=typer.echo)
    except ERRORS as exc:
        _fail(exc)


TOKENIZER = typer.Option(Path("runs/mini/tokenizer"), help="Tokenizer run folder or .pth (official vae_ch160v4096z32.pth works).")
VAR_OPT = typer.Option(Path("runs/mini/var_d4"), help="VAR run folder or .pth (official var_dNN.pth works).")


def _sampling(p, **overrides):
    return dataclasses.replace(p.sampling, **{k: v for k, v in overrides.items() if v is not None})


@app.command()
def sample(
    var: Path = VAR_OPT,
    tokenizer: Path = TOKENIZER,
    out: Path = typer.Option(Path("runs/mini/samples.png"), help="Output PNG grid: one row per class."),
    per_class: int = typer.Option(8, min=1, help="Images per class (columns)."),
    seed: int = typer.Option(0, help="Sampling seed."),
    cfg: Optional[float] = typer.Option(None, help="Classifier-free guidance scale (default: sampling.cfg)."),
    top_k: Optional[int] = typer.Option(None, help="Top-k, ties kept; 0 disables (default: sampling.top_k)."),
    top_p: Optional[float] = typer.Option(None, help="Top-p after top-k; 0 disables (default: sampling.top_p)."),
    rng: Optional[str] = typer.Option(None, help="'per-sample' (batch-size invariant) or 'official' (g_seed stream)."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Images per forward pass (default: sampling.batch_size)."),
    scorer: Optional[Path] = typer.Option(None, help="Trained scorer (folder or scorer.pth): sample with LSRS."),
    m: Optional[int] = typer.Option(None, "--M", help="LSRS candidates per scale (default: params M)."),
    st: Optional[int] = typer.Option(None, "--ST", help="First LSRS scale, 1-based (default: params ST)."),
    selection: Optional[str] = typer.Option(None, help="'greedy' (argmax) or 'topk' (default: lsrs.selection.method)."),
    selection_k: Optional[int] = typer.Option(None, help="k of top-k selection (default: lsrs.selection.k)."),
    temperature: Optional[float] = typer.Option(None, help="Temperature of top-k selection."),
    params: Path = PARAMS,
):
    """Sample a class-by-class image grid from a trained VAR; with --scorer, by LSRS (M, ST from params)."""
    from lsrs.pipeline import runs

    try:
        p = _params(params)
        sampling = _sampling(p, cfg=cfg, top_k=top_k, top_p=top_p, rng=rng)
        vae = runs.load_tokenizer(tokenizer)
        model = runs.load_var(var, vae)
        plan = None
        if scorer is not None:
            sel = dataclasses.replace(p.lsrs.selection, **{k: v for k, v in dict(
                method=selection, k=selection_k, temperature=temperature).items() if v is not None})
            plan = runs.lsrs_plan(scorer, vae, p.schedule(m, st), sel)
            typer.echo(f"LSRS: schedule {list(plan.schedule)}, selection {sel.method}")
        elif any(v is not None for v in (m, st, selection, selection_k, temperature)):
            raise ValueError("--M, --ST and the selection options need --scorer")
        runs.sample_grid(model, vae, sampling, out, per_class=per_class, seed=seed, batch_size=batch_size, plan=plan)
        typer.echo(f"wrote {out}")
    except ERRORS as exc:
        _fail(exc)


@app.command("random-scales")
def random_scales(
    var: Path = VAR_OPT,
    tokenizer: Path = TOKENIZER,
    out: Path = typer.Option(Path("runs/mini/random_scales.png"), help="Output PNG: one row per class."),
    classes: str = typer.Option("0,1,2,3,4,5,6,7,8,9", help="Comma-separated class ids, one row each."),
    seed: int = typer.Option(0, help="Sampling seed."),
    params: Path = PARAMS,
):
    """Figure 1: the plain sample, then the same sample with one scale's tokens replaced by random ones."""
    from lsrs.pipeline import runs

    try:
        p = _params(params)
        vae = runs.load_tokenizer(tokenizer)
        model = runs.load_var(var, vae)
        ids = [int(c) for c in classes.split(",") if c.strip()]
        if not ids or min(ids) < 0 or max(ids) >= model.cfg.num_classes:
            raise ValueError(f"--classes must be ids in [0, {model.cfg.num_classes})")
        runs.random_scale_grid(model, vae, p.sampling, out, ids, seed)
        typer.echo(f"wrote {out} (columns: plain, then scale 1..{len(vae.cfg.patch_nums)} replaced)")
    except ERRORS as exc:
        _fail(exc)


@app.command()
def extract(
    tokenizer: Path = TOKENIZER,
    out: Path = typer.Option(Path("runs/mini/tokens/real"), help="Token store folder (resumes if interrupted)."),
    params: Path = PARAMS,
):
    """Real images -> multi-scale token maps (a sharded token store), for the scorer's real side."""
    from lsrs.pipeline import runs

    try:
        store = runs.extract_real_tokens(_params(params), tokenizer, out, log=typer.echo)
        typer.echo(f"wrote {len(store)} real token maps to {out}")
    except ERRORS as exc:
        _fail(exc)


@app.command("sample-tokens")
def sample_tokens(
    var: Path = VAR_OPT,
    tokenizer: Path = TOKENIZER,
    out: Path = typer.Option(Path("runs/mini/tokens/generated_d4"), help="Token store folder (resumes)."),
    params: Path = PARAMS,
):
    """Generated token maps for the scorer: tokens.generated_per_class per class, on the 'scorer-data' RNG stream.

    Sampling settings come from params (sampling.*), the seed from tokens.seed. The stream is disjoint
    from every evaluation draw by construction, whatever seeds are chosen.
    """
    from lsrs.pipeline import runs

    try:
        store = runs.sample_generated_tokens(_params(params), tokenizer, var, out, log=typer.echo)
        typer.echo(f"wrote {len(store)} generated token maps to {out}")
    except ERRORS as exc:
        _fail(exc)


@app.command("train-scorer")
def train_scorer(
    tokenizer: Path = TOKENIZER,
    real: Path = typer.Option(Path("runs/mini/tokens/real"), help="Token store of real maps (`lsrs extract`)."),
    generated: Path = typer.Option(Path("runs/mini/tokens/generated_d4"), help="Token store of generated maps."),
    out: Path = typer.Option(Path("runs/mini/scorer_d4_pairwise"), help="Folder for scorer.pth/.json, CSVs, plots."),
    loss: Optional[str] = typer.Option(None, help="'pairwise' or 'pointwise' (default: scorer.train.loss)."),
    without_first_scale: Optional[bool] = typer.Option(None, "--without-first-scale/--with-first-scale",
                                                       help="Leave scale 1 out of training (appendix H)."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Override scorer.train.epochs."),
    params: Path = PARAMS,
):
    """Train the LSRS scorer to rank real above generated token maps, every scale jointly (resumes)."""
    from lsrs.pipeline import runs

    try:
        metrics = runs.train_scorer(_params(params), tokenizer, real, generated, out, log=typer.echo,
                                    loss=loss, without_first_scale=without_first_scale, epochs=epochs)
        accs = " ".join(f"{a:.3f}" for a in metrics["val_acc_per_scale"])
        typer.echo(f"validation accuracy per scale: {accs}")
    except ERRORS as exc:
        _fail(exc)


EVALUATOR = typer.Option(Path("runs/mini/evaluator"), help="Mini evaluator folder (`lsrs train-evaluator`).")
REFERENCE = typer.Option(Path("runs/mini/reference.npz"), help="Reference statistics (`lsrs reference`).")


@app.command("train-evaluator")
def train_evaluator(
    out: Path = typer.Option(Path("runs/mini/evaluator"), help="Folder for evaluator.pth/.json and its metrics."),
    params: Path = PARAMS,
):
    """Train the mini profile's feature extractor (a Fashion-MNIST classifier) for FID, IS, P/R, sFID."""
    from lsrs.pipeline import runs

    try:
        m = runs.train_evaluator(_params(params), out, log=typer.echo)
        typer.echo(f"evaluator test accuracy {m['test_accuracy']:.4f}")
    except ERRORS as exc:
        _fail(exc)


@app.command()
def reference(
    evaluator: Path = EVALUATOR,
    out: Path = typer.Option(Path("runs/mini/reference.npz"), help="Output .npz (ADM layout plus our keys)."),
    params: Path = PARAMS,
):
    """Reference statistics of the real training images under the evaluator's features."""
    from lsrs.pipeline import runs

    try:
        runs.build_reference(_params(params), evaluator, out, log=typer.echo)
    except ERRORS as exc:
        _fail(exc)


@app.command()
def evaluate(
    var: Path = VAR_OPT,
    tokenizer: Path = TOKENIZER,
    evaluator: Path = EVALUATOR,
    reference_npz: Path = REFERENCE,
    out: Path = typer.Option(Path("runs/mini/eval/plain"), help="Folder for samples.npz and metrics.json."),
    scorer: Optional[Path] = typer.Option(None, help="Trained scorer: evaluate LSRS (M, ST from params)."),
    m: Optional[int] = typer.Option(None, "--M", help="LSRS candidates per scale (default: params M)."),
    st: Optional[int] = typer.Option(None, "--ST", help="First LSRS scale, 1-based (default: params ST)."),
    params: Path = PARAMS,
):
    """Generate the evaluation set (evaluation.per_class per class, paired seeds) and compute all metrics."""
    from lsrs.pipeline import runs

    try:
        p = _params(params)
        plan = None
        if scorer is not None:
            vae = runs.load_tokenizer(tokenizer)
            plan = runs.lsrs_plans(scorer, vae, p.schedule(m, st), p.lsrs.selection)
        elif m is not None or st is not None:
            raise ValueError("--M and --ST need --scorer")
        runs.evaluate(p, tokenizer, var, evaluator, reference_npz, out, plan, log=typer.echo)
    except ERRORS as exc:
        _fail(exc)


@app.command()
def compare(
    baseline: Path = typer.Argument(..., help="Run folder of the baseline (from lsrs evaluate / the pipeline)."),
    candidate: Path = typer.Argument(..., help="Run folder of the candidate, paired with the baseline."),
    evaluator: Optional[Path] = typer.Option(Path("runs/mini/evaluator"), help="Mini evaluator (unused for inception)."),
    reference_npz: Path = REFERENCE,
    n_boot: Optional[int] = typer.Option(None, min=100, help="Bootstrap draws (default: evaluation.n_boot)."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    params: Path = PARAMS,
):
    """Paired-bootstrap 95% interval of FID(candidate) - FID(baseline) for two runs on the same paired
    images (both folders hold features.pt); an interval entirely below 0 means the candidate is better
    beyond resampling noise. A candidate made with scorer replicates gets the interval over images and replicates."""
    import json

    from lsrs.pipeline import runs
    from lsrs.evaluation.reference import compare_runs, load_reference
    from lsrs.evaluation.features import load_features

    try:
        p = _params(params)
        extractor = runs.make_extractor(p, evaluator)
        ref = load_reference(reference_npz, extractor)
        feats = []
        for folder in (baseline, candidate):
            if not (folder / "features.pt").is_file():
                raise FileNotFoundError(f"{folder / 'features.pt'} not found: evaluate the run with this version first")
            feats.append(load_features(folder / "features.pt"))
        d = compare_runs(*feats, ref, n_boot=n_boot or p.evaluation.n_boot, seed=seed, groups=feats[1].replicate)
        typer.echo(json.dumps(d, indent=1))
        typer.echo(f"FID {d['fid_baseline']:.3f} -> {d['fid_candidate']:.3f}: difference {d['delta']:+.3f}, "
                   f"95% paired interval [{d['low']:+.3f}, {d['high']:+.3f}]")
    except ERRORS as exc:
        _fail(exc)


@app.command()
def refcheck(
    refset_dir: Path = typer.Argument(..., help="Reference folder (meta.json, state dicts, ref_*.pth)."),
    out: Optional[Path] = typer.Option(None, help="Also write our outputs here, in the full layout."),
):
    """Prove that our port matches the official VAR code: recompute a reference set and compare."""
    from lsrs.verify.refcheck import run_refcheck

    try:
        code = run_refcheck(refset_dir, out, echo=typer.echo)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    raise typer.Exit(code)


report_app = typer.Typer(help="The paper's tables and figures and a paper-vs-run scorecard, from metrics/ "
                              "(seconds; missing inputs become 'not measured').", no_args_is_help=True)
app.add_typer(report_app, name="report")
METRICS = typer.Option(Path("metrics"), "--metrics",
                       help="Folder of main.json, sweeps/*.csv, scorer_analysis.json, cost.csv.")
RUNS = typer.Option(Path("runs/mini"), "--runs", help="Run root; its figures/ holds the sample grids.")
REPORT_OUT = typer.Option(Path("reports"), "--out", help="Output folder (tables, figures, README.md).")


def _report(metrics: Path, runs: Path, out: Path, params: Path, tables: bool, figures: bool) -> None:
    from lsrs.report import make_report

    try:
        make_report(_params(params), metrics, runs, out, tables=tables, figures=figures, log=typer.echo)
    except (*ERRORS, KeyError) as exc:  # KeyError: a result file without a field the report reads
        _fail(exc)


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
