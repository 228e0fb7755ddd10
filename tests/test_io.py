"""Atomic writes: a failing writer leaves what was there before; a successful one replaces it whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagcode.errors import TagcodeError
from tagcode.io import atomic_open, atomic_path, read_bytes, read_json, write_json


def test_atomic_file_replaced_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write('{"v": 2, "half')
        raise RuntimeError("killed mid-write")
    assert read_json(target) == {"v": 1}
    write_json(target, {"v": 3})
    assert read_json(target) == {"v": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_directory_keeps_previous_output_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "stage"
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("old")
    with pytest.raises(ValueError), atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("new")
        raise ValueError("stage failed")
    assert (out / "a.txt").read_text() == "old"
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(TagcodeError, match=r"nope\.json: file not found"):
        read_bytes(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TagcodeError, match="not valid JSON"):
        read_json(tmp_path / "bad.json")
