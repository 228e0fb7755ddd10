"""Named split protocols: which images are queries, which form the database, which are trained on.

:func:`assign_split` adds two columns to a records frame (``image_id``, ``tags``, ``labels``, optionally
``origin``): ``split`` (``query`` / ``database`` / ``unused``) and ``train`` (bool, database rows only).
Nothing is dropped: an image a protocol cannot use is ``unused`` and counted in the report by reason.
Every option a protocol takes is a keyword with the protocol's default; an option the protocol does not
take is an error rather than silently ignored.

Common rules:

- Rows are visited in image-id order (digit runs compared as numbers, so ``"9" < "10"`` and numeric ids
  sort numerically), never in the order the frame happens to have, so a split depends only on the ids.
- Tags are compared with the vocabulary exactly, without lower-casing or any normalisation, as the WSHRCA
  code does (MIRFlickr's processed tags and its ``common_tags.txt`` are both lower-case already). Without a
  vocabulary, any tag counts.
- Queries must have ≥1 label (a query without labels has no relevant images, so no defined AP). Database
  images may lack labels (they are then never relevant: distractors). Training images are database images
  with ≥1 tag (in the vocabulary when one is given); tags are the only supervision, so an image without
  any cannot be trained on (and WSHRCA's attention returns NaN on one).

Protocols:

- ``wshrca`` (the WSHRCA code, MIRFlickr): pool = images with ≥1 vocabulary tag and ≥1 label; pool rows
  in id order are shuffled with ``random.seed(seed); random.shuffle(rows)`` (the authors' mechanism: they
  re-seed before each of their parallel lists, so all get this one permutation); train = database = the
  first ``n_train`` (16,000), queries = the next ``n_query`` (2,000), the rest of the pool unused.
  ``seed`` 66. Reproduces the MIRFlickr split exactly (tested on the real 20,015-image set).
- ``wshrca_nuswide``: the same with NUS-WIDE's settings, ``seed`` 25 and ``n_train`` 100,000. When the
  records have ``origin``, the pool lists ``database_img.txt`` images (``origin`` ``train``) before
  ``test_img.txt`` ones, as the authors concatenated those lists, each part in id order (the list files'
  own order is not kept by the source, so an exact NUS reproduction also needs lists in id order).
- ``wshrca_scaled`` / ``wshrca_nuswide_scaled``: the same shuffle, with the paper's sizes scaled to the
  pool: ``n_train`` = ⌊pool · 16,000/18,000⌋ (NUS-WIDE: ⌊pool · 100,000/102,000⌋), ``n_query`` the next
  ⌊pool · 2,000/18,000⌋ (⌊pool · 2,000/102,000⌋) images; for a subset of the dataset. The paper-size
  protocol on a pool too small for it is an error that names the scaled protocol and the preset using it.
- ``wsdhq`` (WSDHQ style, separate sets): ``n_query`` (2,000) queries drawn with
  ``numpy.random.default_rng(seed)`` (``seed`` 0) from the images with ≥1 label; the database is every other
  image (or its first ``n_database`` in id order); ``n_train`` training images are drawn from the database
  images with tags (default: all of them).
- ``wsdhq_nuswide``: the same with ``n_query`` 5,000 and ``n_train`` 10,000, the DeepHash/HashNet NUS-WIDE
  protocol that WSDHQ's logs suggest (inferred, low confidence: see specs/wsdhq.md §1.2).
- ``random`` (OpenClipArt, folder): as ``wsdhq`` with ``n_query`` 500.
- ``official``: the source's official test split (``origin == "test"``, e.g. Fashion-MNIST's test set or
  NUS-WIDE's test list) with ≥1 label are the queries (optionally ``n_query`` of them drawn with ``seed``),
  every other image is the database; ``n_database`` and ``n_train`` as in ``wsdhq``.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tagcode.data.sources.base import natural_key
from tagcode.errors import TagcodeError, check_unique_ids
from tagcode.registry import Registry

Split = tuple[np.ndarray, np.ndarray, dict[str, Any]]
SPLIT_PROTOCOLS: Registry[Split] = Registry("split protocol")
REQUIRED_COLUMNS = ("image_id", "tags", "labels")


@dataclass(frozen=True)
class _Rows:
    """Per-row facts the protocols need; ``order`` lists row positions in image-id order."""

    order: np.ndarray
    has_tags: np.ndarray
    in_vocabulary: np.ndarray
    has_labels: np.ndarray

    def tag_reason(self) -> np.ndarray:
        """Why each row cannot be trained on (``""`` when it can)."""
        reason = np.full(len(self.order), "", dtype=object)
        reason[~self.in_vocabulary] = "only out-of-vocabulary tags"
        reason[~self.has_tags] = "no tags"
        return reason


def _rows(records: pd.DataFrame, vocabulary: list[str] | None) -> _Rows:
    """Compute the per-row facts of ``records`` (tags checked against ``vocabulary`` exactly)."""
    tags = [_as_list(t) for t in records["tags"]]
    vocab = None if vocabulary is None else {str(t) for t in vocabulary}
    has_tags = np.array([len(t) > 0 for t in tags], dtype=bool)
    in_vocabulary = has_tags if vocab is None else np.array([any(str(x) in vocab for x in t) for t in tags], bool)
    has_labels = np.array([len(_as_list(v)) > 0 for v in records["labels"]], dtype=bool)
    ids = [str(i) for i in records["image_id"]]
    order = np.array(sorted(range(len(ids)), key=lambda i: natural_key(ids[i])), dtype=np.int64)
    return _Rows(order, has_tags, in_vocabulary, has_labels)


def _as_list(value: Any) -> list:
    """A tags/labels cell as a list; a missing cell (None, NaN) is an empty list."""
    return list(value) if isinstance(value, list | tuple | np.ndarray | pd.Series) else []


# A paper-size protocol → (the protocol that scales it to the data, the dataset preset that uses that one).
SCALED = {"wshrca": ("wshrca_scaled", "mirflickr_subset"),
          "wshrca_nuswide": ("wshrca_nuswide_scaled", "nuswide_subset")}


def _need(available: int, needed: int, protocol: str, what: str) -> None:
    """One-line error when a protocol needs more images than there are (naming the scaled protocol, if any)."""
    if needed > available:
        hint = ""
        if protocol in SCALED:
            scaled, dataset = SCALED[protocol]
            hint = (f"; for a subset use protocol {scaled!r} (dataset preset {dataset!r}), whose sizes follow the "
                    "data")
        raise TagcodeError(f"split {protocol!r}: {what} needs {needed} images but only {available} are "
                           f"available{hint}")


def _database_and_train(split: np.ndarray, rows: _Rows, rng: np.random.Generator, protocol: str,
                        n_database: int | None, n_train: int | None) -> tuple[np.ndarray, dict[str, Any]]:
    """Cap the database at its first ``n_database`` rows in id order and draw ``n_train`` trainable ones."""
    database = rows.order[split[rows.order] == "database"]
    excluded: dict[str, int] = {}
    if n_database is not None:
        _need(len(database), n_database, protocol, "the database")
        split[database[n_database:]] = "unused"
        excluded["beyond n_database"] = len(database) - n_database
        database = database[:n_database]
    reason = rows.tag_reason()
    trainable = database[reason[database] == ""]
    n_train = len(trainable) if n_train is None else n_train
    _need(len(trainable), n_train, protocol, "training (database images with tags)")
    train = np.zeros(len(split), dtype=bool)
    train[trainable if n_train == len(trainable) else rng.choice(trainable, size=n_train, replace=False)] = True
    not_trained = Counter(reason[database[reason[database] != ""]])
    if n_train < len(trainable):
        not_trained["not drawn for training"] = len(trainable) - n_train
    return train, {"n_database": len(database), "n_train": n_train, "excluded": excluded,
                   "not_trained": dict(not_trained)}


def wshrca(records: pd.DataFrame, *, vocabulary: list[str] | None = None, seed: int = 66, n_train: int = 16_000,
           n_query: int = 2_000, name: str = "wshrca", scale: bool = False) -> Split:
    """WSHRCA: one ``random.shuffle`` of the clean pool; train = database, then the queries (module docstring).
    With ``scale``, ``n_train`` and ``n_query`` are the paper's sizes, scaled to the pool's size."""
    rows = _rows(records, vocabulary)
    reason = rows.tag_reason()
    reason[(reason == "") & ~rows.has_labels] = "no labels"
    order = rows.order
    if "origin" in records.columns:  # NUS-WIDE: the database list came before the test list
        order = order[np.argsort(records["origin"].to_numpy()[order] == "test", kind="stable")]
    pool = [int(i) for i in order if reason[i] == ""]
    if scale:
        total = n_train + n_query
        n_train, n_query = len(pool) * n_train // total, len(pool) * n_query // total
        if n_query < 1 or n_train < 1:
            raise TagcodeError(f"split {name!r}: a pool of {len(pool)} images (≥1 vocabulary tag and ≥1 label) "
                               "is too small to scale to")
    _need(len(pool), n_train + n_query, name, f"train ({n_train}) + query ({n_query})")
    random.Random(seed).shuffle(pool)  # == random.seed(seed); random.shuffle(pool), without the global state
    split = np.full(len(records), "unused", dtype=object)
    split[pool[:n_train]] = "database"
    split[pool[n_train:n_train + n_query]] = "query"
    excluded = dict(Counter(reason[reason != ""]))
    excluded["beyond train + query"] = len(pool) - n_train - n_query
    report = {"seed": seed, "n_train": n_train, "n_query": n_query, "pool": len(pool), "excluded": excluded,
              "not_trained": {}}
    return split, split == "database", report


def wsdhq(records: pd.DataFrame, *, vocabulary: list[str] | None = None, seed: int = 0, n_query: int = 2_000,
          n_database: int | None = None, n_train: int | None = None) -> Split:
    """Separate sets: seeded random labelled queries, the rest the database, training drawn from it."""
    return _drawn(records, "wsdhq", vocabulary, seed, n_query, n_database, n_train)


def random_split(records: pd.DataFrame, *, vocabulary: list[str] | None = None, seed: int = 0, n_query: int = 500,
                 n_database: int | None = None, n_train: int | None = None) -> Split:
    """The default for OpenClipArt and folders: 500 seeded random labelled queries, the rest the database."""
    return _drawn(records, "random", vocabulary, seed, n_query, n_database, n_train)


def _drawn(records: pd.DataFrame, protocol: str, vocabulary: list[str] | None, seed: int, n_query: int,
           n_database: int | None, n_train: int | None) -> Split:
    """``wsdhq`` and ``random``: ``n_query`` labelled queries drawn with numpy, then database and train."""
    rows = _rows(records, vocabulary)
    labelled = rows.order[rows.has_labels[rows.order]]
    _need(len(labelled), n_query, protocol, "the query set (images with ≥1 label)")
    rng = np.random.default_rng(seed)
    split = np.full(len(records), "database", dtype=object)
    split[rng.choice(labelled, size=n_query, replace=False)] = "query"
    train, report = _database_and_train(split, rows, rng, protocol, n_database, n_train)
    return split, train, {"seed": seed, "n_query": n_query, **report}


def official(records: pd.DataFrame, *, vocabulary: list[str] | None = None, seed: int = 0,
             n_query: int | None = None, n_database: int | None = None, n_train: int | None = None) -> Split:
    """The source's official test split (``origin == "test"``) as queries, everything else the database."""
    if "origin" not in records.columns:
        raise TagcodeError("split 'official': this source has no official query split (no 'origin' column)")
    rows = _rows(records, vocabulary)
    test = records["origin"].to_numpy() == "test"
    split = np.where(test, "unused", "database").astype(object)
    candidates = rows.order[test[rows.order] & rows.has_labels[rows.order]]
    excluded = {"query without labels": int((test & ~rows.has_labels).sum())}
    rng = np.random.default_rng(seed)
    if n_query is None:
        chosen = candidates
    else:
        _need(len(candidates), n_query, "official", "the query set (official test images with ≥1 label)")
        chosen = rng.choice(candidates, size=n_query, replace=False)
        excluded["beyond n_query"] = len(candidates) - n_query
    split[chosen] = "query"
    train, report = _database_and_train(split, rows, rng, "official", n_database, n_train)
    report["excluded"] = {**excluded, **report["excluded"]}
    return split, train, {"seed": seed, "n_query": len(chosen), **report}


