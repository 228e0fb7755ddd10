"""Named protocols end to end against a brute-force evaluator: full Python sort by (score, index), plain AP."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.evaluation import protocols
from tagcode.evaluation.protocols import PROTOCOLS, Protocol, evaluate, metric_key
from tagcode.retrieval.search import pack_bits, reconstruct

RNG = np.random.default_rng(5)
NQ, NB, L = 30, 200, 4
Q_LABELS = (RNG.random((NQ, L)) < 0.25).astype(np.uint8)
Q_LABELS[Q_LABELS.sum(1) == 0, 0] = 1
Q_LABELS[1] = [0, 0, 0, 1]  # nothing relevant anywhere: an empty query under every k
DB_LABELS = (RNG.random((NB, L)) < 0.2).astype(np.uint8)
DB_LABELS[:, 3] = 0
PM = np.where(RNG.random((NQ + NB, 8)) < 0.5, 1, -1)  # 8-bit codes: 9 distances for 200 items
CODEBOOKS = RNG.integers(-2, 3, (2, 4, 6)).astype(np.float32)  # 16 distinct reconstructions
CODES = RNG.integers(0, 4, (NQ + NB, 2))
XQ = RNG.integers(-2, 3, (NQ, 6)).astype(np.float32)
XB = RNG.integers(-2, 3, (NB, 6)).astype(np.float32)


def representation(score: str) -> tuple[dict, dict, np.ndarray, bool]:
    """(query, database, score matrix, larger_is_better) for each score kind."""
    if score == "hamming":
        bits = pack_bits(PM)
        return {"bits": bits[:NQ]}, {"bits": bits[NQ:]}, (8 - PM[:NQ] @ PM[NQ:].T) // 2, False
    xhat = reconstruct(CODES[NQ:], CODEBOOKS)
    if score == "aqd":
        return {"x": XQ}, {"codes": CODES[NQ:], "codebooks": CODEBOOKS}, XQ @ xhat.T, True
    if score == "sqd":
        return ({"codes": CODES[:NQ]}, {"codes": CODES[NQ:], "codebooks": CODEBOOKS},
                reconstruct(CODES[:NQ], CODEBOOKS) @ xhat.T, True)
    return {"x": XQ}, {"x": XB}, XQ @ XB.T, True


def brute(scores: np.ndarray, larger: bool, q_labels: np.ndarray, k: int, normaliser: str,
          empty: str) -> tuple[float, list[list[bool]], list[int]]:
    """(mAP, relevance of each labelled query's top k, its total relevant), all in plain Python."""
    aps, rels, totals = [], [], []
    for q in range(len(scores)):
        if not q_labels[q].any():
            continue
        order = [j for _, j in sorted(((-s if larger else s), j) for j, s in enumerate(scores[q].tolist()))]
        rel = [bool((q_labels[q] & DB_LABELS[j]).any()) for j in order]
        total = sum(rel)
        rels.append(rel[:k])
        totals.append(total)
        hits, s = 0, 0.0
        for i, r in enumerate(rel[:k], 1):
            if r:
                hits += 1
                s += hits / i
        if hits == 0:
            if empty == "zero":
                aps.append(0.0)
            continue
        aps.append(s / (hits if normaliser == "retrieved" else total))
    return float(np.mean(aps)), rels, totals


@pytest.mark.parametrize("score", ["hamming", "aqd", "sqd", "float"])
@pytest.mark.parametrize("k", [1, 7, None])
@pytest.mark.parametrize("normaliser", ["retrieved", "total"])
@pytest.mark.parametrize("empty", ["skip", "zero"])
def test_evaluate_matches_brute_force(score: str, k: int | None, normaliser: str, empty: str) -> None:
    query, database, scores, larger = representation(score)
    q_labels = Q_LABELS.copy()
    q_labels[0] = 0  # an unlabelled query, skipped on request
    res = evaluate(Protocol("t", score, k, normaliser, empty), query=query, database=database,
                   q_labels=q_labels, db_labels=DB_LABELS, p_at=(1, 5, 500), on_unlabelled="skip")
    ref, rels, totals = brute(scores, larger, q_labels, k or NB, normaliser, empty)
    assert res["map"] == pytest.approx(ref, abs=1e-12)
    assert res["n_unlabelled"] == 1 and res["n_queries"] == NQ - 1 and res["k_used"] == (k or NB)
    n_empty = sum(not any(r) for r in rels)
    assert res["n_empty"] == n_empty >= 1
    assert res["n_averaged"] == (NQ - 1 - n_empty if empty == "skip" else NQ - 1)
    for n in (1, 5):
        if n <= (k or NB):
            assert res["precision_at"][str(n)] == pytest.approx(np.mean([sum(r[:n]) / n for r in rels]))
    assert "500" not in res["precision_at"]  # beyond the list: not reported rather than guessed
    counted = [i for i, t in enumerate(totals) if t]
    for c, p, r in zip(res["pr"]["cutoffs"], res["pr"]["precision"], res["pr"]["recall"], strict=True):
        assert p == pytest.approx(np.mean([sum(rels[i][:c]) / c for i in counted]))
        assert r == pytest.approx(np.mean([sum(rels[i][:c]) / totals[i] for i in counted]))
    json.dumps(res)  # JSON-ready as returned


def test_hamming_radius_curve_over_the_whole_database() -> None:
    query, database, scores, _ = representation("hamming")
    res = evaluate(PROTOCOLS.create("wshrca_mirflickr"), query=query, database=database, q_labels=Q_LABELS,
                   db_labels=DB_LABELS)
    curve = res["pr_hamming"]
    assert curve["radius"] == list(range(9)) and curve["recall"][-1] == pytest.approx(1.0)
    counted = [q for q in range(NQ) if any((Q_LABELS[q] & DB_LABELS[j]).any() for j in range(NB))]
    for r in (0, 3, 8):
        prec = []
        for q in counted:
            got = [j for j in range(NB) if scores[q, j] <= r]
            prec.append(sum(bool((Q_LABELS[q] & DB_LABELS[j]).any()) for j in got) / len(got) if got else 0.0)
        assert curve["precision"][r] == pytest.approx(np.mean(prec))


def test_chunking_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    query, database, _, _ = representation("aqd")
    proto = PROTOCOLS.create("wsdhq")
    whole = evaluate(proto, query=query, database=database, q_labels=Q_LABELS, db_labels=DB_LABELS)
    monkeypatch.setattr(protocols, "CHUNK_ELEMENTS", 7 * NB)
    assert evaluate(proto, query=query, database=database, q_labels=Q_LABELS, db_labels=DB_LABELS) == whole


def test_unlabelled_queries_are_an_error_by_default() -> None:
    query, database, _, _ = representation("float")
    q_labels = Q_LABELS.copy()
    q_labels[[4, 9]] = 0
    with pytest.raises(TagcodeError, match="query 4 has no label"):
        evaluate(PROTOCOLS.create("wsdhq_feats"), query=query, database=database, q_labels=q_labels,
                 db_labels=DB_LABELS)
    with pytest.raises(TagcodeError, match="no labelled query"):
        evaluate(PROTOCOLS.create("wsdhq_feats"), query=query, database=database, q_labels=q_labels * 0,
                 db_labels=DB_LABELS, on_unlabelled="skip")


def test_registered_protocols_carry_each_papers_conventions() -> None:
    got = {name: dataclasses.astuple(PROTOCOLS.create(name))[1:] for name in PROTOCOLS.names()}
    assert got["wsdhq"] == ("aqd", 5000, "retrieved", "skip")
    assert got["wsdhq_sqd"] == ("sqd", 5000, "retrieved", "skip")
    assert got["wsdhq_feats"] == ("float", 5000, "retrieved", "skip")
    assert got["wshrca_mirflickr"] == ("hamming", None, "total", "zero")
    assert got["wshrca_nuswide"] == ("hamming", 50000, "retrieved", "zero")
    assert got["wshrca_at5000"] == ("hamming", 5000, "retrieved", "zero")
    with pytest.raises(TagcodeError, match="unknown score"):
        Protocol("x", "cosine", 10, "retrieved", "skip")  # type: ignore[arg-type]
    with pytest.raises(TagcodeError, match="k must be"):
        Protocol("x", "hamming", 0, "retrieved", "skip")


def test_score_that_does_not_fit_the_codes_is_a_one_line_error() -> None:
    query, database, _, _ = representation("hamming")
    with pytest.raises(TagcodeError, match=r"scores by aqd, which needs query \['x'\]") as err:
        evaluate(PROTOCOLS.create("wsdhq"), query=query, database=database, q_labels=Q_LABELS,
                 db_labels=DB_LABELS)
    assert "\n" not in str(err.value)
    with pytest.raises(TagcodeError, match="do not match the codes"):
        evaluate(PROTOCOLS.create("top100"), query=query, database=database, q_labels=Q_LABELS[:5],
                 db_labels=DB_LABELS)


def test_metric_keys_are_mlflow_safe() -> None:
    assert metric_key("wsdhq_map@5000") == "wsdhq_map_at_5000"
    assert metric_key("p@10 (aqd)") == "p_at_10 _aqd_"
