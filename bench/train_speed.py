"""Training throughput of WSDHQ, WSHRCA and WDHT on frozen features (images per second), 2 torch threads.

Data: the demo's prepared OpenClipArt set (EfficientNet-Lite0 features, the main MiniLM merged tags for
WSDHQ, the raw MiniLM vectors (variant ``minilm_raw``) for WSHRCA and WDHT, as params.yaml trains them).
Each method trains its full default schedule at the demo's code length (WSDHQ 32 bits, the others 64); the
per-step log callback timestamps every step (step i takes stamp i − stamp i−1; the first step is not
timed), so WSHRCA's tag and image epochs are timed separately. Throughput = images stepped / seconds;
WSDHQ's steps include its periodic code and codebook updates (ICM, refit). The machine is shared: the load
average before and after is recorded with the figures.

Run: ``.venv/bin/python bench/train_speed.py [data dir]`` (default ``data``); writes
``bench/results/train_speed.{md,json}``.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from tagcode.methods import create_method
from tagcode.methods.trainset import load_trainset

OUT = Path(__file__).resolve().parent / "results"
THREADS = 2
# method, bits, embed_tags variant
CELLS = (("wsdhq", 32, None), ("wshrca", 64, "minilm_raw"), ("wdht", 64, "minilm_raw"))


def bench(method: str, bits: int, embedding: str | None, data: Path) -> dict[str, Any]:
    """Fit ``method`` with its defaults; images/s over tag and image steps (their steps' wall time)."""
    train = load_trainset(data / "prepared", features=data / "features", embed=data / "embed", embedding=embedding)
    stamps: list[tuple[float, float]] = []
    m = create_method(method, bits=bits, seed=0, device="cpu")
    t0 = time.perf_counter()
    m.fit(train, log=lambda step, terms: stamps.append((time.perf_counter(), terms.get("tag_epoch", 0.0))))
    total = time.perf_counter() - t0
    batch = m.opts.batch_size
    times = {"tag": 0.0, "img": 0.0}
    steps = {"tag": 0, "img": 0}
    for (before, _), (t, tag) in itertools.pairwise(stamps):  # step i's time: stamp i − stamp i−1
        kind = "tag" if tag else "img"
        times[kind] += t - before
        steps[kind] += 1
    rate = {k: steps[k] * batch / times[k] for k in times if steps[k]}
    return {"method": method, "bits": bits, "embedding": embedding or "main",
            "train_images": m.meta.get("train_images", len(train)),
            "steps": len(stamps), "batch_size": batch, "fit_s": round(total, 2),
            "images_per_s": {k: round(v, 1) for k, v in rate.items()},
            "images_per_s_overall": round((len(stamps) - 1) * batch / (stamps[-1][0] - stamps[0][0]), 1)}


def main() -> None:
    import torch  # after tagcode, which sets OpenMP's spin count before torch loads it

    data = Path(sys.argv[1] if len(sys.argv) > 1 else "data")
    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()
    rows = [bench(name, bits, embedding, data) for name, bits, embedding in CELLS]
    load_after = os.getloadavg()
    env = {"torch": torch.__version__, "threads": THREADS, "cpus": os.cpu_count(), "python": platform.python_version(),
           "load_before": [round(v, 1) for v in load_before], "load_after": [round(v, 1) for v in load_after]}
    OUT.mkdir(exist_ok=True)
    (OUT / "train_speed.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    lines = ["# Training throughput: WSDHQ, WSHRCA and WDHT (frozen features)", "",
             "`python bench/train_speed.py` on the demo data: each method's full default schedule and batch, "
             f"{THREADS} torch threads, CPU (torch {env['torch']}, {env['cpus']} cores). Load average (1/5/15 min) "
             f"before {env['load_before']}, after {env['load_after']}: the machine is shared, so these are lower "
             "bounds of what an idle machine does.", "",
             "| method | bits | training images | steps × batch | fit (s) | images/s, tag epochs | "
             "images/s, image steps | images/s, overall |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ips = r["images_per_s"]
        lines.append(f"| {r['method']} | {r['bits']} | {r['train_images']} | {r['steps']} × {r['batch_size']} | "
                     f"{r['fit_s']} | {ips.get('tag', '–')} | {ips.get('img', '–')} | {r['images_per_s_overall']} |")
    lines += ["", "WSHRCA's tag epochs run the image branch under `no_grad` and step only the tag-refinement module; "
              "its image epochs backpropagate through the frozen attention into the hash layer. WDHT has one "
              "optimizer and no tag epochs. WSDHQ's figure includes its code/codebook updates.", ""]
    (OUT / "train_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
