"""Evaluation: metrics against float64 definitions and torch-fidelity, extractors, caches, sample files.

Synthetic data and a randomly initialised mini evaluator throughout (the metric code does not care
whether the classifier is trained); the Inception path runs offline with a random-valued weights file
in torch-fidelity's format. One check uses real Fashion-MNIST images and is skipped without them.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch_fidelity
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_prc import calculate_precision_recall_full, calculate_precision_recall_part

from lsrs.core.checkpoint import atomic_save, atomic_write_text, config_to_json
from lsrs.data.fashion_mnist import DEFAULT_FASHION_MNIST, load_fashion_mnist
from lsrs.evaluation.reference import (ReferenceMismatchError, build_reference, compare_runs, evaluate_features,
                             evaluate_images, load_reference, save_reference)
from lsrs.data.fashion_mnist import ImageSet
from lsrs.training.evaluator import EvaluatorConfig, EvaluatorTrainConfig, MiniClassifier, load_evaluator, train_evaluator
from lsrs.evaluation.features import (INCEPTION_WEIGHTS_NAME, ExtractorWeightsError, MiniFeatureExtractor, cache_path,
                           cached_features, data_digest, inception_extractor, mini_extractor)
from lsrs.evaluation.metrics import (Gaussian, GaussianAccumulator, weighted_gaussian, frechet_distance, inception_score,
                          paired_bootstrap_fid, precision_recall)
from lsrs.core.npz import SamplesWriter, iter_samples, read_samples, samples_shape, to_uint8, write_samples


# --------------------------------------------------------------------------- helpers
def save_random_evaluator(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    cfg = EvaluatorConfig()
    net = MiniClassifier(cfg)
    with torch.no_grad():  # scale-preserving init, so that untrained features are not tiny
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    atomic_save(net.state_dict(), folder / "evaluator.pth")
    atomic_write_text(config_to_json(cfg), folder / "evaluator.json")
    return folder


def synthetic_images(n: int, seed: int, blur: bool = False, classes: int = 10) -> torch.Tensor:
    """uint8 (n, 1, 32, 32): one of `classes` smooth random templates per image, plus noise."""
    g = torch.Generator().manual_seed(1234)
    t = torch.nn.functional.avg_pool2d(torch.rand(10, 1, 32, 32, generator=g), 5, 1, 2)
    lo, hi = t.amin((1, 2, 3), keepdim=True), t.amax((1, 2, 3), keepdim=True)
    templates = (t - lo) / (hi - lo) * 255
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(classes, (n,), generator=g)
    x = templates[labels] + 40 * torch.randn(n, 1, 32, 32, generator=g)
    if blur:
        x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    return x.clamp(0, 255).round().to(torch.uint8)


class TensorDataset(torch.utils.data.Dataset):
    """What torch-fidelity accepts: __getitem__ returns only a tensor."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


@pytest.fixture(scope="module")
def evaluator_dir(tmp_path_factory):
    return save_random_evaluator(tmp_path_factory.mktemp("evaluator"), seed=0)


@pytest.fixture(scope="module")
def extractor(evaluator_dir):
    return mini_extractor(evaluator_dir)


