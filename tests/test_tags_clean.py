"""Tag cleaning: every normalisation step and filter rule, its reason and order, and the real MIRFlickr tags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagcode.stages.clean_tags import Config, rules_from
from tagcode.tags.clean import DEFAULT_MIRFLICKR_STOP_LIST, REASONS, CleanRules, clean_tags, normalize_tag


@pytest.mark.parametrize(
    ("raw", "rules", "expected"),
    [
        ("Ｃａｔ", CleanRules(), ["cat"]),  # full-width letters (NFKC)
        ("ﬁsh", CleanRules(), ["fish"]),  # ligature (NFKC)
        ("  New \t  York ", CleanRules(), ["new york"]),
        ("!!sunset...", CleanRules(), ["sunset"]),
        ("«rock'n'roll»", CleanRules(), ["rock'n'roll"]),  # inner punctuation stays
        ("!!sunset...", CleanRules(strip_punctuation=False), ["!!sunset..."]),
        ("Dog", CleanRules(normalize=False), ["Dog"]),
        ("Ｃａｔ", CleanRules(normalize=False), ["Ｃａｔ"]),
        ("new_york-city / NYC", CleanRules(split_multiword=True), ["new", "york", "city", "nyc"]),
        ("new york", CleanRules(split_multiword=False), ["new york"]),
        ("new_york", CleanRules(split_multiword=False), ["new_york"]),
        ("...", CleanRules(), []),
        ("", CleanRules(), []),
    ],
)
def test_normalize_tag(raw: str, rules: CleanRules, expected: list[str]) -> None:
    assert normalize_tag(raw, rules) == expected


def _reasons(res) -> dict[str, str]:
    return {r.tag: r.reason for r in res.dropped.itertuples()}


def test_each_rule_drops_with_its_reason() -> None:
    tags = [["Dog", "EXPLORE", "2007", "360°", "x", "Plant Life", "grass", "!!!"],
            ["dog", "grass", "rare", "zebra"], ["cat", "dog"], ["cat", "cat", "cat"]]
    train = np.array([True, True, True, False])
    rules = CleanRules(stop_list=("Explore",), min_freq=2, blocked=("plant_life",),
                       vocabulary=("dog", "grass", "cat", "rare"))
    res = clean_tags(["a", "b", "c", "d"], tags, train, rules)
    assert _reasons(res) == {"EXPLORE": "stop_list", "2007": "non_word", "360°": "non_word", "x": "too_short",
                             "Plant Life": "blocked_category_name", "!!!": "non_word", "zebra": "not_in_vocabulary",
                             "rare": "min_freq", "cat": "min_freq"}
    assert res.dropped.loc[res.dropped["tag"] == "cat", "count"].item() == 4  # occurrences: c once, d three times
    assert res.dropped.loc[res.dropped["tag"] == "!!!", "normalized"].item() == ""
    assert list(res.vocab.columns) == ["tag", "count", "count_all"]
    assert res.vocab["tag"].tolist() == ["dog", "grass"]  # the vocabulary's order
    assert res.vocab["count"].tolist() == [3, 2] and res.vocab["count_all"].tolist() == [3, 2]
    assert res.matrix.dtype == np.uint8 and res.matrix.toarray().tolist() == [[1, 1], [1, 1], [1, 0], [0, 0]]
    assert res.image_ids.tolist() == ["a", "b", "c", "d"]
    assert res.report["dropped_by_reason"] == {"non_word": 3, "too_short": 1, "stop_list": 1,
                                               "blocked_category_name": 1, "not_in_vocabulary": 1, "min_freq": 2}
    assert res.report["dropped_occurrences_by_reason"]["min_freq"] == 5
    assert res.report["images_without_tags"] == 1 and res.report["train_images_without_tags"] == 0
    assert res.report["n_images"] == 4 and res.report["n_train"] == 3 and res.report["kept_tags"] == 2
    assert set(res.dropped["reason"]) <= set(REASONS)


def test_first_failing_rule_wins() -> None:
    rules = CleanRules(stop_list=("2007", "x", "sky"), blocked=("sky",), vocabulary=("cat",))
    res = clean_tags([0], [["2007", "x", "sky"]], np.array([True]), rules)
    assert _reasons(res) == {"2007": "non_word", "x": "too_short", "sky": "stop_list"}


def test_rules_can_be_switched_off() -> None:
    rules = CleanRules(min_length=1, drop_numeric=False)
    res = clean_tags([0], [["2007", "x"]], np.array([True]), rules)
    assert sorted(res.vocab["tag"]) == ["2007", "x"] and res.dropped.empty


def test_min_freq_counts_training_images_only() -> None:
    tags = [["sky"], ["sky"], ["sea"], ["sea"], ["sea"], ["sea"]]
    train = np.array([True, True, True, False, False, False])
    res = clean_tags(range(6), tags, train, CleanRules(min_freq=2))
    assert res.vocab["tag"].tolist() == ["sky"]
    assert _reasons(res) == {"sea": "min_freq"}
    assert res.dropped["count"].item() == 4  # all occurrences, query ones included
    assert res.report["images_without_tags"] == 4 and res.report["train_images_without_tags"] == 1


def test_vocabulary_order_without_a_vocabulary_is_by_training_count() -> None:
    tags = [["b", "a"], ["b", "c"], ["b", "c"], ["a"], ["a"]]
    res = clean_tags(range(5), tags, np.array([True, True, True, False, False]), CleanRules(min_length=1))
    assert res.vocab["tag"].tolist() == ["b", "c", "a"]
    assert res.vocab["count_all"].tolist() == [3, 2, 3]


def test_split_multiword_records_each_part() -> None:
    res = clean_tags([0], [["New_York-x", "New York"]], np.array([True]), CleanRules(split_multiword=True))
    assert res.vocab["tag"].tolist() == ["new", "york"]
    assert res.matrix.toarray().tolist() == [[1, 1]]  # both raw tags map onto the same two columns
    assert res.dropped[["tag", "normalized", "reason"]].values.tolist() == [["New_York-x", "x", "too_short"]]


def test_duplicate_spellings_on_one_image_count_once() -> None:
    res = clean_tags([0, 1], [["Dog", "dog", "DOG!"], ["dog"]], np.array([True, True]), CleanRules(min_freq=2))
    assert res.vocab["count"].tolist() == [2] and res.matrix.toarray().tolist() == [[1], [1]]


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 ids, 1 tag lists"):
        clean_tags([0, 1], [["a"]], np.array([True]), CleanRules())


def test_default_stop_list_holds_mirflickr_common_tags(mirflickr_mini: Path) -> None:
    common = {line.split()[0] for line in (mirflickr_mini / "mirflickr" / "doc" / "common_tags.txt").read_text()
              .splitlines() if line.strip()}
    assert len(set(DEFAULT_MIRFLICKR_STOP_LIST)) == len(DEFAULT_MIRFLICKR_STOP_LIST) >= 20
    assert set(DEFAULT_MIRFLICKR_STOP_LIST) <= common
    assert {"sky", "bw", "sunset", "dog"}.isdisjoint(DEFAULT_MIRFLICKR_STOP_LIST)


@pytest.fixture(scope="module")
def mirflickr(shared_dir: Path):
    z = np.load(shared_dir / "data" / "mirflickr20015_tags_labels.npz")
    return (tuple(str(t) for t in z["tag_vocab"]), [s.split(",") for s in z["tags_raw"]], z["tags_bow"],
            tuple(str(c) for c in z["concepts"]))


def test_real_mirflickr_vocabulary_reproduces_tags_bow(mirflickr) -> None:
    vocab, raw, bow, _ = mirflickr
    rules = CleanRules(vocabulary=vocab, min_freq=1, min_length=1, drop_numeric=False)
    res = clean_tags(np.arange(len(raw)), raw, np.ones(len(raw), bool), rules)
    assert res.vocab["tag"].tolist() == ["360" if t == "360°" else t for t in vocab]  # edge symbol stripped
    assert res.dropped.empty and res.report["images_without_tags"] == 0
    assert np.array_equal(res.matrix.toarray(), bow)
    np.testing.assert_array_equal(res.vocab["count"].to_numpy(), bow.sum(axis=0))


def test_real_mirflickr_with_default_rules(mirflickr) -> None:
    vocab, raw, bow, concepts = mirflickr
    train = np.arange(len(raw)) < 16000
    rules = CleanRules(vocabulary=vocab, stop_list=DEFAULT_MIRFLICKR_STOP_LIST, blocked=concepts)
    res = clean_tags(np.arange(len(raw)), raw, train, rules)
    kept = res.vocab["tag"].tolist()
    assert np.array_equal(res.matrix.toarray(), bow[:, [vocab.index(t) for t in kept]])
    assert set(DEFAULT_MIRFLICKR_STOP_LIST).isdisjoint(kept) and {"sky", "dog", "sunset"}.isdisjoint(kept)
    assert "24hoursofflickr" not in kept  # only on images after the first 16,000
    dropped = set(res.dropped["tag"])
    assert dropped | set(kept) == set(vocab) and not dropped & set(kept)
    assert res.report["images_without_tags"] == int((res.matrix.sum(axis=1) == 0).sum()) > 0


def test_stage_options_keep_the_whole_reference_vocabulary(mirflickr) -> None:
    vocab, raw, _, _ = mirflickr
    meta = {"source": "mirflickr", "vocabulary": list(vocab)}
    whole = rules_from(Config(vocabulary="source", min_freq=1, min_length=1, drop_numeric=False), meta)
    res = clean_tags(np.arange(len(raw)), raw, np.ones(len(raw), bool), whole)
    assert len(res.vocab) == len(vocab) == 1386 and {"2007", "365", "360", "2"} <= set(res.vocab["tag"])
    default = rules_from(Config(vocabulary="source", min_freq=1, min_length=1), meta)
    assert default.drop_numeric and not whole.drop_numeric
    dropped = clean_tags(np.arange(len(raw)), raw, np.ones(len(raw), bool), default)
    assert {"2007", "365", "360"}.isdisjoint(dropped.vocab["tag"]) and len(dropped.vocab) == 1386 - 11
