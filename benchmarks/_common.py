"""Shared helpers of the benchmarks (run on demand; not part of the package or the test suite).

Everything here builds models the way the peer timing tools in /work/shared/tools do (random
N(0, 0.02) weights, eval mode, CPU fp32) so that our numbers and theirs describe the same work.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TOOLS = Path("/work/shared/tools")
OFFICIAL_VAR_DIR = Path("/work/official_var")
OFFICIAL_LSRS_DIR = Path("/work/official_lsrs")

HOW_TO_GET = {
    "var": ("a work tree of github.com/FoundationVision/VAR, e.g. `git clone https://github.com/FoundationVision/VAR "
            "{dir}` (or `git --git-dir=<clone>/.git archive HEAD | tar -x -C {dir}`)"),
    "lsrs": ("a work tree of github.com/dt-3t/LSRS, e.g. `git clone https://github.com/dt-3t/LSRS {dir}` "
             "(or `git --git-dir=<clone>/.git archive HEAD | tar -x -C {dir}`)"),
}


# --------------------------------------------------------------------------- environment
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def setup_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (default: what torch picked) and return it."""
    n = threads or torch.get_num_threads()
    torch.set_num_threads(n)
    return n


def system_info(threads: int) -> dict:
    return {"torch": torch.__version__, "python": platform.python_version(), "threads": threads,
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "argv": sys.argv}


def print_header(title: str, info: dict) -> None:
    print(f"== {title}")
    print(f"torch {info['torch']} | python {info['python']} | torch threads {info['threads']} | "
          f"CPU: {info['cpu']} ({info['cpu_count']} logical cores)")
    busy = other_lsrs_jobs()
    if busy:
        print(f"WARNING: other lsrs processes are running and share the CPU, timings are disturbed: {busy}")
    print(flush=True)


def other_lsrs_jobs() -> list[str]:
    """Command lines of running `lsrs` training/sampling processes (they would distort timings)."""
    try:
        out = subprocess.run(["pgrep", "-af", "lsrs (train|sample)"], capture_output=True, text=True).stdout
    except OSError:
        return []
    return [line for line in out.splitlines() if line.strip()]


# --------------------------------------------------------------------------- timing
class PhaseTimer:
    """`timer(name)` for `lsrs.sampling.sampler.generate`: accumulates perf_counter seconds per phase name."""

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - t

    def reset(self) -> None:
        self.totals = defaultdict(float)


def median(xs) -> float:
    return statistics.median(xs)


def spread(xs) -> float:
    """(max - min) / median: the run-to-run noise of a set of timings."""
    return (max(xs) - min(xs)) / statistics.median(xs) if len(xs) > 1 else float("nan")


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# --------------------------------------------------------------------------- models
def normal_init_(*modules: torch.nn.Module, std: float = 0.02, seed: int = 0) -> None:
    """Every floating-point parameter ~ N(0, std), as the peer timing tools do; eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                if p.dtype.is_floating_point:
                    p.normal_(0, std)
    for m in modules:
        m.eval().requires_grad_(False)


def official_d16(depth: int = 16):
    """(vae, var) of the official vae_ch160v4096z32 + var_d{depth} architecture with random weights."""
    from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig

    vae, var = VQVAE(TokenizerConfig()), VAR(TransformerConfig(depth=depth))
    normal_init_(vae, var)
    return vae, var


def mini_models(params_path: str | Path, mini_dir: str | Path):
    """(vae, var, description): the trained mini models when both exist, else random mini-config ones."""
    from lsrs.pipeline.params import load_params
    from lsrs.models import VAR, VQVAE
    from lsrs.families import VarFamily

    mini_dir = Path(mini_dir)
    tok, vdir = mini_dir / "tokenizer", mini_dir / "var" / "d4"
    if (tok / "tokenizer.pth").is_file() and (vdir / "var.pth").is_file():
        vae = VarFamily().load_tokenizer(tok)
        var = VarFamily().load_model(vdir, vae)
        return vae, var, f"trained mini models ({tok}, {vdir})"
    p = load_params(params_path)
    vae, var = VQVAE(p.tokenizer.model), VAR(p.var_model())
    normal_init_(vae, var)
    return vae, var, f"random-weight mini config from {params_path} (no trained models in {mini_dir})"


def sampling_settings(params_path: str | Path, **changes):
    """params.yaml's sampling section (cfg 1.5, top_k 900, top_p 0.96, per-sample RNG), with changes."""
    from lsrs.pipeline.params import load_params

    return dataclasses.replace(load_params(params_path).sampling, **changes)


# --------------------------------------------------------------------------- peers
def run_json_lines(cmd: list[str], timeout: float) -> tuple[list[dict], str | None]:
    """Run a peer timing tool; its JSON lines and an error message (None when it succeeded)."""
    print("$ " + " ".join(cmd), flush=True)
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:.0f} s"
    rows = []
    for line in res.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    if res.returncode != 0:
        return rows, f"exit status {res.returncode}: {res.stderr.strip()[-2000:]}"
    return rows, None


def check_peer_dir(path: Path, kind: str, marker: str) -> str | None:
    """None if `path` looks like the peer work tree, else a message saying how to get it."""
    if (path / marker).is_file():
        return None
    return (f"{path} is not {'the official VAR' if kind == 'var' else 'the authors LSRS'} work tree "
            f"(no {marker}); the peer column is skipped. Get {HOW_TO_GET[kind].format(dir=path)} "
            f"and pass its path with --official-dir.")


# --------------------------------------------------------------------------- output
def table(rows: list[list], header: list[str]) -> str:
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c) -> str:
    if c is None:
        return "-"
    if isinstance(c, float):
        if c != c:
            return "-"
        return f"{c:.3f}" if abs(c) < 100 else f"{c:.1f}"
    return str(c)


def write_json(path: str | Path | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2, default=str))
        print(f"\nwrote {path}")
