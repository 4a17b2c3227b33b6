"""Token stores: round trip, byte-identical resume, corruption and foreign-run refusal, and the two writers."""
import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lsrs.sampling.sampler import SamplingConfig
from lsrs.data.fashion_mnist import ImageSet
from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig
from lsrs.sampling.sampler import PerSampleRNG, TokenSampler, generate
from lsrs.tokens.store import StoreError, StoreSpec, TokenStore, exclusive_lock, token_dtype, write_store
from lsrs.tokens.writers import extract_real, sample_generated

MINI_SCALES = (1, 2, 3, 4, 5, 6, 8)  # L = 155
SPEC = StoreSpec(kind="generated", meta={"seed": 3, "model": {"path": "x.pth"}, "pair": (1, 2)},
                 patch_nums=MINI_SCALES, vocab_size=4096, total=23, shard_size=5)  # shards of 5, 5, 5, 5, 3

TOK = TokenizerConfig(vocab_size=64, z_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, in_channels=1,
                      patch_nums=(1, 2, 3, 4), norm_groups=4, use_attn=False)
TR = TransformerConfig(depth=2, width=64, num_heads=2, num_classes=4, vocab_size=64, z_channels=4,
                       patch_nums=(1, 2, 3, 4), cond_drop_rate=0.0)
SAMPLING = SamplingConfig(cfg=1.5, top_k=20, top_p=0.9, seed=5, batch_size=3)


def produce(start, count):
    """A deterministic producer: item i's map depends on i only."""
    i = np.arange(start, start + count)
    tokens = (i[:, None] * 7919 + np.arange(155)[None] * 104729) % SPEC.vocab_size
    return tokens, i % 10, i + 1000


class Recorder:
    """The producer, recording its calls; raises on call number `fail_at` to simulate an interruption."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def __call__(self, start, count):
        if len(self.calls) == self.fail_at:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append((start, count))
        return produce(start, count)


def quiet(path, spec=SPEC, producer=produce):
    return write_store(path, spec, producer, log=lambda msg: None, progress=False)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def interrupted(path, after=2):
    with pytest.raises(KeyboardInterrupt):
        quiet(path, producer=Recorder(fail_at=after))


def test_round_trip_dtypes_checksums_and_memory_map(tmp_path):
    store = quiet(tmp_path / "s")
    tokens, labels, ids = produce(0, 23)
    assert len(store) == 23 and store.tokens.dtype == np.uint16 and store.tokens.shape == (23, 155)
    assert np.array_equal(store.tokens, tokens) and np.array_equal(store.labels, labels)
    assert np.array_equal(store.ids, ids) and store.labels.dtype == store.ids.dtype == np.int64
    assert isinstance(store.shard(0)[0], np.memmap)
    assert [s.shape for s in store.scales()] == [(23, pn * pn) for pn in MINI_SCALES]
    assert np.array_equal(store.scales()[2], tokens[:, 5:14])
    store.verify()
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["total"] == 23 and len(manifest["shards"]) == 5
    assert manifest["shards"][4] == {**manifest["shards"][4], "name": "shard_00004", "start": 20, "count": 3}
    reopened = TokenStore.open(tmp_path / "s")
    assert reopened.spec == SPEC and np.array_equal(reopened.tokens, tokens)
    again = Recorder()
    quiet(tmp_path / "s", producer=again)  # a complete store is verified, not recomputed
    assert again.calls == []
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.int32


def test_resume_is_byte_identical_and_skips_finished_shards(tmp_path):
    quiet(tmp_path / "whole")
    part = tmp_path / "part"
    interrupted(part)
    (part / ".shard_00002.tokens.npy.tmp4242").write_bytes(b"half a shard")  # as a kill mid-write leaves it
    with pytest.raises(StoreError, match="incomplete"):
        TokenStore.open(part)
    assert len(TokenStore.open(part, allow_incomplete=True)) == 10
    resumed = Recorder()
    logs = []
    write_store(part, SPEC, resumed, log=logs.append, progress=False)
    assert resumed.calls == [(10, 5), (15, 5), (20, 3)]
    assert any("removing .shard_00002.tokens.npy.tmp4242" in m for m in logs)
    assert snapshot(part) == snapshot(tmp_path / "whole")


KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, sys.argv[2])
from test_store import SPEC, produce
from lsrs.tokens import store

def replace(src, dst, _replace=os.replace):  # SIGKILL in the middle of writing shard 2
    if str(dst).endswith("shard_00002.labels.npy"):
        os.kill(os.getpid(), signal.SIGKILL)
    _replace(src, dst)

store.os.replace = replace
store.write_store(sys.argv[1], SPEC, produce, log=lambda m: None, progress=False)
"""


def test_resume_after_sigkill_mid_shard(tmp_path):
    """A real kill leaves a temp file and an unlisted shard file; the resume redoes shard 2 and matches."""
    quiet(tmp_path / "whole")
    part = tmp_path / "part"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(part), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (part / "shard_00002.tokens.npy").exists() and any(p.name.startswith(".") for p in part.iterdir())
    assert len(TokenStore.open(part, allow_incomplete=True)) == 10
    resumed = Recorder()
    quiet(part, producer=resumed)
    assert resumed.calls == [(10, 5), (15, 5), (20, 3)]
    assert snapshot(part) == snapshot(tmp_path / "whole")


