"""TrainSet: everything a method may learn from, built from the stage outputs, with no labels by construction.

A method sees the training image ids, their frozen features (or the decoded-image cache for end-to-end
training), the image × final-tag matrix and the final tag vectors from ``embed_tags``. Ground-truth labels
live only in the manifest's labels column, which nothing here reads (``read_manifest`` never loads it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from tagcode.data.cache import ImageCache
from tagcode.errors import TagcodeError


@dataclass(frozen=True)
class TrainSet:
    """Training ids and their inputs: ``features`` (n, d) and/or ``images``, plus ``tags`` (n, T) over the final
    tags whose vectors are ``tag_vectors`` (T, D). Unsupervised methods need only the features."""

    ids: np.ndarray
    features: np.ndarray | None = None
    images: ImageCache | None = None
    tags: sp.csr_matrix | None = None
    tag_vectors: np.ndarray | None = None
    tag_names: tuple[str, ...] | None = None
    image_rows: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids).astype(str).astype(object)
        object.__setattr__(self, "ids", ids)
        n = len(ids)
        if self.features is not None:
            x = np.asarray(self.features, dtype=np.float32)
            if x.ndim != 2 or len(x) != n:
                raise TagcodeError(f"training features must be ({n}, d), got shape {x.shape}")
            object.__setattr__(self, "features", x)
        if self.tags is not None:
            tags = sp.csr_matrix(self.tags, dtype=np.float32)
            tags.sum_duplicates()
            tags.data[:] = 1.0
            if tags.shape[0] != n:
                raise TagcodeError(f"the tag matrix has {tags.shape[0]} rows for {n} training images")
            if self.tag_vectors is None or len(self.tag_vectors) != tags.shape[1]:
                raise TagcodeError(f"the tag matrix has {tags.shape[1]} tags but "
                                   f"{'no' if self.tag_vectors is None else len(self.tag_vectors)} tag vectors")
            object.__setattr__(self, "tags", tags)
        rows = self.images.index_of(ids) if self.images is not None else np.empty(0, dtype=np.int64)
        object.__setattr__(self, "image_rows", rows)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_features(cls, x: np.ndarray) -> TrainSet:
        """A label- and tag-free training set of features ``x``, rows numbered as ids (for library use)."""
        return cls(ids=np.arange(len(x)), features=x)

    def require(self, who: str, *what: str) -> None:
        """A one-line error naming what ``who`` needs (``features``, ``images``, ``tags``) and lacks."""
        missing = [w for w in what if getattr(self, w) is None]
        if missing:
            hint = {"tags": "give the train stage the embed_tags output (--embed data/embed)",
                    "images": "give the train stage the prepared image cache",
                    "features": "give the train stage the features output (--features data/features)"}
            raise TagcodeError(f"{who} needs training {missing[0]}: {hint[missing[0]]}")

    def tag_lists(self) -> list[np.ndarray]:
        """Per image, its sorted, de-duplicated final tag indices (empty for an image without tags)."""
        self.require("tag_lists", "tags")
        t = self.tags
        return [t.indices[a:b].copy() for a, b in zip(t.indptr[:-1], t.indptr[1:], strict=True)]

    def tagged(self) -> np.ndarray:
        """Row positions of the images that carry at least one final tag (the ones tags can supervise)."""
        self.require("tagged", "tags")
        return np.flatnonzero(np.diff(self.tags.indptr) > 0)

    def subset(self, rows: np.ndarray) -> TrainSet:
        """The training set restricted to row positions ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return TrainSet(ids=self.ids[rows], features=None if self.features is None else self.features[rows],
                        images=self.images, tags=None if self.tags is None else self.tags[rows],
                        tag_vectors=self.tag_vectors, tag_names=self.tag_names)

    def images_of(self, rows: np.ndarray) -> np.ndarray:
        """uint8 ``(len(rows), S, S, 3)`` images of training rows ``rows`` from the image cache."""
        self.require("images_of", "images")
        return self.images.get(self.image_rows[np.asarray(rows, dtype=np.int64)])


def load_trainset(prepared: str | Path, *, features: str | Path | None = None, embed: str | Path | None = None,
                  embedding: str | None = None, images: bool = False) -> TrainSet:
    """The TrainSet of a prepared dataset: its training ids (``train`` in the manifest) with their features,
    image cache (``images=True``) and, from an embed_tags output (its named variant ``embedding``), tags and
    tag vectors. No labels are read."""
    from tagcode.data.features import features_for
    from tagcode.data.manifest import read_manifest
    from tagcode.tags.embedding import read_embedding

    manifest = read_manifest(Path(prepared) / "manifest.parquet")
    ids = manifest.ids_of("train")
    if len(ids) == 0:
        raise TagcodeError(f"{prepared}: the split has no training images")
    x = features_for(features, ids)[0] if features is not None else None
    cache = ImageCache(Path(prepared) / "images") if images else None
    tags = vectors = names = None
    if embed is not None:
        emb = read_embedding(embed, embedding)
        tags, vectors, names = emb.matrix.rows(ids), emb.vectors, emb.names
    return TrainSet(ids=ids, features=x, images=cache, tags=tags, tag_vectors=vectors, tag_names=names)
