"""FlexVAR and FlexVAE: official state-dict layouts, checkpoint wrappers and the mask quirk, numerics units."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lsrs.core.checkpoint import CheckpointError, state_dict_mismatch
from lsrs.models.flexvae import FlexVAE, FlexVAEConfig
from lsrs.models.flexvar import (MASK_KEY, FlexVAR, FlexVARConfig, block_causal_bias, cfg_strength, guided_logits,
                                 is_greedy_scale, sincos_grid)

MANIFESTS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "flexvar" / "manifests"
needs_manifests = pytest.mark.skipif(not MANIFESTS.is_dir(), reason="../shared/reference/flexvar is not present")
DEPTHS = [16, 20, 24, 30]


def _manifest(name: str) -> dict:
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def _manifest_state(name: str, reshape: dict | None = None) -> dict[str, torch.Tensor]:
    """Zero tensors on the meta device with the manifest's keys, shapes and dtypes (`reshape` overrides)."""
    entries = _manifest(name)["state_dict"]
    shapes = {k: (reshape or {}).get(k, v["shape"]) for k, v in entries.items()}
    return {k: torch.zeros(shapes[k], dtype=getattr(torch, v["dtype"]), device="meta") for k, v in entries.items()}


def _check_layout(model: torch.nn.Module, name: str) -> None:
    """Same keys in the same order, same shapes, dtypes and param/buffer kinds, same parameter count."""
    man = _manifest(name)
    own = model.state_dict()
    assert list(own) == list(man["state_dict"])
    params = dict(model.named_parameters())
    for k, v in man["state_dict"].items():
        assert list(own[k].shape) == v["shape"], k
        assert str(own[k].dtype) == f"torch.{v['dtype']}", k
        assert (k in params) == (v["kind"] == "param"), k
    assert sum(p.numel() for p in model.parameters()) == man["num_params"]


# --------------------------------------------------------------------------- official layouts
@needs_manifests
def test_flexvae_matches_manifest_and_loads_strictly():
    with torch.device("meta"):
        vae = FlexVAE(FlexVAEConfig())
    _check_layout(vae, "flexvae_vq16")
    assert _manifest("flexvae_vq16")["num_params"] == 72_049_827
    vae.load_state_dict(_manifest_state("flexvae_vq16"), strict=True, assign=True)


@needs_manifests
@pytest.mark.parametrize("depth", DEPTHS)
def test_flexvar_matches_manifest_and_loads_with_any_mask_shape(depth):
    name = f"flexvar_d{depth}"
    with torch.device("meta"):
        var = FlexVAR(FlexVARConfig(depth=depth))
    _check_layout(var, name)
    # the checkpoint's mask comes from its last training schedule (here: xformers-padded 688);
    # the model runs another schedule (the 9-step README one, L = 629)
    var.set_schedule((1, 2, 3, 4, 5, 7, 10, 13, 16))
    assert var.attn_bias_for_masking.shape == (1, 1, 629, 629)
    state = _manifest_state(name, {MASK_KEY: [1, 1, 688, 688]})
    assert state_dict_mismatch(var, state) == [f"wrong shape for {MASK_KEY}: checkpoint (1, 1, 688, 688), "
                                               f"model (1, 1, 629, 629)"]
    assert state_dict_mismatch(var, state, tolerate=(MASK_KEY,)) == []
    var.load_state_dict(state, strict=True, assign=True)
    assert var.attn_bias_for_masking.shape == (1, 1, 629, 629)


# --------------------------------------------------------------------------- tiny models
def _tiny_vae_cfg() -> FlexVAEConfig:
    return FlexVAEConfig(codebook_size=16, codebook_embed_dim=4, ch=8, ch_mult=(1, 2), num_res_blocks=1,
                         z_channels=8, in_channels=1, norm_groups=4)


def _tiny_var(seed: int = 0, **kw) -> FlexVAR:
    """A tiny FlexVAR with every weight perturbed, so no branch is trivially zero or identity."""
    torch.manual_seed(seed)
    cfg = FlexVARConfig(**{**dict(depth=2, width=32, num_heads=2, num_classes=5, vocab_size=16, z_channels=4,
                                  patch_nums=(1, 2, 3), pos_grid=8, cond_drop_rate=0.0), **kw})
    var = FlexVAR(cfg).eval()
    with torch.no_grad():
        for p in var.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return var