def random_features(n, d, seed, shift=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d ** 0.5
    return (torch.randn(n, d, generator=g) @ mix * scale + shift).float()


# --------------------------------------------------------------------------- the mini evaluator
def test_train_evaluator_writes_a_loadable_extractor(tmp_path):
    def image_set(n, seed):
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(10, (n,), generator=g)
        return ImageSet(_class_images(labels, g), labels, 10)

    train, test = image_set(256, 0), image_set(100, 1)
    cfg = EvaluatorTrainConfig(epochs=2, batch_size=32, lr=3e-3)
    metrics = train_evaluator(train, test, cfg, tmp_path, log=lambda msg: None)
    assert {"evaluator.pth", "evaluator.json", "evaluator_metrics.json"} <= {p.name for p in tmp_path.iterdir()}
    assert metrics["test_accuracy"] > 0.5 and metrics["params"] == 155_898  # 10 easy classes, chance is 0.1
    net = load_evaluator(tmp_path)
    hidden, spatial, logits = net.features(net.preprocess(test.images[:4]))
    assert hidden.shape == (4, 128) and spatial.shape == (4, EvaluatorConfig().spatial_dim) and logits.shape == (4, 10)
    assert mini_extractor(tmp_path).name.startswith("lsrs-mini-evaluator-")
    with pytest.raises(ValueError, match="1-channel"):
        net.preprocess(torch.zeros(1, 2, 32, 32, dtype=torch.uint8))


def _class_images(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """uint8 images whose class is a bright square at a class-specific place, plus noise."""
    x = 30 * torch.rand(len(labels), 1, 32, 32, generator=g)
    for i, c in enumerate(labels.tolist()):
        r, col = 4 + 6 * (c // 4), 2 + 7 * (c % 4)
        x[i, 0, r:r + 6, col:col + 6] = 250
    return x.round().to(torch.uint8)


# --------------------------------------------------------------------------- Gaussians and FID
def test_gaussian_accumulator_matches_np_cov():
    x = random_features(1000, 16, 0, shift=1e3)  # large mean: the naive formula would lose digits
    acc = GaussianAccumulator()
    for part in x.split(37):
        acc.add(part)
    g = acc.result()
    ref = np.cov(x.numpy().astype(np.float64), rowvar=False)
    assert g.count == 1000
    np.testing.assert_allclose(g.mu, x.double().mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(g.sigma, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("n,d", [(500, 24), (30, 48)])  # full rank, and rank-deficient (d > n)
def test_fid_decomposition_matches_torch_fidelity_and_sqrtm(n, d):
    ref = Gaussian.of(random_features(n, d, 1))
    gen = Gaussian.of(random_features(n, d, 2, shift=0.3, scale=1.2))
    out = frechet_distance(ref, gen)
    # the decomposition is exactly the FID
    assert out["fid"] == pytest.approx(out["mean_diff2"] + out["trace_term"], rel=1e-12)
    assert out["trace_term"] == pytest.approx(out["tr_sigma_ref"] + out["tr_sigma_gen"] - out["tr_sqrt_x2"],
                                              rel=1e-12)
    # torch-fidelity's own function (eigvals route) on the same statistics
    theirs = fid_statistics_to_metric({"mu": ref.mu, "sigma": ref.sigma}, {"mu": gen.mu, "sigma": gen.sigma},
                                      verbose=False)["frechet_inception_distance"]
    assert out["fid"] == pytest.approx(theirs, rel=1e-6)
    # ADM's route: scipy sqrtm, float64, from the definition
    covmean = scipy.linalg.sqrtm(ref.sigma @ gen.sigma).real
    adm = ((ref.mu - gen.mu) ** 2).sum() + np.trace(ref.sigma) + np.trace(gen.sigma) - 2 * np.trace(covmean)
    assert out["fid"] == pytest.approx(adm, rel=1e-6)
    assert out["mean_diff2"] == pytest.approx(((ref.mu - gen.mu) ** 2).sum(), rel=1e-12)
    assert out["tr_sqrt_x2"] == pytest.approx(2 * np.trace(covmean), rel=1e-6)
    # rank-deficient covariances: sqrt of round-off eigenvalues (~1e-16) leaves ~1e-8 per null direction
    assert frechet_distance(ref, ref)["fid"] == pytest.approx(0, abs=1e-7 * out["tr_sigma_ref"])


# --------------------------------------------------------------------------- IS
def reference_inception_score(logits: np.ndarray, splits: int, seed: int | None) -> float:
    """IS from its definition, float64 numpy: exp(E_x KL(p(y|x) || p(y))) per split, mean of splits."""
    x = logits.astype(np.float64)
    if seed is not None:
        x = x[np.random.RandomState(seed).permutation(len(x))]
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n, scores = len(p), []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        py = part.mean(0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), 1))))
    return float(np.mean(scores))


def test_inception_score_matches_definition_and_torch_fidelity():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(1000) // 100  # class-ordered, as a per-class sampling loop writes them
    logits = torch.randn(1000, 10, generator=g) + 4 * torch.nn.functional.one_hot(labels, 10)
    ours, ours_std = inception_score(logits, 10, shuffle=True, seed=7)
    assert ours == pytest.approx(reference_inception_score(logits.numpy(), 10, 7), rel=1e-10)
    theirs = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=7)
    assert ours == pytest.approx(theirs["inception_score_mean"], rel=1e-10)
    assert ours_std == pytest.approx(theirs["inception_score_std"], rel=1e-8)
    # without the shuffle, class-ordered splits see one class each and IS collapses (ADM's trap)
    ordered, _ = inception_score(logits, 10, shuffle=False)
    assert ordered == pytest.approx(reference_inception_score(logits.numpy(), 10, None), rel=1e-10)
    assert ordered < 0.5 * ours


