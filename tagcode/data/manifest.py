"""The manifest: one row per image, keyed by ``image_id``, written by ``prepare``.

Columns (parquet):

| column | type | meaning |
|---|---|---|
| image_id | str | unique id within the dataset |
| image_uri | str | where the pixels came from (local path or s3:// URI) |
| tags | list<str> | raw user tags, as the source gives them (weak supervision) |
| labels | list<str> | ground-truth label names (**evaluation only**) |
| split | str | ``query``, ``database`` or ``unused`` |
| train | bool | used for training (tags only); always a database image |

Training code reads the manifest through :func:`read_manifest`, which never loads the ``labels``
column; only :func:`read_labels` does, and only evaluation code calls it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tagcode.errors import LabelAccessError, TagcodeError, check_unique_ids
from tagcode.io import atomic_path

SPLITS = ("query", "database", "unused")
LABEL_COLUMN = "labels"
PUBLIC_COLUMNS = ("image_id", "image_uri", "tags", "split", "train")
SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("image_uri", pa.string()),
        ("tags", pa.list_(pa.string())),
        (LABEL_COLUMN, pa.list_(pa.string())),
        ("split", pa.string()),
        ("train", pa.bool_()),
    ]
)
_META_KEY = b"tagcode"


@dataclass(frozen=True)
class Manifest:
    """The label-free view of a manifest that training-side code works with."""

    frame: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> None:
        """Ground truth is not reachable from here: use :func:`read_labels` in evaluation code."""
        raise LabelAccessError("labels are evaluation-only; read them with tagcode.data.manifest.read_labels")

    @property
    def ids(self) -> np.ndarray:
        """All image ids, in manifest order."""
        return self.frame["image_id"].to_numpy(dtype=object)

    def ids_of(self, role: str) -> np.ndarray:
        """Image ids of a role: ``train``, ``query``, ``database`` or ``unused``."""
        if role == "train":
            mask = self.frame["train"].to_numpy(dtype=bool)
        elif role in SPLITS:
            mask = (self.frame["split"] == role).to_numpy()
        else:
            raise TagcodeError(f"unknown split role {role!r}; known: train, {', '.join(SPLITS)}")
        return self.frame.loc[mask, "image_id"].to_numpy(dtype=object)


def validate_frame(df: pd.DataFrame, where: str) -> None:
    """Check the manifest invariants; raise a one-line TagcodeError naming ``where``."""
    missing = [c for c in SCHEMA.names if c not in df.columns]
    if missing:
        raise TagcodeError(f"{where}: manifest lacks columns {missing}")
    check_unique_ids(df["image_id"], where)
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad:
        raise TagcodeError(f"{where}: unknown split values {bad}; expected {list(SPLITS)}")
    if (df["train"] & (df["split"] != "database")).any():
        raise TagcodeError(f"{where}: training images must be database images")


def write_manifest(path: str | Path, df: pd.DataFrame, meta: dict[str, Any] | None = None) -> None:
    """Validate and write a manifest (with its labels) atomically; ``meta`` goes in the schema metadata."""
    validate_frame(df, str(path))
    frame = df[list(SCHEMA.names)].copy()
    for col in ("tags", LABEL_COLUMN):
        frame[col] = [list(map(str, v)) for v in frame[col]]
    table = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata({_META_KEY: json.dumps(meta or {}, sort_keys=True).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _open(path: str | Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise TagcodeError(f"{path}: manifest not found (run `tagcode prepare` first)") from None
    except pa.ArrowInvalid as exc:
        raise TagcodeError(f"{path}: not a readable parquet manifest ({exc})") from None


def _meta(pf: pq.ParquetFile) -> dict[str, Any]:
    raw = (pf.schema_arrow.metadata or {}).get(_META_KEY)
    return json.loads(raw) if raw else {}


def read_manifest(path: str | Path) -> Manifest:
    """Read the manifest without its labels (the view for training-side code)."""
    pf = _open(path)
    table = pf.read(columns=list(PUBLIC_COLUMNS))
    frame = table.to_pandas()
    frame["tags"] = [list(v) if v is not None else [] for v in frame["tags"]]
    return Manifest(frame=frame, meta=_meta(pf))


def read_labels(path: str | Path, image_ids: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Evaluation only: multi-hot labels ``(n, L)`` uint8 for ``image_ids`` (default: all rows).

    The column order is ``meta['label_names']`` when the source declared it, else sorted names.
    """
    pf = _open(path)
    table = pf.read(columns=["image_id", LABEL_COLUMN]).to_pandas()
    names = _meta(pf).get("label_names") or sorted({x for v in table[LABEL_COLUMN] for x in v})
    col = {n: j for j, n in enumerate(names)}
    by_id = dict(zip(table["image_id"], table[LABEL_COLUMN], strict=True))
    ids = list(table["image_id"]) if image_ids is None else list(image_ids)
    out = np.zeros((len(ids), len(names)), dtype=np.uint8)
    for i, image_id in enumerate(ids):
        try:
            row = by_id[image_id]
        except KeyError:
            raise TagcodeError(f"{path}: no labels for image id {image_id!r}") from None
        for name in row:
            out[i, col[name]] = 1
    return out, list(names)
