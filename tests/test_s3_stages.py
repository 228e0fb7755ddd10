"""Every stage reads and writes s3:// through a real moto server: outputs published with a marker written
last, byte-identical to a local run, and one-line errors for an unreachable endpoint, a missing bucket or
key, an unfinished output, and denied access."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tagcode.errors import TagcodeError
from tagcode.io import MARKER, atomic_path, fetch, publish, read_bytes, s3_client
from tagcode.stages import run_stage
from tests.tiny_dataset import build_tiny_dataset, tiny_params


def _aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str, tmp_path: Path, key: str = "test",
             secret: str = "test") -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": endpoint, "TAGCODE_S3_ATTEMPTS": "2",
                        "TAGCODE_S3_CACHE": str(tmp_path / "s3-cache")}.items():
        monkeypatch.setenv(name, value)
    s3_client.cache_clear()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """A boto3 client on the moto server with bucket ``tagcode-test``; the AWS environment points there."""
    _aws_env(monkeypatch, moto_endpoint, tmp_path)
    client = s3_client()
    if "tagcode-test" not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket="tagcode-test")
    yield client
    s3_client.cache_clear()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_stages_read_and_write_s3_like_local(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = tiny_params(build_tiny_dataset(tmp_path / "dataset", n_per_class=20))
    base = "s3://tagcode-test/run1"
    run_stage("prepare", {**params["prepare"], "out": f"{base}/prepared"})
    summary = json.loads(run_stage("clean_tags", {**params["clean_tags"], "prepared": f"{base}/prepared",
                                                  "out": f"{base}/tags"}))
    run_stage("prepare", {**params["prepare"], "out": str(tmp_path / "local/prepared")})
    run_stage("clean_tags", {**params["clean_tags"], "prepared": str(tmp_path / "local/prepared"),
                             "out": str(tmp_path / "local/tags")})
    assert not (tmp_path / "s3:").exists()
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="tagcode-test", Prefix="run1/tags/")["Contents"]}
    assert "run1/tags/_SUCCESS" in keys and "run1/tags/vocab.parquet" in keys
    assert summary["kept_tags"] > 0
    remote = fetch(f"{base}/tags")
    assert _tree(remote) == _tree(tmp_path / "local/tags")
    assert _tree(fetch(f"{base}/prepared")) == _tree(tmp_path / "local/prepared")


def test_republish_drops_stale_objects_and_marker_lists_files(s3: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir()
    (first / "a.txt").write_text("old")
    (first / "stale.txt").write_text("gone")
    second.mkdir()
    (second / "a.txt").write_text("new")
    publish(first, "s3://tagcode-test/out")
    publish(second, "s3://tagcode-test/out")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="tagcode-test", Prefix="out/")["Contents"]}
    assert keys == {"out/a.txt", f"out/{MARKER}"}
    marker = json.loads(read_bytes(f"s3://tagcode-test/out/{MARKER}"))
    assert marker["files"]["a.txt"]["size"] == 3
    assert (fetch("s3://tagcode-test/out") / "a.txt").read_text() == "new"


def test_failed_stage_publishes_nothing(s3: Any) -> None:
    with pytest.raises(RuntimeError, match="boom"), atomic_path("s3://tagcode-test/failed") as out:
        out.mkdir()
        (out / "x").write_text("half")
        raise RuntimeError("boom")
    assert "Contents" not in s3.list_objects_v2(Bucket="tagcode-test", Prefix="failed/")


def test_unfinished_output_is_refused(s3: Any) -> None:
    s3.put_object(Bucket="tagcode-test", Key="half/manifest.parquet", Body=b"partial")
    with pytest.raises(TagcodeError, match=r"^s3://tagcode-test/half: not a published output \(no _SUCCESS"):
        run_stage("clean_tags", {"prepared": "s3://tagcode-test/half", "out": "s3://tagcode-test/t"})


def test_missing_bucket_and_key_are_one_line(s3: Any) -> None:
    with pytest.raises(TagcodeError, match=r"^s3://no-such-bucket/p: S3 bucket does not exist$"):
        run_stage("clean_tags", {"prepared": "s3://no-such-bucket/p", "out": "s3://tagcode-test/t"})
    with pytest.raises(TagcodeError, match=r"^s3://tagcode-test/nothing/here.bin: not found in S3$"):
        fetch("s3://tagcode-test/nothing/here.bin")


def test_unreachable_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _aws_env(monkeypatch, "http://127.0.0.1:9", tmp_path)
    try:
        with pytest.raises(TagcodeError, match=r"^s3://bucket/prepared: S3 endpoint unreachable") as info:
            run_stage("clean_tags", {"prepared": "s3://bucket/prepared", "out": str(tmp_path / "t")})
        assert "\n" not in str(info.value)
        assert not (tmp_path / "t").exists()
    finally:
        s3_client.cache_clear()


def test_access_denied_is_one_line(s3: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    import boto3

    iam = boto3.client("iam", endpoint_url=moto_endpoint)
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    s3.put_object(Bucket="tagcode-test", Key="secret/file.txt", Body=b"x")

    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    def reset_auth(value: float) -> None:  # the in-process server shares moto's settings
        settings.INITIAL_NO_AUTH_ACTION_COUNT = value
        ActionAuthenticatorMixin.request_count = 0

    reset_auth(0)  # from now on moto checks IAM: the new user has no policy
    try:
        _aws_env(monkeypatch, moto_endpoint, tmp_path, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
        with pytest.raises(TagcodeError, match=r"^s3://tagcode-test/secret/file.txt: S3 access denied") as info:
            fetch("s3://tagcode-test/secret/file.txt")
        assert "\n" not in str(info.value)
    finally:
        reset_auth(float("inf"))
        s3_client.cache_clear()