# --------------------------------------------------------------------------- precision / recall
def test_precision_recall_matches_torch_fidelity_and_definition():
    real = random_features(600, 8, 3)
    gen = random_features(500, 8, 4, shift=0.4, scale=0.8)
    p, r = precision_recall(real, gen, k=3, chunk=128)
    # torch-fidelity: input1 = generated, input2 = real; same decisions (it averages in float32)
    same = lambda a, b: a == pytest.approx(b, abs=1e-6)  # noqa: E731  (one point is 1/600)
    assert same((p, r), calculate_precision_recall_full(gen, real, neighborhood=3, batch_size=10000))
    assert same((p, r), calculate_precision_recall_part(gen, real, neighborhood=3, batch_size=200))
    # ADM's definition with squared distances, float64 brute force
    d = lambda a, b: ((a.double()[:, None] - b.double()[None]) ** 2).sum(-1)  # noqa: E731
    radius_real = d(real, real).sort(1).values[:, 3]
    radius_gen = d(gen, gen).sort(1).values[:, 3]
    assert p == pytest.approx(float((d(gen, real) <= radius_real).any(1).double().mean()), abs=1e-12)
    assert r == pytest.approx(float((d(real, gen) <= radius_gen).any(1).double().mean()), abs=1e-12)
    assert 0.1 < p < 1 and 0.1 < r < 1


