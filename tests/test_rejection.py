"""LSRS inference: schedules, M=1 equivalence, selection correctness, paired draws, replacement."""
import pytest
import torch

from lsrs.models import VAR, VQVAE, TokenizerConfig, TransformerConfig
from lsrs.sampling.rejection import LSRSSelector, RandomScale, SelectionConfig, schedule_from, select
from lsrs.sampling.sampler import OfficialRNG, PerSampleRNG, TokenSampler, generate

TOK = TokenizerConfig(vocab_size=64, z_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, in_channels=1,
                      patch_nums=(1, 2, 3, 4), norm_groups=4, use_attn=False)
TR = TransformerConfig(depth=2, width=64, num_heads=2, num_classes=4, vocab_size=64, z_channels=4,
                       patch_nums=(1, 2, 3, 4), cond_drop_rate=0.0)
LABELS = torch.tensor([0, 1, 2, 3, 1])


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return VQVAE(TOK).eval().requires_grad_(False), VAR(TR).eval().requires_grad_(False)


def sampler(ids=range(5), seed=11):
    return TokenSampler(PerSampleRNG(seed, ids), top_k=30, top_p=0.95)


def mean_score(e_k, idx, labels, si):
    """A deterministic toy scorer: the mean of the candidate latent."""
    return e_k.flatten(1).mean(1)


def test_schedule_shorthand_and_validation():
    assert schedule_from(4, 2, 4) == (1, 4, 4, 4)
    assert schedule_from(1, 1, 3) == (1, 1, 1)
    with pytest.raises(ValueError, match="ST"):
        schedule_from(4, 5, 4)
    with pytest.raises(ValueError, match="M"):
        schedule_from(0, 2, 4)


def test_m1_equals_plain_var(models):
    vae, var = models
    plain = generate(var, vae, LABELS, sampler(), cfg=1.5)
    lsrs = generate(var, vae, LABELS, LSRSSelector(sampler(), mean_score, schedule_from(1, 1, 4)), cfg=1.5)
    assert all(torch.equal(a, b) for a, b in zip(plain.idx, lsrs.idx))
    assert torch.equal(plain.images, lsrs.images)


def test_chosen_candidate_has_max_score_and_first_scales_untouched(models):
    vae, var = models
    sel = LSRSSelector(sampler(), mean_score, schedule_from(8, 3, 4), keep_scores=True)
    out = generate(var, vae, LABELS, sel, cfg=1.5, decode=False)
    plain = generate(var, vae, LABELS, sampler(), cfg=1.5, decode=False)
    assert all(torch.equal(out.idx[si], plain.idx[si]) for si in range(2))  # before ST: plain draws
    assert sel.scores[0] is None and sel.scores[2].shape == (5, 8)
    # the kept token map at every LSRS scale is the one with the highest score given its prefix
    fhats = vae.quantize.idx_to_fhats(out.idx)
    for si in (2, 3):
        chosen = mean_score(fhats[si], None, None, si)
        torch.testing.assert_close(chosen, sel.scores[si].max(1).values, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.f_hat, fhats[-1], atol=1e-5, rtol=0)


def test_candidates_are_paired_across_m(models):
    """Candidate 0 at the first LSRS scale is plain VAR's draw whatever M is."""
    vae, var = models
    first = []

    def record_first(e_k, idx, labels, si):
        if si == 1:
            first.append(idx.view(5, -1, idx.shape[1])[:, 0].clone())
        return torch.zeros(len(idx))  # all tied: greedy keeps candidate 0

    for m in (2, 16):
        generate(var, vae, LABELS, LSRSSelector(sampler(), record_first, schedule_from(m, 2, 4)), decode=False)
    plain = generate(var, vae, LABELS, sampler(), decode=False)
    assert torch.equal(first[0], first[1]) and torch.equal(first[0], plain.idx[1])


def test_topk_selection_only_picks_among_k_best():
    scores = torch.tensor([[0.0, 5.0, 4.0, -1.0, 3.0]]).repeat(200, 1)
    u = torch.rand(200, generator=torch.Generator().manual_seed(0))
    picks = select(scores, SelectionConfig("topk", k=2, temperature=1.0), u)
    assert set(picks.tolist()) == {1, 2}
    assert 0.6 < (picks == 1).float().mean() < 0.85  # softmax([5, 4]) gives 0.73 to the best
    assert select(scores[:1], SelectionConfig("greedy")).tolist() == [1]
    with pytest.raises(ValueError):
        SelectionConfig("best-of")


def test_lsrs_needs_per_sample_rng():
    with pytest.raises(ValueError, match="per-sample"):
        LSRSSelector(TokenSampler(OfficialRNG(0)), mean_score, (1, 2, 2, 2))


def test_random_replacement_changes_only_that_scale(models):
    vae, var = models
    plain = generate(var, vae, LABELS, sampler(), decode=False)
    rep = generate(var, vae, LABELS, RandomScale(sampler(), scale=2), decode=False)
    assert torch.equal(rep.idx[1], plain.idx[1]) and not torch.equal(rep.idx[2], plain.idx[2])
    assert 0 <= int(rep.idx[2].min()) and int(rep.idx[2].max()) < 64
