"""What a dataset root holds, as one small JSON file: the dependency that re-runs ``prepare`` under DVC when
the dataset changes, and the fingerprint that tells result sets from different data apart.

Local roots are listed with each file's size and modification time (reading every byte of a large image
set would cost more than preparing it); S3 prefixes with each object's size and ETag. The listing itself
is reduced to a SHA-256 digest, so the file stays small and changes exactly when the contents do.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tagcode.errors import TagcodeError
from tagcode.io import _s3_error, atomic_open, is_s3, s3_client, split_s3


def _local_entries(root: str) -> Iterable[tuple[str, int, str]]:
    """``(relative path, size, mtime in ns)`` of every file below ``root``, symlinks followed (not cycles)."""
    base = Path(root)
    if not base.is_dir():
        raise TagcodeError(f"{root}: directory not found")
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:  # a symlink cycle: do not walk it again
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                fst = path.stat()
            except OSError:
                continue  # a broken symlink: the sources report it
            yield path.relative_to(base).as_posix(), fst.st_size, str(fst.st_mtime_ns)


def _s3_entries(root: str) -> Iterable[tuple[str, int, str]]:
    """``(key relative to the prefix, size, ETag)`` of every object below an S3 prefix."""
    bucket, prefix = split_s3(root.rstrip("/") + "/")
    try:
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                yield o["Key"][len(prefix):], int(o["Size"]), str(o["ETag"]).strip('"')
    except TagcodeError:
        raise
    except Exception as exc:
        raise _s3_error(root, exc) from None


def dataset_listing(root: str) -> dict[str, Any]:
    """``{root, kind, files, bytes, sha256}``: the digest covers every file's path, size and mtime (local) or
    ETag (S3), in sorted order."""
    entries = sorted(_s3_entries(root) if is_s3(root) else _local_entries(root))
    digest = hashlib.sha256()
    for rel, size, stamp in entries:
        digest.update(f"{rel}\t{size}\t{stamp}\n".encode())
    return {"root": str(root), "kind": "s3-etag" if is_s3(root) else "local-size-mtime", "files": len(entries),
            "bytes": sum(e[1] for e in entries), "sha256": digest.hexdigest()}


def write_listing(root: str, path: str | Path) -> dict[str, Any]:
    """Write :func:`dataset_listing` of ``root`` to ``path`` atomically, only when it changed (so the file's
    own mtime moves only with the data); return it."""
    listing = dataset_listing(root)
    text = json.dumps(listing, indent=2, sort_keys=True) + "\n"
    p = Path(path)
    if not (p.is_file() and p.read_text(encoding="utf-8") == text):
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(p, "w", encoding="utf-8") as fh:
            fh.write(text)
    return listing


def ids_digest(ids: Sequence[str]) -> str:
    """SHA-256 of an ordered list of image ids (one per line): equal digests mean the same images in the same
    order."""
    digest = hashlib.sha256()
    for i in ids:
        digest.update(f"{i}\n".encode())
    return digest.hexdigest()


def split_fingerprint(dataset: dict[str, Any], query_ids: Sequence[str], database_ids: Sequence[str]) -> dict:
    """What a set of metrics was measured on: the dataset (source, root, protocol, as in the manifest's
    metadata) and digests of the query and database ids. Two cells are comparable only when these are equal."""
    keys = ("source", "root", "protocol")
    return {"dataset": {k: dataset.get(k) for k in keys},
            "query": {"n": len(query_ids), "sha256": ids_digest(query_ids)},
            "database": {"n": len(database_ids), "sha256": ids_digest(database_ids)}}
