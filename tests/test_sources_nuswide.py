"""NUS-WIDE source on fixtures built from the real tc10 tags and labels: both layouts, missing images,
vocabularies, and malformed list/label files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagcode.data.sources import load_source
from tagcode.data.sources.base import natural_key
from tagcode.data.sources.nuswide import binary_matrix, photo_id
from tagcode.errors import TagcodeError
from tests.nuswide_fixture import TC10_NAMES, build_nuswide, build_nuswide_official, nuswide_rows


def _truth(shared: Path, n: int) -> dict[str, tuple[list[str], list[int], list[str]]]:
    """image_id → (raw tags, label columns, TagList1k tags) from the npz."""
    rows = nuswide_rows(shared, n)
    return {Path(name).stem: (tags.split(","), list(np.flatnonzero(lab)), list(rows["vocab"][np.flatnonzero(bow)]))
            for name, tags, lab, bow in zip(rows["names"], rows["tags"], rows["labels"], rows["bow"], strict=True)}


def test_21_concept_layout_joins_real_tags_and_labels(tmp_path: Path, shared_dir: Path) -> None:
    root = build_nuswide(shared_dir, tmp_path / "nus", n_db=48, n_test=12, missing=1)
    src = load_source("nuswide", str(root))
    truth = _truth(shared_dir, 60)
    missing_id = Path(nuswide_rows(shared_dir, 1)["names"][0]).stem
    r = src.records
    assert len(r) == 59 and missing_id not in set(r["image_id"])
    assert src.skipped == [(str(root / "images" / f"{missing_id}.jpg"), "image missing")]
    assert src.label_names == [f"c{j:02d}" for j in range(10)]
    assert src.vocabulary == list(nuswide_rows(shared_dir, 0)["vocab"]) and len(src.vocabulary) == 1000
    for _, row in r.iterrows():
        tags, cols, _ = truth[row["image_id"]]
        assert row["tags"] == list(dict.fromkeys(tags))
        assert row["labels"] == [f"c{j:02d}" for j in cols]
        assert Path(row["image_uri"]).is_file() and Path(row["image_uri"]).stem == row["image_id"]
    assert (r["origin"] == "test").sum() == 12 and (r["origin"] == "train").sum() == 47
    assert r["image_id"].tolist() == sorted(r["image_id"], key=natural_key)


def test_21_concept_layout_options_and_names(tmp_path: Path, shared_dir: Path) -> None:
    root = build_nuswide(shared_dir, tmp_path / "nus", n_db=8, n_test=2, missing=0, concept_names=True)
    src = load_source("nuswide", str(root), vocabulary="none")
    assert src.vocabulary is None and src.label_names == TC10_NAMES
    assert all(set(labels) <= set(TC10_NAMES) and labels for labels in src.records["labels"])
    with pytest.raises(TagcodeError, match=r"Final_Tag_List\.txt not found \(looked in the root and NUS_WID_Tags"):
        load_source("nuswide", str(root), vocabulary="final5018")
    (root / "Concepts").mkdir()
    (root / "Concepts" / "Final_Tag_List.txt").write_text("sky\nwater\nsunset\n")
    assert load_source("nuswide", str(root), vocabulary="final5018").vocabulary == ["sky", "water", "sunset"]
    with pytest.raises(TagcodeError, match="option 'vocabulary' must be one of"):
        load_source("nuswide", str(root), vocabulary="taglist5k")
    (root / "Concepts21.txt").write_text("a\nb\n")
    with pytest.raises(TagcodeError, match=r"Concepts21\.txt: 2 names for 10 label columns"):
        load_source("nuswide", str(root))


def test_21_concept_layout_bad_files(tmp_path: Path, shared_dir: Path) -> None:
    root = build_nuswide(shared_dir, tmp_path / "nus", n_db=8, n_test=2, missing=0)
    labels = (root / "test_label_onehot.txt").read_text()
    (root / "test_label_onehot.txt").write_text(labels + "0 1 0 0 0 0 0 0 0 0\n")
    with pytest.raises(TagcodeError, match=r"test_label_onehot\.txt: 3 rows but the image list has 2"):
        load_source("nuswide", str(root))
    (root / "test_label_onehot.txt").write_text(labels.replace("1", "2", 1))
    with pytest.raises(TagcodeError, match=r"test_label_onehot\.txt: not a 0/1 matrix \(found '2'\)"):
        load_source("nuswide", str(root))
    (root / "test_label_onehot.txt").write_text(labels)
    (root / "NUS_WID_Tags" / "All_Tags.txt").unlink()
    with pytest.raises(TagcodeError, match=r"All_Tags\.txt not found") as info:
        load_source("nuswide", str(root))
    assert "\n" not in str(info.value)


def test_listed_twice_and_untagged_photos_are_reported(tmp_path: Path, shared_dir: Path) -> None:
    root = build_nuswide(shared_dir, tmp_path / "nus", n_db=8, n_test=2, missing=0)
    names = (root / "database_img.txt").read_text().splitlines()
    (root / "test_img.txt").write_text(f"{names[0]}\n{names[1]}\n")
    lines = (root / "NUS_WID_Tags" / "All_Tags.txt").read_text().splitlines()
    (root / "NUS_WID_Tags" / "All_Tags.txt").write_text("\n".join(lines[1:]) + "\n")
    src = load_source("nuswide", str(root))
    assert len(src.records) == 8
    reasons = dict(src.skipped)
    first = str(root / names[0])
    assert reasons[first].startswith(f"duplicate image id {Path(names[0]).stem!r}")
    assert "has no All_Tags.txt line; kept with no tags" in "".join(r for _, r in src.notes)
    assert "kept with no tags" not in "".join(r for _, r in src.skipped)
    row = src.records.set_index("image_id").loc[Path(names[0]).stem]
    assert row["tags"] == [] and row["origin"] == "train"


def test_official_layout_with_tagged_bag_of_words(tmp_path: Path, shared_dir: Path) -> None:
    root = build_nuswide_official(shared_dir, tmp_path / "nus", n=60, n_test=12, missing=1)
    src = load_source("nuswide", str(root))
    truth = _truth(shared_dir, 60)
    r = src.records
    assert len(r) == 59 and src.label_names == TC10_NAMES
    assert len(src.skipped) == 1 and src.skipped[0][1] == "image missing" and "/Flickr/tc" in src.skipped[0][0]
    for _, row in r.iterrows():
        _, cols, bow_tags = truth[row["image_id"]]
        assert row["tags"] == bow_tags
        assert row["labels"] == [TC10_NAMES[j] for j in cols]
        assert Path(row["image_uri"]).is_file() and Path(row["image_uri"]).parent.parent.name == "Flickr"
    assert (r["origin"] == "test").sum() == 12


def test_official_layout_prefers_raw_tags(tmp_path: Path, shared_dir: Path) -> None:
    root = build_nuswide_official(shared_dir, tmp_path / "nus", n=10, n_test=2, missing=0, raw_tags=True)
    truth = _truth(shared_dir, 10)
    r = load_source("nuswide", str(root)).records
    assert r["tags"].tolist() == [list(dict.fromkeys(truth[i][0])) for i in r["image_id"]]
    (root / "Groundtruth" / "AllLabels" / "Labels_tc3.txt").write_text("0\n1\n")
    with pytest.raises(TagcodeError, match=r"Labels_tc3\.txt: 2 rows but the image list has 10"):
        load_source("nuswide", str(root))


def test_no_known_layout_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "TagList1k.txt").write_text("sky\n")
    with pytest.raises(TagcodeError, match=r"neither database_img\.txt .* nor ImageList/Imagelist\.txt") as info:
        load_source("nuswide", str(tmp_path))
    assert "\n" not in str(info.value)


def test_photo_id_and_matrix_parser(tmp_path: Path) -> None:
    assert photo_id("images/0213_201390550.jpg") == "201390550"
    assert photo_id("C:\\ImageData\\Flickr\\actor_dir\\0001_2124494179.jpg") == "2124494179"
    assert photo_id("plain.jpg") == "plain"
    f = tmp_path / "m.txt"
    f.write_bytes(b"0 1 1\r\n\n1\t0 0\n")
    np.testing.assert_array_equal(binary_matrix(str(f)), [[0, 1, 1], [1, 0, 0]])
    f.write_bytes(b"0 1 1\n1 0\n")
    with pytest.raises(TagcodeError, match="rows have between 2 and 3 values"):
        binary_matrix(str(f))
    f.write_bytes(b"0 10\n")
    with pytest.raises(TagcodeError, match="several digits"):
        binary_matrix(str(f))
