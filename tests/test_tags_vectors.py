"""Word vectors: every file format and its errors, spelling variants and compounds, OOV policies, centring."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from tagcode.errors import TagcodeError
from tagcode.tags.vectors import (
    center_vectors,
    embed_vocabulary,
    load_vectors,
    lookup,
    lookup_variants,
    procrustes_map,
    random_vector,
    segment_compound,
    train_tag_word2vec,
)

WORDS = ["dog", "cat", "new_york", "sunset"]


@pytest.fixture(scope="module")
def glove() -> KeyedVectors:
    return load_vectors("glove-6b-50d")


@pytest.fixture
def small(glove: KeyedVectors) -> KeyedVectors:
    kv = KeyedVectors(vector_size=50)
    kv.add_vectors(WORDS, np.stack([glove[w] for w in ("dog", "cat", "york", "sunset")]))
    return kv


def _write_all(kv: KeyedVectors, tmp: Path) -> dict[str, Path]:
    paths = {k: tmp / n for k, n in [("bin", "v.bin"), ("bin.gz", "v.bin.gz"), ("w2v txt", "v.txt"),
                                     ("w2v txt.gz", "v.txt.gz"), ("glove", "glove.txt"), ("kv", "v.kv")]}
    kv.save_word2vec_format(str(paths["bin"]), binary=True)
    paths["bin.gz"].write_bytes(gzip.compress(paths["bin"].read_bytes()))
    kv.save_word2vec_format(str(paths["w2v txt"]), binary=False)
    paths["w2v txt.gz"].write_bytes(gzip.compress(paths["w2v txt"].read_bytes()))
    paths["glove"].write_text("".join(f"{w} {' '.join(f'{x:.6f}' for x in kv[w])}\n" for w in kv.index_to_key))
    kv.save(str(paths["kv"]))
    return paths


def test_packaged_glove(glove: KeyedVectors) -> None:
    assert glove.vectors.shape == (400_000, 50) and glove.vectors.dtype == np.float32
    assert glove.vectors.flags.c_contiguous
    np.testing.assert_allclose(glove["the"][:3], [0.418, 0.24968, -0.41242], atol=1e-5)
    assert glove.index_to_key[glove.key_to_index["sunset"]] == "sunset"
    assert {w for w, _ in glove.most_similar("dog", topn=3)} & {"cat", "dogs", "puppy"}
    assert load_vectors() is glove  # loaded once per process


def test_every_file_format_round_trips(small: KeyedVectors, tmp_path: Path) -> None:
    for kind, path in _write_all(small, tmp_path).items():
        kv = load_vectors(str(path), allow_pickle=True)
        assert kv.index_to_key == WORDS, kind
        np.testing.assert_allclose(kv["sunset"], small["sunset"], atol=1e-5, err_msg=kind)


def test_limit_keeps_the_first_words(small: KeyedVectors, tmp_path: Path) -> None:
    paths = _write_all(small, tmp_path)
    assert load_vectors(str(paths["bin.gz"]), limit=2).index_to_key == ["dog", "cat"]
    assert load_vectors(str(paths["glove"]), limit=3).index_to_key == WORDS[:3]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.bin", b"3 50\n\x00\x01garbage", "not a readable word2vec/GloVe file"),
        ("bad.bin.gz", b"\x1f\x8b\x08 truncated gzip", "not a readable word2vec/GloVe file"),
        ("bad.txt", b"2 3\ndog 0.1 0.2\ncat 0.1\n", "not a readable word2vec/GloVe file"),
        ("bad.kv", b"not a pickle", "not a readable gensim KeyedVectors file"),
        ("empty.txt", b"", "not a readable word2vec/GloVe file|holds no word vectors"),
    ],
)
def test_garbled_files_are_one_line_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(TagcodeError, match=message) as err:
        load_vectors(str(tmp_path / name), allow_pickle=True)
    assert "\n" not in str(err.value) and name in str(err.value)


def test_kv_pickle_is_refused_without_opt_in(small: KeyedVectors, tmp_path: Path) -> None:
    path = _write_all(small, tmp_path)["kv"]
    with pytest.raises(TagcodeError, match=r"\.kv file is a pickle, and unpickling can run arbitrary code; set "
                                           r"allow_pickle: true") as err:
        load_vectors(str(path))
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TagcodeError, match=r"nope\.bin: word vector file not found"):
        load_vectors(str(tmp_path / "nope.bin"))


def test_lookup_variants_order() -> None:
    assert lookup_variants("New York") == ["New York", "new york", "new_york", "new-york", "newyork", "NEW YORK"]
    assert lookup_variants("nyc") == ["nyc", "Nyc", "NYC"]


def test_lookup_and_compounds(glove: KeyedVectors) -> None:
    vec, key = lookup("New York", glove)
    assert key == "new-york" and np.array_equal(vec, glove["new-york"])
    assert lookup("blackandwhite", glove) == (None, None)  # compounds only when asked
    assert segment_compound("blackandwhite", glove) == ["black", "and", "white"]
    assert segment_compound("streetart", glove) == ["street", "art"]
    assert segment_compound("qqzzxx", glove) is None and segment_compound("sunset", glove) is None
    vec, key = lookup("blackandwhite", glove, compose=True)
    assert key == "black-and-white" and np.array_equal(vec, glove["black-and-white"])
    vec, key = lookup("streetart", glove, compose=True)
    assert key == "mean(street,art)"
    np.testing.assert_allclose(vec, (glove["street"] + glove["art"]) / 2, rtol=1e-6)
    assert lookup("long qqzzxx", glove, compose=True) == (None, None)


def test_embed_drop_and_variants(glove: KeyedVectors) -> None:
    vocab = ["dog", "New York", "qqzzxx", "streetart"]
    emb, kept, rep = embed_vocabulary(vocab, glove, oov="drop")
    assert emb.dtype == np.float32 and emb.shape == (4, 50)
    assert kept.tolist() == [True, True, False, False] and not emb[~kept].any()
    assert rep["n_oov"] == 2 and rep["oov_examples"] == ["qqzzxx", "streetart"]
    assert rep["lookup_variants_used"] == 1 and rep["variant_examples"] == {"New York": "new-york"}
    _, kept, rep = embed_vocabulary(vocab, glove, oov="drop", compose=True)
    assert kept.tolist() == [True, True, False, True] and rep["n_composed"] == 1


def test_random_oov_is_reproducible_and_per_tag(glove: KeyedVectors) -> None:
    e1, kept, rep = embed_vocabulary(["dog", "qqzzxx", "zzqqyy"], glove, oov="random", seed=3)
    e2, _, _ = embed_vocabulary(["zzqqyy", "qqzzxx"], glove, oov="random", seed=3)
    e3, _, _ = embed_vocabulary(["qqzzxx"], glove, oov="random", seed=4)
    assert kept.all() and rep["oov_filled"] == 2 and rep["oov_dropped"] == 0
    assert np.array_equal(e1[1], e2[1]) and np.array_equal(e1[2], e2[0])  # vocabulary changes do not matter
    assert not np.array_equal(e1[1], e3[0])
    assert np.abs(e1[1:]).max() <= 0.25 and np.array_equal(e1[1], random_vector("qqzzxx", 50, 3))
    big = random_vector("x", 100_000, 0)
    assert -0.25 <= big.min() < -0.24 and 0.24 < big.max() <= 0.25


def test_procrustes_recovers_a_scaled_rotation() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 6))
    rot, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    r, s = procrustes_map(x, 2.5 * x @ rot)
    np.testing.assert_allclose(r, rot, atol=1e-10)
    assert s == pytest.approx(2.5)


def test_trained_fill_is_aligned_into_the_pretrained_space(glove: KeyedVectors) -> None:
    rng = np.random.default_rng(1)
    rot, _ = np.linalg.qr(rng.standard_normal((50, 50)))
    words = glove.index_to_key[1000:1080]  # 79 anchors (more than 50 dims) and one hidden word
    trained = KeyedVectors(vector_size=50)
    trained.add_vectors([*words[:79], "qqzzxx"], (0.1 * glove[words] @ rot.T).astype(np.float32))
    vocab = [*words[:79], "qqzzxx", "qqunseenzz"]
    emb, kept, rep = embed_vocabulary(vocab, glove, oov="trained", trained_kv=trained)
    assert kept.tolist() == [True] * 80 + [False]
    np.testing.assert_allclose(emb[79], glove[words[79]], atol=1e-3)  # qqzzxx was that word, rotated
    assert rep["alignment_cosine"] == pytest.approx(1.0, abs=1e-6) and rep["oov_filled"] == 1
    with pytest.raises(TagcodeError, match="only 1 tags have both pretrained and trained vectors"):
        embed_vocabulary(["dog", words[0], "qqzzxx"], glove, oov="trained", trained_kv=trained)
    with pytest.raises(TagcodeError, match="8 dims, word vectors 50"):
        embed_vocabulary(vocab, glove, oov="trained", trained_kv=train_tag_word2vec([["dog", "x"]], dim=8, seed=0))


def test_train_word2vec_on_tag_lists() -> None:
    rng = np.random.default_rng(0)
    topics = [["sea", "beach", "wave", "sand"], ["city", "street", "car", "road"]]
    lists = [list(rng.choice(topics[i % 2], 3, replace=False)) for i in range(400)]
    a = train_tag_word2vec(lists, dim=16, seed=5, epochs=10)
    b = train_tag_word2vec(lists, dim=16, seed=5, epochs=10)
    assert np.array_equal(a.vectors, b.vectors) and a.vector_size == 16
    assert a.similarity("sea", "beach") > a.similarity("sea", "street") + 0.2
    with pytest.raises(TagcodeError, match="no training image has tags"):
        train_tag_word2vec([[], []], dim=4, seed=0)


def test_trained_vectors_as_the_only_source() -> None:
    lists = [["sea", "beach"], ["sea", "wave"], ["city", "car"]] * 20
    emb, kept, rep = embed_vocabulary(["sea", "car", "never"], None, oov="trained", train_tag_lists=lists,
                                      trained_dim=12)
    assert emb.shape == (3, 12) and kept.tolist() == [True, True, False]
    assert rep["source"] == "trained" and rep["n_found"] == 2 and rep["oov_examples"] == ["never"]
    with pytest.raises(TagcodeError, match="use oov='trained'"):
        embed_vocabulary(["sea"], None, oov="drop")
    with pytest.raises(TagcodeError, match="needs the training images' tag lists"):
        embed_vocabulary(["sea"], None, oov="trained")


def test_centering(glove: KeyedVectors) -> None:
    vocab = ["dog", "cat", "sunset", "river", "qqzzxx"]
    raw, _, _ = embed_vocabulary(vocab, glove, oov="random")
    full, kept, rep = embed_vocabulary(vocab, glove, oov="random", center=True)
    assert kept.all() and rep["center"] == 1.0
    np.testing.assert_allclose(full[:4].mean(axis=0), 0, atol=1e-5)
    assert np.array_equal(full[4], raw[4])  # random rows are left as drawn
    half, _, _ = embed_vocabulary(vocab, glove, oov="drop", center=0.5)
    np.testing.assert_allclose(half[:4], center_vectors(raw[:4], raw[:4].mean(axis=0), 0.5), atol=1e-6)
