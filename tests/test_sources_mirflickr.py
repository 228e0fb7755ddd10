"""MIRFlickr source on the real mini fixture (official layout), cross-checked against the cleaned 20,015 set,
plus damaged copies: missing images and tag files, non-UTF-8 tags, duplicate numbers, bad annotations."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tagcode.data.sources import load_source
from tagcode.errors import TagcodeError


def test_fixture_joins_by_number_and_matches_the_cleaned_set(mirflickr_mini: Path, shared_dir: Path) -> None:
    src = load_source("mirflickr", str(mirflickr_mini))
    r = src.records
    assert r["image_id"].tolist() == [str(n) for n in range(961, 1001)] and src.skipped == []
    assert r["image_uri"].tolist() == [str(mirflickr_mini / "mirflickr" / f"im{n}.jpg") for n in range(961, 1001)]
    assert len(src.label_names) == 24 and src.label_names == sorted(src.label_names)
    assert src.vocabulary is not None and len(src.vocabulary) == 1386
    assert src.vocabulary[:4] == ["explore", "sky", "nikon", "2007"] and src.blocked_tags == []
    z = np.load(shared_dir / "data" / "mirflickr20015_tags_labels.npz")
    concepts, vocab = z["concepts"].astype(str).tolist(), z["tag_vocab"].astype(str).tolist()
    assert src.label_names == concepts and src.vocabulary == vocab
    pos = {str(i): k for k, i in enumerate(z["image_id"])}
    in_vocab = set(vocab)
    checked = 0
    for _, row in r.iterrows():
        if row["image_id"] in pos:
            k = pos[row["image_id"]]
            assert row["labels"] == [concepts[j] for j in np.flatnonzero(z["labels"][k])]
            assert sorted(t for t in row["tags"] if t in in_vocab) == sorted(vocab[j] for j in
                                                                             np.flatnonzero(z["tags_bow"][k]))
            checked += 1
    assert checked >= 20
    outside = [row for _, row in r.iterrows() if row["image_id"] not in pos]
    assert all(not row["labels"] or not set(row["tags"]) & in_vocab for row in outside)


def test_relevant_r1_columns(mirflickr_mini: Path) -> None:
    base = load_source("mirflickr", str(mirflickr_mini)).records.set_index("image_id")
    src = load_source("mirflickr", str(mirflickr_mini), relevant_r1=True)
    assert len(src.label_names) == 38 and "readme" not in {n.lower() for n in src.label_names}
    assert sum(n.endswith("_r1") for n in src.label_names) == 14
    for image_id, labels in src.records.set_index("image_id")["labels"].items():
        assert [x for x in labels if not x.endswith("_r1")] == base.loc[image_id, "labels"]
        assert {x.removesuffix("_r1") for x in labels if x.endswith("_r1")} <= set(labels)


@pytest.fixture
def damaged(tmp_path: Path, mirflickr_mini: Path) -> Path:
    """A writable copy of the fixture."""
    root = tmp_path / "m"
    shutil.copytree(mirflickr_mini, root)
    return root


def test_missing_files_and_bad_encodings_are_reported(damaged: Path, mirflickr_mini: Path) -> None:
    (damaged / "mirflickr" / "im961.jpg").unlink()
    (damaged / "mirflickr" / "meta" / "tags" / "tags963.txt").unlink()
    (damaged / "mirflickr" / "meta" / "tags" / "tags962.txt").write_bytes(b"caf\xe9\r\n\r\nsky\nsky\n")
    shutil.copy(damaged / "mirflickr" / "im964.jpg", damaged / "mirflickr" / "im0964.jpg")
    src = load_source("mirflickr", str(damaged))
    rows = src.records.set_index("image_id")
    original = load_source("mirflickr", str(mirflickr_mini)).records.set_index("image_id")
    assert rows.index.tolist() == [str(n) for n in range(962, 1001)]
    assert rows.loc["962", "tags"] == ["café", "sky"]
    assert rows.loc["963", "tags"] == [] and original.loc["963", "tags"] != []
    assert rows["labels"].tolist() == original["labels"].iloc[1:].tolist()
    assert rows.loc["964", "image_uri"] == str(damaged / "mirflickr" / "im0964.jpg")  # listing order: im0964 first
    tags = damaged / "mirflickr" / "meta" / "tags"
    assert sorted(src.skipped) == sorted([
        (str(damaged / "mirflickr" / "im964.jpg"), f"second file for image number 964; "
                                                   f"{damaged / 'mirflickr' / 'im0964.jpg'} kept"),
        (str(tags / "tags961.txt"), "image missing"),
    ])
    assert sorted(src.notes) == sorted([  # used, so notes, never counted as skips
        (str(tags / "tags962.txt"), "not UTF-8 (line 1); decoded as Latin-1"),
        (str(damaged / "mirflickr" / "im963.jpg"), "no tag file; kept with no tags"),
    ])


@pytest.mark.parametrize("relevant_r1", [False, True])
def test_a_missing_concept_file_is_an_error_naming_it(damaged: Path, relevant_r1: bool) -> None:
    (damaged / "mirflickr25k_annotations_v080" / ("dog_r1.txt" if relevant_r1 else "dog.txt")).unlink()
    with pytest.raises(TagcodeError, match=r"missing concept file\(s\) dog(_r1)?\.txt; the official layout has all "
                                           rf"{38 if relevant_r1 else 24}") as info:
        load_source("mirflickr", str(damaged), relevant_r1=relevant_r1)
    assert "\n" not in str(info.value)
    if relevant_r1:  # without the option the _r1 files are not needed
        assert len(load_source("mirflickr", str(damaged)).label_names) == 24


def test_missing_annotations_or_vocabulary_are_errors_naming_them(damaged: Path) -> None:
    (damaged / "mirflickr" / "doc" / "common_tags.txt").unlink()
    with pytest.raises(TagcodeError, match=r"doc/common_tags\.txt: missing"):
        load_source("mirflickr", str(damaged))
    shutil.rmtree(damaged / "mirflickr25k_annotations_v080")
    with pytest.raises(TagcodeError, match=r"missing concept file\(s\) animals\.txt, baby\.txt.*\(\+19 more\)"):
        load_source("mirflickr", str(damaged))


def test_bad_annotation_and_layout_errors(damaged: Path) -> None:
    (damaged / "mirflickr25k_annotations_v080" / "sky.txt").write_text("963\nim966\n")
    with pytest.raises(TagcodeError, match=r"sky\.txt: expected one image number per line, got 'im966'") as info:
        load_source("mirflickr", str(damaged))
    assert "\n" not in str(info.value)
    with pytest.raises(TagcodeError, match=r"no mirflickr/im<N>\.jpg images found"):
        load_source("mirflickr", str(damaged / "mirflickr"))
    with pytest.raises(TagcodeError, match="directory not found"):
        load_source("mirflickr", str(damaged / "absent"))
    with pytest.raises(TagcodeError, match="option 'relevant_r1' must be bool, got str"):
        load_source("mirflickr", str(damaged), relevant_r1="yes")
