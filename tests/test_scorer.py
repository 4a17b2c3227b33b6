"""LSRS scorer: architecture and presets, losses, the VAR input e_k, and a tiny end-to-end training."""
import csv
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from lsrs.models import VQVAE, TokenizerConfig
from lsrs.models.scorer import SCORER_PRESETS, Scorer, ScorerConfig, ScorerScoreFn, VarInput, load_scorer, num_params
from lsrs.training.pairs import make_pairs, split_per_class
from lsrs.training.scorer import InputBank, ScorerTrainConfig, ScorerTrainer, cosine_lr, pair_loss, train_scorer

MANIFEST = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "lsrs-official" / "scorer_manifest.json"
PAPER_PARAMS = 4_007_425  # the authors' RewardNet (scorer_manifest.json num_params)

TINY_TOK = TokenizerConfig(vocab_size=64, z_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, in_channels=1,
                           patch_nums=(1, 2, 3, 4), norm_groups=4, use_attn=False)
TINY_SCORER = ScorerConfig(in_channels=4, input_size=4, widths=(16, 32), blocks_per_stage=1, num_classes=3,
                           num_scales=4, emb_dim=16, mlp_dims=(32,), dropout=0.0)


@pytest.mark.parametrize("preset", ["paper", "mini"])
def test_scorer_output_shapes(preset):
    cfg = ScorerConfig.preset(preset)
    torch.manual_seed(0)
    model = Scorer(cfg).eval()
    n = 5
    x = torch.randn(n, cfg.in_channels, cfg.input_size, cfg.input_size)
    labels = torch.randint(cfg.num_classes, (n,))
    scale = torch.randint(cfg.num_scales, (n,))
    s = model(x, labels, scale)
    assert s.shape == (n,) and s.dtype == torch.float32 and torch.isfinite(s).all()
    assert cfg.feature_size == 2  # both presets end at widths[-1] x 2 x 2
    # the score depends on the class and on the scale index
    assert not torch.allclose(s, model(x, (labels + 1) % cfg.num_classes, scale))
    assert not torch.allclose(s, model(x, labels, (scale + 1) % cfg.num_scales))
    with pytest.raises(ValueError, match="scorer input"):
        model(x[:, :, :-1], labels, scale)


def test_paper_preset_matches_the_authors_scorer():
    cfg = ScorerConfig.preset("paper")
    model = Scorer(cfg)
    assert num_params(model) == PAPER_PARAMS
    assert cfg.feature_dim == 1024 and cfg.feature_dim + 2 * cfg.emb_dim == 1280
    if MANIFEST.is_file():
        man = json.loads(MANIFEST.read_text())
        assert man["num_params"] == PAPER_PARAMS
        assert {k: list(v.shape) for k, v in model.state_dict().items()} == man["state_dict"]
    assert num_params(Scorer(ScorerConfig.preset("mini"))) == 7_145


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        ScorerConfig(input_size=12)
    with pytest.raises(ValueError, match="input_kind"):
        ScorerConfig(input_kind="pixels")
    with pytest.raises(ValueError, match="unknown scorer preset"):
        ScorerConfig.preset("huge")
    with pytest.raises(ValueError, match="loss"):
        ScorerTrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="val_fraction"):
        ScorerTrainConfig(val_fraction=0.0)
    # params.yaml sections build through the typed loader (lists -> tuples, null -> None)
    from lsrs.pipeline.params import ParamsError, from_dict
    assert from_dict(ScorerConfig, {**SCORER_PRESETS["mini"], "widths": [4, 8]}) == ScorerConfig.preset("mini")
    assert from_dict(ScorerTrainConfig, {"pairs_per_class": None, "lr": 1}).lr == 1.0
    with pytest.raises(ParamsError, match="scorer.train: epochs must be >= 1"):
        from_dict(ScorerTrainConfig, {"epochs": 0}, "scorer.train")


