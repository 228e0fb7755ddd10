"""What every dataset source returns, and the registry of sources."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tagcode.errors import TagcodeError
from tagcode.io import read_bytes
from tagcode.registry import Registry

RECORD_COLUMNS = ("image_id", "image_uri", "tags", "labels")


@dataclass
class SourceData:
    """A dataset read from its native layout.

    ``records`` has one row per image: ``image_id`` (unique str), ``image_uri`` (local path, s3:// URI or a
    synthetic URI the ``loader`` understands), ``tags`` (raw user tags) and ``labels`` (ground-truth label
    names, evaluation only); a source may add ``origin`` (its official split: ``train``/``test``).
    """

    records: pd.DataFrame
    label_names: list[str]
    vocabulary: list[str] | None = None
    blocked_tags: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    loader: Callable[[str], bytes | np.ndarray] = read_bytes


SOURCES: Registry[SourceData] = Registry("dataset source")


def make_records(rows: list[dict], where: str) -> pd.DataFrame:
    """Build the records frame; duplicate image ids are a one-line error naming ``where``."""
    frame = pd.DataFrame(rows, columns=[*RECORD_COLUMNS, *sorted({k for r in rows for k in r} - set(RECORD_COLUMNS))])
    dup = frame["image_id"][frame["image_id"].duplicated()]
    if len(dup):
        raise TagcodeError(f"{where}: duplicate image id {dup.iloc[0]!r}")
    return frame


def load_source(name: str, root: str, **options: object) -> SourceData:
    """Read dataset ``name`` at ``root``; an option the source does not take is a one-line error."""
    fn = SOURCES.get(name)
    accepted = [p for p in inspect.signature(fn).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TagcodeError(f"source {name!r}: unknown option(s) {unknown}; accepted: {accepted}")
    return fn(root=root, **options)
