"""The manifest keeps labels away from training-side code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tagcode.data.manifest import read_labels, read_manifest, write_manifest
from tagcode.errors import LabelAccessError, TagcodeError


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "image_id": ["a", "b", "c", "d"],
        "image_uri": ["a.png", "b.png", "c.png", "d.png"],
        "tags": [["dog", "grass"], [], ["cat"], ["sky"]],
        "labels": [["animal"], ["animal", "plant"], [], ["sky"]],
        "split": ["query", "database", "database", "unused"],
        "train": [False, True, True, False],
    })


def test_training_view_has_no_labels(tmp_path: Path) -> None:
    path = tmp_path / "manifest.parquet"
    write_manifest(path, _frame(), {"label_names": ["animal", "plant", "sky"], "source": "test"})
    m = read_manifest(path)
    assert "labels" not in m.frame.columns
    with pytest.raises(LabelAccessError):
        _ = m.labels
    assert list(m.ids_of("train")) == ["b", "c"]
    assert list(m.ids_of("query")) == ["a"]
    assert m.frame["tags"].tolist() == [["dog", "grass"], [], ["cat"], ["sky"]]
    assert m.meta["source"] == "test"


def test_labels_for_evaluation_by_id(tmp_path: Path) -> None:
    path = tmp_path / "manifest.parquet"
    write_manifest(path, _frame(), {"label_names": ["animal", "plant", "sky"]})
    y, names = read_labels(path, ["b", "a", "c"])
    assert names == ["animal", "plant", "sky"]
    np.testing.assert_array_equal(y, [[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    with pytest.raises(TagcodeError, match="no labels for image id 'zz'"):
        read_labels(path, ["zz"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(image_id=["a", "a", "c", "d"]), "duplicate image ids, e.g. 'a'"),
        (lambda f: f.assign(split=["query", "db", "database", "unused"]), "unknown split values"),
        (lambda f: f.assign(train=[True, True, True, False]), "training images must be database images"),
    ],
)
def test_invalid_manifests_are_refused(tmp_path: Path, change, message: str) -> None:
    path = tmp_path / "manifest.parquet"
    with pytest.raises(TagcodeError, match=message):
        write_manifest(path, change(_frame()))
    assert not path.exists()


def test_not_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(TagcodeError, match="manifest not found"):
        read_manifest(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(TagcodeError, match="not a readable parquet manifest"):
        read_manifest(tmp_path / "junk.parquet")
