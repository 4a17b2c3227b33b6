"""The `lsrs` command line: thin Typer commands over lsrs.runs and lsrs.refcheck."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="LSRS (Latent Scale Rejection Sampling for VAR): train, sample, check and reproduce.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameter file (validated before any work).")


def _params(path: Path):
    from lsrs.config import load_params

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
    from lsrs import runs

    try:
        runs.train_tokenizer(_params(params), out, log=typer.echo)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
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
    from lsrs import runs

    try:
        runs.train_var(_params(params), tokenizer, out, depth=depth, width=width, log=typer.echo)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(exc)


@app.command()
def sample(
    var: Path = typer.Option(Path("runs/mini/var_d4"), help="VAR run folder or .pth (official var_dNN.pth works)."),
    tokenizer: Path = typer.Option(Path("runs/mini/tokenizer"), help="Tokenizer run folder or .pth."),
    out: Path = typer.Option(Path("runs/mini/samples.png"), help="Output PNG grid: one row per class."),
    per_class: int = typer.Option(8, min=1, help="Images per class (columns)."),
    seed: int = typer.Option(0, help="Sampling seed."),
    cfg: Optional[float] = typer.Option(None, help="Classifier-free guidance scale (default: sampling.cfg)."),
    top_k: Optional[int] = typer.Option(None, help="Top-k, ties kept; 0 disables (default: sampling.top_k)."),
    top_p: Optional[float] = typer.Option(None, help="Top-p after top-k; 0 disables (default: sampling.top_p)."),
    rng: Optional[str] = typer.Option(None, help="'per-sample' (batch-size invariant) or 'official' (g_seed stream)."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Images per forward pass (default: sampling.batch_size)."),
    params: Path = PARAMS,
):
    """Sample a class-by-class image grid from a trained VAR."""
    from lsrs import runs

    try:
        p = _params(params)
        overrides = {k: v for k, v in dict(cfg=cfg, top_k=top_k, top_p=top_p, rng=rng).items() if v is not None}
        sampling = dataclasses.replace(p.sampling, **overrides)
        vae = runs.load_tokenizer(tokenizer)
        model = runs.load_var(var, vae)
        runs.sample_grid(model, vae, sampling, out, per_class=per_class, seed=seed, batch_size=batch_size)
        typer.echo(f"wrote {out}")
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(exc)


@app.command()
def refcheck(
    refset_dir: Path = typer.Argument(..., help="Reference folder (meta.json, state dicts, ref_*.pth)."),
    out: Optional[Path] = typer.Option(None, help="Also write our outputs here, in the full layout."),
):
    """Prove that our port matches the official VAR code: recompute a reference set and compare."""
    from lsrs.refcheck import run_refcheck

    try:
        code = run_refcheck(refset_dir, out, echo=typer.echo)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
