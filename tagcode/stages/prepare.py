"""prepare: read a dataset in its native layout, draw the named split, decode images into the cache.

Outputs (directory ``out``, published atomically as a whole):

- ``manifest.parquet``: one row per image (``tagcode.data.manifest``), labels for evaluation only;
- ``images/``: the decoded-image cache (``tagcode.data.cache``), query and database images only;
- ``skipped.csv``: every input item that was not used, with the reason;
- ``notes.csv``: items that were used but read with a fallback (Latin-1, no tag file), with the note;
- ``report.json``: counts (records, decoded, skipped and notes by reason, final split sizes, images lost
  in decoding per split).

Under DVC, prepare depends on ``data/dataset_listing.json`` (``tagcode listing``, ``tagcode.data.listing``),
so a changed dataset re-runs it.

Split sizes are counted once, after decoding, and the same numbers appear in the summary, ``report.json``
and its ``split_report``. "train" here means database images with ≥1 tag (in the source's vocabulary when
it has one): the images every method trains on. clean_tags and embed_tags count the subset that keeps
≥1 tag after their filters; the baselines use no tags, so they train on all of prepare's.
"""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from tagcode.config import StageConfig
from tagcode.data.cache import DEFAULT_SHARD_SIZE, CacheWriter
from tagcode.data.manifest import write_manifest
from tagcode.data.sources import SOURCES
from tagcode.data.splits import SPLIT_PROTOCOLS, assign_split
from tagcode.errors import TagcodeError
from tagcode.io import atomic_path, write_json
from tagcode.progress import progress


class Config(StageConfig):
    """Options of the prepare stage."""

    source: str = Field("openclipart", description="dataset source: " + ", ".join(sorted(SOURCES.names())))
    root: str = Field("/usr/share/openclipart", description="dataset root: a local path or s3://bucket/prefix")
    options: dict[str, Any] = Field(default_factory=dict, description="source-specific options (JSON object)")
    protocol: str = Field("random", description="split protocol: " + ", ".join(sorted(SPLIT_PROTOCOLS.names())))
    seed: int | None = Field(None, ge=0, description="split seed (None: the protocol's default)")
    n_query: int | None = Field(None, ge=1, description="number of query images (None: the protocol's default)")
    n_train: int | None = Field(None, ge=1, description="number of training images (None: the protocol's default)")
    n_database: int | None = Field(None, ge=1, description="cap on database images (None: all the rest)")
    limit: int | None = Field(None, ge=1, description="use a seeded random subset of this many records "
                                                      "(quick runs); None: all")
    image_size: int = Field(64, ge=8, le=1024, description="side of the square cached thumbnails, pixels")
    shard_size: int = Field(DEFAULT_SHARD_SIZE, ge=1, description="images per cache shard file")
    max_pixels: int = Field(40_000_000, ge=1, description="images declaring more pixels are refused as "
                                                           "decompression bombs")
    workers: int = Field(2, ge=1, description="decoding threads")
    progress: bool | None = Field(None, description="show a progress bar while decoding (None: when stderr is a "
                                                    "terminal and CI is not set)")
    out: str = Field("data/prepared", description="output directory")


TRAIN_DEFINITION = "database images with ≥1 tag"


