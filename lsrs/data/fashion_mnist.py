"""Image data: the Fashion-MNIST IDX reader of the mini profile.

The Debian package ``dataset-fashion-mnist`` installs the four gzipped IDX files under
/usr/share/datasets/fashion-mnist. Images are 28x28 uint8; we pad them to 32x32 with the background
value (0) so that a tokenizer with 4x downsampling gives an 8x8 latent.
"""
from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class DataMissingError(FileNotFoundError):
    """A data folder or file is missing; the message says what to install or where to put it."""


def _open_idx(path: Path) -> bytes:
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            opener = gzip.open if candidate.suffix == ".gz" else open
            with opener(candidate, "rb") as fh:
                return fh.read()
    raise DataMissingError(
        f"Fashion-MNIST file {path.name}(.gz) not found in {path.parent}. Install the Debian package "
        f"`dataset-fashion-mnist` (apt-get install dataset-fashion-mnist, which fills {DEFAULT_FASHION_MNIST}) "
        f"or set data.root in params.yaml to a folder holding the four IDX files.")


def parse_idx(raw: bytes) -> np.ndarray:
    """Decode an IDX file (big-endian header: 0, 0, dtype code, ndim, then the dims)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"IDX file truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


@dataclass
class ImageSet:
    """uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)

    def as_float(self, index) -> torch.Tensor:
        """Images at `index` scaled to [-1, 1], the range the VQ-VAE sees."""
        return self.images[index].float().div_(127.5).sub_(1.0)

    def first_per_class(self, n: int | None) -> tuple["ImageSet", torch.Tensor]:
        """The first n images of every class (in dataset order) and their dataset indices; n=None keeps all."""
        if n is None:
            return self, torch.arange(len(self))
        keep = torch.zeros(len(self), dtype=torch.bool)
        for c in range(self.num_classes):
            keep[(self.labels == c).nonzero().flatten()[:n]] = True
        idx = keep.nonzero().flatten()
        return ImageSet(self.images[idx], self.labels[idx], self.num_classes), idx


def load_fashion_mnist(root: str | Path = DEFAULT_FASHION_MNIST, split: str = "train", pad_to: int = 32,
                       limit: int | None = None) -> ImageSet:
    """Read one split ('train' or 'test'), padded to pad_to x pad_to."""
    if split not in _FILES:
        raise ValueError(f"split must be one of {sorted(_FILES)}, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataMissingError(
            f"Fashion-MNIST folder {root} does not exist. Install the Debian package `dataset-fashion-mnist` "
            f"(apt-get install dataset-fashion-mnist) or set data.root in params.yaml.")
    img_name, lbl_name = _FILES[split]
    images = parse_idx(_open_idx(root / img_name))
    labels = parse_idx(_open_idx(root / lbl_name)).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} images but {len(labels)} labels in split {split}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    pad = pad_to - images.shape[-1]
    if pad < 0 or pad % 2:
        raise ValueError(f"cannot pad {images.shape[-1]}px images to {pad_to}px symmetrically")
    x = torch.from_numpy(np.pad(images, ((0, 0), (pad // 2, pad // 2), (pad // 2, pad // 2)))).unsqueeze(1)
    return ImageSet(images=x.contiguous(), labels=torch.from_numpy(labels.copy()), num_classes=10)
