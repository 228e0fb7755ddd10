"""WSDHQ: losses against direct loops, the margin formula, ICM and the refit against their definitions,
the initial-loss sanity check of spec §7."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tagcode.methods.wsdhq import quantizer
from tagcode.methods.wsdhq import train as train_mod
from tagcode.methods.wsdhq.losses import AdaptiveMarginLoss, QuantizationLoss, adaptive_margins
from tagcode.methods.wsdhq.model import EmbeddingHead
from tests.killing import kill_then_resume


def _random_tags(rng: np.random.Generator, b: int, t: int) -> np.ndarray:
    """(b, t) bool multi-hot with 0–4 positives per row (some rows empty, as untagged images are)."""
    tags = np.zeros((b, t), dtype=bool)
    for i in range(b):
        tags[i, rng.choice(t, rng.integers(0, 5), replace=False)] = True
    return tags


def _margin_loss_loop(x: np.ndarray, tags: np.ndarray, w: np.ndarray, margin: np.ndarray) -> float:
    """Spec §3.3 written as its triple sum over (i, p ∈ P_i, n ∉ P_i), in float64."""
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    wbar = w / np.linalg.norm(w, axis=1, keepdims=True)
    total, count = 0.0, 0
    for i in range(len(x)):
        for p in np.flatnonzero(tags[i]):
            for n in np.flatnonzero(~tags[i]):
                total += max(0.0, margin[p, n] - z[i] @ wbar[p] + z[i] @ wbar[n])
                count += 1
    return total / count


@pytest.mark.parametrize(("gamma", "fixed"), [(1.0, None), (2.0, None), (0.5, None), (1.0, 0.7)])
def test_margin_loss_matches_the_triple_loop(gamma: float, fixed: float | None) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((12, 6)) * rng.uniform(0.5, 2, (12, 1))  # rows not unit: the loss normalises
    x = rng.standard_normal((9, 6))
    tags = _random_tags(rng, 9, 12)
    margin = np.full((12, 12), fixed) if fixed is not None else \
        2 ** (1 - gamma) * (1 - (w @ w.T) / np.outer(*[np.linalg.norm(w, axis=1)] * 2)).clip(0) ** gamma
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    loss = AdaptiveMarginLoss(torch.tensor(w), gamma=gamma, fixed_margin=fixed).double()
    got = loss(xt, torch.tensor(tags))["embedding"]
    assert got.item() == pytest.approx(_margin_loss_loop(x, tags, w, margin), rel=1e-5)
    got.backward()  # gradients equal those of the loop, by central differences on a few coordinates
    for i, d in [(0, 0), (3, 2), (8, 5)]:
        e = np.zeros_like(x)
        e[i, d] = 1e-6
        numeric = (_margin_loss_loop(x + e, tags, w, margin) - _margin_loss_loop(x - e, tags, w, margin)) / 2e-6
        assert xt.grad[i, d].item() == pytest.approx(numeric, abs=1e-5)


def test_margin_formula() -> None:
    """m = 2^{1−γ}(1 − cos)^γ = 2 sin^{2γ}(θ/2); γ = 1 is 1 − cos; the fixed option is constant."""
    rng = np.random.default_rng(1)
    w = torch.tensor(rng.standard_normal((7, 5)))
    wn = w / w.norm(dim=1, keepdim=True)
    theta = torch.arccos((wn @ wn.T).clamp(-1, 1))
    off = ~torch.eye(7, dtype=torch.bool)  # p ≠ n in every triplet
    for gamma in (0.5, 1.0, 2.0):
        expected = 2 * torch.sin(theta / 2) ** (2 * gamma)
        torch.testing.assert_close(adaptive_margins(w, gamma).double()[off], expected[off], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(adaptive_margins(w, 1.0).double(), 1 - wn @ wn.T, atol=1e-6, rtol=1e-6)
    assert (adaptive_margins(w, 1.0, fixed_margin=0.7) == 0.7).all()
    assert float(adaptive_margins(w).min()) >= 0 and float(adaptive_margins(w).max()) <= 2


def test_quantization_loss_matches_the_loop() -> None:
    rng = np.random.default_rng(2)
    w, x, xhat = rng.standard_normal((11, 4)), rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    loop = sum((w[t] @ (x[i] - xhat[i])) ** 2 for i in range(6) for t in range(11)) / 6
    xt = torch.tensor(x, requires_grad=True)
    terms = QuantizationLoss(torch.tensor(w), lam=1e-4).double()(xt, torch.tensor(xhat))
    assert terms["quantization_raw"].item() == pytest.approx(loop, rel=1e-9)
    assert terms["quantization"].item() == pytest.approx(1e-4 * loop, rel=1e-9)
    terms["quantization"].backward()
    np.testing.assert_allclose(xt.grad.numpy(), 1e-4 * 2 / 6 * (x - xhat) @ w.T @ w, rtol=1e-9)
    zero = QuantizationLoss(torch.tensor(w)).double()(xt, None)  # no codebooks yet: λ is forced to 0
    assert zero["quantization"].item() == 0 and not zero["quantization"].requires_grad
    # the Euclidean metric: the identity factor gives the plain squared error
    eye = torch.tensor(train_mod.metric_factor(w, "euclidean"))
    plain = QuantizationLoss(eye).double()(xt, torch.tensor(xhat))["quantization_raw"].item()
    assert plain == pytest.approx(((x - xhat) ** 2).sum(axis=1).mean(), rel=1e-9)
    np.testing.assert_allclose(train_mod.metric(w, "tags"), w.T @ w, rtol=1e-12)


def test_initial_loss_is_the_triplet_weighted_mean_margin() -> None:
    """Spec §7: at an untrained head (zero output) every cosine is 0, so L_emb = mean over triplets of
    (1 − cos(w̄_p, w̄_n))."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((30, 8))
    tags = _random_tags(rng, 40, 30)
    head = EmbeddingHead(16, 8, init_std=0.0).double()
    x = head(torch.tensor(rng.standard_normal((40, 16))))
    assert (x == 0).all()
    got = AdaptiveMarginLoss(torch.tensor(w)).double()(x, torch.tensor(tags))["embedding"].item()
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)
    pairs = [1 - wn[p] @ wn[n] for row in tags for p in np.flatnonzero(row) for n in np.flatnonzero(~row)]
    assert got == pytest.approx(np.mean(pairs), rel=1e-9)


