"""Folder source (bring your own data): JSONL, CSV and TSV tags files, skipped images, one-line errors for
bad tags files; plus the generic load_source checks (unknown source, unknown or mistyped option)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tagcode.data.sources import SOURCES, load_source
from tagcode.errors import TagcodeError


def _images(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(root / name)
    return root


def _jsonl(root: Path, *entries: dict, name: str = "tags.jsonl") -> None:
    (root / name).write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")


def test_jsonl_records_skips_and_order(tmp_path: Path) -> None:
    root = _images(tmp_path / "ds", "img/a10.png", "img/a2.png", "img/b.jpg", "c.png")
    _jsonl(root,
           {"image": "img/a10.png", "tags": ["Cat", " sofa ", "", "Cat"], "labels": ["cat"]},
           {"image": "img/a2.png", "tags": "dog|park", "labels": "dog|outdoor"},
           {"image": "img/b.jpg", "tags": [], "image_id": "B"},
           {"image": "./c.png"},
           {"image": "img/missing.png", "tags": ["x"]},
           {"image": "../outside.png", "tags": ["x"]})
    src = load_source("folder", str(root))
    r = src.records
    assert r["image_id"].tolist() == ["B", "c", "img/a2", "img/a10"]
    assert r["tags"].tolist() == [[], [], ["dog", "park"], ["Cat", "sofa"]]
    assert r["labels"].tolist() == [[], [], ["dog", "outdoor"], ["cat"]]
    assert r["image_uri"].tolist() == [str(root / "img" / "b.jpg"), str(root / "c.png"), str(root / "img" / "a2.png"),
                                       str(root / "img" / "a10.png")]
    assert src.label_names == ["cat", "dog", "outdoor"] and src.vocabulary is None
    assert src.skipped == [(str(root / "img" / "missing.png"), "image missing"),
                           ("../outside.png", "image path is not inside the root")]
    assert src.loader(r["image_uri"].iloc[0])[:3] == b"\xff\xd8\xff"


def test_csv_and_tsv_with_separator_option(tmp_path: Path) -> None:
    root = _images(tmp_path / "ds", "1.png", "2.png", "10.png")
    (root / "tags.csv").write_text('image,tags,labels\n10.png,"new york|sky, blue",city\n2.png,,\n1.png,sea,\n',
                                   encoding="utf-8")
    src = load_source("folder", str(root))
    assert src.records["image_id"].tolist() == ["1", "2", "10"]
    assert src.records["tags"].tolist() == [["sea"], [], ["new york", "sky, blue"]]
    assert src.label_names == ["city"]
    (root / "meta").mkdir()
    (root / "meta" / "list.tsv").write_text("image\ttags\timage_id\n1.png\ta;b\tone\n", encoding="utf-8")
    other = load_source("folder", str(root), tags_file="meta/list.tsv", tag_sep=";")
    assert other.records.iloc[0][["image_id", "tags", "labels"]].tolist() == ["one", ["a", "b"], []]
    absolute = load_source("folder", str(root), tags_file=str(root / "meta" / "list.tsv"), tag_sep=";")
    assert absolute.records.equals(other.records)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("tags.jsonl", b"", r"tags\.jsonl: file is empty"),
    ("tags.jsonl", b"\n \n", r"tags\.jsonl: file is empty"),
    ("tags.jsonl", b'{"image": "a.png"}\n{"image": "b.png", "image_id": "a"}\n',
     r"tags\.jsonl: duplicate image id 'a'"),
    ("tags.jsonl", b'{"image": "a.png"\n', r"tags\.jsonl:1: not valid JSON at column 18: Expecting ',' delimiter$"),
    ("tags.jsonl", b'{"image": "a.png"}\n\n{"image": "b.png", "tags": ["a" "b"]}\n',
     r"tags\.jsonl:3: not valid JSON at column 33: Expecting ',' delimiter$"),
    ("tags.jsonl", b'{"image": "a.png"}\n["b.png"]\n', r"tags\.jsonl:2: expected a JSON object, got list"),
    ("tags.jsonl", b'{"tags": ["x"]}\n', r"tags\.jsonl:1: no 'image' path"),
    ("tags.jsonl", b'{"image": "a.png", "tags": {"x": 1}}\n', r"tags\.jsonl:1: tags and labels must be lists"),
    ("tags.jsonl", b'{"image": "zzz.png"}\n', r"tags\.jsonl: none of the 1 listed images exists"),
    ("tags.csv", b"file,tags\na.png,x\n", r"tags\.csv: the header has no 'image' column"),
    ("tags.csv", b'image,tags\na.png,"x\n', r"tags\.csv:2: not valid CSV"),
    ("tags.csv", b'image,tags\na.png,x\nb.png,"y"z\na.png,w\n', r"tags\.csv:3: not valid CSV"),
    ("tags.csv", b'image,tags\na.png,"x\ny"\nb.png,"y"z\n', r"tags\.csv:4: not valid CSV"),
    ("tags.csv", b"image,tags\n", r"tags\.csv: no entries"),
])
def test_bad_tags_files_are_one_line_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    root = _images(tmp_path / "ds", "a.png", "b.png")
    (root / name).write_bytes(content)
    with pytest.raises(TagcodeError, match=message) as info:
        load_source("folder", str(root))
    assert "\n" not in str(info.value) and str(root) in str(info.value)


def test_latin1_tags_file_is_read_and_noted_with_its_line(tmp_path: Path) -> None:
    """The README's promise: a non-UTF-8 tags file is read as Latin-1 and reported as a note (a line number,
    never a byte offset), not refused and not counted as a skip."""
    root = _images(tmp_path / "ds", "a.png", "b.png")
    (root / "tags.jsonl").write_bytes(b'{"image": "a.png", "tags": ["sea"]}\n{"image": "b.png", "tags": ["caf\xe9"]}\n')
    src = load_source("folder", str(root))
    assert src.records["tags"].tolist() == [["sea"], ["café"]]
    assert src.notes == [(str(root / "tags.jsonl"), "not UTF-8 (line 2); decoded as Latin-1")] and src.skipped == []


def test_tags_file_lookup(tmp_path: Path) -> None:
    root = _images(tmp_path / "ds", "a.png")
    with pytest.raises(TagcodeError, match=r"no tags\.jsonl or tags\.csv found"):
        load_source("folder", str(root))
    _jsonl(root, {"image": "a.png"})
    (root / "tags.csv").write_text("image\na.png\n")
    with pytest.raises(TagcodeError, match=r"both tags\.jsonl and tags\.csv exist"):
        load_source("folder", str(root))
    assert load_source("folder", str(root), tags_file="tags.csv").records["image_id"].tolist() == ["a"]
    with pytest.raises(TagcodeError, match=r"other\.jsonl: file not found"):
        load_source("folder", str(root), tags_file="other.jsonl")
    (root / "tags.txt").write_text("a.png\n")
    with pytest.raises(TagcodeError, match=r"tags\.txt: unknown tags file type"):
        load_source("folder", str(root), tags_file="tags.txt")
    with pytest.raises(TagcodeError, match="option 'tag_sep' must not be empty"):
        load_source("folder", str(root), tag_sep="")
    with pytest.raises(TagcodeError, match="directory not found"):
        load_source("folder", str(tmp_path / "absent"))


def test_registry_and_option_checks(tmp_path: Path) -> None:
    assert SOURCES.names() == ["fashion_mnist", "folder", "mirflickr", "nuswide", "openclipart"]
    with pytest.raises(TagcodeError, match=r"unknown dataset source 'mirflikr' \(did you mean 'mirflickr'\?\)"):
        load_source("mirflikr", str(tmp_path))
    with pytest.raises(TagcodeError, match=r"unknown option\(s\) \['sep'\]; accepted: \['tags_file', 'tag_sep'\]"):
        load_source("folder", str(tmp_path), sep=";")
    with pytest.raises(TagcodeError, match="option 'tag_sep' must be str, got int 1"):
        load_source("folder", str(tmp_path), tag_sep=1)
