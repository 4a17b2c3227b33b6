"""The paper profile's code path end to end on the CPU: params-imagenet.yaml (a few values scaled down),
the real dvc.yaml untouched, and inputs/ filled the way the README tells a user to: a random VQ-VAE
checkpoint in the official layout (the official keys, 32 instead of 160 base channels, which keeps the
256px decodes of every stage to seconds), tiny official-shaped VARs (depths 1 and 2, two
classes), a JPEG class-folder tree of two classes and random-valued Inception weights. Every stage
runs and writes its outputs; the checks of the official files (sha256, keys) and of missing inputs
fail early with the message a user needs."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from lsrs.core.checkpoint import CheckpointError, link_checkpoint, sha256_file
from lsrs.pipeline.params import load_params
from lsrs.evaluation.features import INCEPTION_WEIGHTS_NAME
from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig

sys.path.insert(0, str(Path(__file__).parent))
from test_pipeline import DVC, ROOT, _run  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DVC.is_file(), reason="dvc is not installed")]

DEPTHS = {"d2": 2, "d1": 1}
TOKENIZER_CH = 32  # the official vae_ch160v4096z32 but with ch 32: every layer and key, 1/25 of the FLOPs


def write_inputs(inputs: Path, inception: Path) -> dict[str, str]:
    """inputs/ as the README describes it; returns the sha256 of each checkpoint by params name."""
    ckpt = inputs / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(VQVAE(TokenizerConfig(ch=TOKENIZER_CH)).state_dict(), ckpt / "vae_ch160v4096z32.pth")
    sha = {"tokenizer": sha256_file(ckpt / "vae_ch160v4096z32.pth")}
    for name, depth in DEPTHS.items():
        torch.save(VAR(TransformerConfig(depth=depth, num_classes=2)).state_dict(), ckpt / f"var_{name}.pth")
        sha[name] = sha256_file(ckpt / f"var_{name}.pth")
    rng = np.random.default_rng(0)
    for c, wnid in enumerate(("n00000001", "n00000002")):
        folder = inputs / "imagenet" / "train" / wnid
        folder.mkdir(parents=True)
        for j in range(5):
            base = np.full((90, 120, 3), 60 + 120 * c, np.uint8) + rng.integers(0, 60, (90, 120, 3), dtype=np.uint8)
            Image.fromarray(base).save(folder / f"{wnid}_{j}.JPEG", quality=90)
    shutil.copy(inception, inputs / INCEPTION_WEIGHTS_NAME)
    return sha


def smoke_params(sha: dict[str, str]) -> dict:
    """params-imagenet.yaml with the sizes scaled down; paths, models and settings stay the paper's."""
    p = yaml.safe_load((ROOT / "params-imagenet.yaml").read_text())
    p["M"] = 2
    p["tokenizer"]["sha256"] = sha["tokenizer"]
    p["tokenizer"]["model"]["ch"] = TOKENIZER_CH
    p["var"]["model"]["num_classes"] = 2
    p["var"]["depths"] = {n: {"depth": d, "checkpoint": f"inputs/checkpoints/var_{n}.pth", "sha256": sha[n]}
                          for n, d in DEPTHS.items()}
    p["var"]["main"] = "d2"
    p["sampling"]["batch_size"] = 4
    p["tokens"].update(generated_per_class=5, shard_size=4, encode_batch_size=4)
    p["scorer"]["model"]["num_classes"] = 2
    p["scorer"]["train"].update(epochs=1, warmup_epochs=0.5, batch_size=16)
    p["scorer"]["replicates"] = 2
    p["scorer"]["runs"] = {"d2-pairwise": {"var": "d2", "loss": "pairwise"},
                           "d1-pairwise": {"var": "d1", "loss": "pairwise"}}
    p["lsrs"]["scorer"] = "d2-pairwise"
    p["evaluation"].update(reference_batch=None, per_class=5, pr_count=10, feature_batch_size=10,  # IS: 10 splits
                           n_boot=100, n_boot_max=100)
    p["ablations"]["per_class"] = 5
    p["ablations"]["analysis_images"] = 4
    p["ablations"]["sweeps"] = {"m_st2": {"M": [1, 2], "ST": [2], "role": "m_curve"},
                                "depth": {"M": [2], "ST": [2], "scorers": ["d1-pairwise"], "role": "depth"}}
    p["ablations"]["cost"] = {"batch_size": 2, "M": [1, 2], "ST": 2, "repeats": 1}
    p["ablations"]["grids"] = {"images": 1, "M": [1, 2], "ST": [1, 2], "M_fixed": 2, "ST_fixed": 2, "seed": 0}
    p["runtime"].update(precision="bf16", launch="python")  # fp16 autocast is ~10x slower than fp32 on a CPU
    p["flexvar"]["enabled"] = False  # the switch: the flex_* stages record that they had nothing to do
    return p


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory, random_inception_weights) -> Path:
    repo = tmp_path_factory.mktemp("paper")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "tmp", "cache")
    for name in ("lsrs", "stages", ".dvc"):
        shutil.copytree(ROOT / name, repo / name, ignore=skip)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "params-imagenet.yaml"):
        shutil.copy(ROOT / name, repo / name)
    sha = write_inputs(repo / "inputs", random_inception_weights)
    (repo / "params.yaml").write_text(yaml.safe_dump(smoke_params(sha), sort_keys=False))
    for args in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "paper smoke"]):
        _run(args, repo)
    _run([str(DVC), "repro"], repo)
    return repo