def test_split_blocks() -> None:
    assert quantizer.split_blocks(50, 3) == [(0, 17), (17, 34), (34, 50)]
    assert [b - a for a, b in quantizer.split_blocks(50, 4)] == [13, 13, 12, 12]
    assert [b - a for a, b in quantizer.split_blocks(300, 4)] == [75] * 4
    assert quantizer.split_blocks(50, 1) == [(0, 50)]


def test_kmeans_init_is_block_diagonal_and_seeded() -> None:
    rng = np.random.default_rng(4)
    u = rng.standard_normal((300, 10)).astype(np.float32)
    c = quantizer.kmeans_init(u, 3, seed=0, k=16, max_iter=10)
    assert c.shape == (3, 16, 10)
    for j, (a, b) in enumerate(quantizer.split_blocks(10, 3)):
        assert not c[j, :, :a].any() and not c[j, :, b:].any() and np.abs(c[j, :, a:b]).sum(axis=1).all()
    np.testing.assert_array_equal(c, quantizer.kmeans_init(u, 3, seed=0, k=16, max_iter=10))


def _icm_problem(m: int = 3, k: int = 16, d: int = 8, t: int = 20, n: int = 200, seed: int = 5):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((t, d)).astype(np.float32)
    c = rng.standard_normal((m, k, d)).astype(np.float32) * 0.5
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x, c, w


