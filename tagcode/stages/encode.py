"""encode: database codes, query embeddings and a faiss index from a trained model.

Outputs in ``out``: ``database/`` and ``query/`` (code containers, ``tagcode.retrieval.codes``),
``index.faiss`` (the serving index: binary Hamming, additive-quantizer AQD or flat inner product) and
``meta.json`` (method, bits, kind, counts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from tagcode.config import StageConfig
from tagcode.data.cache import ImageCache
from tagcode.data.features import features_for
from tagcode.data.manifest import read_manifest
from tagcode.errors import TagcodeError
from tagcode.io import atomic_path, write_json
from tagcode.progress import CountingRows, progress
from tagcode.tracking.run import copy_run_ref


class Config(StageConfig):
    """Options of the encode stage."""

    model: str = Field("models/itq-32", description="model directory written by the train stage")
    prepared: str = Field("data/prepared", description="output directory of the prepare stage")
    features: str = Field("data/features", description="output directory of the features stage")
    shard: int = Field(0, ge=0, description="this run's shard of the database (scale-out; merge_shards joins "
                                            "the shards and builds the index)")
    num_shards: int = Field(1, ge=1, description="number of database shards (contiguous ranges in manifest "
                                                 "order); every shard encodes all queries")
    progress: bool | None = Field(None, description="show a progress bar while encoding images (end-to-end "
                                                    "models; None: when stderr is a terminal and CI is not set)")
    out: str | None = Field(None, description="output directory (None: codes/<the model directory's name>)")

    @model_validator(mode="after")
    def _out(self) -> Config:
        return self.default_out(f"codes/{Path(self.model).name}")


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns a summary."""
    from tagcode.data.shards import shard_slice
    from tagcode.methods import load_method
    from tagcode.retrieval.codes import save_codes
    from tagcode.retrieval.index import to_faiss_index, write_index
    manifest = read_manifest(Path(cfg.prepared) / "manifest.parquet")
    method = load_method(cfg.model)
    db_ids, q_ids = manifest.ids_of("database"), manifest.ids_of("query")
    if len(db_ids) == 0 or len(q_ids) == 0:
        raise TagcodeError(f"{cfg.prepared}: the split needs query and database images "
                           f"(query {len(q_ids)}, database {len(db_ids)})")
    db_ids = db_ids[shard_slice(len(db_ids), cfg.num_shards, cfg.shard)]
    if method.input == "images":  # the slow case (a backbone forward per image, 10 crops for WSDHQ): a bar
        cache = ImageCache(Path(cfg.prepared) / "images")
        with progress(len(db_ids) + len(q_ids), f"encode {method.label}", enabled=cfg.progress) as bar:
            database = method.encode(CountingRows(cache.view(db_ids), bar), db_ids)
            query = method.encode_query(CountingRows(cache.view(q_ids), bar), q_ids)
    else:
        x_db, x_q = features_for(cfg.features, db_ids, q_ids)
        database, query = method.encode(x_db, db_ids), method.encode_query(x_q, q_ids)
    with atomic_path(cfg.out) as out:
        out.mkdir()
        save_codes(database, out / "database")
        save_codes(query, out / "query")
        if cfg.num_shards == 1:  # a shard's index is built by merge_shards over the whole database
            write_index(to_faiss_index(database), out / "index.faiss")
        summary = {"method": method.label, "bits": method.bits, "kind": method.kind, "database": len(db_ids),
                   "query": len(q_ids), "out": cfg.out}
        write_json(out / "meta.json", summary)
        copy_run_ref(cfg.model, out)  # the MLflow run of the model, so evaluate logs on it
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    return (f"encode: {summary['method']} {summary['bits']} bits ({summary['kind']}): {summary['database']} "
            f"database codes, {summary['query']} queries → {summary['out']}")
