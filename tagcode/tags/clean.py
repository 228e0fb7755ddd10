"""Tag cleaning: normalise raw user tags, filter them by named rules, record why each one was dropped.

Rules apply in this order; a raw tag is dropped by the first that fails, with that rule as the reason:
``non_word`` (nothing left after normalisation, or only digits/punctuation when ``drop_numeric``), ``too_short``,
``stop_list``, ``blocked_category_name`` (leakage filter), ``not_in_vocabulary``, ``min_freq``
(counted on training images only, so query tags never shape the vocabulary).
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

# Camera, meta and date tags among MIRFlickr's most frequent tags (mirflickr/doc/common_tags.txt).
DEFAULT_MIRFLICKR_STOP_LIST = (
    "explore", "nikon", "canon", "2007", "2006", "2008", "2005", "abigfave", "interestingness",
    "anawesomeshot", "impressedbeauty", "flickr", "canon", "sony", "olympus", "d80", "d70", "d200", "d50",
    "35mm", "eos", "rebel", "xti", "350d", "400d", "digital", "photo", "photography", "diamondclassphotographer",
    "flickrdiamond", "superbmasterpiece", "supershot", "aplusphoto", "goldstaraward", "platinumphoto",
)
_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_SPACES = re.compile(r"\s+")
_MULTIWORD = re.compile(r"[\s_\-/]+")
_HAS_LETTER = re.compile(r"[^\W\d_]")
REASONS = ("non_word", "too_short", "stop_list", "blocked_category_name", "not_in_vocabulary", "min_freq")


@dataclass(frozen=True)
class CleanRules:
    """The cleaning rules; every field is a stage parameter."""

    normalize: bool = True
    strip_punctuation: bool = True
    split_multiword: bool = False
    min_length: int = 2
    drop_numeric: bool = True
    stop_list: tuple[str, ...] = ()
    min_freq: int = 1
    vocabulary: tuple[str, ...] | None = None
    blocked: tuple[str, ...] = ()


@dataclass
class CleanResult:
    """Cleaned vocabulary, dropped tags with reasons, the image×tag matrix and counts."""

    vocab: pd.DataFrame
    dropped: pd.DataFrame
    matrix: sp.csr_matrix
    image_ids: np.ndarray
    report: dict[str, Any]


def normalize_tag(tag: str, rules: CleanRules) -> list[str]:
    """NFKC + lower-case + whitespace/punctuation rules; multi-word tags split into words when asked."""
    t = unicodedata.normalize("NFKC", tag).lower().strip() if rules.normalize else tag
    parts = _MULTIWORD.split(t) if rules.split_multiword else [_SPACES.sub(" ", t)]
    if rules.strip_punctuation:
        parts = [_PUNCT_EDGES.sub("", p) for p in parts]
    return [p for p in parts if p]


def _key(tag: str, rules: CleanRules) -> str:
    """How a rule-list entry (stop list, vocabulary, blocked) compares: normalised like the tags."""
    plain = CleanRules(normalize=rules.normalize, strip_punctuation=rules.strip_punctuation)
    return " ".join(normalize_tag(tag, plain))


def clean_tags(image_ids: Sequence[str] | np.ndarray, tag_lists: Sequence[Sequence[str]], train_mask: np.ndarray,
               rules: CleanRules) -> CleanResult:
    """Clean every image's tags; return the vocabulary, the dropped tags and the 0/1 image×tag matrix."""
    train_mask = np.asarray(train_mask, dtype=bool)
    stop = {_key(t, rules) for t in rules.stop_list}
    blocked = {_key(t, rules) for t in rules.blocked}
    vocab_set = {_key(t, rules) for t in rules.vocabulary} if rules.vocabulary is not None else None
    dropped: collections.Counter[tuple[str, str, str]] = collections.Counter()
    candidates: list[list[tuple[str, str]]] = []
    for tags in tag_lists:
        kept = []
        for raw in tags:
            norm = normalize_tag(raw, rules)
            if not norm:
                dropped[(raw, "", "non_word")] += 1
            for t in norm:
                numeric = rules.drop_numeric and not _HAS_LETTER.search(t)
                reason = ("non_word" if numeric else "too_short" if len(t) < rules.min_length
                          else "stop_list" if t in stop else "blocked_category_name" if t in blocked
                          else "not_in_vocabulary" if vocab_set is not None and t not in vocab_set else None)
                if reason:
                    dropped[(raw, t, reason)] += 1
                else:
                    kept.append((raw, t))
        candidates.append(kept)
    count_train: collections.Counter[str] = collections.Counter()
    count_all: collections.Counter[str] = collections.Counter()
    for is_train, kept in zip(train_mask, candidates, strict=True):
        unique = {t for _, t in kept}
        count_all.update(unique)
        if is_train:
            count_train.update(unique)
    order = ([_key(t, rules) for t in rules.vocabulary] if rules.vocabulary is not None else sorted(count_all))
    vocab = [t for t in dict.fromkeys(order) if count_train[t] >= rules.min_freq]
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
    has = np.asarray(matrix.sum(axis=1)).ravel() > 0
    dropped_frame = pd.DataFrame([(r, n, why, c) for (r, n, why), c in sorted(dropped.items())],
                                 columns=["tag", "normalized", "reason", "count"])
    by_reason = dropped_frame.groupby("reason")["tag"].nunique().to_dict() if len(dropped_frame) else {}
    report = {
        "n_images": len(candidates), "n_train": int(train_mask.sum()), "kept_tags": len(vocab),
        "dropped_by_reason": {r: int(by_reason.get(r, 0)) for r in REASONS if by_reason.get(r)},
        "images_without_tags": int((~has).sum()), "train_images_without_tags": int((~has & train_mask).sum()),
        "tags_per_image": float(matrix.sum() / max(len(candidates), 1)),
    }
    vocab_frame = pd.DataFrame({"tag": vocab, "count": [count_train[t] for t in vocab],
                                "count_all": [count_all[t] for t in vocab]})
    return CleanResult(vocab=vocab_frame, dropped=dropped_frame, matrix=matrix,
                       image_ids=np.asarray(image_ids, dtype=object), report=report)
