"""Bring your own data: a directory (local or ``s3://bucket/prefix``) of images plus one tags file.

The tags file is ``tags.jsonl`` or ``tags.csv`` at the root (exactly one of them), or the file named by the
``tags_file`` option (relative to the root, or an absolute path / s3:// URI); its extension picks the format:

- ``.jsonl``: one object per line, ``{"image": "cats/1.jpg", "tags": ["cat", "sofa"], "labels": ["cat"],
  "image_id": "c1"}``; ``tags`` and ``labels`` are lists (a string is split on ``tag_sep``);
- ``.csv`` (or ``.tsv``, tab-delimited): a header row with the columns ``image``, ``tags`` and optionally
  ``labels`` and ``image_id``; tags and labels are joined by ``tag_sep`` (default ``|``, so a tag may
  contain commas and spaces: ``new york|sky``).

``image`` is a path relative to the root; ``image_id`` defaults to that path without its extension;
``labels`` (ground truth, evaluation only) may be omitted, and ``label_names`` is then empty. Tags are
stripped, empty ones dropped, repeats removed; rows with no tags are kept. Records are sorted by
``image_id`` (digit runs numerically). A listed image that is missing on disk or in S3, or whose path
leaves the root, is a reported skip; a tags file that is not UTF-8 is read as Latin-1 and reported as a note
naming its first non-UTF-8 line; a duplicate image id, a malformed line (named by its line number), or a
tags file that is missing or empty is a one-line error naming the file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath

from tagcode.data.sources._text import read_text
from tagcode.data.sources.base import SOURCES, SourceData, make_records, relative_files
from tagcode.errors import TagcodeError
from tagcode.io import is_s3, join

DEFAULT_FILES = ("tags.jsonl", "tags.csv")
FORMATS = {".jsonl": "jsonl", ".csv": ",", ".tsv": "\t"}


def _tags_uri(root: str, tags_file: str | None, files: dict[str, str]) -> str:
    """Where the tags file is: the option, or the one default name present at the root."""
    if tags_file is not None:
        return tags_file if is_s3(tags_file) or os.path.isabs(tags_file) else join(root, tags_file)
    found = [files[n] for n in DEFAULT_FILES if n in files]
    if not found:
        raise TagcodeError(f"{root}: no tags.jsonl or tags.csv found (or name the file with the tags_file option)")
    if len(found) > 1:
        raise TagcodeError(f"{root}: both tags.jsonl and tags.csv exist; choose one with the tags_file option")
    return found[0]


class _Lines:
    """An iterator over a text's lines that remembers the number of the last line handed out, so a CSV
    error can name the line the parser was reading (``csv.reader.line_num`` lags behind on errors)."""

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text, newline=""))
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        return line


def _entries(uri: str, text: str) -> list[tuple[int, dict]]:
    """``(line number, entry)`` pairs of a JSONL or CSV/TSV tags file (a CSV entry's first line)."""
    kind = FORMATS.get(posixpath.splitext(uri)[1].lower())
    if kind is None:
        raise TagcodeError(f"{uri}: unknown tags file type (expected {', '.join(FORMATS)})")
    if kind == "jsonl":
        out = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TagcodeError(f"{uri}:{i}: not valid JSON at column {exc.colno}: {exc.msg}") from None
                if not isinstance(entry, dict):
                    raise TagcodeError(f"{uri}:{i}: expected a JSON object, got {type(entry).__name__}")
                out.append((i, entry))
        return out
    lines = _Lines(text)
    reader = csv.DictReader(lines, delimiter=kind, strict=True)
    out = []
    try:
        if "image" not in (reader.fieldnames or []):
            raise TagcodeError(f"{uri}: the header has no 'image' column (found {reader.fieldnames})")
        start = lines.number + 1
        for row in reader:
            out.append((start, row))
            start = lines.number + 1
    except csv.Error as exc:
        raise TagcodeError(f"{uri}:{lines.number}: not valid CSV ({exc})") from None
    return out


def _names(value: object, sep: str, where: str) -> list[str]:
    """A tags/labels field as a list of stripped, non-empty names."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(sep)
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise TagcodeError(f"{where}: tags and labels must be lists of strings")
    return [s for s in (str(v).strip() for v in value) if s]


@SOURCES.register("folder")
def folder(root: str, tags_file: str | None = None, tag_sep: str = "|") -> SourceData:
    """Read a folder of images described by a JSONL or CSV tags file."""
    if not tag_sep:
        raise TagcodeError("folder: option 'tag_sep' must not be empty")
    files = relative_files(root)
    uri = _tags_uri(root, tags_file, files)
    notes: list[tuple[str, str]] = []
    entries = _entries(uri, read_text(uri, notes))
    if not entries:
        raise TagcodeError(f"{uri}: no entries")
    rows, skipped = [], []
    for line, entry in entries:
        where = f"{uri}:{line}"
        image = entry.get("image")
        if not isinstance(image, str) or not image.strip():
            raise TagcodeError(f"{where}: no 'image' path")
        rel = posixpath.normpath(image.strip().replace("\\", "/"))
        if rel.startswith(("../", "/")) or rel == ".." or "://" in rel:
            skipped.append((image, "image path is not inside the root"))
            continue
        if rel not in files:
            skipped.append((join(root, rel), "image missing"))
            continue
        image_id = entry.get("image_id")
        rows.append({"image_id": str(image_id).strip() if image_id not in (None, "") else posixpath.splitext(rel)[0],
                     "image_uri": files[rel], "tags": _names(entry.get("tags"), tag_sep, where),
                     "labels": _names(entry.get("labels"), tag_sep, where)})
    if not rows:
        raise TagcodeError(f"{uri}: none of the {len(entries)} listed images exists under {root}")
    records = make_records(rows, uri)
    return SourceData(records=records, label_names=sorted({x for v in records["labels"] for x in v}),
                      skipped=skipped, notes=notes)
