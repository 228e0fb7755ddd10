"""Every metric against a brute-force reference (full sort by (score, index)) on data full of ties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.evaluation import metrics
from tagcode.evaluation.plots import plot_map_vs_bits, plot_pr_curves
from tagcode.evaluation.protocols import PROTOCOLS, Protocol, evaluate, metric_key
from tagcode.retrieval import search

RNG = np.random.default_rng(7)
NQ, NB, L = 30, 200, 4
Q_LABELS = (RNG.random((NQ, L)) < 0.25).astype(np.uint8)
Q_LABELS[Q_LABELS.sum(1) == 0, 0] = 1
Q_LABELS[0] = 0  # an unlabelled query (a reported skip)
Q_LABELS[1] = [0, 0, 0, 1]
DB_LABELS = (RNG.random((NB, L)) < 0.2).astype(np.uint8)
DB_LABELS[:, 3] = 0  # query 1 has no relevant item anywhere: an empty query
BITS01 = RNG.random((NQ + NB, 8)) < 0.5  # 8-bit codes: only 9 distances, ties everywhere
XQ = RNG.integers(-2, 3, (NQ, 6)).astype(np.float32)  # small integers: tied inner products
CODEBOOKS = RNG.integers(-2, 3, (2, 4, 6)).astype(np.float32)
CODES = RNG.integers(0, 4, (NB, 2)).astype(np.uint8)


def _brute_rank(scores: np.ndarray, larger_is_better: bool) -> np.ndarray:
    """Per query, database indices sorted by (score, then index), in plain Python."""
    out = []
    for row in scores:
        key = [(-s if larger_is_better else s, j) for j, s in enumerate(row)]
        out.append([j for _, j in sorted(key)])
    return np.asarray(out)


def _brute_map(order: np.ndarray, q_labels: np.ndarray, k: int, normaliser: str, empty: str) -> float:
    aps = []
    for q in range(len(order)):
        if q_labels[q].sum() == 0:
            continue
        rel = [(q_labels[q] & DB_LABELS[j]).any() for j in order[q][:k]]
        total = sum((q_labels[q] & DB_LABELS[j]).any() for j in range(NB))
        hits, s = 0, 0.0
        for i, r in enumerate(rel, 1):
            if r:
                hits += 1
                s += hits / i
        if hits == 0:  # empty: nothing relevant within the top k
            if empty == "zero":
                aps.append(0.0)
            continue
        aps.append(s / (hits if normaliser == "retrieved" else total))
    return float(np.mean(aps))


def test_hamming_matches_inner_product_identity_and_brute_ties() -> None:
    q, b = search.pack_bits(BITS01[:NQ]), search.pack_bits(BITS01[NQ:])
    d, i = search.hamming_knn(q, b, NB)
    pm = np.where(BITS01, 1, -1)
    ham = (8 - pm[:NQ] @ pm[NQ:].T) // 2
    np.testing.assert_array_equal(i, _brute_rank(ham, larger_is_better=False))
    np.testing.assert_array_equal(d, np.take_along_axis(ham, i, 1))
    _d7, i7 = search.hamming_knn(q, b, 7)
    np.testing.assert_array_equal(i7, i[:, :7])


@pytest.mark.parametrize("k", [1, 7, NB])
def test_float_aqd_sqd_rankings_with_ties(k: int) -> None:
    xb = search.reconstruct(CODES, CODEBOOKS)
    expected = _brute_rank(XQ @ xb.T, larger_is_better=True)[:, :k]
    for s, i in (search.aqd_knn(XQ, CODES, CODEBOOKS, k), search.float_knn(XQ, xb, k, "ip")):
        np.testing.assert_array_equal(i, expected)
        np.testing.assert_allclose(s, np.take_along_axis(XQ @ xb.T, i, 1))
    q_codes = CODES[:NQ]
    xq_hat = search.reconstruct(q_codes, CODEBOOKS)
    _, i = search.sqd_knn(q_codes, CODES, CODEBOOKS, k)
    np.testing.assert_array_equal(i, _brute_rank(xq_hat @ xb.T, larger_is_better=True)[:, :k])
    _, il2 = search.float_knn(XQ, xb, k, "l2")
    l2 = ((XQ[:, None] - xb[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(il2, _brute_rank(l2, larger_is_better=False)[:, :k])


def test_reconstruct_is_additive() -> None:
    x = search.reconstruct(CODES[:3], CODEBOOKS)
    np.testing.assert_allclose(x[1], CODEBOOKS[0, CODES[1, 0]] + CODEBOOKS[1, CODES[1, 1]])
    with pytest.raises(TagcodeError, match="multiple of 8"):
        search.pack_bits(np.ones((2, 12)))


@pytest.mark.parametrize("k", [1, 7, None])
@pytest.mark.parametrize("normaliser", ["retrieved", "total"])
@pytest.mark.parametrize("empty", ["skip", "zero"])
def test_map_against_brute_force(k: int | None, normaliser: str, empty: str) -> None:
    proto = Protocol("t", "aqd", k, normaliser, empty)
    res = evaluate(proto, query={"x": XQ}, database={"codes": CODES, "codebooks": CODEBOOKS},
                   q_labels=Q_LABELS, db_labels=DB_LABELS, p_at=(5,))
    order = _brute_rank(XQ @ search.reconstruct(CODES, CODEBOOKS).T, larger_is_better=True)
    assert res["map"] == pytest.approx(_brute_map(order, Q_LABELS, k or NB, normaliser, empty))
    assert res["n_unlabelled"] == 1 and res["n_queries"] == NQ - 1 and res["n_empty"] >= 1
    top = min(5, k or NB)
    rel = np.array([[(Q_LABELS[q] & DB_LABELS[j]).any() for j in order[q][:top]] for q in range(1, NQ)])
    assert res["precision_at"]["5"] == pytest.approx(rel.mean())


def test_hamming_protocol_and_pr_curves() -> None:
    q, b = search.pack_bits(BITS01[:NQ]), search.pack_bits(BITS01[NQ:])
    res = evaluate(PROTOCOLS.create("wshrca_mirflickr"), query={"bits": q}, database={"bits": b},
                   q_labels=Q_LABELS, db_labels=DB_LABELS)
    pm = np.where(BITS01, 1, -1)
    order = _brute_rank((8 - pm[:NQ] @ pm[NQ:].T) // 2, larger_is_better=False)
    assert res["map"] == pytest.approx(_brute_map(order, Q_LABELS, NB, "total", "zero"))
    p, r = np.asarray(res["pr"]["precision"]), np.asarray(res["pr"]["recall"])
    has_relevant = metrics.n_relevant(Q_LABELS[1:], DB_LABELS) > 0
    assert np.all(np.diff(r) >= -1e-12) and r[-1] == pytest.approx(has_relevant.mean())  # empty queries never recall
    d, i = search.hamming_knn(q[1:], b, NB)
    rel = metrics.relevance(Q_LABELS[1:], DB_LABELS, i)
    hp, hr = metrics.pr_curve_hamming(d, rel, metrics.n_relevant(Q_LABELS[1:], DB_LABELS), 8)
    assert len(hp) == 9 and hr[-1] == pytest.approx(r[-1]) and p.min() >= 0


def test_protocol_needs_matching_codes_and_keys_are_mlflow_safe() -> None:
    with pytest.raises(TagcodeError, match="scores by aqd"):
        evaluate(PROTOCOLS.create("wsdhq"), query={"bits": np.zeros((2, 1), np.uint8)},
                 database={"bits": np.zeros((3, 1), np.uint8)}, q_labels=Q_LABELS[:2], db_labels=DB_LABELS[:3])
    assert metric_key("wsdhq_map@5000") == "wsdhq_map_at_5000"


def test_label_packing_beyond_64_labels() -> None:
    a = np.zeros((2, 70), np.uint8)
    b = np.zeros((3, 70), np.uint8)
    a[0, 69], b[2, 69], a[1, 0], b[0, 0] = 1, 1, 1, 1
    rel = metrics.relevance(a, b, np.array([[0, 1, 2], [0, 1, 2]]))
    assert rel.tolist() == [[False, False, True], [True, False, False]]
    assert metrics.n_relevant(a, b).tolist() == [1, 1]


def test_plots_are_pngs(tmp_path: Path) -> None:
    plot_pr_curves({"a": ([1.0, 0.5], [0.1, 0.9])}, tmp_path / "pr.png")
    plot_map_vs_bits({"wsdhq": [("itq", 16, 0.3), ("itq", 32, 0.35), ("lsh", 16, 0.2)], "wshrca": []},
                     tmp_path / "m.png")
    for name in ("pr.png", "m.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
