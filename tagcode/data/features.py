"""The features reader: ``features.npy`` + ``ids.json`` written by the features stage, looked up by image id.

Stages that only read features (train, encode) import this module, not the torch extraction code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tagcode.errors import TagcodeError, check_unique_ids
from tagcode.io import read_json


def read_features(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, X)`` from a features directory: ids an object array of str, X float32 ``(n, dim)``; missing
    files, a row/id count mismatch, duplicate ids and NaN/inf values are one-line errors."""
    path = Path(path)
    try:
        x = np.load(path / "features.npy", mmap_mode="r")
    except FileNotFoundError:
        raise TagcodeError(f"{path}: no features.npy (run `tagcode features` first)") from None
    except ValueError as exc:
        raise TagcodeError(f"{path / 'features.npy'}: not a readable .npy array ({exc})") from None
    if x.ndim != 2 or x.dtype != np.float32:
        raise TagcodeError(f"{path / 'features.npy'}: expected a float32 (n, dim) array, got {x.dtype} {x.shape}")
    ids = np.asarray([str(i) for i in read_json(path / "ids.json")], dtype=object)
    if len(ids) != len(x):
        raise TagcodeError(f"{path}: ids.json has {len(ids)} ids for {len(x)} feature rows")
    check_unique_ids(ids, path / "ids.json")
    x = np.array(x)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise TagcodeError(f"{path}: NaN/inf feature for image {ids[int(np.argmax(~finite))]!r}")
    return ids, x


def features_for(path: str | Path, *id_sets: np.ndarray) -> list[np.ndarray]:
    """Feature rows for each set of image ids (by id, never by position), from one read of the features;
    an unknown id is a one-line error."""
    ids, x = read_features(path)
    pos = {i: k for k, i in enumerate(ids)}
    out = []
    for image_ids in id_sets:
        missing = [i for i in image_ids if i not in pos]
        if missing:
            raise TagcodeError(f"{path}: no features for {len(missing)} images, e.g. {missing[0]!r}")
        out.append(x[[pos[i] for i in image_ids]])
    return out
