"""report: the baseline table (mAP per method × bits × protocol), the mAP-vs-code-length plots and the
retrieval grid.

Reads every ``<metrics>/<method>-<bits>/metrics.json`` written by evaluate; writes ``table.json``,
``table.md`` and ``map_vs_bits.png`` (one panel per protocol, the float reference dashed, the
random-ranking mAP dotted, the y-axis from 0) and, with ``codes`` set, ``retrieval_grid.png``
(``tagcode.evaluation.grid``) in ``out``; with tracking on, they are also the artifacts of
an MLflow run named ``report``.

Only results measured on the current data are reported: each metrics.json carries a fingerprint (dataset
source, root, protocol, listing digest, and digests of the query and database ids), and a cell whose
fingerprint differs from the current prepare output (``prepared``) is refused with an error naming it, so
a cell that failed on new data cannot slip its old numbers into the table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from tagcode.errors import TagcodeError
from tagcode.io import atomic_open, write_json
from tagcode.tracking import TrackedConfig

RANDOM = "random"  # the table row holding the random-ranking mAP
GRID_BITS = 32  # the code length whose cells the retrieval grid shows


class Config(TrackedConfig):
    """Options of the report stage."""

    metrics: str = Field("metrics", description="directory holding one <method>-<bits>/metrics.json per cell")
    prepared: str | None = Field("data/prepared", description="output directory of the prepare stage: every "
                                                              "cell must be measured on its split (None: cells "
                                                              "need only agree with each other)")
    codes: str | None = Field(None, description="directory of the encode outputs (<method>-<bits>/): when set, "
                                                "report also draws retrieval_grid.png, the top 10 of 8 queries for "
                                                f"every {GRID_BITS}-bit cell")
    out: str = Field("reports", description="output directory")
    experiment: str = Field("tagcode", description="MLflow experiment of the report run (with tracking on)")


def current_fingerprint(prepared: str | Path) -> dict[str, Any]:
    """The fingerprint evaluate records for a cell measured on the current prepare output."""
    from tagcode.data.listing import split_fingerprint
    from tagcode.data.manifest import read_manifest

    manifest = read_manifest(Path(prepared) / "manifest.parquet")
    return split_fingerprint(manifest.meta, list(manifest.ids_of("query")), list(manifest.ids_of("database")))


def _describe(fp: dict[str, Any] | None) -> str:
    """A fingerprint in a few words, for error messages."""
    if not fp:
        return "no fingerprint (written before fingerprints existed)"
    d = fp["dataset"]
    return (f"{d.get('source')} at {d.get('root')}, protocol {d.get('protocol')}, {fp['query']['n']} queries "
            f"{fp['query']['sha256'][:8]}, {fp['database']['n']} database {fp['database']['sha256'][:8]}")


def _check_fingerprints(cells: dict[str, dict[str, Any]], expected: dict[str, Any] | None, where: str) -> None:
    """Refuse cells measured on other data: all must equal ``expected`` (or, without it, each other)."""
    if expected is None:
        groups: dict[str, list[str]] = {}
        for name, m in cells.items():
            groups.setdefault(json.dumps(m.get("fingerprint"), sort_keys=True), []).append(name)
        if len(groups) <= 1:
            return
        ordered = sorted(groups.values(), key=len, reverse=True)
        expected = cells[ordered[0][0]].get("fingerprint")
    stale = sorted(n for n, m in cells.items() if m.get("fingerprint") != expected)
    if stale:
        shown = ", ".join(stale[:6]) + (f" (+{len(stale) - 6} more)" if len(stale) > 6 else "")
        raise TagcodeError(f"{where}: {len(stale)} of {len(cells)} cells were evaluated on other data than "
                           f"{_describe(expected)}: {shown} ({_describe(cells[stale[0]].get('fingerprint'))}); "
                           "re-run their train/encode/evaluate stages or remove them")


def collect(metrics_dir: str | Path, prepared: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per evaluated cell (method, bits, kind and the headline mAP of each protocol), then a
    ``random`` row with the random-ranking mAP; cells measured on other data are an error naming them."""
    cells = {path.parent.name: json.loads(path.read_text(encoding="utf-8"))
             for path in sorted(Path(metrics_dir).glob("*/metrics.json"))}
    if not cells:
        raise TagcodeError(f"{metrics_dir}: no */metrics.json found (run the evaluate stages first)")
    expected = current_fingerprint(prepared) if prepared is not None else None
    _check_fingerprints(cells, expected, str(metrics_dir))
    rows = sorted(({"method": m["method"], "bits": m["bits"], "kind": m["kind"],
                    **{name: p["map"] for name, p in m["protocols"].items()}} for m in cells.values()),
                  key=lambda r: (r["kind"], r["method"], r["bits"]))
    chance = {name: p["random_map"] for m in cells.values() for name, p in m["protocols"].items()
              if "random_map" in p}
    if chance:
        rows.append({"method": RANDOM, "bits": None, "kind": "reference", **chance})
    return rows


def markdown_table(rows: list[dict[str, Any]], protocols: list[str]) -> str:
    """The table as GitHub markdown, mAP to three decimals."""
    head = "| method | kind | bits | " + " | ".join(f"{p} mAP" for p in protocols) + " |"
    sep = "|---|---|---:|" + "---:|" * len(protocols)
    body = [f"| {r['method']} | {r['kind']} | {r['bits'] if r['bits'] is not None else '–'} | "
            + " | ".join(f"{r[p]:.3f}" if p in r else "–" for p in protocols) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns the table rows."""
    from tagcode.evaluation.plots import plot_map_vs_bits
    rows = collect(cfg.metrics, cfg.prepared)
    protocols = sorted({k for r in rows for k in r} - {"method", "bits", "kind"})
    cells = [r for r in rows if r["kind"] != "reference"]
    chance = {f"{p} protocol": r[p] for r in rows if r["method"] == RANDOM for p in protocols if p in r}
    fingerprint = current_fingerprint(cfg.prepared) if cfg.prepared is not None else None
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "table.json", {"rows": rows, "protocols": protocols, "fingerprint": fingerprint})
    with atomic_open(out / "table.md", "w", encoding="utf-8") as fh:
        fh.write(markdown_table(rows, protocols))
    plot_map_vs_bits({f"{p} protocol": [(r["method"], r["bits"], r[p]) for r in cells
                                        if p in r and r["kind"] != "float"] for p in protocols},
                     out / "map_vs_bits.png",
                     references={f"{p} protocol": {f"{r['method']} (uncompressed)": r[p] for r in cells
                                                   if p in r and r["kind"] == "float"} for p in protocols},
                     chance=chance)
    artifacts = [out / "map_vs_bits.png", out / "table.md", out / "table.json"]
    if cfg.codes is not None:
        from tagcode.evaluation.grid import retrieval_grid
        if cfg.prepared is None:
            raise TagcodeError("report: the retrieval grid (codes set) needs the prepare output (prepared)")
        retrieval_grid(cfg.codes, cfg.prepared, [f"{r['method']}-{r['bits']}" for r in cells if r["bits"] == GRID_BITS],
                       out / "retrieval_grid.png")
        artifacts.append(out / "retrieval_grid.png")
    if cfg.tracking:
        from tagcode.tracking.run import log_report
        log_report(cfg.experiment, artifacts)
    return {"rows": rows, "protocols": protocols, "out": cfg.out}


def format_summary(summary: dict[str, Any]) -> str:
    """The markdown table."""
    return markdown_table(summary["rows"], summary["protocols"])
