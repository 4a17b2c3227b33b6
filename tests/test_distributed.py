"""torchrun with 2 CPU processes (gloo) against one process: token stores byte for byte, evaluation
images equal, and a scorer trained with DDP (the data-parallel result matches one process up to
float summation order)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

WORKER = Path(__file__).with_name("dist_worker.py")


def run_worker(out: Path, procs: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(WORKER), str(out)] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", str(WORKER), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    run_worker(one, 1)
    run_worker(two, 2)
    return one, two


def test_token_stores_are_byte_identical(runs):
    one, two = runs
    for store in ("real", "generated"):
        a, b = files(one / store), files(two / store)
        assert sorted(a) == sorted(b) and len([n for n in a if n.endswith(".tokens.npy")]) > 2
        assert a == b, f"{store}: files differ: {[n for n in a if a[n] != b.get(n)]}"
        assert not [n for n in b if n.endswith(".entry.json")]  # every entry moved into the manifest


def test_distributed_evaluation_sampling_equals_one_process(runs):
    one, two = runs
    a, b = np.load(one / "eval_images.npy"), np.load(two / "eval_images.npy")
    assert a.shape == (10, 1, 8, 8) and a.dtype == np.uint8
    assert np.array_equal(a, b)


def test_ddp_scorer_training_matches_one_process(runs):
    one, two = runs
    a = torch.load(one / "scorer" / "scorer.pth", weights_only=True)
    b = torch.load(two / "scorer" / "scorer.pth", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:  # Adam turns summation-order differences (~1e-7) into ~1e-4 after a few steps
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=3e-3, msg=k)
    val_a = (one / "scorer" / "scorer_val.csv").read_text().splitlines()
    val_b = (two / "scorer" / "scorer_val.csv").read_text().splitlines()
    assert len(val_a) == len(val_b) == 1 + 2 * 4  # 2 epochs x 4 scales
    first_a = np.array([float(r.split(",")[2]) for r in val_a[1:5]])
    first_b = np.array([float(r.split(",")[2]) for r in val_b[1:5]])
    np.testing.assert_allclose(first_a, first_b, rtol=1e-5)  # after epoch 1
    assert (two / "scorer" / "scorer_val.csv").is_file() and (two / "scorer" / "scorer_metrics.json").is_file()
