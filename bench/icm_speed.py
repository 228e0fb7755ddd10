"""WSDHQ's ICM encoder against the reference's tensor form, and WSDHQ training throughput on the demo data.

ICM at the reference's sizes: M = 4 codebooks × K = 256 codewords in D = 300, the tag metric G = WᵀW
from T = 1,000 random unit tag vectors, 3 passes from zero codes, a random codebook order per pass and
batch. tagcode's encoder (``tagcode.methods.wsdhq.quantizer.ICM``: one (B, D)×(D, M·K) product per batch,
then M−1 rows of the pairwise table C_j G C_mᵀ per codebook step, two threads) is timed on 20,000
vectors. The straightforward form, as the reference TF code builds it, scores every codeword through the
B×K×T tensor W(r − c_k); it is timed on 64 of those vectors (it is about four orders of magnitude
slower), with the same codebook orders, and the script asserts both assign the same codes.

The training part trains WSDHQ on the demo features (``/work/main/data`` by default, ``--data`` to
change) in frozen-feature mode and reports images per second over the training loop.

Run by hand: ``.venv/bin/python bench/icm_speed.py`` (writes bench/results/icm_speed.{md,json}).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from tagcode.methods.wsdhq.quantizer import ICM

M, K, D, T, N, N_REF, BATCH, PASSES, REPEATS, TARGET = 4, 256, 300, 1000, 20_000, 64, 700, 3, 5, 50_000
OUT = Path(__file__).parent / "results"


def problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random features x (N, D), codebooks (M, K, D) and unit tag vectors W (T, D), all float32."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((T, D)).astype(np.float32)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    codebooks = (rng.standard_normal((M, K, D)) * 0.05).astype(np.float32)
    x = np.tanh(rng.standard_normal((N, D)) * 0.3).astype(np.float32)
    return x, codebooks, w


def icm_tensor(x: np.ndarray, codebooks: np.ndarray, w: np.ndarray, orders: list[np.ndarray]) -> np.ndarray:
    """The reference's form: for codebook m, ‖W(r − C_m[k])‖² for every k through the (B, K, T) tensor."""
    codes = np.zeros((len(x), M), dtype=np.int64)
    chosen = np.zeros((len(x), M, D), dtype=np.float32)  # zero start: unvisited codebooks contribute nothing
    for order in orders:
        for m in order:
            r = x - chosen.sum(axis=1) + chosen[:, m]
            proj = (r[:, None, :] - codebooks[m][None]) @ w.T  # (B, K, T)
            codes[:, m] = (proj * proj).sum(axis=2).argmin(axis=1)
            chosen[:, m] = codebooks[m][codes[:, m]]
    return codes.astype(np.uint8)


def bench_icm() -> dict[str, Any]:
    """Time both encoders; assert equal codes on the reference's sample."""
    x, codebooks, w = problem()
    icm = ICM(codebooks, w.T.astype(np.float64) @ w, passes=PASSES)
    times, codes = [], None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        codes = icm.encode(x, np.random.default_rng(1), batch=BATCH, threads=2)
        times.append(time.perf_counter() - t0)
    rng = np.random.default_rng(1)
    orders = [rng.permutation(M) for _ in range(PASSES)]  # the first batch's orders
    t0 = time.perf_counter()
    ref = icm_tensor(x[:N_REF], codebooks, w, orders)
    ref_s = time.perf_counter() - t0
    same = int((ref == codes[:N_REF]).all(axis=1).sum())
    assert same == N_REF, f"codes differ on {N_REF - same} of {N_REF} vectors"
    best = min(times)
    return {"M": M, "K": K, "D": D, "T": T, "n": N, "batch": BATCH, "passes": PASSES, "threads": 2,
            "seconds": times, "vectors_per_s_best": N / best, "vectors_per_s_median": N / statistics.median(times),
            "reference_n": N_REF, "reference_seconds": ref_s, "reference_vectors_per_s": N_REF / ref_s,
            "same_codes": f"{same}/{N_REF}", "target_vectors_per_s": TARGET}


