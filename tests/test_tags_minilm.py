"""MiniLM-L6 tag vectors (our torch BERT against sentence-transformers' numbers), offline loading, and the
embed_tags options they come with (vector source, raw norms)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tagcode.errors import TagcodeError
from tagcode.stages.embed_tags import Config, run
from tagcode.tags.encoder import minilm
from tagcode.tags.matrix import TagMatrix, save_tag_matrix
from tagcode.tags.vectors import VECTOR_SOURCES, embed_vocabulary, load_vectors, tag_phrase

# sentence-transformers 5.x / tokenizers 0.23.3 on the same model files (SentenceTransformer.encode with
# normalize_embeddings=True; Tokenizer.from_file("tokenizer.json")), first six dimensions.
REFERENCE = {
    "dog": [-0.053147025, 0.014194405, 0.007145704, 0.068608724, -0.078480296, 0.010167476],
    "new york": [0.086363092, -0.019883350, 0.071493685, 0.048814517, -0.033143498, -0.001401391],
    "blackandwhite": [-0.057318620, 0.013745548, -0.059818130, 0.065624014, -0.023786213, 0.054223210],
}
REFERENCE_IDS = {
    "new york": [101, 2047, 2259, 102],
    "blackandwhite": [101, 2304, 5685, 2860, 16584, 2063, 102],
    "Café 東京": [101, 7668, 1879, 1755, 102],
    "360°": [101, 9475, 7737, 102],
}


@pytest.fixture(scope="module")
def offline_minilm():
    """The model loaded with every outgoing connection refused: it must come from site-packages."""
    minilm.cache_clear()
    with pytest.MonkeyPatch.context() as mp:
        def refuse(*args: object, **kwargs: object) -> None:
            raise OSError("network access during model loading")

        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setenv("HF_HUB_OFFLINE", "1")
        model = minilm()
    return model


def test_tokenizer_matches_the_reference(offline_minilm) -> None:
    for text, ids in REFERENCE_IDS.items():
        assert offline_minilm.tokenizer.encode(text) == ids, text
    assert offline_minilm.tokenizer.encode("x" * 101) == [101, 100, 102]  # over-long word → [UNK]


def test_vectors_match_sentence_transformers(offline_minilm) -> None:
    emb = offline_minilm.encode(list(REFERENCE))
    np.testing.assert_allclose(emb[:, :6], np.array(list(REFERENCE.values())), atol=2e-6)


def test_tags_embed_to_unit_384d_vectors_with_no_oov(offline_minilm) -> None:
    tags = ["dog", "puppy", "sunset", "new_york", "blackandwhite", "2007", "ایران"]
    kv = load_vectors("minilm-l6", vocab=tags)
    assert kv.vector_size == 384 and kv.index_to_key == tags
    np.testing.assert_allclose(np.linalg.norm(kv.vectors, axis=1), 1.0, atol=1e-6)
    emb, kept, report = embed_vocabulary(tags, kv, oov="drop")
    assert kept.all() and report["n_oov"] == 0 and np.array_equal(emb, kv.vectors)
    np.testing.assert_allclose(kv["new_york"], offline_minilm.encode(["new york"])[0], atol=1e-6)
    assert tag_phrase("black-and-white") == "black and white" and tag_phrase("--") == "--"


def test_related_tags_are_closer_than_unrelated(offline_minilm) -> None:
    kv = load_vectors("minilm-l6", vocab=["dog", "puppy", "car", "automobile", "sunset", "beach"])
    cos = kv.vectors @ kv.vectors.T
    i = {t: n for n, t in enumerate(kv.index_to_key)}
    assert cos[i["dog"], i["puppy"]] > max(cos[i["dog"], i["car"]], cos[i["dog"], i["sunset"]]) + 0.2
    assert cos[i["car"], i["automobile"]] > max(cos[i["car"], i["beach"]], cos[i["car"], i["puppy"]]) + 0.2


def test_deterministic_and_independent_of_the_rest_of_the_vocabulary(offline_minilm) -> None:
    a = load_vectors("minilm-l6", vocab=["sky", "cloud", "red car", "sunset over the sea"])
    b = load_vectors("minilm-l6", vocab=["sunset over the sea", "sky", "old red car", "cat", "red car"])
    assert np.array_equal(a.vectors, load_vectors("minilm-l6", vocab=a.index_to_key).vectors)
    for tag in ("sky", "red car", "sunset over the sea"):
        np.testing.assert_allclose(a[tag], b[tag], atol=1e-6)


def test_one_registry_of_vector_sources() -> None:
    assert {"glove-6b-50d", "minilm-l6"} <= set(VECTOR_SOURCES.names())
    with pytest.raises(TagcodeError, match="needs the tag vocabulary"):
        load_vectors("minilm-l6")
    with pytest.raises(TagcodeError, match="registered source: glove-6b-50d, minilm-l6"):
        load_vectors("minilm-l7")


def _tags_dir(tmp_path: Path) -> Path:
    """A clean_tags output over six tags: dog/puppy co-occur (so the graph links them), the rest apart."""
    tags = np.array(["dog", "puppy", "beach", "sea", "car", "2007"], dtype=object)
    rows = [[0, 1], [0, 1], [0], [2, 3], [2, 3], [3], [4], [4, 5], [5], [1]]
    m = sp.csr_matrix((np.ones(sum(map(len, rows)), np.uint8),
                       (np.repeat(np.arange(len(rows)), [len(r) for r in rows]), np.concatenate(rows))),
                      shape=(len(rows), len(tags)))
    out = tmp_path / "tags"
    out.mkdir()
    save_tag_matrix(out / "image_tags.npz", TagMatrix(ids=np.arange(len(rows)).astype(str).astype(object),
                                                      tags=tags, matrix=m, train=np.ones(len(rows), bool)))
    return out


def test_stage_embeds_with_minilm(tmp_path: Path, offline_minilm) -> None:
    report = run(Config(tags=str(_tags_dir(tmp_path)), vectors="minilm-l6", eps=0.01, out=str(tmp_path / "e")))
    emb = np.load(tmp_path / "e" / "tag_embeddings.npy")
    assert report["oov"] == 0 and report["kept"] == 6 and report["vectors_dim"] == 384
    assert emb.shape == (report["final_tags"], 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)


def test_normalize_false_keeps_raw_norms(tmp_path: Path) -> None:
    tags, glove = _tags_dir(tmp_path), load_vectors("glove-6b-50d")
    raw = np.stack([glove[t] for t in ["dog", "puppy", "beach", "sea", "car", "2007"]])
    plain = {"tags": str(tags), "graph": False, "merge": False}
    run(Config(**plain, normalize=False, out=str(tmp_path / "raw")))
    np.testing.assert_allclose(np.load(tmp_path / "raw" / "tag_embeddings.npy"), raw, rtol=1e-6, atol=1e-6)
    full = {"tags": str(tags), "eps": 0.2, "tau": 0.4, "alpha": 0.3}
    unit_report = run(Config(**full, out=str(tmp_path / "unit")))
    raw_report = run(Config(**full, normalize=False, out=str(tmp_path / "rawfull")))
    unit = np.load(tmp_path / "unit" / "tag_embeddings.npy")
    stored = np.load(tmp_path / "rawfull" / "tag_embeddings.npy")
    groups = json.loads((tmp_path / "rawfull" / "merge_map.json").read_text())
    assert groups == json.loads((tmp_path / "unit" / "merge_map.json").read_text())
    assert raw_report["final_tags"] == unit_report["final_tags"] < 6 and raw_report["graph_edges"] > 0
    norms = np.linalg.norm(raw, axis=1)
    expected = np.array([norms[groups[str(k)]].mean() for k in range(len(stored))])
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), expected, rtol=1e-5)
    np.testing.assert_allclose(stored / expected[:, None], unit, atol=1e-6)
    assert raw_report["normalize"] is False and raw_report["mean_norm"] == pytest.approx(expected.mean(), rel=1e-5)
