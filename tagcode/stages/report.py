"""report: the baseline table (mAP per method × bits × protocol) and the mAP-vs-code-length plots.

Reads every ``<metrics>/<method>-<bits>/metrics.json`` written by evaluate; writes ``table.json``,
``table.md`` and ``map_vs_bits.png`` (one panel per protocol, the float reference dashed) in ``out``; with
tracking on, they are also the artifacts of an MLflow run named ``report``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from tagcode.errors import TagcodeError
from tagcode.io import atomic_open, write_json
from tagcode.tracking import TrackedConfig


class Config(TrackedConfig):
    """Options of the report stage."""

    metrics: str = Field("metrics", description="directory holding one <method>-<bits>/metrics.json per cell")
    out: str = Field("reports", description="output directory")
    experiment: str = Field("tagcode", description="MLflow experiment of the report run (with tracking on)")


def collect(metrics_dir: str | Path) -> list[dict[str, Any]]:
    """One row per evaluated cell: method, bits, kind and the headline mAP of each protocol."""
    rows = []
    for path in sorted(Path(metrics_dir).glob("*/metrics.json")):
        m = json.loads(path.read_text(encoding="utf-8"))
        rows.append({"method": m["method"], "bits": m["bits"], "kind": m["kind"],
                     **{name: p["map"] for name, p in m["protocols"].items()}})
    if not rows:
        raise TagcodeError(f"{metrics_dir}: no */metrics.json found (run the evaluate stages first)")
    return sorted(rows, key=lambda r: (r["kind"], r["method"], r["bits"]))


def markdown_table(rows: list[dict[str, Any]], protocols: list[str]) -> str:
    """The table as GitHub markdown, mAP to three decimals."""
    head = "| method | kind | bits | " + " | ".join(f"{p} mAP" for p in protocols) + " |"
    sep = "|---|---|---:|" + "---:|" * len(protocols)
    body = [f"| {r['method']} | {r['kind']} | {r['bits']} | "
            + " | ".join(f"{r[p]:.3f}" if p in r else "–" for p in protocols) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns the table rows."""
    from tagcode.evaluation.plots import plot_map_vs_bits
    rows = collect(cfg.metrics)
    protocols = sorted({k for r in rows for k in r} - {"method", "bits", "kind"})
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "table.json", {"rows": rows, "protocols": protocols})
    with atomic_open(out / "table.md", "w", encoding="utf-8") as fh:
        fh.write(markdown_table(rows, protocols))
    plot_map_vs_bits({f"{p} protocol": [(r["method"], r["bits"], r[p]) for r in rows if p in r and r["kind"] != "float"]
                      for p in protocols}, out / "map_vs_bits.png",
                     references={f"{p} protocol": {f"{r['method']} (uncompressed)": r[p] for r in rows
                                                   if p in r and r["kind"] == "float"} for p in protocols})
    if cfg.tracking:
        from tagcode.tracking.run import log_report
        log_report(cfg.experiment, [out / "map_vs_bits.png", out / "table.md", out / "table.json"])
    return {"rows": rows, "protocols": protocols, "out": cfg.out}


def format_summary(summary: dict[str, Any]) -> str:
    """The markdown table."""
    return markdown_table(summary["rows"], summary["protocols"])
