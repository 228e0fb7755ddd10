"""clean_tags: normalise and filter the raw user tags into a vocabulary and an image×tag matrix.

Outputs (directory ``out``, published atomically):

- ``vocab.parquet``: kept tags in matrix-column order, with ``count`` (training images) and ``count_all``;
- ``dropped.parquet``: every dropped raw tag with the reason (stop_list, min_freq, not_in_vocabulary,
  blocked_category_name, too_short, non_word) and its number of occurrences;
- ``image_tags.npz``: the image×tag matrix (``tagcode.tags.matrix.TagMatrix``); training images left
  without tags stay in the database but are excluded from training (``train`` mask), and counted;
- ``report.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from tagcode.config import StageConfig
from tagcode.data.manifest import read_manifest
from tagcode.errors import TagcodeError
from tagcode.io import atomic_path, read_bytes, write_json
from tagcode.tags.clean import DEFAULT_MIRFLICKR_STOP_LIST, CleanRules, clean_tags
from tagcode.tags.matrix import TagMatrix, save_tag_matrix


class Config(StageConfig):
    """Options of the clean_tags stage."""

    prepared: str = Field("data/prepared", description="output directory of the prepare stage")
    normalize: bool = Field(True, description="NFKC + lower-case + strip each tag")
    strip_punctuation: bool = Field(True, description="collapse whitespace and strip surrounding punctuation")
    split_multiword: bool = Field(False, description="split multi-word tags into words")
    min_length: int = Field(2, ge=1, description="drop tags shorter than this")
    drop_numeric: bool = Field(True, description="drop tags without a letter (2007, 360°: dates and counters); "
                                                 "false (with min_length 1 and no stop list) keeps a reference "
                                                 "vocabulary such as MIRFlickr's 1,386 common tags whole")
    stop_list: list[str] | Literal["mirflickr"] = Field(
        default_factory=list, description="tags to drop: a list, or 'mirflickr' for the built-in camera/meta list")
    min_freq: int = Field(5, ge=1, description="keep tags carried by at least this many training images")
    vocabulary: str | None = Field(None, description="restrict to a vocabulary: 'source' (the dataset's own, "
                                                      "e.g. common_tags.txt), a file with one tag per line, or None")
    block_category_names: bool = Field(True, description="drop tags equal to a ground-truth category name "
                                                         "(leakage filter; sources that declare them)")
    out: str = Field("data/tags", description="output directory")


def _vocabulary(spec: str | None, meta: dict[str, Any]) -> tuple[str, ...] | None:
    """Resolve the vocabulary option to a tuple of tags (or None)."""
    if spec is None:
        return None
    if spec == "source":
        if not meta.get("vocabulary"):
            raise TagcodeError(f"vocabulary 'source': the {meta.get('source')} source declares no vocabulary")
        return tuple(meta["vocabulary"])
    try:
        text = read_bytes(spec).decode("utf-8")
    except UnicodeDecodeError:
        raise TagcodeError(f"{spec}: vocabulary file is not UTF-8") from None
    words = tuple(line.split()[0] for line in text.splitlines() if line.strip())
    if not words:
        raise TagcodeError(f"{spec}: vocabulary file is empty")
    return words


def rules_from(cfg: Config, meta: dict[str, Any]) -> CleanRules:
    """Translate the stage options (and the manifest's source metadata) into cleaning rules."""
    stop = DEFAULT_MIRFLICKR_STOP_LIST if cfg.stop_list == "mirflickr" else tuple(cfg.stop_list)
    return CleanRules(
        normalize=cfg.normalize, split_multiword=cfg.split_multiword, strip_punctuation=cfg.strip_punctuation,
        min_length=cfg.min_length, drop_numeric=cfg.drop_numeric, stop_list=tuple(stop), min_freq=cfg.min_freq,
        vocabulary=_vocabulary(cfg.vocabulary, meta),
        blocked=tuple(meta.get("blocked_tags") or ()) if cfg.block_category_names else (),
    )


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns the report also written to ``report.json``."""
    manifest = read_manifest(Path(cfg.prepared) / "manifest.parquet")
    frame = manifest.frame[manifest.frame["split"] != "unused"].reset_index(drop=True)
    train = frame["train"].to_numpy(dtype=bool)
    result = clean_tags(frame["image_id"].to_numpy(dtype=object), frame["tags"].tolist(), train,
                        rules_from(cfg, manifest.meta))
    has_tags = np.asarray(result.matrix.sum(axis=1)).ravel() > 0
    if not (train & has_tags).any():
        raise TagcodeError(f"{cfg.prepared}: no training image keeps any tag after cleaning "
                           f"(min_freq={cfg.min_freq}); lower min_freq or check the tags")
    with atomic_path(cfg.out) as out:
        out.mkdir()
        result.vocab.to_parquet(out / "vocab.parquet", index=False)
        result.dropped.to_parquet(out / "dropped.parquet", index=False)
        save_tag_matrix(out / "image_tags.npz", TagMatrix(ids=result.image_ids, tags=result.vocab["tag"].to_numpy(),
                                                          matrix=result.matrix, train=train & has_tags))
        report = dict(result.report)
        report["train_usable"] = int((train & has_tags).sum())
        write_json(out / "report.json", report)
    return report


def format_summary(report: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    dropped = ", ".join(f"{k}: {v}" for k, v in sorted(report.get("dropped_by_reason", {}).items()))
    return (f"clean_tags: {report.get('kept_tags')} tags kept; dropped ({dropped or 'none'}); "
            f"{report.get('images_without_tags')} images without tags "
            f"({report.get('train_images_without_tags')} of them training images, excluded from training); "
            f"{report['train_usable']} training images with ≥1 kept tag (of prepare's training images)")
