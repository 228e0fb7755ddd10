"""The image cache: streamed shards, reads by position and by id, atomic publication."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagcode.data.cache import CacheWriter, ImageCache, write_cache
from tagcode.errors import TagcodeError


def _images(n: int, size: int = 4) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(f"img{i}", rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for i in range(n)]


def test_round_trip_across_shards(tmp_path: Path) -> None:
    items = _images(7)
    write_cache(tmp_path / "c", items, size=4, shard_size=3)
    cache = ImageCache(tmp_path / "c")
    assert len(cache) == 7 and cache.size == 4
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["meta.json", "shard-00000.u8",
                                                                  "shard-00001.u8", "shard-00002.u8"]
    order = [6, 0, 3, 4, 2]
    np.testing.assert_array_equal(cache.get(order), np.stack([items[i][1] for i in order]))
    np.testing.assert_array_equal(cache.get(slice(2, 5)), np.stack([items[i][1] for i in (2, 3, 4)]))
    assert list(cache.index_of(["img5", "img1"])) == [5, 1]
    with pytest.raises(TagcodeError, match="'nope' is not in the cache"):
        cache.index_of(["nope"])


def test_failed_write_keeps_previous_cache(tmp_path: Path) -> None:
    write_cache(tmp_path / "c", _images(2), size=4)
    with pytest.raises(RuntimeError), CacheWriter(tmp_path / "c", size=4) as w:
        w.add("x", np.zeros((4, 4, 3), np.uint8))
        raise RuntimeError("decode crashed")
    assert list(ImageCache(tmp_path / "c").ids) == ["img0", "img1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_wrong_shape_and_missing_cache(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected \\(4, 4, 3\\) uint8"), CacheWriter(tmp_path / "c", 4) as w:
        w.add("x", np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(TagcodeError, match="not an image cache"):
        ImageCache(tmp_path / "nothing")