def _same_params(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def _official_file(tmp_path: Path, name: str, obj, cfg) -> Path:
    """An official-style checkpoint file with our JSON config beside it (what a linked run folder has)."""
    from lsrs.core.checkpoint import config_to_json

    torch.save(obj, tmp_path / f"{name}.pth")
    (tmp_path / f"{name}.json").write_text(config_to_json(cfg))
    return tmp_path / f"{name}.pth"


def test_flexvar_loads_official_files_unwrapping_trainer_and_model_and_replacing_mask(tmp_path):
    from lsrs.families import FlexFamily

    src, vae = _tiny_var(seed=1), FlexVAE(_tiny_vae_cfg())
    state = dict(src.state_dict())
    state[MASK_KEY] = torch.zeros(1, 1, 24, 24)  # another schedule, padded
    wrapped = {"trainer": {"var_wo_ddp": state, "config": {"patch_nums": (1, 2, 4)}}, "epoch": 7}
    for i, obj in enumerate([state, wrapped, {"model": state}]):
        dst = FlexFamily((1, 2, 3)).load_model(_official_file(tmp_path, f"ckpt{i}", obj, src.cfg), vae)
        assert _same_params(src, dst)
        assert torch.equal(dst.attn_bias_for_masking, block_causal_bias((1, 2, 3)))


def test_flexvar_official_file_problems_are_named(tmp_path):
    from lsrs.families import FlexFamily

    family, vae, cfg = FlexFamily((1, 2, 3)), FlexVAE(_tiny_vae_cfg()), _tiny_var().cfg
    state = dict(_tiny_var().state_dict())
    state.pop("head.bias")
    with pytest.raises(CheckpointError, match="missing key head.bias"):
        family.load_model(_official_file(tmp_path, "bad", {"trainer": {"var_wo_ddp": state}}, cfg), vae)
    with pytest.raises(CheckpointError, match="state dict of tensors"):
        family.load_model(_official_file(tmp_path, "junk", {"trainer": {"var_wo_ddp": {"x": 1}}}, cfg), vae)
    (tmp_path / "absent.json").write_text((tmp_path / "bad.json").read_text())
    with pytest.raises(CheckpointError, match="not found"):
        family.load_model(tmp_path / "absent.pth", vae)


def test_flexvae_loads_the_official_file_under_model(tmp_path):
    from lsrs.families import FlexFamily

    torch.manual_seed(0)
    src = FlexVAE(_tiny_vae_cfg())
    path = _official_file(tmp_path, "FlexVAE", {"model": src.state_dict(), "optimizer": {}}, src.cfg)
    dst = FlexFamily((1, 2, 3)).load_tokenizer(path)
    assert _same_params(src, dst)


def test_quantiser_is_cosine_nearest_with_unit_codes():
    torch.manual_seed(0)
    vae = FlexVAE(_tiny_vae_cfg())
    with torch.no_grad():
        vae.quantize.embedding.weight.mul_(torch.rand(16, 1) * 3)  # rows of unequal norm
        h = torch.randn(3, 4, 5, 5) * torch.rand(3, 1, 5, 5)
        idx = vae.quantize_map(h)
        z = F.normalize(h.permute(0, 2, 3, 1).reshape(-1, 4), dim=-1)
        e = F.normalize(vae.quantize.embedding.weight, dim=-1)
        brute = torch.cdist(z, e).argmin(1).view(3, 25)
        assert idx.shape == (3, 25) and torch.equal(idx, brute)
        codes = vae.codes(idx, 5)
    assert codes.shape == (3, 4, 5, 5)
    torch.testing.assert_close(codes.norm(dim=1), torch.ones(3, 5, 5))
    torch.testing.assert_close(codes.permute(0, 2, 3, 1).reshape(-1, 4), e[idx.view(-1)])


def test_multi_scale_maps_inputs_and_decode_shapes():
    torch.manual_seed(0)
    vae = FlexVAE(_tiny_vae_cfg()).eval()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    pns = (1, 2, 3, 8)
    with torch.no_grad():
        h = vae.encode(x)
        idx = vae.img_to_idx(x, pns)
        tf = vae.teacher_forcing_input(idx, pns)
        img = vae.decode_idx(idx[-1], 8)
    assert h.shape == (2, 4, 8, 8)
    assert [tuple(i.shape) for i in idx] == [(2, pn * pn) for pn in pns]
    assert torch.equal(idx[0], vae.quantize_map(h.mean((2, 3), keepdim=True)))  # area to 1x1 is the mean
    assert torch.equal(idx[-1], vae.quantize_map(h))  # no residual: the last scale is the latent itself
    assert tf.shape == (2, sum(pn * pn for pn in pns) - 1, 4)
    up = F.interpolate(vae.codes(idx[1], 2), size=(3, 3), mode="bicubic", align_corners=False)
    torch.testing.assert_close(vae.next_input(idx[1], 2, 3), up)
    torch.testing.assert_close(tf[:, 4:13], up.flatten(2).transpose(1, 2))
    assert img.shape == (2, 1, 16, 16)


@pytest.mark.parametrize("pns", [(1, 2, 3, 5), (2, 3, 5)])
def test_kv_cached_steps_equal_teacher_forced_logits(pns):
    """Scale-by-scale logits with the KV cache equal the block-causal teacher-forced logits,
    on a schedule other than the config's (the mask is rebuilt), also one not starting at 1x1."""
    var = _tiny_var()
    torch.manual_seed(3)
    vae = FlexVAE(_tiny_vae_cfg())
    labels = torch.tensor([1, 4])
    idx = [torch.randint(16, (2, pn * pn)) for pn in pns]
    with torch.no_grad():
        x_inputs = vae.teacher_forcing_input(idx, pns)
        full = var(labels, x_inputs, pns, drop_labels=False)
        cond = var.class_emb(labels)
        cache = var.new_cache()
        pieces = [var.step(var.sos(cond, pns[0]), cond, cache)]
        for k in range(len(pns) - 1):
            pieces.append(var.step(var.embed_scale(vae.next_input(idx[k], pns[k], pns[k + 1])), cond, cache))
    assert var.attn_bias_for_masking.shape[-1] == sum(pn * pn for pn in pns)
    assert full.shape == (2, sum(pn * pn for pn in pns), 16)
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)


