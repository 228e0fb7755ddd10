"""Tag cleaning rules, word-vector loading and OOV policies, the tag graph and merging."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.sparse as sp

from tagcode.errors import TagcodeError
from tagcode.tags.clean import CleanRules, clean_tags, normalize_tag
from tagcode.tags.graph import (
    calibrate_eps,
    cooccurrence,
    correlation_graph,
    enhance,
    margin_statistics,
    merge_matrix,
    merge_synonyms,
)
from tagcode.tags.vectors import embed_vocabulary, load_vectors, train_tag_word2vec


@pytest.mark.parametrize(
    ("raw", "rules", "expected"),
    [
        ("Ｃａｔ", CleanRules(), ["cat"]),
        ("ﬁsh", CleanRules(), ["fish"]),
        ("  New   York ", CleanRules(), ["new york"]),
        ("new_york-city", CleanRules(split_multiword=True), ["new", "york", "city"]),
        ("!!sunset...", CleanRules(), ["sunset"]),
        ("!!sunset...", CleanRules(strip_punctuation=False), ["!!sunset..."]),
        ("Dog", CleanRules(normalize=False), ["Dog"]),
    ],
)
def test_normalize(raw: str, rules: CleanRules, expected: list[str]) -> None:
    assert normalize_tag(raw, rules) == expected


def test_every_rule_records_its_reason() -> None:
    tags = [["Dog", "explore", "2007", "x", "animals", "grass"], ["dog", "grass", "rare"], ["cat", "dog"], ["cat"]]
    train = np.array([True, True, True, False])
    res = clean_tags(["a", "b", "c", "d"], tags, train, CleanRules(stop_list=("Explore",), min_freq=2,
                                                                      blocked=("Animals",)))
    assert res.vocab["tag"].tolist() == ["dog", "grass"]  # cat: only 1 training image
    assert res.vocab.set_index("tag")["count"].to_dict() == {"dog": 3, "grass": 2}
    reasons = {(r.tag, r.reason) for r in res.dropped.itertuples()}
    assert {("explore", "stop_list"), ("2007", "non_word"), ("x", "too_short"),
            ("animals", "blocked_category_name"), ("rare", "min_freq"), ("cat", "min_freq")} <= reasons
    assert res.matrix.toarray().tolist() == [[1, 1], [1, 1], [1, 0], [0, 0]]
    assert res.report["images_without_tags"] == 1 and res.report["train_images_without_tags"] == 0


def test_vocabulary_restriction_reproduces_real_mirflickr_matrix(shared_dir) -> None:
    z = np.load(shared_dir / "data" / "mirflickr20015_tags_labels.npz")
    vocab = tuple(str(t) for t in z["tag_vocab"])
    tags = [s.split(",") for s in z["tags_raw"][:3000]]
    rules = CleanRules(min_length=1, drop_numeric=False, strip_punctuation=False, min_freq=1, vocabulary=vocab)
    res = clean_tags(np.arange(3000), tags, np.ones(3000, bool), rules)
    used = [t for t in vocab if t in set(res.vocab["tag"])]
    expected = z["tags_bow"][:3000][:, [vocab.index(t) for t in used]]
    assert res.vocab["tag"].tolist() == used
    assert (res.matrix.toarray() == expected).all()


@pytest.fixture(scope="module")
def glove():
    return load_vectors("glove-6b-50d")


def _write_vectors(glove, tmp_path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=50)
    kv.add_vectors(["dog", "cat", "new_york"], np.stack([glove["dog"], glove["cat"], glove["york"]]))
    paths = {"bin": tmp_path / "v.bin", "bingz": tmp_path / "v.bin.gz", "txt": tmp_path / "v.txt",
             "kv": tmp_path / "v.kv", "glove": tmp_path / "glove.txt"}
    kv.save_word2vec_format(str(paths["bin"]), binary=True)
    paths["bingz"].write_bytes(gzip.compress(paths["bin"].read_bytes()))
    kv.save_word2vec_format(str(paths["txt"]), binary=False)
    kv.save(str(paths["kv"]))
    paths["glove"].write_text("".join(f"{w} {' '.join(map(str, kv[w]))}\n" for w in kv.index_to_key))
    return paths


def test_every_vector_format_loads(glove, tmp_path) -> None:
    for kind, path in _write_vectors(glove, tmp_path).items():
        kv = load_vectors(str(path))
        assert kv.vector_size == 50, kind
        np.testing.assert_allclose(kv["dog"], glove["dog"], atol=1e-5, err_msg=kind)
    assert glove.most_similar("dog", topn=5)[0][0] in {"cat", "dogs", "puppy"}


def test_bad_vector_files(tmp_path) -> None:
    with pytest.raises(TagcodeError, match="word vector file not found"):
        load_vectors(str(tmp_path / "nope.bin"))
    (tmp_path / "bad.bin").write_bytes(b"3 50\n\x00\x01garbage")
    with pytest.raises(TagcodeError, match="not a readable word2vec/GloVe file"):
        load_vectors(str(tmp_path / "bad.bin"))


def test_oov_policies(glove) -> None:
    vocab = ["dog", "New York", "qqzzxx", "sunset"]
    lists = [["qqzzxx", "dog"], ["qqzzxx", "sunset"]] * 5
    _e, kept, rep = embed_vocabulary(vocab, glove, oov="drop")
    assert kept.tolist() == [True, True, False, True] and rep["n_oov"] == 1 and rep["lookup_variants_used"] == 1
    e2, kept2, _ = embed_vocabulary(vocab, glove, oov="random", seed=1)
    e3, _, _ = embed_vocabulary(vocab, glove, oov="random", seed=1)
    assert kept2.all() and np.array_equal(e2, e3) and np.abs(e2[2]).max() <= 0.25
    _, kept4, rep4 = embed_vocabulary(vocab, glove, oov="trained", train_tag_lists=lists)
    assert kept4.all() and rep4["oov_filled"] == 1
    trained = train_tag_word2vec(lists, dim=8, seed=0)
    e5, kept5, _ = embed_vocabulary(["dog", "qqzzxx"], None, oov="trained", trained_kv=trained)
    assert kept5.all() and e5.shape == (2, 8)


def test_graph_enhance_merge() -> None:
    m = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1]]))
    n_i, n_ij = cooccurrence(m)
    assert n_i.tolist() == [3, 2, 2] and n_ij.toarray().tolist() == [[0, 2, 1], [2, 0, 0], [1, 0, 0]]
    g = correlation_graph(m, tau=0.5)
    # P(1|0) = 2/3 kept, P(2|0) = 1/3 dropped; P(0|1) = 1; P(0|2) = 1/2 kept; rows normalised
    np.testing.assert_allclose(g.toarray(), [[0, 1, 0], [1, 0, 0], [1, 0, 0]])
    emb = np.eye(3, dtype=np.float32)
    en = enhance(emb, g, alpha=0.5)
    np.testing.assert_allclose(en[0], np.array([1, 1, 0]) / np.sqrt(2), atol=1e-6)
    merged, groups = merge_synonyms(np.array([[1, 0], [0.99, 0.01], [0, 1]], np.float32), eps=0.01)
    assert groups == [[0, 1], [2]] and merged.shape == (2, 2)
    assert merge_matrix(m, [[0, 1], [2]]).toarray().tolist() == [[1, 0], [1, 0], [1, 1], [0, 1]]
    rng = np.random.default_rng(0)
    many = rng.standard_normal((40, 5)).astype(np.float32)
    eps = calibrate_eps(many, 30)
    assert 28 <= len(merge_synonyms(many, eps=eps)[1]) <= 32


def test_margin_statistics_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((6, 4))
    m = sp.csr_matrix(rng.random((10, 6)) < 0.4)
    w = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    vals = [w[p] @ w[n] for row in m.toarray() for p in np.flatnonzero(row) for n in np.flatnonzero(row == 0)]
    stats = margin_statistics(emb, m)
    assert stats["triplets"] == len(vals)
    assert stats["mean_cosine"] == pytest.approx(np.mean(vals))
    assert stats["initial_loss"] == pytest.approx(1 - np.mean(vals))
