"""Local and S3 paths, and atomic writes, so a killed stage never leaves a half-written artifact."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from tagcode.errors import TagcodeError

S3_PREFIX = "s3://"


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
        config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30),
    )


def _s3_error(uri: str, exc: Exception) -> TagcodeError:
    """Turn a botocore failure into a one-line error naming the URI."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, EndpointConnectionError):
        return TagcodeError(f"{uri}: S3 endpoint unreachable ({exc.kwargs.get('endpoint_url', '?')})")
    if isinstance(exc, NoCredentialsError):
        return TagcodeError(f"{uri}: no S3 credentials (set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "?")
        if code in {"404", "NoSuchKey", "NotFound"}:
            return TagcodeError(f"{uri}: not found in S3")
        if code == "NoSuchBucket":
            return TagcodeError(f"{uri}: S3 bucket does not exist")
        return TagcodeError(f"{uri}: S3 error {code}")
    return TagcodeError(f"{uri}: S3 error: {exc}")


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

    On failure the temporary is removed and whatever was at ``path`` before is left untouched.
    """
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