def _icm_loop(x: np.ndarray, c: np.ndarray, w: np.ndarray, orders: list[np.ndarray]) -> np.ndarray:
    """ICM by its definition, one vector at a time: k_m = argmin_k ‖W (x − Σ_{j≠m, set} c_j − C_m[k])‖²."""
    m = c.shape[0]
    out = np.zeros((len(x), m), dtype=np.uint8)
    for i, xi in enumerate(x.astype(np.float64)):
        chosen: dict[int, int] = {}
        for order in orders:
            for cm in order:
                r = xi - sum((c[j, kj] for j, kj in chosen.items() if j != cm), np.zeros_like(xi))
                chosen[cm] = int(np.argmin(((r - c[cm].astype(np.float64)) @ w.T.astype(np.float64)) ** 2 @
                                           np.ones(len(w))))
        out[i] = [chosen[j] for j in range(m)]
    return out


def test_icm_matches_the_definition_and_never_increases_the_objective() -> None:
    x, c, w = _icm_problem()
    g = w.T.astype(np.float64) @ w
    icm = quantizer.ICM(c, g, passes=3)
    codes = icm.encode(x, np.random.default_rng(7), batch=64)
    rng = np.random.default_rng(7)
    for start in range(0, len(x), 64):
        orders = [rng.permutation(3) for _ in range(3)]
        np.testing.assert_array_equal(codes[start:start + 64], _icm_loop(x[start:start + 64], c, w, orders))
    objectives = [quantizer.objective(x, quantizer.ICM(c, g, passes=p).encode(x, np.random.default_rng(7),
                                                                                batch=len(x)), c, g)
                  for p in (1, 2, 3, 4)]  # one batch: the first p passes of the same run
    for before, after in itertools.pairwise(objectives):
        assert (after <= before + 1e-9).all()
    assert objectives[-1].sum() < objectives[0].sum()


def test_icm_converges_to_a_local_minimum() -> None:
    """With enough passes, no single-codebook change lowers any vector's objective."""
    x, c, w = _icm_problem(n=60)
    g = w.T.astype(np.float64) @ w
    codes = quantizer.ICM(c, g, passes=30).encode(x, np.random.default_rng(0), batch=len(x))
    best = quantizer.objective(x, codes, c, g)
    for m in range(c.shape[0]):
        for k in range(c.shape[1]):
            other = codes.copy()
            other[:, m] = k
            assert (quantizer.objective(x, other, c, g) >= best - 1e-6).all()


def test_icm_codes_do_not_depend_on_threads() -> None:
    x, c, w = _icm_problem(n=500)
    icm = quantizer.ICM(c, w.T @ w)
    np.testing.assert_array_equal(icm.encode(x, np.random.default_rng(1), batch=50, threads=1),
                                  icm.encode(x, np.random.default_rng(1), batch=50, threads=2))


def test_refit_is_the_ridge_least_squares_solution() -> None:
    rng = np.random.default_rng(8)
    m, k, d, n = 3, 10, 5, 400
    codes = rng.integers(0, k, (n, m)).astype(np.uint8)
    codes[codes[:, 1] == 4, 1] = 3  # codeword 4 of codebook 1 unused: it keeps its previous value
    u = rng.standard_normal((n, d))
    previous = rng.standard_normal((m, k, d)).astype(np.float32)
    got = quantizer.refit(codes, u, previous, ridge=1e-3)
    b = np.zeros((n, m * k))
    b[np.repeat(np.arange(n), m), (codes.astype(int) + np.arange(m) * k).ravel()] = 1
    expected = np.linalg.solve(b.T @ b + 1e-3 * np.eye(m * k), b.T @ u).reshape(m, k, d)
    expected[1, 4] = previous[1, 4]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # without the ridge, the used codewords are the plain least-squares fit
    lstsq = np.linalg.lstsq(b, u, rcond=None)[0].reshape(m, k, d)
    fitted = quantizer.reconstruct(codes, quantizer.refit(codes, u, previous, ridge=1e-9))
    np.testing.assert_allclose(fitted, quantizer.reconstruct(codes, lstsq), atol=1e-4)