def test_schedule_mask_and_validation():
    var = _tiny_var()
    var.set_schedule((1, 2, 4))
    mask = var.attn_bias_for_masking[0, 0]
    assert mask.shape == (21, 21)
    assert (mask[1:5, :5] == 0).all() and torch.isinf(mask[1:5, 5:]).all() and (mask[5:, :] == 0).all()
    for bad in [(), (0, 1), (1, 3, 2), (1, 2, 2)]:
        with pytest.raises(ValueError):
            var.set_schedule(bad)
    with pytest.raises(ValueError, match="needs"):
        var(torch.tensor([0]), torch.zeros(1, 5, 4), (1, 2, 4))
    with pytest.raises(ValueError):
        FlexVARConfig(patch_nums=(1, 3, 2))
    with pytest.raises(ValueError):
        FlexVAEConfig(ch=8, norm_groups=32)


def test_position_grid_init_and_area_interpolation():
    grid = sincos_grid(4, 6)
    w = torch.exp(torch.arange(0, 6, 2).float() * -(torch.log(torch.tensor(10000.0)) / 6))
    y, x = 2, 3
    torch.testing.assert_close(grid[0, 0::2, y, x], torch.sin(y * w))
    torch.testing.assert_close(grid[0, 1::2, y, x], torch.cos(x * w))
    var = _tiny_var()
    torch.testing.assert_close(var.pos(1)[0, 0], var.pos_1LC.mean((0, 2, 3)))
    torch.testing.assert_close(var.pos(8), var.pos_1LC.flatten(2).transpose(1, 2))
    assert var.lvl_pos((1, 2, 3)).shape == (1, 14, 32)


def test_cfg_ramp_and_greedy_rules():
    assert [cfg_strength(2.5, si, 10, pn) for si, pn in enumerate((1, 2, 3, 4, 5, 6, 8, 10, 13, 16))][-1] == 2.5
    assert cfg_strength(2.5, 0, 10, 1) == 0.0
    assert cfg_strength(3.0, 12, 13, 16) == pytest.approx(3.0 * 12 / 9)  # above cfg beyond 10 steps
    assert cfg_strength(3.0, 2, 12, 20, max_pn=16) == 3.0  # pn > max_pn: constant
    assert cfg_strength(3.0, 0, 1, 16) == 0.0
    nine = (1, 2, 3, 4, 5, 7, 10, 13, 16)
    assert [pn for pn in nine if is_greedy_scale(pn)] == [7]
    thirteen = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16)
    assert [pn for pn in thirteen if is_greedy_scale(pn)] == [7, 9, 12, 14]
    assert is_greedy_scale(24) and not is_greedy_scale(24, max_pn=32)
    logits2 = torch.tensor([[[1.0, 2.0]], [[3.0, 1.0]]])
    torch.testing.assert_close(guided_logits(logits2, 0.5), torch.tensor([[[0.0, 2.5]]]))


