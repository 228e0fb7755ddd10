"""Split protocols: determinism, disjointness, counts, and the WSHRCA split reproduced on real data."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from tagcode.data.splits import assign_split
from tagcode.errors import TagcodeError


def _records(n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "image_id": [str(i) for i in range(n)],
        "tags": [["a", "b"] if rng.random() > 0.2 else ["zzz"] for _ in range(n)],
        "labels": [["x"] if rng.random() > 0.1 else [] for _ in range(n)],
        "origin": ["test" if i % 10 == 0 else "train" for i in range(n)],
    })


@pytest.mark.parametrize("protocol", ["random", "wsdhq", "wshrca", "official"])
def test_split_invariants_and_determinism(protocol: str) -> None:
    kw = {"random": {"n_query": 10}, "wsdhq": {"n_query": 10, "n_train": 30},
          "wshrca": {"n_query": 10, "n_train": 40, "vocabulary": ["a"]}, "official": {}}[protocol]
    a, report = assign_split(_records(), protocol, seed=3, **kw)
    b, _ = assign_split(_records(), protocol, seed=3, **kw)
    assert a["split"].tolist() == b["split"].tolist() and a["train"].tolist() == b["train"].tolist()
    assert not (a["train"] & (a["split"] != "database")).any()
    assert set(a["split"]) <= {"query", "database", "unused"}
    assert report["counts"]["query"] == int((a["split"] == "query").sum())
    if protocol != "official":
        c, _ = assign_split(_records(), protocol, seed=4, **kw)
        assert c["split"].tolist() != a["split"].tolist()
        assert all(len(v) > 0 for v in a.loc[a["split"] == "query", "labels"])


def test_wshrca_filters_and_counts() -> None:
    recs = _records()
    out, report = assign_split(recs, "wshrca", vocabulary=["a"], seed=66, n_train=40, n_query=10)
    pool = [(t == ["a", "b"]) and bool(lab) for t, lab in zip(recs["tags"], recs["labels"], strict=True)]
    assert report["pool"] == sum(pool)
    assert (out["split"] == "database").sum() == 40 == out["train"].sum()
    assert (out.loc[~np.array(pool), "split"] == "unused").all()
    with pytest.raises(TagcodeError, match=r"needs 1000 images but only \d+ are available"):
        assign_split(recs, "wshrca", vocabulary=["a"], n_train=990, n_query=10)


def test_wsdhq_database_cap_and_train_subset() -> None:
    out, _ = assign_split(_records(), "wsdhq", seed=0, n_query=10, n_database=50, n_train=20)
    assert (out["split"] == "database").sum() == 50 and out["train"].sum() == 20
    assert (out["split"] == "unused").sum() == 40


def test_official_needs_origin() -> None:
    out, _ = assign_split(_records(), "official")
    assert (out["split"] == "query").sum() == 10
    with pytest.raises(TagcodeError, match="no official query split"):
        assign_split(_records().drop(columns="origin"), "official")


def test_unknown_protocol() -> None:
    with pytest.raises(TagcodeError, match=r"unknown split protocol 'wshcra'.*did you mean 'wshrca'"):
        assign_split(_records(), "wshcra")


def test_wshrca_reproduces_the_authors_permutation_on_real_mirflickr(shared_dir) -> None:
    z = np.load(shared_dir / "data" / "mirflickr20015_tags_labels.npz")
    concepts = [str(c) for c in z["concepts"]]
    records = pd.DataFrame({
        "image_id": [str(i) for i in z["image_id"]],
        "tags": [s.split(",") for s in z["tags_raw"]],
        "labels": [[concepts[j] for j in np.flatnonzero(row)] for row in z["labels"]],
    })
    out, report = assign_split(records, "wshrca", vocabulary=[str(t) for t in z["tag_vocab"]], seed=66)
    assert report["pool"] == 20015
    perm = list(range(20015))
    random.seed(66)
    random.shuffle(perm)
    ids = records["image_id"].to_numpy()
    assert set(out.loc[out["split"] == "query", "image_id"]) == set(ids[perm[16000:18000]])
    assert set(out.loc[out["train"], "image_id"]) == set(ids[perm[:16000]])
