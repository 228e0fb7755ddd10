"""What MLflow tracking adds to a pipeline cell: train → encode → evaluate as `tagcode` processes (as DVC runs
them) with tracking off, and with tracking on plus the promote stage, on the demo's prepared data and features.

    python bench/tracking_overhead.py --prepared data/prepared --features data/features

With ``--demo SECONDS`` (after `make demo`, SECONDS its measured wall time) it measures instead what tracking
adds to the demo, which tracks after the fact: `promote` over every cell of models/ and metrics/ and `report`,
each with tracking on (a fresh SQLite store) and off; the difference, as a share of the demo's time, goes to
bench/results/tracking_demo.{md,json}.

Modes alternate per repeat so machine load drifts hit both; the SQLite store is created once beforehand
(its first-use migration is timed separately: `make demo` pays it once). Writes
bench/results/tracking_overhead.{md,json}; ``--render`` rewrites the page from the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TAGCODE = [sys.executable, "-m", "tagcode"]
PARAMS = "evaluate:\n  protocols: [wsdhq, wshrca, at100]\n"  # the demo's (the CLI takes no list option)


def timed(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU (user + system) seconds of one `tagcode` command (fails loudly). CPU time is the figure
    that survives a shared machine: wall time grows with everyone else's load."""
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run([*TAGCODE, *args], env=env, capture_output=True, text=True)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"tagcode {args[0]} failed: {proc.stderr.strip()}")
    return {"wall": wall, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}


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


def summarize(runs: dict[str, list[dict]], create_db: dict[str, float], repeats: int) -> dict:
    """Per-cell medians (CPU and wall) with tracking off and on, and the overall CPU share tracking adds."""
    cells = sorted({x["cell"] for x in runs["off"]})
    per_cell: dict[str, dict] = {}
    for name in cells:
        per_cell[name] = {}
        for clock in ("cpu", "wall"):
            off, on = (statistics.median(sum(v[clock] for k, v in x.items() if k != "cell")
                                         for x in runs[mode] if x["cell"] == name) for mode in ("off", "on"))
            per_cell[name][clock] = {"off_s": off, "on_s": on, "overhead_s": on - off,
                                     "overhead_pct": 100 * (on - off) / off}
    off_cpu = sum(c["cpu"]["off_s"] for c in per_cell.values())
    on_cpu = sum(c["cpu"]["on_s"] for c in per_cell.values())
    stages = {stage: statistics.mean(x[stage]["cpu"] for x in runs["on"]) - statistics.mean(
        x[stage]["cpu"] if stage in x else 0.0 for x in runs["off"]) for stage in ("train", "encode", "evaluate",
                                                                                  "promote")}
    return {"cells": per_cell, "runs": runs, "create_db": create_db, "repeats": repeats,
            "cpu_overhead_pct": 100 * (on_cpu - off_cpu) / off_cpu, "cpu_overhead_by_stage_s": stages,
            "load": os.getloadavg()}


def render(result: dict) -> str:
    """The markdown results page."""
    lines = ["# Tracking overhead", "",
             f"`python bench/tracking_overhead.py` ({result['repeats']} repeat(s), medians) on the demo's prepared "
             "data and features. The 2-core machine was shared with other sessions (load average "
             f"{result['load'][0]:.0f} at the end), so read the CPU seconds (user + system of the `tagcode` "
             "processes, inflated by contention alike in both modes); wall seconds are shown for completeness.", "",
             "| cell | clock | off: train+encode+evaluate (s) | on: + promote (s) | overhead (s) | overhead |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {n} | {k} | {v['off_s']:.1f} | {v['on_s']:.1f} | {v['overhead_s']:.1f} | {v['overhead_pct']:.0f}% |"
              for n, c in result["cells"].items() for k, v in c.items()]
    by_stage = ", ".join(f"{k} +{v:.1f} s" for k, v in result["cpu_overhead_by_stage_s"].items())
    lines += ["", f"Added CPU per stage (mean): {by_stage}.",
              f"First use of the SQLite store (table creation and migrations, once per project): "
              f"{result['create_db']['cpu']:.1f} s CPU.",
              f"Tracking adds {result['cpu_overhead_pct']:.0f}% to the CPU time of these cells; the cells are most "
              "of `make demo`, so the demo grows by about as much. The cost is per process (`import mlflow`, the "
              "store's schema check, logging the model with its input example, and the promote stage's own "
              "process), not per training step.", ""]
    return "\n".join(lines)