def test_a_second_writer_is_refused(tmp_path):
    path = tmp_path / "s"
    path.mkdir()
    with exclusive_lock(path):
        with pytest.raises(StoreError, match="another process"):
            quiet(path)
    quiet(path)


def test_corrupted_shard_is_detected_and_never_overwritten(tmp_path):
    path = tmp_path / "s"
    interrupted(path)
    target = path / "shard_00001.tokens.npy"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="shard_00001"):
        TokenStore.open(path, allow_incomplete=True).verify()
    before, again = snapshot(path), Recorder()
    with pytest.raises(StoreError, match="shard_00001"):
        quiet(path, producer=again)
    assert again.calls == [] and snapshot(path) == before
    target.write_bytes(b"truncated")
    with pytest.raises(StoreError, match="shard_00001"):
        quiet(path)


def test_foreign_folders_are_refused_and_left_untouched(tmp_path):
    path = tmp_path / "s"
    interrupted(path)
    (path / ".shard_00002.ids.npy.tmp1").write_bytes(b"x")  # not even temp files go when the spec differs
    before = snapshot(path)
    other = dataclasses.replace(SPEC, meta={**SPEC.meta, "seed": 4}, shard_size=6)
    with pytest.raises(StoreError, match="different") as err:
        quiet(path, spec=other)
    assert "meta.seed: folder has 3, requested 4" in str(err.value) and "shard_size" in str(err.value)
    assert snapshot(path) == before
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        quiet(tmp_path / "stuff")
    with pytest.raises(StoreError, match="manifest.json"):
        TokenStore.open(tmp_path / "nowhere")
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match="corrupt"):
        TokenStore.open(path)


def test_producer_output_is_validated(tmp_path):
    def out_of_range(start, count):
        tokens, labels, ids = produce(start, count)
        return tokens + SPEC.vocab_size, labels, ids

    with pytest.raises(ValueError, match=r"\[0, 4096\)"):
        quiet(tmp_path / "a", producer=out_of_range)
    with pytest.raises(ValueError, match="shape"):
        quiet(tmp_path / "b", producer=lambda s, c: (produce(s, c)[0][:, :10], *produce(s, c)[1:]))
    assert TokenStore.open(tmp_path / "a", allow_incomplete=True).shards == []


# --------------------------------------------------------------------------- the writers, on tiny models
@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return VQVAE(TOK).eval().requires_grad_(False), VAR(TR).eval().requires_grad_(False)


def generated(models, path, batch_size):
    vae, var = models
    sampling = dataclasses.replace(SAMPLING, batch_size=batch_size)
    return sample_generated(var, vae, path, 3, sampling, {"var": "tiny"}, shard_size=5, log=lambda m: None)


def test_sample_generated_is_deterministic_and_batch_invariant(models, tmp_path):
    a = generated(models, tmp_path / "a", batch_size=3)
    b = generated(models, tmp_path / "b", batch_size=8)
    c = generated(models, tmp_path / "c", batch_size=8)
    assert len(a) == 12 and a.tokens.shape == (12, 30)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b") == snapshot(tmp_path / "c")
    assert np.array_equal(a.labels, np.arange(12) % 4) and np.array_equal(a.ids, np.arange(12))
    meta = a.spec.meta
    assert (meta["stream"], meta["seed"], meta["cfg"], meta["top_k"], meta["top_p"]) == ("scorer-data", 5, 1.5, 20, 0.9)


def test_sample_generated_uses_the_scorer_stream_only(models, tmp_path):
    vae, var = models
    store = generated(models, tmp_path / "g", batch_size=12)
    ids, labels = torch.arange(12), torch.arange(12) % 4

    def draw(stream):
        sel = TokenSampler(PerSampleRNG(SAMPLING.seed, ids, stream=stream), SAMPLING.top_k, SAMPLING.top_p)
        return torch.cat(generate(var, vae, labels, sel, cfg=SAMPLING.cfg, decode=False).idx, 1).numpy()

    assert np.array_equal(store.tokens, draw("scorer-data"))
    assert not np.array_equal(store.tokens, draw("eval"))
    with pytest.raises(ValueError, match="per-sample"):
        sample_generated(var, vae, tmp_path / "o", 3, dataclasses.replace(SAMPLING, rng="official"), {})
    assert not (tmp_path / "o").exists()


def test_extract_real_equals_img_to_idx(models, tmp_path):
    vae, _ = models
    g = torch.Generator().manual_seed(1)
    images = ImageSet(torch.randint(0, 256, (7, 1, 8, 8), dtype=torch.uint8, generator=g),
                      torch.tensor([3, 1, 0, 2, 2, 1, 0]), num_classes=4)
    ids = torch.tensor([10, 11, 15, 20, 21, 30, 31])
    store = extract_real(vae, images, tmp_path / "r", {"source": "fake"}, ids=ids, shard_size=3, batch_size=2,
                         log=lambda m: None)
    with torch.no_grad():
        expected = torch.cat(vae.img_to_idx(images.as_float(slice(None))), 1).numpy()
    assert store.spec.kind == "real" and len(store.shards) == 3
    assert np.array_equal(store.tokens, expected)
    assert np.array_equal(store.labels, images.labels.numpy()) and np.array_equal(store.ids, ids.numpy())
    assert store.spec.meta["source"] == "fake" and len(store.spec.meta["data_sha256"]) == 64
