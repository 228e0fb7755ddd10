"""Feature extraction: resumable after a kill, keyed by image id, bounded batches, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tagcode.backbones import Backbone, Preprocess, create_backbone
from tagcode.backbones.extract import extract_features
from tagcode.data.cache import ImageCache, write_cache
from tagcode.data.features import read_features
from tagcode.device import resolve_device
from tagcode.errors import TagcodeError

N = 40


class Interrupt(Exception):
    """Stands in for a kill after some chunks were saved."""


@pytest.fixture
def cache(tmp_path: Path) -> ImageCache:
    rng = np.random.default_rng(0)
    write_cache(tmp_path / "cache", [(f"im{i}", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for i in range(N)],
                16, shard_size=15)
    return ImageCache(tmp_path / "cache")


def _run(cache: ImageCache, out: Path, seed: int = 0, **kw) -> dict:
    net = create_backbone("tiny_cnn", size=16, seed=seed)
    return extract_features(cache, net, out, batch_size=4, chunk_batches=2, progress=False, device="cpu", **kw)


def _stop_after(chunks: int):
    def on_chunk(done: int, total: int) -> None:
        assert total == 5  # 40 images / (4 per batch × 2 batches per chunk)
        if done == chunks:
            raise Interrupt

    return on_chunk


def test_interrupted_run_resumes_to_the_same_result(cache: ImageCache, tmp_path: Path) -> None:
    full = _run(cache, tmp_path / "full")
    assert full["n"] == N and full["dim"] == 64 and full["resumed_from"] == 0
    with pytest.raises(Interrupt):
        _run(cache, tmp_path / "out", on_chunk=_stop_after(2))
    partial = tmp_path / "out" / ".partial"
    assert sorted(p.name for p in partial.glob("chunk-*.npy")) == ["chunk-000000.npy", "chunk-000001.npy"]
    assert not (tmp_path / "out" / "features.npy").exists()  # nothing is published before the end
    calls: list[int] = []
    resumed = _run(cache, tmp_path / "out", on_chunk=lambda done, total: calls.append(done))
    assert resumed["resumed_from"] == 16 and calls == [3, 4, 5]  # only the 3 missing chunks ran
    ids, x = read_features(tmp_path / "out")
    ids_full, x_full = read_features(tmp_path / "full")
    assert list(ids) == list(ids_full) == [f"im{i}" for i in range(N)]
    assert x.dtype == np.float32 and x.shape == (N, 64)
    np.testing.assert_array_equal(x, x_full)
    assert not partial.exists()
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["backbone"] == "tiny_cnn" and meta["dim"] == 64 and meta["dtype"] == "float32"
    assert meta["preprocess"]["size"] == 16 and meta["n"] == N
    direct = create_backbone("tiny_cnn", size=16)(torch.from_numpy(cache.get([7])).permute(0, 3, 1, 2).float()
                                                  .sub(127.5).div(64.0))
    np.testing.assert_allclose(x[7], direct[0].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_stale_partial_is_discarded(cache: ImageCache, tmp_path: Path) -> None:
    with pytest.raises(Interrupt):
        _run(cache, tmp_path / "out", on_chunk=_stop_after(2))
    other = _run(cache, tmp_path / "out", seed=1)  # different weights: the chunks of seed 0 must not be reused
    assert other["resumed_from"] == 0
    _, x = read_features(tmp_path / "out")
    _run(cache, tmp_path / "ref", seed=1)
    np.testing.assert_array_equal(x, read_features(tmp_path / "ref")[1])
    with pytest.raises(Interrupt):
        _run(cache, tmp_path / "again", on_chunk=_stop_after(1))
    assert _run(cache, tmp_path / "again", resume=False)["resumed_from"] == 0


def test_subset_by_id_and_bounded_batches(cache: ImageCache, tmp_path: Path, monkeypatch) -> None:
    sizes: list[int] = []
    get = cache.get
    monkeypatch.setattr(cache, "get", lambda idx: sizes.append(len(idx)) or get(idx))
    _run(cache, tmp_path / "full")
    assert max(sizes) == 4 and sum(sizes) == N  # streamed batch by batch, never the whole cache
    _run(cache, tmp_path / "sub", ids=["im31", "im2", "im17"])
    ids, x = read_features(tmp_path / "sub")
    all_x = read_features(tmp_path / "full")[1]
    assert list(ids) == ["im31", "im2", "im17"]
    np.testing.assert_array_equal(x, all_x[[31, 2, 17]])
    empty = _run(cache, tmp_path / "empty", ids=[])
    assert empty["n"] == 0 and read_features(tmp_path / "empty")[1].shape == (0, 64)
    with pytest.raises(TagcodeError, match=r"duplicate image ids, e\.g\. 'im2' \(1 duplicates\)"):
        _run(cache, tmp_path / "dup", ids=["im2", "im3", "im2"])
    with pytest.raises(TagcodeError, match="image id 'nope' is not in the cache"):
        _run(cache, tmp_path / "bad", ids=["nope"])


class NanOnWhite(Backbone):
    """Gives NaN features for all-white images (to test the error), the channel means otherwise."""

    feature_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.preprocess = Preprocess(size=16, resize=None, mean=(0.0,) * 3, std=(1.0,) * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(2, 3))
        return torch.where(m > 254.5, torch.nan, m)


def test_nan_feature_names_the_image(tmp_path: Path) -> None:
    images = [(f"ok{i}", np.full((16, 16, 3), 10 * i, np.uint8)) for i in range(5)]
    images.insert(3, ("white", np.full((16, 16, 3), 255, np.uint8)))
    write_cache(tmp_path / "cache", images, 16)
    with pytest.raises(TagcodeError, match=r"^image 'white': backbone NanOnWhite produced a NaN/inf feature$"):
        extract_features(ImageCache(tmp_path / "cache"), NanOnWhite(), tmp_path / "out", batch_size=2,
                         progress=False)


def test_read_features_checks(tmp_path: Path) -> None:
    with pytest.raises(TagcodeError, match=r"no features\.npy"):
        read_features(tmp_path / "missing")
    out = tmp_path / "f"
    out.mkdir()
    np.save(out / "features.npy", np.array([[1.0, 2.0], [np.nan, 0.0]], np.float32))
    (out / "ids.json").write_text(json.dumps(["a", "a"]))
    with pytest.raises(TagcodeError, match=r"ids\.json: duplicate image ids, e\.g\. 'a' \(1 duplicates\)"):
        read_features(out)
    (out / "ids.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(TagcodeError, match="NaN/inf feature for image 'b'"):
        read_features(out)
    (out / "ids.json").write_text(json.dumps(["a"]))
    with pytest.raises(TagcodeError, match="1 ids for 2 feature rows"):
        read_features(out)


def test_devices() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(TagcodeError, match="unknown device 'tpu7'"):
        resolve_device("tpu7")
    if not torch.cuda.is_available():
        with pytest.raises(TagcodeError, match="CUDA is not available"):
            resolve_device("cuda")