def _subset(records: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """A seeded random subset of ``limit`` records, in the original order."""
    if limit is None or limit >= len(records):
        return records
    keep = np.sort(np.random.default_rng(seed).choice(len(records), size=limit, replace=False))
    return records.iloc[keep].reset_index(drop=True)


def _decode_all(frame: pd.DataFrame, loader: Any, cfg: Config, writer: CacheWriter) -> list[tuple[str, str]]:
    """Decode the query/database images into the cache; return (image_id, reason) for failures."""
    from tagcode.data.images import ImageDecodeError, decode_image

    def one(uri: str) -> np.ndarray | str:
        try:
            return decode_image(loader(uri), cfg.image_size, name=uri, max_pixels=cfg.max_pixels)
        except (ImageDecodeError, TagcodeError) as exc:
            return str(exc)

    failed: list[tuple[str, str]] = []
    ids = frame["image_id"].tolist()
    with ThreadPoolExecutor(max_workers=cfg.workers) as pool, \
            progress(len(ids), f"prepare {cfg.source}", enabled=cfg.progress) as bar:
        for image_id, result in zip(ids, pool.map(one, frame["image_uri"].tolist()), strict=True):
            if isinstance(result, str):
                failed.append((image_id, result))
            else:
                writer.add(image_id, result)
            bar.update(1)
    return failed


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns the report that is also written to ``report.json``."""
    from tagcode.data.sources import load_source

    src = load_source(cfg.source, cfg.root, **cfg.options)
    records = _subset(src.records, cfg.limit, cfg.seed or 0)
    if records.empty:
        raise TagcodeError(f"{cfg.root}: the {cfg.source} source yielded no images")
    frame, split_report = assign_split(records, cfg.protocol, vocabulary=src.vocabulary, seed=cfg.seed,
                                       n_query=cfg.n_query, n_train=cfg.n_train, n_database=cfg.n_database)
    used = frame[frame["split"] != "unused"]
    with atomic_path(cfg.out) as out:
        out.mkdir()
        with CacheWriter(out / "images", cfg.image_size, cfg.shard_size) as writer:
            failed = _decode_all(used, src.loader, cfg, writer)
        bad = {i for i, _ in failed}
        frame = frame[~frame["image_id"].isin(bad)].reset_index(drop=True)
        meta = {"source": cfg.source, "root": cfg.root, "label_names": list(src.label_names),
                "vocabulary": list(src.vocabulary) if src.vocabulary is not None else None,
                "blocked_tags": list(src.blocked_tags), "protocol": cfg.protocol, "image_size": cfg.image_size}
        write_manifest(out / "manifest.parquet", frame, meta)
        skipped = [*src.skipped, *failed]
        pd.DataFrame(skipped, columns=["item", "reason"]).to_csv(out / "skipped.csv", index=False)
        pd.DataFrame(src.notes, columns=["item", "note"]).to_csv(out / "notes.csv", index=False)
        counts = {s: int((frame["split"] == s).sum()) for s in ("query", "database", "unused")}
        lost = {s: int((used["split"] == s).to_numpy()[used["image_id"].isin(bad).to_numpy()].sum())
                for s in ("query", "database")}
        lost["train"] = int(used["train"].to_numpy()[used["image_id"].isin(bad).to_numpy()].sum())
        split_report = {**split_report, "counts": counts, "train": int(frame["train"].sum()),
                        "lost_in_decoding": lost}
        report = {
            "source": cfg.source, "root": cfg.root, "records": len(src.records), "used_records": len(records),
            "decoded": len(used) - len(failed), "skipped": len(skipped),
            "skipped_by_reason": dict(collections.Counter(_reason_kind(r) for _, r in skipped)),
            "notes": len(src.notes),
            "notes_by_reason": dict(collections.Counter(_reason_kind(r) for _, r in src.notes)),
            "split": counts, "train": split_report["train"], "train_definition": TRAIN_DEFINITION,
            "labels": len(src.label_names), "split_report": split_report,
        }
        write_json(out / "report.json", report)
    return report


def _reason_kind(reason: str) -> str:
    """Group skip reasons: ``im3.png: decompression bomb (…)`` → ``decompression bomb``."""
    return reason.rsplit(": ", 1)[-1].split(" (")[0][:60]


def format_summary(report: dict[str, Any]) -> str:
    """A short human summary for the CLI: final split sizes, skips and notes counted apart."""
    s = report["split"]
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(report["skipped_by_reason"].items()))
    notes = ", ".join(f"{k}: {v}" for k, v in sorted(report.get("notes_by_reason", {}).items()))
    return (f"prepare: {report['used_records']} records from {report['source']}; decoded {report['decoded']} "
            f"(query {s['query']}, database {s['database']}, train {report['train']} = {TRAIN_DEFINITION}, "
            f"unused {s['unused']}); {report['labels']} labels; skipped {report['skipped']}"
            + (f" ({skipped})" if skipped else "") + f"; notes {report.get('notes', 0)}"
            + (f" ({notes})" if notes else ""))