def bench_training(data: Path, iterations: int) -> dict[str, Any]:
    """Frozen-feature WSDHQ training on the demo data (32 bits, default options but ``iterations``):
    images per second over the whole loop (code updates included) and over the gradient steps alone."""
    import torch

    from tagcode.methods import create_method
    from tagcode.methods.trainset import load_trainset

    ts = load_trainset(data / "prepared", features=data / "features", embed=data / "embed")
    method = create_method("wsdhq", bits=32, device="cpu", iterations=iterations)
    stamps: list[float] = []
    t0 = time.perf_counter()
    method.fit(ts, log=lambda step, terms: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t0
    gaps = np.diff([t0, *stamps])
    period = 2 * -(-len(ts) // 256)
    steps_only = np.delete(gaps, [i for i in range(len(gaps)) if i > 0 and i % period == 0])
    batch = method.opts.batch_size
    return {"train_images": len(ts), "iterations": iterations, "batch": batch, "torch_threads": torch.get_num_threads(),
            "seconds": total, "images_per_s": iterations * batch / total,
            "images_per_s_steps_only": batch / float(np.median(steps_only)), "update_period": period}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/main/data"), help="demo data (prepared, "
                        "features, embed)")
    parser.add_argument("--iterations", type=int, default=800, help="training iterations to time")
    parser.add_argument("--parts", default="icm,training", help="what to time (icm, training); a part left out "
                        "keeps its figures from the existing results/icm_speed.json")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    previous = json.loads((OUT / "icm_speed.json").read_text()) if (OUT / "icm_speed.json").is_file() else {}
    load = os.getloadavg()
    icm = bench_icm() if "icm" in parts else previous["icm"]
    training = bench_training(args.data, args.iterations) if "training" in parts else previous["training"]
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_before": load,
               "loadavg_after": os.getloadavg()}
    icm["loadavg"] = icm.get("loadavg", [load[0], machine["loadavg_after"][0]])
    training["loadavg"] = training.get("loadavg", [load[0], machine["loadavg_after"][0]])
    result = {"machine": machine, "icm": icm, "training": training}
    OUT.mkdir(exist_ok=True)
    (OUT / "icm_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    met = "met" if icm["vectors_per_s_best"] >= TARGET else "NOT met"
    best, median = min(icm["seconds"]), statistics.median(icm["seconds"])
    ref_s, ref_rate = icm["reference_seconds"], icm["reference_vectors_per_s"]
    md = f"""# WSDHQ ICM encoding and training speed

`python bench/icm_speed.py` on {platform.platform()}, {os.cpu_count()} cores, shared with other
sessions: the load average (before, after) of each part is given, and every figure is slower than on an
idle machine.

## ICM encoding (M = {M}, K = {K}, D = {D}, T = {T} tags, {PASSES} passes, batches of {BATCH}, 2 threads)

Load average {icm['loadavg'][0]:.1f} / {icm['loadavg'][1]:.1f}.

| encoder | vectors | seconds | vectors/s |
|---|---:|---:|---:|
| tagcode `ICM` (pairwise tables), best of {REPEATS} | {N} | {best:.3f} | {N / best:,.0f} |
| tagcode `ICM`, median of {REPEATS} | {N} | {median:.3f} | {N / median:,.0f} |
| B×K×T tensor (the reference's form) | {N_REF} | {ref_s:.2f} | {ref_rate:,.1f} |

Same codes on the reference's vectors: {icm['same_codes']}. Target ≥ {TARGET:,} vectors/s: {met} (best run).

## Training (frozen EfficientNet-Lite0 features, demo data, 32 bits)

Load average {training['loadavg'][0]:.1f} / {training['loadavg'][1]:.1f}.

{training['train_images']} training images, {training['iterations']} iterations of {training['batch']} images,
code/codebook update every {training['update_period']} iterations, {training['torch_threads']} torch threads:
{training['seconds']:.1f} s, **{training['images_per_s']:,.0f} images/s** over the whole loop (updates
included), {training['images_per_s_steps_only']:,.0f} images/s for a gradient step alone (median).
"""
    (OUT / "icm_speed.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