# --------------------------------------------------------------------------- end to end on the mini extractor
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # sqrtm of a singular product (dead units)
def test_evaluate_matches_calculate_metrics_and_float64_sfid(extractor):
    real, gen = synthetic_images(400, 1), synthetic_images(300, 2, blur=True)
    ref = build_reference(real, extractor, pr_count=None, batch_size=128)
    ours = evaluate_images(gen, extractor, ref, batch_size=128)
    theirs = torch_fidelity.calculate_metrics(
        input1=TensorDataset(gen), input2=TensorDataset(real), cuda=False, isc=True, fid=True, prc=True,
        save_cpu_ram=True, cache=False, verbose=False, batch_size=128, isc_splits=10, rng_seed=2020,
        **extractor.fidelity_kwargs())
    assert ours["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    assert ours["fid"] == pytest.approx(ours["fid_mean_diff2"] + ours["fid_trace_term"], rel=1e-12)
    assert ours["is"] == pytest.approx(theirs["inception_score_mean"], rel=1e-9)
    assert (ours["precision"], ours["recall"]) == pytest.approx((theirs["precision"], theirs["recall"]), abs=1e-6)
    assert ours["count"] == 300 and ours["fid"] > 1
    # sFID from its definition: raw spatial features, float64 numpy statistics, scipy sqrtm
    fe = extractor.create()
    feats = {name: torch.cat([dict(zip(fe.features_list, fe(b)))["spatial"] for b in x.split(128)])
             for name, x in (("real", real), ("gen", gen))}
    assert feats["gen"].shape == (300, 7 * 8 * 8)
    mu_r, mu_g = (feats[k].numpy().astype(np.float64).mean(0) for k in ("real", "gen"))
    s_r, s_g = (np.cov(feats[k].numpy().astype(np.float64), rowvar=False) for k in ("real", "gen"))
    sfid = ((mu_r - mu_g) ** 2).sum() + np.trace(s_r) + np.trace(s_g) - 2 * np.trace(scipy.linalg.sqrtm(s_r @ s_g).real)
    assert ours["sfid"] == pytest.approx(sfid, rel=1e-5)


def test_metrics_order_real_blurred_collapsed(extractor):
    ref = build_reference(synthetic_images(1500, 10), extractor, batch_size=500)
    held_out = evaluate_images(synthetic_images(1000, 11), extractor, ref, batch_size=500)
    blurred = evaluate_images(synthetic_images(1000, 12, blur=True), extractor, ref, batch_size=500)
    collapsed = evaluate_images(synthetic_images(1000, 13, classes=2), extractor, ref, batch_size=500)
    assert held_out["fid"] < 0.2 * min(blurred["fid"], collapsed["fid"])
    assert held_out["sfid"] < blurred["sfid"]
    assert held_out["recall"] > collapsed["recall"] + 0.2


# --------------------------------------------------------------------------- caches and stale protection
def test_cache_keys_follow_weights_and_data(extractor, evaluator_dir, tmp_path):
    other = mini_extractor(save_random_evaluator(tmp_path / "other", seed=1))
    assert other.name != extractor.name and extractor.name.startswith("lsrs-mini-evaluator-")
    assert mini_extractor(evaluator_dir) == extractor  # registering again is idempotent
    images = synthetic_images(64, 5)
    changed = images.clone()
    changed[3, 0, 10, 10] ^= 1
    assert data_digest(images) == data_digest(images.clone()) != data_digest(changed)
    assert data_digest(images) == data_digest(images.float() / 255)  # float input is quantised first
    keys = {cache_path(tmp_path, e, data_digest(x)) for e in (extractor, other) for x in (images, changed)}
    assert len(keys) == 4

    cache = tmp_path / "cache"
    first, hit1 = cached_features(images, extractor, cache_dir=cache, batch_size=32)
    again, hit2 = cached_features(images, extractor, cache_dir=cache, batch_size=32)
    fresh, hit3 = cached_features(changed, extractor, cache_dir=cache, batch_size=32)
    theirs, hit4 = cached_features(images, other, cache_dir=cache, batch_size=32)
    assert (hit1, hit2, hit3, hit4) == (False, True, False, False)
    assert torch.equal(first.pool, again.pool) and np.array_equal(first.spatial_stats.sigma, again.spatial_stats.sigma)
    assert not torch.equal(first.pool, theirs.pool)
    assert len(list(cache.glob("*.pt"))) == 3

    # an extractor name cannot be used with other weights, references and features cannot be mixed
    with pytest.raises(ExtractorWeightsError, match="registered for other weights"):
        MiniFeatureExtractor(extractor.name, ["hidden"], feature_extractor_weights_path=other.weights_path)
    ref = build_reference(images, extractor, batch_size=32)
    with pytest.raises(ReferenceMismatchError):
        evaluate_features(theirs, ref)
    save_reference(ref, tmp_path / "ref.npz")
    with pytest.raises(ReferenceMismatchError, match="rebuild the reference"):
        load_reference(tmp_path / "ref.npz", other)
    loaded = load_reference(tmp_path / "ref.npz", extractor)
    assert np.array_equal(loaded.pool.sigma, ref.pool.sigma) and torch.equal(loaded.pr_features, ref.pr_features)
    assert loaded.count == 64 and loaded.spatial.count == 64


# --------------------------------------------------------------------------- sample files
def test_samples_npz_round_trip_rounding_and_streaming(tmp_path):
    levels = torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.float64)
    x = torch.zeros(6, 1, 2, 3, dtype=torch.float64)
    x[:, 0, 0, 0] = (levels + 0.49) / 255  # just below the next level: rounds down
    x[:, 0, 0, 1] = (levels - 0.49) / 255  # just above the previous: rounds up (truncation would not)
    x[:, 0, 1, 2] = 1.7  # out of range: clamped
    u8 = to_uint8(x)
    assert u8[:, 0, 0, 0].tolist() == levels.int().tolist() == u8[:, 0, 0, 1].tolist()
    assert u8[:, 0, 1, 2].tolist() == [255] * 6

    labels = torch.arange(6)
    path = write_samples(tmp_path / "s.npz", x, labels)
    with np.load(path) as d:  # what ADM's evaluator reads
        assert d["arr_0"].dtype == np.uint8 and d["arr_0"].shape == (6, 2, 3, 1)
    images, read_labels = read_samples(path)
    assert np.array_equal(images, u8.permute(0, 2, 3, 1).numpy()) and read_labels.tolist() == list(range(6))
    assert np.array_equal(np.concatenate(list(iter_samples(path, batch_size=4))), images)
    assert samples_shape(path) == (6, 2, 3, 1)
    rgb, _ = read_samples(write_samples(tmp_path / "rgb.npz", x, rgb=True))
    assert rgb.shape == (6, 2, 3, 3) and (rgb == images).all()

    with pytest.raises(ValueError, match="announced"):
        with SamplesWriter(tmp_path / "short.npz", count=10, height=2, width=3, channels=1) as w:
            w.add(x)
    assert list(tmp_path.glob("*short*")) == []