def demo_overhead(demo_s: float) -> dict:
    """promote (all cells) and report with tracking on and off on the project's outputs: seconds and share."""
    with tempfile.TemporaryDirectory(prefix="tracking-demo-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        times = {}
        for mode in ("off", "on"):
            flag = ["--tracking", "true" if mode == "on" else "false"]
            times[mode] = {
                "promote": timed(["promote", "--params", "params.yaml", "--model", "models", "--metrics", "metrics",
                                  "--out", f"{tmp}/promotions-{mode}", *flag], env),
                "report": timed(["report", "--params", "params.yaml", "--out", f"{tmp}/reports-{mode}", *flag], env),
            }
        cells = len(list((Path(tmp) / "promotions-on").glob("*.json")))
    added = {k: times["on"][k]["wall"] - times["off"][k]["wall"] for k in times["on"]}
    return {"demo_s": demo_s, "cells": cells, "times": times, "added_wall_s": added,
            "share_pct": 100 * sum(added.values()) / demo_s, "load": os.getloadavg()}


def render_demo(result: dict) -> str:
    """The markdown page of the demo measurement."""
    t, a, demo = result["times"], result["added_wall_s"], result["demo_s"]
    intro = (f"`python bench/tracking_overhead.py --demo {demo:.0f}` after `make demo` ({demo:.0f} s wall), on its "
             f"{result['cells']} cells. The demo trains and evaluates with tracking off; `promote` logs every cell "
             "as an MLflow run after the fact and registers it, and `report` logs its run. Each stage was timed "
             "with tracking off and on (a fresh SQLite store, so the on figure includes the store's creation); "
             f"load average {result['load'][0]:.1f} at the end.")
    rows = [f"| {k} | {t['off'][k]['wall']:.1f} | {t['on'][k]['wall']:.1f} | {a[k]:.1f} | "
            f"{t['off'][k]['cpu']:.1f} | {t['on'][k]['cpu']:.1f} |" for k in a]
    return "\n".join(["# Tracking overhead of `make demo`", "", intro, "",
                      "| stage | off: wall (s) | on: wall (s) | added (s) | off: CPU (s) | on: CPU (s) |",
                      "|---|---:|---:|---:|---:|---:|", *rows, "",
                      f"Tracking adds {sum(a.values()):.1f} s, **{result['share_pct']:.1f}%** of the demo's "
                      f"{demo:.0f} s.", ""])


def main() -> None:
    """Run the benchmark (or, with --render, rewrite the page from the saved JSON) and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", type=float, metavar="SECONDS", help="measure the demo's after-the-fact tracking; "
                        "SECONDS: the measured wall time of `make demo`")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--cells", default="itq-32,pq-16")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the saved .json")
    args = parser.parse_args()
    out = REPO / "bench" / "results"
    if args.demo:
        demo = demo_overhead(args.demo)
        (out / "tracking_demo.json").write_text(json.dumps(demo, indent=2) + "\n")
        (out / "tracking_demo.md").write_text(render_demo(demo))
        print(render_demo(demo))
        return
    if args.render:
        saved = json.loads((out / "tracking_overhead.json").read_text())
        result = {**summarize(saved["runs"], saved["create_db"], saved.get("repeats", args.repeats)),
                  "load": saved["load"]}
    else:
        result = summarize(*measure(args), args.repeats)
    (out / "tracking_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "tracking_overhead.md").write_text(render(result))
    print(render(result))


def measure(args: argparse.Namespace) -> tuple[dict[str, list[dict]], dict[str, float]]:
    """Time every cell in both modes, alternating the order per repeat; also the store's first use."""
    with tempfile.TemporaryDirectory(prefix="tracking-bench-") as tmp:
        work = Path(tmp)
        (work / "params.yaml").write_text(PARAMS)
        env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true",
               "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"],
                       env=env, check=True, capture_output=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        create_db = {"wall": time.perf_counter() - t0,
                     "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        for r in range(args.repeats):
            for name in args.cells.split(","):
                for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                    runs[mode].append({"cell": name, **cell(work, args.prepared, args.features, name, mode == "on",
                                                            env)})
                    print(json.dumps({"mode": mode, **runs[mode][-1]}), flush=True)  # progress, kept if cut short
    return runs, create_db


if __name__ == "__main__":
    main()
