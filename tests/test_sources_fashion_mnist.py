"""Fashion-MNIST mosaic source on the installed Debian package: records, pixels rebuilt on demand,
determinism, the tag noise knobs, and bad options or files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from tagcode.data.sources import load_source
from tagcode.data.sources.fashion_mnist import CLASSES, neighbour_words
from tagcode.errors import TagcodeError

ROOT = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason="Debian dataset-fashion-mnist not installed")


def _official(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images = np.frombuffer(gzip.decompress((ROOT / f"{prefix}-images-idx3-ubyte.gz").read_bytes()), np.uint8, offset=16)
    labels = np.frombuffer(gzip.decompress((ROOT / f"{prefix}-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8)
    return images.reshape(-1, 28, 28), labels


def _quadrants(mosaic: np.ndarray) -> list[np.ndarray]:
    return [mosaic[y:y + 28, x:x + 28, 0] for y in (0, 28) for x in (0, 28)]


def test_records_and_mosaics() -> None:
    src = load_source("fashion_mnist", str(ROOT), n_train=40, n_query=8, seed=1)
    r = src.records
    assert len(r) == 48 and src.label_names == list(CLASSES) and src.blocked_tags == []
    assert r["image_id"].tolist() == [f"q{i:06d}" for i in range(8)] + [f"t{i:06d}" for i in range(40)]
    assert (r["origin"] == r["image_id"].str[0].map({"q": "test", "t": "train"})).all()
    assert r["image_uri"].tolist() == [f"fashion-mnist://{o}/{int(i[1:])}" for o, i in zip(r["origin"], r["image_id"],
                                                                                         strict=True)]
    assert r["labels"].map(lambda x: 1 <= len(x) <= 4 and len(set(x)) == len(x) and set(x) <= set(CLASSES)).all()
    vocab = set(src.vocabulary or [])
    assert r["tags"].map(lambda t: set(t) <= vocab).all()
    classes_of: dict[str, dict[bytes, set[str]]] = {}
    for split in ("train", "test"):
        images, labels = _official(split)
        classes_of[split] = {}
        for image, label in zip(images, labels, strict=True):
            classes_of[split].setdefault(image.tobytes(), set()).add(CLASSES[label])
    for _, row in r.iterrows():
        mosaic = src.loader(row["image_uri"])
        assert mosaic.shape == (56, 56, 3) and mosaic.dtype == np.uint8
        assert np.array_equal(mosaic[..., 0], mosaic[..., 2])
        found = set()
        for cell in range(4):
            y, x = divmod(cell, 2)
            quad = np.ascontiguousarray(mosaic[y * 28:(y + 1) * 28, x * 28:(x + 1) * 28, 0])
            if quad.any():
                match = classes_of[row["origin"]].get(quad.tobytes(), set())
                assert match & set(row["labels"]), f"{row['image_uri']}: cell {cell} is no {row['origin']} item"
                found |= match & set(row["labels"])
        assert sum(q.any() for q in _quadrants(mosaic)) == len(row["labels"]) and found == set(row["labels"])


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = load_source("fashion_mnist", str(ROOT), n_train=30, n_query=5, seed=3)
    b = load_source("fashion_mnist", str(ROOT), n_train=30, n_query=5, seed=3)
    c = load_source("fashion_mnist", str(ROOT), n_train=30, n_query=5, seed=4)
    assert a.records.equals(b.records) and not a.records["labels"].equals(c.records["labels"])
    uri = a.records["image_uri"].iloc[7]
    assert np.array_equal(a.loader(uri), b.loader(uri)) and not np.array_equal(a.loader(uri), c.loader(uri))


def test_tag_noise_knobs() -> None:
    lists = neighbour_words(20)
    assert [ws[0] for ws in lists][:3] == ["t-shirt", "trousers", "pullover"] and all(len(ws) == 20 for ws in lists)
    assert "strap" in lists[CLASSES.index("Sandal")] and "backpack" in lists[CLASSES.index("Bag")]
    word_sets = {CLASSES[i]: set(ws) for i, ws in enumerate(lists)}
    clean = load_source("fashion_mnist", str(ROOT), n_train=300, n_query=0, p_miss=0.0, p_noise=0.0)
    for tags, labels in zip(clean.records["tags"], clean.records["labels"], strict=True):
        allowed = set().union(*(word_sets[x] for x in labels))
        assert tags and set(tags) <= allowed and len(tags) <= 3 * len(labels)
        assert all(set(tags) & word_sets[x] for x in labels)
    silent = load_source("fashion_mnist", str(ROOT), n_train=50, n_query=0, p_miss=1.0, p_noise=0.0)
    assert silent.records["tags"].map(len).sum() == 0
    noisy = load_source("fashion_mnist", str(ROOT), n_train=4000, n_query=0, p_miss=1.0, p_noise=0.25,
                        max_noise_tags=2)
    assert noisy.records["tags"].map(len).mean() == pytest.approx(0.5, abs=0.05)
    miss = load_source("fashion_mnist", str(ROOT), n_train=4000, n_query=0, p_miss=0.4, p_noise=0.0,
                       tags_per_class=1)
    assert miss.records["tags"].map(len).sum() / miss.records["labels"].map(len).sum() == pytest.approx(0.6, abs=0.05)


@pytest.mark.parametrize(("options", "message"), [
    ({"p_miss": 1.5}, "p_miss and p_noise must lie in"),
    ({"tags_per_class": 0}, "tags_per_class must lie in"),
    ({"n_train": 0, "n_query": 0}, "not both 0"),
    ({"max_noise_tags": -1}, "max_noise_tags must be"),
    ({"n_train": "10"}, "option 'n_train' must be int, got str"),
    ({"seed": 1.5}, "option 'seed' must be int, got float"),
])
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(TagcodeError, match=message):
        load_source("fashion_mnist", str(ROOT), **options)


def test_bad_roots_and_uris(tmp_path: Path) -> None:
    with pytest.raises(TagcodeError, match=r"train-images-idx3-ubyte\.gz: not found \(apt-get install"):
        load_source("fashion_mnist", str(tmp_path))
    with pytest.raises(TagcodeError, match="reads the local Debian package files"):
        load_source("fashion_mnist", "s3://bucket/fashion")
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(TagcodeError, match=r"t10k-images-idx3-ubyte\.gz: not a readable gzip file"):
        load_source("fashion_mnist", str(tmp_path))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20))
    with pytest.raises(TagcodeError, match="size does not match its header"):
        load_source("fashion_mnist", str(tmp_path))
    src = load_source("fashion_mnist", str(ROOT), n_train=3, n_query=1)
    for uri in ("fashion-mnist://train/3", "fashion-mnist://val/0", "mnist://train/0", "fashion-mnist://train/x"):
        with pytest.raises(TagcodeError, match="not an image of this fashion_mnist dataset"):
            src.loader(uri)
