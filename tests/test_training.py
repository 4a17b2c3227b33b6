"""Data reader, params validation, training resume and the CLI on tiny synthetic data."""
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from lsrs.cli import app
from lsrs.pipeline.params import ParamsError, load_params
from lsrs.data.fashion_mnist import DataMissingError, load_fashion_mnist, parse_idx

ROOT = Path(__file__).resolve().parents[1]


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def make_fake_fashion(root: Path, n_train: int = 96, n_test: int = 40) -> Path:
    """Class-dependent blobs in Fashion-MNIST's IDX layout (28x28, labels 0..9)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = np.zeros((n, 28, 28), np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c: 8 + 2 * c, 4:24] = 200 + rng.integers(0, 55)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def tiny_params(tmp_path: Path, data_root: Path, **optim) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["root"] = str(data_root)
    params["tokenizer"]["model"].update(ch=8, vocab_size=32, z_channels=4, norm_groups=4)
    params["var"]["model"].update(depth=1, width=32, num_heads=1)
    for section in ("tokenizer", "var"):
        params[section]["train"]["optim"].update(steps=6, batch_size=8, warmup_steps=2, checkpoint_every=3, **optim)
    params["sampling"].update(top_k=0, top_p=0.0)
    params["scorer"]["model"].update(in_channels=4, widths=[8, 16], emb_dim=8, mlp_dims=[16])
    params["scorer"]["train"].update(epochs=1, batch_size=8)
    params["tokens"].update(real_per_class=4, generated_per_class=3, shard_size=16)
    params["evaluation"].update(per_class=3, pr_count=20)
    params["evaluation"]["evaluator"].update(epochs=1, batch_size=16)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_idx_reader_and_padding(tmp_path):
    root = make_fake_fashion(tmp_path / "fm")
    data = load_fashion_mnist(root, "train")
    assert data.images.shape == (96, 1, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert int(data.images[:, :, :2].sum()) == 0  # padding is background
    assert data.as_float(slice(0, 2)).min() >= -1 and data.as_float(slice(0, 2)).max() <= 1
    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"\x01\x02\x03\x04")


def test_missing_data_names_the_package(tmp_path):
    with pytest.raises(DataMissingError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_params_errors_name_the_key(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["var"]["train"]["optim"]["lr"] = -1
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="var.train.optim"):
        load_params(tmp_path / "p.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["tokenizer"]["model"]["vocab"] = 3
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="tokenizer.model.vocab: unknown key"):
        load_params(tmp_path / "p.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sampling"]["rng"] = "global"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="sampling"):
        load_params(tmp_path / "p.yaml")
    assert load_params(ROOT / "params.yaml").var_model().vocab_size == 512
    for key, value, match in (("M", 0, "M: must be >= 1"), ("ST", 99, "ST: must be in 1..7"),
                              ("M", True, "M: expected int")):
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params[key] = value
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
        with pytest.raises(ParamsError, match=match):
            load_params(tmp_path / "p.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["scorer"]["train"]["loss"] = "hinge"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="scorer.train.*loss must be one of"):
        load_params(tmp_path / "p.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["lsrs"]["selection"]["method"] = "best"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="lsrs.selection"):
        load_params(tmp_path / "p.yaml")
    assert load_params(ROOT / "params.yaml").schedule(M=4, ST=3) == (1, 1, 4, 4, 4, 4, 4)


def test_train_resume_equals_uninterrupted_and_cli_samples(tmp_path):
    """Stop after a snapshot, resume: the final weights equal an uninterrupted run's, bit for bit."""
    import shutil

    from lsrs.pipeline.context import StageContext
    from lsrs.pipeline.models import train_tokenizer
    from lsrs.training.trainers import TokenizerTrainer

    root = make_fake_fashion(tmp_path / "fm")
    ctx = StageContext.create(load_params(tiny_params(tmp_path, root)), tmp_path / "runs", log=lambda m: None)
    full = train_tokenizer(ctx, tmp_path / "full")

    class Interrupt(Exception):
        pass

    original = TokenizerTrainer.save_snapshot

    def crash_after_first_snapshot(self):
        original(self)
        raise Interrupt

    TokenizerTrainer.save_snapshot = crash_after_first_snapshot
    try:
        with pytest.raises(Interrupt):
            train_tokenizer(ctx, tmp_path / "resumed")
    finally:
        TokenizerTrainer.save_snapshot = original
    resumed = train_tokenizer(ctx, tmp_path / "resumed")
    a = torch.load(tmp_path / "full" / "tokenizer.pth")
    b = torch.load(tmp_path / "resumed" / "tokenizer.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full["mse_pm1"] == resumed["mse_pm1"]
    for name in ("tokenizer_loss.csv", "tokenizer_loss.png", "tokenizer_recon.png", "tokenizer.json"):
        assert (tmp_path / "resumed" / name).is_file()

    # the CLI runs the pipeline's steps in its own run root (default runs/cli), on the same folders
    cli = CliRunner()
    runs = tmp_path / "cli"
    shutil.copytree(tmp_path / "full", runs / "tokenizer")
    base = ["-p", str(tmp_path / "params.yaml"), "--root", str(runs)]
    res = cli.invoke(app, ["train-var", *base])
    assert res.exit_code == 0, res.output
    assert (runs / "var" / "d4" / "var.pth").is_file()
    res = cli.invoke(app, ["sample", *base, "--out", str(tmp_path / "grid.png"), "--per-class", "2"])
    assert res.exit_code == 0, res.output
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size == (2 * 33 + 1, 10 * 33 + 1)
    res = cli.invoke(app, ["sample", *base, "--name", "d2"])
    assert res.exit_code == 2 and "not found" in res.output

    # the LSRS chain: real and generated token stores, a scorer, LSRS sampling, Figure 1
    res = cli.invoke(app, ["extract", *base])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["sample-tokens", *base])
    assert res.exit_code == 0, res.output
    from lsrs.tokens.store import TokenStore

    real, gen = TokenStore.open(runs / "tokens" / "real"), TokenStore.open(runs / "tokens" / "generated" / "d4")
    assert len(real) == 40 and len(gen) == 30 and sorted(set(real.labels.tolist())) == list(range(10))
    res = cli.invoke(app, ["train-scorer", *base, "--name", "d4-pointwise"])
    assert res.exit_code == 0, res.output
    assert "validation accuracy per scale" in res.output
    assert (runs / "scorers" / "d4-pointwise" / "r0" / "scorer_val.csv").is_file()
    lsrs = [*base, "--per-class", "2", "--scorer", "d4-pointwise"]
    res = cli.invoke(app, ["sample", *lsrs, "--out", str(tmp_path / "m1.png"), "--M", "1"])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "m1.png").tobytes() == Image.open(tmp_path / "grid.png").tobytes()  # M=1 is plain
    res = cli.invoke(app, ["sample", *lsrs, "--out", str(tmp_path / "m4.png"), "--M", "4", "--selection", "topk",
                           "--selection-k", "2"])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["sample", *lsrs, "--out", str(tmp_path / "bad.png"), "--ST", "99"])
    assert res.exit_code == 2 and "ST must be in 1..7" in res.output and not (tmp_path / "bad.png").exists()
    res = cli.invoke(app, ["random-scales", *base, "--classes", "0,3", "--out", str(tmp_path / "fig1.png")])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "fig1.png").size == (8 * 33 + 1, 2 * 33 + 1)

    # evaluation: evaluator, reference statistics, a plain and an LSRS run on paired seeds
    res = cli.invoke(app, ["train-evaluator", *base])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["reference", *base])
    assert res.exit_code == 0, res.output
    import json

    from lsrs.core.npz import read_samples

    for name, extra in (("plain", []), ("lsrs", ["--scorer", "d4-pointwise", "--M", "4"])):
        res = cli.invoke(app, ["evaluate", *base, "--out", str(tmp_path / name), *extra])
        assert res.exit_code == 0, res.output
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        assert m["count"] == 30 and m["fid"] >= 0 and abs(m["fid_mean_diff2"] + m["fid_trace_term"] - m["fid"]) < 1e-6 * max(m["fid"], 1)
    assert m["schedule"] == [1, 4, 4, 4, 4, 4, 4] and m["seconds_per_image"] > 0 and m["peak_rss_mib"] > 0
    assert m["replicates"] == load_params(tmp_path / "params.yaml").scorer.replicates
    plain, _ = read_samples(tmp_path / "plain" / "samples.npz")
    lsrs_imgs, labels = read_samples(tmp_path / "lsrs" / "samples.npz")
    assert plain.shape == lsrs_imgs.shape == (30, 32, 32, 1) and labels.tolist()[:11] == [*range(10), 0]
    res = cli.invoke(app, ["compare", *base, str(tmp_path / "plain"), str(tmp_path / "lsrs")])
    assert res.exit_code == 0 and "95% paired interval" in res.output, res.output


def test_cli_help_and_refcheck_missing_folder(tmp_path):
    cli = CliRunner()
    res = cli.invoke(app, ["--help"])
    assert res.exit_code == 0
    for command in ("train-tokenizer", "train-var", "sample", "refcheck"):
        assert command in res.output
    res = cli.invoke(app, ["refcheck", str(tmp_path / "no-such-set")])
    assert res.exit_code == 2 and "no-such-set" in res.output