def test_evaluate_npz_equals_tensor_and_caches(extractor, tmp_path):
    ref = build_reference(synthetic_images(300, 20), extractor, batch_size=100)
    images = synthetic_images(200, 21).float() / 255
    path = write_samples(tmp_path / "gen.npz", images)
    a = evaluate_images(images, extractor, ref, batch_size=64)
    b = evaluate_images(path, extractor, ref, batch_size=64, cache_dir=tmp_path / "cache")
    c = evaluate_images(path, extractor, ref, batch_size=64, cache_dir=tmp_path / "cache")
    assert (a["features_cached"], b["features_cached"], c["features_cached"]) == (False, False, True)
    for key in ("fid", "fid_trace_term", "sfid", "is", "precision", "recall"):
        # same pixels; oneDNN may pick other kernels for other buffer alignments (float32 noise)
        assert a[key] == pytest.approx(b[key], rel=1e-6) and b[key] == c[key]
    # references from a plain sample file and from an iterator of batches (e.g. a folder reader)
    real = synthetic_images(300, 20)
    from_file = load_reference(write_samples(tmp_path / "real.npz", real), extractor, batch_size=64)
    from_iter = build_reference((b for b in real.split(50)), extractor, pr_count=None)
    for r in (from_file, from_iter):
        np.testing.assert_allclose(r.pool.sigma, ref.pool.sigma, rtol=1e-5, atol=1e-6 * np.abs(ref.pool.sigma).max())
        assert r.count == 300 and len(r.pr_features) == 300


# --------------------------------------------------------------------------- paired bootstrap
def test_paired_bootstrap_interval():
    ref_feats = random_features(800, 6, 30)
    ref = Gaussian.of(ref_feats)
    base = random_features(800, 6, 31)
    w = torch.ones(800, dtype=torch.float64)
    m, s = weighted_gaussian(base.double(), w)
    np.testing.assert_allclose(s.numpy(), Gaussian.of(base).sigma, rtol=1e-10)

    same = paired_bootstrap_fid(base, base.clone(), ref, n_boot=50)
    assert same["delta"] == 0 and same["low"] == 0 and same["high"] == 0
    worse = paired_bootstrap_fid(base, base + 0.25, ref, n_boot=100, seed=1)
    assert worse["delta"] > 0 and worse["low"] > 0 and worse["share_not_better"] == 1.0
    assert worse["fid_baseline"] == pytest.approx(frechet_distance(ref, Gaussian.of(base))["fid"], rel=1e-9)
    better = paired_bootstrap_fid(base + 0.25, base, ref, n_boot=100, seed=1)
    assert better["high"] < 0 and better["low"] == pytest.approx(-worse["high"], rel=1e-9)


