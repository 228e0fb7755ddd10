"""The mAP of a random ranking, computed exactly from the labels: the floor every method must clear.

For a query with R relevant items among N, rank the database uniformly at random and cut at K' = min(K, N).
The number of relevant items in the top K' is X ~ Hypergeometric(N, R, K'); given X = x, their positions
are uniform, so E[Σ_{n≤K'} rel_n · P@n | X = x] = x · f(K', x) with
f(K, x) = (H_K + (x − 1)(K − H_K) / (K − 1)) / K (H_K the K-th harmonic number). Hence E[AP] is
Σ_x P(x) f(K', x) for the "retrieved" normaliser and Σ_x P(x) x f(K', x) / R for "total". Empty queries
(X = 0) count 0, or, under the "skip" policy, the query's value is E[AP | X ≥ 1] and queries with R = 0
are left out; with K ≥ N (every demo protocol) that equals the mean a random ranking is expected to score.
"""

from __future__ import annotations

import numpy as np

from tagcode.evaluation.protocols import Protocol

CHUNK = 256  # queries whose relevance counts are computed at once


def relevant_counts(q_labels: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    """R per query: database items sharing at least one label with it."""
    q = np.asarray(q_labels, dtype=np.float32)
    d = np.asarray(db_labels, dtype=np.float32)
    return np.concatenate([((q[i:i + CHUNK] @ d.T) > 0).sum(axis=1) for i in range(0, len(q), CHUNK)] or
                          [np.zeros(0, dtype=np.int64)])


def hypergeom_pmf(x: np.ndarray, n: int, r: int, k: int) -> np.ndarray:
    """P(X = x) for X ~ Hypergeometric(population n, r successes, k draws), from log-binomials (scipy.stats'
    frozen distribution cost ~9 ms a call, most of `evaluate`'s time on the demo)."""
    from scipy.special import gammaln

    def log_comb(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
        return gammaln(np.add(a, 1)) - gammaln(np.add(b, 1)) - gammaln(np.subtract(a, b) + 1)

    x = np.asarray(x, dtype=np.float64)
    possible = (x >= 0) & (x <= r) & (k - x >= 0) & (k - x <= n - r)
    safe = np.where(possible, x, 0.0)
    logp = log_comb(r, safe) + log_comb(n - r, np.where(possible, k - safe, 0.0)) - log_comb(n, k)
    return np.where(possible, np.exp(logp), 0.0)


def expected_ap(n: int, r: int, k: int | None, normaliser: str, empty: str) -> float | None:
    """E[AP] of one query with ``r`` relevant among ``n`` under a random ranking (None: skipped)."""
    if r == 0:
        return None if empty == "skip" else 0.0
    kk = n if k is None else min(k, n)
    x = np.arange(1, min(r, kk) + 1, dtype=np.float64)
    h = float(np.sum(1.0 / np.arange(1, kk + 1)))
    f = np.ones_like(x) if kk == 1 else (h + (x - 1) * (kk - h) / (kk - 1)) / kk
    pmf = hypergeom_pmf(x, n, r, kk)
    terms = pmf * f * (1.0 if normaliser == "retrieved" else x / r)
    value = float(terms.sum())
    return value / float(pmf.sum()) if empty == "skip" else value


def random_map(protocol: Protocol, q_labels: np.ndarray, db_labels: np.ndarray) -> float:
    """Expected mAP of a uniformly random ranking under ``protocol``; queries without labels are left out
    (as the evaluate stage skips them)."""
    q = np.asarray(q_labels, dtype=bool)
    q = q[q.any(axis=1)]
    n = len(db_labels)
    counts = relevant_counts(q, db_labels)
    cache: dict[int, float | None] = {}
    values = []
    for r in counts.tolist():
        if r not in cache:
            cache[r] = expected_ap(n, r, protocol.k, protocol.normaliser, protocol.empty)
        if cache[r] is not None:
            values.append(cache[r])
    return float(np.mean(values)) if values else 0.0
