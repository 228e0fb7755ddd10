"""Scale-out: features and encode over 3 shards of image ids, merged, are byte-identical to one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagcode.data.shards import shard_slice
from tagcode.errors import TagcodeError
from tagcode.stages import run_stage
from tests.tiny_dataset import build_tiny_dataset, tiny_params


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_shard_slices_cover_rows_in_order_and_align() -> None:
    for n, shards, align in ((0, 3, 4), (10, 3, 1), (10, 3, 4), (7, 5, 2), (100, 3, 16)):
        parts = [shard_slice(n, shards, k, align) for k in range(shards)]
        assert [i for s in parts for i in range(n)[s]] == list(range(n))
        assert all(s.start % align == 0 or s.start == n for s in parts)
    with pytest.raises(TagcodeError, match="shard 3 of 3"):
        shard_slice(10, 3, 3)


@pytest.mark.slow
def test_three_shards_merge_to_the_unsharded_outputs(tmp_path: Path) -> None:
    params = tiny_params(build_tiny_dataset(tmp_path / "dataset", n_per_class=70))
    d = tmp_path / "run"
    prepared = str(d / "prepared")
    run_stage("prepare", {**params["prepare"], "out": prepared})
    feats = {**params["features"], "prepared": prepared, "batch_size": 8}
    run_stage("features", {**feats, "out": str(d / "features")})
    parts = [str(d / f"features-{k}") for k in range(3)]
    for k, part in enumerate(parts):
        run_stage("features", {**feats, "shard": k, "num_shards": 3, "out": part})
    run_stage("merge_shards", {"kind": "features", "parts": parts, "out": str(d / "features-merged")})
    assert _tree(d / "features-merged") == _tree(d / "features")

    for method, bits in (("itq", 16), ("pq", 8), ("float", 32)):
        model = str(d / f"model-{method}")
        run_stage("train", {**params["train"], "method": method, "bits": bits, "prepared": prepared,
                            "features": str(d / "features"), "out": model})
        enc = {"model": model, "prepared": prepared, "features": str(d / "features")}
        run_stage("encode", {**enc, "out": str(d / f"codes-{method}")})
        parts = [str(d / f"codes-{method}-{k}") for k in range(3)]
        for k, part in enumerate(parts):
            run_stage("encode", {**enc, "shard": k, "num_shards": 3, "out": part})
        merged = d / f"codes-{method}-merged"
        run_stage("merge_shards", {"kind": "codes", "parts": parts, "out": str(merged)})
        whole = _tree(d / f"codes-{method}")
        got = _tree(merged)
        meta_got, meta_whole = (json.loads(t.pop("meta.json")) for t in (got, whole))
        assert {**meta_got, "out": ""} == {**meta_whole, "out": ""}
        assert got == whole, method