def test_batched_bootstrap_fids_equal_the_per_draw_path():
    from lsrs.evaluation.metrics import _PairedFID

    ref = Gaussian.of(random_features(900, 12, 40))
    a, b = random_features(300, 12, 41), random_features(300, 12, 42, shift=0.1)
    fid = _PairedFID(a, b, ref, "cpu")
    assert fid.batched
    W = torch.from_numpy(np.random.default_rng(0).multinomial(300, [1 / 300] * 300, size=7)).double()
    batched, exact = fid(W), fid(W, exact=True)
    fid.batched = False
    looped = fid(W)
    for x, y, z in zip(batched, exact, looped):
        np.testing.assert_allclose(y, z, rtol=1e-10)  # float64: the same numbers
        np.testing.assert_allclose(x, z, rtol=1e-5)  # the float32 draws: within 1e-5
    assert batched[0][0] != batched[0][1]  # the draws differ


def test_two_level_bootstrap_covers_replicate_variance():
    """Three replicates whose candidates differ by a replicate-specific shift: the interval
    (replicates, then images) is wider than the images-only spread, tau2 > 0 names the between part,
    and identical replicates give a tau2 near 0."""
    ref = Gaussian.of(random_features(2000, 6, 50))
    base = random_features(600, 6, 51)
    groups = (torch.arange(600) // 10) % 3
    shift = torch.tensor([-0.3, 0.0, 0.45])[groups][:, None]
    out = paired_bootstrap_fid(base, base + shift, ref, n_boot=400, seed=1, groups=groups, n_boot_components=100)
    assert out["method"].startswith("percentile: images within replicates") and out["replicates"] == 3
    assert len(out["replicate_deltas"]) == 3 and out["tau2"] > 0
    assert out["se"] > math.sqrt(out["var_images"])  # the replicate level adds spread
    assert out["low"] <= out["delta"] <= out["high"] and out["endpoint_mcse"] > 0
    same = paired_bootstrap_fid(base, base + 0.1, ref, n_boot=200, seed=1, groups=groups, n_boot_components=100)
    assert same["tau2"] < 0.05 * out["tau2"]  # only image noise between identical replicates
    one = paired_bootstrap_fid(base, base + 0.1, ref, n_boot=200, seed=1)
    assert one["method"] == "percentile" and "tau2" not in one


def test_endpoint_mcse_shrinks_with_draws():
    from lsrs.evaluation.metrics import endpoint_mcse

    rng = np.random.default_rng(0)
    small, large = endpoint_mcse(rng.normal(size=500), 0.025), endpoint_mcse(rng.normal(size=8000), 0.025)
    assert large < small and large == pytest.approx(2.67 / math.sqrt(8000), rel=0.15)


def test_compare_runs_checks_pairing(extractor):
    ref = build_reference(synthetic_images(300, 40), extractor, batch_size=100)
    a, _ = cached_features(synthetic_images(200, 41), extractor, batch_size=100)
    b, _ = cached_features(synthetic_images(200, 41, blur=True), extractor, batch_size=100)
    out = compare_runs(a, b, ref, n_boot=30)
    assert out["delta"] == pytest.approx(evaluate_features(b, ref)["fid"] - evaluate_features(a, ref)["fid"], rel=1e-9)
    c, _ = cached_features(synthetic_images(150, 42), extractor, batch_size=100)
    with pytest.raises(ValueError, match="same images count"):
        compare_runs(a, c, ref)


# --------------------------------------------------------------------------- Inception, offline
def test_inception_offline_with_random_weights(random_inception_weights, monkeypatch, tmp_path):
    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    with pytest.raises(ExtractorWeightsError, match=INCEPTION_WEIGHTS_NAME):
        inception_extractor(tmp_path / INCEPTION_WEIGHTS_NAME)

    ex = inception_extractor(random_inception_weights)
    assert ex.name.startswith("inception-v3-adm-") and ex.layers == ("2048", "mixed_6_conv_7ch", "logits_unbiased")
    fe = ex.create()
    grabbed = []
    fe.net.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: grabbed.append(o))
    x = torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8)
    pool, spatial, logits = fe(x)
    assert pool.shape == (2, 2048) and spatial.shape == (2, 2023) and logits.shape == (2, 1008)
    assert torch.isfinite(spatial).all() and spatial.abs().sum() > 0
    # ADM's layout: first 7 channels of mixed_6/conv (17x17), flattened channels-last
    assert grabbed[0].shape == (2, 192, 17, 17)
    assert torch.equal(spatial, grabbed[0][:, :7].permute(0, 2, 3, 1).reshape(2, -1))
    torch.testing.assert_close(logits, pool @ fe.net.fc.weight.T, rtol=1e-4, atol=1e-4)  # unbiased logits
    # a spatial-only request still runs far enough for the hook; grayscale input is replicated to RGB
    only = torch_fidelity.utils.create_feature_extractor(
        ex.name, ["mixed_6_conv_7ch"], cuda=False, feature_extractor_weights_path=ex.weights_path)
    assert torch.equal(only(x)[0], spatial)
    gray = x[:, :1]
    assert torch.equal(fe(gray)[1], fe(gray.expand(-1, 3, -1, -1))[1])


