"""The random-ranking mAP equals the evaluator's mean over every ranking of a small database."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tagcode.evaluation.chance import random_map
from tagcode.evaluation.protocols import Protocol, evaluate


@pytest.mark.parametrize(("k", "normaliser", "empty"), [
    (None, "total", "zero"), (3, "retrieved", "zero"), (3, "retrieved", "skip"), (3, "total", "zero"),
    (2, "total", "skip"), (10, "retrieved", "skip"),
])
@pytest.mark.parametrize("relevant", [[0, 2], [1, 3, 4], [0]])
def test_random_map_is_the_mean_over_all_rankings(k: int | None, normaliser: str, empty: str,
                                                  relevant: list[int]) -> None:
    n = 6
    db_labels = np.zeros((n, 2), dtype=bool)
    db_labels[relevant, 0] = True
    db_labels[[i for i in range(n) if i not in relevant], 1] = True
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.float32)  # 720 rankings, one per query
    q_labels = np.zeros((len(perms), 2), dtype=bool)
    q_labels[:, 0] = True
    protocol = Protocol("t", "float", k, normaliser, empty)
    result = evaluate(protocol, query={"x": perms}, database={"x": np.eye(n, dtype=np.float32)},
                      q_labels=q_labels, db_labels=db_labels, pr=False, p_at=())
    assert random_map(protocol, q_labels[:1], db_labels) == pytest.approx(result["map"], abs=1e-9)


def test_unlabelled_queries_and_queries_without_relevant_items() -> None:
    db = np.array([[1, 0], [1, 0], [0, 0]], dtype=bool)
    q = np.array([[0, 1], [0, 0], [1, 0]], dtype=bool)  # no relevant item; unlabelled (left out); R = 2 of 3
    full = Protocol("t", "float", None, "total", "zero")
    expected = (0.0 + (1 / 3) * (1 + 1 / 2 + 1 / 3 + (2 - 1) / (3 - 1) * (3 - (1 + 1 / 2 + 1 / 3)))) / 2
    assert random_map(full, q, db) == pytest.approx(expected)
    assert random_map(Protocol("t", "float", None, "total", "skip"), q, db) == pytest.approx(expected * 2)


@pytest.mark.parametrize(("n", "r", "k"), [(2957, 40, 2957), (2957, 1, 100), (10, 3, 4), (100, 60, 50), (5, 5, 5)])
def test_hypergeometric_pmf_equals_scipys(n: int, r: int, k: int) -> None:
    from scipy.stats import hypergeom

    from tagcode.evaluation.chance import hypergeom_pmf

    x = np.arange(-1, r + 2)  # impossible counts included: probability 0
    np.testing.assert_allclose(hypergeom_pmf(x, n, r, k), hypergeom(n, r, k).pmf(x), rtol=1e-9, atol=1e-12)
