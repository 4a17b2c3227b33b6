"""Model structure: official state-dict layouts, strict loading with useful errors, numerics units."""
import json
from pathlib import Path

import pytest
import torch

from lsrs.core.checkpoint import CheckpointError, load_into
from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig
from lsrs.models.tokenizer import phi_index_per_scale

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "var"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/reference/var is not present")


def _manifest_state(name: str) -> dict[str, torch.Tensor]:
    """Zero-filled tensors with the manifest's keys, shapes and dtypes, on the meta device."""
    man = json.loads((SHARED / "manifests" / f"{name}.json").read_text())
    return {k: torch.zeros(v["shape"], dtype=getattr(torch, v["dtype"]), device="meta") for k, v in man.items()}


@needs_shared
@pytest.mark.parametrize("depth", [16, 20, 24, 30])
def test_official_var_manifest_loads_strictly(depth):
    with torch.device("meta"):
        model = VAR(TransformerConfig(depth=depth))
    state = _manifest_state(f"var_d{depth}")
    assert list(model.state_dict()) == list(state)  # same keys, same order
    model.load_state_dict(state, strict=True, assign=True)
    summary = json.loads((SHARED / "manifests" / "summary.json").read_text())[f"var_d{depth}"]
    assert sum(p.numel() for p in model.parameters()) == summary["n_params"]


@needs_shared
def test_official_vqvae_manifest_loads_strictly():
    with torch.device("meta"):
        vae = VQVAE(TokenizerConfig())
    state = _manifest_state("vqvae")
    assert list(vae.state_dict()) == list(state)
    vae.load_state_dict(state, strict=True, assign=True)
    summary = json.loads((SHARED / "manifests" / "summary.json").read_text())["vqvae"]
    assert sum(p.numel() for p in vae.parameters()) == summary["n_params"] == 108_948_355


def test_phi_index_matches_official_float64_ties():
    assert phi_index_per_scale(10, 4) == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert phi_index_per_scale(14, 4) == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3]
    assert phi_index_per_scale(7, 4) == [0, 0, 1, 2, 2, 3, 3]


def _tiny_tokenizer():
    return TokenizerConfig(vocab_size=32, z_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, in_channels=1,
                           patch_nums=(1, 2, 4), norm_groups=4, use_attn=True)


def test_load_reports_missing_unexpected_and_shape(tmp_path):
    vae = VQVAE(_tiny_tokenizer())
    state = dict(vae.state_dict())
    state.pop("decoder.conv_out.bias")
    state["extra.weight"] = torch.zeros(1)
    state["quant_conv.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_into(VQVAE(_tiny_tokenizer()), tmp_path / "bad.pth")
    msg = str(err.value)
    assert "missing key decoder.conv_out.bias" in msg
    assert "unexpected key extra.weight" in msg
    assert "wrong shape for quant_conv.weight" in msg


def test_load_tolerates_vocab_hit_rows_and_reports_corrupt_or_missing(tmp_path):
    vae = VQVAE(_tiny_tokenizer())
    state = dict(vae.state_dict())
    state["quantize.ema_vocab_hit_SV"] = torch.ones(10, 32)  # trained with 10 scales
    torch.save(state, tmp_path / "ok.pth")
    load_into(VQVAE(_tiny_tokenizer()), tmp_path / "ok.pth")
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_into(VQVAE(_tiny_tokenizer()), tmp_path / "corrupt.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_into(VQVAE(_tiny_tokenizer()), tmp_path / "absent.pth", hint="put it there")


def test_quantizer_paths_agree():
    """Encoding f_hat, embedding f_hat and the teacher-forcing inputs describe the same sums."""
    torch.manual_seed(0)
    vae = VQVAE(_tiny_tokenizer()).eval()
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        idx, fhats = vae.quantize.quantize(vae.encode(x))
        again = vae.quantize.idx_to_fhats(idx)
        tf = vae.quantize.teacher_forcing_input(idx)
    for a, b in zip(fhats, again):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    q = vae.quantize
    expected = torch.cat([q.downsample(fhats[si], pn).flatten(2).transpose(1, 2)
                          for si, pn in enumerate(q.patch_nums[1:])], 1)
    torch.testing.assert_close(tf, expected, atol=1e-5, rtol=0)


def test_kv_cache_step_equals_masked_forward():
    """Scale-by-scale logits with the KV cache equal the block-causal teacher-forced logits."""
    torch.manual_seed(0)
    cfg = TransformerConfig(depth=2, width=64, num_heads=2, num_classes=5, vocab_size=32, z_channels=4,
                            patch_nums=(1, 2, 4), cond_drop_rate=0.0)
    var = VAR(cfg).eval()
    labels = torch.tensor([1, 3])
    x = torch.randn(2, cfg.seq_len - 1, 4)
    with torch.no_grad():
        full = var(labels, x, drop_labels=False)
        cond = var.class_emb(labels)
        cache = var.new_cache()
        pieces = [var.step(var.sos(cond), cond, cache)]
        for si in range(1, len(cfg.patch_nums)):
            b, e = cfg.begin_ends[si]
            pieces.append(var.step(var.embed_scale(x[:, b - 1:e - 1], si), cond, cache))
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)