def test_losses_match_float64_hand_computation():
    s_real = torch.tensor([2.0, -1.0, 0.5, 30.0, -30.0])
    s_gen = torch.tensor([1.0, 1.5, 0.5, -30.0, 30.0])
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    pair = [-math.log(sig(r - g)) if r - g > -20 else (g - r) for r, g in zip(s_real.tolist(), s_gen.tolist())]
    point = [0.5 * (math.log1p(math.exp(-r)) + math.log1p(math.exp(g))) for r, g in zip(s_real.tolist(),
                                                                                       s_gen.tolist())]
    torch.testing.assert_close(pair_loss(s_real, s_gen, "pairwise").double(), torch.tensor(pair, dtype=torch.float64),
                               rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(pair_loss(s_real, s_gen, "pointwise").double(),
                               torch.tensor(point, dtype=torch.float64), rtol=1e-6, atol=1e-6)
    assert abs(float(pair_loss(torch.zeros(1), torch.zeros(1))) - math.log(2)) < 1e-7
    from lsrs.training.scorer import pair_accuracy

    assert pair_accuracy(s_real, s_gen).tolist() == [1.0, 0.0, 0.5, 1.0, 0.0]  # the tie counts one half


def test_lr_schedule_warmup_then_cosine():
    assert cosine_lr(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert cosine_lr(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert cosine_lr(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert cosine_lr(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert cosine_lr(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)


def _tiny_vae() -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(TINY_TOK).eval()


def test_var_input_is_the_cumulative_fhat():
    vae = _tiny_vae()
    q = vae.quantize
    idx = [torch.randint(64, (6, pn * pn)) for pn in TINY_TOK.patch_nums]
    x = VarInput(vae).all_scales(idx)
    assert x.shape == (6, 4, 4, 4, 4)
    with torch.no_grad():
        ref = torch.stack(q.idx_to_fhats(idx), 1)
        assert torch.equal(x, ref)
        # the inference path: e_k = f_hat_{k-1} + Phi_k(up(embed(r_k))), as LSRSSelector builds it
        f_hat = torch.zeros_like(ref[:, 0])
        for si, pn in enumerate(TINY_TOK.patch_nums):
            e_k = f_hat + q.scale_contribution(si, q.codes_to_map(idx[si], pn))
            torch.testing.assert_close(VarInput(vae).candidates(e_k, idx[si], si), x[:, si])
            f_hat = e_k
        # a scorer input of another size is the resized e_k
        assert VarInput(vae, input_size=8).all_scales(idx).shape == (6, 4, 4, 8, 8)
        score_fn = ScorerScoreFn(Scorer(TINY_SCORER), VarInput(vae))
        assert score_fn(e_k, idx[-1], torch.zeros(6, dtype=torch.long), 3).shape == (6,)
    # training banks: precomputed and per-batch e_k agree
    tokens = torch.cat(idx, 1).to(torch.int16)
    pick, scales = torch.tensor([4, 0, 4]), torch.tensor([1, 3])
    banks = [InputBank(tokens, VarInput(vae), TINY_TOK.patch_nums, pre, torch.device("cpu"), "t") for pre in (1, 0)]
    assert banks[0].cache is not None and banks[1].cache is None
    torch.testing.assert_close(banks[0].get(pick, scales), banks[1].get(pick, scales))
    torch.testing.assert_close(banks[0].get(pick, scales), ref[pick][:, scales])


def test_split_and_pairs_are_per_class_and_deterministic():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    train, val = split_per_class(labels, 0.2, seed=3)
    assert {c: len(v) for c, v in val.items()} == {0: 2, 1: 1, 2: 0}
    assert split_per_class(labels, 0.2, seed=3)[1][0].tolist() == val[0].tolist()
    gen_labels = torch.tensor([0] * 3 + [1] * 7)
    gtrain, _ = split_per_class(gen_labels, 0.2, seed=3, stream=1)
    ri, gi = make_pairs(train, gtrain, None, torch.Generator().manual_seed(0))
    assert torch.equal(labels[ri], gen_labels[gi])  # same class
    assert len(ri) == max(8, 2) + max(4, 6)  # class 2 has no generated maps
    assert set(ri.tolist()) == set(torch.cat([train[0], train[1]]).tolist())  # every training map used


def _synthetic_maps(vae: VQVAE, n_per_class: int, real: bool, seed: int):
    """Scale 0 is uniform for both; later scales use codes whose embedding channel 0 is > 0 (real) or < 0."""
    g = torch.Generator().manual_seed(seed)
    emb0 = vae.quantize.embedding.weight[:, 0].detach()
    pool = (emb0 > 0).nonzero().flatten() if real else (emb0 <= 0).nonzero().flatten()
    labels = torch.arange(3).repeat_interleave(n_per_class)
    parts = [torch.randint(64, (len(labels), 1), generator=g)]
    for pn in TINY_TOK.patch_nums[1:]:
        parts.append(pool[torch.randint(len(pool), (len(labels), pn * pn), generator=g)])
    return torch.cat(parts, 1).to(torch.int16), labels


def _read_val(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_tiny_training_end_to_end_and_resume(tmp_path, monkeypatch):
    vae = _tiny_vae()
    real = _synthetic_maps(vae, 40, True, 1)
    gen = _synthetic_maps(vae, 30, False, 2)
    tcfg = ScorerTrainConfig(lr=3e-3, batch_size=16, epochs=2, val_fraction=0.25, checkpoint_every=3, seed=0,
                             pairs_per_class=30, val_pairs_per_class=10)  # the re-drawn per-class pairs
    out = tmp_path / "run"
    logs = []
    metrics = train_scorer(*real, *gen, vae, TINY_SCORER, tcfg, out, log=logs.append)
    for name in ("scorer.pth", "scorer.json", "scorer_val.csv", "scorer_loss.csv", "scorer_metrics.json",
                 "scorer_loss.png", "scorer_val.png", "scorer.train.pth"):
        assert (out / name).is_file(), name
    rows = _read_val(out / "scorer_val.csv")
    assert [(int(r["epoch"]), int(r["scale"])) for r in rows] == [(e, s) for e in (1, 2) for s in range(4)]
    assert json.loads((out / "scorer_metrics.json").read_text())["best_val_loss"] == metrics["best_val_loss"]
    assert metrics["trained_scales"] == [0, 1, 2, 3]
    assert metrics["real_maps"] == {"train": 90, "val": 30} and metrics["val_pairs"] == 30
    acc = [float(r["acc"]) for r in rows if int(r["epoch"]) == 2]  # scale 0 is identically distributed
    assert min(acc[2:]) >= 0.9 and sum(acc[1:]) / 3 > 0.8, rows  # later scales separate clearly
    assert metrics["best_val_loss"] < math.log(2)
    model = load_scorer(out / "scorer.pth")
    assert model.cfg == TINY_SCORER

    # interrupted after step 5 of 12, then rerun: resumes from the step-3 snapshot to the same result
    out2 = tmp_path / "resumed"
    original = ScorerTrainer.train_step

    def crashing(self):
        if self.step == 5:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(ScorerTrainer, "train_step", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_scorer(*real, *gen, vae, TINY_SCORER, tcfg, out2, log=logs.append)
    monkeypatch.setattr(ScorerTrainer, "train_step", original)
    logs.clear()
    resumed = train_scorer(*real, *gen, vae, TINY_SCORER, tcfg, out2, log=logs.append)
    assert any("resuming scorer training from step 3" in m for m in logs)
    assert resumed["val_loss_per_scale"] == metrics["val_loss_per_scale"]
    assert _read_val(out2 / "scorer_val.csv") == rows

    # a snapshot made with other settings is refused
    with pytest.raises(RuntimeError, match="other data or configs"):
        train_scorer(*real, *gen, vae, TINY_SCORER, ScorerTrainConfig(**{**tcfg.__dict__, "lr": 1e-3}), out2)


def test_without_first_scale_never_trains_scale_zero(tmp_path):
    vae = _tiny_vae()
    real = _synthetic_maps(vae, 12, True, 3)
    gen = _synthetic_maps(vae, 12, False, 4)
    tcfg = ScorerTrainConfig(lr=3e-3, batch_size=16, epochs=1, val_fraction=0.25, seed=5, without_first_scale=True,
                             loss="pointwise", precompute_max_gb=0.0)  # also covers e_k built per batch
    metrics = train_scorer(*real, *gen, vae, TINY_SCORER, tcfg, tmp_path, log=lambda m: None)
    assert metrics["trained_scales"] == [1, 2, 3] and not metrics["e_k_precomputed"]
    rows = _read_val(tmp_path / "scorer_val.csv")
    assert [r["trained"] for r in rows] == ["False", "True", "True", "True"]  # scale 0 still reported
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tcfg.seed)
        init = Scorer(TINY_SCORER)
    trained = load_scorer(tmp_path / "scorer.pth")
    emb0, emb_init = trained.stage_label_embedding.weight, init.stage_label_embedding.weight
    assert torch.equal(emb0[0], emb_init[0])  # the scale-0 embedding never received a gradient
    assert not torch.equal(emb0[1:], emb_init[1:])


REFSET = MANIFEST.parent / "scorer-refset"


@pytest.mark.skipif(not (REFSET / "scorer_ref.pth").is_file(), reason="../shared scorer refset not present")
def test_paper_scorer_is_the_authors_function_on_the_refset():
    """The authors' RewardNet on seeded weights (shared/reference/lsrs-official/scorer-refset): a strict
    load into the paper preset gives their scores within 1e-5 and both losses within 1e-6."""
    ref = torch.load(REFSET / "scorer_ref.pth", map_location="cpu")
    model = Scorer(ScorerConfig.preset("paper"))
    model.load_state_dict(torch.load(REFSET / "scorer_state_dict.pth", map_location="cpu"), strict=True)
    assert num_params(model) == ref["n_params"]
    with torch.no_grad():
        s = model.eval()(ref["e"], ref["labels"].long(), ref["stages"].long())
    assert (s - ref["scores"][:, 0]).abs().max().item() < 1e-5
    s_real, s_gen = s[:8].double(), s[8:].double()
    assert abs(pair_loss(s_real, s_gen, "pairwise").mean().item() - float(ref["pairwise_loss"])) < 1e-6
    assert abs(pair_loss(s_real, s_gen, "pointwise").mean().item() - float(ref["pointwise_loss"])) < 1e-6


def test_fuser_ends_in_a_bare_linear_and_init_is_the_authors():
    """The last hidden Linear feeds out_proj without an activation (the authors' fuser), and the init
    uses the ReLU gain for convs and untruncated N(0, 0.02) embeddings."""
    model = Scorer(ScorerConfig.preset("mini"))
    assert isinstance(model.fuser[-1], torch.nn.Linear)
    assert [type(m).__name__ for m in model.fuser] == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear"]
    torch.manual_seed(0)
    big = Scorer(ScorerConfig.preset("paper"))
    w = big.conv_stage_1[0].conv1.weight  # fan_out = 64 * 9: std sqrt(2 / fan_out)
    assert abs(w.std().item() / math.sqrt(2 / (64 * 9)) - 1) < 0.05
    emb = big.class_label_embedding.weight
    assert emb.abs().max().item() > 0.06  # a +-2 std truncation (the old init) would stop at 0.04


def test_authors_pair_recipe_draws_a_fixed_fraction_of_same_class_pairs():
    from lsrs.training.pairs import distinct, sample_all_pairs

    real = {0: torch.arange(0, 30), 1: torch.arange(30, 50)}
    gen = {0: torch.arange(100, 140), 1: torch.arange(140, 150)}
    g = torch.Generator().manual_seed(0)
    ri, gi = sample_all_pairs(real, gen, 0.1, g)
    assert len(ri) == round(0.1 * 30 * 40) + round(0.1 * 20 * 10)
    pairs = set(zip(ri.tolist(), gi.tolist()))
    assert len(pairs) == len(ri)  # without replacement
    assert all((r < 30) == (q < 140) for r, q in pairs)  # always within a class
    again = sample_all_pairs(real, gen, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], ri) and torch.equal(again[1], gi)
    big = distinct(10 ** 9, 5000, torch.Generator().manual_seed(1))  # the path for huge pair counts
    assert len(big.unique()) == 5000 and int(big.max()) < 10 ** 9


def test_default_recipe_gives_the_authors_steps_per_epoch(tmp_path):
    """Fixed 1% of the n_real x n_gen training pairs per class, the same pairs every epoch."""
    cfg = ScorerTrainConfig(epochs=2, batch_size=8, pair_fraction=0.25, val_pair_fraction=0.5)
    torch.manual_seed(0)
    real, gen = torch.randint(64, (40, 30)), torch.randint(64, (40, 30))
    labels = torch.arange(40) % 2
    tok = VQVAE(TINY_TOK).eval()
    m = train_scorer(real, labels, gen, labels, tok, dataclasses.replace(TINY_SCORER, num_classes=2), cfg,
                     tmp_path, log=lambda s: None)
    per_class_train = 20 - 2  # val_fraction 0.1 of 20 maps per class and collection
    assert m["train_pairs_per_epoch"] == 2 * round(0.25 * per_class_train ** 2)
    assert m["steps_per_epoch"] == -(-m["train_pairs_per_epoch"] // 8)


def test_scorer_run_can_start_from_the_authors_checkpoint(tmp_path):
    """scorer.runs.<name>.checkpoint: sha256-pinned, checked strictly against scorer.model, linked as r0,
    and loaded as the same function."""
    from lsrs.core.checkpoint import CheckpointError, sha256_file
    from lsrs.pipeline.params import Params, ScorerRun, ScorerSection
    from lsrs.pipeline.family import family_setup
    from lsrs.pipeline.layout import Layout
    from lsrs.pipeline.scorers import link_scorer, load_scorer_from, scorer_replicates

    state = tmp_path / "reward_net.pth"
    torch.manual_seed(3)
    net = Scorer(ScorerConfig.preset("mini"))
    torch.save(net.state_dict(), state)

    def family(sha, model=ScorerConfig.preset("mini")):
        run = ScorerRun(var="d4", checkpoint=str(state), sha256=sha)
        return family_setup(Params(scorer=ScorerSection(model=model, runs={"authors": run})), "var",
                            Layout.at(tmp_path / "runs"))

    quiet = lambda m: None  # noqa: E731
    with pytest.raises(CheckpointError, match="sha256 is not in the params"):
        link_scorer(family(None), "authors", quiet)
    with pytest.raises(CheckpointError, match="different or damaged"):
        link_scorer(family("0" * 64), "authors", quiet)
    with pytest.raises(CheckpointError):
        link_scorer(family(sha256_file(state), ScorerConfig.preset("paper")), "authors", quiet)
    link_scorer(family(sha256_file(state)), "authors", quiet)
    [folder] = scorer_replicates(tmp_path / "runs" / "scorers" / "authors")
    loaded = load_scorer_from(folder)
    x = torch.randn(3, 16, 8, 8)
    lab, sc = torch.tensor([0, 1, 2]), torch.tensor([0, 3, 6])
    with torch.no_grad():
        assert torch.equal(loaded(x, lab, sc), net.eval()(x, lab, sc))


def test_replicates_cover_every_class_equally():
    from lsrs.sampling.plan import replicate_of

    g = replicate_of(60, 10, 3)
    labels = torch.arange(60) % 10
    for r in range(3):
        assert torch.bincount(labels[g == r], minlength=10).tolist() == [2] * 10
    assert replicate_of(60, 10, 1).eq(0).all()


def test_single_scale_schedules():
    from lsrs.pipeline.sweep_config import SweepConfig, sweep_runs

    runs = sweep_runs(SweepConfig(M=(1, 8), only_scale=(2, 7)), "s", lambda s: "d4")
    assert [r.name for r in runs] == ["d4_baseline", "s_M8_only2", "s_M8_only7"]
    assert runs[1].schedule(7) == (1, 8, 1, 1, 1, 1, 1) and runs[2].schedule(7) == (1, 1, 1, 1, 1, 1, 8)
