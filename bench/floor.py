"""The quality floor of issue 13 §2: train, encode and score single cells in one process, each under the
probe's protocol (``bench/probe.py``: mAP@all, every relevant item as the normaliser, empty queries 0) with the
codes' own search (AQD for quantizers, Hamming for binary codes, inner product for floats) and under the
project's protocol of the method's family (``wsdhq``: AQD mAP@5000; ``wshrca``: Hamming mAP@all).

    python bench/floor.py --cell 'wsdhq-32|wsdhq|32|-|{}' --cell 'wshrca-64|wshrca|64|raw|{"margin": 0.5}'

A cell is ``label|method|bits|embedding variant (- for the main one)|options JSON``. One JSON line per cell is
appended to ``--out`` (``bench/results/floor.jsonl``), with the training seconds; ``--report`` rewrites
``floor.md`` from it. Labels are read for scoring only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagcode.data.features import features_for
from tagcode.data.manifest import read_labels, read_manifest
from tagcode.evaluation.protocols import PROTOCOLS, evaluate
from tagcode.methods import create_method
from tagcode.methods.trainset import TrainSet, load_trainset
from tagcode.retrieval.codes import views
from tagcode.stages.evaluate import own_score

PROBE = PROTOCOLS.create("wshrca_mirflickr")  # mAP@all, normaliser = all relevant, empty queries count 0
FAMILY = {"quantizer": PROTOCOLS.create("wsdhq"), "binary": PROTOCOLS.create("wshrca_mirflickr"),
          "float": PROTOCOLS.create("wsdhq")}


@dataclasses.dataclass(frozen=True)
class Split:
    """The evaluation side of the demo data: query and database features, ids and labels."""

    q_ids: np.ndarray
    db_ids: np.ndarray
    x_q: np.ndarray
    x_db: np.ndarray
    q_labels: np.ndarray
    db_labels: np.ndarray

    @classmethod
    def load(cls, prepared: str, features: str) -> Split:
        manifest = Path(prepared) / "manifest.parquet"
        m = read_manifest(manifest)
        q_ids, db_ids = m.ids_of("query"), m.ids_of("database")
        x_q, x_db = features_for(features, q_ids, db_ids)
        return cls(q_ids, db_ids, x_q, x_db, read_labels(manifest, list(q_ids))[0],
                   read_labels(manifest, list(db_ids))[0])


def score(method: Any, split: Split) -> dict[str, float]:
    """``probe``: mAP@all by the codes' own search; ``family``: the method family's project protocol;
    ``probe_float``: mAP@all of the float embeddings where the codes carry them (WSDHQ's ``x``)."""
    q, db = views(method.encode_query(split.x_q, split.q_ids)), views(method.encode(split.x_db, split.db_ids))
    own = own_score(q, db)
    out = {}
    for key, proto in (("probe", PROBE), ("family", FAMILY[method.kind])):
        proto = dataclasses.replace(proto, score=own)
        out[key] = float(evaluate(proto, query=q, database=db, q_labels=split.q_labels, db_labels=split.db_labels,
                                  pr=False)["map"])
    if "x" in q and "x" in db and own != "float":
        proto = dataclasses.replace(PROBE, score="float")
        out["probe_float"] = float(evaluate(proto, query=q, database=db, q_labels=split.q_labels,
                                            db_labels=split.db_labels, pr=False)["map"])
    return out


def run_cell(method_name: str, bits: int, train: TrainSet, split: Split, options: dict[str, Any],
             seed: int = 0) -> dict[str, Any]:
    """Fit one method on ``train``, score it; the training wall-clock seconds included."""
    method = create_method(method_name, bits=bits, seed=seed, **options)
    t0 = time.perf_counter()
    method.fit(train)
    train_s = time.perf_counter() - t0
    return {"train_s": round(train_s, 1), **{k: round(v, 4) for k, v in score(method, split).items()}}


def code_version() -> str:
    """The commit the cell runs on, ``+dirty`` with uncommitted changes to ``tagcode/`` (defaults change
    between commits)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True, check=False).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--", "tagcode")
                                                   else "")


def parse_cell(spec: str) -> tuple[str, str, int, str | None, dict[str, Any]]:
    """``label|method|bits|variant|options`` → its parts (variant ``-``: the main embedding)."""
    label, method, bits, variant, options = spec.split("|", 4)
    return label, method, int(bits), None if variant == "-" else variant, json.loads(options or "{}")


def write_report(rows: list[dict[str, Any]], path: Path) -> None:
    """The cells as a markdown table (latest line per label wins)."""
    latest = {r["label"]: r for r in rows}
    lines = ["# Quality floor cells (issue 13 §2)", "",
             "`python bench/floor.py --cell ...`: one cell each, seed 0, on the demo split (498 queries × 2,957 "
             "database). `probe`: mAP@all with the codes' own search (AQD / Hamming), as `bench/probe.py` scores; "
             "`family`: the project protocol (`wsdhq`: AQD mAP@5000, `wshrca`: Hamming mAP@all); `float`: mAP@all "
             "of WSDHQ's float embeddings. Seconds: training only, under `nice -n 15`, 1 torch thread, on the "
             "shared 2-core machine (load average). `code`: the commit whose defaults the cell ran with (the "
             "WSDHQ quantizer defaults changed in 0e25555, the WSHRCA schedule in dee7817, WSHRCA's attention "
             "values in ed57359).", "",
             "| cell | method | bits | vectors | options | seed | probe | family | float | train s | load | code |",
             "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in latest.values():
        lines.append(f"| {r['label']} | {r['method']} | {r['bits']} | {r['variant'] or 'main'} | "
                     f"`{json.dumps(r['options'])}` | {r['seed']} | {r['probe']:.4f} | {r['family']:.4f} | "
                     f"{format(r['probe_float'], '.4f') if 'probe_float' in r else '–'} | {r['train_s']} | "
                     f"{r['load']} | {r['code']} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    """Run each ``--cell``, append its line, rewrite the report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prepared", default="data/prepared")
    p.add_argument("--features", default="data/features")
    p.add_argument("--embed", default="data/embed")
    p.add_argument("--cell", action="append", default=[])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="bench/results/floor.jsonl")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    split = Split.load(args.prepared, args.features) if args.cell else None
    trainsets: dict[str | None, TrainSet] = {}
    version = code_version()
    for spec in args.cell:
        label, method, bits, variant, options = parse_cell(spec)
        if variant not in trainsets:
            trainsets[variant] = load_trainset(args.prepared, features=args.features, embed=args.embed,
                                               embedding=variant)
        row = {"label": label, "method": method, "bits": bits, "variant": variant, "options": options,
               "seed": args.seed, **run_cell(method, bits, trainsets[variant], split, options, args.seed),
               "load": round(os.getloadavg()[0], 1), "machine": platform.machine(), "code": version}
        print(json.dumps(row), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
    if out.exists():
        write_report([json.loads(line) for line in out.read_text().splitlines() if line.strip()],
                     out.with_suffix(".md"))


if __name__ == "__main__":
    main()
