"""Exact kNN search against a plain-Python full sort by (score, index), on data full of ties."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.retrieval import search

RNG = np.random.default_rng(3)


def brute_rank(scores: np.ndarray, *, larger_is_better: bool) -> np.ndarray:
    """Per row, every database index sorted by (score, then index), with Python's sort."""
    return np.asarray([[j for _, j in sorted(((-s if larger_is_better else s), j) for j, s in enumerate(row))]
                       for row in scores.tolist()])


def pm_codes(n: int, nbits: int) -> np.ndarray:
    return np.where(RNG.random((n, nbits)) < 0.5, 1, -1)


@pytest.mark.parametrize(("nbits", "nb"), [(8, 300), (8, 9000), (24, 2000), (48, 600), (64, 600), (256, 300)])
def test_hamming_knn_is_a_stable_full_sort(nbits: int, nb: int) -> None:
    q, db = pm_codes(25, nbits), pm_codes(nb, nbits)
    ham = (nbits - q @ db.T) // 2  # the identity for ±1 codes
    order = brute_rank(ham, larger_is_better=False)
    for k in sorted({1, 7, 100, nb}):
        d, i = search.hamming_knn(search.pack_bits(q), search.pack_bits(db), k)
        assert d.dtype == np.int32 and i.dtype == np.int64 and d.shape == i.shape == (25, k)
        np.testing.assert_array_equal(i, order[:, :k])
        np.testing.assert_array_equal(d, np.take_along_axis(ham, i, 1))


def test_hamming_knn_equals_faiss_knn_hamming() -> None:
    q, db = search.pack_bits(pm_codes(40, 16)), search.pack_bits(pm_codes(20000, 16))
    for k in (1, 50, 5000):
        d, i = search.hamming_knn(q, db, k)
        for variant in ("mc", "hc"):
            fd, fi = faiss.knn_hamming(q, db, k, variant=variant)
            np.testing.assert_array_equal(i, fi)
            np.testing.assert_array_equal(d, fd)


def test_pack_bits_accepts_three_encodings() -> None:
    pm = pm_codes(5, 16)
    packed = search.pack_bits(pm)
    np.testing.assert_array_equal(search.pack_bits(pm > 0), packed)
    np.testing.assert_array_equal(search.pack_bits((pm > 0).astype(np.uint8)), packed)
    np.testing.assert_array_equal(np.unpackbits(packed, axis=1), (pm > 0).astype(np.uint8))
    with pytest.raises(TagcodeError, match="multiple of 8"):
        search.pack_bits(np.ones((2, 12)))
    with pytest.raises(TagcodeError, match=r"only \{0,1\}"):
        search.pack_bits(np.array([[0, 1, -1, 1, 0, 1, 1, 1]]))


def test_inner_product_rankings_with_ties() -> None:
    xq = RNG.integers(-2, 3, (20, 6)).astype(np.float32)  # small integers: exact, heavily tied products
    xb = RNG.integers(-2, 3, (9000, 6)).astype(np.float32)
    ip = xq @ xb.T
    order = brute_rank(ip, larger_is_better=True)
    l2 = ((xq[:, None] - xb[None]) ** 2).sum(-1)
    l2_order = brute_rank(l2, larger_is_better=False)
    for k in (1, 7, 9000):
        s, i = search.float_knn(xq, xb, k, "ip")
        assert s.dtype == np.float32 and i.dtype == np.int64
        np.testing.assert_array_equal(i, order[:, :k])
        np.testing.assert_array_equal(s, np.take_along_axis(ip, i, 1))
        d, i = search.float_knn(xq, xb, k, "l2")
        np.testing.assert_array_equal(i, l2_order[:, :k])
        np.testing.assert_allclose(d, np.take_along_axis(l2, i, 1))


def test_cosine_ranks_normalised_vectors() -> None:
    xq, xb = RNG.standard_normal((10, 8)).astype(np.float32), RNG.standard_normal((500, 8)).astype(np.float32)
    cos = (xq / np.linalg.norm(xq, axis=1, keepdims=True)) @ (xb / np.linalg.norm(xb, axis=1, keepdims=True)).T
    s, i = search.float_knn(xq, xb, 20, "cosine")
    np.testing.assert_array_equal(i, np.argsort(-cos, axis=1, kind="stable")[:, :20])
    np.testing.assert_allclose(s, np.take_along_axis(cos, i, 1), rtol=1e-5)


def test_aqd_and_sqd_equal_inner_products_of_reconstructions() -> None:
    codebooks = RNG.integers(-2, 3, (3, 4, 5)).astype(np.float32)  # 64 distinct codes over 5000 items: ties
    codes, q_codes = RNG.integers(0, 4, (5000, 3)), RNG.integers(0, 4, (15, 3))
    xq = RNG.integers(-2, 3, (15, 5)).astype(np.float32)
    xb = search.reconstruct(codes, codebooks)
    for k in (1, 7, 5000):
        s, i = search.aqd_knn(xq, codes, codebooks, k)
        ref = search.float_knn(xq, xb, k, "ip")
        np.testing.assert_array_equal(i, ref[1])
        np.testing.assert_array_equal(s, ref[0])
        np.testing.assert_array_equal(i, brute_rank(xq @ xb.T, larger_is_better=True)[:, :k])
        xq_hat = search.reconstruct(q_codes, codebooks)
        _, i = search.sqd_knn(q_codes, codes, codebooks, k)
        np.testing.assert_array_equal(i, brute_rank(xq_hat @ xb.T, larger_is_better=True)[:, :k])