def test_every_stage_of_the_paper_profile_runs(paper_repo):
    repo, runs = paper_repo, paper_repo / "runs" / "imagenet"
    params = load_params(repo / "params.yaml")
    link = json.loads((runs / "tokenizer" / "tokenizer.source.json").read_text())
    assert link["sha256"] == params.tokenizer.sha256 and not (runs / "tokenizer" / "tokenizer.pth").exists()
    for name in DEPTHS:
        assert (runs / "var" / name / "var.source.json").is_file()
        manifest = json.loads((runs / "tokens" / "generated" / name / "manifest.json").read_text())
        assert manifest["complete"] and manifest["total"] == 10 and len(manifest["patch_nums"]) == 10
    real = json.loads((runs / "tokens" / "real" / "manifest.json").read_text())
    assert real["complete"] and real["total"] == 10 and real["meta"]["crop"] == "random"
    for name in params.scorer.runs:
        for r in range(params.scorer.replicates):
            assert (runs / "scorers" / name / f"r{r}" / "scorer.pth").is_file()
    assert json.loads((runs / "evaluator" / "extractor.json").read_text())["extractor"] == "inception"
    main = json.loads((repo / "metrics" / "main.json").read_text())
    assert main["images"] == 10 and main["var"] == "d2" and np.isfinite(main["lsrs"]["fid"])
    base = json.loads((runs / "eval" / "baseline" / "d2" / "metrics.json").read_text())
    assert (base["autocast"], base["processes"], base["device"]) == ("bf16", 1, "cpu")
    with np.load(runs / "eval" / "main" / "samples.npz") as z:
        assert z["arr_0"].shape == (10, 256, 256, 3)
    for family in params.ablations.sweeps:
        assert (repo / "metrics" / "sweeps" / f"{family}.csv").is_file()
    assert (repo / "metrics" / "cost.csv").is_file() and (runs / "figures" / "random_scales.png").is_file()
    assert (repo / "reports" / "README.md").is_file() and (repo / "reports" / "table01.md").is_file()
    for folder in ("tokenizer", "var/flexvar", "tokens/real", "scorers/flexvar", "sweeps/m_st2"):
        assert json.loads((runs / "flexvar" / folder / "skipped.json").read_text())["skipped"]
    assert "FlexVAR: not measured" in (repo / "reports" / "table01.md").read_text()
    out = _run([str(DVC), "repro"], repo).stdout
    assert "Running stage" not in out


def test_missing_inputs_fail_in_prepare_with_what_to_put_where(paper_repo, tmp_path):
    params = yaml.safe_load((paper_repo / "params.yaml").read_text())
    params["var"]["depths"]["d2"]["checkpoint"] = "inputs/checkpoints/nowhere.pth"
    params["evaluation"]["inception_weights"] = "inputs/missing-inception.pth"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = _run([sys.executable, "stages/prepare.py", "--params", str(tmp_path / "params.yaml"), "--root",
                str(tmp_path / "runs")], paper_repo, check=False)
    assert out.returncode == 2
    assert "var.depths.d2.checkpoint = inputs/checkpoints/nowhere.pth: the official var_d2.pth" in out.stderr
    assert "evaluation.inception_weights = inputs/missing-inception.pth" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_link_checkpoint_checks_hash_and_keys(tmp_path):
    cfg = TransformerConfig(depth=1, num_classes=2)
    path = tmp_path / "var_d1.pth"
    torch.save(VAR(cfg).state_dict(), path)
    with torch.device("meta"):
        model = VAR(cfg)
    with pytest.raises(CheckpointError, match=f"This file's sha256 is {sha256_file(path)}"):
        link_checkpoint(model, cfg, path, None, tmp_path / "out", "var", "VAR checkpoint")
    with pytest.raises(CheckpointError, match="a different or damaged file"):
        link_checkpoint(model, cfg, path, "0" * 64, tmp_path / "out", "var", "VAR checkpoint")
    with pytest.raises(CheckpointError, match="not found"):
        link_checkpoint(model, cfg, tmp_path / "nope.pth", "0" * 64, tmp_path / "out", "var", "VAR checkpoint")
    other = TransformerConfig(depth=2, num_classes=2)
    with torch.device("meta"):
        deeper = VAR(other)
    with pytest.raises(CheckpointError, match="missing key blocks.1"):
        link_checkpoint(deeper, other, path, sha256_file(path), tmp_path / "out", "var", "VAR checkpoint")
    assert not (tmp_path / "out").exists()
    source = link_checkpoint(model, cfg, path, sha256_file(path), tmp_path / "out", "var", "VAR checkpoint")
    assert source["bytes"] == path.stat().st_size and (tmp_path / "out" / "var.json").is_file()
    from lsrs.families import VarFamily

    loaded = VarFamily().load_model(tmp_path / "out")
    assert torch.equal(loaded.class_emb.weight, torch.load(path)["class_emb.weight"])
