"""The real dvc.yaml, end to end, on a tiny overlay of params.yaml (tests/data/tiny_params.yaml) in a
copy of the repository: `dvc repro`, a no-op repro, `dvc exp run -S M=...` rerunning only what
depends on M, and bad values failing in `prepare` with the key named and every output untouched."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lsrs.pipeline.params import ParamsError, load_params, overlay

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
DVC = Path(sys.executable).with_name("dvc")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST (dataset-fashion-mnist) not installed"),
              pytest.mark.skipif(not DVC.is_file(), reason="dvc is not installed in this environment")]


def tiny_params() -> dict:
    return overlay(yaml.safe_load((ROOT / "params.yaml").read_text()),
                   yaml.safe_load((ROOT / "tests/data/tiny_params.yaml").read_text()))


def test_tiny_params_valid_and_consistent_with_params_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    tiny, full = load_params(path), load_params(ROOT / "params.yaml")
    assert set(tiny.ablations.sweeps) <= set(full.ablations.sweeps)  # the tiny run covers real stage names
    assert set(tiny.scorer.runs) == set(full.scorer.runs) and set(tiny.var.depths) == set(full.var.depths)


@pytest.mark.parametrize("key, value, message", [
    ("M", 0, "M: must be >= 1"),
    ("ST", 99, "ST: must be in 1..7"),
    ("scorer.runs.d4-pointwise.loss", "foo", "scorer.runs.d4-pointwise.loss: must be one of"),
    ("lsrs.scorer", "d2-pairwise", "lsrs.scorer: the main scorer must be trained on var.main"),
    ("var.main", "d9", "var.main: must name one of var.depths"),
    ("data.test_limit", 0, "data: test_limit must be >= 1 or null"),
    ("Mm", 4, "Mm: unknown key"),  # a misspelt top-level section is refused too
    ("ablations.sweeps.m_st2.ST", [0], "ablations.sweeps.m_st2.ST: every ST must be in 1..7"),
    ("ablations.sweeps.topk.k", [512], "ablations.sweeps.topk.k: every k must be in 1..min(M)"),
    ("ablations.sweeps.loss.scorers", ["nope"], "ablations.sweeps.loss.scorers: 'nope' is not a scorer run"),
    ("scorer.runs.d4-pairwise.var", "d3", "scorer.runs.d4-pairwise.var: must name one of var.depths"),
    ("flexvar.patch_nums", [1, 2, 4], "flexvar.patch_nums: the last scale must be the FlexVAE latent size 8"),
    ("flexvar.patch_nums", [1, 3, 2, 8], "flexvar: a patch schedule must be strictly increasing"),
    ("flexvar.scorer.model.in_channels", 32, "flexvar.scorer.model.in_channels: must equal"),
    ("flexvar.scorer.model.num_scales", 5, "flexvar.scorer.model.num_scales: must equal the number of scales"),
    ("flexvar.scorer.model.input_kind", "var", "flexvar.scorer.model.input_kind: must be 'flexvar'"),
    ("flexvar.sweeps.m_st2.ST", [9], "flexvar.sweeps.m_st2.ST: every ST must be in 1..7"),
    ("flexvar.var.model.width", 129, "flexvar.var.model: var.width 129 is not divisible by num_heads 2"),
])
def test_bad_values_name_the_key(tmp_path, key, value, message):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    *parents, last = key.split(".")
    node = params
    for k in parents:
        node = node[k]
    node[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_params(path)


def _snapshot(repo: Path) -> dict[str, str]:
    """Content hashes of every output file (runs/ and metrics/)."""
    return {str(p.relative_to(repo)): hashlib.md5(p.read_bytes()).hexdigest()
            for d in ("runs", "metrics") for p in sorted((repo / d).rglob("*")) if p.is_file()}


def _run(args: list[str], repo: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{DVC.parent}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(repo),
           "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    out = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    """A git + DVC copy of the repository with the tiny params, after a full `dvc repro`."""
    repo = tmp_path_factory.mktemp("pipeline")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "tmp", "cache")
    for name in ("lsrs", "stages", ".dvc"):
        shutil.copytree(ROOT / name, repo / name, ignore=skip)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    for args in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"]):
        _run(args, repo)
    _run([str(DVC), "repro"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "repro"], repo)
    return repo


def test_repro_makes_every_output_then_is_a_noop(tiny_repo):
    repo = tiny_repo
    params = load_params(repo / "params.yaml")
    for name in params.var.depths:
        assert (repo / f"runs/mini/var/{name}/var.pth").is_file()
        assert not (repo / f"runs/mini/var/{name}/var.train.pth").exists()  # scratch dropped
    for name in params.scorer.runs:
        for r in range(params.scorer.replicates):
            assert (repo / f"runs/mini/scorers/{name}/r{r}/scorer.pth").is_file()
    for name in params.ablations.sweeps:
        assert (repo / f"metrics/sweeps/{name}.csv").is_file()
    import pandas as pd

    for name in params.flexvar.sweeps:
        assert (repo / f"metrics/sweeps/flexvar_{name}.csv").is_file()
    assert (repo / "runs/mini/flexvar/var/flexvar/flexvar.pth").is_file()
    assert (repo / "runs/mini/flexvar/scorers/flexvar/r0/scorer.pth").is_file()
    flex = pd.read_csv(repo / "metrics/sweeps/flexvar_m_st2.csv")
    assert list(flex["M"]) == [1, 2, 4] and set(flex["var"]) == {"flexvar"} and flex["fid"].notna().all()
    assert "FlexVAR" in (repo / "reports/table01.md").read_text()
    m_sweep = pd.read_csv(repo / "metrics/sweeps/m_st2.csv")
    assert list(m_sweep["M"]) == [1, 2, 4] and m_sweep["fid"].notna().all()
    assert m_sweep.loc[0, "fid_diff"] == 0.0  # the baseline row
    assert list(m_sweep["count"]) == [20, 20, 10]  # per_class_at_M: M = 4 on the first image of each class
    main = yaml.safe_load((repo / "metrics/main.json").read_text())
    assert main["M"] == 2 and main["lsrs"]["fid"] > 0 and main["baseline"]["fid"] > 0
    assert main["fid_diff"]["low"] <= main["fid_diff"]["delta"] <= main["fid_diff"]["high"]
    assert main["replicates"] == params.scorer.replicates == len(main["fid_diff"]["replicate_deltas"])
    assert main["fid_diff"]["method"].startswith("percentile: images within") and main["fid_diff"]["tau2"] >= 0
    attribution = pd.read_csv(repo / "metrics/sweeps/attribution.csv")
    assert sorted(attribution["only_scale"].dropna().astype(int)) == [2, 7]
    assert (repo / "reports/table11.md").is_file() and (repo / "reports/power.md").is_file()
    assert (repo / "reports/fig11_attribution.png").is_file()
    for png in ("grid_M.png", "grid_ST.png", "random_scales.png"):
        assert (repo / "runs/mini/figures" / png).is_file()
    assert "Paper vs this run" in (repo / "reports/README.md").read_text()
    assert (repo / "reports/table05.md").is_file() and (repo / "reports/fig03_ablation_M_ST.png").is_file()
    assert _run([str(DVC), "status", "-q"], repo, check=False).returncode == 0
    out = _run([str(DVC), "repro"], repo).stdout
    assert "Running stage" not in out


@pytest.mark.parametrize("override, message", [
    ("M=0", "M: must be >= 1"),
    ("ST=99", "ST: must be in 1..7"),
    ("scorer.runs.d4-pointwise.loss=foo", "scorer.runs.d4-pointwise.loss: must be one of"),
])
def test_bad_value_fails_in_prepare_and_touches_nothing(tiny_repo, override, message):
    repo = tiny_repo
    before = _snapshot(repo)
    out = _run([str(DVC), "exp", "run", "-S", override], repo, check=False)
    _run(["git", "checkout", "-q", "HEAD", "--", "params.yaml"], repo)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert message in text and "failed to reproduce 'prepare'" in text
    assert _snapshot(repo) == before


def test_exp_run_M_reruns_only_what_depends_on_M(tiny_repo):
    repo = tiny_repo
    out = _run([str(DVC), "exp", "run", "-S", "M=4"], repo).stdout
    ran = sorted(line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage"))
    assert ran == ["evaluate", "prepare", "report", "scorer_analysis"]  # the analysis scores LSRS at M
    main = yaml.safe_load((repo / "metrics/main.json").read_text())
    assert main["M"] == 4 and main["schedule"] == [1, 4, 4, 4, 4, 4, 4]
    shown = _run([str(DVC), "exp", "show", "--csv"], repo).stdout
    assert "lsrs.fid" in shown.splitlines()[0]


def test_compare_command_reproduces_the_main_summary_interval(tiny_repo):
    repo = tiny_repo
    lsrs = Path(sys.executable).with_name("lsrs")
    out = _run([str(lsrs), "compare", "--root", "runs/mini", "runs/mini/eval/baseline/d4", "runs/mini/eval/main"],
               repo).stdout
    main = yaml.safe_load((repo / "metrics/main.json").read_text())
    import json

    d = json.loads(out[:out.rindex("}") + 1])
    assert d["delta"] == pytest.approx(main["fid_diff"]["delta"], abs=1e-9)
    assert d["low"] == pytest.approx(main["fid_diff"]["low"], abs=1e-9)


def test_an_edit_to_the_report_reruns_only_the_report(tiny_repo):
    """Each stage depends on the packages it imports: a change in lsrs/report changes no other stage."""
    import json

    repo = tiny_repo
    module = repo / "lsrs" / "report" / "__init__.py"
    text = module.read_text()
    try:
        module.write_text(text + "# an edit\n")
        status = json.loads(_run([str(DVC), "status", "--json"], repo).stdout)
    finally:
        module.write_text(text)
    assert set(status) == {"report"}, status
