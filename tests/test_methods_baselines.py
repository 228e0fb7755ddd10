"""Every unsupervised registered method (timm-style parametrised): fit, encode, save/load, bits, quality;
plus the faiss-level facts behind PQ, OPQ, LSQ and ITQ. Search here is numpy brute force, on purpose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.methods import METHODS, Method, create_method, load_method
from tagcode.methods.baselines import LSQ, PQ
from tagcode.methods.trainset import TrainSet
from tagcode.retrieval.codes import BinaryCodes, FloatCodes, QuantizedCodes

UNSUPERVISED = [n for n in METHODS.names() if METHODS.get(n).supervision == "none"]
DEFAULT_BITS = {"binary": 32, "quantizer": 16, "float": 32}
FAST = {"lsq": {"train_iters": 3}, "opq": {"niter": 3}}  # keep faiss training quick


def _ts(x: np.ndarray) -> TrainSet:
    """Features as a training set (ids = row numbers)."""
    return TrainSet.from_features(x)


def _make(name: str, bits: int | None = None, **options: object) -> Method:
    bits = DEFAULT_BITS[METHODS.get(name).kind] if bits is None else bits
    return create_method(name, bits=bits, **{**FAST.get(name, {}), **options})


def _clustered(n: int = 600, d: int = 48, clusters: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters far from the origin (so centring matters); float cosine 10-NN purity is about 0.9."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)) * 0.7
    y = rng.integers(0, clusters, n)
    return (centres[y] + rng.standard_normal((n, d)) + 5).astype(np.float32), y


def _prep(x: np.ndarray) -> np.ndarray:
    """The documented preprocessing, recomputed here in float32: centre on the mean of ``x``, L2-normalise."""
    x = x - x.mean(axis=0)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _recon(codes: QuantizedCodes) -> np.ndarray:
    return codes.codebooks[np.arange(codes.codes.shape[1]), codes.codes].sum(axis=1)


def _scores(db: object, q: object) -> np.ndarray:
    """Brute-force similarity (higher is closer): −Hamming, AQD ⟨q, x̂⟩ or ⟨q, x⟩."""
    if isinstance(db, BinaryCodes):
        a, b = np.unpackbits(q.bits, axis=1).astype(np.int32), np.unpackbits(db.bits, axis=1).astype(np.int32)
        return -(a @ (1 - b).T + (1 - a) @ b.T)
    return q.x @ (_recon(db) if isinstance(db, QuantizedCodes) else db.x).T


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return _clustered()


@pytest.fixture(scope="module", params=UNSUPERVISED)
def fitted(request: pytest.FixtureRequest, data: tuple[np.ndarray, np.ndarray]) -> Method:
    return _make(request.param).fit(_ts(data[0]))


def test_registry_has_the_baselines() -> None:
    assert {"lsh", "itq", "pq", "opq", "lsq", "float"} <= set(UNSUPERVISED)
    kinds = {n: METHODS.get(n).kind for n in UNSUPERVISED}
    assert (kinds["lsh"], kinds["itq"], kinds["pq"], kinds["lsq"], kinds["float"]) == \
        ("binary", "binary", "quantizer", "quantizer", "float")


def test_encode_shapes_and_dtypes(fitted: Method, data: tuple[np.ndarray, np.ndarray]) -> None:
    x = data[0][:50]
    ids = [f"im{i}" for i in range(50)]
    db, q = fitted.encode(x, ids), fitted.encode_query(x, ids)
    assert list(db.ids) == ids and list(q.ids) == ids
    if fitted.kind == "binary":
        assert isinstance(db, BinaryCodes) and isinstance(q, BinaryCodes) and db.nbits == fitted.bits
        assert db.bits.shape == (50, fitted.bits // 8) and db.bits.dtype == np.uint8
        ones = np.unpackbits(db.bits, axis=1).mean()
        assert 0.2 < ones < 0.8  # hyperplanes through the training mean: neither all zeros nor all ones
    elif fitted.kind == "quantizer":
        m = fitted.bits // 8
        assert isinstance(db, QuantizedCodes) and isinstance(q, QuantizedCodes) and db.x is None
        np.testing.assert_array_equal(q.codes, db.codes)  # the query carries its codes (SQD) and x (AQD)
        assert db.codes.shape == (50, m) and db.codes.dtype == np.uint8
        assert db.codebooks.shape == (m, 256, 48) and db.codebooks.dtype == np.float32
        xp = _prep(data[0])[:50]
        err, spread = ((xp - _recon(db)) ** 2).sum(1).mean(), ((xp - xp.mean(0)) ** 2).sum(1).mean()
        assert err < 0.5 * spread, f"reconstruction error {err:.3f}, distance to the mean {spread:.3f}"
    else:
        assert isinstance(db, FloatCodes) and isinstance(q, FloatCodes)
        np.testing.assert_allclose(db.x, q.x)
    if getattr(q, "x", None) is not None:  # the query's float view is the documented preprocessing
        np.testing.assert_allclose(q.x, _prep(data[0])[:50], atol=1e-5)
        assert q.x.dtype == np.float32 and q.x.shape == (50, 48)


def test_save_load_gives_identical_codes(fitted: Method, data: tuple[np.ndarray, np.ndarray],
                                         tmp_path: Path) -> None:
    x, ids = data[0], np.arange(len(data[0])).astype(str)
    fitted.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["arrays.safetensors", "config.json"]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert (config["name"], config["bits"], config["seed"]) == (fitted.name, fitted.bits, 0)
    for loaded in (Method.load(tmp_path / "model"), load_method(tmp_path / "model"),
                   type(fitted).load(tmp_path / "model")):
        assert type(loaded) is type(fitted) and loaded.options == fitted.options
        for side in ("encode", "encode_query"):
            a, b = getattr(fitted, side)(x, ids), getattr(loaded, side)(x, ids)
            for field in ("bits", "codes", "codebooks", "x"):
                if hasattr(a, field):
                    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_same_seed_same_model(fitted: Method, data: tuple[np.ndarray, np.ndarray]) -> None:
    again = _make(fitted.name).fit(_ts(data[0]))
    assert again.arrays.keys() == fitted.arrays.keys()
    for key in again.arrays:
        np.testing.assert_array_equal(again.arrays[key], fitted.arrays[key], err_msg=key)


def test_neighbours_share_the_cluster(fitted: Method, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    ids = np.arange(len(x)).astype(str)
    s = _scores(fitted.encode(x, ids), fitted.encode_query(x, ids)).astype(np.float64)
    np.fill_diagonal(s, -np.inf)
    nn = np.argsort(-s, axis=1, kind="stable")[:, :10]
    purity = (y[nn] == y[:, None]).mean()
    chance = np.mean(np.bincount(y) / len(y))  # about 1/8
    assert purity > 3 * chance, f"{fitted.name}: 10-NN purity {purity:.2f}, chance {chance:.2f}"


@pytest.mark.parametrize(("name", "bits"), [("lsh", 16), ("lsh", 64), ("itq", 16), ("itq", 40), ("pq", 8),
                                            ("pq", 24), ("opq", 32), ("lsq", 8), ("lsq", 24), ("lsq", 32)])
def test_supported_code_lengths(name: str, bits: int, data: tuple[np.ndarray, np.ndarray]) -> None:
    x = data[0][:300]
    codes = _make(name, bits).fit(_ts(x)).encode(x[:5], np.arange(5))
    if isinstance(codes, BinaryCodes):
        assert codes.nbits == bits and codes.bits.shape == (5, bits // 8)
    else:
        assert codes.codes.shape == (5, bits // 8) and codes.codebooks.shape == (bits // 8, 256, 48)


@pytest.mark.parametrize(("name", "bits", "supports"), [
    ("lsh", 12, "multiples of 8"), ("lsh", 0, "multiples of 8"), ("itq", 4, "multiples of 8"),
    ("pq", 12, "M = 1..8"), ("opq", 72, "M = 1..8"), ("lsq", 4, "M = 1..8"), ("float", 16, "must be 32"),
])
def test_impossible_code_lengths(name: str, bits: int, supports: str) -> None:
    with pytest.raises(TagcodeError, match=rf"method '{name}' cannot make {bits}-bit codes: .*{supports}") as err:
        create_method(name, bits=bits)
    assert "\n" not in str(err.value)


def test_itq_bits_beyond_the_feature_dims() -> None:
    x, _ = _clustered(300, d=12)
    with pytest.raises(TagcodeError, match="'itq' cannot make 16-bit codes from 12-dim features"):
        create_method("itq", bits=16).fit(_ts(x))


def test_user_errors_are_one_line(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x = data[0]
    cases = [
        (lambda: create_method("itqq", bits=16), "unknown method 'itqq'"),
        (lambda: create_method("lsq", bits=16, train_iter=3), "no option 'train_iter' .*train_iters"),
        (lambda: create_method("pq", bits=16, niter=3), r"no option 'niter' \(options: threads\)"),
        (lambda: create_method("lsq", bits=16).fit(_ts(x[:100])), "at least 256 training images, got 100"),
        (lambda: create_method("lsh", bits=16).fit(_ts(np.where(np.arange(48) == 3, np.nan, x))), "NaN/inf"),
        (lambda: create_method("lsh", bits=16).fit(_ts(x[0])), r"must be \(48, d\)"),
        (lambda: create_method("pq", bits=16).encode(x, np.arange(len(x))), "not fitted"),
        (lambda: create_method("lsh", bits=16).save(tmp_path / "m"), "not fitted"),
        (lambda: _make("pq").fit(_ts(x)).encode(x[:, :20], np.arange(len(x))), "20 dims, the model was fitted on 48"),
        (lambda: Method.load(tmp_path / "missing"), "no trained model here"),
    ]
    for call, message in cases:
        with pytest.raises(TagcodeError, match=message) as err:
            call()
        assert "\n" not in str(err.value)


def test_load_checks_the_class(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    create_method("lsh", bits=16).fit(_ts(data[0])).save(tmp_path / "lsh")
    with pytest.raises(TagcodeError, match="holds a 'lsh' model, not PQ"):
        PQ.load(tmp_path / "lsh")
    (tmp_path / "lsh" / "arrays.safetensors").write_bytes(b"garbage")
    with pytest.raises(TagcodeError, match="unreadable model"):
        Method.load(tmp_path / "lsh")


def _ip_pq_index(centroids: np.ndarray, codes: np.ndarray) -> faiss.IndexPQ:
    """faiss's own inner-product PQ index over externally given centroids and codes."""
    m, _, dsub = centroids.shape
    index = faiss.IndexPQ(m * dsub, m, 8, faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(centroids.ravel(), index.pq.centroids)
    index.is_trained = True
    index.add_sa_codes(codes)
    return index


@pytest.mark.parametrize("name", ["pq", "opq"])
def test_pq_and_opq_codebooks_give_faiss_adc_scores(name: str) -> None:
    """⟨q, x̂⟩ with the exported input-space codebooks equals faiss's IP ADC in the (padded, rotated) space.

    d = 30 is not a multiple of M = 4, so this also covers the zero padding."""
    x, _ = _clustered(500, d=30)
    method = _make(name, 32).fit(_ts(x))
    ids = np.arange(500)
    db, q = method.encode(x, ids), method.encode_query(x[:20], ids[:20])
    assert db.codebooks.shape == (4, 256, 30)
    pad = lambda v: np.pad(v, ((0, 0), (0, 2)))  # noqa: E731
    rot = method.arrays.get("rotation", np.eye(32, dtype=np.float32))
    if name == "opq":
        np.testing.assert_allclose(rot @ rot.T, np.eye(32), atol=1e-4)  # R is orthogonal
    else:  # PQ codebook m lives in block m only
        for m in range(4):
            outside = np.delete(db.codebooks[m], np.s_[8 * m:8 * m + 8], axis=1)
            assert not outside.any()
    index = _ip_pq_index(method.arrays["centroids"], db.codes)
    np.testing.assert_array_equal(index.sa_encode(pad(method.encode_query(x, ids).x) @ rot.T), db.codes)
    s, i = index.search(pad(q.x) @ rot.T, 10)
    aqd = q.x @ _recon(db).T
    np.testing.assert_allclose(np.take_along_axis(aqd, i, 1), s, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(-np.sort(-aqd, axis=1)[:, :10], s, rtol=1e-5, atol=1e-5)


def test_lsq_is_additive_and_decodes_like_faiss(data: tuple[np.ndarray, np.ndarray]) -> None:
    x = data[0]
    method = _make("lsq", 24).fit(_ts(x))
    assert isinstance(method, LSQ)
    db = method.encode(x, np.arange(len(x)))
    assert (np.abs(db.codebooks) > 1e-6).mean() > 0.5  # full-dimensional codebooks, not block-sparse
    lsq = faiss.LocalSearchQuantizer(48, 3, 8)
    faiss.copy_array_to_vector(db.codebooks.ravel(), lsq.codebooks)
    lsq.is_trained = True
    np.testing.assert_allclose(lsq.decode(db.codes), _recon(db), atol=1e-5)


def test_lsq_ridge_keeps_codebooks_general_near_as_many_images_as_codewords() -> None:
    """32-bit LSQ has 4 × 256 codewords; fitted to 1,024 random unit vectors with faiss's ridge 1e-2 the
    least squares overfit and held-out vectors reconstruct no better than the zero vector (squared error
    ~1); the default ridge keeps the error well below."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1024 + 500, 64)).astype(np.float32)
    train, held_out = x[:1024], x[1024:]

    def held_out_error(**options: object) -> float:
        method = _make("lsq", 32, **options).fit(_ts(train))
        db = method.encode(held_out, np.arange(len(held_out)))
        target = method._prep(held_out)  # what the method quantizes: centred, unit-norm vectors
        return float(((_recon(db) - target) ** 2).sum(1).mean())

    assert _make("lsq", 32).opts.lambd == 1.0
    assert held_out_error(lambd=0.01) > 0.9
    assert held_out_error() < 0.75


def test_itq_rotation_lowers_the_quantization_loss(data: tuple[np.ndarray, np.ndarray]) -> None:
    """ITQ minimises ‖B − V·R‖² over B = sign(V·R) (V the PCA projection), i.e. maximises Σ|V·R|: the fitted
    rotation beats its random start, W = PCA·R keeps orthonormal columns, and the bits are exactly sign(x·W)."""
    x = data[0]
    xp = _prep(x)

    def fit_to_codes(method: Method) -> float:
        return float(np.abs(xp @ method.arrays["w"]).sum())

    fitted, start = (create_method("itq", bits=32, iterations=n).fit(_ts(x)) for n in (50, 0))
    assert fit_to_codes(fitted) > 1.05 * fit_to_codes(start)
    w = fitted.arrays["w"]
    np.testing.assert_allclose(w.T @ w, np.eye(32), atol=1e-4)
    bits = np.unpackbits(fitted.encode(x, np.arange(len(x))).bits, axis=1).astype(bool)
    np.testing.assert_array_equal(bits, xp @ w > 0)


@pytest.mark.parametrize(("name", "bits"), [("pq", 16), ("opq", 16), ("lsq", 16), ("itq", 32)])
def test_same_arrays_and_codes_under_one_and_two_threads(tmp_path: Path, name: str, bits: int) -> None:
    """faiss and BLAS are left at 1 and then 2 threads around the call; the saved model and the codes agree
    bit for bit (OPQ's rotation differed across thread counts before training ran at a fixed count)."""
    x = np.random.default_rng(3).standard_normal((700, 96)).astype(np.float32)
    ids = np.array([str(i) for i in range(len(x))])
    saved, codes = [], []
    before = faiss.omp_get_max_threads()
    try:
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            m = _make(name, bits)
            m.fit(_ts(x))
            m.save(tmp_path / f"{name}-{threads}")
            saved.append((tmp_path / f"{name}-{threads}" / "arrays.safetensors").read_bytes())
            c = m.encode(x, ids)
            codes.append(c.codes if isinstance(c, QuantizedCodes) else c.bits)
    finally:
        faiss.omp_set_num_threads(before)
    assert saved[0] == saved[1]
    np.testing.assert_array_equal(codes[0], codes[1])


def test_opq_with_fewer_images_than_dims_learns_in_the_pca_subspace(tmp_path: Path) -> None:
    """faiss's OPQMatrix crashes (native abort) with n ≤ d; OPQ trains in at most n − 1 PCA directions. Run
    in a subprocess so a native crash fails this test instead of killing pytest."""
    script = (
        "import numpy as np\n"
        "from tagcode.methods import create_method\n"
        "from tagcode.methods.trainset import TrainSet\n"
        "x = np.random.default_rng(0).standard_normal((300, 512)).astype(np.float32)\n"
        "m = create_method('opq', bits=32, niter=3, dim=None).fit(TrainSet.from_features(x))\n"
        "c = m.encode(x, np.arange(300).astype(str))\n"
        "xp = m._prep(x)\n"
        "recon = c.codebooks[np.arange(4), c.codes].sum(axis=1)\n"
        "err = float(((xp - recon) ** 2).sum(1).mean())\n"
        "print(*m.arrays['basis'].shape, *c.codebooks.shape, err)\n"
        "print(*create_method('opq', bits=32, niter=2).fit(TrainSet.from_features(x)).arrays['basis'].shape)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, default = proc.stdout.splitlines()
    *shapes, err = first.split()
    assert shapes == ["512", "299", "4", "256", "512"]  # basis (d, n - 1); codebooks in the input space
    assert float(err) < 1.0  # better than coding every vector as zero (unit vectors: error 1)
    assert default.split() == ["512", "256"]  # the default `dim`: the top 256 principal directions


@pytest.mark.parametrize(("name", "bits", "n", "d", "message"), [
    ("pq", 8, 255, 16, "at least 256 training images, got 255"),
    ("opq", 8, 100, 16, "at least 256 training images, got 100"),
    ("lsq", 8, 10, 16, "at least 256 training images, got 10"),
    ("itq", 32, 20, 64, "from 64-dim features and 20 training images"),
    ("itq", 64, 300, 32, "from 32-dim features and 300 training images"),
])
def test_training_size_is_checked_up_front(name: str, bits: int, n: int, d: int, message: str) -> None:
    m = _make(name, bits)
    m._fit = None  # the check must come before any training call
    with pytest.raises(TagcodeError, match=message):
        m.fit(_ts(np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)))


def test_threads_option_is_validated() -> None:
    with pytest.raises(TagcodeError, match="options: threads: Input should be greater than or equal to 1"):
        _make("pq", 8, threads=0)


def test_baseline_processes_never_import_torch() -> None:
    """The torch-trained methods register lazily: a baseline cell's train and encode skip torch's import
    (1.8 s a process, 42 processes in the demo), and naming a torch method still finds it."""
    script = ("import sys\n"
              "from tagcode.methods import METHODS, create_method\n"
              "from tagcode.stages import encode, evaluate, train\n"
              "create_method('pq', bits=8)\n"
              "before = 'torch' in sys.modules\n"
              "print(before, 'wdht' in METHODS, create_method('wdht', bits=16).name, 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "True", "wdht", "True"]
