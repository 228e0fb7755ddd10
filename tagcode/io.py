"""Local and S3 paths, and atomic writes, so a killed stage never leaves a half-written artifact.

An ``s3://`` output is written to a local staging directory first and then published: the previous
``_SUCCESS`` marker is removed, the files are uploaded, stale objects deleted, and a new marker listing
every file (size and ETag) is written last. Readers (:func:`fetch`) accept only what a marker lists, so
they never see a half-uploaded output. Every S3 call retries transient failures with exponential backoff
(botocore's ``standard`` mode, ``TAGCODE_S3_ATTEMPTS`` attempts, 5 by default).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from tagcode.errors import TagcodeError, one_line

S3_PREFIX = "s3://"
MARKER = "_SUCCESS"  # written last by publish(); lists the published files


def is_s3(uri: str | os.PathLike[str]) -> bool:
    """True when ``uri`` names an object store location (``s3://bucket/key``)."""
    return str(uri).startswith(S3_PREFIX)


def split_s3(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``."""
    rest = uri[len(S3_PREFIX) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise TagcodeError(f"{uri}: not a valid s3:// URI (no bucket)")
    return bucket, key


@lru_cache(maxsize=1)
def s3_client() -> Any:
    """A boto3 S3 client; endpoint and credentials come from the standard AWS environment variables."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT_URL") or None,
        config=Config(retries={"max_attempts": int(os.environ.get("TAGCODE_S3_ATTEMPTS", "5")), "mode": "standard"},
                      connect_timeout=5, read_timeout=60),
    )


