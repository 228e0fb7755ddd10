"""Stages through run_stage (the path the CLI, DVC and KFP share): real fixture data, bad input, atomicity,
and labels out of reach of training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tagcode.data.manifest import read_labels, read_manifest
from tagcode.errors import TagcodeError
from tagcode.stages import run_stage
from tagcode.tags.clean import REASONS
from tests.tiny_dataset import build_tiny_dataset


def test_prepare_clean_embed_on_mirflickr_fixture(tmp_path: Path, mirflickr_mini: Path) -> None:
    src = tmp_path / "mir"
    shutil.copytree(mirflickr_mini, src)
    (src / "mirflickr" / "im970.jpg").write_bytes(b"")  # zero-byte
    data = (src / "mirflickr" / "im971.jpg").read_bytes()
    (src / "mirflickr" / "im971.jpg").write_bytes(data[: len(data) // 3])  # truncated
    out = tmp_path / "prepared"
    report = json.loads(run_stage("prepare", {"source": "mirflickr", "root": str(src), "protocol": "random",
                                              "n_query": 5, "image_size": 32, "out": str(out)}))
    assert report["decoded"] == 38 and report["skipped_by_reason"] == {"empty file": 1, "truncated or corrupt image": 1}
    skipped = pd.read_csv(out / "skipped.csv", dtype=str)
    assert set(skipped["item"]) == {"970", "971"}
    m = read_manifest(out / "manifest.parquet")
    assert len(m.frame) == 38 and m.meta["source"] == "mirflickr" and len(m.meta["vocabulary"]) == 1386

    clean = json.loads(run_stage("clean_tags", {"prepared": str(out), "vocabulary": "source", "min_freq": 1,
                                                "stop_list": "mirflickr", "out": str(tmp_path / "tags")}))
    assert clean["kept_tags"] > 10 and clean["n_images"] == 38
    dropped = pd.read_parquet(tmp_path / "tags" / "dropped.parquet")
    assert list(dropped.columns) == ["tag", "normalized", "reason", "count"]
    assert set(dropped["reason"]) <= set(REASONS) and "stop_list" in set(dropped["reason"])
    embed = json.loads(run_stage("embed_tags", {"tags": str(tmp_path / "tags"), "eps": 0.05,
                                                "out": str(tmp_path / "embed")}))
    emb = np.load(tmp_path / "embed" / "tag_embeddings.npy")
    assert emb.shape == (embed["final_tags"], 50)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-5)
    merge_map = json.loads((tmp_path / "embed" / "merge_map.json").read_text())
    assert sorted(i for v in merge_map.values() for i in v) == list(range(embed["vocabulary"]))
    # Compound lookup and partial centring reach the stage: fewer OOV tags, less similar tags.
    tuned = json.loads(run_stage("embed_tags", {"tags": str(tmp_path / "tags"), "eps": 0.05, "compose": True,
                                                "center": 0.3, "out": str(tmp_path / "embed-tuned")}))
    assert tuned["vectors_center"] == 0.3 and tuned["oov"] < embed["oov"], (tuned["oov"], embed["oov"])
    assert tuned["margin_raw"]["mean_cosine"] < embed["margin_raw"]["mean_cosine"]


def test_a_failing_stage_keeps_the_previous_output(tmp_path: Path) -> None:
    ds = build_tiny_dataset(tmp_path / "ds", n_per_class=4)
    cfg = {"source": "folder", "root": str(ds), "n_query": 4, "image_size": 16, "out": str(tmp_path / "prep")}
    run_stage("prepare", cfg)
    before = (tmp_path / "prep" / "manifest.parquet").read_bytes()
    with pytest.raises(TagcodeError, match="needs 100 images but only 16"):
        run_stage("prepare", {**cfg, "n_query": 100})
    assert (tmp_path / "prep" / "manifest.parquet").read_bytes() == before
    with pytest.raises(TagcodeError, match="no training image keeps any tag"):
        run_stage("clean_tags", {"prepared": str(tmp_path / "prep"), "min_freq": 1000, "out": str(tmp_path / "t")})
    assert not (tmp_path / "t").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "prep"]


def test_images_without_tags_stay_in_the_database_but_not_in_training(tmp_path: Path) -> None:
    ds = build_tiny_dataset(tmp_path / "ds", n_per_class=4)
    lines = [json.loads(x) for x in (ds / "tags.jsonl").read_text().splitlines()]
    lines[0]["tags"], lines[1]["tags"] = [], ["zzzunseen"]
    (ds / "tags.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    run_stage("prepare", {"source": "folder", "root": str(ds), "n_query": 2, "seed": 5, "image_size": 16,
                          "out": str(tmp_path / "prep")})
    report = json.loads(run_stage("clean_tags", {"prepared": str(tmp_path / "prep"), "min_freq": 2,
                                                 "out": str(tmp_path / "tags")}))
    assert report["images_without_tags"] >= 2
    z = np.load(tmp_path / "tags" / "image_tags.npz")
    no_tags = np.asarray(z["indptr"][1:] == z["indptr"][:-1])
    assert not (z["train"] & no_tags).any() and len(z["ids"]) == 16


def test_training_never_reads_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = build_tiny_dataset(tmp_path / "ds")
    prep, feats = tmp_path / "prep", tmp_path / "feats"
    run_stage("prepare", {"source": "folder", "root": str(ds), "n_query": 4, "image_size": 16, "out": str(prep)})
    run_stage("features", {"prepared": str(prep), "backbone": "tiny_cnn", "progress": False, "out": str(feats)})

    def forbidden(*_a, **_k):
        raise AssertionError("training read the ground-truth labels")

    monkeypatch.setattr("tagcode.data.manifest.read_labels", forbidden)
    monkeypatch.setattr("pyarrow.parquet.ParquetFile.read", _no_label_column(monkeypatch))
    for method, bits in (("itq", 16), ("pq", 8)):
        run_stage("train", {"method": method, "bits": bits, "prepared": str(prep), "features": str(feats),
                            "out": str(tmp_path / f"{method}")})
        run_stage("encode", {"model": str(tmp_path / method), "prepared": str(prep), "features": str(feats),
                             "out": str(tmp_path / f"codes-{method}")})
    monkeypatch.undo()
    labels, names = read_labels(prep / "manifest.parquet")
    assert labels.shape == (280, 4) and names == ["blue", "green", "red", "yellow"]
    metrics = json.loads(run_stage("evaluate", {"codes": str(tmp_path / "codes-itq"), "prepared": str(prep),
                                                "out": str(tmp_path / "m")}))
    assert metrics["kind"] == "binary" and set(metrics["protocols"]) == {"wsdhq", "wshrca"}
    assert 0.25 < metrics["protocols"]["wshrca"]["map"] <= 1.0
    assert (tmp_path / "m" / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"


def _no_label_column(monkeypatch: pytest.MonkeyPatch):
    import pyarrow.parquet as pq

    original = pq.ParquetFile.read

    def read(self, columns=None, **kw):
        if columns is None or "labels" in columns:
            raise AssertionError("training read the labels column")
        return original(self, columns=columns, **kw)

    return read


def test_features_are_looked_up_by_id_from_one_read(tmp_path: Path) -> None:
    from tagcode.data.features import features_for

    ds = build_tiny_dataset(tmp_path / "ds", n_per_class=2)
    prep, feats = tmp_path / "prep", tmp_path / "feats"
    run_stage("prepare", {"source": "folder", "root": str(ds), "n_query": 2, "image_size": 16, "out": str(prep)})
    run_stage("features", {"prepared": str(prep), "backbone": "tiny_cnn", "progress": False, "out": str(feats)})
    ids = json.loads((feats / "ids.json").read_text())
    x = np.load(feats / "features.npy")
    a, b = features_for(feats, np.array(ids[::-1], dtype=object), np.array(ids[:2], dtype=object))
    np.testing.assert_array_equal(a, x[::-1])
    np.testing.assert_array_equal(b, x[:2])
    with pytest.raises(TagcodeError, match=r"no features for 1 images, e\.g\. 'nope'"):
        features_for(feats, np.array([ids[0], "nope"], dtype=object))
