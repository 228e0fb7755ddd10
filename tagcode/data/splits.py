"""Named split protocols: which images are queries, which form the database, which train.

- ``random`` (OpenClipArt, folder): ``n_query`` (500) images with ≥1 label drawn with a seeded numpy
  generator; the rest is the database; train = database.
- ``wshrca`` (the WSHRCA code): pool = images with ≥1 vocabulary tag and ≥1 label, sorted by id, then
  Python's ``random.seed(seed); random.shuffle(pool)``; train = database = the first ``n_train``
  (MIRFlickr 16,000 with seed 66; NUS-WIDE 100,000 with seed 25), queries = the next ``n_query`` (2,000).
- ``wsdhq`` (WSDHQ style, separate sets): ``n_query`` (2,000) labelled queries by a seeded draw, the database
  is the rest (or its first ``n_database``), ``n_train`` training images drawn from it (default: all).
- ``official``: the source's official test split (``origin == "test"``) as queries, the rest the database.

Images outside the pool are kept with split ``unused`` and counted by reason in the report.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tagcode.errors import TagcodeError
from tagcode.registry import Registry

SplitFn = Callable[..., tuple[np.ndarray, np.ndarray, dict[str, Any]]]
SPLIT_PROTOCOLS: Registry[tuple[np.ndarray, np.ndarray, dict[str, Any]]] = Registry("split protocol")


def _id_order(ids: pd.Series) -> np.ndarray:
    """Row order sorted by image id: numerically when every id is a number, else as strings."""
    numeric = pd.to_numeric(ids, errors="coerce")
    key = numeric if numeric.notna().all() else ids.astype(str)
    return np.argsort(key.to_numpy(), kind="stable")


def _need(available: int, needed: int, protocol: str, what: str) -> None:
    if needed > available:
        raise TagcodeError(f"split {protocol!r}: {what} needs {needed} images but only {available} are available")


def _has_labels(records: pd.DataFrame) -> np.ndarray:
    return np.fromiter((len(v) > 0 for v in records["labels"]), dtype=bool, count=len(records))


@SPLIT_PROTOCOLS.register("random")
def _random(records: pd.DataFrame, *, seed: int | None = None, n_query: int | None = None,
            **_: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    seed, n_query = 0 if seed is None else seed, 500 if n_query is None else n_query
    labelled = np.flatnonzero(_has_labels(records))
    _need(len(labelled), n_query, "random", "the query set (images with ≥1 label)")
    split = np.full(len(records), "database", dtype=object)
    split[np.random.default_rng(seed).choice(labelled, size=n_query, replace=False)] = "query"
    return split, split == "database", {"seed": seed, "n_query": n_query}


@SPLIT_PROTOCOLS.register("wshrca")
def _wshrca(records: pd.DataFrame, *, vocabulary: Sequence[str] | None = None, seed: int | None = None,
            n_query: int | None = None, n_train: int | None = None,
            **_: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    seed = 66 if seed is None else seed
    n_query, n_train = 2000 if n_query is None else n_query, 16000 if n_train is None else n_train
    vocab = set(vocabulary) if vocabulary is not None else None
    has_tag = np.fromiter((bool(t) if vocab is None else any(x in vocab for x in t) for t in records["tags"]),
                          dtype=bool, count=len(records))
    has_label = _has_labels(records)
    order = _id_order(records["image_id"])
    pool = [int(i) for i in order if has_tag[i] and has_label[i]]
    _need(len(pool), n_train + n_query, "wshrca", f"train ({n_train}) + query ({n_query})")
    random.seed(seed)
    random.shuffle(pool)  # the authors' mechanism, so their permutation is reproduced exactly
    split = np.full(len(records), "unused", dtype=object)
    split[pool[:n_train]] = "database"
    split[pool[n_train:n_train + n_query]] = "query"
    report = {"seed": seed, "n_train": n_train, "n_query": n_query, "pool": len(pool),
              "excluded": {"no vocabulary tag": int((~has_tag).sum()),
                           "no label": int((has_tag & ~has_label).sum())},
              "unused_in_pool": len(pool) - n_train - n_query}
    return split, split == "database", report


@SPLIT_PROTOCOLS.register("wsdhq")
def _wsdhq(records: pd.DataFrame, *, seed: int | None = None, n_query: int | None = None,
           n_train: int | None = None, n_database: int | None = None,
           **_: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    seed, n_query = 0 if seed is None else seed, 2000 if n_query is None else n_query
    rng = np.random.default_rng(seed)
    labelled = np.flatnonzero(_has_labels(records))
    _need(len(labelled), n_query, "wsdhq", "the query set (images with ≥1 label)")
    split = np.full(len(records), "database", dtype=object)
    split[rng.choice(labelled, size=n_query, replace=False)] = "query"
    db = np.flatnonzero(split == "database")
    if n_database is not None:
        _need(len(db), n_database, "wsdhq", "the database")
        split[db[n_database:]] = "unused"
        db = db[:n_database]
    n_train = len(db) if n_train is None else n_train
    _need(len(db), n_train, "wsdhq", "training (drawn from the database)")
    train = np.zeros(len(records), dtype=bool)
    train[rng.choice(db, size=n_train, replace=False)] = True
    return split, train, {"seed": seed, "n_query": n_query, "n_database": len(db), "n_train": n_train}


@SPLIT_PROTOCOLS.register("official")
def _official(records: pd.DataFrame, **_: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    if "origin" not in records.columns:
        raise TagcodeError("split 'official': this source has no official query split (no 'origin' column)")
    split = np.where(records["origin"].to_numpy() == "test", "query", "database").astype(object)
    return split, split == "database", {"origin_test": int((split == "query").sum())}


def assign_split(records: pd.DataFrame, protocol: str, *, vocabulary: Sequence[str] | None = None,
                 seed: int | None = None, n_query: int | None = None, n_train: int | None = None,
                 n_database: int | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Add ``split`` and ``train`` columns to ``records`` under ``protocol``; return it with a report."""
    fn = SPLIT_PROTOCOLS.get(protocol)
    split, train, report = fn(records, vocabulary=vocabulary, seed=seed, n_query=n_query, n_train=n_train,
                              n_database=n_database)
    out = records.copy()
    out["split"], out["train"] = split.astype(str), np.asarray(train, dtype=bool) & (split == "database")
    report = {"protocol": protocol, **report,
              "counts": {s: int((out["split"] == s).sum()) for s in ("query", "database", "unused")},
              "train": int(out["train"].sum())}
    return out, report
