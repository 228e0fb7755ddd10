"""merge_shards: join the outputs of a sharded ``features`` or ``encode`` run into the unsharded output.

The Kubeflow DAG fans ``features`` and ``encode`` out over shards of image ids (``shard``/``num_shards``)
and merges them here, so large databases (NUS-WIDE: 270k images) scale out; the merged directory is
identical to what one unsharded run writes (features: ``features.npy``, ``ids.json``, ``meta.json``;
codes: ``database/``, ``query/``, ``index.faiss``, ``meta.json``, the model's ``tracking.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tagcode.config import StageConfig
from tagcode.errors import TagcodeError
from tagcode.io import atomic_path, read_json, write_json


class Config(StageConfig):
    """Options of the merge_shards stage."""

    kind: Literal["features", "codes"] = Field("features", description="what the shards are: features or codes")
    parts: list[str] = Field(default_factory=list, description="shard output directories, in shard order")
    out: str = Field("data/features", description="merged output directory")


def _merge_codes(parts: list[str], out_dir: str) -> dict[str, Any]:
    """Concatenate the database shards, keep the (identical) query set, build the serving index."""
    from tagcode.retrieval.codes import concat_codes, load_codes, save_codes
    from tagcode.retrieval.index import to_faiss_index, write_index
    from tagcode.tracking.run import copy_run_ref

    metas = [read_json(Path(p) / "meta.json") for p in parts]
    head = {k: metas[0][k] for k in ("method", "bits", "kind")}
    if any({k: m[k] for k in head} != head for m in metas[1:]):
        raise TagcodeError(f"{parts[0]}: code shards come from different models")
    database = concat_codes([load_codes(Path(p) / "database") for p in parts])
    query = load_codes(Path(parts[0]) / "query")
    with atomic_path(out_dir) as out:
        out.mkdir()
        save_codes(database, out / "database")
        save_codes(query, out / "query")
        write_index(to_faiss_index(database), out / "index.faiss")
        summary = {**head, "database": len(database.ids), "query": len(query.ids), "out": out_dir}
        write_json(out / "meta.json", summary)
        copy_run_ref(parts[0], out)  # the model's MLflow run (every shard carries the same), for evaluate
    return summary


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns the merged output's summary."""
    if not cfg.parts:
        raise TagcodeError("merge_shards: no parts given")
    if cfg.kind == "features":
        from tagcode.backbones.extract import merge_features

        meta = merge_features(cfg.parts, cfg.out)
        return {"kind": "features", "shards": len(cfg.parts), "n": meta["n"], "dim": meta["dim"], "out": cfg.out}
    return {"kind": "codes", "shards": len(cfg.parts), **_merge_codes(cfg.parts, cfg.out)}


def format_summary(summary: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    return f"merge_shards: {summary['shards']} {summary['kind']} shards → {summary['out']}"