def test_product_refit_is_the_block_restricted_least_squares() -> None:
    """With blocks, each codebook is the ridge least-squares fit of its own block alone (zero elsewhere),
    i.e. the per-block ridge mean; unused codewords keep their previous value, as in the additive refit."""
    rng = np.random.default_rng(10)
    m, k, d, n = 3, 10, 8, 400
    blocks = quantizer.split_blocks(d, m)
    codes = rng.integers(0, k, (n, m)).astype(np.uint8)
    codes[codes[:, 2] == 7, 2] = 6  # codeword 7 of codebook 2 unused
    u = rng.standard_normal((n, d))
    previous = rng.standard_normal((m, k, d)).astype(np.float32)
    got = quantizer.refit(codes, u, previous, ridge=0.5, blocks=blocks)
    for j, (a, b) in enumerate(blocks):
        alone = quantizer.refit(codes[:, [j]], u[:, a:b], previous[[j], :, a:b], ridge=0.5)[0]
        np.testing.assert_allclose(got[j, :, a:b], alone, rtol=1e-5, atol=1e-6)
        used = np.arange(k) != 7 if j == 2 else np.ones(k, bool)
        assert not got[j, used][:, :a].any() and not got[j, used][:, b:].any()
    np.testing.assert_array_equal(got[2, 7], previous[2, 7])
    # a single codebook spanning every dimension: the product and the additive refit agree
    one = codes[:, :1]
    np.testing.assert_allclose(quantizer.refit(one, u, previous[:1], blocks=[(0, d)]),
                               quantizer.refit(one, u, previous[:1]), rtol=1e-5, atol=1e-6)


def test_faiss_export_of_wsdhq_codebooks_ranks_like_the_evaluator() -> None:
    """Dense refitted codebooks and ICM codes in faiss's IndexLocalSearchQuantizer (ST_LUT_nonorm, inner
    product) give the evaluator's AQD top-k: same items in the same order, same scores."""
    from tagcode.retrieval.codes import QuantizedCodes
    from tagcode.retrieval.index import to_faiss_index
    from tagcode.retrieval.search import aqd_knn

    rng = np.random.default_rng(9)
    w = rng.standard_normal((30, 50)).astype(np.float32)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    g = w.T.astype(np.float64) @ w
    u = np.tanh(rng.standard_normal((600, 50)) @ rng.standard_normal((50, 50)) * 0.2).astype(np.float32)
    codebooks = quantizer.refit(rng.integers(0, 256, (600, 3)).astype(np.uint8), u, np.zeros((3, 256, 50)))
    codebooks = quantizer.refit(quantizer.ICM(codebooks, g).encode(u, rng), u, codebooks)  # full-width codewords
    db = QuantizedCodes(ids=np.arange(600), codes=quantizer.ICM(codebooks, g).encode(u, rng), codebooks=codebooks)
    q = np.tanh(rng.standard_normal((25, 50))).astype(np.float32)
    fs, fi = to_faiss_index(db).search(q, 20)
    es, ei = aqd_knn(q, db.codes, db.codebooks, 20)
    np.testing.assert_allclose(fs, es, rtol=1e-5, atol=1e-5)
    full = q @ quantizer.reconstruct(db.codes, codebooks).T
    gap = np.diff(-np.sort(-full, axis=1)[:, :21], axis=1)
    distinct = (np.abs(gap) > 1e-4).all(axis=1)  # rows whose top 21 scores are all distinct
    assert distinct.sum() >= 15
    np.testing.assert_array_equal(fi[distinct], ei[distinct])


# --- training through the TorchMethod contract -------------------------------------------------------------

FAST = {"batch_size": 64, "iterations": 30, "update_period": 8, "kmeans_n_init": 1, "kmeans_max_iter": 5,
        "checkpoint_every": 4, "device": "cpu"}


def wsdhq_trainset(n: int = 300, seed: int = 0):
    """Features that carry the tags' signal, 0–3 tags per image out of 15 tag vectors in 6 dims."""
    import scipy.sparse as sp

    from tagcode.methods.trainset import TrainSet

    rng = np.random.default_rng(seed)
    tags = _random_tags(rng, n, 15)[:, :15] & (rng.random((n, 15)) < 0.8)
    x = (tags @ rng.standard_normal((15, 12)) + 0.3 * rng.standard_normal((n, 12))).astype(np.float32)
    return TrainSet(ids=np.arange(n), features=x, tags=sp.csr_matrix(tags),
                    tag_vectors=rng.standard_normal((15, 6)).astype(np.float32))


