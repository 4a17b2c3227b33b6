"""Sample files in the ADM evaluator's format: a .npz whose `arr_0` holds uint8 images (N, H, W, C).

This is what VAR, LlamaGen and LSRS hand to OpenAI's guided-diffusion evaluator, so our sample files
can be scored by it unchanged, and reference batches such as VIRTUAL_imagenet256_labeled.npz are read
with the same code.

* Quantisation: generators output floats in [0, 1]; we store round(255 x) after clamping. VAR's demo
  truncates (x * 255 -> uint8), which darkens every pixel by half a level on average; rounding is the
  unbiased choice and is recorded here as ours.
* Channels: stored as generated. Mini images stay grayscale (C = 1): they are scored by our own
  classifier, and ADM's TF Inception is meaningless on Fashion-MNIST anyway; `rgb=True` replicates
  them to 3 channels for tools that insist on RGB. Our Inception extractor replicates C = 1 itself.
* Order: kept as given (image i of a run is the image of per-image seed i), which is what paired
  comparisons between runs need. ADM's IS splits the file in order, so a class-ordered file must be
  scored with a shuffle (`lsrs.evaluation.metrics.inception_score` does) or shuffled before ADM sees it.
* Extra keys are allowed and ignored by ADM: we add `labels` (int64) when known.

Files are streamed in both directions (`SamplesWriter`, `iter_samples`): 50,000 ImageNet images are
9.8 GB of uint8, so neither side needs them in memory at once. Writes go to a temporary file that is
renamed at the end, so an interrupted run never leaves a truncated .npz behind.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

ARRAY_KEY = "arr_0"


def to_uint8(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) tensor from float images in [0, 1] (rounded, clamped) or from uint8."""
    x = torch.as_tensor(images)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x
    if not x.dtype.is_floating_point:
        raise TypeError(f"images must be uint8 or float in [0, 1], got {x.dtype}")
    return x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)


def nhwc_to_nchw(x: np.ndarray) -> torch.Tensor:
    """uint8 NHWC (or NHW grayscale) array -> contiguous uint8 NCHW tensor."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, C), got {x.dtype} {x.shape}")
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


class SamplesWriter:
    """Stream images into an ADM-format .npz of a known size. Use as a context manager:

        with SamplesWriter(path, count=50_000, height=256, width=256, channels=3) as w:
            for images, labels in batches:   # float [0, 1] or uint8, (B, C, H, W)
                w.add(images, labels)

    The file appears at `path` only when exactly `count` images were added and the block exits
    without an exception.
    """

    def __init__(self, path: str | Path, count: int, height: int, width: int, channels: int = 3,
                 rgb: bool = False):
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.path = Path(path)
        self.rgb = rgb and channels == 1
        self.shape = (count, height, width, 3 if self.rgb else channels)
        self.written = 0
        self.labels: list[np.ndarray] = []
        self.tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        self.zip = self.member = None

    def __enter__(self) -> "SamplesWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.member = self.zip.open(f"{ARRAY_KEY}.npy", "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                  "shape": self.shape}
        np.lib.format.write_array_header_1_0(self.member, header)
        return self

    def add(self, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | None = None) -> None:
        x = to_uint8(images)
        if self.rgb:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[1:]) != (self.shape[3], self.shape[1], self.shape[2]):
            raise ValueError(f"images of shape {tuple(x.shape[1:])} (C, H, W) do not fit the file's "
                             f"{(self.shape[3], self.shape[1], self.shape[2])}")
        if self.written + len(x) > self.shape[0]:
            raise ValueError(f"more than the announced {self.shape[0]} images")
        if labels is not None:
            labels = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64)
            if labels.shape != (len(x),):
                raise ValueError(f"{len(x)} images but labels of shape {labels.shape}")
            self.labels.append(labels)
        elif self.labels:
            raise ValueError("labels were given for earlier batches but not for this one")
        self.member.write(x.permute(0, 2, 3, 1).contiguous().cpu().numpy().tobytes())
        self.written += len(x)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.member.close()
            complete = exc_type is None and self.written == self.shape[0]
            if complete and self.labels:
                with self.zip.open("labels.npy", "w") as fh:
                    np.lib.format.write_array(fh, np.concatenate(self.labels))
            self.zip.close()
            if exc_type is None and not complete:
                raise ValueError(f"{self.path}: {self.written} images written, {self.shape[0]} announced")
            if complete:
                os.replace(self.tmp, self.path)
        finally:
            if self.tmp.exists():
                self.tmp.unlink()


def write_samples(path: str | Path, images: torch.Tensor | np.ndarray,
                  labels: torch.Tensor | np.ndarray | None = None, rgb: bool = False) -> Path:
    """Write (N, C, H, W) float [0, 1] or uint8 images (and labels) as an ADM-format .npz."""
    x = to_uint8(images)
    n, c, h, w = x.shape
    with SamplesWriter(path, n, h, w, c, rgb=rgb) as writer:
        writer.add(x, labels)
    return Path(path)


def _open_array(zf: zipfile.ZipFile, key: str):
    """(file object positioned at the data, shape, dtype) of member `key`.npy."""
    name = f"{key}.npy"
    if name not in zf.namelist():
        raise KeyError(f"{zf.filename} has no array {key!r} (found {[n[:-4] for n in zf.namelist()]})")
    fh = zf.open(name)
    version = np.lib.format.read_magic(fh)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(fh)
    if fortran:
        fh.close()
        raise ValueError(f"{zf.filename}:{key} is stored in Fortran order, which is not supported")
    return fh, shape, dtype


def samples_shape(path: str | Path) -> tuple[int, ...]:
    """Shape of `arr_0` (N, H, W, C) without reading the images."""
    with zipfile.ZipFile(path) as zf:
        fh, shape, _ = _open_array(zf, ARRAY_KEY)
        fh.close()
    return tuple(shape)


def iter_samples(path: str | Path, batch_size: int = 256) -> Iterator[np.ndarray]:
    """uint8 NHWC batches of `arr_0`, read sequentially from the zip (constant memory)."""
    with zipfile.ZipFile(path) as zf:
        fh, shape, dtype = _open_array(zf, ARRAY_KEY)
        with fh:
            if dtype != np.uint8:
                raise ValueError(f"{path}: {ARRAY_KEY} must be uint8 images, found {dtype}")
            per_image = int(np.prod(shape[1:]))
            for start in range(0, shape[0], batch_size):
                b = min(batch_size, shape[0] - start)
                raw = fh.read(b * per_image)
                if len(raw) != b * per_image:
                    raise ValueError(f"{path}: {ARRAY_KEY} is truncated")
                yield np.frombuffer(raw, np.uint8).reshape((b,) + tuple(shape[1:]))


def read_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(images uint8 (N, H, W, C), labels (N,) or None) of a sample file."""
    with np.load(path) as data:
        images = data[ARRAY_KEY]
        labels = data["labels"] if "labels" in data.files else None
    if images.dtype != np.uint8:
        raise ValueError(f"{path}: {ARRAY_KEY} must be uint8 images, found {images.dtype}")
    return images, labels


def atomic_savez(path: str | Path, **arrays) -> Path:
    """np.savez to a temporary file beside `path`, then rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