def test_init_weights_is_vars():
    var = _tiny_var()
    var.init_weights()
    assert torch.equal(var.head.bias, torch.zeros(16))
    assert all(torch.equal(b.ada_lin[-1].bias, torch.zeros(6 * 32)) for b in var.blocks)
    assert var.blocks[0].ada_lin[-1].weight[:64].abs().max() < 1e-4  # gammas start near zero


# --------------------------------------------------------------------------- generation and LSRS on r_k
FLEX_PNS = (1, 2, 3, 4, 7)  # 7 is a scale the official loop samples greedily


def _flex_models():
    torch.manual_seed(1)
    return FlexVAE(_tiny_vae_cfg()).eval(), _tiny_var(vocab_size=16, patch_nums=FLEX_PNS)


def _flex_lsrs(vae, m: int, ids: torch.Tensor):
    from lsrs.sampling.rejection import LSRSSelector
    from lsrs.sampling.sampler import PerSampleRNG, TokenSampler
    from lsrs.models.scorer import Scorer, ScorerConfig, ScorerScoreFn, make_input

    torch.manual_seed(2)
    scorer = Scorer(ScorerConfig(in_channels=4, input_size=4, widths=(8, 16), blocks_per_stage=1, num_classes=5,
                                 num_scales=len(FLEX_PNS), emb_dim=8, mlp_dims=(16,), input_kind="flexvar"))
    score_fn = ScorerScoreFn(scorer, make_input("flexvar", vae, 4, FLEX_PNS))
    plain = TokenSampler(PerSampleRNG(0, ids), top_k=10, top_p=0.9)
    return plain, LSRSSelector(plain, score_fn, (1,) + (m,) * (len(FLEX_PNS) - 1))


def test_flex_generation_greedy_scales_and_lsrs_with_one_candidate_is_plain():
    from lsrs.sampling.sampler import generate_flex

    vae, var = _flex_models()
    labels, ids = torch.tensor([0, 3, 4]), torch.arange(3)
    plain_sel, lsrs_one = _flex_lsrs(vae, 1, ids)
    plain = generate_flex(var, vae, labels, plain_sel, FLEX_PNS, cfg=2.5)
    assert [t.shape for t in plain.idx] == [(3, pn * pn) for pn in FLEX_PNS]
    side = 7 * vae.cfg.downsample
    assert plain.images.shape == (3, 1, side, side) and 0 <= plain.images.min() and plain.images.max() <= 1
    again = generate_flex(var, vae, labels, lsrs_one, FLEX_PNS, cfg=2.5)
    assert all(torch.equal(a, b) for a, b in zip(plain.idx, again.idx))
    # the greedy scale (pn = 7) never reaches the selector: LSRS spends no candidates there
    _, lsrs_four = _flex_lsrs(vae, 4, ids)
    seen = []

    def recording(step):
        seen.append(step.pn)
        assert step.f_hat is None  # FlexVAR has no cumulative map
        return lsrs_four(step)

    picked = generate_flex(var, vae, labels, recording, FLEX_PNS, cfg=2.5, decode=False)
    assert seen == [1, 2, 3, 4] and picked.images is None
    assert [t.shape for t in picked.idx] == [t.shape for t in plain.idx]
    assert any(not torch.equal(a, b) for a, b in zip(picked.idx, plain.idx))  # the scorer changed some choice


def test_flex_scorer_input_is_r_k_resized_and_both_paths_agree():
    from lsrs.models.scorer import make_input

    vae, _ = _flex_models()
    inp = make_input("flexvar", vae, 4, FLEX_PNS)
    g = torch.Generator().manual_seed(0)
    idx = [torch.randint(16, (2, pn * pn), generator=g) for pn in FLEX_PNS]
    x = inp.all_scales(idx)
    assert x.shape == (2, len(FLEX_PNS), 4, 4, 4)
    for si, pn in enumerate(FLEX_PNS):
        torch.testing.assert_close(inp.candidates(None, idx[si], si), x[:, si], rtol=0, atol=0)
    torch.testing.assert_close(x[:, 3], vae.codes(idx[3], 4), rtol=0, atol=0)  # already 4 x 4: used as is
    torch.testing.assert_close(x[:, 1], F.interpolate(vae.codes(idx[1], 2), size=(4, 4), mode="bicubic"))
    with pytest.raises(ValueError, match="patch_nums"):
        make_input("flexvar", vae, 4)


