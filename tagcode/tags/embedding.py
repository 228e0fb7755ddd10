"""The reader of the embed_tags outputs: final tag vectors, their names, and the image × final-tag matrix.

The embed_tags stage writes ``tag_embeddings.npy`` (T × D float32, row t ↔ final tag t),
``final_vocab.parquet`` (final_id, tag, members, count) and ``image_tags.npz`` (a TagMatrix over the same
final tags, in the same order); this is the one place that reads them back and checks they agree.
Named variants (other word vectors, no graph or merge) live in ``variants/<name>/`` of the same output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagcode.errors import TagcodeError
from tagcode.tags.matrix import TagMatrix, load_tag_matrix


@dataclass(frozen=True)
class TagEmbedding:
    """Final tag vectors ``(T, D)`` float32, their names ``(T,)`` and the image × final-tag matrix."""

    vectors: np.ndarray
    names: tuple[str, ...]
    matrix: TagMatrix


def read_embedding(path: str | Path, variant: str | None = None) -> TagEmbedding:
    """Read an embed_tags output directory (or its named ``variant``); missing files or disagreeing shapes are
    one-line errors."""
    path = Path(path)
    if variant is not None:
        if not (path / "variants" / variant).is_dir():
            known = sorted(p.name for p in (path / "variants").glob("*")) if (path / "variants").is_dir() else []
            raise TagcodeError(f"{path}: no embedding variant {variant!r} (embed_tags variants: "
                               f"{', '.join(known) or 'none'})")
        path = path / "variants" / variant
    try:
        vectors = np.load(path / "tag_embeddings.npy", allow_pickle=False)
    except FileNotFoundError:
        raise TagcodeError(f"{path}: no tag_embeddings.npy (run `tagcode embed-tags` first)") from None
    except ValueError as exc:
        raise TagcodeError(f"{path / 'tag_embeddings.npy'}: not a readable .npy array ({exc})") from None
    matrix = load_tag_matrix(path / "image_tags.npz")
    if vectors.ndim != 2 or len(vectors) != len(matrix.tags) or matrix.matrix.shape[1] != len(vectors):
        raise TagcodeError(f"{path}: {vectors.shape} tag vectors do not match the {len(matrix.tags)} tags of "
                           "image_tags.npz")
    if not np.isfinite(vectors).all():
        raise TagcodeError(f"{path / 'tag_embeddings.npy'}: NaN/inf tag vector")
    return TagEmbedding(vectors=vectors.astype(np.float32), names=tuple(str(t) for t in matrix.tags),
                        matrix=matrix)
