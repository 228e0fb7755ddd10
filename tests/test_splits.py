"""Split protocols: determinism, disjointness, counts, filter reasons, and the WSHRCA split on real data."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tagcode.data.splits import SPLIT_PROTOCOLS, assign_split
from tagcode.errors import TagcodeError


def _records(n: int = 120) -> pd.DataFrame:
    """Rows cycle through: good, no tags, only out-of-vocabulary tags, no labels (every 7th), official test."""
    rng = np.random.default_rng(1)
    tags = [["a", "b"] if i % 5 else (["zzz"] if i % 10 else []) for i in range(n)]
    return pd.DataFrame({
        "image_id": [str(i) for i in range(n)],
        "tags": tags,
        "labels": [[] if i % 7 == 3 else [str(rng.integers(3))] for i in range(n)],
        "origin": ["test" if i % 6 == 0 else "train" for i in range(n)],
    })


_OPTIONS = {
    "random": {"n_query": 10, "vocabulary": ["a"]},
    "wsdhq": {"n_query": 10, "n_train": 30, "vocabulary": ["a"]},
    "wsdhq_nuswide": {"n_query": 10, "n_train": 30, "vocabulary": ["a"]},
    "wshrca": {"n_query": 10, "n_train": 40, "vocabulary": ["a"]},
    "wshrca_nuswide": {"n_query": 10, "n_train": 40, "vocabulary": ["a"]},
    "wshrca_scaled": {"vocabulary": ["a"]},
    "wshrca_nuswide_scaled": {"vocabulary": ["a"]},
    "official": {"n_query": 12, "n_database": 60, "n_train": 20, "vocabulary": ["a"]},
}


def test_every_registered_protocol_is_covered() -> None:
    assert set(SPLIT_PROTOCOLS.names()) == set(_OPTIONS)


@pytest.mark.parametrize("protocol", sorted(_OPTIONS))
def test_split_invariants_and_determinism(protocol: str) -> None:
    kw = _OPTIONS[protocol]
    a, report = assign_split(_records(), protocol, seed=3, **kw)
    b, _ = assign_split(_records(), protocol, seed=3, **kw)
    assert a["split"].tolist() == b["split"].tolist() and a["train"].tolist() == b["train"].tolist()
    c, _ = assign_split(_records(), protocol, seed=4, **kw)
    assert c["split"].tolist() != a["split"].tolist()
    query = set(a.loc[a["split"] == "query", "image_id"])
    database = set(a.loc[a["split"] == "database", "image_id"])
    assert query and database and not query & database
    assert set(a.loc[a["train"], "image_id"]) <= database
    assert set(a["split"]) <= {"query", "database", "unused"} and a["train"].dtype == bool
    assert report["counts"] == {s: int((a["split"] == s).sum()) for s in ("query", "database", "unused")}
    assert report["train"] == int(a["train"].sum()) and report["protocol"] == protocol
    assert len(query) == kw.get("n_query", report["n_query"])
    assert all(len(v) > 0 for v in a.loc[a["split"] == "query", "labels"])  # queries need labels
    assert all("a" in t for t in a.loc[a["train"], "tags"])  # training images have in-vocabulary tags
    vocab_free = assign_split(_records(), protocol, seed=3, **{**kw, "vocabulary": None})[0]
    assert all(len(t) > 0 for t in vocab_free.loc[vocab_free["train"], "tags"])
    assert a.drop(columns=["split", "train"]).equals(_records())  # the input columns are untouched


@pytest.mark.parametrize("protocol", sorted(_OPTIONS))
def test_split_depends_on_the_ids_not_the_row_order(protocol: str) -> None:
    records = _records()
    shuffled = records.sample(frac=1.0, random_state=0)
    a, _ = assign_split(records, protocol, seed=3, **_OPTIONS[protocol])
    b, _ = assign_split(shuffled, protocol, seed=3, **_OPTIONS[protocol])
    b = b.set_index("image_id").loc[a["image_id"]]
    assert a["split"].tolist() == b["split"].tolist() and a["train"].tolist() == b["train"].tolist()


def test_wshrca_filters_unused_by_reason_and_counts() -> None:
    recs = _records()
    state = random.getstate()
    out, report = assign_split(recs.drop(columns="origin"), "wshrca", vocabulary=["a"], seed=66, n_train=40,
                               n_query=10)
    assert random.getstate() == state  # the authors' shuffle, without touching the global generator
    i = np.arange(len(recs))
    no_tags, oov = i % 10 == 0, (i % 5 == 0) & (i % 10 != 0)
    no_labels = (i % 7 == 3) & ~no_tags & ~oov
    pool = ~no_tags & ~oov & ~no_labels
    assert report["pool"] == pool.sum() == 83
    assert report["excluded"] == {"no tags": no_tags.sum(), "only out-of-vocabulary tags": oov.sum(),
                                  "no labels": no_labels.sum(), "beyond train + query": 33}
    assert (out.loc[~pool, "split"] == "unused").all() and len(out) == len(recs)  # kept, not dropped
    assert (out["split"] == "database").sum() == 40 == out["train"].sum()
    assert report["counts"] == {"query": 10, "database": 40, "unused": 70}
    expected = [str(j) for j in np.flatnonzero(pool)]  # pool in id order, then the authors' shuffle
    random.seed(66)
    random.shuffle(expected)
    assert set(out.loc[out["train"], "image_id"]) == set(expected[:40])
    assert set(out.loc[out["split"] == "query", "image_id"]) == set(expected[40:50])


def test_wshrca_needs_enough_images() -> None:
    with pytest.raises(TagcodeError, match=r"^split 'wshrca': train \(990\) \+ query \(10\) needs 1000 images but "
                                           r"only 83 are available; for a subset use protocol 'wshrca_scaled' "
                                           r"\(dataset preset 'mirflickr_subset'\), whose sizes follow the data$"):
        assign_split(_records(), "wshrca", vocabulary=["a"], n_train=990, n_query=10)
    with pytest.raises(TagcodeError, match="needs 18000 images but only 83"):
        assign_split(_records(), "wshrca", vocabulary=["a"])  # the MIRFlickr defaults on a small set
    with pytest.raises(TagcodeError, match=r"needs 102000 images but only 83.*'nuswide_subset'"):
        assign_split(_records(), "wshrca_nuswide", vocabulary=["a"])


def test_scaled_wshrca_keeps_the_papers_proportions_and_shuffle() -> None:
    frame, report = assign_split(_records(), "wshrca_scaled", vocabulary=["a"])
    assert report["pool"] == 83 and report["n_train"] == 83 * 16000 // 18000 == 73
    assert report["n_query"] == 83 * 2000 // 18000 == 9 and report["counts"]["query"] == 9
    same, _ = assign_split(_records(), "wshrca", vocabulary=["a"], n_train=73, n_query=9)
    assert frame["split"].tolist() == same["split"].tolist()  # the paper's shuffle, only the sizes scaled
    with pytest.raises(TagcodeError, match=r"option n_query is not used by this protocol \(it takes seed\)"):
        assign_split(_records(), "wshrca_scaled", vocabulary=["a"], n_query=5)
    with pytest.raises(TagcodeError, match="too small to scale to"):
        assign_split(_records(8), "wshrca_scaled", vocabulary=["a"])


def test_wshrca_nuswide_lists_the_database_before_the_test_images() -> None:
    recs = _records()
    out, report = assign_split(recs, "wshrca_nuswide", vocabulary=["a"], n_train=40, n_query=10)
    assert report["seed"] == 25
    good = [str(j) for j in range(len(recs)) if j % 5 and j % 7 != 3]
    pool = [x for x in good if int(x) % 6] + [x for x in good if int(x) % 6 == 0]
    random.seed(25)
    random.shuffle(pool)
    assert set(out.loc[out["split"] == "query", "image_id"]) == set(pool[40:50])


def test_wsdhq_database_cap_and_training_draw() -> None:
    recs = _records()
    out, report = assign_split(recs, "wsdhq", seed=0, n_query=10, n_database=50, n_train=20, vocabulary=["a"])
    assert (out["split"] == "database").sum() == 50 and out["train"].sum() == 20
    assert (out["split"] == "unused").sum() == 60 and report["excluded"] == {"beyond n_database": 60}
    rest = [int(x) for x in out.loc[out["split"] != "query", "image_id"]]
    assert sorted(int(x) for x in out.loc[out["split"] == "database", "image_id"]) == sorted(rest)[:50]
    db = out[out["split"] == "database"]
    assert any(len(v) == 0 for v in db["labels"])  # the database may hold unlabelled images
    reasons = report["not_trained"]
    assert reasons["no tags"] + reasons["only out-of-vocabulary tags"] == sum("a" not in t for t in db["tags"])
    assert reasons["not drawn for training"] == sum("a" in t for t in db["tags"]) - 20
    default, rep = assign_split(recs, "wsdhq", n_query=10)
    assert rep["seed"] == 0 and default["train"].sum() == sum(
        len(t) > 0 for t in default.loc[default["split"] == "database", "tags"])
    with pytest.raises(TagcodeError, match=r"training \(database images with tags\) needs 1000 images"):
        assign_split(recs, "wsdhq", n_query=10, n_train=1000)


def test_random_defaults_and_query_pool() -> None:
    recs = pd.concat([_records()] * 6, ignore_index=True)
    recs["image_id"] = [f"img{i}" for i in range(len(recs))]
    _, report = assign_split(recs, "random")
    assert report["seed"] == 0 and report["counts"]["query"] == 500
    with pytest.raises(TagcodeError, match=r"^split 'random': the query set \(images with ≥1 label\) needs 700 "):
        assign_split(recs, "random", n_query=700)


def test_official_uses_the_origin_column() -> None:
    recs = _records()
    out, report = assign_split(recs, "official")
    test = (np.arange(len(recs)) % 6 == 0)
    labelled = np.array([len(v) > 0 for v in recs["labels"]])
    assert (out["split"] == "query").to_numpy().tolist() == (test & labelled).tolist()
    assert (out.loc[test & ~labelled, "split"] == "unused").all()
    assert report["excluded"] == {"query without labels": int((test & ~labelled).sum())}
    assert (out.loc[~test, "split"] == "database").all()
    with pytest.raises(TagcodeError, match=r"^split 'official': this source has no official query split"):
        assign_split(recs.drop(columns="origin"), "official")


def test_bad_requests_are_one_line_errors() -> None:
    with pytest.raises(TagcodeError, match=r"unknown split protocol 'wshcra'.*did you mean 'wshrca'"):
        assign_split(_records(), "wshcra")
    with pytest.raises(TagcodeError, match=r"option n_database is not used by this protocol \(it takes seed, "):
        assign_split(_records(), "wshrca", n_database=10)
    with pytest.raises(TagcodeError, match="n_query must be ≥ 0, got -1"):
        assign_split(_records(), "random", n_query=-1)
    dup = _records()
    dup.loc[5, "image_id"] = "4"
    with pytest.raises(TagcodeError, match=r"duplicate image ids, e.g. '4' \(1 duplicates\)"):
        assign_split(dup, "random", n_query=5)
    with pytest.raises(TagcodeError, match=r"the records lack columns \['labels'\]"):
        assign_split(_records().drop(columns="labels"), "random", n_query=5)


def test_wshrca_reproduces_the_authors_permutation_on_real_mirflickr(shared_dir: Path) -> None:
    z = np.load(shared_dir / "data" / "mirflickr20015_tags_labels.npz")
    concepts = [str(c) for c in z["concepts"]]
    records = pd.DataFrame({
        "image_id": [str(i) for i in z["image_id"]],
        "tags": [str(s).split(",") for s in z["tags_raw"]],
        "labels": [[concepts[j] for j in np.flatnonzero(row)] for row in z["labels"]],
    })
    out, report = assign_split(records, "wshrca", vocabulary=[str(t) for t in z["tag_vocab"]], seed=66)
    assert report["pool"] == 20015 and report["excluded"] == {"beyond train + query": 2015}
    assert report["counts"] == {"query": 2000, "database": 16000, "unused": 2015} and report["train"] == 16000
    perm = list(range(20015))
    random.seed(66)
    random.shuffle(perm)
    ids = records["image_id"].tolist()
    assert sorted(out.loc[out["split"] == "query", "image_id"]) == sorted(ids[i] for i in perm[16000:18000])
    assert sorted(out.loc[out["train"], "image_id"]) == sorted(ids[i] for i in perm[:16000])
    assert (out["train"] == (out["split"] == "database")).all()