def fit_wsdhq(checkpoint_dir: str | None = None, log=None, **options) -> dict[str, np.ndarray]:
    """A 16-bit WSDHQ fitted on :func:`wsdhq_trainset`; its arrays plus the codes it encodes."""
    from tagcode.methods import create_method

    method = create_method("wsdhq", bits=16, seed=1, **{**FAST, **options})
    ts = wsdhq_trainset()
    method.fit(ts, log=log, checkpoint_dir=checkpoint_dir)
    codes = method.encode(ts.features, ts.ids)
    return {**method.arrays, "codes": codes.codes, "x": codes.x}


def test_training_logs_terms_and_is_deterministic() -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    a = fit_wsdhq(log=lambda step, terms: seen.append((step, terms)))
    assert [s for s, _ in seen] == list(range(1, 31))
    assert {"embedding", "quantization", "quantization_raw", "total", "lr"} <= set(seen[0][1])
    assert all(t["quantization"] == 0 for s, t in seen if s <= 9)  # λ = 0 until the first update (it = 8)
    assert all(t["quantization"] > 0 for s, t in seen if s > 9)
    assert a["codebooks"].shape == (2, 256, 6) and a["codes"].shape == (300, 2) and a["x"].shape == (300, 6)
    np.testing.assert_allclose(np.linalg.norm(a["x"], axis=1), 1.0, rtol=1e-5)  # sphere: unit embeddings
    b = fit_wsdhq()
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)  # same seed, same bits


def test_codebook_and_metric_options_shape_the_quantizer() -> None:
    """Default: product codebooks (each codeword zero outside its k-means block) in the Euclidean metric;
    the spec's ``additive`` codebooks become full-width after the refits, ``tags`` stores G = WᵀW."""
    w = wsdhq_trainset().tag_vectors.astype(np.float64)
    product = fit_wsdhq()
    for j, (a, b) in enumerate(quantizer.split_blocks(6, 2)):
        assert not product["codebooks"][j, :, :a].any() and not product["codebooks"][j, :, b:].any()
    np.testing.assert_array_equal(product["metric"], np.eye(6))
    spec = fit_wsdhq(codebooks="additive", metric="tags")
    assert (spec["codebooks"][0, :, 3:] != 0).any()  # codebook 0 left its block (dims 0-2)
    np.testing.assert_allclose(spec["metric"], w.T @ w, rtol=1e-6)
    assert not np.array_equal(product["codes"], spec["codes"])


def test_resume_after_a_checkpoint_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    full = fit_wsdhq()
    fit_wsdhq(str(tmp_path / "ck"), iterations=22)  # the last checkpoint is after step 20, codebooks exist
    assert json.loads((tmp_path / "ck" / "last" / "state.json").read_text())["step"] == 20
    resumed = fit_wsdhq(str(tmp_path / "ck"))
    assert all(np.array_equal(full[k], resumed[k]) for k in full)


def test_kill_9_mid_training_then_resume_gives_the_same_model(tmp_path: Path) -> None:
    ckpt = tmp_path / "ck"
    code = ("import sys, time, numpy as np; from tests.test_wsdhq import fit_wsdhq; "
            f"a = fit_wsdhq({str(ckpt)!r}, log=lambda s, t: time.sleep(0.05)); np.savez(sys.argv[1], **a)")
    # killed past the first code update, so the memory bank is restored too
    step, resumed = kill_then_resume(code, ckpt, tmp_path, slow="time.sleep(0.05)", fast="None", min_step=12,
                                     grace=0.1)
    assert 12 <= step < 30
    full = fit_wsdhq()
    assert set(full) == set(resumed) and all(np.array_equal(full[k], resumed[k]) for k in full)


