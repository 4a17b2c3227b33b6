"""ImageNet-style class-folder trees (`root/<class>/<image>`), read lazily with VAR's preprocessing.

The paper profile's real images. Classes are the sorted sub-folder names (ImageNet's n01440764 ...
order, so labels equal the usual 0..999 ids); files are sorted within each class. Images are read
only when a batch asks for them, so a 1.28M-image tree never sits in memory.

Preprocessing (the official VAR/LSRS data code): shorter side resized with Lanczos to
round(1.125 * size) (288 for 256), then a size x size crop, pixels scaled to [-1, 1]. The authors
crop at random (RandomCrop); we keep that option but draw the offset of image i from (seed, i), so a
rerun or a resumed extraction crops exactly the same pixels. `crop="center"` is the evaluation crop.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lsrs.data.fashion_mnist import DataMissingError

EXTENSIONS = (".jpeg", ".jpg", ".png", ".webp", ".bmp")
CROPS = ("random", "center")


def scan(root: str | Path) -> tuple[list[str], list[Path], np.ndarray]:
    """(class names, image paths, labels) of a class-folder tree; a clear error if it is not one."""
    root = Path(root)
    if not root.is_dir():
        raise DataMissingError(f"image folder {root} does not exist: point data.root at an ImageNet-style tree "
                               f"(root/<class>/<image>.JPEG, e.g. ILSVRC2012 train)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in EXTENSIONS)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataMissingError(f"{root} holds no images in class sub-folders (looked for {', '.join(EXTENSIONS)})")
    return classes, files, np.asarray(labels, dtype=np.int64)


def preprocess(path: Path, size: int, crop: str, offset_u: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    """(3, size, size) float in [-1, 1]: Lanczos resize of the shorter side to 1.125 * size, then crop.

    offset_u are two uniforms in [0, 1) choosing the crop's top-left corner (center: 0.5, 0.5).
    """
    with Image.open(path) as im:
        im = im.convert("RGB")
        short = round(1.125 * size)
        scale = short / min(im.size)
        im = im.resize((max(short, round(im.width * scale)), max(short, round(im.height * scale))), Image.LANCZOS)
    if crop == "random":  # every top-left corner in [0, W - size] x [0, H - size] equally likely
        left, top = int(offset_u[0] * (im.width - size + 1)), int(offset_u[1] * (im.height - size + 1))
    else:
        left, top = (im.width - size) // 2, (im.height - size) // 2
    arr = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1).div_(127.5).sub_(1.0)


@dataclass
class FolderImages:
    """The ImageSet interface (len, labels, num_classes, as_float, first_per_class) over a folder tree."""

    root: Path
    files: list[Path]
    labels: torch.Tensor
    num_classes: int
    size: int = 256
    crop: str = "random"
    seed: int = 0
    index: torch.Tensor | None = None  # positions in the full tree (the crop seed word); None: 0..N-1

    @classmethod
    def open(cls, root: str | Path, size: int = 256, crop: str = "random", seed: int = 0) -> "FolderImages":
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
        classes, files, labels = scan(root)
        return cls(Path(root), files, torch.from_numpy(labels), len(classes), size, crop, seed)

    def __len__(self) -> int:
        return len(self.files)

    def _offset(self, i: int) -> tuple[float, float]:
        """Crop uniforms of image i from (seed, its position in the full tree): stable under subsetting."""
        word = i if self.index is None else int(self.index[i])
        u = np.random.default_rng([self.seed, word]).random(2)
        return float(u[0]), float(u[1])

    def as_float(self, index: slice) -> torch.Tensor:
        """Images at `index` (a slice) preprocessed, (B, 3, size, size) in [-1, 1]."""
        ids = range(*index.indices(len(self)))
        return torch.stack([preprocess(self.files[i], self.size, self.crop, self._offset(i)) for i in ids])

    def as_uint8(self, ids) -> torch.Tensor:
        """Images at the integer indices `ids`, (B, 3, size, size) uint8 (what feature extractors read);
        exact, as the preprocessed pixels are whole numbers before scaling."""
        x = torch.stack([preprocess(self.files[int(i)], self.size, self.crop, self._offset(int(i))) for i in ids])
        return x.add(1.0).mul(127.5).round().to(torch.uint8)

    def first_per_class(self, n: int | None) -> tuple["FolderImages", torch.Tensor]:
        """The first n images of every class and their indices in the tree; n=None keeps all."""
        if n is None:
            return self, torch.arange(len(self))
        keep = torch.cat([(self.labels == c).nonzero().flatten()[:n] for c in range(self.num_classes)]).sort().values
        sub = FolderImages(self.root, [self.files[i] for i in keep], self.labels[keep], self.num_classes,
                           self.size, self.crop, self.seed, index=keep)
        return sub, keep

    def fingerprint(self) -> str:
        """sha256 of the relative paths, sizes, labels and preprocessing: cheap, and changes with the data."""
        h = hashlib.sha256(f"{self.size}|{self.crop}|{self.seed}".encode())
        for path, label in zip(self.files, self.labels.tolist()):
            h.update(f"{path.relative_to(self.root)}|{path.stat().st_size}|{label}\n".encode())
        return h.hexdigest()
