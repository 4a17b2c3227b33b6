"""Feature extractors registered with torch-fidelity, and the one-pass, disk-cached feature computation.

Two extractors, each reading three roles from one forward pass:

| role    | metric        | mini (our classifier, `lsrs.training.evaluator`) | paper (Inception-v3, ADM conventions)       |
|---------|---------------|-----------------------------------------|---------------------------------------------|
| pool    | FID, P/R      | `hidden`: 128-d penultimate layer       | `2048`: pool_3                              |
| spatial | sFID          | `spatial`: 7 ch of the 8x8 map, 448-d   | `mixed_6_conv_7ch`: 7 ch of 17x17, 2023-d   |
| logits  | IS            | `logits`: 10 classes                    | `logits_unbiased`: pool_3 @ W^T, 1008, no bias |

The paper extractor is torch-fidelity's `inception-v3-compat` (TF-exact resize and normalisation)
plus ADM's sFID feature: ADM reads `mixed_6/conv:0`, which torch-fidelity's weight converter maps
to `Mixed_6d.branch1x1`; like ADM we keep its first 7 channels and flatten channels-last (NHWC),
because the stored reference `mu_s/sigma_s` were computed in that layout. Its weights come from a
local file only (`weights-inception-2015-12-05-6726825d.pth`); nothing is ever downloaded.

Stale features are impossible by construction: every extractor is registered under a name that ends
with a digest of its weights file, the extractor refuses a weights file whose digest differs from
its name, and cached features are keyed by (extractor name, digest of the image data). Registration
writes into torch-fidelity's registry (a process-wide table we do not own); it is idempotent.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np
import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from torch_fidelity.utils import create_feature_extractor
from tqdm import tqdm

from lsrs.core.checkpoint import atomic_save
from lsrs.training.evaluator import CONFIG_NAME, WEIGHTS_NAME, load_evaluator
from lsrs.evaluation.metrics import Gaussian, GaussianAccumulator
from lsrs.core.npz import iter_samples, nhwc_to_nchw, samples_shape, to_uint8

INCEPTION_WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
DIGEST_CHARS = 16
CACHE_FORMAT = 1

ImageInput = Union[torch.Tensor, np.ndarray, str, Path, Iterable[torch.Tensor]]


class ExtractorWeightsError(FileNotFoundError):
    """A feature extractor's weights file is missing or is not the file its name was made from."""


def file_digest(path: str | Path, chunk: int = 1 << 22) -> str:
    """blake2b digest (hex, DIGEST_CHARS long) of a file's bytes."""
    h = hashlib.blake2b(digest_size=DIGEST_CHARS // 2)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verified_weights(name: str, path, what: str, hint: str) -> Path:
    """The weights path handed to an extractor, checked to exist and to match the digest in `name`."""
    if path is None:
        raise ExtractorWeightsError(f"{what}: no weights file given (feature_extractor_weights_path); {hint}")
    path = Path(path)
    if not path.is_file():
        raise ExtractorWeightsError(f"{what}: weights file {path} not found; {hint}")
    digest = file_digest(path)
    if not name.endswith(f"-{digest}"):
        raise ExtractorWeightsError(f"{what}: {path} has digest {digest}, but the extractor {name!r} was "
                                    "registered for other weights; register this file with its own name")
    return path


# --------------------------------------------------------------------------- extractors
class MiniFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity wrapper of the mini evaluator (uint8 (B, 1 or 3, 32, 32) input)."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        path = _verified_weights(name, feature_extractor_weights_path, "mini evaluator",
                                 f"train it with lsrs.training.evaluator.train_evaluator ({WEIGHTS_NAME} + {CONFIG_NAME})")
        self.net = load_evaluator(path)

    def forward(self, x):
        hidden, spatial, logits = self.net.features(self.net.preprocess(x))
        out = {"hidden": hidden, "spatial": spatial, "logits": logits}
        return tuple(out[n] for n in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "hidden", "spatial", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "hidden", "kid": "hidden", "prc": "hidden"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 32, 32, dtype=torch.uint8)


class InceptionADMFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity's Inception-v3 (TF-compatible) plus ADM's 2023-d sFID feature.

    The network is torch-fidelity's own module (`self.net`); the spatial feature is read with a
    forward hook on Mixed_6d.branch1x1 during the same pass. A spatial-only request still runs the
    net through Mixed_6e (the '768' read-out), so the hook always fires.
    """

    SPATIAL = "mixed_6_conv_7ch"
    SPATIAL_CHANNELS = 7

    def __init__(self, name, features_list, feature_extractor_weights_path=None,
                 feature_extractor_internal_dtype=None, **kwargs):
        super().__init__(name, features_list)
        path = _verified_weights(
            name, feature_extractor_weights_path, "Inception-v3 (paper profile)",
            f"expected torch-fidelity's converted TF Inception weights, file name {INCEPTION_WEIGHTS_NAME} "
            "(torch-fidelity release v0.2.0); place it locally and pass its path - it is never downloaded")
        base = [f for f in features_list if f != self.SPATIAL] or ["768"]
        self.net = FeatureExtractorInceptionV3(name, base, feature_extractor_weights_path=str(path),
                                               feature_extractor_internal_dtype=feature_extractor_internal_dtype)

    def forward(self, x):
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        grabbed = []
        hook = self.net.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: grabbed.append(o))
        try:
            out = dict(zip(self.net.features_list, self.net(x)))
        finally:
            hook.remove()
        if self.SPATIAL in self.features_list:
            out[self.SPATIAL] = grabbed[0][:, :self.SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1).float()
        return tuple(out[n] for n in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return FeatureExtractorInceptionV3.get_provided_features_list() + (InceptionADMFeatureExtractor.SPATIAL,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return FeatureExtractorInceptionV3.get_default_feature_layer_for_metric(metric)

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 299, 299, dtype=torch.uint8)


@dataclass(frozen=True)
class Extractor:
    """A torch-fidelity feature extractor bound to one weights file, and which features play which role."""

    name: str  # registered name; ends with the weights digest
    weights_path: str
    pool: str
    spatial: str
    logits: str
    internal_dtype: str | None = None  # Inception only: 'float64' makes features batch-size independent

    @property
    def layers(self) -> tuple[str, str, str]:
        return self.pool, self.spatial, self.logits

    def fidelity_kwargs(self) -> dict:
        """kwargs that make torch_fidelity.calculate_metrics use this extractor and its roles."""
        kw = {"feature_extractor": self.name, "feature_extractor_weights_path": self.weights_path,
              "feature_layer_fid": self.pool, "feature_layer_prc": self.pool, "feature_layer_kid": self.pool,
              "feature_layer_isc": self.logits}
        if self.internal_dtype:
            kw["feature_extractor_internal_dtype"] = self.internal_dtype
        return kw

    def create(self, device: str | torch.device = "cpu") -> FeatureExtractorBase:
        """The torch-fidelity module computing all three roles, in eval mode on `device`."""
        kw = {"feature_extractor_internal_dtype": self.internal_dtype} if self.internal_dtype else {}
        fe = create_feature_extractor(self.name, list(self.layers), cuda=False, verbose=False,
                                      feature_extractor_weights_path=self.weights_path, **kw)
        return fe.to(device)


def _register(name: str, cls: type) -> None:
    known = FEATURE_EXTRACTORS_REGISTRY.get(name)
    if known is None:
        register_feature_extractor(name, cls)
    elif known is not cls:
        raise ValueError(f"feature extractor name {name!r} is already registered to {known.__name__}")


def mini_extractor(evaluator: str | Path) -> Extractor:
    """Register the mini evaluator in `evaluator` (folder with evaluator.pth/.json, or the .pth)."""
    path = Path(evaluator)
    path = path / WEIGHTS_NAME if path.is_dir() else path
    if not path.is_file():
        raise ExtractorWeightsError(f"mini evaluator weights {path} not found; train it with "
                                    "lsrs.training.evaluator.train_evaluator")
    name = f"lsrs-mini-evaluator-{file_digest(path)}"
    _register(name, MiniFeatureExtractor)
    return Extractor(name, str(path), pool="hidden", spatial="spatial", logits="logits")


def inception_extractor(weights_path: str | Path, internal_dtype: str | None = None) -> Extractor:
    """Register Inception-v3 (ADM conventions) with the local weights file `weights_path`."""
    path = Path(weights_path)
    if not path.is_file():
        raise ExtractorWeightsError(
            f"Inception weights {path} not found. The paper profile needs torch-fidelity's converted TF "
            f"Inception-2015-12-05 weights, {INCEPTION_WEIGHTS_NAME} (95,742,779 bytes, from torch-fidelity's "
            "GitHub release v0.2.0), as a local file; it is never downloaded.")
    name = f"inception-v3-adm-{file_digest(path)}"
    _register(name, InceptionADMFeatureExtractor)
    return Extractor(name, str(path), pool="2048", spatial=InceptionADMFeatureExtractor.SPATIAL,
                     logits="logits_unbiased", internal_dtype=internal_dtype)


# --------------------------------------------------------------------------- image inputs
def image_batches(images: ImageInput, batch_size: int) -> tuple[Iterator[torch.Tensor], int | None]:
    """(iterator of uint8 (B, C, H, W) batches, image count or None) for any accepted input:
    a tensor (float [0, 1] or uint8, NCHW), a uint8 NHWC numpy array, a sample .npz path, or an
    iterable of NCHW batches (e.g. a class-folder reader). Conversion happens batch by batch."""
    if isinstance(images, (str, Path)):
        return (nhwc_to_nchw(b) for b in iter_samples(images, batch_size)), samples_shape(images)[0]
    if isinstance(images, np.ndarray):
        return (nhwc_to_nchw(images[s:s + batch_size]) for s in range(0, len(images), batch_size)), len(images)
    if isinstance(images, torch.Tensor):
        return (to_uint8(images[s:s + batch_size]) for s in range(0, len(images), batch_size)), len(images)
    return (to_uint8(b) for b in images), None


def data_digest(images: ImageInput) -> str | None:
    """Content digest of an image input (None for iterables: they can be read only once)."""
    if isinstance(images, (str, Path)):
        return "npz-" + file_digest(images)
    if isinstance(images, np.ndarray):
        prefix, x = "nhwc-", np.ascontiguousarray(images)
    elif isinstance(images, torch.Tensor):
        prefix, x = "nchw-", to_uint8(images).contiguous().cpu().numpy()
    else:
        return None
    h = hashlib.blake2b(f"{x.dtype}{x.shape}".encode(), digest_size=DIGEST_CHARS // 2)
    h.update(x.data)
    return prefix + h.hexdigest()


# --------------------------------------------------------------------------- one feature pass
@dataclass(frozen=True)
class Features:
    """What one pass over an image set keeps: per-image pool features (P/R, bootstrap) and logits (IS),
    and the Gaussians of the pool and spatial features (FID, sFID). Spatial features are reduced to
    their Gaussian on the fly (2023-d x 50k would be 400 MB)."""

    extractor: str
    count: int
    pool: torch.Tensor | None  # float32 (count or fewer, D)
    logits: torch.Tensor | None  # float32 (count, classes)
    pool_stats: Gaussian
    spatial_stats: Gaussian
    replicate: torch.Tensor | None = None  # (count,) scorer replicate of each image (LSRS runs with replicates)


@torch.no_grad()
def compute_features(images: ImageInput, extractor: Extractor, *, batch_size: int = 200,
                     device: str | torch.device = "cpu", keep_pool: int | None = None, keep_logits: bool = True,
                     desc: str = "features") -> Features:
    """One pass of `extractor` over `images`. `keep_pool` limits the per-image pool features kept
    (the first ones; None keeps all), e.g. for the P/R subset of a large reference set."""
    fe = extractor.create(device)
    batches, total = image_batches(images, batch_size)
    pool_acc, spatial_acc = GaussianAccumulator(), GaussianAccumulator()
    pools, logits, count = [], [], 0
    bar = tqdm(total=total, desc=desc, unit="img", leave=False)
    for batch in batches:
        out = dict(zip(fe.features_list, fe(batch.to(device))))
        pool, spatial = out[extractor.pool], out[extractor.spatial]
        pool_acc.add(pool)
        spatial_acc.add(spatial)
        if keep_pool is None or count < keep_pool:
            pools.append(pool[:None if keep_pool is None else keep_pool - count].float().cpu())
        if keep_logits:
            logits.append(out[extractor.logits].float().cpu())
        count += len(batch)
        bar.update(len(batch))
    bar.close()
    if count == 0:
        raise ValueError("no images to compute features of")
    return Features(extractor=extractor.name, count=count, pool=torch.cat(pools),
                    logits=torch.cat(logits) if keep_logits else None,
                    pool_stats=pool_acc.result(), spatial_stats=spatial_acc.result())


def cache_path(cache_dir: str | Path, extractor: Extractor, data_key: str) -> Path:
    return Path(cache_dir) / f"{extractor.name}--{data_key}.pt"


def save_features(features: Features, path: str | Path) -> None:
    g = lambda s: {"mu": torch.from_numpy(s.mu), "sigma": torch.from_numpy(s.sigma), "count": s.count}  # noqa: E731
    atomic_save({"format": CACHE_FORMAT, "extractor": features.extractor, "count": features.count,
                 "pool": features.pool, "logits": features.logits,
                 "pool_stats": g(features.pool_stats), "spatial_stats": g(features.spatial_stats),
                 "replicate": features.replicate}, path)


def load_features(path: str | Path) -> Features:
    d = torch.load(path, map_location="cpu", weights_only=True)
    if d.get("format") != CACHE_FORMAT:
        raise ValueError(f"{path}: unknown feature cache format {d.get('format')}")
    g = lambda s: Gaussian(s["mu"].numpy(), s["sigma"].numpy(), int(s["count"]))  # noqa: E731
    return Features(d["extractor"], int(d["count"]), d["pool"], d["logits"], g(d["pool_stats"]),
                    g(d["spatial_stats"]), d.get("replicate"))


def cached_features(images: ImageInput, extractor: Extractor, *, cache_dir: str | Path | None = None,
                    data_key: str | None = None, batch_size: int = 200, device: str | torch.device = "cpu",
                    desc: str = "features") -> tuple[Features, bool]:
    """(features of all images, whether they came from the cache).

    The cache file is `{cache_dir}/{extractor name}--{data key}.pt`; the data key is the digest of
    the pixels (tensor/array) or of the .npz file, or `data_key` for iterables (no caching without
    one). Both parts change whenever the weights or the images do, so a hit is always valid.
    """
    key = data_key or data_digest(images)
    path = cache_path(cache_dir, extractor, key) if cache_dir and key else None
    if path is not None and path.is_file():
        return load_features(path), True
    feats = compute_features(images, extractor, batch_size=batch_size, device=device, desc=desc)
    if path is not None:
        save_features(feats, path)
    return feats, False
