"""The image×tag matrix artifact: which (cleaned or merged) tags each image carries, keyed by image id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from tagcode.errors import TagcodeError
from tagcode.io import atomic_path


@dataclass(frozen=True)
class TagMatrix:
    """A sparse 0/1 ``(n_images, n_tags)`` matrix with row ids, column tag names and the training mask.

    ``train`` marks images that are training images *and* carry at least one tag: images left without
    tags stay in the database but cannot supervise anything.
    """

    ids: np.ndarray
    tags: np.ndarray
    matrix: sp.csr_matrix
    train: np.ndarray

    def rows(self, image_ids: np.ndarray) -> sp.csr_matrix:
        """Rows for ``image_ids`` in that order; an unknown id is a one-line error."""
        pos = {i: k for k, i in enumerate(self.ids)}
        try:
            return self.matrix[[pos[i] for i in image_ids]]
        except KeyError as exc:
            raise TagcodeError(f"image id {exc.args[0]!r} has no row in the tag matrix") from None


def save_tag_matrix(path: str | Path, tm: TagMatrix) -> None:
    """Write a TagMatrix as one compressed .npz, atomically."""
    m = sp.csr_matrix(tm.matrix, dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, ids=np.asarray(tm.ids, dtype=str), tags=np.asarray(tm.tags, dtype=str),
                            data=m.data, indices=m.indices, indptr=m.indptr, shape=np.asarray(m.shape),
                            train=np.asarray(tm.train, dtype=bool))


def load_tag_matrix(path: str | Path) -> TagMatrix:
    """Read a TagMatrix written by :func:`save_tag_matrix`."""
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TagcodeError(f"{path}: tag matrix not found (run the previous stage first)") from None
    m = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    return TagMatrix(ids=z["ids"].astype(object), tags=z["tags"].astype(object), matrix=m, train=z["train"])