def test_reconstruct_is_additive_and_covers_pq() -> None:
    codebooks = RNG.standard_normal((2, 4, 6)).astype(np.float32)
    codes = np.array([[1, 3], [0, 0]])
    np.testing.assert_allclose(search.reconstruct(codes, codebooks)[0], codebooks[0, 1] + codebooks[1, 3])
    pq = np.zeros((2, 4, 6), np.float32)  # PQ: codebook m lives in its own block of dimensions
    pq[0, :, :3], pq[1, :, 3:] = codebooks[0, :, :3], codebooks[1, :, 3:]
    np.testing.assert_array_equal(search.reconstruct(codes, pq)[0],
                                  np.concatenate([codebooks[0, 1, :3], codebooks[1, 3, 3:]]))
    with pytest.raises(TagcodeError, match="must lie in"):
        search.reconstruct(np.array([[0, 4]]), codebooks)
    with pytest.raises(TagcodeError, match="do not fit"):
        search.reconstruct(np.array([[0, 1, 2]]), codebooks)


def test_sampled_threshold_that_falls_short_still_gives_the_exact_top_k() -> None:
    n = 20000  # stride 4: the sample sees only items 0, 4, 8, … which here are the only high scores
    xb = np.full((n, 1), -1.0, np.float32)
    xb[::4, 0] = np.arange(0, n, 4) / n
    xb[1::4][:300, 0] = 0.5  # 300 tied scores the sample cannot see
    _, i = search.float_knn(np.ones((1, 1), np.float32), xb, 3000, "ip")
    np.testing.assert_array_equal(i[0], brute_rank(xb.T, larger_is_better=True)[0, :3000])


def test_ties_straddling_the_kth_place_keep_the_lowest_indices() -> None:
    xb = np.zeros((10000, 1), np.float32)
    xb[[5, 9000]] = 2.0
    _, i = search.float_knn(np.ones((1, 1), np.float32), xb, 10, "ip")
    assert i[0].tolist() == [5, 9000, 0, 1, 2, 3, 4, 6, 7, 8]


def test_threads_and_batches_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    q, db = search.pack_bits(pm_codes(30, 8)), search.pack_bits(pm_codes(3000, 8))
    # Integer-valued floats for BLAS: products are exact, so blocking cannot move the last bit of a score.
    xq, xb = RNG.integers(-3, 4, (30, 4)).astype(np.float32), RNG.integers(-1, 2, (3000, 4)).astype(np.float32)
    # AQD needs no such care: its tables are summed in a fixed order.
    yq, codebooks = RNG.standard_normal((30, 8)).astype(np.float32), RNG.standard_normal((2, 16, 8)).astype(np.float32)
    codes = RNG.integers(0, 16, (3000, 2))

    def run() -> list[tuple[np.ndarray, np.ndarray]]:
        return [search.hamming_knn(q, db, 50), search.float_knn(xq, xb, 50, "ip"),
                search.aqd_knn(yq, codes, codebooks, 50)]

    ref = run()
    for threads, batch in ((1, 1 << 30), (2, 3000), (3, 7000)):
        monkeypatch.setattr(search, "THREADS", threads)
        monkeypatch.setattr(search, "BATCH", batch)
        monkeypatch.setattr(search, "GEMM_BATCH", batch)
        for got, want in zip(run(), ref, strict=True):
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


def test_identical_codes_tie_exactly_with_real_valued_codebooks() -> None:
    codebooks = RNG.standard_normal((4, 8, 50)).astype(np.float32)
    codes = RNG.integers(0, 8, (20000, 4)) // 4 * 4  # 16 distinct codes, ~1250 copies each
    xq = RNG.standard_normal((6, 50)).astype(np.float32)
    s, i = search.aqd_knn(xq, codes, codebooks, 20000)
    key = codes @ (8 ** np.arange(4))
    for row_s, row_i in zip(s, i, strict=True):
        assert len(set(row_s.tolist())) == 16  # one score per distinct code
        groups = np.split(row_i, np.flatnonzero(np.diff(row_s)) + 1)
        for group in groups:  # each run of equal scores is one code, in ascending index order
            assert len(set(key[group].tolist())) == 1 and np.all(np.diff(group) > 0)


def test_bad_inputs_are_one_line_errors() -> None:
    q = search.pack_bits(pm_codes(2, 8))
    with pytest.raises(TagcodeError, match="k must be between 1 and the database size 2"):
        search.hamming_knn(q, q, 3)
    with pytest.raises(TagcodeError, match="8 bits, database codes 16"):
        search.hamming_knn(q, search.pack_bits(pm_codes(2, 16)), 1)
    with pytest.raises(TagcodeError, match="packed uint8"):
        search.hamming_knn(pm_codes(2, 8), q, 1)
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TagcodeError, match="3 dimensions, database vectors 4"):
        search.float_knn(x, np.ones((5, 4), np.float32), 1, "ip")
    with pytest.raises(TagcodeError, match="NaN"):
        search.float_knn(x, np.full((5, 3), np.nan, np.float32), 1, "ip")
    with pytest.raises(TagcodeError, match="unknown metric"):
        search.float_knn(x, x, 1, "dot")  # type: ignore[arg-type]
