"""What MLflow tracking adds to a pipeline cell: train → encode → evaluate as `tagcode` processes (as DVC runs
them) with tracking off, and with tracking on plus the promote stage, on the demo's prepared data and features.

    python bench/tracking_overhead.py --prepared data/prepared --features data/features

Modes alternate per repeat so machine load drifts hit both; the SQLite store is created once beforehand
(its first-use migration is timed separately: `make demo` pays it once). Writes
bench/results/tracking_overhead.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TAGCODE = [sys.executable, "-m", "tagcode"]
PARAMS = "evaluate:\n  protocols: [wsdhq, wshrca, at100]\n"  # the demo's (the CLI takes no list option)


def timed(args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one `tagcode` command (fails loudly)."""
    t0 = time.perf_counter()
    proc = subprocess.run([*TAGCODE, *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"tagcode {args[0]} failed: {proc.stderr.strip()}")
    return time.perf_counter() - t0


def cell(work: Path, prepared: str, features: str, name: str, tracking: bool, env: dict[str, str]) -> dict:
    """Stage times of one cell; promote only with tracking on."""
    method, bits = name.rsplit("-", 1)
    flag = ["--tracking", str(tracking).lower()]
    m, c, e = work / "models" / name, work / "codes" / name, work / "metrics" / name
    times = {
        "train": timed(["train", "--method", method, "--bits", bits, "--prepared", prepared, "--features", features,
                        "--out", str(m), *flag], env),
        "encode": timed(["encode", "--model", str(m), "--prepared", prepared, "--features", features, "--out", str(c)],
                        env),
        "evaluate": timed(["evaluate", "--params", str(work / "params.yaml"), "--codes", str(c), "--prepared",
                           prepared, "--out", str(e), *flag], env),
    }
    if tracking:
        times["promote"] = timed(["promote", "--model", str(m), "--out", str(work / f"{name}.json")], env)
    return times


def main() -> None:
    """Run the benchmark and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--cells", default="itq-32,pq-16,lsq-16")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--demo-seconds", type=float, default=239.0, help="make demo time to compare with")
    parser.add_argument("--demo-cells", type=int, default=19)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracking-bench-") as tmp:
        work = Path(tmp)
        (work / "params.yaml").write_text(PARAMS)
        env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true",
               "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"],
                       env=env, check=True, capture_output=True)
        create_db = time.perf_counter() - t0
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        for r in range(args.repeats):
            for name in args.cells.split(","):
                for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                    runs[mode].append({"cell": name, **cell(work, args.prepared, args.features, name, mode == "on",
                                                            env)})
                    print(json.dumps({"mode": mode, **runs[mode][-1]}), flush=True)  # progress, kept if cut short
    per_cell = {}
    for name in args.cells.split(","):
        off = statistics.median(sum(v for k, v in x.items() if k != "cell") for x in runs["off"] if x["cell"] == name)
        on = statistics.median(sum(v for k, v in x.items() if k != "cell") for x in runs["on"] if x["cell"] == name)
        per_cell[name] = {"off_s": off, "on_s": on, "overhead_s": on - off, "overhead_pct": 100 * (on - off) / off}
    mean_overhead = statistics.mean(c["overhead_s"] for c in per_cell.values())
    demo_overhead = mean_overhead * args.demo_cells + create_db
    result = {"cells": per_cell, "runs": runs, "create_db_s": create_db, "demo_seconds": args.demo_seconds,
              "demo_cells": args.demo_cells, "demo_overhead_s": demo_overhead,
              "demo_overhead_pct": 100 * demo_overhead / args.demo_seconds, "load": os.getloadavg()}
    out = REPO / "bench" / "results"
    (out / "tracking_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Tracking overhead", "", "`python bench/tracking_overhead.py` (medians over "
             f"{args.repeats} repeats; load average at the end {result['load'][0]:.1f} on the 2-core machine).", "",
             "| cell | off: train+encode+evaluate (s) | on: + promote (s) | overhead (s) | overhead |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {n} | {c['off_s']:.1f} | {c['on_s']:.1f} | {c['overhead_s']:.1f} | {c['overhead_pct']:.0f}% |"
              for n, c in per_cell.items()]
    lines += ["", f"First use of the SQLite store (table creation and migrations): {create_db:.1f} s.",
              f"Extrapolated to `make demo` ({args.demo_cells} cells, {args.demo_seconds:.0f} s without tracking): "
              f"{demo_overhead:.0f} s, {result['demo_overhead_pct']:.0f}% of the demo time.", ""]
    (out / "tracking_overhead.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