def _scaled(fn: Callable[..., Split], name: str, *, seed: int, n_train: int = 16_000, n_query: int = 2_000
            ) -> Callable[..., Split]:
    """``fn`` with its paper sizes scaled to the pool; it takes only ``seed`` (the sizes follow the data)."""

    def protocol(records: pd.DataFrame, *, vocabulary: list[str] | None = None, seed: int = seed) -> Split:
        return fn(records, vocabulary=vocabulary, seed=seed, n_train=n_train, n_query=n_query, name=name, scale=True)

    protocol.__doc__ = f"{name}: the paper's split with sizes scaled to the pool (module docstring)."
    return protocol


SPLIT_PROTOCOLS.register("wshrca")(wshrca)
SPLIT_PROTOCOLS.register("wshrca_nuswide")(functools.partial(wshrca, seed=25, n_train=100_000, name="wshrca_nuswide"))
SPLIT_PROTOCOLS.register("wshrca_scaled")(_scaled(wshrca, "wshrca_scaled", seed=66))
SPLIT_PROTOCOLS.register("wshrca_nuswide_scaled")(_scaled(wshrca, "wshrca_nuswide_scaled", seed=25, n_train=100_000))
SPLIT_PROTOCOLS.register("wsdhq")(wsdhq)
SPLIT_PROTOCOLS.register("wsdhq_nuswide")(functools.partial(wsdhq, n_query=5_000, n_train=10_000))
SPLIT_PROTOCOLS.register("random")(random_split)
SPLIT_PROTOCOLS.register("official")(official)


