"""Tag cleaning: normalise raw user tags, filter them by named rules, record why each one was dropped.

Normalisation (each step switchable): NFKC (full-width letters, ligatures) + lower-case + strip; internal
whitespace collapsed to one space and surrounding punctuation stripped; optionally multi-word tags split
on whitespace, ``_``, ``-`` and ``/`` (``"new_york-city"`` → ``new``, ``york``, ``city``).

Filters apply in this order; a (part of a) raw tag is dropped by the first that fails, with that rule as
the reason: ``non_word`` (nothing left after normalisation, or no letter at all, e.g. ``2007``, ``360°``,
when ``drop_numeric``: such tags name dates and counters, not content), ``too_short``, ``stop_list``,
``blocked_category_name`` (leakage filter: a tag equal to a ground-truth category name would hand the
evaluation labels to training), ``not_in_vocabulary``, ``min_freq`` (counted on training images only, so
query and database tags never shape the vocabulary).
"""

from __future__ import annotations

import collections
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

# Camera, lens, date, Flickr-award/group and project tags among MIRFlickr's common tags
# (mirflickr/doc/common_tags.txt); visual-style tags (bw, hdr, macro, sepia, lomo, holga, bokeh) stay.
DEFAULT_MIRFLICKR_STOP_LIST = (
    "explore", "explored", "interestingness", "geotagged", "flickr", "2006", "2007", "2008",
    "nikon", "canon", "sony", "olympus", "pentax", "fuji", "fujifilm", "lumix", "sigma", "nikkor", "eos", "rebel",
    "d40", "d50", "d70", "d80", "d200", "40d", "5d", "350d", "400d", "nikond40", "nikond50", "nikond80",
    "nikond200", "50mm", "35mm", "cameraphone",
    "abigfave", "i500", "impressedbeauty", "diamondclassphotographer", "anawesomeshot", "supershot",
    "flickrdiamond", "bravo", "blueribbonwinner", "superbmasterpiece", "aplusphoto", "flickrsbest", "superaplus",
    "naturesfinest", "nikonstunninggallery", "searchthebest", "specanimal", "topf25", "topv111", "dflickr", "soe",
    "365days", "project365", "365",
)
REASONS = ("non_word", "too_short", "stop_list", "blocked_category_name", "not_in_vocabulary", "min_freq")
_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_SPACES = re.compile(r"\s+")
_MULTIWORD = re.compile(r"[\s_\-/]+")
_SEPARATORS = re.compile(r"[\s_\-]+")
_HAS_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class CleanRules:
    """The cleaning rules; every field is a stage parameter (see the module docstring for the order)."""

    normalize: bool = True
    split_multiword: bool = False
    strip_punctuation: bool = True
    min_length: int = 2
    drop_numeric: bool = True
    stop_list: tuple[str, ...] = ()
    min_freq: int = 1
    vocabulary: tuple[str, ...] | None = None
    blocked: tuple[str, ...] = ()


@dataclass
class CleanResult:
    """Cleaned vocabulary (matrix column order), dropped tags with reasons, the image×tag matrix, counts."""

    vocab: pd.DataFrame
    dropped: pd.DataFrame
    matrix: sp.csr_matrix
    image_ids: np.ndarray
    report: dict[str, Any]


def normalize_tag(tag: str, rules: CleanRules) -> list[str]:
    """The normalised form(s) of one raw tag: one string, or its words when ``split_multiword``."""
    t = unicodedata.normalize("NFKC", tag).lower().strip() if rules.normalize else tag
    parts = _MULTIWORD.split(t) if rules.split_multiword else [_SPACES.sub(" ", t)]
    if rules.strip_punctuation:
        parts = [_PUNCT_EDGES.sub("", p) for p in parts]
    return [p for p in parts if p]


def _list_key(tag: str, rules: CleanRules) -> str:
    """How a rule-list entry (stop list, vocabulary) compares: normalised like the tags, never split."""
    plain = CleanRules(normalize=rules.normalize, strip_punctuation=rules.strip_punctuation)
    return " ".join(normalize_tag(tag, plain))


def _blocked_key(tag: str) -> str:
    """Leakage matching ignores separators: ``plant_life``, ``plant-life`` and ``plant life`` are one name."""
    return _SEPARATORS.sub(" ", unicodedata.normalize("NFKC", tag).lower()).strip()