def test_flex_token_stores_keep_every_scale(tmp_path):
    import dataclasses

    import numpy as np

    from lsrs.sampling.sampler import SamplingConfig
    from lsrs.data.fashion_mnist import ImageSet
    from lsrs.tokens.writers import extract_real, sample_generated

    vae, var = _flex_models()
    side = 7 * vae.cfg.downsample
    images = ImageSet(torch.randint(0, 256, (5, 1, side, side), dtype=torch.uint8), torch.arange(5) % 5, 5)
    real = extract_real(vae, images, tmp_path / "real", {}, shard_size=2, batch_size=2, log=lambda m: None,
                        patch_nums=FLEX_PNS)
    with torch.no_grad():
        expected = torch.cat(vae.img_to_idx(images.as_float(slice(None)), FLEX_PNS), 1).numpy()
    assert real.spec.patch_nums == FLEX_PNS and real.vocab_size == 16 and np.array_equal(real.tokens, expected)
    sampling = SamplingConfig(cfg=2.5, top_k=10, top_p=0.95, seed=3, batch_size=4)
    gen = sample_generated(var, vae, tmp_path / "gen", 2, sampling, {}, shard_size=4, log=lambda m: None,
                           patch_nums=FLEX_PNS)
    again = sample_generated(var, vae, tmp_path / "gen2", 2, dataclasses.replace(sampling, batch_size=10), {},
                             shard_size=4, log=lambda m: None, patch_nums=FLEX_PNS)
    assert gen.tokens.shape == (10, sum(pn * pn for pn in FLEX_PNS))
    assert np.array_equal(gen.tokens, again.tokens)  # per-sample seeds: batch size does not matter


def test_scorer_trains_on_flexvar_maps(tmp_path):
    import numpy as np

    from lsrs.models.scorer import ScorerConfig, make_input
    from lsrs.training.scorer import ScorerTrainConfig, train_scorer

    vae, _ = _flex_models()
    g = torch.Generator().manual_seed(4)
    length = sum(pn * pn for pn in FLEX_PNS)
    real, gen = torch.randint(8, (30, length), generator=g), torch.randint(8, 16, (30, length), generator=g)
    labels = torch.arange(30) % 3
    cfg = ScorerConfig(in_channels=4, input_size=4, widths=(8, 16), blocks_per_stage=1, num_classes=3,
                       num_scales=len(FLEX_PNS), emb_dim=8, mlp_dims=(16,), input_kind="flexvar", dropout=0.0)
    metrics = train_scorer(real, labels, gen, labels, vae, cfg, ScorerTrainConfig(batch_size=8, epochs=3, lr=3e-3),
                           tmp_path, log=lambda m: None, input_fn=make_input("flexvar", vae, 4, FLEX_PNS))
    assert len(metrics["val_acc_per_scale"]) == len(FLEX_PNS) and (tmp_path / "scorer.pth").is_file()
    assert np.mean(metrics["val_acc_per_scale"]) > 0.5  # disjoint code ranges: learnable


# --------------------------------------------------------------------------- the pipeline's FlexVAR family
def _blobs(n: int = 64, side: int = 8):
    """Images with structure a tiny FlexVAE can learn: a bright square at a class-dependent place."""
    from lsrs.data.fashion_mnist import ImageSet

    g = torch.Generator().manual_seed(0)
    images = torch.zeros(n, 1, side, side, dtype=torch.uint8)
    labels = torch.arange(n) % 4
    for i, c in enumerate(labels.tolist()):
        r, col = divmod(c, 2)
        images[i, 0, 4 * r:4 * r + 4, 4 * col:4 * col + 4] = 200 + int(torch.randint(55, (1,), generator=g))
    return ImageSet(images, labels, 4)


