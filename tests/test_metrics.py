"""Every metric against a plain-Python reference, with empty queries, few labels and tied distances."""

from __future__ import annotations

import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.evaluation import metrics

RNG = np.random.default_rng(11)
NQ, NB, L = 25, 120, 4
Q_LABELS = (RNG.random((NQ, L)) < 0.3).astype(np.uint8)
Q_LABELS[0] = [0, 0, 0, 1]  # label 3 never occurs in the database: nothing relevant anywhere
DB_LABELS = (RNG.random((NB, L)) < 0.2).astype(np.uint8)
DB_LABELS[:, 3] = 0
ORDER = np.argsort(RNG.random((NQ, NB)), axis=1)  # an arbitrary full ranking per query


def brute_rel(q: int, j: int, q_labels: np.ndarray = Q_LABELS, db_labels: np.ndarray = DB_LABELS) -> bool:
    return any(a and b for a, b in zip(q_labels[q], db_labels[j], strict=True))


def brute_ap(rel: list[bool], total: int | None) -> float:
    hits, s = 0, 0.0
    for i, r in enumerate(rel, 1):
        if r:
            hits += 1
            s += hits / i
    den = hits if total is None else total
    return s / den if den else 0.0


def test_relevance_and_totals_match_brute_force() -> None:
    rel = metrics.relevance(Q_LABELS, DB_LABELS, ORDER[:, :9])
    assert rel.dtype == bool and rel.shape == (NQ, 9)
    assert rel.tolist() == [[brute_rel(q, j) for j in ORDER[q, :9]] for q in range(NQ)]
    totals = metrics.n_relevant(Q_LABELS, DB_LABELS)
    assert totals.dtype == np.int64
    assert totals.tolist() == [sum(brute_rel(q, j) for j in range(NB)) for q in range(NQ)]
    assert totals[0] == 0


@pytest.mark.parametrize("n_labels", [3, 8, 9, 16, 21, 32, 33, 64, 65, 81, 200])
def test_label_packing_at_every_word_width(n_labels: int) -> None:
    q = (RNG.random((6, n_labels)) < 0.05).astype(np.uint8)
    db = (RNG.random((40, n_labels)) < 0.05).astype(np.uint8)
    q[0, -1], db[7, -1] = 1, 1  # the last label must survive packing
    idx = np.tile(np.arange(40), (6, 1))
    rel = metrics.relevance(q, db, idx)
    assert rel.tolist() == [[brute_rel(a, j, q, db) for j in range(40)] for a in range(6)]
    assert rel[0, 7]
    assert metrics.n_relevant(q, db).tolist() == [sum(brute_rel(a, j, q, db) for j in range(40)) for a in range(6)]


@pytest.mark.parametrize("k", [1, 7, NB])
def test_average_precision_both_normalisers(k: int) -> None:
    rel = metrics.relevance(Q_LABELS, DB_LABELS, ORDER[:, :k])
    totals = metrics.n_relevant(Q_LABELS, DB_LABELS)
    retrieved = metrics.average_precision(rel, normaliser="retrieved")
    total = metrics.average_precision(rel, normaliser="total", n_total=totals)
    for q in range(NQ):
        assert retrieved[q] == pytest.approx(brute_ap(rel[q].tolist(), None), abs=1e-12)
        assert total[q] == pytest.approx(brute_ap(rel[q].tolist(), int(totals[q])), abs=1e-12)
    if k == NB:  # over the whole database the two normalisers agree
        np.testing.assert_allclose(retrieved, total, atol=1e-12)
    with pytest.raises(TagcodeError, match="needs n_total"):
        metrics.average_precision(rel, normaliser="total")
    with pytest.raises(TagcodeError, match="at least the relevant items"):
        metrics.average_precision(np.ones((1, 3), bool), normaliser="total", n_total=np.array([2]))


def test_mean_average_precision_empty_policies() -> None:
    ap = np.array([0.5, 0.0, 1.0, 0.0])
    is_empty = np.array([False, True, False, True])
    assert metrics.mean_average_precision(ap, empty="skip", is_empty=is_empty) == pytest.approx(0.75)
    assert metrics.mean_average_precision(ap, empty="zero", is_empty=is_empty) == pytest.approx(0.375)
    assert metrics.mean_average_precision(ap[[1]], empty="skip", is_empty=is_empty[[1]]) == 0.0
    with pytest.raises(TagcodeError, match="unknown empty-query policy"):
        metrics.mean_average_precision(ap, empty="drop", is_empty=is_empty)  # type: ignore[arg-type]


def test_precision_at_n() -> None:
    rel = metrics.relevance(Q_LABELS, DB_LABELS, ORDER[:, :50])
    got = metrics.precision_at(rel, [1, 10, 50])
    for n in (1, 10, 50):
        assert got[n] == pytest.approx(np.mean([sum(rel[q, :n].tolist()) / n for q in range(NQ)]))
    with pytest.raises(TagcodeError, match="list length 50"):
        metrics.precision_at(rel, [100])


def test_pr_curve_at_cutoffs() -> None:
    rel = metrics.relevance(Q_LABELS, DB_LABELS, ORDER)
    totals = metrics.n_relevant(Q_LABELS, DB_LABELS)
    cut = [1, 5, 30, NB]
    precision, recall = metrics.pr_curve(rel, totals, cutoffs=cut)
    counted = [q for q in range(NQ) if totals[q] > 0]
    for c, p, r in zip(cut, precision, recall, strict=True):
        assert p == pytest.approx(np.mean([sum(rel[q, :c].tolist()) / c for q in counted]))
        assert r == pytest.approx(np.mean([sum(rel[q, :c].tolist()) / totals[q] for q in counted]))
    assert recall[-1] == pytest.approx(1.0)  # the whole database retrieves everything relevant
    with pytest.raises(TagcodeError, match=r"PR cut-offs must lie in \[1, list length 120\], got \[0, 5\]"):
        metrics.pr_curve(rel, totals, cutoffs=[0, 5])


def test_pr_curve_hamming_treats_a_radius_as_one_step() -> None:
    nbits = 4
    dist = np.sort(RNG.integers(0, nbits + 1, (NQ, NB)), axis=1)  # a full ranking with many tied distances
    rel = metrics.relevance(Q_LABELS, DB_LABELS, ORDER)
    totals = metrics.n_relevant(Q_LABELS, DB_LABELS)
    precision, recall = metrics.pr_curve_hamming(dist, rel, totals, nbits)
    counted = [q for q in range(NQ) if totals[q] > 0]
    for r in range(nbits + 1):
        got = {q: [j for j in range(NB) if dist[q, j] <= r] for q in counted}
        tp = {q: sum(rel[q, j] for j in got[q]) for q in counted}
        assert precision[r] == pytest.approx(np.mean([tp[q] / len(got[q]) if got[q] else 0.0 for q in counted]))
        assert recall[r] == pytest.approx(np.mean([tp[q] / totals[q] for q in counted]))
    assert recall[-1] == pytest.approx(1.0)
    with pytest.raises(TagcodeError, match=r"lie in \[0, 4\]"):
        metrics.pr_curve_hamming(dist + 1, rel, totals, nbits)


def test_label_shape_errors() -> None:
    with pytest.raises(TagcodeError, match="same L"):
        metrics.relevance(Q_LABELS, DB_LABELS[:, :3], ORDER[:, :2])
    with pytest.raises(TagcodeError, match="indices must be"):
        metrics.relevance(Q_LABELS, DB_LABELS, ORDER[:3, :2])
