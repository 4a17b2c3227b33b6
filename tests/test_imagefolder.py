"""ImageNet-style folder reader: preprocessing, deterministic crops, subsets, fingerprints, extraction."""
import numpy as np
import pytest
import torch
from PIL import Image

from lsrs.data.fashion_mnist import DataMissingError
from lsrs.data.imagefolder import FolderImages, preprocess
from lsrs.models import VQVAE, TokenizerConfig
from lsrs.tokens.store import TokenStore
from lsrs.tokens.writers import extract_real

SIZES = [(40, 30), (30, 52), (36, 36)]


def make_tree(root):
    rng = np.random.default_rng(0)
    for c, name in enumerate(["n02", "n01"]):  # sorted: n01 -> label 0
        (root / name).mkdir(parents=True)
        for j, (w, h) in enumerate(SIZES):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name / f"img{j}.png")
        (root / name / "notes.txt").write_text("not an image")
    return root


def test_scan_labels_and_preprocessing(tmp_path):
    root = make_tree(tmp_path / "train")
    data = FolderImages.open(root, size=16, crop="center")
    assert len(data) == 6 and data.num_classes == 2 and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.files[0].parent.name == "n01"
    x = data.as_float(slice(0, 6))
    assert x.shape == (6, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    # center crop by hand: shorter side to 18 with Lanczos, middle 16x16
    with Image.open(data.files[0]) as im:
        im = im.convert("RGB").resize((24, 18), Image.LANCZOS)
    ref = np.asarray(im, dtype=np.float32)[1:17, 4:20] / 127.5 - 1
    torch.testing.assert_close(x[0], torch.from_numpy(ref).permute(2, 0, 1))


def test_random_crops_are_seeded_per_image_and_stable_under_subsets(tmp_path):
    root = make_tree(tmp_path / "train")
    a = FolderImages.open(root, size=16, crop="random", seed=3)
    assert torch.equal(a.as_float(slice(0, 6)), FolderImages.open(root, size=16, crop="random", seed=3).as_float(slice(0, 6)))
    assert not torch.equal(a.as_float(slice(0, 6)), FolderImages.open(root, size=16, crop="random", seed=4).as_float(slice(0, 6)))
    sub, index = a.first_per_class(2)
    assert index.tolist() == [0, 1, 3, 4]
    assert torch.equal(sub.as_float(slice(2, 3)), a.as_float(slice(3, 4)))  # same image, same crop
    x = preprocess(a.files[1], 16, "random", (0.999, 0.999))  # last valid corner stays in bounds
    assert x.shape == (3, 16, 16)


def test_missing_or_empty_tree_and_fingerprint(tmp_path):
    with pytest.raises(DataMissingError, match="ImageNet-style"):
        FolderImages.open(tmp_path / "nowhere")
    (tmp_path / "empty" / "n01").mkdir(parents=True)
    with pytest.raises(DataMissingError, match="no images"):
        FolderImages.open(tmp_path / "empty")
    root = make_tree(tmp_path / "train")
    before = FolderImages.open(root, size=16).fingerprint()
    assert before == FolderImages.open(root, size=16).fingerprint() != FolderImages.open(root, size=16, seed=1).fingerprint()
    Image.new("RGB", (50, 50)).save(root / "n01" / "img0.png")
    assert FolderImages.open(root, size=16).fingerprint() != before


def test_extract_from_a_folder_tree(tmp_path):
    root = make_tree(tmp_path / "train")
    torch.manual_seed(0)
    vae = VQVAE(TokenizerConfig(vocab_size=64, z_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, in_channels=3,
                                patch_nums=(1, 2, 4, 8), norm_groups=4, use_attn=False)).eval()
    data, index = FolderImages.open(root, size=16, crop="random").first_per_class(2)
    store = extract_real(vae, data, tmp_path / "real", {"source": "tree"}, ids=index, shard_size=3, log=lambda m: None)
    expect = torch.cat(vae.img_to_idx(data.as_float(slice(0, 4))), 1).numpy()
    assert np.array_equal(np.asarray(TokenStore.open(tmp_path / "real").tokens), expect)
    assert store.ids.tolist() == [0, 1, 3, 4] and store.labels.tolist() == [0, 0, 1, 1]


def test_as_uint8_matches_as_float(tmp_path):
    images = FolderImages.open(make_tree(tmp_path / "tree"), size=24, crop="random", seed=3)
    x = images.as_uint8(torch.tensor([4, 0, 2]))
    ref = images.as_float(slice(0, 5))[[4, 0, 2]]
    assert x.dtype == torch.uint8 and torch.equal(x, ref.add(1).mul(127.5).round().to(torch.uint8))
    assert torch.allclose(x.float() / 127.5 - 1, ref, atol=1e-6)