def test_flexvae_training_lowers_the_loss_and_round_trips(tmp_path):
    from lsrs.families import FlexFamily
    from lsrs.training import trainers as T

    torch.manual_seed(0)
    vae, data, pns = FlexVAE(_tiny_vae_cfg()), _blobs(), (1, 2, 4)
    cfg = T.FlexVAETrainConfig(optim=T.OptimConfig(steps=40, batch_size=16, lr=3e-3, warmup_steps=2,
                                                   checkpoint_every=20), restart_every=10)
    trainer = T.FlexVAETrainer(vae, data, cfg, pns, tmp_path, log=lambda m: None)
    trainer.fit()
    losses = [row["loss"] for row in trainer.history]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    assert trainer.history[-1]["codes_used"] >= 2
    quality = T.tokenizer_quality(vae, data, patch_nums=pns)
    assert len(quality["codes_used_per_scale"]) == 3 and quality["mse_pm1"] < 0.5
    T.save_model(vae, vae.cfg, tmp_path, "flexvae")
    again = FlexFamily(pns).load_tokenizer(tmp_path)
    assert again.cfg == vae.cfg and _same_params(again, vae)


def test_flexvar_training_step_runs_on_the_schedule_and_loads_back(tmp_path):
    from lsrs.families import FlexFamily
    from lsrs.training import trainers as T

    torch.manual_seed(0)
    vae, data, pns = FlexVAE(_tiny_vae_cfg()).eval(), _blobs(), (1, 2, 4)
    tokens = T.encode_tokens(vae, data, patch_nums=pns)
    assert tokens.shape == (len(data), 1 + 4 + 16)
    var = _tiny_var(num_classes=4, patch_nums=pns)
    var.train()
    cfg = T.VarTrainConfig(optim=T.OptimConfig(steps=3, batch_size=8, warmup_steps=1, checkpoint_every=3))
    T.VarTrainer(var, vae, tokens, data.labels, cfg, tmp_path, log=lambda m: None).fit()
    metrics = T.var_validation(var, vae, tokens, data.labels)
    assert len(metrics["ce_per_scale"]) == 3 and metrics["ce_mean"] > 0
    T.save_model(var, var.cfg, tmp_path, "flexvar")
    loaded = FlexFamily((1, 2, 3, 4)).load_model(tmp_path, vae)  # another schedule: the mask follows it
    assert _same_params(loaded, var) and loaded.patch_nums == (1, 2, 3, 4)
    other = FlexVAE(FlexVAEConfig(**{**_tiny_vae_cfg().__dict__, "codebook_size": 32}))
    with pytest.raises(CheckpointError, match="does not match the FlexVAE"):
        FlexFamily(pns).load_model(tmp_path, other)


def test_generate_model_dispatches_on_the_family():
    from lsrs.sampling.sampler import PerSampleRNG, TokenSampler, generate_flex, generate_model

    vae, var = _flex_models()
    labels = torch.tensor([0, 2])

    def sel():
        return TokenSampler(PerSampleRNG(0, torch.arange(2)), top_k=10, top_p=0.9)

    a = generate_model(var, vae, labels, sel(), cfg=2.5)
    b = generate_flex(var, vae, labels, sel(), FLEX_PNS, cfg=2.5)
    assert all(torch.equal(x, y) for x, y in zip(a.idx, b.idx)) and torch.equal(a.images, b.images)


def test_disabled_family_stages_are_noops_and_reports_say_not_measured(tmp_path):
    import dataclasses

    import pandas as pd

    from lsrs import report
    from lsrs.pipeline.context import StageContext
    from lsrs.pipeline.models import make_tokenizer
    from lsrs.pipeline.params import load_params
    from lsrs.pipeline.report_spec import report_spec
    from lsrs.pipeline.sweeps import ROW_COLUMNS, run_sweep

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    params = dataclasses.replace(params, flexvar=dataclasses.replace(params.flexvar, enabled=False))
    ctx = StageContext.create(params, tmp_path / "runs", "flexvar", log=lambda m: None)
    layout = ctx.family.layout
    assert layout.tokenizer == tmp_path / "runs" / "flexvar" / "tokenizer"
    assert layout.evaluator == tmp_path / "runs" / "evaluator" and layout.reference == tmp_path / "runs" / "reference.npz"
    assert make_tokenizer(ctx) == {}
    assert json.loads((layout.tokenizer / "skipped.json").read_text())["skipped"].startswith("flexvar.enabled")
    assert run_sweep(ctx, "m_st2") == []
    empty = pd.read_csv(layout.sweep("m_st2") / "results.csv")
    assert list(empty.columns) == ROW_COLUMNS and empty.empty
    (tmp_path / "metrics" / "sweeps").mkdir(parents=True)
    empty.to_csv(tmp_path / "metrics" / "sweeps" / "flexvar_m_st2.csv", index=False)
    res = report.load_results(report.ReportSpec.from_dict(report_spec(params)), tmp_path / "metrics", tmp_path / "runs")
    assert report.claim_flexvar(res).verdict == "not measured"
    assert not any("FlexVAR sweep" in m for m in res.missing)  # disabled: nothing is missing


