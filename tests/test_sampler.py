"""Sampling semantics: top-k/top-p, RNG modes, batch invariance of the per-sample mode, the hook."""
import torch

from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig
from lsrs.sampling.sampler import (Choice, OfficialRNG, PerSampleRNG, TokenSampler, filter_top_k_top_p, generate,
                          sample_inverse_cdf)

TOK = TokenizerConfig(vocab_size=64, z_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, in_channels=1,
                      patch_nums=(1, 2, 3, 4), norm_groups=4, use_attn=False)
TR = TransformerConfig(depth=2, width=64, num_heads=2, num_classes=4, vocab_size=64, z_channels=4,
                       patch_nums=(1, 2, 3, 4), cond_drop_rate=0.0)


def _models():
    torch.manual_seed(0)
    vae, var = VQVAE(TOK).eval(), VAR(TR).eval()
    with torch.no_grad():  # make the logits peaky enough for top-k/top-p to matter
        var.head.weight.mul_(20)
    return vae, var


def test_top_k_keeps_ties_and_top_p_keeps_largest():
    logits = torch.tensor([[[3.0, 3.0, 3.0, 1.0, 0.0]]])
    kept = torch.isfinite(filter_top_k_top_p(logits.clone(), top_k=1))
    assert kept.tolist() == [[[True, True, True, False, False]]]
    kept = torch.isfinite(filter_top_k_top_p(torch.tensor([[[10.0, 0.0, -1.0]]]), top_p=0.01))
    assert kept.tolist() == [[[True, False, False]]]
    # top-p on the top-k-renormalised distribution: mass above a token must be < p
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    kept = torch.isfinite(filter_top_k_top_p(probs.log().view(1, 1, 4), top_p=0.9))
    assert kept.tolist() == [[[True, True, True, False]]]


def test_inverse_cdf_never_draws_removed_tokens():
    probs = torch.tensor([[[0.0, 0.5, 0.0, 0.5, 0.0]]])
    u = torch.tensor([[[0.0]], [[0.4999]], [[0.5]], [[1 - 1e-9]]]).view(1, 4, 1)
    idx = sample_inverse_cdf(probs, u)
    assert idx.flatten().tolist() == [1, 1, 3, 3]


def test_per_sample_rng_is_batch_invariant():
    """Image i is the same whether it is sampled alone, in a batch of 7 or in a batch of 64."""
    vae, var = _models()
    labels = torch.arange(64) % 4

    def run(bs):
        out_idx, out_img = [], []
        for s in range(0, 64, bs):
            sel = TokenSampler(PerSampleRNG(7, range(s, min(s + bs, 64))), top_k=20, top_p=0.9)
            g = generate(var, vae, labels[s:s + bs], sel, cfg=1.5)
            out_idx.append(torch.cat(g.idx, 1))
            out_img.append(g.images)
        return torch.cat(out_idx), torch.cat(out_img)

    ref_idx, ref_img = run(64)
    for bs in (1, 7):
        idx, img = run(bs)
        assert torch.equal(idx, ref_idx)
        torch.testing.assert_close(img, ref_img, atol=1e-5, rtol=0)
        assert torch.equal((img * 255).round().to(torch.uint8), (ref_img * 255).round().to(torch.uint8))
    other = TokenSampler(PerSampleRNG(8, range(64)), top_k=20, top_p=0.9)
    assert not torch.equal(torch.cat(generate(var, vae, labels, other).idx, 1), ref_idx)


def test_first_candidate_does_not_depend_on_candidate_count():
    rng = PerSampleRNG(3, [5, 9])
    one, many = rng.uniforms(2, 1, 9), rng.uniforms(2, 16, 9)
    assert torch.equal(one[:, 0], many[:, 0])
    assert not torch.equal(rng.uniforms(3, 1, 9), one)


def test_official_rng_reproducible_and_greedy_is_argmax():
    vae, var = _models()
    labels = torch.tensor([0, 3])
    a = generate(var, vae, labels, TokenSampler(OfficialRNG(5), top_k=10, top_p=0.9), record=True)
    b = generate(var, vae, labels, TokenSampler(OfficialRNG(5), top_k=10, top_p=0.9))
    assert all(torch.equal(x, y) for x, y in zip(a.idx, b.idx))
    greedy = generate(var, vae, labels, TokenSampler(OfficialRNG(0), top_k=1), record=True)
    for idx, logits in zip(greedy.idx, greedy.cfg_logits):
        assert torch.equal(idx, logits.argmax(-1))


def test_selector_hook_controls_tokens_and_f_hat():
    """A custom selector decides every token map; the loop uses its f_hat when it returns one."""
    vae, var = _models()
    calls = []

    def constant(step):
        calls.append((step.si, tuple(step.logits.shape), tuple(step.f_hat.shape)))
        return Choice(idx=torch.full(step.logits.shape[:2], 7, dtype=torch.long))

    g = generate(var, vae, torch.tensor([1, 2]), constant, cfg=2.0)
    assert [c[0] for c in calls] == [0, 1, 2, 3]
    assert calls[2][1] == (2, 9, 64)
    assert all(bool((i == 7).all()) for i in g.idx)
    with torch.no_grad():
        expected = vae.quantize.idx_to_fhats(g.idx)[-1]
    torch.testing.assert_close(g.f_hat, expected, atol=1e-5, rtol=0)


def test_streams_are_disjoint():
    a = PerSampleRNG(0, [0, 1], stream="eval").uniforms(1, 2, 4)
    b = PerSampleRNG(0, [0, 1], stream="scorer-data").uniforms(1, 2, 4)
    assert not torch.equal(a, b)
    import pytest

    with pytest.raises(ValueError, match="stream"):
        PerSampleRNG(0, [0], stream="typo")
