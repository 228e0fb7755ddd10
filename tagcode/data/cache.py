"""The decoded-image cache: square RGB uint8 thumbnails, memory-mapped, keyed by image id.

Layout of a cache directory::

    meta.json          {"format", "size", "count", "shard_size", "shards": [{"file", "count"}], "ids": [...]}
    shard-00000.u8     raw uint8, shape (count, size, size, 3), C order
    shard-00001.u8     ...

Small sets fit in one shard (one memory-mappable array); large ones are split so that no single file
or write buffer grows without bound. The writer streams images to disk one at a time.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tagcode.errors import TagcodeError
from tagcode.io import atomic_path

FORMAT = "tagcode-image-cache/1"
DEFAULT_SHARD_SIZE = 10_000


class CacheWriter:
    """Append images to a cache directory; call :meth:`close` to publish it atomically."""

    def __init__(self, path: str | Path, size: int, shard_size: int = DEFAULT_SHARD_SIZE) -> None:
        if size < 1 or shard_size < 1:
            raise TagcodeError(f"{path}: cache size and shard_size must be positive")
        self.size, self.shard_size = size, shard_size
        self._atomic = atomic_path(path)
        self._dir = self._atomic.__enter__()
        self._dir.mkdir()
        self._ids: list[str] = []
        self._shards: list[dict[str, Any]] = []
        self._fh: Any = None

    def add(self, image_id: str, image: np.ndarray) -> None:
        """Append one ``(size, size, 3)`` uint8 image."""
        if image.shape != (self.size, self.size, 3) or image.dtype != np.uint8:
            raise ValueError(f"image {image_id!r}: expected ({self.size}, {self.size}, 3) uint8, got "
                             f"{image.shape} {image.dtype}")
        if self._fh is None or self._shards[-1]["count"] == self.shard_size:
            self._roll()
        self._fh.write(np.ascontiguousarray(image).tobytes())
        self._shards[-1]["count"] += 1
        self._ids.append(str(image_id))

    def _roll(self) -> None:
        if self._fh is not None:
            self._fh.close()
        name = f"shard-{len(self._shards):05d}.u8"
        self._fh = open(self._dir / name, "wb")  # noqa: SIM115 - closed in _roll/close
        self._shards.append({"file": name, "count": 0})

    def close(self) -> None:
        """Write meta.json and move the finished cache into place."""
        if self._fh is not None:
            self._fh.close()
        meta = {"format": FORMAT, "size": self.size, "count": len(self._ids), "shard_size": self.shard_size,
                "shards": self._shards, "ids": self._ids}
        (self._dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Discard everything written; the previous cache at the path (if any) stays."""
        if self._fh is not None:
            self._fh.close()
        err = RuntimeError("cache write aborted")
        with contextlib.suppress(RuntimeError):
            self._atomic.__exit__(RuntimeError, err, None)

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_cache(path: str | Path, items: Iterable[tuple[str, np.ndarray]], size: int,
                shard_size: int = DEFAULT_SHARD_SIZE) -> None:
    """Write ``(image_id, image)`` pairs to a new cache at ``path``, atomically."""
    with CacheWriter(path, size, shard_size) as w:
        for image_id, image in items:
            w.add(image_id, image)


class ImageCache:
    """Read access to a cache: ``len``, ``ids``, ``get(indices)`` and ``index_of(ids)``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            meta = json.loads((self.path / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TagcodeError(f"{self.path}: not an image cache (no meta.json; run `tagcode prepare`)") from None
        if meta.get("format") != FORMAT:
            raise TagcodeError(f"{self.path}: unsupported cache format {meta.get('format')!r}")
        self.size: int = int(meta["size"])
        self.ids = np.asarray(meta["ids"], dtype=object)
        self._arrays = [
            np.memmap(self.path / s["file"], dtype=np.uint8, mode="r", shape=(s["count"], self.size, self.size, 3))
            for s in meta["shards"] if s["count"] > 0
        ]
        self._starts = np.cumsum([0] + [len(a) for a in self._arrays])
        self._pos = {image_id: i for i, image_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, indices: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """Images at row positions ``indices`` as a new ``(n, size, size, 3)`` uint8 array."""
        idx = np.arange(len(self))[indices] if isinstance(indices, slice) else np.asarray(indices, dtype=np.int64)
        out = np.empty((len(idx), self.size, self.size, 3), dtype=np.uint8)
        shard = np.searchsorted(self._starts, idx, side="right") - 1
        for s in np.unique(shard):
            sel = shard == s
            out[sel] = self._arrays[s][idx[sel] - self._starts[s]]
        return out

    def index_of(self, image_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Row positions of ``image_ids``; an unknown id is a one-line error."""
        try:
            return np.fromiter((self._pos[i] for i in image_ids), dtype=np.int64, count=len(image_ids))
        except KeyError as exc:
            raise TagcodeError(f"{self.path}: image id {exc.args[0]!r} is not in the cache") from None

    def view(self, image_ids: Sequence[str] | np.ndarray) -> ImageRows:
        """A lazy, sliceable view of the images of ``image_ids`` (in that order), read a slice at a time."""
        return ImageRows(self, self.index_of(image_ids))


class ImageRows:
    """Images of chosen cache rows: ``len`` and slicing (``view[a:b]`` → uint8 array), so encoders can stream."""

    def __init__(self, cache: ImageCache, rows: np.ndarray) -> None:
        self.cache, self.rows = cache, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, sl: slice) -> np.ndarray:
        return self.cache.get(self.rows[sl])
