"""Image data of both profiles: Fashion-MNIST (mini, IDX files of the Debian package) and an
ImageNet class-folder tree (paper, read lazily), chosen by the `data` params section."""
from __future__ import annotations

from dataclasses import dataclass

from lsrs.data.fashion_mnist import DEFAULT_FASHION_MNIST, FASHION_CLASSES, DataMissingError, ImageSet, load_fashion_mnist

DATASETS = ("fashion-mnist", "imagenet")  # imagenet: data.root is a class-folder tree (ILSVRC2012 train)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "fashion-mnist"
    root: str = "/usr/share/datasets/fashion-mnist"
    image_size: int = 32
    train_limit: int | None = None  # use only the first N training images (tests, smoke runs)
    test_limit: int | None = None  # use only the first N test images (validation sets; tests, smoke runs)
    crop: str = "random"  # imagenet: 'random' (the authors' RandomCrop, offsets seeded per image) or 'center'
    crop_seed: int = 0

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r} (known: {', '.join(DATASETS)})")
        for key, limit in (("train_limit", self.train_limit), ("test_limit", self.test_limit)):
            if limit is not None and limit < 1:
                raise ValueError(f"{key} must be >= 1 or null, got {limit}")
        if self.crop not in ("random", "center"):
            raise ValueError(f"crop must be 'random' or 'center', got {self.crop!r}")


def load_split(cfg: DataConfig, split: str = "train"):
    """The images of `split`: an in-memory ImageSet (Fashion-MNIST) or a lazy FolderImages (ImageNet tree)."""
    if cfg.dataset == "imagenet":
        from lsrs.data.imagefolder import FolderImages

        if split != "train":
            raise ValueError("the imagenet dataset reads one class-folder tree (data.root); only split 'train' exists")
        return FolderImages.open(cfg.root, size=cfg.image_size, crop=cfg.crop, seed=cfg.crop_seed)
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    return load_fashion_mnist(cfg.root, split, pad_to=cfg.image_size, limit=limit)


__all__ = ["DataConfig", "DATASETS", "ImageSet", "DataMissingError", "load_fashion_mnist", "load_split",
           "DEFAULT_FASHION_MNIST", "FASHION_CLASSES"]