def _s3_error(uri: str, exc: Exception) -> TagcodeError:
    """Turn a botocore failure into a one-line error naming the URI."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return TagcodeError(f"{uri}: S3 endpoint unreachable ({exc.kwargs.get('endpoint_url', '?')})")
    if isinstance(exc, NoCredentialsError):
        return TagcodeError(f"{uri}: no S3 credentials (set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "?")
        if code in {"404", "NoSuchKey", "NotFound"}:
            return TagcodeError(f"{uri}: not found in S3")
        if code == "NoSuchBucket":
            return TagcodeError(f"{uri}: S3 bucket does not exist")
        if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}:
            return TagcodeError(f"{uri}: S3 access denied ({code}; check the credentials and the bucket policy)")
        return TagcodeError(f"{uri}: S3 error {code}")
    return TagcodeError(f"{uri}: S3 error: {one_line(exc)}")


def read_bytes(uri: str | os.PathLike[str]) -> bytes:
    """Read a whole local file or S3 object; a missing one is a one-line TagcodeError."""
    s = str(uri)
    if is_s3(s):
        bucket, key = split_s3(s)
        try:
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # botocore raises many types; all become one line
            raise _s3_error(s, exc) from None
    try:
        return Path(s).read_bytes()
    except FileNotFoundError:
        raise TagcodeError(f"{s}: file not found") from None
    except IsADirectoryError:
        raise TagcodeError(f"{s}: is a directory, expected a file") from None


def exists(uri: str | os.PathLike[str]) -> bool:
    """True when the local path or S3 object exists."""
    s = str(uri)
    if is_s3(s):
        bucket, key = split_s3(s)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
            return True
        except Exception as exc:
            err = _s3_error(s, exc)
            if "not found" in str(err):
                return False
            raise err from None
    return Path(s).exists()


def list_files(uri: str | os.PathLike[str]) -> list[str]:
    """Every file below a local directory or S3 prefix, as full paths/URIs, sorted."""
    s = str(uri)
    if is_s3(s):
        bucket, prefix = split_s3(s.rstrip("/") + "/")
        out: list[str] = []
        try:
            for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                out.extend(f"{S3_PREFIX}{bucket}/{o['Key']}" for o in page.get("Contents", []))
        except Exception as exc:
            raise _s3_error(s, exc) from None
        return sorted(out)
    root = Path(s)
    if not root.is_dir():
        raise TagcodeError(f"{s}: directory not found")
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def join(base: str | os.PathLike[str], *parts: str) -> str:
    """Join path parts under a local directory or S3 prefix."""
    s = str(base)
    if is_s3(s):
        return "/".join([s.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(s).joinpath(*parts))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto ``path`` (file or directory).

    On failure the temporary is removed and whatever was at ``path`` before is left untouched. For an
    ``s3://`` path the temporary is local and is :func:`publish`-ed on success (no local ``s3:`` folder).
    """
    if is_s3(path):
        staging = Path(tempfile.mkdtemp(prefix="tagcode-publish-"))
        try:
            staged = staging / (split_s3(str(path))[1].rstrip("/").rpartition("/")[2] or "out")
            yield staged
            if not staged.exists():
                raise RuntimeError(f"atomic write of {path} produced nothing")
            publish(staged, str(path))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if not staged.exists():
            raise RuntimeError(f"atomic write of {target} produced nothing")
        if target.is_dir() and not target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(staged, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
        fh.write("\n")


def _json_default(obj: Any) -> Any:
    """Serialise numpy scalars and paths in JSON reports."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file (local or S3) with a one-line error when it is missing or malformed."""
    try:
        return json.loads(read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TagcodeError(f"{path}: not valid JSON ({exc})") from None


def _call(uri: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one boto3 call (botocore retries transient failures); any failure becomes a one-line error."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # botocore raises many types; all become one line
        raise _s3_error(uri, exc) from None


def _keys(uri: str) -> dict[str, dict[str, Any]]:
    """Every object under the S3 prefix ``uri`` (a directory), by key, with its size and ETag."""
    bucket, prefix = split_s3(uri.rstrip("/") + "/")
    found: dict[str, dict[str, Any]] = {}
    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    try:
        for page in pages:
            found.update({o["Key"]: {"size": o["Size"], "etag": o["ETag"].strip('"')}
                          for o in page.get("Contents", [])})
    except Exception as exc:
        raise _s3_error(uri, exc) from None
    return found


def publish(local: str | os.PathLike[str], uri: str) -> None:
    """Upload a local file or directory to ``uri``; a directory gets a ``_SUCCESS`` marker written last.

    A file is one PUT (atomic in S3). A directory: drop the old marker (readers then refuse the prefix
    instead of mixing versions), upload, delete objects the new version lacks, write the new marker.
    """
    src = Path(local)
    bucket, key = split_s3(uri.rstrip("/"))
    client = s3_client()
    if src.is_file():
        _call(uri, client.upload_file, str(src), bucket, key)
        return
    prefix = key + "/" if key else ""
    _call(uri, client.delete_object, Bucket=bucket, Key=prefix + MARKER)
    old = _keys(uri)
    listed: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src).as_posix()
        _call(uri, client.upload_file, str(path), bucket, prefix + rel)
        head = _call(uri, client.head_object, Bucket=bucket, Key=prefix + rel)
        listed[rel] = {"size": path.stat().st_size, "etag": head["ETag"].strip('"')}
    for stale in sorted(set(old) - {prefix + rel for rel in listed} - {prefix + MARKER}):
        _call(uri, client.delete_object, Bucket=bucket, Key=stale)
    body = json.dumps({"files": listed}, indent=1, sort_keys=True).encode()
    _call(uri, client.put_object, Bucket=bucket, Key=prefix + MARKER, Body=body)


def cache_root() -> Path:
    """Where :func:`fetch` keeps downloaded S3 inputs (``TAGCODE_S3_CACHE``, else the system temp dir)."""
    return Path(os.environ.get("TAGCODE_S3_CACHE") or Path(tempfile.gettempdir()) / "tagcode-s3-cache")


def fetch(uri: str) -> Path:
    """A local copy of an S3 input: a published directory (every ``_SUCCESS`` at or under ``uri``, only
    the files each lists) or a single object. Cached by content listing, so an unchanged input is
    downloaded once. A prefix with no marker is a one-line error (its producer did not finish)."""
    bucket, key = split_s3(uri.rstrip("/"))
    client = s3_client()
    prefix = key + "/" if key else ""
    objects = _keys(uri)
    markers = sorted(k for k in objects if k.rpartition("/")[2] == MARKER)
    if not markers:
        if key and not objects:
            head = _call(uri, client.head_object, Bucket=bucket, Key=key)
            digest = hashlib.sha256(f"{uri}\0{head['ETag']}".encode()).hexdigest()[:20]
            target = cache_root() / digest / key.rpartition("/")[2]
            if not target.exists():
                with atomic_path(target) as tmp:
                    _call(uri, client.download_file, bucket, key, str(tmp))
            return target
        raise TagcodeError(f"{uri}: not a published output (no {MARKER} marker under it; "
                           f"the stage that writes it did not finish)")
    listings = {m: json.loads(_call(uri, client.get_object, Bucket=bucket, Key=m)["Body"].read())["files"]
                for m in markers}
    digest = hashlib.sha256(json.dumps([uri, listings], sort_keys=True).encode()).hexdigest()[:20]
    target = cache_root() / digest / (key.rpartition("/")[2] or bucket)
    if target.exists():
        return target
    with atomic_path(target) as tmp:
        for marker, files in listings.items():
            base = marker[len(prefix): -len(MARKER)]
            for rel, info in sorted(files.items()):
                dest = tmp / base / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                _call(uri, client.download_file, bucket, marker[: -len(MARKER)] + rel, str(dest))
                if dest.stat().st_size != info["size"]:
                    raise TagcodeError(f"{uri}: {base}{rel} changed while it was read (republished?); retry")
        tmp.mkdir(exist_ok=True)
    return target
