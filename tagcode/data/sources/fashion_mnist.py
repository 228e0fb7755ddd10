"""Fashion-MNIST mosaics (Debian ``dataset-fashion-mnist``): the scale track with controlled tag noise.

Each image is a 2×2 mosaic (56×56) of 1–4 Fashion-MNIST items of distinct classes; its labels are those
classes (multi-label). Tags: for each class present, 1–3 words drawn from that class's top-k GloVe
neighbours (``tags_per_class``, ``top_k``), each dropped with ``p_miss``; then up to ``max_noise_tags``
random vocabulary words, each added with ``p_noise``. Database/training mosaics come from the official
train split, queries (``n_query``) from the official test split, recorded in ``origin`` for the
``official`` split protocol. Pixels are regenerated on demand (``fashion-mnist://<split>/<i>``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from tagcode.data.sources.base import SOURCES, SourceData, make_records
from tagcode.errors import TagcodeError

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
CLASS_WORDS = ("shirt", "trousers", "sweater", "dress", "coat", "sandal", "blouse", "sneaker", "bag", "boot")


def _idx(path: Path, offset: int) -> np.ndarray:
    try:
        return np.frombuffer(gzip.open(path).read(), np.uint8, offset=offset)
    except FileNotFoundError:
        raise TagcodeError(f"{path}: not found (apt-get install dataset-fashion-mnist)") from None


def neighbour_words(top_k: int, vocab_limit: int = 50_000) -> list[list[str]]:
    """Each class word's ``top_k`` nearest GloVe words among the ``vocab_limit`` most frequent."""
    from tagcode.tags.vectors import load_vectors

    kv = load_vectors("glove-6b-50d")
    words = kv.index_to_key[:vocab_limit]
    m = kv.vectors[:vocab_limit] / np.linalg.norm(kv.vectors[:vocab_limit], axis=1, keepdims=True)
    out = []
    for w in CLASS_WORDS:
        sims = m @ (kv[w] / np.linalg.norm(kv[w]))
        order = [words[i] for i in np.argsort(-sims) if words[i] != w and words[i].isalpha()]
        out.append([w, *order[: top_k - 1]])
    return out


@SOURCES.register("fashion_mnist")
def fashion_mnist(root: str = "/usr/share/datasets/fashion-mnist", n_train: int = 20_000, n_query: int = 2_000,
                  seed: int = 0, p_miss: float = 0.4, p_noise: float = 0.25, max_noise_tags: int = 2,
                  tags_per_class: int = 3, top_k: int = 20) -> SourceData:
    """Build the mosaic dataset (records only; pixels come from the loader)."""
    base = Path(root)
    splits = {
        "train": (_idx(base / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
                  _idx(base / "train-labels-idx1-ubyte.gz", 8)),
        "test": (_idx(base / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
                 _idx(base / "t10k-labels-idx1-ubyte.gz", 8)),
    }
    rng = np.random.default_rng(seed)
    neighbours = neighbour_words(top_k)
    noise_pool = sorted({w for ws in neighbours for w in ws})
    by_class = {s: [np.flatnonzero(y == c) for c in range(10)] for s, (_, y) in splits.items()}
    cells: dict[str, list[tuple[int, int]]] = {}
    rows = []
    for split, n, prefix in (("train", n_train, "t"), ("test", n_query, "q")):
        for i in range(n):
            classes = rng.choice(10, size=int(rng.integers(1, 5)), replace=False)
            positions = rng.choice(4, size=len(classes), replace=False)
            uri = f"fashion-mnist://{split}/{i}"
            cells[uri] = [(int(p), int(rng.choice(by_class[split][c])))
                          for p, c in zip(positions, classes, strict=True)]
            tags = []
            for c in classes:
                k = int(rng.integers(1, tags_per_class + 1))
                tags += [w for w in rng.choice(neighbours[c], size=k, replace=False) if rng.random() >= p_miss]
            tags += [str(w) for w in rng.choice(noise_pool, size=max_noise_tags) if rng.random() < p_noise]
            rows.append({"image_id": f"{prefix}{i:06d}", "image_uri": uri, "tags": sorted(set(map(str, tags))),
                         "labels": sorted(CLASSES[c] for c in classes), "origin": split})

    def loader(uri: str) -> np.ndarray:
        """Regenerate the 56×56 grey mosaic of ``uri`` as RGB."""
        split = uri.split("/")[2]
        mosaic = np.zeros((56, 56), np.uint8)
        for pos, k in cells[uri]:
            r, c = divmod(pos, 2)
            mosaic[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] = splits[split][0][k]
        return np.repeat(mosaic[..., None], 3, axis=2)

    return SourceData(records=make_records(rows, root), label_names=sorted(CLASSES), loader=loader)
