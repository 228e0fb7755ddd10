"""The quality floor of issue 13 §2: a one-layer probe (Linear + tanh) on the frozen features, trained with
WSDHQ's adaptive cosine margin loss against the final tag vectors, then scored by mAP@all as float inner
products, faiss PQ (AQD with the reconstructed database) and faiss LSQ, for each tag-vector source.

    python bench/probe.py --embed glove-6b-50d=.tmp/embed-glove-6b-50d --embed minilm-l6=.tmp/embed-minilm-l6

Writes ``bench/results/probe.md`` and ``probe.json``. Labels are read for scoring only.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tagcode.data.features import features_for
from tagcode.data.manifest import read_labels, read_manifest
from tagcode.evaluation.protocols import Protocol, evaluate
from tagcode.methods import create_method
from tagcode.methods.trainset import TrainSet, load_trainset
from tagcode.methods.wsdhq.losses import AdaptiveMarginLoss
from tagcode.retrieval.codes import views

MAP_ALL = {"float": Protocol("probe_float", "float", None, "total", "zero"),
           "aqd": Protocol("probe_aqd", "aqd", None, "total", "zero")}
QUANTIZERS = (("float", 32), ("pq", 32), ("lsq", 8))  # float: the head outputs centred and L2-normalised


def prep(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Centre on the training mean and L2-normalise (the baselines' preprocessing)."""
    x = x - mean
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def train_probe(x: np.ndarray, tags: np.ndarray, vectors: np.ndarray, *, epochs: int, batch: int, lr: float,
                seed: int) -> nn.Module:
    """Linear + tanh from the features to the tag-vector space, trained with Adam on WSDHQ's adaptive cosine
    margin loss (γ = 1, ``tagcode.methods.wsdhq.losses``)."""
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Linear(x.shape[1], vectors.shape[1]), nn.Tanh())
    criterion = AdaptiveMarginLoss(torch.from_numpy(vectors), gamma=1.0)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    xt, tt = torch.from_numpy(x), torch.from_numpy(tags)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            loss = criterion(head(xt[idx]), tt[idx])["embedding"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def raw_reconstruction(method: str, bits: int, h_tr: np.ndarray, h_db: np.ndarray, seed: int) -> np.ndarray:
    """faiss PQ or LSQ fitted on the raw head outputs (no centring, no normalising; PQ zero-pads to a multiple
    of M): the database reconstructions x̂, so ⟨q, x̂⟩ is AQD with the raw query."""
    import faiss

    m, d = bits // 8, h_tr.shape[1]
    if method == "pq":
        pad = -d % m
        h_tr, h_db = (np.ascontiguousarray(np.pad(a, ((0, 0), (0, pad)))) for a in (h_tr, h_db))
        quant = faiss.ProductQuantizer(d + pad, m, 8)
        quant.cp.min_points_per_centroid, quant.cp.seed = 1, seed
    else:
        quant = faiss.LocalSearchQuantizer(d, m, 8)
        quant.train_iters, quant.random_seed, quant.nperts = 10, seed, min(quant.nperts, m)
    quant.train(h_tr)
    return quant.decode(quant.compute_codes(h_db))[:, :d]


def score(kind: str, query: dict[str, np.ndarray], database: dict[str, np.ndarray], q_labels: np.ndarray,
          db_labels: np.ndarray) -> float:
    """mAP@all (all relevant items as the normaliser, empty queries count 0)."""
    return float(evaluate(MAP_ALL[kind], query=query, database=database, q_labels=q_labels, db_labels=db_labels,
                          pr=False)["map"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every (vector source, seed) probe, scored float, PQ and LSQ; plus the raw-feature reference."""
    manifest = Path(args.prepared) / "manifest.parquet"
    m = read_manifest(manifest)
    q_ids, db_ids = m.ids_of("query"), m.ids_of("database")
    x_q, x_db = features_for(args.features, q_ids, db_ids)
    q_labels, _ = read_labels(manifest, list(q_ids))
    db_labels, _ = read_labels(manifest, list(db_ids))
    results: dict[str, Any] = {"rows": [], "sources": {}}
    raw_mean = None
    for spec in args.embed:
        name, path = spec.split("=", 1)
        train = load_trainset(args.prepared, features=args.features, embed=path)
        mean = train.features.mean(axis=0)
        if raw_mean is None:
            raw_mean = mean
            results["raw_features_map"] = score("float", {"x": prep(x_q, mean)}, {"x": prep(x_db, mean)},
                                                q_labels, db_labels)
        tagged = train.tagged()
        x_tr = prep(train.features[tagged], mean)
        tags = train.tags[tagged].toarray() > 0
        results["sources"][name] = {"path": path, "dim": int(train.tag_vectors.shape[1]), "tags": int(tags.shape[1]),
                                    "train_images": len(tagged)}
        for seed in args.seeds:
            t0 = time.perf_counter()
            head = train_probe(x_tr, tags, train.tag_vectors, epochs=args.epochs, batch=args.batch, lr=args.lr,
                               seed=seed)
            train_s = time.perf_counter() - t0
            with torch.inference_mode():
                h_tr, h_q, h_db = (head(torch.from_numpy(prep(a, mean))).numpy() for a in (train.features, x_q, x_db))
            row = {"vectors": name, "seed": seed, "train_s": round(train_s, 1),
                   "float": score("float", {"x": h_q}, {"x": h_db}, q_labels, db_labels)}
            for method, bits in QUANTIZERS:
                quant = create_method(method, bits=bits, seed=seed).fit(TrainSet.from_features(h_tr))
                row[f"{method}-{bits}"] = score("float" if method == "float" else "aqd",
                                                views(quant.encode_query(h_q, q_ids)),
                                                views(quant.encode(h_db, db_ids)), q_labels, db_labels)
            for method, bits in QUANTIZERS[1:]:
                recon = raw_reconstruction(method, bits, h_tr, h_db, seed)
                row[f"{method}-{bits}-raw"] = score("float", {"x": h_q}, {"x": recon}, q_labels, db_labels)
            print(json.dumps(row), flush=True)
            results["rows"].append(row)
    return results


def summarise(results: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per vector source and column: the per-seed mAPs."""
    out: dict[str, dict[str, list[float]]] = {}
    for row in results["rows"]:
        for col in ("float", *(f"{m}-{b}{r}" for m, b in QUANTIZERS for r in ("", "-raw") if m != "float" or not r)):
            out.setdefault(row["vectors"], {}).setdefault(col, []).append(row[col])
    return out


def write_markdown(results: dict[str, Any], path: Path) -> None:
    """The issue's table with our figures (mean ± std over seeds) beside the issue's."""
    issue = {"glove-6b-50d": {"float": 0.332, "pq-32-raw": 0.337, "lsq-8-raw": 0.338},
             "minilm-l6": {"float": 0.356, "pq-32-raw": 0.364, "lsq-8-raw": 0.370}}
    labels = {"float": "probe head, float (inner product)",
              "float-32": "probe head, float, outputs centred + L2-normalised (what PQ/LSQ see)",
              "pq-32": "probe head, faiss PQ 32 bits (AQD), outputs centred + L2-normalised",
              "lsq-8": "probe head, faiss LSQ 8 bits (AQD), outputs centred + L2-normalised",
              "pq-32-raw": "probe head, faiss PQ 32 bits (AQD) on the raw tanh outputs",
              "lsq-8-raw": "probe head, faiss LSQ 8 bits (AQD) on the raw tanh outputs"}
    summary = summarise(results)
    names = list(results["sources"])
    cfg = results["config"]
    lines = [
        "# Probe: the quality floor of issue 13 §2",
        "",
        f"`{cfg['command']}` ({cfg['elapsed_s']:.0f} s on {cfg['machine']}).",
        "",
        *([f"Features: {cfg['features_meta']['backbone']} at {cfg['features_meta']['preprocess']['size']} px "
           f"(resized to {cfg['features_meta']['preprocess']['resize']}); the prepared image cache at run time: "
           f"{cfg['image_cache_px']} px.", ""] if "image_cache_px" in cfg else []),
        "A single Linear + tanh on the frozen EfficientNet-Lite0 features (centred on the training mean, "
        f"L2-normalised), trained {cfg['epochs']} epochs (Adam, lr {cfg['lr']}, batch {cfg['batch']}) with WSDHQ's "
        "adaptive cosine margin loss (γ = 1) against the final tag vectors of `embed_tags` (params.yaml options). "
        "mAP@all of the 498 queries against the 2,957-image database (relevant = a shared label, empty queries "
        f"count 0); mean ± std over seeds {', '.join(map(str, cfg['seeds']))}; in brackets the issue's figure, "
        "beside the rows that reproduce it (its PQ/LSQ rows match quantizing the raw tanh outputs). "
        "PQ and LSQ are the project's baselines fitted on the head outputs of all training images (they centre and "
        "L2-normalise them first); the `raw` rows fit faiss's PQ/LSQ on the tanh outputs as they are. The query "
        "stays continuous in both (AQD against the reconstructed database).",
        "",
        "| what | " + " | ".join(f"{n} ({results['sources'][n]['dim']}-d, {results['sources'][n]['tags']} tags, "
                                  f"{results['sources'][n]['train_images']} training images)" for n in names) + " |",
        "|---|" + "---:|" * len(names),
        "| raw features (centred, L2-normalised), no training | "
        + " | ".join(f"{results['raw_features_map']:.3f} (0.248)" for _ in names) + " |",
    ]
    for col, label in labels.items():
        cells = []
        for n in names:
            v = np.array(summary[n][col])
            ref = issue.get(n, {}).get(col)
            cells.append(f"{v.mean():.3f} ± {v.std():.3f}" + (f" ({ref:.3f})" if ref is not None else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed (`probe.json`):", "",
              "| vectors | seed | float | float, centred + L2 | PQ 32 | LSQ 8 | PQ 32 raw | LSQ 8 raw | train s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['vectors']} | {r['seed']} | {r['float']:.4f} | {r['float-32']:.4f} | {r['pq-32']:.4f} | "
              f"{r['lsq-8']:.4f} | {r['pq-32-raw']:.4f} | {r['lsq-8-raw']:.4f} | {r['train_s']} |"
              for r in results["rows"]]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    """Parse the options, run every probe, write the results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prepared", default="/work/main/data/prepared")
    p.add_argument("--features", default="/work/main/data/features")
    p.add_argument("--embed", action="append", required=True, help="NAME=embed_tags output directory")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench/results/probe")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    results = run(args)
    results["config"] = {"epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seeds": args.seeds,
                         "prepared": args.prepared, "features": args.features, "elapsed_s": time.perf_counter() - t0,
                         "features_meta": json.loads((Path(args.features) / "meta.json").read_text()),
                         "image_cache_px": json.loads((Path(args.prepared) / "images/meta.json").read_text())["size"],
                         "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
                         "command": "python bench/probe.py " + " ".join(f"--embed {e}" for e in args.embed)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(results, out.with_suffix(".md"))


if __name__ == "__main__":
    main()
