"""Tag co-occurrence graph, enhancement, DBSCAN merging, eps calibration and the margin statistics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import DBSCAN

from tagcode.tags.graph import (
    calibrate_eps,
    cooccurrence,
    correlation_graph,
    cosine_distances,
    enhance,
    margin_statistics,
    merge_matrix,
    merge_synonyms,
)

# 5 training images × 4 tags: n = [4, 2, 2, 1]
TAGS = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 1], [0, 0, 0, 0]], np.uint8))


def test_cooccurrence_counts() -> None:
    n_i, n_ij = cooccurrence(TAGS)
    assert n_i.tolist() == [4, 2, 2, 1]
    assert n_ij.toarray().tolist() == [[0, 2, 2, 1], [2, 0, 0, 0], [2, 0, 0, 1], [1, 0, 1, 0]]
    assert cooccurrence(TAGS.toarray() * 3)[1].toarray().tolist() == n_ij.toarray().tolist()  # counts are 0/1


def test_correlation_graph_thresholds_and_normalises() -> None:
    # P(j|0) = [., 2/4, 2/4, 1/4]; P(0|1) = 1; P(0|2) = 1, P(3|2) = 1/2; P(0|3) = P(2|3) = 1
    g = correlation_graph(TAGS, tau=0.5)
    np.testing.assert_allclose(g.toarray(), [[0, .5, .5, 0], [1, 0, 0, 0], [2 / 3, 0, 0, 1 / 3], [.5, 0, .5, 0]])
    g = correlation_graph(TAGS, tau=0.6)
    np.testing.assert_allclose(g.toarray(), [[0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [.5, 0, .5, 0]])
    g = correlation_graph(TAGS, tau=0.5, min_count=2)  # n_03 = n_23 = 1 fall away
    np.testing.assert_allclose(g.toarray(), [[0, .5, .5, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert correlation_graph(TAGS, tau=1.01).nnz == 0


def test_enhance_mixes_neighbours_and_keeps_isolated_tags() -> None:
    emb = np.diag([2.0, 3.0, 1.0, 5.0])
    g = sp.csr_matrix(np.array([[0, .5, .5, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    out = enhance(emb, g, alpha=0.5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], np.array([.5, .25, .25, 0]) / np.linalg.norm([.5, .25, .25]), atol=1e-6)
    np.testing.assert_allclose(out[1], np.array([1, 1, 0, 0]) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(out[2:], np.eye(4)[2:], atol=1e-7)  # no edges: own unit vector
    np.testing.assert_allclose(enhance(emb, g, alpha=0.0), np.eye(4), atol=1e-7)
    with pytest.raises(ValueError, match="does not match"):
        enhance(emb[:3], g)


def test_merge_synonyms_single_linkage_and_order() -> None:
    a = np.deg2rad([0, 90, 4, 8, 91])  # 0~4~8 chain within 4.5°, 0 and 8 are not; 90~91
    emb = np.stack([np.cos(a), np.sin(a)], axis=1)
    eps = 1 - np.cos(np.deg2rad(4.5))
    merged, groups = merge_synonyms(emb, eps=eps)
    assert groups == [[0, 2, 3], [1, 4]]
    np.testing.assert_allclose(merged[0], [np.cos(np.deg2rad(4)), np.sin(np.deg2rad(4))], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(merged, axis=1), 1, atol=1e-6)
    _, groups = merge_synonyms(emb, eps=eps, min_samples=3)  # only 2 is a core point; 1 and 4 are noise
    assert groups == [[0, 2, 3], [1], [4]]
    assert merge_synonyms(emb, eps=1e-6)[1] == [[0], [1], [2], [3], [4]]


def test_merge_synonyms_matches_sklearn_cosine_brute() -> None:
    emb = np.random.default_rng(0).standard_normal((300, 8))
    for eps in (0.05, 0.15, 0.3):
        _, groups = merge_synonyms(emb, eps=eps)
        labels = DBSCAN(eps=eps, min_samples=1, metric="cosine", algorithm="brute").fit_predict(emb)
        ours = np.empty(len(emb), int)
        for k, g in enumerate(groups):
            ours[g] = k
        pairs = np.equal.outer(ours, ours)
        assert np.array_equal(pairs, np.equal.outer(labels, labels)), eps


def test_cosine_distances() -> None:
    d = cosine_distances(np.array([[1.0, 0], [0, 2], [-3, 0]]))
    np.testing.assert_allclose(d, [[0, 1, 2], [1, 0, 1], [2, 1, 0]], atol=1e-12)


def test_merge_matrix_is_a_logical_or() -> None:
    out = merge_matrix(TAGS, [[0, 3], [1, 2]])
    assert out.dtype == np.uint8 and out.toarray().tolist() == [[1, 1], [1, 1], [1, 1], [1, 1], [0, 0]]
    assert merge_matrix(TAGS, [[2], [0]]).toarray().tolist() == [[0, 1], [0, 1], [1, 1], [1, 1], [0, 0]]


def test_calibrate_eps_lands_on_the_target() -> None:
    emb = np.random.default_rng(1).standard_normal((200, 6))
    for target in (180, 150, 60):
        eps = calibrate_eps(emb, target)
        assert len(merge_synonyms(emb, eps=eps)[1]) == target
    assert len(merge_synonyms(emb, eps=calibrate_eps(emb, 500))[1]) == 200  # unreachable: no merging
    eps = calibrate_eps(emb, 150, min_samples=2)
    assert abs(len(merge_synonyms(emb, eps=eps, min_samples=2)[1]) - 150) <= 3


def _brute_margin(emb: np.ndarray, m: np.ndarray) -> list[float]:
    w = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return [w[p] @ w[n] for row in m for p in np.flatnonzero(row) for n in np.flatnonzero(row == 0)]


def test_margin_statistics_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((7, 4)) * rng.uniform(0.5, 3, (7, 1))  # rows need not be unit
    m = (rng.random((12, 7)) < 0.35).astype(np.uint8)
    m[0] = 0  # an image without tags adds no triplet
    vals = _brute_margin(emb, m)
    stats = margin_statistics(emb, sp.csr_matrix(m))
    assert stats["triplets"] == len(vals)
    assert stats["mean_cosine"] == pytest.approx(np.mean(vals), abs=1e-12)
    assert stats["initial_loss"] == pytest.approx(1 - np.mean(vals), abs=1e-12)
    w = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cos = w @ w.T
    assert stats["mean_pairwise_cosine"] == pytest.approx(cos[~np.eye(7, dtype=bool)].mean(), abs=1e-12)
    with pytest.raises(ValueError, match="6 tag columns, embeddings 7 rows"):
        margin_statistics(emb, m[:, :6])


def test_margin_statistics_extremes() -> None:
    stats = margin_statistics(np.eye(4), TAGS)
    assert stats["mean_cosine"] == pytest.approx(0.0) and stats["initial_loss"] == pytest.approx(1.0)
    assert stats["triplets"] == 2 * 2 + 2 * 2 + 2 * 2 + 3 * 1
    assert margin_statistics(np.ones((4, 3)), TAGS)["initial_loss"] == pytest.approx(0.0)
