"""Where tag supervision stops paying (issue 13 §3): mAP against the number of training images.

    python bench/train_size.py --sizes 300 600 1000 2000 0 --seeds 0 1
    python bench/train_size.py --sizes 100 200 --seeds 0 1 --merge   # add sizes to the existing results

For each size (0: every training image) and subsampling seed, a random subset of the TrainSet's images
(``TrainSet.subset``; untagged images are drawn like the others) trains WSDHQ at 32 bits and WSHRCA at 64
bits, each on GloVe and on MiniLM tag vectors, and the baselines at the same lengths (PQ and LSQ at 32 bits,
ITQ at 64) plus the float features (centred on the subset's mean); every model is scored on the full query
and database sets by mAP@all with its own search (``bench/floor.py``). A method that refuses a set that
small (WSDHQ needs one batch of 256 images, PQ/LSQ 256 for their codewords) is recorded with its error.
Writes ``bench/results/train_size.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.floor import Split, run_cell
from tagcode.errors import TagcodeError
from tagcode.methods.trainset import TrainSet, load_trainset

# (line label, method, bits, embedding variant: None = the main one): one line of the plot each
LINES: tuple[tuple[str, str, int, str | None], ...] = (
    ("WSDHQ 32 (GloVe)", "wsdhq", 32, "glove"),
    ("WSDHQ 32 (MiniLM)", "wsdhq", 32, None),
    ("PQ 32", "pq", 32, None),
    ("LSQ 32", "lsq", 32, None),
    ("WSHRCA 64 (GloVe)", "wshrca", 64, "raw"),
    ("WSHRCA 64 (MiniLM)", "wshrca", 64, "minilm_raw"),
    ("ITQ 64", "itq", 64, None),
    ("float features", "float", 32, None),
)
PANELS = {"32-bit quantization codes (AQD)": ("WSDHQ 32 (GloVe)", "WSDHQ 32 (MiniLM)", "PQ 32", "LSQ 32",
                                              "float features"),
          "64-bit binary codes (Hamming)": ("WSHRCA 64 (GloVe)", "WSHRCA 64 (MiniLM)", "ITQ 64", "float features")}


def subsample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row positions of a uniform random subset of ``size`` of ``n`` rows (all of them for 0 or ≥ n)."""
    if size <= 0 or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (size, seed, line) cell, printed and returned as it finishes."""
    split = Split.load(args.prepared, args.features)
    full = {v: load_trainset(args.prepared, features=args.features, embed=args.embed, embedding=v)
            for v in {line[3] for line in LINES}}
    n = len(next(iter(full.values())))
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            pick = subsample(n, size, seed)
            for label, method, bits, variant in LINES:
                train: TrainSet = full[variant].subset(pick)
                try:
                    cell = run_cell(method, bits, train, split, {}, seed)
                except TagcodeError as exc:
                    cell = {"error": str(exc)}
                row = {"line": label, "method": method, "bits": bits, "variant": variant, "size": len(pick),
                       "tagged": len(train.tagged()), "seed": seed, **cell, "load": round(os.getloadavg()[0], 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> dict[str, dict[int, list[float]]]:
    """line → training-set size → the per-seed mAP@all."""
    out: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if "probe" in r:
            out.setdefault(r["line"], {}).setdefault(r["size"], []).append(r["probe"])
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """mAP@all against the number of training images, one line per method (mean over seeds, min–max band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (title, lines) in zip(axes, PANELS.items(), strict=True):
        for line in lines:
            sizes = sorted(t.get(line, {}))
            vals = [np.array(t[line][s]) for s in sizes]
            ax.plot(sizes, [v.mean() for v in vals], marker="o", label=line,
                    linestyle="--" if line == "float features" else "-")
            ax.fill_between(sizes, [v.min() for v in vals], [v.max() for v in vals], alpha=0.15)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel("training images")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("mAP@all (498 queries × 2,957 database)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_markdown(results: dict[str, Any], path: Path) -> None:
    """The mAP table (mean ± spread over seeds) and the seconds per cell."""
    rows, cfg = results["rows"], results["config"]
    t = table(rows)
    sizes = sorted({r["size"] for r in rows})
    secs: dict[tuple[str, int], list[float]] = {}
    errors = sorted({f"{r['line']} at {r['size']}: {r['error']}" for r in rows if "error" in r})
    for r in rows:
        if "train_s" in r:
            secs.setdefault((r["line"], r["size"]), []).append(r["train_s"])
    tagged: dict[int, set[int]] = {}
    for r in rows:
        if r["variant"] is None:
            tagged.setdefault(r["size"], set()).add(r["tagged"])
    lines = ["# Training-set size: where tag supervision stops paying (issue 13 §3)", "",
             *(f"`{c['command']}` ({c['elapsed_s']:.0f} s on {c['machine']}; load average {c['load']})."
               for c in cfg), "",
             "Random subsets of the 2,946 OpenClipArt demo training images (subsampling seeds "
             f"{', '.join(map(str, sorted({r['seed'] for r in rows})))}; the method seed is the same number), each "
             "method with its "
             "default options, scored on the full 498 queries × 2,957 database by mAP@all with the codes' own "
             "search (AQD for WSDHQ/PQ/LSQ, Hamming for WSHRCA/ITQ, inner product for the float features, "
             "centred on the subset's mean and L2-normalised). Cells: mean over seeds (min–max in brackets when "
             "there are several).", "",
             "![mAP vs training-set size](train_size.png)", "",
             "| method | " + " | ".join(f"{s} ({'/'.join(map(str, sorted(tagged[s])))} tagged)" for s in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for label, *_ in LINES:
        cells = []
        for s in sizes:
            v = np.array(t[label].get(s, []))
            cells.append("–" if not len(v) else f"{v.mean():.3f}" + (f" ({v.min():.3f}–{v.max():.3f})"
                                                                      if len(v) > 1 else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", *(f"- – {e}" for e in errors)] if errors else []
    lines += ["", "Training seconds per cell (mean over seeds; 1 torch thread, `nice -n 15`, shared 2-core "
              "machine):", "", "| method | " + " | ".join(map(str, sizes)) + " |", "|---|" + "---:|" * len(sizes)]
    for label, *_ in LINES:
        lines.append(f"| {label} | " + " | ".join(f"{np.mean(secs[(label, s)]):.1f}" if (label, s) in secs
                                                   else "–" for s in sizes) + " |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    """Run the study, write JSON, markdown and the plot."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prepared", default="data/prepared")
    p.add_argument("--features", default="data/features")
    p.add_argument("--embed", default="data/embed")
    p.add_argument("--sizes", type=int, nargs="+", default=[300, 600, 1000, 2000, 0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="bench/results/train_size")
    p.add_argument("--merge", action="store_true", help="keep the existing results' other (size, seed) cells")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    t0 = time.perf_counter()
    rows = run(args)
    config = [{"sizes": args.sizes, "seeds": args.seeds, "elapsed_s": time.perf_counter() - t0,
               "load": " / ".join(f"{v:.1f}" for v in os.getloadavg()),
               "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
               "command": "python bench/train_size.py --sizes " + " ".join(map(str, args.sizes)) + " --seeds "
                          + " ".join(map(str, args.seeds)) + (" --merge" if args.merge else "")}]
    if args.merge and out.with_suffix(".json").exists():
        old = json.loads(out.with_suffix(".json").read_text())
        done = {(r["size"], r["seed"]) for r in rows}
        rows = [r for r in old["rows"] if (r["size"], r["seed"]) not in done] + rows
        config = old["config"] + config
    results = {"rows": rows, "config": config}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(results, out.with_suffix(".md"))
    plot(rows, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