# --------------------------------------------------------------------------- real data (skipped without it)
@pytest.mark.skipif(not DEFAULT_FASHION_MNIST.is_dir(), reason="Fashion-MNIST not installed")
def test_real_fashion_mnist_held_out_vs_blurred(extractor):
    train = load_fashion_mnist(split="train", limit=2000)
    test = load_fashion_mnist(split="test", limit=1000)
    ref = build_reference(train.images, extractor, batch_size=500)
    held_out = evaluate_images(test.images, extractor, ref, batch_size=500)
    blurred = torch.nn.functional.avg_pool2d(test.images.float(), 3, 1, 1).round().to(torch.uint8)
    worse = evaluate_images(blurred, extractor, ref, batch_size=500)
    assert held_out["fid"] < 0.5 * worse["fid"] and held_out["sfid"] < worse["sfid"]


def test_adm_reference_batch_path_with_random_inception(random_inception_weights, tmp_path):
    """An ADM-style reference batch: stored statistics are used as they are, arr_0 feeds P/R only."""
    ex = inception_extractor(random_inception_weights)
    g = np.random.default_rng(0)
    ref_images = g.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    mu, mu_s = g.normal(size=2048), g.normal(size=2023)
    np.savez(tmp_path / "VIRTUAL_ref.npz", arr_0=ref_images, mu=mu, sigma=np.eye(2048), mu_s=mu_s,
             sigma_s=np.eye(2023))
    ref = load_reference(tmp_path / "VIRTUAL_ref.npz", ex, cache_dir=tmp_path / "cache", batch_size=4)
    assert np.array_equal(ref.pool.mu, mu) and np.array_equal(ref.spatial.mu, mu_s)
    assert ref.pr_features.shape == (4, 2048) and ref.extractor == ex.name
    samples = write_samples(tmp_path / "samples.npz", torch.rand(10, 3, 24, 24))
    out = evaluate_images(samples, ex, ref, batch_size=5)
    assert out["count"] == 10 and all(np.isfinite(out[k]) for k in ("fid", "sfid", "is", "precision", "recall"))
    assert out["fid"] == pytest.approx(out["fid_mean_diff2"] + out["fid_trace_term"], rel=1e-9)
    assert out["fid_tr_sigma_ref"] == pytest.approx(2048)
    assert len(list((tmp_path / "cache").glob(f"{ex.name}--npz-*.pt"))) == 1