def assign_split(records: pd.DataFrame, protocol: str, *, vocabulary: list[str] | None = None,
                 seed: int | None = None, n_query: int | None = None, n_train: int | None = None,
                 n_database: int | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return ``records`` with ``split`` and ``train`` columns under ``protocol``, and a report.

    ``None`` options take the protocol's default. The report has the options used, ``counts`` per split,
    ``train``, and by reason the images made ``unused`` (``excluded``) and database images not trained on.
    """
    fn = SPLIT_PROTOCOLS.get(protocol)
    missing = [c for c in REQUIRED_COLUMNS if c not in records.columns]
    if missing:
        raise TagcodeError(f"split {protocol!r}: the records lack columns {missing}")
    check_unique_ids(records["image_id"], f"split {protocol!r}")
    sizes = {"seed": seed, "n_query": n_query, "n_train": n_train, "n_database": n_database}
    options = {k: v for k, v in sizes.items() if v is not None}
    accepted = inspect.signature(fn).parameters
    for key, value in options.items():
        if key not in accepted:
            takes = ", ".join(p for p in accepted if p in sizes)
            raise TagcodeError(f"split {protocol!r}: option {key} is not used by this protocol (it takes {takes})")
        if key != "seed" and value < 0:
            raise TagcodeError(f"split {protocol!r}: {key} must be ≥ 0, got {value}")
    split, train, report = fn(records, vocabulary=vocabulary, **options)
    for key in ("excluded", "not_trained"):
        report[key] = {reason: int(n) for reason, n in report[key].items() if n}
    out = records.copy()
    out["split"] = split.astype(str)
    out["train"] = np.asarray(train, dtype=bool) & (out["split"] == "database").to_numpy()
    counts = {s: int((out["split"] == s).sum()) for s in ("query", "database", "unused")}
    return out, {"protocol": protocol, **report, "counts": counts, "train": int(out["train"].sum())}