class _Filter:
    """The per-part rules before ``min_freq``, with the rule lists prepared once."""

    def __init__(self, rules: CleanRules) -> None:
        self.rules = rules
        self.stop = {_list_key(t, rules) for t in rules.stop_list}
        self.blocked = {_blocked_key(t) for t in rules.blocked}
        self.vocab = None if rules.vocabulary is None else {_list_key(t, rules) for t in rules.vocabulary}
        self.cache: dict[str, list[tuple[str, str | None]]] = {}

    def reason(self, part: str) -> str | None:
        """The first failing rule for a normalised part, or None when it is kept (so far)."""
        r = self.rules
        if r.drop_numeric and not _HAS_LETTER.search(part):
            return "non_word"
        if len(part) < r.min_length:
            return "too_short"
        if part in self.stop:
            return "stop_list"
        if _blocked_key(part) in self.blocked:
            return "blocked_category_name"
        if self.vocab is not None and part not in self.vocab:
            return "not_in_vocabulary"
        return None

    def __call__(self, raw: str) -> list[tuple[str, str | None]]:
        """``(normalised part, reason or None)`` for each part of a raw tag; ``("", "non_word")`` if none."""
        if raw not in self.cache:
            parts = normalize_tag(raw, self.rules)
            self.cache[raw] = [(p, self.reason(p)) for p in parts] if parts else [("", "non_word")]
        return self.cache[raw]


def _vocabulary_order(rules: CleanRules, count_train: collections.Counter[str],
                      count_all: collections.Counter[str]) -> list[str]:
    """Kept tags in column order: the given vocabulary's order, else by training count (then name)."""
    if rules.vocabulary is not None:
        order = [k for k in dict.fromkeys(_list_key(t, rules) for t in rules.vocabulary) if k]
    else:
        order = sorted(count_all, key=lambda t: (-count_train[t], -count_all[t], t))
    return [t for t in order if count_train[t] >= rules.min_freq]


def clean_tags(image_ids: Sequence[Any] | np.ndarray, tag_lists: Sequence[Sequence[str]], train_mask: np.ndarray,
               rules: CleanRules) -> CleanResult:
    """Clean every image's tags into a vocabulary, the dropped tags with reasons and a 0/1 image×tag matrix."""
    train_mask = np.asarray(train_mask, dtype=bool)
    if len(train_mask) != len(tag_lists) or len(image_ids) != len(tag_lists):
        raise ValueError(f"{len(image_ids)} ids, {len(tag_lists)} tag lists, {len(train_mask)} train flags")
    check = _Filter(rules)
    dropped: collections.Counter[tuple[str, str, str]] = collections.Counter()
    candidates: list[list[tuple[str, str]]] = []
    count_train: collections.Counter[str] = collections.Counter()
    count_all: collections.Counter[str] = collections.Counter()
    for tags, is_train in zip(tag_lists, train_mask, strict=True):
        kept = []
        for raw in tags:
            for part, why in check(raw):
                if why is None:
                    kept.append((raw, part))
                else:
                    dropped[(raw, part, why)] += 1
        unique = {t for _, t in kept}
        count_all.update(unique)
        if is_train:
            count_train.update(unique)
        candidates.append(kept)
    vocab = _vocabulary_order(rules, count_train, count_all)
    col = {t: j for j, t in enumerate(vocab)}
    rows, cols = [], []
    for i, kept in enumerate(candidates):
        for raw, t in kept:
            if t in col:
                rows.append(i)
                cols.append(col[t])
            else:
                dropped[(raw, t, "min_freq")] += 1
    matrix = sp.csr_matrix((np.ones(len(rows), np.uint8), (rows, cols)), shape=(len(candidates), len(vocab)))
    matrix.sum_duplicates()
    matrix.data[:] = 1
    dropped_frame = pd.DataFrame([(r, n, why, c) for (r, n, why), c in sorted(dropped.items())],
                                 columns=["tag", "normalized", "reason", "count"]).astype({"count": np.int64})
    vocab_frame = pd.DataFrame({"tag": pd.Series(vocab, dtype=object),
                                "count": np.array([count_train[t] for t in vocab], dtype=np.int64),
                                "count_all": np.array([count_all[t] for t in vocab], dtype=np.int64)})
    return CleanResult(vocab=vocab_frame, dropped=dropped_frame, matrix=matrix,
                       image_ids=np.asarray(image_ids, dtype=object),
                       report=_report(matrix, train_mask, dropped_frame))


def _report(matrix: sp.csr_matrix, train_mask: np.ndarray, dropped: pd.DataFrame) -> dict[str, Any]:
    """Counts for report.json: kept tags, dropped raw tags (distinct and occurrences) by reason, empty images."""
    has = np.diff(matrix.indptr) > 0
    by_reason = dropped.groupby("reason")
    distinct = by_reason["tag"].nunique().to_dict() if len(dropped) else {}
    occurrences = by_reason["count"].sum().to_dict() if len(dropped) else {}
    return {
        "n_images": int(matrix.shape[0]), "n_train": int(train_mask.sum()), "kept_tags": int(matrix.shape[1]),
        "dropped_by_reason": {r: int(distinct[r]) for r in REASONS if r in distinct},
        "dropped_occurrences_by_reason": {r: int(occurrences[r]) for r in REASONS if r in occurrences},
        "images_without_tags": int((~has).sum()), "train_images_without_tags": int((~has & train_mask).sum()),
        "tags_per_image": float(matrix.nnz / max(matrix.shape[0], 1)),
    }
