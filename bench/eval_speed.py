"""Evaluation speed at NUS-WIDE scale: tagcode's evaluator against the per-query numpy loop the peers use.

NUS-WIDE-21 sizes: 2,100 queries × 193,734 database items, 21 labels. Two protocols, mAP@5000 each:

- 32-bit Hamming, ``wshrca_at5000`` (AP over the relevant items retrieved, empty queries count 0);
- AQD with M = 4 codebooks × K = 256 in d = 50, the width of tagcode's default tag vectors (GloVe 6B 50d),
  ``wsdhq`` (empty queries skipped). The WSDHQ paper's d = 300 is timed for the search alone.

Data are synthetic but shaped like NUS-WIDE-21: label marginals from the real tc10 counts (the other 11
concepts assumed geometric), at least one label per image, and codes computed from label-driven embeddings
so mAP is far from trivial. Embeddings and codebooks are multiples of 2^-10, which makes every inner product
exact in float32, so the loop (one GEMV per query on reconstructed vectors) and tagcode (per-query look-up
tables) compute the same scores and the script can demand identical mAP. The reference loop is
DeepHash-pytorch's ``CalcTopMap`` (full score vector, argsort, top K, AP = mean(count / position)) with
``kind="stable"`` so it breaks ties by index like tagcode; it is timed in full, never extrapolated.

Run by hand: ``.venv/bin/python bench/eval_speed.py`` (writes bench/results/eval_speed.{md,json}).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from threadpoolctl import threadpool_info

from tagcode.evaluation.protocols import PROTOCOLS, evaluate
from tagcode.retrieval import search

NQ, NB, L, K, NBITS, M, KSUB, DIM = 2100, 193_734, 21, 5000, 32, 4, 256, 50
TC10_COUNTS = [72659, 53066, 49230, 34760, 33071, 22085, 17348, 14505, 14167, 13264]  # notes/data.md §1.2
NUS21_IMAGES = 195_834
REPEATS = 5
OUT = Path(__file__).parent / "results"


def synthetic(seed: int = 0) -> dict[str, np.ndarray]:
    """Labels with NUS-WIDE-21-like frequencies; ±1 hash codes and additive codes driven by the labels."""
    rng = np.random.default_rng(seed)
    freq = np.array(TC10_COUNTS + list(np.geomspace(12000, 5000, L - 10))) / NUS21_IMAGES
    labels = (rng.random((NQ + NB, L)) < freq).astype(np.uint8)
    none = np.flatnonzero(labels.sum(1) == 0)  # NUS-WIDE-21 keeps only images with a concept
    labels[none, rng.choice(L, len(none), p=freq / freq.sum())] = 1
    emb = labels @ rng.standard_normal((L, 64)).astype(np.float32) + 1.2 * rng.standard_normal((NQ + NB, 64),
                                                                                                dtype=np.float32)
    pm = np.where(emb @ rng.standard_normal((64, NBITS)).astype(np.float32) > 0, 1, -1).astype(np.int8)
    x = emb @ rng.standard_normal((64, DIM)).astype(np.float32)
    x = np.round(x / np.linalg.norm(x, axis=1, keepdims=True) * 1024) / 1024
    codebooks = np.empty((M, KSUB, DIM), np.float32)
    codes = np.empty((NQ + NB, M), np.uint8)
    resid = x.copy()
    for m in range(M):  # greedy residual quantizer seeded from data: codes carry the label structure
        codebooks[m] = np.round(resid[rng.choice(NQ + NB, KSUB, replace=False)] * (1024 if m == 0 else 512)) / 1024
        codes[:, m] = np.argmax(resid @ codebooks[m].T - 0.5 * (codebooks[m] ** 2).sum(1), axis=1)
        resid -= codebooks[m][codes[:, m]]
    return {"labels": labels, "pm": pm, "x": x.astype(np.float32), "codes": codes, "codebooks": codebooks}


def peer_map(distance: Callable[[int], np.ndarray], q_labels: np.ndarray, db_labels: np.ndarray,
             empty: str) -> float:
    """DeepHash-pytorch's CalcTopMap, query by query (stable sort); ``empty`` = skip (WSDHQ) or zero."""
    aps = []
    for i in range(len(q_labels)):
        gnd = (q_labels[i] @ db_labels.T > 0).astype(np.float32)
        ind = np.argsort(distance(i), kind="stable")
        tgnd = gnd[ind[:K]]
        tsum = int(tgnd.sum())
        if tsum == 0:
            if empty == "zero":
                aps.append(0.0)
            continue
        count = np.linspace(1, tsum, tsum)
        tindex = np.asarray(np.where(tgnd == 1)).ravel() + 1.0
        aps.append(float(np.mean(count / tindex)))
    return float(np.mean(aps))


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float], list[float]]:
    """Result of ``fn`` and its wall and CPU seconds over ``repeats`` runs (after one warm-up when repeating)."""
    if repeats > 1:
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return out, walls, cpus