def test_paper_profile_checks_and_links_the_official_files(tmp_path):
    """flexvar.tokenizer/var.checkpoint: sha256 pin, keys and shapes (the trainer wrapper and a foreign
    mask shape are accepted, as official loaders do), then the run folders point at the files."""
    import dataclasses

    from lsrs.core.checkpoint import sha256_file
    from lsrs.pipeline.context import StageContext
    from lsrs.pipeline.models import make_model, make_tokenizer
    from lsrs.pipeline.params import load_params

    torch.manual_seed(0)
    vae, var = FlexVAE(_tiny_vae_cfg()), _tiny_var()
    torch.save({"model": vae.state_dict()}, tmp_path / "FlexVAE.pth")
    state = {**var.state_dict(), MASK_KEY: torch.zeros(1, 1, 688, 688)}
    torch.save({"trainer": {"var_wo_ddp": state}}, tmp_path / "FlexVARd2.pth")
    params = load_params(Path(__file__).resolve().parents[1] / "params-imagenet.yaml")
    fx = params.flexvar
    shape = dataclasses.replace(fx.var.model, depth=2, width=32, num_heads=2, num_classes=5, pos_grid=8,
                                cond_drop_rate=0.0)

    def with_files(vae_sha, var_sha):
        return dataclasses.replace(params, flexvar=dataclasses.replace(
            fx, tokenizer=dataclasses.replace(fx.tokenizer, model=vae.cfg, checkpoint=str(tmp_path / "FlexVAE.pth"),
                                              sha256=vae_sha),
            var=dataclasses.replace(fx.var, model=shape, checkpoint=str(tmp_path / "FlexVARd2.pth"), sha256=var_sha)))

    def ctx(p, root="runs"):
        return StageContext.create(p, tmp_path / root, "flexvar", log=lambda m: None)

    out = tmp_path / "runs" / "flexvar"
    with pytest.raises(CheckpointError, match="This file's sha256 is " + sha256_file(tmp_path / "FlexVAE.pth")):
        make_tokenizer(ctx(with_files(None, None)))
    good = ctx(with_files(sha256_file(tmp_path / "FlexVAE.pth"), sha256_file(tmp_path / "FlexVARd2.pth")))
    make_tokenizer(good)
    make_model(good, "flexvar")
    assert not (out / "tokenizer" / "flexvae.pth").exists()  # linked, not copied
    family = good.family.family
    linked_vae = family.load_tokenizer(out / "tokenizer")
    linked_var = family.load_model(out / "var" / "flexvar", linked_vae)
    assert _same_params(linked_vae, vae) and _same_params(linked_var, var)
    assert linked_var.patch_nums == fx.patch_nums
    torch.save(_tiny_var(depth=3).state_dict(), tmp_path / "FlexVARd2.pth")  # replaced by a foreign file
    wrong = ctx(with_files(good.params.flexvar.tokenizer.sha256, sha256_file(tmp_path / "FlexVARd2.pth")), "other")
    with pytest.raises(CheckpointError, match="does not fit the model"):
        make_model(wrong, "flexvar")


def test_code_lookup_gradient_is_deterministic():
    """FlexVAE.codes backpropagates the same codebook gradient every time (indexing's CPU backward adds
    with atomics across threads and differed in the last bits, so mini FlexVAE training did not repeat)."""
    vae = FlexVAE(_tiny_vae_cfg())
    g = torch.Generator().manual_seed(0)
    idx, up = torch.randint(16, (64, 32 * 32), generator=g), torch.randn(64, 4, 32, 32, generator=g)
    grads = []
    for _ in range(5):
        vae.zero_grad()
        (vae.codes(idx, 32) * up).sum().backward()
        grads.append(vae.quantize.embedding.weight.grad.clone())
    assert all(torch.equal(grads[0], x) for x in grads[1:])
    torch.testing.assert_close(vae.codes(idx[:1], 32)[0, :, 0, 0], vae.quantize.codebook()[idx[0, 0]], rtol=0, atol=0)
