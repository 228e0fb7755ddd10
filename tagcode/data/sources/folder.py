"""Bring your own data: a directory (local or ``s3://bucket/prefix``) of images plus a tags file.

``tags.jsonl`` (one object per line) or ``tags.csv`` at the root, or any file named by ``tags_file``:

- JSONL: ``{"image": "cats/1.jpg", "tags": ["cat", "sofa"], "labels": ["cat"], "image_id": "c1"}``;
- CSV: columns ``image``, ``tags``, optional ``labels`` and ``image_id``; tags and labels separated by
  ``tag_sep`` (default ``|``, so tags may contain commas and spaces).

``image`` is relative to the root; ``image_id`` defaults to it without the extension; ``labels``
(evaluation only) may be omitted. Rows with no tags are kept. A listed image missing on disk or in S3 is a
reported skip; a duplicate image id, a non-UTF-8 or empty tags file is a one-line error.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath

from tagcode.data.sources._text import read_text
from tagcode.data.sources.base import SOURCES, SourceData, make_records
from tagcode.errors import TagcodeError
from tagcode.io import exists, join, list_files


def _split(value: object, sep: str) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value or "").split(sep) if v.strip()]


@SOURCES.register("folder")
def folder(root: str, tags_file: str | None = None, tag_sep: str = "|") -> SourceData:
    """Read images and tags from a folder dataset."""
    if tags_file is None:
        found = [n for n in ("tags.jsonl", "tags.csv") if exists(join(root, n))]
        if not found:
            raise TagcodeError(f"{root}: no tags.jsonl or tags.csv found (or pass the tags_file option)")
        tags_file = found[0]
    uri = tags_file if "/" in tags_file and not tags_file.startswith(".") else join(root, tags_file)
    text = read_text(uri)
    if uri.endswith(".jsonl"):
        entries = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise TagcodeError(f"{uri}:{i}: not valid JSON ({exc.msg})") from None
    else:
        entries = list(csv.DictReader(io.StringIO(text)))
    present = set(list_files(root))
    rows, skipped = [], []
    for i, e in enumerate(entries, 1):
        if not isinstance(e, dict) or not e.get("image"):
            raise TagcodeError(f"{uri}: entry {i} has no 'image'")
        image_uri = join(root, e["image"])
        if image_uri not in present:
            skipped.append((image_uri, "image missing"))
            continue
        rows.append({"image_id": str(e.get("image_id") or posixpath.splitext(e["image"])[0]),
                     "image_uri": image_uri, "tags": _split(e.get("tags"), tag_sep),
                     "labels": _split(e.get("labels"), tag_sep)})
    if not rows:
        raise TagcodeError(f"{uri}: none of the {len(entries)} listed images exists under {root}")
    records = make_records(rows, uri)
    return SourceData(records=records, label_names=sorted({x for v in records["labels"] for x in v}),
                      skipped=skipped)