def main() -> None:
    load_before = os.getloadavg()
    d = synthetic()
    ql, dl = d["labels"][:NQ], d["labels"][NQ:]
    bits = search.pack_bits(d["pm"])
    xhat = search.reconstruct(d["codes"][NQ:], d["codebooks"])
    xq = d["x"][:NQ]
    probe = xhat.astype(np.float64) @ xq[:50].T.astype(np.float64)
    assert np.array_equal(probe, (xhat @ xq[:50].T).astype(np.float64)), "inner products are not exact"
    cases = {
        "hamming_32bit_map_at_5000": ("wshrca_at5000", {"bits": bits[:NQ]}, {"bits": bits[NQ:]},
                                      lambda i, pm=d["pm"].astype(np.float32): 0.5 * (NBITS - pm[NQ:] @ pm[i])),
        "aqd_m4_k256_d50_map_at_5000": ("wsdhq", {"x": xq}, {"codes": d["codes"][NQ:], "codebooks": d["codebooks"]},
                                        lambda i: -(xhat @ xq[i])),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, (proto_name, query, database, distance) in cases.items():
        proto = PROTOCOLS.create(proto_name)
        run = partial(evaluate, proto, query=query, database=database, q_labels=ql, db_labels=dl)
        res, walls, cpus = timed(partial(run, pr=False, p_at=()), REPEATS)
        _, full_walls, _ = timed(run, REPEATS)
        loop_map, loop_walls, _ = timed(partial(peer_map, distance, ql, dl, proto.empty), 1)
        ours = statistics.median(walls)
        results[name] = {"protocol": proto_name, "ours_s": ours, "ours_runs_s": walls, "ours_cpu_s": cpus,
                         "ours_with_p_at_and_pr_s": statistics.median(full_walls), "loop_s": loop_walls[0],
                         "speedup": loop_walls[0] / ours, "map_ours": res["map"], "map_loop": loop_map,
                         "n_empty": res["n_empty"]}
        assert abs(res["map"] - loop_map) <= 1e-9, f"{name}: mAP differs: {res['map']!r} vs {loop_map!r}"
    # Search alone: tagcode's against the faiss calls that do the same exact search.
    (_, ours_i), ours_search, _ = timed(partial(search.hamming_knn, bits[:NQ], bits[NQ:], K), REPEATS)
    (_, mc_i), mc_search, _ = timed(partial(faiss.knn_hamming, bits[:NQ], bits[NQ:], K, variant="mc"), REPEATS)
    (_, hc_i), hc_search, _ = timed(partial(faiss.knn_hamming, bits[:NQ], bits[NQ:], K, variant="hc"), 3)
    same = np.array_equal(ours_i, mc_i) and np.array_equal(ours_i, hc_i)
    aqd_search = {}
    for dim in (DIM, 300):  # look-up-table AQD costs almost the same at WSDHQ's original width
        rng = np.random.default_rng(dim)
        books = rng.standard_normal((M, KSUB, dim)).astype(np.float32)
        queries = rng.standard_normal((NQ, dim)).astype(np.float32)
        aqd_search[f"d{dim}"] = statistics.median(timed(partial(search.aqd_knn, queries, d["codes"][NQ:], books, K),
                                                        REPEATS)[1])
    pq = faiss.IndexPQ(M * DIM, M, 8, faiss.METRIC_INNER_PRODUCT)  # AQD as PQ: codebook m on copy m of the query
    faiss.copy_array_to_vector(d["codebooks"].ravel(), pq.pq.centroids)
    pq.is_trained = True
    pq.add_sa_codes(np.ascontiguousarray(d["codes"][NQ:]))
    faiss_pq = statistics.median(timed(partial(pq.search, np.ascontiguousarray(np.tile(xq, (1, M))), K), 3)[1])
    faiss_flat = statistics.median(timed(partial(faiss.knn, xq, xhat, K, metric=faiss.METRIC_INNER_PRODUCT), 3)[1])
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "queries": NQ, "database": NB, "labels": L, "k": K,
            "cpu": _cpu_model(), "cores": os.cpu_count(), "threads": search.THREADS,
            "blas": [f"{i['internal_api']} {i['version']} ({i['num_threads']} threads)" for i in threadpool_info()
                     if i["user_api"] == "blas"],
            "faiss_threads": faiss.omp_get_max_threads(), "numpy": np.__version__, "faiss": faiss.__version__,
            "python": platform.python_version(), "load_average_before": load_before,
            "load_average_after": os.getloadavg(), "repeats": REPEATS,
            "search_only_s": {"tagcode_hamming_knn": statistics.median(ours_search),
                              "faiss_knn_hamming_mc": statistics.median(mc_search),
                              "faiss_knn_hamming_hc": statistics.median(hc_search), "identical": same,
                              **{f"tagcode_aqd_knn_{key}": v for key, v in aqd_search.items()},
                              "faiss_index_pq_ip_d50": faiss_pq, "faiss_knn_ip_reconstructed_d50": faiss_flat}}
    OUT.mkdir(exist_ok=True)
    (OUT / "eval_speed.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (OUT / "eval_speed.md").write_text(report(meta, results))
    print(report(meta, results))


def report(meta: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    """The markdown summary."""
    s = meta["search_only_s"]
    lines = [
        "# Evaluation speed at NUS-WIDE scale", "",
        f"{meta['queries']} queries × {meta['database']} database items, {meta['labels']} labels, mAP@{meta['k']}; "
        f"{meta['cpu']}, {meta['cores']} cores, tagcode on {meta['threads']} threads; {meta['date']}; load average "
        f"{meta['load_average_before'][0]:.2f} before, {meta['load_average_after'][0]:.2f} after. Produced by "
        "`bench/eval_speed.py` on synthetic NUS-WIDE-21-shaped data (see its docstring).", "",
        f"tagcode: median wall time of {meta['repeats']} runs after a warm-up, mAP only (`pr=False, p_at=()`); the "
        "column after it adds P@N and the PR curve (the default). Loop: DeepHash-pytorch's per-query "
        "`CalcTopMap` with a stable argsort, **timed in full over all queries (no extrapolation)**. "
        "The script asserts |mAP difference| ≤ 1e-9. The VM is shared with other jobs, so timings move with its "
        "load (recorded above); every run is in the JSON.", "",
        "| metric | protocol | tagcode (s) | fastest run (s) | with P@N + PR (s) | loop (s) | speed-up | "
        "mAP tagcode | mAP loop |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | `{r['protocol']}` | {r['ours_s']:.2f} | {min(r['ours_runs_s']):.2f} | "
              f"{r['ours_with_p_at_and_pr_s']:.2f} | "
              f"{r['loop_s']:.1f} | {r['speedup']:.0f}× | {r['map_ours']:.9f} | {r['map_loop']:.9f} |"
              for n, r in results.items()]
    lines += ["", f"Search alone, top-{meta['k']} (median), against faiss doing the same exact search: 32-bit "
              f"Hamming, tagcode `hamming_knn` {s['tagcode_hamming_knn']:.2f} s vs `faiss.knn_hamming` counting "
              f"sort (`variant='mc'`) {s['faiss_knn_hamming_mc']:.2f} s and heap (`'hc'`) "
              f"{s['faiss_knn_hamming_hc']:.2f} s (identical indices: {s['identical']}). AQD M=4, K=256: tagcode "
              f"`aqd_knn` (look-up tables + sampled-threshold radix selection) {s['tagcode_aqd_knn_d50']:.2f} s at "
              f"d=50, {s['tagcode_aqd_knn_d300']:.2f} s at d=300, vs faiss `IndexPQ` inner-product search with the "
              f"codebooks laid out as a PQ over M copies of the query {s['faiss_index_pq_ip_d50']:.2f} s and "
              f"`faiss.knn` on the reconstructed vectors {s['faiss_knn_ip_reconstructed_d50']:.2f} s (d=50). "
              "At k = 5000 faiss's top-k selection costs more than the scoring, so the evaluator uses tagcode's "
              "search; faiss stays the reference in the tests and the serving index."]
    return "\n".join(lines) + "\n"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
