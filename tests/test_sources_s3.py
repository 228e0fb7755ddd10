"""Sources reading s3:// roots through a real (in-process) moto S3 server: the same records as from local
disk, skips that name S3 URIs, and one-line errors for an unreachable endpoint or a missing bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tagcode.data.sources import load_source
from tagcode.errors import TagcodeError
from tagcode.io import s3_client
from tests.nuswide_fixture import build_nuswide


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A boto3 client on the moto server, with the AWS environment pointing there."""
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(key, value)
    s3_client.cache_clear()
    yield s3_client()
    s3_client.cache_clear()


def _upload(client: Any, local: Path, bucket: str, prefix: str) -> None:
    if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=bucket)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local).as_posix()}")


def _same_records(remote: Any, local: Any, columns: list[str]) -> None:
    assert remote.records[columns].equals(local.records[columns])
    assert remote.label_names == local.label_names and remote.vocabulary == local.vocabulary


def test_mirflickr_from_s3_equals_local(s3: Any, mirflickr_mini: Path) -> None:
    _upload(s3, mirflickr_mini, "datasets", "mir")
    remote = load_source("mirflickr", "s3://datasets/mir")
    local = load_source("mirflickr", str(mirflickr_mini))
    _same_records(remote, local, ["image_id", "tags", "labels"])
    assert remote.skipped == [] and len(remote.records) == 40
    assert remote.records["image_uri"].tolist() == [f"s3://datasets/mir/mirflickr/im{n}.jpg" for n in range(961, 1001)]
    first = remote.records["image_uri"].iloc[0]
    assert remote.loader(first) == (mirflickr_mini / "mirflickr" / "im961.jpg").read_bytes()
    with pytest.raises(TagcodeError, match=r"^s3://datasets/mir/mirflickr/im1\.jpg: not found in S3$"):
        remote.loader("s3://datasets/mir/mirflickr/im1.jpg")
    s3.delete_object(Bucket="datasets", Key="mir/mirflickr/im961.jpg")
    s3.put_object(Bucket="datasets", Key="mir/mirflickr/meta/tags/tags962.txt", Body=b"caf\xe9\n")
    damaged = load_source("mirflickr", "s3://datasets/mir/")
    assert damaged.records["image_id"].iloc[0] == "962" and damaged.records["tags"].iloc[0] == ["café"]
    assert damaged.skipped == [("s3://datasets/mir/mirflickr/meta/tags/tags961.txt", "image missing")]
    assert damaged.notes == [("s3://datasets/mir/mirflickr/meta/tags/tags962.txt",
                              "not UTF-8 (line 1); decoded as Latin-1")]


def test_folder_from_s3_equals_local(s3: Any, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "img").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (6, 6), (i * 80, 0, 0)).save(root / "img" / f"{i}.png")
    entries = [{"image": f"img/{i}.png", "tags": [f"t{i}", "red"], "labels": ["red"]} for i in range(4)]
    (root / "tags.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    _upload(s3, root, "folders", "users/ann/ds")
    remote = load_source("folder", "s3://folders/users/ann/ds")
    local = load_source("folder", str(root))
    _same_records(remote, local, ["image_id", "tags", "labels"])
    assert remote.records["image_uri"].tolist() == [f"s3://folders/users/ann/ds/img/{i}.png" for i in range(3)]
    assert remote.skipped == [("s3://folders/users/ann/ds/img/3.png", "image missing")]
    assert remote.loader(remote.records["image_uri"].iloc[2]) == (root / "img" / "2.png").read_bytes()


def test_nuswide_from_s3_equals_local(s3: Any, tmp_path: Path, shared_dir: Path) -> None:
    root = build_nuswide(shared_dir, tmp_path / "nus", n_db=12, n_test=4, missing=1)
    _upload(s3, root, "nus", "nus-wide")
    remote = load_source("nuswide", "s3://nus/nus-wide")
    local = load_source("nuswide", str(root))
    _same_records(remote, local, ["image_id", "tags", "labels", "origin"])
    assert len(remote.records) == 15 and remote.records["image_uri"].str.startswith("s3://nus/nus-wide/images/").all()
    assert len(remote.skipped) == 1 and remote.skipped[0][0].startswith("s3://nus/nus-wide/images/")


def test_missing_bucket_is_one_line(s3: Any) -> None:
    with pytest.raises(TagcodeError, match=r"^s3://no-such-bucket/x: S3 bucket does not exist$"):
        load_source("mirflickr", "s3://no-such-bucket/x")


def test_unreachable_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(key, value)
    s3_client.cache_clear()
    try:
        for source in ("folder", "mirflickr"):
            with pytest.raises(TagcodeError, match=r"^s3://bucket/data: S3 endpoint unreachable") as info:
                load_source(source, "s3://bucket/data")
            assert "\n" not in str(info.value)
    finally:
        s3_client.cache_clear()