def test_untrained_head_gives_the_calibrated_initial_loss() -> None:
    """Spec §7 through the method: with init_std = 0 the first logged loss is the triplet-weighted mean margin."""
    seen: list[dict[str, float]] = []
    fit_wsdhq(log=lambda step, terms: seen.append(terms), init_std=0.0, iterations=9)
    ts = wsdhq_trainset()
    w = ts.tag_vectors / np.linalg.norm(ts.tag_vectors, axis=1, keepdims=True)
    tags = ts.tags.toarray() > 0
    # the first batch: the first permutation of the context's generator (seeded with the method's seed)
    gen = torch.Generator().manual_seed(1)
    first = np.sort(torch.randperm(300, generator=gen).numpy()[:64])
    expected = np.mean([1 - w[p] @ w[n] for r in tags[first] for p in np.flatnonzero(r) for n in np.flatnonzero(~r)])
    assert seen[0]["embedding"] == pytest.approx(expected, rel=1e-5)


def test_bits_and_options_are_checked() -> None:
    from tagcode.errors import TagcodeError
    from tagcode.methods import create_method

    with pytest.raises(TagcodeError, match="cannot make 12-bit codes"):
        create_method("wsdhq", bits=12)
    with pytest.raises(TagcodeError, match="wsdhq"):
        create_method("wsdhq", bits=8, gamma=-1)
    with pytest.raises(TagcodeError, match="before the first codebook update"):
        fit_wsdhq(iterations=5)


def test_stages_train_wsdhq_without_labels_in_both_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """prepare → clean_tags → embed_tags → features → train (frozen features, and end-to-end from the image cache
    with a tiny CNN) → encode → evaluate; training and encoding with the labels made unreadable."""
    import pyarrow.parquet as pq

    from tagcode.stages import run_stage
    from tests.tiny_dataset import build_tiny_dataset

    ds = build_tiny_dataset(tmp_path / "ds")
    d = {k: str(tmp_path / k) for k in ("prep", "tags", "embed", "feats")}
    run_stage("prepare", {"source": "folder", "root": str(ds), "n_query": 8, "image_size": 16, "out": d["prep"]})
    run_stage("clean_tags", {"prepared": d["prep"], "min_freq": 2, "out": d["tags"]})
    run_stage("embed_tags", {"tags": d["tags"], "target_size": 0.9, "out": d["embed"]})
    run_stage("features", {"prepared": d["prep"], "backbone": "tiny_cnn", "progress": False, "out": d["feats"]})

    def forbidden(*_a, **_k):
        raise AssertionError("training read the ground-truth labels")

    original = pq.ParquetFile.read

    def read(self, columns=None, **kw):
        if columns is None or "labels" in columns:
            raise AssertionError("training read the labels column")
        return original(self, columns=columns, **kw)

    monkeypatch.setattr("tagcode.data.manifest.read_labels", forbidden)
    monkeypatch.setattr(pq.ParquetFile, "read", read)
    for mode in ("features", "end_to_end"):
        options = {**FAST, "iterations": 9, "mode": mode, "backbone": "tiny_cnn"}
        run_stage("train", {"method": "wsdhq", "bits": 8, "options": options, "prepared": d["prep"],
                            "features": d["feats"], "embed": d["embed"], "out": str(tmp_path / f"m-{mode}")})
        capsys.readouterr()
        summary = json.loads(run_stage("encode", {"model": str(tmp_path / f"m-{mode}"), "prepared": d["prep"],
                                                  "features": d["feats"], "progress": True,
                                                  "out": str(tmp_path / f"c-{mode}")}))
        bar, n = capsys.readouterr().err, summary["database"] + summary["query"]
        # images stream through a bar (encode wsdhq ... n/n); features encode in a blink and show none
        assert ("encode wsdhq: 100%" in bar and f"{n}/{n}" in bar) if mode == "end_to_end" else bar == ""
    monkeypatch.undo()
    for mode in ("features", "end_to_end"):
        metrics = json.loads(run_stage("evaluate", {"codes": str(tmp_path / f"c-{mode}"), "prepared": d["prep"],
                                                    "protocols": ["wsdhq", "wsdhq_sqd", "wsdhq_feats"],
                                                    "out": str(tmp_path / f"e-{mode}")}))
        assert metrics["method"] == "wsdhq" and metrics["bits"] == 8
        for family in ("wsdhq", "wsdhq_sqd", "wsdhq_feats"):
            assert 0.25 < metrics["protocols"][family]["map"] <= 1.0, (mode, family, metrics["protocols"][family])
