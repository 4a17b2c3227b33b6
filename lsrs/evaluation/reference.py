"""Scoring image sets: reference statistics, `evaluate_images`, and paired comparisons of two runs.

A reference is what generated images are compared with: the Gaussian of the real images' pool
features (FID) and spatial features (sFID), plus the pool features of a subset of real images for
precision/recall (ADM uses the 10,000 images of its reference batch). It comes from

* an ADM reference batch .npz (`arr_0` images, `mu`/`sigma`, `mu_s`/`sigma_s`): the stored
  statistics are used as they are (ADM computed them over the whole ImageNet training set with TF
  Inception), and only `arr_0` goes through our extractor, for P/R;
* any image input (`build_reference`): e.g. all 60,000 Fashion-MNIST training images for mini, or
  an iterator over an ImageNet class-folder tree. Statistics are accumulated in one streaming pass.

Our own references are saved in the same .npz layout (ADM's keys plus `pr_features`, `extractor`,
`source`, `count`), and loading one with another extractor is refused, so a reference can never be
silently mixed with features from other weights.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lsrs.evaluation.features import Extractor, Features, ImageInput, cached_features, compute_features
from lsrs.evaluation.metrics import Gaussian, frechet_distance, inception_score, paired_bootstrap_fid, precision_recall
from lsrs.core.npz import ARRAY_KEY, atomic_savez


class ReferenceMismatchError(ValueError):
    """A reference was made with another feature extractor than the one asked for."""


@dataclass(frozen=True)
class ReferenceStats:
    """Reference statistics for one extractor."""

    extractor: str
    pool: Gaussian  # FID
    spatial: Gaussian | None  # sFID (None: not available, sFID is skipped)
    pr_features: torch.Tensor | None  # pool features of the P/R reference images (None: P/R skipped)
    source: str = ""

    @property
    def count(self) -> int:
        return self.pool.count


def build_reference(images: ImageInput, extractor: Extractor, *, pr_count: int | None = 10_000,
                    batch_size: int = 200, device: str | torch.device = "cpu", source: str = "") -> ReferenceStats:
    """Reference statistics of all `images`; the first `pr_count` images' pool features are kept for P/R
    (None: all). Shuffle first if the input is ordered by class."""
    f = compute_features(images, extractor, batch_size=batch_size, device=device, keep_pool=pr_count,
                         keep_logits=False, desc="reference features")
    return ReferenceStats(extractor.name, f.pool_stats, f.spatial_stats, f.pool, source)


def save_reference(ref: ReferenceStats, path: str | Path) -> Path:
    """Write `ref` as an ADM-style .npz (mu, sigma, mu_s, sigma_s, plus our keys), atomically."""
    arrays = {"mu": ref.pool.mu, "sigma": ref.pool.sigma, "count": np.int64(ref.pool.count),
              "extractor": np.str_(ref.extractor), "source": np.str_(ref.source)}
    if ref.spatial is not None:
        arrays.update(mu_s=ref.spatial.mu, sigma_s=ref.spatial.sigma, count_s=np.int64(ref.spatial.count))
    if ref.pr_features is not None:
        arrays["pr_features"] = ref.pr_features.numpy()
    return atomic_savez(path, **arrays)


def load_reference(path: str | Path, extractor: Extractor, *, cache_dir: str | Path | None = None,
                   batch_size: int = 200, device: str | torch.device = "cpu") -> ReferenceStats:
    """A reference .npz for `extractor`: one saved by `save_reference` (its extractor must match), an
    ADM reference batch (stored mu/sigma/mu_s/sigma_s; `arr_0` goes through `extractor` for P/R,
    with the feature cache), or a plain sample file (`arr_0` only: statistics computed from it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference file {path} not found")
    with np.load(path) as d:
        files = set(d.files)
        if "extractor" in files:
            return _our_reference(d, path, extractor)
        stored = {k: d[k] for k in ("mu", "sigma", "mu_s", "sigma_s") if k in files}
    if ARRAY_KEY not in files:
        raise ValueError(f"{path} holds neither our reference keys nor {ARRAY_KEY} images (keys {sorted(files)})")
    if "mu" not in stored:
        return build_reference(path, extractor, pr_count=None, batch_size=batch_size, device=device,
                               source=f"images of {path.name}")
    feats, _ = cached_features(path, extractor, cache_dir=cache_dir, batch_size=batch_size, device=device,
                               desc="reference batch features")
    if feats.pool.shape[1] != len(stored["mu"]):
        raise ReferenceMismatchError(f"{path}: stored mu is {len(stored['mu'])}-d but {extractor.name} gives "
                                     f"{feats.pool.shape[1]}-d pool features")
    spatial = Gaussian(stored["mu_s"], stored["sigma_s"], 0) if "mu_s" in stored else None
    return ReferenceStats(extractor.name, Gaussian(stored["mu"], stored["sigma"], 0), spatial, feats.pool,
                          source=f"ADM reference batch {path.name} (stored statistics, count unknown: 0)")


def _our_reference(d, path: Path, extractor: Extractor) -> ReferenceStats:
    name = str(d["extractor"])
    if name != extractor.name:
        raise ReferenceMismatchError(f"{path} was made with feature extractor {name}, not {extractor.name} "
                                     "(other weights); rebuild the reference with this extractor")
    spatial = Gaussian(d["mu_s"], d["sigma_s"], int(d["count_s"])) if "mu_s" in d.files else None
    pr = torch.from_numpy(d["pr_features"]) if "pr_features" in d.files else None
    return ReferenceStats(name, Gaussian(d["mu"], d["sigma"], int(d["count"])), spatial, pr, str(d["source"]))


# --------------------------------------------------------------------------- evaluation
def evaluate_features(features: Features, reference: ReferenceStats, *, is_splits: int = 10, is_seed: int = 2020,
                      pr_k: int = 3, device: str | torch.device = "cpu") -> dict:
    """Every metric from one feature pass: FID and its decomposition, sFID, IS, precision and recall."""
    if features.extractor != reference.extractor:
        raise ReferenceMismatchError(f"features from {features.extractor} cannot be compared with a reference "
                                     f"made with {reference.extractor}")
    fid = frechet_distance(reference.pool, features.pool_stats, device)
    out = {"count": features.count, "fid": fid["fid"]}
    out.update({f"fid_{k}": v for k, v in fid.items() if k != "fid"})
    out["sfid"] = (frechet_distance(reference.spatial, features.spatial_stats, device)["fid"]
                   if reference.spatial is not None else None)
    out["is"], out["is_std"] = (inception_score(features.logits, is_splits, True, is_seed)
                                if features.logits is not None else (None, None))
    if reference.pr_features is not None and features.pool is not None:
        out["precision"], out["recall"] = precision_recall(reference.pr_features, features.pool, pr_k, device)
    else:
        out["precision"] = out["recall"] = None
    out.update(reference_count=reference.count, pr_reference_count=(None if reference.pr_features is None
                                                                      else len(reference.pr_features)),
               extractor=features.extractor)
    return out


def evaluate_images(images: ImageInput, extractor: Extractor, reference: ReferenceStats, *, batch_size: int = 200,
                    device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
                    data_key: str | None = None, is_splits: int = 10, is_seed: int = 2020, pr_k: int = 3) -> dict:
    """Score generated images against `reference`: one (cached) feature pass, then every metric.

    `images`: float [0, 1] or uint8 (N, C, H, W) tensor, uint8 NHWC array, sample .npz path, or an
    iterable of batches (cached only with `data_key`). Returns FID (+ decomposition: fid_mean_diff2,
    fid_trace_term, fid_tr_sigma_ref, fid_tr_sigma_gen, fid_tr_sqrt_x2), sfid, is, is_std,
    precision, recall, count, seconds, seconds_features, features_cached.
    """
    t0 = time.perf_counter()
    feats, hit = cached_features(images, extractor, cache_dir=cache_dir, data_key=data_key,
                                 batch_size=batch_size, device=device)
    t1 = time.perf_counter()
    out = evaluate_features(feats, reference, is_splits=is_splits, is_seed=is_seed, pr_k=pr_k, device=device)
    out.update(seconds=time.perf_counter() - t0, seconds_features=t1 - t0, features_cached=hit)
    return out


def compare_runs(baseline: Features, candidate: Features, reference: ReferenceStats, *, n_boot: int = 2000,
                 seed: int = 0, confidence: float = 0.95, device: str | torch.device = "cpu",
                 groups=None, mcse_target: float | None = None, n_boot_max: int | None = None) -> dict:
    """Paired bootstrap interval of FID(candidate) - FID(baseline) for two runs whose image i shares
    its class and seed (see `lsrs.evaluation.metrics.paired_bootstrap_fid`). `low` and `high` both below 0
    means the candidate (e.g. LSRS) beat the baseline beyond resampling noise. `groups`: the candidate
    images' scorer replicates, for the interval over images and replicates."""
    for f in (baseline, candidate):
        if f.extractor != reference.extractor:
            raise ReferenceMismatchError(f"features from {f.extractor}, reference from {reference.extractor}")
        if f.pool is None or len(f.pool) != f.count:
            raise ValueError("paired bootstrap needs the pool features of every image")
    if baseline.count != candidate.count:
        raise ValueError(f"paired runs must have the same images count, got {baseline.count} and {candidate.count}")
    return paired_bootstrap_fid(baseline.pool, candidate.pool, reference.pool, n_boot=n_boot, seed=seed,
                                confidence=confidence, device=device, groups=groups, mcse_target=mcse_target,
                                n_boot_max=n_boot_max)
