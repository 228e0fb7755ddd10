"""What every dataset source returns, the registry of sources, and helpers the sources share."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd

from tagcode.errors import TagcodeError
from tagcode.io import is_s3, list_files, read_bytes
from tagcode.registry import Registry

RECORD_COLUMNS = ("image_id", "image_uri", "tags", "labels")
S3_READERS = 16
_T = TypeVar("_T")
_R = TypeVar("_R")
_DIGITS = re.compile(r"(\d+)")


@dataclass
class SourceData:
    """A dataset read from its native layout, ready for the prepare stage.

    ``records`` has one row per image: ``image_id`` (unique str), ``image_uri`` (local path, s3:// URI or a
    synthetic URI the ``loader`` understands), ``tags`` (raw user tags) and ``labels`` (ground-truth label
    names, evaluation only); a source with an official query split adds ``origin`` (``train``/``test``).
    ``skipped`` lists ``(item, reason)`` for every input item that did not become a record; ``notes`` lists
    ``(item, note)`` for items that were used but read with a fallback (a tag file decoded as Latin-1, an
    image kept with no tags), so a count of skips never includes them.
    """

    records: pd.DataFrame
    label_names: list[str]
    vocabulary: list[str] | None = None
    blocked_tags: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    loader: Callable[[str], bytes | np.ndarray] = read_bytes


SOURCES: Registry[SourceData] = Registry("dataset source")


def natural_key(image_id: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs numerically ("im2" < "im10", "9" < "10")."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _DIGITS.split(image_id) if p)


def unique(items: Iterable[str]) -> list[str]:
    """The items without repeats, first occurrence first."""
    return list(dict.fromkeys(items))


def make_records(rows: list[dict], where: str, skipped: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The records frame, sorted by ``natural_key(image_id)``, tags de-duplicated.

    A repeated image id is a one-line error naming ``where``; when ``skipped`` is given instead, the first
    row (in input order) is kept and each repeat is reported there.
    """
    seen: set[str] = set()
    kept = []
    for row in rows:
        if row["image_id"] in seen:
            if skipped is None:
                raise TagcodeError(f"{where}: duplicate image id {row['image_id']!r}")
            skipped.append((row["image_uri"], f"duplicate image id {row['image_id']!r}; first kept"))
            continue
        seen.add(row["image_id"])
        kept.append({**row, "tags": unique(row["tags"])})
    kept.sort(key=lambda r: natural_key(r["image_id"]))
    extra = sorted({k for r in kept for k in r} - set(RECORD_COLUMNS))
    return pd.DataFrame(kept, columns=[*RECORD_COLUMNS, *extra])


def io_map(fn: Callable[[_T], _R], items: Sequence[_T], root: str) -> list[_R]:
    """``[fn(x) for x in items]``, on a thread pool when ``root`` is in S3 (one request per object)."""
    if not is_s3(root):
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=S3_READERS) as pool:
        return list(pool.map(fn, items))


def relative_files(root: str) -> dict[str, str]:
    """Every file under a local directory or S3 prefix: ``{path relative to root, with /: full path/URI}``."""
    if is_s3(root):
        prefix = root.rstrip("/") + "/"
        return {uri[len(prefix):]: uri for uri in list_files(root)}
    return {os.path.relpath(p, root).replace(os.sep, "/"): p for p in list_files(root)}


def _type_problem(value: object, default: object) -> str | None:
    """Why ``value`` cannot stand in for an option whose default is ``default`` (None when it can)."""
    if default is None or isinstance(default, list | tuple | dict):
        return None
    kind = type(default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    return None if ok else f"must be {kind.__name__}, got {type(value).__name__} {value!r}"


def load_source(name: str, root: str, **options: object) -> SourceData:
    """Read dataset ``name`` at ``root``; an unknown or mistyped option is a one-line error."""
    params = inspect.signature(SOURCES.get(name)).parameters
    accepted = [p for p in params if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TagcodeError(f"source {name!r}: unknown option(s) {unknown}; accepted: {accepted}")
    for key, value in options.items():
        problem = _type_problem(value, params[key].default)
        if problem:
            raise TagcodeError(f"source {name!r}: option {key!r} {problem}")
    return SOURCES.create(name, root=str(root), **options)