def test_params_driven_reference_from_imagenet_tree_and_adm_batch(random_inception_weights, tmp_path):
    """The paper profile's wiring: evaluation.extractor 'inception' with a local weights file, a
    reference from an ImageNet-style class-folder tree or from an ADM reference batch."""
    import dataclasses

    from PIL import Image

    from lsrs.pipeline.params import DataConfig, EvaluationConfig, Params
    from lsrs.evaluation.reference import load_reference
    from lsrs.pipeline.context import StageContext
    from lsrs.pipeline.evaluate import build_reference, make_extractor

    g = np.random.default_rng(1)
    for c in ("n01", "n02"):
        (tmp_path / "tree" / c).mkdir(parents=True)
        for j in range(3):
            Image.fromarray(g.integers(0, 256, (30 + j, 28, 3), dtype=np.uint8)).save(tmp_path / "tree" / c / f"{j}.png")
    ev = EvaluationConfig(extractor="inception", inception_weights=str(random_inception_weights), pr_count=4,
                          feature_batch_size=4)
    p = Params(data=DataConfig(dataset="imagenet", root=str(tmp_path / "tree"), image_size=24, crop="center"),
               evaluation=ev)
    info = build_reference(StageContext.create(p, tmp_path, log=lambda m: None))
    ex = make_extractor(p, None)
    ref = load_reference(tmp_path / "reference.npz", ex)
    assert info["extractor"] == ex.name and ref.count == 6 and ref.pr_features.shape == (4, 2048)
    assert "imagenet train, 6 images" in ref.source

    np.savez(tmp_path / "VIRTUAL.npz", arr_0=g.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8),
             mu=np.zeros(2048), sigma=np.eye(2048), mu_s=np.zeros(2023), sigma_s=np.eye(2023))
    p2 = dataclasses.replace(p, evaluation=dataclasses.replace(ev, reference_batch=str(tmp_path / "VIRTUAL.npz")))
    build_reference(StageContext.create(p2, tmp_path / "adm", log=lambda m: None))
    ref2 = load_reference(tmp_path / "adm" / "reference.npz", ex)
    assert np.array_equal(ref2.pool.mu, np.zeros(2048)) and ref2.pr_features.shape == (3, 2048)

    with pytest.raises(ValueError, match="inception_weights"):
        EvaluationConfig(extractor="inception")
    with pytest.raises(ExtractorWeightsError, match=INCEPTION_WEIGHTS_NAME):
        make_extractor(dataclasses.replace(p, evaluation=dataclasses.replace(
            ev, inception_weights=str(tmp_path / "missing" / INCEPTION_WEIGHTS_NAME))), None)


def test_low_rank_bootstrap_fid_equals_the_full_covariance_path():
    """Few images of wide features (N < D) go through the N x N Gram matrix; same FID as D x D."""
    from lsrs.evaluation.metrics import fid_low_rank, frechet_from_parts, sqrt_psd

    g = torch.Generator().manual_seed(3)
    ref = Gaussian.of(torch.randn(400, 64, generator=g, dtype=torch.float64) * 2 + 1)
    sigma_r = torch.as_tensor(ref.sigma)
    sqrt_r, tr_r, mu_r = sqrt_psd(sigma_r), float(torch.trace(sigma_r)), torch.as_tensor(ref.mu)
    x = torch.randn(12, 64, generator=g, dtype=torch.float64)
    for w in (torch.ones(12, dtype=torch.float64), torch.bincount(torch.randint(12, (12,), generator=g),
                                                                   minlength=12).double()):
        m, s = weighted_gaussian(x, w)
        full = frechet_from_parts(mu_r, sqrt_r, tr_r, m, s)["fid"]
        # the D x D path adds sqrt(round-off) of its ~D - N zero eigenvalues: agreement to ~1e-8 relative
        assert fid_low_rank(mu_r, tr_r, x, x @ sqrt_r, w) == pytest.approx(full, rel=1e-7)
