"""prepare's counts agree everywhere (summary, report.json, its split_report), notes are not skips, and the
dataset listing changes exactly when the dataset's files do."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd

from tagcode.data.listing import dataset_listing, write_listing
from tagcode.data.manifest import read_manifest
from tagcode.stages import run_stage
from tagcode.stages.prepare import format_summary


def test_counts_agree_and_notes_are_not_skips(tmp_path: Path, mirflickr_mini: Path) -> None:
    src = tmp_path / "mir"
    shutil.copytree(mirflickr_mini, src)
    (src / "mirflickr" / "meta" / "tags" / "tags963.txt").unlink()  # kept with no tags: a note
    (src / "mirflickr" / "meta" / "tags" / "tags962.txt").write_bytes(b"caf\xe9\nsky\n")  # Latin-1: a note
    (src / "mirflickr" / "im970.jpg").write_bytes(b"")  # not decodable: a skip
    out = tmp_path / "prepared"
    report = json.loads(run_stage("prepare", {"source": "mirflickr", "root": str(src), "protocol": "random",
                                              "n_query": 5, "image_size": 32, "out": str(out)}))
    assert report["skipped"] == 1 and report["skipped_by_reason"] == {"empty file": 1}
    assert report["notes"] == 2 and report["notes_by_reason"] == {"no tag file; kept with no tags": 1,
                                                                  "not UTF-8": 1}
    assert len(pd.read_csv(out / "skipped.csv")) == 1 and len(pd.read_csv(out / "notes.csv")) == 2
    frame = read_manifest(out / "manifest.parquet").frame
    final = {s: int((frame["split"] == s).sum()) for s in ("query", "database", "unused")}
    assert report["split"] == report["split_report"]["counts"] == final
    assert report["train"] == report["split_report"]["train"] == int(frame["train"].sum())
    lost = report["split_report"]["lost_in_decoding"]
    assert lost["query"] + lost["database"] == 1 and report["decoded"] == len(frame) == 39
    summary = format_summary(report)
    assert f"train {report['train']} = database images with ≥1 tag" in summary
    assert "skipped 1 (empty file: 1); notes 2 (no tag file; kept with no tags: 1, not UTF-8: 1)" in summary


def test_listing_follows_the_dataset(tmp_path: Path, mirflickr_mini: Path) -> None:
    src = tmp_path / "mir"
    shutil.copytree(mirflickr_mini, src)
    path = tmp_path / "listing.json"
    first = write_listing(str(src), path)
    stamp = path.stat().st_mtime_ns
    assert first["files"] == len([p for p in src.rglob("*") if p.is_file()]) and first["kind"] == "local-size-mtime"
    assert write_listing(str(src), path) == first and path.stat().st_mtime_ns == stamp  # unchanged: not rewritten
    tag = src / "mirflickr" / "meta" / "tags" / "tags961.txt"
    os.utime(tag, ns=(tag.stat().st_atime_ns, tag.stat().st_mtime_ns + 10**9))
    touched = dataset_listing(str(src))
    assert touched["sha256"] != first["sha256"] and touched["files"] == first["files"]
    (src / "mirflickr25k_annotations_v080" / "dog.txt").unlink()
    assert dataset_listing(str(src))["files"] == first["files"] - 1
